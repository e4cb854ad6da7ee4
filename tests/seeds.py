"""The seed documents (Danish municipal texts) that tests quote.

The source is ``../shared/seeds`` beside the repository (a path relative to this file,
never absolute). A copy is vendored in ``tests/seed_texts/`` so a clone on its own can run
the quotes too; when the sibling folder is there, ``tests/test_seeds.py`` checks that the
copy is identical to it, file by file, so a quote checked here is a quote of the source.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "seeds"
VENDORED = Path(__file__).resolve().parent / "seed_texts"


def folder() -> Path:
    """Where the seed texts are read from: ``../shared/seeds`` when present, else the copy."""
    return SHARED if SHARED.is_dir() and any(SHARED.glob("*.txt")) else VENDORED


def flat(text: str) -> str:
    """White space folded to single spaces (quotes span the documents' line breaks)."""
    return re.sub(r"\s+", " ", text)


@functools.cache
def corpus() -> str:
    """Every seed document, white space folded, as one text."""
    return " ".join(flat(p.read_text(encoding="utf-8")) for p in sorted(folder().glob("*.txt")))


def assert_quoted(quote: str) -> None:
    """The quote stands, word for word (white space aside), in a seed document."""
    assert flat(quote) in corpus(), f"not in the seed documents ({folder()}): {quote!r}"
