"""Transports: bytes in and out of drop folders, SFTP servers and SMTP relays.

What lives here (no domain logic; nothing here knows what a package or a record is):

* :mod:`transports.base` — the two roles, :class:`Inbox` (list, stream, move to
  ``processed/`` or ``rejected/``) and :class:`Outlet` (``put(name, data)``, all or
  nothing), and the naming rules they share;
* :mod:`transports.folder` — :class:`FolderInbox`, :class:`FolderOutlet`;
* :mod:`transports.sftp` — :class:`SftpInbox`, :class:`SftpOutlet` (key auth, pinned host key);
* :mod:`transports.smtp` — :class:`SmtpOutlet`;
* this module — :func:`open_outlet` and :func:`open_inbox`, which turn an endpoint
  string into the right one::

    folder:/srv/drop
    sftp://user@host:2222/abs/path      key auth; the host key is pinned
    smtp://relay.example:25             STARTTLS required (starttls: never to send in clear,
                                        and then without a login)

What it may import: :mod:`stafet.core` (errors, redaction) and third-party libraries
(paramiko) only — never the store, keys, packages or exchange. The import rule in
``tests/architecture.py`` holds it to that.

Folder and SFTP outlets write a hidden temporary file (``.NAME.XXXXXXXX.part``) and
rename it into place, so a receiver never sees a partial file under ``NAME``; SMTP sends
the bytes as one message. Every module logs to the logger ``stafet.transport``.

Errors follow :mod:`stafet.core.errors`: network trouble and SMTP 4xx are
:class:`~stafet.core.errors.TransientError`; SMTP 5xx and bad TLS certificates are
:class:`~stafet.core.errors.DeliveryFailed`; a wrong host key, a refused client key or a
missing folder are :class:`~stafet.core.errors.ConfigError`; an unsafe file name is
:class:`~stafet.core.errors.FileRejected`. Messages name files and hosts, never contents.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from stafet.core.errors import ConfigError
from transports.base import Inbox, InboxEntry, Outlet, check_name
from transports.folder import FolderInbox, FolderOutlet
from transports.sftp import SftpInbox, SftpOutlet
from transports.smtp import SmtpOutlet

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

_SFTP_OPTIONS = {"connect_timeout", "timeout"}
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


def open_outlet(endpoint: str, *, host_key: str = "", identity: str = "",
                passphrase: str | None = None, mail_from: str = "",
                rcpt_to: str | Sequence[str] = "", **options: Any) -> Outlet:
    """Open the outlet for an endpoint string.

    Args:
        endpoint: ``folder:PATH``, ``sftp://user@host[:port]/path`` or ``smtp://host[:port]``.
        host_key: SFTP only: the pinned server host key line.
        identity: SFTP only: path of the private key.
        passphrase: SFTP only: the identity key's passphrase, when it is encrypted.
        mail_from: SMTP only: the envelope sender (ignored for other schemes).
        rcpt_to: SMTP only: the envelope recipient(s) (ignored for other schemes).
        **options: SFTP ``connect_timeout``, ``timeout``; SMTP
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
        return SftpOutlet(endpoint, host_key, identity, passphrase=passphrase, **options)
    _check_options(scheme, options, _SMTP_OPTIONS, endpoint)
    u = urlsplit(endpoint)
    if not u.hostname:
        raise ConfigError("an smtp:// endpoint needs a host", endpoint=endpoint)
    try:
        port = u.port or 25
    except ValueError:
        raise ConfigError("the port of the SMTP endpoint is not a number", endpoint=endpoint) from None
    return SmtpOutlet(u.hostname, port, mail_from, rcpt_to, **options)


def open_inbox(location: str, *, host_key: str = "", identity: str = "",
               passphrase: str | None = None, max_bytes: int | None = None,
               **options: Any) -> Inbox:
    """Open the inbox at a location: ``folder:PATH`` or ``sftp://user@host[:port]/path``.

    Used both for source systems' drop areas and for an organisation's package inbox.
    ``host_key``, ``identity``, ``passphrase`` and ``options`` as for SFTP in
    :func:`open_outlet` (the login settings are ignored for folders). ``max_bytes``:
    the largest file the inbox opens (None: no limit; the network configuration gives
    every inbox one, :meth:`stafet.core.config.Network.max_bytes`).

    Raises:
        ConfigError: unknown or unsupported scheme (``smtp://`` cannot be read from),
            or a ``max_bytes`` that is not a positive number.
    """
    if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, int)
                                  or max_bytes <= 0):
        raise ConfigError("max_bytes must be a positive number of bytes", endpoint=location)
    scheme = _scheme(location)
    if scheme == "folder":
        _check_options(scheme, options, set(), location)
        return FolderInbox(_folder_path(location), max_bytes=max_bytes)
    if scheme == "sftp":
        _check_options(scheme, options, _SFTP_OPTIONS, location)
        return SftpInbox(location, host_key, identity, passphrase=passphrase, max_bytes=max_bytes,
                         **options)
    raise ConfigError("cannot read an inbox from smtp://: give a folder: or sftp:// location "
                      "where the mail gateway drops incoming messages", endpoint=location)
