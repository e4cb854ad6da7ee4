"""The monthly ``statistics`` flow (``flows/monthly_statistics.py``): its task without Prefect, then for real.

As ``tests/flows/test_flows.py`` does: the task's ``.fn()`` on a fresh copy of the demo
network, then the flow in-process against ``prefect_test_harness``, and everything Prefect
was told (run names, parameters, the markdown artifact, logs, the result) is searched for
CPR-shaped numbers and the CPRs used.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from flows import monthly_statistics as stats_flow
from stafet.core.cpr import parse_cpr
from stafet.core.errors import ConfigError
from stafet.core.models import Dropout, Enrolment, Provenance

CPR_SHAPE = re.compile(r"(?<!\d)\d{6}[- ]?\d{4}(?!\d)")
CPRS = [f"0{d}0309{4100 + d}" for d in range(1, 8)]  # synthetic, 16 in 2026


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A temporary Prefect API (SQLite) for this module's in-process flow runs."""
    from prefect.settings import PREFECT_HOME, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    home = tmp_path_factory.mktemp("prefect-home")
    with temporary_settings(updates={PREFECT_HOME: str(home)}), \
            prefect_test_harness(server_startup_timeout=120):
        yield


def _fill(ctx: Any) -> None:
    """Seven enrolments at Mercantec in March 2026 and one dropout: a shown count and a small one."""
    prov = Provenance("t", "779008_haendelser_2026031006.csv", 2, datetime(2026, 3, 10, 6, tzinfo=UTC),
                      institution="779008")
    recs: list[Any] = [Enrolment(cpr=parse_cpr(c), institution="779008", home_municipality="791",
                                 event_date=date(2026, 3, 9), programme_code="1640", provenance=prov)
                       for c in CPRS]
    recs.append(Dropout(cpr=parse_cpr(CPRS[0]), institution="779008", home_municipality="791",
                        event_date=date(2026, 3, 2), programme_code="1640", reason_code="03",
                        provenance=prov))
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, recs)


def _no_cpr(what: str, text: str) -> None:
    if CPR_SHAPE.search(text) or any(c in text or f"{c[:6]}-{c[6:]}" in text for c in CPRS):
        pytest.fail(f"{what}: holds a CPR-shaped value", pytrace=False)


def test_the_task_writes_the_report_and_returns_counts(demo_net: tuple[str, Any]) -> None:
    network, ctx = demo_net
    _fill(ctx)
    out = stats_flow.statistics_task.fn(network, "2026-01", "2026-06")
    assert (out["from"], out["to"]) == ("2026-01", "2026-06")
    assert out["tables"] >= 10 and out["suppressed"] >= 1
    report = Path(out["report"])
    assert report.is_file() and report.parent.name == "statistics-2026-01_2026-06"
    assert (report.parent / "enrolments_by_institution.csv").is_file()
    assert "| Optagelser | 0 | 0 | 7 | 0 | 0 | 0 | 7 |" in out["markdown"]
    for f in report.parent.iterdir():
        _no_cpr(f.name, f.read_text(encoding="utf-8-sig"))
    _no_cpr("result", json.dumps(out))
    with pytest.raises(ConfigError):
        stats_flow.statistics_task.fn(network, "2026-01", "")


def test_without_months_the_12_before_this_month_are_reported(demo_net: tuple[str, Any]) -> None:
    from stafet import night

    network, _ctx = demo_net
    out = night.statistics(network, today=date(2026, 12, 1))
    assert (out["from"], out["to"]) == ("2025-12", "2026-11")


def _told() -> list[tuple[str, str]]:
    from prefect.client.orchestration import get_client
    from prefect.logging.handlers import APILogHandler

    async def read() -> list[tuple[str, str]]:
        await APILogHandler.aflush()
        async with get_client() as client:
            runs = await client.read_flow_runs()
            out = [("flow run", f"{fr.name} {json.dumps(fr.parameters)}") for fr in runs]
            out += [("task run", tr.name) for tr in await client.read_task_runs()]
            out += [(f"artifact {a.key}", json.dumps(a.data)) for a in await client.read_artifacts()]
            out += [("log", lg.message) for lg in await client.read_logs()]
            return out

    return asyncio.run(read())


def test_the_flow_tells_prefect_counts_only(harness: None, demo_net: tuple[str, Any]) -> None:
    network, ctx = demo_net
    _fill(ctx)
    result = stats_flow.statistics(network, "2026-01", "2026-06")
    assert "markdown" not in result and Path(result["report"]).is_file()
    told = _told()
    artifacts = [text for what, text in told if what == "artifact statistics"]
    assert artifacts and "Optagelser" in artifacts[0] and "<5" in artifacts[0]
    assert any(m.startswith("statistics 2026-01–2026-06") for what, m in told if what == "log")
    for what, text in told:
        _no_cpr(what, text)
    _no_cpr("result", json.dumps(result))
