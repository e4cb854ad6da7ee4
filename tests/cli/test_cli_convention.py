"""The one CLI convention (issue 20), held over the whole command tree.

Walks the Typer app: every option and argument has help text, every listing and status
command takes ``--json``, choice options are validated and listed. On the demo network:
JSON timestamps carry a time zone and share one schema style, unknown organisation ids
exit 2 with a message everywhere, lists page (``--limit``/``--since``) and package ids
never wrap, user errors print ``error: …`` without a traceback, unexpected ones one line
naming the log file, and ``-v`` shows stafet's debug lines but not third-party ones.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from keys import KeyStore
from stafet import night
from stafet.cli.main import app
from stafet.core.cpr import parse_cpr
from stafet.core.models import Dropout, Provenance

runner = CliRunner()
BUILTIN = {"help", "install_completion", "show_completion"}
LISTING = {  # listing and status commands, and those that printed JSON only before
    "status", "send", "receive", "run", "ingest", "deadlines", "opsporing", "statistics", "acknowledge",
    "coordinator-list", "moves", "outbox list", "network show", "quarantine list", "quarantine show",
    "keys list", "consent list", "consent show", "users list", "contact list", "tovholder show",
    "inquiry list", "report ingest", "notices",
}
NO_JSON = {"youth show": "shows the youth's CPR to a person (audited); no machine output by design"}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d")


def _walk(cmd: Any, path: tuple[str, ...] = ()) -> Any:
    yield " ".join(path), cmd
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        yield from _walk(sub, (*path, name))


COMMANDS = dict(_walk(typer.main.get_command(app)))


def _dropout(muni: str, cpr: str = "120308-4127") -> Dropout:
    return Dropout(cpr=parse_cpr(cpr), institution="779008", home_municipality=muni,
                   event_date=date.today(), programme_code="1640", reason_code="03",
                   provenance=Provenance("t", "t.csv", 2, datetime.now(UTC)))


@pytest.fixture
def store_with_handovers(demo_net: tuple[str, Any]) -> tuple[str, Any]:
    """The demo network with two handovers planned and sent (to UU Viborg and UU Skive)."""
    path, ctx = demo_net
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, [_dropout("791"), _dropout("779", "120310-4126")])
    night.route(path)
    night.send(path, night.pending_recipients(path))
    return path, ctx


def _strings(obj: Any) -> Any:
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)
    elif isinstance(obj, str):
        yield obj


def _keys(obj: Any) -> Any:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from _keys(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _keys(v)


# --- the command tree ------------------------------------------------------------------------

def test_the_walk_finds_the_whole_tree() -> None:
    assert {"status", "outbox list", "quarantine show", "keys rotate", "consent list", "inquiry list"} <= set(
        COMMANDS)


def test_every_option_and_argument_has_help_text() -> None:
    missing = [f"{path} {p.opts or p.name}" for path, cmd in COMMANDS.items() for p in cmd.params
               if p.name not in BUILTIN and not (getattr(p, "help", None) or "").strip()]
    assert missing == []


def test_every_listing_and_status_command_takes_json() -> None:
    lists = {path for path, cmd in COMMANDS.items()
             if path.split(" ")[-1] in ("list", "show", "status") and not getattr(cmd, "commands", None)}
    assert lists - set(NO_JSON) <= LISTING, "a new list/show command: add it to LISTING, with --json"
    without = [path for path in sorted(LISTING)
               if not any("--json" in p.opts for p in COMMANDS[path].params)]
    assert without == []


def test_choice_options_are_validated_and_listed_in_the_help() -> None:
    help_ = runner.invoke(app, ["outbox", "list", "--help"])
    assert help_.exit_code == 0
    assert all(s in help_.output for s in ("pending", "acknowledged", "cancelled"))
    bad = runner.invoke(app, ["outbox", "list", "--status", "nosuch"])
    assert bad.exit_code == 2 and "nosuch" in bad.output and "Traceback" not in bad.output
    assert runner.invoke(app, ["opsporing", "--group", "30-40"]).exit_code == 2
    assert runner.invoke(app, ["contact", "add", "--org", "x", "--date", "2026-01-01",
                               "--form", "telepati", "--youth", "Y"]).exit_code == 2


# --- JSON --------------------------------------------------------------------------------------

def test_json_timestamps_carry_a_time_zone_and_one_schema_style(store_with_handovers) -> None:
    path, _ = store_with_handovers
    docs = {}
    for args in (["status"], ["outbox", "list"], ["network", "show"], ["quarantine", "list"],
                 ["keys", "list"], ["consent", "list"], ["inquiry", "list"], ["deadlines"], ["notices"],
                 ["moves"]):
        r = runner.invoke(app, [*args, "--json", "--network", path])
        assert r.exit_code == 0, (args, r.output)
        docs[" ".join(args)] = json.loads(r.stdout)
    stamps = [s for d in docs.values() for s in _strings(d) if TIMESTAMP.match(s)]
    assert len(stamps) >= 4  # the handovers' created_at/sent_at, the certificates' valid_to, …
    naive = [s for s in stamps if not re.search(r"(Z|[+-]\d\d:\d\d)$", s)]
    assert naive == []
    keys = {k for d in docs.values() for k in _keys(d)}
    assert "rules" not in keys and "valid" not in keys  # `rule` for one rule, valid_from/valid_to
    assert docs["outbox list"]["total"] == 2
    assert docs["outbox list"]["items"][0]["created_at"].endswith("+00:00")
    assert {i["org"] for i in docs["keys list"]["items"]} >= {"uu-viborg", "779008"}


def test_send_and_receive_are_readable_by_default_and_json_for_scripts(demo_net) -> None:
    path, ctx = demo_net
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, [_dropout("791")])
    r = runner.invoke(app, ["send", "--network", path])
    assert r.exit_code == 0, r.output
    assert "sent: 1" in r.stdout and not r.stdout.lstrip().startswith("{")
    again = runner.invoke(app, ["send", "--network", path, "--json"])
    assert again.exit_code == 0 and json.loads(again.stdout)["sent"] == 0


# --- paging --------------------------------------------------------------------------------------

def test_outbox_list_pages_and_package_ids_never_wrap(store_with_handovers) -> None:
    path, _ = store_with_handovers
    listed = json.loads(runner.invoke(app, ["outbox", "list", "--json", "-n", path]).stdout)
    ids = [i["id"] for i in listed["items"]]
    assert len(ids) == 2
    r = runner.invoke(app, ["outbox", "list", "--limit", "1", "-n", path], env={"COLUMNS": "70"})
    assert r.exit_code == 0, r.output
    assert "… 1 more, use --limit/--since" in r.stdout
    assert ids[-1] in r.stdout  # the newest, whole on one line in a narrow terminal
    assert ids[0] not in r.stdout
    page = json.loads(runner.invoke(app, ["outbox", "list", "--json", "--limit", "1", "-n", path]).stdout)
    assert (page["total"], page["count"], [i["id"] for i in page["items"]]) == (2, 1, ids[1:])
    future = runner.invoke(app, ["outbox", "list", "--json", "--since", "2999-01-01", "-n", path])
    assert json.loads(future.stdout)["total"] == 0
    assert runner.invoke(app, ["outbox", "list", "--since", "yesterday", "-n", path]).exit_code == 2


# --- organisation ids ------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["send", "--to", "nosuch"],
    ["receive", "--org", "nosuch"],
    ["run", "receive", "--org", "nosuch"],
    ["deadlines", "--org", "nosuch"],
    ["opsporing", "--org", "nosuch"],
    ["notices", "--org", "nosuch"],
    ["moves", "--org", "nosuch"],
    ["inquiry", "list", "--org", "nosuch"],
    ["acknowledge", "--org", "nosuch", "--waiting"],
    ["contact", "add", "--org", "nosuch", "--date", "2026-11-01", "--youth", "Y1", "--by", "x"],
    ["keys", "rotate", "nosuch", "--bits", "2048"],
    ["keys", "new", "nosuch", "--bits", "2048"],
])
def test_unknown_organisation_ids_are_errors_everywhere(demo_net, args) -> None:
    path, ctx = demo_net
    r = runner.invoke(app, [*args, "--network", path])
    assert r.exit_code == 2, r.output
    assert "unknown organisation 'nosuch'" in r.stderr and "uu-viborg" in r.stderr  # names the members
    assert "Traceback" not in r.output
    assert not KeyStore(ctx.home).org_dir("nosuch").exists()  # no key, no certificate for a non-member


# --- errors and -v -----------------------------------------------------------------------------------

def test_a_user_error_prints_one_line_without_a_traceback(tmp_path: Path) -> None:
    home = tmp_path / "home-is-a-file"
    home.write_text("not a folder")
    r = runner.invoke(app, ["status", "--home", str(home)])
    assert r.exit_code == 2
    assert r.stderr.startswith("error:") and str(home) in r.stderr.replace("\n", "")
    assert "Traceback" not in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)  # handled, not raised


def test_an_unexpected_error_names_the_log_file_and_keeps_the_cpr_out(demo_net, monkeypatch) -> None:
    path, ctx = demo_net

    def boom(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("boom for 120308-4127")

    monkeypatch.setattr("stafet.core.config.load_network", boom)
    r = runner.invoke(app, ["network", "show", "--network", path])
    assert r.exit_code == 1
    log = ctx.home / "logs" / "cli-errors.log"
    assert str(log) in r.stderr.replace("\n", "") and "RuntimeError" in r.stderr
    assert "Traceback" not in r.output and "4127" not in r.output
    text = log.read_text()
    assert "Traceback" in text and "boom for" in text and "4127" not in text


def test_verbose_shows_stafets_debug_lines_not_third_party_ones(demo_net) -> None:
    path, _ = demo_net
    quiet = runner.invoke(app, ["network", "show", "--network", path])
    assert quiet.exit_code == 0 and "DEBUG" not in quiet.stderr
    loud = runner.invoke(app, ["-v", "network", "show", "--network", path])
    assert loud.exit_code == 0
    assert "DEBUG stafet" in loud.stderr
    assert logging.getLogger("stafet.exchange").isEnabledFor(logging.DEBUG)
    for third_party in ("prefect", "great_expectations", "urllib3", "paramiko", "sqlalchemy.engine"):
        assert not logging.getLogger(third_party).isEnabledFor(logging.DEBUG), third_party
    runner.invoke(app, ["network", "show", "--network", path])  # back to quiet for the tests after
    assert not logging.getLogger("stafet.exchange").isEnabledFor(logging.DEBUG)


# --- network add-member ------------------------------------------------------------------------------

def _member_cert(ctx: Any, tmp_path: Path, org: str) -> Path:
    from cryptography.hazmat.primitives.serialization import Encoding

    ks = KeyStore(ctx.home)
    ks.new_key(org, email=f"uu@{org}.dk", bits=2048)
    pem = tmp_path / f"{org}.pem"
    pem.write_bytes(ks.issue(org).public_bytes(Encoding.PEM))
    return pem


def test_add_member_keeps_the_files_comments_and_layout(demo_net, tmp_path) -> None:
    import difflib

    path, ctx = demo_net
    original = Path(path).read_text(encoding="utf-8")
    original = original.replace("members:\n", "members:   # who takes part\n# the UUs first\n", 1)
    original = original.replace("ack_limit_hours: 48", "ack_limit_hours: 48  # two days: the agreement", 1)
    Path(path).write_text(original, encoding="utf-8")
    pem = _member_cert(ctx, tmp_path, "uu-silkeborg")
    r = runner.invoke(app, ["network", "add-member", "uu-silkeborg", "--kind", "guidance", "--name",
                            "UU Silkeborg", "--municipality", "740", "--serves", "740", "--endpoint",
                            "folder:inbox/uu-silkeborg", "--email", "uu@silkeborg.dk", "--certificate",
                            str(pem), "--network", path])
    assert r.exit_code == 0, r.output
    after = Path(path).read_text(encoding="utf-8")
    changes = [line for line in difflib.ndiff(original.splitlines(), after.splitlines())
               if line[:1] in "+-" and not line.startswith("?")]
    assert changes and all(c.startswith("+ ") for c in changes), changes  # only lines added
    assert "+ - id: uu-silkeborg" in changes and "+   municipality: '740'" in changes
    assert "# who takes part" in after and "# two days: the agreement" in after


def test_add_member_names_the_real_file_in_errors(demo_net, tmp_path) -> None:
    path, ctx = demo_net
    pem = _member_cert(ctx, tmp_path, "uu-odder")
    before = Path(path).read_text(encoding="utf-8")
    r = runner.invoke(app, ["network", "add-member", "uu-odder", "--kind", "guidance", "--name", "UU Odder",
                            "--municipality", "7", "--endpoint", "folder:inbox/uu-odder", "--email",
                            "uu@odder.dk", "--certificate", str(pem), "--network", path])
    assert r.exit_code == 2 and "municipality" in r.stderr
    message = r.stderr.replace("\n", "")
    assert path in message and ".network-" not in message
    assert Path(path).read_text(encoding="utf-8") == before
    assert not list(Path(path).parent.glob(".network-*"))


# --- messages say the next step ------------------------------------------------------------------------

def test_a_file_of_no_known_source_names_source_and_a_comma_file_the_delimiter(demo_net, tmp_path) -> None:
    from ingest_fixtures import EASYA_HEADER, easya_row

    path, _ = demo_net
    unknown = tmp_path / "export.csv"
    unknown.write_text(EASYA_HEADER + "\r\n", encoding="cp1252")
    r = runner.invoke(app, ["ingest", "--json", "--no-report", "--network", path, str(unknown)])
    assert r.exit_code == 1, r.output
    (res,) = json.loads(r.stdout)
    assert res["rejected"] and "--source NAME" in res["reason"] and "easy-a" in res["reason"]
    comma = tmp_path / "779008_haendelser_2026112102.csv"
    comma.write_bytes(("\r\n".join([EASYA_HEADER.replace(";", ","), easya_row().replace(";", ",")]) + "\r\n")
                      .encode("cp1252"))
    r = runner.invoke(app, ["ingest", "--json", "--no-report", "--network", path, str(comma)])
    assert r.exit_code == 1, r.output
    (res,) = json.loads(r.stdout)
    assert "separated by ','" in res["reason"] and "by ';'" in res["reason"]
    assert "4127" not in res["reason"] and "Søren" not in res["reason"]  # the delimiter, never a cell


def test_ingest_progress_shows_a_percentage_and_the_time_left(demo_net, tmp_path, monkeypatch) -> None:
    import io

    from ingest_fixtures import easya_row, write_easya
    from rich.console import Console

    from stafet.cli import ingest as cli_ingest

    _, ctx = demo_net
    p = write_easya(tmp_path / "779008_haendelser_2026112102.csv", [easya_row(), easya_row("120310-4126")])
    assert cli_ingest._rows_expected(p) == 2
    out = io.StringIO()
    monkeypatch.setattr(cli_ingest, "err", Console(file=out, force_terminal=True, width=160))
    (res,) = cli_ingest._ingest_all(ctx, [p], None, show_progress=True)
    assert res.rows == 2
    shown = out.getvalue()
    assert "100%" in shown and "left" in shown and "4127" not in shown
