"""Handlers for tests/core/test_workers.py, imported by the worker children (not a test module)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any


def echo(setup: Any) -> Callable[[Any], Any]:
    """Answer ``(setup, request, pid)``; sleep when asked; raise on ``"boom"``; exit on ``"die"``."""
    def handle(req: Any) -> Any:
        if req == "boom":
            raise ValueError("asked to fail")
        if req == "die":
            os._exit(3)
        if isinstance(req, tuple) and req[0] == "sleep":
            time.sleep(req[1])
            req = req[2]
        if req == "unpicklable":
            return lambda: None
        if req == "unpicklable-late":  # fails after the first 64 KB frames went out
            return ["x" * 300_000, lambda: None]
        return setup, req, os.getpid()
    return handle


def broken(setup: Any) -> Callable[[Any], Any]:
    """A setup that fails."""
    raise RuntimeError("no keys for you")


class _Tidy:
    """Answers how many times :meth:`after` ran before this request."""

    def __init__(self) -> None:
        self.afters = 0

    def __call__(self, req: Any) -> Any:
        return req, self.afters

    def after(self) -> None:
        self.afters += 1


def tidy(setup: Any) -> _Tidy:
    """A handler with an ``after`` hook."""
    return _Tidy()
