"""Where the CLI handles a CPR (issue 16, low): never from the command line, and never shown
without an audit entry. Synthetic CPRs only."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select
from typer.testing import CliRunner

from stafet.cli.main import app
from stafet.core.cpr import parse_cpr
from stafet.core.models import Dropout, Provenance
from stafet.store.schema import AuditEntry, ConsentRow

runner = CliRunner()
CPR = "120308-4127"


def _consent_args(path: str, ref: str) -> list[str]:
    today = date.today()
    return ["consent", "add", "--network", path, "--ref", ref, "--signed-by", "ung",
            "--signed", str(today - timedelta(days=1)), "--to", str(today + timedelta(days=90)),
            "--recipients", "779008|guidance", "--scopes", "uddannelsesplan", "--actor", "steward-1"]


def _audit(ctx) -> list[AuditEntry]:
    with ctx.store.session() as s:
        return list(s.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def test_consent_add_refuses_a_cpr_on_the_command_line(demo_net) -> None:
    path, ctx = demo_net
    r = runner.invoke(app, [*_consent_args(path, "S-20"), "--cpr", CPR])
    assert r.exit_code == 2
    assert "--cpr is refused" in r.output and "standard input" in r.output and "prompt" in r.output
    assert "4127" not in r.output
    with ctx.store.session() as s:
        assert s.get(ConsentRow, "S-20") is None
    assert "--cpr" not in runner.invoke(app, ["consent", "add", "--help"]).output   # not offered


def test_consent_add_reads_the_cpr_from_stdin(demo_net) -> None:
    path, ctx = demo_net
    r = runner.invoke(app, _consent_args(path, "S-21"), input=CPR + "\n")
    assert r.exit_code == 0, r.output
    assert "consent S-21 recorded" in r.output and "4127" not in r.output
    with ctx.store.session() as s:
        assert s.get(ConsentRow, "S-21").youth == ctx.vault.pseudonym(parse_cpr(CPR).digits)


def test_consent_add_asks_with_a_hidden_prompt_on_a_terminal(monkeypatch) -> None:
    import sys

    import typer

    asked: list[dict] = []

    def prompt(text: str, **kw):
        asked.append({"text": text, **kw})
        return CPR

    monkeypatch.setattr(typer, "prompt", prompt)
    real_stdin = sys.stdin

    class Tty:
        def isatty(self) -> bool:
            return True

        def __getattr__(self, name):
            return getattr(real_stdin, name)

    from stafet.cli import consent as consent_cli

    monkeypatch.setattr(sys, "stdin", Tty())
    assert consent_cli._read_cpr() == CPR
    assert asked == [{"text": "CPR", "hide_input": True}]


def test_youth_show_writes_an_audit_entry_before_it_shows_the_cpr(demo_net) -> None:
    path, ctx = demo_net
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, [Dropout(
            cpr=parse_cpr(CPR), institution="779008", home_municipality="791", event_date=date.today(),
            programme_code="1640", reason_code="03",
            provenance=Provenance("t", "t.csv", 2, datetime.now(UTC)))])
    youth = ctx.vault.pseudonym(parse_cpr(CPR).digits)
    before = len(_audit(ctx))
    r = runner.invoke(app, ["youth", "show", youth, "--network", path], env={"USER": "counsellor-7"})
    assert r.exit_code == 0, r.output
    assert CPR in r.output                                   # shown, here only …
    r2 = runner.invoke(app, ["youth", "show", "--cpr", "--network", path], input=CPR + "\n",
                       env={"USER": "counsellor-8"})
    assert r2.exit_code == 0, r2.output
    entries = _audit(ctx)[before:]
    assert [(e.actor, e.action, e.subject) for e in entries] == [
        ("counsellor-7", "youth.cpr_shown", f"youth:{youth}"),
        ("counsellor-8", "youth.cpr_shown", f"youth:{youth}")]     # … and every showing audited
    assert [e.details["looked_up_by"] for e in entries] == ["pseudonym", "cpr"]
    assert all(e.at is not None for e in entries)               # when
    dumped = json.dumps([{"s": e.subject, "d": e.details} for e in entries])
    assert "4127" not in dumped and "120308" not in dumped   # never the CPR itself
    assert ctx.store.verify_audit_chain() >= 2


def test_youth_show_of_an_unknown_youth_shows_and_audits_nothing(demo_net) -> None:
    path, ctx = demo_net
    before = len(_audit(ctx))
    r = runner.invoke(app, ["youth", "show", "0" * 32, "--network", path])
    assert r.exit_code == 2 and "unknown youth" in r.output
    assert len(_audit(ctx)) == before
