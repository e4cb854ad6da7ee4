"""``stafet send --to X`` routes and sends only what concerns X (issue 20).

Two recipients are due (a dropout for UU Viborg, one for UU Skive): ``send --to uu-viborg``
plans and sends Viborg's handover and leaves Skive's untouched; Skive's next ``send`` delivers it.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

from typer.testing import CliRunner

from stafet.cli.main import app
from stafet.core.cpr import parse_cpr
from stafet.core.models import Dropout, Provenance
from stafet.store.schema import Handover

runner = CliRunner()


def _dropout(muni: str, cpr: str) -> Dropout:
    return Dropout(cpr=parse_cpr(cpr), institution="779008", home_municipality=muni,
                   event_date=date.today(), programme_code="1640", reason_code="03",
                   provenance=Provenance("t", "t.csv", 2, datetime.now(UTC)))


def _states(ctx: Any) -> dict[str, set[str]]:
    with ctx.store.session() as s:
        out: dict[str, set[str]] = {}
        for h in s.query(Handover).all():
            out.setdefault(h.recipient, set()).add(h.status)
        return out


def test_send_to_one_recipient_leaves_the_other_untouched_until_its_own_send(demo_net) -> None:
    path, ctx = demo_net
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, [_dropout("791", "120308-4127"), _dropout("779", "120310-4126")])
    first = runner.invoke(app, ["send", "--to", "uu-viborg", "--json", "--network", path])
    assert first.exit_code == 0, first.output
    doc = json.loads(first.stdout)
    assert doc["routing"]["planned"] == 1 and doc["sent"] == 1
    assert _states(ctx) == {"uu-viborg": {"sent"}}  # nothing planned, nothing sent for UU Skive
    second = runner.invoke(app, ["send", "--to", "uu-skive", "--json", "--network", path])
    assert second.exit_code == 0, second.output
    doc = json.loads(second.stdout)
    assert doc["routing"]["planned"] == 1 and doc["sent"] == 1
    assert _states(ctx) == {"uu-viborg": {"sent"}, "uu-skive": {"sent"}}


def test_send_to_one_recipient_does_not_send_the_others_pending_work(demo_net) -> None:
    from stafet import night

    path, ctx = demo_net
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, [_dropout("791", "120308-4127"), _dropout("779", "120310-4126")])
    night.route(path)  # both planned (the night's routing), neither sent yet
    assert _states(ctx) == {"uu-viborg": {"pending"}, "uu-skive": {"pending"}}
    r = runner.invoke(app, ["send", "--to", "uu-viborg", "--network", path])
    assert r.exit_code == 0, r.output
    assert "sent: 1" in r.stdout
    assert _states(ctx) == {"uu-viborg": {"sent"}, "uu-skive": {"pending"}}
    r = runner.invoke(app, ["send", "--network", path])
    assert r.exit_code == 0 and "sent: 1" in r.stdout
    assert _states(ctx) == {"uu-viborg": {"sent"}, "uu-skive": {"sent"}}
