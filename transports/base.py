"""What every transport shares: the :class:`Inbox` and :class:`Outlet` roles, safe names.

* An :class:`Inbox` is a drop location stafet reads from: a source system's export
  folder, or an organisation's package inbox. It lists files matching a glob, opens
  one as a binary stream (files may be hundreds of MB: never read whole), and moves a
  file to ``processed/`` or ``rejected/`` beside it when done (or removes it, once its
  content is kept elsewhere: :meth:`Inbox.discard`).

Hardening every inbox follows (an inbox is written by someone else):

* a symlink is never followed: not an entry (refused when opened, and moved aside as
  the link itself), not ``processed/`` or ``rejected/`` (a :class:`ConfigError`);
* a file is opened first and checked on what was opened (no check-then-open race);
* files it writes (the ``.reason.txt``) are created new (``O_CREAT | O_EXCL``, mode
  0600, never through a link), and a moved file never replaces another: both are kept,
  each with its reason beside it;
* with ``max_bytes``, a bigger file is refused (rule ``too_large``) from its size
  before a byte of it is read, and a stream stops at the limit if the file grows.
* An :class:`Outlet` delivers one named blob: ``put(name, data)``.

The helpers here (:func:`check_name`, :func:`is_hidden`, :func:`temp_name`,
:func:`free_name`) are the naming rules every folder-like transport follows: plain names
only, dot files are temporaries, a re-delivered file keeps both copies.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import posixpath
import secrets
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import TracebackType
from typing import Any, BinaryIO, cast

from stafet.core.errors import FileRejected, TransientError

__all__ = [
    "PROCESSED",
    "REASON",
    "REJECTED",
    "Inbox",
    "InboxEntry",
    "Outlet",
    "capped",
    "check_name",
    "free_name",
    "free_pair",
    "is_hidden",
    "temp_name",
    "too_large",
]

PROCESSED = "processed"
REJECTED = "rejected"
REASON = ".reason.txt"
"""The suffix of the reason file written beside a rejected file."""


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


def free_pair(name: str, exists: Any) -> str:
    """Like :func:`free_name`, but also free of ``<result>.reason.txt`` (a file and its reason)."""
    return free_name(name, lambda n: exists(n) or exists(n + REASON))


def too_large(name: str, size: int, limit: int, location: str) -> FileRejected:
    """The refusal of a file bigger than its inbox's ``max_bytes`` (names sizes, never content)."""
    return FileRejected(f"the file is {size} bytes, more than this inbox's limit of {limit} bytes "
                        "(max_bytes): it was not read", file=name, rule="too_large", location=location)


class _Capped(io.RawIOBase):
    """A raw stream that refuses to read past ``limit`` bytes (a file that grew after its check)."""

    def __init__(self, raw: Any, limit: int, name: str, location: str) -> None:
        self._raw, self._left, self._limit = raw, limit, limit
        self._name, self._location = name, location

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        view = memoryview(b)
        if self._left <= 0:
            # One byte more than the limit means the file grew: refuse rather than truncate.
            if self._raw.read(1):
                raise too_large(self._name, self._limit + 1, self._limit, self._location)
            return 0
        want = min(len(view), self._left)
        n = self._raw.readinto(view[:want])
        if n:
            self._left -= n
        return n or 0

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(Exception):
                self._raw.close()
        super().close()


def capped(raw: Any, limit: int | None, name: str, location: str,
           buffer_size: int = 256 * 1024) -> BinaryIO:
    """A buffered binary stream over ``raw`` that raises :func:`too_large` past ``limit`` bytes."""
    if limit is None:
        return cast(BinaryIO, io.BufferedReader(raw, buffer_size=buffer_size))
    return cast(BinaryIO, io.BufferedReader(_Capped(raw, limit, name, location), buffer_size=buffer_size))


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
    Symlinks are listed (so they can be moved aside) but never opened.

    ``max_bytes`` (None: no limit) is the largest file :meth:`open` reads; see
    :meth:`too_large`.
    """

    location: str
    max_bytes: int | None = None

    def too_large(self, entry: InboxEntry) -> bool:
        """Whether ``entry`` is bigger than ``max_bytes`` (from its listed size: nothing is read)."""
        return self.max_bytes is not None and entry.size > self.max_bytes

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
            FileRejected: the name is unsafe (rule ``file_name``), it is a symlink or not a
                regular file (``file_name``), or it is bigger than ``max_bytes``
                (``too_large``: checked on the opened file before reading, and again by
                the stream should the file grow).
            TransientError: the file vanished or the connection failed.
        """

    def read(self, name: str) -> bytes:
        """Return the whole content of ``name`` (only for small files such as packages)."""
        with self.open(name) as fh:
            return fh.read()

    def mark_processed(self, name: str) -> str:
        """Move ``name`` into ``processed/`` (created if missing); return its new path.

        If ``processed/name`` exists already, the file becomes ``processed/stem.N.ext``.
        Its modification time becomes the time of the move (what :meth:`purge` counts from).
        """
        return self._move(name, PROCESSED, None)

    def reject(self, name: str, reason: str | None = None) -> str:
        """Move ``name`` into ``rejected/`` (created if missing); return its new path.

        With ``reason``, a ``<new name>.reason.txt`` (CPR-redacted) is written beside it
        for whoever runs the source system. A file rejected earlier under the same name
        (or its reason) is kept: the new one gets a free name (``stem.N.ext``).
        """
        return self._move(name, REJECTED, reason)

    def discard(self, name: str) -> None:
        """Remove ``name`` from the inbox (a symlink: the link), once its content is kept elsewhere."""
        self._remove(check_name(name))

    def purge(self, sub: str, older_than: float, *, now: float | None = None) -> int:
        """Remove the files in ``sub/`` (e.g. ``processed``) moved there over ``older_than`` seconds ago.

        A file's age counts from its move (:meth:`mark_processed` sets its modification
        time). Returns how many were removed; a missing folder is none.
        """
        return self._purge(sub, (now if now is not None else time.time()) - older_than)

    @abstractmethod
    def _move(self, name: str, sub: str, reason: str | None) -> str:
        """Move ``name`` into the folder ``sub`` beside it (see :meth:`mark_processed`, :meth:`reject`)."""

    @abstractmethod
    def _remove(self, name: str) -> None:
        """Remove the entry ``name`` (see :meth:`discard`)."""

    @abstractmethod
    def _purge(self, sub: str, before: float) -> int:
        """Remove the files in ``sub/`` modified before ``before`` (epoch s); see :meth:`purge`."""

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
