"""The console in a real browser: a real ``stafet web`` over a store with data, driven by Debian's Chromium.

* ``console`` (session): a demo network after ingest (with rows in quarantine), routing,
  sending and receiving at UU Viborg; one account per role made with ``stafet users add``;
  ``stafet web`` started on a free port of 127.0.0.1 as its own process, stopped by PID.
* ``browser`` (per test, one Chromium for the session): headless ``/usr/bin/chromium``
  through ``/usr/bin/chromedriver`` (Selenium's ``Service``/``Options``, no Selenium Manager,
  nothing downloaded). A missing Chromium **fails** the tests (``STAFET_TEST_ALLOW_SKIP=1``
  skips them, for a local run only). A failing test leaves a screenshot of its page in
  the session's ``browser-failures`` temporary folder (the path is printed).
* ``axe_violations(driver)``: axe-core (fetched by ``scripts/fetch-axe.sh``) injected into the
  page, run with the WCAG 2.1 A and AA rules; the violations.
* ``shoot(driver, name)``: with ``STAFET_TEST_SCREENSHOTS=docs/console`` the README's screenshots
  are written there (PNG); without it, nothing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from servers import ServerUnavailable, _tail, end_tree, free_port, peer_unavailable, setting

from tests.web.conftest import PASSWORD

ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
AXE_JS = Path(setting("STAFET_TEST_AXE_JS") or ROOT / ".venv" / "share" / "axe-core" / "axe.min.js")
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
# A 16-year-old of Viborg drops out: UU Viborg must contact her within 5 working days (dropout_contact),
# a duty that one registered contact closes.
FREJA = "1503104417"
DROPOUT_16 = ("779008;EUD;150310-4417;Freja;Lund;791;AFBRUD;20-11-2026;1640;Tømrer;04-08-2025;05;Omvalg;;;"
              "Åse Møller;aase.moeller@mercantec.example;\n").encode("latin-1")
# (user, role, org): made with `stafet users add`, like an operator would
USERS = (
    ("steward", "steward", ""),
    ("vejleder", "counsellor", "uu-viborg"),
    ("koordinator", "coordinator", ""),
    ("drift", "operations", ""),
)


@dataclass
class Console:
    """A running ``stafet web``: its URL, the network, the opened context (for checks via the store API)."""

    url: str
    path: str
    ctx: Any
    root: Path
    proc: subprocess.Popen[bytes]
    log: Path


def _env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STAFET_", "PREFECT_"))}
    env.update(STAFET_HOME=str(root / "home"), STAFET_KEY_PASSPHRASE="test-passphrase",
               STAFET_USER_PASSWORD=PASSWORD, PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
    return env


def _build_world(root: Path) -> tuple[str, Any]:
    """The console tests' world, with UU Viborg reading in a mail client and a 16-year-old's dropout."""
    from tests.web.conftest import build_world

    return build_world(root, snapshot_day=None,
                       before_ingest=lambda p: _read_in_a_mail_client(p, "uu-viborg"),
                       extra={"779008_haendelser_2026112304.csv": DROPOUT_16})


def _read_in_a_mail_client(network_yaml: Path, org: str) -> None:
    """``org`` acknowledges by a person (``acknowledge: person``): its receipts wait for the console."""
    import dataclasses

    import yaml

    from stafet.core.config import Organisation

    if "acknowledge" not in {f.name for f in dataclasses.fields(Organisation)}:
        return  # a tree without the member option: every receipt is sent by stafet receive
    data = yaml.safe_load(network_yaml.read_text(encoding="utf-8"))
    for m in data["members"]:
        if m["id"] == org:
            m["acknowledge"] = "person"
    network_yaml.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def _stafet(root: Path, *args: str) -> None:
    r = subprocess.run([sys.executable, "-m", "stafet", *args], env=_env(root), cwd=root,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"stafet {' '.join(args)}: {r.stdout}{r.stderr}"


def start_web(root: Path, path: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    """``stafet web`` on a free port of 127.0.0.1, its own process (group); (process, URL, log)."""
    port = free_port()
    log = root / "web.log"
    with open(log, "ab") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "stafet", "web", "--network", path,
                                 "--home", str(root / "home"), "--port", str(port)],
                                env=_env(root), cwd=root, stdin=subprocess.DEVNULL, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"stafet web exited: {_tail(log)}")
        try:
            with urllib.request.urlopen(f"{url}/login", timeout=2) as r:
                if r.status == 200:
                    return proc, url, log
        except OSError:
            time.sleep(0.2)
    end_tree(proc, signal.SIGTERM, timeout=10)
    raise AssertionError(f"stafet web did not answer within 60 s: {_tail(log)}")


@pytest.fixture(scope="session")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """A real ``stafet web`` over a demo network with data, one account per role (``stafet users add``)."""
    from stafet import night

    root = tmp_path_factory.mktemp("browser-console")
    mp = pytest.MonkeyPatch()
    mp.setenv("STAFET_KEY_PASSPHRASE", "test-passphrase")
    mp.setenv("STAFET_HOME", str(root / "home"))
    path, ctx = _build_world(root)
    for user, role, org in USERS:
        _stafet(root, "users", "add", user, "--role", role, *(["--org", org] if org else []),
                "--name", user.title(), "--home", str(root / "home"))
    proc, url, log = start_web(root, path)
    try:
        yield Console(url=url, path=path, ctx=ctx, root=root, proc=proc, log=log)
    finally:
        end_tree(proc, signal.SIGTERM, timeout=20)
        night.context.cache_clear()
        mp.undo()
        shutil.rmtree(root, ignore_errors=True)


def _chromium() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    for binary in (CHROMIUM, CHROMEDRIVER):
        if not os.access(binary, os.X_OK):
            raise ServerUnavailable(f"{binary} missing (Debian packages chromium, chromium-driver: "
                                    "make system-deps)")
    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900", "--lang=da", "--disable-extensions", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--hide-scrollbars"):
        opts.add_argument(arg)
    try:
        return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    except Exception as e:  # a Chromium that does not start is a peer that is unavailable
        raise ServerUnavailable(f"Chromium did not start: {e}") from e


@pytest.fixture(scope="session")
def _chrome() -> Iterator[Any]:
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never fetch anything
    try:
        driver = _chromium()
    except ServerUnavailable as e:
        peer_unavailable("Chromium", e)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


@pytest.fixture(scope="session")
def _failures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("browser-failures")


@pytest.fixture
def browser(_chrome: Any, console: Console, request: pytest.FixtureRequest, _failures: Path) -> Iterator[Any]:
    """The session's Chromium, logged out, at a blank page; a screenshot of the page if the test fails."""
    _chrome.get(console.url + "/login")
    _chrome.delete_all_cookies()
    yield _chrome
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        shot = _failures / f"{request.node.name.replace('/', '_')[:100]}.png"
        _chrome.save_screenshot(str(shot))
        print(f"\nscreenshot of the failing page ({_chrome.current_url}): {shot}")


def login(driver: Any, console: Console, user: str, password: str = PASSWORD) -> None:
    """Log in through the login form, by keyboard (type, Enter); the start page must follow."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver.delete_all_cookies()
    driver.get(console.url + "/login")
    driver.find_element(By.ID, "username").send_keys(user)
    field = driver.find_element(By.ID, "password")
    field.send_keys(password)
    field.send_keys(Keys.ENTER)
    wait_for(driver, lambda d: not d.current_url.endswith("/login"), f"{user} not logged in")
    assert driver.find_elements(By.CSS_SELECTOR, "form.logout"), driver.page_source[:500]


def wait_for(driver: Any, cond: Any, message: str | Callable[[], str], timeout: float = 10) -> Any:
    """``cond`` within ``timeout``; else fail with ``message`` — a callable one is only asked then.

    A message read from the page before the wait (``find_element(...).text`` as an argument)
    races the navigation the wait is for: the element goes stale mid-read.
    """
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout).until(cond)
    except TimeoutException:
        raise TimeoutException(message() if callable(message) else message) from None


def axe_violations(driver: Any) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.1 A/AA violations on the current page (rule id, impact, the elements)."""
    if not AXE_JS.is_file():
        pytest.fail(f"axe-core missing at {AXE_JS}: run scripts/fetch-axe.sh (make test does)", pytrace=False)
    driver.execute_script(AXE_JS.read_text(encoding="utf-8"))
    driver.set_script_timeout(30)
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {runOnly: {type: 'tag', values: arguments[0]}})"
        ".then(r => done({passes: r.passes.length, violations: r.violations.map(v => ({id: v.id,"
        " impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => n.target.join(' ') + ': ' + n.failureSummary).slice(0, 5)}))}))"
        ".catch(e => done({passes: 0, violations: [{id: 'axe-error', help: String(e), nodes: []}]}));",
        AXE_TAGS)
    # axe that checked nothing (no page, a script refused) must not pass for an accessible page
    assert result["passes"] >= 5, f"axe-core checked almost nothing on {driver.current_url}: {result}"
    return list(result["violations"])


SHOTS = setting("STAFET_TEST_SCREENSHOTS")


def shoot(driver: Any, name: str) -> None:
    """Write the page as ``<STAFET_TEST_SCREENSHOTS>/<name>.png`` when the setting is given (the README's)."""
    if not SHOTS:
        return
    folder = Path(SHOTS) if Path(SHOTS).is_absolute() else ROOT / SHOTS
    folder.mkdir(parents=True, exist_ok=True)
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(1280, max(600, min(height, 1600)))
    try:
        assert driver.save_screenshot(str(folder / f"{name}.png"))
    finally:
        driver.set_window_size(1280, 900)
