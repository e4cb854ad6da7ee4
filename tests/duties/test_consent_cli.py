"""`stafet consent add|list|show|withdraw` through the real CLI."""

import json
from datetime import date, timedelta

from sqlalchemy import select
from typer.testing import CliRunner

from stafet.cli.main import app
from stafet.store.schema import AuditEntry, ConsentRow

runner = CliRunner()


def test_add_list_show_withdraw(net) -> None:
    path, ctx = net
    today = date.today()
    add = ["consent", "add", "--network", path, "--ref", "S-9", "--signed-by", "ung",
           "--signed", str(today - timedelta(days=1)), "--to", str(today + timedelta(days=90)),
           "--recipients", "779008|guidance", "--scopes", "uddannelsesplan|stoettebehov",
           "--situation", "Omvalg", "--actor", "steward-1"]
    r = runner.invoke(app, add, input="120308-4127\n")  # the CPR is asked for, hidden
    assert r.exit_code == 0, r.output
    assert "4127" not in r.output
    r = runner.invoke(app, ["consent", "list", "--network", path, "--json"])
    (row,) = json.loads(r.output)
    assert (row["ref"], row["status"]) == ("S-9", "valid")
    assert (row["valid_from"], row["valid_to"]) == (str(today - timedelta(days=1)),
                                                    str(today + timedelta(days=90)))
    assert row["scopes"] == ["uddannelsesplan", "stoettebehov"]
    assert runner.invoke(app, add, input="120308-4127\n").exit_code == 2  # exists already
    r = runner.invoke(app, ["consent", "withdraw", "S-9", "--network", path, "--actor", "steward-1"])
    assert r.exit_code == 0 and "S-9 withdrawn" in r.output
    r = runner.invoke(app, ["consent", "list", "--network", path, "--json"])
    assert json.loads(r.output)[0]["status"] == "withdrawn"
    assert json.loads(r.output)[0]["withdrawn_date"] == str(today)
    with ctx.store.session() as s:
        assert s.get(ConsentRow, "S-9").withdrawn_date == today
        actions = [(e.actor, e.action) for e in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert actions == [("steward-1", "consent.added"), ("steward-1", "consent.withdrawn")]


def test_a_consent_signed_by_the_wrong_party_is_recorded_and_flagged(net) -> None:
    path, _ = net
    r = runner.invoke(app, ["consent", "add", "--network", path, "--ref", "S-10", "--signed-by", "foraelder",
                            "--signed", "2026-11-19", "--to", "2027-01-31", "--recipients", "779008",
                            "--scopes", "paalaeg"], input="150299-1234\n")
    assert r.exit_code == 0
    assert "invalid: underskrevet af forkert part" in r.output
    r = runner.invoke(app, ["consent", "add", "--network", path, "--ref", "S-11", "--signed-by", "nabo",
                            "--signed", "2026-11-19", "--to", "2027-01-31", "--recipients", "779008",
                            "--scopes", "paalaeg"], input="150299-1234\n")
    assert r.exit_code == 2
