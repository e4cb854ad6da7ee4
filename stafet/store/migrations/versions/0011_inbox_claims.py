"""inbox claims: a lease on an inbox file while one run receives it (issue 21).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 08:50:00

``inbox_claims`` (org, file name, claimed_by, claimed_until naive UTC): on PostgreSQL,
:func:`stafet.store.inbox.claim_files` claims the files a receive pass is about to open
under ``SELECT … FOR UPDATE SKIP LOCKED``, so two concurrent passes over one inbox never
import or answer the same package twice. The row is deleted once the file left the inbox.
SQLite (one writer) does not use it.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Upgrade."""
    op.create_table(
        'inbox_claims',
        sa.Column('org', sa.String(length=64), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('claimed_by', sa.String(length=128), nullable=False),
        sa.Column('claimed_until', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('org', 'name'),
    )


def downgrade() -> None:
    """Downgrade."""
    op.drop_table('inbox_claims')
