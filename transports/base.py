"""What every transport shares: the :class:`Inbox` and :class:`Outlet` roles, safe names.

* An :class:`Inbox` is a drop location stafet reads from: a source system's export
  folder, or an organisation's package inbox. It lists files matching a glob, opens
  one as a binary stream (files may be hundreds of MB: never read whole), and moves a
  file to ``processed/`` or ``rejected/`` beside it when done.
* An :class:`Outlet` delivers one named blob: ``put(name, data)``.

The helpers here (:func:`check_name`, :func:`is_hidden`, :func:`temp_name`,
:func:`free_name`) are the naming rules every folder-like transport follows: plain names
only, dot files are temporaries, a re-delivered file keeps both copies.
"""

from __future__ import annotations

import builtins
import posixpath
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import TracebackType
from typing import Any, BinaryIO

from stafet.core.errors import FileRejected, TransientError

__all__ = ["PROCESSED", "REJECTED", "Inbox", "InboxEntry", "Outlet", "check_name", "free_name",
           "is_hidden", "temp_name"]

PROCESSED = "processed"
REJECTED = "rejected"


def check_name(name: str) -> str:
    r"""Return ``name`` if it is a plain file name inside one folder.

    Raises:
        FileRejected: (rule ``file_name``) for an empty name, ``.``/``..``, or one
            containing ``/``, ``\``, ``..`` or a NUL byte.
    """
    if not name or name in (".", "..") or any(c in name for c in ("/", "\\", "\0")) or ".." in name:
        raise FileRejected("unsafe file name: only a plain name inside the folder is allowed "
                           "(no '/', '\\' or '..')", file=repr(name), rule="file_name")
    return name


def is_hidden(name: str) -> bool:
    """Whether ``name`` is a dot file, which no inbox lists."""
    # Dot files are temporaries (ours: .NAME.XXXX.part) or not meant for us.
    return name.startswith(".")


def temp_name(name: str) -> str:
    """The hidden name an upload of ``name`` is written under before its rename."""
    return f".{name}.{secrets.token_hex(4)}.part"


def free_name(name: str, exists: Any) -> str:
    """``name``, or ``stem.N.ext`` when ``name`` is taken (a re-delivered file keeps both)."""
    if not exists(name):
        return name
    stem, ext = posixpath.splitext(name)
    for n in range(1, 10_000):
        candidate = f"{stem}.{n}{ext}"
        if not exists(candidate):
            return candidate
    raise TransientError("no free name to move the file to", file=name)


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """One file waiting in an inbox: name, size in bytes, modification time (epoch s)."""

    name: str
    size: int
    mtime: float


class Inbox(ABC):
    """A drop location stafet reads files from.

    Use as a context manager (or call :meth:`close`) so remote connections are closed.
    Hidden files (``.name``, e.g. uploads in progress) and folders are never listed.
    """

    location: str

    @abstractmethod
    def entries(self, pattern: str = "*", *, min_age: float = 0.0) -> builtins.list[InboxEntry]:
        """Files whose name matches ``pattern`` (case-sensitive glob), sorted by name.

        Args:
            pattern: an ``fnmatch`` glob such as ``"*.csv"``.
            min_age: skip files modified less than this many seconds ago (a source
                system that writes in place may still be writing them).
        """

    def list(self, pattern: str = "*", *, min_age: float = 0.0) -> builtins.list[str]:
        """Names of the files matching ``pattern``, sorted; see :meth:`entries`."""
        return [e.name for e in self.entries(pattern, min_age=min_age)]

    @abstractmethod
    def open(self, name: str) -> BinaryIO:
        """Open ``name`` for streaming binary reads; close it (``with``) when done.

        Raises:
            FileRejected: the name is unsafe, or it is a symlink leading outside the
                inbox, or not a regular file.
            TransientError: the file vanished or the connection failed.
        """

    def read(self, name: str) -> bytes:
        """Return the whole content of ``name`` (only for small files such as packages)."""
        with self.open(name) as fh:
            return fh.read()

    def mark_processed(self, name: str) -> str:
        """Move ``name`` into ``processed/`` (created if missing); return its new path.

        If ``processed/name`` exists already, the file becomes ``processed/stem.N.ext``.
        """
        return self._move(name, PROCESSED, None)

    def reject(self, name: str, reason: str | None = None) -> str:
        """Move ``name`` into ``rejected/`` (created if missing); return its new path.

        With ``reason``, a ``<new name>.reason.txt`` (CPR-redacted) is written beside it
        for whoever runs the source system.
        """
        return self._move(name, REJECTED, reason)

    @abstractmethod
    def _move(self, name: str, sub: str, reason: str | None) -> str:
        """Move ``name`` into the folder ``sub`` beside it (see :meth:`mark_processed`, :meth:`reject`)."""

    def close(self) -> None:  # noqa: B027 - a no-op default, not abstract
        """Release connections (nothing to do for folders)."""

    def __enter__(self) -> Inbox:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class Outlet(ABC):
    """A delivery endpoint: ``put(name, data)`` hands one blob to the receiver."""

    endpoint: str

    @abstractmethod
    def put(self, name: str, data: bytes) -> None:
        """Deliver ``data`` as ``name``, all or nothing.

        Raises:
            TransientError: try again later (network, SMTP 4xx); nothing is visible
                under ``name`` on folder and SFTP outlets.
            DeliveryFailed: the receiver refused for good (SMTP 5xx, bad certificate).
            ConfigError: the endpoint or its credentials are wrong.
        """

    def close(self) -> None:  # noqa: B027 - a no-op default, not abstract
        """Release connections (nothing to do for folders)."""

    def __enter__(self) -> Outlet:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
