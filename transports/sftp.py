r"""SFTP transports: a folder on an SFTP server as an inbox or an outlet.

Key authentication only, and the server's host key is pinned (no trust on first use).
:class:`SftpOutlet` uploads ``.NAME.XXXX.part``, checks its size and ``posix_rename``\ s
it into place; :class:`SftpInbox` streams remote files with a bounded window of
pipelined read requests.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import contextlib
import hashlib
import io
import logging
import posixpath
import stat
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

import paramiko

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

__all__ = ["SftpInbox", "SftpOutlet"]

log = logging.getLogger("stafet.transport")

_CHUNK = 1 << 20  # upload write size
_READ_WINDOW = 4 << 20  # SFTP read-ahead per round of pipelined requests (bounded memory)
_READ_REQUEST = 32768  # the largest read request OpenSSH's sftp-server answers in full


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
        # from_path hands the passphrase to cryptography, which wants bytes (paramiko's hint says str)
        return paramiko.PKey.from_path(Path(identity).expanduser(),
                                       passphrase.encode() if passphrase else None)  # type: ignore[arg-type]
    except (paramiko.PasswordRequiredException, TypeError):  # TypeError: an OpenSSH-format key
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
        max_bytes: the largest file :meth:`open` reads (None: no limit).
    """

    def __init__(self, url: str, host_key: str, identity: str, *, passphrase: str | None = None,
                 connect_timeout: float = 15.0, timeout: float = 60.0,
                 max_bytes: int | None = None) -> None:
        super().__init__(url, host_key, identity, passphrase=passphrase,
                         connect_timeout=connect_timeout, timeout=timeout)
        self.location = self.target.where
        self.max_bytes = max_bytes

    def entries(self, pattern: str = "*", *, min_age: float = 0.0) -> builtins.list[InboxEntry]:
        """Files matching ``pattern`` in the remote folder, sorted (see :class:`Inbox`)."""
        now, out = time.time(), []
        with self._session.errors("cannot list the inbox", missing=ConfigError):
            attrs = self._session.sftp().listdir_attr(self.target.path)
        for a in attrs:
            name, mode = a.filename, a.st_mode or 0
            if is_hidden(name) or not fnmatchcase(name, pattern):
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
        """Open ``name`` for streaming reads (see :meth:`Inbox.open`).

        The entry is ``lstat``-ed first: a symlink is refused wherever it leads, and so is
        anything but a regular file, or one bigger than ``max_bytes``. SFTP has no
        ``O_NOFOLLOW``, so the opened handle is ``fstat``-ed too and must be the same
        regular file (size and modification time); the stream stops at ``max_bytes``.
        """
        path = self._path(name)
        with self._session.errors("cannot open the file", name):
            sftp = self._session.sftp()
            st = sftp.lstat(path)
            self._check_entry(name, st)
            fh = sftp.open(path, "rb")
            try:
                opened = fh.stat()
                self._check_entry(name, opened)
                if (opened.st_size, opened.st_mtime) != (st.st_size, st.st_mtime):
                    raise TransientError("the file changed while it was opened: try again later",
                                         endpoint=self.location, file=name)
            except BaseException:
                with contextlib.suppress(Exception):
                    fh.close()
                raise
        raw = _SftpStream(fh, int(opened.st_size or 0), self, name)
        return capped(raw, self.max_bytes, name, self.location)

    def _check_entry(self, name: str, st: paramiko.SFTPAttributes) -> None:
        mode = st.st_mode or 0
        if stat.S_ISLNK(mode):
            raise FileRejected("the file is a symlink: an inbox never follows one", file=name,
                               rule="file_name", location=self.location)
        if not stat.S_ISREG(mode):
            raise FileRejected("not a regular file", file=name, rule="file_name", location=self.location)
        size = int(st.st_size or 0)
        if self.max_bytes is not None and size > self.max_bytes:
            raise too_large(name, size, self.max_bytes, self.location)

    def _folder(self, sftp: paramiko.SFTPClient, sub: str, *, create: bool = True) -> str | None:
        """The path of ``sub/`` (created if missing): a real folder, never a symlink."""
        folder = posixpath.join(self.target.path, sub)
        if create:
            with contextlib.suppress(OSError):  # there already, or a real error: the lstat says
                sftp.mkdir(folder, 0o700)
        try:
            st = sftp.lstat(folder)
        except FileNotFoundError:
            if not create:
                return None
            raise
        if not stat.S_ISDIR(st.st_mode or 0):
            raise ConfigError(f"{sub}/ in the inbox is a symlink or not a folder: refusing to move "
                              "files into it (remove it; stafet creates the folder)", endpoint=self.location)
        return folder

    def _move(self, name: str, sub: str, reason: str | None) -> str:
        src = self._path(name)
        with self._session.errors(f"cannot move the file to {sub}/", name):
            sftp = self._session.sftp()
            sftp.lstat(src)
            folder = self._folder(sftp, sub)
            assert folder is not None
            pick = free_pair if reason is not None else free_name
            final = pick(name, lambda n: _exists(sftp, posixpath.join(folder, n)))
            # posix-rename@openssh.com replaces; the name was just seen free (SFTP offers no
            # no-replace rename beyond the plain one, which OpenSSH implements as link+unlink).
            try:
                sftp.rename(src, posixpath.join(folder, final))  # fails if the target exists
            except OSError:
                if _exists(sftp, posixpath.join(folder, final)):
                    raise TransientError("the name in the folder was taken meanwhile: try again",
                                         endpoint=self.location, file=name) from None
                sftp.posix_rename(src, posixpath.join(folder, final))
            dest = posixpath.join(folder, final)
            if sub == PROCESSED:
                with contextlib.suppress(OSError):
                    if stat.S_ISREG(sftp.lstat(dest).st_mode or 0):  # setstat follows links
                        now = time.time()
                        sftp.utime(dest, (now, now))
            if reason is not None:
                self._write_reason(sftp, posixpath.join(folder, final + REASON), reason)
        log.info("moved %s to %s/ in %s", name, sub, self.location)
        return f"{sub}/{final}"

    def _write_reason(self, sftp: paramiko.SFTPClient, path: str, reason: str) -> None:
        """The reason file, created new (``wbx``: O_CREAT | O_EXCL, so never through a link), 0600."""
        try:
            fh = sftp.open(path, "wbx")
        except OSError:
            if _exists(sftp, path):
                log.warning("not writing the reason in %s: %s appeared meanwhile", self.location,
                            posixpath.basename(path))
                return
            raise
        with fh:
            with contextlib.suppress(OSError):
                fh.chmod(0o600)
            fh.write((redact(reason) + "\n").encode("utf-8"))

    def _remove(self, name: str) -> None:
        with self._session.errors("cannot remove the file", name):
            self._session.sftp().remove(self._path(name))
        log.info("removed %s from %s", name, self.location)

    def _purge(self, sub: str, before: float) -> int:
        removed = 0
        with self._session.errors(f"cannot clean {sub}/"):
            sftp = self._session.sftp()
            folder = self._folder(sftp, sub, create=False)
            if folder is None:
                return 0
            for a in sftp.listdir_attr(folder):
                if stat.S_ISDIR(a.st_mode or 0) or float(a.st_mtime or 0) >= before:
                    continue
                sftp.remove(posixpath.join(folder, a.filename))
                removed += 1
        if removed:
            log.info("removed %d file(s) from %s/ in %s (retention)", removed, sub, self.location)
        return removed


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
        tmp = posixpath.join(self.target.path, temp_name(name))
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
