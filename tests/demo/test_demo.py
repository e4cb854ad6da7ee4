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
    env.update(STAFET_DEMO_KEY_BITS="2048", PYTHONUNBUFFERED="1", COLUMNS="200")  # the tables unwrapped
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
        inquiries = sorted(db.execute("select org, direction, status, answer_id from inquiries").fetchall())
    return {"tables": tables, "handovers": statuses, "notices": notices, "inquiries": inquiries,
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
    # issue 18: a grundskole pupil's support needs to UU Viborg, and with the parent's consent to
    # the school applied to; the youth who moved from Viborg to Skive, taken over by UU Skive
    assert ("pupil_support_to_uu", "uu-viborg") in sent
    assert ("pupil_support_to_institution", "779008") in sent
    assert ("move_handover", "uu-skive") in sent
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
    # (and the inquiry and its answer, each with its receipt; a resend overwrote its own file)
    assert len(first["delivered"]) == (2 * len(first["outbox"]) + len(first["notices"])
                                       + 4 * sum(1 for _, d, _, _ in first["inquiries"] if d == "out"))
    assert {f"{pid}.eml" for pid, _, _ in first["notices"]} <= set(first["delivered"])
    # the only escalations are those of the simulated nights' unacknowledged handovers: the
    # second run re-sent nothing and told nobody again
    assert {(step, rule) for _, step, rule in first["notices"] if step != "notice"} == {
        ("coordinator", "handover_ack")}
    assert "ingen overleveringer venter på kvittering" in runs[1].stdout
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
    assert sum(r["rows"] for r in first) == 33 and len(first) == 9   # nine source systems, first night
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
    assert "30 / 3" in runs[0].stdout   # rows accepted / quarantined


def test_each_file_has_the_stewards_report_linked_from_the_nightly_report(demo_run) -> None:
    cwd, _, _ = demo_run
    reports = cwd / ".stafet" / "reports"
    with _db(cwd) as db:
        shas = [sha for (sha,) in db.execute("select sha256 from source_files")]
    assert len(shas) == 12
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
    assert len(re.findall(r"\[file-[0-9a-f]{8}\.[0-9a-f]{8}\]\(file://", md)) == 12
    assert "**3** i karantæne" in md and "## Fejl (0)" in md
    assert not [c for c in _demo_cprs() if c in md or f"{c[:6]}-{c[6:]}" in md]


def _lose_a_receipt(cwd: Path, tmp: Path, *, resends: int) -> tuple[Path, str]:
    """A copy of the demo where one receipt from UU Skive was lost: sent, never acknowledged."""
    import shutil

    copy = tmp / "copy"
    shutil.copytree(cwd, copy, symlinks=True)
    with _db(copy) as db:
        (pid,) = db.execute("select id from handovers where status = 'acknowledged' "
                            "and recipient = 'uu-skive' limit 1").fetchone()
        db.execute("update handovers set status = 'sent', acknowledged_at = null, resends = ?, "
                   "sent_at = datetime('now') where id = ?", (resends, pid))
    return copy, pid


def _rerun(copy: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STAFET_", "PREFECT_"))}
    env.update(STAFET_DEMO_KEY_BITS="2048", PYTHONUNBUFFERED="1", COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "stafet", "demo"], cwd=copy, env=env, capture_output=True,
                          text=True, timeout=600)


def test_a_lost_receipt_is_healed_by_the_resend(demo_run, tmp_path) -> None:
    """Issue 17: the resend (same package id) reaches UU Skive as a duplicate delivery, answered again."""
    cwd, _, _ = demo_run
    copy, pid = _lose_a_receipt(cwd, tmp_path, resends=0)
    resends = "select count(*) from audit_log where action = 'handover.resent' and subject = ?"
    with _db(copy) as db:
        before = db.execute(resends, (f"handover:{pid}",)).fetchone()[0]   # the first run's two
    p = _rerun(copy)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert "gensendt 1, påmindelser 0" in p.stdout  # the simulated nights re-send it (UU Skive's node away)
    with _db(copy) as db:
        assert db.execute("select status, resends from handovers where id = ?", (pid,)).fetchone() == (
            "acknowledged", 2)
        resent = db.execute(resends, (f"handover:{pid}",)).fetchone()[0]
    assert resent - before == 2
    with sqlite3.connect(copy / ".stafet-demo" / "members" / "uu-skive" / "stafet.db") as db:
        seen = [a for (a,) in db.execute("select action from audit_log where subject = ? order by id",
                                         (f"package:{pid}",))]
    assert seen == ["package.imported", "package.duplicate"]  # UU Skive's node: the resends, a duplicate


def test_a_handover_left_unacknowledged_fails_the_demo_naming_it(demo_run, tmp_path) -> None:
    """Re-sent as often as rules.yaml allows and escalated, still no receipt: the relay did not finish."""
    cwd, _, _ = demo_run
    copy, pid = _lose_a_receipt(cwd, tmp_path, resends=2)
    p = _rerun(copy)
    assert p.returncode == 1, p.stdout[-2000:] + p.stderr[-2000:]
    assert pid in p.stderr and "stafet outbox list" in p.stderr and "Traceback" not in p.stderr
    nights = re.findall(r"nat \S+: gensendt (\d+), påmindelser \d+, eskaleret til koordinator (\d+)"
                        r"(?:, til ledelsen (\d+))?", p.stdout)
    assert nights and all(r == "0" for r, _, _ in nights)  # no resend left
    assert sum(int(c) + int(m or 0) for _, c, m in nights) >= 1  # the duty went a step up


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
    # the unacknowledged handover (UU Skive's node away): re-sent, the sender told, escalated, acknowledged
    nights = re.findall(r"nat (\d{4}-\d\d-\d\d): gensendt (\d+), påmindelser (\d+), "
                        r"eskaleret til koordinator (\d+)", out)
    assert [tuple(map(int, n[1:])) for n in nights] == [(2, 0, 0), (2, 2, 0), (0, 0, 0), (0, 0, 2)]
    assert [d for d, *_ in nights] == sorted(d for d, *_ in nights)
    assert re.search(r"2 overlevering\(er\) til uu-skive gensendt 2 gange \(samme pakke-id\): "
                     r"acknowledged", out)
    assert "påmindelse til afsenderen → uu-viborg" in out
    assert "eskaleret til koordinatoren → koordinator" in out


def test_the_demo_shows_the_whole_youth(demo_run) -> None:
    """Issue 18: grundskole support needs, the opsporing list, a move, an inquiry, the statistics."""
    import json

    cwd, runs, _ = demo_run
    out = runs[0].stdout
    assert "1 elev(er) → uu-viborg (UU): acknowledged" in out
    assert "1 elev(er) → 779008 (den søgte skole, med samtykke): acknowledged" in out
    # the 16-year-old of the register whom the network knows nothing else of
    assert ("uu-viborg: en ung på 16 år uden uddannelse, aktivitet eller UU-kontakt "
            "(sidst kendt: intet)") in out
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STAFET_", "PREFECT_"))}
    p = subprocess.run([sys.executable, "-m", "stafet", "opsporing", "--org", "uu-viborg", "--json"], cwd=cwd,
                       env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    items = json.loads(p.stdout)["items"]
    assert [(i["masked_cpr"], i["age"], i["responsible"]) for i in items] == [
        ("140610-xxxx", 16, "uu-viborg")]
    # the youth who moved from Viborg to Skive: her course and history, acknowledged by UU Skive's node
    assert "1 ung(e) flyttet: uu-viborg → uu-skive med historik (concern_flag): acknowledged" in out
    with sqlite3.connect(cwd / ".stafet-demo" / "members" / "uu-skive" / "stafet.db") as db:
        kinds = db.execute("select kind from imported_records where sender = 'uu-viborg'").fetchall()
    assert kinds == [("registration",)]
    # Mercantec's inquiry, answered by UU Viborg, both sides receipted
    assert "1 × 779008 spurgte uu-viborg: answered" in out
    with _db(cwd) as db:
        rows = db.execute("select org, direction, status, answer_outcome, answer_records > 0, "
                          "acknowledged_at is not null, answer_acknowledged_at is not null from inquiries "
                          "order by org").fetchall()
    # the asker has UU Viborg's receipt for its inquiry, UU Viborg Mercantec's for the answer
    assert rows == [("779008", "out", "answered", "answered", 1, 1, 0),
                    ("uu-viborg", "in", "answered", "answered", 1, 0, 1)]
    # the statistics: small counts suppressed, every duty kind of the clock among the duties
    (hidden,) = re.findall(r"(\d+) små tal skjult \(<5\)", out)
    assert int(hidden) > 0
    report = cwd / ".stafet" / "reports" / "statistics-2026-01_2026-11"
    assert "&lt;5" in (report / "statistics.html").read_text(encoding="utf-8")
    duties = (report / "duties_by_municipality.csv").read_text(encoding="utf-8-sig")
    assert "Den nye UU har kvitteret for en ung, der er flyttet" in duties
    assert "Kontakt til studievejlederen efter bekymringsmærke" in duties
    assert "1. samtale inden 7 dage efter uddannelsespålægget" in duties
    assert not [c for c in _demo_cprs() if c in out or f"{c[:6]}-{c[6:]}" in out]
