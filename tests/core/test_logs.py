"""The redaction filter: the safety net behind "never log a CPR"."""

import io
import logging
import sys

from stafet.core.errors import DataError
from stafet.core.logs import RedactCprFilter, setup_logging


def test_filter_masks_message_args_and_exceptions(caplog) -> None:
    log = logging.getLogger("stafet.test")
    caplog.handler.addFilter(RedactCprFilter())
    with caplog.at_level(logging.INFO):
        log.info("youth %s moved", "120308-4127")
        log.info("plain 0711094563 in text")
        try:
            raise ValueError("bad 2112084466")
        except ValueError:
            log.exception("failed for 030409 4871")
    text = caplog.text
    for form in ("120308-4127", "0711094563", "2112084466", "030409 4871"):
        assert form not in text
    assert text.count("******-****") >= 4


def test_setup_logging_protects_stderr(capsys) -> None:
    setup_logging()
    logging.getLogger("stafet.x").warning("cpr 1203084127 here")
    err = capsys.readouterr().err
    assert "1203084127" not in err
    assert "cpr ******-**** here" in err and "Logging error" not in err, err  # written, and masked


def test_setup_logging_follows_sys_stderr_when_it_is_replaced(monkeypatch) -> None:
    """The stafet handler writes to the current ``sys.stderr``, not to the one of the call
    that created it: that one may be closed by now (an earlier pytest test's capture, as
    when tests/test_ingest.py ran the CLI first), and every record would end as a
    "--- Logging error ---" traceback printing the logging call's source line."""
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    setup_logging()
    setup_logging()
    first.close()
    for _ in range(2):
        now = io.StringIO()
        monkeypatch.setattr(sys, "stderr", now)
        setup_logging()
        logging.getLogger("stafet.x").warning("cpr 1203084127 here")
        assert now.getvalue().count("cpr ******-**** here") == 1, now.getvalue()  # one handler, masked
        assert "1203084127" not in now.getvalue() and "Logging error" not in now.getvalue()


def test_prefect_keeps_the_stafet_handler_on_the_root_logger() -> None:
    """Prefect's logging setup replaces the root logger's handlers unless one of them is a
    "user handler": it has a formatter and its class name does not start with ``_``
    (prefect.logging.configuration.setup_logging). The stafet handler must be one, or a
    flow run drops it and every other root handler (tests/reliability/canary_run.py's
    log file)."""
    setup_logging()
    (handler,) = [h for h in logging.getLogger().handlers if getattr(h, "_stafet", False)]
    assert handler.formatter is not None and not type(handler).__name__.startswith("_")


def test_errors_redact_their_own_message() -> None:
    e = DataError("value 120308-4127 is odd", file="a.csv", row=3, rule="r")
    assert "4127" not in str(e) and "a.csv" in str(e) and "row=3" in str(e)


def test_every_existing_handler_gets_the_filter() -> None:
    import io

    from stafet.core.logs import protect_all_handlers

    out = io.StringIO()
    lg = logging.getLogger("some.library")
    h = logging.StreamHandler(out)
    lg.addHandler(h)
    lg.propagate = False
    try:
        lg.warning("before 120308-4127")
        assert protect_all_handlers() >= 1
        lg.warning("after 120308-4127")
    finally:
        lg.removeHandler(h)
    lines = out.getvalue().splitlines()
    assert lines == ["before 120308-4127", "after ******-****"]
