"""ingest_file / ingest_inbox end to end on SQLite: samples, quarantine, dedupe, rejection."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from ingest_fixtures import (
    EASYA,
    EASYA_HEADER,
    NOW,
    SAMPLES,
    easya_row,
    network,
    open_store,
    write_easya,
)
from sqlalchemy import select

from stafet.config import Network
from stafet.ingest import ingest_file
from stafet.store import Store
from stafet.store.schema import AuditEntry, Quarantine, RecordRow, SourceFile


@pytest.fixture
def net() -> Network:
    return network()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return open_store(tmp_path)


def test_easya_sample_is_ingested(store: Store, net: Network, tmp_path: Path) -> None:
    r = ingest_file(store, net, SAMPLES / EASYA, now=NOW, home=tmp_path)
    assert (r.source, r.rows, r.accepted, r.quarantined, r.rejected) == ("easy-a", 4, 4, 0, False)
    with store.session() as s:
        kinds = sorted(s.scalars(select(RecordRow.kind)))
        assert kinds == ["concern_flag", "dropout", "dropout", "enrolment"]
        f = s.get(SourceFile, r.sha256)
        assert f is not None and f.status == "processed"
    assert (tmp_path / "archive" / f"{r.sha256}.enc").exists()


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
