"""Crash consistency: SIGKILL the nightly relay at many points, rerun, lose nothing.

The night runs the stages of :mod:`stafet.relay` (as the ``nightly-sync`` flow does)
in a process forked from a pre-warmed parent (``chaos_zygote``), on a copy of one
demo network template (RSA-2048). Each crash run kills the night, kills the recovery
night too (a crash while recovering), then lets a night complete, and compares the
end state with a night that was never killed (``harness.compare``). The real Prefect
flow is crashed in ``test_crash_prefect.py``.

``STAFET_CHAOS_POINTS`` sets the number of kill points (default 20; ``bench/chaos.py``
runs 100).
"""

from __future__ import annotations

import collections
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import harness

pytestmark = pytest.mark.slow

POINTS = int(os.environ.get("STAFET_CHAOS_POINTS", "20"))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return harness.make_template(tmp_path_factory.mktemp("chaos-template"))


@pytest.fixture(scope="module")
def series(template: Path, tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("chaos")
    ref, seconds, runs = harness.crash_series(template, work, n_points=POINTS, per_run=3, lanes=2)
    return ref, seconds, runs


def test_the_reference_night_exercises_every_path(series) -> None:
    ref, _, _ = series
    statuses = collections.Counter(h[4] for h in ref["handovers"])
    assert statuses["acknowledged"] >= 8 and statuses["held"] == 1
    assert len(ref["quarantine"]) == 3
    assert ("751001_elevhaendelser_202611220300.xml", "rejected") in ref["source_files"]
    assert len(ref["records"]) >= 15


def test_at_least_the_planned_kill_points_hit_a_running_night(series) -> None:
    _, _, runs = series
    assert harness.landed(runs) >= POINTS
    stages = {k.split(":")[0] for r in runs for k in r.killed}
    # the kills are spread over the night, not bunched at its start
    assert {"ingest", "send", "receive"} <= stages | {s.split(":")[0] for s in stages}, stages


def test_every_crash_recovers_with_nothing_lost_duplicated_or_unacknowledged(series) -> None:
    _, _, runs = series
    failed = [(r.index, r.delays, r.killed, r.outcome.problems) for r in runs if r.outcome.problems]
    assert not failed, "\n".join(map(str, failed))
    assert sum(r.outcome.rows_lost for r in runs) == 0
    assert sum(r.outcome.duplicates for r in runs) == 0


def test_figures(series, capsys) -> None:
    _ref, seconds, runs = series
    stages = collections.Counter(k.split(":")[0] for r in runs for k in r.killed)
    with capsys.disabled():
        print(f"\ncrash consistency: reference night {seconds:.1f}s, {len(runs)} crash runs, "
              f"{harness.landed(runs)} kill points landed ({dict(stages)}), "
              f"{sum(not r.outcome.problems for r in runs)}/{len(runs)} recovered, "
              f"rows lost {sum(r.outcome.rows_lost for r in runs)}, "
              f"duplicates {sum(r.outcome.duplicates for r in runs)}, "
              f"packages re-sent (imported once) {sum(r.outcome.resent for r in runs)}")
