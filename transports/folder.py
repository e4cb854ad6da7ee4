"""Folder transports: a local (or mounted) folder as an inbox or an outlet.

:class:`FolderOutlet` writes a hidden temporary file (``.NAME.XXXXXXXX.part``), fsyncs it
and renames it into place, so a receiver never sees a partial file under ``NAME``.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import os
import stat
import time
from collections.abc import Iterator
from fnmatch import fnmatchcase
from pathlib import Path
from typing import BinaryIO

from stafet.core.errors import ConfigError, FileRejected, StafetError, TransientError
from stafet.core.redaction import redact
from transports.base import (
    Inbox,
    InboxEntry,
    Outlet,
    check_name,
    free_name,
    is_hidden,
    temp_name,
)

__all__ = ["FolderInbox", "FolderOutlet"]

log = logging.getLogger("stafet.transport")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def _os_errors(what: str, where: str, name: str | None = None, *,
               missing: type[StafetError] = ConfigError) -> Iterator[None]:
    """Turn OSErrors from local file operations into stafet errors."""
    try:
        yield
    except StafetError:
        raise
    except FileNotFoundError:
        raise missing(f"{what}: not found", location=where, file=name) from None
    except PermissionError:
        raise ConfigError(f"{what}: permission denied", location=where, file=name) from None
    except OSError as e:
        raise TransientError(f"{what}: {e.strerror or type(e).__name__}", location=where,
                             file=name) from None


class FolderInbox(Inbox):
    """An inbox that is a local (or mounted) folder."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.location = f"folder:{self.path}"

    def _root(self) -> Path:
        if not self.path.is_dir():
            raise ConfigError("inbox folder does not exist", location=self.location)
        return self.path.resolve()

    def entries(self, pattern: str = "*", *, min_age: float = 0.0) -> builtins.list[InboxEntry]:
        """Files matching ``pattern`` in the folder, sorted by name (see :class:`Inbox`)."""
        root, now, out = self._root(), time.time(), []
        with _os_errors("cannot list the inbox", self.location):
            for entry in os.scandir(root):
                if is_hidden(entry.name) or not fnmatchcase(entry.name, pattern):
                    continue
                if not (entry.is_symlink() or entry.is_file(follow_symlinks=False)):
                    continue
                try:
                    check_name(entry.name)
                except FileRejected:
                    log.warning("ignoring a file with an unsafe name in %s: %s", self.location,
                                redact(repr(entry.name)))
                    continue
                st = entry.stat(follow_symlinks=False)
                if min_age and now - st.st_mtime < min_age:
                    continue
                out.append(InboxEntry(entry.name, st.st_size, st.st_mtime))
        return sorted(out, key=lambda e: e.name)

    def open(self, name: str) -> BinaryIO:
        """Open ``name`` for streaming reads (see :meth:`Inbox.open`)."""
        root = self._root()
        path = root / check_name(name)
        if path.is_symlink():
            target = path.resolve()
            if not target.is_relative_to(root):
                raise FileRejected("the file is a symlink that leads outside the inbox",
                                   file=name, rule="file_name", location=self.location)
        with _os_errors("cannot open the file", self.location, name, missing=TransientError):
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise FileRejected("not a regular file", file=name, rule="file_name",
                                       location=self.location)
            except BaseException:
                os.close(fd)
                raise
            return os.fdopen(fd, "rb")

    def _move(self, name: str, sub: str, reason: str | None) -> str:
        root = self._root()
        src = root / check_name(name)
        with _os_errors(f"cannot move the file to {sub}/", self.location, name,
                        missing=TransientError):
            os.lstat(src)
            dest_dir = root / sub
            dest_dir.mkdir(exist_ok=True)
            final = free_name(name, lambda n: os.path.lexists(dest_dir / n))
            os.rename(src, dest_dir / final)
            if reason is not None:
                (dest_dir / f"{final}.reason.txt").write_text(redact(reason) + "\n", encoding="utf-8")
            _fsync_dir(dest_dir)
            _fsync_dir(root)
        log.info("moved %s to %s/ in %s", name, sub, self.location)
        return f"{sub}/{final}"


class FolderOutlet(Outlet):
    """Deliver into a local folder: temp file, fsync, ``os.replace``, fsync the folder.

    The folder is created if missing (parents too).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.endpoint = f"folder:{self.path}"

    def put(self, name: str, data: bytes) -> None:
        """Write ``data`` to ``NAME`` atomically (see :meth:`Outlet.put`)."""
        check_name(name)
        with _os_errors("cannot deliver into the folder", self.endpoint, name):
            self.path.mkdir(parents=True, exist_ok=True)
            tmp = self.path / temp_name(name)
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                             0o640)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self.path / name)
            except BaseException:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                raise
            _fsync_dir(self.path)
        log.info("delivered %s (%d bytes) to %s", name, len(data), self.endpoint)
