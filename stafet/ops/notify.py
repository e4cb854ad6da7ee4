"""Operations told by e-mail when a run fails: an SMTP notification block and the Prefect automation.

``stafet ops notify-setup`` (:func:`setup_notifications`) saves, once, on the Prefect server
that ``PREFECT_API_URL`` names:

* a notification block of the type :class:`SmtpNotification` (``stafet-smtp-email``): the
  SMTP relay, the sender and the recipients; sent with :mod:`smtplib`;
* an automation (:data:`AUTOMATION`) that fires on every ``prefect.flow-run.Failed`` or
  ``prefect.flow-run.Crashed`` event of the named flows (by default the nightly ones) and
  sends the block a Danish subject and body naming the flow, the run, its state and the
  state's message.

The Prefect server runs the automation's action itself, so the server process must know
the block type: stafet declares this module as a ``prefect.collections`` entry point
(``pyproject.toml``), which Prefect imports before it looks a block type up. A server
started from stafet's environment therefore needs no setting of its own.

Nothing here sees personal data: the message carries flow and run names and the state's
message, which stafet's flows keep free of CPR numbers (``flows/nightly.py``).

May import ``stafet.core`` and Prefect.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from prefect.blocks.abstract import NotificationBlock
from pydantic import Field, SecretStr

from stafet.core.errors import ConfigError

BLOCK = "stafet-ops-email"
"""The name of the saved notification block."""

AUTOMATION = "stafet-run-failed"
"""The name of the automation: a failed or crashed run of a watched flow sends the block a mail."""

NIGHTLY_FLOWS = ("nightly-sync", "nightly-partitioned")
"""The flows watched unless told otherwise."""

SUBJECT = "stafet: {{ flow.name }} endte {{ flow_run.state.name }} ({{ flow_run.name }})"
BODY = """Kørslen {{ flow_run.name }} af {{ flow.name }} endte i tilstanden {{ flow_run.state.name }}.
{% if deployment %}Deployment: {{ deployment.name }}
{% endif %}Besked: {{ flow_run.state.message }}
Kørslens id: {{ flow_run.id }}

Se kørslen og dens log i Prefect; genstart den derfra, når årsagen er rettet
(en tidligere nat: parameteren day, YYYY-MM-DD).
"""


class SmtpNotification(NotificationBlock):
    """Send a notification as a plain-text e-mail through an SMTP relay (STARTTLS when asked)."""

    _block_type_name = "Stafet SMTP Email"
    _block_type_slug = "stafet-smtp-email"
    _description = "stafet: e-mail to operations through an SMTP relay (smtplib)."

    host: str = Field(description="the SMTP relay's host name")
    port: int = Field(default=25, description="the SMTP relay's port")
    sender: str = Field(description="the From address")
    to: list[str] = Field(description="the recipients")
    starttls: bool = Field(default=False, description="upgrade the connection with STARTTLS first")
    username: str | None = Field(default=None, description="SMTP AUTH login (only over STARTTLS)")
    password: SecretStr | None = Field(default=None, description="SMTP AUTH password")
    timeout: float = Field(default=30.0, description="socket timeout, seconds")

    def message(self, body: str, subject: str | None) -> EmailMessage:
        """The e-mail of one notification."""
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        msg["Subject"] = subject or "stafet"
        msg["Date"] = formatdate(localtime=True)
        msg["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or None)
        msg.set_content(body)
        return msg

    def send(self, body: str, subject: str | None = None) -> None:
        """Send one notification now (blocking)."""
        msg = self.message(body, subject)
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.username:
                if not self.starttls:
                    raise ConfigError("SMTP AUTH without STARTTLS would send the password in clear")
                smtp.login(self.username, self.password.get_secret_value() if self.password else "")
            smtp.send_message(msg)

    async def notify(self, body: str, subject: str | None = None) -> None:
        """Prefect's notification entry point (awaited by the server's automation action)."""
        try:
            await asyncio.to_thread(self.send, body, subject)
        except (OSError, smtplib.SMTPException, ConfigError):
            self.logger.exception("notification to %s failed", self.host)
            if self._raise_on_failure:
                raise


def setup_notifications(*, host: str, port: int, sender: str, to: list[str], flows: list[str] | None = None,
                        starttls: bool = False, username: str | None = None,
                        password: str | None = None) -> dict[str, Any]:
    """Save the block and (re)create the automation on the server of ``PREFECT_API_URL``.

    Idempotent: a second run replaces the block's settings and the automation. Returns
    their ids and what is watched. No ``flows``: :data:`NIGHTLY_FLOWS`.
    """
    from prefect.automations import Automation
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import EventTrigger, Posture

    if not to:
        raise ConfigError("notify-setup: give at least one recipient (--to)")
    flows = list(flows or NIGHTLY_FLOWS)
    block = SmtpNotification(host=host, port=port, sender=sender, to=to, starttls=starttls,
                             username=username or None, password=SecretStr(password) if password else None)
    block_id: Any = block.save(BLOCK, overwrite=True)  # sync here: no event loop runs
    for _ in range(100):  # every earlier one of that name (a second setup replaces the first)
        try:
            old: Any = Automation.read(name=AUTOMATION)
            old.delete()
        except ValueError:
            break
    automation: Any = Automation(
        name=AUTOMATION,
        description="stafet: a failed or crashed run of " + ", ".join(flows) + " mails operations.",
        trigger=EventTrigger(
            expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.role": "flow", "prefect.resource.name": list(flows)},
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[SendNotification(block_document_id=block_id, subject=SUBJECT, body=BODY)],
    ).create()
    return {"block": BLOCK, "block_id": str(block_id), "automation": AUTOMATION,
            "automation_id": str(automation.id), "flows": list(flows), "to": list(to)}


def send_test(body: str = "Prøvebesked fra stafet ops notify-setup: e-mail til driften virker.",
              subject: str = "stafet: prøvebesked") -> None:
    """Send a test mail through the saved block, from this process (checks the relay and the addresses)."""
    block: Any = SmtpNotification.load(BLOCK, _sync=True)  # type: ignore[call-arg]
    block.send(body, subject)
