"""Issue 16's trust-boundary findings 1, 2, 3 and 14, and the retry's legal basis.

Every member is a possible adversary: a package, receipt or notice from one organisation
may only change what that organisation is entitled to change; nothing from outside ever
overwrites what a source system said; verification fails closed. All CPRs are synthetic.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from stafet.core.cpr import parse_cpr
from stafet.core.models import Dropout, EducationOrder, Provenance
from stafet.packages.package import build_package, new_package_id
from stafet.store.schema import AuditEntry, ConsentRow, Handover, RecordRow

TODAY = dt.date.today()
CPR = "120308-4127"  # synthetic


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


# --- finding 1: a package never updates what a source system said ---------------------------

def _source_dropout(muni: str = "791") -> Dropout:
    return Dropout(cpr=parse_cpr(CPR), institution="779008", home_municipality=muni,
                   first_name="Testa", last_name="Ungesen", event_date=TODAY - dt.timedelta(days=2),
                   programme_code="1640", programme_name="Tømrer", reason_code="03",
                   provenance=Provenance("easy-a", "779008_haendelser.csv", 2, dt.datetime.now(dt.UTC)))


def _demo_package(ctx: Any, demo: Path, doc: dict[str, Any], sender: str, recipient: str) -> bytes:
    """A package signed by ``sender`` (its own node's key when it runs one), to ``recipient``."""
    from keys import KeyStore
    from stafet.demo.network import OWN_NODE, member_home
    from stafet.exchange.endpoints import recipient_certificate

    keys = KeyStore(member_home(demo, sender)) if sender in OWN_NODE else ctx.keys
    return build_package(doc, sender=ctx.network.member(sender), sender_key=keys.current(sender),
                         recipient=ctx.network.member(recipient),
                         recipient_cert=recipient_certificate(ctx, recipient)).eml


def _routes(ctx: Any) -> list[tuple[str, str, str, str, str]]:
    from stafet.duties.routing import route

    with ctx.store.session() as s:
        return sorted((d.rule, d.sender, d.recipient, d.youth, d.status)
                      for d in route(s, ctx.network, TODAY))


def test_a_package_with_a_source_records_key_changes_neither_the_record_nor_routing(demo_net) -> None:
    """uu-skive (its own node) sends the hub a dropout with the key of Mercantec's source record
    and another home municipality: the source record stays, the next route goes where it went."""
    from stafet.exchange.inbox import process_inbox
    from stafet.exchange.outbox import outlet_for

    path, ctx = demo_net
    demo = Path(path).parent
    src = _source_dropout("791")
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, [src])
    with ctx.store.session() as s:
        before = [(r.id, r.payload, r.digest) for r in s.scalars(select(RecordRow))]
    routes = _routes(ctx)
    assert [(r[0], r[2]) for r in routes] == [("dropout_to_uu", "uu-viborg")]

    forged = {**src.payload(), "home_municipality": "787", "reason_text": "flyttet"}  # 787: UU Thy
    doc = {"type": "handover", "package_id": new_package_id(), "sender": "uu-skive", "recipient": "uu-viborg",
           "created": _now(), "rule": "concern_to_uu", "legal_basis": "vejledningsloven § 12 c",
           "consent_ref": "", "youth": {"cpr": CPR, "birth_date": "2008-03-12"},
           "records": [{"kind": "dropout", "natural_key": src.natural_key(), "data": forged}]}
    outlet_for(ctx, "uu-viborg", "uu-skive@x").put(f"{doc['package_id']}.eml",
                                                    _demo_package(ctx, demo, doc, "uu-skive", "uu-viborg"))
    r = process_inbox(ctx, "uu-viborg")
    assert (r.imported, r.rejected) == (1, {})  # received and kept — apart from the source records

    with ctx.store.session() as s:
        after = [(r.id, r.payload, r.digest) for r in s.scalars(select(RecordRow))]
        updates = [e for e in s.scalars(select(AuditEntry).where(AuditEntry.action == "record.updated"))]
    assert after == before
    assert updates == []
    assert _routes(ctx) == routes

    from stafet.store import imported

    with ctx.store.session() as s:
        got = imported.of_youth(s, ctx.vault.pseudonym(parse_cpr(CPR).digits))
    assert [(g.recipient, g.package_id, g.sender, g.payload["home_municipality"]) for g in got] == [
        ("uu-viborg", doc["package_id"], "uu-skive", "787")]


def test_imports_are_scoped_by_recipient_and_package(net) -> None:
    """The same record sent twice, by two packages, is two received records (neither updates the other)."""
    from stafet.store import imported

    first, second = net.handover_doc(), net.handover_doc()
    second["records"][0]["data"] = {**second["records"][0]["data"], "reason_text": "Andet"}
    net.deliver("uu-viborg", "01.eml", net.build(first).eml)
    net.deliver("uu-viborg", "02.eml", net.build(second).eml)
    assert net.receive().imported == 2
    ctx = net.ctx("uu-viborg")
    with ctx.store.session() as s:
        assert list(s.scalars(select(RecordRow))) == []  # nothing received is a source record
        rows = imported.of_youth(s, ctx.vault.pseudonym(parse_cpr(CPR).digits))
    assert sorted((r.package_id, r.payload["reason_text"]) for r in rows) == sorted(
        [(first["package_id"], "Skiftet retning"), (second["package_id"], "Andet")])


def test_a_package_repeating_a_record_key_is_refused(net) -> None:
    doc = net.handover_doc()
    doc["records"] = doc["records"] * 2
    net.deliver("uu-viborg", "dup.eml", net.build(doc).eml)
    r = net.receive()
    assert (r.imported, r.rejected) == (0, {"dup.eml": "schema"})


# --- finding 2: a withdrawal notice withdraws only its signer's own packages ----------------

def _withdrawal(sender: str, consent_ref: str, package_ids: list[str], recipient: str = "uu-viborg"):
    return {"type": "withdrawal", "package_id": new_package_id(), "sender": sender, "recipient": recipient,
            "created": _now(), "withdrawal": {"consent_ref": consent_ref, "package_ids": package_ids,
                                              "instruction": "Slet"}}


def _import_under_consent(net, sender: str = "779008", ref: str = "S-1") -> str:
    doc = net.handover_doc(sender)
    doc.update(rule="order_to_institution", consent_ref=ref)
    net.deliver("uu-viborg", f"h-{doc['package_id']}.eml", net.build(doc, sender=sender).eml)
    assert net.receive().imported == 1
    return str(doc["package_id"])


def _withdrawn(net, package_id: str) -> list[bool]:
    from stafet.store import imported

    with net.ctx("uu-viborg").store.session() as s:
        return [r.withdrawn for r in imported.of_package(s, "uu-viborg", package_id)]


def test_a_notice_from_another_member_withdraws_nothing(net) -> None:
    """jobcenter-viborg names Mercantec's package (its id is in clear headers): refused, audited."""
    pid = _import_under_consent(net)
    net.deliver("uu-viborg", "n.eml", net.build(_withdrawal("jobcenter-viborg", "S-1", [pid]),
                                                sender="jobcenter-viborg").eml)
    r = net.receive()
    assert (r.withdrawn, r.rejected) == (0, {"n.eml": "not_entitled"})
    assert _withdrawn(net, pid) == [False]
    with net.ctx("uu-viborg").store.session() as s:
        refusals = [e.details for e in s.scalars(select(AuditEntry).where(
            AuditEntry.action == "package.rejected"))]
    assert [d["reason"] for d in refusals] == ["not_entitled"]
    assert "[not_entitled]" in (net.home("uu-viborg") / "rejected" / "n.eml.reason.txt").read_text()


def test_a_notice_naming_a_foreign_package_among_its_own_is_refused_whole(net) -> None:
    own = _import_under_consent(net, "jobcenter-viborg", "S-2")
    foreign = _import_under_consent(net, "779008", "S-2")
    net.deliver("uu-viborg", "n.eml", net.build(_withdrawal("jobcenter-viborg", "S-2", [own, foreign]),
                                                sender="jobcenter-viborg").eml)
    r = net.receive()
    assert (r.withdrawn, r.rejected) == (0, {"n.eml": "not_entitled"})
    assert _withdrawn(net, own) == [False] and _withdrawn(net, foreign) == [False]


def test_a_notice_under_another_consent_is_refused_and_the_right_one_withdraws(net) -> None:
    pid = _import_under_consent(net, ref="S-1")
    net.deliver("uu-viborg", "n1.eml", net.build(_withdrawal("779008", "S-9", [pid])).eml)
    r = net.receive()
    assert (r.withdrawn, r.rejected) == (0, {"n1.eml": "consent_mismatch"})
    net.deliver("uu-viborg", "n2.eml", net.build(_withdrawal("779008", "", [pid])).eml)
    assert net.receive().rejected == {"n2.eml": "consent_mismatch"}
    assert _withdrawn(net, pid) == [False]
    net.deliver("uu-viborg", "n3.eml", net.build(_withdrawal("779008", "S-1", [pid])).eml)
    r = net.receive()
    assert (r.withdrawn, r.rejected, r.receipts_sent) == (1, {}, 1)
    assert _withdrawn(net, pid) == [True]


# --- finding 3: nothing a verified package holds wedges the inbox ---------------------------

def _signed_raw_json(net, raw: bytes, sender: str = "779008") -> bytes:
    """A package whose JSON part is ``raw`` as it is (the signer's bytes, no schema, no encoder)."""
    b64 = base64.encodebytes(raw).replace(b"\n", b"\r\n")
    inner = (b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\n'
             b'Content-Type: text/plain; charset="utf-8"\r\n\r\nOverlevering\r\n--b1\r\n'
             b'Content-Type: application/json; name="handover.json"\r\nContent-Transfer-Encoding: base64\r\n'
             b'Content-Disposition: attachment; filename="handover.json"\r\n\r\n' + b64 + b"--b1--\r\n")
    return net.envelope(net.sign(inner, net.key(sender)))


def _impossible_cpr(net) -> bytes:
    doc = net.handover_doc()
    doc["youth"]["cpr"] = "320208-4127"  # synthetic; the 32nd of February
    return net.build(doc).eml


def _deep_json(net) -> bytes:
    doc = {"schema": "stafet/1", **net.handover_doc()}
    doc["records"][0]["data"]["note"] = "@DEEP@"
    raw = json.dumps(doc).encode().replace(b'"@DEEP@"', b"[" * 100_000 + b"]" * 100_000)
    return _signed_raw_json(net, raw)


@pytest.mark.parametrize("payload", [_impossible_cpr, _deep_json], ids=["impossible-cpr", "deep-json"])
def test_a_bad_payload_is_refused_and_the_package_behind_it_imported(net, payload) -> None:
    good = net.handover_doc()
    net.deliver("uu-viborg", "01-bad.eml", payload(net))
    net.deliver("uu-viborg", "02-good.eml", net.build(good).eml)
    r = net.receive()
    assert (r.imported, r.rejected) == (1, {"01-bad.eml": "bad_content"})
    assert sorted(p.name for p in net.inbox("uu-viborg").iterdir() if p.suffix == ".eml") == []
    kept = net.home("uu-viborg") / "rejected"
    assert "[bad_content]" in (kept / "01-bad.eml.reason.txt").read_text()
    assert (kept / "01-bad.eml").exists()
    from stafet.store import inbox

    with net.ctx("uu-viborg").store.session() as s:
        assert inbox.imported(s, good["package_id"]) is not None
    # the verified sender is told why (when the package says who it is), as for other refusals
    answers = sorted(net.inbox("779008").glob("*.eml"))
    dispositions = sorted(net.open(a.read_bytes(), "779008").doc["receipt"]["disposition"] for a in answers)
    expected = ["imported"] + (["rejected: bad_content"] if payload is _impossible_cpr else [])
    assert dispositions == sorted(expected)
    assert net.receive().rejected == {}  # the next pass has nothing left to trip over


# --- finding 14: a home without the organisation's key stops before the inbox ---------------

def test_receive_on_a_home_without_the_orgs_key_leaves_the_inbox_alone(net) -> None:
    from stafet.cli.main import app

    net.deliver("uu-viborg", "p.eml", net.build().eml)
    wrong = net.home("779008")
    res = CliRunner().invoke(app, ["receive", "--org", "uu-viborg", "--network", str(net.network_path),
                                   "--home", str(wrong)])
    out = (res.output + (res.stderr if res.stderr_bytes is not None else "")).replace("\n", "")
    assert res.exit_code == 2, out
    assert "uu-viborg" in out and str(net.home("uu-viborg")) in out
    assert [p.name for p in net.inbox("uu-viborg").iterdir()] == ["p.eml"]
    assert not (wrong / "rejected").exists()
    # the right folder receives it
    res = CliRunner().invoke(app, ["receive", "--org", "uu-viborg", "--network", str(net.network_path),
                                   "--home", str(net.home("uu-viborg")), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["imported"] == 1


def test_receive_for_an_org_that_is_not_a_member_is_a_config_error(net) -> None:
    from stafet.core.errors import ConfigError
    from stafet.exchange.inbox import process_inbox

    with pytest.raises(ConfigError):
        process_inbox(net.ctx("uu-viborg"), "uu-nowhere")


# --- a retry re-checks the legal basis before it sends cached bytes --------------------------

def _order_under_consent(ctx: Any) -> Handover:
    from stafet import night

    cpr = parse_cpr("140502-4913")
    rec = EducationOrder(cpr=cpr, order_id="UP-2026-0113", target_education="Smed",
                         target_institution="779008", deadline=TODAY + dt.timedelta(days=40),
                         mentor_granted=False, status="OPHOERT_UDDANNELSESSTART",
                         status_date=TODAY, consent_ref="S-31",
                         provenance=Provenance("test", "jobcenter_791_paalaeg_20261121.csv", 2,
                                               dt.datetime.now(dt.UTC), municipality="791"))
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, [rec])
    from stafet.core.models import Consent

    con = Consent(cpr=cpr, ref="S-31", signed_by="ung", signed_date=TODAY,
                  valid_from=TODAY - dt.timedelta(days=1),
                  valid_to=TODAY + dt.timedelta(days=200), recipients=("779008",), scopes=("paalaeg",))
    from stafet.store import consents

    with ctx.store.session() as s:
        y = ctx.store.ensure_youths(s, [cpr])[cpr.digits]
        consents.add(s, "S-31", y, con.payload())
    night.route(str(ctx.network.path), TODAY)
    with ctx.store.session() as s:
        return s.scalars(select(Handover).where(Handover.rule == "order_to_institution")).one()


def _delivered_to_779008(ctx: Any) -> list[str]:
    loc = ctx.network.locate(ctx.network.member("779008").endpoint).removeprefix("folder:")
    return sorted(p.name for p in Path(loc).glob("*.eml"))


def _expire(ctx: Any) -> None:
    with ctx.store.session() as s:
        c = s.get(ConsentRow, "S-31")
        c.payload = {**c.payload, "valid_to": (TODAY - dt.timedelta(days=1)).isoformat()}


def _withdraw(ctx: Any) -> None:
    from stafet.store import consents

    with ctx.store.session() as s:
        consents.withdraw(s, "S-31", TODAY, actor="steward")


@pytest.mark.parametrize("basis_gone", [_expire, _withdraw], ids=["expired", "withdrawn"])
def test_outbox_retry_rechecks_the_basis_before_sending_cached_bytes(demo_net, basis_gone) -> None:
    from stafet import night
    from stafet.cli.main import app
    from stafet.exchange.outbox import build_outbox_package
    from stafet.store import outbox

    path, ctx = demo_net
    h = _order_under_consent(ctx)
    build_outbox_package(ctx, h)  # step 2 done: the bytes are cached …
    with ctx.store.session() as s:
        outbox.failed(s, h.id, "550 mailbox unavailable")  # … and the delivery failed
    basis_gone(ctx)
    res = CliRunner().invoke(app, ["outbox", "retry", h.id, "--network", path, "--home", str(ctx.home)])
    assert res.exit_code == 0, res.output
    assert night.send(path, ["779008"])["sent"] == 0
    assert _delivered_to_779008(ctx) == []
    with ctx.store.session() as s:
        row = s.get(Handover, h.id)
        assert row.status in ("held", "cancelled") and row.last_error


def test_a_resend_of_cached_bytes_rechecks_the_basis(demo_net) -> None:
    """A crash after the package was built (step 2) and before it was put: the resend checks again."""
    from stafet import night
    from stafet.exchange.outbox import build_outbox_package

    path, ctx = demo_net
    h = _order_under_consent(ctx)
    build_outbox_package(ctx, h)
    _expire(ctx)
    assert night.send(path, ["779008"])["sent"] == 0
    assert _delivered_to_779008(ctx) == []
    with ctx.store.session() as s:
        assert s.get(Handover, h.id).status == "held"


def test_the_receiving_nodes_youth_timeline_shows_what_it_received(net) -> None:
    from stafet.cli.main import app

    doc = net.handover_doc()
    net.deliver("uu-viborg", "p.eml", net.build(doc).eml)
    assert net.receive().imported == 1
    pseudonym = net.ctx("uu-viborg").vault.pseudonym(parse_cpr(CPR).digits)
    res = CliRunner().invoke(app, ["youth", "show", pseudonym, "--network", str(net.network_path),
                                   "--home", str(net.home("uu-viborg"))], env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.output
    assert f"pakke {doc['package_id']} fra 779008 til uu-viborg" in res.output


def test_a_package_whose_write_fails_is_refused_and_the_rest_of_its_batch_written(net, monkeypatch) -> None:
    """What the store raises for one package's content (a column it cannot hold, …) rolls the batch
    back; the batch is written again package by package and only that one is refused."""
    from stafet.store import imported

    docs = [net.handover_doc() for _ in range(3)]
    bad = docs[1]["package_id"]
    real = imported.add

    def add(s, recipient, packages):
        if any(pid == bad for pid, _, _ in packages):
            raise ValueError("value too long for type character varying(300)")
        return real(s, recipient, packages)

    monkeypatch.setattr(imported, "add", add)
    for i, d in enumerate(docs):
        net.deliver("uu-viborg", f"{i:02d}.eml", net.build(d).eml)
    r = net.receive()
    assert (r.imported, r.rejected, r.receipts_sent) == (2, {"01.eml": "bad_content"}, 2)
    answers = [net.open(a.read_bytes(), "779008").doc["receipt"] for a in net.inbox("779008").glob("*.eml")]
    assert sorted((a["package_id"] == bad, a["disposition"]) for a in answers) == [
        (False, "imported"), (False, "imported"), (True, "rejected: bad_content")]
    with net.ctx("uu-viborg").store.session() as s:
        assert [len(imported.of_package(s, "uu-viborg", d["package_id"])) for d in docs] == [1, 0, 1]
