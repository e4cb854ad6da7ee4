"""The one error tree of stafet, sorted by what the caller should do.

::

    StafetError                      root; never carries a CPR in its message
    ├── ConfigError                  fatal at start: fix the configuration and restart
    ├── TransientError               retriable: network, SFTP, SMTP 4xx, database locked
    ├── DataError                    a row or record is bad: quarantine it, go on
    │   └── FileRejected             a whole source file is bad: keep it, reject it
    ├── PackageRejected              an incoming package or receipt is refused (reason code)
    └── DeliveryFailed               permanent delivery failure (SMTP 5xx, bad certificate)

Every error carries context (file, row, rule, organisation, package id) as
attributes and in its message. Messages pass through :func:`stafet.core.redaction.redact` so
that a CPR that slipped into a value is masked before anyone can log it.
"""

from __future__ import annotations

from typing import Any

from stafet.core.redaction import redact


class StafetError(Exception):
    """Root of every error stafet raises on purpose."""

    def __init__(self, message: str, **context: Any) -> None:
        self.context = {k: v for k, v in context.items() if v is not None}
        where = ", ".join(f"{k}={v}" for k, v in self.context.items())
        text = f"{message} ({where})" if where else message
        super().__init__(redact(text))

    @property
    def message(self) -> str:
        """The redacted message with its context."""
        return str(self)


class ConfigError(StafetError):
    """Configuration is wrong or missing: fatal at start."""


class TransientError(StafetError):
    """A transport or resource failure that a later retry can fix."""


class DataError(StafetError):
    """A row or record breaks a rule; it goes to quarantine with this reason.

    Attributes ``file``, ``row`` and ``rule`` name where and why.
    """

    def __init__(self, message: str, *, file: str | None = None, row: int | None = None,
                 rule: str | None = None, **context: Any) -> None:
        self.file, self.row, self.rule = file, row, rule
        super().__init__(message, file=file, row=row, rule=rule, **context)


class FileRejected(DataError):
    """A whole source file is refused (structure, encoding, hostile XML); it is kept."""


class PackageRejected(StafetError):
    """An incoming package or receipt is refused; ``reason`` is a stable code."""

    def __init__(self, reason: str, message: str, **context: Any) -> None:
        self.reason = reason
        super().__init__(f"[{reason}] {message}", **context)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as it is (e.g. from a worker process that opened a package): the message
        # was composed and redacted once, and must not be composed again.
        return (_restore_rejection, (self.reason, str(self), self.context))


def _restore_rejection(reason: str, text: str, context: dict[str, Any]) -> PackageRejected:
    e = PackageRejected.__new__(PackageRejected)
    Exception.__init__(e, text)
    e.reason, e.context = reason, context
    return e


class DeliveryFailed(StafetError):
    """Delivery failed for good (e.g. SMTP 5xx); the handover goes to ``failed``."""
