"""Real peers for tests: OpenSSH sshd, an aiosmtpd SMTP server, a throwaway PostgreSQL, an OpenSSL
OCSP responder, a plain HTTP server (CRL distribution points).

Each helper starts its server on 127.0.0.1 on a free port, in a folder of its own, as
its own process, and stops it by PID (never by name). They are plain classes, used by
the fixtures in ``tests/conftest.py``; a test that needs a private instance (to kill
it, say) uses the ``make_sshd`` / ``smtp_server`` fixtures rather than these directly.

A server that cannot start here (binary missing, not allowed) raises
:class:`ServerUnavailable` with the reason; fixtures turn that into a failure
(:func:`peer_unavailable`): ``make test`` must not go green without a real peer. A local
run may skip them instead, with the reason printed, when ``STAFET_TEST_ALLOW_SKIP=1``.

Test-run settings (``STAFET_TEST_*``) are read once, when this module is imported:
the isolation fixture removes every ``STAFET_*`` / ``PREFECT_*`` variable from each
test's environment, so later reads of ``os.environ`` would not see them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import glob
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NoReturn

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

HOST = "127.0.0.1"


class ServerUnavailable(RuntimeError):
    """The server cannot be started on this machine; the message says why."""


ALLOW_SKIP = "STAFET_TEST_ALLOW_SKIP"
# STAFET_TEST_* as the run started (see the module docstring).
SETTINGS: dict[str, str] = {k: v for k, v in os.environ.items() if k.startswith("STAFET_TEST_")}
# (peer, reason) of every real peer skipped in this run, for the terminal summary.
skipped_peers: list[tuple[str, str]] = []


def setting(name: str, default: str = "") -> str:
    """A ``STAFET_TEST_*`` setting as it was when the test run started."""
    return SETTINGS.get(name, default)


def peer_unavailable(peer: str, reason: object) -> NoReturn:
    """A real peer could not start: fail the test, or skip it when ``STAFET_TEST_ALLOW_SKIP=1``.

    ``make test`` (and CI) never sets the variable, so a machine without sshd, PostgreSQL,
    … fails loudly instead of going green with the real-peer tests left out.
    """
    import pytest

    if setting(ALLOW_SKIP) == "1":
        skipped_peers.append((peer, str(reason)))
        pytest.skip(f"{peer} unavailable ({ALLOW_SKIP}=1): {reason}")
    pytest.fail(f"{peer} unavailable: {reason}\n(a real peer the tests need could not start; "
                f"install it (make system-deps) or, for a local run only, set {ALLOW_SKIP}=1 to "
                "skip these tests)", pytrace=False)


def require_tools(*names: str, package: str) -> None:
    """Fail (or skip, as :func:`peer_unavailable`) unless every program in ``names`` is on PATH."""
    import shutil

    for name in names:
        if shutil.which(name) is None:
            peer_unavailable(name, f"{name} not found (Debian package {package})")


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def make_ed25519_key(path: Path) -> str:
    """Write a new ed25519 private key (OpenSSH format, 0600) and ``path.pub``.

    Returns the public key line, ``ssh-ed25519 AAAA… comment``.
    """
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                            serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    line = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                         serialization.PublicFormat.OpenSSH).decode()
    line = f"{line} stafet-test"
    path.with_name(path.name + ".pub").write_text(line + "\n")
    return line


def make_tls_cert(folder: Path, name: str = "server") -> tuple[Path, Path]:
    """A self-signed TLS certificate for 127.0.0.1/localhost; returns (cert, key) paths.

    The certificate is its own trust anchor: pass the cert path as ``cafile``.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                       critical=False)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path


def wait_for_port(port: int, *, proc: subprocess.Popen[Any] | None = None, log: Path | None = None,
                  timeout: float = 15.0, banner: bytes = b"") -> None:
    """Wait until 127.0.0.1:``port`` accepts (and, if given, sends ``banner`` first).

    Raises ServerUnavailable with the server's log when the process exits or time runs out.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServerUnavailable(f"server exited with {proc.returncode}: {_tail(log)}")
        try:
            with socket.create_connection((HOST, port), timeout=1) as s:
                if not banner or s.recv(len(banner)).startswith(banner):
                    return
        except OSError:
            pass
        time.sleep(0.02)
    raise ServerUnavailable(f"port {port} did not open within {timeout}s: {_tail(log)}")


def _tail(log: Path | None, n: int = 2000) -> str:
    if log is None or not log.exists():
        return ""
    return log.read_text(errors="replace")[-n:]


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc), parents first."""
    kids, out, todo = _children(), [], [pid]
    while todo:
        p = todo.pop(0)
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def signal_tree(pid: int, sig: int) -> None:
    """Send ``sig`` to ``pid`` and every descendant (collected first: orphans get re-parented)."""
    for p in process_tree(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, sig)


def end_tree(proc: subprocess.Popen[Any], sig: int, *, timeout: float) -> None:
    """Send ``sig`` to ``proc`` and its descendants; SIGKILL them if not gone within ``timeout``."""
    if proc.poll() is None:
        signal_tree(proc.pid, sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        signal_tree(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


# --------------------------------------------------------------------------- sshd


class Sshd:
    """OpenSSH's sshd with its own config, host key, client key and port.

    Attributes:
        host_key: the server's public host key line (``ssh-ed25519 AAAA…``), to pin.
        client_key: path of the authorised client private key (OpenSSH, no passphrase).
        port: the TCP port on 127.0.0.1 (kept across ``restart``).
        root: a folder for the test's files; SFTP paths are absolute, so use
            ``sshd.url(sshd.root / "inbox")``.
        user: the login user (the current user).
    """

    binary = "/usr/sbin/sshd"

    def __init__(self, home: Path, *, port: int | None = None) -> None:
        if not Path(self.binary).exists():
            raise ServerUnavailable(f"{self.binary} not found (Debian package openssh-server)")
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.root = home / "files"
        self.root.mkdir(exist_ok=True)
        self.port = port or free_port()
        self.user = getpass.getuser()
        self.log = home / "sshd.log"
        self.host_key_path = home / "ssh_host_ed25519_key"
        self.host_key = make_ed25519_key(self.host_key_path)
        self.client_key = home / "id_ed25519"
        self.client_public_key = make_ed25519_key(self.client_key)
        self.authorized_keys = home / "authorized_keys"
        self.authorized_keys.write_text(self.client_public_key + "\n")
        self.config = home / "sshd_config"
        root_login = "PermitRootLogin prohibit-password\n" if os.geteuid() == 0 else ""
        self.config.write_text(
            f"Port {self.port}\n"
            f"ListenAddress {HOST}\n"
            f"HostKey {self.host_key_path}\n"
            f"PidFile {home / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {self.authorized_keys}\n"
            f"AllowUsers {self.user}\n"
            f"{root_login}"
            "PubkeyAuthentication yes\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "UsePAM no\n"
            "StrictModes no\n"
            "UseDNS no\n"
            "PrintMotd no\n"
            "MaxStartups 50:30:100\n"
            "LogLevel INFO\n"
            "Subsystem sftp internal-sftp\n")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """PID of the listening sshd, or None when stopped."""
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def url(self, path: str | Path = "") -> str:
        """``sftp://user@127.0.0.1:port/abs/path`` for ``path`` (absolute)."""
        p = str(path) if str(path).startswith("/") else f"/{path}"
        return f"sftp://{self.user}@{HOST}:{self.port}{p}"

    def new_folder(self, prefix: str = "d") -> Path:
        """A fresh, empty folder under ``root`` (tests sharing one sshd stay apart)."""
        return Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=self.root))

    def start(self) -> Sshd:
        """Start sshd (again, on the same port) and wait until it greets."""
        if self.pid is not None:
            return self
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation dir
        elif not Path("/run/sshd").is_dir():
            raise ServerUnavailable("/run/sshd is missing and only root can create it")
        logf = open(self.log, "ab")  # noqa: SIM115 - the child keeps it
        try:
            self.proc = subprocess.Popen([self.binary, "-D", "-e", "-f", str(self.config)],
                                         stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                         start_new_session=True)
        finally:
            logf.close()
        try:
            wait_for_port(self.port, proc=self.proc, log=self.log, banner=b"SSH-")
        except ServerUnavailable:
            self.kill()
            raise
        return self

    def _signal(self, sig: int) -> None:
        if self.proc is None:
            return
        # Connection children call setsid(): walk the tree, a process group would miss them.
        end_tree(self.proc, sig, timeout=10)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL sshd and every connection it serves (a crash, for fault tests)."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        """Stop sshd and its connections (SIGTERM, then SIGKILL if needed)."""
        self._signal(signal.SIGTERM)

    def pause(self) -> None:
        """SIGSTOP sshd and its connections: the server hangs (for timeout tests)."""
        if self.pid is not None:
            signal_tree(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT what :meth:`pause` stopped."""
        if self.pid is not None:
            signal_tree(self.pid, signal.SIGCONT)

    def restart(self) -> Sshd:
        """Kill and start again on the same port with the same keys."""
        self.kill()
        return self.start()

    def __enter__(self) -> Sshd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- SMTP


class SmtpServer:
    """An aiosmtpd server in its own process (``tests/smtp_server.py``).

    Accepted messages land in ``maildir`` as ``NNNNNN.eml`` + ``NNNNNN.json`` (envelope).
    ``fail_next("451 4.3.0 busy")`` makes the next message get that answer instead.
    With ``tls=True`` it offers STARTTLS with a self-signed certificate (``cafile``). With
    ``auth=True`` it offers SMTP AUTH even in clear and records every login (``logins()``).
    """

    script = Path(__file__).with_name("smtp_server.py")

    def __init__(self, home: Path, *, tls: bool = False, auth: bool = False) -> None:
        self.home = home
        self.auth = auth
        home.mkdir(parents=True, exist_ok=True)
        self.maildir = home / "mail"
        self.log = home / "smtp.log"
        self.host = HOST
        self.port = 0
        self.cafile: Path | None = None
        self._tls: tuple[Path, Path] | None = make_tls_cert(home / "tls") if tls else None
        if self._tls:
            self.cafile = self._tls[0]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """``smtp://127.0.0.1:port``."""
        return f"smtp://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """PID of the server process, or None when stopped."""
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def start(self) -> SmtpServer:
        """Start the server process and wait until it greets."""
        if self.pid is not None:
            return self
        port_file = self.home / "port"
        port_file.unlink(missing_ok=True)
        cmd = [sys.executable, str(self.script), "--dir", str(self.home), "--host", HOST,
               "--port", str(self.port)]
        if self._tls:
            cmd += ["--tls-cert", str(self._tls[0]), "--tls-key", str(self._tls[1])]
        if self.auth:
            cmd += ["--auth"]
        logf = open(self.log, "ab")  # noqa: SIM115 - the child keeps it
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                         start_new_session=True)
        finally:
            logf.close()
        deadline = time.monotonic() + 20
        while not port_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise ServerUnavailable(f"SMTP server did not start: {_tail(self.log)}")
            time.sleep(0.02)
        self.port = int(port_file.read_text())
        wait_for_port(self.port, proc=self.proc, log=self.log, banner=b"220")
        return self

    def fail_next(self, *replies: str | int) -> None:
        """Answer the next messages with these replies (``451``, or ``"550 5.7.1 no"``)."""
        control = self.home / "control.json"
        try:
            queued = list(json.loads(control.read_text()).get("replies") or [])
        except (FileNotFoundError, ValueError):
            queued = []
        defaults = {421: "421 4.3.2 Service shutting down", 451: "451 4.3.0 Try again later",
                    550: "550 5.7.1 Recipient refused by policy"}
        queued += [defaults.get(r, f"{r} injected") if isinstance(r, int) else r for r in replies]
        tmp = self.home / ".control.json.tmp"
        tmp.write_text(json.dumps({"replies": queued}))
        os.replace(tmp, control)

    def logins(self) -> list[dict[str, Any]]:
        """``{"mechanism", "login", "password", "tls"}`` of every AUTH attempt (``auth=True``), in order."""
        path = self.home / "logins.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def messages(self) -> list[bytes]:
        """Raw bytes of every accepted message, in order."""
        return [p.read_bytes() for p in sorted(self.maildir.glob("*.eml"))]

    def envelopes(self) -> list[dict[str, Any]]:
        """``{"mail_from", "rcpt_tos", "tls"}`` of every accepted message, in order."""
        return [json.loads(p.read_text()) for p in sorted(self.maildir.glob("*.json"))]

    def _signal(self, sig: int) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        """SIGTERM the server and wait for it."""
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL the server."""
        self._signal(signal.SIGKILL)

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- PostgreSQL


def postgres_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/*/bin`` with initdb and postgres, else from PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit()
                   else 0)
    for initdb in reversed(found):
        bindir = Path(initdb).parent
        if (bindir / "postgres").exists():
            return bindir
    which = shutil.which("initdb")
    if which and (Path(which).parent / "postgres").exists():
        return Path(which).parent
    return None


class Postgres:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (trust auth), in a temp folder.

    As root, initdb and postgres run as the ``postgres`` system user (initdb refuses
    root). ``url`` is a SQLAlchemy URL to a fresh database ``dbname``.
    """

    def __init__(self, *, dbname: str = "stafet_test", port: int | None = None) -> None:
        bindir = postgres_bindir()
        if bindir is None:
            raise ServerUnavailable("PostgreSQL binaries not found (Debian package postgresql)")
        self.bindir = bindir
        self.dbname = dbname
        self.port = port or free_port()
        self.user = "postgres"
        self._run_as: dict[str, Any] = {}
        if os.geteuid() == 0:
            try:
                import pwd

                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise ServerUnavailable("running as root but there is no 'postgres' user "
                                        "to run initdb as") from None
            self._uid, self._gid = pw.pw_uid, pw.pw_gid
            self._run_as = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        self.home: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``postgresql+psycopg2://postgres@127.0.0.1:PORT/dbname``."""
        return f"postgresql+psycopg2://{self.user}@{HOST}:{self.port}/{self.dbname}"

    @property
    def pid(self) -> int | None:
        """PID of the postmaster, or None when stopped."""
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def start(self) -> Postgres:
        """initdb, start postgres, create the database; ServerUnavailable if it cannot."""
        home = Path(tempfile.mkdtemp(prefix="stafet-pg-"))
        self.home = home
        data, log = home / "data", home / "postgres.log"
        if self._run_as:
            os.chown(home, self._uid, self._gid)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8",
               "LANG": "C.UTF-8", "HOME": str(home)}
        init = subprocess.run(
            [str(self.bindir / "initdb"), "-D", str(data), "-U", self.user, "-A", "trust",
             "-E", "UTF8", "--locale=C.UTF-8", "--no-sync", "--no-instructions"],
            cwd=home, env=env, capture_output=True, text=True, timeout=120, check=False,
            **self._run_as)
        if init.returncode != 0:
            self._cleanup()
            raise ServerUnavailable(f"initdb failed: {(init.stderr or init.stdout)[-1500:]}")
        logf = open(log, "ab")  # noqa: SIM115 - the child keeps it
        if self._run_as:
            os.chown(log, self._uid, self._gid)
        try:
            self.proc = subprocess.Popen(
                [str(self.bindir / "postgres"), "-D", str(data), "-p", str(self.port),
                 "-c", f"listen_addresses={HOST}", "-c", f"unix_socket_directories={home}",
                 "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                 "-c", "max_connections=50"],
                cwd=home, env=env, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                start_new_session=True, **self._run_as)
        finally:
            logf.close()
        try:
            self._create_database(log)
        except ServerUnavailable:
            self.stop()
            raise
        return self

    def _create_database(self, log: Path) -> None:
        import psycopg2

        deadline, last = time.monotonic() + 30, ""
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise ServerUnavailable(f"postgres exited: {_tail(log)}")
            try:
                conn = psycopg2.connect(host=HOST, port=self.port, user=self.user,
                                        dbname="postgres", connect_timeout=2)
            except psycopg2.OperationalError as e:
                last = str(e)
                time.sleep(0.05)
                continue
            try:
                conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute(f'CREATE DATABASE "{self.dbname}"')
            finally:
                conn.close()
            return
        raise ServerUnavailable(f"postgres did not accept connections: {last} {_tail(log)}")

    def stop(self) -> None:
        """Fast shutdown (SIGINT) of the postmaster by PID, then remove the cluster."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                signal_tree(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
            self.proc = None
        self._cleanup()

    def _cleanup(self) -> None:
        if self.home is not None:
            shutil.rmtree(self.home, ignore_errors=True)
            self.home = None

    def __enter__(self) -> Postgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- Prefect server


class PrefectServer:
    """``prefect server start`` on 127.0.0.1 with its own ``PREFECT_HOME`` (SQLite), stopped by PID.

    Telemetry, the UI and the scheduler are off (nothing is deployed here: flows are called
    directly by clients that point ``PREFECT_API_URL`` at :attr:`api`). Start ≈ 5–15 s.
    """

    binary = str(Path(sys.executable).parent / "prefect")

    def __init__(self, folder: Path) -> None:
        if not Path(self.binary).exists():
            raise ServerUnavailable(f"{self.binary} not found (pip package prefect)")
        self.folder = folder
        self.port = free_port()
        self.api = f"http://{HOST}:{self.port}/api"
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        """What a client needs in its environment to use this server."""
        return {"PREFECT_API_URL": self.api, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}

    def start(self, timeout: float = 180) -> PrefectServer:
        import urllib.request

        self.folder.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STAFET_", "PREFECT_"))}
        env.update(PREFECT_HOME=str(self.folder / "home"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
                   DO_NOT_TRACK="1", PREFECT_UI_ENABLED="false",
                   PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false")
        log = self.folder / "server.log"
        with open(log, "ab") as fh:
            self.proc = subprocess.Popen(
                [self.binary, "server", "start", "--host", HOST,
                 "--port", str(self.port)], env=env, stdin=subprocess.DEVNULL, stdout=fh,
                stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerUnavailable(f"prefect server exited: {_tail(log)}")
            try:
                with urllib.request.urlopen(f"{self.api}/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.25)
        self.stop()
        raise ServerUnavailable(f"prefect server not healthy within {timeout}s: {_tail(log)}")

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """One request to the server's REST API; the decoded JSON answer."""
        import urllib.request

        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.api}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read() or b"null")

    def stop(self) -> None:
        """SIGTERM the server and its children (by PID), SIGKILL after 20 s."""
        if self.proc is None:
            return
        end_tree(self.proc, signal.SIGTERM, timeout=20)
        self.proc = None

    def __enter__(self) -> PrefectServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class OcspResponder:
    """A real OCSP responder: ``openssl ocsp -index … -CA … -rsigner … -port 127.0.0.1:N``.

    ``entries`` are ``(certificate, revoked_at or None)``; the index is written in openssl
    ca's format, the responder signs with the CA's own key (``ca_key_pem``, plain PEM) and
    answers with a nextUpdate one day ahead. Stopped by PID.
    """

    def __init__(self, home: Path, ca_pem: bytes, ca_key_pem: bytes,
                 entries: list[tuple[x509.Certificate, dt.datetime | None]]) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.log = home / "ocsp.log"
        (home / "ca.pem").write_bytes(ca_pem)
        key = home / "ca.key"
        key.write_bytes(ca_key_pem)
        key.chmod(0o600)
        lines = []
        for cert, revoked in entries:
            expiry = cert.not_valid_after_utc.strftime("%y%m%d%H%M%SZ")
            serial = format(cert.serial_number, "X")
            serial = serial if len(serial) % 2 == 0 else "0" + serial
            subject = "/" + "/".join(a.rfc4514_string() for a in reversed(cert.subject.rdns))
            status = ("R", revoked.strftime("%y%m%d%H%M%SZ")) if revoked else ("V", "")
            lines.append("\t".join([status[0], expiry, status[1], serial, "unknown", subject]))
        (home / "index.txt").write_text("\n".join(lines) + "\n")
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def start(self) -> OcspResponder:
        if shutil.which("openssl") is None:
            raise ServerUnavailable("openssl not found (Debian package openssl)")
        self.port = free_port()
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                ["openssl", "ocsp", "-index", str(self.home / "index.txt"), "-CA", str(self.home / "ca.pem"),
                 "-rsigner", str(self.home / "ca.pem"), "-rkey", str(self.home / "ca.key"),
                 "-port", str(self.port), "-ndays", "1"],  # this openssl takes no host in -port
                stdout=log, stderr=subprocess.STDOUT, cwd=self.home)
        # Not probed with a bare connection: the single-process responder would wait on it.
        deadline = time.monotonic() + 10
        while not (self.home / "ocsp.log").read_bytes().startswith(b"ACCEPT") and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerUnavailable(f"openssl ocsp exited with {self.proc.returncode}: {_tail(self.log)}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            end_tree(self.proc, signal.SIGTERM, timeout=5)
        self.proc = None


class HttpServer:
    """A plain HTTP server (``python -m http.server``) on 127.0.0.1 serving a folder of its own.

    For CRL distribution points: write files into :attr:`root`, fetch ``url(name)``.
    :meth:`pause` SIGSTOPs it (it accepts connections but never answers: for timeout tests);
    stopped by PID.
    """

    def __init__(self, home: Path) -> None:
        self.home = home
        self.root = home / "www"
        self.root.mkdir(parents=True, exist_ok=True)
        self.log = home / "http.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, name: str = "") -> str:
        return f"http://{HOST}:{self.port}/{name}"

    def start(self) -> HttpServer:
        self.port = self.port or free_port()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "http.server", "--bind", HOST, "--directory", str(self.root),
                 str(self.port)], stdout=log, stderr=subprocess.STDOUT, cwd=self.home)
        wait_for_port(self.port, proc=self.proc, log=self.log)
        return self

    def pause(self) -> None:
        """SIGSTOP the server: connections are accepted by the kernel, never answered."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)  # a paused server must run to take SIGTERM
            end_tree(self.proc, signal.SIGTERM, timeout=5)
        self.proc = None

    def __enter__(self) -> HttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
