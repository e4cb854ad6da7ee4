"""Settings from the environment and the network configuration (``network.yaml``).

``network.yaml`` lists the member organisations, the trust anchors and CRLs, the
sources to pull from, and the network's limits. It is validated once, on load, and
every problem is reported together, each naming the key and its line.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from stafet.core.errors import ConfigError
from stafet.core.models import Organisation, OrgKind
from stafet.core.secrets import SecretSpec, find_secret


def stafet_home() -> Path:
    """``$STAFET_HOME``, default ``./.stafet``."""
    return Path(os.environ.get("STAFET_HOME", ".stafet")).resolve()


# --- private files: what stafet keeps holds personal data -------------------------------
# Modes are set explicitly (chmod after mkdir, O_CREAT with the mode), never left to the umask.

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_dir(path: Path) -> Path:
    """Create the folder ``path`` (parents too) and make it 0700, whatever the umask; return it.

    An existing folder is tightened to 0700 as well (an older installation's 0755 home).
    """
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    if stat.S_IMODE(path.stat().st_mode) != PRIVATE_DIR:
        try:
            os.chmod(path, PRIVATE_DIR)
        except PermissionError:
            raise ConfigError(f"cannot make {path} private (0700): it belongs to someone else") from None
    return path


def private_file(path: Path) -> Path:
    """Make sure the file ``path`` exists with mode 0600 (created so, or tightened); return it.

    Never follows a symlink at ``path``.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0),
                 PRIVATE_FILE)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != PRIVATE_FILE:
            os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (0600) durably: a new temporary file, fsynced, renamed into place.

    The temporary file is created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` and mode 0600,
    so nothing planted under its name is written through; the folder is made (0700)
    when missing.
    """
    import secrets as _secrets

    folder = path.parent
    if not folder.is_dir():
        private_dir(folder)
    tmp = folder / f".{path.name}.{_secrets.token_hex(4)}.part"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                 | getattr(os, "O_CLOEXEC", 0), PRIVATE_FILE)
    try:
        with os.fdopen(fd, "wb") as fh:
            if stat.S_IMODE(os.fstat(fh.fileno()).st_mode) != PRIVATE_FILE:
                os.fchmod(fh.fileno(), PRIVATE_FILE)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def database_url(home: Path | None = None) -> str:
    """``$STAFET_DATABASE_URL``, else the Secret block ``$STAFET_DATABASE_URL_BLOCK``, else SQLite.

    The block is how the deployments of ``prefect.yaml`` get it (never in clear in their
    environment); a block that is named must exist. SQLite lives at ``$STAFET_HOME/stafet.db``.
    """
    url = os.environ.get("STAFET_DATABASE_URL")
    if url:
        return url
    if os.environ.get(DATABASE_URL.block_env):
        return find_secret(DATABASE_URL, home or stafet_home()).value
    return f"sqlite:///{(home or stafet_home()) / 'stafet.db'}"


DATABASE_URL = SecretSpec(what="database URL", env="STAFET_DATABASE_URL",
                          block_env="STAFET_DATABASE_URL_BLOCK", file="database-url")
"""Where the database URL is looked for when ``STAFET_DATABASE_URL_BLOCK`` names a block."""


SFTP_LOGIN = ("host_key", "identity", "passphrase")
"""The endpoint and source options that say how to log in to SFTP (:meth:`Network.sftp_login`)."""

INBOX_OPTIONS = ("max_bytes",)
"""Endpoint options about the member's inbox, not its outlet (:meth:`Network.max_bytes`)."""

PACKAGE_MAX_BYTES = 25 * 1024 * 1024
"""The default ``max_bytes`` of a member's package inbox (``endpoints.<org>.max_bytes``): 25 MiB."""

SOURCE_MAX_BYTES = 2 * 1024 * 1024 * 1024
"""The default ``max_bytes`` of a source's drop area (``sources[].max_bytes``): 2 GiB."""


@dataclass(frozen=True)
class SourceConfig:
    """Where a source system drops its exports: ``folder:PATH`` or ``sftp://…``."""

    name: str
    location: str
    host_key: str = ""
    identity: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def org(self) -> str:
        """The member whose source system this is (``sources[].org``; "" when not declared)."""
        return str(self.options.get("org") or "")

    @property
    def processed_retention_days(self) -> float:
        """Days an ingested file stays in the drop area's ``processed/`` (0, the default: removed at once).

        A processed export holds clear CPRs; the encrypted archive under
        ``$STAFET_HOME/archive/`` keeps its content, so the clear copy need not stay.
        """
        return float(self.options.get("processed_retention_days") or 0)


@dataclass(frozen=True)
class Network:
    """A validated network configuration."""

    name: str
    path: Path
    members: dict[str, Organisation]
    trust_anchors: tuple[Path, ...]
    crls: tuple[Path, ...]
    sources: tuple[SourceConfig, ...]
    ack_limit_hours: float = 48.0
    endpoint_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    legal_bases: dict[str, str] = field(default_factory=dict)
    crl_grace_hours: float = 6.0
    """How long past its nextUpdate a CRL is still used; then what it covers is refused."""
    require_revocation: bool = True
    """Every certificate below an anchor needs a fresh CRL or OCSP response (the default)."""
    required_policy: str = ""
    """A certificate policy OID every member's path must carry (empty: none required)."""
    ocsp_url: str = ""
    """The network's OCSP responder, asked about a certificate whose AIA names none (empty: none)."""

    def member(self, org_id: str) -> Organisation:
        """The member ``org_id``; a ``ConfigError`` if there is none."""
        try:
            return self.members[org_id]
        except KeyError:
            raise ConfigError(f"unknown organisation {org_id!r}", network=self.name) from None

    def guidance_for(self, municipality: str) -> Organisation | None:
        """The UU (guidance unit) that serves ``municipality``, if the network has one."""
        for org in self.members.values():
            if org.kind is OrgKind.GUIDANCE and municipality in (org.serves or (org.municipality,)):
                return org
        return None

    def coordinator(self) -> Organisation | None:
        """The network coordinator (member kind ``coordinator``): signs notices, gets escalations."""
        return next((o for o in self.members.values() if o.kind is OrgKind.COORDINATOR), None)

    def by_email(self, email: str) -> Organisation | None:
        """The member whose sikker-mail address is ``email``."""
        for org in self.members.values():
            if org.email.lower() == email.lower():
                return org
        return None

    def locate(self, location: str) -> str:
        """A ``folder:`` location with its path made absolute (relative to this file)."""
        if location.startswith("folder:"):
            return "folder:" + str(self.resolve(location[len("folder:"):]))
        return location

    def resolve(self, p: str) -> Path:
        """A path from the config, relative to the config file's folder."""
        path = Path(p)
        return path if path.is_absolute() else (self.path.parent / path).resolve()

    def max_bytes(self, of: str | SourceConfig) -> int:
        """The largest file stafet reads from a member's or a source's inbox, in bytes.

        A member's is ``endpoints.<org>.max_bytes`` (default :data:`PACKAGE_MAX_BYTES`), a
        source's ``sources[].max_bytes`` (default :data:`SOURCE_MAX_BYTES`). A bigger file
        is refused unread and moved to ``rejected/`` (one copy).
        """
        if isinstance(of, SourceConfig):
            return int(of.options.get("max_bytes") or SOURCE_MAX_BYTES)
        return int(self.endpoint_options.get(of, {}).get("max_bytes") or PACKAGE_MAX_BYTES)

    def sftp_login(self, of: str | SourceConfig) -> dict[str, Any]:
        """How stafet logs in to an SFTP peer: ``host_key``, ``identity``, ``passphrase``.

        ``of`` is a member's id (its ``endpoints.<org>`` options) or a source. The
        identity key's path is resolved against this file's folder, the one place that
        happens; ``passphrase`` (of an encrypted identity key) is None unless set.
        The result goes to :func:`transports.open_outlet` / :func:`transports.open_inbox`
        as keyword arguments, which ignore it for folder and SMTP endpoints.
        """
        if isinstance(of, SourceConfig):
            opts: dict[str, Any] = {**of.options, "host_key": of.host_key, "identity": of.identity}
        else:
            opts = self.endpoint_options.get(of, {})
        identity = str(opts.get("identity") or "")
        if identity and not identity.lstrip().startswith("-----BEGIN"):  # else: the key text itself
            identity = str(self.resolve(identity))
        return {"host_key": str(opts.get("host_key") or ""), "identity": identity,
                "passphrase": str(opts["passphrase"]) if opts.get("passphrase") else None}


class _Lines:
    """YAML data plus the line of every key path, for errors that say where."""

    def __init__(self, text: str, name: str) -> None:
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as e:
            raise ConfigError(f"{name}: not valid YAML: {e}") from None
        self.lines: dict[str, int] = {}
        self.data = self._walk(node, "") if node is not None else {}

    def _walk(self, node: yaml.Node, path: str) -> Any:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for k, v in node.value:
                key = str(k.value)
                out[key] = self._walk(v, f"{path}.{key}" if path else key)
                self.lines.setdefault(f"{path}.{key}" if path else key, k.start_mark.line + 1)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._walk(v, f"{path}[{i}]") for i, v in enumerate(node.value)]
        return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node)
    finally:
        loader.dispose()


_ORG_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
_MUNI = re.compile(r"^\d{3}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


def check_endpoint(endpoint: str) -> str | None:
    """Why ``endpoint`` is not a usable endpoint, or None."""
    scheme = endpoint.split(":", 1)[0]
    if scheme == "folder":
        return None if endpoint[len("folder:"):] else "folder: needs a path"
    if scheme in ("sftp", "smtp"):
        u = urlparse(endpoint)
        if not u.hostname:
            return f"{scheme} endpoint needs a host"
        return None
    return "endpoint must start with folder:, sftp:// or smtp://"


def _http_url(v: str) -> bool:
    """Whether ``v`` is empty or an http(s) URL with a host."""
    from urllib.parse import urlsplit

    if not v:
        return True
    try:
        parts = urlsplit(v)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not any(c.isspace() for c in v)


def _positive_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


# `stafet demo` notes its network here, in each home it makes (the hub's and a member's own node),
# so that after `make demo` every command run from the clone finds the demo network.
NETWORK_MARKER = "network-path"
_announced: set[Path] = set()


def network_path(path: str | Path | None = None, home: Path | None = None) -> Path:
    """Which ``network.yaml`` to use.

    ``path``, else ``$STAFET_NETWORK``, else ``./network.yaml``, else the network noted in
    ``$STAFET_HOME/network-path`` (written by ``stafet demo``). The last one is said on
    stderr (once per process), never taken silently.
    """
    given = path or os.environ.get("STAFET_NETWORK")
    if given:
        return Path(given).resolve()
    local = Path("network.yaml").resolve()
    marker = (home or stafet_home()) / NETWORK_MARKER
    if local.exists() or not marker.is_file():
        return local
    noted = Path(marker.read_text(encoding="utf-8").strip())
    if not noted.is_file():
        return local
    if noted not in _announced:
        _announced.add(noted)
        import sys

        print(f"stafet: bruger netværket {noted} (noteret af `stafet demo` i {marker}; "
              "vælg et andet med --network eller STAFET_NETWORK)", file=sys.stderr)
    return noted


def note_network(home: Path, network: Path) -> Path:
    """Note ``network`` in ``home`` as the one to use when none is named (:func:`network_path`)."""
    marker = home / NETWORK_MARKER
    write_private(marker, f"{network.resolve()}\n".encode())
    return marker


def load_network(path: str | Path | None = None) -> Network:
    """Load and validate ``network.yaml`` (``--network``, ``$STAFET_NETWORK``, see :func:`network_path`).

    Raises:
        ConfigError: listing every problem, each as ``key (line N): what is wrong``.
    """
    p = network_path(path)
    if not p.exists():
        raise ConfigError(f"network configuration not found: {p} (looked at --network, "
                          f"STAFET_NETWORK, ./network.yaml, $STAFET_HOME/{NETWORK_MARKER})")
    doc = _Lines(p.read_text(encoding="utf-8"), p.name)
    data, problems = doc.data, []

    def bad(key: str, why: str) -> None:
        problems.append(f"{key} (line {doc.lines.get(key, '?')}): {why}")

    if not isinstance(data, dict):
        raise ConfigError(f"{p.name}: the top level must be a mapping")
    known_top = {"network", "members", "trust_anchors", "crls", "sources", "ack_limit_hours",
                 "endpoints", "legal_bases", "crl_grace_hours", "require_revocation", "required_policy",
                 "ocsp_url"}
    for k in data:
        if k not in known_top:
            bad(k, f"unknown key (expected one of {', '.join(sorted(known_top))})")
    members: dict[str, Organisation] = {}
    raw_members = data.get("members")
    if not isinstance(raw_members, list) or not raw_members:
        bad("members", "a non-empty list of organisations is required")
        raw_members = []
    kinds = {k.value for k in OrgKind}
    emails: dict[str, str] = {}  # lower-case address -> the member entry that has it
    for i, m in enumerate(raw_members):
        base = f"members[{i}]"
        if not isinstance(m, dict):
            bad(base, "must be a mapping")
            continue
        for req in ("id", "kind", "name", "municipality", "endpoint", "email"):
            if not m.get(req):
                bad(f"{base}.{req}" if req in m else base, f"'{req}' is required")
        for k in m:
            if k not in {"id", "kind", "name", "municipality", "endpoint", "email",
                         "certificate", "previous_certificates", "serves", "duty_address",
                         "management_address", "acknowledge"}:
                bad(f"{base}.{k}", "unknown key")
        oid = str(m.get("id", ""))
        if oid and not _ORG_ID.match(oid):
            bad(f"{base}.id", "must be lower-case letters, digits and '-'")
        if oid in members:
            bad(f"{base}.id", f"duplicate organisation id {oid!r}")
        if m.get("kind") and m["kind"] not in kinds:
            bad(f"{base}.kind", f"{m['kind']!r} is not one of {', '.join(sorted(kinds))}")
        muni = str(m.get("municipality", ""))
        if muni and not _MUNI.match(muni):
            bad(f"{base}.municipality", "must be a 3-digit municipality number")
        serves = [str(s) for s in m.get("serves") or []]
        for j, s in enumerate(serves):
            if not _MUNI.match(s):
                bad(f"{base}.serves[{j}]", "must be a 3-digit municipality number")
        if m.get("email") and not _EMAIL.match(str(m["email"])):
            bad(f"{base}.email", "not an e-mail address")
        elif m.get("email"):
            addr = str(m["email"]).strip().lower()
            if addr in emails:
                bad(f"{base}.email", f"the same e-mail address as {emails[addr]}: each member's "
                    "sikker-mail address must be its own")
            emails.setdefault(addr, base)
        if m.get("endpoint"):
            why = check_endpoint(str(m["endpoint"]))
            if why:
                bad(f"{base}.endpoint", why)
        if m.get("certificate") and not (p.parent / str(m["certificate"])).exists():
            bad(f"{base}.certificate", f"file not found: {m['certificate']}")
        previous = m.get("previous_certificates") or []
        if not isinstance(previous, list):
            bad(f"{base}.previous_certificates", "must be a list of certificate files")
            previous = []
        for j, f in enumerate(previous):
            if not (p.parent / str(f)).exists():
                bad(f"{base}.previous_certificates[{j}]", f"file not found: {f}")
        for key in ("duty_address", "management_address"):
            if m.get(key) and not _EMAIL.match(str(m[key])):
                bad(f"{base}.{key}", "not an e-mail address (where duty notices to this member are addressed)")  # noqa: E501
        if m.get("acknowledge", "auto") not in ("auto", "person"):
            bad(f"{base}.acknowledge", "auto (stafet receive answers at once) or person (a person "
                "acknowledges in the console or with stafet acknowledge)")
        if problems or not oid:
            continue
        members[oid] = Organisation(
            id=oid, kind=OrgKind(m["kind"]), name=str(m["name"]), municipality=muni,
            endpoint=str(m["endpoint"]), email=str(m["email"]),
            certificate=str(m["certificate"]) if m.get("certificate") else None,
            serves=tuple(serves), previous_certificates=tuple(str(f) for f in previous),
            duty_address=str(m.get("duty_address") or ""),
            management_address=str(m.get("management_address") or ""),
            acknowledge=str(m.get("acknowledge") or "auto"))
    sources = []
    for i, s in enumerate(data.get("sources") or []):
        if not isinstance(s, dict) or not s.get("name") or not s.get("location"):
            bad(f"sources[{i}]", "needs 'name' and 'location'")
            continue
        loc = str(s["location"])
        if loc.startswith("sftp://") and not s.get("host_key"):
            bad(f"sources[{i}].location", "an SFTP source needs a pinned 'host_key'")
        if s.get("org") and str(s["org"]) not in members:
            bad(f"sources[{i}].org", f"{s['org']!r} is not a member: the organisation whose source system "
                "this is (its stewards see this source)")
        if "max_bytes" in s and not _positive_int(s["max_bytes"]):
            bad(f"sources[{i}].max_bytes", "must be a positive number of bytes")
        keep = s.get("processed_retention_days", 0)
        if isinstance(keep, bool) or not isinstance(keep, int | float) or keep < 0:
            bad(f"sources[{i}].processed_retention_days", "must be a number of days, 0 or more")
        sources.append(SourceConfig(
            name=str(s["name"]), location=loc, host_key=str(s.get("host_key", "")),
            identity=str(s.get("identity", "")),
            options={k: v for k, v in s.items()
                     if k not in ("name", "location", "host_key", "identity")}))
    for key in ("trust_anchors", "crls"):
        for j, f in enumerate(data.get(key) or []):
            if key == "trust_anchors" and not (p.parent / str(f)).exists():
                bad(f"{key}[{j}]", f"file not found: {f}")
    endpoints = data.get("endpoints") or {}
    if not isinstance(endpoints, dict):
        bad("endpoints", "must map organisation ids to options")
        endpoints = {}
    for oid in endpoints:
        if oid not in members and not problems:
            bad(f"endpoints.{oid}", "not a member")
        opts = endpoints[oid]
        if isinstance(opts, dict) and "max_bytes" in opts and not _positive_int(opts["max_bytes"]):
            bad(f"endpoints.{oid}.max_bytes", "must be a positive number of bytes")
    grace = data.get("crl_grace_hours", 6)
    if isinstance(grace, bool) or not isinstance(grace, int | float) or grace < 0:
        bad("crl_grace_hours", "must be a number of hours, 0 or more")
        grace = 6
    require = data.get("require_revocation", True)
    if not isinstance(require, bool):
        bad("require_revocation", "must be true or false")
        require = True
    ocsp_url = data.get("ocsp_url") or ""
    if not isinstance(ocsp_url, str) or not _http_url(ocsp_url):
        bad("ocsp_url", "must be an http:// or https:// URL of an OCSP responder")
        ocsp_url = ""
    ack = data.get("ack_limit_hours", 48)
    if not isinstance(ack, int | float) or ack <= 0:
        bad("ack_limit_hours", "must be a positive number of hours")
        ack = 48
    if problems:
        raise ConfigError(f"{p.name} is not valid:\n  " + "\n  ".join(problems))
    return Network(
        name=str(data.get("network", p.stem)), path=p, members=members,
        trust_anchors=tuple((p.parent / str(f)).resolve() for f in data.get("trust_anchors") or []),
        crls=tuple((p.parent / str(f)).resolve() for f in data.get("crls") or []),
        sources=tuple(sources), ack_limit_hours=float(ack),
        endpoint_options={str(k): dict(v or {}) for k, v in endpoints.items()},
        legal_bases={str(k): str(v) for k, v in (data.get("legal_bases") or {}).items()},
        crl_grace_hours=float(grace), require_revocation=require,
        required_policy=str(data.get("required_policy") or ""), ocsp_url=ocsp_url)
