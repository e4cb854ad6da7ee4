"""``stafet keys init-ca|new|import|issue|rotate|revoke|list``: the certificate lifecycle.

Keys live under ``$STAFET_HOME/keys`` (see :mod:`keys`); private keys are encrypted with
the key passphrase and never printed. With ``--network`` (or ``$STAFET_NETWORK``, or a
``./network.yaml``) the commands also use the network configuration: the member's name
and sikker-mail address for a CSR, its trust anchors for ``import``, its
``certificate:`` file to publish a new certificate, and its ``crls:`` files for
``revoke``.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from stafet.cli.common import JsonOpt, check_org, echo_json
from stafet.cli.common import fail as _fail
from stafet.core.errors import ConfigError, StafetError

if TYPE_CHECKING:  # pragma: no cover
    from cryptography import x509

    from keys import KeyStore
    from stafet.core.config import Network

console = Console()
err = Console(stderr=True)
keys_app = typer.Typer(help="Keys and certificates: network CA, CSRs, import, rotate, revoke, list.",
                       no_args_is_help=True)

NetworkOpt = Annotated[str | None, typer.Option("--network", "-n", envvar="STAFET_NETWORK",
                                                help="network.yaml (default ./network.yaml if present)")]
HomeOpt = Annotated[Path | None, typer.Option("--home", envvar="STAFET_HOME",
                                              help="stafet's data folder (default ./.stafet)")]
BitsOpt = Annotated[int, typer.Option("--bits", min=2048, help="RSA key size")]
DaysOpt = Annotated[int, typer.Option("--days", min=1, help="certificate lifetime in days")]
OrgArg = Annotated[str, typer.Argument(help="the organisation id (a member of the network)")]


def register(app: typer.Typer) -> None:
    """Add the ``keys`` command group to the ``stafet`` CLI."""
    app.add_typer(keys_app, name="keys")


def _store(home: Path | None) -> KeyStore:
    from keys import KeyStore
    from stafet.core.config import stafet_home

    return KeyStore((home or stafet_home()).resolve())


def _network(network: str | None, org: str | None = None) -> Network | None:
    """The network configuration if one is named or ``./network.yaml`` exists; else None.

    With ``org``: that organisation must be a member of it (no certificate for a non-member).
    """
    from stafet.core.config import load_network, network_path

    if network is None and not network_path().exists():
        return None
    net = load_network(network)
    check_org(net, org, "ORG")
    return net


def _publish(net: Network | None, org: str, cert: x509.Certificate) -> str:
    """Write ``cert`` to the member's ``certificate:`` file, so senders encrypt to it."""
    from cryptography.hazmat.primitives import serialization

    if net is None or org not in net.members or not net.members[org].certificate:
        return ""
    path = net.resolve(str(net.members[org].certificate))
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    os.replace(tmp, path)
    return str(path)


def _describe(org: str, cert: x509.Certificate, published: str) -> None:
    days = (cert.not_valid_after_utc - dt.datetime.now(dt.UTC)).days
    console.print(f"{org}: certificate {format(cert.serial_number, 'x')} valid until "
                  f"{cert.not_valid_after_utc.date()} ({days} days)", highlight=False, soft_wrap=True)
    if published:
        console.print(f"published to {published}", highlight=False, soft_wrap=True)


@keys_app.command("init-ca")
def init_ca(home: HomeOpt = None,
            name: Annotated[str, typer.Option(help="the CA's common name")] = "stafet demo network CA",
            days: DaysOpt = 3650, bits: BitsOpt = 3072) -> None:
    """Create the network CA for a demo or test network (once; an existing one is kept)."""
    try:
        ks = _store(home)
        cert = ks.init_ca(name, days=days, bits=bits)
    except StafetError as e:
        _fail(e)
    console.print(f"network CA: {ks.ca_dir / 'ca.pem'} (until {cert.not_valid_after_utc.date()}); "
                  "list it under trust_anchors: in network.yaml", highlight=False, soft_wrap=True)


@keys_app.command("new")
def new(org: OrgArg, home: HomeOpt = None, network: NetworkOpt = None,
        name: Annotated[str, typer.Option(help="organisation name (default: from the network)")] = "",
        email: Annotated[str, typer.Option(help="sikker-mail address (default: from the network)")] = "",
        bits: BitsOpt = 3072) -> None:
    """Make a new RSA key and a CSR for ORG, to order a certificate from a CA (e.g. OCES)."""
    try:
        net = _network(network, org)
        member = net.members.get(org) if net else None
        ks = _store(home)
        ks.new_key(org, display=name or (member.name if member else ""),
                   email=email or (member.email if member else ""), bits=bits)
    except StafetError as e:
        _fail(e)
    csr = ks.org_dir(org) / "pending.csr"
    console.print(f"key and CSR for {org}: {csr}\nsend the CSR to the CA, then: stafet keys import "
                  f"{org} CERT (or, with the network CA: stafet keys issue {org})",
                  highlight=False, soft_wrap=True)


@keys_app.command("import")
def import_(org: OrgArg, cert: Annotated[Path, typer.Argument(exists=True, dir_okay=False,
                                                            help="the certificate (PEM or DER)")],
            home: HomeOpt = None, network: NetworkOpt = None,
            anchor: Annotated[list[Path] | None, typer.Option(
                "--anchor", exists=True, dir_okay=False,
                help="trust anchor (PEM); default: the network's trust_anchors")] = None,
            publish: Annotated[bool, typer.Option(help="write it to the member's certificate file")] = True,
            ) -> None:
    """Install a certificate for ORG's pending key; it must chain to a trust anchor."""
    from cryptography import x509

    try:
        net = _network(network, org)
        paths = list(anchor or (net.trust_anchors if net else ()))
        if not paths:
            raise ConfigError("no trust anchor: pass --anchor FILE or --network with trust_anchors")
        anchors = [c for p in paths for c in x509.load_pem_x509_certificates(p.read_bytes())]
        member = net.members.get(org) if net else None
        key = _store(home).import_certificate(org, cert.read_bytes(), anchors,
                                              email=member.email if member else "")
        published = _publish(net, org, key.cert) if publish else ""
    except StafetError as e:
        _fail(e)
    _describe(org, key.cert, published)


@keys_app.command("issue")
def issue(org: OrgArg, home: HomeOpt = None, network: NetworkOpt = None, days: DaysOpt = 730) -> None:
    """Let the network CA sign ORG's pending CSR; the key becomes ORG's current key."""
    try:
        net = _network(network, org)
        cert = _store(home).issue(org, days=days)
        published = _publish(net, org, cert)
    except StafetError as e:
        _fail(e)
    _describe(org, cert, published)


@keys_app.command("rotate")
def rotate(org: OrgArg, home: HomeOpt = None, network: NetworkOpt = None, days: DaysOpt = 730,
           bits: BitsOpt = 3072) -> None:
    """New key and certificate for ORG; the old key still decrypts until its certificate expires."""
    try:
        net = _network(network, org)
        ks = _store(home)
        old = ks.keys(org)
        key = ks.rotate(org, bits=bits, days=days)
        published = _publish(net, org, key.cert)
    except StafetError as e:
        _fail(e)
    _describe(org, key.cert, published)
    for k in old:
        console.print(f"previous {k.serial} keeps decrypting until {k.cert.not_valid_after_utc.date()}",
                      highlight=False, soft_wrap=True)
    if not published:
        console.print("[yellow]give the new certificate to the network "
                      "(the members' certificate: files)[/yellow]", soft_wrap=True)


@keys_app.command("revoke")
def revoke(target: Annotated[str, typer.Argument(
               metavar="ORG|SERIAL", help="all of an organisation's certificates, or one serial (hex)")],
           home: HomeOpt = None, network: NetworkOpt = None) -> None:
    """Revoke certificates with the network CA and rewrite the CRL files the network lists."""
    try:
        net = _network(network)
        ks = _store(home)
        serials = ks.revoke(target)
        crls = list(net.crls) if net else []
        ks.write_crl(crls)
    except StafetError as e:
        _fail(e)
    if not serials:
        console.print(f"nothing new to revoke for {target}; CRL rewritten", highlight=False, soft_wrap=True)
    for s in serials:
        console.print(f"revoked {s}", highlight=False, soft_wrap=True)
    for p in [ks.ca_dir / "crl.pem", *crls]:
        console.print(f"CRL written: {p}", highlight=False, soft_wrap=True)


@keys_app.command("list")
def list_(home: HomeOpt = None, network: NetworkOpt = None, as_json: JsonOpt = False) -> None:
    """Every certificate and pending key, with days to expiry (warns under 30 days), and the CRLs."""
    from keys import WARN_DAYS

    try:
        items = _store(home).listing()
        net = _network(network)
    except StafetError as e:
        _fail(e)
    if as_json:
        echo_json({"format": "stafet.keys/1", "warn_days": WARN_DAYS,
                   "items": [{"org": i.org, "serial": i.serial, "subject": i.subject, "valid_to": i.not_after,
                              "days_left": i.days_left, "warn": i.warn, "state": i.state} for i in items],
                   "crls": [str(p) for p in (net.crls if net is not None else ())]})
        return
    t = Table(title=f"keys (warn under {WARN_DAYS} days)")
    for col in ("organisation", "serial", "subject", "expires", "days left", "state"):
        t.add_column(col, overflow="fold")
    for i in items:
        days = "" if i.days_left is None else str(i.days_left)
        t.add_row(i.org, i.serial, i.subject, str(i.not_after.date()) if i.not_after else "",
                  f"[red]{days}[/red]" if i.warn else days, i.state)
    console.print(t)
    for i in items:
        if i.warn:
            err.print(f"warning: {i.org} certificate {i.serial} expires in {i.days_left} days: "
                      f"rotate it (stafet keys rotate {i.org})", highlight=False, soft_wrap=True)
    if net is not None and net.crls:
        _list_crls(net.crls)


def _list_crls(paths: tuple[Path, ...]) -> None:
    """The network's CRL files: issuer, next update, revoked count; warns when one is stale or missing."""
    from keys.trust import crl_stale_since, load_crl

    now = dt.datetime.now(dt.UTC)
    t = Table(title="CRLs (from the network configuration)")
    for col in ("file", "issuer", "next update", "days left", "revoked"):
        t.add_column(col, overflow="fold")
    for p in paths:
        if not p.exists():
            t.add_row(str(p), "", "", "", "")
            err.print(f"warning: CRL {p} is missing: revocations cannot be checked against it",
                      highlight=False, soft_wrap=True)
            continue
        crl = load_crl(p)
        due = crl.next_update_utc
        days = "" if due is None else str((due - now).days)
        stale = crl_stale_since(crl, now)
        t.add_row(str(p), crl.issuer.rfc4514_string(), str(due.date()) if due else "",
                  f"[red]{days}[/red]" if stale else days, str(len(list(crl))))
        if stale:
            err.print(f"warning: CRL {p} is stale since {stale.date()}: fetch a fresh one from its CA "
                      "(for the network CA: stafet keys revoke rewrites it)", highlight=False, soft_wrap=True)
    console.print(t)
