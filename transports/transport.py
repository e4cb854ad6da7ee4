"""Transports: bytes in and out of drop folders, SFTP servers and SMTP relays.

Two roles, no domain logic:

* An :class:`Inbox` is a drop location stafet reads from: a source system's export
  folder, or an organisation's package inbox. It lists files matching a glob, opens
  one as a binary stream (files may be hundreds of MB: never read whole), and moves a
  file to ``processed/`` or ``rejected/`` beside it when done.
* An :class:`Outlet` delivers one named blob: ``put(name, data)``. Folder and SFTP
  outlets write a hidden temporary file (``.NAME.XXXXXXXX.part``) and rename it into
  place, so a receiver never sees a partial file under ``NAME``; SMTP sends the bytes
  as one message.

Endpoints are strings (see :func:`open_outlet`, :func:`open_inbox`)::

    folder:/srv/drop
    sftp://user@host:2222/abs/path      key auth; the host key is pinned
    smtp://relay.example:25             STARTTLS when offered

Errors follow :mod:`stafet.core.errors`: network trouble and SMTP 4xx are
:class:`~stafet.core.errors.TransientError`; SMTP 5xx and bad TLS certificates are
:class:`~stafet.core.errors.DeliveryFailed`; a wrong host key, a refused client key or a
missing folder are :class:`~stafet.core.errors.ConfigError`; an unsafe file name is
:class:`~stafet.core.errors.FileRejected`. Messages name files and hosts, never contents.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import contextlib
import hashlib
import io
import logging
import os
import posixpath
import secrets
import smtplib
import ssl
import stat
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Literal, cast
from urllib.parse import unquote, urlsplit

import paramiko

from stafet.core.errors import ConfigError, DeliveryFailed, FileRejected, StafetError, TransientError
from stafet.core.redaction import redact

__all__ = [
    "FolderInbox",
    "FolderOutlet",
    "Inbox",
    "InboxEntry",
    "Outlet",
    "SftpInbox",
    "SftpOutlet",
    "SmtpOutlet",
    "check_name",
    "open_inbox",
    "open_outlet",
]

log = logging.getLogger("stafet.transport")

PROCESSED = "processed"
REJECTED = "rejected"
_CHUNK = 1 << 20  # upload write size
_READ_WINDOW = 4 << 20  # SFTP read-ahead per round of pipelined requests (bounded memory)
_READ_REQUEST = 32768  # the largest read request OpenSSH's sftp-server answers in full


# --------------------------------------------------------------------------- names


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


def _hidden(name: str) -> bool:
    # Dot files are temporaries (ours: .NAME.XXXX.part) or not meant for us.
    return name.startswith(".")


def _temp_name(name: str) -> str:
    return f".{name}.{secrets.token_hex(4)}.part"


def _free_name(name: str, exists: Any) -> str:
    """``name``, or ``stem.N.ext`` when ``name`` is taken (a re-delivered file keeps both)."""
    if not exists(name):
        return name
    stem, ext = posixpath.splitext(name)
    for n in range(1, 10_000):
        candidate = f"{stem}.{n}{ext}"
        if not exists(candidate):
            return candidate
    raise TransientError("no free name to move the file to", file=name)


# --------------------------------------------------------------------------- interfaces


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

    @abstractmethod
    def mark_processed(self, name: str) -> str:
        """Move ``name`` into ``processed/`` (created if missing); return its new path.

        If ``processed/name`` exists already, the file becomes ``processed/stem.N.ext``.
        """

    @abstractmethod
    def reject(self, name: str, reason: str | None = None) -> str:
        """Move ``name`` into ``rejected/`` (created if missing); return its new path.

        With ``reason``, a ``<new name>.reason.txt`` (CPR-redacted) is written beside it
        for whoever runs the source system.
        """

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


# --------------------------------------------------------------------------- folders


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
                if _hidden(entry.name) or not fnmatchcase(entry.name, pattern):
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
            final = _free_name(name, lambda n: os.path.lexists(dest_dir / n))
            os.rename(src, dest_dir / final)
            if reason is not None:
                (dest_dir / f"{final}.reason.txt").write_text(redact(reason) + "\n", encoding="utf-8")
            _fsync_dir(dest_dir)
            _fsync_dir(root)
        log.info("moved %s to %s/ in %s", name, sub, self.location)
        return f"{sub}/{final}"

    def mark_processed(self, name: str) -> str:
        """Move ``name`` into ``processed/`` (see :meth:`Inbox.mark_processed`)."""
        return self._move(name, PROCESSED, None)

    def reject(self, name: str, reason: str | None = None) -> str:
        """Move ``name`` into ``rejected/`` (see :meth:`Inbox.reject`)."""
        return self._move(name, REJECTED, reason)


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
            tmp = self.path / _temp_name(name)
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


# --------------------------------------------------------------------------- SFTP


@dataclass(frozen=True)
class _SftpTarget:
    host: str
    port: int
    user: str
    path: str

    @property
    def where(self) -> str:
        return f"sftp://{self.user}@{self.host}:{self.port}{self.path}"


def _parse_sftp_url(url: str) -> _SftpTarget:
    u = urlsplit(url)
    if u.scheme != "sftp":
        raise ConfigError("not an sftp:// URL", endpoint=url)
    if u.password is not None:
        raise ConfigError("no passwords in SFTP URLs: stafet logs in with a key (identity)",
                          endpoint=f"sftp://{u.hostname}")
    try:
        port = u.port or 22
    except ValueError:
        raise ConfigError("the port of the SFTP URL is not a number", endpoint=url) from None
    if not u.hostname or not u.username:
        raise ConfigError("an SFTP URL needs user and host: sftp://user@host[:port]/path",
                          endpoint=url)
    path = unquote(u.path) or "."
    return _SftpTarget(u.hostname, port, unquote(u.username), path)


def _parse_host_key(line: str, where: str) -> paramiko.PKey:
    """Parse the pinned host key line ``ssh-ed25519 AAAA… [comment]`` (known_hosts lines work too)."""
    parts = line.split()
    for i, token in enumerate(parts[:-1]):
        if token.startswith(("ssh-", "ecdsa-", "sk-")):
            try:
                return paramiko.PKey.from_type_string(token, base64.b64decode(parts[i + 1],
                                                                              validate=True))
            except (binascii.Error, ValueError, paramiko.SSHException) as e:
                raise ConfigError(f"the pinned host key is not a valid {token} key: {e}",
                                  endpoint=where) from None
    raise ConfigError("an SFTP endpoint needs its host key pinned as an OpenSSH public key "
                      "line ('ssh-ed25519 AAAA…')", endpoint=where)


def _load_identity(identity: str, passphrase: str | None, where: str) -> paramiko.PKey:
    if not identity:
        raise ConfigError("an SFTP endpoint needs an identity (path of the private key)",
                          endpoint=where)
    try:
        if identity.lstrip().startswith("-----BEGIN"):
            for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
                try:
                    return cls.from_private_key(io.StringIO(identity), passphrase)
                except paramiko.PasswordRequiredException:
                    raise
                except paramiko.SSHException:
                    continue
            raise ConfigError("the identity is not a private key paramiko can read",
                              endpoint=where)
        return paramiko.PKey.from_path(Path(identity).expanduser(), passphrase)
    except paramiko.PasswordRequiredException:
        raise ConfigError("the identity key is encrypted: give its passphrase",
                          endpoint=where) from None
    except FileNotFoundError:
        raise ConfigError("identity key file not found", endpoint=where,
                          identity=identity) from None
    except (OSError, ValueError, paramiko.SSHException) as e:
        raise ConfigError(f"cannot load the identity key: {e}", endpoint=where,
                          identity=identity) from None


class _SftpSession:
    """One SSH connection with a pinned host key; reconnects after a failure."""

    def __init__(self, target: _SftpTarget, host_key: str, identity: str, *,
                 passphrase: str | None, connect_timeout: float, timeout: float) -> None:
        self.target = target
        self.host_key = _parse_host_key(host_key, target.where)
        self.pkey = _load_identity(identity, passphrase, target.where)
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None

    def live(self) -> paramiko.SFTPClient | None:
        """Return the SFTP client if its connection is still up, else None (no reconnect)."""
        t = self._client.get_transport() if self._client is not None else None
        return self._sftp if t is not None and t.is_active() else None

    def sftp(self) -> paramiko.SFTPClient:
        """Return the SFTP client, connecting (again) when needed."""
        live = self.live()
        if live is not None:
            return live
        self.drop()
        self._connect()
        assert self._sftp is not None
        return self._sftp

    def _connect(self) -> None:
        tg, host = self.target, f"{self.target.host}:{self.target.port}"
        client = paramiko.SSHClient()
        known = tg.host if tg.port == 22 else f"[{tg.host}]:{tg.port}"
        client.get_host_keys().add(known, self.host_key.get_name(), self.host_key)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        t = self.connect_timeout
        try:
            client.connect(tg.host, tg.port, username=tg.user, pkey=self.pkey, timeout=t,
                           banner_timeout=t, auth_timeout=t, channel_timeout=t,
                           allow_agent=False, look_for_keys=False)
            sftp = client.open_sftp()
            sftp.get_channel().settimeout(self.timeout)  # type: ignore[union-attr]
        except paramiko.BadHostKeyException as e:
            client.close()
            raise ConfigError(
                f"SFTP host {host} presented a host key that does not match the pinned one "
                f"(got {e.key.get_name()} SHA256:{_fingerprint(e.key)}): refusing to connect",
                endpoint=tg.where) from None
        except paramiko.AuthenticationException:
            client.close()
            raise ConfigError(f"SFTP host {host} refused the identity key for user {tg.user!r}",
                              endpoint=tg.where) from None
        except paramiko.SSHException as e:
            client.close()
            text = str(e)
            if "known_hosts" in text or "host key" in text.lower():
                raise ConfigError(f"SFTP host {host} could not be verified against the pinned "
                                  f"host key: {text}", endpoint=tg.where) from None
            raise TransientError(f"SFTP connection to {host} failed: {text or type(e).__name__}",
                                 endpoint=tg.where) from None
        except (OSError, EOFError) as e:
            client.close()
            why = getattr(e, "strerror", None) or str(e) or type(e).__name__
            raise TransientError(f"cannot connect to SFTP host {host}: {why}",
                                 endpoint=tg.where) from None
        self._client, self._sftp = client, sftp
        log.debug("connected to %s", tg.where)

    def drop(self) -> None:
        if self._sftp is not None:
            with contextlib.suppress(Exception):
                self._sftp.close()
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
        self._client = self._sftp = None

    @contextlib.contextmanager
    def errors(self, what: str, name: str | None = None, *,
               missing: type[StafetError] = TransientError) -> Iterator[None]:
        """Map paramiko/socket errors; drop the connection unless the server answered."""
        try:
            yield
        except StafetError:
            raise
        except FileNotFoundError:
            raise missing(f"{what}: not found", endpoint=self.target.where, file=name) from None
        except PermissionError:
            raise ConfigError(f"{what}: permission denied", endpoint=self.target.where,
                              file=name) from None
        except TimeoutError:
            self.drop()
            raise TransientError(f"{what}: no answer within {self.timeout:g}s",
                                 endpoint=self.target.where, file=name) from None
        except (OSError, EOFError, paramiko.SSHException) as e:
            self.drop()
            why = getattr(e, "strerror", None) or str(e) or type(e).__name__
            raise TransientError(f"{what}: {why}", endpoint=self.target.where, file=name) from None


def _fingerprint(key: paramiko.PKey) -> str:
    return base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


def _exists(sftp: paramiko.SFTPClient, path: str) -> bool:
    try:
        sftp.lstat(path)
    except FileNotFoundError:
        return False
    return True


class _SftpStream(io.RawIOBase):
    """Sequential reads of a remote file with a bounded window of pipelined requests."""

    def __init__(self, fh: paramiko.SFTPFile, size: int, owner: SftpInbox, name: str) -> None:
        self._fh, self._size, self._name = fh, size, name
        self._owner = owner  # keeps the inbox, hence the connection, alive while reading
        self._session = owner._session
        self._pos = 0
        self._buf = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if not self._buf:
            if self._pos >= self._size:
                return 0
            end = min(self._pos + _READ_WINDOW, self._size)
            chunks = [(o, min(_READ_REQUEST, end - o)) for o in range(self._pos, end, _READ_REQUEST)]
            with self._session.errors("reading the file failed", self._name):
                self._buf = memoryview(b"".join(self._fh.readv(chunks)))
            if not self._buf:
                return 0
            self._pos += len(self._buf)
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(Exception):
                self._fh.close()
        super().close()


class _SftpBase:
    def __init__(self, url: str, host_key: str, identity: str, *, passphrase: str | None = None,
                 connect_timeout: float = 15.0, timeout: float = 60.0) -> None:
        self.target = _parse_sftp_url(url)
        self._session = _SftpSession(self.target, host_key, identity, passphrase=passphrase,
                                     connect_timeout=connect_timeout, timeout=timeout)
        # Callers that never call close() must not leak the SSH connection and its thread.
        weakref.finalize(self, self._session.drop)

    def _path(self, name: str) -> str:
        return posixpath.join(self.target.path, check_name(name))

    def close(self) -> None:
        """Close the SSH connection (a later call reconnects)."""
        self._session.drop()


class SftpInbox(_SftpBase, Inbox):
    """An inbox in a folder on an SFTP server (key auth, pinned host key).

    Args:
        url: ``sftp://user@host[:port]/absolute/path``.
        host_key: the server's public host key line, ``ssh-ed25519 AAAA…``.
        identity: path of the private key file (or the key text itself).
        passphrase: for an encrypted identity key.
        connect_timeout: seconds for TCP connect, banner and authentication.
        timeout: seconds any single SFTP operation may wait for the server.
    """

    def __init__(self, url: str, host_key: str, identity: str, *, passphrase: str | None = None,
                 connect_timeout: float = 15.0, timeout: float = 60.0) -> None:
        super().__init__(url, host_key, identity, passphrase=passphrase,
                         connect_timeout=connect_timeout, timeout=timeout)
        self.location = self.target.where

    def entries(self, pattern: str = "*", *, min_age: float = 0.0) -> builtins.list[InboxEntry]:
        """Files matching ``pattern`` in the remote folder, sorted (see :class:`Inbox`)."""
        now, out = time.time(), []
        with self._session.errors("cannot list the inbox", missing=ConfigError):
            attrs = self._session.sftp().listdir_attr(self.target.path)
        for a in attrs:
            name, mode = a.filename, a.st_mode or 0
            if _hidden(name) or not fnmatchcase(name, pattern):
                continue
            if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
                continue
            try:
                check_name(name)
            except FileRejected:
                log.warning("ignoring a file with an unsafe name in %s: %s", self.location,
                            redact(repr(name)))
                continue
            mtime = float(a.st_mtime or 0)
            if min_age and now - mtime < min_age:
                continue
            out.append(InboxEntry(name, int(a.st_size or 0), mtime))
        return sorted(out, key=lambda e: e.name)

    def open(self, name: str) -> BinaryIO:
        """Open ``name`` for streaming reads (see :meth:`Inbox.open`)."""
        path = self._path(name)
        with self._session.errors("cannot open the file", name):
            sftp = self._session.sftp()
            st = sftp.lstat(path)
            if stat.S_ISLNK(st.st_mode or 0):
                root = sftp.normalize(self.target.path)
                real = sftp.normalize(path)
                if not real.startswith(root.rstrip("/") + "/"):
                    raise FileRejected("the file is a symlink that leads outside the inbox",
                                       file=name, rule="file_name", location=self.location)
                st = sftp.stat(path)
            if not stat.S_ISREG(st.st_mode or 0):
                raise FileRejected("not a regular file", file=name, rule="file_name",
                                   location=self.location)
            fh = sftp.open(path, "rb")
        raw = _SftpStream(fh, int(st.st_size or 0), self, name)
        return cast(BinaryIO, io.BufferedReader(raw, buffer_size=256 * 1024))

    def _move(self, name: str, sub: str, reason: str | None) -> str:
        src = self._path(name)
        folder = posixpath.join(self.target.path, sub)
        with self._session.errors(f"cannot move the file to {sub}/", name):
            sftp = self._session.sftp()
            sftp.lstat(src)
            try:
                sftp.mkdir(folder)
            except OSError:
                if not _exists(sftp, folder):  # lost a race with another mkdir, or a real error
                    raise
            final = _free_name(name, lambda n: _exists(sftp, posixpath.join(folder, n)))
            sftp.posix_rename(src, posixpath.join(folder, final))
            if reason is not None:
                with sftp.open(posixpath.join(folder, f"{final}.reason.txt"), "wb") as fh:
                    fh.write((redact(reason) + "\n").encode("utf-8"))
        log.info("moved %s to %s/ in %s", name, sub, self.location)
        return f"{sub}/{final}"

    def mark_processed(self, name: str) -> str:
        """Move ``name`` into ``processed/`` with ``posix_rename`` (see :meth:`Inbox.mark_processed`)."""
        return self._move(name, PROCESSED, None)

    def reject(self, name: str, reason: str | None = None) -> str:
        """Move ``name`` into ``rejected/`` with ``posix_rename`` (see :meth:`Inbox.reject`)."""
        return self._move(name, REJECTED, reason)


class SftpOutlet(_SftpBase, Outlet):
    """Deliver into a folder on an SFTP server: upload ``.NAME.XXXX.part``, then ``posix_rename``.

    Arguments as for :class:`SftpInbox`. The size of the uploaded temp file is checked
    before the rename. After a broken connection the temp file may stay behind (hidden,
    ignored by inboxes); nothing ever appears under the final name half-written.
    """

    def __init__(self, url: str, host_key: str, identity: str, *, passphrase: str | None = None,
                 connect_timeout: float = 15.0, timeout: float = 60.0) -> None:
        super().__init__(url, host_key, identity, passphrase=passphrase,
                         connect_timeout=connect_timeout, timeout=timeout)
        self.endpoint = self.target.where

    def put(self, name: str, data: bytes) -> None:
        """Upload ``data`` as ``name`` atomically (see :meth:`Outlet.put`)."""
        final = self._path(name)
        tmp = posixpath.join(self.target.path, _temp_name(name))
        with self._session.errors("SFTP upload failed", name, missing=ConfigError):
            sftp = self._session.sftp()
            try:
                with sftp.open(tmp, "wbx") as fh:  # "x" alone would not open it for writing
                    fh.set_pipelined(True)
                    for off in range(0, len(data), _CHUNK):
                        fh.write(data[off:off + _CHUNK])
                size = sftp.stat(tmp).st_size
                if size != len(data):
                    raise TransientError(f"uploaded {size} of {len(data)} bytes",
                                         endpoint=self.endpoint, file=name)
                sftp.posix_rename(tmp, final)
            except BaseException:
                self._remove_quietly(tmp)
                raise
        log.info("delivered %s (%d bytes) to %s", name, len(data), self.endpoint)

    def _remove_quietly(self, path: str) -> None:
        sftp = self._session.live()
        if sftp is not None:
            with contextlib.suppress(Exception):
                sftp.remove(path)


# --------------------------------------------------------------------------- SMTP

StartTls = Literal["auto", "require", "never"]


class SmtpOutlet(Outlet):
    """Send each blob, a complete RFC 5322 message (``.eml``), through an SMTP server.

    Args:
        host, port: the relay (sikker-mail gateway).
        mail_from: envelope sender.
        rcpt_to: envelope recipient(s).
        starttls: ``"auto"`` (use STARTTLS when the server offers it), ``"require"``
            (refuse to send in clear) or ``"never"``.
        cafile: trust anchors for the server's certificate (default: the system's).
        username, password: SMTP AUTH, after STARTTLS.
        timeout: seconds for connect and each command.

    One connection per ``put``. A 4xx answer or a lost connection is a
    :class:`TransientError`; a 5xx answer is :class:`DeliveryFailed` carrying the
    server's text. Once the server has accepted the message, ``put`` succeeds even if
    closing the session fails (a retry would deliver twice).
    """

    def __init__(self, host: str, port: int = 25, mail_from: str = "",
                 rcpt_to: str | Sequence[str] = (), *, starttls: StartTls = "auto",
                 cafile: str | None = None, username: str | None = None,
                 password: str | None = None, timeout: float = 60.0,
                 local_hostname: str | None = None) -> None:
        self.host, self.port = host, int(port)
        self.endpoint = f"smtp://{host}:{self.port}"
        self.rcpt_to = [rcpt_to] if isinstance(rcpt_to, str) else [str(r) for r in rcpt_to]
        self.rcpt_to = [r for r in self.rcpt_to if r]
        if not mail_from or not self.rcpt_to:
            raise ConfigError("an SMTP endpoint needs a sender (mail_from) and a recipient "
                              "(rcpt_to)", endpoint=self.endpoint)
        if starttls not in ("auto", "require", "never"):
            raise ConfigError(f"starttls must be auto, require or never, not {starttls!r}",
                              endpoint=self.endpoint)
        self.mail_from, self.starttls = mail_from, starttls
        self.cafile, self.username, self.password = cafile, username, password
        self.timeout, self.local_hostname = timeout, local_hostname

    def _tls_context(self) -> ssl.SSLContext:
        try:
            return ssl.create_default_context(cafile=self.cafile)
        except (OSError, ssl.SSLError) as e:
            raise ConfigError(f"cannot load cafile: {e}", endpoint=self.endpoint) from None

    def put(self, name: str, data: bytes) -> None:
        """Send ``data`` (the message bytes) to the recipients; ``name`` is for logs only."""
        ctx = {"endpoint": self.endpoint, "file": name}
        try:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout,
                                local_hostname=self.local_hostname)
            try:
                smtp.ehlo()
                if self.starttls != "never" and smtp.has_extn("starttls"):
                    smtp.starttls(context=self._tls_context())
                    smtp.ehlo()
                elif self.starttls == "require":
                    raise DeliveryFailed("the SMTP server does not offer STARTTLS and "
                                         "starttls is 'require'", **ctx)
                if self.username:
                    smtp.login(self.username, self.password or "")
                refused = smtp.sendmail(self.mail_from, self.rcpt_to, data)
                if refused:
                    text = "; ".join(f"{r}: {c} {_text(m)}" for r, (c, m) in refused.items())
                    raise DeliveryFailed(f"some recipients refused the message: {text}", **ctx)
            finally:
                with contextlib.suppress(Exception):
                    smtp.quit()
                smtp.close()
        except StafetError:
            raise
        except smtplib.SMTPRecipientsRefused as e:
            codes = [c for c, _ in e.recipients.values()]
            text = "; ".join(f"{r}: {c} {_text(m)}" for r, (c, m) in e.recipients.items())
            cls = DeliveryFailed if any(c >= 500 for c in codes) else TransientError
            raise cls(f"SMTP server refused the recipient: {text}", **ctx) from None
        except smtplib.SMTPAuthenticationError as e:
            raise ConfigError(f"SMTP login refused: {e.smtp_code} {_text(e.smtp_error)}",
                              **ctx) from None
        except smtplib.SMTPResponseException as e:
            code, text = e.smtp_code, _text(e.smtp_error)
            if 500 <= code < 600:
                raise DeliveryFailed(f"SMTP server refused the message: {code} {text}",
                                     smtp_code=code, **ctx) from None
            raise TransientError(f"SMTP server answered {code} {text}", smtp_code=code,
                                 **ctx) from None
        except ssl.SSLCertVerificationError as e:
            raise DeliveryFailed(f"the SMTP server's TLS certificate is not trusted: "
                                 f"{e.verify_message}", **ctx) from None
        except smtplib.SMTPNotSupportedError as e:
            raise DeliveryFailed(f"SMTP server does not support what is needed: {e}", **ctx) from None
        except (smtplib.SMTPException, OSError, EOFError) as e:
            why = getattr(e, "strerror", None) or str(e) or type(e).__name__
            raise TransientError(f"SMTP delivery failed: {why}", **ctx) from None
        log.info("sent %s (%d bytes) via %s", name, len(data), self.endpoint)


def _text(msg: bytes | str) -> str:
    return msg.decode("utf-8", "replace") if isinstance(msg, bytes) else str(msg)


# --------------------------------------------------------------------------- factories

_SFTP_OPTIONS = {"passphrase", "connect_timeout", "timeout"}
_SMTP_OPTIONS = {"starttls", "cafile", "username", "password", "timeout", "local_hostname"}


def _check_options(scheme: str, options: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ConfigError(f"unknown option(s) for a {scheme} endpoint: {', '.join(unknown)} "
                          f"(known: {', '.join(sorted(allowed)) or 'none'})", endpoint=where)


def _scheme(endpoint: str) -> str:
    if endpoint.startswith("folder:"):
        return "folder"
    scheme = urlsplit(endpoint).scheme
    if scheme in ("sftp", "smtp"):
        return scheme
    raise ConfigError("endpoint must start with folder:, sftp:// or smtp://", endpoint=endpoint)


def _folder_path(endpoint: str) -> Path:
    path = endpoint[len("folder:"):]
    if not path:
        raise ConfigError("folder: needs a path", endpoint=endpoint)
    return Path(path).expanduser()


def open_outlet(endpoint: str, *, host_key: str = "", identity: str = "", mail_from: str = "",
                rcpt_to: str | Sequence[str] = "", **options: Any) -> Outlet:
    """Open the outlet for an endpoint string.

    Args:
        endpoint: ``folder:PATH``, ``sftp://user@host[:port]/path`` or ``smtp://host[:port]``.
        host_key: SFTP only: the pinned server host key line.
        identity: SFTP only: path of the private key.
        mail_from: SMTP only: the envelope sender (ignored for other schemes).
        rcpt_to: SMTP only: the envelope recipient(s) (ignored for other schemes).
        **options: SFTP ``passphrase``, ``connect_timeout``, ``timeout``; SMTP
            ``starttls``, ``cafile``, ``username``, ``password``, ``timeout``,
            ``local_hostname``.

    Raises:
        ConfigError: unknown scheme or option, or missing settings.

    Example:
        >>> open_outlet("folder:/tmp/out").put("x.eml", b"...")  # doctest: +SKIP
    """
    scheme = _scheme(endpoint)
    if scheme == "folder":
        _check_options(scheme, options, set(), endpoint)
        return FolderOutlet(_folder_path(endpoint))
    if scheme == "sftp":
        _check_options(scheme, options, _SFTP_OPTIONS, endpoint)
        return SftpOutlet(endpoint, host_key, identity, **options)
    _check_options(scheme, options, _SMTP_OPTIONS, endpoint)
    u = urlsplit(endpoint)
    if not u.hostname:
        raise ConfigError("an smtp:// endpoint needs a host", endpoint=endpoint)
    try:
        port = u.port or 25
    except ValueError:
        raise ConfigError("the port of the SMTP endpoint is not a number", endpoint=endpoint) from None
    return SmtpOutlet(u.hostname, port, mail_from, rcpt_to, **options)


def open_inbox(location: str, *, host_key: str = "", identity: str = "", **options: Any) -> Inbox:
    """Open the inbox at a location: ``folder:PATH`` or ``sftp://user@host[:port]/path``.

    Used both for source systems' drop areas and for an organisation's package inbox.
    ``options`` as for SFTP in :func:`open_outlet`.

    Raises:
        ConfigError: unknown or unsupported scheme (``smtp://`` cannot be read from).
    """
    scheme = _scheme(location)
    if scheme == "folder":
        _check_options(scheme, options, set(), location)
        return FolderInbox(_folder_path(location))
    if scheme == "sftp":
        _check_options(scheme, options, _SFTP_OPTIONS, location)
        return SftpInbox(location, host_key, identity, **options)
    raise ConfigError("cannot read an inbox from smtp://: give a folder: or sftp:// location "
                      "where the mail gateway drops incoming messages", endpoint=location)

