"""The console's actions in Chromium against a real ``stafet web``, checked in the store afterwards:
a steward fixes and releases a quarantined row, by mouse and by keyboard alone; the duties page by
keyboard alone; a counsellor acknowledges a package; a contact closes a duty."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select

from stafet.store import console as q
from stafet.store import contacts, records
from stafet.store import quarantine as quarantine_store
from tests.web.browser.conftest import FREJA, Console, axe_violations, login, wait_for

ALI = "2305075218"  # BAD_ROWS: his OPTAG row has Startdato 18-09-2026 after Haendelsesdato 19-08-2026


def _open_ids(console: Console, rule: str) -> list[int]:
    with console.ctx.store.session() as s:
        return q.quarantine_ids(s, None, rule=rule)


def _row(console: Console, qid: int) -> Any:
    with console.ctx.store.session() as s:
        return quarantine_store.get(s, qid)


def _enrolments(console: Console) -> list[dict[str, Any]]:
    with console.ctx.store.session() as s:
        rows = records.of_youth(s, console.ctx.vault.pseudonym(ALI))
        return [r.payload for r in rows if r.kind == "enrolment"]


def _tab_to(driver: Any, matches: Any, what: str, limit: int = 80) -> WebElement:
    """Press Tab (only) until the focused element ``matches``; fail when it is never reached."""
    for _ in range(limit):
        driver.switch_to.active_element.send_keys(Keys.TAB)
        el = driver.switch_to.active_element
        if matches(el):
            # WCAG 2.4.7: the focus is visible (the console's :focus-visible outline)
            style = driver.execute_script("const s = getComputedStyle(arguments[0]);"
                                          "return s.outlineStyle + ' ' + s.outlineWidth;", el)
            assert not style.startswith("none"), f"{what} has no visible focus ({style})"
            return el
    raise AssertionError(f"{what} not reached with {limit} presses of Tab")


def _attr(name: str, value: str) -> Any:
    return lambda el: el.get_attribute(name) == value


def test_steward_fixes_and_releases_a_row_and_the_record_is_stored(browser: Any, console: Console) -> None:
    (qid,) = _open_ids(console, "start_before_event")
    before = _enrolments(console)
    login(browser, console, "steward")
    browser.find_element(By.LINK_TEXT, "start_before_event").click()
    browser.find_element(By.LINK_TEXT, str(qid)).click()
    assert "Startdato »18-09-2026« ligger efter Haendelsesdato »19-08-2026«" in browser.page_source
    field = browser.find_element(By.NAME, "f_Startdato")
    assert field.get_attribute("aria-invalid") == "true"
    # a fix that still breaks the rule: the row stays open, the error is shown inline
    field.clear()
    field.send_keys("20-09-2026")
    browser.find_element(By.XPATH, "//button[normalize-space()='Valider og frigiv']").click()
    alert = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#errors[role=alert]"), "no error")
    assert "start_before_event" in alert[0].text
    assert axe_violations(browser) == []
    assert _row(console, qid).status == "open"
    field = browser.find_element(By.NAME, "f_Startdato")
    assert field.get_attribute("value") == "20-09-2026"  # what she typed is kept
    field.clear()
    field.send_keys("01-08-2026")
    browser.find_element(By.XPATH, "//button[normalize-space()='Valider og frigiv']").click()
    wait_for(browser, lambda d: "/quarantine?msg=released" in d.current_url, "not released")
    assert browser.find_elements(By.CSS_SELECTOR, "[role=status]")
    row = _row(console, qid)
    assert (row.status, row.decided_by) == ("released", "steward")
    after = _enrolments(console)
    assert len(after) == len(before) + 1
    (new,) = [p for p in after if p not in before]
    assert (new["start_date"], new["event_date"]) == ("2026-08-01", "2026-08-19")
    assert new["programme_code"] == "1640"


def test_quarantine_by_keyboard_only(browser: Any, console: Console) -> None:
    """Skip link, a row's link, its field and the release button: Tab and Enter reach and submit them."""
    ids = _open_ids(console, "dropout_reason")
    assert ids, "no open dropout_reason row"
    qid = ids[0]
    login(browser, console, "steward")  # typed, submitted with Enter
    browser.get(console.url + "/quarantine?rule=dropout_reason")
    skip = _tab_to(browser, lambda el: el.text == "Gå til indhold", "the skip link")
    skip.send_keys(Keys.ENTER)
    _tab_to(browser, lambda el: el.tag_name == "a" and el.text == str(qid), f"row {qid}'s link").send_keys(
        Keys.ENTER)
    wait_for(browser, lambda d: d.current_url.endswith(f"/quarantine/{qid}"), "row page not opened")
    field = _tab_to(browser, _attr("name", "f_Afbrudsaarsag"), "the field Afbrudsaarsag")
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys("05")
    button = _tab_to(browser, lambda el: el.text == "Valider og frigiv", "the release button")
    button.send_keys(Keys.ENTER)
    wait_for(browser, lambda d: f"msg=released-{qid}" in d.current_url, "not released by keyboard")
    row = _row(console, qid)
    assert (row.status, row.decided_by) == ("released", "steward")
    # the whole-rule-group reject: its reason field and button are reachable too
    browser.get(console.url + "/quarantine")
    _tab_to(browser, lambda el: (el.get_attribute("id") or "").startswith("reason-"),
            "a group's reason field")
    _tab_to(browser, lambda el: el.text.startswith("Afvis alle"), "a group's reject button")


def test_duties_by_keyboard_only(browser: Any, console: Console) -> None:
    """A duty's contact form: date, form, note and the button are reached by Tab; Enter submits it."""
    login(browser, console, "vejleder")
    browser.get(console.url + "/duties")
    forms = browser.find_elements(By.CSS_SELECTOR, "form.contact")
    freja = console.ctx.vault.pseudonym(FREJA)  # her duty is for the next test
    youths = [f.find_element(By.NAME, "youth").get_attribute("value") for f in forms]
    others = [i for i, y in enumerate(youths, 1) if y != freja]
    assert others, "UU Viborg has no open duty"
    n = others[-1]
    youth = forms[n - 1].find_element(By.NAME, "youth").get_attribute("value")
    day = _tab_to(browser, _attr("id", f"day-{n}"), "the last duty's date")
    assert day.get_attribute("value")
    kind = _tab_to(browser, _attr("id", f"form-{n}"), "the last duty's form of contact")
    kind.send_keys("t")  # a select is chosen by typing: Telefon
    assert browser.execute_script("return arguments[0].value", kind) == "telefon"
    _tab_to(browser, _attr("id", f"note-{n}"), "the last duty's note").send_keys("ringede, aftalt møde")
    _tab_to(browser, lambda el: el.text == "Registrér" and el.get_attribute("form") is None
            and el.find_element(By.XPATH, "./..").get_attribute("action").endswith("/duties/contact"),
            "the last duty's button")
    button = browser.switch_to.active_element
    form = button.find_element(By.XPATH, "./..")
    assert form.find_element(By.NAME, "youth").get_attribute("value") == youth
    button.send_keys(Keys.ENTER)
    # the form was submitted (a POST with the session's CSRF token: no refusal page)
    wait_for(browser, lambda d: "/duties" in d.current_url and d.find_elements(By.TAG_NAME, "h1"),
             "no answer to the contact form")
    refused = ("Formularen kunne ikke bruges", "Ingen adgang")
    assert browser.find_element(By.TAG_NAME, "h1").text not in refused
    assert browser.current_url.endswith("/duties?msg=contact"), browser.find_element(By.TAG_NAME, "main").text
    with console.ctx.store.session() as s:
        assert [(c.form, c.by, c.note) for c in contacts.of_youth(s, youth)] == [
            ("telefon", "vejleder", "ringede, aftalt møde")]


def _duties(console: Console, org: str) -> set[tuple[str, str, dt.date]]:
    from stafet.duties.deadlines import compute_deadlines

    return {(d.rule, d.youth, d.due) for d in compute_deadlines(console.ctx, dt.date.today())
            if d.responsible == org}


def _rows_of(driver: Any, youth: str, due: dt.date) -> list[WebElement]:
    """The duties page's rows of ``youth`` falling due on ``due``."""
    return [tr for tr in driver.find_elements(By.CSS_SELECTOR, "tbody tr")
            if tr.find_elements(By.CSS_SELECTOR, f"input[name=youth][value='{youth}']")
            and due.strftime("%d-%m-%Y") in tr.find_elements(By.TAG_NAME, "td")[1].text]


def _party(row: WebElement) -> str:
    found = row.find_elements(By.CSS_SELECTOR, "input[name=party]")
    return (found[0].get_attribute("value") or "") if found else ""


def test_register_contact_closes_the_duty(browser: Any, console: Console) -> None:
    login(browser, console, "vejleder")
    browser.find_element(By.LINK_TEXT, "Pligter").click()
    before = _duties(console, "uu-viborg")
    youth = console.ctx.vault.pseudonym(FREJA)
    mine = {d for d in before if d[1] == youth and d[0] == "dropout_contact"}
    assert mine, f"no dropout_contact duty for the 16-year-old: {sorted(before)}"
    ((_, _, due),) = mine
    rows = _rows_of(browser, youth, due)
    assert rows, "the duty is not on the page"
    # the row whose contact reaches the youth (a page that says whom: the hidden field party)
    row = next((r for r in rows if _party(r) == "youth"), rows[0])
    form = row.find_element(By.CSS_SELECTOR, "form.contact")
    with console.ctx.store.session() as s:
        earlier = {c.id for c in contacts.of_youth(s, youth)}
    Select(form.find_element(By.NAME, "form")).select_by_value("samtale")
    form.find_element(By.NAME, "note").send_keys("samtale på skolen")
    form.find_element(By.TAG_NAME, "button").click()
    wait_for(browser, lambda d: d.current_url.endswith("/duties?msg=contact"), "contact not registered")
    assert "Kontakten er registreret." in browser.find_element(By.CSS_SELECTOR, "[role=status]").text
    with console.ctx.store.session() as s:
        (c,) = [c for c in contacts.of_youth(s, youth) if c.id not in earlier]
    assert (c.org, c.by, c.form, c.day) == ("uu-viborg", "vejleder", "samtale", dt.date.today())
    after = _duties(console, "uu-viborg")
    assert not mine & after, f"the duty is still open: {sorted(d for d in after if d[1] == youth)}"
    # and the page no longer lists it (a duty towards the custody holder, same day, may stay)
    assert len(_rows_of(browser, youth, due)) == len(rows) - 1


def test_acknowledge_a_package_and_the_senders_handover_is_acknowledged(
        browser: Any, console: Console, monkeypatch: pytest.MonkeyPatch) -> None:
    """UU Viborg reads its packages in a mail client (acknowledge: person): the console sends the receipt."""
    from stafet import night
    from stafet.store import outbox

    monkeypatch.setenv("STAFET_KEY_PASSPHRASE", "test-passphrase")  # the sender's receive opens its key
    monkeypatch.setenv("STAFET_HOME", str(console.root / "home"))

    login(browser, console, "vejleder")
    waiting = [tr for tr in browser.find_elements(By.CSS_SELECTOR, "tbody tr") if "ikke sendt" in tr.text]
    assert waiting, "no package of UU Viborg waits for a receipt"
    link = waiting[0].find_element(By.CSS_SELECTOR, "a[href*='/inbox/PKG-']")
    package_id = link.text
    with console.ctx.store.session() as s:
        handover = outbox.get(s, package_id)
        assert handover is not None and handover.status == "sent", handover and handover.status
        assert package_id not in q.receipts_sent(s, [package_id])
    link.click()
    assert axe_violations(browser) == []
    browser.find_element(By.XPATH, "//button[normalize-space()='Kvittér for pakken']").click()
    wait_for(browser, lambda d: d.current_url.endswith("/inbox?msg=acknowledged"),
             lambda: "not acknowledged: " + browser.find_element(By.TAG_NAME, "main").text[:300])
    assert "Kvitteringen er sendt." in browser.find_element(By.CSS_SELECTOR, "[role=status]").text
    with console.ctx.store.session() as s:
        assert package_id in q.receipts_sent(s, [package_id])
    # the signed receipt travels to the sender, whose next receive accepts it: the handover is done
    night.receive(console.path, handover.sender)
    with console.ctx.store.session() as s:
        done = outbox.get(s, package_id)
        assert done is not None and done.status == "acknowledged", done and done.status
    browser.get(console.url + f"/inbox/{package_id}")
    assert not browser.find_elements(By.XPATH, "//button[normalize-space()='Kvittér for pakken']")
