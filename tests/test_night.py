"""The relay without Prefect: route → outbox → send → receive → receipt → acknowledged."""

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from stafet import night
from stafet.context import open_context
from stafet.core.cpr import parse_cpr
from stafet.core.models import ConcernFlag, Dropout, Provenance
from stafet.core.vault import load_secret
from stafet.demo.network import member_home, setup_demo
from stafet.exchange.inbox import process_inbox
from stafet.store.schema import Handover, ImportedPackage, ImportedRecordRow, RecordRow


def _event(cls, cpr, muni, inst="779008", **kw):
    return cls(cpr=parse_cpr(cpr), institution=inst, home_municipality=muni, first_name="Test",
               last_name="Ung", event_date=date(2026, 11, 17), programme_code="1640",
               programme_name="Tømrer", provenance=Provenance("test", "t.csv", 2, datetime.now(UTC)), **kw)


@pytest.fixture
def network(tmp_path, monkeypatch):
    monkeypatch.setenv("STAFET_KEY_PASSPHRASE", "test-passphrase")
    home = tmp_path / "home"
    demo = tmp_path / "demo"
    path = setup_demo(demo, home, drop_samples=False, bits=2048)
    load_secret(home, create=True)
    load_secret(member_home(demo, "uu-skive"), create=True)
    monkeypatch.setenv("STAFET_HOME", str(home))
    night.context.cache_clear()
    yield str(path), home, demo
    night.context.cache_clear()


def test_dropouts_go_to_the_uu_of_the_home_municipality_and_close(network) -> None:
    path, _home, demo = network
    ctx = night.context(path)
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, [
            _event(Dropout, "120308-4127", "791", reason_code="05"),       # Viborg youth → UU Viborg
            _event(ConcernFlag, "0711094563", "779"),                       # Skive youth → UU Skive
            _event(Dropout, "150299-1234", "787", reason_code="03"),       # 27 years old: no duty
        ])
    assert night.route(path)["planned"] == 2
    with ctx.store.session() as s:
        assert sorted(h.recipient for h in s.scalars(select(Handover))) == ["uu-skive", "uu-viborg"]
    assert night.send(path, ["uu-skive", "uu-viborg"])["sent"] == 2
    names = [p.name for p in (demo / "inbox" / "uu-viborg").glob("*.eml")]
    assert len(names) == 1 and names[0].startswith("PKG-")
    # UU Viborg is hosted by this node; UU Skive runs its own.
    assert night.receive(path, "uu-viborg")["imported"] == 1
    skive = open_context(path, home=member_home(demo, "uu-skive"))
    r = process_inbox(skive, "uu-skive")
    assert (r.imported, r.receipts_sent, r.rejected) == (1, 1, {})
    with skive.store.session() as s:
        assert s.scalars(select(RecordRow.kind)).all() == []  # received: kept apart from source records
        assert s.scalars(select(ImportedRecordRow.kind)).all() == ["concern_flag"]
        assert len(s.scalars(select(ImportedPackage)).all()) == 1
    assert night.receive(path, "779008")["acknowledged"] == 2
    assert night.outbox_counts(path) == {"acknowledged": 2}
    assert ctx.store.verify_audit_chain() > 0
    # A second night sends nothing new.
    assert night.route(path)["planned"] == 0
    assert night.send(path, ["uu-skive", "uu-viborg"])["sent"] == 0


def test_a_package_delivered_again_is_a_duplicate_answered_again(network) -> None:
    path, home, demo = network
    ctx = night.context(path)
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, [_event(Dropout, "120308-4127", "791", reason_code="05")])
    night.route(path)
    night.send(path, ["uu-viborg"])
    inbox = demo / "inbox" / "uu-viborg"
    pkg = next(inbox.glob("*.eml"))
    data = pkg.read_bytes()
    night.receive(path, "uu-viborg")
    (inbox / pkg.name).write_bytes(data)  # the same package arrives again
    r = night.receive(path, "uu-viborg")
    assert (r["imported"], r["duplicates"], r["rejected"]) == (0, 1, 0)
    assert not (home / "rejected" / pkg.name).exists()  # a duplicate delivery is not a refusal
    assert night.receive(path, "779008")["acknowledged"] == 1
    assert night.outbox_counts(path) == {"acknowledged": 1}
