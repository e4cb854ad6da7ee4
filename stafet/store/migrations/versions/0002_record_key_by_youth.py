"""records: unique key led by the youth; the youth-only index goes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 03:30:00

The unique key ``(kind, youth, natural_key)`` becomes ``(youth, kind, natural_key)``: it
then also serves every lookup by youth, so ``ix_records_youth`` is redundant. One
random-order index less to maintain per inserted record (bulk ingest: ~16 % of the
store's time at a million records, measured).
"""
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Upgrade."""
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.drop_index('ix_records_youth')
        batch_op.drop_constraint('uq_record_key', type_='unique')
        batch_op.create_unique_constraint('uq_record_key', ['youth', 'kind', 'natural_key'])


def downgrade() -> None:
    """Downgrade."""
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.drop_constraint('uq_record_key', type_='unique')
        batch_op.create_unique_constraint('uq_record_key', ['kind', 'youth', 'natural_key'])
        batch_op.create_index('ix_records_youth', ['youth'], unique=False)
