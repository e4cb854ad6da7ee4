"""Handover packages: S/MIME messages a mail client can open, and stafet can verify.

Shape of a package (``<package id>.eml``)::

    From/To: the organisations' sikker-mail addresses; Subject: "Overlevering fra <org> <id>"
    application/pkcs7-mime; smime-type=enveloped-data      AES-256-CBC, to recipient + sender
      └ multipart/signed (SHA-256, detached)                 signed by the sender
          └ multipart/mixed
              ├ multipart/alternative: text/plain + text/html   Danish summary for people
              └ application/json (handover.json)                 the canonical handover

Build uses cryptography's pkcs7 builders. Open decrypts with cryptography and verifies
the signature with :mod:`keys.trust` (asn1crypto + cryptography).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import email
import email.policy
import hashlib
import html
import itertools
import json
import re
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from email.utils import format_datetime, getaddresses, make_msgid
from functools import cache, cached_property
from importlib import resources
from typing import Any, NamedTuple

import msgspec
import orjson
import pybase64
from asn1crypto import algos, cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

from keys import OrgKey
from keys.trust import ACCEPTED_CIPHERS, CLOCK_SKEW, SIGN, Signed, TrustStore, verify_detached
from stafet.core.errors import PackageRejected
from stafet.core.models import KIND_DANISH, Organisation
from stafet.packages.document import Document, document_from_json

SCHEMA_VERSION = "stafet/1"
SUMMARY_HISTORY = 10  # history entries shown in the human summary
SIGNATURE_TYPES = ("application/pkcs7-signature", "application/x-pkcs7-signature")
MAX_SIGNATURE_AGE = dt.timedelta(days=30)  # far beyond any endpoint's retry window (default 72 h)
KIND_DA = KIND_DANISH  # from the registry of record kinds (stafet.core.models.RECORD_KINDS)


def new_package_id() -> str:
    """A fresh package id (also the file name): ``PKG-`` and 24 hex digits."""
    return "PKG-" + uuid.uuid4().hex[:24]


def _schema() -> dict[str, Any]:
    return dict(json.loads(resources.files("stafet.packages").joinpath("handover.schema.json").read_text()))


@cache
def _validator() -> Any:
    import jsonschema

    return jsonschema.Draft202012Validator(_schema(), format_checker=jsonschema.FormatChecker())


@cache
def _fast_validator() -> Any:
    """The schema compiled by fastjsonschema (about 15x faster than jsonschema at 20 KB).

    The schema only uses keywords that mean the same in draft 7 and 2020-12, so it is
    compiled as draft 7 (what fastjsonschema knows). It answers yes/no quickly;
    jsonschema still produces the message when the answer is no.
    """
    try:
        import fastjsonschema
    except ImportError:  # optional: jsonschema alone gives the same verdicts, slower
        return None
    return fastjsonschema.compile({**_schema(), "$schema": "http://json-schema.org/draft-07/schema#"})


@cache
def _rs_validator() -> Any:
    """The schema compiled by jsonschema-rs (another 5x faster than fastjsonschema at 20 KB).

    Its yes is taken; on a no (or anything it cannot read: a lone surrogate, a float NaN)
    fastjsonschema decides. Its formats are fastjsonschema's own (``date``, ``date-time``:
    the same regular expressions), and fastjsonschema anchors a ``$`` of a pattern at the
    very end of the text as jsonschema-rs does, so what it accepts fastjsonschema accepts
    too: a property test holds the two to the same verdicts on valid and damaged documents.
    """
    try:
        import jsonschema_rs
        from fastjsonschema.draft07 import CodeGeneratorDraft07
    except ImportError:  # optional, as fastjsonschema is
        return None
    regexes = CodeGeneratorDraft07.FORMAT_REGEXS
    formats = {name: re.compile(regexes[name]).match for name in ("date", "date-time")}
    used = set(re.findall(r'"format":\s*"([^"]+)"', json.dumps(_schema())))
    if used - set(formats):  # a format this does not give fastjsonschema's meaning: not used at all
        return None
    return jsonschema_rs.validator_for(
        _schema(), validate_formats=True,
        formats={name: (lambda v, m=m: m(v) is not None) for name, m in formats.items()})


def _valid_fast(doc: dict[str, Any]) -> bool:
    """Whether jsonschema-rs finds ``doc`` valid (False when it is not there or cannot read it)."""
    rs = _rs_validator()
    if rs is None:
        return False
    try:
        return bool(rs.is_valid(doc))
    except Exception:  # a value it cannot convert (lone surrogate, NaN, a non-str key, ...)
        return False


def validate_document(doc: dict[str, Any]) -> None:
    """Check a package document against ``stafet/schemas/handover.schema.json``.

    Raises:
        PackageRejected: ``schema``, naming the first failing path (never the value).
    """
    if _valid_fast(doc):
        return
    fast = _fast_validator()
    if fast is not None:
        with contextlib.suppress(Exception):  # JsonSchemaValueException: jsonschema says why, below
            fast(doc)
            return
    errors = sorted(_validator().iter_errors(doc), key=lambda e: list(e.absolute_path))
    if not errors:
        raise PackageRejected("schema", "the JSON does not match the schema",
                              package=str(doc.get("package_id", "?"))[:64])
    e = errors[0]
    where = "/".join(str(p) for p in e.absolute_path) or "(top)"
    raise PackageRejected("schema", f"the JSON does not match the schema at {where}: {e.validator}",
                          package=str(doc.get("package_id", "?"))[:64])


@dataclass(frozen=True)
class Built:
    """A built package: the .eml bytes and the digest of the signed content."""

    package_id: str
    eml: bytes
    digest: str


@dataclass(frozen=True)
class Opened:
    """A package that decrypted, verified and passed every check.

    ``doc`` is its JSON as received (schema-checked); :attr:`document` the same, typed.
    """

    doc: dict[str, Any]
    signed: Signed
    digest: str

    @cached_property
    def document(self) -> Document:
        """The package's document, typed (parsed from :attr:`doc` once)."""
        return document_from_json(self.doc)


def _summary(doc: dict[str, Any], sender: Organisation, recipient: Organisation) -> tuple[str, str]:
    kind = doc["type"]
    lines = [f"Overlevering fra {sender.name} til {recipient.name}", f"Pakke: {doc['package_id']}",
             f"Dannet: {doc['created']}"]
    if kind == "handover":
        y = doc["youth"]
        lines += [f"Ung: {y.get('name', '')} (CPR {y['cpr']})",
                  f"Grundlag: {doc['legal_basis']}" + (f" (samtykke {doc['consent_ref']})"
                                                      if doc.get("consent_ref") else ""), "", "Indhold:"]
        for r in doc["records"]:
            d = r["data"]
            when = d.get("event_date") or d.get("updated") or d.get("status_date") or ""
            extra = ""
            if r["kind"] == "dropout":
                extra = f", årsag {d.get('reason_code', '')} {d.get('reason_text', '')}".rstrip()
            what = d.get("programme_name") or d.get("goal_name") or d.get("target_education") or ""
            lines.append(f"  - {KIND_DA.get(r['kind'], r['kind'])} {when} {what}{extra}")
        if doc.get("history"):
            # The summary is for people; the full history is in handover.json.
            recent = doc["history"][-SUMMARY_HISTORY:]
            more = len(doc["history"]) - len(recent)
            lines += ["", "Forløb" + (f" (de seneste {len(recent)}; hele forløbet i handover.json)"
                                      if more else "") + ":"]
            lines += [f"  - {h['date']} {h['summary']}" for h in recent]
        if doc.get("omitted"):
            lines += ["", "Udeladt (ikke dækket af samtykke):"] + [
                f"  - {KIND_DA.get(o['kind'], o['kind'])}: {o['reason']}" for o in doc["omitted"]]
        lines += ["", "Kvittering: stafet kvitterer, når pakken er modtaget (eller når en medarbejder har "
                  "kvitteret i konsollens indbakke, hvis jeres organisation kvitterer personligt).",
                  "Læser du pakken i et mailprogram, så kvittér med »stafet acknowledge --file pakke.eml "
                  f"--org {recipient.id} --by <dit navn>«: afsenderen venter på kvitteringen."]
    elif kind == "inquiry":
        y = doc["youth"]
        lines += [f"Forespørgsel om en ung (CPR {y['cpr']})", "", f"Spørgsmål: {doc['inquiry']['question']}",
                  "", "Besvares i stafet (stafet inquiry answer); kvittering sendes automatisk."]
    elif kind == "answer":
        y, a = doc["youth"], doc["answer"]
        lines += [f"Svar på forespørgsel {a['in_reply_to']} om en ung (CPR {y['cpr']})",
                  f"Grundlag: {doc['legal_basis']}" + (f" (samtykke {doc['consent_ref']})"
                                                      if doc.get("consent_ref") else "")]
        if a["outcome"] == "no_basis":
            lines += ["Intet grundlag for at videregive oplysninger" + (f": {a['reason']}" if a.get("reason")
                                                                        else ".")]
        else:
            lines += ["", "Indhold:"] + [f"  - {KIND_DA.get(r['kind'], r['kind'])}" for r in doc["records"]]
            lines += [f"  - {h['date']} {h['summary']}" for h in doc.get("history") or ()]
    elif kind == "receipt":
        r = doc["receipt"]
        lines += [f"Kvittering for pakke {r['package_id']}: {r['disposition']}"]
    elif kind == "notice":
        n = doc["notice"]
        head = {"notice": "Påmindelse", "coordinator": "Eskaleret til netværkskoordinatoren",
                "management": "Eskaleret til ledelsen"}[n["step"]]
        lines += [f"{head}: en pligt er overskredet.", f"Til: {n['addressee']}", "",
                  f"Pligt: {n['duty']}", f"Ansvarlig: {n['responsible']}",
                  f"Frist: {n['due']} (overskredet siden {n['since']})",
                  f"Ung: {n['masked_cpr']} (reference {n['youth_ref']})"]
        if n.get("reference"):
            lines.append(f"Anledning: {n['reference']}")
        lines += ["", f"Sådan handler du: {n['act']}"]
    else:
        w = doc["withdrawal"]
        lines += [f"Samtykke {w['consent_ref']} er tilbagekaldt.", w["instruction"],
                  "Pakker: " + ", ".join(w["package_ids"])]
    text = "\n".join(lines) + "\n"
    body = "".join(f"<p>{html.escape(line)}</p>" if line else "<br>" for line in lines)
    return text, f'<!DOCTYPE html><html lang="da"><meta charset="utf-8"><body>{body}</body></html>'


def _b64(data: bytes) -> bytes:
    """Base64 in 76-character CRLF lines (RFC 2045), ending in CRLF.

    pybase64 writes the LF lines of :func:`base64.encodebytes` (SIMD), and the LFs become
    CR LF: a tenth of cutting the text line by line in Python, which cost twice the
    encoding itself (a 48 KB package has 650 lines). :func:`_b64_lines` is the plain
    version it is tested against.
    """
    return pybase64.encodebytes(data).replace(b"\n", b"\r\n")


def _b64_lines(b64: bytes) -> bytes:
    """Base64 text cut into 76-character CRLF lines, one by one."""
    return b"".join([b64[i:i + 76] + b"\r\n" for i in range(0, len(b64), 76)])


def _b64_strict_lines(text: bytes) -> bytes | None:
    """``text`` decoded if, once its CR LF pairs are gone, it is strict base64; else None.

    The fast way (pybase64, SIMD) to read what every S/MIME writer sends: base64 in CRLF
    lines. What it decodes, the lenient and the strict stdlib decoders decode to the same
    bytes (a property test holds it to both); anything else (other whitespace, bare LF,
    junk, misplaced padding) is left to them: None.
    """
    try:
        return pybase64.b64decode(text.replace(b"\r\n", b""), validate=True)
    except ValueError:  # binascii.Error
        return None


def _boundary() -> str:
    return "=_stafet_" + secrets.token_hex(12)


def _json_bytes(doc: dict[str, Any]) -> bytes:
    """``doc`` as compact UTF-8 JSON, byte for byte what ``json.dumps(ensure_ascii=False)`` writes.

    orjson writes it 15x faster and the same bytes for dicts, lists, tuples, str, int,
    bool and None; it writes floats and other types its own way (or where json refuses),
    so a document holding anything else (:func:`_plain`) is written by json, and so is
    one orjson refuses (a key that is not a str, an int beyond 64 bits, a lone surrogate).
    """
    if _plain(doc):
        with contextlib.suppress(orjson.JSONEncodeError):
            return orjson.dumps(doc)
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _plain(value: Any) -> bool:
    """Whether ``value`` holds only dicts, lists, tuples, str, int, bool and None (exact types)."""
    kind = type(value)
    if kind is dict:
        items: Any = value.values()
    elif kind is list or kind is tuple:
        items = value
    else:
        return kind is str or kind is int or kind is bool or value is None
    for v in items:
        kind = type(v)
        if kind is str or kind is int:
            continue
        if kind is dict or kind is list or kind is tuple:
            if not _plain(v):
                return False
        elif kind is not bool and v is not None:
            return False
    return True


def _inner_mime(doc: dict[str, Any], sender: Organisation, recipient: Organisation) -> bytes:
    """The signed content: multipart/mixed of the Danish summary (text + HTML) and the JSON.

    Written directly rather than with :mod:`email` (which costs more than the RSA
    operation for a 20 KB handover); every part is base64 with CRLF line ends, so the
    bytes are already canonical for signing.
    """
    text, page = _summary(doc, sender, recipient)
    alt, mixed = _boundary(), _boundary()
    body = _json_bytes(doc)
    return b"".join([
        f'Content-Type: multipart/mixed; boundary="{mixed}"\r\n\r\n--{mixed}\r\n'.encode(),
        f'Content-Type: multipart/alternative; boundary="{alt}"\r\n\r\n--{alt}\r\n'.encode(),
        b'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: base64\r\n\r\n',
        _b64(text.replace("\n", "\r\n").encode("utf-8")),
        f"--{alt}\r\n".encode(),
        b'Content-Type: text/html; charset="utf-8"\r\nContent-Transfer-Encoding: base64\r\n\r\n',
        _b64(page.encode("utf-8")),
        f"--{alt}--\r\n--{mixed}\r\n".encode(),
        b'Content-Type: application/json; name="handover.json"\r\nContent-Transfer-Encoding: base64\r\n'
        b'Content-Disposition: attachment; filename="handover.json"\r\n\r\n',
        _b64(body),
        f"--{mixed}--\r\n".encode(),
    ])


def _multipart_signed(inner: bytes, p7s: bytes) -> bytes:
    """``inner`` and its detached signature as multipart/signed (RFC 5751 §3.5.3)."""
    b = _boundary()
    return b"".join([
        f'MIME-Version: 1.0\r\nContent-Type: multipart/signed; protocol="application/pkcs7-signature"; '
        f'micalg="sha-256"; boundary="{b}"\r\n\r\nThis is an S/MIME signed message\r\n\r\n'
        f"--{b}\r\n".encode(),
        inner,
        f"\r\n--{b}\r\n".encode(),
        b'Content-Type: application/pkcs7-signature; name="smime.p7s"\r\n'
        b'Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename="smime.p7s"\r\n\r\n',
        _b64(p7s),
        f"--{b}--\r\n".encode(),
    ])


def build_package(document: Document | dict[str, Any], *, sender: Organisation, sender_key: OrgKey,
                  recipient: Organisation, recipient_cert: x509.Certificate) -> Built:
    """Sign (SHA-256) then encrypt (AES-256) a document to the recipient and the sender.

    A typed :mod:`~stafet.packages.document` is written as the schema's JSON here; a
    ``dict`` is taken as that JSON already (tools and tests that craft packages). It must
    hold ``package_id``, ``sender``, ``recipient``; it is validated against the JSON
    Schema before anything is signed.
    """
    raw = document if isinstance(document, dict) else document.to_json()
    doc = {"schema": SCHEMA_VERSION, **raw}
    validate_document(doc)
    inner = _inner_mime(doc, sender, recipient)
    p7s = (pkcs7.PKCS7SignatureBuilder().set_data(inner)
           .add_signer(sender_key.cert, sender_key.key, hashes.SHA256())
           .sign(Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary]))
    signed = _multipart_signed(inner, p7s)
    enveloped = (pkcs7.PKCS7EnvelopeBuilder().set_data(signed)
                 .set_content_encryption_algorithm(algorithms.AES256)
                 .add_recipient(recipient_cert).add_recipient(sender_key.cert)
                 .encrypt(Encoding.DER, [pkcs7.PKCS7Options.Binary]))
    subject = {"handover": "Overlevering", "receipt": "Kvittering", "withdrawal": "Tilbagekaldelse",
               "notice": "Påmindelse om pligt", "inquiry": "Forespørgsel", "answer": "Svar på forespørgsel"}
    headers = [
        ("From", sender.email), ("To", recipient.email),
        ("Subject", f"{subject[doc['type']]} fra {sender.name} {doc['package_id']}"),
        ("Date", format_datetime(dt.datetime.now(dt.UTC))),
        ("Message-ID", make_msgid(idstring=doc["package_id"], domain="stafet.invalid")),
        ("X-Stafet-Package", doc["package_id"]), ("MIME-Version", "1.0"),
        ("Content-Type", 'application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"'),
        ("Content-Transfer-Encoding", "base64"),
        ("Content-Disposition", 'attachment; filename="smime.p7m"'),
    ]
    head = "".join(f"{k}: {_header_value(v)}\r\n" for k, v in headers).encode("utf-8")
    body = _b64(enveloped)
    return Built(doc["package_id"], head + b"\r\n" + body, hashlib.sha256(inner).hexdigest())


def _header_value(v: str) -> str:
    from email.header import Header

    return v if v.isascii() else Header(v, "utf-8").encode()


def read_headers(eml: bytes) -> dict[str, str]:
    """The outer headers of a package (what a mail client shows before decrypting)."""
    msg = email.message_from_bytes(eml.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n", policy=email.policy.default)
    return {k: str(v) for k, v in msg.items()}


_FOLD = re.compile(rb"\r?\n(?=[ \t])")
_LINE = re.compile(rb"\r?\n")


def _split_head(data: bytes) -> tuple[Message, bytes]:
    """The header block of a MIME entity (parsed) and its raw body.

    The fields go straight into a :class:`email.message.Message` (whose parameter
    parsing is then used as usual): unfolding and splitting at the colon is all the
    email package's feed parser would do here, at a tenth of the cost.
    """
    end = re.search(rb"\r?\n\r?\n", data)
    if end is None:
        raise PackageRejected("malformed", "no header/body separator")
    msg = Message()
    for line in _LINE.split(_FOLD.sub(b"", data[:end.start()])):
        name, colon, value = line.partition(b":")
        if not colon or not name.strip() or b" " in name.strip():
            raise PackageRejected("malformed", "a header line is not a header field")
        msg[name.strip().decode("latin-1")] = value.strip().decode("latin-1")
    return msg, data[end.end():]


def _enveloped_der(head: Message, body: bytes) -> bytes:
    """The DER of an encrypted message from its parsed header and raw body."""
    ctype = head.get_content_type()
    if ctype not in ("application/pkcs7-mime", "application/x-pkcs7-mime"):
        raise PackageRejected("malformed", f"not an S/MIME encrypted message ({ctype})")
    cte = str(head.get("Content-Transfer-Encoding", "7bit")).strip().lower()
    if cte == "base64":
        fast = _b64_strict_lines(body)
        try:
            payload = fast if fast is not None else base64.b64decode(body.translate(None, b" \t\r\n"),
                                                                     validate=True)
        except ValueError:
            raise PackageRejected("malformed", "the S/MIME body is not valid base64") from None
    elif cte in ("binary", "8bit", "7bit"):
        payload = body
    else:
        raise PackageRejected("malformed", f"unexpected transfer encoding {cte[:20]}")
    if not payload:
        raise PackageRejected("malformed", "the S/MIME body is empty")
    return payload


def decrypt_package(eml: bytes, keys: list[OrgKey]) -> bytes:
    """Decrypt with whichever of ``keys`` the message was encrypted to.

    Raises:
        PackageRejected: ``malformed``, ``weak_algorithm``, ``wrong_recipient``, ``decrypt_failed``.
    """
    return _decrypt(*_split_head(eml), keys)


def _decrypt(head: Message, body: bytes, keys: list[OrgKey]) -> bytes:
    """:func:`decrypt_package` of a message whose header block is parsed already."""
    der = _enveloped_der(head, body)
    cipher, recipients = _envelope_fast(der) or _envelope(der)
    if cipher not in ACCEPTED_CIPHERS:
        raise PackageRejected("weak_algorithm", f"content cipher {cipher} is not accepted (AES required)")
    for k in keys:
        if (k.cert.issuer.public_bytes(), k.cert.serial_number) in recipients:
            try:
                return pkcs7.pkcs7_decrypt_der(der, k.cert, k.key, [])
            except Exception:
                raise PackageRejected("decrypt_failed", "the package does not decrypt "
                                      "(damaged or tampered ciphertext)") from None
    raise PackageRejected("wrong_recipient", "the package is not encrypted to any of our keys")


def _envelope(der: bytes) -> tuple[str, list[tuple[bytes, int]]]:
    """The content cipher and the (issuer DER, serial) of each key-transport recipient (asn1crypto).

    Raises:
        PackageRejected: ``malformed``.
    """
    try:
        info = cms.ContentInfo.load(der, strict=True)
        if info["content_type"].native != "enveloped_data":
            raise PackageRejected("malformed", "not a CMS enveloped-data structure")
        env = info["content"]
        cipher = env["encrypted_content_info"]["content_encryption_algorithm"]["algorithm"].native
        recipients = []
        for ri in env["recipient_infos"]:
            if ri.name == "ktri" and ri.chosen["rid"].name == "issuer_and_serial_number":
                rid = ri.chosen["rid"].chosen
                recipients.append((rid["issuer"].dump(), rid["serial_number"].native))
    except PackageRejected:
        raise
    except Exception as e:
        raise PackageRejected("malformed", f"the envelope cannot be parsed: {type(e).__name__}") from None
    return cipher, recipients


_ENVELOPED_DATA = cms.ContentType("enveloped_data").dump()
_AES_CBC = {algos.EncryptionAlgorithmId(name).dump(): name for name in ACCEPTED_CIPHERS}
"""The DER of the content-type and cipher OIDs :func:`_envelope_fast` reads, as asn1crypto writes them."""


def _tlv(data: bytes, pos: int, end: int) -> tuple[int, int, int] | None:
    """(identifier octet, contents start, contents end) of the DER element at ``pos``; None if not plain DER.

    Plain: a low tag number, a definite length in its shortest form, inside ``end``.
    """
    if pos + 2 > end:
        return None
    tag, n = data[pos], data[pos + 1]
    if tag & 0x1F == 0x1F:
        return None
    if n < 0x80:
        start, length = pos + 2, n
    else:
        k = n & 0x7F
        if not 1 <= k <= 4 or pos + 2 + k > end or data[pos + 2] == 0:
            return None
        start, length = pos + 2 + k, int.from_bytes(data[pos + 2:pos + 2 + k], "big")
        if length < 0x80:
            return None
    if start + length > end:
        return None
    return tag, start, start + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int, int]] | None:
    """(identifier, element start, contents start, contents end) of each element in ``data[start:end]``."""
    out = []
    while start < end:
        t = _tlv(data, start, end)
        if t is None:
            return None
        out.append((t[0], start, t[1], t[2]))
        start = t[2]
    return out


def _envelope_fast(der: bytes) -> tuple[str, list[tuple[bytes, int]]] | None:
    """:func:`_envelope` of a plain envelope, read directly; None for anything else (asn1crypto reads that).

    Plain: DER as OpenSSL and cryptography write it — ContentInfo of enveloped-data, no
    originator info nor unprotected attributes, key-transport recipients named by issuer and
    serial only, an AES-CBC content cipher with its IV, the ciphertext as one primitive
    string. Every element asn1crypto would look at is checked the way it checks it (tags and
    lengths), so what this reads, asn1crypto reads to the same values: a property test holds
    the two together on damaged envelopes. asn1crypto costs a quarter of a millisecond here.
    """
    top = _tlv(der, 0, len(der))
    if top is None or top[0] != 0x30 or top[2] != len(der):
        return None
    info = _children(der, top[1], top[2])
    if (info is None or len(info) != 2 or der[info[0][1]:info[0][3]] != _ENVELOPED_DATA
            or info[1][0] != 0xA0):
        return None
    inner = _children(der, info[1][2], info[1][3])
    if inner is None or len(inner) != 1 or inner[0][0] != 0x30:
        return None
    env = _children(der, inner[0][2], inner[0][3])
    if env is None or [c[0] for c in env] != [0x02, 0x31, 0x30]:
        return None
    infos = _children(der, env[1][2], env[1][3])
    if not infos:
        return None
    recipients = []
    for ri in infos:
        if ri[0] != 0x30:
            return None
        ktri = _children(der, ri[2], ri[3])
        if ktri is None or [c[0] for c in ktri] != [0x02, 0x30, 0x30, 0x04]:
            return None
        rid = _children(der, ktri[1][2], ktri[1][3])
        if rid is None or [c[0] for c in rid] != [0x30, 0x02] or rid[1][2] == rid[1][3]:
            return None
        recipients.append((der[rid[0][1]:rid[0][3]],
                           int.from_bytes(der[rid[1][2]:rid[1][3]], "big", signed=True)))
    eci = _children(der, env[2][2], env[2][3])
    if eci is None or [c[0] for c in eci] != [0x06, 0x30, 0x80]:
        return None
    alg = _children(der, eci[1][2], eci[1][3])
    if alg is None or [c[0] for c in alg] != [0x06, 0x04]:
        return None
    cipher = _AES_CBC.get(der[alg[0][1]:alg[0][3]])
    if cipher is None:
        return None
    return cipher, recipients


_NOT_TEXT = re.compile(rb"[^\t\r\n\x20-\x7e]")
"""A byte that is not printable US-ASCII or a line/tab character."""


class _Delimiter(NamedTuple):
    before: int  # where the part before it ends: at the CR LF (or LF) before the dashes
    end: int  # after the line's end
    closing: bool  # ``--boundary--``


def _delimiters(data: bytes, boundary: bytes, pos: int = 0) -> Iterator[_Delimiter]:
    """The delimiter lines of ``boundary`` in ``data`` from ``pos`` (RFC 2046 §5.1.1).

    A delimiter is a whole line, ``--boundary`` or ``--boundary--``, then only blanks up to
    the line's end; the line break before it belongs to it. Found with ``bytes.find``:
    each package has its own random boundaries, and compiling a pattern per boundary cost
    more than the search.
    """
    marker, n = b"\n--" + boundary, len(data)
    while (i := data.find(marker, pos)) >= 0:
        j = i + len(marker)
        closing = data.startswith(b"--", j)
        k = j + 2 if closing else j
        while k < n and data[k] in b" \t":
            k += 1
        if k == n or data[k] == 0x0A:
            end = min(k + 1, n)
        elif data.startswith(b"\r\n", k):
            end = k + 2
        else:  # the boundary is only the start of something longer: not a delimiter
            pos = i + 1
            continue
        yield _Delimiter(i - 1 if data[i - 1:i] == b"\r" else i, end, closing)
        pos = end


def split_signed(entity: bytes) -> tuple[bytes, bytes]:
    """Split an S/MIME signed entity into (signed content, CMS DER).

    Handles ``multipart/signed`` (detached; the content is taken byte for byte) and
    opaque ``application/pkcs7-mime; smime-type=signed-data``.
    """
    head, body = _split_head(entity)
    body_at = len(entity) - len(body)
    ctype = head.get_content_type()
    if ctype == "multipart/signed":
        boundary = head.get_param("boundary")
        if not isinstance(boundary, str) or not boundary:
            raise PackageRejected("malformed", "multipart/signed without a boundary")
        marks = list(_delimiters(entity, boundary.encode(), body_at - 1))
        if len(marks) != 3 or marks[0].closing or marks[1].closing or not marks[2].closing:
            raise PackageRejected("malformed", "multipart/signed needs exactly a content part, "
                                  "a signature part and the closing delimiter")
        content = entity[marks[0].end:marks[1].before]
        sig_part = entity[marks[1].end:marks[2].before]
        # Nothing authenticates the bytes around the signed content (headers, preamble, the
        # signature part's headers, epilogue), and CBC lets a tamperer garble any of them
        # without breaking the padding. They are plain text in every S/MIME writer: anything
        # else there is damage or tampering, not a message.
        if _NOT_TEXT.search(entity, 0, marks[0].end) or _NOT_TEXT.search(entity, marks[1].before):
            raise PackageRejected("malformed", "bytes that are not text around the signed content "
                                  "(damaged or tampered)")
        sig_head, sig_body = _split_head(sig_part)
        if sig_head.get_content_type() not in SIGNATURE_TYPES:
            raise PackageRejected("malformed", "the second part is not an S/MIME signature")
        sig = _decoded(sig_head, sig_body)
        if not sig:
            raise PackageRejected("malformed", "the signature part is empty")
        return content, sig
    if ctype in ("application/pkcs7-mime", "application/x-pkcs7-mime"):
        if _NOT_TEXT.search(entity, 0, body_at):
            raise PackageRejected("malformed", "bytes that are not text in the signed entity's header "
                                  "(damaged or tampered)")
        der = _decoded(head, body)
        try:
            sd = cms.ContentInfo.load(der, strict=True)["content"]
            content = sd["encap_content_info"]["content"].native
        except Exception:
            raise PackageRejected("malformed", "the opaque signed-data cannot be parsed") from None
        if not isinstance(content, bytes):
            raise PackageRejected("malformed", "the opaque signed-data holds no content")
        return content, der
    raise PackageRejected("unsigned", f"the decrypted content is not signed ({ctype})")


def _leaf_parts(entity: bytes, depth: int = 0) -> Iterator[tuple[Message, bytes]]:
    """(header, raw body) of every non-multipart part, depth first.

    Only header blocks go through :mod:`email`; bodies are cut at the boundary lines
    (the feed parser reads a 60 KB entity line by line, which costs more than the RSA
    operation of the package).
    """
    head, body = _split_head(entity)
    if head.get_content_maintype() != "multipart":
        yield head, body
        return
    boundary = head.get_param("boundary")
    if depth > 4 or not isinstance(boundary, str) or not boundary:
        raise PackageRejected("malformed", "a multipart part without a boundary, or nested too deep")
    text = b"\n" + body  # so that a delimiter on the body's first line matches too
    for m, nxt in itertools.pairwise(_delimiters(text, boundary.encode())):
        if m.closing:  # the closing delimiter: what follows is the epilogue
            break
        yield from _leaf_parts(text[m.end:nxt.before], depth + 1)


def _decoded(head: Message, body: bytes) -> bytes:
    """A part's body without its transfer encoding (lenient, as mail clients are)."""
    cte = str(head.get("Content-Transfer-Encoding", "7bit")).strip().lower()
    try:
        if cte == "base64":
            fast = _b64_strict_lines(body)
            return fast if fast is not None else binascii.a2b_base64(body)
        if cte == "quoted-printable":
            return binascii.a2b_qp(body)
    except (binascii.Error, ValueError):
        raise PackageRejected("malformed", f"a part's {cte} body does not decode") from None
    return body


def _json_part(content: bytes) -> dict[str, Any]:
    try:
        raw = next((_decoded(h, b) for h, b in _leaf_parts(content)
                    if h.get_content_type() == "application/json"), None)
    except PackageRejected:
        raise
    except Exception:  # the email package or a decoder can trip over hostile MIME structure
        raise PackageRejected("malformed", "the signed content is not a readable MIME entity") from None
    if raw is None:
        raise PackageRejected("schema", "the package has no application/json part")
    try:
        try:  # _json_loads, inline: json.loads is called from here, at the depth it always was
            doc = _msgspec_loads(raw, _PADDING)
        except Exception:  # msgspec.DecodeError, ValidationError, RecursionError: json decides
            doc = json.loads(raw)
    except (TypeError, ValueError):
        raise PackageRejected("schema", "the JSON part is not valid JSON") from None
    if not isinstance(doc, dict):
        raise PackageRejected("schema", "the JSON part is not an object")
    return doc


_JSON = msgspec.json.Decoder()
_PADDING = 4
"""Frames between :func:`_json_loads` and msgspec: more than between it and json's scanner."""


def _json_loads(raw: bytes) -> Any:
    """``json.loads(raw)``: read by msgspec where msgspec reads it (to the same value), by json otherwise.

    msgspec reads a package's JSON in half the time. It refuses what json reads its own
    way (``NaN``, ``Infinity``, a lone surrogate, a byte-order mark, UTF-16 or UTF-32 text,
    an integer of more digits than ``int`` takes from text): json then reads it, or refuses
    it, as before. Both count nesting against the interpreter's recursion limit; msgspec is
    called :data:`_PADDING` frames deeper than json's scanner, so it never reads a document
    nested deeper than json could (json then raises ``RecursionError`` as before). A
    property test holds the two to the same values and the same refusals.
    """
    try:
        return _msgspec_loads(raw, _PADDING)
    except Exception:  # msgspec.DecodeError, ValidationError, RecursionError: json decides
        return json.loads(raw)


def _msgspec_loads(raw: bytes, frames: int) -> Any:
    return _msgspec_loads(raw, frames - 1) if frames else _JSON.decode(raw)


_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
"""A bare ``local@domain`` of dot-separated atoms: what :func:`getaddresses` returns as it is."""


def _addresses(head: Message, name: str) -> tuple[int, list[str]]:
    """How many ``name`` fields the header holds, and every address in them (lower case).

    A single field holding a bare address (:data:`_PLAIN_ADDRESS`, as stafet writes them)
    is taken as it is; anything else goes through :func:`email.utils.getaddresses`, which
    gives the same answer for the bare address at five times the cost.
    """
    values = [str(v) for v in head.get_all(name) or []]
    if len(values) == 1 and _PLAIN_ADDRESS.fullmatch(values[0]):
        return 1, [values[0].lower()]
    return len(values), [a.lower() for _, a in getaddresses(values) if a]


def _check_addresses(head: Message, sender: Organisation, recipient: Organisation | None,
                     package: str) -> None:
    """``From`` is exactly the sender's address, ``To`` exactly the recipient's (RFC 5322 headers).

    The headers are outside the signature: they are checked so that what a mail client
    shows agrees with what the signed JSON says, not to decide who signed.
    """
    fields, frm = _addresses(head, "From")
    if fields != 1 or frm != [sender.email.lower()]:
        raise PackageRejected("signer_not_sender", "the From header must be exactly the sender's "
                              "address", package=package, sender=sender.id)
    fields, to = _addresses(head, "To")
    if recipient is not None and (fields != 1 or to != [recipient.email.lower()]):
        raise PackageRejected("wrong_recipient", "the To header must be exactly the recipient's address",
                              package=package, recipient=recipient.id)


def open_package(eml: bytes, *, org_id: str, keys: list[OrgKey], trust: TrustStore,
                 members: dict[str, Organisation], now: dt.datetime | None = None) -> Opened:
    """Decrypt, verify and check a package addressed to ``org_id``.

    Checks, in order, each with its own reason code: envelope and cipher
    (``malformed``, ``weak_algorithm``), our key (``wrong_recipient``), decryption
    (``decrypt_failed``), signed at all (``unsigned``), signature (``bad_signature``,
    ``weak_algorithm``), a signing time neither ahead nor older than
    :data:`MAX_SIGNATURE_AGE` (``not_yet_valid``, ``expired``), the signer's path to an
    anchor validated at the time of receipt ``now`` — never at the signing time, the
    sender's own claim — with revocation and key usage (``unknown_signer``, ``expired``,
    ``not_yet_valid``, ``revoked``, ``revocation_unknown``, ``bad_path``, ``bad_usage``,
    ``weak_algorithm``: :meth:`keys.trust.TrustStore.check_certificate`), JSON
    (``schema``), addressee (``wrong_recipient``), sender is a member
    (``unknown_signer``), the signer's certificate is one configured for the sender
    (``signer_not_sender``), ``From``/``To`` are the sender's and the recipient's
    addresses (``signer_not_sender``, ``wrong_recipient``); anything else
    the verified content raises (JSON nested beyond the parser's depth, …) is
    ``bad_content``. The replay check is the store's (:func:`stafet.exchange.inbox.store_batch`).
    """
    head, body = _split_head(eml)  # the outer header, parsed once: decryption and the address check
    entity = _decrypt(head, body, keys)
    content, sig = split_signed(entity)
    try:
        signed, certs = verify_detached(content, sig)
    except PackageRejected as e:
        if e.reason != "bad_signature" or b"\r\n" in content:
            raise
        # A signer that canonicalised LF to CRLF before signing (RFC 5751 §3.1.1).
        signed, certs = verify_detached(content.replace(b"\n", b"\r\n"), sig)
    # The signing time is the signer's claim: it may not lie ahead, nor further back than a
    # package can take to arrive. It is never the moment certificates are checked at.
    now = now or dt.datetime.now(dt.UTC)
    if signed.signing_time > now + CLOCK_SKEW:
        raise PackageRejected("not_yet_valid", "the signing time lies in the future")
    if signed.signing_time < now - MAX_SIGNATURE_AGE:
        raise PackageRejected("expired", f"signed more than {MAX_SIGNATURE_AGE.days} days ago")
    # Who signed is settled before the content is looked at: a stranger's JSON is never parsed.
    trust.check_certificate(signed.signer, now, certs, usage=SIGN)
    try:
        return _checked_content(head, content, signed, org_id=org_id, members=members, trust=trust)
    except PackageRejected:
        raise
    except Exception as e:  # JSON nested too deep (RecursionError), … : a refusal, never a wedged inbox
        raise PackageRejected("bad_content",
                              f"the signed content cannot be read ({type(e).__name__})") from None


def _checked_content(head: Message, content: bytes, signed: Signed, *, org_id: str,
                     members: dict[str, Organisation], trust: TrustStore) -> Opened:
    """The checks of :func:`open_package` on the verified content: JSON, addressee, sender."""
    doc = _json_part(content)
    validate_document(doc)
    if doc["recipient"] != org_id:
        raise PackageRejected("wrong_recipient", "the package is addressed to another organisation",
                              package=doc["package_id"], recipient=doc["recipient"])
    sender = members.get(doc["sender"])
    if sender is None:
        raise PackageRejected("unknown_signer", "the sender is not a member of this network",
                              package=doc["package_id"])
    if not trust.pinned(sender.id, signed.signer):
        raise PackageRejected("signer_not_sender", "the package is not signed with a certificate configured "
                              "for its sender", package=doc["package_id"], signer=signed.org_id,
                              sender=doc["sender"])
    _check_addresses(head, sender, members.get(org_id), doc["package_id"])
    return Opened(doc, signed, signed.content_digest)
