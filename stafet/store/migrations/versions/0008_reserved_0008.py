"""the whole youth: moves and inquiries (issue 18) - reserved

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 22:30:00

A slot in the revision chain, kept for work in progress so parallel changes do not fork
the chain; it changes nothing until that work fills it.
"""
from __future__ import annotations

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Upgrade (nothing yet)."""


def downgrade() -> None:
    """Downgrade (nothing yet)."""
