"""The vendored seed texts are the source's, and quotes are found in them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import seeds


def test_the_vendored_copy_is_the_source() -> None:
    if not seeds.SHARED.is_dir():
        pytest.skip("no ../shared/seeds beside this clone: the vendored copy is all there is")
    source = {p.name: p.read_bytes() for p in seeds.SHARED.glob("*.txt")}
    copy = {p.name: p.read_bytes() for p in seeds.VENDORED.glob("*.txt")}
    assert copy == source, f"tests/seed_texts differs from ../shared/seeds: {sorted(set(copy) ^ set(source))}"


def test_a_quote_not_in_the_seeds_is_caught() -> None:
    seeds.assert_quoted("Vi slipper ikke de unge, før en anden tager over.")
    with pytest.raises(AssertionError):
        seeds.assert_quoted("Vi slipper de unge, når det passer os.")
