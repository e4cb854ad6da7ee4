"""One night of the network on a demo copy, as a crash-test subject: the real Prefect flows.

    PREFECT_API_URL=http://127.0.0.1:PORT/api python tests/reliability/chaos_driver.py RUN_DIR

``RUN_DIR`` holds ``home/`` (the hub's ``$STAFET_HOME``) and ``demo/`` (the demo
network: drop folders, inboxes, UU Skive's own node). A night is what operations run:
the ``nightly-sync`` flow (:func:`flows.nightly.nightly_sync`: ingest tasks per source,
route, send per batch of recipients, two receive passes, deadlines, report, artifacts),
then UU Skive's own node runs the ``receive`` flow with its own keys and store, then the
hub's ``receive-all`` flow collects the receipts (in production it runs every 15 min).
The flows talk to the Prefect server named by ``PREFECT_API_URL`` (one server for every
night of a test session); each flow run carries the tag ``chaos:<RUN_DIR name>``.

Each stage prints ``stage <name> <monotonic time>`` (flushed, through
:data:`stafet.night.observers`) before it starts, and each finished flow run prints
``flowrun <flow> <id> <state>``, so whoever kills this process knows where it was and
which flow runs the night made. Exit status 0 means the night completed.

It is also importable: :func:`night` is what a forked child runs (``chaos_zygote``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any


def _say(what: str) -> None:
    os.write(1, f"stage {what.replace(' ', '')} {time.monotonic():.3f}\n".encode())


def environment(run: Path) -> dict[str, str]:
    """The stafet environment variables of a night on ``run`` (Prefect's come from the parent)."""
    return {"STAFET_HOME": str(run / "home"), "STAFET_NETWORK": str(run / "demo" / "network.yaml")}


def tag(run: Path) -> str:
    """The Prefect tag of every flow run of the nights on ``run``."""
    return f"chaos:{run.name}"


def _flow(name: str, fn: Any, *args: Any) -> Any:
    """Run one flow (its own flow run on the server); raise if it did not complete."""
    _say(f"flow:{name}")
    state = fn(*args, return_state=True)
    os.write(1, f"flowrun {name} {state.state_details.flow_run_id} {state.type.value}\n".encode())
    return state.result()  # raises the flow's failure


PUT_LATENCY = 0.03
"""Seconds a folder delivery takes after its file is in place, as an SFTP or SMTP delivery
waits for the server's answer: the window between a package landing in the recipient's inbox
and the sender's ``sent`` is then wide enough for a kill aimed at it to land under load."""


def _slow_after_put() -> None:
    from transports import FolderOutlet

    if getattr(FolderOutlet.put, "_chaos", False):
        return
    put = FolderOutlet.put

    def slow_put(self: FolderOutlet, name: str, data: bytes) -> None:
        put(self, name, data)
        time.sleep(PUT_LATENCY)

    slow_put._chaos = True  # type: ignore[attr-defined]
    FolderOutlet.put = slow_put  # type: ignore[method-assign]


def night(run: Path) -> dict[str, object]:
    """Run one night on ``run``; returns counts (raises on any failure)."""
    os.environ.update(environment(run))
    from prefect import tags

    from flows.nightly import nightly_sync, receive, receive_all
    from stafet import night
    from stafet.demo.network import OWN_NODE, member_home

    network = os.environ["STAFET_NETWORK"]
    _slow_after_put()
    night.context.cache_clear()
    night.observers[:] = [lambda stage, what: _say(f"{stage}:{what}")]
    out: dict[str, object] = {}
    with tags(tag(run)):
        out["nightly"] = _flow("nightly-sync", nightly_sync, network)
        for org in OWN_NODE:
            home = str(member_home(run / "demo", org))
            out[org] = _flow(f"own-node-receive:{org}", receive, network, org, home)
        out["receipts"] = _flow("receive-all", receive_all, network)
    _say("done")
    return out


def main() -> None:
    run = Path(sys.argv[1]).resolve()
    print(json.dumps(night(run), default=str), flush=True)


if __name__ == "__main__":
    main()
