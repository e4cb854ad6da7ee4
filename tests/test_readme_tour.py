"""The README's tour after the demo, followed step by step on a fresh demo, as a newcomer would.

The commands are read from the README's section "After the demo / Efter demoen" (its
``sh`` block), so the README and this test cannot drift; the demo prints the same
commands (:mod:`stafet.demo.tour`). Each runs in a subprocess from the demo's folder
with no ``STAFET_*`` variable and no ``--network``: the demo's network is found through
``$STAFET_HOME/network-path``, and stderr says so.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from servers import end_tree, free_port, wait_for_port

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[1] / "README.md"


def tour_commands() -> list[str]:
    """The ``stafet …`` lines of the README's tour section, comments stripped."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## After the demo / Efter demoen\n", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```sh\n(.*?)```", section, re.S)
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.startswith("stafet ")]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STAFET_", "PREFECT_"))}
    env.update(STAFET_DEMO_KEY_BITS="2048", PYTHONUNBUFFERED="1", COLUMNS="200")
    return env


def _stafet(cmd: str) -> list[str]:
    args = shlex.split(cmd)
    assert args[0] == "stafet"
    return [sys.executable, "-m", "stafet", *args[1:]]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    cwd = tmp_path_factory.mktemp("tour")
    before = subprocess.run(_stafet("stafet network show"), cwd=cwd, env=_env(), capture_output=True,
                            text=True, timeout=120)
    assert before.returncode == 2 and "network configuration not found" in before.stderr  # no demo yet
    p = subprocess.run(_stafet("stafet demo"), cwd=cwd, env=_env(), capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return cwd, p.stdout


def test_the_tour_names_the_commands_of_the_issue() -> None:
    cmds = tour_commands()
    for wanted in ("stafet status", "stafet deadlines", "stafet quarantine list", "stafet outbox list",
                   "stafet web", "stafet notices", "stafet opsporing", "stafet statistics",
                   "stafet status --home .stafet-demo/members/uu-skive", "stafet report ingest",
                   "stafet inquiry list"):
        assert any(c == wanted or c.startswith(wanted + " ") for c in cmds), wanted


def test_the_demo_prints_the_readmes_tour(demo: tuple[Path, str]) -> None:
    from stafet.demo.tour import TOUR

    _, out = demo
    printed = [line.split("#", 1)[0].strip() for line in out.splitlines() if line.startswith("  stafet ")]
    assert printed == tour_commands()
    assert len(printed) == len(TOUR)
    assert re.search(r"steward\s+steward\s+\S{12,}", out)  # the console's logins, for `stafet web`


def test_each_tour_command_runs_on_the_fresh_demo(demo: tuple[Path, str]) -> None:
    cwd, _ = demo
    network = cwd / ".stafet-demo" / "network.yaml"
    for cmd in tour_commands():
        if cmd == "stafet web":
            continue
        p = subprocess.run(_stafet(cmd), cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, f"{cmd}: {p.stdout[-1500:]}{p.stderr[-1500:]}"
        assert f"bruger netværket {network}" in p.stderr, cmd      # said, not guessed silently
        assert "Traceback" not in p.stderr and p.stdout.strip(), cmd
        if cmd == "stafet status":
            assert "demo-viborg" in p.stdout and "quarantine (open rows): 3" in p.stdout
        if cmd == "stafet quarantine list":
            assert "quarantine (3)" in p.stdout and "779008_haendelser_2026112202.csv" in p.stdout
        if cmd.startswith("stafet report ingest"):
            (path,) = re.findall(r"rapport: (\S+\.html)", p.stdout)
            assert Path(path).read_text(encoding="utf-8").count("<td>åben</td>") == 3
        if cmd.startswith("stafet receive"):
            assert "rejected 0" in p.stdout  # the readable view (--json for scripts)
        if cmd.startswith("stafet status --home"):
            assert "uu-skive" in p.stdout
        if cmd == "stafet opsporing":
            assert "140610-xxxx" in p.stdout   # the register's 16-year-old the network knows nothing else of
        if cmd == "stafet inquiry list":
            assert "forespørgsler: 2" in p.stdout  # Mercantec's, as sent and as UU Viborg received it


def test_the_console_of_the_tour_starts_and_serves_its_login(demo: tuple[Path, str]) -> None:
    cwd, _ = demo
    (cmd,) = [c for c in tour_commands() if c.startswith("stafet web")]
    port = free_port()
    log = cwd / "web.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*_stafet(cmd), "--port", str(port)], cwd=cwd, env=_env(), stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc=proc, log=log, timeout=60)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
            page = r.read().decode("utf-8")
            assert r.status == 200 and "/login" in r.url
        assert 'name="password"' in page
    finally:
        end_tree(proc, signal.SIGTERM, timeout=10)
    assert "bruger netværket" in log.read_text(errors="replace")
