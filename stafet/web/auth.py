"""Who is logged in: the :class:`Authenticator` interface and local accounts behind it.

Local accounts (``stafet users``) keep argon2id hashes in the store; logins are
throttled per user name and per address, and an account locks for a while after too
many failures. An OpenID Connect provider (a municipality's identity broker) replaces
:class:`LocalAccounts` by implementing the same interface: its ``begin`` redirects to
the provider, its callback maps the verified claims to a :class:`Principal`; the
session, CSRF and role checks of the console stay as they are.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from stafet.core.redaction import redact
from stafet.store import Store, utcnow
from stafet.store import users as users_store
from stafet.store.schema import UserRow

log = logging.getLogger("stafet.web")

HASHER = PasswordHasher()  # argon2id with the library's current recommended parameters
MIN_PASSWORD = 12
MAX_FAILURES = 5            # per user name before the account locks
LOCK_MINUTES = 15
WINDOW_MINUTES = 15
MAX_FAILURES_PER_ADDRESS = 30
# A hash to verify against when the user name is unknown: the same work either way.
_DUMMY = HASHER.hash("stafet-no-such-user")


@dataclass(frozen=True)
class Principal:
    """A logged-in person as the console sees them: role and scope, never a password."""

    user_id: int
    username: str
    display_name: str
    role: str
    org: str = ""
    sources: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def of(cls, u: UserRow) -> Principal:
        """The principal of an account row."""
        return cls(u.id, u.username, u.display_name or u.username, u.role, u.org or "",
                   tuple(u.sources or ()))


class LoginRefused(Exception):
    """A login that did not succeed; ``message`` is what the person is told (Danish)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Authenticator(Protocol):
    """What the console needs of a login provider.

    ``authenticate`` checks credentials and returns the principal, or raises
    :class:`LoginRefused`; ``principal`` looks up the account a session belongs to
    (None: it is gone or disabled, the session ends).
    """

    def authenticate(self, username: str, password: str, remote: str) -> Principal:
        """The principal for these credentials, or :class:`LoginRefused`."""
        ...

    def principal(self, user_id: int) -> Principal | None:
        """The account behind a session, or None when it is gone or disabled."""
        ...


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``; refuses passwords shorter than :data:`MIN_PASSWORD`."""
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"a password needs at least {MIN_PASSWORD} characters")
    return HASHER.hash(password)


class LocalAccounts:
    """Accounts in the store (``stafet users``): argon2id, throttling and lockout."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def principal(self, user_id: int) -> Principal | None:
        """The account behind a session, unless it is gone or disabled."""
        with self.store.session() as s:
            u = users_store.get(s, user_id)
            return None if u is None or u.disabled else Principal.of(u)

    def authenticate(self, username: str, password: str, remote: str,
                     now: dt.datetime | None = None) -> Principal:
        """Check a user name and password; every attempt is counted, failures throttle."""
        now = now or utcnow()
        refused = LoginRefused("Forkert brugernavn eller adgangskode.")
        username = username.strip()[:100]
        outcome: Principal | LoginRefused = refused
        with self.store.session() as s:  # every attempt is kept: refusals are returned, not raised, here
            since = now - dt.timedelta(minutes=WINDOW_MINUTES)
            u = users_store.by_name(s, username)
            if users_store.failures_since(s, since, remote=remote) >= MAX_FAILURES_PER_ADDRESS:
                log.warning("login throttled for address")
                outcome = LoginRefused("For mange mislykkede forsøg. Prøv igen om lidt.")
            elif u is not None and u.locked_until is not None and u.locked_until > now:
                outcome = LoginRefused("Kontoen er midlertidigt låst efter for mange mislykkede forsøg. "
                                       f"Prøv igen om {LOCK_MINUTES} minutter.")
            elif u is not None and _verify(u.password_hash, password) and not u.disabled:
                if HASHER.check_needs_rehash(u.password_hash):
                    users_store.set_hash(s, u.id, HASHER.hash(password))
                u.locked_until = None
                outcome = Principal.of(u)
            elif u is None:
                _verify(_DUMMY, password)  # the same work for an unknown name
            # a CPR typed as a user name is never kept in clear
            users_store.record_attempt(s, redact(username), remote, isinstance(outcome, Principal), now)
            s.flush()
            if (u is not None and outcome is refused
                    and users_store.failures_since(s, since, username=username) >= MAX_FAILURES):
                users_store.lock(s, u.id, now + dt.timedelta(minutes=LOCK_MINUTES))
                self.store.audit(s, "web", "web.account_locked", f"user:{u.username}", {})
                log.warning("console account locked after repeated failed logins")
        if isinstance(outcome, LoginRefused):
            raise outcome
        return outcome


def _verify(hashed: str, password: str) -> bool:
    try:
        return HASHER.verify(hashed, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
