"""A partitioned night on the Prefect server, started or re-run in part from the command line.

``stafet run nightly-partitioned [--only PART]… [--failed] [--no-wait]`` (``stafet.cli.main``)
calls :func:`start`: it starts a flow run of the ``nightly-partitioned`` deployment on the
server ``PREFECT_API_URL`` names (its workers run the children), with ``partitions`` set to
what is to be re-run, and waits for it unless told not to. :func:`last_failures` reads the
partitions that did not complete in the last finished night from its ``nightly-partitions``
table artifact (written by ``flows.partitioned``), so ``--failed`` re-runs exactly those.
Every stage is idempotent: re-running a part redoes only what is not done.

Parameters, run names and the table hold source names, organisation ids and counts only.
May import Prefect and ``stafet.core``; it does not import ``flows`` (the CLI checks the
partition syntax with ``flows.partitioned.parse_selection`` before calling).
"""

from __future__ import annotations

import inspect
import json
import time
from typing import Any

from stafet.core.errors import ConfigError, StafetError

PARENT = "nightly-partitioned/nightly-partitioned"
"""The deployment of the partitioned night's parent flow (prefect.yaml)."""
TABLE_KEY = "nightly-partitions"
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}


def _require_server() -> None:
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise ConfigError("a partitioned night runs on a Prefect server with the deployments of "
                          "prefect.yaml: set PREFECT_API_URL (e.g. http://prefect.internal:4200/api) "
                          "and try again")


def _client() -> Any:
    from prefect.client.orchestration import get_client

    _require_server()
    return get_client(sync_client=True)


def _table(client: Any, flow_run_id: Any) -> list[dict[str, Any]]:
    """The ``nightly-partitions`` table of one parent run ([] when it ended before writing it)."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    found = client.read_artifacts(artifact_filter=ArtifactFilter(
        key=ArtifactFilterKey(any_=[TABLE_KEY]), flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    for art in found[:1]:
        data = json.loads(art.data) if isinstance(art.data, str) else art.data
        return [dict(r) for r in data] if isinstance(data, list) else []
    return []


def last_failures() -> dict[str, Any]:
    """The last finished night: its run, state, and the partitions that did not complete.

    Raises:
        ConfigError: no night has finished on this server, or the last one left no table
            (it crashed before its end): there is nothing to pick from.
    """
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    with _client() as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["nightly-partitioned"])),
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(
                any_=[StateType.COMPLETED, StateType.FAILED, StateType.CRASHED]))),
            sort=FlowRunSort.START_TIME_DESC, limit=1)
        if not runs:
            raise ConfigError("no partitioned night has finished on this server yet: nothing to re-run")
        last = runs[0]
        table = _table(client, last.id)
    state = last.state.type.value if last.state else "UNKNOWN"
    if not table and state != "COMPLETED":
        raise ConfigError(f"the last night ({last.name}, {state}) ended before it wrote its partition table: "
                          "re-run it whole, or name the parts with --only")
    failed = [str(r["partition"]) for r in table if r.get("state") != "COMPLETED"]
    return {"flow_run": str(last.id), "name": last.name, "state": state, "failed": failed}


def start(only: list[str] | None = None, *, network: str | None = None, wait: bool = True,
          poll: float = 2.0, timeout: float = 4 * 3600.0) -> dict[str, Any]:
    """Start the partitioned night (or only the parts ``only`` names) on the server.

    With ``wait``, polls until the run is final and returns its state and partition table;
    without, returns as soon as the server has the run.
    """
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    params: dict[str, Any] = {}
    if only:
        params["partitions"] = list(only)
    if network:
        params["network"] = network
    _require_server()  # before anything is started
    try:
        fr = run_deployment(PARENT, parameters=params, timeout=0,
                            tags=["stafet-rerun"] if only else None)
    except ObjectNotFound:
        raise ConfigError(f"the server has no deployment {PARENT}: deploy prefect.yaml "
                          "(prefect deploy --all) and try again") from None
    assert not inspect.isawaitable(fr)  # called outside a flow: the run, not a coroutine
    out: dict[str, Any] = {"flow_run": str(fr.id), "name": fr.name,
                           "partitions": params.get("partitions", []), "state": "SCHEDULED"}
    if not wait:
        return out
    deadline = time.monotonic() + timeout
    with _client() as client:
        while True:
            run = client.read_flow_run(fr.id)
            state = run.state.type.value if run.state else "SCHEDULED"
            if state in FINAL:
                break
            if time.monotonic() > deadline:
                raise StafetError(f"the night {fr.name} is still {state} after {timeout:.0f} s: "
                                  "watch it in the Prefect UI")
            time.sleep(poll)
        out["state"] = state
        out["table"] = _table(client, fr.id)
    return out
