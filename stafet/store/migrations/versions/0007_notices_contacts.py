"""duty notices, escalations, registered contacts and resends (issue 17)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 06:00:00

``notices``: one row per duty per step (notice, coordinator, management), unique, so a
re-run of the night sends nothing twice. ``contacts``: contacts with a youth registered
by a person, the evidence that closes a duty. ``handovers.resends``: how often an
unacknowledged package was sent again.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Upgrade."""
    op.create_table(
        'notices',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('duty_key', sa.String(length=64), nullable=False),
        sa.Column('step', sa.String(length=16), nullable=False),
        sa.Column('rule', sa.String(length=64), nullable=False),
        sa.Column('youth', sa.String(length=32), nullable=False),
        sa.Column('responsible', sa.String(length=64), nullable=False),
        sa.Column('recipient', sa.String(length=64), nullable=False),
        sa.Column('addressee', sa.String(length=200), nullable=False),
        sa.Column('due', sa.Date(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('package_id', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('sent_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('duty_key', 'step', name='uq_notices_duty_step'),
    )
    with op.batch_alter_table('notices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notices_duty_key'), ['duty_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_notices_youth'), ['youth'], unique=False)
    op.create_table(
        'contacts',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('youth', sa.String(length=32), nullable=False),
        sa.Column('org', sa.String(length=64), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('form', sa.String(length=32), nullable=False),
        sa.Column('party', sa.String(length=32), nullable=False),
        sa.Column('note', sa.Text(), nullable=False),
        sa.Column('by', sa.String(length=100), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['youth'], ['youths.pseudonym']),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contacts_youth'), ['youth'], unique=False)
    with op.batch_alter_table('handovers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resends', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    """Downgrade."""
    with op.batch_alter_table('handovers', schema=None) as batch_op:
        batch_op.drop_column('resends')
    op.drop_table('contacts')
    op.drop_table('notices')
