"""Quarantine rule texts name the row's own values and the allowed list, never a CPR (issue 20).

The demo's export of bad rows (an unknown event type ``AFBRUDT``, a CPR of 31 February, a
2-digit municipality, an unknown reason code, a decimal point) is ingested for real; the one
function (:func:`stafet.reports.rule_text.explain`) is read where a steward reads it: the
function itself, ``stafet quarantine show`` (text and ``--json``), the steward's validation
report, and the console's explanation (``stafet.web.explain``).
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

from typer.testing import CliRunner

from stafet.cli.main import app
from stafet.demo.network import BAD_ROWS_FILE
from stafet.reports.rule_text import explain, listed

runner = CliRunner()
CPR_SHAPE = re.compile(r"\b\d{6}-?\d{4}\b")
CPRS = ("0101084411", "310209-4127", "0505094418")


def _bad_rows(demo_net: Any, tmp_path: Any) -> dict[str, dict[str, Any]]:
    """Ingest the demo's bad rows; per rule the first quarantined row's ``quarantine show --json``."""
    path, _ = demo_net
    f = tmp_path / BAD_ROWS_FILE
    f.write_bytes(resources.files("stafet.demo.data").joinpath(BAD_ROWS_FILE).read_bytes())
    r = runner.invoke(app, ["ingest", "--json", "--network", path, str(f)])
    assert r.exit_code == 0, r.output
    listing = json.loads(runner.invoke(app, ["quarantine", "list", "--json", "--network", path]).stdout)
    out: dict[str, dict[str, Any]] = {}
    for q in listing:
        shown = runner.invoke(app, ["quarantine", "show", str(q["id"]), "--json", "--network", path])
        assert shown.exit_code == 0, shown.output
        for rule in q["rule"].split(","):
            out.setdefault(rule, json.loads(shown.stdout))
    return out


def test_the_sentence_names_the_rows_value_and_the_allowed_list() -> None:
    why = explain("easy-a", "event_type", {"Haendelse": "AFBRUDT", "CprNr": "0101084411"},
                  "event_type: Haendelse is OPTAG, AFBRUD, FRAFALDSTRUET or GENNEMFOERT")
    assert why.sentence.startswith("Haendelse har værdien »AFBRUDT«; tilladt: ")
    assert "OPTAG" in why.sentence and "AFBRUD," in why.sentence and "GENNEMFOERT" in why.sentence
    assert why.fields == ("Haendelse",) and "AFBRUD" in why.allowed


def test_the_cpr_columns_text_says_the_rule_without_the_value() -> None:
    for rule, reason in (("cpr_format", "cpr_format: CprNr is DDMMYY-SSSS or DDMMYYSSSS"),
                         ("cpr_birth_date", "cpr_birth_date: CprNr holds a real birth date (century from "
                                            "the CPR office's table)")):
        why = explain("easy-a", rule, {"CprNr": "310209-4127", "Haendelse": "OPTAG"}, reason)
        assert "CprNr" in why.sentence and "vises ikke" in why.sentence
        assert "310209" not in why.sentence and "4127" not in why.sentence
    age = explain("easy-a", "age_range", {"CprNr": "0101084411", "Haendelsesdato": "20-11-2026"},
                  "age_range: the youth is 15–29 years old on Haendelsesdato")
    assert "»20-11-2026«" in age.sentence and "15–29 år" in age.sentence and "0101" not in age.sentence


def test_a_range_a_pair_several_rules_and_a_long_list() -> None:
    fields = {"Startdato": "18-09-2026", "Haendelsesdato": "19-08-2026", "Fravaersprocent": "12.5",
              "Bopaelskommune": "79"}
    pair = explain("easy-a", "start_before_event", fields, "start_before_event: x")
    assert "Startdato »18-09-2026« ligger efter Haendelsesdato »19-08-2026«" in pair.sentence
    both = explain("easy-a", "municipality_format,decimal_format", fields,
                   "municipality_format: Bopaelskommune is a 3-digit municipality number; "
                   "decimal_format: Fravaersprocent is empty or a number with a decimal comma")
    assert "Bopaelskommune har værdien »79«" in both.sentence and "»12.5«" in both.sentence
    assert both.fields == ("Bopaelskommune", "Fravaersprocent")
    reason = explain("easy-a", "dropout_reason", {"Afbrudsaarsag": "77"}, "dropout_reason: a dropout …")
    assert reason.sentence.startswith("Afbrudsaarsag har værdien »77«; tilladt: 01, 02, 03")
    assert listed([f"{i:02}" for i in range(20)]).endswith(", … (20 i alt)")
    unknown = explain("no-such-source", "x", {"CprNr": "0101084411"}, "x: 0101084411 broke it")
    assert "0101084411" not in unknown.sentence and "reglen x" in unknown.sentence


def test_quarantine_show_the_report_and_the_console_say_it_in_the_rows_values(demo_net, tmp_path) -> None:
    from stafet.reports.validation import regenerate
    from stafet.web.explain import explain as console_explain

    path, ctx = demo_net
    rows = _bad_rows(demo_net, tmp_path)
    assert {"event_type", "cpr_birth_date", "municipality_format", "decimal_format"} <= set(rows)
    assert rows["event_type"]["why"].startswith("Haendelse har værdien »AFBRUDT«; tilladt: OPTAG, AFBRUD")
    assert "AFBRUD" in rows["event_type"]["allowed"] and rows["event_type"]["rule_text"].startswith("event_type:")  # noqa: E501
    assert "Bopaelskommune har værdien »79«" in rows["municipality_format"]["why"]
    assert "Fravaersprocent har værdien »12.5«" in rows["decimal_format"]["why"]
    assert "vises ikke" in rows["cpr_birth_date"]["why"]
    text = json.dumps(rows, ensure_ascii=False)
    assert not any(c in text for c in CPRS)  # masked in fields, never in a rule text
    qid = rows["event_type"]["id"]
    human = runner.invoke(app, ["quarantine", "show", str(qid), "--network", path], env={"COLUMNS": "200"})
    assert "Haendelse har værdien »AFBRUDT«; tilladt:" in human.stdout and not CPR_SHAPE.search(human.stdout)
    (report,) = regenerate(ctx.store, BAD_ROWS_FILE, home=ctx.home)
    html = report.read_text(encoding="utf-8")
    assert "Haendelse har værdien »AFBRUDT«; tilladt: OPTAG, AFBRUD" in html
    assert "Bopaelskommune har værdien »79«" in html and not any(c in html for c in CPRS)
    from stafet.ingest.quarantine import quarantined_fields
    from stafet.store import quarantine

    with ctx.store.session() as s:
        q = quarantine.get(s, qid)
        assert q is not None
        said = console_explain(q.source, q.rule, quarantined_fields(ctx.store, q), q.reason)
    assert said.sentence == rows["event_type"]["why"]
