"""What every command and flow opens first: home, vault, store, network, keys."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from keys import KeyStore
from stafet.core.config import Network, database_url, load_network, private_dir, stafet_home
from stafet.core.vault import Vault, load_secret
from stafet.store import Store


@dataclass
class Context:
    """An opened stafet installation."""

    home: Path
    vault: Vault
    store: Store
    network: Network
    keys: KeyStore


def prepare_environment(home: Path) -> None:
    """Keep Prefect local and quiet: its home under ``$STAFET_HOME``, no telemetry."""
    os.environ.setdefault("PREFECT_HOME", str(home / "prefect"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    # A cold Prefect home on a busy 2-core machine can take far longer than the 20 s default.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


def open_context(network_path: str | Path | None = None, *, home: Path | None = None,
                 create_secret: bool = False, database: str | None = None) -> Context:
    """Open the store, vault, network configuration and key store.

    The home is made private (0700, also when it exists); the SQLite database in it is
    0600 (:class:`~stafet.store.Store`), and so is every file stafet writes there.

    Args:
        network_path: ``network.yaml``; default ``$STAFET_NETWORK`` or ``./network.yaml``.
        home: ``$STAFET_HOME`` unless given.
        create_secret: generate the network secret (0600) when there is none (demo).
        database: a database URL instead of ``$STAFET_DATABASE_URL`` / the default.
    """
    home = private_dir((home or stafet_home()).resolve())  # 0700: what is kept here is personal data
    vault = Vault(load_secret(home, create=create_secret))
    network = load_network(network_path)
    store = Store(database or database_url(home), vault)
    return Context(home=home, vault=vault, store=store, network=network, keys=KeyStore(home))
