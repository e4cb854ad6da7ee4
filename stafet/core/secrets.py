"""Where a runtime secret comes from: one lookup for the network secret and the key passphrase.

A secret is looked up, in order, in

1. an environment variable (``STAFET_SECRET``, ``STAFET_KEY_PASSPHRASE``),
2. a Prefect Secret block named by another variable (``STAFET_SECRET_BLOCK``,
   ``STAFET_KEY_PASSPHRASE_BLOCK``), and
3. a file in ``$STAFET_HOME`` (``secret.key``, ``key-passphrase``), 0600,

and, when the caller asks for it (the demo), generated into that file. The file is
written under a temporary name with mode 0600 from the first byte and linked into
place, so it is complete or absent, and two processes creating it at once end up
with the same secret (the one that lost the race reads the winner's).

What each secret means (hex bytes, a passphrase) is its caller's business:
:func:`stafet.core.vault.load_secret` and :func:`keys.files.key_passphrase`. No value
is ever logged or put into an error message; errors name the places looked at.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stafet.core.errors import ConfigError

__all__ = ["Found", "SecretSpec", "find_secret"]


@dataclass(frozen=True)
class SecretSpec:
    """Where one kind of secret is looked for."""

    what: str  # for errors: "network secret", "key passphrase"
    env: str  # the variable holding the value itself
    block_env: str  # the variable naming a Prefect Secret block
    file: str  # the file name in ``$STAFET_HOME``


@dataclass(frozen=True)
class Found:
    """A secret as found, with the place it came from (for the caller's error messages)."""

    value: str  # the variable or block as given; a file's content stripped
    origin: str  # "env", "block" or "file"
    where: str  # the variable's name, "the Secret block <name>", or the file's path

    def __repr__(self) -> str:
        return f"Found(<secret>, origin={self.origin!r}, where={self.where!r})"


def find_secret(spec: SecretSpec, home: Path, *,
                generate: Callable[[], str] | None = None) -> Found:
    """Look ``spec``'s secret up (see module docstring).

    Args:
        spec: which secret.
        home: ``$STAFET_HOME``, where the file lives.
        generate: when nothing is found, make a new value with this and keep it in the
            file (created 0600, with its folder); without it, a missing secret is an error.

    Raises:
        ConfigError: nothing found and ``generate`` not given; the message names every
            place looked at, never a value.
    """
    env = os.environ.get(spec.env)
    if env:
        return Found(env, "env", spec.env)
    block = os.environ.get(spec.block_env)
    if block:
        from prefect.blocks.system import Secret

        # _sync: load() would return a coroutine when called from inside an async flow.
        loaded: Any = Secret.load(block, _sync=True)  # type: ignore[call-arg]
        return Found(str(loaded.get()), "block", f"the Secret block {block!r} ({spec.block_env})")
    path = home / spec.file
    if path.exists():
        return Found(path.read_text(encoding="utf-8").strip(), "file", str(path))
    if generate is None:
        raise ConfigError(f"no {spec.what}: looked in {spec.env}, {spec.block_env} and {path}")
    return Found(_create(path, generate()), "file", str(path))


def _create(path: Path, value: str) -> str:
    """Keep ``value`` in ``path`` (0600) unless another process got there first; return the kept one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(value + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # fails if the file exists: never replace a secret in use
        except FileExistsError:
            return path.read_text(encoding="utf-8").strip()
        except OSError:  # a file system without hard links: create it in place, exclusively
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                return path.read_text(encoding="utf-8").strip()
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(value + "\n")
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return value
