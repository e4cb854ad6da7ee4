"""``stafet coordinator-list`` and ``stafet tovholder set|show`` on the demo network."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from typing import Any

from typer.testing import CliRunner

from stafet.cli.main import app
from stafet.core.cpr import parse_cpr
from stafet.core.models import Dropout, Provenance

runner = CliRunner()
# CPR-shaped, but not a run of digits inside a pseudonym (32 hex characters often hold ten digits)
CPR_SHAPE = re.compile(r"(?<![\da-f])\d{6}[- ]?\d{4}(?![\da-f])")


def _dropouts(ctx: Any) -> str:
    """Two dropouts on 2026-11-02: a 26-year-old (no job centre knows them) and a 17-year-old."""
    prov = Provenance("t", "779008_haendelser_2026110306.csv", 2, datetime(2026, 11, 3, 6, tzinfo=UTC),
                      institution="779008")
    recs = [Dropout(cpr=parse_cpr(c), institution="779008", home_municipality="791",
                    event_date=date(2026, 11, 2), programme_code="1640", reason_code="03", provenance=prov)
            for c in ("010100-4123", "120309-4127")]
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, recs)
        return str(ctx.store.ensure_youths(s, [recs[0].cpr])[recs[0].cpr.digits])


def test_coordinator_list_json_and_table(demo_net: tuple[str, Any]) -> None:
    network, ctx = demo_net
    _dropouts(ctx)
    r = runner.invoke(app, ["coordinator-list", "--json", "--today", "2026-11-24", "--network", network])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["format"] == "stafet.coordinator_list/1" and doc["today"] == "2026-11-24"
    mine = [i for i in doc["items"] if i["masked_cpr"] == "010100-xxxx"]
    assert [(i["age"], i["dropout_date"]) for i in mine] == [(26, "2026-11-02")]
    assert not [i for i in doc["items"] if i["masked_cpr"] == "120309-xxxx"]   # 17: UU's duty
    r = runner.invoke(app, ["coordinator-list", "--today", "2026-11-24", "--network", network])
    assert r.exit_code == 0 and "tovholderen" in r.output and "010100-xxxx" in r.output
    assert "010100-4123" not in r.output and "0101004123" not in r.output


def test_tovholder_set_and_show(demo_net: tuple[str, Any]) -> None:
    network, ctx = demo_net
    youth = _dropouts(ctx)
    r = runner.invoke(app, ["tovholder", "set", "--youth", youth, "--org", "uu-viborg", "--name", "Anna Holm",
                            "--since", "2026-11-20", "--by", "anna", "--json", "--network", network])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["status"] == "new"
    # by CPR on standard input (never on the command line): the same youth, a new tovholder
    r = runner.invoke(app, ["tovholder", "set", "--cpr", "--org", "jobcenter-viborg", "--name", "Lene Juhl",
                            "--by", "lene", "--network", network], input="010100-4123\n")
    assert r.exit_code == 0, r.output
    assert not CPR_SHAPE.search(r.output)
    r = runner.invoke(app, ["tovholder", "show", "--youth", youth, "--json", "--network", network])
    shown = json.loads(r.output)["tovholder"]
    assert (shown["name"], shown["org"], shown["set_by"], shown["source"]) == \
        ("Lene Juhl", "jobcenter-viborg", "lene", "person")


def test_tovholder_refusals_exit_2(demo_net: tuple[str, Any]) -> None:
    network, ctx = demo_net
    youth = _dropouts(ctx)
    r = runner.invoke(app, ["tovholder", "set", "--youth", youth, "--org", "nobody", "--name", "A",
                            "--by", "anna", "--network", network])
    assert r.exit_code == 2 and "unknown organisation" in r.output
