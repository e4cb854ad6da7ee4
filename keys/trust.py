"""Who may send to us: trust anchors, revocation (CRLs, OCSP), certificate paths, member pins.

Signature checking of CMS SignedData: cryptography cannot verify CMS signatures
(its pkcs7 module only signs), so the structure is parsed with asn1crypto — a
maintained ASN.1/CMS library — and each cryptographic check (RSA signature) is done
with cryptography. No ASN.1 is hand-written.

Certificate paths are validated to RFC 5280 §6 by pyhanko-certvalidator (path building,
pathLenConstraint, keyCertSign/cRLSign, unknown critical extensions, RFC 4518 name
matching, policies and name constraints, CRL and OCSP validation with delta CRLs and
issuing distribution points), with ``revocation_mode="require"`` (every certificate
below the anchor needs a fresh CRL or OCSP response: the library's "hard-fail" mode
would skip certificates that name no distribution point), no fetching on the hot path
(:func:`fetch_ocsp`, :func:`fetch_crl` and :func:`refresh_revocation` are for a scheduled
flow) and a fixed moment: the time of receipt, never the sender's signing time. Beyond the
validator: an anchor's own nameConstraints and pathLenConstraint bind the paths under it
(RFC 5937), and a certificate listed on any CRL or delta CRL its issuer signed is revoked
(the validator reads a delta only when its complete CRL announces it, and only while fresh).
A fetched CRL (at most :data:`CRL_MAX_BYTES`) replaces the cached one only when its issuer
signed it, it is fresh and it is not older; otherwise the cached one stays.

A verdict is cached per (certificate, intermediates, usage) for the store's life — its
CRLs and OCSP responses are fixed — while the moment stays inside every input's validity
window (certificates' notBefore/notAfter, each CRL's and OCSP response's thisUpdate and
nextUpdate + grace), so a package costs a dictionary look-up, not a path validation.

Refusals (:class:`PackageRejected`) carry stable reason codes: ``unknown_signer`` (no path
to an anchor), ``expired``, ``not_yet_valid``, ``revoked``, ``revocation_unknown`` (no fresh,
valid CRL or OCSP response), ``bad_path`` (the path breaks an RFC 5280 rule), ``bad_usage``
(keyUsage/extendedKeyUsage), ``weak_algorithm``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import hashlib
import itertools
import logging
import threading
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from asn1crypto import cms
from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, CRLEntryExtensionOID, ExtensionOID, NameOID

from stafet.core.errors import PackageRejected

log = logging.getLogger("stafet.trust")
# pyhanko-certvalidator logs a traceback at WARNING for every CRL issuer path it fails to build.
logging.getLogger("pyhanko_certvalidator").setLevel(logging.ERROR)

ACCEPTED_DIGESTS: dict[str, hashes.HashAlgorithm] = {
    "sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}
ACCEPTED_SIGNATURES = {"rsassa_pkcs1v15", "rsa", "sha256_rsa", "sha384_rsa", "sha512_rsa"}
MIN_RSA_BITS = 2048
ACCEPTED_CIPHERS = {"aes128_cbc", "aes192_cbc", "aes256_cbc"}
CLOCK_SKEW = dt.timedelta(minutes=10)
CRL_GRACE_HOURS = 6.0
"""Default ``crl_grace_hours``: how long past its nextUpdate a CRL is still used (then: refused)."""
CONTEXT_REUSE = dt.timedelta(seconds=60)
"""A validation context (its moment) is reused for this long; dates are checked exactly anyway."""
REASONS = ("unknown_signer", "expired", "not_yet_valid", "revoked", "revocation_unknown", "bad_path",
           "bad_usage", "weak_algorithm")
"""The reason codes a certificate check refuses with."""

SIGN = "sign"
ENCRYPT = "encrypt"
_USAGES: dict[str, tuple[set[str], set[str]]] = {
    SIGN: ({"digital_signature"}, {"email_protection"}),
    ENCRYPT: ({"key_encipherment"}, {"email_protection"}),
}
# Critical extensions of an end-entity certificate stafet processes (the validator leaves the
# end entity's critical extensions to the application, RFC 5280 §4.2).
_LEAF_CRITICAL = {"basic_constraints", "key_usage", "extended_key_usage", "subject_alt_name",
                  "certificate_policies", "name_constraints", "policy_constraints", "inhibit_any_policy",
                  "policy_mappings"}


@dataclass(frozen=True)
class Signed:
    """A verified signature: who signed, when (the signer's claim), and the content's digest."""

    signer: x509.Certificate
    signing_time: dt.datetime
    content_digest: str

    @property
    def org_id(self) -> str:
        """The organisation id in the signer's certificate (its common name)."""
        return common_name(self.signer)


def common_name(cert: x509.Certificate) -> str:
    """The subject's CN ("" when there is none or the subject does not parse)."""
    try:
        attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError:
        return ""
    return str(attrs[0].value) if attrs else ""


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER, hex (what a member is pinned to)."""
    return cert.fingerprint(hashes.SHA256()).hex()


@dataclass(frozen=True)
class RevocationSource:
    """One configured or cached source of revocation status, and what state it is in.

    ``state``: ``ok``; ``stale`` (past nextUpdate, within the grace period: still used);
    ``expired`` (past nextUpdate + grace: certificates it covers are refused
    ``revocation_unknown``); ``missing``, ``unreadable``, ``bad_signature`` (no anchor of
    this network signed it with cRLSign): not used, so the same.
    """

    path: str
    kind: str  # "crl" or "ocsp"
    state: str
    issuer: str = ""
    this_update: dt.datetime | None = None
    next_update: dt.datetime | None = None
    detail: str = ""

    @property
    def usable(self) -> bool:
        """Whether this source is used for revocation checks now."""
        return self.state in ("ok", "stale")

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``stafet status``."""
        return {"path": self.path, "kind": self.kind, "state": self.state, "issuer": self.issuer,
                "this_update": self.this_update.isoformat() if self.this_update else "",
                "next_update": self.next_update.isoformat() if self.next_update else "",
                "detail": self.detail}


@dataclass
class _Verdict:
    valid_from: dt.datetime
    valid_until: dt.datetime


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _asn1_time(value: Any) -> dt.datetime:
    return value.native if isinstance(value.native, dt.datetime) else dt.datetime.min.replace(tzinfo=dt.UTC)


class TrustStore:
    """Trust anchors, CRLs and OCSP responses, member pins: the network's trust, fixed for its life.

    ``crl_grace``: how long past its nextUpdate a CRL (or OCSP response) is still used;
    after that, a certificate it covers is refused ``revocation_unknown``.
    ``require_revocation`` (default): every certificate below an anchor needs a usable CRL
    or OCSP response. ``pins``: member id → SHA-256 fingerprints of the certificates
    configured for it (current and previous: rotation overlap). ``required_policy``: a
    certificate policy OID every path must carry (RFC 5280 §6.1, explicit policy).
    """

    def __init__(self, anchors: Iterable[x509.Certificate], crls: Iterable[x509.CertificateRevocationList],
                 *, ocsp_responses: Iterable[bytes] = (), pins: Mapping[str, Iterable[str]] | None = None,
                 crl_grace: dt.timedelta = dt.timedelta(hours=CRL_GRACE_HOURS),
                 require_revocation: bool = True, required_policy: str | None = None,
                 sources: Iterable[RevocationSource] = ()) -> None:
        self.anchors = list(anchors)
        self.crls = list(crls)
        self.ocsp_responses = [bytes(r) for r in ocsp_responses]
        self.pins = {k: frozenset(v) for k, v in (pins or {}).items()}
        self.crl_grace = crl_grace
        self.require_revocation = require_revocation
        self.required_policy = required_policy
        self.sources = list(sources)
        self._crl_paths: dict[int, str] = {}  # id of a CRL -> the file it came from
        self._prepare()

    # --- picklable (worker processes get the store over their pipe) -------------------------
    def __getstate__(self) -> dict[str, Any]:
        return {"anchors": [_der(a) for a in self.anchors],
                "crls": [c.public_bytes(serialization.Encoding.DER) for c in self.crls],
                "ocsp_responses": self.ocsp_responses, "pins": self.pins, "crl_grace": self.crl_grace,
                "require_revocation": self.require_revocation, "required_policy": self.required_policy,
                "sources": self.sources}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__([x509.load_der_x509_certificate(a) for a in state["anchors"]],  # type: ignore[misc]
                      [x509.load_der_x509_crl(c) for c in state["crls"]],
                      ocsp_responses=state["ocsp_responses"], pins=state["pins"],
                      crl_grace=state["crl_grace"],
                      require_revocation=state["require_revocation"],
                      required_policy=state["required_policy"], sources=state["sources"])

    def _prepare(self) -> None:
        self._lock = threading.Lock()
        self._verdicts: dict[tuple[x509.Certificate, frozenset[x509.Certificate], str], _Verdict] = {}
        # (moment, grace, OCSP checked here) -> its validation context (one per variant)
        self._contexts: dict[bool, tuple[tuple[dt.datetime, bool], Any]] = {}
        self._asn1_anchors = [asn1_x509.Certificate.load(_der(a)) for a in self.anchors]
        self._asn1_crls = [asn1_crl.CertificateList.load(c.public_bytes(serialization.Encoding.DER))
                           for c in self.crls]
        self._asn1_ocsp = [asn1_ocsp.OCSPResponse.load(r) for r in self.ocsp_responses]
        # serials some OCSP response speaks about (its issuer is matched by the validator)
        self._ocsp_serials = {s.serial_number for r in self.ocsp_responses
                              for s in ocsp.load_der_ocsp_response(r).responses}
        # (thisUpdate, nextUpdate) of every piece of revocation information
        self._windows: list[tuple[dt.datetime, dt.datetime | None]] = [
            (c.last_update_utc, c.next_update_utc) for c in self.crls]
        for r in self.ocsp_responses:
            for this, nxt in _ocsp_windows(r):
                self._windows.append((this, nxt))

    # --- loading -----------------------------------------------------------------------
    @classmethod
    def from_files(cls, anchors: tuple[Path, ...], crls: tuple[Path, ...], *,
                   ocsp: Iterable[Path] = (), **options: Any) -> TrustStore:
        """Load PEM anchors, PEM/DER CRLs and DER OCSP responses.

        A CRL that is missing or does not parse is recorded (``sources``: ``stafet status``
        shows it) and not used: the certificates it would cover are then refused
        ``revocation_unknown`` unless an OCSP response covers them.
        """
        certs = [c for p in anchors for c in x509.load_pem_x509_certificates(p.read_bytes())]
        lists, problems, responses = [], [], []
        for p in crls:
            try:
                lists.append(load_crl(p))
            except FileNotFoundError:
                problems.append(RevocationSource(str(p), "crl", "missing", detail="the CRL file is missing"))
            except (OSError, ValueError) as e:
                problems.append(RevocationSource(str(p), "crl", "unreadable",
                                                 detail=f"the CRL does not parse ({type(e).__name__})"))
        for p in ocsp:
            try:
                data = p.read_bytes()
                _ocsp_windows(data)
                responses.append(data)
            except (OSError, ValueError) as e:
                problems.append(RevocationSource(str(p), "ocsp", "unreadable",
                                                 detail=f"the OCSP response does not parse "
                                                        f"({type(e).__name__})"))
        paths = [str(p) for p in crls if str(p) not in {s.path for s in problems}]
        store = cls(certs, lists, ocsp_responses=responses, sources=problems, **options)
        store._crl_paths = dict(zip(map(id, lists), paths, strict=False))
        return store

    @classmethod
    def for_network(cls, network: Any, cache_dir: Path | None = None) -> TrustStore:
        """The trust of a :class:`stafet.core.config.Network`: its anchors, CRLs, grace, pins.

        ``cache_dir`` holds what :func:`refresh_revocation` fetched (``*.crl``, ``*.ocsp``).
        """
        crls = list(network.crls)
        ocsp_files: list[Path] = []
        if cache_dir is not None and cache_dir.is_dir():
            crls += sorted(cache_dir.glob("*.crl"))
            ocsp_files = sorted(cache_dir.glob("*.ocsp"))
        return cls.from_files(network.trust_anchors, tuple(crls), ocsp=ocsp_files,
                              pins=member_pins(network),
                              crl_grace=dt.timedelta(hours=float(getattr(network, "crl_grace_hours",
                                                                         CRL_GRACE_HOURS))),
                              require_revocation=bool(getattr(network, "require_revocation", True)),
                              required_policy=getattr(network, "required_policy", None) or None)

    # --- members ---------------------------------------------------------------------------
    def pinned(self, org_id: str, cert: x509.Certificate) -> bool:
        """Whether ``cert`` is one of the certificates configured for member ``org_id``."""
        fps = self.pins.get(org_id)
        return bool(fps) and fingerprint(cert) in fps  # type: ignore[operator]

    # --- revocation state ------------------------------------------------------------------
    def revocation_state(self, now: dt.datetime | None = None) -> list[RevocationSource]:
        """Every revocation source and its state at ``now`` (what ``stafet status`` shows)."""
        now = now or dt.datetime.now(dt.UTC)
        out = list(self.sources)
        paths = self._crl_paths
        for crl in self.crls:
            issuer = crl.issuer.rfc4514_string()
            state, detail = "ok", ""
            signers = [a for a in self.anchors if a.subject == crl.issuer]
            if signers and not any(_signed_crl(crl, a) for a in signers):
                state, detail = "bad_signature", "not signed by the anchor of that name with cRLSign"
            elif not signers:
                detail = "issued by an intermediate CA: checked on use"
            if state == "ok":
                state, detail = (self._window_state(crl.last_update_utc, crl.next_update_utc, now)
                                 or (state, detail))
            out.append(RevocationSource(paths.get(id(crl), "(in memory)"), "crl", state, issuer,
                                        crl.last_update_utc, crl.next_update_utc, detail))
        for r in self.ocsp_responses:
            for this, nxt in _ocsp_windows(r):
                state, detail = self._window_state(this, nxt, now) or ("ok", "")
                out.append(RevocationSource("(cached OCSP response)", "ocsp", state, "", this, nxt, detail))
        return out

    def _window_state(self, this: dt.datetime, nxt: dt.datetime | None,
                      now: dt.datetime) -> tuple[str, str] | None:
        if this > now + CLOCK_SKEW:
            return "bad_signature", "its thisUpdate lies in the future"
        if nxt is not None and now > nxt + self.crl_grace:
            return "expired", f"past its nextUpdate and the {self.crl_grace} grace period"
        if nxt is not None and now > nxt:
            return "stale", f"past its nextUpdate; still used for {nxt + self.crl_grace - now}"
        return None

    # --- paths -------------------------------------------------------------------------------
    def check_certificate(self, cert: x509.Certificate, at: dt.datetime | None = None,
                          extra: list[x509.Certificate] | None = None, *, usage: str = SIGN) -> None:
        """Validate ``cert``'s path to an anchor at ``at`` (the time of receipt), revocation included.

        ``usage``: :data:`SIGN` (keyUsage digitalSignature, EKU emailProtection) or
        :data:`ENCRYPT` (keyEncipherment, emailProtection).

        Raises:
            PackageRejected: with one of :data:`REASONS`.
        """
        at = at or dt.datetime.now(dt.UTC)
        others = frozenset(c for c in (extra or []) if c != cert)
        key = (cert, others, usage)
        verdict = self._verdicts.get(key)
        if verdict is not None and verdict.valid_from <= at <= verdict.valid_until:
            return
        with self._lock:
            self._verdicts[key] = self._validate(cert, others, at, usage)
            if len(self._verdicts) > 4096:
                self._verdicts.pop(next(iter(self._verdicts)))

    def _validate(self, cert: x509.Certificate, others: frozenset[x509.Certificate], at: dt.datetime,
                  usage: str) -> _Verdict:
        from pyhanko_certvalidator import CertificateValidator
        from pyhanko_certvalidator.policy_decl import PKIXValidationParams

        signer = common_name(cert)
        _dates(cert, at, signer)
        leaf = asn1_x509.Certificate.load(_der(cert))
        unknown = set(leaf.critical_extensions) - _LEAF_CRITICAL
        if unknown:
            raise PackageRejected("bad_path", "the certificate has an unknown critical extension",
                                  signer=signer, extension=sorted(map(str, unknown))[0][:64])
        # A CRL past its nextUpdate is used for ``crl_grace`` more: the validator's time tolerance
        # then covers the grace (it loosens its date checks of certificates too, which is why every
        # certificate of the path is checked again below, exactly at ``at``).
        grace = any(nxt is not None and nxt < at <= nxt + self.crl_grace for _, nxt in self._windows)
        params = None
        if self.required_policy:
            params = PKIXValidationParams(user_initial_policy_set=frozenset([self.required_policy]),
                                          initial_explicit_policy=True)
        ku, eku = _USAGES[usage]
        intermediates = [asn1_x509.Certificate.load(_der(c)) for c in others]

        def validate(own_ocsp: bool) -> Any:
            context = self._context_at(at, grace, own_ocsp)
            validator = CertificateValidator(leaf, intermediates, validation_context=context,
                                             pkix_params=params)
            try:
                return _run(validator.async_validate_usage(ku, eku, extended_optional=False)), context
            except Exception as e:
                raise _refusal(e, signer) from None

        # The validator consults OCSP responses only for a certificate whose authorityInfoAccess
        # names a responder; for one that names none (a cached answer from the configured
        # responder), the path is validated with the end entity's revocation left out and the
        # OCSP response is then checked here by the validator's own OCSP verification (CertID,
        # responder authorisation: the issuing CA or a delegated id-kp-OCSPSigning responder,
        # signature, thisUpdate..nextUpdate at the moment). Without a usable answer: CRLs as usual.
        path = None
        if cert.serial_number in self._ocsp_serials and not ocsp_urls(cert):
            path, context = validate(True)
            if not _ocsp_good(leaf, path, context, signer):
                path = None
        if path is None:
            path, _ = validate(False)
        self._revoked_on_any_crl(path, at, signer)
        # An anchor's own pathLenConstraint binds the path under it (RFC 5937; RFC 5280 §6.1
        # alone takes only the anchor's name and key).
        anchor = path.trust_anchor.authority
        anchor_len = getattr(getattr(anchor, "certificate", None), "max_path_length", None)
        if anchor_len is not None and path.pkix_len - 1 > anchor_len:
            raise PackageRejected("bad_path", "the path is longer than the anchor's pathLenConstraint allows",
                                  signer=signer)
        # Dates of every certificate of the path exactly at the time of receipt.
        start, end = at - CLOCK_SKEW, dt.datetime.max.replace(tzinfo=dt.UTC)
        for c in path.iter_certs(include_root=True):
            validity = c["tbs_certificate"]["validity"]
            nb, na = _asn1_time(validity["not_before"]), _asn1_time(validity["not_after"])
            if at > na:
                raise PackageRejected("expired", "a certificate of the path has expired", signer=signer,
                                      expired=na.date())
            if at < nb - CLOCK_SKEW:
                raise PackageRejected("not_yet_valid", "a certificate of the path is not yet valid",
                                      signer=signer)
            start, end = max(start, nb - CLOCK_SKEW), min(end, na)
        for this, nxt in self._windows:
            if this > at + CLOCK_SKEW:  # not usable yet: may change the verdict when it is
                end = min(end, this)
            elif nxt is not None and at <= nxt + self.crl_grace:
                start, end = max(start, this - CLOCK_SKEW), min(end, nxt + self.crl_grace if grace else nxt)
        return _Verdict(start, end)

    def _revoked_on_any_crl(self, path: Any, at: dt.datetime, signer: str) -> None:
        """Refuse ``revoked`` a certificate of ``path`` that any CRL its issuer signed lists.

        The validator reads a delta CRL only through its complete CRL's freshestCRL extension,
        and only while the delta is fresh: a delta CRL signed by the issuer that lists the
        certificate was otherwise ignored (and the certificate accepted). Revocation is final
        (RFC 5280 §3.3, §5.3.1): an entry for the certificate's serial in a CRL or delta CRL
        signed by its issuer's key with cRLSign refuses it, fresh or not, in scope or not —
        unless its reason is certificateHold or removeFromCRL (a hold may be lifted) or it was
        revoked after ``at``. Indirect CRLs (entries for other issuers' certificates) and CRLs or
        entries with an unknown critical extension (§5.2, §5.3: not to be used) are left to the
        validator.
        """
        certs = [x509.load_der_x509_certificate(c.dump()) for c in path.iter_certs(include_root=True)]
        for issuer, cert in itertools.pairwise(certs):
            for crl in self.crls:
                if crl.issuer != issuer.subject:
                    continue
                entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
                if (entry is None or entry.revocation_date_utc > at or _indirect(crl) or _on_hold(entry)
                        or not _plain(crl, entry) or not _signed_crl(crl, issuer)):
                    continue
                which = "the signer's certificate" if cert is certs[-1] else "an issuing CA's certificate"
                kind = "a delta CRL" if _is_delta(crl) else "a CRL"
                raise PackageRejected("revoked", f"{which} is revoked (listed on {kind} of its issuer)",
                                      signer=signer)

    def _context_at(self, moment: dt.datetime, grace: bool, own_ocsp: bool = False) -> Any:
        """The validation context at ``moment`` (reused for :data:`CONTEXT_REUSE`).

        ``own_ocsp``: the end entity's revocation is left to :func:`_ocsp_good`
        (intermediates' is checked as usual).
        """
        from pyhanko_certvalidator import ValidationContext
        from pyhanko_certvalidator.policy_decl import (
            CertRevTrustPolicy,
            RevocationCheckingPolicy,
            RevocationCheckingRule,
        )

        cached = self._contexts.get(own_ocsp)
        if cached is not None:
            (m, g), context = cached
            if g == grace and m <= moment <= m + CONTEXT_REUSE:
                return context
        mode = RevocationCheckingPolicy.from_legacy("require" if self.require_revocation else "soft-fail")
        if own_ocsp:
            mode = RevocationCheckingPolicy(RevocationCheckingRule.NO_CHECK, mode.intermediate_ca_cert_rule)
        context = ValidationContext(
            trust_roots=[_anchor(a) for a in self._asn1_anchors], crls=self._asn1_crls, ocsps=self._asn1_ocsp,
            moment=moment,
            allow_fetching=False, revinfo_policy=CertRevTrustPolicy(mode),
            time_tolerance=self.crl_grace if grace else dt.timedelta(seconds=1))
        self._contexts[own_ocsp] = ((moment, grace), context)
        return context


def _anchor(cert: asn1_x509.Certificate) -> Any:
    """A trust anchor whose own nameConstraints bind every path under it.

    RFC 5280 §6.1 takes only an anchor's name and key, and leaves its constraints to the
    implementation (RFC 5937): stafet enforces an anchor's nameConstraints (a CA trusted for
    one sector's names is not trusted for others) and its pathLenConstraint. Its
    certificatePolicies are not made a requirement: ``required_policy`` says which policy a
    network requires.
    """
    from pyhanko_certvalidator.authority import CertTrustAnchor, TrustQualifiers
    from pyhanko_certvalidator.name_trees import (
        default_excluded_subtrees,
        default_permitted_subtrees,
        process_general_subtrees,
    )
    from pyhanko_certvalidator.policy_decl import PKIXValidationParams

    params = None
    nc = cert.name_constraints_value
    if nc is not None:
        # Name types the anchor does not constrain stay open (as in a certificate's own
        # nameConstraints): the library would take an absent type as "nothing permitted".
        permitted, excluded = default_permitted_subtrees(), default_excluded_subtrees()
        if isinstance(nc["permitted_subtrees"], asn1_x509.GeneralSubtrees):
            permitted.update(process_general_subtrees(nc["permitted_subtrees"]))
        if isinstance(nc["excluded_subtrees"], asn1_x509.GeneralSubtrees):
            excluded.update(process_general_subtrees(nc["excluded_subtrees"]))
        params = PKIXValidationParams(initial_permitted_subtrees=permitted,
                                      initial_excluded_subtrees=excluded)
    # (Its pathLenConstraint is checked on the built path: :meth:`TrustStore._validate`.)
    return CertTrustAnchor(cert, quals=TrustQualifiers(standard_parameters=params))


def _indirect(crl: x509.CertificateRevocationList) -> bool:
    try:
        return bool(crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value.indirect_crl)
    except x509.ExtensionNotFound:
        return False


_CRL_CRITICAL = {ExtensionOID.ISSUING_DISTRIBUTION_POINT, ExtensionOID.DELTA_CRL_INDICATOR}
_ENTRY_CRITICAL = {CRLEntryExtensionOID.CRL_REASON, CRLEntryExtensionOID.INVALIDITY_DATE}


def _plain(crl: x509.CertificateRevocationList, entry: x509.RevokedCertificate) -> bool:
    """Whether the CRL and its entry carry no critical extension this check does not understand."""
    try:
        return (all(e.oid in _CRL_CRITICAL for e in crl.extensions if e.critical)
                and all(e.oid in _ENTRY_CRITICAL for e in entry.extensions if e.critical))
    except ValueError:
        return False


def _is_delta(crl: x509.CertificateRevocationList) -> bool:
    try:
        crl.extensions.get_extension_for_class(x509.DeltaCRLIndicator)
    except x509.ExtensionNotFound:
        return False
    return True


def _on_hold(entry: x509.RevokedCertificate) -> bool:
    try:
        reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except (x509.ExtensionNotFound, ValueError):
        return False
    return reason in (x509.ReasonFlags.certificate_hold, x509.ReasonFlags.remove_from_crl)


def _ocsp_good(leaf: asn1_x509.Certificate, path: Any, context: Any, signer: str) -> bool:
    """Whether a cached OCSP response says ``leaf`` (validated on ``path``) is good.

    At the context's moment; False when none is usable (no match, stale, badly signed,
    unauthorised responder).

    Raises:
        PackageRejected: ``revoked`` when a valid response says so.
    """
    from pyhanko_certvalidator.errors import OCSPNoMatchesError, OCSPValidationError, RevokedError
    from pyhanko_certvalidator.revinfo.validate_ocsp import verify_ocsp_response

    try:
        _run(verify_ocsp_response(leaf, path, context))
    except RevokedError as e:
        raise _refusal(e, signer) from None
    except (OCSPNoMatchesError, OCSPValidationError):  # Indeterminate is an OCSPValidationError
        return False
    return True


def _dates(cert: x509.Certificate, at: dt.datetime, signer: str) -> None:
    if at > cert.not_valid_after_utc:
        raise PackageRejected("expired", "the certificate had expired when the package was received",
                              signer=signer, expired=cert.not_valid_after_utc.date())
    if at < cert.not_valid_before_utc - CLOCK_SKEW:
        raise PackageRejected("not_yet_valid", "the certificate is not yet valid", signer=signer)


def _refusal(e: Exception, signer: str) -> PackageRejected:
    """The reason code of a pyhanko-certvalidator error."""
    from pyhanko_certvalidator import errors as E

    what = type(e).__name__
    text = str(e)[:200]
    if isinstance(e, E.PathBuildingError) or (isinstance(e, E.PathValidationError)
                                               and "signature of" in text and "not be verified" in text):
        # No path, or only through a certificate of an anchor's or CA's name that did not sign it.
        return PackageRejected("unknown_signer", "the certificate does not chain to a trust anchor of this "
                               "network", signer=signer)
    if isinstance(e, E.RevokedError):
        ee = getattr(e, "is_ee_cert", False)
        which = "the signer's certificate" if ee else "an issuing CA's certificate"
        return PackageRejected("revoked", f"{which} is revoked", signer=signer)
    if isinstance(e, E.InsufficientRevinfoError):
        return PackageRejected("revocation_unknown", "the revocation status of a certificate of the path "
                               "cannot be established from a fresh, valid CRL or OCSP response",
                               signer=signer)
    if isinstance(e, E.ExpiredError):
        return PackageRejected("expired", "a certificate of the path has expired", signer=signer)
    if isinstance(e, E.NotYetValidError):
        return PackageRejected("not_yet_valid", "a certificate of the path is not yet valid", signer=signer)
    if isinstance(e, E.DisallowedAlgorithmError):
        return PackageRejected("weak_algorithm", f"a weak algorithm in the path: {text}", signer=signer)
    if isinstance(e, E.InvalidCertificateError):
        return PackageRejected("bad_usage", f"the certificate's key usage does not allow this: {text}",
                               signer=signer)
    return PackageRejected("bad_path", f"the certificate path is not valid ({what}): {text}", signer=signer)


_POOL: concurrent.futures.ThreadPoolExecutor | None = None


def _run(coro: Any) -> Any:
    """Run the validator's coroutine (also when the caller is inside an event loop)."""
    global _POOL
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    if _POOL is None:
        _POOL = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="stafet-trust")
    return _POOL.submit(asyncio.run, coro).result()


def _signed_crl(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    try:
        ku = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
        if not ku.crl_sign:
            return False
    except x509.ExtensionNotFound:
        pass
    try:
        return crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _ocsp_windows(data: bytes) -> list[tuple[dt.datetime, dt.datetime | None]]:
    """(thisUpdate, nextUpdate) of each single response in an OCSP response."""
    resp = ocsp.load_der_ocsp_response(data)
    if resp.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise ValueError(f"OCSP response status {resp.response_status.name}")
    return [(r.this_update_utc, r.next_update_utc) for r in resp.responses]


def member_pins(network: Any) -> dict[str, frozenset[str]]:
    """Member id → fingerprints of its configured certificates (current and previous ones)."""
    pins: dict[str, frozenset[str]] = {}
    for org in network.members.values():
        files = [org.certificate] if org.certificate else []
        files += list(getattr(org, "previous_certificates", ()) or ())
        fps = set()
        for f in files:
            path = network.resolve(f)
            if path.exists():
                fps |= {fingerprint(c) for c in x509.load_pem_x509_certificates(path.read_bytes())}
        pins[org.id] = frozenset(fps)
    return pins


def load_crl(path: Path) -> x509.CertificateRevocationList:
    """A CRL file, PEM or DER."""
    data = path.read_bytes()
    return x509.load_pem_x509_crl(data) if b"-----BEGIN" in data else x509.load_der_x509_crl(data)


def crl_stale_since(crl: x509.CertificateRevocationList,
                    now: dt.datetime | None = None) -> dt.datetime | None:
    """When the CRL's next update was due, if that has passed; else None."""
    due = crl.next_update_utc
    return due if due is not None and due < (now or dt.datetime.now(dt.UTC)) else None


# --- fetching revocation information: for a scheduled flow, never the receive path -------------
def ocsp_urls(cert: x509.Certificate) -> list[str]:
    """The OCSP responders a certificate names (authorityInfoAccess)."""
    try:
        aia = cert.extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_INFORMATION_ACCESS).value
    except x509.ExtensionNotFound:
        return []
    return [str(d.access_location.value) for d in aia  # type: ignore[attr-defined]
            if d.access_method == AuthorityInformationAccessOID.OCSP
            and isinstance(d.access_location, x509.UniformResourceIdentifier)]


def crl_urls(cert: x509.Certificate) -> list[str]:
    """The HTTP CRL distribution points a certificate names."""
    try:
        dps = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return []
    return [str(n.value) for dp in dps for n in dp.full_name or []
            if isinstance(n, x509.UniformResourceIdentifier) and str(n.value).startswith("http")]


CRL_MAX_BYTES = 10 * 1024 * 1024
"""The largest CRL a distribution point may serve (a bigger download is refused, not truncated)."""
OCSP_MAX_BYTES = 1024 * 1024
"""The largest OCSP response a responder may send."""


def _http(url: str, data: bytes | None = None, *, timeout: float, content_type: str = "",
          limit: int = OCSP_MAX_BYTES) -> bytes:
    """GET (or POST ``data`` to) an http(s) URL: at most ``limit`` bytes, within ``timeout`` in all.

    ``timeout`` bounds the whole exchange, not only each read (a server trickling bytes
    cannot hold the refresh). A response bigger than ``limit`` is refused.
    """
    import time

    from stafet.core.errors import TransientError

    if not url.startswith(("http://", "https://")):
        raise TransientError(f"not an HTTP URL: {url[:100]}")
    headers = {"Content-Type": content_type} if content_type else {}
    req = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310 - http(s) only, checked above
    deadline = time.monotonic() + timeout
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - http(s) only, checked above
            length = resp.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > limit:
                raise TransientError(f"{url[:100]} serves {int(length)} bytes, more than the {limit} allowed")
            chunks, size = [], 0
            while chunk := resp.read(64 * 1024):
                size += len(chunk)
                if size > limit:
                    raise TransientError(f"{url[:100]} serves more than the {limit} bytes allowed")
                if time.monotonic() > deadline:
                    raise TransientError(f"{url[:100]} did not finish within {timeout} s")
                chunks.append(chunk)
            return b"".join(chunks)
    except OSError as e:
        raise TransientError(f"cannot fetch {url[:100]}: {type(e).__name__}") from None


def fetch_ocsp(cert: x509.Certificate, issuer: x509.Certificate, url: str, *, timeout: float = 10.0) -> bytes:
    """Ask the OCSP responder at ``url`` about ``cert``; the DER response (successful, about ``cert``).

    Raises:
        TransientError: the responder cannot be reached or did not answer successfully.
    """
    from stafet.core.errors import TransientError

    req = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()  # noqa: S303 - CertID
    data = _http(url, req.public_bytes(serialization.Encoding.DER), timeout=timeout,
                 content_type="application/ocsp-request")
    try:
        resp = ocsp.load_der_ocsp_response(data)
        ok = (resp.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
              and any(r.serial_number == cert.serial_number for r in resp.responses))
    except ValueError:
        ok = False
    if not ok:
        raise TransientError(f"the OCSP responder at {url[:100]} gave no usable answer")
    if not _ocsp_signed_by(resp, issuer):  # never let a forged answer replace a good cached one
        raise TransientError(f"the OCSP answer from {url[:100]} is not signed by the issuer or its "
                             "delegated OCSP responder")
    return data


def _ocsp_signed_by(resp: ocsp.OCSPResponse, issuer: x509.Certificate) -> bool:
    """The response is signed by ``issuer``, or by a responder certificate it issued for OCSP signing.

    A first check before a fetched answer enters the cache (RFC 6960 §4.2.2.2); the receive
    path validates the cached answer in full (pyhanko-certvalidator's ``verify_ocsp_response``).
    """
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    signers = [issuer]
    for c in resp.certificates:
        try:
            c.verify_directly_issued_by(issuer)
            eku = c.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
            continue
        if ExtendedKeyUsageOID.OCSP_SIGNING in eku:
            signers.append(c)
    algorithm = resp.signature_hash_algorithm
    if algorithm is None:
        return False
    for c in signers:
        key = c.public_key()
        try:
            if isinstance(key, rsa.RSAPublicKey):
                key.verify(resp.signature, resp.tbs_response_bytes, padding.PKCS1v15(), algorithm)
            elif isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(resp.signature, resp.tbs_response_bytes, ec.ECDSA(algorithm))
            else:
                continue
            return True
        except InvalidSignature:
            continue
    return False


def fetch_crl(url: str, *, timeout: float = 10.0, issuer: x509.Certificate | None = None,
              now: dt.datetime | None = None) -> bytes:
    """Download a CRL (DER or PEM, at most :data:`CRL_MAX_BYTES`) from a distribution point; the DER.

    With ``issuer``, the CRL must also be usable as a replacement for a cached one: issued
    under ``issuer``'s name, signed by its key with cRLSign, already issued and not past its
    nextUpdate at ``now``.

    Raises:
        TransientError: cannot be fetched, too big, not a CRL, or (with ``issuer``) not usable.
    """
    from stafet.core.errors import TransientError

    data = _http(url, timeout=timeout, limit=CRL_MAX_BYTES)
    try:
        crl = x509.load_pem_x509_crl(data) if b"-----BEGIN" in data else x509.load_der_x509_crl(data)
        _ = (crl.issuer, crl.last_update_utc, crl.next_update_utc, len(crl))
    except ValueError:
        raise TransientError(f"what {url[:100]} serves is not a CRL") from None
    if issuer is not None:
        why = _unusable_crl(crl, issuer, now or dt.datetime.now(dt.UTC))
        if why:
            raise TransientError(f"the CRL {url[:100]} serves is not used: {why}")
    return crl.public_bytes(serialization.Encoding.DER)


def _unusable_crl(crl: x509.CertificateRevocationList, issuer: x509.Certificate, now: dt.datetime) -> str:
    """Why a fetched CRL must not replace the cached one ("" when it may)."""
    if crl.issuer != issuer.subject:
        return "issued under another name than the certificate's issuer"
    if not _signed_crl(crl, issuer):
        return "not signed by the issuer's key with cRLSign"
    if crl.last_update_utc > now + CLOCK_SKEW:
        return "its thisUpdate lies in the future"
    if crl.next_update_utc is None or crl.next_update_utc <= now:
        return "past its nextUpdate (stale)"
    return ""


def refresh_revocation(certs: Iterable[tuple[x509.Certificate, x509.Certificate]], cache_dir: Path, *,
                       ocsp_url: str = "", timeout: float = 10.0) -> dict[str, str]:
    """Fetch a fresh OCSP response and CRL for each (certificate, issuer) into ``cache_dir``.

    The scheduled flow calls this; the receive path only reads the cache
    (:meth:`TrustStore.for_network`). ``ocsp_url`` (the network's ``ocsp_url``) is asked for
    a certificate whose authorityInfoAccess names no responder. Returns what was written or
    what failed, per certificate serial. A failure — no answer, too big, not a CRL, not
    signed by the issuer, stale, older than the cached one — keeps the previous cached file:
    it is still used within ``crl_grace_hours`` past its nextUpdate, then what it covers is
    refused ``revocation_unknown``.
    """
    from stafet.core.config import write_private
    from stafet.core.errors import TransientError

    out: dict[str, str] = {}
    fetched: dict[str, str] = {}  # a distribution point is fetched once a run
    for cert, issuer in certs:
        serial = format(cert.serial_number, "x")
        done = []
        for url in (ocsp_urls(cert) or ([ocsp_url] if ocsp_url else []))[:1]:
            try:
                write_private(cache_dir / f"{serial}.ocsp", fetch_ocsp(cert, issuer, url, timeout=timeout))
                done.append("ocsp")
            except TransientError as e:
                done.append(f"ocsp failed: {e}")
        for url in crl_urls(cert)[:1]:
            if url in fetched:
                done.append(fetched[url])
                continue
            name = hashlib.sha256(url.encode()).hexdigest()[:16]
            target = cache_dir / f"{name}.crl"
            try:
                data = fetch_crl(url, timeout=timeout, issuer=issuer)
                if target.exists():
                    try:
                        cached = load_crl(target)
                    except ValueError:
                        cached = None
                    new = x509.load_der_x509_crl(data)
                    if (cached is not None and cached.issuer == new.issuer
                            and cached.last_update_utc > new.last_update_utc):
                        raise TransientError(f"the CRL {url[:100]} serves is older than the cached one")
                write_private(target, data)
                fetched[url] = "crl"
            except TransientError as e:
                fetched[url] = f"crl failed: {e}"
            done.append(fetched[url])
        out[serial] = "; ".join(done) or "nothing to fetch (no OCSP responder or CRL distribution point)"
    return out


def verify_detached(content: bytes, p7s_der: bytes) -> tuple[Signed, list[x509.Certificate]]:
    """Verify a CMS SignedData over ``content`` (detached or with the same content inside).

    Returns the signature facts and the certificates the message carried. Anything
    that does not parse is ``malformed`` (asn1crypto parses lazily, so every access
    to the structure is guarded, not only the first).

    Raises:
        PackageRejected: ``malformed``, ``weak_algorithm``, ``unknown_signer`` or ``bad_signature``.
    """
    try:
        return _verify(content, p7s_der)
    except PackageRejected:
        raise
    except Exception as e:  # hostile DER: asn1crypto/cryptography raise ValueError, TypeError, …
        raise PackageRejected("malformed", f"the signature cannot be parsed: {type(e).__name__}") from None


_READ_ATTRIBUTES = frozenset({"content_type", "message_digest", "signing_time"})


def _verify(content: bytes, p7s_der: bytes) -> tuple[Signed, list[x509.Certificate]]:
    info = cms.ContentInfo.load(p7s_der, strict=True)  # no trailing bytes after the structure
    if info["content_type"].native != "signed_data":
        raise PackageRejected("malformed", "not a CMS signed-data structure")
    sd = info["content"]
    signer_infos = sd["signer_infos"]
    certs = [_load_certificate(c.chosen.dump()) for c in sd["certificates"] or [] if c.name == "certificate"]
    if len(signer_infos) != 1:
        raise PackageRejected("malformed", "expected exactly one signer")
    si = signer_infos[0]
    digest_name = si["digest_algorithm"]["algorithm"].native
    sig_algo = si["signature_algorithm"]["algorithm"].native
    if digest_name not in ACCEPTED_DIGESTS:
        raise PackageRejected("weak_algorithm", f"digest {digest_name} is not accepted (SHA-256 or better)")
    if sig_algo not in ACCEPTED_SIGNATURES:
        raise PackageRejected("weak_algorithm", f"signature algorithm {sig_algo} is not accepted")
    signer = _find_signer(si["sid"], certs)
    if signer is None:
        raise PackageRejected("unknown_signer", "the signer's certificate is not in the message")
    attrs = si["signed_attrs"]
    if not attrs:  # absent (asn1crypto's Void) or empty
        raise PackageRejected("malformed", "signed attributes are required")
    values: dict[str, list[object]] = {}
    for a in attrs:  # every attribute is decoded in full, as ``attrs.native`` would: what fails is malformed
        name = a["type"].native
        if name in _READ_ATTRIBUTES:
            values.setdefault(name, []).extend(v.native for v in a["values"])
        else:  # the same bytes in every package of a sender (S/MIME capabilities): decoded once
            _decodes(a.dump())
    # RFC 5652 §5.3: exactly one content-type and one message-digest, content-type = eContentType.
    if values.get("content_type") != [sd["encap_content_info"]["content_type"].native]:
        raise PackageRejected("malformed", "the signed content-type attribute is missing or wrong")
    if len(values.get("message_digest", [])) != 1:
        raise PackageRejected("malformed", "exactly one message-digest attribute is required")
    content_digest = hashlib.new(digest_name, content).digest()
    if values["message_digest"][0] != content_digest:
        raise PackageRejected("bad_signature", "the signed content does not match its signature")
    key = signer.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise PackageRejected("weak_algorithm", "only RSA signers are accepted")
    if key.key_size < MIN_RSA_BITS:
        raise PackageRejected("weak_algorithm", f"RSA keys below {MIN_RSA_BITS} bits are not accepted")
    # Signed over the DER of SET OF attributes: the bytes as received with a SET tag (the
    # values above were read from these very bytes); if the sender's encoding was not DER,
    # over asn1crypto's DER re-encoding, as OpenSSL does.
    # (The same contents under a SET tag: ``untag()`` would deep-copy the parsed tree.)
    signature, digest = si["signature"].native, ACCEPTED_DIGESTS[digest_name]
    try:
        key.verify(signature, cms.CMSAttributes(contents=attrs.contents).dump(), padding.PKCS1v15(), digest)
    except InvalidSignature:
        try:
            key.verify(signature, attrs.untag().dump(force=True), padding.PKCS1v15(), digest)
        except InvalidSignature:
            raise PackageRejected("bad_signature", "the signature does not verify") from None
    times = values.get("signing_time", [])
    when = times[0] if len(times) == 1 and isinstance(times[0], dt.datetime) else dt.datetime.now(dt.UTC)
    sha256 = content_digest if digest_name == "sha256" else hashlib.sha256(content).digest()
    return Signed(signer, when, sha256.hex()), certs


@lru_cache(maxsize=256)
def _decodes(attribute_der: bytes) -> bool:
    """Decode a signed attribute in full (raises what asn1crypto raises for one that does not decode).

    Cached by its bytes: a failure raises and is not cached, so what decoded once decodes again.
    """
    cms.CMSAttribute.load(attribute_der).native  # noqa: B018  (decoded for what it raises)
    return True


@lru_cache(maxsize=256)  # the same few signer certificates arrive in every package
def _load_certificate(der: bytes) -> x509.Certificate:
    """Parse a certificate from a message completely, now.

    cryptography parses fields lazily: a damaged certificate must fail here (``malformed``),
    not later in the chain checks.
    """
    cert = x509.load_der_x509_certificate(der)
    _ = (cert.subject, cert.issuer, cert.serial_number, cert.not_valid_before_utc, cert.not_valid_after_utc,
         cert.public_key(), list(cert.extensions), cert.signature_hash_algorithm)
    return cert


def _find_signer(sid: cms.SignerIdentifier, certs: list[x509.Certificate]) -> x509.Certificate | None:
    if sid.name == "issuer_and_serial_number":
        serial = sid.chosen["serial_number"].native
        issuer_der = sid.chosen["issuer"].dump()
        for c in certs:
            if c.serial_number == serial and c.issuer.public_bytes() == issuer_der:
                return c
        for c in certs:  # tolerate re-encoded issuer names
            if c.serial_number == serial:
                return c
        return None
    ski = sid.chosen.native
    for c in certs:
        try:
            if c.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest == ski:
                return c
        except x509.ExtensionNotFound:
            continue
    return None
