"""SMTP transport: each blob, a complete RFC 5322 message, sent through a relay.

STARTTLS is required by default; a login (``username``) is only ever sent over TLS,
whatever ``starttls`` says. A 4xx answer or a lost connection is a
:class:`~stafet.core.errors.TransientError`, a 5xx answer, an untrusted certificate or
a server without STARTTLS a :class:`~stafet.core.errors.DeliveryFailed`.
"""

from __future__ import annotations

import contextlib
import logging
import smtplib
import ssl
from collections.abc import Sequence
from typing import Literal

from stafet.core.errors import ConfigError, DeliveryFailed, StafetError, TransientError
from transports.base import Outlet

__all__ = ["SmtpOutlet", "StartTls"]

log = logging.getLogger("stafet.transport")

StartTls = Literal["auto", "require", "never"]


class SmtpOutlet(Outlet):
    """Send each blob, a complete RFC 5322 message (``.eml``), through an SMTP server.

    Args:
        host, port: the relay (sikker-mail gateway).
        mail_from: envelope sender.
        rcpt_to: envelope recipient(s).
        starttls: ``"require"`` (the default: refuse to send in clear), ``"auto"``
            (STARTTLS when the server offers it; without it, the message goes in clear
            but a login never does) or ``"never"`` (clear; no login allowed).
        cafile: trust anchors for the server's certificate (default: the system's).
        username, password: SMTP AUTH, only ever after STARTTLS: with no TLS the
            message is not sent (:class:`DeliveryFailed`) and the password never leaves.
        timeout: seconds for connect and each command.

    One connection per ``put``. A 4xx answer or a lost connection is a
    :class:`TransientError`; a 5xx answer is :class:`DeliveryFailed` carrying the
    server's text. Once the server has accepted the message, ``put`` succeeds even if
    closing the session fails (a retry would deliver twice).
    """

    def __init__(self, host: str, port: int = 25, mail_from: str = "",
                 rcpt_to: str | Sequence[str] = (), *, starttls: StartTls = "require",
                 cafile: str | None = None, username: str | None = None,
                 password: str | None = None, timeout: float = 60.0,
                 local_hostname: str | None = None) -> None:
        self.host, self.port = host, int(port)
        self.endpoint = f"smtp://{host}:{self.port}"
        self.rcpt_to = [rcpt_to] if isinstance(rcpt_to, str) else [str(r) for r in rcpt_to]
        self.rcpt_to = [r for r in self.rcpt_to if r]
        if not mail_from or not self.rcpt_to:
            raise ConfigError("an SMTP endpoint needs a sender (mail_from) and a recipient "
                              "(rcpt_to)", endpoint=self.endpoint)
        if starttls not in ("auto", "require", "never"):
            raise ConfigError(f"starttls must be auto, require or never, not {starttls!r}",
                              endpoint=self.endpoint)
        if starttls == "never" and username:
            raise ConfigError("an SMTP login is never sent in clear: starttls 'never' cannot go "
                              "with a username (use 'require')", endpoint=self.endpoint)
        self.mail_from, self.starttls = mail_from, starttls
        self.cafile, self.username, self.password = cafile, username, password
        self.timeout, self.local_hostname = timeout, local_hostname

    def _tls_context(self) -> ssl.SSLContext:
        try:
            return ssl.create_default_context(cafile=self.cafile)
        except (OSError, ssl.SSLError) as e:
            raise ConfigError(f"cannot load cafile: {e}", endpoint=self.endpoint) from None

    def put(self, name: str, data: bytes) -> None:
        """Send ``data`` (the message bytes) to the recipients; ``name`` is for logs only."""
        ctx = {"endpoint": self.endpoint, "file": name}
        try:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout,
                                local_hostname=self.local_hostname)
            try:
                smtp.ehlo()
                if self.starttls != "never" and smtp.has_extn("starttls"):
                    smtp.starttls(context=self._tls_context())
                    smtp.ehlo()
                elif self.starttls == "require":
                    raise DeliveryFailed("the SMTP server does not offer STARTTLS and "
                                         "starttls is 'require'", **ctx)
                if self.username:
                    if not isinstance(smtp.sock, ssl.SSLSocket):
                        raise DeliveryFailed("the SMTP server does not offer STARTTLS: refusing to "
                                             "send the login in clear (nothing was sent)", **ctx)
                    smtp.login(self.username, self.password or "")
                refused = smtp.sendmail(self.mail_from, self.rcpt_to, data)
                if refused:
                    text = "; ".join(f"{r}: {c} {_text(m)}" for r, (c, m) in refused.items())
                    raise DeliveryFailed(f"some recipients refused the message: {text}", **ctx)
            finally:
                with contextlib.suppress(Exception):
                    smtp.quit()
                smtp.close()
        except StafetError:
            raise
        except smtplib.SMTPRecipientsRefused as e:
            codes = [c for c, _ in e.recipients.values()]
            text = "; ".join(f"{r}: {c} {_text(m)}" for r, (c, m) in e.recipients.items())
            cls = DeliveryFailed if any(c >= 500 for c in codes) else TransientError
            raise cls(f"SMTP server refused the recipient: {text}", **ctx) from None
        except smtplib.SMTPAuthenticationError as e:
            raise ConfigError(f"SMTP login refused: {e.smtp_code} {_text(e.smtp_error)}",
                              **ctx) from None
        except smtplib.SMTPResponseException as e:
            code, text = e.smtp_code, _text(e.smtp_error)
            if 500 <= code < 600:
                raise DeliveryFailed(f"SMTP server refused the message: {code} {text}",
                                     smtp_code=code, **ctx) from None
            raise TransientError(f"SMTP server answered {code} {text}", smtp_code=code,
                                 **ctx) from None
        except ssl.SSLCertVerificationError as e:
            raise DeliveryFailed(f"the SMTP server's TLS certificate is not trusted: "
                                 f"{e.verify_message}", **ctx) from None
        except smtplib.SMTPNotSupportedError as e:
            raise DeliveryFailed(f"SMTP server does not support what is needed: {e}", **ctx) from None
        except (smtplib.SMTPException, OSError, EOFError) as e:
            why = getattr(e, "strerror", None) or str(e) or type(e).__name__
            raise TransientError(f"SMTP delivery failed: {why}", **ctx) from None
        log.info("sent %s (%d bytes) via %s", name, len(data), self.endpoint)


def _text(msg: bytes | str) -> str:
    return msg.decode("utf-8", "replace") if isinstance(msg, bytes) else str(msg)
