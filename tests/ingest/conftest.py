"""The ingest tests' network (tests/ingest_network.yaml) and a fresh store per test."""

from pathlib import Path

import pytest
from ingest_fixtures import network, open_store

from stafet.core.config import Network
from stafet.store import Store


@pytest.fixture
def net() -> Network:
    return network()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return open_store(tmp_path)
