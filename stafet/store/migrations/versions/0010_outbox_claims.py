"""outbox claims: a lease on a pending handover while one worker sends it (issue 21).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 06:45:00

``handovers.claimed_by`` (the claiming run, e.g. a Prefect flow run id or host:pid) and
``handovers.claimed_until`` (naive UTC): on PostgreSQL, :func:`stafet.store.outbox.due`
claims the rows it returns under ``SELECT … FOR UPDATE SKIP LOCKED``, so concurrent
partitions of one night never send the same package. SQLite ignores them.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Upgrade."""
    with op.batch_alter_table('handovers') as batch:
        batch.add_column(sa.Column('claimed_by', sa.String(length=128), nullable=True))
        batch.add_column(sa.Column('claimed_until', sa.DateTime(), nullable=True))


def downgrade() -> None:
    """Downgrade."""
    with op.batch_alter_table('handovers') as batch:
        batch.drop_column('claimed_until')
        batch.drop_column('claimed_by')
