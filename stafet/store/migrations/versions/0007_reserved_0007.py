"""duty notices and escalations (issue 17) - reserved

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 22:30:00

A slot in the revision chain, kept for work in progress so parallel changes do not fork
the chain; it changes nothing until that work fills it.
"""
from __future__ import annotations

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Upgrade (nothing yet)."""


def downgrade() -> None:
    """Downgrade (nothing yet)."""
