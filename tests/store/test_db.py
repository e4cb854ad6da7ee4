"""The store on SQLite and on a real PostgreSQL: records once by natural key,
corrections audited, the audit chain verifiable."""

import itertools
import json
import os
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from stafet.core.cpr import parse_cpr
from stafet.core.errors import DataError
from stafet.core.models import Dropout, EducationOrder, Provenance
from stafet.core.vault import Vault
from stafet.store import Store
from stafet.store.schema import AuditEntry, RecordRow, Youth


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'stafet.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
        from sqlalchemy import create_engine

        from stafet.store.schema import Base

        eng = create_engine(url)
        Base.metadata.drop_all(eng)
        with eng.begin() as c:
            c.execute(text("DROP TABLE IF EXISTS alembic_version"))
        eng.dispose()
    s = Store(url, Vault(os.urandom(32)))
    yield s
    s.engine.dispose()


def _dropout(reason: str = "05", row: int = 2) -> Dropout:
    return Dropout(cpr=parse_cpr("120308-4127"), institution="779008", home_municipality="791",
                   event_date=date(2026, 11, 17), programme_code="1640", reason_code=reason,
                   reason_text="Ønsker omvalg", absence_pct=18.5,
                   provenance=Provenance("easy-a", "779008_haendelser_2026112102.csv", row,
                                         datetime(2026, 11, 21, 2, tzinfo=UTC)))


def test_same_record_twice_is_stored_once(store) -> None:
    with store.session() as s:
        first = store.upsert_records(s, [_dropout()])
    with store.session() as s:
        again = store.upsert_records(s, [_dropout(row=9)])
        n = s.scalar(select(text("count(*)")).select_from(RecordRow))
    assert first[0][0] == "new" and again == [("duplicate", first[0][1])]
    assert n == 1


def test_correction_updates_and_is_audited(store) -> None:
    with store.session() as s:
        store.upsert_records(s, [_dropout("05")])
    with store.session() as s:
        (status, rid), = store.upsert_records(s, [_dropout("03")])
    assert status == "updated"
    with store.session() as s:
        row = s.get(RecordRow, rid)
        assert row.payload["reason_code"] == "03"
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "record.updated")).one()
        assert entry.details["fields"] == ["reason_code"]
    assert store.verify_audit_chain() == 1


def test_a_correction_later_in_the_same_batch_is_an_audited_update(store) -> None:
    """As if it came in the next batch: where a file's chunks end must not change what is stored
    or audited. An identical repeat is a duplicate."""
    with store.session() as s:
        out = store.upsert_records(s, [_dropout("05"), _dropout("05", row=3), _dropout("03"),
                                       _dropout("03", row=5), _dropout("07")])
        rows = list(s.scalars(select(RecordRow)))
        audits = [a.details["fields"] for a in s.scalars(select(AuditEntry)
                                                         .where(AuditEntry.action == "record.updated"))]
    assert [o[0] for o in out] == ["new", "duplicate", "updated", "duplicate", "updated"]
    assert out[0][1] == out[2][1] == out[4][1] == rows[0].id
    assert len(rows) == 1 and rows[0].payload["reason_code"] == "07"
    assert audits == [["reason_code"], ["reason_code"]]


def test_different_kinds_and_youths_are_distinct(store) -> None:
    order = EducationOrder(cpr=parse_cpr("1405024913"), order_id="UP-1", target_education="Smed",
                           deadline=date(2027, 1, 5), mentor_granted=True, status="AKTIV",
                           status_date=date(2026, 11, 2))
    with store.session() as s:
        store.upsert_records(s, [_dropout(), replace(_dropout(), cpr=parse_cpr("030409-4871")), order])
        assert s.scalar(select(text("count(*)")).select_from(Youth)) == 3
        assert s.scalar(select(text("count(*)")).select_from(RecordRow)) == 3


def test_audit_chain_detects_a_changed_entry(store) -> None:
    with store.session() as s:
        for i in range(5):
            store.audit(s, "t", "a", f"s{i}", {"i": i})
    assert store.verify_audit_chain() == 5
    with store.session() as s:
        e = s.scalars(select(AuditEntry).where(AuditEntry.subject == "s2")).one()
        e.details = {"i": 99}
    with pytest.raises(DataError, match="audit log chain is broken"):
        store.verify_audit_chain()


def test_audit_many_continues_the_same_chain(store) -> None:
    """Entries appended at once (a receive pass's imports) link like entries one by one."""
    with store.session() as s:
        store.audit(s, "t", "before", "s0", {})
        store.audit_many(s, "t", [("many", f"m{i}", {"i": i, "when": date(2026, 11, i + 1)})
                                  for i in range(4)])
    with store.session() as s:
        store.audit(s, "t", "after", "s5", {})
        store.audit_many(s, "t", [])
    assert store.verify_audit_chain() == 6
    with store.session() as s:
        rows = list(s.scalars(select(AuditEntry).order_by(AuditEntry.id)))
        assert [r.subject for r in rows] == ["s0", "m0", "m1", "m2", "m3", "s5"]
        assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))
        rows[3].details = {"i": 99}
    with pytest.raises(DataError, match="audit log chain is broken"):
        store.verify_audit_chain()


def test_failed_transaction_leaves_nothing(store) -> None:
    with pytest.raises(RuntimeError), store.session() as s:
        store.upsert_records(s, [_dropout()])
        raise RuntimeError("crash before commit")
    with store.session() as s:
        assert s.scalar(select(text("count(*)")).select_from(RecordRow)) == 0


def test_a_youth_inserted_meanwhile_by_another_task_is_no_error(store) -> None:
    """Two sources (parallel tasks, or workers) meeting the same new youth at once."""
    from datetime import datetime as _dt

    from stafet.store.db import _insert_many

    row = ("p" * 32, b"x", date(2008, 3, 12), _dt(2026, 11, 22))
    cols = ("pseudonym", "cpr_enc", "birth_date", "created_at")
    with store.session() as s:
        _insert_many(s, Youth.__table__, cols, [row], ignore_conflict_on="pseudonym")
    with store.session() as s:
        _insert_many(s, Youth.__table__, cols, [row], ignore_conflict_on="pseudonym")
        assert s.scalar(select(text("count(*)")).select_from(Youth)) == 1


def test_bulk_payload_and_json_are_the_records_own() -> None:
    """The store's fast payload and canonical JSON give what Record.payload and json.dumps give."""
    import json

    from ingest_fixtures import ALL_SAMPLES, NOW, SAMPLES

    from mappings import source_for
    from stafet.store.db import _payload, canonical_json, prepare

    seen = set()
    for name in ALL_SAMPLES:
        src = source_for(name)
        for row in src.reader(SAMPLES / name):
            rec = src.map_row(row.fields, Provenance(src.name, name, row.number, NOW))
            seen.add(type(rec).__name__)
            assert _payload(rec) == rec.payload()
            plain = json.dumps(rec.payload(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            assert canonical_json(rec.payload()).decode() == plain
            assert prepare(rec).payload == plain
    assert len(seen) >= 7


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15)
    .filter(lambda f: f == 0 or abs(f) >= 1e-4)
    | st.text(st.characters(exclude_categories=("Cs",))),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(max_size=12), _JSON_VALUES, max_size=8))
def test_canonical_json_is_what_json_dumps_writes(payload: dict) -> None:
    """Record digests are sha256 of the canonical text: orjson must write exactly what json.dumps
    (sorted keys, no spaces, non-ASCII as itself) writes — control characters, quotes, astral
    characters, nested lists and objects, integers to 64 bits and floats as payloads hold them."""
    import json

    from stafet.store.db import canonical_json

    expected = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_json(payload) == expected.encode()


def test_canonical_json_falls_back_to_json_for_what_orjson_refuses() -> None:
    import json

    from stafet.store.db import canonical_json

    big = {"n": 2**70, "a": "ø"}
    assert canonical_json(big) == json.dumps(big, sort_keys=True, separators=(",", ":"),
                                             ensure_ascii=False).encode()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migrations_keep_records_and_match_the_tables(backend: str, request, tmp_path) -> None:
    """A store made at revision 0001 with records in it upgrades to head: the source records stay,
    their key is unique by (youth, kind, natural key), a record that came in a package moves to
    ``imported_records`` under its recipient and package (0003), and the migrated schema is what
    schema.py declares."""
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.config import Config
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine, inspect
    from sqlalchemy.exc import IntegrityError

    from stafet.store.db import _MIGRATIONS
    from stafet.store.schema import Base

    url = f"sqlite:///{tmp_path / 'o.db'}"
    if backend == "postgres":
        url = request.getfixturevalue("postgres_url")
    eng = create_engine(url)
    Base.metadata.drop_all(eng)
    with eng.begin() as c:
        c.execute(text("DROP TABLE IF EXISTS alembic_version"))
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with eng.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    from sqlalchemy import MetaData, Table

    from stafet.store.db import prepare

    old = Store(url, Vault(bytes(32)), upgrade=False)
    with old.session() as s:  # rows as the code of revision 0001 wrote them (via_package and all)
        recs = [_dropout(), replace(_dropout(), cpr=parse_cpr("030409-4871")),
                replace(_dropout("07"), cpr=parse_cpr("110907-4002"))]
        pseud = old.ensure_youths(s, [r.cpr for r in recs])
        _as_before_0004(s, old.vault, pseud)
        tables = MetaData()
        records, packages = (Table(n, tables, autoload_with=s.connection())
                             for n in ("records", "imported_packages"))
        now = datetime(2026, 11, 21, 3, 0)
        for r, via in zip(recs, ["", "", "PKG-0123456789abcdef01234567"], strict=True):
            p = prepare(r)
            s.execute(records.insert().values(
                kind=p.kind, youth=pseud[p.cpr_digits], natural_key=p.natural_key,
                payload=json.loads(p.payload),
                digest=p.digest, source="package:uu-skive" if via else "easy-a", source_file=via or p.file,
                source_row=1 if via else p.row, received_at=now, updated_at=now, via_package=via,
                withdrawn=False))
        s.execute(packages.insert().values(package_id="PKG-0123456789abcdef01234567", sender="uu-skive",
                                           recipient="uu-viborg", digest="0" * 64, disposition="imported",
                                           imported_at=now))
    assert any(ix["name"] == "ix_records_youth" for ix in inspect(eng).get_indexes("records"))

    store = Store(url, Vault(bytes(32)))          # opening upgrades to head
    with store.session() as s:
        assert s.scalar(select(text("count(*)")).select_from(RecordRow)) == 2
        assert [st for st, _ in store.upsert_records(s, [_dropout()])] == ["duplicate"]
        from stafet.store import imported, inbox
        from stafet.store.schema import ImportedRecordRow

        moved = list(s.scalars(select(ImportedRecordRow)))
        assert [(m.recipient, m.package_id, m.sender, m.kind, m.payload["reason_code"], m.withdrawn)
                for m in moved] == [("uu-viborg", "PKG-0123456789abcdef01234567", "uu-skive", "dropout", "07",
                                     False)]
        assert imported.of_youth(s, pseud["1109074002"]) == moved
        assert inbox.imported(s, "PKG-0123456789abcdef01234567").consent_ref is None  # unknown before 0003
        assert {d: store.cpr_of(s, p).digits for d, p in pseud.items()} == {d: d for d in pseud}  # 0004
    insp = inspect(store.engine)
    assert [u["column_names"] for u in insp.get_unique_constraints("records")] == [
        ["youth", "kind", "natural_key"]]
    assert not any(ix["name"] == "ix_records_youth" for ix in insp.get_indexes("records"))
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    with store.session() as s, pytest.raises(IntegrityError):
        youth = s.scalar(select(RecordRow.youth).limit(1))
        s.execute(text("INSERT INTO records (kind, youth, natural_key, payload, digest, source, source_file, "
                       "source_row, received_at, updated_at, withdrawn) SELECT kind, youth, "
                       "natural_key, payload, digest, source, source_file, source_row, received_at, "
                       "updated_at, withdrawn FROM records WHERE youth = :y"), {"y": youth})
    store.engine.dispose()
    eng.dispose()


def test_revision_0003_downgrades_and_upgrades_again(tmp_path) -> None:
    """0003 moves received records out of ``records`` and back (where no source record has their key)."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import inspect

    from stafet.store.db import _MIGRATIONS

    store = Store(f"sqlite:///{tmp_path / 'd.db'}", Vault(bytes(32)))
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    for target in ("0002", "head"):
        with store.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, target) if target == "0002" else command.upgrade(cfg, target)
        cols = {c["name"] for c in inspect(store.engine).get_columns("records")}
        assert ("via_package" in cols) is (target == "0002")
        assert ("imported_records" in inspect(store.engine).get_table_names()) is (target == "head")
    store.engine.dispose()


def _as_before_0004(s, vault: Vault, pseud: dict[str, str]) -> None:
    """Rewrite youths' CPRs as stores before revision 0004 held them (associated data b"cpr")."""
    from stafet.core.vault import LEGACY_CPR_CONTEXT

    for digits, p in pseud.items():
        s.execute(text("UPDATE youths SET cpr_enc = :c WHERE pseudonym = :p"),
                  {"c": vault.encrypt(digits.encode(), LEGACY_CPR_CONTEXT), "p": p})


def _at_revision(url: str, revision: str):
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    from stafet.store.db import _MIGRATIONS
    from stafet.store.schema import Base

    eng = create_engine(url)
    Base.metadata.drop_all(eng)
    with eng.begin() as c:
        c.execute(text("DROP TABLE IF EXISTS alembic_version"))
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with eng.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    return eng, cfg


def _url(backend: str, request, tmp_path) -> str:
    if backend == "postgres":
        return request.getfixturevalue("postgres_url")
    return f"sqlite:///{tmp_path / 'm.db'}"


YOUTHS = ("1203084127", "0304094871", "1109074002")


@pytest.mark.parametrize("start", ["0001", "0002", "0003"])
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_revision_0004_binds_every_stored_cpr_to_its_pseudonym(backend: str, start: str, request,
                                                               tmp_path) -> None:
    """Issue 16 (low): a store of an earlier revision, its CPRs under the constant associated
    data, upgrades to head with each CPR re-encrypted for its own row; and back down."""
    from alembic import command

    from stafet.core.vault import LEGACY_CPR_CONTEXT

    url = _url(backend, request, tmp_path)
    eng, cfg = _at_revision(url, start)
    vault = Vault(bytes(range(32)))
    old = Store(url, vault, upgrade=False)
    with old.session() as s:
        pseud = old.ensure_youths(s, [parse_cpr(d) for d in YOUTHS])
        _as_before_0004(s, vault, pseud)
        before = dict(s.execute(text("SELECT pseudonym, cpr_enc FROM youths")).tuples().all())
    old.engine.dispose()
    store = Store(url, vault)                                   # opening upgrades to head
    with store.session() as s:
        after = dict(s.execute(text("SELECT pseudonym, cpr_enc FROM youths")).tuples().all())
        assert {d: store.cpr_of(s, p).digits for d, p in pseud.items()} == {d: d for d in YOUTHS}
    assert set(after) == set(before) and all(bytes(after[p]) != bytes(before[p]) for p in after)
    for digits, p in pseud.items():
        with pytest.raises(DataError):
            vault.decrypt(bytes(after[p]), LEGACY_CPR_CONTEXT)
        assert vault.decrypt_cpr(bytes(after[p]), p) == digits
    with store.engine.begin() as conn:                           # down again: the old form
        cfg.attributes["connection"], cfg.attributes["vault"] = conn, vault
        command.downgrade(cfg, "0003")
    with store.session() as s:
        for p, blob in s.execute(text("SELECT pseudonym, cpr_enc FROM youths")).tuples():
            assert vault.pseudonym(vault.decrypt(bytes(blob), LEGACY_CPR_CONTEXT).decode()) == p
    store.engine.dispose()
    eng.dispose()


def test_revision_0004_stops_on_a_ciphertext_moved_between_rows(tmp_path) -> None:
    """A legacy ciphertext that already sits in another youth's row is not laundered into a
    bound one: the upgrade refuses, names the row (never the CPR) and changes nothing."""
    from stafet.core.errors import ConfigError
    from stafet.core.vault import LEGACY_CPR_CONTEXT

    url = f"sqlite:///{tmp_path / 'x.db'}"
    eng, _ = _at_revision(url, "0003")
    vault = Vault(bytes(range(32)))
    old = Store(url, vault, upgrade=False)
    with old.session() as s:
        pseud = old.ensure_youths(s, [parse_cpr(d) for d in YOUTHS[:2]])
        _as_before_0004(s, vault, pseud)
        b = pseud[YOUTHS[1]]
        s.execute(text("UPDATE youths SET cpr_enc = :c WHERE pseudonym = :p"),
                  {"c": vault.encrypt(YOUTHS[0].encode(), LEGACY_CPR_CONTEXT), "p": b})
    old.engine.dispose()
    with pytest.raises(ConfigError) as e:
        Store(url, vault)
    assert b in str(e.value) and "4127" not in str(e.value) and "4871" not in str(e.value)
    with eng.connect() as c:
        assert c.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0003"
    with pytest.raises(ConfigError, match="does not decrypt with this network secret"):
        Store(url, Vault(bytes(32)))
    eng.dispose()


def test_a_cpr_ciphertext_moved_to_another_youths_row_does_not_decrypt(store) -> None:
    with store.session() as s:
        pseud = store.ensure_youths(s, [parse_cpr(d) for d in YOUTHS[:2]])
    a, b = (pseud[d] for d in YOUTHS[:2])
    with store.session() as s:
        s.get(Youth, b).cpr_enc = s.get(Youth, a).cpr_enc
    with store.session() as s:
        assert store.cpr_of(s, a).digits == YOUTHS[0]
        with pytest.raises(DataError) as e:
            store.cpr_of(s, b)
        assert e.value.rule == "vault" and "4127" not in str(e.value)
