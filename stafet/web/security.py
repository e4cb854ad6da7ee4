"""Sessions, CSRF tokens and the headers every response carries.

The session cookie holds a random token; the store keeps only its SHA-256
(:mod:`stafet.store.users`). Cookies are ``HttpOnly``, ``SameSite=Strict`` and
``Secure`` unless the console serves plain http on localhost (``secure_cookies``
off). Every form carries the session's CSRF token; the login form a token of its own
(a double-submit cookie). The Content-Security-Policy allows nothing inline.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from stafet.store import Store, utcnow
from stafet.store import users as users_store
from stafet.web.auth import Authenticator, Principal

SESSION_COOKIE = "stafet_session"
LOGIN_CSRF_COOKIE = "stafet_login_csrf"

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
# An SVG chart is a document of its own (shown by <img>): its styles are inline, no script runs.
CHART_CSP = "default-src 'none'; style-src 'unsafe-inline'"
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}


TOUCH_SECONDS = 60
"""A session's ``last_seen`` is written at most this often (or a tenth of the idle timeout, if shorter)."""


@dataclass(frozen=True)
class Settings:
    """How the console runs: cookies, idle timeout, proxy."""

    secure_cookies: bool = True
    idle_minutes: int = 30
    behind_proxy: bool = False
    prefect_ui: str = ""  # the Prefect UI's base URL, for links to flow runs ("" = none)


@dataclass(frozen=True)
class Visit:
    """One authenticated request: who, and the session's CSRF token."""

    principal: Principal
    csrf: str
    token_hash: str


def token_hash(token: str) -> str:
    """What the store keeps of a session token."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_session(store: Store, principal: Principal, settings: Settings | None = None) -> str:
    """Start a session; returns the cookie's token (never stored).

    Sessions idle past the timeout and login attempts older than a day are swept here.
    """
    token = secrets.token_urlsafe(32)
    now = utcnow()
    idle = (settings or Settings()).idle_minutes
    with store.session() as s:
        users_store.end_idle(s, now - dt.timedelta(minutes=idle))
        users_store.prune_attempts(s, now - dt.timedelta(days=1))
        users_store.start_session(s, token_hash(token), principal.user_id, secrets.token_urlsafe(32))
    return token


def visit(store: Store, auth: Authenticator, token: str | None, settings: Settings,
          now: dt.datetime | None = None) -> Visit | None:
    """The session behind a cookie, or None (none, ended, idle too long, account disabled)."""
    if not token:
        return None
    now = now or utcnow()
    th = token_hash(token)
    with store.session() as s:
        found = users_store.session_of(s, th)
        if found is None:
            return None
        ws, _ = found
        if ws.last_seen < now - dt.timedelta(minutes=settings.idle_minutes):
            users_store.end_session(s, th)
            return None
        every = min(TOUCH_SECONDS, settings.idle_minutes * 6)  # a tenth of the idle timeout at most
        if ws.last_seen < now - dt.timedelta(seconds=every):
            users_store.touch(s, th, now)  # not on every request: a page view then writes nothing
        csrf, user_id = ws.csrf_token, ws.user_id
    principal = auth.principal(user_id)
    if principal is None:
        with store.session() as s:
            users_store.end_session(s, th)
        return None
    return Visit(principal, csrf, th)


def end(store: Store, th: str) -> None:
    """Log out: end the session."""
    with store.session() as s:
        users_store.end_session(s, th)


def same_token(expected: str | None, given: str | None) -> bool:
    """Whether a form's CSRF token is the expected one (constant time)."""
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))
