"""The one worker-process mechanism (``stafet.core.workers``): order, errors, reuse, the parent's death."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from stafet.core.workers import Idle, Pool, Worker, WorkerError, live_pids

HERE = Path(__file__).parent


@pytest.fixture(autouse=True)
def _handlers_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", str(HERE) + (os.pathsep + path if path else ""))


def test_a_worker_answers_in_order_and_survives_a_handler_error() -> None:
    w = Worker("workers_handler:echo", {"org": "x"})
    try:
        w.submit(1)
        w.submit("boom")
        w.submit(2)
        assert w.outstanding == 3
        assert w.collect()[:2] == ({"org": "x"}, 1)
        with pytest.raises(WorkerError, match="ValueError: asked to fail"):
            w.collect()
        assert w.collect()[:2] == ({"org": "x"}, 2)
        with pytest.raises(WorkerError, match="does not pickle"):
            w.call("unpicklable")
        assert w.call(3)[2] == w.pid != os.getpid()
        assert w.usage.peak_mb > 0 and w.pid in live_pids()
    finally:
        w.close()
    assert w.pid not in live_pids()


def test_a_failed_setup_and_a_dead_worker_are_errors() -> None:
    w = Worker("workers_handler:broken")
    try:
        with pytest.raises(WorkerError, match="setup: RuntimeError: no keys for you"):
            w.call(1)
    finally:
        w.close()
    w = Worker("workers_handler:echo")
    try:
        with pytest.raises(WorkerError, match="has exited"):
            w.call("die")
        assert not w.alive()
    finally:
        w.close()


def test_the_after_hook_runs_once_each_answer_is_out_and_a_half_sent_answer_ends_the_worker() -> None:
    w = Worker("workers_handler:tidy")
    try:
        w.submit("a")
        w.submit("b")
        assert [w.collect(), w.collect(), w.call("c")] == [("a", 0), ("b", 1), ("c", 2)]
    finally:
        w.close()
    w = Worker("workers_handler:echo")
    try:
        big = w.call("x" * 300_000)  # streamed in frames: arrives whole
        assert big[1] == "x" * 300_000
        with pytest.raises(WorkerError, match="has exited"):
            w.call("unpicklable-late")
    finally:
        w.close()


def test_a_pool_keeps_the_order_of_the_requests_whatever_finishes_first() -> None:
    items = [(("sleep", 0.2 if i % 3 == 0 else 0.0, i)) for i in range(12)]
    with Pool("workers_handler:echo", "s", workers=2, in_flight=2) as pool:
        out = list(pool.map(items))
        pids = {w.pid for w in pool.workers}
    assert [item for item, _ in out] == items
    assert [answer[1] for _, answer in out] == list(range(12))
    assert {answer[2] for _, answer in out} == pids and len(pids) == 2  # both did work
    assert not set(live_pids()) & pids


def test_idle_workers_are_reused_unless_they_owe_answers() -> None:
    idle = Idle("workers_handler:echo", "s")
    try:
        w = idle.checkout()
        first = w.call(1)[2]
        idle.checkin(w)
        again = idle.checkout()
        assert again is w and again.call(2)[2] == first
        again.submit(3)  # left owing an answer: stopped, not reused
        idle.checkin(again)
        assert not again.alive()
        assert idle.checkout() is not again
    finally:
        idle.close()


def test_workers_exit_when_their_parent_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        sys.path[:0] = [{str(HERE.parents[1])!r}]
        from stafet.core.workers import Pool, live_pids
        pool = Pool("workers_handler:echo", None, workers=2)
        print(" ".join(str(p) for p in live_pids()), flush=True)
        time.sleep(600)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        pids = [int(p) for p in line.split()]
        assert len(pids) == 2, line
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 20
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if _running(p)]
        time.sleep(0.1)
    assert pids == []


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_map_given_up_halfway_stops_its_workers_at_once() -> None:
    big = "x" * 200_000  # answers that fill the pipes nobody reads any more
    start = time.monotonic()
    with Pool("workers_handler:echo", big, workers=2, in_flight=8) as pool:
        for _ in pool.map(range(1000)):
            break
    assert time.monotonic() - start < 5
    assert not any(w.alive() for w in pool.workers)
