"""The temporary Prefect server of ``stafet run``, bound to the life of the process that starts it.

Without ``PREFECT_API_URL``, Prefect starts a temporary server of its own
(``prefect.server.api.server.SubprocessASGIServer``: ``python -m uvicorn …`` as a child
process) the first time a flow needs the API, and stops it from an ``atexit`` handler. A
``stafet run`` ended by SIGKILL, or by SIGTERM (Python's default action runs no ``atexit``
handler), left that server running, an orphan holding its port and its SQLite database.

:func:`bind_temporary_server` starts that same server up front, from the calling (main)
thread, with one difference: the child asks the kernel, before it runs anything
(``prctl(PR_SET_PDEATHSIG, SIGTERM)`` in ``preexec_fn``), to be sent SIGTERM when its parent
dies, however it dies: SIGKILL included. Prefect keeps one temporary server per process and
finds this one (its registry is keyed by port, ``None`` for "any"), so the flows use it.

What holds: on Linux, when ``stafet run`` ends (normally, by an exception, by SIGTERM or
SIGKILL) its temporary server gets SIGTERM and exits within seconds. A normal exit still
stops it as Prefect does (``atexit``). Elsewhere than Linux nothing changes.
``PR_SET_PDEATHSIG`` fires when the *thread* that started the child ends, which is why
the server is started here, from the main thread, before the flow's worker threads exist.

May import ``stafet.core`` and Prefect.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get ``sig`` when this process dies (Linux); else None."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork, not in the child
    parent = os.getpid()

    def preexec() -> None:
        if prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            os._exit(70)  # cannot be bound: better no server than an orphan
        if os.getppid() != parent:  # the parent died between fork and prctl
            os._exit(0)

    return preexec


class _Subprocess:
    """The ``subprocess`` module as the server module sees it while it starts its child."""

    def __init__(self, module: Any, preexec: Callable[[], None]) -> None:
        self._module = module
        self.Popen = functools.partial(module.Popen, preexec_fn=preexec)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


def _bound_server_class() -> type:
    from prefect.server.api import server as server_module

    class BoundServer(server_module.SubprocessASGIServer):
        """Prefect's temporary server, its process started with :func:`die_with_parent`."""

        def _run_uvicorn_command(self) -> Any:
            preexec = die_with_parent()
            if preexec is None:
                return super()._run_uvicorn_command()
            real = server_module.subprocess
            server_module.subprocess = _Subprocess(real, preexec)  # type: ignore[assignment]
            try:
                return super()._run_uvicorn_command()
            finally:
                server_module.subprocess = real

    return BoundServer


def bind_temporary_server() -> str | None:
    """Start the temporary Prefect server now, bound to this process; its API URL.

    None when no temporary server is wanted (``PREFECT_API_URL`` names a server, or
    ephemeral mode is off): then nothing is started.
    """
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return None
    server = _bound_server_class()()  # registered as Prefect's one temporary server of this process
    server.start()
    return str(server.api_url)
