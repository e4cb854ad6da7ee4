"""The steward's decisions on quarantined rows: release with fixes (re-validated), reject with a reason."""

from __future__ import annotations

from pathlib import Path

from ingest_fixtures import NOW, easya_row, write_easya
from sqlalchemy import select

from stafet.core.config import Network
from stafet.ingest.pipeline import ingest_file
from stafet.ingest.quarantine import reject_quarantined, release_quarantined
from stafet.store import Store
from stafet.store.schema import AuditEntry, Quarantine


def test_quarantine_release_with_fix_and_reject(store: Store, net: Network, tmp_path: Path) -> None:
    path = write_easya(tmp_path / "779008_haendelser_2026112106.csv",
                       [easya_row(reason="42"), easya_row(inst="999999", event="OPTAG", reason="")])
    r = ingest_file(store, net, path, now=NOW, home=tmp_path)
    assert r.quarantined == 2
    with store.session() as s:
        ids = {q.rule: q.id for q in s.scalars(select(Quarantine))}
    still = release_quarantined(store, net, ids["dropout_reason"], fixes={"Afbrudsaarsag": "77"}, now=NOW)
    assert not still.released and still.failures[0].startswith("dropout_reason")
    done = release_quarantined(store, net, ids["dropout_reason"], fixes={"Afbrudsaarsag": "05"}, now=NOW,
                               actor="steward-anne")
    assert done.released and done.status == "new"
    reject_quarantined(store, ids["institution_known"], reason="school not in the network", actor="anne")
    with store.session() as s:
        qs = {q.id: q for q in s.scalars(select(Quarantine))}
        assert qs[ids["dropout_reason"]].status == "released"
        assert qs[ids["institution_known"]].status == "rejected"
        actions = [a.action for a in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert {"quarantine.release_failed", "quarantine.released", "quarantine.rejected"} <= set(actions)
    assert store.verify_audit_chain() == len(actions)
