"""``stafet report ingest FILE``: the steward's report rewritten from the store, rows as they stand now."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from ingest_fixtures import NETWORK_YAML, easya_row, write_easya
from typer.testing import CliRunner

from stafet.cli.main import app


def _status_of_rows(report: Path) -> list[str]:
    """The status column of the report's quarantined rows."""
    section = report.read_text(encoding="utf-8").split("<h2>Rækker i karantæne</h2>")[1].split("<h2>")[0]
    return re.findall(r"<td>(åben|frigivet|afvist)</td></tr>", section)


@pytest.fixture
def ingested(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[CliRunner, Path, str]:
    monkeypatch.setenv("STAFET_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("STAFET_SECRET", "ab" * 32)
    monkeypatch.setenv("STAFET_NETWORK", str(NETWORK_YAML))
    path = write_easya(tmp_path / "779008_haendelser_2026112109.csv",
                       [easya_row(), easya_row(reason="42", cpr="230507-5218"), easya_row(reason="43")])
    runner = CliRunner()
    r = runner.invoke(app, ["ingest", "--json", str(path)])
    assert r.exit_code == 0, r.output
    (summary,) = json.loads(r.stdout)
    assert summary["quarantined"] == 2
    return runner, tmp_path / "home", path.name


def test_a_release_and_a_reject_show_in_the_regenerated_report(ingested: tuple[CliRunner, Path, str]) -> None:
    runner, home, name = ingested
    listed = json.loads(runner.invoke(app, ["quarantine", "list", "--json"]).stdout)
    first, second = sorted(q["id"] for q in listed)
    made = runner.invoke(app, ["report", "ingest", "--json", name])
    assert made.exit_code == 0, made.output
    (report,) = map(Path, json.loads(made.stdout)["reports"])
    assert report.parent == home / "reports" and report.name.startswith("file-")
    assert _status_of_rows(report) == ["åben", "åben"]

    released = runner.invoke(app, ["quarantine", "release", str(first), "--fix", "Afbrudsaarsag=05"])
    assert released.exit_code == 0, released.output
    rejected = runner.invoke(app, ["quarantine", "reject", str(second), "--reason", "dobbeltregistrering"])
    assert rejected.exit_code == 0, rejected.output
    assert _status_of_rows(report) == ["åben", "åben"]            # the old page is a snapshot

    again = runner.invoke(app, ["report", "ingest", name])
    assert again.exit_code == 0 and f"rapport: {report}" in again.stdout, again.output
    assert _status_of_rows(report) == ["frigivet", "afvist"]
    text = report.read_text(encoding="utf-8")
    assert "230507-5218" not in text and "2305075218" not in text and "230507-xxxx" in text
    assert re.search(r"<td>779008_haendelser_2026112109\.csv</td><td>easy-a</td>"
                     r"<td class=\"n\">3</td><td class=\"n\">1</td>", text)     # the counts as ingested


def test_the_file_is_found_by_its_sha256_or_a_prefix(ingested: tuple[CliRunner, Path, str]) -> None:
    runner, home, name = ingested
    from stafet.context import open_context
    from stafet.store import files

    ctx = open_context(None, home=home)
    with ctx.store.session() as s:
        (sf,) = files.find(s, name)
        sha = sf.sha256
    by_sha = json.loads(runner.invoke(app, ["report", "ingest", "--json", sha]).stdout)["reports"]
    by_prefix = json.loads(runner.invoke(app, ["report", "ingest", "--json",
                                               sha[:8].upper()]).stdout)["reports"]
    by_name = json.loads(runner.invoke(app, ["report", "ingest", "--json", name]).stdout)["reports"]
    assert by_sha == by_prefix == by_name and len(by_sha) == 1


def test_an_unknown_file_is_an_error_naming_what_to_do(ingested: tuple[CliRunner, Path, str]) -> None:
    runner, _, _ = ingested
    r = runner.invoke(app, ["report", "ingest", "nosuch.csv"])
    assert r.exit_code == 2 and "no ingested file" in r.stderr and "Traceback" not in r.output
