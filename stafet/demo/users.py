"""The demo's console accounts: one per role, with fresh passwords printed by `stafet demo`.

Hashes are argon2id (the console's own parameters: ``argon2.PasswordHasher()``'s
defaults). Run again, the demo gives the same accounts new passwords.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher

from stafet.core.config import database_url
from stafet.core.vault import Vault, load_secret
from stafet.store import Store
from stafet.store import users as users_store

# (user name, display name, role, organisation, sources)
DEMO_USERS = (
    ("steward", "Dorthe Dataansvarlig", "steward", "", ()),
    ("vejleder", "Vera Vejleder (UU Viborg)", "counsellor", "uu-viborg", ()),
    ("koordinator", "Kim Koordinator", "coordinator", "", ()),
    ("drift", "Dennis Drift", "operations", "", ()),
)


def create_demo_users(store: Store) -> list[tuple[str, str, str, str]]:
    """Create (or re-password) the demo accounts; returns ``(user, password, role, org)`` each."""
    hasher = PasswordHasher()
    out = []
    with store.session() as s:
        for name, display, role, org, sources in DEMO_USERS:
            password = secrets.token_urlsafe(12)
            if users_store.by_name(s, name) is None:
                users_store.add(s, username=name, password_hash=hasher.hash(password), role=role, org=org,
                                sources=sources, display_name=display)
            else:
                users_store.set_password(s, name, hasher.hash(password))
            out.append((name, password, role, org))
    return out


def show_demo_logins(home: Path, console: Any) -> None:
    """Create the demo accounts in the store at ``home`` and print their logins (for `stafet demo`)."""
    store = Store(database_url(home), Vault(load_secret(home)))
    console.print("[bold]the console[/bold] (stafet web, then http://127.0.0.1:8080/): logins")
    for name, password, role, org in create_demo_users(store):
        console.print(f"  {role:<12} {name:<12} {password}" + (f"  ({org})" if org else ""))
