"""A real SMTP server (aiosmtpd) for tests, run as its own process.

    python tests/smtp_server.py --dir DIR [--host 127.0.0.1] [--port 0]
                                [--tls-cert CERT --tls-key KEY] [--auth]

Every accepted message is written to ``DIR/mail/NNNNNN.eml`` (the raw bytes) with its
envelope in ``DIR/mail/NNNNNN.json``; both appear atomically (write, then rename).

Fault injection: ``DIR/control.json`` holds ``{"replies": ["451 4.3.0 try later", ...]}``.
At the end of DATA the server takes the first reply off that list and answers with it
instead of accepting the message (so each entry fails exactly one message). The file
is re-read for every message, so a test can change it while the server runs.

With ``--auth`` the server offers SMTP AUTH (PLAIN, LOGIN) even without TLS, as a careless
relay would, accepts any login, and appends each attempt (login, password, whether the
session was TLS) to ``DIR/logins.jsonl``: a test can check what a client sent in clear.

When listening, the server writes its port to ``DIR/port`` (atomically). SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import ssl
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class Handler:
    """Store accepted messages; answer with injected replies when told to."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.mail = root / "mail"
        self.mail.mkdir(parents=True, exist_ok=True)
        self.control = root / "control.json"
        self.count = len(list(self.mail.glob("*.eml")))

    def _next_injected(self) -> str | None:
        try:
            data = json.loads(self.control.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return None
        replies = list(data.get("replies") or [])
        if not replies:
            return None
        reply = str(replies.pop(0))
        data["replies"] = replies
        _write_atomic(self.control, json.dumps(data).encode())
        return reply

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        injected = self._next_injected()
        if injected is not None:
            return injected
        self.count += 1
        stem = f"{self.count:06d}"
        raw: Any = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        _write_atomic(self.mail / f"{stem}.eml", raw)
        meta = {"mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos),
                "tls": session.ssl is not None}
        _write_atomic(self.mail / f"{stem}.json", json.dumps(meta).encode())
        return "250 2.0.0 OK stored"


def _recorder(root: Path) -> Any:
    """An authenticator that accepts any login and records what was sent."""

    def authenticate(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                     auth_data: Any) -> AuthResult:
        login = password = b""
        if isinstance(auth_data, LoginPassword):
            login, password = auth_data.login, auth_data.password
        entry = {"mechanism": mechanism, "login": login.decode("utf-8", "replace"),
                 "password": password.decode("utf-8", "replace"), "tls": session.ssl is not None}
        with open(root / "logins.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
        return AuthResult(success=True)

    return authenticate


async def serve(args: argparse.Namespace) -> None:
    root = Path(args.dir)
    handler = Handler(root)
    auth: dict[str, Any] = {}
    if args.auth:
        auth = {"authenticator": _recorder(root), "auth_require_tls": False}
    tls: ssl.SSLContext | None = None
    if args.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="stafet-test-smtp", tls_context=tls,
                     data_size_limit=None, timeout=60, **auth),
        host=args.host, port=args.port)
    port = server.sockets[0].getsockname()[1]
    _write_atomic(root / "port", str(port).encode())
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    await server.wait_closed()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--dir", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--auth", action="store_true")
    asyncio.run(serve(p.parse_args()))


if __name__ == "__main__":
    main()
