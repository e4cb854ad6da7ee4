"""The nightly report renders offline and keeps hostile values inert."""

from datetime import UTC, date, datetime

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
