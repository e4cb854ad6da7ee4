"""The relay without Prefect: route → outbox → send → receive → receipt → acknowledged."""

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from stafet import night
from stafet.context import open_context
from stafet.core.cpr import parse_cpr
from stafet.core.models import ConcernFlag, Dropout, Provenance
from stafet.demo.network import member_home
from stafet.exchange.inbox import process_inbox
from stafet.store.schema import Handover, ImportedPackage, ImportedRecordRow, RecordRow


def _event(cls, cpr, muni, inst="779008", **kw):
    return cls(cpr=parse_cpr(cpr), institution=inst, home_municipality=muni, first_name="Test",
               last_name="Ung", event_date=date(2026, 11, 17), programme_code="1640",
               programme_name="Tømrer", provenance=Provenance("test", "t.csv", 2, datetime.now(UTC)), **kw)


@pytest.fixture
def network(demo_relay):
    """The demo network on a fresh copy (tests/conftest.py's ``demo_relay``)."""
    path, home, folder = demo_relay
    return path, home, folder


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


def test_the_nights_markdown_names_reports_by_id_and_lists_failures(tmp_path) -> None:
    page = tmp_path / "file-0123abcd.99887766.html"
    page.write_text("x")
    files = [{"sha256": "0123abcd99887766" + "0" * 48, "source": "easy-a", "rows": 4, "accepted": 3,
              "quarantined": 1, "rejected": False, "report": str(page),
              "file": "779008_haendelser_2026112102.csv"},
             {"sha256": "", "source": "familie", "rows": 0, "accepted": 0, "quarantined": 0, "rejected": True,
              "report": "", "file": "familie_791_overgange_20261121.csv"}]
    failures = ["source familie: FileRejected: too big (file=x.csv)", "send to uu-viborg: RuntimeError",
                "receive uu-thy: DataError: bad row 120308-4127"]
    md = night.night_markdown({"files": 2, "rows": 4, "accepted": 3, "quarantined": 1, "rejected_files": 1,
                               "report": ""}, files, failures)
    assert f"| [file-0123abcd.99887766]({page.resolve().as_uri()}) | easy-a | 4 | 3 | 1 |  |" in md
    assert "| (ikke læst) | familie | 0 | 0 | 0 | ja |" in md
    assert "## Fejl (3)" in md and "- send to uu-viborg: RuntimeError" in md
    assert "120308-4127" not in md and "******-****" in md          # a CPR in a failure text is redacted
    assert "haendelser" not in md and "overgange" not in md         # ids, never file names
    assert "## Fejl (0)\n\nIngen." in night.night_markdown({}, [], [])
