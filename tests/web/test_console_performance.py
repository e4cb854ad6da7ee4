"""What keeps the console fast under many clients (issue 19, Performance): a session's ``last_seen``
is written at most once a minute, a chart is drawn once per distinct data, and the paged lists
read a page's keys from an index first and give the same rows, in the same order, as a plain query."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import or_, select

from stafet.store import console as q
from stafet.store.schema import Handover, ImportedPackage, Quarantine, WebSession
from tests.web.conftest import login


def _last_seen(ctx: Any, token: str) -> dt.datetime:
    from stafet.web.security import token_hash

    with ctx.store.session() as s:
        ws = s.get(WebSession, token_hash(token))
        assert ws is not None
        return ws.last_seen


def test_last_seen_is_written_at_most_once_a_minute(world: dict[str, Any], app: Any) -> None:
    from stafet.web.auth import LocalAccounts
    from stafet.web.security import Settings, visit

    ctx = world["ctx"]
    c = login(app, "drift")
    token = c.cookies.get("stafet_session")
    assert token
    start = _last_seen(ctx, token)
    auth, settings = LocalAccounts(ctx.store), Settings(secure_cookies=False)
    assert visit(ctx.store, auth, token, settings, now=start + dt.timedelta(seconds=30)) is not None
    assert _last_seen(ctx, token) == start  # within the minute: nothing written
    later = start + dt.timedelta(seconds=61)
    assert visit(ctx.store, auth, token, settings, now=later) is not None
    assert _last_seen(ctx, token) == later
    # a short idle timeout is kept: with 1 minute, last_seen is written every 6 seconds
    short = Settings(secure_cookies=False, idle_minutes=1)
    assert visit(ctx.store, auth, token, short, now=later + dt.timedelta(seconds=7)) is not None
    assert _last_seen(ctx, token) == later + dt.timedelta(seconds=7)


def test_a_chart_is_drawn_once_per_distinct_data() -> None:
    from stafet.web.app import _chart_svg

    _chart_svg.cache_clear()
    one = (("easy-a", (("2026-11-20", 100, 5), ("2026-11-21", 120, 6))),)
    first = _chart_svg("rows", one)
    assert first.startswith("<") and "<svg" in first and "Rækker pr. kilde pr. nat" in first
    assert _chart_svg("rows", one) is first  # the same data: the drawing is reused
    assert _chart_svg.cache_info().hits == 1
    other = (("easy-a", (("2026-11-20", 100, 5), ("2026-11-21", 999, 60))),)
    assert _chart_svg("rows", other) != first  # new data: drawn again
    assert "Karantæneandel" in _chart_svg("rate", one)


def test_paged_lists_give_the_plain_query_s_rows_in_order(world: dict[str, Any]) -> None:
    ctx = world["ctx"]
    with ctx.store.session() as s:
        plain_h = list(s.scalars(select(Handover).order_by(Handover.created_at.desc(), Handover.id.desc())))
        assert len(plain_h) >= 2
        for offset in range(len(plain_h)):
            assert [h.id for h in q.handovers_page(s, limit=1, offset=offset)] == [plain_h[offset].id]
        assert [h.id for h in q.handovers_page(s, limit=50)] == [h.id for h in plain_h][:50]
        org = plain_h[0].recipient
        mine = [h.id for h in plain_h if org in (h.sender, h.recipient)]
        assert [h.id for h in q.handovers_page(s, org=org)] == mine[:50]
        assert q.handovers_count(s, org=org) == len(mine)
        mine_q = list(s.scalars(select(Quarantine.id).where(Quarantine.status == "open")
                                .order_by(Quarantine.id)))
        assert mine_q, "the world has quarantined rows"
        assert [r.id for r in q.quarantine_page(s, None)] == mine_q[:50]
        assert [r.id for r in q.quarantine_page(s, None, limit=1, offset=1)] == mine_q[1:2]
        packages = list(s.scalars(select(ImportedPackage).where(ImportedPackage.recipient == "uu-viborg")
                                  .order_by(ImportedPackage.imported_at.desc(),
                                            ImportedPackage.package_id.desc())))
        assert packages, "UU Viborg received packages"
        page = q.packages_page(s, "uu-viborg")
        assert [p.package_id for p in page] == [p.package_id for p in packages][:50]
        assert q.packages_page(s, "uu-viborg", offset=len(packages)) == []
        assert not list(s.scalars(select(Handover.id).where(or_(Handover.sender == "nobody",
                                                                 Handover.recipient == "nobody"))))
        assert q.handovers_page(s, org="nobody") == []
