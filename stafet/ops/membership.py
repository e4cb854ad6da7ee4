"""Adding a member organisation to a running network.

``network.yaml`` is edited as a round trip (ruamel.yaml): its comments, key order, quoting
and indentation stay as the operator wrote them; only the new member's entry is added.
A refused file is reported under its own name, never the temporary file's.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

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
    member: dict[str, object] = {"id": org, "kind": kind, "name": name, "municipality": municipality,
                                 "email": email, "endpoint": endpoint, "certificate": f"certs/{org}.pem"}
    if serves:
        member["serves"] = serves
    text = _with_member(path.read_text(encoding="utf-8"), member)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".network-", suffix=".yaml")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    target = certs / f"{org}.pem"
    shutil.copy(certificate, target)
    try:
        load_network(tmp)
    except ConfigError as e:
        os.unlink(tmp)
        target.unlink()
        raise ConfigError(f"{path} with {org} added would not be valid: "
                          + str(e).replace(tmp, str(path)).replace(Path(tmp).name, path.name)) from None
    os.replace(tmp, path)
    return path


def _with_member(text: str, member: dict[str, object]) -> str:
    """``network.yaml``'s text with ``member`` appended to ``members:``, all else as it was."""
    import io

    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError
    from ruamel.yaml.util import load_yaml_guess_indent

    try:
        data, indent, offset = load_yaml_guess_indent(text)
    except YAMLError as e:
        raise ConfigError(f"network.yaml is not valid YAML: {type(e).__name__}") from None
    if not isinstance(data, dict) or not isinstance(data.get("members"), list):
        raise ConfigError("network.yaml has no members: list")
    rt = YAML()  # round trip: comments, order, quotes kept
    rt.preserve_quotes = True
    rt.width = 4096  # never re-fold a long line
    rt.indent(mapping=indent or 2, sequence=indent or 2, offset=offset or 0)  # as ruamel's docs guess it
    data = rt.load(text)
    data["members"].append(member)
    out = io.StringIO()
    rt.dump(data, out)
    return out.getvalue()


def preview_for(network: str, org: str, *, home: Path) -> Counter[tuple[str, str]]:
    """What the next run's routing would decide for ``org``: (rule, send|partial|held) → count."""
    from stafet.context import open_context
    from stafet.duties.routing import route

    ctx = open_context(network, home=home)
    with ctx.store.session() as s:
        return Counter((d.rule, d.status) for d in route(s, ctx.network, dt.date.today())
                       if d.recipient == org)
