"""A pre-warmed parent that forks one process per night, so that a crash test can
SIGKILL a real process many times without paying the imports every time.

    python tests/reliability/chaos_zygote.py

Everything heavy (SQLAlchemy, lxml, cryptography, Great Expectations with its suites)
is imported and built once here, before any database or thread exists. Then it reads
commands on stdin, one per line, and answers on stdout:

* ``run RUN_DIR`` → forks a child that runs :func:`chaos_driver.night` on ``RUN_DIR``
  with its stdout/stderr in ``RUN_DIR/night.log``; answers ``pid N``.
* ``wait N`` → reaps child ``N``; answers ``rc CODE`` (``-9`` when it was SIGKILLed).

The child is an ordinary process: the harness kills it with ``os.kill(pid, SIGKILL)``.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def warm() -> None:
    """Import and build what every night needs, in the parent."""
    import alembic.command  # noqa: F401
    import chaos_driver  # noqa: F401

    import connectors.transport  # noqa: F401
    import stafet.deadlines
    import stafet.exchange
    import stafet.ingest
    import stafet.nightly_report
    import stafet.relay  # noqa: F401
    from stafet import packages, validation
    from stafet.sources import all_sources

    for source in all_sources().values():
        validation._definition(source)
    packages._validator()


def child(run: Path) -> None:
    """In the forked child: the night, its output in ``run/night.log``."""
    import chaos_driver

    fd = os.open(run / "night.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    code = 0
    try:
        chaos_driver.night(run)
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main() -> None:
    warm()
    print("ready", flush=True)
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "run":
            pid = os.fork()
            if pid == 0:
                child(Path(arg))
            print(f"pid {pid}", flush=True)
        elif cmd == "wait":
            _, status = os.waitpid(int(arg), 0)
            print(f"rc {os.waitstatus_to_exitcode(status)}", flush=True)
        elif cmd == "quit":
            break


if __name__ == "__main__":
    main()
