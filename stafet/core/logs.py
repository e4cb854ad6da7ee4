"""One logging setup for the CLI and the flows, with a CPR redaction filter.

Code never logs a CPR; the filter is the safety net behind that rule. It masks
anything CPR-shaped in the message, its arguments and any exception text, on every
handler stafet installs and on Prefect's own loggers.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from stafet.core.redaction import redact


class RedactCprFilter(logging.Filter):
    """Mask CPR-shaped numbers in a record before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drops it."""
        try:
            msg = record.getMessage()
        except Exception:  # a bad format string must not hide the log line
            msg = str(record.msg)
        record.msg, record.args = redact(msg), None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_FILTER = RedactCprFilter()


def protect(logger: logging.Logger | logging.Handler) -> None:
    """Attach the redaction filter to a logger or handler (idempotent)."""
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)


class StafetStderrHandler(logging.StreamHandler[TextIO]):
    """A stream handler on whatever ``sys.stderr`` is when a record is emitted.

    Like :data:`logging.lastResort`: a handler bound to the ``sys.stderr`` of the
    moment it was made keeps writing to that stream after it was replaced and closed
    (an embedding application, pytest's capture of an earlier test), and every record
    then ends as a "--- Logging error ---" traceback on the new stderr instead of the
    redacted line.

    The name must not start with ``_``: Prefect's own logging setup keeps the root
    logger's handlers only when one of them is a "user handler" (one with a formatter
    whose class name does not start with ``_``), and replaces them with its console
    otherwise — every other root handler (a log file) then goes too.
    """

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> TextIO:
        """The current ``sys.stderr``."""
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        """Ignored: the stream is always the current ``sys.stderr``."""


def setup_logging(level: int = logging.INFO) -> None:
    """Configure stafet's logging: one stderr handler, redaction on every handler.

    Idempotent: a second call adds no second handler. The handler writes to the
    ``sys.stderr`` of each record's moment, not the one of the first call.
    """
    root = logging.getLogger()
    if not any(getattr(h, "_stafet", False) for h in root.handlers):
        handler = StafetStderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._stafet = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    for h in root.handlers:
        protect(h)
    # paramiko logs a traceback at ERROR for every dropped connection that stafet
    # already turns into a TransientError; keep its own voice for real trouble.
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    for name in ("stafet", "prefect", "prefect.flow_runs", "prefect.task_runs"):
        protect(logging.getLogger(name))
        for h in logging.getLogger(name).handlers:
            protect(h)


def protect_all_handlers() -> int:
    """Attach the redaction filter to every handler of every logger that exists now.

    Called at the start of each flow run, so that Prefect's own handlers (console and
    the one that ships logs to the Prefect API) mask CPRs too, also when a Prefect worker
    runs the flow and stafet's CLI never configured logging. Returns the handler count.
    """
    loggers = [logging.getLogger()] + [lg for lg in logging.root.manager.loggerDict.values()
                                       if isinstance(lg, logging.Logger)]
    seen = 0
    for lg in loggers:
        for h in lg.handlers:
            protect(h)
            seen += 1
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    return seen
