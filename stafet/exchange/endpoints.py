"""Where packages go and come from: members' certificates, outlets and inboxes, the trust store."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from cryptography import x509

from keys.trust import TrustStore
from stafet.context import Context
from stafet.core.config import INBOX_OPTIONS, SFTP_LOGIN, write_private
from stafet.core.errors import ConfigError, DeliveryFailed


def recipient_certificate(ctx: Context, org_id: str) -> x509.Certificate:
    """The recipient's certificate as configured in the network (never our guess)."""
    org = ctx.network.member(org_id)
    if not org.certificate:
        raise ConfigError(f"no certificate configured for {org_id}", org=org_id)
    cert = x509.load_pem_x509_certificate(ctx.network.resolve(org.certificate).read_bytes())
    now = dt.datetime.now(dt.UTC)
    if not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
        raise DeliveryFailed("the recipient's certificate is not valid now", org=org_id)
    return cert


def write_durably(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (0600) through a new temporary name, fsynced, then renamed.

    See :func:`stafet.core.config.write_private`: the folder is made 0700 when missing.
    """
    write_private(path, data)


def outlet_for(ctx: Context, org_id: str, mail_from: str = "") -> Any:
    """The outlet that puts packages to ``org_id``'s endpoint (folder, SFTP or SMTP)."""
    from transports import open_outlet

    org = ctx.network.member(org_id)
    opts = {k: v for k, v in ctx.network.endpoint_options.get(org_id, {}).items()
            if k not in ("inbox", "max_attempts", "max_age_hours", *SFTP_LOGIN, *INBOX_OPTIONS)}
    return open_outlet(ctx.network.locate(org.endpoint), mail_from=mail_from, rcpt_to=org.email,
                       **ctx.network.sftp_login(org_id), **opts)


def limits(ctx: Context, org_id: str) -> tuple[int, float]:
    """An endpoint's retry limits: ``(max_attempts, max_age_hours)``."""
    opts = ctx.network.endpoint_options.get(org_id, {})
    return int(opts.get("max_attempts", 8)), float(opts.get("max_age_hours", 72))


def trust_store(ctx: Context) -> TrustStore:
    """The network's trust anchors and CRLs."""
    return TrustStore.from_files(ctx.network.trust_anchors, ctx.network.crls)


def inbox_location(ctx: Context, org_id: str) -> str:
    """Where ``org_id`` reads incoming packages: ``endpoints.<org>.inbox`` or its endpoint."""
    opts = ctx.network.endpoint_options.get(org_id, {})
    loc = str(opts.get("inbox") or ctx.network.member(org_id).endpoint)
    if loc.startswith("smtp"):
        raise ConfigError(f"{org_id} receives by mail: set endpoints.{org_id}.inbox to the folder "
                          "its mail is delivered to", org=org_id)
    return loc
