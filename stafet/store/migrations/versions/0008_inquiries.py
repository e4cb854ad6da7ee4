"""the whole youth: inquiries to UU and their answers (issue 18)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 22:30:00

``inquiries``: one row per inquiry per organisation that holds it, the asking member's
(``out``) and the asked UU's (``in``), unique by (package id, organisation) since both may
share a node; the answer's package id, outcome and receipt on the same row. Moves need no
table of their own: a move's handover is an outbox row (rule ``move_handover``).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Upgrade."""
    op.create_table(
        'inquiries',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('package_id', sa.String(length=64), nullable=False),
        sa.Column('org', sa.String(length=64), nullable=False),
        sa.Column('direction', sa.String(length=8), nullable=False),
        sa.Column('asker', sa.String(length=64), nullable=False),
        sa.Column('guidance', sa.String(length=64), nullable=False),
        sa.Column('youth', sa.String(length=32), nullable=False),
        sa.Column('question', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('digest', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('acknowledged_at', sa.DateTime(), nullable=True),
        sa.Column('answer_id', sa.String(length=64), nullable=False),
        sa.Column('answer_digest', sa.String(length=64), nullable=False),
        sa.Column('answer_outcome', sa.String(length=16), nullable=False),
        sa.Column('answer_basis', sa.Text(), nullable=False),
        sa.Column('answer_records', sa.Integer(), nullable=False),
        sa.Column('answered_by', sa.String(length=100), nullable=False),
        sa.Column('answered_at', sa.DateTime(), nullable=True),
        sa.Column('answer_acknowledged_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['youth'], ['youths.pseudonym']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('package_id', 'org', name='uq_inquiry_package_org'),
    )
    with op.batch_alter_table('inquiries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inquiries_package_id'), ['package_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_inquiries_org'), ['org'], unique=False)
        batch_op.create_index(batch_op.f('ix_inquiries_youth'), ['youth'], unique=False)
        batch_op.create_index(batch_op.f('ix_inquiries_answer_id'), ['answer_id'], unique=False)


def downgrade() -> None:
    """Downgrade."""
    op.drop_table('inquiries')
