"""A person acknowledges a package: the receipt that says someone has taken over.

For a member whose ``acknowledge`` is ``person`` (network.yaml), ``stafet receive`` imports
a handover but sends no receipt: the handover is done when a person has read it and taken
over — in the console's inbox, or with ``stafet acknowledge PACKAGE_ID``
(:func:`acknowledge_package`). A member that reads its packages in a mail client, without
a stafet inbox, acknowledges the saved ``.eml`` (:func:`acknowledge_file`): the package is
decrypted and verified exactly as on receipt, nothing is imported, and the signed receipt
says ``read``.

Either way the receipt is signed with the member's own key, so only the recipient can give
it; both are audited with the person's name.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

from stafet.context import Context
from stafet.core.errors import ConfigError, PackageRejected
from stafet.exchange.endpoints import trust_store
from stafet.exchange.receipts import send_receipt
from stafet.packages.document import HandoverDocument
from stafet.packages.package import open_package
from stafet.store import inbox

log = logging.getLogger("stafet.exchange")


@dataclass(frozen=True)
class Acknowledged:
    """What an acknowledgement did: the package, its sender and the receipt's disposition."""

    package_id: str
    sender: str
    disposition: str


def acknowledge_package(ctx: Context, *, org: str, package_id: str, by: str) -> Acknowledged:
    """``by`` (a person of ``org``) acknowledges an imported package: its receipt goes to the sender.

    Raises:
        ConfigError: ``org`` is no member; no package ``package_id`` was imported for
            ``org`` here (another organisation's id is the same "not found", so ids are not
            confirmed); or it was acknowledged already (the message says when).
    """
    ctx.network.member(org)
    if not by.strip():
        raise ConfigError("an acknowledgement needs the name of the person who gives it (--by)")
    with ctx.store.session() as s:
        p = inbox.imported(s, package_id)
        if p is None or p.recipient != org:
            raise ConfigError(f"no package {package_id} was received for {org} in this data folder "
                              "(stafet receive imports packages; a package read in a mail client is "
                              "acknowledged with stafet acknowledge --file)")
        if inbox.answered(s, [package_id]):
            raise ConfigError(f"package {package_id} is acknowledged already")
        sender, digest = p.sender, p.digest
    send_receipt(ctx, org, sender, package_id, digest, "imported")
    with ctx.store.session() as s:
        ctx.store.audit(s, by.strip(), "package.acknowledged", f"package:{package_id}",
                        {"org": org, "sender": sender, "digest": digest})
    log.info("package %s acknowledged for %s", package_id, org)
    return Acknowledged(package_id, sender, "imported")


def acknowledge_file(ctx: Context, *, org: str, path: Path, by: str) -> Acknowledged:
    """Acknowledge a package read in a mail client: verify the saved ``.eml``, send a ``read`` receipt.

    The package is opened with ``org``'s keys and checked like any received package (a
    refused one is not acknowledged: its reason is raised); nothing of it is imported.
    """
    ctx.network.member(org)
    if not by.strip():
        raise ConfigError("an acknowledgement needs the name of the person who gives it (--by)")
    keys = ctx.keys.decryption_keys(org)
    if not keys:
        raise ConfigError(f"the data folder {ctx.home} holds no key for {org}: run with --home set to "
                          f"{org}'s own data folder")
    data = path.read_bytes()
    if len(data) > ctx.network.max_bytes(org):
        raise PackageRejected("oversize", f"{path.name} is larger than this member's limit")
    opened = open_package(data, org_id=org, keys=keys, trust=trust_store(ctx), members=ctx.network.members)
    doc = opened.document
    if not isinstance(doc, HandoverDocument):
        raise ConfigError(f"{path.name} is a {doc.type}, not a handover: only handovers are acknowledged")
    send_receipt(ctx, org, doc.sender, doc.package_id, opened.digest, "read")
    with ctx.store.session() as s:
        ctx.store.audit(s, by.strip(), "package.acknowledged", f"package:{doc.package_id}",
                        {"org": org, "sender": doc.sender, "digest": opened.digest, "read_in": "mail client"})
    return Acknowledged(doc.package_id, doc.sender, "read")


def awaiting(ctx: Context, org: str) -> list[dict[str, str]]:
    """Packages imported for ``org`` that wait for a person's acknowledgement, oldest first."""
    with ctx.store.session() as s:
        return [{"package_id": p.package_id, "sender": p.sender,
                 "imported_at": p.imported_at.replace(tzinfo=dt.UTC).isoformat()}
                for p in inbox.awaiting_acknowledgement(s, org)]


__all__ = ["Acknowledged", "acknowledge_file", "acknowledge_package", "awaiting"]
