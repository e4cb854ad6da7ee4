"""The validation worker: ``python -m stafet.ingest.worker_main`` (started by ``ingest.validation``).

Reads pickled requests on stdin and answers each, in order, with one pickle on
stdout: ``(status, failures | message, GX seconds, rows, peak RSS in MB, CPU seconds)``. A
reader thread drains stdin all the time, so a big request never waits on an
unread answer. Anything else written to stdout (by a library) goes to stderr:
the protocol owns the original stdout alone. Closing stdin ends the worker.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import pickle
import queue
import resource
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _usage() -> tuple[float, float]:
    """Peak RSS in MB and CPU seconds of this process so far."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_maxrss / 1024, ru.ru_utime + ru.ru_stime


def main() -> None:
    """Serve requests until stdin closes."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    inp = sys.stdin.buffer
    requests: queue.Queue[Any] = queue.Queue()

    def read() -> None:
        while True:
            try:
                requests.put(pickle.load(inp))  # noqa: S301 (our parent, a private pipe)
            except (EOFError, OSError, pickle.UnpicklingError):
                requests.put(None)
                return

    threading.Thread(target=read, name="requests", daemon=True).start()
    from stafet.core.redaction import redact
    from stafet.ingest import validation
    from stafet.sources import get_source

    validation._gx_context()
    docs = validation.DocsTally()
    while (req := requests.get()) is not None:
        rows, seconds = 0, validation.STATS.seconds
        try:
            if req[0] == "ping":
                answer: tuple[str, Any] = ("ok", None)
            elif req[0] == "start":
                docs = validation.DocsTally()
                docs.start(req[1])
                answer = ("ok", None)
            elif req[0] == "docs":
                _, file, folder, run_name, run_time = req
                index = validation.build_docs(docs.pop(file), file, Path(folder), run_name, run_time)
                answer = ("ok", str(index) if index else None)
            else:
                _, name, keys, packed, rows, today, institutions, mapping = req
                source = get_source(name)
                fields, columns = validation.unpack_rows(keys, packed, rows)
                failures, mapped = validation.check_chunk(
                    source, fields, validation.columns_from(source, columns, rows), today=today,
                    institutions=institutions, mapping=mapping, docs=docs)
                answer = ("ok", (failures, validation.plain_prepared(mapped)))
        except Exception as e:  # answered, not fatal: the ingest decides
            answer = ("error", redact(f"{type(e).__name__}: {e}"))
        pickle.dump((*answer, validation.STATS.seconds - seconds, rows, *_usage()), out,
                    protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()
        if rows:
            trim()  # a chunk's frames are garbage now: hand the heap back, so the next starts low


def _trim() -> Callable[[], object]:
    """The C library's ``malloc_trim(0)`` (freed heap back to the system), or a no-op without glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return lambda: libc.malloc_trim(0)
    except (OSError, AttributeError):
        return lambda: None


trim = _trim()


if __name__ == "__main__":
    main()
