"""Adding a member organisation to a running network."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import yaml
from cryptography import x509

from stafet.core.config import load_network
from stafet.core.errors import ConfigError


def add_member(network: str | Path | None, *, org: str, kind: str, name: str, municipality: str,
               endpoint: str, email: str, certificate: Path, serves: list[str]) -> Path:
    """Add ``org`` to ``network.yaml``; the new file is validated whole before it replaces the old.

    The certificate is checked (PEM, valid now, issued by one of the trust anchors) and
    copied to ``certs/<org>.pem`` beside the configuration.
    """
    current = load_network(network)
    path = current.path
    if org in current.members:
        raise ConfigError(f"{org} is already a member", network=current.name)
    try:
        cert = x509.load_pem_x509_certificate(Path(certificate).read_bytes())
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read the certificate: {type(e).__name__}") from None
    now = dt.datetime.now(dt.UTC)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise ConfigError("the certificate is not valid now", org=org)
    from keys.trust import TrustStore

    trust = TrustStore.from_files(current.trust_anchors, current.crls,
                                  crl_grace=dt.timedelta(hours=current.crl_grace_hours),
                                  require_revocation=current.require_revocation)
    if trust.anchors:
        trust.check_certificate(cert, now)
    certs = path.parent / "certs"
    certs.mkdir(exist_ok=True)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    member: dict[str, object] = {"id": org, "kind": kind, "name": name, "municipality": municipality,
                                 "email": email, "endpoint": endpoint, "certificate": f"certs/{org}.pem"}
    if serves:
        member["serves"] = serves
    data["members"].append(member)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".network-", suffix=".yaml")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        yaml.safe_dump(data, fh, sort_keys=False, allow_unicode=True)
    target = certs / f"{org}.pem"
    shutil.copy(certificate, target)
    try:
        load_network(tmp)
    except ConfigError:
        os.unlink(tmp)
        target.unlink()
        raise
    os.replace(tmp, path)
    return path


def preview_for(network: str, org: str, *, home: Path) -> Counter[tuple[str, str]]:
    """What the next run's routing would decide for ``org``: (rule, send|partial|held) → count."""
    from stafet.context import open_context
    from stafet.duties.routing import route

    ctx = open_context(network, home=home)
    with ctx.store.session() as s:
        return Counter((d.rule, d.status) for d in route(s, ctx.network, dt.date.today())
                       if d.recipient == org)
