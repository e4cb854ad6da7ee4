"""The console with Starlette's TestClient: every page and action per role, and the denials."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from stafet.store.schema import AuditEntry, Quarantine
from tests.web.conftest import PASSWORD, csrf_of, login

# a CPR: a date DDMMYY, then four digits (file names hold other ten-digit runs: 2026112203)
# CPR-shaped, but not a run of digits inside a pseudonym (32 hex characters often hold ten digits)
CPR_SHAPE = re.compile(r"(?<![\da-f])(0[1-9]|[12]\d|3[01])(0[1-9]|1[0-2])\d{2}-?\d{4}(?![\da-f])")
PAGES = {
    "steward": ["/quarantine", "/quarantine/1", "/runs"],
    "counsellor": ["/inbox", "/duties", "/youth"],
    "coordinator": ["/duties", "/messages"],
    "operations": ["/messages", "/runs", "/network"],
}
ROLE_OF = {"steward": "steward", "vejleder": "counsellor", "koordinator": "coordinator",
           "drift": "operations"}


def _audits(world: dict[str, Any], action: str) -> list[AuditEntry]:
    with world["ctx"].store.session() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def _open_ids(world: dict[str, Any], rule: str) -> list[int]:
    with world["ctx"].store.session() as s:
        return [q.id for q in s.scalars(select(Quarantine).where(Quarantine.rule == rule,
                                                                 Quarantine.status == "open"))]


def _page_ok(html: str, lang: bool = True) -> None:
    assert html.count("<h1") == 1
    assert '<html lang="da">' in html


def test_login_page_and_headers(app: Any) -> None:
    c = TestClient(app, base_url="http://127.0.0.1")
    r = c.get("/login")
    assert r.status_code == 200
    _page_ok(r.text)
    assert 'name="username"' in r.text and 'name="password"' in r.text and 'name="csrf_token"' in r.text
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert r.headers["x-frame-options"] == "DENY"
    assert "<script>" not in r.text and " style=" not in r.text
    # no session: every page goes to the login
    assert c.get("/quarantine", follow_redirects=False).headers["location"] == "/login"


def test_login_cookie_flags_and_start_page_per_role(app: Any) -> None:
    for user, role in ROLE_OF.items():
        c = TestClient(app, base_url="http://127.0.0.1")
        token = csrf_of(c.get("/login").text)
        r = c.post("/login", data={"username": user, "password": PASSWORD, "csrf_token": token},
                   follow_redirects=False)
        assert r.status_code == 303
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        start = c.get("/", follow_redirects=False).headers["location"]
        assert start == {"steward": "/quarantine", "counsellor": "/inbox", "coordinator": "/duties",
                         "operations": "/messages"}[role]


def test_secure_cookie_by_default(world: dict[str, Any]) -> None:
    from stafet.web.app import create_app

    c = TestClient(create_app(world["ctx"]), base_url="https://127.0.0.1")
    token = csrf_of(c.get("/login").text)
    r = c.post("/login", data={"username": "drift", "password": PASSWORD, "csrf_token": token},
               follow_redirects=False)
    assert "Secure" in r.headers["set-cookie"]


def test_wrong_password_and_lockout(app: Any, world: dict[str, Any]) -> None:
    from stafet.store import users

    with world["ctx"].store.session() as s:
        from stafet.web.auth import hash_password

        users.add(s, username="laas", password_hash=hash_password(PASSWORD), role="operations")
    c = TestClient(app, base_url="http://127.0.0.1")
    for _ in range(5):
        token = csrf_of(c.get("/login").text)
        r = c.post("/login", data={"username": "laas", "password": "forkert-forkert", "csrf_token": token})
        assert r.status_code == 401 and "Forkert brugernavn eller adgangskode" in r.text
    token = csrf_of(c.get("/login").text)
    r = c.post("/login", data={"username": "laas", "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 401 and "låst" in r.text
    assert _audits(world, "web.account_locked")


def test_login_without_csrf_is_refused(app: Any) -> None:
    c = TestClient(app, base_url="http://127.0.0.1")
    c.get("/login")
    r = c.post("/login", data={"username": "drift", "password": PASSWORD, "csrf_token": "nope"})
    assert r.status_code == 403


@pytest.mark.parametrize("user", list(ROLE_OF))
def test_every_page_of_every_role(clients: dict[str, TestClient], user: str) -> None:
    role = ROLE_OF[user]
    for url in PAGES[role]:
        r = clients[user].get(url)
        assert r.status_code == 200, (user, url, r.text[:300])
        _page_ok(r.text)
    for urls in PAGES.values():
        for url in urls:
            if url not in PAGES[role] and not url.startswith("/quarantine/"):
                assert clients[user].get(url).status_code == 403, (user, url)


def test_operations_and_coordinator_see_no_cpr(clients: dict[str, TestClient], world: dict[str, Any]) -> None:
    for user in ("drift", "koordinator"):
        for url in PAGES[ROLE_OF[user]] + ["/messages?state=sent", "/runs/" + _a_file(world)]:
            r = clients[user].get(url)
            if r.status_code == 200:
                assert not CPR_SHAPE.search(r.text), (user, url, CPR_SHAPE.search(r.text))
                assert "xxxx" not in r.text  # not even a masked one
                for first in ("Søren", "Mathilde", "Ægidius"):
                    assert first not in r.text


def _a_file(world: dict[str, Any]) -> str:
    from stafet.store.schema import SourceFile

    with world["ctx"].store.session() as s:
        return next(iter(s.scalars(select(SourceFile.sha256))))


def test_quarantine_grouped_explained_and_masked(clients: dict[str, TestClient],
                                                 world: dict[str, Any]) -> None:
    c = clients["steward"]
    r = c.get("/quarantine")
    assert "dropout_reason" in r.text and "start_before_event" in r.text
    assert "Afbrudsaarsag har værdien »77«" in r.text  # each row says why, in its own values
    assert not CPR_SHAPE.search(r.text)
    (row,) = _open_ids(world, "start_before_event")
    r = c.get(f"/quarantine/{row}")
    assert "Startdato »18-09-2026« ligger efter Haendelsesdato »19-08-2026«" in r.text
    assert not CPR_SHAPE.search(r.text)
    first = _open_ids(world, "dropout_reason")[0]
    r = c.get(f"/quarantine/{first}")
    assert "Tilladte værdier" in r.text and "01, 02, 03" in r.text


def test_release_with_fix_is_revalidated_and_audited(clients: dict[str, TestClient],
                                                     world: dict[str, Any]) -> None:
    c = clients["steward"]
    (row,) = _open_ids(world, "start_before_event")
    page = c.get(f"/quarantine/{row}").text
    token = csrf_of(page)
    # a fix that still breaks the rule: stays open, the error inline
    r = c.post(f"/quarantine/{row}/release", data={"csrf_token": token, "f_Startdato": "20-09-2026"})
    assert r.status_code == 422 and "start_before_event" in r.text and 'role="alert"' in r.text
    r = c.post(f"/quarantine/{row}/release", data={"csrf_token": token, "f_Startdato": "01-08-2026"},
               follow_redirects=False)
    assert r.status_code == 303
    with world["ctx"].store.session() as s:
        q = s.get(Quarantine, row)
        assert q is not None and q.status == "released" and q.decided_by == "steward"
    assert any(e.subject == f"quarantine:{row}" and e.actor == "steward"
               for e in _audits(world, "quarantine.released"))


def test_reject_needs_a_reason_and_bulk_by_rule(clients: dict[str, TestClient],
                                                world: dict[str, Any]) -> None:
    c = clients["steward"]
    ids = _open_ids(world, "dropout_reason")
    token = csrf_of(c.get(f"/quarantine/{ids[0]}").text)
    r = c.post(f"/quarantine/{ids[0]}/reject", data={"csrf_token": token, "reason": " "})
    assert r.status_code == 422 and "begrundelse" in r.text
    r = c.post(f"/quarantine/{ids[0]}/reject", data={"csrf_token": token, "reason": "dublet"},
               follow_redirects=False)
    assert r.status_code == 303
    r = c.post("/quarantine/bulk", data={"csrf_token": token, "rule": "dropout_reason", "action": "reject",
                                         "reason": "forkert kode, rettes i EASY-A"}, follow_redirects=False)
    assert r.status_code == 303
    assert _open_ids(world, "dropout_reason") == []
    assert len([e for e in _audits(world, "quarantine.rejected") if e.actor == "steward"]) >= len(ids)


def test_reveal_is_audited_and_scoped(clients: dict[str, TestClient], world: dict[str, Any]) -> None:
    with world["ctx"].store.session() as s:
        row = next(iter(s.scalars(select(Quarantine.id))))
    c = clients["steward"]
    token = csrf_of(c.get(f"/quarantine/{row}").text)
    r = c.post(f"/quarantine/{row}/reveal", data={"csrf_token": token, "reason": "ret CPR"})
    assert r.status_code == 200 and CPR_SHAPE.search(r.text)  # shown to her, once, audited
    assert r.headers["cache-control"] == "no-store"
    assert any(e.subject == f"quarantine:{row}" for e in _audits(world, "web.cpr_revealed"))
    # a steward of other sources: 404 and audited, nothing revealed
    other = clients["steward-job"]
    token = csrf_of(other.get("/quarantine").text)
    before = len(_audits(world, "web.denied"))
    r = other.post(f"/quarantine/{row}/reveal", data={"csrf_token": token, "reason": "nysgerrig"})
    assert r.status_code == 404 and not CPR_SHAPE.search(r.text)
    assert other.get(f"/quarantine/{row}").status_code == 404
    assert len(_audits(world, "web.denied")) == before + 2
    assert "dropout_reason" not in other.get("/quarantine").text


def test_missing_or_wrong_csrf_is_refused(clients: dict[str, TestClient], world: dict[str, Any]) -> None:
    with world["ctx"].store.session() as s:
        row = next(iter(s.scalars(select(Quarantine.id))))
    c = clients["steward"]
    assert c.post(f"/quarantine/{row}/reveal", data={"reason": "x"}).status_code == 403
    wrong = {"reason": "x", "csrf_token": "forkert"}
    assert c.post(f"/quarantine/{row}/reject", data=wrong).status_code == 403
    assert clients["drift"].post("/logout", data={}).status_code == 403


def test_inbox_package_and_other_org_is_404(clients: dict[str, TestClient], world: dict[str, Any]) -> None:
    c = clients["vejleder"]
    r = c.get("/inbox")
    pkg = re.search(r'href="/inbox/(PKG-[0-9a-f]+)"', r.text)
    assert pkg, r.text
    r = c.get(f"/inbox/{pkg.group(1)}")
    assert r.status_code == 200 and "Grundlag" in r.text and "Udeladt" in r.text
    _page_ok(r.text)
    before = len(_audits(world, "web.denied"))
    assert clients["vejleder-thy"].get(f"/inbox/{pkg.group(1)}").status_code == 404
    assert clients["vejleder-thy"].get("/inbox/PKG-000000000000000000000000").status_code == 404
    assert len(_audits(world, "web.denied")) == before + 2
    assert pkg.group(1) not in clients["vejleder-thy"].get("/inbox").text


def test_youth_by_cpr_in_post_and_by_pseudonym(clients: dict[str, TestClient], world: dict[str, Any],
                                               caplog: pytest.LogCaptureFixture) -> None:
    c = clients["vejleder"]
    token = csrf_of(c.get("/youth").text)
    with caplog.at_level(logging.DEBUG):
        r = c.post("/youth", data={"csrf_token": token, "cpr": "120308-4127"}, follow_redirects=False)
    assert r.status_code == 303
    where = r.headers["location"]
    assert where.startswith("/youth/") and not CPR_SHAPE.search(where)
    assert not CPR_SHAPE.search(caplog.text)
    page = c.get(where)
    assert page.status_code == 200 and "120308-xxxx" in page.text and "Forløb" in page.text
    assert "<title>" in page.text and not CPR_SHAPE.search(page.text.split("</title>")[0])
    # UU Thy holds no basis for this youth: 404, audited
    before = len(_audits(world, "web.denied"))
    assert clients["vejleder-thy"].get(where).status_code == 404
    token = csrf_of(clients["vejleder-thy"].get("/youth").text)
    r = clients["vejleder-thy"].post("/youth", data={"csrf_token": token, "cpr": "120308-4127"})
    assert r.status_code == 404 and "120308" not in r.text
    assert len(_audits(world, "web.denied")) == before + 2


def test_duties_per_org_and_for_the_coordinator(clients: dict[str, TestClient]) -> None:
    def pages(c: TestClient) -> str:  # every page of the list (new rules push items to later pages)
        return "".join(c.get(f"/duties?page={n}").text for n in range(1, 6))

    mine = pages(clients["vejleder"])
    assert "Opfølgning mindst to gange" in mine and "Overleveringen kvitteres" not in mine
    everything = pages(clients["koordinator"])
    assert "Opfølgning mindst to gange" in everything and "Overleveringen kvitteres" in everything
    assert not CPR_SHAPE.search(everything) and "xxxx" not in everything


def test_register_contact_outside_my_duties_is_404(clients: dict[str, TestClient]) -> None:
    c = clients["vejleder-thy"]
    token = csrf_of(c.get("/duties").text if "csrf_token" in c.get("/duties").text else c.get("/youth").text)
    r = c.post("/duties/contact", data={"csrf_token": token, "youth": "nobody", "day": "2026-11-20",
                                        "form": "samtale"})
    assert r.status_code == 404


def test_message_log_filters_and_receipts(clients: dict[str, TestClient]) -> None:
    c = clients["drift"]
    r = c.get("/messages")
    assert "PKG-" in r.text and "sendt" in r.text
    r = c.get("/messages?state=held")
    assert "tilbageholdt" in r.text and "jobcenter-viborg" in r.text
    r = c.get("/messages?org=uu-thy")
    assert "PKG-" not in r.text
    r = c.get("/messages?age=100000")
    assert "PKG-" not in r.text


def test_resend_of_an_unknown_handover_is_404(clients: dict[str, TestClient]) -> None:
    c = clients["drift"]
    token = csrf_of(c.get("/messages").text)
    assert c.post("/messages/PKG-nope/resend", data={"csrf_token": token}).status_code == 404


def test_network_and_charts(clients: dict[str, TestClient]) -> None:
    c = clients["drift"]
    r = c.get("/network")
    assert "Mercantec" in r.text and "Dage tilbage" in r.text
    svg = c.get("/runs/chart/rows.svg")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert "<svg" in svg.text and "Rækker pr. kilde pr. nat" in svg.text
    assert clients["steward"].get("/runs/chart/rate.svg").status_code == 200


def test_logout_ends_the_session(app: Any) -> None:
    c = login(app, "drift")
    token = csrf_of(c.get("/messages").text)
    assert c.post("/logout", data={"csrf_token": token}, follow_redirects=False).status_code == 303
    assert c.get("/messages", follow_redirects=False).status_code == 303


def test_error_pages_say_nothing_personal(clients: dict[str, TestClient]) -> None:
    r = clients["vejleder"].get("/youth/120308-4127")
    assert r.status_code == 404 and "120308" not in r.text


def test_idle_session_ends(world: dict[str, Any]) -> None:
    import datetime as dt

    from stafet.web.app import create_app
    from stafet.web.security import Settings, visit

    app = create_app(world["ctx"], Settings(secure_cookies=False, idle_minutes=1))
    c = login(app, "drift")
    token = c.cookies.get("stafet_session")
    assert c.get("/messages").status_code == 200
    later = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(minutes=5)
    from stafet.web.auth import LocalAccounts

    ctx = world["ctx"]
    assert visit(ctx.store, LocalAccounts(ctx.store), token, Settings(idle_minutes=1), now=later) is None
    assert c.get("/messages", follow_redirects=False).status_code == 303  # the session is gone


def test_a_disabled_account_is_out_at_once(app: Any, world: dict[str, Any]) -> None:
    from stafet.store import users
    from stafet.web.auth import hash_password

    with world["ctx"].store.session() as s:
        users.add(s, username="kortvarig", password_hash=hash_password(PASSWORD), role="operations")
    c = login(app, "kortvarig")
    assert c.get("/network").status_code == 200
    with world["ctx"].store.session() as s:
        users.set_disabled(s, "kortvarig")
    assert c.get("/network", follow_redirects=False).status_code == 303


def test_actions_of_other_roles_are_refused(clients: dict[str, TestClient], world: dict[str, Any]) -> None:
    with world["ctx"].store.session() as s:
        row = next(iter(s.scalars(select(Quarantine.id))))
    for user in ("vejleder", "koordinator", "drift"):
        token = csrf_of(clients[user].get("/").text)
        assert clients[user].post(f"/quarantine/{row}/release", data={"csrf_token": token}).status_code == 403
        assert clients[user].post(f"/quarantine/{row}/reveal", data={"csrf_token": token}).status_code == 403
    token = csrf_of(clients["steward"].get("/quarantine").text)
    assert clients["steward"].post("/messages/PKG-x/resend", data={"csrf_token": token}).status_code == 403
    assert clients["steward"].post("/inbox/PKG-x/acknowledge", data={"csrf_token": token}).status_code == 403
    drift = csrf_of(clients["drift"].get("/").text)
    r = clients["drift"].post("/duties/contact", data={"csrf_token": drift, "youth": "x"})
    assert r.status_code == 403


def test_acknowledge_of_another_orgs_package_is_404(clients: dict[str, TestClient],
                                                     world: dict[str, Any]) -> None:
    pkg = re.search(r'href="/inbox/(PKG-[0-9a-f]+)"', clients["vejleder"].get("/inbox").text)
    assert pkg
    c = clients["vejleder-thy"]
    before = len(_audits(world, "web.denied"))
    r = c.post(f"/inbox/{pkg.group(1)}/acknowledge", data={"csrf_token": csrf_of(c.get("/inbox").text)})
    assert r.status_code == 404
    assert len(_audits(world, "web.denied")) == before + 1


def test_resend_a_failed_handover(clients: dict[str, TestClient], world: dict[str, Any]) -> None:
    from stafet.store import outbox
    from stafet.store.schema import Handover

    ctx = world["ctx"]
    with ctx.store.session() as s:
        h = next(iter(s.scalars(select(Handover).where(Handover.recipient == "uu-skive"))))
        outbox.failed(s, h.id, "550 mailbox unavailable")
    c = clients["drift"]
    page = c.get("/messages?state=failed").text
    assert h.id in page and "Send igen" in page and "550 mailbox unavailable" in page
    r = c.post(f"/messages/{h.id}/resend", data={"csrf_token": csrf_of(page)}, follow_redirects=False)
    assert r.status_code == 303
    with ctx.store.session() as s:
        again = s.get(Handover, h.id)
        assert again is not None and again.status == "sent" and again.attempts >= 1


def test_a_malformed_id_is_a_danish_404(clients: dict[str, TestClient]) -> None:
    r = clients["steward"].get("/quarantine/abc")
    assert r.status_code == 404 and "Siden findes ikke" in r.text
    assert r.headers["content-type"].startswith("text/html")


def test_reports_and_data_docs_served_to_stewards_only(clients: dict[str, TestClient],
                                                       world: dict[str, Any]) -> None:
    from tests.web.conftest import home_of

    folder = home_of(world) / "reports" / "ingest-20261122T020000000000" / "datadocs"
    folder.mkdir(parents=True)
    (folder / "index.html").write_text("<html><body>Data Docs</body></html>", encoding="utf-8")
    (home_of(world) / "reports" / "ingest-20261122T020000000000.html").write_text(
        '<a href="ingest-20261122T020000000000/datadocs/index.html">Data Docs</a>', encoding="utf-8")
    c = clients["steward"]
    assert "ingest-20261122T020000000000.html" in c.get("/runs").text
    r = c.get("/reports/ingest-20261122T020000000000/datadocs/index.html")
    assert r.status_code == 200 and "Data Docs" in r.text
    assert "sandbox" in r.headers["content-security-policy"]
    assert c.get("/reports/../stafet.db").status_code == 404
    assert c.get("/reports/%2e%2e/stafet.db").status_code == 404
    assert clients["drift"].get("/reports/ingest-20261122T020000000000.html").status_code == 403


def test_a_cpr_typed_as_user_name_is_not_kept(app: Any, world: dict[str, Any]) -> None:
    from stafet.store.schema import LoginAttempt

    c = TestClient(app, base_url="http://127.0.0.1")
    token = csrf_of(c.get("/login").text)
    r = c.post("/login", data={"username": "120308-4127", "password": "x" * 12, "csrf_token": token})
    assert r.status_code == 401 and not CPR_SHAPE.search(r.text)
    with world["ctx"].store.session() as s:
        names = list(s.scalars(select(LoginAttempt.username)))
    assert names and not any(CPR_SHAPE.search(n) for n in names)


def test_bulk_selection_outside_my_sources_is_404(clients: dict[str, TestClient],
                                                  world: dict[str, Any]) -> None:
    with world["ctx"].store.session() as s:
        rows = [str(i) for i in s.scalars(select(Quarantine.id).where(Quarantine.source == "easy-a"))]
        before = {q.id: q.status for q in s.scalars(select(Quarantine))}
    c = clients["steward-job"]
    token = csrf_of(c.get("/quarantine").text)
    r = c.post("/quarantine/bulk", data={"csrf_token": token, "ids": rows, "action": "reject", "reason": "x"})
    assert r.status_code == 404
    with world["ctx"].store.session() as s:
        assert {q.id: q.status for q in s.scalars(select(Quarantine))} == before


def test_a_steward_of_an_organisation_sees_its_sources_only(clients: dict[str, TestClient],
                                                            world: dict[str, Any]) -> None:
    """A steward account with an organisation and no sources: the sources network.yaml declares
    that organisation's (``sources[].org``), and none when it declares none — never all."""
    with world["ctx"].store.session() as s:
        rows = {q.id: q.source for q in s.scalars(select(Quarantine))}
    easy_a = [i for i, src in rows.items() if src == "easy-a"]
    assert easy_a  # the world holds easy-a rows
    mercantec, thy = clients["steward-mercantec"], clients["steward-thy"]
    for i in easy_a:
        assert mercantec.get(f"/quarantine/{i}").status_code == 200
        assert thy.get(f"/quarantine/{i}").status_code == 404
    others = [i for i, src in rows.items() if src != "easy-a"]
    assert all(mercantec.get(f"/quarantine/{i}").status_code == 404 for i in others)


def test_a_runs_page_links_the_files_own_report(clients: dict[str, TestClient],
                                               world: dict[str, Any]) -> None:
    """The night writes one report per file (reports/file-….html): the file's page links it."""
    from stafet.reports.validation import file_report_name
    from stafet.store.schema import SourceFile
    from tests.web.conftest import home_of

    with world["ctx"].store.session() as s:
        f = s.scalars(select(SourceFile).where(SourceFile.source == "easy-a")).first()
        assert f is not None
        sha = f.sha256
    name = f"{file_report_name(sha)}.html"
    (home_of(world) / "reports").mkdir(exist_ok=True)
    (home_of(world) / "reports" / name).write_text("<html><body>rapport</body></html>", encoding="utf-8")
    page = clients["steward"].get(f"/runs/{sha}").text
    assert name in page
    assert clients["steward"].get(f"/reports/{name}").status_code == 200


def test_an_escalated_duty_says_so_on_the_duties_page(clients: dict[str, TestClient],
                                                      world: dict[str, Any]) -> None:
    """Issue 19's "overdue, due soon, escalated": a duty whose coordinator step was sent is marked."""
    from stafet.duties.notices import key_of
    from stafet.store import notices
    from stafet.store.schema import DutyItemRow

    c = clients["vejleder"]
    assert "eskaleret til koordinatoren" not in c.get("/duties").text
    with world["ctx"].store.session() as s:
        d = s.scalars(select(DutyItemRow).where(DutyItemRow.responsible == "uu-viborg")
                      .order_by(DutyItemRow.due, DutyItemRow.rule, DutyItemRow.youth)).first()
        assert d is not None
        row = notices.claim(s, duty_key=key_of(d.rule, d.youth, d.responsible, d.due, d.reference),
                            step="coordinator", rule=d.rule, youth=d.youth, responsible=d.responsible,
                            recipient="koordinator", addressee="k@x.dk", due=d.due, day=d.day)
        assert row is not None
        notices.mark_sent(s, row.id, "PKG-TEST-ESC", actor="test")
    page = "".join(c.get(f"/duties?page={n}").text for n in range(1, 6))
    assert "eskaleret til koordinatoren" in page
    assert "1 eskaleret i alt" in c.get("/duties").text
