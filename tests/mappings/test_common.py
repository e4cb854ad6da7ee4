"""The converters every mapping table is built from."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mappings.common import (
    ConversionError,
    apply,
    code_in,
    cpr,
    date_dmy,
    date_iso,
    decimal_comma,
    decimal_point,
    free_text,
    ja_nej,
    jn,
    optional,
    percentage,
    pipe_list,
    required,
    split_name,
    text,
)
from stafet.core.errors import DataError
from stafet.core.redaction import redact


def test_dates() -> None:
    assert date_dmy("17-11-2026") == date(2026, 11, 17)
    assert date_dmy(" 29-02-2024 ") == date(2024, 2, 29)
    assert date_iso("2026-11-17") == date(2026, 11, 17)
    for bad in ("2026-11-17", "17/11/2026", "31-02-2026", "1-1-2026", ""):
        with pytest.raises(ConversionError) as e:
            date_dmy(bad)
        assert e.value.rule == "date_format"
    with pytest.raises(ConversionError):
        date_iso("17-11-2026")


def test_decimals() -> None:
    assert decimal_comma("18,5") == 18.5 and decimal_comma(" 41 ") == 41.0
    assert decimal_point("27.5") == 27.5
    with pytest.raises(ConversionError, match="separator"):
        decimal_comma("18.5")
    with pytest.raises(ConversionError, match="not a number"):
        decimal_comma("abc")
    with pytest.raises(ConversionError) as e:
        percentage(decimal_comma)("101,0")
    assert e.value.rule == "percentage_range"


def test_yes_no_and_codes() -> None:
    assert jn("J") is True and jn(" n ") is False
    assert ja_nej("ja") is True and ja_nej("NEJ") is False
    with pytest.raises(ConversionError):
        jn("ja")
    assert code_in({"01": "x"})(" 01 ") == "01"
    with pytest.raises(ConversionError) as e:
        code_in({"01": "x"}, "dropout_reason")("1")
    assert e.value.rule == "dropout_reason"


def test_text_names_lists() -> None:
    assert text("  a\r\nb ") == "a\nb"
    assert split_name("Freja Kjær") == ("Freja", "Kjær")
    assert split_name("Anne Marie  Holm Hansen") == ("Anne Marie Holm", "Hansen")
    assert split_name("Madonna") == ("Madonna", "") and split_name(" ") == ("", "")
    assert pipe_list("779008| guidance ||") == ("779008", "guidance")
    assert optional(date_iso)("") is None
    with pytest.raises(ConversionError) as e:
        required(text)("  ")
    assert e.value.rule == "required"


def test_cpr_never_in_the_message() -> None:
    assert cpr("120308-4127").digits == "1203084127"
    assert cpr("1203084127").birth_date == date(2008, 3, 12)
    for bad, rule in (("12030-4127", "cpr_format"), ("311308-4127", "cpr_birth_date")):
        with pytest.raises(ConversionError) as e:
            cpr(bad)
        assert e.value.rule == rule and bad not in str(e.value)


def test_apply_names_column_and_rule() -> None:
    table = {"when": ("Dato", date_iso), "who": ("Navn", text)}
    assert apply(table, {"Dato": "2026-01-02", "Navn": " A "}) == {"when": date(2026, 1, 2), "who": "A"}
    with pytest.raises(DataError) as e:
        apply(table, {"Dato": "02-01-2026"}, file="f.csv", row=7)
    assert (e.value.rule, e.value.row, e.value.context["column"]) == ("date_format", 7, "Dato")


def test_free_text_redacts_a_typed_cpr_in_every_written_form() -> None:
    for form in ("020209-4012", "0202094012", "020209 4012"):
        assert free_text(f" bror {form} ringede\r\n") == "bror ******-**** ringede"
        assert free_text(form) == "******-****"
        assert free_text(f"{form};{form}") == "******-****;******-****"
    assert free_text("  Højt fravær,\r\nsamtale aftalt ") == "Højt fravær,\nsamtale aftalt"   # as text()
    assert free_text("") == "" and free_text("Åse Møller") == "Åse Møller"


@pytest.mark.parametrize("value", [
    "mødt 3 af 10 dage 17-11-2026", "tlf 20304050, sag 2026-0042", "ref 12345678901", "x0202094012",
    "0202094012x", "02020940123", "020209--4012", "a 3112994123 b", "990209-4012", "٠٢٠٢٠٩-٤٠١٢",
    "02٠2٠9-4٠12", "1" * 40, "020209-4012 " * 50, "x" * 500, "0202094012\n0303094012", "020209-4012\r\n"])
def test_free_text_pre_check_never_skips_what_redact_would_catch(value: str) -> None:
    """The cheap pre-check is only a shortcut: the result is always ``redact(text(v))``."""
    assert free_text(value) == redact(text(value))
    assert free_text(f" {value} ") == redact(text(value))


def test_apply_remembers_values_but_every_failure_raises_again() -> None:
    table = {"day": ("Dato", required(date_dmy)), "cpr": ("Cpr", cpr)}
    first = apply(table, {"Dato": "01-02-2026", "Cpr": "010208-4127"}, file="f.csv", row=2)
    again = apply(table, {"Dato": "01-02-2026", "Cpr": "010208-4128"}, file="f.csv", row=3)
    assert first["day"] == again["day"] == date(2026, 2, 1)
    assert (first["cpr"].digits, again["cpr"].digits) == ("0102084127", "0102084128")
    for row in (4, 5):  # the same bad value, twice: an error naming its own row each time
        with pytest.raises(DataError) as e:
            apply(table, {"Dato": "31-02-2026", "Cpr": "010208-4127"}, file="f.csv", row=row)
        assert (e.value.rule, e.value.row, e.value.file) == ("date_format", row, "f.csv")


# --- issue 16, findings 10 and 13 -----------------------------------------------------------

def test_free_text_redacts_the_spellings_the_review_found() -> None:
    """A note carried ``CPR120308-4127``, ``230507–5218``, ``120308 - 4127``, ``1203084127a``."""
    for form, out in [("CPR120308-4127", "CPR******-****"), ("230507\u20135218", "******-****"),
                      ("120308 - 4127", "******-****"), ("1203084127a", "******-****a"),
                      ("120308\u00a0\u2013\u20094127", "******-****")]:
        assert free_text(f"note: {form} ringede") == f"note: {out} ringede"


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ æøåÆØÅéèêëüöäÉÜÖÄñçßÿ"


@settings(max_examples=300)
@given(st.text(st.sampled_from(_LETTERS), min_size=1, max_size=40).filter(lambda s: not s.isascii()))
def test_text_refuses_utf8_read_as_a_single_byte_encoding(clean: str) -> None:
    """Names and notes with any European letter pass; the same text written as UTF-8 and read as
    cp1252 or ISO-8859-1 (``SÃ¸ren``) is refused with rule ``encoding``, and the value is not echoed."""
    assert text(clean) == clean.strip()
    for enc in ("cp1252", "latin-1"):
        try:
            garbled = clean.encode("utf-8").decode(enc)
        except UnicodeDecodeError:
            continue  # a byte cp1252 leaves undefined: the reader refuses such a file
        if enc == "latin-1" and any("\x80" <= c <= "\x9f" for c in garbled):
            continue  # C1 controls: the reader refuses them in ISO-8859-1 text
        with pytest.raises(ConversionError) as e:
            text(garbled)
        assert e.value.rule == "encoding" and garbled.strip() not in str(e.value)
        with pytest.raises(ConversionError):
            free_text(garbled)


@pytest.mark.parametrize("value", ["Ø–Nord", "«fravær» – 37½ %", "Åse Møller", "12° ©", "€ 5,00", "Nº 3"])
def test_text_keeps_real_single_byte_punctuation_next_to_letters(value: str) -> None:
    assert text(value) == value
