"""The validation worker's side: :func:`handler`, served by :mod:`stafet.core.workers`.

:mod:`stafet.ingest.worker` starts it as ``Worker("stafet.ingest.worker_main:handler")``.
The setup imports GX and builds its context once (``scipy.stats`` and ``altair`` stay
deferred, :func:`stafet.ingest.gx._defer_unused_imports`); then each tagged request is
answered with ``(value, GX seconds, rows)``, which the parent adds to
:data:`stafet.ingest.gx.STATS`:

* ``("ping",)`` → ``None`` (the worker is ready);
* ``("start", file)`` → ``None``: count the chunks from now on for ``file``'s Data Docs;
* ``("docs", file, folder, run_name, run_time)`` → the index page's path, or ``None``;
* ``("check", source, keys, packed, rows, today, institutions, mapping)`` →
  ``(failures, mapped rows)`` of :func:`stafet.ingest.mapping.check_chunk`;
* ``("check_parts", source, [(keys, packed, rows, mapping), …], today, institutions)`` →
  per part ``(failures, mapped rows, Data Docs tally)``: several small files of one source
  validated in one GX call (:func:`stafet.ingest.gx.validate_parts`), each mapped alone.

Once a chunk's answer is written its frames are garbage: the heap is handed back to
the system (``malloc_trim``) so the next chunk starts low.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mappings import get_source
from stafet.ingest import docs, gx, packing
from stafet.ingest import mapping as map_step


class _Validation:
    """The handler: GX ready, one Data Docs tally, trimming after each chunk."""

    def __init__(self) -> None:
        gx._gx_context()
        # GX and pandas leave ~200,000 objects that live as long as the worker: frozen,
        # the collector stops walking them on every full collection a chunk's objects set off.
        gc.freeze()
        self._docs = docs.DocsTally()
        self._chunk_done = False

    def __call__(self, req: tuple[Any, ...]) -> tuple[Any, float, int]:
        seconds = gx.STATS.seconds
        if req[0] == "ping":
            return None, 0.0, 0
        if req[0] == "start":
            self._docs = docs.DocsTally()
            self._docs.start(req[1])
            return None, 0.0, 0
        if req[0] == "docs":
            _, file, folder, run_name, run_time = req
            index = docs.build_docs(self._docs.pop(file), file, Path(folder), run_name, run_time)
            return (str(index) if index else None), 0.0, 0
        if req[0] == "check_parts":
            return self._check_parts(*req[1:]), gx.STATS.seconds - seconds, sum(p[2] for p in req[2])
        _, name, keys, packed, rows, today, institutions, mapping = req
        self._chunk_done = rows > 0
        source = get_source(name)
        fields, columns = packing.unpack_rows(keys, packed, rows)
        dense = bool(keys) and all(isinstance(c, str) for c in packed)  # every row has every field
        failures, mapped = map_step.check_chunk(
            source, fields, gx.columns_from(source, columns, rows), today=today,
            institutions=institutions, mapping=mapping, docs=self._docs,
            fields=columns if dense else None, n=rows)
        return (failures, map_step.plain_prepared(mapped)), gx.STATS.seconds - seconds, rows

    def _check_parts(self, name: str, parts: list[tuple[Any, ...]], today: Any,
                     institutions: list[str]) -> list[tuple[Any, ...]]:
        self._chunk_done = True
        source = get_source(name)
        unpacked = [packing.unpack_rows(keys, packed, n) for keys, packed, n, _ in parts]
        columns = [gx.columns_from(source, cols, part[2])
                   for (_, cols), part in zip(unpacked, parts, strict=True)]
        outcomes = gx.validate_parts(source, columns, today=today, institutions=institutions)
        out = []
        for (rows, cols), (keys, packed, n, mapping), (failures, tally) in zip(unpacked, parts, outcomes,
                                                                                strict=True):
            dense = bool(keys) and all(isinstance(c, str) for c in packed)
            mapped = map_step.map_checked(source, rows, failures, mapping, fields=cols if dense else None,
                                          n=n)
            out.append((failures, map_step.plain_prepared(mapped), tally))
        return out

    def after(self) -> None:
        """After a chunk's answer is written: hand the freed heap back, so the next starts low."""
        if self._chunk_done:
            self._chunk_done = False
            trim()


def handler(setup: Any) -> _Validation:
    """The worker's handler (``setup`` is unused: GX needs nothing from the parent)."""
    return _Validation()


def _trim() -> Callable[[], object]:
    """The C library's ``malloc_trim(0)`` (freed heap back to the system), or a no-op without glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return lambda: libc.malloc_trim(0)
    except (OSError, AttributeError):
        return lambda: None


trim = _trim()
