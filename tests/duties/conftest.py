"""Helpers for routing tests; the demo network fixtures live in tests/conftest.py."""

from datetime import UTC, datetime

import pytest

from stafet.core.cpr import parse_cpr
from stafet.core.models import Provenance


@pytest.fixture
def net(demo_net):
    return demo_net


def prov(file="t.csv", row=2):
    return Provenance("test", file, row, datetime.now(UTC))


def cpr(text):
    return parse_cpr(text)
