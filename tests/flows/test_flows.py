"""Unit tests of the Prefect flows of ``flows/nightly.py``, beside the real-server test.

The tasks' ``.fn()`` run without Prefect at all, on a fresh copy of the demo network with
its sample exports in the drop folders; the flows run for real once, in-process, against
``prefect_test_harness`` (a temporary SQLite-backed Prefect API for this module), and what
Prefect was told — flow and task run names, parameters, artifacts — is searched for CPRs.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest

from flows import nightly

# Ten digits, with or without the dash or space after the sixth: a CPR's shapes.
CPR_SHAPE = re.compile(r"(?<!\d)\d{6}[- ]?\d{4}(?!\d)")
# Prefect's ids (task inputs name upstream runs by id): ten digits in a row occur in about one
# UUID in a hundred, so they are taken out before the shape is looked for.
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A temporary Prefect API (SQLite) for this module's in-process flow runs."""
    from prefect.settings import PREFECT_HOME, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    home = tmp_path_factory.mktemp("prefect-home")
    with temporary_settings(updates={PREFECT_HOME: str(home)}), \
            prefect_test_harness(server_startup_timeout=120):
        yield


def _drop_samples(network: str) -> int:
    """Put the demo's sample exports into the drop folders (as ``make demo`` does)."""
    from stafet.demo.network import SOURCES

    demo, n = Path(network).parent, 0
    for name, files in SOURCES.items():
        for f in files:
            data = resources.files("stafet.demo.data").joinpath(f).read_bytes()
            (demo / "drop" / name / f).write_bytes(data)
            n += 1
    return n


def _demo_cprs() -> list[str]:
    """Every CPR of the demo's sample exports (synthetic, but treated as real), in its three forms."""
    found: set[str] = set()
    for f in resources.files("stafet.demo.data").iterdir():
        if f.name.endswith((".csv", ".xml")):
            text = f.read_bytes().decode("utf-8", errors="replace").replace("\ufeff", "")
            found |= {re.sub(r"\D", "", m) for m in CPR_SHAPE.findall(text)}
    cprs = {c for c in found if 1 <= int(c[:2]) <= 31 and 1 <= int(c[2:4]) <= 12}
    return [f for c in sorted(cprs) for f in (c, f"{c[:6]}-{c[6:]}", f"{c[:6]} {c[6:]}")]


def _no_cpr(what: str, text: str, *, shaped: bool = True) -> None:
    """Fail, without quoting the value, if ``text`` holds a demo CPR (or, if ``shaped``, ten digits).

    Results may name files (``…_2026112102.csv``) and hashes, so only ``shaped=False`` for them.
    """
    if shaped and CPR_SHAPE.search(UUID.sub("<id>", text)):
        pytest.fail(f"{what}: holds a CPR-shaped value", pytrace=False)
    if any(f in text for f in DEMO_CPRS):
        pytest.fail(f"{what}: holds a CPR of the demo data", pytrace=False)


DEMO_CPRS = _demo_cprs()


def test_the_demo_data_has_cprs_to_look_for() -> None:
    assert len(DEMO_CPRS) >= 30
    for form in DEMO_CPRS[:3]:  # one CPR, in its three forms
        with pytest.raises(pytest.fail.Exception, match="CPR of the demo data") as e:
            _no_cpr("x", f"flow-run {form}", shaped=False)
        assert form not in str(e.value)
    with pytest.raises(pytest.fail.Exception, match="CPR-shaped"):
        _no_cpr("x", "param 0101001234")  # synthetic
    _no_cpr("x", "ingest-source-3f2a 779008_haendelser_2026112102.csv", shaped=False)
    _no_cpr("x", '{"x": [{"id": "0a1b2c3d-0123-4567-8abc-ab0123456789"}]}')  # a UUID with ten digits in a row
    with pytest.raises(pytest.fail.Exception, match="CPR-shaped"):
        _no_cpr("x", "0a1b2c3d-0123-4567-8abc-ab0123456789 0101001234")


# --------------------------------------------------------------------------- helpers, no Prefect


def test_batches_split_evenly_and_never_exceed_the_threads() -> None:
    orgs = [f"org-{i}" for i in range(10)]
    batches = nightly._batches(orgs)
    assert len(batches) == min(nightly.MAX_THREADS, 10)
    assert sorted(o for b in batches for o in b) == sorted(orgs)
    assert nightly._batches([]) == []
    assert nightly._batches(["one"]) == [["one"]]


def test_a_foreign_exception_reaches_prefect_as_its_type_only() -> None:
    from stafet.core.errors import DataError

    synthetic = "0101001234"  # a synthetic CPR, in a library's message

    def stage() -> None:
        raise ValueError(f"unexpected value {synthetic}")

    with pytest.raises(RuntimeError) as e:
        nightly._contained(stage)
    assert synthetic not in str(e.value) and "ValueError in stage" in str(e.value)
    assert e.value.__cause__ is None and e.value.__suppress_context__
    assert nightly._why(ValueError(synthetic)) == "ValueError"
    # stafet's own errors keep their message, which is redacted at the source
    why = nightly._why(DataError(f"bad date in {synthetic}", file="x.csv", row=3))
    assert why.startswith("DataError: bad date") and "row=3" in why and synthetic not in why


def test_only_transient_failures_are_retried() -> None:
    from stafet.core.errors import DataError, TransientError

    class State:
        def __init__(self, e: BaseException | None) -> None:
            self.e = e

        def result(self) -> None:
            if self.e:
                raise self.e

    assert nightly._retriable(None, None, State(TransientError("SMTP 451")))
    assert not nightly._retriable(None, None, State(DataError("bad row")))
    assert not nightly._retriable(None, None, State(RuntimeError("x")))
    assert not nightly._retriable(None, None, State(None))


# --------------------------------------------------------------------------- tasks' .fn()


def test_the_tasks_run_a_night_without_prefect(demo_net: tuple[str, Any]) -> None:
    from stafet.demo.network import member_home

    network, _ctx = demo_net
    dropped = _drop_samples(network)
    files = [f for s in nightly.night.source_names(network) for f in nightly.ingest_source.fn(network, s)]
    assert len(files) == dropped
    assert sum(f["rows"] for f in files) > 0
    for f in files:
        assert f["rows"] == f["accepted"] + f["duplicates"] + f["updated"] + f["quarantined"], f
    assert not [f["source"] for f in files if f["rejected"]]  # the demo's samples are all accepted
    # a second pull finds nothing new
    sources = nightly.night.source_names(network)
    assert [f for s in sources for f in nightly.ingest_source.fn(network, s)] == []

    routed = nightly.route.fn(network)
    assert routed and all(isinstance(v, int) for v in routed.values()), routed
    recipients = nightly.night.pending_recipients(network)
    assert recipients
    sent = nightly.send.fn(network, recipients)
    assert sent["sent"] >= 1 and sent["errors"] == [], sent
    assert nightly.night.pending_recipients(network) == []

    hosted = nightly.night.hosted_orgs(network)
    assert "uu-skive" not in hosted  # UU Skive runs its own node
    received = nightly.receive_task.fn(network, hosted)
    assert set(received) == set(hosted)
    assert not [o for o, r in received.items() if "failed" in r], received
    imported = sum(r["imported"] for r in received.values())
    own = nightly.receive_task.fn(network, ["uu-skive"], str(member_home(Path(network).parent, "uu-skive")))
    assert "failed" not in own["uu-skive"], own
    assert imported + own["uu-skive"]["imported"] == sent["sent"]
    # the receipts UU Skive sent land in the hub's inboxes
    acked = sum(r["acknowledged"] for r in nightly.receive_task.fn(network, hosted).values())
    assert sum(r["acknowledged"] for r in received.values()) + acked == sent["sent"]
    assert nightly.night.unacknowledged(network) == []

    clock = nightly.deadlines_task.fn(network)
    assert all(isinstance(v, int) and v >= 0 for v in clock.values()), clock
    report = Path(nightly.report_task.fn(network))
    assert report.is_file() and report.suffix == ".html"
    # each ingested file has the steward's validation report, and the nightly report links it
    pages = [Path(f["report"]) for f in files]
    assert all(p.is_file() and p.parent == report.parent for p in pages) and len(set(pages)) == len(files)
    nightly_page = report.read_text(encoding="utf-8")
    assert all(f"href='{p.name}'" in nightly_page for p in pages)
    assert any("Rækker i karantæne" in p.read_text(encoding="utf-8") for p in pages)
    for what, value in [("ingest", files), ("route", routed), ("send", sent), ("receive", received),
                        ("deadlines", clock)]:
        _no_cpr(what, json.dumps(value), shaped=what != "ingest")


def test_one_failing_org_does_not_stop_the_others(demo_net: tuple[str, Any]) -> None:
    network, _ctx = demo_net
    out = nightly.receive_task.fn(network, ["uu-viborg", "no-such-org"])
    assert "failed" not in out["uu-viborg"], out
    assert set(out["no-such-org"]) == {"failed"} and out["no-such-org"]["failed"]


# --------------------------------------------------------------------------- the flows, in-process


def _runs() -> dict[str, list[Any]]:
    from prefect.client.orchestration import get_client
    from prefect.logging.handlers import APILogHandler

    async def read() -> dict[str, list[Any]]:
        await APILogHandler.aflush()
        async with get_client() as client:
            return {"flow_runs": await client.read_flow_runs(), "task_runs": await client.read_task_runs(),
                    "artifacts": await client.read_artifacts(), "logs": await client.read_logs()}

    return asyncio.run(read())


def test_the_flows_run_a_night_and_tell_prefect_counts_only(harness: None, demo_net: tuple[str, Any]) -> None:
    from stafet.demo.network import member_home

    network, _ctx = demo_net
    dropped = _drop_samples(network)
    summary = nightly.nightly_sync(network)
    assert summary["files"] == dropped and summary["failures"] == []
    assert summary["rows"] >= summary["accepted"] + summary["quarantined"] > 0
    assert summary["sent"] >= 1 and summary["imported"] >= 1
    # UU Skive's inbox belongs to its own node: its handovers wait for its receipt
    assert summary["unacknowledged"] >= 1 and summary["overdue"] == 0
    assert Path(summary["report"]).is_file()

    own = nightly.receive(network, "uu-skive", str(member_home(Path(network).parent, "uu-skive")))
    assert own["imported"] == summary["unacknowledged"] and own["receipts_sent"] == own["imported"]
    hub = nightly.receive_all(network)
    assert sum(r["acknowledged"] for r in hub.values()) == summary["unacknowledged"]
    assert nightly.night.unacknowledged(network) == []
    counts = nightly.deadlines(network)
    assert counts == nightly.deadlines_task.fn(network)
    # a past night re-run: the stages that judge by a date get the day (the report is named by it)
    past = nightly.nightly_sync(network, day="2026-01-15")
    assert Path(past["report"]).name == "nightly-2026-01-15.html" and past["failures"] == []
    assert Path(summary["report"]).name != Path(past["report"]).name

    state = _runs()
    flow_runs = state["flow_runs"]
    assert {fr.state_type.value for fr in flow_runs} == {"COMPLETED"}
    assert len(flow_runs) >= 4
    assert len(state["task_runs"]) >= len(nightly.night.source_names(network))
    assert {a.key for a in state["artifacts"]} >= {"nightly-counts", "nightly-per-source", "deadlines",
                                                   "nightly-summary"}
    mds = [a for a in state["artifacts"] if a.key == "nightly-summary"]
    assert len(mds) == 2   # the night, and the past night re-run (no new files: no links)
    md = max(mds, key=lambda a: a.data.count("file://"))
    assert md.type == "markdown" and "## Fejl (0)" in md.data
    links = re.findall(r"\[(file-[0-9a-f]{8}\.[0-9a-f]{8})\]\((file://[^)]+)\)", md.data)
    assert len(links) == summary["files"] and all(Path(unquote(urlparse(u).path)).is_file() for _, u in links)
    told = [("flow run name", fr.name) for fr in flow_runs]
    told += [("flow run parameters", json.dumps(fr.parameters, default=str)) for fr in flow_runs]
    told += [("task run name", tr.name) for tr in state["task_runs"]]
    told += [("task run inputs", json.dumps(tr.task_inputs, default=str)) for tr in state["task_runs"]]
    told += [("artifact", json.dumps(a.data, default=str)) for a in state["artifacts"]]
    told += [("flow run result", json.dumps(summary, default=str))]
    told += [("log", log.message) for log in state["logs"]]
    assert any(m.startswith("nightly: ") for what, m in told if what == "log")
    for what, text in told:
        _no_cpr(what, text)
    # the parameters are paths and organisation ids, nothing else
    assert {k for fr in flow_runs for k in fr.parameters} <= {"network", "org", "home", "day"}


def test_the_day_parameter_is_a_date_or_an_error() -> None:
    import datetime as dt

    from stafet.core.errors import ConfigError

    assert nightly._day("2026-01-15") == dt.date(2026, 1, 15)
    assert nightly._day(None) is None and nightly._day("") is None
    with pytest.raises(ConfigError, match="YYYY-MM-DD"):
        nightly._day("15-01-2026")
    with pytest.raises(ConfigError) as e:
        nightly._day("010101-1234")   # never echoed: a bad value may be anything, a CPR too
    assert "1234" not in str(e.value)
