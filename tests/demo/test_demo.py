"""`stafet demo` end to end, twice, as a newcomer runs it: the state after the second run
equals the state after the first (no duplicate packages), every sendable handover is
acknowledged, and no CPR of the demo data is in a file name, the database or Prefect's."""

import os
import re
import sqlite3
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _demo_cprs() -> set[str]:
    found = set()
    for f in resources.files("stafet.demo.data").iterdir():
        if f.name.endswith((".csv", ".xml")):
            text = f.read_bytes().decode("utf-8", errors="replace").replace("\ufeff", "")
            found |= {a + b for a, b in re.findall(r"(?<!\d)(\d{6})-?(\d{4})(?!\d)", text)}
    return {c for c in found if int(c[2:4]) <= 12}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("newcomer")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STAFET_", "PREFECT_"))}
    env.update(STAFET_DEMO_KEY_BITS="2048", PYTHONUNBUFFERED="1")
    runs, states = [], []
    for _ in range(2):
        p = subprocess.run([sys.executable, "-m", "stafet", "demo"], cwd=cwd, env=env,
                           capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
        runs.append(p)
        states.append(_state(cwd))
    return cwd, runs, states


def _state(cwd: Path) -> dict:
    with _db(cwd) as db:
        tables = {t: db.execute(f"select count(*) from {t}").fetchone()[0]
                  for t in ("handovers", "records", "youths", "source_files", "receipts",
                            "imported_packages")}
        statuses = sorted(db.execute("select id, status from handovers").fetchall())
        notices = sorted(db.execute("select package_id, step, rule from notices where status = 'sent'").fetchall())  # noqa: E501
    return {"tables": tables, "handovers": statuses, "notices": notices,
            "outbox": sorted(p.name for p in (cwd / ".stafet" / "outbox").glob("*.eml")),
            "delivered": sorted(p.name for p in (cwd / ".stafet-demo" / "inbox").rglob("PKG-*.eml"))}


def _db(cwd: Path):
    return sqlite3.connect(cwd / ".stafet" / "stafet.db")


def test_every_sendable_handover_is_acknowledged_and_blocked_ones_held(demo_run) -> None:
    cwd, _, _ = demo_run
    with _db(cwd) as db:
        rows = db.execute("select rule, recipient, status from handovers").fetchall()
    statuses = {s for _, _, s in rows}
    assert statuses == {"acknowledged", "held"}
    sent = sorted((rule, rcpt) for rule, rcpt, s in rows if s == "acknowledged")
    assert ("dropout_to_uu", "uu-skive") in sent         # a Skive youth at a Viborg-area school
    assert ("order_to_institution", "779008") in sent
    assert ("transition_to_unit", "jobcenter-viborg") in sent
    assert sum(1 for r, _ in sent if r == "dropout_to_uu") == 5
    # the youth with an active education order: the job centre gets the dropout too (issue 17)
    assert ("dropout_to_job_centre", "jobcenter-viborg") in sent
    assert [(r, c) for r, c, s in rows if s == "held"] == [("transition_to_unit", "social-viborg")]


def test_one_partial_handover_says_what_was_left_out(demo_run) -> None:
    cwd, _, _ = demo_run
    with _db(cwd) as db:
        details = [d for (d,) in db.execute(
            "select details from audit_log where action = 'handover.pending'").fetchall()]
    assert sum('"omitted": [["stoettebehov"' in d for d in details) == 1


def test_second_run_adds_nothing(demo_run) -> None:
    _, runs, (first, second) = demo_run
    assert first == second
    assert len(first["outbox"]) == sum(1 for _, s in first["handovers"] if s == "acknowledged")
    # every package and receipt crossed a real folder endpoint once, and each duty notice
    assert len(first["delivered"]) == 2 * len(first["outbox"]) + len(first["notices"])
    assert {f"{pid}.eml" for pid, _, _ in first["notices"]} <= set(first["delivered"])
    assert all(step == "notice" for _, step, _ in first["notices"])  # the second run told nobody again
    assert "handovers acknowledged" in runs[1].stdout


def test_no_cpr_in_file_names_database_or_prefect(demo_run) -> None:
    cwd, _, _ = demo_run
    cprs = _demo_cprs()
    assert len(cprs) >= 10
    forms = [f(c) for c in cprs for f in (lambda c: c, lambda c: f"{c[:6]}-{c[6:]}",
                                           lambda c: f"{c[:6]} {c[6:]}")]
    names = "\n".join(str(p) for p in (cwd / ".stafet").rglob("*"))
    assert not [f for f in forms if f in names]
    blobs = b"".join(p.read_bytes() for p in (cwd / ".stafet").rglob("*.db*") if p.is_file())
    assert b"779008" in blobs  # the databases are readable
    assert not [f for f in forms if f.encode() in blobs]


def test_the_nightly_report_shows_held_partial_and_sent(demo_run) -> None:
    cwd, _, _ = demo_run
    (page,) = (cwd / ".stafet" / "reports").glob("nightly-*.html")
    text = page.read_text()
    assert "ingen samtykke" in text                        # held: the social services transition
    assert "samtykke dækker ikke støttebehov" in text      # partial: the plan without support needs
    assert "acknowledged" in text                           # full handovers, per rule


def test_prefect_artifacts_per_source_rule_and_recipient_hold_counts_only(demo_run) -> None:
    import json

    cwd, _, _ = demo_run
    with sqlite3.connect(cwd / ".stafet" / "prefect" / "prefect.db") as db:
        rows = db.execute("select key, data from artifact order by created").fetchall()
    keys = {k for k, _ in rows}
    assert {"nightly-counts", "nightly-per-source", "nightly-per-rule", "nightly-per-recipient"} <= keys
    per_rule = json.loads(json.loads([d for k, d in rows if k == "nightly-per-rule"][-1]))
    assert {r["rule"] for r in per_rule} >= {"dropout_to_uu", "order_to_institution", "plan_to_institution"}
    first = json.loads(json.loads(next(d for k, d in rows if k == "nightly-per-source")))
    assert sum(r["rows"] for r in first) == 21 and len(first) == 6   # six source systems, first night
    assert {r["source"]: r["quarantined"] for r in first if r["quarantined"]} == {"easy-a": 3}  # the bad rows
    assert all(set(r) <= {"source", "files", "rows", "accepted", "duplicates", "updated", "quarantined",
                          "rejected_files"} for r in first)


def test_the_bad_rows_wait_in_quarantine_with_their_rules(demo_run) -> None:
    from stafet.demo.network import BAD_ROWS_FILE

    cwd, runs, _ = demo_run
    with _db(cwd) as db:
        rows = db.execute("select source_file, row, rule, status, masked_cpr from quarantine "
                          "order by row").fetchall()
    assert rows == [(BAD_ROWS_FILE, 2, "event_type", "open", "010108-xxxx"),
                    (BAD_ROWS_FILE, 3, "cpr_birth_date", "open", "310209-xxxx"),
                    (BAD_ROWS_FILE, 4, "municipality_format,decimal_format", "open", "050509-xxxx")]
    assert "18 / 3" in runs[0].stdout   # rows accepted / quarantined


def test_each_file_has_the_stewards_report_linked_from_the_nightly_report(demo_run) -> None:
    cwd, _, _ = demo_run
    reports = cwd / ".stafet" / "reports"
    with _db(cwd) as db:
        shas = [sha for (sha,) in db.execute("select sha256 from source_files")]
    assert len(shas) == 9
    pages = {sha: reports / f"file-{sha[:8]}.{sha[8:16]}.html" for sha in shas}
    assert all(p.is_file() for p in pages.values())
    (nightly,) = reports.glob("nightly-*.html")
    assert all(f"href='{p.name}'" in nightly.read_text() for p in pages.values())
    bad = [p.read_text() for p in pages.values() if "779008_haendelser_2026112202.csv" in p.read_text()]
    assert len(bad) == 1 and bad[0].count("<td>åben</td>") == 3 and "010108-xxxx" in bad[0]
    docs = re.search(r'href="(night-[^"]+)"', bad[0])
    assert docs is not None and (reports / docs.group(1)).is_file()  # the file's Data Docs page


def test_the_nights_markdown_artifact_links_the_reports(demo_run) -> None:
    cwd, _, _ = demo_run
    with sqlite3.connect(cwd / ".stafet" / "prefect" / "prefect.db") as db:
        (first, *_rest) = [d for (d,) in db.execute(
            "select data from artifact where key = 'nightly-summary' order by created")]
    import json

    md = json.loads(first)
    assert len(re.findall(r"\[file-[0-9a-f]{8}\.[0-9a-f]{8}\]\(file://", md)) == 9
    assert "**3** i karantæne" in md and "## Fejl (0)" in md
    assert not [c for c in _demo_cprs() if c in md or f"{c[:6]}-{c[6:]}" in md]


def test_a_handover_left_unacknowledged_fails_the_demo_naming_it(demo_run, tmp_path) -> None:
    import shutil

    cwd, _, _ = demo_run
    copy = tmp_path / "copy"
    shutil.copytree(cwd, copy, symlinks=True)
    with _db(copy) as db:   # its receipt was lost: sent, never acknowledged
        (pid,) = db.execute("select id from handovers where status = 'acknowledged' "
                            "and recipient = 'uu-skive' limit 1").fetchone()
        db.execute("update handovers set status = 'sent', acknowledged_at = null, "
                   "sent_at = datetime('now') where id = ?", (pid,))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STAFET_", "PREFECT_"))}
    env.update(STAFET_DEMO_KEY_BITS="2048", PYTHONUNBUFFERED="1")
    p = subprocess.run([sys.executable, "-m", "stafet", "demo"], cwd=copy, env=env, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 1, p.stdout[-2000:] + p.stderr[-2000:]
    assert pid in p.stderr and "stafet outbox list" in p.stderr and "Traceback" not in p.stderr


def test_the_demo_shows_each_duty_chain_once(demo_run) -> None:
    """Issue 17: a notice to a named person, the escalation a few working days on, the job
    centre's copy of a dropout under an active order, a concern flag's contact clock."""
    _, runs, _ = demo_run
    out = runs[0].stdout
    assert "Pligterne når frem til en person" in out
    assert "påmindelse sendt" in out and "eskaleres" in out and "koordinator" in out
    assert "jobcentret får afbruddet" in out and "jobcenter-viborg" in out
    assert "bekymringsmærke" in out and "studievejleder" in out
    assert not [c for c in _demo_cprs() if c in out or f"{c[:6]}-{c[6:]}" in out]
