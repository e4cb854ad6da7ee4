"""The console's pages and actions (FastAPI, server-rendered Jinja2, plain HTML forms).

Every request is checked server-side: a session (else the login page), the role a page
needs (else 403), and the scope of every object it names — a quarantined row of another
steward's source, a package or youth of another organisation is **404**, and the attempt
is audited (``web.denied``). Every form carries the session's CSRF token. No CPR is ever
in a URL, a title, a log line or an error page; a steward's reveal of one is audited.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import logging
import math
import re
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.exceptions import HTTPException as StarletteHTTPException

from stafet.context import Context
from stafet.core.errors import StafetError
from stafet.core.models import KIND_DANISH
from stafet.core.redaction import redact
from stafet.duties.notices import DUTY_DA as DUTY_RULE_DA
from stafet.store import console as q
from stafet.store import duty_items, utcnow
from stafet.store import outbox as outbox_store
from stafet.store import quarantine as quarantine_store
from stafet.web.auth import Authenticator, LocalAccounts, LoginRefused, Principal
from stafet.web.explain import explain, shown
from stafet.web.security import (
    CHART_CSP,
    CSP,
    HEADERS,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    Settings,
    Visit,
    end,
    new_session,
    same_token,
    visit,
)

log = logging.getLogger("stafet.web")

PAGE = 50
SNAPSHOT_RETRY_SECONDS = 60.0  # a failed computation of the duty snapshot is tried again after this long
SNAPSHOT_WAIT_SECONDS = 1.5  # how long /duties waits (without blocking others) for a snapshot it started
ROLE_DA = {"steward": "Dataansvarlig", "counsellor": "Vejleder / sagsbehandler",
           "coordinator": "Koordinator", "operations": "Drift"}
STATE_DA = {"pending": "venter", "sent": "sendt", "acknowledged": "kvitteret", "failed": "fejlet",
            "held": "tilbageholdt", "cancelled": "annulleret"}
DUTY_DA = {"overdue": "overskredet", "due_soon": "snart", "open": "åben", "escalated": "eskaleret"}
CONTACT_FORMS_DA = {"samtale": "Samtale", "telefon": "Telefon", "moede": "Møde", "brev": "Brev",
                    "mail": "Mail", "sms": "SMS", "hjemmebesoeg": "Hjemmebesøg"}
PARTY_OF = {"dropout_contact_custody": "custody_holder", "concern_contact": "school_counsellor",
            "absence_concern": "school_counsellor"}
"""Whom the contact that meets a duty reaches (stafet.store.contacts.PARTIES); the youth otherwise."""
QUARANTINE_DA = {"open": "åben", "released": "frigivet", "rejected": "afvist"}
HOME = {"steward": "/quarantine", "counsellor": "/inbox", "coordinator": "/duties", "operations": "/messages"}
NAV = {
    "steward": [("/quarantine", "Karantæne"), ("/runs", "Valideringshistorik")],
    "counsellor": [("/inbox", "Indbakke"), ("/duties", "Pligter"), ("/youth", "Ung")],
    "coordinator": [("/duties", "Pligter"), ("/messages", "Beskedlog")],
    "operations": [("/messages", "Beskedlog"), ("/runs", "Kørsler"), ("/network", "Netværk")],
}
_CPR_RE = re.compile(r"\D*(\d{6})-?(\d{4})\D*$")


class LoginNeeded(Exception):
    """No valid session: go to the login page."""


class DutySnapshots:
    """Today's duty snapshot for the console: the night writes it; when it has not, computed here once.

    The computation (:func:`stafet.duties.snapshot.write_snapshot`) runs in a background
    thread, never in a request; /duties waits a moment (:meth:`settled`) and says "being computed" meanwhile.
    """

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._failed: tuple[dt.date, float] | None = None

    def start(self, day: dt.date) -> None:
        """Compute ``day``'s snapshot in the background unless that runs already (or just failed)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            failed = self._failed
            if failed and failed[0] == day and time.monotonic() - failed[1] < SNAPSHOT_RETRY_SECONDS:
                return
            self._thread = threading.Thread(target=self._run, args=(day,), name="duty-snapshot", daemon=True)
            self._thread.start()

    def _run(self, day: dt.date) -> None:
        from stafet.duties.snapshot import write_snapshot

        try:
            n = write_snapshot(self.ctx, day)
            log.info("console: computed the duty snapshot of %s (%d items)", day.isoformat(), n)
        except Exception as e:  # a thread's failure is logged, and tried again later
            self._failed = (day, time.monotonic())
            log.error("console: the duty snapshot of %s failed: %s: %s", day.isoformat(), type(e).__name__,
                      redact(str(e)))

    def running(self) -> bool:
        """Whether a computation runs now."""
        t = self._thread
        return t is not None and t.is_alive()

    async def settled(self, day: dt.date, seconds: float, *, start: bool = False) -> bool:
        """Wait up to ``seconds`` (other requests go on) for a running computation; whether it is ready.

        With ``start``, the computation is started first when it does not run yet.
        """
        from stafet.duties.snapshot import has_snapshot

        if start:
            self.start(day)
        end = time.monotonic() + seconds
        while self.running() and time.monotonic() < end:
            await asyncio.sleep(0.05)
        return has_snapshot(self.ctx, day)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a running computation (tests); True when none runs any more."""
        t = self._thread
        if t is not None:
            t.join(timeout)
        return t is None or not t.is_alive()


def _templates() -> Environment:
    folder = Path(str(resources.files("stafet.web").joinpath("templates")))
    env = Environment(loader=FileSystemLoader(folder), autoescape=select_autoescape(["html"]))
    env.filters["when"] = _when
    env.filters["kind"] = lambda k: KIND_DANISH.get(k, k)
    env.filters["state"] = lambda st: STATE_DA.get(st, st)
    env.filters["duty"] = lambda st: DUTY_DA.get(st, st)
    env.filters["masked"] = shown
    env.filters["duty_rule"] = lambda r: _capital(DUTY_RULE_DA.get(r, str(r)))
    env.globals["contact_forms"] = CONTACT_FORMS_DA
    env.globals["party_of"] = lambda rule: PARTY_OF.get(rule, "youth")
    env.filters["qstatus"] = lambda st: QUARANTINE_DA.get(st, st)
    return env


def _when(v: Any) -> str:
    if v is None or v == "":
        return ""
    if isinstance(v, dt.datetime):  # the store's times are UTC (naive)
        v = v.astimezone(dt.UTC) if v.tzinfo else v
        return f"{v.day:02d}-{v.month:02d}-{v.year:04d} {v.hour:02d}:{v.minute:02d} UTC"
    if isinstance(v, dt.date):
        return f"{v.day:02d}-{v.month:02d}-{v.year:04d}"
    return str(v)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _page_no(request: Request) -> int:
    try:
        return max(1, int(request.query_params.get("page", "1")))
    except ValueError:
        return 1


def _resolve(names: tuple[tuple[str, str], ...], package: str = "") -> Callable[..., Any] | None:
    """The first of ``(module, function)`` that exists, else ``function`` in any module of ``package``."""
    if package:
        import pkgutil

        pkg = importlib.import_module(package)
        names = names + tuple((f"{package}.{m.name}", names[0][1])
                              for m in pkgutil.iter_modules(pkg.__path__))
    for mod, fn in names:
        try:
            m = importlib.import_module(mod)
        except ModuleNotFoundError:
            continue
        f = getattr(m, fn, None)
        if callable(f):
            return f
    return None


def create_app(ctx: Context, settings: Settings | None = None, auth: Authenticator | None = None,
               today: Callable[[], dt.date] | None = None) -> FastAPI:
    """The console for one opened installation (``stafet web`` serves it with uvicorn)."""
    settings = settings or Settings()
    auth = auth or LocalAccounts(ctx.store)
    env = _templates()
    today_of = today or dt.date.today
    app = FastAPI(title="stafet", docs_url=None, redoc_url=None, openapi_url=None)
    snapshots = DutySnapshots(ctx)
    app.state.duty_snapshots = snapshots
    static = Path(str(resources.files("stafet.web").joinpath("static")))
    app.mount("/static", StaticFiles(directory=static), name="static")

    @app.middleware("http")
    async def headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        for k, v in HEADERS.items():
            response.headers.setdefault(k, v)
        response.headers.setdefault("Content-Security-Policy", CSP)
        if not request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        if settings.secure_cookies:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response

    def render(request: Request, template: str, v: Visit | None, status: int = 200,
               **data: Any) -> HTMLResponse:
        nav = NAV.get(v.principal.role, []) if v else []
        body = env.get_template(template).render(
            me=v.principal if v else None, csrf=v.csrf if v else "", nav=nav, path=request.url.path,
            role_da=ROLE_DA, **data)
        return HTMLResponse(body, status_code=status)

    def error(request: Request, status: int, title: str, text: str, v: Visit | None = None) -> HTMLResponse:
        return render(request, "error.html", v, status=status, title=title, text=text)

    def cookie(response: Response, name: str, value: str, max_age: int | None = None) -> None:
        response.set_cookie(name, value, max_age=max_age, httponly=True, secure=settings.secure_cookies,
                            samesite="strict", path="/")

    def current(request: Request, *roles: str) -> Visit:
        v = visit(ctx.store, auth, request.cookies.get(SESSION_COOKIE), settings)
        if v is None:
            raise LoginNeeded()
        if roles and v.principal.role not in roles:
            raise StarletteHTTPException(403)
        request.state.visit = v
        return v

    def denied(v: Visit, what: str, ident: str) -> StarletteHTTPException:
        """404 for an object outside the user's scope (or none at all), audited."""
        with ctx.store.session() as s:
            ctx.store.audit(s, v.principal.username, "web.denied", redact(f"{what}:{ident}")[:200],
                            {"role": v.principal.role, "org": v.principal.org})
        log.warning("console: %s asked for a %s outside their scope", v.principal.username, what)
        return StarletteHTTPException(404)

    async def form_of(request: Request, v: Visit) -> dict[str, Any]:
        form = await request.form()
        if not same_token(v.csrf, str(form.get("csrf_token") or "")):
            raise StarletteHTTPException(403, "csrf")
        return {k: form.getlist(k) if k in ("ids",) else str(form.get(k) or "") for k in form}

    def sources_of(p: Principal) -> list[str] | None:
        """A steward's sources: named on the account, else its organisation's, else all (None).

        An organisation's sources are those network.yaml declares its own (``sources[].org``):
        none declared, none seen.
        """
        if p.sources:
            return list(p.sources)
        if p.org:
            return [src.name for src in ctx.network.sources if src.org == p.org]
        return None

    def remote_of(request: Request) -> str:
        if settings.behind_proxy:
            fwd = request.headers.get("x-forwarded-for", "")
            if fwd:
                return fwd.split(",")[0].strip()[:64]
        return request.client.host if request.client else ""

    @app.exception_handler(LoginNeeded)
    async def _login_needed(request: Request, exc: LoginNeeded) -> Response:
        return RedirectResponse("/login", status_code=303)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        v = getattr(request.state, "visit", None)
        if exc.status_code == 404:
            return error(request, 404, "Siden findes ikke", "Siden eller det, du bad om, findes ikke.", v)
        if exc.status_code == 403 and exc.detail == "csrf":
            return error(request, 403, "Formularen kunne ikke bruges",
                         "Formularen er udløbet eller kom ikke fra konsollen. Gå tilbage, genindlæs "
                         "siden og prøv igen.", v)
        if exc.status_code == 403:
            return error(request, 403, "Ingen adgang", "Din rolle giver ikke adgang til denne side.", v)
        if exc.status_code == 405:
            return error(request, 405, "Ikke tilladt", "Den handling er ikke tilladt her.", v)
        return error(request, exc.status_code, "Fejl", "Der opstod en fejl.", v)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError) -> Response:
        return error(request, 404, "Siden findes ikke", "Siden eller det, du bad om, findes ikke.",
                     getattr(request.state, "visit", None))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        log.error("console: %s on %s: %s", type(exc).__name__, request.url.path, redact(str(exc)))
        return error(request, 500, "Der opstod en fejl",
                     "Konsollen kunne ikke gennemføre handlingen. Fejlen er logget.",
                     getattr(request.state, "visit", None))

    # --- login ----------------------------------------------------------------------
    @app.get("/login")
    async def login_form(request: Request) -> Response:
        token = secrets.token_urlsafe(32)
        resp = render(request, "login.html", None, title="Log ind", login_csrf=token, message="")
        cookie(resp, LOGIN_CSRF_COOKIE, token, max_age=3600)
        return resp

    @app.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        expected = request.cookies.get(LOGIN_CSRF_COOKIE)
        token = secrets.token_urlsafe(32)
        if not same_token(expected, str(form.get("csrf_token") or "")):
            resp = render(request, "login.html", None, status=403, title="Log ind", login_csrf=token,
                          message="Formularen er udløbet. Prøv igen.")
            cookie(resp, LOGIN_CSRF_COOKIE, token, max_age=3600)
            return resp
        try:
            principal = auth.authenticate(str(form.get("username") or ""), str(form.get("password") or ""),
                                          remote_of(request))
        except LoginRefused as e:
            resp = render(request, "login.html", None, status=401, title="Log ind", login_csrf=token,
                          message=e.message, username=redact(str(form.get("username") or ""))[:100])
            cookie(resp, LOGIN_CSRF_COOKIE, token, max_age=3600)
            return resp
        session = new_session(ctx.store, principal, settings)
        with ctx.store.session() as s:
            ctx.store.audit(s, principal.username, "web.login", f"user:{principal.username}", {})
        done = RedirectResponse("/", status_code=303)
        cookie(done, SESSION_COOKIE, session)
        done.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
        return done

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        v = current(request)
        await form_of(request, v)
        end(ctx.store, v.token_hash)
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(SESSION_COOKIE, path="/")
        return resp

    @app.get("/")
    async def start(request: Request) -> Response:
        v = current(request)
        return RedirectResponse(HOME.get(v.principal.role, "/login"), status_code=303)

    # --- quarantine (steward) ---------------------------------------------------------
    def quarantine_row(v: Visit, row_id: int) -> Any:
        with ctx.store.session() as s:
            row = quarantine_store.get(s, row_id)
        srcs = sources_of(v.principal)
        if row is None or (srcs is not None and row.source not in srcs):
            raise denied(v, "quarantine", str(row_id))
        return row

    def quarantine_view(request: Request, v: Visit, row: Any, *, errors: list[str] | None = None,
                        values: dict[str, str] | None = None, revealed: str = "",
                        status: int = 200) -> HTMLResponse:
        from stafet.ingest.quarantine import quarantined_fields

        fields = quarantined_fields(ctx.store, row)
        fields.pop("_extra", None)
        why = explain(row.source, row.rule, fields, row.reason)
        shown_fields = [(k, shown(v_) if k not in (values or {}) else (values or {})[k],
                         shown(v_) != str(v_)) for k, v_ in fields.items()]
        return render(request, "quarantine_row.html", v, status=status, title=f"Karantæne, række {row.id}",
                      row=row, why=why, fields=shown_fields, errors=errors or [], revealed=revealed)

    @app.get("/quarantine")
    async def quarantine_list(request: Request) -> Response:
        v = current(request, "steward")
        rule = request.query_params.get("rule") or None
        page = _page_no(request)
        srcs = sources_of(v.principal)
        with ctx.store.session() as s:
            groups = q.quarantine_groups(s, srcs)
            rows = q.quarantine_page(s, srcs, rule=rule, limit=PAGE, offset=(page - 1) * PAGE)
        total = sum(n for r, n in groups if rule in (None, r))
        from stafet.ingest.quarantine import quarantined_fields

        why = {}
        for row in rows:  # one page: the sentence of each row, from its own values
            try:
                fields = quarantined_fields(ctx.store, row)
                why[row.id] = explain(row.source, row.rule, fields, row.reason).sentence
            except (StafetError, ValueError, KeyError):
                why[row.id] = shown(row.reason)
        return render(request, "quarantine.html", v, title="Karantæne", groups=groups, rows=rows, why=why,
                      rule=rule or "", page=page, pages=max(1, math.ceil(total / PAGE)), total=total,
                      message=request.query_params.get("msg", ""))

    @app.get("/quarantine/{row_id}")
    async def quarantine_detail(request: Request, row_id: int) -> Response:
        v = current(request, "steward")
        return quarantine_view(request, v, quarantine_row(v, row_id))

    @app.post("/quarantine/bulk")
    async def quarantine_bulk(request: Request) -> Response:
        from stafet.ingest.quarantine import reject_quarantined, release_quarantined

        v = current(request, "steward")
        form = await form_of(request, v)
        action, rule = form.get("action", ""), form.get("rule", "")
        srcs = sources_of(v.principal)
        if rule:
            with ctx.store.session() as s:
                ids = q.quarantine_ids(s, srcs, rule=rule)
        else:
            ids = [int(i) for i in form.get("ids", []) if str(i).isdigit()]
        for i in ids:
            quarantine_row(v, i)  # every id in scope, or 404 (audited)
        if action == "reject" and not form.get("reason", "").strip():
            return RedirectResponse("/quarantine?msg=reason", status_code=303)
        done = failed = 0
        for i in ids:
            try:
                if action == "release":
                    r = release_quarantined(ctx.store, ctx.network, i, actor=v.principal.username)
                    done, failed = done + r.released, failed + (not r.released)
                elif action == "reject":
                    reject_quarantined(ctx.store, i, reason=form.get("reason", ""),
                                       actor=v.principal.username)
                    done += 1
            except StafetError:
                failed += 1
        return RedirectResponse(f"/quarantine?msg={action}-{done}-{failed}", status_code=303)

    @app.post("/quarantine/{row_id}/release")
    async def quarantine_release(request: Request, row_id: int) -> Response:
        from stafet.ingest.quarantine import quarantined_fields, release_quarantined

        v = current(request, "steward")
        form = await form_of(request, v)
        row = quarantine_row(v, row_id)
        if row.status != "open":
            return quarantine_view(request, v, row, errors=["Rækken er allerede afgjort."], status=409)
        original = quarantined_fields(ctx.store, row)
        fixes = {}
        values = {}
        for k, val in original.items():
            given = form.get(f"f_{k}")
            if given is None or given == "":
                continue
            values[k] = given
            if given != shown(val) and given != val:
                fixes[k] = given
        try:
            r = release_quarantined(ctx.store, ctx.network, row_id, fixes=fixes, actor=v.principal.username)
        except StafetError as e:
            return quarantine_view(request, v, row, errors=[redact(str(e))], values=values, status=422)
        if not r.released:
            return quarantine_view(request, v, row, errors=[redact(f) for f in r.failures], values=values,
                                   status=422)
        return RedirectResponse(f"/quarantine?msg=released-{row_id}", status_code=303)

    @app.post("/quarantine/{row_id}/reject")
    async def quarantine_reject(request: Request, row_id: int) -> Response:
        from stafet.ingest.quarantine import reject_quarantined

        v = current(request, "steward")
        form = await form_of(request, v)
        row = quarantine_row(v, row_id)
        try:
            reject_quarantined(ctx.store, row_id, reason=form.get("reason", ""), actor=v.principal.username)
        except StafetError as e:
            msg = "Skriv en begrundelse for afvisningen." if "reason" in str(e) else redact(str(e))
            return quarantine_view(request, v, row, errors=[msg], status=422)
        return RedirectResponse(f"/quarantine?msg=rejected-{row_id}", status_code=303)

    @app.post("/quarantine/{row_id}/reveal")
    async def quarantine_reveal(request: Request, row_id: int) -> Response:
        from stafet.ingest.quarantine import quarantined_fields

        v = current(request, "steward")
        form = await form_of(request, v)
        row = quarantine_row(v, row_id)
        fields = quarantined_fields(ctx.store, row)
        clear = next((val for val in fields.values() if _CPR_RE.match(str(val))), "")
        with ctx.store.session() as s:
            ctx.store.audit(s, v.principal.username, "web.cpr_revealed", f"quarantine:{row_id}",
                            {"reason": redact(form.get("reason", ""))[:200], "source": row.source})
        return quarantine_view(request, v, row, revealed=clear or "(ingen CPR i rækken)")

    # --- validation history (steward; operations sees the runs) ------------------------
    def runs_scope(v: Visit) -> list[str] | None:
        return sources_of(v.principal) if v.principal.role == "steward" else None

    @app.get("/runs")
    async def runs(request: Request) -> Response:
        v = current(request, "steward", "operations")
        page = _page_no(request)
        srcs = runs_scope(v)
        since = utcnow() - dt.timedelta(days=30)
        with ctx.store.session() as s:
            files = q.files_page(s, srcs, limit=PAGE, offset=(page - 1) * PAGE)
            total = q.files_count(s, srcs)
            window = q.file_counts_since(s, srcs, since)
        nights: dict[tuple[str, str], list[int]] = {}
        for source, at, counts in window:
            key = (source, at.date().isoformat())
            acc = nights.setdefault(key, [0, 0])
            acc[0] += int(counts.get("rows", 0) or 0)
            acc[1] += int(counts.get("quarantined", 0) or 0)
        table = sorted(((src, day, r, qn, (100.0 * qn / r) if r else 0.0)
                        for (src, day), (r, qn) in nights.items()),
                       key=lambda t: (t[1], t[0]), reverse=True)
        prefect = settings.prefect_ui.rstrip("/")
        return render(request, "runs.html", v, title="Valideringshistorik" if v.principal.role == "steward"
                      else "Kørsler", files=files, page=page, pages=max(1, math.ceil(total / PAGE)),
                      total=total, table=table, prefect=prefect,
                      reports=_reports(ctx.home) if v.principal.role == "steward" else [])

    @app.get("/runs/chart/{which}.svg")
    async def runs_chart(request: Request, which: str) -> Response:
        v = current(request, "steward", "operations")
        if which not in ("rows", "rate"):
            raise StarletteHTTPException(404)
        since = utcnow() - dt.timedelta(days=30)
        with ctx.store.session() as s:
            window = q.file_counts_since(s, runs_scope(v), since)
        series: dict[str, dict[str, list[int]]] = {}
        for source, at, counts in window:
            acc = series.setdefault(source, {}).setdefault(at.date().isoformat(), [0, 0])
            acc[0] += int(counts.get("rows", 0) or 0)
            acc[1] += int(counts.get("quarantined", 0) or 0)
        frozen = tuple((src, tuple((d, r, qn) for d, (r, qn) in days.items()))
                       for src, days in series.items())
        return Response(_chart_svg(which, frozen), media_type="image/svg+xml",
                        headers={"Content-Security-Policy": CHART_CSP})

    @app.get("/runs/{run_id}")
    async def run_detail(request: Request, run_id: str) -> Response:
        v = current(request, "steward", "operations")
        with ctx.store.session() as s:
            f = q.file(s, run_id)
            srcs = runs_scope(v)
            if f is None or (srcs is not None and f.source not in srcs):
                raise denied(v, "run", run_id[:64])
            rows = q.quarantine_of_file(s, run_id) if v.principal.role == "steward" else []
        return render(request, "run.html", v, title=f"Fil {f.name}", f=f, rows=rows,
                      report=_report_for(ctx.home, f.sha256, f.received_at)
                      if v.principal.role == "steward" else "")

    @app.get("/reports/{name:path}")
    async def report_file(request: Request, name: str) -> Response:
        """A report of ``$STAFET_HOME/reports`` and the Data Docs it links (read offline, no script)."""
        import mimetypes

        current(request, "steward")  # reports list quarantined rows with masked CPRs: not for operations
        folder = (ctx.home / "reports").resolve()
        if not re.fullmatch(r"[A-Za-z0-9_./-]+", name) or ".." in name:
            raise StarletteHTTPException(404)
        path = (folder / name).resolve()
        if not path.is_file() or folder not in path.parents:
            raise StarletteHTTPException(404)
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if kind not in ("text/html", "text/css", "image/png", "image/svg+xml", "application/json"):
            raise StarletteHTTPException(404)
        media = kind + ("; charset=utf-8" if kind.startswith("text/") else "")
        return Response(path.read_bytes(), media_type=media, headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'self' 'unsafe-inline'; "
                                       "img-src 'self' data:; sandbox"})

    # --- inbox (counsellor) ---------------------------------------------------------------
    def own_package(v: Visit, package_id: str) -> Any:
        with ctx.store.session() as s:
            p = q.package(s, package_id)
        if p is None or p.recipient != v.principal.org:
            raise denied(v, "package", package_id[:64])
        return p

    @app.get("/inbox")
    async def inbox(request: Request) -> Response:
        v = current(request, "counsellor")
        page = _page_no(request)
        with ctx.store.session() as s:
            packages = q.packages_page(s, v.principal.org, limit=PAGE, offset=(page - 1) * PAGE)
            total = q.packages_count(s, v.principal.org)
            receipts = q.receipts_sent(s, [p.package_id for p in packages])
        return render(request, "inbox.html", v, title="Indbakke", packages=packages, receipts=receipts,
                      page=page, pages=max(1, math.ceil(total / PAGE)), total=total,
                      org=_org_name(ctx, v.principal.org), orgs=ctx.network.members,
                      message=request.query_params.get("msg", ""))

    @app.get("/inbox/{package_id}")
    async def inbox_package(request: Request, package_id: str) -> Response:
        v = current(request, "counsellor")
        p = own_package(v, package_id)
        with ctx.store.session() as s:
            records = q.package_records(s, v.principal.org, package_id)
            receipt = q.receipts_sent(s, [package_id]).get(package_id)
            h = outbox_store.get(s, package_id)
            basis, omitted = _basis(ctx, s, h, p)
            masked = ""
            if records:
                try:
                    masked = ctx.store.cpr_of(s, records[0].youth).masked
                except StafetError:
                    masked = ""
        return render(request, "package.html", v, title=f"Pakke {package_id}", p=p, records=records,
                      receipt=receipt, basis=basis, omitted=omitted, masked=masked,
                      sender=_org_name(ctx, p.sender), youth=records[0].youth if records else "")

    @app.post("/inbox/{package_id}/acknowledge")
    async def inbox_acknowledge(request: Request, package_id: str) -> Response:
        v = current(request, "counsellor")
        await form_of(request, v)
        p = own_package(v, package_id)
        ack = _resolve((("stafet.exchange.acknowledge", "acknowledge_package"),
                        ("stafet.exchange.receipts", "acknowledge_package"),
                        ("stafet.exchange.inbox", "acknowledge_package"),
                        ("stafet.exchange.reading", "acknowledge_package")), package="stafet.exchange")
        if ack is None:
            return error(request, 503, "Kvittering er ikke tilgængelig",
                         "Denne installation kan endnu ikke sende kvitteringer fra konsollen; brug "
                         "stafet receive.", v)
        try:
            ack(ctx, org=v.principal.org, package_id=p.package_id, by=v.principal.username)
        except StafetError as e:
            return error(request, 409, "Pakken kunne ikke kvitteres", redact(str(e)), v)
        return RedirectResponse("/inbox?msg=acknowledged", status_code=303)

    # --- duties (counsellor: own org; coordinator: all) ----------------------------------------
    def duty_org(v: Visit) -> str | None:
        return v.principal.org if v.principal.role == "counsellor" else None

    def youth_duties(v: Visit, youth: str) -> list[Any]:
        """The youth's open duties that ``v`` sees today: from the snapshot, else computed for this youth."""
        from stafet.duties.snapshot import youth_deadlines

        day, org = today_of(), duty_org(v)
        with ctx.store.session() as s:
            if duty_items.snapshot(s, day) is not None:
                return duty_items.of_youth(s, day, youth, org)
        return [d for d in youth_deadlines(ctx, day, youth) if org is None or d.responsible == org]

    @app.get("/duties")
    async def duties(request: Request) -> Response:
        v = current(request, "counsellor", "coordinator")
        day, org = today_of(), duty_org(v)
        page = _page_no(request)
        common: dict[str, Any] = {"today": day, "message": request.query_params.get("msg", ""),
                                  "show_cpr": v.principal.role == "counsellor", "page": page}
        for attempt in (1, 2):
            with ctx.store.session() as s:
                snap = duty_items.snapshot(s, day)
                if snap is not None:
                    counts = duty_items.counts(s, day, org)
                    escalated_total = notice_count(s, org)
                    items = duty_items.page(s, day, org, limit=PAGE, offset=(page - 1) * PAGE)
                    break
            if attempt == 2 or not await snapshots.settled(day, SNAPSHOT_WAIT_SECONDS, start=True):
                return render(request, "duties.html", v, title="Pligter", items=[], counts={}, pages=1,
                              total=0, computing=True, computed_at=None, **common)
        total = sum(counts.values())
        return render(request, "duties.html", v, title="Pligter", items=items, counts=counts,
                      pages=max(1, math.ceil(total / PAGE)), total=total, computing=False,
                      computed_at=snap.computed_at if snap is not None else None,
                      escalated=escalations(items), escalated_total=escalated_total, **common)

    def notice_count(s: Any, org: str | None) -> int:
        from stafet.store import notices as notice_store

        return notice_store.escalated_count(s, org)

    def escalations(items: list[Any]) -> dict[int, tuple[str, dt.date]]:
        """Item index → (the highest step sent, its day) for the page's duties that escalated."""
        from stafet.duties.notices import key_of
        from stafet.store import notices as notice_store

        keys = [key_of(d.rule, d.youth, d.responsible, d.due, d.reference) for d in items]
        with ctx.store.session() as s:
            sent = notice_store.first_sent(s, keys)
        out: dict[int, tuple[str, dt.date]] = {}
        for n, k in enumerate(keys):
            for step in ("management", "coordinator"):
                if (k, step) in sent:
                    out[n] = (step, sent[(k, step)])
                    break
        return out

    @app.post("/duties/contact")
    async def duties_contact(request: Request) -> Response:
        v = current(request, "counsellor")
        form = await form_of(request, v)
        youth = form.get("youth", "")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", youth) or not youth_duties(v, youth):
            raise denied(v, "duty", youth[:32])
        try:
            day = dt.date.fromisoformat(form.get("day", ""))
        except ValueError:
            return error(request, 422, "Kontakten blev ikke registreret",
                         "Datoen skal være en gyldig dato.", v)
        if day > today_of():
            return error(request, 422, "Kontakten blev ikke registreret",
                         "Datoen må ikke ligge i fremtiden.", v)
        register = _resolve((("stafet.duties.contacts", "register_contact"),
                             ("stafet.duties.contact", "register_contact")), package="stafet.duties")
        if register is None:
            return error(request, 503, "Registrering er ikke tilgængelig",
                         "Denne installation kan endnu ikke registrere kontakter fra konsollen.", v)
        try:
            register(ctx, youth=youth, day=day, form=form.get("form", "") or "samtale",
                     note=form.get("note", ""), by=v.principal.username, org=v.principal.org,
                     party=form.get("party", "") or "youth")
        except StafetError as e:
            return error(request, 422, "Kontakten blev ikke registreret", redact(str(e)), v)
        from stafet.duties.snapshot import refresh_youth

        refresh_youth(ctx, today_of(), youth)  # the closed duty leaves the snapshot now, not tomorrow night
        return RedirectResponse("/duties?msg=contact", status_code=303)

    # --- youth timeline (counsellor) ---------------------------------------------------------------
    @app.get("/youth")
    async def youth_search(request: Request) -> Response:
        v = current(request, "counsellor")
        return render(request, "youth_search.html", v, title="Find en ung", message="")

    @app.post("/youth")
    async def youth_find(request: Request) -> Response:
        v = current(request, "counsellor")
        form = await form_of(request, v)
        text = (form.get("cpr") or "").strip()
        pseud = (form.get("pseudonym") or "").strip()
        if text:
            m = _CPR_RE.match(text)
            if not m:
                return render(request, "youth_search.html", v, status=422, title="Find en ung",
                              message="Skriv CPR-nummeret som DDMMÅÅ-XXXX.")
            pseud = ctx.vault.pseudonym(m.group(1) + m.group(2))
        if not pseud or not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", pseud):
            return render(request, "youth_search.html", v, status=422, title="Find en ung",
                          message="Skriv et CPR-nummer eller et pseudonym.")
        if not _may_see_youth(ctx, v, pseud, youth_duties):
            denied(v, "youth", pseud)
            return render(request, "youth_search.html", v, status=404, title="Find en ung",
                          message="Ingen ung fundet, som din organisation har grundlag for at se.")
        return RedirectResponse(f"/youth/{pseud}", status_code=303)

    @app.get("/youth/{pseudonym}")
    async def youth_timeline(request: Request, pseudonym: str) -> Response:
        v = current(request, "counsellor")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", pseudonym) or not _may_see_youth(ctx, v, pseudonym,
                                                                                      youth_duties):
            raise denied(v, "youth", pseudonym[:32])
        org = v.principal.org
        with ctx.store.session() as s:
            imported = q.youth_imported(s, org, pseudonym)
            handovers = q.youth_handovers(s, org, pseudonym)
            sent_ids = [i for h in handovers if h.sender == org for i in (h.record_ids or [])]
            own = q.records_by_ids(s, sent_ids[:500])
            try:
                masked = ctx.store.cpr_of(s, pseudonym).masked
            except StafetError:
                masked = ""
        events: list[tuple[str, str, str, str]] = []
        for r in imported:
            events.append((_event_day(r.payload, r.received_at), KIND_DANISH.get(r.kind, r.kind),
                           _payload_text(r.payload), f"modtaget fra {_org_name(ctx, r.sender)}"))
        for o in own:
            events.append((_event_day(o.payload, o.received_at), KIND_DANISH.get(o.kind, o.kind),
                           _payload_text(o.payload), f"egen kilde {o.source}"))
        for h in handovers:
            other = h.recipient if h.sender == org else h.sender
            events.append((h.created_at.date().isoformat(), "Overlevering",
                           f"{'til' if h.sender == org else 'fra'} {_org_name(ctx, other)}: "
                           f"{STATE_DA.get(h.status, h.status)}",
                           h.id))
        duties_now = youth_duties(v, pseudonym)
        events.sort(key=lambda e: e[0])
        return render(request, "youth.html", v, title=f"Ung {pseudonym}", pseudonym=pseudonym, masked=masked,
                      events=events, duties=duties_now)

    # --- message log (operations, coordinator) -----------------------------------------------
    @app.get("/messages")
    async def messages(request: Request) -> Response:
        v = current(request, "operations", "coordinator")
        qp = request.query_params
        org = qp.get("org") or None
        state = qp.get("state") or None
        age = qp.get("age") or ""
        older = None
        if age.isdigit():
            older = utcnow() - dt.timedelta(hours=int(age))
        page = _page_no(request)
        states = [state] if state else None
        with ctx.store.session() as s:
            rows = q.handovers_page(s, org=org, states=states, older_than=older, limit=PAGE,
                                    offset=(page - 1) * PAGE)
            total = q.handovers_count(s, org=org, states=states, older_than=older)
            receipts = q.receipts_received(s, [h.id for h in rows])
            counts = outbox_store.counts_by_status(s)
        return render(request, "messages.html", v, title="Beskedlog", rows=rows, receipts=receipts,
                      total=total, page=page, pages=max(1, math.ceil(total / PAGE)), counts=counts,
                      org=org or "", state=state or "", age=age, orgs=ctx.network.members, states=STATE_DA,
                      message=qp.get("msg", ""), query=_query(org, state, age))

    @app.post("/messages/{handover_id}/resend")
    async def messages_resend(request: Request, handover_id: str) -> Response:
        from stafet.exchange.outbox import retry_handover, send_pending

        v = current(request, "operations", "coordinator")
        await form_of(request, v)
        with ctx.store.session() as s:
            h = outbox_store.get(s, handover_id)
        if h is None:
            raise denied(v, "handover", handover_id[:64])
        resend = _resolve((("stafet.exchange.outbox", "resend_handover"),
                           ("stafet.exchange.resend", "resend_handover")))
        try:
            if resend is not None:
                resend(ctx, handover_id, actor=v.principal.username)
            else:
                new = retry_handover(ctx, handover_id, actor=v.principal.username)
                if new == "pending":
                    send_pending(ctx, recipients=[h.recipient])
        except StafetError as e:
            return error(request, 409, "Overleveringen kunne ikke sendes igen", redact(str(e)), v)
        return RedirectResponse("/messages?msg=resent", status_code=303)

    # --- network (operations) ---------------------------------------------------------------
    @app.get("/network")
    async def network(request: Request) -> Response:
        from stafet.reports.status import certificate_expiries, revocation_state

        v = current(request, "operations")
        certs = certificate_expiries(ctx, today_of())
        try:
            revocation = revocation_state(ctx)
        except StafetError as e:
            revocation = [{"path": "", "state": "unreadable", "issuer": "", "next_update": "",
                           "detail": redact(str(e)), "refusing": True}]
        return render(request, "network.html", v, title="Netværk", members=list(ctx.network.members.values()),
                      certs=certs, revocation=revocation, network=ctx.network.name)

    return app


# --- helpers ------------------------------------------------------------------------------
@lru_cache(maxsize=32)
def _chart_svg(which: str, series: tuple[tuple[str, tuple[tuple[str, int, int], ...]], ...]) -> str:
    """A validation-history chart, drawn once per distinct data (matplotlib is slow: cached by content)."""
    from stafet.reports.charts import line_svg

    if which == "rows":
        data = {src: [(d, float(r)) for d, r, _ in days] for src, days in series}
        svg = line_svg(data, title="Rækker pr. kilde pr. nat", y_label="Rækker")
    else:
        data = {src: [(d, (100.0 * qn / r) if r else 0.0) for d, r, qn in days] for src, days in series}
        svg = line_svg(data, title="Karantæneandel pr. kilde pr. nat", y_label="Procent")
    if 'xmlns="' not in svg[:300]:
        svg = svg.replace("<svg", '<svg xmlns="http://www.w3.org/2000/svg"', 1)
    return svg


def _org_name(ctx: Context, org: str) -> str:
    m = ctx.network.members.get(org)
    return m.name if m is not None else org


def _query(org: str | None, state: str | None, age: str) -> str:
    from urllib.parse import urlencode

    return urlencode({k: v for k, v in (("org", org), ("state", state), ("age", age)) if v})


def _event_day(payload: dict[str, Any], fallback: dt.datetime) -> str:
    for k in ("event_date", "status_date", "updated", "start_date", "meeting_date", "date"):
        if payload.get(k):
            return str(payload[k])[:10]
    return fallback.date().isoformat()


_HIDDEN = {"cpr", "first_name", "last_name", "name"}


def _payload_text(payload: dict[str, Any]) -> str:
    parts = [f"{k}: {v}" for k, v in payload.items() if k not in _HIDDEN and v not in (None, "", [], {})]
    return redact(", ".join(parts))[:400]


def _basis(ctx: Context, s: Any, h: Any, p: Any) -> tuple[str, list[tuple[str, str]]]:
    """The legal basis or consent of a received package, and what was left out and why."""
    if h is None:
        basis = f"Samtykke {p.consent_ref}" if p.consent_ref else "Lovpligtig overlevering (se pakken)"
        return basis, []
    basis = h.legal_basis + (f" (samtykke {h.consent_ref})" if h.consent_ref else "")
    omitted: list[tuple[str, str]] = []
    if h.consent_ref:
        try:
            from stafet.duties.routing import package_scope

            scope = package_scope(s, ctx.network, h.rule, h.youth, h.recipient, set(h.kinds), h.consent_ref,
                                  h.created_at.date())
            omitted = [(KIND_DANISH.get(k, k), why) for k, why in scope.omitted]
        except (StafetError, KeyError, ValueError):
            omitted = []
    return basis, omitted


def _may_see_youth(ctx: Context, v: Visit, pseudonym: str,
                   youth_duties: Callable[[Visit, str], list[Any]]) -> bool:
    """Whether ``v``'s organisation holds a basis for the youth.

    It does when it received or sent a package about them, or holds an open duty for them.
    """
    org = v.principal.org
    with ctx.store.session() as s:
        if not q.youth_exists(s, pseudonym):
            return False
        if q.youth_imported(s, org, pseudonym, limit=1) or q.youth_handovers(s, org, pseudonym, limit=1):
            return True
    return bool(youth_duties(v, pseudonym))


def _reports(home: Path) -> list[str]:
    folder = home / "reports"
    if not folder.is_dir():
        return []
    return sorted((p.name for p in folder.glob("*.html")), reverse=True)[:30]


def _report_for(home: Path, sha256: str, at: dt.datetime) -> str:
    """The file's own report (the night's, or ``stafet report ingest``), else its run's.

    A run's report is the ingest report written closest after the file was received (the
    same ``stafet ingest`` run), if any.
    """
    from stafet.reports.validation import file_report_name

    folder = home / "reports"
    if not folder.is_dir():
        return ""
    own = f"{file_report_name(sha256)}.html"
    if (folder / own).is_file():
        return own
    stamp = f"ingest-{at:%Y%m%dT%H%M}"
    found = sorted(p.name for p in folder.glob("ingest-*.html") if p.name[:len(stamp)] >= stamp)
    return found[0] if found else ""
