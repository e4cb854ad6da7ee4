"""Progress with percentage and time left on send, receive and bulk quarantine decisions (issue 20).

Quiet when stderr is not a terminal (Typer's runner, a pipe): nothing but the result. On a
terminal — a real pseudo-terminal for ``stafet send`` in its own process, a Rich console
forced to be a terminal for the others — the bar shows the percentage and the time left.
"""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from stafet.cli.main import app
from stafet.core.cpr import parse_cpr
from stafet.core.models import Dropout, Provenance
from stafet.demo.network import BAD_ROWS_FILE

runner = CliRunner()
PERCENT = "100%"


def _dropouts(ctx: Any) -> None:
    rows = [Dropout(cpr=parse_cpr(cpr), institution="779008", home_municipality=muni, event_date=date.today(),
                    programme_code="1640", reason_code="03", provenance=Provenance("t", "t.csv", 2, datetime.now(UTC)))  # noqa: E501
            for muni, cpr in (("791", "120308-4127"), ("779", "120310-4126"), ("791", "010107-4122"))]
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, rows)


@pytest.fixture
def tty_err(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """stderr's console forced to be a terminal (what a person at a terminal sees), into a buffer."""
    from stafet.cli import common, ingest

    out = io.StringIO()
    forced = Console(file=out, force_terminal=True, width=160)
    monkeypatch.setattr(common, "err", forced)
    monkeypatch.setattr(ingest, "err", forced)
    return out


def _quarantined(demo_net: Any, tmp_path: Path) -> list[str]:
    path, _ = demo_net
    f = tmp_path / BAD_ROWS_FILE
    f.write_bytes(resources.files("stafet.demo.data").joinpath(BAD_ROWS_FILE).read_bytes())
    assert runner.invoke(app, ["ingest", "--no-report", "--network", path, str(f)]).exit_code == 0
    listed = json.loads(runner.invoke(app, ["quarantine", "list", "--json", "--network", path]).stdout)
    return [str(q["id"]) for q in listed]


def test_not_a_terminal_no_progress(demo_net, tmp_path) -> None:
    path, ctx = demo_net
    _dropouts(ctx)
    sent = runner.invoke(app, ["send", "--network", path])
    assert sent.exit_code == 0 and "sent: 3" in sent.stdout
    got = runner.invoke(app, ["receive", "--org", "uu-viborg", "--network", path])
    assert got.exit_code == 0 and "imported 2" in got.stdout
    ids = _quarantined(demo_net, tmp_path)
    rejected = runner.invoke(app, ["quarantine", "reject", *ids, "--reason", "testdata", "--network", path])
    assert rejected.exit_code == 0, rejected.output
    assert f"rejected {len(ids)} of {len(ids)}" in rejected.stdout
    for r in (sent, got, rejected):
        assert "%" not in r.stderr and "left" not in r.stderr and "━" not in r.output


def test_a_terminal_shows_percentage_and_time_left(demo_net, tmp_path, tty_err) -> None:
    path, ctx = demo_net
    _dropouts(ctx)
    sent = runner.invoke(app, ["send", "--network", path])
    assert sent.exit_code == 0 and "sent: 3" in sent.stdout
    shown = tty_err.getvalue()
    assert "send" in shown and PERCENT in shown and "left" in shown and "3 handovers" in shown
    tty_err.seek(0)
    tty_err.truncate(0)
    got = runner.invoke(app, ["receive", "--org", "uu-viborg", "--network", path])
    assert got.exit_code == 0 and "imported 2" in got.stdout
    shown = tty_err.getvalue()
    assert "receive uu-viborg" in shown and PERCENT in shown and "2 packages" in shown
    tty_err.seek(0)
    tty_err.truncate(0)
    ids = _quarantined(demo_net, tmp_path)
    assert len(ids) >= 3
    bulk = runner.invoke(app, ["quarantine", "release", *ids, "--network", path])
    assert bulk.exit_code == 1  # the rows still break their rules: kept, and said so
    assert f"released 0 of {len(ids)}" in bulk.stdout and f"{len(ids)} still break a rule" in bulk.stdout
    shown = tty_err.getvalue()
    assert "release" in shown and PERCENT in shown and f"{len(ids)} rows" in shown
    assert "4127" not in shown
    tty_err.seek(0)
    tty_err.truncate(0)
    scripted = runner.invoke(app, ["send", "--json", "--network", path])  # --json: never a bar
    assert scripted.exit_code == 0 and json.loads(scripted.stdout)["sent"] == 1  # the good row's dropout
    assert tty_err.getvalue() == ""


def test_send_on_a_real_terminal_shows_the_bar(demo_net) -> None:
    path, ctx = demo_net
    _dropouts(ctx)
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "160", "TERM": "xterm"}
    try:
        proc = subprocess.run([str(Path(sys.executable).parent / "stafet"), "send", "--network", path],
                              stdout=subprocess.PIPE, stderr=follower, env=env, timeout=120, check=False)
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
    finally:
        if follower != -1:
            os.close(follower)
        os.close(leader)
    assert proc.returncode == 0, proc.stdout
    assert b"sent: 3" in proc.stdout
    shown = b"".join(chunks).decode("utf-8", "replace")
    assert PERCENT in shown and "left" in shown and "handovers" in shown
