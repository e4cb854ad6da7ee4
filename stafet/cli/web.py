"""``stafet web`` (the console, served by uvicorn) and ``stafet users add|disable|enable|reset|list``.

Accounts are local (argon2id hashes in the store); passwords are asked for on the
terminal (or read from ``$STAFET_USER_PASSWORD`` for scripts), never taken as arguments.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.table import Table

from stafet.cli.common import HomeOpt, JsonOpt, NetworkOpt, echo_json, home_dir
from stafet.core.errors import StafetError
from stafet.store.users import ROLES

console = Console()
err = Console(stderr=True)
users_app = typer.Typer(help="The console's local accounts.", no_args_is_help=True)

Role = Literal[ROLES]  # type: ignore[valid-type]  # the store's one list of roles
UserArg = Annotated[str, typer.Argument(help="the account's user name")]


def _fail(message: str) -> None:
    err.print(f"error: {message}", markup=False, highlight=False)
    raise typer.Exit(2)


def _store(home: Path | None):  # type: ignore[no-untyped-def]
    from stafet.core.config import database_url
    from stafet.core.vault import Vault, load_secret
    from stafet.store import Store

    try:
        h = home_dir(home)
        return Store(database_url(h), Vault(load_secret(h)))
    except StafetError as e:
        _fail(str(e))
        raise


def _password(confirm: bool = True) -> str:
    pw = os.environ.get("STAFET_USER_PASSWORD")
    if pw is None:
        pw = typer.prompt("password", hide_input=True, confirmation_prompt=confirm)
    from stafet.web.auth import hash_password

    try:
        return hash_password(pw)
    except ValueError as e:
        _fail(str(e))
        raise


class _RedactAccess(logging.Filter):
    """Mask CPR-shaped text in uvicorn's access log (no URL of the console holds one; belt and braces)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from stafet.core.redaction import redact

        if record.args:
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        record.msg = redact(str(record.msg))
        return True


def web(network: NetworkOpt = None, home: HomeOpt = None,
        host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="port to listen on")] = 8080,
        secure_cookies: Annotated[bool | None, typer.Option(
            "--secure-cookies/--no-secure-cookies",
            help="cookies only over https (default: off for plain http on 127.0.0.1/localhost, on otherwise "
                 "and behind a proxy)")] = None,
        behind_proxy: Annotated[bool, typer.Option("--behind-proxy", help="trust X-Forwarded-For/-Proto")]
        = False,
        idle_minutes: Annotated[int, typer.Option(help="a session ends after this long unused")] = 30,
        prefect_ui: Annotated[str, typer.Option(envvar="STAFET_PREFECT_UI",
                                                help="the Prefect UI's URL, for links to flow runs")] = "",
) -> None:
    """Start the console (server-rendered web application) with uvicorn."""
    import uvicorn

    from stafet.context import open_context, prepare_environment
    from stafet.core.config import stafet_home
    from stafet.web.app import create_app
    from stafet.web.security import Settings

    h = (home or stafet_home()).resolve()
    os.environ["STAFET_HOME"] = str(h)
    prepare_environment(h)
    try:
        ctx = open_context(network, home=h)
    except StafetError as e:
        _fail(str(e))
    local = host in ("127.0.0.1", "localhost", "::1")
    secure = secure_cookies if secure_cookies is not None else not (local and not behind_proxy)
    settings = Settings(secure_cookies=secure, idle_minutes=idle_minutes, behind_proxy=behind_proxy,
                        prefect_ui=prefect_ui)
    config = uvicorn.Config(create_app(ctx, settings), host=host, port=port, proxy_headers=behind_proxy,
                            forwarded_allow_ips="*" if behind_proxy else None, server_header=False)
    # after uvicorn configured its loggers: every access line passes the CPR redactor
    logging.getLogger("uvicorn.access").addFilter(_RedactAccess())
    console.print(f"stafet console on http://{host}:{port}/ (cookies {'Secure' if secure else 'not Secure'})")
    uvicorn.Server(config).run()


@users_app.command("add")
def users_add(username: UserArg,
              role: Annotated[Role, typer.Option(help="what the account may do")],
              org: Annotated[str, typer.Option(help="the member organisation (counsellor; steward of an "
                                                    "organisation's sources)")] = "",
              source: Annotated[list[str] | None, typer.Option(help="a steward's source (repeat); none: all "
                                                                   "sources of this node")] = None,
              name: Annotated[str, typer.Option(help="display name")] = "",
              home: HomeOpt = None) -> None:
    """Add a local account (the password is asked for, at least 12 characters)."""
    from stafet.store import users

    if role == "counsellor" and not org:
        _fail("a counsellor needs --org")
    store = _store(home)
    hashed = _password()
    try:
        with store.session() as s:
            users.add(s, username=username, password_hash=hashed, role=role, org=org, sources=source or [],
                      display_name=name)
            store.audit(s, "cli", "users.added", f"user:{username}", {"role": role, "org": org})
    except StafetError as e:
        _fail(str(e))
    console.print(f"user {username} added ({role})")


@users_app.command("disable")
def users_disable(username: UserArg, home: HomeOpt = None) -> None:
    """Disable an account (its sessions end at once)."""
    from stafet.store import users

    store = _store(home)
    try:
        with store.session() as s:
            users.set_disabled(s, username, True)
            store.audit(s, "cli", "users.disabled", f"user:{username}", {})
    except StafetError as e:
        _fail(str(e))
    console.print(f"user {username} disabled")


@users_app.command("enable")
def users_enable(username: UserArg, home: HomeOpt = None) -> None:
    """Enable a disabled account again."""
    from stafet.store import users

    store = _store(home)
    try:
        with store.session() as s:
            users.set_disabled(s, username, False)
            store.audit(s, "cli", "users.enabled", f"user:{username}", {})
    except StafetError as e:
        _fail(str(e))
    console.print(f"user {username} enabled")


@users_app.command("reset")
def users_reset(username: UserArg, home: HomeOpt = None) -> None:
    """Set a new password (lifts a lockout, ends every session of the account)."""
    from stafet.store import users

    store = _store(home)
    hashed = _password()
    try:
        with store.session() as s:
            users.set_password(s, username, hashed)
            store.audit(s, "cli", "users.reset", f"user:{username}", {})
    except StafetError as e:
        _fail(str(e))
    console.print(f"password of {username} reset")


@users_app.command("list")
def users_list(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """The accounts: role, organisation, sources, disabled or locked."""
    from stafet.store import users

    store = _store(home)
    with store.session() as s:
        rows: list[dict[str, Any]] = [
                {"username": u.username, "name": u.display_name, "role": u.role, "org": u.org,
                 "sources": list(u.sources or []), "disabled": u.disabled,
                 "locked_until": u.locked_until.isoformat() + "+00:00" if u.locked_until else None,
                 "created_at": u.created_at.isoformat() + "+00:00"} for u in users.listing(s)]
    if as_json:
        echo_json(rows)
        return
    t = Table(title="console accounts")
    for c in ("user", "name", "role", "organisation", "sources", "state"):
        t.add_column(c)
    for r in rows:
        state = "disabled" if r["disabled"] else ("locked" if r["locked_until"] else "active")
        t.add_row(r["username"], r["name"], r["role"], r["org"], ", ".join(r["sources"]) or "all", state)
    console.print(t)


def register(app: typer.Typer) -> None:
    """Add ``stafet web`` and ``stafet users`` to the command line."""
    app.command("web")(web)
    app.add_typer(users_app, name="users")
