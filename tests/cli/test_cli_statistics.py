"""``stafet statistics --from --to [--json] [--out]`` on the demo network with synthetic youths."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from stafet.cli.main import app
from stafet.core.cpr import parse_cpr
from stafet.core.models import Completion, Provenance

runner = CliRunner()
CPR_SHAPE = re.compile(r"(?<!\d)\d{6}[- ]?\d{4}(?!\d)")
CPRS = [f"1{d}0607{4200 + d}" for d in range(0, 9)]  # synthetic, born June 2007


def _fill(ctx: Any) -> None:
    """Six completions at Mercantec in May 2026, two at Viborg Katedralskole."""
    def prov(inst: str) -> Provenance:
        return Provenance("t", f"{inst}_haendelser_2026052006.csv", 2, datetime(2026, 5, 20, 6, tzinfo=UTC),
                          institution=inst)

    recs = [Completion(cpr=parse_cpr(c), institution=inst, home_municipality="791",
                       event_date=date(2026, 5, 19), programme_code="1640", provenance=prov(inst))
            for c, inst in zip(CPRS[:8], ["779008"] * 6 + ["751001"] * 2, strict=True)]
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, recs)


def test_json_to_stdout_and_files_in_out(demo_net: tuple[str, Any], tmp_path: Path) -> None:
    network, ctx = demo_net
    _fill(ctx)
    out = tmp_path / "stat"
    r = runner.invoke(app, ["statistics", "--from", "2026-01", "--to", "2026-06", "--json", "--out", str(out),
                            "--today", "2026-07-01", "--network", network])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["format"] == "stafet.statistics/1" and doc["as_of"] == "2026-07-01"
    t = doc["tables"]["completions_by_institution"]
    assert t["header"] == ["Institution", *(f"2026-0{m}" for m in range(1, 7)), "I alt"]
    rows = {r[0]: r[1:] for r in t["rows"]}
    assert rows["Viborg Katedralskole (751001)"] == [0, 0, 0, 0, "<5", 0, "<5"]
    assert rows["I alt"] == [0, 0, 0, 0, 8, 0, 8]
    assert rows["Mercantec (779008)"][4] == "x"  # else 8 − 6 would give the 2 away
    written = {p.name for p in out.iterdir()}
    assert written >= {"statistics.html", "statistics.json", "completions_by_institution.csv"}
    for text in [r.output, *(p.read_text(encoding="utf-8-sig") for p in out.iterdir())]:
        assert not CPR_SHAPE.search(text)
        assert not any(c in text for c in CPRS)


def test_the_summary_is_danish_and_the_default_folder_is_under_home(demo_net: tuple[str, Any]) -> None:
    network, ctx = demo_net
    _fill(ctx)
    r = runner.invoke(app, ["statistics", "--from", "2026-05", "--to", "2026-05", "--network", network])
    assert r.exit_code == 0, r.output
    assert "Statistik" in r.output and "skjulte celler" in r.output and "Rapport:" in r.output
    assert (ctx.home / "reports" / "statistics-2026-05_2026-05" / "statistics.html").is_file()
    assert not CPR_SHAPE.search(r.output)


def test_a_bad_month_or_an_empty_period_is_a_configuration_error(demo_net: tuple[str, Any]) -> None:
    network, _ctx = demo_net
    for args in (["--from", "2026-13", "--to", "2026-12"], ["--from", "2026-06", "--to", "2026-01"]):
        r = runner.invoke(app, ["statistics", *args, "--network", network])
        assert r.exit_code == 2, r.output
        assert "error:" in r.output and "Traceback" not in r.output
