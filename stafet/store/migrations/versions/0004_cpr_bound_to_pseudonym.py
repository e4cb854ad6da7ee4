"""youths: each stored CPR is bound to its youth's pseudonym

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 21:00:00

Issue 16 (low): ``youths.cpr_enc`` was AES-GCM with the constant associated data ``b"cpr"``,
so a ciphertext copied from one youth's row into another's decrypted there, and packages
for the second youth would carry the first youth's CPR. The associated data is now
``cpr:<pseudonym>`` (:func:`stafet.core.vault.cpr_context`). No column changes: every row
is decrypted with the old associated data and encrypted again with its own.

The re-encryption needs the network secret: the vault stafet opens the store with
(``config.attributes["vault"]``), else the secret found as stafet finds it
(``STAFET_SECRET``, the Prefect block, ``$STAFET_HOME/secret.key``). A store without
youths needs none. The upgrade stops (and changes nothing) when a row does not decrypt
with the secret, or when what it decrypts to is not the CPR its pseudonym is made from
(a ciphertext already moved between rows): an operator must look at that row. A row
already bound (written by this revision's code) is left as it is.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import sqlalchemy as sa
from alembic import context, op

if TYPE_CHECKING:
    from stafet.core.vault import Vault

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

_BATCH = 1000


def _vault() -> Vault:
    from stafet.core.config import stafet_home
    from stafet.core.vault import Vault, load_secret

    vault: Vault | None = context.config.attributes.get("vault")
    return vault if vault is not None else Vault(load_secret(stafet_home()))


def _rewrite(convert: Callable[[Vault, str, bytes], bytes | None]) -> None:
    """Run ``convert(vault, pseudonym, cpr_enc)`` over every youth, in pages; write what it returns."""
    conn = op.get_bind()
    youths = sa.table("youths", sa.column("pseudonym", sa.String), sa.column("cpr_enc", sa.LargeBinary))
    if conn.execute(sa.select(sa.func.count()).select_from(youths)).scalar_one() == 0:
        return
    vault = _vault()
    last = ""
    update = youths.update().where(youths.c.pseudonym == sa.bindparam("p")).values(
        cpr_enc=sa.bindparam("c"))
    while True:
        page = conn.execute(sa.select(youths.c.pseudonym, youths.c.cpr_enc).where(youths.c.pseudonym > last)
                            .order_by(youths.c.pseudonym).limit(_BATCH)).all()
        if not page:
            return
        changed = [{"p": p, "c": c} for p, blob in page for c in [convert(vault, p, bytes(blob))]
                   if c is not None]
        if changed:
            conn.execute(update, changed)
        last = page[-1][0]


def _check(vault: Vault, pseudonym: str, digits: str) -> str:
    from stafet.core.errors import ConfigError

    if vault.pseudonym(digits) != pseudonym:
        raise ConfigError(f"youth {pseudonym}: the stored CPR is not the one its pseudonym is made from "
                          f"(a ciphertext moved between rows?): nothing was migrated; look at this row")
    return digits


def _to_bound(vault: Vault, pseudonym: str, blob: bytes) -> bytes | None:
    from stafet.core.errors import ConfigError, DataError
    from stafet.core.vault import LEGACY_CPR_CONTEXT, cpr_context

    try:
        digits = vault.decrypt(blob, LEGACY_CPR_CONTEXT).decode()
    except DataError:
        try:
            vault.decrypt_cpr(blob, pseudonym)
        except DataError:
            raise ConfigError(f"youth {pseudonym}: the stored CPR does not decrypt with this network secret "
                              f"(is STAFET_SECRET the network's?): nothing was migrated") from None
        return None  # already bound to its pseudonym
    return vault.encrypt(_check(vault, pseudonym, digits).encode(), cpr_context(pseudonym))


def _to_legacy(vault: Vault, pseudonym: str, blob: bytes) -> bytes | None:
    from stafet.core.errors import ConfigError, DataError
    from stafet.core.vault import LEGACY_CPR_CONTEXT

    try:
        digits = vault.decrypt_cpr(blob, pseudonym)
    except DataError:
        try:
            vault.decrypt(blob, LEGACY_CPR_CONTEXT)
        except DataError:
            raise ConfigError(f"youth {pseudonym}: the stored CPR does not decrypt with this network secret: "
                              f"nothing was migrated") from None
        return None
    return vault.encrypt(digits.encode(), LEGACY_CPR_CONTEXT)


def upgrade() -> None:
    """Upgrade: every CPR re-encrypted with its pseudonym as associated data."""
    _rewrite(_to_bound)


def downgrade() -> None:
    """Downgrade: back to the constant associated data ``b"cpr"``."""
    _rewrite(_to_legacy)
