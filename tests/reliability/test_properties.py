"""Property tests: arbitrary bytes into the CSV and XML readers and the package parser
give valid rows or a typed stafet error — never anything else."""

from __future__ import annotations

import datetime as dt
import io
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
import hostile

from connectors.readers import Row
from stafet.core.errors import PackageRejected, StafetError

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                            HealthCheck.function_scoped_fixture])
CSV = [s for s in hostile.READERS if not hostile._is_xml(s)]
XML = [s for s in hostile.READERS if hostile._is_xml(s)]


def read(source: str, data: bytes) -> list[Row] | StafetError:
    try:
        return list(hostile.READERS[source].rows(io.BytesIO(data), "fuzz"))
    except StafetError as e:
        return e


def check_rows(source: str, rows: list[Row]) -> None:
    reader = hostile.READERS[source]
    for r in rows:
        assert isinstance(r, Row) and r.number >= 1
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in r.fields.items())
        if not hostile._is_xml(source) and not r.problem:
            assert set(r.fields) == set(reader.columns)  # type: ignore[union-attr]


@pytest.mark.parametrize("source", list(hostile.READERS))
@SETTINGS
@given(data=st.binary(max_size=4000))
def test_arbitrary_bytes(source: str, data: bytes) -> None:
    out = read(source, data)
    if not isinstance(out, StafetError):
        check_rows(source, out)


@pytest.mark.parametrize("source", CSV)
@SETTINGS
@given(cells=st.lists(st.lists(st.text(max_size=30), min_size=0, max_size=20), max_size=20),
       newline=st.sampled_from(["\n", "\r\n", "\r"]))
def test_csv_header_then_arbitrary_text_rows(source: str, cells: list[list[str]], newline: str) -> None:
    header = hostile._csv_header(source)
    text = newline.join([header] + [";".join(c) for c in cells]) + newline
    out = read(source, text.encode(hostile._enc(source), errors="replace"))
    if not isinstance(out, StafetError):
        check_rows(source, out)


@pytest.mark.parametrize("source", list(hostile.READERS))
@SETTINGS
@given(st.data())
def test_mutated_sample(source: str, data: st.DataObject) -> None:
    good = bytearray(hostile.sample(source))
    for _ in range(data.draw(st.integers(1, 8))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        at = data.draw(st.integers(0, max(0, len(good) - 1)))
        if op == "flip" and good:
            good[at] ^= data.draw(st.integers(1, 255))
        elif op == "cut":
            del good[at:]
        elif op == "insert":
            good[at:at] = data.draw(st.binary(min_size=1, max_size=20))
        elif good:
            del good[at:at + data.draw(st.integers(1, 50))]
    out = read(source, bytes(good))
    if not isinstance(out, StafetError):
        check_rows(source, out)


# --- the package parser ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def parser(tmp_path_factory: pytest.TempPathFactory):
    import os

    from stafet.context import open_context
    from stafet.core.vault import load_secret
    from stafet.demo.network import setup_demo
    from stafet.exchange.endpoints import recipient_certificate, trust_store
    from stafet.packages.package import build_package, new_package_id

    root = tmp_path_factory.mktemp("fuzz-net")
    os.environ["STAFET_HOME"] = str(root / "home")
    net = setup_demo(root / "demo", root / "home", drop_samples=False, bits=2048)
    load_secret(root / "home", create=True)
    ctx = open_context(net, home=root / "home")
    now = dt.datetime.now(dt.UTC).isoformat()
    doc = {"type": "receipt", "package_id": new_package_id(), "sender": "779008", "recipient": "uu-viborg",
           "created": now, "receipt": {"package_id": new_package_id(), "digest": "0" * 64,
                                       "disposition": "imported", "at": now}}
    built = build_package(doc, sender=ctx.network.member("779008"), sender_key=ctx.keys.current("779008"),
                          recipient=ctx.network.member("uu-viborg"),
                          recipient_cert=recipient_certificate(ctx, "uu-viborg"))
    kw = {"org_id": "uu-viborg", "keys": ctx.keys.decryption_keys("uu-viborg"), "trust": trust_store(ctx),
          "members": ctx.network.members}
    return built.eml, kw


def _open(eml: bytes, kw: dict) -> str | dict:
    """The reason code of a refusal, or the opened document."""
    from stafet.packages.package import open_package

    try:
        return open_package(eml, **kw).doc
    except PackageRejected as e:
        return e.reason


def test_the_honest_package_opens(parser) -> None:
    eml, kw = parser
    assert isinstance(_open(eml, kw), dict)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=3000))
def test_package_parser_on_arbitrary_bytes(parser, data: bytes) -> None:
    _, kw = parser
    assert isinstance(_open(data, kw), str)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_package_parser_on_mutated_packages(parser, data: st.DataObject) -> None:
    eml, kw = parser
    body = bytearray(eml)
    start = eml.index(b"\n\n") + 2 if b"\n\n" in eml else eml.index(b"\r\n\r\n") + 4
    at = data.draw(st.integers(start, len(body) - 1))
    op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
    if op == "flip":
        ch = body[at]
        repl = data.draw(st.sampled_from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"))
        if repl == ch or ch in b"\r\n=":
            return
        body[at] = repl
    elif op == "cut":
        del body[at:]
    else:
        body[at:at] = data.draw(st.binary(min_size=1, max_size=40))
    out = _open(bytes(body), kw)
    # bytes nothing reads (e.g. the sender's own copy of the content key) may change: then the
    # package opens — but only ever as the honest document, never as anything else
    assert isinstance(out, str) or out == _open(eml, kw)
