"""``stafet ops notify-setup`` and its SMTP notification block, without a Prefect server.

The block sends through a real aiosmtpd (``smtp_server``); what the automation does on the
real Prefect server is tested in ``tests/flows/test_prefect_server.py``.
"""

from __future__ import annotations

import asyncio
from email import message_from_bytes, policy

import pytest
from typer.testing import CliRunner

from stafet.cli.main import app
from stafet.core.errors import ConfigError
from stafet.ops.notify import BODY, SUBJECT, SmtpNotification

runner = CliRunner()


def test_the_block_mails_through_smtp(smtp_server) -> None:
    block = SmtpNotification(host=smtp_server.host, port=smtp_server.port, sender="stafet@hub.example",
                             to=["drift@uu.example", "vagt@uu.example"])
    asyncio.run(block.notify("Kørslen x fejlede.", "stafet: nightly-sync endte Failed (x)"))
    (raw,) = smtp_server.messages()
    mail = message_from_bytes(raw, policy=policy.default)
    assert mail["Subject"] == "stafet: nightly-sync endte Failed (x)"
    assert mail.get_content().strip() == "Kørslen x fejlede."
    assert smtp_server.envelopes()[0]["rcpt_tos"] == ["drift@uu.example", "vagt@uu.example"]


def test_the_block_never_logs_in_over_clear_text(make_smtp_server) -> None:
    server = make_smtp_server(auth=True)
    block = SmtpNotification(host=server.host, port=server.port, sender="s@x.example", to=["d@x.example"],
                             username="ops", password="hemmeligt")
    with pytest.raises(ConfigError, match="in clear"):
        block.send("b", "s")
    assert server.logins() == [] and server.messages() == []


def test_a_refused_mail_is_raised_when_prefect_asks(smtp_server) -> None:
    smtp_server.fail_next(550, 550)
    block = SmtpNotification(host=smtp_server.host, port=smtp_server.port, sender="s@x.example",
                             to=["d@x.example"])
    asyncio.run(block.notify("b", "s"))          # Prefect's default: logged, not raised
    with block.raise_on_failure(), pytest.raises(Exception, match="550"):
        asyncio.run(block.notify("b", "s"))     # the automation's action: raised (the action fails)
    assert smtp_server.messages() == []


def test_the_message_is_danish_and_names_the_run() -> None:
    assert "{{ flow_run.name }}" in SUBJECT and "{{ flow.name }}" in SUBJECT
    assert "Kørslen" in BODY and "{{ flow_run.state.message }}" in BODY and "{{ flow_run.id }}" in BODY


def test_notify_setup_refuses_a_login_without_starttls() -> None:
    r = runner.invoke(app, ["ops", "notify-setup", "--smtp-host", "127.0.0.1", "--to", "d@x.example",
                            "--smtp-user", "ops"])
    assert r.exit_code == 2, r.output
    assert "--starttls" in r.output
