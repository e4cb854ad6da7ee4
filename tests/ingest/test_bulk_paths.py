"""The bulk paths store exactly what the plain path stores (issue 21, the per-unit costs).

A generated EASY-A export (bench/ingest.py's generator: bad rows of every kind, quoted
fields with ``;`` and line breaks) and a redelivery that corrects and repeats part of it
are ingested into fresh stores; each store's whole content — youths (CPR decrypted),
records in id order, quarantine rows (raw fields decrypted), the audit trail of updates
and the files' counts — is compared between:

* PostgreSQL through ``COPY`` into a staging table and one merge, and the same
  PostgreSQL through executemany (``STAFET_PG_COPY=0``);
* each of those and SQLite.
"""

from __future__ import annotations

import importlib.util
import json
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ingest_fixtures import NOW, SECRET, network
from sqlalchemy import create_engine, select, text

from stafet.core.vault import Vault
from stafet.ingest.pipeline import ingest_file
from stafet.store import Store
from stafet.store.schema import AuditEntry, Quarantine, RecordRow, SourceFile, Youth

ROOT = Path(__file__).resolve().parents[2]
ROWS = 4_000


def _bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_ingest", ROOT / "bench" / "ingest.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The export, and a redelivery: its first 1,500 rows again, every third one corrected."""
    folder = tmp_path_factory.mktemp("exports")
    first = folder / "779008_haendelser_2026112102.csv"
    _bench().generate(first, ROWS, 0.05, seed=21)
    lines = first.read_bytes().split(b"\r\n")
    again = []
    for i, line in enumerate(lines[:1_500]):
        if i and i % 3 == 0 and b";T\xf8mrer;" in line:
            line = line.replace(b";T\xf8mrer;", b";T\xf8mrer (svend);")  # a corrected programme name
        again.append(line)
    second = folder / "779008_haendelser_2026112202.csv"
    second.write_bytes(b"\r\n".join(again) + b"\r\n")
    return [first, second]


def _snapshot(store: Store) -> dict[str, Any]:
    v = store.vault
    with store.session() as s:
        youths = sorted((y.pseudonym, v.decrypt_cpr(y.cpr_enc, y.pseudonym), y.birth_date)
                        for y in s.scalars(select(Youth)))
        records = [(r.kind, r.youth, r.natural_key, json.dumps(r.payload, sort_keys=True), r.digest, r.source,
                    r.source_file, r.source_row, r.origin_institution, r.origin_municipality, r.received_at,
                    r.withdrawn) for r in s.scalars(select(RecordRow).order_by(RecordRow.id))]
        quarantine = [(q.source, q.source_file, q.file_sha256, q.row, q.rule, q.reason, q.masked_cpr,
                       json.loads(v.decrypt(q.raw_enc, b"quarantine")), q.status)
                      for q in s.scalars(select(Quarantine).order_by(Quarantine.id))]
        updates = [(a.subject.split(":")[0], a.details) for a in s.scalars(
            select(AuditEntry).where(AuditEntry.action == "record.updated").order_by(AuditEntry.id))]
        files = sorted((f.name, f.status, {k: f.counts.get(k) for k in (
            "rows", "accepted", "duplicates", "updated", "quarantined", "rules")})
            for f in s.scalars(select(SourceFile)))
    return {"youths": youths, "records": records, "quarantine": quarantine, "updates": updates,
            "files": files}


def _run(url: str, home: Path, exports: list[Path]) -> tuple[list[tuple[Any, ...]], dict[str, Any]]:
    home.mkdir()
    store = Store(url, Vault(SECRET))
    try:
        results = [ingest_file(store, network(), p, now=NOW, home=home) for p in exports]
        counts = [(r.rows, r.accepted, r.duplicates, r.updated, r.quarantined, r.rules) for r in results]
        return counts, _snapshot(store)
    finally:
        store.engine.dispose()


def _empty(url: str) -> None:
    from stafet.store.schema import Base

    eng = create_engine(url)
    Base.metadata.drop_all(eng)
    with eng.begin() as c:
        c.execute(text("DROP TABLE IF EXISTS alembic_version"))
    eng.dispose()


@pytest.fixture
def chunked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 1,500 rows: several chunks per file, each over the COPY threshold."""
    from stafet.ingest import pipeline

    monkeypatch.setattr(pipeline, "CHUNK_ROWS", 1_500)


@pytest.mark.postgres
def test_a_backfill_through_copy_stores_what_executemany_and_sqlite_store(
        postgres_url: str, exports: list[Path], tmp_path: Path, chunked: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from stafet.store import db

    copies: list[tuple[str, int]] = []
    real = db._copy_merge

    def counted(conn: Any, table: Any, columns: Any, rows: Any, ignore: str) -> None:
        copies.append((table.name, len(rows)))
        real(conn, table, columns, rows, ignore)

    monkeypatch.setattr(db, "_copy_merge", counted)
    monkeypatch.setattr(db, "COPY_MIN_ROWS", 100)  # every chunk's inserts, the last one's too
    _empty(postgres_url)
    via_copy = _run(postgres_url, tmp_path / "copy", exports)
    assert {name for name, _ in copies} == {"records", "youths"}
    assert sum(n for name, n in copies if name == "youths") == len(via_copy[1]["youths"])

    monkeypatch.setenv("STAFET_PG_COPY", "0")
    copies.clear()
    _empty(postgres_url)
    via_executemany = _run(postgres_url, tmp_path / "executemany", exports)
    assert copies == []
    on_sqlite = _run(f"sqlite:///{tmp_path / 'lite.db'}", tmp_path / "sqlite", exports)

    counts, snap = via_copy
    first, second = counts
    assert first[0] == ROWS and first[4] > 0 and first[1] + first[2] + first[3] + first[4] == ROWS
    assert second[3] > 0 and second[2] > 0  # the redelivery updates some and repeats the rest
    assert len(snap["updates"]) == second[3]
    assert via_copy == via_executemany
    assert via_copy == on_sqlite


def test_copy_text_escapes_what_copy_would_misread() -> None:
    """Tabs, line breaks and backslashes in a value, NULL, bytes and times in COPY's text format."""
    from datetime import date, datetime

    from stafet.store.db import _copy_text

    assert _copy_text("a\tb\\c\r\nd") == "a\\tb\\\\c\\r\\nd"
    assert _copy_text(None) == "\\N" and _copy_text("\\N") == "\\\\N"
    assert _copy_text(b"\x00\xff") == "\\\\x00ff"
    assert _copy_text(True) == "t" and _copy_text(False) == "f"
    assert _copy_text(datetime(2026, 11, 22, 6, 0, 0, 5)) == "2026-11-22 06:00:00.000005"
    assert _copy_text(date(2026, 1, 2)) == "2026-01-02" and _copy_text(7) == "7"


@pytest.mark.parametrize("chunk", [1_500, 50_000])
def test_columnar_mapping_stores_what_row_by_row_mapping_stores(
        exports: list[Path], tmp_path: Path, chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The chunk mapped column by column (``easy_a.map_columns``, records never built) and row by
    row (``map_row``, ``STAFET_INGEST_COLUMNAR=0``) in the validation worker: the same store."""
    from stafet.ingest import pipeline, worker

    monkeypatch.setattr(pipeline, "CHUNK_ROWS", chunk)
    monkeypatch.delenv("STAFET_INGEST_COLUMNAR", raising=False)
    worker._IDLE.close()  # the next worker starts with this environment
    columnar = _run(f"sqlite:///{tmp_path / 'c.db'}", tmp_path / "columnar", exports)
    monkeypatch.setenv("STAFET_INGEST_COLUMNAR", "0")
    worker._IDLE.close()
    row_by_row = _run(f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "rows", exports)
    worker._IDLE.close()
    assert columnar[0][0][4] > 0 and columnar[0][1][3] > 0
    assert columnar == row_by_row


def _copy_text_row_by_row(rows: list[tuple[Any, ...]]) -> str:
    """COPY's text as the staging path wrote it before it went column by column."""
    from stafet.store.db import _copy_text

    return "".join("\t".join([_copy_text(v) for v in r]) + f"\t{n}\n" for n, r in enumerate(rows))


_CELLS = {
    "text": st.text(alphabet=st.sampled_from("aØ\\\t\r\n|x\x00 é"), max_size=6),
    "none_or_text": st.none() | st.sampled_from(["", "\\N", "a\tb", "Søren"]),
    "flag": st.booleans(),
    "mixed_numbers": st.booleans() | st.integers(-2, 2) | st.sampled_from([0.0, -0.0, 1.5, float("nan")]),
    "floats": st.sampled_from([0.0, -0.0, 1e-05, 2.5, float("inf")]) | st.none(),
    "day": st.dates(min_value=date(1, 1, 1)) | st.none(),
    "naive": st.sampled_from([datetime(2026, 11, 22, 6), datetime(2026, 11, 22, 6, 0, 0, 5),
                              datetime(2026, 11, 22, 6, fold=1)]),
    "aware": st.sampled_from([datetime(2026, 11, 22, 6, tzinfo=UTC),
                              datetime(2026, 11, 22, 7, tzinfo=timezone(timedelta(hours=1))),
                              datetime(2026, 11, 22, 6)]),
    "blob": st.binary(max_size=4) | st.none(),
    "view": st.binary(max_size=3).map(memoryview),
}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(sorted(_CELLS)), min_size=0, max_size=5).flatmap(
    lambda kinds: st.lists(st.tuples(*[_CELLS[k] for k in kinds]), min_size=1, max_size=30)))
def test_copy_text_column_by_column_is_what_row_by_row_wrote(rows: list[tuple[Any, ...]]) -> None:
    """The staging COPY's text, built column by column (each distinct value converted once where
    equal values write the same text), is exactly the text of every value converted row by row."""
    from stafet.store.db import copy_rows_text

    assert copy_rows_text(rows) == _copy_text_row_by_row(rows)


@pytest.mark.postgres
def test_a_bulk_transaction_on_postgresql_sorts_in_memory_and_only_itself(postgres_url: str) -> None:
    """``tune_for_bulk`` gives the ingest's transaction 64 MB for sorts (the COPY merge's ORDER BY
    spilled to disk at the default), and only that transaction: the pooled connection is back
    to the default once it commits."""
    from stafet.store.db import tune_for_bulk

    _empty(postgres_url)
    store = Store(postgres_url, Vault(SECRET))
    try:
        with store.session() as s:
            default = s.connection().exec_driver_sql("SHOW work_mem").scalar()
        assert default != "64MB"
        with store.session() as s:
            tune_for_bulk(s)
            assert s.connection().exec_driver_sql("SHOW work_mem").scalar() == "64MB"
        with store.session() as s:
            assert s.connection().exec_driver_sql("SHOW work_mem").scalar() == default
    finally:
        store.engine.dispose()
