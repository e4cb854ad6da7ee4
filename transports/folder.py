"""Folder transports: a local (or mounted) folder as an inbox or an outlet.

:class:`FolderOutlet` writes a hidden temporary file (``.NAME.XXXXXXXX.part``), fsyncs it
and renames it into place, so a receiver never sees a partial file under ``NAME``.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import io
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
    PROCESSED,
    REASON,
    Inbox,
    InboxEntry,
    Outlet,
    capped,
    check_name,
    free_name,
    free_pair,
    is_hidden,
    temp_name,
    too_large,
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


_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _open_dir(path: str | Path, *, dir_fd: int | None = None) -> int:
    """A descriptor of the directory ``path``, never through a symlink (``ELOOP``/``ENOTDIR`` if one)."""
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC, dir_fd=dir_fd)


def _lexists(name: str, dir_fd: int) -> bool:
    try:
        os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    return True


class FolderInbox(Inbox):
    """An inbox that is a local (or mounted) folder.

    Args:
        path: the folder (it may itself be reached through a symlink the operator set up;
            nothing inside it is followed).
        max_bytes: the largest file :meth:`open` reads (None: no limit).
    """

    def __init__(self, path: str | Path, *, max_bytes: int | None = None) -> None:
        self.path = Path(path)
        self.location = f"folder:{self.path}"
        self.max_bytes = max_bytes

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
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:  # moved away by a concurrent pass since the scan
                    continue
                if min_age and now - st.st_mtime < min_age:
                    continue
                out.append(InboxEntry(entry.name, st.st_size, st.st_mtime))
        return sorted(out, key=lambda e: e.name)

    def open(self, name: str) -> BinaryIO:
        """Open ``name`` for streaming reads (see :meth:`Inbox.open`).

        The file is opened with ``O_NOFOLLOW`` (a symlink is refused, wherever it leads)
        and ``O_NONBLOCK`` (a FIFO cannot hang the pass), and what was opened is checked
        with ``fstat``: a regular file, within ``max_bytes``. No path is looked at twice.
        """
        root = self._root()
        path = root / check_name(name)
        with _os_errors("cannot open the file", self.location, name, missing=TransientError):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | _O_NOFOLLOW | _O_CLOEXEC)
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise FileRejected("the file is a symlink: an inbox never follows one",
                                       file=name, rule="file_name", location=self.location) from None
                raise
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise FileRejected("not a regular file", file=name, rule="file_name",
                                       location=self.location)
                if self.max_bytes is not None and st.st_size > self.max_bytes:
                    raise too_large(name, st.st_size, self.max_bytes, self.location)
                os.set_blocking(fd, True)
                raw = io.FileIO(fd, "rb", closefd=True)
            except BaseException:
                os.close(fd)
                raise
            return capped(raw, self.max_bytes, name, self.location)

    def _sub_fd(self, root_fd: int, sub: str) -> int:
        """A descriptor of ``sub/`` inside the inbox, created (0700) if missing; never a symlink."""
        with contextlib.suppress(FileExistsError):
            os.mkdir(sub, 0o700, dir_fd=root_fd)
        try:
            return _open_dir(sub, dir_fd=root_fd)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise ConfigError(f"{sub}/ in the inbox is a symlink or not a folder: refusing to "
                                  "move files into it (remove it; stafet creates the folder)",
                                  location=self.location) from None
            raise

    def _move(self, name: str, sub: str, reason: str | None) -> str:
        root = self._root()
        check_name(name)
        with _os_errors(f"cannot move the file to {sub}/", self.location, name,
                        missing=TransientError):
            root_fd = _open_dir(root)
            try:
                os.lstat(name, dir_fd=root_fd)
                dest_fd = self._sub_fd(root_fd, sub)
                try:
                    final = self._place(root_fd, dest_fd, name, reason is not None)
                    if sub == PROCESSED:
                        os.utime(final, dir_fd=dest_fd, follow_symlinks=False)
                    if reason is not None:
                        self._write_reason(dest_fd, final, reason)
                    os.fsync(dest_fd)
                finally:
                    os.close(dest_fd)
                with contextlib.suppress(OSError):
                    os.fsync(root_fd)
            finally:
                os.close(root_fd)
        log.info("moved %s to %s/ in %s", name, sub, self.location)
        return f"{sub}/{final}"

    @staticmethod
    def _place(root_fd: int, dest_fd: int, name: str, with_reason: bool) -> str:
        """Move ``name`` into the folder under a free name; never replace a file there.

        A hard link fails if the name was taken meanwhile (then the next free name is
        tried); where hard links are not possible, a rename under a name just seen free.
        """
        pick = free_pair if with_reason else free_name
        for _ in range(100):
            final = pick(name, lambda n: _lexists(n, dest_fd))
            try:
                os.link(name, final, src_dir_fd=root_fd, dst_dir_fd=dest_fd, follow_symlinks=False)
            except FileExistsError:
                continue  # lost a race for the name: pick again
            except OSError as e:
                if e.errno not in (errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EOPNOTSUPP,
                                   errno.EMLINK, errno.EACCES):
                    raise
                os.rename(name, final, src_dir_fd=root_fd, dst_dir_fd=dest_fd)
                return final
            os.unlink(name, dir_fd=root_fd)
            return final
        raise TransientError("no free name to move the file to", file=name)

    def _write_reason(self, dest_fd: int, final: str, reason: str) -> None:
        """``<final>.reason.txt``, created new (0600), never through a link."""
        try:
            fd = os.open(final + REASON, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC,
                         0o600, dir_fd=dest_fd)
        except FileExistsError:
            log.warning("not writing the reason for %s in %s: %s%s appeared meanwhile", final,
                        self.location, final, REASON)
            return
        with os.fdopen(fd, "wb") as fh:
            fh.write((redact(reason) + "\n").encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())

    def _remove(self, name: str) -> None:
        root = self._root()
        with _os_errors("cannot remove the file", self.location, name, missing=TransientError):
            root_fd = _open_dir(root)
            try:
                os.unlink(name, dir_fd=root_fd)
                with contextlib.suppress(OSError):
                    os.fsync(root_fd)
            finally:
                os.close(root_fd)
        log.info("removed %s from %s", name, self.location)

    def _purge(self, sub: str, before: float) -> int:
        root, removed = self._root(), 0
        with _os_errors(f"cannot clean {sub}/", self.location):
            root_fd = _open_dir(root)
            try:
                try:
                    dest_fd = _open_dir(sub, dir_fd=root_fd)
                except FileNotFoundError:
                    return 0
                except OSError as e:
                    if e.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise ConfigError(f"{sub}/ in the inbox is a symlink or not a folder",
                                          location=self.location) from None
                    raise
                try:
                    for entry in os.scandir(dest_fd):
                        st = entry.stat(follow_symlinks=False)
                        if stat.S_ISDIR(st.st_mode) or st.st_mtime >= before:
                            continue
                        os.unlink(entry.name, dir_fd=dest_fd)
                        removed += 1
                finally:
                    os.close(dest_fd)
            finally:
                os.close(root_fd)
        if removed:
            log.info("removed %d file(s) from %s/ in %s (retention)", removed, sub, self.location)
        return removed


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
