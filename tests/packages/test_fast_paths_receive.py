"""The second round of fast paths (issue 21) gives what the plain paths gave, on varied input.

* base64 read with pybase64 when the text is strict base64 in CRLF lines, else the stdlib
  decoders as before (the lenient one for MIME parts, the strict one for the envelope);
* the schema's yes from jsonschema-rs, its no (and anything it cannot read) decided by
  fastjsonschema as before, so the verdicts stay fastjsonschema's;
* history entries made without the frozen dataclass's ``__init__``.
"""

from __future__ import annotations

import base64
import binascii
import copy
import dataclasses
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stafet.core.errors import PackageRejected
from stafet.packages import document as D
from stafet.packages import package as P

# --- base64 -------------------------------------------------------------------------------

_B64_TEXT = st.text(alphabet="ABCXYZabcz0189+/=\r\n \t-_*\x00é", max_size=60).map(lambda s: s.encode("utf-8"))


def _lenient(text: bytes) -> bytes | type[BaseException]:
    try:
        return binascii.a2b_base64(text)
    except (binascii.Error, ValueError) as e:
        return type(e)


def _strict(text: bytes) -> bytes | type[BaseException]:
    try:
        return base64.b64decode(text.translate(None, b" \t\r\n"), validate=True)
    except (binascii.Error, ValueError) as e:
        return type(e)


@settings(max_examples=2000, deadline=None)
@given(st.one_of(_B64_TEXT, st.binary(max_size=40),
                 st.binary(max_size=300).map(lambda d: P._b64(d)),
                 st.tuples(st.binary(max_size=300), st.integers(0, 400), st.sampled_from(
                     [b"\r\n", b"\n", b"\r", b" ", b"=", b"==", b"\r\n=", b"A", b"\x00", b"-"])).map(
                     lambda t: (lambda e: e[:t[1]] + t[2] + e[t[1]:])(P._b64(t[0])))))
def test_fast_base64_reads_what_the_stdlib_decoders_read(text):
    fast = P._b64_strict_lines(text)
    if fast is not None:  # what it reads, both stdlib decoders read to the same bytes
        assert _lenient(text) == fast
        assert _strict(text) == fast


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=6000))
def test_what_stafet_writes_is_read_by_the_fast_path(data):
    assert P._b64_strict_lines(P._b64(data)) == data


def test_a_part_and_an_envelope_decode_as_before_either_way():
    from email.message import Message

    head = Message()
    head["Content-Transfer-Encoding"] = "base64"
    for body in (P._b64(b"x" * 500), P._b64(b"x" * 500).replace(b"\r\n", b"\n"), b"QQ==QQ==", b"QU JD\r\n",
                 b"Q\r\nQ=\r\n=\r\n", b"QQ==\r\n\r\n"):
        assert P._decoded(head, body) == binascii.a2b_base64(body)
    env = Message()
    env["Content-Type"] = "application/pkcs7-mime; smime-type=enveloped-data"
    env["Content-Transfer-Encoding"] = "base64"
    for body in (P._b64(b"y" * 700), P._b64(b"y" * 700).replace(b"\r\n", b" \n\t")):
        assert P._enveloped_der(env, body) == b"y" * 700
    for body in (b"QQ==QQ==", b"QQ=\r\n", b"Q-Q=\r\n"):
        with pytest.raises(PackageRejected, match="not valid base64"):
            P._enveloped_der(env, body)


# --- the schema ---------------------------------------------------------------------------

def _valid_documents() -> list[dict]:
    base = {"schema": "stafet/1", "package_id": "PKG-0123456789abcdef01234567", "sender": "779008",
            "recipient": "uu-viborg", "created": "2026-11-20T10:00:00+00:00"}
    youth = {"cpr": "120308-4127", "name": "Testa Ungesen", "birth_date": "2008-03-12"}
    records = [{"kind": "dropout", "natural_key": "779008|dropout|2026-11-20|1234",
                "data": {"institution": "779008", "n": 1.5, "list": [1, None, True]},
                "source": {"system": "easy", "file": "a.csv", "row": 3}}]
    history = [{"date": "2020-08-01", "kind": "concern_flag", "summary": "Fravær 10 %", "org": "779008"},
               {"date": "2021-01-02", "kind": "note", "summary": "x"}]
    return [
        {**base, "type": "handover", "rule": "dropout_duty", "legal_basis": "§ 12 c", "consent_ref": "",
         "youth": youth, "records": records, "history": history, "omitted": [{"kind": "x", "reason": "y"}]},
        {**base, "type": "receipt", "receipt": {"package_id": "PKG-1", "digest": "ab" * 32,
                                                "disposition": "imported", "at": "2026-11-20T10:00:00Z"}},
        {**base, "type": "withdrawal", "withdrawal": {"consent_ref": "C-1", "package_ids": ["PKG-1"],
                                                      "instruction": "Slet"}},
        {**base, "type": "notice", "notice": {
            "step": "notice", "rule": "r", "duty": "d", "youth_ref": "0" * 32, "masked_cpr": "120308-xxxx",
            "due": "2026-11-01", "since": "2026-11-02", "responsible": "779008", "addressee": "a@b.dk",
            "reference": "ref", "act": "Gør noget"}},
        {**base, "type": "inquiry", "youth": youth, "inquiry": {"question": "Hvad?"}},
        {**base, "type": "answer", "rule": "r", "legal_basis": "intet grundlag", "youth": youth,
         "records": [],
         "answer": {"in_reply_to": "PKG-12345678", "outcome": "no_basis", "reason": "ingen"}},
    ]


_ODD = st.sampled_from([
    None, True, False, 0, 1, -1, 2**64, 1.5, math.nan, math.inf, "", "x", "\n", "a\n", "\ud800", "٣",
    "é" * 70,
    "stafet/1", "stafet/1\n", "handover", "receipt", "notice", "answer", "PKG-12345678", "PKG-1234567\n",
    "ab", "a", "A1", "-ab", "uu-viborg\n", "120308-4127", "120308-4127\n", "١٢٠٣٠٨-٤١٢٧", "2026-11-20",
    "2026-13-20", "2026-11-20\n", "٢٠٢٦-١١-٢٠", "2026-11-20T10:00:00Z", "2026-11-20t23:59:60z",
    "2026-11-20T24:00:00Z", "2026-11-20T10:00:00.5+0100", "2026-11-20T10:00:00Z\n", "0" * 32, "0" * 31 + "g",
    "ab" * 32, "AB" * 32, "120308-xxxx", "x" * 64, "x" * 65, "x" * 501, "dropout", "tovholder", "unknown",
    "notice", "coordinator", "answered", "no_basis", [], [1], ["x"], ("x",), {}, {"a": 1}, {"kind": "x"},
    {"date": "d", "kind": "k", "summary": "s"}, {"cpr": "120308-4127"}, {1: "x"},
])
_KEYS = st.sampled_from(["schema", "type", "package_id", "sender", "recipient", "created", "rule",
                         "legal_basis",
                         "consent_ref", "youth", "records", "history", "omitted", "receipt", "withdrawal",
                         "notice", "inquiry", "answer", "cpr", "name", "birth_date", "kind", "natural_key",
                         "data", "source", "date", "summary", "org", "reason", "package_id", "digest",
                         "disposition", "at", "consent_ref", "package_ids", "instruction", "step", "duty",
                         "youth_ref", "masked_cpr", "due", "since", "responsible", "addressee", "reference",
                         "act", "question", "in_reply_to", "outcome", "extra"])


def _containers(doc: object) -> list[object]:
    out = [doc]
    if isinstance(doc, dict):
        for v in doc.values():
            out += _containers(v)
    elif isinstance(doc, list):
        for v in doc:
            out += _containers(v)
    return out


@st.composite
def _damaged(draw: st.DrawFn) -> dict:
    doc = copy.deepcopy(draw(st.sampled_from(_valid_documents())))
    for _ in range(draw(st.integers(0, 4))):
        target = draw(st.sampled_from(_containers(doc)))
        if isinstance(target, dict):
            key = draw(st.sampled_from(sorted(target, key=str)) | _KEYS) if target else draw(_KEYS)
            action = draw(st.sampled_from(["set", "delete", "set"]))
            if action == "delete":
                target.pop(key, None)
            else:
                target[key] = copy.deepcopy(draw(_ODD))
        elif isinstance(target, list):
            if target and draw(st.booleans()):
                target[draw(st.integers(0, len(target) - 1))] = copy.deepcopy(draw(_ODD))
            else:
                target.append(copy.deepcopy(draw(_ODD)))
    return doc


def _fastjsonschema_verdict(doc: dict) -> bool:
    try:
        P._fast_validator()(doc)
    except Exception:
        return False
    return True


def _plain_outcome(doc: dict) -> str:
    """What validate_document answered before jsonschema-rs: fastjsonschema's verdict, jsonschema's words."""
    if _fastjsonschema_verdict(doc):
        return "ok"
    errors = sorted(P._validator().iter_errors(doc), key=lambda e: list(e.absolute_path))
    if not errors:
        return "schema: the JSON does not match the schema"
    where = "/".join(str(p) for p in errors[0].absolute_path) or "(top)"
    return f"schema: the JSON does not match the schema at {where}: {errors[0].validator}"


def _outcome(doc: dict) -> str:
    try:
        P.validate_document(doc)
    except PackageRejected as e:
        return f"{e.reason}: {e}".replace("[schema] ", "").split(" (package")[0]
    return "ok"


def test_jsonschema_rs_is_there_and_accepts_the_valid_documents():
    assert P._rs_validator() is not None
    for doc in _valid_documents():
        assert P._valid_fast(doc), doc["type"]
        assert _fastjsonschema_verdict(doc)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_damaged())
def test_the_schema_verdicts_and_messages_are_fastjsonschemas_and_jsonschemas(doc):
    fast = P._valid_fast(doc)
    plain = _fastjsonschema_verdict(doc)
    if fast:
        assert plain, doc  # jsonschema-rs's yes is fastjsonschema's yes
    got, expected = _outcome(doc), _plain_outcome(doc)
    assert got.startswith(expected.split(" at ")[0]), (got, expected)
    assert got == expected or expected in got


def test_damaged_documents_are_refused_as_before():
    valid = _valid_documents()
    cases = [dict(valid[0], created="2026-13-20T10:00:00Z"), dict(valid[0], package_id="PKG-1234567\n"),
             dict(valid[0], youth={"cpr": "١٢٠٣٠٨-٤١٢٧"}), dict(valid[1], extra=1),
             dict(valid[3], notice=dict(valid[3]["notice"], duty="x" * 501)),
             dict(valid[0], sender="\ud800x"),
             dict(valid[0], records=[{"kind": "dropout", "natural_key": "k", "data": {"n": math.nan}}, 1])]
    for doc in cases:
        assert not P._valid_fast(doc)
        assert _outcome(doc) == _plain_outcome(doc) != "ok"
    nan = dict(valid[0], records=[{"kind": "dropout", "natural_key": "k", "data": {"n": math.nan}}])
    assert _outcome(nan) == _plain_outcome(nan) == "ok"  # jsonschema-rs cannot read NaN; fastjsonschema: yes


# --- documents ------------------------------------------------------------------------------

_TEXT = st.text(max_size=12) | st.integers() | st.sampled_from([None, True, 1.5])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.fixed_dictionaries({"date": _TEXT, "kind": _TEXT, "summary": _TEXT},
                                      optional={"org": _TEXT, "extra": _TEXT}), max_size=8))
def test_history_entries_are_what_from_json_makes(items):
    fast = D._history(items)
    plain = tuple(D.HistoryEntry.from_json(h) for h in items)
    assert fast == plain
    assert [vars(h) for h in fast] == [vars(h) for h in plain]
    assert [repr(h) for h in fast] == [repr(h) for h in plain]
    assert all(type(h) is D.HistoryEntry for h in fast)
    assert [hash(h) for h in fast] == [hash(h) for h in plain]


def test_history_entries_refuse_what_from_json_refuses():
    for bad in ({"kind": "k", "summary": "s"}, {"date": "d", "summary": "s"}):
        with pytest.raises(KeyError):
            D._history([bad])
        with pytest.raises(KeyError):
            D.HistoryEntry.from_json(bad)
    entry = D._history([{"date": "d", "kind": "k", "summary": "s"}])[0]
    with pytest.raises(dataclasses.FrozenInstanceError):  # frozen, as before
        entry.date = "x"  # type: ignore[misc]


# --- the JSON part --------------------------------------------------------------------------

_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=-2**80, max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text()
    | st.text(alphabet="\x00\x1f\"\\æ\u2028\ud800"),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=25)
_NUMBER_TEXT = st.from_regex(rb"\A-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,30})?([eE][-+]?[0-9]{1,4})?\Z")


def _text_of(value: object, ascii_only: bool) -> bytes:
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def _loads(raw: bytes) -> str:
    try:
        return repr(json.loads(raw))
    except Exception as e:
        return type(e).__name__


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.builds(_text_of, _JSON_VALUES, st.booleans()),
    _NUMBER_TEXT,
    st.tuples(st.builds(_text_of, _JSON_VALUES, st.booleans()), st.integers(0, 200),
              st.sampled_from([b"\x00", b"\xef\xbb\xbf", b" ", b",", b"\"", b"\\", b"\xff", b"1", b"NaN",
                               b"\t",
                               b"\xed\xa0\x80", b"}", b"]"])).map(lambda t: t[0][:t[1]] + t[2] + t[0][t[1]:]),
    st.builds(lambda v: b"\xef\xbb\xbf" + _text_of(v, False), _JSON_VALUES),
    st.builds(lambda v, enc: json.dumps(v).encode(enc), _JSON_VALUES,
              st.sampled_from(["utf-16", "utf-32-le"])),
    st.binary(max_size=30)))
def test_the_json_part_reads_to_what_json_loads_reads(raw):
    try:
        got = repr(P._json_loads(raw))
    except Exception as e:
        got = type(e).__name__
    assert got == _loads(raw)


def _content(raw: bytes) -> bytes:
    return (b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: application/json\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\n" + P._b64(raw) + b"--b--\r\n")


def _plain_json_part(content: bytes) -> dict:
    """:func:`P._json_part` as it was: json.loads, called from the same depth."""
    raw = next((P._decoded(h, b) for h, b in P._leaf_parts(content)
                if h.get_content_type() == "application/json"), None)
    try:
        doc = json.loads(raw)
    except (TypeError, ValueError):
        raise PackageRejected("schema", "the JSON part is not valid JSON") from None
    if not isinstance(doc, dict):
        raise PackageRejected("schema", "the JSON part is not an object")
    return doc


def _part_outcome(fn, content: bytes) -> str:
    try:
        return repr(fn(content))
    except PackageRejected as e:
        return f"{e.reason}: {e}"
    except RecursionError:
        return "RecursionError"


def test_json_nested_to_the_recursion_limit_reads_as_before():
    import sys

    limit = sys.getrecursionlimit()
    seen = set()
    for depth in range(limit - 60, limit + 5):
        for opener, closer in ((b'{"a":[', b"]}"), (b'{"a":', b"}")):
            n = depth if opener == b'{"a":' else depth // 2
            content = _content(opener * n + b"1" + closer * n)
            got, expected = _part_outcome(P._json_part, content), _part_outcome(_plain_json_part, content)
            assert got == expected, depth
            seen.add(expected == "RecursionError")
    assert seen == {True, False}  # the limit lies inside the range tried


# --- the envelope -------------------------------------------------------------------------

_ENVELOPES: list[bytes] = []


def _envelopes(net) -> list[bytes]:
    """Envelopes as stafet and cryptography write them: 1 to 3 recipients, AES-128 and AES-256."""
    if not _ENVELOPES:
        from cryptography.hazmat.primitives.ciphers import algorithms
        from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

        built = net.build().eml
        _ENVELOPES.append(P._enveloped_der(*P._split_head(built)))
        certs = [net.key(org).cert for org in ("uu-viborg", "779008")]
        for n, cipher in ((1, algorithms.AES128), (3, algorithms.AES256), (2, algorithms.AES128)):
            b = (pkcs7.PKCS7EnvelopeBuilder().set_data(b"x" * (n * 50))
                 .set_content_encryption_algorithm(cipher))
            for i in range(n):
                b = b.add_recipient(certs[i % 2])
            _ENVELOPES.append(b.encrypt(Encoding.DER, [pkcs7.PKCS7Options.Binary]))
    return _ENVELOPES


def _asn1crypto_envelope(der: bytes) -> object:
    try:
        return P._envelope(der)
    except PackageRejected as e:
        return f"{e.reason}: {e}"


def test_plain_envelopes_are_read_directly_to_what_asn1crypto_reads(net):
    for der in _envelopes(net):
        fast = P._envelope_fast(der)
        assert fast is not None
        assert fast == P._envelope(der)
    first = _envelopes(net)[0]
    assert P._envelope_fast(first + b"\x00") is None
    refused = _asn1crypto_envelope(first + b"\x00")
    assert refused == "malformed: [malformed] the envelope cannot be parsed: ValueError"


@settings(max_examples=2500, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_a_damaged_envelope_is_read_as_asn1crypto_reads_it(net, data):
    der = bytearray(data.draw(st.sampled_from(_envelopes(net))))
    for _ in range(data.draw(st.integers(1, 3))):
        if not der:
            break
        how = data.draw(st.sampled_from(["flip", "flip", "set", "cut", "insert", "delete"]))
        at = data.draw(st.integers(0, min(len(der), 1400) - 1))  # the structure; then the ciphertext
        if how == "flip":
            der[at] ^= data.draw(st.sampled_from([1, 2, 0x20, 0x80, 0xFF]) | st.integers(1, 255))
        elif how == "set":
            der[at] = data.draw(st.sampled_from([0x00, 0x02, 0x04, 0x06, 0x30, 0x31, 0x80, 0x81, 0x82, 0xA0,
                                                 0xA1]))
        elif how == "cut":
            del der[data.draw(st.integers(at, len(der))):]
        elif how == "insert":
            der[at:at] = data.draw(st.binary(min_size=1, max_size=3))
        else:
            del der[at:at + data.draw(st.integers(1, 3))]
    fast = P._envelope_fast(bytes(der))
    if fast is not None:
        assert _asn1crypto_envelope(bytes(der)) == fast
