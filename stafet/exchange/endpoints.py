"""Where packages go and come from: members' certificates, outlets and inboxes, the trust store."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from keys import OrgKey
from keys.trust import ENCRYPT, TrustStore
from stafet.context import Context
from stafet.core.config import INBOX_OPTIONS, SFTP_LOGIN, write_private
from stafet.core.errors import ConfigError, DeliveryFailed, PackageRejected


def recipient_certificate(ctx: Context, org_id: str) -> x509.Certificate:
    """The recipient's certificate as configured in the network (never our guess), checked.

    Before anything is encrypted to it, it must be valid now, chain to an anchor, be
    unrevoked by a fresh CRL or OCSP response, and allow keyEncipherment and
    emailProtection (:meth:`keys.trust.TrustStore.check_certificate`).

    Raises:
        ConfigError: no certificate configured.
        DeliveryFailed: the certificate is refused; the message names the member and why.
    """
    org = ctx.network.member(org_id)
    if not org.certificate:
        raise ConfigError(f"no certificate configured for {org_id}", org=org_id)
    configured = org.certificate

    def load() -> x509.Certificate:
        return x509.load_pem_x509_certificate(ctx.network.resolve(configured).read_bytes())

    # inside one_trust: the file as the pass's trust store read it, loaded once
    cert = pass_memoised(ctx, ("certificate", org_id), load)
    now = dt.datetime.now(dt.UTC)
    if not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
        raise DeliveryFailed(f"the certificate of {org_id} is not valid now", org=org_id)
    try:
        trust_store(ctx).check_certificate(cert, now, usage=ENCRYPT)
    except PackageRejected as e:
        raise DeliveryFailed(f"nothing is encrypted to {org_id}: its certificate is refused "
                             f"({e.reason}): {e}", org=org_id, reason=e.reason) from None
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
    # inside one_trust: the endpoint's path resolved once (a new outlet each time)
    where = pass_memoised(ctx, ("endpoint", org_id), lambda: ctx.network.locate(org.endpoint))
    return open_outlet(where, mail_from=mail_from, rcpt_to=org.email, **ctx.network.sftp_login(org_id),
                       **opts)


def limits(ctx: Context, org_id: str) -> tuple[int, float]:
    """An endpoint's retry limits: ``(max_attempts, max_age_hours)``."""
    opts = ctx.network.endpoint_options.get(org_id, {})
    return int(opts.get("max_attempts", 8)), float(opts.get("max_age_hours", 72))


_TRUST: dict[tuple[object, ...], TrustStore] = {}
T = TypeVar("T")


def revocation_cache(ctx: Context) -> Path:
    """Where the scheduled refresh keeps fetched CRLs and OCSP responses (``$STAFET_HOME/revocation``)."""
    return ctx.home / "revocation"


_PINNED: ContextVar[tuple[Context, TrustStore] | None] = ContextVar("stafet_pinned_trust", default=None)
_MEMO: ContextVar[tuple[Context, dict[tuple[str, str], Any]] | None] = ContextVar("stafet_pass_memo",
                                                                                default=None)


def pass_memo(ctx: Context) -> dict[tuple[str, str], Any] | None:
    """Inside :func:`one_trust` for ``ctx``: what the pass loaded once and reuses; else None.

    Holds what the pinned trust store already takes as fixed for the pass (the members'
    certificate files, as read at its first use), the members' resolved endpoint paths, and
    the signing keys of the members the pass signs for (:func:`signing_key`: packages and
    receipts). Nothing here replaces a check made at the moment of use: a recipient
    certificate's validity, path and revocation, and a signing key's validity and
    revocation, are still checked at each use.
    """
    memo = _MEMO.get()
    return memo[1] if memo is not None and memo[0] is ctx else None


def pass_memoised(ctx: Context, key: tuple[str, str], load: Callable[[], T],
                  still_good: Callable[[T], bool] = lambda _: True) -> T:
    """``load()``, kept under ``key`` for the rest of the pass (:func:`pass_memo`); outside one, each time.

    A kept value is used again only while ``still_good(value)`` holds; else it is loaded again.
    """
    memo = pass_memo(ctx)
    if memo is not None and key in memo and still_good(memo[key]):
        return memo[key]
    value = load()
    if memo is not None:
        memo[key] = value
    return value


def signing_key(ctx: Context, org_id: str) -> OrgKey:
    """``ctx.keys.current(org_id)``; inside a pass (:func:`pass_memo`) read once.

    Reading it lists, parses and stats the key files and the revocation list each time.
    The key chosen at the pass's first use is kept while its certificate is valid and not
    revoked (``stafet keys revoke``) at the moment of signing, both checked each time; else
    the key store chooses again.
    """
    def valid_now(key: OrgKey) -> bool:
        now = dt.datetime.now(dt.UTC)
        return (key.cert.not_valid_before_utc <= now <= key.cert.not_valid_after_utc
                and key.serial not in ctx.keys.revoked_serials())

    return pass_memoised(ctx, ("signing_key", org_id), lambda: ctx.keys.current(org_id), valid_now)


@contextmanager
def one_trust(ctx: Context) -> Iterator[TrustStore]:
    """One trust store for a whole pass (a send pass, say).

    :func:`trust_store` inside it returns the store of the pass's start without looking at
    the files again. Working out whether the files changed stats every member's certificate and every cached
    CRL and OCSP answer: at 600 members that cost more than building a package. A CRL the
    scheduled refresh rewrites during the pass is used from the next pass on, as a receive
    pass already does (it reads the store once). The same holds for what :func:`pass_memo`
    keeps (certificates, endpoint paths, the signing key).
    """
    store = trust_store(ctx)
    token = _PINNED.set((ctx, store))
    memo = _MEMO.set((ctx, {}))
    try:
        yield store
    finally:
        _MEMO.reset(memo)
        _PINNED.reset(token)


def trust_store(ctx: Context) -> TrustStore:
    """The network's trust: anchors, CRLs, cached OCSP responses, grace, member pins.

    One store per state of its files (path, size, mtime): its verdict cache then lasts
    from one receive pass to the next, and a rewritten CRL makes a new store. Inside
    :func:`one_trust`, the pass's store.
    """
    pinned = _PINNED.get()
    if pinned is not None and pinned[0] is ctx:
        return pinned[1]
    key = _trust_key(ctx)
    store = _TRUST.get(key)
    if store is None:
        if len(_TRUST) > 16:
            _TRUST.clear()
        store = _TRUST[key] = TrustStore.for_network(ctx.network, revocation_cache(ctx))
    return store


def _trust_key(ctx: Context) -> tuple[object, ...]:
    """The state of the trust's files: path, size and mtime of each (the cache key)."""
    net = ctx.network
    cache = revocation_cache(ctx)
    files = [*net.trust_anchors, *net.crls, *(net.resolve(f) for o in net.members.values()
                                               for f in ([o.certificate] if o.certificate else [])
                                               + list(o.previous_certificates))]
    if cache.is_dir():
        files += sorted(cache.iterdir())
    state: list[object] = [net.path, net.crl_grace_hours, net.require_revocation, net.required_policy]
    for f in files:
        try:
            st = f.stat()
            state.append((str(f), st.st_size, st.st_mtime_ns))
        except OSError:
            state.append((str(f), None))
    return tuple(state)


def refresh_revocation(ctx: Context, *, ocsp_url: str = "") -> dict[str, str]:
    """Fetch fresh OCSP responses and CRLs for every member certificate (the scheduled flow's step).

    A certificate whose authorityInfoAccess names no OCSP responder is asked about at
    ``ocsp_url``, else at the network's ``ocsp_url`` (network.yaml). The receive path never
    fetches: it reads what this wrote (:func:`trust_store`).
    """
    from keys.trust import refresh_revocation as refresh

    trust = trust_store(ctx)
    certs: list[x509.Certificate] = []
    for org in ctx.network.members.values():
        # the current certificate and the previous ones still pinned (rotation overlap); a
        # member's file may carry the intermediate CAs that issued it after its own certificate
        for f in ([org.certificate] if org.certificate else []) + list(org.previous_certificates):
            path = ctx.network.resolve(f)
            if path.exists():
                certs += x509.load_pem_x509_certificates(path.read_bytes())
    pairs, seen = [], set()
    for cert in certs:
        if cert in seen:
            continue
        seen.add(cert)
        issuer = _issuer_of(cert, [*trust.anchors, *certs])
        if issuer is not None:
            pairs.append((cert, issuer))
    return refresh(pairs, revocation_cache(ctx), ocsp_url=ocsp_url or ctx.network.ocsp_url)


def _issuer_of(cert: x509.Certificate, candidates: list[x509.Certificate]) -> x509.Certificate | None:
    """The CA certificate among ``candidates`` that signed ``cert``, or None.

    An anchor, or an intermediate CA carried in a member's certificate file. Its name must
    match and its key must verify the signature, so a look-alike of the same name is no
    issuer. None for a self-signed anchor and for a certificate whose issuer is not
    configured (the receive path then refuses it).
    """
    for ca in candidates:
        if ca == cert or ca.subject != cert.issuer:
            continue
        try:
            if not ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
                continue
            cert.verify_directly_issued_by(ca)
        except (x509.ExtensionNotFound, ValueError, TypeError, InvalidSignature):
            continue
        return ca
    return None


def inbox_location(ctx: Context, org_id: str) -> str:
    """Where ``org_id`` reads incoming packages: ``endpoints.<org>.inbox`` or its endpoint."""
    opts = ctx.network.endpoint_options.get(org_id, {})
    loc = str(opts.get("inbox") or ctx.network.member(org_id).endpoint)
    if loc.startswith("smtp"):
        raise ConfigError(f"{org_id} receives by mail: set endpoints.{org_id}.inbox to the folder "
                          "its mail is delivered to", org=org_id)
    return loc
