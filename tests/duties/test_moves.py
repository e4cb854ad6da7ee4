"""Youths who move (issue 18): the move's handover to the new UU, the old UU's duty until it is acknowledged,
moves outside the network, and the register row of a youth the network never saw."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from seeds import assert_quoted

from stafet import night
from stafet.context import open_context
from stafet.core.cpr import parse_cpr
from stafet.core.models import Enrolment, Provenance, Registration
from stafet.demo.network import member_home
from stafet.duties.moves import RULE, Move, due_items, moved_outside, targets, unacknowledged_moves
from stafet.duties.routing import default_rules, route
from stafet.exchange.inbox import process_inbox
from stafet.store import outbox

TODAY = date(2026, 11, 25)
CPR = "120310-4126"  # synthetic; 16 years old on TODAY


def _reg(muni: str, moved_in: date, moved_out: date | None = None, moved_to: str = "", cpr: str = CPR,
         row: int = 2) -> Registration:
    return Registration(cpr=parse_cpr(cpr), first_name="Sofie", last_name="Flytter", municipality=muni,
                        moved_in=moved_in, moved_out=moved_out, moved_to=moved_to, custody_holder=True,
                        provenance=Provenance("ungeregister", f"cpr_{muni}_unge_20261125.csv", row,
                                              datetime.now(UTC), municipality=muni))


def _enrolment(cpr: str = CPR) -> Enrolment:
    return Enrolment(cpr=parse_cpr(cpr), institution="779008", home_municipality="791", first_name="Sofie",
                     last_name="Flytter", event_date=date(2026, 8, 10), programme_code="1640",
                     programme_name="Tømrer", provenance=Provenance("easy-a", "e.csv", 2, datetime.now(UTC)))


@pytest.fixture
def demo(demo_relay):
    """The demo network on a fresh copy (tests/conftest.py's ``demo_relay``)."""
    path, _home, folder = demo_relay
    return path, folder


def test_the_seed_words_stand() -> None:
    assert_quoted("Elever, der bor uden for kommunen?")
    assert_quoted("Vi slipper ikke de unge, før en anden tager over")
    rule = next(r for r in default_rules() if r.id == RULE)
    assert rule.basis == "duty" and "Vi slipper ikke de unge, før en anden tager over" in rule.legal_basis
    assert "registration" in rule.kinds and "enrolment" in rule.history


def test_targets_read_moved_to_a_newer_registration_or_an_unknown_place() -> None:
    y = "Y1"
    regs = [(1, y, {"municipality": "791", "moved_in": "2020-01-01", "moved_out": "2026-03-01",
                    "moved_to": "779"}),
            (2, y, {"municipality": "779", "moved_in": "2026-03-01", "moved_out": None, "moved_to": ""}),
            (3, "Y2", {"municipality": "791", "moved_in": "2019-01-01", "moved_out": None, "moved_to": ""}),
            (4, "Y2", {"municipality": "787", "moved_in": "2026-05-02", "moved_out": None, "moved_to": ""}),
            (5, "Y3", {"municipality": "791", "moved_in": "2019-01-01", "moved_out": "2026-06-01",
                       "moved_to": ""}),
            (6, "Y4", {"municipality": "791", "moved_in": "2019-01-01", "moved_out": None, "moved_to": ""})]
    assert targets(regs) == {1: ("779", date(2026, 3, 1)),     # moved_to says it
                             3: ("787", date(2026, 5, 2)),     # a newer registration elsewhere says it
                             5: ("", date(2026, 6, 1))}        # moved out, to where nobody says


def test_a_move_on_the_day_of_the_extract_is_handed_over_and_the_old_uu_keeps_it_until_acknowledged(demo):
    path, folder = demo
    ctx = night.context(path)
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, [_reg("791", date(2015, 5, 1), TODAY, "779"), _enrolment()])
    with ctx.store.session() as s:
        assert [d for d in route(s, ctx.network, TODAY - timedelta(days=1)) if d.rule == RULE] == []
        moves = [d for d in route(s, ctx.network, TODAY) if d.rule == RULE]
    assert [(d.sender, d.recipient, d.status) for d in moves] == [("uu-viborg", "uu-skive", "send")]
    assert unacknowledged_moves(ctx, TODAY - timedelta(days=1)) == []  # not moved yet
    due = unacknowledged_moves(ctx, TODAY)
    assert [(d.rule, d.responsible, d.due) for d in due] == [(RULE, "uu-viborg", TODAY)]
    assert "ikke planlagt" in due[0].reference
    from stafet.exchange.outbox import plan_handovers, send_pending

    plan_handovers(ctx, moves)
    assert send_pending(ctx, recipients=["uu-skive"]).sent == 1
    assert "uu-skive: sent" in unacknowledged_moves(ctx, TODAY, "uu-viborg")[0].reference
    skive = open_context(path, home=member_home(folder, "uu-skive"))
    r = process_inbox(skive, "uu-skive")
    assert (r.imported, r.receipts_sent, r.rejected) == (1, 1, {})
    from stafet.store import imported

    with skive.store.session() as s:
        got = imported.live(s, "uu-skive", ["registration"])
        assert [g[1] for g in got] == ["registration"] and got[0][3]["moved_to"] == "779"
    assert unacknowledged_moves(ctx, TODAY, "uu-viborg") != []  # the receipt is not back yet
    assert process_inbox(ctx, "uu-viborg").acknowledged == 1
    assert unacknowledged_moves(ctx, TODAY) == []
    with ctx.store.session() as s:
        assert [h.status for h in outbox.of_rule(s, RULE)] == ["acknowledged"]


def test_moving_twice_goes_to_the_last_uu_and_ends_the_middle_duty_on_its_receipt(demo):
    """A→B→C (Thy → Viborg → Skive, one node holding both registers): Viborg's move goes to Skive;
    Viborg's duty ends when Skive acknowledges."""
    path, folder = demo
    ctx = night.context(path)
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, [_reg("787", date(2012, 1, 1), date(2026, 2, 1), "791"),
                                     _reg("791", date(2026, 2, 1), date(2026, 10, 1), "779", row=3)])
    with ctx.store.session() as s:
        moves = [d for d in route(s, ctx.network, TODAY) if d.rule == RULE]
    assert sorted((d.sender, d.recipient) for d in moves) == [("uu-thy", "uu-viborg"),
                                                              ("uu-viborg", "uu-skive")]
    assert {d.responsible for d in unacknowledged_moves(ctx, TODAY)} == {"uu-thy", "uu-viborg"}
    from stafet.exchange.outbox import plan_handovers, send_pending

    plan_handovers(ctx, moves)
    assert send_pending(ctx, recipients=["uu-skive"]).sent == 1
    skive = open_context(path, home=member_home(folder, "uu-skive"))
    assert process_inbox(skive, "uu-skive").imported == 1  # C's UU gets it
    assert process_inbox(ctx, "uu-viborg").acknowledged == 1
    left = unacknowledged_moves(ctx, TODAY)
    assert [(d.responsible, d.due) for d in left] == [("uu-thy", date(2026, 2, 1))]  # B's duty has ended
    assert unacknowledged_moves(ctx, TODAY, "uu-viborg") == []


def test_a_move_outside_the_network_is_held_and_listed_for_the_coordinator(demo):
    path, _ = demo
    ctx = night.context(path)
    other = "070711-4121"  # synthetic
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, [_reg("791", date(2015, 5, 1), date(2026, 9, 1), "101"),  # København
                                     _reg("791", date(2015, 5, 1), date(2026, 10, 1), "", cpr=other, row=3)])
    with ctx.store.session() as s:
        moves = [d for d in route(s, ctx.network, TODAY) if d.rule == RULE]
    assert [(d.status, d.reason) for d in moves] == [("held", "modtager findes ikke i netværket")]
    assert unacknowledged_moves(ctx, TODAY) == []  # nobody in the network can acknowledge it
    listed = moved_outside(ctx, TODAY)
    assert [(m.old_uu, m.to_municipality, m.day, m.masked_cpr) for m in listed] == [
        ("uu-viborg", "101", date(2026, 9, 1), "120310-xxxx"),
        ("uu-viborg", "", date(2026, 10, 1), "070711-xxxx")]
    assert moved_outside(ctx, TODAY, "uu-skive") == []


def test_a_register_row_for_a_youth_the_network_never_saw_moves_with_no_history(demo):
    path, _ = demo
    ctx = night.context(path)
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, [_reg("779", date(2020, 1, 1), date(2026, 11, 1), "791")])
    with ctx.store.session() as s:
        moves = [d for d in route(s, ctx.network, TODAY) if d.rule == RULE]
    assert [(d.sender, d.recipient, len(d.record_ids)) for d in moves] == [("uu-skive", "uu-viborg", 1)]
    from stafet.exchange.outbox import handover_document, plan_handovers

    plan_handovers(ctx, moves)
    with ctx.store.session() as s:
        h = outbox.of_rule(s, RULE)[0]
    doc = handover_document(ctx, h, TODAY)
    assert [r.kind for r in doc.records] == ["registration"] and doc.history == ()


def test_due_items_are_in_the_duty_clock_field_order() -> None:
    class H:
        def __init__(self, status: str) -> None:
            self.id, self.sender, self.recipient = "PKG-1", "a", "b"
            self.record_ids, self.status = [7], status

    m = Move("Y", 7, "791", "779", TODAY, "a", "b")
    [d] = due_items([m], [H("sent")])
    assert d._fields == ("rule", "youth", "responsible", "due", "reference")
    assert (d.rule, d.responsible, d.due) == (RULE, "a", TODAY)
    assert due_items([m], [H("acknowledged")]) == []
