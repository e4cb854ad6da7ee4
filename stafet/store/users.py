"""The console's local accounts, server-side sessions and login attempts.

Passwords are hashed by the caller (argon2id, :mod:`stafet.web.auth`); this module only
stores the hash. A session row holds the SHA-256 of the cookie's token, so a copy of the
database does not let anyone in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from stafet.core.errors import DataError
from stafet.store.clock import utcnow
from stafet.store.schema import LoginAttempt, UserRow, WebSession

ROLES = ("steward", "counsellor", "coordinator", "operations")


def add(s: Session, *, username: str, password_hash: str, role: str, org: str = "",
        sources: Sequence[str] = (), display_name: str = "") -> UserRow:
    """A new account. Raises :class:`DataError` when the name is taken or the role unknown."""
    if role not in ROLES:
        raise DataError(f"unknown role {role!r} (one of {', '.join(ROLES)})", rule="users")
    if by_name(s, username) is not None:
        raise DataError(f"user {username!r} exists already", rule="users")
    now = utcnow()
    u = UserRow(username=username, display_name=display_name or username, password_hash=password_hash,
                role=role, org=org, sources=list(sources), disabled=False, locked_until=None,
                created_at=now, password_changed_at=now)
    s.add(u)
    s.flush()
    return u


def by_name(s: Session, username: str) -> UserRow | None:
    """The account of ``username``, or None."""
    return s.scalars(select(UserRow).where(UserRow.username == username)).first()


def get(s: Session, user_id: int) -> UserRow | None:
    """The account by id, or None."""
    return s.get(UserRow, user_id)


def listing(s: Session) -> list[UserRow]:
    """Every account, by user name."""
    return list(s.scalars(select(UserRow).order_by(UserRow.username)))


def _named(s: Session, username: str) -> UserRow:
    u = by_name(s, username)
    if u is None:
        raise DataError(f"no user {username!r}", rule="users")
    return u


def set_disabled(s: Session, username: str, disabled: bool = True) -> UserRow:
    """Disable (or enable) an account; a disabled account's sessions end at once."""
    u = _named(s, username)
    u.disabled = disabled
    if disabled:
        end_sessions_of(s, u.id)
    return u


def set_password(s: Session, username: str, password_hash: str) -> UserRow:
    """A new password hash; the lockout is lifted and every session of the account ends."""
    u = _named(s, username)
    u.password_hash, u.password_changed_at, u.locked_until = password_hash, utcnow(), None
    end_sessions_of(s, u.id)
    return u


def set_hash(s: Session, user_id: int, password_hash: str) -> None:
    """Replace a hash in place (a rehash with newer parameters at login)."""
    u = s.get(UserRow, user_id)
    if u is not None:
        u.password_hash = password_hash


def lock(s: Session, user_id: int, until: dt.datetime) -> None:
    """Lock an account until ``until`` (too many failed logins)."""
    u = s.get(UserRow, user_id)
    if u is not None:
        u.locked_until = until


# --- login attempts -----------------------------------------------------------------
def record_attempt(s: Session, username: str, remote: str, ok: bool, at: dt.datetime | None = None) -> None:
    """Note one login attempt."""
    s.add(LoginAttempt(username=username[:100], remote=remote[:64], ok=ok, at=at or utcnow()))


def failures_since(s: Session, since: dt.datetime, *, username: str | None = None,
                   remote: str | None = None) -> int:
    """Failed attempts since ``since`` for a user name (since its last success) or from an address."""
    stmt = select(func.count()).select_from(LoginAttempt).where(LoginAttempt.at >= since,
                                                                LoginAttempt.ok.is_(False))
    if username is not None:
        last_ok = s.scalar(select(func.max(LoginAttempt.at)).where(LoginAttempt.username == username,
                                                                   LoginAttempt.ok.is_(True)))
        stmt = stmt.where(LoginAttempt.username == username)
        if last_ok is not None:
            stmt = stmt.where(LoginAttempt.at > last_ok)
    if remote is not None:
        stmt = stmt.where(LoginAttempt.remote == remote)
    return s.scalar(stmt) or 0


def prune_attempts(s: Session, before: dt.datetime) -> int:
    """Forget attempts older than ``before``; returns how many."""
    return s.execute(delete(LoginAttempt).where(LoginAttempt.at < before)).rowcount or 0  # type: ignore[attr-defined]


# --- sessions -----------------------------------------------------------------------
def start_session(s: Session, token_hash: str, user_id: int, csrf_token: str) -> WebSession:
    """A new session for ``user_id``."""
    now = utcnow()
    ws = WebSession(token_hash=token_hash, user_id=user_id, csrf_token=csrf_token, created_at=now,
                    last_seen=now)
    s.add(ws)
    return ws


def session_of(s: Session, token_hash: str) -> tuple[WebSession, UserRow] | None:
    """The session with this token digest and its account, or None."""
    row = s.execute(select(WebSession, UserRow).join(UserRow, UserRow.id == WebSession.user_id)
                    .where(WebSession.token_hash == token_hash)).first()
    return None if row is None else (row[0], row[1])


def touch(s: Session, token_hash: str, at: dt.datetime) -> None:
    """Note that a session was used at ``at`` (the idle clock)."""
    ws = s.get(WebSession, token_hash)
    if ws is not None:
        ws.last_seen = at


def end_session(s: Session, token_hash: str) -> None:
    """End one session."""
    s.execute(delete(WebSession).where(WebSession.token_hash == token_hash))


def end_sessions_of(s: Session, user_id: int) -> None:
    """End every session of an account."""
    s.execute(delete(WebSession).where(WebSession.user_id == user_id))


def end_idle(s: Session, before: dt.datetime) -> int:
    """End every session not used since ``before``; returns how many."""
    return s.execute(delete(WebSession).where(WebSession.last_seen < before)).rowcount or 0  # type: ignore[attr-defined]
