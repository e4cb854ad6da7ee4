"""The redaction filter: the safety net behind "never log a CPR"."""

import logging

from stafet.errors import DataError
from stafet.logs import RedactCprFilter, setup_logging


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
    assert "1203084127" not in capsys.readouterr().err


def test_errors_redact_their_own_message() -> None:
    e = DataError("value 120308-4127 is odd", file="a.csv", row=3, rule="r")
    assert "4127" not in str(e) and "a.csv" in str(e) and "row=3" in str(e)


def test_every_existing_handler_gets_the_filter() -> None:
    import io

    from stafet.logs import protect_all_handlers

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
