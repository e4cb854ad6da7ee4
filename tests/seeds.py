"""The seed documents (Danish municipal texts) that tests quote, read from ``../shared/seeds``.

The folder sits beside the repository wherever it is checked out, so the path is relative
to this file, never absolute. A missing folder fails the test (as a real peer that cannot
start does), or skips it on a local run with ``STAFET_TEST_ALLOW_SKIP=1``.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from servers import peer_unavailable

SEEDS = Path(__file__).resolve().parents[1].parent / "shared" / "seeds"


def flat(text: str) -> str:
    """White space folded to single spaces (quotes span the documents' line breaks)."""
    return re.sub(r"\s+", " ", text)


@functools.cache
def _corpus() -> str:
    return " ".join(flat(p.read_text(encoding="utf-8")) for p in sorted(SEEDS.glob("*.txt")))


def corpus() -> str:
    """Every seed document, white space folded, as one text."""
    if not SEEDS.is_dir() or not any(SEEDS.glob("*.txt")):
        peer_unavailable("seed documents", f"no ../shared/seeds beside the repository ({SEEDS})")
    return _corpus()


def assert_quoted(quote: str) -> None:
    """The quote stands, word for word (white space aside), in a seed document."""
    assert flat(quote) in corpus(), f"not in ../shared/seeds: {quote!r}"
