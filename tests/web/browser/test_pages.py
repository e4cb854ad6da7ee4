"""Every page each role can reach, in Chromium against a real ``stafet web``: log in, and axe-core's
WCAG 2.1 A/AA rules (webtilgængelighedsloven) find 0 violations; the README's screenshots."""

from __future__ import annotations

import re
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from stafet.store import console as q
from tests.web.browser.conftest import Console, axe_violations, login, shoot, wait_for

# role → its start page and the pages its menu leads to (the console's NAV), as the user sees them
START = {"steward": "/quarantine", "vejleder": "/inbox", "koordinator": "/duties", "drift": "/messages"}
ERROR_TITLES = {"Der opstod en fejl", "Siden findes ikke", "Ingen adgang", "Fejl", "Ikke tilladt"}
MENU = {
    "steward": ["Karantæne", "Valideringshistorik"],
    "vejleder": ["Indbakke", "Pligter", "Ung"],
    "koordinator": ["Pligter", "Beskedlog"],
    "drift": ["Beskedlog", "Kørsler", "Netværk"],
}


def _no_violations(driver: Any, where: str) -> None:
    found = axe_violations(driver)
    assert found == [], f"axe-core (WCAG 2.1 A/AA) on {where}:\n" + "\n".join(
        f"- {v['id']} ({v.get('impact')}): {v['help']}\n    " + "\n    ".join(v["nodes"]) for v in found)


def _visit(driver: Any, console: Console, url: str) -> None:
    driver.get(console.url + url)
    assert driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "da"
    assert len(driver.find_elements(By.TAG_NAME, "h1")) == 1, url


def _links(driver: Any, pattern: str) -> list[str]:
    """The paths of the page's links that match ``pattern`` (first one per distinct path)."""
    out: list[str] = []
    for a in driver.find_elements(By.CSS_SELECTOR, "main a[href]"):
        href = re.sub(r"^https?://[^/]+", "", a.get_attribute("href") or "")
        if re.fullmatch(pattern, href) and href not in out:
            out.append(href)
    return out


def _pages_of(driver: Any, console: Console, user: str) -> list[str]:
    """Every page ``user`` reaches: the menu's pages, and one of each kind of detail page they link to."""
    ctx = console.ctx
    pages = [START[user]]
    if user == "steward":
        with ctx.store.session() as s:
            groups = q.quarantine_groups(s, None)
            rows = q.quarantine_page(s, None, limit=1)
        pages += ["/quarantine?rule=" + groups[0][0]] if groups else []
        pages += [f"/quarantine/{rows[0].id}"] if rows else ["/quarantine/1"]
        pages += ["/runs"]
        _visit(driver, console, "/runs")
        pages += _links(driver, r"/runs/[0-9a-f]{64}")[:1]
    elif user == "vejleder":
        _visit(driver, console, "/inbox")
        packages = _links(driver, r"/inbox/PKG-[0-9a-f]+")
        assert packages, "UU Viborg's inbox shows no package"
        pages += [*packages[:1], "/duties", "/youth"]
        _visit(driver, console, packages[0])
        pages += _links(driver, r"/youth/[A-Za-z0-9_-]+")[:1]
    elif user == "koordinator":
        pages += ["/messages", "/messages?state=held"]
    else:
        pages += ["/runs", "/network", "/messages?state=sent"]
        _visit(driver, console, "/runs")
        pages += _links(driver, r"/runs/[0-9a-f]{64}")[:1]
    return pages


def test_login_page_is_accessible_and_refuses_a_wrong_password(browser: Any, console: Console) -> None:
    _visit(browser, console, "/login")
    shoot(browser, "login")
    _no_violations(browser, "/login")
    browser.find_element(By.ID, "username").send_keys("drift")
    browser.find_element(By.ID, "password").send_keys("forkert-forkert-forkert", Keys.ENTER)
    alert = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "[role=alert]"), "no error shown")
    assert alert[0].text and browser.current_url.endswith("/login")
    assert not browser.get_cookie("stafet_session")
    _no_violations(browser, "/login (wrong password)")


@pytest.mark.parametrize("user", list(START))
def test_each_role_logs_in_and_every_page_passes_axe(browser: Any, console: Console, user: str) -> None:
    login(browser, console, user)
    assert browser.current_url == console.url + START[user]
    menu = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "nav a")]
    assert menu == MENU[user]
    pages = _pages_of(browser, console, user)
    assert len(pages) >= 3
    for url in pages:
        _visit(browser, console, url)
        assert "Log ind" not in browser.title, (user, url)
        assert browser.find_element(By.TAG_NAME, "h1").text not in ERROR_TITLES, (user, url)
        _no_violations(browser, f"{url} as {user}")
    # the error pages a user meets: another role's page (403) and a missing one (404)
    other = "/network" if user != "drift" else "/inbox"
    missing = "/quarantine/999999" if user == "steward" else "/findes-ikke"
    for url, title in ((other, "Ingen adgang"), (missing, "Siden findes ikke")):
        _visit(browser, console, url)
        assert browser.find_element(By.TAG_NAME, "h1").text == title
        _no_violations(browser, f"{url} as {user}")


def test_a_planted_violation_is_found(browser: Any, console: Console) -> None:
    """The accessibility check can fail: an image without text and an unlabelled field are reported."""
    _visit(browser, console, "/login")
    browser.execute_script("document.querySelector('main').insertAdjacentHTML('beforeend',"
                           " '<img src=\"/static/style.css\"><input name=x>')")
    assert {v["id"] for v in axe_violations(browser)} >= {"image-alt", "label"}


def test_screenshots_of_the_console(browser: Any, console: Console) -> None:
    """The pages the README shows (written only with STAFET_TEST_SCREENSHOTS=docs/console)."""
    login(browser, console, "steward")
    _visit(browser, console, "/quarantine")
    shoot(browser, "quarantine")
    with console.ctx.store.session() as s:
        ids = q.quarantine_ids(s, None, rule="dropout_reason") or [r.id for r in q.quarantine_page(s, None)]
    _visit(browser, console, f"/quarantine/{ids[0]}")
    assert "Hvorfor denne række" in browser.page_source
    shoot(browser, "quarantine-row")
    login(browser, console, "vejleder")
    _visit(browser, console, "/inbox")
    assert _links(browser, r"/inbox/PKG-[0-9a-f]+")
    shoot(browser, "inbox")
    _visit(browser, console, "/duties")
    shoot(browser, "duties")
    login(browser, console, "drift")
    _visit(browser, console, "/messages")
    assert "PKG-" in browser.page_source
    shoot(browser, "messages")
    _visit(browser, console, "/network")
    assert "Mercantec" in browser.page_source
    shoot(browser, "network")
