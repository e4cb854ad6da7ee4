"""Prefect flows: orchestration only. Logic lives in :mod:`stafet.night` and below.

Nothing here sees personal data: parameters are paths and organisation ids, task
results are counts, and no result is persisted.

Timeouts: every network operation has its own socket timeout (SFTP connect 15 s and
60 s per operation, SMTP 60 s; see ``transports``), which is what stops a
hung peer. Prefect task timeouts cannot interrupt blocking I/O in worker threads.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.tasks import exponential_backoff

from stafet import night
from stafet.core.errors import ConfigError, StafetError, TransientError
from stafet.core.logs import protect_all_handlers


def _why(e: BaseException) -> str:
    """A failure text safe for Prefect's database.

    stafet's own errors carry redacted messages; of anything else only the type is
    kept (a database driver's message may quote row values).
    """
    return f"{type(e).__name__}: {e}" if isinstance(e, StafetError) else type(e).__name__


def _contained(fn: Any, *args: Any) -> Any:
    """Run a relay stage; an exception that is not stafet's reaches Prefect as its type only.

    Prefect stores a failed task's exception text in its database, and a library's
    message may quote row values (Great Expectations lists unexpected values). The
    traceback stays in the worker's local log (CPR-redacted).
    """
    try:
        return fn(*args)
    except StafetError:
        raise
    except Exception as e:
        logging.getLogger("stafet.flows").exception("stage %s failed", getattr(fn, "__name__", "?"))
        raise RuntimeError(f"{type(e).__name__} in {getattr(fn, '__name__', 'a stage')} "
                           "(details in the worker's log)") from None


def _retriable(task: Any, task_run: Any, state: Any) -> bool:
    """Retry transport failures only, never data errors."""
    try:
        state.result()
    except TransientError:
        return True
    except Exception:
        return False
    return False


_common: dict[str, Any] = {"cache_policy": NONE, "persist_result": False}

# Fan-out in threads, bounded by the cores: Prefect's default pool has no limit, and with
# ~20 sources the ingest threads outnumbered the store's connection pool (5 + 10) and timed
# out; each concurrent ingest also starts its own GX validation worker (≈ 3 s CPU, 270 MB).
# bench/nightly.py on 2 cores: 4 threads 83 s, 2 threads 57 s, one after the other 61 s.
MAX_THREADS = min(4, os.cpu_count() or 2)


def _threads() -> Any:
    return ThreadPoolTaskRunner(max_workers=MAX_THREADS)


def _batches(items: list[str]) -> list[list[str]]:
    """Split into at most MAX_THREADS batches (fan out per batch, not one task each).

    Every task run costs Prefect's server a record; bench/nightly.py measured the share.
    """
    n = min(MAX_THREADS, len(items))
    return [items[i::n] for i in range(n)] if n else []


@task(name="ingest-source", retries=3, retry_delay_seconds=exponential_backoff(5),
      retry_condition_fn=_retriable, **_common)
def ingest_source(network: str, source: str) -> list[dict[str, Any]]:
    """Pull and ingest one source's waiting files."""
    return _contained(night.ingest_source, network, source)


@task(name="route", **_common)
def route(network: str, today: dt.date | None = None) -> dict[str, int]:
    """Routing decisions → handovers (as of ``today``; default the real today)."""
    return _contained(night.route, network, today)


@task(name="send", retries=3, retry_delay_seconds=exponential_backoff(5),
      retry_condition_fn=_retriable, **_common)
def send(network: str, recipients: list[str]) -> dict[str, Any]:
    """Send a batch of recipients' pending handovers (one endpoint at a time; a tag per endpoint)."""
    return _contained(night.send, network, recipients)


@task(name="refresh-revocation", **_common)
def refresh_revocation_task(network: str) -> dict[str, int]:
    """Fetch fresh OCSP responses and CRLs before receiving (counts only; the fetches time out)."""
    return _contained(night.refresh_revocation, network)


@task(name="receive", retries=2, retry_delay_seconds=exponential_backoff(5),
      retry_condition_fn=_retriable, **_common)
def receive_task(network: str, orgs: list[str], home: str = "", claimant: str = "",
                 takeover: list[str] | None = None) -> dict[str, Any]:
    """Process a batch of organisations' inboxes; one org's failure does not stop the others.

    Returns ``{org: counts}``, or ``{org: {"failed": reason}}`` for an org that failed (the
    next run retries it: receiving is idempotent). On PostgreSQL the inbox files are claimed
    for ``claimant`` (a partition's flow run id); ``takeover``: dead runs whose claims it may take.
    """
    out: dict[str, Any] = {}
    for org in orgs:
        try:
            out[org] = _contained(night.receive, network, org, home, claimant, tuple(takeover or ()))
        except Exception as e:
            out[org] = {"failed": _why(e)}
    return out


@task(name="deadlines", **_common)
def deadlines_task(network: str, today: dt.date | None = None) -> dict[str, int]:
    """The duty clock (counts only)."""
    return _contained(night.deadlines, network, today)


@task(name="notices", **_common)
def notices_task(network: str, today: dt.date | None = None, from_snapshot: bool = False) -> dict[str, int]:
    """Resends of unacknowledged packages, duty notices and escalations (counts only).

    ``from_snapshot``: the night's deadlines stage wrote the day's clock just before
    (:func:`stafet.night.notices`).
    """
    return _contained(night.notices, network, today, from_snapshot)


@task(name="report", **_common)
def report_task(network: str, today: dt.date | None = None, from_snapshot: bool = False) -> str:
    """Write the nightly HTML report; its path is the result. ``from_snapshot``: as :func:`notices_task`."""
    return _contained(night.report, network, today, from_snapshot)


def _day(day: str | None) -> dt.date | None:
    """The ``day`` parameter (``YYYY-MM-DD``, a past night to re-run) as a date; none is today."""
    if not day:
        return None
    try:
        return dt.date.fromisoformat(day)
    except ValueError:
        raise ConfigError(f"day must be a date as YYYY-MM-DD (got {len(day)} characters)") from None


def _receive_pass(network: str, failures: list[str]) -> dict[str, Any]:
    """One pass over every hosted inbox, in batches; failed parts are added to ``failures``."""
    out: dict[str, Any] = {}
    futures = [(b, receive_task.submit(network, b)) for b in _batches(night.hosted_orgs(network))]
    for batch, fut in futures:
        try:
            results = fut.result()
        except Exception as e:
            failures.append(f"receive {','.join(batch)}: {_why(e)}")
            continue
        for org, r in results.items():
            if "failed" in r:
                failures.append(f"receive {org}: {r['failed']}")
            else:
                out[org] = r
    return out


@flow(name="nightly-sync", persist_result=False, log_prints=False,
      task_runner=_threads())
def nightly_sync(network: str, day: str | None = None) -> dict[str, Any]:
    """Pull → validate/map/store → route → send → fresh OCSP/CRLs → receipts → report → notices.

    ``day`` (``YYYY-MM-DD``) re-runs a past night: routing, the duty clock, the report and
    the notices judge by that date instead of today. One failing source or endpoint does
    not stop the others; the run fails at the end, naming the parts that failed.
    """
    protect_all_handlers()
    today = _day(day)
    logger = get_run_logger()
    failures: list[str] = []
    files: list[dict[str, Any]] = []
    for name, ingest_fut in [(s, ingest_source.submit(network, s)) for s in night.source_names(network)]:
        try:
            files.extend(ingest_fut.result())
        except Exception as e:
            failures.append(f"source {name}: {_why(e)}")
    routed = route(network, today)
    sent: dict[str, Any] = {}
    send_futures = [(",".join(b), send.with_options(tags=[f"endpoint:{r}" for r in b]).submit(network, b))
                    for b in _batches(night.pending_recipients(network))]
    for rcpt, send_fut in send_futures:
        try:
            sent[rcpt] = send_fut.result()
            failures += [f"send: {e}" for e in sent[rcpt]["errors"]]
        except Exception as e:
            failures.append(f"send to {rcpt}: {_why(e)}")
    revocation: dict[str, int] = {}
    try:  # a responder that is down leaves the cached answers in use: receiving goes on
        revocation = refresh_revocation_task(network)
    except Exception as e:
        failures.append(f"revocation refresh: {_why(e)}")
    received: dict[str, Any] = {}
    for _ in range(2):  # receipts written by one hosted org land in another's inbox
        for org, r in _receive_pass(network, failures).items():
            acc = received.setdefault(org, {})
            for k, v in r.items():
                acc[k] = (sorted(set(acc.get(k, [])) | set(v)) if isinstance(v, list)
                          else acc.get(k, 0) + v)
    waiting = night.unacknowledged(network)
    clock: dict[str, int] = {}
    clocked = False  # whether the deadlines stage wrote the day's clock: the report and notices read it
    try:
        clock = deadlines_task(network, today)
        clocked = True
        report_path = report_task(network, today, from_snapshot=True)
    except Exception as e:
        failures.append(f"deadlines/report: {_why(e)}")
        report_path = ""
    told: dict[str, int] = {}
    try:  # after the report: a notice that cannot be sent does not hide the night's figures
        told = notices_task(network, today, from_snapshot=clocked)
    except Exception as e:
        failures.append(f"notices: {_why(e)}")
    summary = {
        "files": len(files), "rows": sum(f["rows"] for f in files),
        "accepted": sum(f["accepted"] for f in files), "quarantined": sum(f["quarantined"] for f in files),
        "rejected_files": sum(1 for f in files if f["rejected"]), "routing": routed,
        "sent": sum(v["sent"] for v in sent.values()),
        "imported": sum(v["imported"] for v in received.values()),
        "acknowledged": sum(v["acknowledged"] for v in received.values()),
        "unacknowledged": len(waiting), "overdue": sum(1 for w in waiting if w["overdue"]),
        "outbox": night.outbox_counts(network), "failures": failures,
        "deadlines_overdue": clock.get("overdue", 0), "deadlines_due_soon": clock.get("due_soon", 0),
        "report": report_path, "revocation_fetched": revocation.get("ocsp", 0) + revocation.get("crl", 0),
        "revocation_failed": revocation.get("failed", 0), "resent": told.get("resent", 0),
        "notices": told.get("notices_notice", 0),
        "escalations": told.get("notices_coordinator", 0) + told.get("notices_management", 0),
    }
    create_table_artifact(key="nightly-counts", table=[
        {"what": k, "count": v} for k, v in summary.items() if isinstance(v, int)],
        description="Counts only: no personal data.")
    per_source: dict[str, dict[str, Any]] = {}
    for f in files:
        row = per_source.setdefault(f["source"], {"source": f["source"], "files": 0, "rows": 0, "accepted": 0,
                                                  "duplicates": 0, "updated": 0, "quarantined": 0,
                                                  "rejected_files": 0})
        row["files"] += 1
        row["rejected_files"] += int(bool(f["rejected"]))
        for k in ("rows", "accepted", "duplicates", "updated", "quarantined"):
            row[k] += f[k]
    create_table_artifact(key="nightly-per-source", table=[per_source[k] for k in sorted(per_source)],
                          description="Rows per source: counts only.")
    create_table_artifact(key="nightly-per-rule", table=night.handover_counts(network, "rule"),
                          description="Handovers per routing rule and status: counts only.")
    create_table_artifact(key="nightly-per-recipient", table=night.handover_counts(network, "recipient"),
                          description="Handovers per recipient and status: counts only.")
    create_markdown_artifact(key="nightly-summary", markdown=night.night_markdown(summary, files, failures),
                             description="The night: counts, report links and failures; no personal data.")
    logger.info("nightly: %s files, %s sent, %s acknowledged, %s unacknowledged",
                summary["files"], summary["sent"], summary["acknowledged"], summary["unacknowledged"])
    if failures:
        raise RuntimeError("nightly-sync: some parts failed: " + "; ".join(failures))
    return summary


@flow(name="deadlines", persist_result=False)
def deadlines(network: str, day: str | None = None) -> dict[str, int]:
    """Every morning: the duty clock on its own (as of ``day``, ``YYYY-MM-DD``; default today)."""
    protect_all_handlers()
    counts = deadlines_task(network, _day(day))
    create_table_artifact(key="deadlines", table=[{"what": k, "count": v} for k, v in counts.items()],
                          description="Deadlines per rule and status: counts only, no personal data.")
    return counts


@flow(name="receive", persist_result=False)
def receive(network: str, org: str, home: str = "") -> dict[str, Any]:
    """Receive for one organisation: import, verify, send receipts."""
    protect_all_handlers()
    result: dict[str, Any] = receive_task(network, [org], home)[org]
    if "failed" in result:
        raise RuntimeError(f"receive {org}: {result['failed']}")
    return result


@flow(name="receive-all", persist_result=False, task_runner=_threads())
def receive_all(network: str) -> dict[str, Any]:
    """Every 15 minutes: process the inboxes of every organisation this node hosts."""
    protect_all_handlers()
    failures: list[str] = []
    out = _receive_pass(network, failures)
    if failures:
        raise RuntimeError("; ".join(failures))
    return out
