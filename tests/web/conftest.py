"""The console's fixtures: a demo network with data, one account per role, a TestClient each."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from stafet import night
from stafet.web.auth import hash_password

PASSWORD = "korrekt-hest-batteri-klips"
TODAY = date(2026, 11, 23)
# Rows that break rules (Latin-1, as EASY-A writes): a dropout reason not in the list (twice),
# and a start date after the event date.
BAD_ROWS = (
    "779008;EUD;120308-4127;Søren;Ægidius;791;AFBRUD;18-11-2026;1640;Tømrer;04-08-2025;77;Ukendt;;;Åse;a@x.example;\n"
    "779008;EUD;230507-5218;Ali;Hansen;791;OPTAG;19-08-2026;1640;Tømrer;18-09-2026;;;;;Åse;a@x.example;\n"
    "779008;EUD;0711094563;Mathilde;Østergaard;779;AFBRUD;19-11-2026;1020;Frisør;11-08-2025;88;Ukendt;;;Åse;a@x.example;\n"
).encode("latin-1")
# (user, role, org, sources)
ACCOUNTS = (
    ("steward", "steward", "", ()),
    ("steward-job", "steward", "", ("jobcenter",)),
    ("steward-mercantec", "steward", "779008", ()),   # the organisation's sources: easy-a
    ("steward-thy", "steward", "uu-thy", ()),         # an organisation with no source here: none
    ("vejleder", "counsellor", "uu-viborg", ()),
    ("vejleder-thy", "counsellor", "uu-thy", ()),
    ("koordinator", "coordinator", "", ()),
    ("drift", "operations", "", ()),
)


def build_world(root: Path, *, snapshot_day: date | None, extra: dict[str, bytes] | None = None,
                before_ingest: Callable[[Path], None] | None = None) -> tuple[str, Any]:
    """The demo network under ``root`` after ingest, routing, sending and receiving at UU Viborg.

    ``extra`` adds EASY-A files (name → rows after the header); ``before_ingest`` gets the
    network.yaml path first; the duty snapshot is of ``snapshot_day`` (``None``: the real today).
    """
    from stafet.core.vault import load_secret
    from stafet.demo.network import member_home, setup_demo

    setup_demo(root / "demo", root / "home", drop_samples=False, bits=2048)
    load_secret(root / "home", create=True)
    load_secret(member_home(root / "demo", "uu-skive"), create=True)
    path = str(root / "demo" / "network.yaml")
    if before_ingest is not None:
        before_ingest(Path(path))
    data = resources.files("stafet.demo.data")
    for src, name in (("easy-a", "779008_haendelser_2026112102.csv"),
                      ("jobcenter", "jobcenter_791_paalaeg_20261121.csv")):
        drop = root / "demo" / "drop" / src
        drop.mkdir(parents=True, exist_ok=True)
        (drop / name).write_bytes(data.joinpath(name).read_bytes())
    header = data.joinpath("779008_haendelser_2026112102.csv").read_bytes().split(b"\n", 1)[0] + b"\n"
    for name, rows in {"779008_haendelser_2026112203.csv": BAD_ROWS, **(extra or {})}.items():
        (root / "demo" / "drop" / "easy-a" / name).write_bytes(header + rows)
    night.context.cache_clear()
    ctx = night.context(path)
    night.ingest_source(path, "easy-a")
    night.ingest_source(path, "jobcenter")
    night.route(path, TODAY)
    night.send(path, night.pending_recipients(path))
    night.receive(path, "uu-viborg")
    night.deadlines(path, snapshot_day)  # the night's duty snapshot, which /duties shows
    return path, ctx


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A demo network after ingest, routing, sending and receiving at UU Viborg; accounts made."""
    from stafet.store import users

    root = tmp_path_factory.mktemp("web")
    mp = pytest.MonkeyPatch()
    mp.setenv("STAFET_KEY_PASSPHRASE", "test-passphrase")
    mp.setenv("STAFET_HOME", str(root / "home"))
    path, ctx = build_world(root, snapshot_day=TODAY)
    with ctx.store.session() as s:
        for name, role, org, sources in ACCOUNTS:
            users.add(s, username=name, password_hash=hash_password(PASSWORD), role=role, org=org,
                      sources=sources, display_name=name.title())
    yield {"path": path, "ctx": ctx, "root": root}
    night.context.cache_clear()
    mp.undo()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def app(world: dict[str, Any]) -> Any:
    """The console over the world (plain-http cookies for the TestClient)."""
    from stafet.web.app import create_app
    from stafet.web.security import Settings

    return create_app(world["ctx"], Settings(secure_cookies=False), today=lambda: TODAY)


def login(app: Any, user: str, password: str = PASSWORD) -> TestClient:
    """A TestClient logged in as ``user`` (fails the test when the login does not succeed)."""
    client = TestClient(app, base_url="http://127.0.0.1")
    page = client.get("/login")
    token = csrf_of(page.text)
    r = client.post("/login", data={"username": user, "password": password, "csrf_token": token},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    return client


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no csrf_token on the page"
    return m.group(1)


@pytest.fixture(scope="module")
def clients(app: Any) -> dict[str, TestClient]:
    """One logged-in client per account."""
    return {name: login(app, name) for name, *_ in ACCOUNTS}


def home_of(world: dict[str, Any]) -> Path:
    """The node's home folder."""
    return Path(world["root"]) / "home"
