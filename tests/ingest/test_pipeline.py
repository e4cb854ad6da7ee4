"""ingest_file / ingest_inbox end to end on SQLite: samples, quarantine, dedupe, rejection."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from ingest_fixtures import (
    EASYA,
    EASYA_HEADER,
    NOW,
    SAMPLES,
    easya_row,
    open_store,
    write_easya,
)
from sqlalchemy import String, select

from stafet.core.config import Network
from stafet.ingest.pipeline import ingest_file
from stafet.store import Store
from stafet.store.schema import AuditEntry, Quarantine, RecordRow, SourceFile


def test_easya_sample_is_ingested(store: Store, net: Network, tmp_path: Path) -> None:
    r = ingest_file(store, net, SAMPLES / EASYA, now=NOW, home=tmp_path)
    assert (r.source, r.rows, r.accepted, r.quarantined, r.rejected) == ("easy-a", 4, 4, 0, False)
    with store.session() as s:
        kinds = sorted(s.scalars(select(RecordRow.kind)))
        assert kinds == ["concern_flag", "dropout", "dropout", "enrolment"]
        f = s.get(SourceFile, r.sha256)
        assert f is not None and f.status == "processed"
    assert (tmp_path / "archive" / f"{r.sha256}.enc").exists()


@pytest.mark.parametrize("worker", ["1", "0"])
def test_the_senders_named_by_the_file_name_land_in_each_records_provenance(
        store: Store, net: Network, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, worker: str) -> None:
    monkeypatch.setenv("STAFET_VALIDATION_WORKER", worker)   # mapped in the worker, or in-process
    for name in (EASYA, "familie_791_overgange_20261121.csv"):
        ingest_file(store, net, SAMPLES / name, now=NOW, home=tmp_path)
    with store.session() as s:
        origins = {(r.source, r.origin_institution, r.origin_municipality)
                   for r in s.scalars(select(RecordRow))}
    assert origins == {("easy-a", EASYA[:6], ""), ("familie", "", "791")}


def test_same_file_twice_is_a_noop(store: Store, net: Network, tmp_path: Path) -> None:
    first = ingest_file(store, net, SAMPLES / EASYA, now=NOW, home=tmp_path)
    copy = tmp_path / "again" / EASYA
    copy.parent.mkdir()
    shutil.copy(SAMPLES / EASYA, copy)
    second = ingest_file(store, net, copy, now=NOW, home=tmp_path)
    assert second.duplicate_file and second.rows == 0 and not second.rejected
    assert "duplicate file" in second.reason
    assert first.sha256 == second.sha256
    with store.session() as s:
        assert len(list(s.scalars(select(RecordRow.id)))) == 4


def test_bad_rows_go_to_quarantine(store: Store, net: Network, tmp_path: Path) -> None:
    path = write_easya(tmp_path / "779008_haendelser_2026112103.csv", [
        easya_row(),
        easya_row(cpr="120399-4127", event="OPTAG", reason=""),   # 1999: 27 years old, fine
        easya_row(cpr="311308-4127"),                              # month 13: no birth date
        easya_row(reason="42"),                                    # reason code not in list
        easya_row(date="17-11-2030"),                              # in the future
        easya_row(inst="999999"),                                  # unknown institution
        easya_row(start="18-11-2026"),                             # start after event
        easya_row(cpr="120320-4127"),                              # 1920: 106 years old
    ])
    r = ingest_file(store, net, path, now=NOW, home=tmp_path)
    assert (r.rows, r.accepted, r.quarantined) == (8, 2, 6)
    assert r.rules == {"cpr_birth_date": 1, "dropout_reason": 1, "date_not_future": 1,
                       "institution_known": 1, "start_before_event": 1, "age_range": 1}
    with store.session() as s:
        q = {row.row: row for row in s.scalars(select(Quarantine))}
        assert sorted(q) == [4, 5, 6, 7, 8, 9]
        assert q[4].masked_cpr == "311308-xxxx"
        assert b"311308" not in q[4].raw_enc
        raw = json.loads(store.vault.decrypt(q[4].raw_enc, b"quarantine"))
        assert raw["fields"]["CprNr"] == "311308-4127"


def test_redelivery_with_corrected_values_updates_and_audits(store: Store, net: Network,
                                                              tmp_path: Path) -> None:
    a = write_easya(tmp_path / "779008_haendelser_2026112102.csv", [easya_row(text="Omvalg")])
    b = write_easya(tmp_path / "779008_haendelser_2026112202.csv",
                    [easya_row(text="Omvalg til smed"), easya_row(event="OPTAG", reason="", text="")])
    c = write_easya(tmp_path / "779008_haendelser_2026112302.csv",
                    [easya_row(text="Omvalg til smed"), easya_row(event="OPTAG", reason="", text="")],
                    trailing=";")
    assert ingest_file(store, net, a, now=NOW, home=tmp_path).accepted == 1
    rb = ingest_file(store, net, b, now=NOW, home=tmp_path)
    assert (rb.accepted, rb.updated, rb.duplicates) == (1, 1, 0)
    rc = ingest_file(store, net, c, now=NOW, home=tmp_path)
    assert (rc.accepted, rc.updated, rc.duplicates) == (0, 0, 2)
    with store.session() as s:
        updates = list(s.scalars(select(AuditEntry).where(AuditEntry.action == "record.updated")))
        assert len(updates) == 1 and updates[0].details["fields"] == ["reason_text"]


def test_missing_column_rejects_the_whole_file(store: Store, net: Network, tmp_path: Path) -> None:
    header = EASYA_HEADER.replace(";Fravaersprocent", "")
    path = write_easya(tmp_path / "779008_haendelser_2026112104.csv", [easya_row()], header=header)
    r = ingest_file(store, net, path, now=NOW, home=tmp_path)
    assert r.rejected and "missing columns: Fravaersprocent" in r.reason
    with store.session() as s:
        assert s.get(SourceFile, r.sha256).status == "rejected"  # type: ignore[union-attr]
        assert list(s.scalars(select(RecordRow.id))) == []
    assert (tmp_path / "archive" / f"{r.sha256}.enc").exists()


def test_wrong_encoding_rejects_with_offset(store: Store, net: Network, tmp_path: Path) -> None:
    path = tmp_path / "779008_haendelser_2026112105.csv"
    write_easya(path, [easya_row()])
    data = path.read_bytes()
    path.write_bytes(data + b"779008;EUD;\x81\r\n")
    r = ingest_file(store, net, path, now=NOW, home=tmp_path)
    assert r.rejected and f"byte offset {len(data) + 11}" in r.reason


def test_all_samples_ingest_and_no_clear_cpr_at_rest(store: Store, net: Network, tmp_path: Path) -> None:
    from ingest_fixtures import ALL_SAMPLES

    from stafet.store.schema import ConsentRow

    results = [ingest_file(store, net, SAMPLES / name, now=NOW, home=tmp_path) for name in ALL_SAMPLES]
    assert [(r.rows, r.accepted, r.quarantined, r.rejected) for r in results] == [
        (4, 4, 0, False), (2, 2, 0, False), (2, 2, 0, False), (2, 2, 0, False), (2, 2, 0, False),
        (3, 3, 0, False)]
    with store.session() as s:
        assert sorted(s.scalars(select(ConsentRow.ref))) == ["S-2026-031", "S-2026-044", "S-2026-050"]
    cprs = [b"120308", b"1203084127", b"0711094563", b"030409", b"1405024913", b"050609"]
    for f in tmp_path.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert not any(c in data for c in cprs), f"clear CPR in {f.name}"


def test_hostile_xml_file_is_rejected_and_kept(store: Store, net: Network, tmp_path: Path) -> None:
    p = tmp_path / "751001_elevhaendelser_202611210300.xml"
    p.write_bytes(b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
                  b'<Elevhaendelser xmlns="urn:stafet:formats:skoleadm:1">&e;</Elevhaendelser>')
    r = ingest_file(store, net, p, now=NOW, home=tmp_path)
    assert r.rejected and "DOCTYPE" in r.reason
    assert (tmp_path / "archive" / f"{r.sha256}.enc").exists()


def test_unknown_file_name_is_rejected(store: Store, net: Network, tmp_path: Path) -> None:
    p = tmp_path / "whatever.csv"
    p.write_text("a;b\r\n")
    r = ingest_file(store, net, p, now=NOW, home=tmp_path)
    assert r.rejected and r.source == "" and "file-name pattern" in r.reason


def test_ingest_inbox_over_sftp(sshd, store: Store, net: Network, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from stafet.core.config import SourceConfig
    from stafet.ingest.pipeline import ingest_inbox
    from transports import open_inbox

    folder = sshd.new_folder("easy-a")
    shutil.copy(SAMPLES / EASYA, folder / EASYA)
    write_easya(folder / "779008_haendelser_2026112107.csv", [easya_row()], header="Instnr;CprNr")
    (folder / "notes.txt").write_text("not an export")
    cfg = SourceConfig(name="easy-a", location=sshd.url(folder), host_key=sshd.host_key,
                       identity=str(sshd.client_key))
    with open_inbox(cfg.location, host_key=cfg.host_key, identity=cfg.identity) as inbox:
        results = ingest_inbox(store, net, inbox, cfg, now=NOW, home=tmp_path)
    by_name = {r.file: r for r in results}
    assert by_name[EASYA].accepted == 4 and not by_name[EASYA].rejected
    assert by_name["779008_haendelser_2026112107.csv"].rejected
    # processed: removed at once (processed_retention_days 0), the encrypted archive holds it
    assert not (folder / EASYA).exists() and not (folder / "processed" / EASYA).exists()
    assert (tmp_path / "archive" / f"{by_name[EASYA].sha256}.enc").exists()
    assert (folder / "rejected" / "779008_haendelser_2026112107.csv").exists()
    assert (folder / "notes.txt").exists()


def test_cli_ingest_json_and_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from stafet.cli.main import app

    monkeypatch.setenv("STAFET_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("STAFET_SECRET", "ab" * 32)
    from ingest_fixtures import NETWORK_YAML

    good = write_easya(tmp_path / "779008_haendelser_2026112109.csv", [easya_row(), easya_row(reason="42")])
    bad = write_easya(tmp_path / "779008_haendelser_2026112110.csv", [easya_row()], header="Instnr;CprNr")
    runner = CliRunner()
    ok = runner.invoke(app, ["ingest", "--json", "-n", str(NETWORK_YAML), str(good)])
    assert ok.exit_code == 0, ok.output
    (summary,) = json.loads(ok.stdout)
    assert set(summary) == {"file", "source", "rows", "accepted", "duplicates", "updated", "quarantined",
                            "rejected", "reason"}
    assert (summary["rows"], summary["accepted"], summary["quarantined"]) == (2, 1, 1)
    # The run's report links the run's Great Expectations Data Docs, relative to the report.
    (report,) = (tmp_path / "home" / "reports").glob("ingest-*.html")
    href = re.search(r'href="([^"]+)"', report.read_text())
    assert href is not None and href.group(1) == f"{report.stem}/datadocs/index.html"
    assert (report.parent / href.group(1)).is_file()
    rejected = runner.invoke(app, ["ingest", "--json", "-n", str(NETWORK_YAML), str(bad)])
    assert rejected.exit_code == 1 and json.loads(rejected.stdout)[0]["rejected"] is True
    listed = runner.invoke(app, ["quarantine", "list", "--json", "-n", str(NETWORK_YAML)])
    (q,) = json.loads(listed.stdout)
    assert q["masked_cpr"] == "120308-xxxx" and q["rule"] == "dropout_reason"
    shown = runner.invoke(app, ["quarantine", "show", str(q["id"]), "-n", str(NETWORK_YAML)])
    assert "120308-xxxx" in shown.stdout and "4127" not in shown.stdout
    rel = runner.invoke(app, ["quarantine", "release", str(q["id"]), "--fix", "Afbrudsaarsag=05",
                              "-n", str(NETWORK_YAML)])
    assert rel.exit_code == 0 and "released" in rel.stdout


def _state(store: Store) -> tuple[list[tuple[str, str, str, str]], list[tuple[int, str, str]], list[str]]:
    with store.session() as s:
        records = sorted(s.execute(select(RecordRow.kind, RecordRow.natural_key, RecordRow.digest,
                                          RecordRow.source_row.cast(String))).tuples())
        rows = list(s.scalars(select(Quarantine)))
        fields = [json.loads(store.vault.decrypt(q.raw_enc, b"quarantine"))["fields"] for q in rows]
        quarantined = sorted((q.row, q.rule, f.get("CprNr", "")) for q, f in zip(rows, fields, strict=True))
        audits = [a.details.get("fields", "") for a in s.scalars(select(AuditEntry).where(
            AuditEntry.action == "record.updated"))]
    return records, quarantined, audits  # type: ignore[return-value]


@pytest.mark.parametrize("worker", ["1", "0"])
def test_chunk_boundaries_change_nothing(worker: str, net: Network, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A file read in chunks of 3 rows (bad rows, a malformed row and a corrected repeat of a key
    on other chunks than their neighbours) stores and quarantines exactly what one chunk does —
    in the validation worker and in this process."""
    from stafet.ingest import pipeline

    monkeypatch.setenv("STAFET_VALIDATION_WORKER", worker)
    rows = [easya_row(cpr=f"1203{y:02d}-41{y:02d}", event="OPTAG", reason="", text="") for y in range(1, 9)]
    rows[2] = easya_row(cpr="311308-4127")                               # no birth date
    rows[3] = easya_row(text="Omvalg")                                    # a dropout …
    rows[4] = "779008;EUD;120308-4127;too;few"                            # malformed
    rows[6] = easya_row(absence="118,5")                                  # passes GX, fails the mapping
    rows.append(easya_row(text="Omvalg til smed"))                        # … corrected two chunks on
    rows.append(easya_row(date="17-11-2030"))                             # in the future
    path = write_easya(tmp_path / "in" / EASYA, rows) if (tmp_path / "in").mkdir() is None else None
    assert path is not None
    outcomes = []
    for size in (3, 50_000):
        monkeypatch.setattr(pipeline, "CHUNK_ROWS", size)
        home = tmp_path / f"home{size}"
        home.mkdir()
        store = open_store(home)
        r = ingest_file(store, net, path, now=NOW, home=home)
        counts = (r.rows, r.accepted, r.duplicates, r.updated, r.quarantined, r.rules)
        outcomes.append((counts, _state(store)))
        store.engine.dispose()
    assert outcomes[0] == outcomes[1]
    (counts, (records, quarantined, audits)) = outcomes[0]
    assert counts[:5] == (10, 5, 0, 1, 4)
    assert len(records) == 5
    assert [(row, rule) for row, rule, _ in quarantined] == [
        (4, "cpr_birth_date"), (6, "row_shape"), (8, "percentage_range"), (11, "date_not_future")]
    assert quarantined[0][2] == "311308-4127"
    assert audits == [["reason_text"]]


def test_chunk_size_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from stafet.ingest import pipeline

    monkeypatch.setenv("STAFET_INGEST_CHUNK_ROWS", "50000")
    assert pipeline._chunk_rows() == 50_000
    monkeypatch.setenv("STAFET_INGEST_CHUNK_ROWS", "5")
    assert pipeline._chunk_rows() == 1000
    monkeypatch.setenv("STAFET_INGEST_CHUNK_ROWS", "many")
    assert pipeline._chunk_rows() == 20_000
    monkeypatch.delenv("STAFET_INGEST_CHUNK_ROWS")
    assert pipeline._chunk_rows() == 20_000


def test_a_chunk_is_freed_once_the_caller_lets_go_of_it() -> None:
    """Bulk ingest frees a chunk's rows after sending them to the worker, before storing the
    previous chunk: the chunking generator must not keep them alive."""
    import weakref

    from stafet.ingest.pipeline import _chunks

    class Row:
        pass

    freed = []
    for chunk in _chunks((Row() for _ in range(10)), 4):
        first = weakref.ref(chunk[0])
        del chunk
        freed.append(first() is None)
    assert freed == [True, True, True]
