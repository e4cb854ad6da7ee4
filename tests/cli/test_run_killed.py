"""A killed ``stafet run`` leaves no temporary Prefect server behind (``stafet.ops.ephemeral``).

``stafet run nightly`` runs in a subprocess with its own ``PREFECT_HOME`` (no
``PREFECT_API_URL``: Prefect's temporary server). Once that server answers, only the
``stafet`` process is killed, by SIGKILL or SIGTERM, never its group; the server, a child
of it, must then end by itself within seconds. Whatever is left is stopped by PID.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import servers

pytestmark = pytest.mark.slow

STAFET = str(Path(sys.executable).parent / "stafet")
SERVER_APP = "prefect.server.api.server:create_app"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    """Running (a zombie nobody has reaped yet counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _temporary_server(pid: int) -> tuple[int, int] | None:
    """(PID, port) of the temporary Prefect server among ``pid``'s descendants."""
    for p in servers.process_tree(pid)[1:]:
        cmd = _cmdline(p)
        if SERVER_APP in cmd:
            m = re.search(r"--port (\d+)", cmd)
            return (p, int(m.group(1))) if m else None
    return None


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_killed_run_leaves_no_temporary_prefect_server(demo_net: tuple[str, Any], tmp_path: Path,
                                                         sig: int) -> None:
    path, _ = demo_net
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home"), "DO_NOT_TRACK": "1"}
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        # its own session: if the test fails, nothing of it stays in pytest's process group
        run = subprocess.Popen([STAFET, "run", "nightly", "--network", path], env=env,
                               stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                               start_new_session=True)
    server: tuple[int, int] | None = None
    try:
        deadline = time.monotonic() + 120
        while not (server and _healthy(server[1])):
            assert run.poll() is None, f"stafet run ended before it was killed:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no temporary server came up:\n{log.read_text()[-3000:]}"
            server = server or _temporary_server(run.pid)
            time.sleep(0.2)
        assert run.poll() is None, "the run must still be going when it is killed"
        os.kill(run.pid, sig)  # the stafet process only, not its group
        assert run.wait(timeout=30) == -sig
        gone_by = time.monotonic() + 20
        while _alive(server[0]) and time.monotonic() < gone_by:
            time.sleep(0.2)
        assert not _alive(server[0]), f"temporary server {server[0]} outlived its run: {_cmdline(server[0])}"
        assert not _healthy(server[1])
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(timeout=10)
        if server and _alive(server[0]):
            os.kill(server[0], signal.SIGKILL)


def test_a_run_with_a_prefect_server_starts_no_temporary_one() -> None:
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from stafet.ops.ephemeral import bind_temporary_server

    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):  # named, never contacted
        assert bind_temporary_server() is None
    assert None not in SubprocessASGIServer._instances   # nothing was started in this process


def test_a_bad_day_is_refused_before_prefect_starts() -> None:
    from typer.testing import CliRunner

    from stafet.cli.main import app

    r = CliRunner().invoke(app, ["run", "deadlines", "--day", "2026-13-01"])
    assert r.exit_code == 2, r.output
    assert "YYYY-MM-DD" in r.output
