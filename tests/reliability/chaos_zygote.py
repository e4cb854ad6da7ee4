"""A pre-warmed parent that forks one process per night, so that a crash test can
SIGKILL a real process many times without paying the imports every time.

    PREFECT_API_URL=… python tests/reliability/chaos_zygote.py

Everything heavy (Prefect and the flows, SQLAlchemy, lxml, cryptography, Great
Expectations with its suites) is imported and built once here, before any database or
thread exists. Then it reads commands on stdin, one per line, and answers on stdout:

* ``run RUN_DIR`` → forks a child that runs :func:`chaos_driver.night` on ``RUN_DIR``
  with its stdout/stderr in ``RUN_DIR/night.log``; answers ``pid N``.
* ``wait N`` → reaps child ``N``; answers ``rc CODE`` (``-9`` when it was SIGKILLed).

The child is an ordinary process: the harness kills it with ``os.kill(pid, SIGKILL)``.

Validation workers: an ingest validates in a :class:`stafet.core.workers.Worker` process
serving ``stafet.ingest.worker_main:handler`` (one per concurrent ingest). Started the
ordinary way (``python -m …``) each costs ≈ 6.6 s of CPU to import GX, two per night,
which would be most of a night's CPU on 2 cores. So, like multiprocessing's
*forkserver*, this parent forks them ready-made just before each night —
:func:`stafet.core.workers.serve` itself, on a pair of pipes, with GX already imported —
and the night finds them in ``stafet.ingest.worker``'s idle pool (``_IDLE``), exactly
where it keeps the workers it started itself. Each worker serves one night only: it exits
when that night closes its pipe or dies (a SIGKILLed night leaves it EOF, as in
production), and this parent reaps it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))


def warm() -> None:
    """Import and build what every night needs, in the parent."""
    import alembic.command  # noqa: F401
    import chaos_driver  # noqa: F401

    import transports  # noqa: F401
    from flows import nightly  # noqa: F401
    from mappings import all_sources
    from stafet.ingest import gx
    from stafet.packages import package as packages

    for source in all_sources().values():
        gx._definition(source)
    packages._validator()


class _Forked:
    """The ``Popen`` side of a validation worker that this zygote forked (reaped here, not by the night)."""

    def __init__(self, pid: int, stdin: int, stdout: int) -> None:
        self.pid = pid
        self.stdin = os.fdopen(stdin, "wb")
        self.stdout = os.fdopen(stdout, "rb")
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        self.returncode = 0  # its stdin is closed: it ends; the zygote reaps it
        return 0

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)


def fork_worker(log: Path) -> tuple[int, int, int]:
    """Fork a validation worker on new pipes; ``(pid, its stdin to write, its stdout to read)``."""
    req_r, req_w = os.pipe()
    ans_r, ans_w = os.pipe()
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.dup2(req_r, 0)
            os.dup2(ans_w, 1)
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.dup2(fd, 2)
            os.closerange(3, 4096)  # the harness's pipes, the other workers' pipes
            from stafet.core import workers
            from stafet.ingest import worker

            out = os.fdopen(os.dup(1), "wb")  # the protocol's; a library's prints go to the log
            os.dup2(2, 1)
            sys.stdout = sys.stderr
            workers.serve(worker.HANDLER, os.getppid(), os.fdopen(0, "rb"), out)
        except BaseException:
            traceback.print_exc()
            code = 1
        os._exit(code)
    os.close(req_r)
    os.close(ans_w)
    return pid, req_w, ans_r


def child(run: Path, workers: list[tuple[int, int, int]]) -> None:
    """In the forked child: the night, its output in ``run/night.log``."""
    import chaos_driver

    from stafet.core.workers import Usage, Worker
    from stafet.ingest import worker

    fd = os.open(run / "night.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    for pid, to_worker, from_worker in workers:
        w: Any = Worker.__new__(Worker)
        w.handler, w.outstanding, w.usage = worker.HANDLER, 0, Usage()
        w.proc = _Forked(pid, to_worker, from_worker)
        w._write(None)  # the setup, as Worker() sends it
        worker._IDLE.checkin(w)
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
    from flows.nightly import MAX_THREADS

    print("ready", flush=True)
    workers: set[int] = set()
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "run":
            run = Path(arg)
            ready = [fork_worker(run / "night.log") for _ in range(MAX_THREADS)]
            pid = os.fork()
            if pid == 0:
                child(run, ready)
            for wpid, to_worker, from_worker in ready:
                os.close(to_worker)
                os.close(from_worker)
                workers.add(wpid)
            print(f"pid {pid}", flush=True)
        elif cmd == "wait":
            _, status = os.waitpid(int(arg), 0)
            for wpid in list(workers):  # workers of ended nights (EOF), whenever they have exited
                if os.waitpid(wpid, os.WNOHANG)[0]:
                    workers.discard(wpid)
            print(f"rc {os.waitstatus_to_exitcode(status)}", flush=True)
        elif cmd == "quit":
            break
    for wpid in workers:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(wpid, 0)


if __name__ == "__main__":
    main()
