"""Worker processes: stafet's own children that answer pickled requests, in order.

One mechanism for every stage that needs more cores or a separate heap (opening
packages, :mod:`stafet.packages.opening`; validating chunks with GX, the validation
worker of :mod:`stafet.ingest`):

* A :class:`Worker` is one ``python -m stafet.core.workers MODULE:FACTORY`` child. The
  first pickle on its stdin is the *setup*; the child calls ``FACTORY(setup)`` once and
  gets a handler, then answers each request pickle with one answer pickle on its
  stdout, in the order asked, so the parent can submit the next request before it
  collects this one. What a handler raises is answered as an error (its text
  CPR-redacted) and raised in the parent as :class:`WorkerError`; the worker lives on.
  A handler with an ``after()`` method has it called once each answer is written:
  housekeeping that must not delay the answer (the validation worker hands a chunk's
  freed heap back to the system there).
* A :class:`Pool` is ``n`` workers with one setup: :meth:`Pool.map` sends requests as
  workers become free (a bounded number in flight per worker) and yields the answers
  in the order of the requests.
* :class:`Idle` keeps started workers for reuse (a worker whose setup is expensive,
  such as GX's 3 s of imports, starts once per process).

The protocol: requests and answers are pickles over the child's private stdin and
stdout pipes (trusted: our own child, unlike any file or network input). Each answer
is ``(status, value, peak RSS in MB, CPU seconds)``; :attr:`Worker.usage` keeps the last
two. An answer is streamed as it is pickled (never held twice); one that does not pickle
is answered as an error, or ends the worker if part of it was already sent. In the
child a reader thread drains stdin all the time (a big request never waits on an
unread answer), and whatever a library prints to stdout goes to stderr: the protocol
owns the original stdout alone.

Spawn: :func:`subprocess.Popen` of this module with the repository on ``PYTHONPATH``
(not :mod:`multiprocessing`, whose spawned children re-import the parent's
``__main__``, for a Prefect flow run seconds of imports). Setup data (an organisation's
decryption keys, say) reaches the child over its pipe, never through a file.

Lifecycle and the parent's death: closing the child's stdin ends it once the request
in hand is answered (:meth:`Worker.close` waits, then kills). When the parent dies,
SIGKILL included, the pipe's end-of-file ends the child the same way, and a watch on
the parent's pid covers a pipe kept open by a forked grandchild of the parent.

What it may import: the standard library and :mod:`stafet.core.redaction`. Handlers are
named by string and imported in the child only, so this module depends on no stage.
"""

from __future__ import annotations

import collections
import contextlib
import importlib
import itertools
import os
import pickle
import queue
import resource
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeVar

__all__ = ["Idle", "Pool", "Usage", "Worker", "WorkerError", "live_pids"]

T = TypeVar("T")
_ROOT = str(Path(__file__).resolve().parents[2])
_PARENT_POLL_S = 0.5
_live: weakref.WeakSet[Worker] = weakref.WeakSet()


class WorkerError(RuntimeError):
    """A worker failed: it exited, or its handler raised (the message says which, redacted)."""


@dataclass(frozen=True)
class Usage:
    """What a worker reported with its last answer."""

    peak_mb: float = 0.0
    cpu_s: float = 0.0


class Worker:
    """One child process serving ``handler`` (``"package.module:factory"``).

    Args:
        handler: the factory's import path; ``factory(setup)`` returns the function
            that turns one request into one answer (both picklable).
        setup: sent once, first, over the child's stdin.
        env: extra environment variables for the child.
    """

    def __init__(self, handler: str, setup: Any = None, *, env: Mapping[str, str] | None = None) -> None:
        path = os.environ.get("PYTHONPATH", "")
        child_env = {**os.environ, **(env or {}), "PYTHONPATH": _ROOT + (os.pathsep + path if path else "")}
        self.handler = handler
        self.proc = subprocess.Popen([sys.executable, "-m", "stafet.core.workers", handler, str(os.getpid())],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=child_env)
        self.outstanding = 0
        self.usage = Usage()
        _live.add(self)
        self._write(setup)

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.proc.pid

    def alive(self) -> bool:
        """Whether the child is still running."""
        return self.proc.poll() is None

    def _write(self, message: Any) -> None:
        assert self.proc.stdin is not None
        try:
            pickle.dump(message, self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            raise WorkerError(f"the worker {self.handler} has exited (code {self.proc.poll()})") from None

    def submit(self, request: Any) -> None:
        """Send one request; its answer comes from :meth:`collect` after those sent before it."""
        self._write(request)
        self.outstanding += 1

    def collect(self) -> Any:
        """The answer to the oldest request not yet collected (waits for it).

        Raises:
            WorkerError: the handler raised (the worker lives on), or the worker exited.
        """
        assert self.proc.stdout is not None
        try:
            status, value, peak_mb, cpu_s = pickle.load(self.proc.stdout)  # noqa: S301 (our child)
        except (EOFError, pickle.UnpicklingError, OSError, ValueError):
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=1)  # its pipe closes a moment before it can be reaped
            raise WorkerError(f"the worker {self.handler} has exited (code {self.proc.poll()})") from None
        self.outstanding -= 1
        self.usage = Usage(peak_mb, cpu_s)
        if status != "ok":
            raise WorkerError(f"{self.handler} failed in the worker: {value}")
        return value

    def call(self, request: Any) -> Any:
        """:meth:`submit` then :meth:`collect`: one request, its answer."""
        self.submit(request)
        return self.collect()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the child: closing its stdin ends it; kill it if it lingers past ``timeout``.

        Answers still owed are not read: the child's writes fail, so it does not wait on
        a full pipe, and it ends once the request in hand is done.
        """
        if self.outstanding and self.proc.stdout is not None:
            self.proc.stdout.close()
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        _live.discard(self)


def live_pids() -> list[int]:
    """Process ids of this process's workers that are still running."""
    return sorted(w.pid for w in list(_live) if w.alive())


class Pool:
    """``workers`` children with the same handler and setup; answers in the order asked.

    Use as a context manager: leaving it closes every worker (waiting for the answers
    in hand). ``in_flight`` requests per worker are queued at most, which bounds memory
    when the requests come from a large inbox or file.
    """

    def __init__(self, handler: str, setup: Any = None, *, workers: int, in_flight: int = 4,
                 env: Mapping[str, str] | None = None) -> None:
        if workers < 1:
            raise ValueError("a pool needs at least one worker")
        self.in_flight = in_flight
        self.workers: list[Worker] = []
        try:
            for _ in range(workers):
                self.workers.append(Worker(handler, setup, env=env))
        except BaseException:
            self.close()
            raise

    def map(self, items: Iterable[T], request: Callable[[T], Any] | None = None) -> Iterator[tuple[T, Any]]:
        """Yield ``(item, answer)`` for each item, in order; ``request(item)`` is what is sent.

        Items are read only as workers become free; each request goes to the worker with
        the fewest unanswered ones. A :class:`WorkerError` stops the map.
        """
        pending: collections.deque[tuple[T, Worker]] = collections.deque()
        source = iter(items)
        limit = len(self.workers) * self.in_flight

        def fill() -> None:
            for item in itertools.islice(source, max(0, limit - len(pending))):
                worker = min(self.workers, key=lambda w: w.outstanding)
                worker.submit(item if request is None else request(item))
                pending.append((item, worker))

        fill()
        while pending:
            item, worker = pending.popleft()
            answer = worker.collect()
            fill()
            yield item, answer

    def close(self) -> None:
        """Stop every worker."""
        for w in self.workers:
            w.close()

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class Idle:
    """Started workers of one handler kept for reuse within this process (thread-safe).

    :meth:`checkout` gives an idle live worker or starts one; :meth:`checkin` keeps it
    unless it died or still owes answers (an error in between: it is stopped, not
    reused). Call :meth:`close` at exit (``atexit.register(idle.close)``).
    """

    def __init__(self, handler: str, setup: Any = None, *, env: Mapping[str, str] | None = None) -> None:
        self.handler, self.setup, self.env = handler, setup, env
        self._idle: list[Worker] = []
        self._lock = threading.Lock()

    def checkout(self) -> Worker:
        """An idle worker, or a new one."""
        with self._lock:
            while self._idle:
                w = self._idle.pop()
                if w.alive():
                    return w
                w.close()
        return Worker(self.handler, self.setup, env=self.env)

    def checkin(self, w: Worker) -> None:
        """Give a worker back (or stop it, see the class docstring)."""
        if w.outstanding or not w.alive():
            w.close()
            return
        with self._lock:
            self._idle.append(w)

    def close(self) -> None:
        """Stop every idle worker."""
        with self._lock:
            workers, self._idle = self._idle, []
        for w in workers:
            w.close()


# --------------------------------------------------------------------------- the child


def _usage() -> tuple[float, float]:
    """Peak RSS in MB and CPU seconds of this process so far."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_maxrss / 1024, ru.ru_utime + ru.ru_stime


class _Sink:
    """The answer pipe, counting what has been written to it (a half-written answer ends the worker)."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out, self.written = out, 0

    def write(self, data: bytes) -> int:
        self.written += len(data)
        return self.out.write(data)


def _watch_parent(parent: int) -> None:
    """Exit when the parent is gone even if a forked grandchild keeps our stdin open."""
    while os.getppid() == parent:
        time.sleep(_PARENT_POLL_S)
    os._exit(70)


def serve(handler: str, parent: int, inp: IO[bytes], out: IO[bytes]) -> None:
    """The child's loop: setup, then answer each request in order until stdin closes."""
    from stafet.core.redaction import redact

    threading.Thread(target=_watch_parent, args=(parent,), name="stafet-parent-watch", daemon=True).start()
    requests: queue.Queue[tuple[Any] | None] = queue.Queue()

    def read() -> None:
        while True:
            try:
                requests.put((pickle.load(inp),))  # noqa: S301 (our parent, a private pipe)
            except (EOFError, OSError, pickle.UnpicklingError):
                requests.put(None)
                return

    threading.Thread(target=read, name="requests", daemon=True).start()
    first = requests.get()
    if first is None:
        return
    handle: Callable[[Any], Any] | None = None
    after: Callable[[], object] | None = None
    setup_error = ""
    try:
        module, _, name = handler.partition(":")
        handle = getattr(importlib.import_module(module), name)(first[0])
        after = getattr(handle, "after", None)
    except Exception as e:  # answered to every request: the parent decides
        setup_error = redact(f"setup: {type(e).__name__}: {e}")
    while (req := requests.get()) is not None:
        answer: tuple[str, Any]
        if handle is None:
            answer = ("error", setup_error)
        else:
            try:
                answer = ("ok", handle(req[0]))
            except Exception as e:  # answered, not fatal
                answer = ("error", redact(f"{type(e).__name__}: {e}"))
        sink = _Sink(out)
        try:
            # Streamed (the pickler writes 64 KB frames as they fill): a big answer is never
            # held a second time as one bytes object.
            pickle.dump((*answer, *_usage()), sink, protocol=pickle.HIGHEST_PROTOCOL)
        except (BrokenPipeError, OSError):
            return  # the parent is gone
        except Exception as e:  # an answer that does not pickle
            if sink.written:
                return  # part of it is on the pipe: the stream cannot be mended, the worker ends
            with contextlib.suppress(BrokenPipeError, OSError):
                pickle.dump(("error", redact(f"answer does not pickle: {type(e).__name__}: {e}"),
                             *_usage()), out)
        try:
            out.flush()
        except (BrokenPipeError, OSError):
            return  # the parent is gone
        del req, answer  # garbage now: not kept alive while waiting for the next request
        if after is not None:
            with contextlib.suppress(Exception):  # housekeeping: never fails a request
                after()


def _main() -> None:
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    serve(sys.argv[1], int(sys.argv[2]), sys.stdin.buffer, out)


if __name__ == "__main__":
    _main()
