"""Helpers for routing tests; the demo network fixtures live in tests/conftest.py."""

from datetime import UTC, datetime

import pytest

import mappings
from stafet.core.cpr import parse_cpr
from stafet.core.models import Provenance


@pytest.fixture
def net(demo_net):
    return demo_net


def prov(file="t.csv", row=2, **origin):
    """A provenance as ingest makes it: the sender from the file's name by its source's pattern."""
    found = mappings.origin(file)._asdict() | origin
    return Provenance("test", file, row, datetime.now(UTC), **found)


def cpr(text):
    return parse_cpr(text)
