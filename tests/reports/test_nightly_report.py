"""The nightly report renders offline and keeps hostile values inert."""

import re
from datetime import UTC, date, datetime

from seeds import assert_quoted

from stafet import night
from stafet.core.cpr import parse_cpr
from stafet.core.models import Dropout, Provenance
from stafet.reports.nightly import build_report


def test_values_are_escaped_and_formulas_inert(demo_net) -> None:
    path, ctx = demo_net
    evil = Dropout(cpr=parse_cpr("120308-4127"), institution="=cmd|' /C calc'!A0<script>alert(1)</script>",
                   home_municipality="791", event_date=date.today(), programme_code="1640", reason_code="03",
                   provenance=Provenance("t", "t.csv", 2, datetime.now(UTC)))
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, [evil])
    night.route(path)
    page = build_report(ctx, today=date.today())
    assert "<script>" not in page
    assert "&#x27;=cmd|&#x27;" in page  # prefixed with ' and escaped: inert in a spreadsheet too
    assert "http://" not in page and "https://" not in page  # nothing loads from the network
    assert "4127" not in page
    assert "Afbrud uden forudgående bekymringsmærke" in page
    # the held handover (unknown sender) is listed with its reason
    assert "afsender findes ikke i netværket" in page


SEED_LATE = "Ofte kommer meldinger fra Ungdomsuddannelserne for sent"


def test_report_lag_per_institution_counts_only(demo_net) -> None:
    """Seed 002: days from each dropout to its arrival at stafet, per institution: median and max."""
    from stafet.reports.statistics import LagRow, report_lag_by_institution
    from stafet.store import statistics as q

    assert_quoted(SEED_LATE)
    _, ctx = demo_net

    def dropout(c, inst, day, arrived):
        return Dropout(cpr=parse_cpr(c), institution=inst, home_municipality="791", event_date=day,
                       programme_code="1640", reason_code="03",
                       provenance=Provenance("t", f"{inst}_haendelser.csv", 2, arrived))

    at = datetime(2026, 11, 20, 5, tzinfo=UTC)  # 06:00 in Copenhagen: 20 November
    late = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)  # 00:30 on 21 November in Copenhagen
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, [
            dropout("120308-4127", "779008", date(2026, 11, 18), at),   # 2 days
            dropout("030409-4871", "779008", date(2026, 11, 10), at),   # 10 days
            dropout("050609-4410", "779008", date(2026, 11, 17), at),   # 3 days
            dropout("300908-5527", "751001", date(2026, 11, 20), late),  # 1 day: the Danish calendar day
        ])
        rows = report_lag_by_institution(q.school_events(s))
    assert rows == [LagRow("779008", 3, 3.0, 10), LagRow("751001", 1, 1.0, 1)]
    page = build_report(ctx, today=date(2026, 11, 21))
    section = page.split("Indberetningstid for afbrud pr. institution")[1].split("<h2")[0]
    cells = re.findall(r"<td>([^<]*)</td>", section)
    assert cells == ["Mercantec (779008)", "3", "3", "10", "Viborg Katedralskole (751001)", "1", "1", "1"]
    assert "4127" not in section and "pseudonym" not in section   # counts only: no youth
