"""Conformance of :class:`keys.trust.TrustStore` to RFC 5280 §6 (paths) and §6.3 (CRLs).

A table of crafted chains and CRLs, built with ``cryptography`` (EC keys: only the
structure is under test, not RSA), each with the reason code the store must refuse
it with, or ``None`` for a path that must be accepted. The rules: pathLenConstraint
(§4.2.1.9), keyCertSign and cRLSign on CA certificates (§4.2.1.3), CA basicConstraints,
unknown critical extensions on certificates (§4.2) and CRLs (§5.2), name chaining by
RFC 4518 comparison (case, whitespace, string types; §7.1), chains deeper than three
intermediates, CRL validation (issuer key, cRLSign, nextUpdate, grace), revocation of
the end entity and of an issuing CA, revocation required for every certificate below the
anchor, a CRL entry with a negative serial number (parsed, never a crash), weak
signature hashes, key usage / extended key usage, name constraints (an intermediate's and the
anchor's own) and a required policy;
delta CRLs (one listing what its complete CRL does not, announced or not, stale or not; missing,
wrongly signed, without its complete CRL) and issuing distribution points (user-only or CA-only
scope, a distribution point name that matches the certificate's cRLDistributionPoints or not).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from asn1crypto import crl as asn1_crl
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier
from trust_crafting import crl_dp, freshest_crl, idp, make_crl

from keys.trust import ENCRYPT, SIGN, TrustStore
from stafet.core.errors import PackageRejected

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
DAY = dt.timedelta(days=1)
UNKNOWN = ObjectIdentifier("1.3.6.1.4.1.55555.1.1")
POLICY = "1.2.208.169.1.1.1.3.4"  # an OCES-like policy OID (synthetic use)


def name(cn: str, *, printable: bool = False) -> x509.Name:
    from cryptography.x509.name import _ASN1Type

    kw: dict[str, Any] = {"_type": _ASN1Type.PrintableString} if printable else {}
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "DK"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn, **kw)])


_KEYS: list[ec.EllipticCurvePrivateKey] = []
RSA_KEY = 100


def key(i: int) -> Any:
    """EC key ``i`` (fast); :data:`RSA_KEY` an RSA-2048 key (for the SHA-1 case)."""
    if i == RSA_KEY:
        if not hasattr(key, "rsa"):
            key.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # type: ignore[attr-defined]
        return key.rsa  # type: ignore[attr-defined]
    while len(_KEYS) <= i:
        _KEYS.append(ec.generate_private_key(ec.SECP256R1()))
    return _KEYS[i]


def ku(*bits: str) -> x509.KeyUsage:
    flags = {b: b in bits for b in ("digital_signature", "content_commitment", "key_encipherment",
                                    "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign")}
    return x509.KeyUsage(**flags, encipher_only=False, decipher_only=False)


@dataclass
class Node:
    """A certificate and its key, and the name it is issued under."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    subject: x509.Name


def issue(subject: x509.Name, k: int, issuer: Node | None, *, ca: bool, path_len: int | None = None,
          usage: x509.KeyUsage | None = None, eku: list[ObjectIdentifier] | None = None,
          extra: list[tuple[x509.ExtensionType, bool]] = (),  # type: ignore[assignment]
          issuer_name: x509.Name | None = None, days: tuple[int, int] = (-1, 30),
          digest: hashes.HashAlgorithm | None = None, basic: bool = True) -> Node:
    sk = key(k)
    b = (x509.CertificateBuilder().subject_name(subject)
         .issuer_name(issuer_name or (issuer.subject if issuer else subject))
         .public_key(sk.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(NOW + days[0] * DAY).not_valid_after(NOW + days[1] * DAY))
    if basic:
        b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=path_len if ca else None), critical=True)
    b = b.add_extension(usage or (ku("key_cert_sign", "crl_sign") if ca
                                  else ku("digital_signature", "key_encipherment")), critical=True)
    if not ca:
        b = b.add_extension(x509.ExtendedKeyUsage(eku or [ExtendedKeyUsageOID.EMAIL_PROTECTION]),
                            critical=False)
        b = b.add_extension(x509.SubjectAlternativeName([x509.RFC822Name("779008@sikkermail.test.dk")]),
                            critical=False)
    b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(sk.public_key()), critical=False)
    if issuer is not None:
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
                            critical=False)
    for ext, critical in extra:
        b = b.add_extension(ext, critical=critical)
    return Node(b.sign(issuer.key if issuer else sk, digest or hashes.SHA256()), sk, subject)


def crl(issuer: Node, revoked: list[x509.Certificate] = (), *,  # type: ignore[assignment]
        signer: ec.EllipticCurvePrivateKey | None = None,
        days: tuple[float, float] = (-0.1, 7), extra: list[tuple[x509.ExtensionType, bool]] = (),
        ) -> x509.CertificateRevocationList:  # type: ignore[assignment]
    b = (x509.CertificateRevocationListBuilder().issuer_name(issuer.subject)
         .last_update(NOW + days[0] * DAY).next_update(NOW + days[1] * DAY)
         .add_extension(x509.CRLNumber(1), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
             (signer or issuer.key).public_key()), critical=False))
    for c in revoked:
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(c.serial_number)
                                      .revocation_date(NOW - DAY).build())
    for ext, critical in extra:
        b = b.add_extension(ext, critical=critical)
    return b.sign(signer or issuer.key, hashes.SHA256())


def crl_with_negative_serial(issuer: Node) -> x509.CertificateRevocationList:
    """A CRL listing serial -1234 (not allowed by RFC 5280 §4.1.2.2, seen in the wild)."""
    good = crl(issuer)
    parsed = asn1_crl.CertificateList.load(good.public_bytes(serialization.Encoding.DER))
    tbs = parsed["tbs_cert_list"]
    tbs["revoked_certificates"] = asn1_crl.RevokedCertificates([asn1_crl.RevokedCertificate({
        "user_certificate": -1234, "revocation_date": asn1_crl.Time({"utc_time": NOW - DAY})})])
    sig = issuer.key.sign(tbs.dump(force=True), ec.ECDSA(hashes.SHA256()))
    out = asn1_crl.CertificateList({"tbs_cert_list": tbs, "signature": sig,
                                    "signature_algorithm": parsed["signature_algorithm"]})
    return x509.load_der_x509_crl(out.dump(force=True))


@dataclass
class Case:
    leaf: x509.Certificate
    chain: list[x509.Certificate]
    anchors: list[x509.Certificate]
    crls: list[x509.CertificateRevocationList]
    options: dict[str, Any] = field(default_factory=dict)
    usage: str = SIGN


def standard(depth: int = 1, *, root_len: int | None = None, inter: dict[str, Any] | None = None,
             leaf: dict[str, Any] | None = None, crls: Callable[[list[Node]], list[Any]] | None = None,
             root: dict[str, Any] | None = None, first: dict[str, Any] | None = None, **options: Any) -> Case:
    """root → ``depth`` intermediates → leaf; a fresh, empty CRL from each CA unless ``crls``."""
    nodes = [issue(name("stafet test root"), 0, None, ca=True, path_len=root_len, **(root or {}))]
    for i in range(depth):
        opts = {**((first or {}) if i == 0 else {}), **((inter or {}) if i == depth - 1 else {})}
        nodes.append(issue(name(f"stafet test CA {i + 1}"), i + 1, nodes[-1], ca=True, **opts))
    end = issue(name("779008"), 9, nodes[-1], ca=False, **(leaf or {}))
    lists = crls([*nodes, end]) if crls else [crl(n) for n in nodes]
    return Case(end.cert, [n.cert for n in nodes[1:]], [nodes[0].cert], lists, options)


def revoke(index: int) -> Callable[[list[Node]], list[Any]]:
    """The CRLs of every CA, the one above ``nodes[index]`` listing it."""
    return lambda nodes: [crl(n, [nodes[index].cert] if i == index - 1 else [])
                          for i, n in enumerate(nodes[:-1])]


def renamed() -> Case:
    """The intermediate names its issuer in other case, spacing and string type (RFC 4518)."""
    root = issue(name("stafet test root"), 0, None, ca=True)
    inter = issue(name("stafet test CA 1"), 1, root, ca=True,
                  issuer_name=name("  Stafet   TEST root ", printable=True))
    end = issue(name("779008"), 9, inter, ca=False)
    return Case(end.cert, [inter.cert], [root.cert], [crl(root), crl(inter)])


def other_name() -> Case:
    root = issue(name("stafet test root"), 0, None, ca=True)
    inter = issue(name("stafet test CA 1"), 1, root, ca=True, issuer_name=name("stafet test rod"))
    end = issue(name("779008"), 9, inter, ca=False)
    return Case(end.cert, [inter.cert], [root.cert], [crl(root), crl(inter)])


def same_name_other_key() -> Case:
    """A CA of the anchor's name but another key issued the intermediate."""
    root = issue(name("stafet test root"), 0, None, ca=True)
    rogue = issue(name("stafet test root"), 7, None, ca=True)
    inter = issue(name("stafet test CA 1"), 1, rogue, ca=True)
    end = issue(name("779008"), 9, inter, ca=False)
    return Case(end.cert, [inter.cert], [root.cert], [crl(root), crl(inter)])


def crl_by(kind: str) -> Case:
    """The intermediate's CRL: signed by another key, by a CA without cRLSign, or stale."""
    root = issue(name("stafet test root"), 0, None, ca=True)
    inter = issue(name("stafet test CA 1"), 1, root, ca=True,
                  usage=ku("key_cert_sign") if kind == "no_crl_sign" else None)
    end = issue(name("779008"), 9, inter, ca=False)
    lists = [crl(root)]
    if kind == "other_key":
        lists.append(crl(inter, signer=key(7)))
    elif kind == "no_crl_sign":
        lists.append(crl(inter))
    elif kind == "stale":
        lists.append(crl(inter, days=(-8, -2)))
    elif kind == "stale_in_grace":
        lists.append(crl(inter, days=(-7, -1 / 24)))  # due an hour ago; grace 6 h
    elif kind == "critical_ext":
        lists.append(crl(inter, extra=[(x509.UnrecognizedExtension(UNKNOWN, b"\x05\x00"), True)]))
    elif kind == "negative_serial":
        lists.append(crl_with_negative_serial(inter))
    elif kind == "future":
        lists.append(crl(inter, days=(1, 8)))
    return Case(end.cert, [inter.cert], [root.cert], lists)


def constrained(email: str, *, on: str = "intermediate", excluded: bool = False,
                policy: str | None = None) -> Case:
    """``on`` the intermediate or the anchor: e-mail addresses under sikkermail.test.dk only
    (§4.2.1.10), or (``excluded``) anything but under example.org. ``policy``: the intermediate
    and the leaf carry it, and the network requires it (both sets of initial constraints apply).

    An anchor's own nameConstraints are optional to enforce (§6.1.1 (b), RFC 5937): stafet
    enforces them.
    """
    names = [x509.RFC822Name(".sikkermail.test.dk"), x509.RFC822Name("sikkermail.test.dk")]
    nc = (x509.NameConstraints(permitted_subtrees=None, excluded_subtrees=[x509.RFC822Name("example.org")])
          if excluded else x509.NameConstraints(permitted_subtrees=names, excluded_subtrees=None))
    root = issue(name("stafet test root"), 0, None, ca=True, extra=[(nc, True)] if on == "anchor" else [])
    pol = [(x509.CertificatePolicies([x509.PolicyInformation(ObjectIdentifier(policy), None)]), False)
           ] if policy else []
    inter = issue(name("stafet test CA 1"), 1, root, ca=True,
                  extra=([(nc, True)] if on != "anchor" else []) + pol)
    sk = key(9)
    leaf = (x509.CertificateBuilder().subject_name(name("779008")).issuer_name(inter.subject)
            .public_key(sk.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - DAY).not_valid_after(NOW + 30 * DAY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(ku("digital_signature", "key_encipherment"), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False))
    for ext, critical in pol:
        leaf = leaf.add_extension(ext, critical=critical)
    return Case(leaf.sign(inter.key, hashes.SHA256()), [inter.cert], [root.cert], [crl(root), crl(inter)],
                {"required_policy": policy} if policy else {})


def with_policy(policy: str | None, required: str) -> Case:
    ext = ([(x509.CertificatePolicies([x509.PolicyInformation(ObjectIdentifier(policy), None)]), False)]
           if policy else [])
    root = issue(name("stafet test root"), 0, None, ca=True)
    inter = issue(name("stafet test CA 1"), 1, root, ca=True, extra=ext)
    end = issue(name("779008"), 9, inter, ca=False, extra=ext)
    return Case(end.cert, [inter.cert], [root.cert], [crl(root), crl(inter)], {"required_policy": required})


def sha1_leaf() -> Case:
    """The leaf re-signed with SHA-1 (cryptography refuses to sign so: done with asn1crypto)."""
    from asn1crypto import x509 as asn1_x509
    from cryptography.hazmat.primitives.asymmetric import padding

    root = issue(name("stafet test root"), 0, None, ca=True)
    inter = issue(name("stafet test CA 1"), RSA_KEY, root, ca=True)
    end = issue(name("779008"), 9, inter, ca=False)
    cert = asn1_x509.Certificate.load(end.cert.public_bytes(serialization.Encoding.DER))
    algo = asn1_x509.SignedDigestAlgorithm({"algorithm": "sha1_rsa"})
    tbs = cert["tbs_certificate"]
    tbs["signature"] = algo
    sig = inter.key.sign(tbs.dump(force=True), padding.PKCS1v15(), hashes.SHA1())
    leaf = asn1_x509.Certificate({"tbs_certificate": tbs, "signature_algorithm": algo,
                                  "signature_value": sig})
    return Case(x509.load_der_x509_certificate(leaf.dump(force=True)), [inter.cert], [root.cert],
                [crl(root), crl(inter)])


def no_crl_for_the_intermediate() -> Case:
    c = standard(1)
    c.crls = c.crls[1:]  # only the intermediate's own CRL: nothing says whether the intermediate is revoked
    return c


def encrypting(eku: list[ObjectIdentifier], *bits: str) -> Case:
    c = standard(1, leaf={"usage": ku(*bits), "eku": eku})
    c.usage = ENCRYPT
    return c


CA1_URL = "http://crl.test.dk/ca1.crl"
CA1_DELTA_URL = "http://crl.test.dk/ca1-delta.crl"


def delta(kind: str) -> Case:
    """CA 1's complete CRL (number 1, freshestCRL naming its delta) and a delta CRL (number 2,
    deltaCRLIndicator 1) listing the leaf, which the complete CRL does not (RFC 5280 §5.2.4, §6.3.3)."""
    root = issue(name("stafet test root"), 0, None, ca=True)
    inter = issue(name("stafet test CA 1"), 1, root, ca=True)
    end = issue(name("779008"), 9, inter, ca=False)
    announce = [] if kind == "no_freshest" else [(freshest_crl(CA1_DELTA_URL), False)]
    base = make_crl(inter.subject, inter.key, number=1, now=NOW, extra=announce)

    def delta_crl(revoked: list[x509.Certificate], **kw: Any) -> x509.CertificateRevocationList:
        return make_crl(inter.subject, kw.pop("key", inter.key), revoked, number=2, now=NOW,
                        extra=[(x509.DeltaCRLIndicator(1), True)], **kw)

    lists = {"revokes": [base, delta_crl([end.cert])],
             "no_freshest": [base, delta_crl([end.cert])],
             "stale": [base, delta_crl([end.cert], last=-3 * DAY, nxt=-DAY)],
             "empty": [base, delta_crl([])],
             "missing": [base],
             "other_key": [base, delta_crl([end.cert], key=key(7))],
             "without_base": [delta_crl([end.cert])]}[kind]
    return Case(end.cert, [inter.cert], [root.cert], [crl(root), *lists])


def scoped(kind: str) -> Case:
    """CRLs with an issuingDistributionPoint (RFC 5280 §5.2.5, §6.3.3 (b)(2)): user or CA
    certificates only, a distribution point name matching the certificate's or not."""
    root = issue(name("stafet test root"), 0, None, ca=True)
    inter = issue(name("stafet test CA 1"), 1, root, ca=True)
    dp = [] if kind == "named_no_dp" else [(crl_dp(CA1_URL), False)]
    end = issue(name("779008"), 9, inter, ca=False, extra=dp)

    def scope(node: Node, ext: x509.IssuingDistributionPoint) -> x509.CertificateRevocationList:
        return make_crl(node.subject, node.key, now=NOW, extra=[(ext, True)])

    lists = {"user_only_for_ca": [scope(root, idp(user_only=True)), crl(inter)],
             "ca_only_for_ca": [scope(root, idp(ca_only=True)), crl(inter)],
             "user_only_for_leaf": [crl(root), scope(inter, idp(user_only=True))],
             "ca_only_for_leaf": [crl(root), scope(inter, idp(ca_only=True))],
             "named": [crl(root), scope(inter, idp(CA1_URL))],
             "named_other": [crl(root), scope(inter, idp("http://crl.test.dk/other.crl"))],
             "named_no_dp": [crl(root), scope(inter, idp(CA1_URL))]}[kind]
    return Case(end.cert, [inter.cert], [root.cert], lists)


UNKNOWN_EXT = [(x509.UnrecognizedExtension(UNKNOWN, b"\x05\x00"), True)]
SERVER_AUTH = [ExtendedKeyUsageOID.SERVER_AUTH]
CASES: dict[str, tuple[Callable[[], Case], str | None]] = {
    # valid paths
    "valid-one-intermediate": (lambda: standard(1), None),
    "valid-directly-under-the-anchor": (lambda: standard(0), None),
    "valid-five-intermediates": (lambda: standard(5), None),
    "valid-path-length-1-with-one-intermediate": (lambda: standard(1, root_len=1), None),
    "valid-names-differ-in-case-space-and-string-type": (renamed, None),
    "valid-unknown-non-critical-extension": (lambda: standard(1, leaf={"extra": [(
        x509.UnrecognizedExtension(UNKNOWN, b"\x05\x00"), False)]}), None),
    "valid-crl-past-next-update-within-grace": (lambda: crl_by("stale_in_grace"), None),
    "valid-crl-entry-with-negative-serial": (lambda: crl_by("negative_serial"), None),
    "valid-email-inside-name-constraints": (lambda: constrained("779008@sikkermail.test.dk"), None),
    "valid-required-policy-present": (lambda: with_policy(POLICY, POLICY), None),
    "valid-for-encryption": (lambda: encrypting([ExtendedKeyUsageOID.EMAIL_PROTECTION], "key_encipherment"),
                             None),
    # RFC 5280 §6.1: path rules
    "anchor-path-length-0-exceeded": (lambda: standard(1, root_len=0), "bad_path"),
    "anchor-path-length-1-exceeded-by-deep-chain": (lambda: standard(3, root_len=1), "bad_path"),
    "intermediate-path-length-0-exceeded": (lambda: standard(2, first={"path_len": 0}), "bad_path"),
    "valid-intermediate-path-length-0-last": (lambda: standard(2, inter={"path_len": 0}), None),
    "ca-without-keyCertSign": (lambda: standard(1, inter={"usage": ku("crl_sign", "digital_signature")}),
                               "bad_path"),
    "intermediate-is-not-a-ca": (lambda: standard(1, inter={"basic": False}), "bad_path"),
    "unknown-critical-extension-on-leaf": (lambda: standard(1, leaf={"extra": UNKNOWN_EXT}), "bad_path"),
    "unknown-critical-extension-on-intermediate": (lambda: standard(1, inter={"extra": UNKNOWN_EXT}),
                                                   "bad_path"),
    "issuer-name-does-not-match": (other_name, "unknown_signer"),
    "anchor-name-but-another-key": (same_name_other_key, "unknown_signer"),
    "expired-intermediate": (lambda: standard(1, inter={"days": (-30, -1)}), "expired"),
    "expired-leaf": (lambda: standard(1, leaf={"days": (-30, -1)}), "expired"),
    "leaf-not-yet-valid": (lambda: standard(1, leaf={"days": (2, 30)}), "not_yet_valid"),
    "sha1-signed-leaf": (sha1_leaf, "weak_algorithm"),
    "email-outside-name-constraints": (lambda: constrained("779008@example.org"), "bad_path"),
    "valid-email-inside-the-anchors-name-constraints": (lambda: constrained("779008@sikkermail.test.dk",
                                                                            on="anchor"), None),
    "email-outside-the-anchors-name-constraints": (lambda: constrained("779008@example.org", on="anchor"),
                                                   "bad_path"),
    "email-in-the-anchors-excluded-subtree": (lambda: constrained("779008@example.org", on="anchor",
                                                                  excluded=True), "bad_path"),
    "valid-email-outside-the-anchors-excluded-subtree": (lambda: constrained(
        "779008@sikkermail.test.dk", on="anchor", excluded=True), None),
    "valid-inside-the-anchors-name-constraints-with-a-required-policy": (lambda: constrained(
        "779008@sikkermail.test.dk", on="anchor", policy=POLICY), None),
    "outside-the-anchors-name-constraints-with-a-required-policy": (lambda: constrained(
        "779008@example.org", on="anchor", policy=POLICY), "bad_path"),
    "required-policy-missing": (lambda: with_policy(None, POLICY), "bad_path"),
    "required-policy-other": (lambda: with_policy("1.2.3.4", POLICY), "bad_path"),
    # key usage
    "leaf-serverAuth-only": (lambda: standard(1, leaf={"eku": SERVER_AUTH}), "bad_usage"),
    "leaf-keyEncipherment-only-signing": (lambda: standard(1, leaf={"usage": ku("key_encipherment")}),
                                          "bad_usage"),
    "leaf-signing-only-encrypting": (lambda: encrypting([ExtendedKeyUsageOID.EMAIL_PROTECTION],
                                                        "digital_signature"), "bad_usage"),
    "leaf-serverAuth-encrypting": (lambda: encrypting(SERVER_AUTH, "key_encipherment"), "bad_usage"),
    # RFC 5280 §6.3: revocation
    "leaf-revoked": (lambda: standard(1, crls=revoke(2)), "revoked"),
    "intermediate-revoked": (lambda: standard(1, crls=revoke(1)), "revoked"),
    "intermediate-revoked-deep": (lambda: standard(4, crls=revoke(2)), "revoked"),
    "no-crl-at-all": (lambda: standard(1, crls=lambda nodes: []), "revocation_unknown"),
    "no-crl-for-the-intermediate": (no_crl_for_the_intermediate, "revocation_unknown"),
    "crl-signed-by-another-key": (lambda: crl_by("other_key"), "revocation_unknown"),
    "crl-issuer-without-cRLSign": (lambda: crl_by("no_crl_sign"), "revocation_unknown"),
    "crl-past-next-update-and-grace": (lambda: crl_by("stale"), "revocation_unknown"),
    "crl-with-unknown-critical-extension": (lambda: crl_by("critical_ext"), "revocation_unknown"),
    "crl-not-yet-issued": (lambda: crl_by("future"), "revocation_unknown"),
    # delta CRLs (§5.2.4, §6.3.3): what the delta lists is revoked, whether or not the complete
    # CRL announces it and whether or not it is still fresh (revocation is final, §3.3)
    "delta-crl-revokes-what-the-base-does-not": (lambda: delta("revokes"), "revoked"),
    "delta-crl-revokes-base-announces-no-delta": (lambda: delta("no_freshest"), "revoked"),
    "stale-delta-crl-revokes": (lambda: delta("stale"), "revoked"),
    "valid-empty-delta-crl": (lambda: delta("empty"), None),
    "delta-crl-announced-but-missing": (lambda: delta("missing"), "revocation_unknown"),
    "delta-crl-signed-by-another-key": (lambda: delta("other_key"), "revocation_unknown"),
    "delta-crl-without-its-complete-crl": (lambda: delta("without_base"), "revocation_unknown"),
    # issuing distribution point scope (§5.2.5, §6.3.3 (b)(2))
    "crl-only-user-certs-does-not-cover-a-ca-certificate": (lambda: scoped("user_only_for_ca"),
                                                           "revocation_unknown"),
    "valid-crl-only-ca-certs-covers-the-intermediate": (lambda: scoped("ca_only_for_ca"), None),
    "valid-crl-only-user-certs-covers-the-leaf": (lambda: scoped("user_only_for_leaf"), None),
    "crl-only-ca-certs-does-not-cover-the-leaf": (lambda: scoped("ca_only_for_leaf"), "revocation_unknown"),
    "valid-idp-name-matches-the-crl-distribution-point": (lambda: scoped("named"), None),
    "idp-name-does-not-match-the-crl-distribution-point": (lambda: scoped("named_other"),
                                                           "revocation_unknown"),
    "idp-name-and-a-certificate-without-crl-distribution-points": (lambda: scoped("named_no_dp"),
                                                                   "revocation_unknown"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_rfc5280_case(case: str) -> None:
    make, expected = CASES[case]
    c = make()
    store = TrustStore(c.anchors, c.crls, **c.options)
    if expected is None:
        store.check_certificate(c.leaf, NOW, c.chain, usage=c.usage)
        store.check_certificate(c.leaf, NOW + dt.timedelta(seconds=1), c.chain, usage=c.usage)  # cached
        return
    with pytest.raises(PackageRejected) as e:
        store.check_certificate(c.leaf, NOW, c.chain, usage=c.usage)
    assert e.value.reason == expected, str(e.value)


def test_the_cached_verdict_ends_with_the_inputs_validity() -> None:
    """A verdict is reused only inside every input's window: past the CRL's nextUpdate + grace, refused."""
    c = standard(1)
    store = TrustStore(c.anchors, c.crls, crl_grace=dt.timedelta(hours=1))
    store.check_certificate(c.leaf, NOW, c.chain)
    with pytest.raises(PackageRejected) as e:
        store.check_certificate(c.leaf, NOW + 7 * DAY + dt.timedelta(hours=2), c.chain)
    assert e.value.reason == "revocation_unknown"
    with pytest.raises(PackageRejected) as e:
        store.check_certificate(c.leaf, NOW + 31 * DAY, c.chain)
    assert e.value.reason == "expired"


def test_revocation_can_be_made_optional_but_is_required_by_default() -> None:
    c = standard(1, crls=lambda nodes: [])
    TrustStore(c.anchors, [], require_revocation=False).check_certificate(c.leaf, NOW, c.chain)
    with pytest.raises(PackageRejected) as e:
        TrustStore(c.anchors, []).check_certificate(c.leaf, NOW, c.chain)
    assert e.value.reason == "revocation_unknown"


def test_a_store_crosses_to_worker_processes_intact() -> None:
    import pickle

    c = standard(1, crls=revoke(2))
    store = pickle.loads(pickle.dumps(TrustStore(c.anchors, c.crls, pins={"779008": {"ab"}})))
    assert store.pins == {"779008": frozenset({"ab"})}
    with pytest.raises(PackageRejected) as e:
        store.check_certificate(c.leaf, NOW, c.chain)
    assert e.value.reason == "revoked"
