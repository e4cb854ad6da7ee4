"""The network's statistics: suppression as pure functions, then the figures on a real store.

The store is filled through the store API with synthetic CPRs (``_cpr``); every output
(HTML, CSV, JSON, the Prefect markdown) is searched for ten-digit numbers, the CPRs used
and the youths' pseudonyms.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from seeds import assert_quoted
from sqlalchemy import select, update

import mappings
from stafet.context import Context
from stafet.core.config import Network
from stafet.core.cpr import parse_cpr
from stafet.core.errors import ConfigError
from stafet.core.models import (
    Completion,
    ConcernFlag,
    Dropout,
    EducationPlan,
    Enrolment,
    Organisation,
    OrgKind,
    Provenance,
    Registration,
    TransitionCase,
)
from stafet.core.vault import Vault
from stafet.duties.deadlines import CaseFact, SchoolFact, YouthFacts
from stafet.reports import statistics as stats_mod
from stafet.reports.statistics import (
    COMPLEMENTARY,
    PRIMARY,
    REPORTING_QUOTE,
    TARGETS,
    Period,
    compute_statistics,
    count_table,
    duty_outcomes,
    linked,
    suppress,
    to_csv,
    to_document,
    to_markdown,
    write_outputs,
)
from stafet.store import Store
from stafet.store import statistics as q
from stafet.store.schema import Handover, RecordRow

CPR_SHAPE = re.compile(r"(?<!\d)\d{6}[- ]?\d{4}(?!\d)")
TODAY = date(2026, 7, 1)
PERIOD = Period.parse("2026-01", "2026-06")
HIDDEN = (PRIMARY, COMPLEMENTARY)


# --------------------------------------------------------------------------- seeds
@pytest.mark.parametrize("quote", [REPORTING_QUOTE, *(t.quote for t in TARGETS)])
def test_each_quote_is_in_a_seed_document(quote: str) -> None:
    assert_quoted(quote)


def test_the_targets_are_90_and_95_percent() -> None:
    assert [t.share for t in TARGETS] == [0.90, 0.95]
    assert "90 %" in TARGETS[0].quote and "95 %" in TARGETS[1].quote


# --------------------------------------------------------------------------- suppression (pure)
def test_4_is_suppressed_and_5_is_not() -> None:
    assert suppress([[4]], row_totals=False, col_totals=False)[1] == [[PRIMARY]]
    assert suppress([[5]], row_totals=False, col_totals=False)[1] == [[""]]
    assert suppress([[1]], row_totals=False, col_totals=False)[1] == [[PRIMARY]]


def test_0_is_shown() -> None:
    grid, marks = suppress([[0, 0], [0, 7]])
    assert marks == [["", "", ""], ["", "", ""], ["", "", ""]]
    assert grid == [[0, 0, 0], [0, 7, 7], [0, 7, 7]]


def test_without_totals_nothing_else_is_hidden() -> None:
    assert suppress([[3, 10, 7]], row_totals=False, col_totals=False)[1] == [[PRIMARY, "", ""]]


def test_a_shown_row_total_hides_the_next_smallest_cell_too() -> None:
    grid, marks = suppress([[3, 10, 7]], col_totals=False)
    assert grid == [[3, 10, 7, 20]]
    assert marks == [[PRIMARY, "", COMPLEMENTARY, ""]]  # 7, not 10: the next smallest


def test_a_small_total_is_suppressed_like_any_count() -> None:
    assert suppress([[1, 2]], col_totals=False)[1] == [[PRIMARY, PRIMARY, PRIMARY]]


def test_rows_and_columns_both_get_their_complementary_cells() -> None:
    grid, marks = suppress([[3, 10], [6, 8]])
    assert grid[2] == [9, 18, 27]
    assert marks == [[PRIMARY, COMPLEMENTARY, ""], [COMPLEMENTARY, COMPLEMENTARY, ""], ["", "", ""]]


def test_beside_zeros_the_total_is_hidden_never_a_zero() -> None:
    # 779008: 6 in March; 751001: 2 in March. Hiding a 0 beside Mercantec's 6 would be undone by
    # January's total of 0; the row's total goes instead.
    grid, marks = suppress([[0, 0, 6], [0, 0, 2]])
    assert marks == [["", "", COMPLEMENTARY, COMPLEMENTARY], ["", "", PRIMARY, PRIMARY], ["", "", "", ""]]
    assert all(grid[i][j] > 0 for i, r in enumerate(marks) for j, m in enumerate(r) if m)


def test_an_empty_table_has_a_total_row_of_zeros() -> None:
    t = count_table("k", "T", ("Enhed",), [], ("2026-01", "2026-02"), [])
    assert t.cells() == [["I alt", 0, 0, 0]]


def _lines(grid: list[list[int]]) -> list[tuple[list[tuple[int, int]], tuple[int, int]]]:
    """Rows and columns of a grid with both totals: (interior cells, total cell)."""
    n, m = len(grid) - 1, len(grid[0]) - 1
    return ([([(i, j) for j in range(m)], (i, m)) for i in range(n + 1)]
            + [([(i, j) for i in range(n)], (n, j)) for j in range(m + 1)])


def _feasible(grid: list[list[int]], marks: list[list[str]]) -> dict[tuple[int, int], set[int]]:
    """Every value each hidden cell can take, given all that is published.

    Brute force over the hidden interior cells (``<5``: 1–4, ``x``: 5 or more); the totals
    follow from them: a shown total must come out, a hidden one must fit its mark.
    """
    n, m = len(grid) - 1, len(grid[0]) - 1
    hidden = [(i, j) for i in range(n) for j in range(m) if marks[i][j]]
    top = grid[n][m] if not marks[n][m] else sum(grid[i][j] for i in range(n) for j in range(m)) + 10
    ranges = [range(1, 5) if marks[i][j] == PRIMARY else range(5, top + 1) for i, j in hidden]
    seen: dict[tuple[int, int], set[int]] = {}
    for values in itertools.product(*ranges):
        g = [row[:m] for row in grid[:n]]
        for (i, j), v in zip(hidden, values, strict=True):
            g[i][j] = v
        full = [[*r, sum(r)] for r in g]
        full.append([sum(r[j] for r in full) for j in range(m + 1)])
        ok = all(full[i][j] == grid[i][j] if not marks[i][j] else
                 (1 <= full[i][j] <= 4 if marks[i][j] == PRIMARY else full[i][j] >= 5)
                 for i in range(n + 1) for j in range(m + 1))
        if ok:
            for i in range(n + 1):
                for j in range(m + 1):
                    if marks[i][j]:
                        seen.setdefault((i, j), set()).add(full[i][j])
    return seen


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.integers(0, 9), min_size=2, max_size=2), min_size=2, max_size=2))
def test_no_small_count_can_be_recovered_from_the_published_table(values: list[list[int]]) -> None:
    grid, marks = suppress(values)
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            assert (marks[i][j] == PRIMARY) == (1 <= v <= 4)  # every small count, and only those, is <5
            assert not marks[i][j] or v > 0  # a 0 is never hidden
    for interior, (ti, tj) in _lines(grid):
        if not marks[ti][tj]:  # a shown total never sits beside exactly one hidden cell
            assert sum(1 for i, j in interior if marks[i][j]) != 1
    everything_hidden = all(marks[i][j] or v == 0 for i, r in enumerate(grid) for j, v in enumerate(r))
    if any(m == PRIMARY for r in marks for m in r) and not everything_hidden:
        feasible = _feasible(grid, marks)
        for (i, j), options in feasible.items():
            if marks[i][j] == PRIMARY:
                assert len(options) >= 2, (values, marks, (i, j), options)


def test_a_table_of_only_small_counts_is_hidden_whole() -> None:
    # nothing can protect four 1s adding up to 4 but hiding everything, which is what happens
    assert suppress([[1, 1], [1, 1]])[1] == [[PRIMARY] * 3] * 3


def test_cells_combined_across_lines_do_not_give_a_count_away() -> None:
    # per line each hidden cell has room; together a + b + c = 7 with a, c < 5 and b >= 5 would
    # pin a = c = 1, b = 5 — so the grand total goes too
    grid, marks = suppress([[0, 1], [1, 5]])
    assert marks[2][2] == COMPLEMENTARY
    assert stats_mod.pinned_cell(grid, marks, stats_mod._lines(2, 2, True, True)) is None


def test_the_feasibility_check_would_catch_a_table_that_gives_a_count_away() -> None:
    grid = [[3, 10, 13], [6, 8, 14], [9, 18, 27]]
    leaky = [[PRIMARY, COMPLEMENTARY, ""], ["", "", ""], ["", "", ""]]  # column 0 gives 3 away
    assert _feasible(grid, leaky)[(0, 0)] == {3}
    assert len(_feasible(grid, suppress([[3, 10], [6, 8]])[1])[(0, 0)]) >= 2


def test_linked_tables_hide_the_same_cells_of_their_common_total_row() -> None:
    # the same 14 events by two units: A hides both monthly totals, so B, alone showing 7 and 7,
    # would give A's hidden cells away
    def build(hide: frozenset[int]) -> list:
        return [count_table("a", "A", ("u",), [("p",), ("q",)], ("jan", "feb"), [[0, 5], [7, 2]],
                            hide_total_row=hide),
                count_table("b", "B", ("u",), [("r",)], ("jan", "feb"), [[7, 7]], hide_total_row=hide)]

    alone = build(frozenset())
    assert alone[0].rows[-1][1] == (COMPLEMENTARY, COMPLEMENTARY, 14) and alone[1].rows[-1][1] == (7, 7, 14)
    a, b = linked(build)
    assert a.rows[-1][1] == b.rows[-1][1] == (COMPLEMENTARY, COMPLEMENTARY, 14)
    assert b.rows[0][1] == (COMPLEMENTARY, COMPLEMENTARY, 14)


# --------------------------------------------------------------------------- the period
def test_the_period_is_checked_and_listed() -> None:
    assert PERIOD.months() == [f"2026-0{m}" for m in range(1, 7)]
    assert PERIOD.end == date(2026, 6, 30)
    assert Period.months_before(date(2026, 12, 1)) == Period(date(2025, 12, 1), date(2026, 11, 1))
    assert Period.months_before(date(2026, 1, 1), 1) == Period(date(2025, 12, 1), date(2025, 12, 1))
    with pytest.raises(ConfigError):
        Period.parse("2026-13", "2026-12")
    with pytest.raises(ConfigError):
        Period.parse("2026-06", "2026-01")


# --------------------------------------------------------------------------- duties (pure)
UU = {"791": "uu-viborg"}.get


def test_a_duty_met_on_the_due_day_is_on_time_the_day_after_late() -> None:
    drop = SchoolFact("dropout", date(2026, 3, 2), "779008", "791")  # a Monday: contact due Mon 9 March
    facts = [YouthFacts(f"Y{n}", date(2010, 1, 1), events=[drop], contacts=set(c), agreements=set(a))
             for n, (c, a) in enumerate([
                 ([date(2026, 3, 9)], [date(2026, 4, 1)]),     # both on their due day
                 ([date(2026, 3, 10)], [date(2026, 4, 2)]),    # a day late each
                 ([date(2026, 2, 27)], []),                    # a contact before the dropout is no evidence
                 ([date(2026, 7, 5)], []),                     # evidence after the as-of day counts not
             ])]
    got = {(d.rule, int(d.evidence is not None and d.evidence.day), d.outcome)
           for d in duty_outcomes(facts, _network(), TODAY)
           if d.rule in ("dropout_contact", "dropout_agreement")}
    assert ("dropout_contact", 9, "on_time") in got and ("dropout_agreement", 1, "on_time") in got
    assert ("dropout_contact", 10, "late") in got and ("dropout_agreement", 2, "late") in got
    outcomes = [d.outcome for d in duty_outcomes(facts, _network(), TODAY) if d.rule == "dropout_contact"]
    assert outcomes == ["on_time", "late", "open", "open"]
    assert {d.due for d in duty_outcomes(facts, _network(), TODAY) if d.rule == "dropout_contact"} == {
        date(2026, 3, 9)}


def test_a_re_enrolment_lapses_the_duty_and_an_adult_has_none() -> None:
    drop = SchoolFact("dropout", date(2026, 3, 2), "779008", "791")
    back = SchoolFact("enrolment", date(2026, 3, 4), "779008", "791")
    assert duty_outcomes([YouthFacts("Y", date(2010, 1, 1), events=[drop, back])], _network(), TODAY) == []
    adult = duty_outcomes([YouthFacts("Y", date(2000, 1, 1), events=[drop])], _network(), TODAY)
    assert [d.rule for d in adult if d.rule.startswith(("dropout_contact", "dropout_agreement"))] == []


def test_a_transition_meeting_after_the_17th_birthday_is_late() -> None:
    case = CaseFact("F-1", date(2026, 2, 10), False, True, "socialafdeling", "791")
    early = CaseFact("F-2", date(2026, 1, 15), False, True, "socialafdeling", "791")
    none = CaseFact("F-3", None, False, True, "socialafdeling", "791")
    out = duty_outcomes([YouthFacts("Y", date(2009, 1, 15), cases=[case, early, none])], _network(), TODAY)
    assert {(d.rule, d.due) for d in out} == {("transition_meeting", date(2026, 1, 15))}
    assert [d.outcome for d in out] == ["late", "on_time", "open"]


def test_every_duty_kind_on_the_clock_is_counted() -> None:
    from stafet.duties.deadlines import RULES

    assert set(stats_mod.DUTY_RULES) == set(RULES)
    assert len(set(stats_mod.DUTY_RULES.values())) == len(RULES)  # one Danish name each


def _rules_of(out: list) -> list[tuple[str, date, str]]:
    return sorted((d.rule, d.due, d.outcome) for d in out)


def test_the_18_24_first_contact_and_the_concern_clocks_on_time_late_open() -> None:
    from stafet.duties.deadlines import FlagFact

    drop = SchoolFact("dropout", date(2026, 3, 2), "779008", "791")   # 21: first contact due 16 March
    adults = [YouthFacts(f"A{n}", date(2005, 1, 1), events=[drop], contacts=set(c))
              for n, c in enumerate([[date(2026, 3, 16)], [date(2026, 3, 17)], []])]
    got = [d.outcome for d in duty_outcomes(adults, _network(), TODAY) if d.rule == "dropout_first_contact"]
    assert got == ["on_time", "late", "open"]
    flag = FlagFact(date(2026, 3, 2), "779008", "791")                  # contact due 5 March (3 working days)
    late = {(date(2026, 3, 6), "uu-viborg", "school_counsellor")}
    youth_contact = {(date(2026, 3, 3), "uu-viborg", "youth")}          # not the school's counsellor
    flagged = [YouthFacts("F1", date(2010, 1, 1), flags=[flag], registered=late),
               YouthFacts("F2", date(2010, 1, 1), flags=[flag], registered=youth_contact)]
    out = [d for d in duty_outcomes(flagged, _network(), TODAY) if d.rule == "concern_contact"]
    assert [(d.due, d.outcome) for d in out] == [(date(2026, 3, 5), "late"), (date(2026, 3, 5), "open")]
    # over the absence threshold at school, no flag sent: the same clock from the figure's day
    absent = FlagFact(date(2026, 3, 2), "779008", "791", absence_pct=25.0)
    enrolled = SchoolFact("enrolment", date(2026, 3, 2), "779008", "791")
    on_time = {(date(2026, 3, 5), "uu-viborg", "school_counsellor")}
    out = duty_outcomes([YouthFacts("B", date(2010, 1, 1), events=[enrolled], absences=[absent],
                                    registered=on_time)], _network(), TODAY)
    assert _rules_of(out) == [("absence_concern", date(2026, 3, 5), "on_time")]


def test_an_education_order_counts_its_start_and_first_interview_even_after_it_ended() -> None:
    from stafet.duties.deadlines import OrderFact

    net = _network()
    jc = _org("jobcenter-viborg", OrgKind.JOB_CENTRE, "Jobcenter Viborg", "791")
    net = Network(net.name, net.path, {**net.members, jc.id: jc}, (), (), (), ack_limit_hours=48)
    active = OrderFact("UP-1", "AKTIV", date(2026, 3, 2), date(2026, 4, 1), "791")
    ended = OrderFact("UP-1", "OPHOERT_UDDANNELSESSTART", date(2026, 4, 10), date(2026, 4, 1), "791")
    started = SchoolFact("enrolment", date(2026, 4, 10), "779008", "791")  # after the frist: late
    f = YouthFacts("O", date(2004, 1, 1), events=[started], order_facts=[active, ended],
                   interviews={date(2026, 3, 6)})                       # within 7 days: on time
    assert _rules_of(duty_outcomes([f], net, TODAY)) == [("first_interview", date(2026, 3, 9), "on_time"),
                                                          ("order_start", date(2026, 4, 1), "late")]
    assert _rules_of(duty_outcomes([f], _network(), TODAY)) == []       # no job centre in the network


def test_the_18_24_follow_up_counts_its_first_year() -> None:
    drop = SchoolFact("dropout", date(2025, 3, 3), "779008", "791")     # 20: two follow-ups by 3 March 2026
    twice = YouthFacts("T", date(2005, 1, 1), events=[drop], contacts={date(2025, 6, 1), date(2026, 2, 1)})
    once = YouthFacts("O", date(2005, 1, 1), events=[drop], contacts={date(2025, 6, 1)})
    late = YouthFacts("L", date(2005, 1, 1), events=[drop], contacts={date(2025, 6, 1), date(2026, 5, 1)})
    out = [d for d in duty_outcomes([twice, once, late], _network(), TODAY) if d.rule == "followup_18_24"]
    assert [(d.due, d.outcome) for d in out] == [(date(2026, 3, 3), "on_time"), (date(2026, 3, 3), "open"),
                                                 (date(2026, 3, 3), "late")]


def test_the_grundskole_transition_and_a_move_are_counted() -> None:
    from stafet.duties.moves import Move
    from stafet.duties.youth_register import PupilFact, RegisterFacts, Residence

    pupil = PupilFact("280012", "791", date(2025, 11, 24), date(2026, 6, 25))  # duty from 25 December 2025
    home = [Residence("791", date(2011, 3, 15))]
    late = RegisterFacts("P1", date(2011, 3, 15), residences=home, pupils=[pupil],
                         contacts={date(2026, 1, 5)})
    lapsed = RegisterFacts("P2", date(2011, 3, 15), residences=home, pupils=[pupil],
                           events=[(date(2026, 1, 5), "enrolment")])
    out = stats_mod.register_outcomes([late, lapsed], _network(), TODAY)
    assert [(d.rule, d.due, d.outcome, d.municipality) for d in out] == [
        ("grundskole_transition", date(2025, 12, 25), "late", "791")]

    class H:  # an outbox row as move_outcomes reads it
        def __init__(self, rid: int, at: datetime | None) -> None:
            self.record_ids, self.sender, self.recipient = [rid], "uu-viborg", "uu-skive"
            self.acknowledged_at = at

    moved = [Move("M1", 1, "791", "779", date(2026, 3, 2), "uu-viborg", "uu-skive"),
             Move("M2", 2, "791", "779", date(2026, 3, 2), "uu-viborg", "uu-skive"),
             Move("M3", 3, "791", "", date(2026, 3, 2), "uu-viborg", None)]   # abroad: the coordinator's list
    out = stats_mod.move_outcomes(moved, [H(1, datetime(2026, 3, 1, 23, 30)), H(2, None)])
    assert [(d.rule, d.outcome, d.municipality) for d in out] == [("move_handover", "on_time", "791"),
                                                                  ("move_handover", "open", "791")]


# --------------------------------------------------------------------------- the store
def _org(oid: str, kind: OrgKind, name: str, muni: str, serves: tuple[str, ...] = ()) -> Organisation:
    return Organisation(oid, kind, name, muni, f"folder:inbox/{oid}", f"{oid}@example.dk", serves=serves)


def _network(path: Path = Path("network.yaml")) -> Network:
    members = [_org("uu-viborg", OrgKind.GUIDANCE, "UU Viborg", "791", ("791",)),
               _org("uu-skive", OrgKind.GUIDANCE, "UU Skive", "779", ("779",)),
               _org("779008", OrgKind.INSTITUTION, "Mercantec", "791"),
               _org("751001", OrgKind.INSTITUTION, "Viborg Katedralskole", "791"),
               _org("familie-viborg", OrgKind.FAMILY_SERVICES, "Familieafdelingen Viborg", "791")]
    return Network("statistik-test", path, {o.id: o for o in members}, (), (), (), ack_limit_hours=48)


_SERIAL = itertools.count(1)


def _cpr(born: date) -> str:
    """A fresh synthetic CPR for a youth born on ``born`` (serial digit 4: 2000–2036)."""
    return f"{born:%d%m%y}4{next(_SERIAL) % 1000:03d}"


def _prov(file: str, received: datetime) -> Provenance:
    return Provenance("t", file, 1, received, *mappings.origin(file))


def _event(cls: type, cpr: str, inst: str, muni: str, day: date, received: datetime | None = None,
           **kw: object) -> object:
    received = received or datetime(day.year, day.month, day.day, 23, tzinfo=UTC)
    prov = _prov(f"{inst}_haendelser_{received:%Y%m%d%H}.csv", received)
    return cls(cpr=parse_cpr(cpr), institution=inst, home_municipality=muni, event_date=day,
               programme_code="1199", provenance=prov, **kw)


def _plan(cpr: str, contacts: list[date], agreement: date | None) -> EducationPlan:
    return EducationPlan(cpr=parse_cpr(cpr), plan_id=f"UP-{cpr[-4:]}", updated=date(2026, 6, 1),
                         goal_code="5180", contacts=tuple((c.isoformat(), "samtale") for c in contacts),
                         agreement_date=agreement,
                         provenance=_prov("uu_791_planer_20260601.xml", datetime(2026, 6, 1, 5, tzinfo=UTC)))


@pytest.fixture
def filled(tmp_path: Path) -> tuple[Context, list[str]]:
    """A store with a half year of synthetic events; the CPRs used are returned to search for."""
    vault = Vault(secrets.token_bytes(32))
    store = Store(f"sqlite:///{tmp_path / 'stafet.db'}", vault)
    ctx = Context(home=tmp_path, vault=vault, store=store, network=_network(tmp_path / "network.yaml"),
                  keys=None)  # type: ignore[arg-type]
    cprs: list[str] = []

    def youth(born: date) -> str:
        cprs.append(_cpr(born))
        return cprs[-1]

    recs: list[object] = []
    march = date(2026, 3, 10)
    recs += [_event(Enrolment, youth(date(2009, 5, 1)), "779008", "791", march) for _ in range(6)]
    recs += [_event(Enrolment, youth(date(2009, 5, 2)), "751001", "779", march) for _ in range(2)]
    recs += [_event(Enrolment, youth(date(2009, 5, 3)), "779008", "791", date(2025, 12, 1))]  # before
    withdrawn = youth(date(2009, 5, 4))
    recs.append(_event(Enrolment, withdrawn, "779008", "791", date(2026, 1, 5)))
    may = date(2026, 5, 20)
    recs += [_event(Completion, youth(date(2006, 4, 1)), "751001", "779", may) for _ in range(5)]
    recs += [_event(ConcernFlag, youth(date(2009, 6, 1)), "779008", "791", date(2026, 2, 3), absence_pct=22.0)
             for _ in range(4)]
    # five 16-year-olds drop out on Monday 2 March (contact due 9 March, agreement 1 April)
    drop = date(2026, 3, 2)
    lags = [1, 2, 2, 3, 10]
    evidence = [([date(2026, 3, 5)], date(2026, 3, 20)), ([date(2026, 3, 9)], date(2026, 4, 2)),
                ([date(2026, 3, 10)], None), ([], None), ([], None)]
    for lag, (contacts, agreement) in zip(lags, evidence, strict=True):
        c = youth(date(2009, 8, 1))
        recs.append(_event(Dropout, c, "779008", "791", drop, datetime(2026, 3, 2 + lag, 5, tzinfo=UTC),
                           reason_code="03"))
        recs.append(_plan(c, contacts, agreement))
    recs.append(_event(Dropout, youth(date(2009, 8, 2)), "751001", "779", date(2026, 7, 15),
                       reason_code="02"))
    # a transition case of a youth who turned 17 on 15 January; the meeting came in February
    recs.append(TransitionCase(cpr=parse_cpr(youth(date(2009, 1, 15))), case_no="F-1",
                               meeting_date=date(2026, 2, 10), aftercare_sel76=False, support_sel85=True,
                               receiver="socialafdeling",
                               provenance=_prov("familie_791_overgange_20260201.csv",
                                                datetime(2026, 2, 1, 5, tzinfo=UTC))))
    # cohort 2000 (25 in 2025: final): 5 in education; cohort 2001 (not all 25 yet): 6 completed, 1 not
    june20 = date(2020, 6, 20)
    recs += [_event(Enrolment, youth(date(2000, 3, 1)), "779008", "791", date(2019, 8, 10)) for _ in range(5)]
    recs += [_event(Completion, youth(date(2001, 2, 1)), "779008", "791", june20) for _ in range(6)]
    recs.append(_event(Dropout, youth(date(2001, 2, 2)), "779008", "791", june20, reason_code="99"))
    # a 16-year-old registered in Viborg with nothing known of her: on UU Viborg's opsporing list
    recs.append(Registration(cpr=parse_cpr(youth(date(2010, 2, 1))), municipality="791",
                             moved_in=date(2010, 2, 1), custody_holder=True,
                             provenance=_prov("cpr_791_unge_20260101.csv",
                                              datetime(2026, 1, 1, 5, tzinfo=UTC))))
    with store.session() as s:
        store.upsert_records(s, recs)  # type: ignore[arg-type]
    with store.session() as s:
        pseud = vault.pseudonym(parse_cpr(withdrawn).digits)
        s.execute(update(RecordRow).where(RecordRow.youth == pseud).values(withdrawn=True))
        s.add(Handover(id="PKG-1", handover_key="k1", sender="779008", recipient="uu-viborg",
                       youth=vault.pseudonym(parse_cpr(cprs[0]).digits), status="acknowledged",
                       created_at=datetime(2026, 3, 3, 8), sent_at=datetime(2026, 3, 3, 8),
                       acknowledged_at=datetime(2026, 3, 4, 9)))
        s.add(Handover(id="PKG-2", handover_key="k2", sender="779008", recipient="uu-viborg",
                       youth=vault.pseudonym(parse_cpr(cprs[1]).digits), status="sent",
                       created_at=datetime(2026, 3, 3, 8), sent_at=datetime(2026, 3, 3, 8)))
    return ctx, cprs


def _row(table: object, *labels: str) -> tuple:
    for lab, vals in table.rows:  # type: ignore[attr-defined]
        if lab == labels:
            return vals
    raise AssertionError(f"no row {labels}: {[lab for lab, _ in table.rows]}")  # type: ignore[attr-defined]


MERC, KAT = "Mercantec (779008)", "Viborg Katedralskole (751001)"
VIB, SKI = "791 (UU Viborg)", "779 (UU Skive)"


def test_monthly_counts_with_small_ones_suppressed(filled: tuple[Context, list[str]]) -> None:
    ctx, _ = filled
    s = compute_statistics(ctx, PERIOD, today=TODAY)
    t = s.table("enrolments_by_institution")
    assert t.header == ["Institution", *PERIOD.months(), "I alt"]
    # March: Mercantec 6, Katedralskolen 2; the withdrawn January enrolment and December's do not count
    assert _row(t, KAT) == (0, 0, PRIMARY, 0, 0, 0, PRIMARY)
    assert _row(t, MERC) == (0, 0, COMPLEMENTARY, 0, 0, 0, COMPLEMENTARY)
    assert _row(t, "I alt") == (0, 0, 8, 0, 0, 0, 8)
    assert _row(s.table("enrolments_by_municipality"), SKI) == (0, 0, PRIMARY, 0, 0, 0, PRIMARY)
    # 5 completions are shown, 4 concern flags are not
    c = s.table("completions_by_institution")
    assert _row(c, KAT) == (0, 0, 0, 0, 5, 0, 5) and _row(c, "I alt") == (0, 0, 0, 0, 5, 0, 5)
    assert _row(s.table("concern_flags_by_institution"), MERC) == (0, PRIMARY, 0, 0, 0, 0, PRIMARY)
    assert _row(s.table("transitions_by_municipality"), VIB)[1] == PRIMARY  # the meeting's month


def test_dropouts_by_reason_and_the_report_lag(filled: tuple[Context, list[str]]) -> None:
    ctx, _ = filled
    s = compute_statistics(ctx, PERIOD, today=TODAY)
    d = s.table("dropouts_by_institution")
    assert d.header[:4] == ["Institution", "Måned", "01 personlige forhold", "02 helbred"]
    assert _row(d, MERC, "2026-03") == (0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 5)  # July's is not in the period
    assert [lab for lab, _ in d.rows] == [(MERC, "2026-03"), ("I alt", "")]
    assert _row(s.table("report_lag_by_institution"), MERC, "2026-03") == (2, 10)  # 1, 2, 2, 3, 10 days


def test_the_lag_of_fewer_than_5_dropouts_is_hidden() -> None:
    def drop(n: int, lag: int) -> q.SchoolEventRow:
        return q.SchoolEventRow("dropout", f"Y{n}", date(2026, 3, 2), "779008", "791", "03",
                                datetime(2026, 3, 2 + lag, 5))

    names = stats_mod._Names(_network())
    for n, expected in ((4, (COMPLEMENTARY, COMPLEMENTARY)), (5, (3, 5)), (6, (3.5, 6))):
        made = stats_mod._dropout_tables([drop(k, k + 1) for k in range(n)], PERIOD, names)
        tables = {t.key: t for t in made}
        assert _row(tables["report_lag_by_municipality"], VIB, "2026-03") == expected


def test_duties_on_time_late_and_open(filled: tuple[Context, list[str]]) -> None:
    ctx, _ = filled
    s = compute_statistics(ctx, PERIOD, today=TODAY)
    t = s.table("duties_by_municipality")
    assert t.columns == ("Rettidigt", "For sent", "Åben", "I alt")
    contact = _row(t, VIB, "2026-03", stats_mod.DUTY_RULES["dropout_contact"])
    assert contact[:3] == (PRIMARY, PRIMARY, PRIMARY)  # 2 on time, 1 late, 2 open
    assert _row(t, VIB, "2026-01", stats_mod.DUTY_RULES["transition_meeting"])[:3] == (0, PRIMARY, 0)
    ack = _row(s.table("duties_by_institution"), MERC, "2026-03", stats_mod.DUTY_RULES["handover_ack"])
    assert ack[:3] == (PRIMARY, 0, PRIMARY)  # one receipt in time, one still missing
    # what the cells hide, counted before suppression
    with ctx.store.session() as ss:
        facts = stats_mod.load_facts(ss)
    got = Counter((d.rule, d.outcome) for d in duty_outcomes(facts.values(), ctx.network, TODAY)
                  if d.due < date(2026, 7, 1))  # July's dropout falls due after the period
    assert [got["dropout_contact", o] for o in ("on_time", "late", "open")] == [2, 1, 2]
    assert [got["dropout_agreement", o] for o in ("on_time", "late", "open")] == [1, 1, 3]
    assert got["transition_meeting", "late"] == 1


def test_cohorts_against_the_targets(filled: tuple[Context, list[str]]) -> None:
    ctx, _ = filled
    t = compute_statistics(ctx, PERIOD, today=TODAY).table("cohorts_by_municipality")
    assert t.columns == ("I uddannelse eller gennemført", "Ikke i uddannelse", "I alt", "Andel %",
                         "Mål 90 %", "Mål 95 %", "Status")
    assert _row(t, VIB, "2000") == (5, 0, 5, 100.0, "ja", "ja", "endelig")
    # 6 of 7: the 1 is <5, and the 6 is hidden with it, so the share is too
    assert _row(t, VIB, "2001") == (COMPLEMENTARY, PRIMARY, 7, COMPLEMENTARY, COMPLEMENTARY, COMPLEMENTARY,
                                    "foreløbig")


def test_the_opsporing_list_is_marked_when_it_does_not_exist(filled: tuple[Context, list[str]],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, _ = filled
    monkeypatch.setattr(stats_mod, "_register_rules", lambda: None)
    s = compute_statistics(ctx, PERIOD, today=TODAY)
    doc = to_document(s)
    assert doc["opsporing"] == {"available": False, "note": stats_mod.OPSPORING_UNAVAILABLE}
    assert doc["tables"]["opsporing_by_municipality"]["rows"] == [["alle", stats_mod.OPSPORING_UNAVAILABLE]]
    assert "ikke tilgængelig" in stats_mod.render_html(s)


def test_the_opsporing_list_is_counted_when_it_exists(filled: tuple[Context, list[str]]) -> None:
    ctx, _ = filled
    if stats_mod._register_rules() is None:
        pytest.fail("stafet.duties.youth_register (the opsporing list) is expected in this tree")
    s = compute_statistics(ctx, PERIOD, today=TODAY)
    t = s.table("opsporing_by_municipality")
    assert s.opsporing_available and t.columns == tuple(PERIOD.months())
    assert _row(t, VIB) == (PRIMARY,) * 6 and _row(t, "I alt") == (PRIMARY,) * 6


def _outputs(ctx: Context, out: Path) -> dict[str, str]:
    s = compute_statistics(ctx, PERIOD, today=TODAY)
    paths = write_outputs(s, out)
    texts = {p.name: p.read_text(encoding="utf-8-sig") for p in out.iterdir()}
    texts["artifact.md"] = to_markdown(s)
    assert set(paths) == {"html", "json", "csv"} and len(paths["csv"]) == len(s.tables)
    return texts


def test_no_cpr_pseudonym_or_ten_digit_number_in_any_output(filled: tuple[Context, list[str]],
                                                            tmp_path: Path) -> None:
    ctx, cprs = filled
    texts = _outputs(ctx, tmp_path / "out")
    assert {"statistics.html", "statistics.json", "enrolments_by_institution.csv"} <= set(texts)
    with ctx.store.session() as s:
        pseudonyms = sorted(set(s.scalars(select(RecordRow.youth))))
    assert pseudonyms
    for name, text in texts.items():
        assert not CPR_SHAPE.search(text), f"{name}: holds a ten-digit number"
        assert not any(c in text or f"{c[:6]}-{c[6:]}" in text for c in cprs), f"{name}: holds a CPR"
        assert not any(p in text for p in pseudonyms), f"{name}: holds a pseudonym"
    # and the check itself would see one
    assert CPR_SHAPE.search(f"x {cprs[0]} y") and CPR_SHAPE.search(f"{cprs[0][:6]}-{cprs[0][6:]}")


def test_the_outputs_formats(filled: tuple[Context, list[str]], tmp_path: Path) -> None:
    ctx, _ = filled
    texts = _outputs(ctx, tmp_path / "out")
    doc = json.loads(texts["statistics.json"])
    assert doc["format"] == "stafet.statistics/1" and (doc["from"], doc["to"]) == ("2026-01", "2026-06")
    assert doc["suppression"] == {"threshold": 5, "primary": "<5", "complementary": "x", "zero_shown": True}
    cells = [v for k, t in doc["tables"].items() if not k.startswith("report_lag") for r in t["rows"]
             for v in r[len(r) - len(t["header"]) + 1:] if k != "cohorts_by_municipality" or len(r) < 99]
    assert not [v for v in cells if isinstance(v, int) and 1 <= v <= 4]  # no small count anywhere
    csv_lines = texts["enrolments_by_institution.csv"].splitlines()
    assert csv_lines[0] == "Institution;2026-01;2026-02;2026-03;2026-04;2026-05;2026-06;I alt"
    assert f"{KAT};0;0;<5;0;0;0;<5" in csv_lines
    page = texts["statistics.html"]
    assert page.startswith("<!DOCTYPE html>") and '<html lang="da">' in page
    assert page.count("<svg") >= 2 and "<script" not in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing loads from the network
    assert "default-src 'none'" in page and "Optagelser pr. institution og måned" in page
    for tg in TARGETS:
        assert tg.quote in page
    md = texts["artifact.md"]
    assert md.startswith("# Statistik statistik-test 2026-01 – 2026-06")
    assert "| Optagelser | 0 | 0 | 8 | 0 | 0 | 0 | 8 |" in md


def test_a_label_that_looks_like_a_formula_stays_text() -> None:
    t = count_table("k", "T", ("Enhed",), [("=HYPERLINK(1)",)], ("a",), [[7]])
    assert to_csv(t).splitlines()[1] == "'=HYPERLINK(1);7;7"
