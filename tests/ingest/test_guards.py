"""What a source file can never put into the store (issue 16, findings 10 and 13).

* A CPR typed into a free-text field (a note), in any of the spellings the review found,
  reaches neither the stored record nor what a package is built from.
* A file in the wrong encoding (a UTF-8 copy of a cp1252 EASY-A export) is refused whole:
  the records stored from the right file stay as they were, never replaced by mojibake.

Synthetic CPRs only.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ingest_fixtures import NOW, easya_row, write_easya
from sqlalchemy import select

from stafet.core.config import Network
from stafet.ingest.pipeline import ingest_file
from stafet.store import Store
from stafet.store.schema import AuditEntry, RecordRow

DEMO_EASYA = (Path(__file__).resolve().parents[2] / "stafet" / "demo" / "data"
              / "779008_haendelser_2026112102.csv")


def _payloads(store: Store) -> list[dict]:
    with store.session() as s:
        return [r.payload for r in s.scalars(select(RecordRow).order_by(RecordRow.id))]


def test_a_cpr_typed_into_a_note_is_redacted_before_it_is_stored(store: Store, net: Network,
                                                                 tmp_path: Path) -> None:
    notes = ["bror CPR120308-4127 ringede", "søster 230507\u20135218", "far 120308 - 4127",
             "ref 1203084127a", "mor 230507\u00a0\u2013\u00a05218 tlf"]
    rows = [easya_row(note=n, programme=f"16{i:02d}") for i, n in enumerate(notes)]
    path = write_easya(tmp_path / "779008_haendelser_2026112103.csv", rows)   # cp1252, as EASY-A writes
    r = ingest_file(store, net, path, now=NOW, home=tmp_path)
    assert (r.accepted, r.rejected) == (len(notes), False)
    stored = _payloads(store)
    assert sorted(p["note"] for p in stored) == sorted([
        "bror CPR******-**** ringede", "søster ******-****", "far ******-****", "ref ******-****a",
        "mor ******-**** tlf"])
    text = json.dumps(stored, ensure_ascii=False)
    assert "4127" not in text and "5218" not in text      # nothing a package is built from holds them


def test_a_utf8_copy_of_a_cp1252_export_is_refused_and_changes_nothing(store: Store, net: Network,
                                                                      tmp_path: Path) -> None:
    good = ingest_file(store, net, DEMO_EASYA, now=NOW, home=tmp_path)
    assert not good.rejected and good.accepted > 0
    before = _payloads(store)
    assert any("Søren" in json.dumps(p, ensure_ascii=False) for p in before)
    copy = tmp_path / "utf8" / "779008_haendelser_2026112103.csv"
    copy.parent.mkdir()
    copy.write_bytes(DEMO_EASYA.read_bytes().decode("cp1252").encode("utf-8"))
    bad = ingest_file(store, net, copy, now=NOW, home=tmp_path)
    assert bad.rejected and bad.accepted == 0
    assert "encoding" in bad.reason and "UTF-8" in bad.reason and copy.name in bad.reason
    assert _payloads(store) == before
    assert "Ã" not in json.dumps(_payloads(store), ensure_ascii=False)
    with store.session() as s:
        assert not list(s.scalars(select(AuditEntry).where(AuditEntry.action == "record.updated")))


def test_a_utf8_copy_with_a_bom_is_refused_too(store: Store, net: Network, tmp_path: Path) -> None:
    copy = tmp_path / "779008_haendelser_2026112104.csv"
    shutil.copy(DEMO_EASYA, copy)
    copy.write_bytes(b"\xef\xbb\xbf" + DEMO_EASYA.read_bytes().decode("cp1252").encode("utf-8"))
    bad = ingest_file(store, net, copy, now=NOW, home=tmp_path)
    assert bad.rejected and "encoding" in bad.reason and "BOM" in bad.reason
    assert _payloads(store) == []


def test_text_garbled_before_export_goes_to_quarantine_and_never_updates(store: Store, net: Network,
                                                                        tmp_path: Path) -> None:
    """A file in the right encoding whose text was already garbled (UTF-8 read as cp1252 upstream,
    so ``Kjær`` arrives as ``KjÃ¦r``): each such row is quarantined (rule ``encoding``) and the
    clean records stay as they were."""
    from ingest_fixtures import SAMPLES

    from stafet.store.schema import Quarantine

    sample = SAMPLES / "cpr_791_unge_20261125.csv"
    assert not ingest_file(store, net, sample, now=NOW, home=tmp_path).rejected
    before = _payloads(store)
    header, *rows = sample.read_text("utf-8").splitlines(keepends=True)
    garbled = [r.encode("utf-8").decode("cp1252", errors="strict").encode("utf-8").decode("utf-8")
               for r in rows]
    assert any("Ã" in r for r in garbled)
    copy = tmp_path / "cpr_791_unge_20261126.csv"
    copy.write_text(header + "".join(garbled), encoding="utf-8")
    r = ingest_file(store, net, copy, now=NOW, home=tmp_path)
    assert not r.rejected and r.updated == 0
    assert r.quarantined == sum(not row.isascii() for row in rows) and r.rules == {"encoding": r.quarantined}
    assert _payloads(store) == before
    with store.session() as s:
        assert all(q.rule == "encoding" for q in s.scalars(select(Quarantine)))
