"""The monthly ``statistics`` flow: orchestration only; the figures are :func:`stafet.night.statistics`.

Parameters are the network's path and, optionally, the first and last month (``YYYY-MM``);
the deployment in ``prefect.yaml`` passes only the network, so each run on the 1st reports
the 12 whole months before it. Prefect is told counts only: a markdown artifact
(``statistics``) of the network's monthly totals and cohorts, small counts suppressed
(``<5``), and a result of counts and the report's path. No CPR, no pseudonym.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from flows.nightly import _common, _contained
from stafet import night
from stafet.core.logs import protect_all_handlers


@task(name="statistics", **_common)
def statistics_task(network: str, from_month: str = "", to_month: str = "") -> dict[str, Any]:
    """Compute and write the statistics; counts, the report's path and the artifact's markdown."""
    return _contained(night.statistics, network, from_month, to_month)


@flow(name="statistics", persist_result=False)
def statistics(network: str, from_month: str = "", to_month: str = "") -> dict[str, Any]:
    """Monthly: the statistics report (HTML, CSV, JSON) and a counts-only markdown artifact."""
    protect_all_handlers()
    result = statistics_task(network, from_month, to_month)
    create_markdown_artifact(key="statistics", markdown=result["markdown"],
                             description="Statistik: kun antal, små tal (1–4) skjult.")
    get_run_logger().info("statistics %s–%s: %s tables, %s cells suppressed", result["from"], result["to"],
                          result["tables"], result["suppressed"])
    return {k: v for k, v in result.items() if k != "markdown"}
