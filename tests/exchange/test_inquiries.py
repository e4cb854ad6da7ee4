"""Inquiries to UU and UU's answers (issue 18) over the demo network's real folder endpoints:
signed, encrypted and receipted both ways; the answer routed by the consent rules ("intet grundlag"
when there is no basis); and the refusals of an adversarial member."""

from __future__ import annotations

import datetime as dt
from datetime import UTC, date, datetime, timedelta

import pytest
from seeds import assert_quoted

from stafet import night
from stafet.core.cpr import parse_cpr
from stafet.core.errors import ConfigError
from stafet.core.models import Consent, EducationPlan, Provenance
from stafet.duties.routing import default_rules
from stafet.exchange.endpoints import outlet_for, recipient_certificate
from stafet.exchange.inbox import process_inbox
from stafet.exchange.inquiries import answer_inquiry, send_inquiry
from stafet.packages.document import NO_BASIS, AnswerDocument, InquiryDocument, YouthInfo
from stafet.packages.package import build_package, new_package_id
from stafet.store import imported, inquiries, utcnow
from stafet.store.schema import ConsentRow

TODAY = dt.date.today()
CPR = "120310-4126"  # synthetic
OTHER = "070711-4121"  # synthetic
SEED = ("Ungdomsuddannelserne kan til enhver tid under optagelsesprocessen forespørge UUR om oplysninger "
        "på konkrete unge")


@pytest.fixture
def demo(demo_relay):
    """The demo network on a fresh copy (tests/conftest.py's ``demo_relay``)."""
    path, _home, _folder = demo_relay
    return night.context(path)


def _plan(ctx, cpr=CPR) -> None:
    plan = EducationPlan(cpr=parse_cpr(cpr), plan_id="P-1", updated=date(2026, 10, 1), goal_code="1640",
                         goal_name="Tømrer", support_needs=("Ordblind",), counsellor_name="Vejleder",
                         provenance=Provenance("uu-planer", "uu_791_planer_20261001.xml", 1,
                                               datetime.now(UTC), municipality="791"))
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, [plan])


def _consent(ctx, scopes=("uddannelsesplan", "stoettebehov"), recipients=("779008",)) -> None:
    con = Consent(cpr=parse_cpr(CPR), ref="S-18", signed_by="foraelder",
                  signed_date=TODAY - timedelta(days=3),
                  valid_from=TODAY - timedelta(days=3), valid_to=TODAY + timedelta(days=100),
                  recipients=tuple(recipients), scopes=tuple(scopes), provenance=Provenance(
                      "samtykker", "s.csv", 1, datetime.now(UTC)))
    with ctx.store.session() as s:
        y = ctx.store.ensure_youths(s, [con.cpr])[con.cpr.digits]
        s.add(ConsentRow(ref=con.ref, youth=y, payload=con.payload(), withdrawn_date=None,
                         updated_at=utcnow()))


def _ask(ctx, asker="779008", guidance="uu-viborg", cpr=CPR) -> str:
    pid = send_inquiry(ctx, asker, guidance, parse_cpr(cpr), "Har den unge støttebehov?")
    r = process_inbox(ctx, guidance)
    assert (r.inquiries, r.receipts_sent, r.rejected) == (1, 1, {})
    return pid


def _put(ctx, doc) -> None:
    built = build_package(doc, sender=ctx.network.member(doc.sender), sender_key=ctx.keys.current(doc.sender),
                          recipient=ctx.network.member(doc.recipient),
                          recipient_cert=recipient_certificate(ctx, doc.recipient))
    outlet = outlet_for(ctx, doc.recipient, ctx.network.member(doc.sender).email)
    outlet.put(f"{doc.package_id}.eml", built.eml)


def _youth(cpr: str) -> YouthInfo:
    c = parse_cpr(cpr)
    return YouthInfo(cpr=c.formatted, birth_date=c.birth_date.isoformat())


def _answer(inquiry: str, *, sender="uu-viborg", recipient="779008", cpr=CPR, outcome="no_basis",
            records=()) -> AnswerDocument:
    return AnswerDocument(package_id=new_package_id(), sender=sender, recipient=recipient,
                          created=datetime.now(UTC).isoformat(), in_reply_to=inquiry, outcome=outcome,
                          reason="x", rule="inquiry_answer", legal_basis=NO_BASIS, consent_ref="",
                          youth=_youth(cpr), records=tuple(records))


def test_the_seed_words_stand() -> None:
    assert_quoted(SEED)
    assert_quoted("UUR vil – efter at have indhentet samtykke – videregive oplysninger, der har relevans for "
                  "uddannelserne")
    rule = next(r for r in default_rules() if r.id == "inquiry_answer")
    assert rule.basis == "consent" and SEED in rule.legal_basis and rule.when == {"inquiry": True}


def test_an_inquiry_is_answered_with_what_the_consent_covers_and_both_are_receipted(demo) -> None:
    ctx = demo
    _plan(ctx)
    _consent(ctx, scopes=("uddannelsesplan",))  # support needs not covered: stripped
    pid = _ask(ctx)
    with ctx.store.session() as s:
        theirs = inquiries.received(s, "uu-viborg", pid)
        assert theirs is not None and theirs.status == "open" and theirs.asker == "779008"
    assert process_inbox(ctx, "779008").acknowledged == 1  # the inquiry's receipt
    with ctx.store.session() as s:
        assert inquiries.get(s, "779008", pid).acknowledged_at is not None
    done = answer_inquiry(ctx, pid, by="Vejleder Hansen")
    assert (done.to, done.outcome, done.records) == ("779008", "answered", 1)
    r = process_inbox(ctx, "779008")
    assert (r.imported, r.receipts_sent, r.rejected) == (1, 1, {})
    with ctx.store.session() as s:
        mine = inquiries.get(s, "779008", pid)
        assert (mine.status, mine.answer_outcome, mine.answer_records) == ("answered", "answered", 1)
        got = imported.of_package(s, "779008", done.answer_id)
        assert [g.kind for g in got] == ["education_plan"]
        assert not got[0].payload.get("support_needs") and got[0].payload["goal_name"] == "Tømrer"  # stripped
    assert process_inbox(ctx, "uu-viborg").acknowledged == 1  # the answer's receipt
    with ctx.store.session() as s:
        assert inquiries.received(s, "uu-viborg", pid).answer_acknowledged_at is not None
    with pytest.raises(ConfigError, match="allerede besvaret"):
        answer_inquiry(ctx, pid, by="Vejleder Hansen")


def test_without_consent_the_answer_is_no_basis_and_carries_nothing(demo) -> None:
    ctx = demo
    _plan(ctx)
    pid = _ask(ctx)
    done = answer_inquiry(ctx, pid, by="Vejleder Hansen")
    assert done.outcome == "no_basis" and done.records == 0 and "samtykke" in done.reason
    r = process_inbox(ctx, "779008")
    assert (r.imported, r.rejected) == (1, {})
    with ctx.store.session() as s:
        mine = inquiries.get(s, "779008", pid)
        assert mine.answer_outcome == "no_basis" and mine.answer_basis.startswith(NO_BASIS)
        assert imported.of_package(s, "779008", done.answer_id) == []


def test_an_inquiry_is_answered_only_to_its_sender_and_only_by_the_uu_asked(demo) -> None:
    ctx = demo
    pid = _ask(ctx)
    with pytest.raises(ConfigError, match="ingen modtaget"):
        answer_inquiry(ctx, pid, by="X", org="uu-thy")  # not the UU it was sent to
    with pytest.raises(ConfigError, match="ingen modtaget"):
        answer_inquiry(ctx, "PKG-" + "0" * 20, by="X")
    done = answer_inquiry(ctx, pid, by="X")
    assert done.to == "779008"  # the verified sender; there is no way to name another
    with pytest.raises(ConfigError, match="UU"):
        send_inquiry(ctx, "uu-viborg", "779008", parse_cpr(CPR), "?")  # an inquiry goes to a UU only
    # A crafted inquiry to a member that is no UU is refused there.
    _put(ctx, InquiryDocument(package_id=new_package_id(), sender="uu-viborg", recipient="jobcenter-viborg",
                              created=datetime.now(UTC).isoformat(), youth=_youth(CPR),
                              question="?"))
    assert list(process_inbox(ctx, "jobcenter-viborg").rejected.values()) == ["not_guidance"]


def test_an_answer_is_accepted_only_from_the_uu_asked_for_an_inquiry_we_sent(demo) -> None:
    ctx = demo
    pid = _ask(ctx)
    process_inbox(ctx, "779008")  # the inquiry's receipt
    _put(ctx, _answer(pid, sender="uu-thy"))                      # another UU answers
    _put(ctx, _answer("PKG-" + "1" * 20))                         # an inquiry we never sent
    _put(ctx, _answer(pid, cpr=OTHER))                            # about another youth
    r = process_inbox(ctx, "779008")
    assert sorted(r.rejected.values()) == ["answer_mismatch", "answer_mismatch", "answer_unknown"]
    assert r.imported == 0
    # Each refusal was answered to its signer; crafted outside uu-viborg's outbox, they are unknown there.
    back = process_inbox(ctx, "uu-viborg")
    assert sorted(back.rejected.values()) == ["receipt_unknown", "receipt_unknown"]
    # An answer to an inquiry another member sent, delivered to us, is unknown to us too.
    other = _ask(ctx, asker="751001")
    _put(ctx, _answer(other))
    assert list(process_inbox(ctx, "779008").rejected.values()) == ["answer_unknown"]
    process_inbox(ctx, "uu-viborg")  # the refusal's receipt
    # The UU's real answer is accepted once; a second answer to the same inquiry is refused.
    answer_inquiry(ctx, pid, by="X")
    assert process_inbox(ctx, "779008").imported == 1
    _put(ctx, _answer(pid))
    assert list(process_inbox(ctx, "779008").rejected.values()) == ["answer_mismatch"]
    with ctx.store.session() as s:
        assert inquiries.get(s, "779008", pid).answer_outcome == "no_basis"
