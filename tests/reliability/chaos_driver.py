"""One night of the relay on a demo network copy, as a crash-test subject.

    python tests/reliability/chaos_driver.py RUN_DIR [--prefect]

``RUN_DIR`` holds ``home/`` (the hub's ``$STAFET_HOME``) and ``demo/`` (the demo
network: drop folders, inboxes, UU Skive's own node). The night runs the stages of
:mod:`stafet.relay` in the order the ``nightly-sync`` flow does (or the real flow with
``--prefect``), then UU Skive's own ``receive``, then the hub's receive again for the
receipts. Each stage prints ``stage <name>`` (flushed) before it starts, so whoever
kills this process knows where it was. Exit status 0 means the night completed.

It is also importable: :func:`night` is what a forked child runs (``chaos_zygote``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

TODAY = dt.date(2026, 11, 22)


def _say(what: str) -> None:
    os.write(1, f"stage {what} {time.monotonic():.3f}\n".encode())


def environment(run: Path) -> dict[str, str]:
    """The environment variables of a night on ``run``."""
    home = run / "home"
    return {"STAFET_HOME": str(home), "STAFET_NETWORK": str(run / "demo" / "network.yaml"),
            "PREFECT_HOME": str(home / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1", "PREFECT_LOGGING_LEVEL": "WARNING",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180"}


def night(run: Path, *, prefect: bool = False) -> dict[str, object]:
    """Run one night on ``run``; returns counts (raises on any failure)."""
    os.environ.update(environment(run))
    from stafet import relay
    from stafet.app_context import open_context
    from stafet.demo import OWN_NODE, member_home
    from stafet.exchange import process_inbox

    network = os.environ["STAFET_NETWORK"]
    demo = run / "demo"
    relay.context.cache_clear()
    out: dict[str, object] = {}
    if prefect:
        from flows.nightly import nightly_sync

        _say("flow:nightly-sync")
        out["flow"] = nightly_sync(network)
    else:
        for name in relay.source_names(network):
            _say(f"ingest:{name}")
            relay.ingest_source(network, name)
        _say("route")
        out["route"] = relay.route(network, TODAY)
        for rcpt in relay.pending_recipients(network):
            _say(f"send:{rcpt}")
            r = relay.send(network, [rcpt])
            if r["errors"]:
                raise RuntimeError(f"send to {rcpt}: {r['errors']}")
        for _ in range(2):
            for org in relay.hosted_orgs(network):
                _say(f"receive:{org}")
                relay.receive(network, org)
    for org in OWN_NODE:
        _say(f"own-node:{org}")
        ctx = open_context(network, home=member_home(demo, org))
        process_inbox(ctx, org)
        ctx.store.engine.dispose()
    for org in relay.hosted_orgs(network):
        _say(f"receipts:{org}")
        relay.receive(network, org)
    _say("report")
    relay.report(network, TODAY)
    out["outbox"] = relay.outbox_counts(network)
    _say("done")
    return out


def main() -> None:
    run = Path(sys.argv[1]).resolve()
    result = night(run, prefect="--prefect" in sys.argv[2:])
    print(json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    main()
