"""Operations' CLI: status on one screen, adding a member, running the duty clock."""

import json
from datetime import UTC, date, datetime
from pathlib import Path

from typer.testing import CliRunner

from keys import KeyStore
from stafet import night
from stafet.cli.main import app
from stafet.core.cpr import parse_cpr
from stafet.core.models import Dropout, Provenance
from stafet.reports.status import collect_status

runner = CliRunner()


def _dropout(muni: str):
    return Dropout(cpr=parse_cpr("120308-4127"), institution="779008", home_municipality=muni,
                   event_date=date.today(), programme_code="1640", reason_code="03",
                   provenance=Provenance("t", "t.csv", 2, datetime.now(UTC)))


def test_status_shows_outbox_oldest_unacknowledged_and_certificates(demo_net) -> None:
    path, ctx = demo_net
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, [_dropout("791")])
    night.route(path)
    night.send(path, ["uu-viborg"])
    st = collect_status(ctx)
    assert st["outbox"] == {"779008": {"sent": 1}}
    assert st["oldest_unacknowledged"]["recipient"] == "uu-viborg"
    assert {c["org"] for c in st["certificates"]} >= {"uu-viborg", "779008"}
    assert all(c["days_left"] > 700 and not c["warn"] for c in st["certificates"])
    r = runner.invoke(app, ["status", "--network", path, "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["outbox"] == {"779008": {"sent": 1}}
    assert "4127" not in r.output


def test_add_member_validates_and_previews_the_next_run(demo_net, tmp_path) -> None:
    path, ctx = demo_net
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, [_dropout("740")])   # a Silkeborg youth: no UU yet
    ks = KeyStore(ctx.home)
    ks.new_key("uu-silkeborg", email="uu@silkeborg.dk", bits=2048)
    cert = ks.issue("uu-silkeborg")
    pem = tmp_path / "uu-silkeborg.pem"
    from cryptography.hazmat.primitives.serialization import Encoding

    pem.write_bytes(cert.public_bytes(Encoding.PEM))
    args = ["network", "add-member", "uu-silkeborg", "--kind", "guidance", "--name", "UU Silkeborg",
            "--municipality", "740", "--serves", "740", "--endpoint", "folder:inbox/uu-silkeborg",
            "--email", "uu@silkeborg.dk", "--certificate", str(pem), "--network", path]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "1 handover(s) by rule dropout_to_uu: send" in r.output
    night.context.cache_clear()
    assert night.context(path).network.guidance_for("740").id == "uu-silkeborg"
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "already a member" in again.output


def test_add_member_refuses_a_bad_entry_and_leaves_the_file(demo_net, tmp_path) -> None:
    path, ctx = demo_net
    before = Path(path).read_text()
    pem = ctx.network.resolve("certs/uu-thy.pem")
    r = runner.invoke(app, ["network", "add-member", "Bad Id", "--kind", "school", "--name", "x",
                            "--municipality", "7", "--endpoint", "ftp://x", "--email", "nope",
                            "--certificate", str(pem), "--network", path])
    assert r.exit_code == 2
    assert "kind" in r.output and "municipality" in r.output
    assert Path(path).read_text() == before
