"""The demo's console accounts: one per role, logins printed, a second run re-passwords them."""

from __future__ import annotations

from pathlib import Path

from stafet.core.config import database_url
from stafet.core.vault import Vault, load_secret
from stafet.demo.users import DEMO_USERS, create_demo_users
from stafet.store import Store, users
from stafet.web.auth import LocalAccounts


def test_one_account_per_role_that_logs_in(tmp_path: Path) -> None:
    load_secret(tmp_path, create=True)
    store = Store(database_url(tmp_path), Vault(load_secret(tmp_path)))
    first = create_demo_users(store)
    assert sorted(role for _, _, role, _ in first) == ["coordinator", "counsellor", "operations", "steward"]
    auth = LocalAccounts(store)
    for name, password, role, org in first:
        p = auth.authenticate(name, password, "127.0.0.1")
        assert (p.role, p.org) == (role, org)
    again = create_demo_users(store)
    assert [n for n, *_ in again] == [n for n, *_ in DEMO_USERS]
    assert all(a[1] != b[1] for a, b in zip(first, again, strict=True))
    with store.session() as s:
        assert len(users.listing(s)) == len(DEMO_USERS)
