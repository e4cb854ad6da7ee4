"""Every listing and status command's ``--json`` in one schema style (issue 20).

On a demo-like home (the demo's exports ingested, rows quarantined, handovers routed, sent,
received and acknowledged, deadlines and notices run), every listing and status command of
the CLI prints JSON whose timestamps are ISO 8601 with a time zone and whose field names
follow the convention: ``valid_from``/``valid_to`` (never ``expires``), ``rule`` for one
rule, English snake_case keys.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from stafet import night
from stafet.cli.main import app

runner = CliRunner()
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d")
DAY = re.compile(r"^\d{4}-\d\d-\d\d$")
WITH_ZONE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)$")
SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")
# names that say the same thing as a convention's name, in another word
FORBIDDEN = {"expires": "valid_to", "expiry": "valid_to", "not_after": "valid_to", "not_before": "valid_from",
             "valid_until": "valid_to", "rules": "rule (one per item)", "valid": "valid_from/valid_to"}
# keys whose values are free maps (an id or a name to a count), not field names
FREE_MAPS = {"outbox", "by_rule", "by_status", "counts", "rejected", "fields", "by_source", "by_kind"}


def _walk_tree(cmd: Any, path: tuple[str, ...] = ()) -> Any:
    yield " ".join(path), cmd
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        yield from _walk_tree(sub, (*path, name))


def _walk(obj: Any, path: str = "") -> Any:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield path, k, v
            if k not in FREE_MAPS:
                yield from _walk(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk(v, f"{path}[]")


COMMANDS = dict(_walk_tree(typer.main.get_command(app)))


@pytest.fixture
def demo_home(demo_relay) -> tuple[str, Path, Path]:
    """The demo network after a night: every listing has something to list."""
    from stafet.demo.network import SOURCES

    path, home, folder = demo_relay
    for name, files in SOURCES.items():
        for f in files:
            (folder / "drop" / name / f).write_bytes(resources.files("stafet.demo.data").joinpath(f).read_bytes())  # noqa: E501
    for name in night.source_names(path):
        night.ingest_source(path, name)
    night.route(path)
    night.send(path, night.pending_recipients(path))
    for org in night.hosted_orgs(path):
        night.receive(path, org)
    night.receive(path, night.hosted_orgs(path)[0])  # the receipts
    youth = _a_youth(path)
    later = (date.today() + timedelta(days=40)).isoformat()
    for args in (["contact", "add", "--org", "uu-viborg", "--date", date.today().isoformat(), "--youth", youth,  # noqa: E501
                  "--by", "Karin"],
                 ["tovholder", "set", "--org", "uu-viborg", "--name", "Karin", "--youth", youth, "--by", "Ole"],  # noqa: E501
                 ["notices", "send", "--today", later]):
        r = runner.invoke(app, [*args, "--network", path, "--home", str(home)])
        assert r.exit_code == 0, (args, r.output)
    return path, home, folder


def _a_youth(path: str) -> str:
    from stafet.store import outbox

    with night.context(path).store.session() as s:
        return outbox.listing_page(s, None, None, 1)[0][0].youth


def _commands(path: str, home: Path, folder: Path) -> dict[str, list[str]]:
    from stafet.store import files as files_store
    from stafet.store import quarantine

    ctx = night.context(path)
    with ctx.store.session() as s:
        qid = quarantine.listing(s, show_all=True)[0].id
        digest = files_store.received_since(s, datetime(2000, 1, 1))[0].sha256
    sample = home / "779008_haendelser_2026112102.csv"  # again: a duplicate file, its summary all the same
    sample.write_bytes(resources.files("stafet.demo.data").joinpath(sample.name).read_bytes())
    commands = {
        "status": ["status"], "outbox list": ["outbox", "list"], "network show": ["network", "show"],
        "quarantine list": ["quarantine", "list", "--all"], "quarantine show": ["quarantine", "show", str(qid)],  # noqa: E501
        "keys list": ["keys", "list"], "consent list": ["consent", "list"], "inquiry list": ["inquiry", "list"],  # noqa: E501
        "deadlines": ["deadlines"], "notices": ["notices"], "moves": ["moves"], "opsporing": ["opsporing"],
        "coordinator-list": ["coordinator-list"], "send": ["send"], "receive": ["receive", "--org", "uu-viborg"],  # noqa: E501
        "acknowledge": ["acknowledge", "--org", "uu-viborg", "--waiting"],
        "statistics": ["statistics", "--from", "2026-01", "--to", "2026-12", "--out", str(home / "st")],
    }
    youth = _a_youth(path)
    consents = json.loads(runner.invoke(app, ["consent", "list", "--json", "--network", path]).stdout)
    commands.update({"contact list": ["contact", "list", "--youth", youth],
                     "tovholder show": ["tovholder", "show", "--youth", youth],
                     "consent show": ["consent", "show", consents[0]["ref"]], "users list": ["users", "list"]})  # noqa: E501
    commands["report ingest"] = ["report", "ingest", digest]
    commands["ingest"] = ["ingest", "--no-report", str(sample)]
    return commands


def test_every_listings_json_has_zoned_timestamps_and_the_conventions_names(demo_home) -> None:
    path, home, folder = demo_home
    docs: dict[str, Any] = {}
    commands = _commands(path, home, folder)
    with_json = {name for name, cmd in COMMANDS.items()
                 if any("--json" in p.opts for p in cmd.params) and not getattr(cmd, "commands", None)}
    listings = {n for n in with_json if n.split(" ")[-1] in ("list", "show", "status")}
    assert listings <= set(commands), "a listing command the walk does not cover"
    for name, args in commands.items():
        opts = {o for p in COMMANDS[name].params for o in p.opts}
        where = [*(["--network", path] * ("--network" in opts)), *(["--home", str(home)] * ("--home" in opts))]  # noqa: E501
        r = runner.invoke(app, [*args, "--json", *where])
        assert r.exit_code in (0, 1), (name, r.output)
        docs[name] = json.loads(r.stdout)
    stamps, problems = [], []
    for name, doc in docs.items():
        for where, key, value in _walk(doc):
            if key in FORBIDDEN:
                problems.append(f"{name}: {where}.{key} (use {FORBIDDEN[key]})")
            elif not SNAKE.match(key):
                problems.append(f"{name}: {where}.{key} is not an English snake_case key")
            if isinstance(value, str) and TIMESTAMP.match(value):
                stamps.append(value)
                if not WITH_ZONE.match(value):
                    problems.append(f"{name}: {where}.{key} = {value} has no time zone")
    assert sorted(set(problems)) == [], "\n".join(sorted(set(problems)))
    assert len(stamps) >= 10
    certs = docs["status"]["certificates"]
    assert certs and all(DAY.match(c["valid_to"]) or WITH_ZONE.match(c["valid_to"]) for c in certs)
