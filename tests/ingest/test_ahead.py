"""Small files checked ahead together store, quarantine, report and reject what one ingest each does."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from ingest_fixtures import GYMNASIUM, NOW, SAMPLES, easya_row, open_store, write_easya
from sqlalchemy import String, select

from stafet.core.config import Network, SourceConfig
from stafet.ingest import gx
from stafet.ingest.docs import page_name
from stafet.ingest.pipeline import ingest_file, ingest_inboxes
from stafet.store import Store
from stafet.store.schema import Quarantine, RecordRow
from transports.folder import FolderInbox

JOBCENTER = (SAMPLES / "jobcenter_791_paalaeg_20261121.csv").read_bytes()


def _drops(root: Path) -> dict[str, dict[str, bytes]]:
    """Per source the files of a night: small EASY-A files with bad rows, two job-centre files, one
    gymnasium file (alone of its kind), an EASY-A file with a broken header (rejected whole)."""
    easy: dict[str, bytes] = {}
    for i in range(5):
        rows = [easya_row(cpr=f"1203{y:02d}-41{y:02d}", event="OPTAG", reason="", text="", absence=f"{i},{y}")
                for y in range(1, 4 + i)]
        rows[0] = easya_row(cpr="311308-4127")                       # no birth date
        if i % 2:
            rows.append("779008;EUD;120308-4127;too;few")              # malformed
            rows.append(easya_row(date="17-11-2030"))                  # in the future
        name = f"779008_haendelser_2026112{i}02.csv"
        easy[name] = write_easya(root / name, rows).read_bytes()
    easy["779008_haendelser_2026112902.csv"] = write_easya(root / "bad.csv", [easya_row()],
                                                          header="Instnr;CprNr").read_bytes()
    jobs = {"jobcenter_791_paalaeg_20261121.csv": JOBCENTER,
            "jobcenter_791_paalaeg_20261122.csv": JOBCENTER.replace(b"UP-2026-0140", b"")}  # no order id
    return {"easy-a": easy, "jobcenter": jobs, "gymnasium": {GYMNASIUM: (SAMPLES / GYMNASIUM).read_bytes()}}


def _raw(store: Store, enc: bytes) -> str:
    return json.dumps(json.loads(store.vault.decrypt(enc, b"quarantine")), sort_keys=True)


def _state(store: Store) -> tuple[list[Any], list[Any]]:
    with store.session() as s:
        records = sorted(s.execute(select(RecordRow.kind, RecordRow.natural_key, RecordRow.digest,
                                          RecordRow.source_row.cast(String))).tuples())
        quarantined = sorted((q.source_file, q.row, q.rule, q.reason, q.masked_cpr,
                              _raw(store, q.raw_enc)) for q in s.scalars(select(Quarantine)))
    return records, quarantined


def _summary(r: Any) -> tuple[Any, ...]:
    return (r.file, r.source, r.rows, r.accepted, r.duplicates, r.updated, r.quarantined, r.rejected,
            r.reason, r.sha256, r.rules)


@pytest.mark.parametrize("in_worker", ["1", "0"])
def test_files_checked_ahead_end_as_files_ingested_one_by_one(in_worker: str, net: Network, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAFET_VALIDATION_WORKER", in_worker)
    drops = _drops(tmp_path)
    # One by one: each file by ingest_file, in the inbox's order.
    alone_home = tmp_path / "alone"
    alone_home.mkdir()
    alone = open_store(alone_home)
    calls = gx.STATS.chunks
    one_by_one = []
    for files in drops.values():
        for name, data in sorted(files.items()):
            path = tmp_path / "one" / name
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(data)
            one_by_one.append(ingest_file(alone, net, path, now=NOW, home=alone_home,
                                          docs_dir=alone_home / "night" / "datadocs"))
    calls_alone = gx.STATS.chunks - calls
    # Together: the three sources' inboxes in one call.
    home = tmp_path / "together"
    home.mkdir()
    store = open_store(home)
    inboxes = []
    for source, files in drops.items():
        folder = tmp_path / "drop" / source
        folder.mkdir(parents=True)
        for name, data in files.items():
            (folder / name).write_bytes(data)
        inboxes.append((FolderInbox(folder), SourceConfig(name=source, location=f"folder:{folder}")))
    calls = gx.STATS.chunks
    outcomes = ingest_inboxes(store, net, inboxes, now=NOW, home=home, docs_dir=home / "night" / "datadocs")
    calls_together = gx.STATS.chunks - calls

    together = [r for o in outcomes if not isinstance(o, Exception) for r in o]
    assert not [o for o in outcomes if isinstance(o, Exception)]
    assert [_summary(r) for r in together] == [_summary(r) for r in one_by_one]
    assert _state(store) == _state(alone)
    assert sum(r.quarantined for r in together) >= 6 and any(r.rejected for r in together)
    assert any(r.rules.get("required") for r in together), "the job-centre file without an order id"
    # Each file's Data Docs page is the same page.
    for r in together:
        if not r.rejected:
            page = page_name(r.file)
            assert (home / "night" / "datadocs" / page).read_text() == \
                (alone_home / "night" / "datadocs" / page).read_text()
    # One GX call per source kind with more than one small file, one for the lone gymnasium file.
    assert calls_alone == 8 and calls_together == 3
    # Every drop folder is empty (processed files discarded, the broken one moved to rejected/).
    for source in drops:
        left = sorted(p.name for p in (tmp_path / "drop" / source).iterdir() if p.is_file())
        assert left == [], left


def test_a_file_that_is_not_what_was_checked_ahead_is_validated_on_its_own(tmp_path: Path) -> None:
    """validator_for answers only the same bytes: another sha256 and the file goes to a worker as usual."""
    from stafet.ingest import ahead

    paths = []
    for i in range(2):
        p = write_easya(tmp_path / f"779008_haendelser_2026112{i}02.csv", [easya_row(absence=f"1{i},0")])
        paths.append(p)
    from mappings import get_source

    src = get_source("easy-a")
    checked = ahead.check_ahead([(p.name, p, src) for p in paths], now=datetime(2026, 11, 22, 6, 0),
                                institutions=["779008"], max_rows=20_000)
    assert set(checked) == set(paths)
    c = checked[paths[0]]
    with ahead.validator_for(c, "0" * 64) as val:
        assert not isinstance(val, ahead._Prechecked)
    with ahead.validator_for(c, c.sha256) as val:
        assert isinstance(val, ahead._Prechecked)


def test_a_batch_that_cannot_be_checked_ahead_leaves_each_file_to_its_own_validation(
        net: Network, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stafet.ingest import worker

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("expectation for rule x could not run")

    monkeypatch.setenv("STAFET_VALIDATION_WORKER", "0")
    monkeypatch.setattr(worker, "check_parts", broken)
    folder = tmp_path / "drop"
    folder.mkdir()
    for i in range(3):
        write_easya(folder / f"779008_haendelser_2026112{i}02.csv", [easya_row(absence=f"1{i},0")])
    store = open_store(tmp_path)
    calls = gx.STATS.chunks
    (results,) = ingest_inboxes(store, net, [(FolderInbox(folder), SourceConfig(name="easy-a",
                                                                                location=f"folder:{folder}"))],
                                now=NOW, home=tmp_path)
    assert not isinstance(results, Exception)
    assert [(r.rows, r.accepted + r.updated + r.duplicates) for r in results] == [(1, 1)] * 3
    assert gx.STATS.chunks - calls == 3   # one call a file, as without checking ahead
