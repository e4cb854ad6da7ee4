"""The fast paths of building and opening a package give what the plain paths gave, byte for byte.

Each fast path (issue 21: orjson for the JSON part, pybase64 for the base64 lines, a bare
address taken without the e-mail parser) is held to the plain code it replaced by a
property test, and a package built through them is read by ``openssl cms`` and opened by
stafet to the same document.
"""

from __future__ import annotations

import base64
import email.base64mime
import json
import subprocess
from email.message import Message
from email.utils import getaddresses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servers import require_tools

from stafet.packages import package as P

# JSON-shaped values with everything json.dumps treats its own way: floats (NaN, ±inf,
# exponents), ints beyond 64 bits, control characters and lone surrogates, tuples, bools.
_ODD_TEXT = st.text(alphabet="\x00\x1f\x7f\"\\æ\u2028\ud800")
_SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-2**70, max_value=2**70)
            | st.floats(allow_nan=True, allow_infinity=True) | st.text() | _ODD_TEXT)
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
                       | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=30)


def _plain_json(doc: object) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.text(max_size=8), _VALUES, max_size=6))
def test_the_json_part_is_what_json_dumps_writes(doc):
    try:
        expected: bytes | type[BaseException] = _plain_json(doc)
    except (ValueError, TypeError) as e:  # a lone surrogate cannot be UTF-8: refused both ways
        expected = type(e)
    if isinstance(expected, bytes):
        assert P._json_bytes(doc) == expected
    else:
        with pytest.raises(expected):
            P._json_bytes(doc)


def test_json_part_types_orjson_writes_its_own_way_go_to_json():
    class Name(str):
        pass

    for doc in ({"n": 1e16}, {"n": 1e-5}, {"n": float("nan")}, {"n": 2**64}, {"k": Name("x")}, {1: "int key"},
                {"t": ("a", 1)}, {"b": True, "z": None}):
        assert P._json_bytes(doc) == _plain_json(doc)
    assert not P._plain({"n": 0.5}) and not P._plain({"k": Name("x")}) and not P._plain({"n": [[{"f": 0.5}]]})
    for doc in ({Name("x"): 1}, {True: 1}, {None: 1}, {1.5: 2}):  # keys orjson refuses: json writes them
        assert P._json_bytes(doc) == _plain_json(doc)
    assert P._plain({"a": [1, "b", None, True, {"c": ()}]})
    import datetime as dt

    with pytest.raises(TypeError):  # json refuses what it cannot write; orjson would have written it
        P._json_bytes({"when": dt.datetime(2026, 1, 1)})


@settings(max_examples=300)
@given(st.binary(max_size=5000))
def test_base64_lines_are_the_standard_76_character_crlf_lines(data):
    out = P._b64(data)
    assert out == email.base64mime.body_encode(data, maxlinelen=76, eol="\r\n").encode("ascii")
    assert out == P._b64_lines(base64.b64encode(data))
    assert base64.b64decode(out) == data


@pytest.mark.parametrize("size", [0, 1, 56, 57, 58, 57 * 8 - 1, 57 * 8, 57 * 8 + 1, 36_000, 36_001, 36_002])
def test_base64_lines_at_the_edges(size):
    data = bytes(range(256)) * (size // 256 + 1)
    data = data[:size]
    assert P._b64(data) == P._b64_lines(base64.b64encode(data))


@settings(max_examples=500)
@given(st.from_regex(P._PLAIN_ADDRESS, fullmatch=True))
def test_a_bare_address_is_what_getaddresses_reads(address):
    assert getaddresses([address]) == [("", address)]


_NEAR_MISS = "aZ09_+-.<>\" ,;:()[]\\Æ\t"
"""Characters of bare addresses and of the mail syntax around them."""
_ADDRESS_LIKE = st.builds("{}@{}".format, st.text(alphabet=_NEAR_MISS, min_size=1, max_size=8),
                          st.text(alphabet=_NEAR_MISS, min_size=1, max_size=8))


@settings(max_examples=800)
@given(st.lists(st.from_regex(P._PLAIN_ADDRESS, fullmatch=True) | _ADDRESS_LIKE
                | st.text(alphabet=_NEAR_MISS + "@", max_size=30), min_size=0, max_size=3))
def test_header_addresses_are_read_as_getaddresses_reads_them(values):
    head = Message()
    for v in values:
        head["From"] = v
    got = P._addresses(head, "From")
    stored = [str(v) for v in head.get_all("From") or []]
    assert got == (len(stored), [a.lower() for _, a in getaddresses(stored) if a])


def test_a_large_package_built_through_the_fast_paths_reads_in_openssl_and_stafet(net, tmp_path):
    require_tools("openssl", package="openssl")
    doc = net.handover_doc()
    doc["history"] = [{"date": f"2020-08-{1 + i % 28:02d}", "kind": "concern_flag", "org": "779008",
                       "summary": f"Fravær {i} %, støtte\tog mentor \"{i}\" \\ \x01"} for i in range(150)]
    built = net.build(doc)
    assert len(built.eml) > 30_000
    eml = tmp_path / "p.eml"
    eml.write_bytes(built.eml)
    cert, key = net.pem_files(net.key("uu-viborg"), "uu")
    signed = subprocess.run(["openssl", "cms", "-decrypt", "-in", str(eml), "-recip", str(cert),
                             "-inkey", str(key)], capture_output=True, timeout=60, check=True).stdout
    content = subprocess.run(["openssl", "cms", "-verify", "-CAfile", str(net.root / "net/certs/ca.pem"),
                              "-purpose", "smimesign"], input=signed, capture_output=True, timeout=60,
                             check=True).stdout
    # The JSON part is the bytes json.dumps writes for the document, as before.
    parts = {h.get_content_type(): P._decoded(h, b) for h, b in P._leaf_parts(content)}
    assert parts["application/json"] == _plain_json({"schema": P.SCHEMA_VERSION, **doc})
    opened = net.open(built.eml)
    assert opened.doc == {"schema": P.SCHEMA_VERSION, **doc}
    assert opened.digest == built.digest


def _attribute_spans(sig: bytes) -> list[tuple[int, int]]:
    """Where each signed attribute's bytes sit in a CMS signature."""
    from asn1crypto import cms

    si = cms.ContentInfo.load(sig)["content"]["signer_infos"][0]
    attrs = si["signed_attrs"]
    start = sig.index(attrs.contents)  # the attributes' contents (under an implicit [0] tag)
    spans, pos = [], start
    for a in attrs:
        n = len(a.dump())
        spans.append((pos, pos + n))
        pos += n
    return spans


def _attributes_decode(sig: bytes) -> bool:
    """What the plain path checked: every signed attribute decodes (``attrs.native``)."""
    from asn1crypto import cms

    try:
        cms.ContentInfo.load(sig, strict=True)["content"]["signer_infos"][0]["signed_attrs"].native  # noqa: B018
    except Exception:
        return False
    return True


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_a_signed_attribute_that_does_not_decode_is_malformed_as_before(net, data):
    from keys.trust import verify_detached
    from stafet.core.errors import PackageRejected

    content, sig = _SIGNED.get("x") or _SIGNED.setdefault("x", P.split_signed(net.entity(net.build().eml)))
    spans = _attribute_spans(sig)
    lo, hi = data.draw(st.sampled_from([*spans, (spans[0][0], spans[-1][1])]))
    damaged = bytearray(sig)
    for _ in range(data.draw(st.integers(1, 3))):
        damaged[data.draw(st.integers(lo, hi - 1))] ^= data.draw(st.integers(1, 255))
    try:
        verify_detached(content, bytes(damaged))
        outcome = "ok"
    except PackageRejected as e:
        outcome = f"{e.reason}: {e}".replace("[malformed] ", "")
    if not _attributes_decode(bytes(damaged)):
        assert outcome.startswith("malformed: the signature cannot be parsed"), outcome
    else:
        assert "cannot be parsed" not in outcome, outcome


_SIGNED: dict[str, tuple[bytes, bytes]] = {}
