"""The store's clock: naive UTC, what its DateTime columns hold."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now, UTC, without tzinfo (what the store's DateTime columns hold)."""
    return datetime.now(UTC).replace(tzinfo=None)
