"""``stafet inquiry send|list|answer`` and ``stafet moves`` on the demo network (the CPR only on stdin)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from typer.testing import CliRunner

from stafet import night
from stafet.cli.main import app
from stafet.core.cpr import parse_cpr
from stafet.core.models import Provenance, Registration
from stafet.exchange.inbox import process_inbox

runner = CliRunner()
CPR = "120310-4126"  # synthetic


@pytest.fixture
def demo(demo_relay):
    """The demo network on a fresh copy (tests/conftest.py's ``demo_relay``)."""
    path, home, _folder = demo_relay
    return path, home


def test_inquiry_send_list_answer(demo) -> None:
    path, home = demo
    base = ["--network", path, "--home", str(home)]
    r = runner.invoke(app, ["inquiry", "send", "--from", "779008", "--to", "uu-viborg", "--cpr",
                            "--question", "Har den unge støttebehov?", *base], input=CPR + "\n")
    assert r.exit_code == 0, r.output
    assert CPR not in r.output and "120310-xxxx" in r.output
    pid = r.output.split()[1]
    assert process_inbox(night.context(path), "uu-viborg").inquiries == 1
    r = runner.invoke(app, ["inquiry", "list", "--org", "uu-viborg", "--json", *base])
    doc = json.loads(r.output)
    assert [(i["id"], i["direction"], i["status"]) for i in doc["items"]] == [(pid, "in", "open")]
    assert "4126" not in r.output
    r = runner.invoke(app, ["inquiry", "answer", pid, "--by", "Vejleder Hansen", *base])
    assert r.exit_code == 0 and "intet grundlag" in r.output, r.output
    r = runner.invoke(app, ["inquiry", "answer", pid, "--by", "Vejleder Hansen", *base])
    assert r.exit_code == 2 and "allerede besvaret" in r.output
    r = runner.invoke(app, ["inquiry", "send", "--from", "779008", "--to", "uu-viborg", "--question", "?",
                            *base])
    assert r.exit_code != 0  # the CPR is never an argument: --cpr reads it


def test_moves_lists_the_open_duty_and_the_moves_outside(demo) -> None:
    path, home = demo
    ctx = night.context(path)
    regs = [Registration(cpr=parse_cpr(c), municipality="791", moved_in=date(2015, 1, 1),
                         moved_out=date(2026, 11, 1), moved_to=to, custody_holder=True,
                         provenance=Provenance("ungeregister", "cpr_791_unge_20261125.csv", i,
                                               datetime.now(UTC), municipality="791"))
            for i, (c, to) in enumerate([(CPR, "779"), ("070711-4121", "101")], 2)]
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, regs)
    base = ["--today", "2026-11-25", "--network", path, "--home", str(home), "--json"]
    r = runner.invoke(app, ["moves", *base])
    items = json.loads(r.output)["items"]
    assert [(i["rule"], i["responsible"], i["due"]) for i in items] == [
        ("move_handover", "uu-viborg", "2026-11-01")]
    r = runner.invoke(app, ["moves", "--outside", *base])
    items = json.loads(r.output)["items"]
    assert [(i["masked_cpr"], i["to"]) for i in items] == [("070711-xxxx", "101")]
