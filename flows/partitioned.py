"""One night spread over the work pool: a parent flow and one flow run per partition.

``nightly-partitioned`` (the parent) runs the night of :func:`flows.nightly.nightly_sync`
in stages, and starts each partition of a stage as its own flow run of the
``nightly-partition`` deployment (:func:`prefect.deployments.run_deployment`), so the
workers of the pool, on as many machines, share one night:

1. ``ingest:<sources>`` — one partition per source system (grouped when there are
   more sources than ``max_partitions``);
2. ``route`` — once, in the parent (one pass over the store; it is not the cost);
3. ``send:<recipients>`` — per batch of recipients: a recipient's handovers are sent by
   one partition, and on PostgreSQL each partition claims its rows
   (:func:`stafet.store.outbox.due`), so no two runs send the same package;
4. ``revocation`` — once, in the parent;
5. ``receive:<orgs>`` — per batch of hosted organisations (their inboxes);
6. ``receipts:<orgs>`` — the second pass over the inboxes (receipts written by one hosted
   org land in another's), partitioned as ``receive`` once the receive stage has sent
   ``spread_receipts_from`` receipts or more; fewer, and the parent reads them (threads);
7. ``deadlines``, ``report``, ``notices`` — once, in the parent.

Why these keys: docs/scaling.md. The parent waits for each stage's children (polling the
server), reads each child's counts artifact, and reports every partition's outcome in
the table artifact ``nightly-partitions`` (counts only). A child whose worker went away
(the worker is OFFLINE by its heartbeats, or the run is already Crashed) is marked
Crashed and started again, with ``takeover`` naming the dead run so its outbox claims
may be taken over at once; a child that *failed* is reported and left to the operator:
``partitions=["send:uu-viborg"]`` re-runs just that part (every stage is idempotent).

Nothing here sees personal data: parameters are paths, source names and organisation
ids; results and artifacts are counts.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey
from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError
from prefect.concurrency.sync import concurrency
from prefect.deployments import run_deployment
from prefect.runtime import flow_run as current_run
from prefect.states import Crashed

from flows.nightly import (
    _common,
    _contained,
    _receive_pass,
    _retriable,
    _threads,
    _why,
    deadlines_task,
    notices_task,
    receive_task,
    refresh_revocation_task,
    report_task,
    route,
)
from stafet import night
from stafet.core.errors import TransientError
from stafet.core.logs import protect_all_handlers

CHILD = "nightly-partition/nightly-partition"
"""The deployment each partition runs as (prefect.yaml)."""
STAGES = ("ingest", "route", "send", "revocation", "receive", "receipts", "deadlines", "report", "notices")
PARTITIONED = ("ingest", "send", "receive", "receipts")
SPREAD_RECEIPTS_FROM = 2000
"""Receipts sent in the receive stage from which the receipts pass is worth partitions of its
own: a receipt costs ≈ 15 ms of CPU to open, so 2,000 are ≈ 30 CPU-s, about what starting
four flow-run processes costs; below it, the parent reads the inboxes in threads
(``bench/national.py`` at 10 municipalities: 800 receipts, 14 s in the parent, 38 s as 4
partitions on one worker)."""
COLUMNS = ("files", "rows", "accepted", "quarantined", "rejected_files", "sent", "held", "retry_later",
           "failed", "deferred", "imported", "receipts_sent", "acknowledged", "duplicates", "rejected",
           "work_ms")
"""``work_ms``: milliseconds the partition spent in its stage's own work (``_run_partition``), measured by the
child itself: what the process start, the deployment pull and the flow engine around it are not."""
COUNTS_KEY = "nightly-partition-counts"
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}


# --------------------------------------------------------------------------- one partition


ENDPOINT_LIMIT = "stafet-endpoint-{org}"
"""The Prefect global concurrency limit of an organisation's endpoint: deliveries at once, over every worker.

An operator sets one for a slow endpoint: ``prefect gcl create stafet-endpoint-uu-viborg --limit 2``.
"""
SLOT_ASK_TIMEOUT = 30.0
"""Seconds one request for a delivery slot may take (a hung server), not a wait for a free slot.

A slot is asked for once (``max_retries=0``): the server grants it or answers that none is
free, and the handover is set aside (back-pressure). A short client-side timeout instead
(0.1 s) raced the server: a slot granted just after the client gave up stayed leased to
no one for the lease's life, and the endpoint's other deliveries stalled behind it.
"""
SLOT_LEASE = 60.0
"""Seconds a delivery slot's lease lasts without renewal: held slots are renewed while the put
runs; one whose process died comes free after this."""


def limited_endpoints(orgs: list[str]) -> set[str]:
    """Those of ``orgs`` whose endpoint has an active global concurrency limit (read once per partition)."""
    names = {ENDPOINT_LIMIT.format(org=o): o for o in orgs}
    found: set[str] = set()
    with get_client(sync_client=True) as client:
        offset = 0
        while True:
            page = client.read_global_concurrency_limits(limit=200, offset=offset)
            found |= {names[g.name] for g in page if g.name in names and g.active}
            if len(page) < 200:
                return found
            offset += 200


def endpoint_slots(limited: set[str]) -> Any:
    """The :data:`stafet.exchange.outbox.EndpointSlot` of a send partition: Prefect's global limits.

    A put to a limited endpoint occupies one slot of ``stafet-endpoint-<org>`` (leased for
    :data:`SLOT_LEASE`, renewed while held: a dead worker's slot comes free by itself) or,
    when the server has none free, is set aside by the send pass; other endpoints take no
    slot. A slot is asked for once (:data:`SLOT_ASK_TIMEOUT`).
    """
    @contextmanager
    def slot(recipient: str) -> Iterator[bool]:
        if recipient not in limited:
            yield True
            return
        stack = ExitStack()
        try:
            stack.enter_context(concurrency(ENDPOINT_LIMIT.format(org=recipient), occupy=1,
                                            timeout_seconds=SLOT_ASK_TIMEOUT, max_retries=0,
                                            lease_duration=SLOT_LEASE, strict=False))
        except (TimeoutError, ConcurrencySlotAcquisitionError):  # none free (423), or no answer
            yield False
            return
        with stack:
            yield True

    return slot


@task(name="send-partition", retries=3, retry_delay_seconds=5, retry_condition_fn=_retriable, **_common)
def send_claimed(network: str, recipients: list[str], claimant: str, takeover: list[str]) -> dict[str, Any]:
    """Send a batch of recipients' handovers, claimed for this flow run (PostgreSQL), within the endpoints' limits."""  # noqa: E501
    slot = endpoint_slots(limited_endpoints(recipients))
    return _contained(night.send, network, recipients, claimant, tuple(takeover), slot)


@task(name="ingest-sources", **_common)
def ingest_sources(network: str, sources: list[str]) -> dict[str, list[dict[str, Any]] | Exception]:
    """Pull and ingest the sources' waiting files, their small files validated together.

    Per source its files, or what stopped it (:func:`stafet.night.ingest_sources`).
    """
    return _contained(night.ingest_sources, network, sources)


INGEST_RETRIES = 3
"""A source stopped by a transport error is tried again this often (5 s, 10 s, 20 s later),
as the nightly flow's ``ingest-source`` task retries."""


def _ingest_all(network: str, sources: list[str]) -> dict[str, list[dict[str, Any]] | Exception]:
    outcomes = ingest_sources(network, sources)
    for attempt in range(INGEST_RETRIES):
        again = [s for s, o in outcomes.items() if isinstance(o, TransientError)]
        if not again:
            break
        time.sleep(5 * 2 ** attempt)
        outcomes.update(ingest_sources(network, again))
    return outcomes


def _run_partition(network: str, stage: str, keys: list[str], takeover: list[str]) -> tuple[dict[str, int],
                                                                                           list[str]]:
    counts = dict.fromkeys(COLUMNS, 0)
    failures: list[str] = []
    if stage == "ingest":
        for source, files in _ingest_all(network, keys).items():
            if isinstance(files, Exception):
                failures.append(f"source {source}: {_why(files)}")
                continue
            counts["files"] += len(files)
            counts["rejected_files"] += sum(1 for f in files if f["rejected"])
            for k in ("rows", "accepted", "quarantined"):
                counts[k] += sum(f[k] for f in files)
    elif stage == "send":
        r = send_claimed(network, keys, str(current_run.id or ""), takeover)
        for k in ("sent", "held", "retry_later", "failed", "deferred"):
            counts[k] += r[k]
        failures += [f"send: {e}" for e in r["errors"]]
    elif stage in ("receive", "receipts"):
        for org, r in receive_task(network, keys, "", str(current_run.id or ""), takeover).items():
            if "failed" in r:
                failures.append(f"receive {org}: {r['failed']}")
                continue
            for k in ("imported", "receipts_sent", "acknowledged", "duplicates", "rejected"):
                counts[k] += r.get(k, 0)
    else:
        raise ValueError(f"not a partitioned stage: {stage}")
    return counts, failures


@flow(name="nightly-partition", persist_result=False, log_prints=False)
def nightly_partition(network: str, stage: str, keys: list[str],
                      takeover: list[str] | None = None) -> dict[str, int]:
    """One partition of a night: ingest some sources, send to some recipients, or read some inboxes.

    Its counts go to the artifact ``nightly-partition-counts`` (the parent reads it), also
    when a part failed; then the run fails naming the parts.
    """
    protect_all_handlers()
    started = time.perf_counter()
    counts, failures = _run_partition(network, stage, keys, takeover or [])
    counts["work_ms"] = round((time.perf_counter() - started) * 1000)
    create_table_artifact(key=COUNTS_KEY, table=[{"what": k, "count": v} for k, v in counts.items()],
                          description="Counts only: no personal data.")
    if failures:
        raise RuntimeError(f"{stage} partition: some parts failed: " + "; ".join(failures))
    return counts


# --------------------------------------------------------------------------- the parent


def _split(items: list[str], n: int) -> list[list[str]]:
    """At most ``n`` batches of ``items``, each sorted, in a stable order."""
    items = sorted(items)
    n = max(1, min(n, len(items)))
    return [items[i::n] for i in range(n)] if items else []


def parse_selection(partitions: list[str] | None) -> dict[str, list[str] | None]:
    """``["send:uu-viborg", "route"]`` → ``{"send": ["uu-viborg"], "route": None}`` (None: all of it)."""
    if not partitions:
        return dict.fromkeys(STAGES)
    out: dict[str, list[str] | None] = {}
    for p in partitions:
        stage, _, keys = p.partition(":")
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r} (one of {', '.join(STAGES)})")
        if not keys or stage not in PARTITIONED:
            out[stage] = None
        elif stage not in out or out[stage] is not None:
            out[stage] = sorted({*(out.get(stage) or []), *keys.split(",")})
    return out


class _Children:
    """The flow runs of one stage: started, watched, re-started when their worker is gone."""

    def __init__(self, network: str, stage: str, attempts: int, poll: float, pool: str) -> None:
        self.network, self.stage, self.attempts, self.poll, self.pool = network, stage, attempts, poll, pool
        self.runs: dict[str, dict[str, Any]] = {}    # label → {"keys", "id", "tries", "takeover", "state"}

    def start(self, keys: list[str], takeover: list[str] | None = None) -> None:
        label = f"{self.stage}:{','.join(keys)}"
        entry = self.runs.setdefault(label, {"keys": keys, "tries": 0, "takeover": []})
        entry["takeover"] = [*entry["takeover"], *(takeover or [])]
        entry["tries"] += 1
        fr = run_deployment(CHILD, parameters={"network": self.network, "stage": self.stage, "keys": keys,
                                               "takeover": entry["takeover"]},
                            flow_run_name=f"{label}#{entry['tries']}", timeout=0, as_subflow=True,
                            tags=["stafet-partition", f"stage:{self.stage}"])
        assert not inspect.isawaitable(fr)  # called from a sync flow: the run, not a coroutine
        entry["id"], entry["state"] = str(fr.id), "SCHEDULED"

    def wait(self, timeout: float) -> None:
        """Until every child is final; re-start the ones whose worker is gone (at most ``attempts`` runs)."""
        logger = get_run_logger()
        deadline = time.monotonic() + timeout
        with get_client(sync_client=True) as client:
            while True:
                online = {w.name for w in client.read_workers_for_work_pool(self.pool)
                          if str(getattr(w.status, "value", w.status)) == "ONLINE"}
                waiting = 0
                for label, entry in list(self.runs.items()):
                    if entry["state"] in FINAL - {"CRASHED"} or entry["state"] == "CRASHED-FINAL":
                        continue
                    fr = client.read_flow_run(entry["id"])
                    state = fr.state.type.value if fr.state else "SCHEDULED"
                    worker = (fr.labels or {}).get("prefect.worker.name")
                    if state in {"PENDING", "RUNNING"} and worker and worker not in online:
                        client.set_flow_run_state(fr.id, Crashed(message=f"worker {worker} is offline"),
                                                  force=True)
                        logger.warning("partition %s: worker %s is offline: marked crashed", label, worker)
                        state = "CRASHED"
                    entry["state"], entry["worker"] = state, worker
                    if state == "CRASHED":
                        if entry["tries"] < self.attempts:
                            logger.warning("partition %s crashed: started again", label)
                            self.start(entry["keys"], takeover=[entry["id"]])
                            waiting += 1
                        else:
                            entry["state"] = "CRASHED-FINAL"
                    elif state not in FINAL:
                        waiting += 1
                if not waiting:
                    return
                if time.monotonic() > deadline:
                    for entry in self.runs.values():
                        if entry["state"] not in FINAL:
                            entry["state"] = f"TIMEOUT ({entry['state']})"
                    return
                time.sleep(self.poll)

    def outcomes(self) -> list[dict[str, Any]]:
        """One row per partition: its last run's state, how many runs, its counts (from its artifact)."""
        rows = []
        with get_client(sync_client=True) as client:
            for label in sorted(self.runs):
                entry = self.runs[label]
                counts = dict.fromkeys(COLUMNS, 0)
                found = client.read_artifacts(artifact_filter=ArtifactFilter(
                    key=ArtifactFilterKey(any_=[COUNTS_KEY]),
                    flow_run_id=ArtifactFilterFlowRunId(any_=[entry["id"]])))
                for art in found[:1]:
                    data = json.loads(art.data) if isinstance(art.data, str) else art.data
                    for row in data if isinstance(data, list) else []:
                        if row.get("what") in counts:
                            counts[row["what"]] = int(row["count"])
                rows.append({"partition": label, "state": entry["state"].replace("-FINAL", ""),
                             "runs": entry["tries"], **counts})
        return rows


def _stage_failures(rows: list[dict[str, Any]]) -> list[str]:
    return [f"partition {r['partition']}: {r['state']}" for r in rows if r["state"] != "COMPLETED"]


@flow(name="nightly-partitioned", persist_result=False, log_prints=False, task_runner=_threads())
def nightly_partitioned(network: str, partitions: list[str] | None = None, max_partitions: int = 8,
                        attempts: int = 3, poll_seconds: float = 2.0, stage_timeout: float = 3600.0,
                        work_pool: str = "stafet",
                        spread_receipts_from: int = SPREAD_RECEIPTS_FROM) -> dict[str, Any]:
    """The night, each partition its own flow run on any worker of ``work_pool``.

    ``partitions``: run only these (``"send:uu-viborg"``, ``"ingest:easy-a"``, ``"route"``,
    or a whole stage ``"send"``); default everything. ``max_partitions``: partitions per
    stage at most (sources and inboxes are grouped round-robin, recipients by municipality:
    :func:`stafet.night.send_batches`). ``attempts``: runs of one partition when
    its worker dies. ``spread_receipts_from``: the receipts pass runs as partitions from this
    many receipts sent in the receive stage on (:data:`SPREAD_RECEIPTS_FROM`). Fails at the end
    naming the parts that failed.
    """
    protect_all_handlers()
    logger = get_run_logger()
    chosen = parse_selection(partitions)
    failures: list[str] = []
    table: list[dict[str, Any]] = []
    once: dict[str, Any] = {}
    def inboxes() -> list[list[str]]:
        return _split(night.hosted_orgs(network), max_partitions)

    batches_of = {"ingest": lambda: _split(night.source_names(network), max_partitions),
                  "send": lambda: night.send_batches(network, max_partitions),
                  "receive": inboxes, "receipts": inboxes}
    for stage in STAGES:
        if stage not in chosen:
            continue
        started = time.monotonic()
        spread = (stage != "receipts" or bool(chosen[stage]) or spread_receipts_from
                  <= sum(r["receipts_sent"] for r in table if r["partition"].startswith("receive:")))
        if stage in PARTITIONED and spread:
            named = chosen[stage]
            batches = [named] if named else batches_of[stage]()
            children = _Children(network, stage, attempts, poll_seconds, work_pool)
            for keys in batches:
                children.start(keys)
            children.wait(stage_timeout)
            rows = children.outcomes()
            table += rows
            failures += _stage_failures(rows)
        else:
            before = len(failures)
            try:
                if stage == "route":
                    once["routing"] = route(network)
                elif stage == "revocation":
                    once["revocation"] = refresh_revocation_task(network)
                elif stage == "receipts":
                    once["receipts"] = _receive_pass(network, failures)
                elif stage == "deadlines":
                    once["deadlines"] = deadlines_task(network)
                elif stage == "report":  # the clock as this night's deadlines stage wrote it, if it did
                    once["report"] = report_task(network, from_snapshot="deadlines" in once)
                else:
                    once["notices"] = notices_task(network, from_snapshot="deadlines" in once)
            except Exception as e:
                failures.append(f"{stage}: {_why(e)}")
            counts = dict.fromkeys(COLUMNS, 0)
            for r in (once.get("receipts", {}) if stage == "receipts" else {}).values():
                for k in ("imported", "receipts_sent", "acknowledged", "duplicates", "rejected"):
                    counts[k] += r.get(k, 0)
            table.append({"partition": stage, "state": "FAILED" if len(failures) > before else "COMPLETED",
                          "runs": 1, **counts})
        logger.info("stage %s: %.1f s", stage, time.monotonic() - started)
        once.setdefault("seconds", {})[stage] = round(time.monotonic() - started, 2)
    create_table_artifact(key="nightly-partitions", table=table,
                          description="Each partition of the night: state, runs, counts only.")
    summary = {"partitions": table, "failures": failures, "seconds": once.get("seconds", {}),
               "routing": once.get("routing", {}), "outbox": night.outbox_counts(network)}
    for col in COLUMNS:
        summary[col] = sum(r[col] for r in table)
    if failures:
        raise RuntimeError("nightly-partitioned: some parts failed: " + "; ".join(failures))
    return summary
