"""the duty clock's daily snapshot for the console, and its lists' indexes (issue 19, performance).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 06:30:00

``duty_snapshots``: one row per day the duty clock was computed for (when, how many items).
``duty_items``: that day's open duties (rule, youth by pseudonym, responsible, due,
reference, status, days overdue/left, masked CPR, contact) — never a CPR. The night writes
them; the console pages through them instead of recomputing the clock in a request. And the
indexes the console's other lists page by (message log, inbox, quarantine).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Upgrade."""
    op.create_table(
        'duty_snapshots',
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('computed_at', sa.DateTime(), nullable=False),
        sa.Column('items', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('day'),
    )
    op.create_table(
        'duty_items',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('rule', sa.String(length=64), nullable=False),
        sa.Column('youth', sa.String(length=32), nullable=False),
        sa.Column('responsible', sa.String(length=64), nullable=False),
        sa.Column('due', sa.Date(), nullable=False),
        sa.Column('reference', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('days_overdue', sa.Integer(), nullable=False),
        sa.Column('days_left', sa.Integer(), nullable=False),
        sa.Column('masked_cpr', sa.String(length=16), nullable=False),
        sa.Column('contact', sa.String(length=300), nullable=False),
        sa.Column('computed_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['day'], ['duty_snapshots.day'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('duty_items', schema=None) as batch_op:
        batch_op.create_index('ix_duty_items_day_due', ['day', 'due', 'rule', 'youth'], unique=False)
        batch_op.create_index('ix_duty_items_day_responsible_due',
                              ['day', 'responsible', 'due', 'rule', 'youth'], unique=False)
        batch_op.create_index('ix_duty_items_day_youth', ['day', 'youth'], unique=False)
        batch_op.create_index('ix_duty_items_day_status', ['day', 'status'], unique=False)
        batch_op.create_index('ix_duty_items_day_responsible_status', ['day', 'responsible', 'status'],
                              unique=False)
    # the console's paged lists: each list's filter and order from an index
    op.create_index('ix_handovers_created_at_id', 'handovers', ['created_at', 'id'], unique=False)
    op.create_index('ix_handovers_status_created_at', 'handovers', ['status', 'created_at', 'id'],
                    unique=False)
    op.create_index('ix_handovers_status_parties', 'handovers',
                    ['status', 'sender', 'recipient', 'created_at'], unique=False)
    op.create_index('ix_imported_packages_recipient_imported_at', 'imported_packages',
                    ['recipient', 'imported_at', 'package_id'], unique=False)
    op.create_index('ix_quarantine_status', 'quarantine', ['status'], unique=False)
    op.create_index('ix_quarantine_status_rule', 'quarantine', ['status', 'rule'], unique=False)
    op.create_index('ix_quarantine_status_rule_source', 'quarantine', ['status', 'rule', 'source'],
                    unique=False)


def downgrade() -> None:
    """Downgrade."""
    for name, table in (('ix_quarantine_status_rule_source', 'quarantine'),
                        ('ix_quarantine_status_rule', 'quarantine'), ('ix_quarantine_status', 'quarantine'),
                        ('ix_imported_packages_recipient_imported_at', 'imported_packages'),
                        ('ix_handovers_status_parties', 'handovers'),
                        ('ix_handovers_status_created_at', 'handovers'),
                        ('ix_handovers_created_at_id', 'handovers')):
        op.drop_index(name, table_name=table)
    op.drop_table('duty_items')
    op.drop_table('duty_snapshots')
