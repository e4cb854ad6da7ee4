"""The duty clock's daily snapshot (``duty_items``): the night writes it, the duties page reads it,
a registered contact updates it, it holds no CPR, and a day without one is computed in the background."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import inspect, select, update

from stafet import night
from stafet.duties.deadlines import compute_deadlines
from stafet.duties.snapshot import as_row, snapshot_deadlines, youth_deadlines
from stafet.store import duty_items
from stafet.store.schema import DutyItemRow, DutySnapshotRow
from tests.web.conftest import TODAY, csrf_of, login

# CPR-shaped, but not a run of digits inside a pseudonym (32 hex characters often hold ten digits)
CPR_DIGITS = re.compile(r"(?<![\da-f])\d{6}-?\d{4}(?![\da-f])")


def _rows(ctx: Any, day: dt.date, youth: str | None = None) -> list[dict[str, Any]]:
    with ctx.store.session() as s:
        stmt = select(DutyItemRow).where(DutyItemRow.day == day)
        if youth is not None:
            stmt = stmt.where(DutyItemRow.youth == youth)
        return [{k: getattr(r, k) for k in duty_items.COLUMNS} for r in s.scalars(stmt)]


def _key(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[k] for k in duty_items.COLUMNS)


def test_the_night_writes_the_snapshot_that_the_page_reads(world: dict[str, Any], app: Any) -> None:
    ctx = world["ctx"]
    summary = night.deadlines(world["path"], TODAY)
    clock = compute_deadlines(ctx, TODAY)
    assert clock and summary["overdue"] == sum(i.status == "overdue" for i in clock)
    assert sorted(map(_key, _rows(ctx, TODAY))) == sorted(_key(as_row(i)) for i in clock)
    # computed here in batches of three youths: the very same items as the clock
    assert snapshot_deadlines(ctx, TODAY, batch=3) == clock
    with ctx.store.session() as s:
        snap = s.get(DutySnapshotRow, TODAY)
        assert snap is not None and snap.items == len(clock)
        # mark one stored item: the page shows the table's text, not a clock computed in the request
        first = s.scalars(select(DutyItemRow).where(DutyItemRow.day == TODAY)
                          .order_by(DutyItemRow.due, DutyItemRow.rule, DutyItemRow.youth)).first()
        assert first is not None
        s.execute(update(DutyItemRow).where(DutyItemRow.id == first.id)
                  .values(reference=first.reference + " MÆRKET-I-TABELLEN"))
        computed = snap.computed_at
    page = login(app, "koordinator").get("/duties").text
    assert "MÆRKET-I-TABELLEN" in page
    assert f"beregnet {computed:%d-%m-%Y %H:%M} UTC" in page
    assert "beregnes nu" not in page
    assert app.state.duty_snapshots._thread is None  # the night's snapshot: nothing computed by the console


def test_the_snapshot_holds_no_cpr(world: dict[str, Any]) -> None:
    ctx = world["ctx"]
    night.deadlines(world["path"], TODAY)
    columns = {c["name"] for c in inspect(ctx.store.engine).get_columns("duty_items")}
    assert {c for c in columns if "cpr" in c} == {"masked_cpr"}
    rows = _rows(ctx, TODAY)
    assert rows
    for row in rows:
        assert not CPR_DIGITS.search(" ".join(str(v) for v in row.values())), row["rule"]
    with ctx.store.session() as s:
        held = {r["youth"]: r["masked_cpr"] for r in rows if r["masked_cpr"]}
        assert held, "no item carries a masked CPR"
        for youth, masked in held.items():
            cpr = ctx.store.cpr_of(s, youth)
            assert masked == cpr.masked and masked.endswith("-xxxx") and cpr.digits not in masked


def test_a_registered_contact_updates_the_snapshot(world: dict[str, Any], app: Any) -> None:
    ctx = world["ctx"]
    night.deadlines(world["path"], TODAY)
    rule = "dropout_first_contact"  # met by a contact with the youth that the UU registers
    mine = [r for r in _rows(ctx, TODAY) if r["responsible"] == "uu-viborg" and r["rule"] == rule]
    assert mine, f"UU Viborg has no {rule} duty in the demo"
    youth = mine[0]["youth"]
    before = _rows(ctx, TODAY, youth)
    c = login(app, "vejleder")
    page = c.get("/duties").text
    r = c.post("/duties/contact", data={"csrf_token": csrf_of(page), "youth": youth, "day": TODAY.isoformat(),
                                        "form": "telefon", "note": "ringede", "party": "youth"},
               follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/duties?msg=contact"
    after = _rows(ctx, TODAY, youth)
    assert [x for x in before if x["rule"] == rule]
    assert not [x for x in after if x["rule"] == rule]  # closed: gone from the snapshot
    assert sorted(map(_key, after)) == sorted(_key(as_row(i)) for i in youth_deadlines(ctx, TODAY, youth))
    # the other youths' items are untouched, and the snapshot's count follows
    with ctx.store.session() as s:
        assert s.get(DutySnapshotRow, TODAY).items == len(_rows(ctx, TODAY))
    shown = c.get("/duties?msg=contact").text
    assert "Kontakten er registreret." in shown
    viborg = [x for x in after if x["responsible"] == "uu-viborg"]
    assert shown.count(f'name="youth" value="{youth}"') == len(viborg)


def test_a_stale_day_is_computed_in_the_background(world: dict[str, Any],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from stafet.duties import snapshot as snapshot_module
    from stafet.web import app as web_app
    from stafet.web.security import Settings

    ctx = world["ctx"]
    night.deadlines(world["path"], TODAY)  # yesterday's snapshot, as the last night left it
    tomorrow = TODAY + dt.timedelta(days=1)
    console = web_app.create_app(ctx, Settings(secure_cookies=False), today=lambda: tomorrow)
    monkeypatch.setattr(web_app, "SNAPSHOT_WAIT_SECONDS", 0.0)  # answer at once: "being computed"
    # the background computation is held until the first page is out: a small world computes in
    # milliseconds, and the page would otherwise race it
    release, real = threading.Event(), snapshot_module.write_snapshot

    def held(*args: Any, **kwargs: Any) -> int:
        assert release.wait(60), "the test never released the computation"
        return real(*args, **kwargs)

    monkeypatch.setattr(snapshot_module, "write_snapshot", held)
    c: TestClient = login(console, "koordinator")
    first = c.get("/duties")
    assert first.status_code == 200
    assert "beregnes nu" in first.text and "Åbne pligter" not in first.text
    assert console.state.duty_snapshots.running()
    release.set()
    assert console.state.duty_snapshots.wait(60)
    again = c.get("/duties").text
    assert "beregnes nu" not in again and "beregnet " in again and "Åbne pligter" in again
    with ctx.store.session() as s:
        assert duty_items.snapshot(s, tomorrow) is not None
        assert duty_items.snapshot(s, TODAY) is None  # earlier days' snapshots go
    assert sorted(map(_key, _rows(ctx, tomorrow))) == sorted(_key(as_row(i))
                                                               for i in compute_deadlines(ctx, tomorrow))


def test_stafet_deadlines_refresh_writes_the_snapshot(world: dict[str, Any]) -> None:
    from typer.testing import CliRunner

    from stafet.cli.main import app as cli
    from tests.web.conftest import home_of

    ctx = world["ctx"]
    day = TODAY + dt.timedelta(days=3)
    r = CliRunner().invoke(cli, ["deadlines", "--network", world["path"], "--home", str(home_of(world)),
                                 "--today", day.isoformat(), "--json", "--refresh"])
    assert r.exit_code == 0, r.output
    assert sorted(map(_key, _rows(ctx, day))) == sorted(_key(as_row(i)) for i in compute_deadlines(ctx, day))
    with ctx.store.session() as s:
        assert duty_items.snapshot(s, day) is not None
