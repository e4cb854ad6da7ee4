"""records: who sent a record's file, from its provenance, in columns of its own

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 21:45:00

A source's file-name pattern names the sender (groups ``institution`` / ``municipality``,
see :mod:`mappings`); ingest puts them in each record's provenance, and routing and the
duty clock read ``origin_institution`` / ``origin_municipality`` instead of parsing file
names. Existing rows are filled from their ``source_file`` by the same declared patterns.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Upgrade."""
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('origin_institution', sa.String(length=16), server_default='',
                                      nullable=False))
        batch_op.add_column(sa.Column('origin_municipality', sa.String(length=8), server_default='',
                                      nullable=False))
    from mappings import origin

    conn = op.get_bind()
    files = [f for (f,) in conn.execute(sa.text("SELECT DISTINCT source_file FROM records"))]
    for name in files:
        found = origin(name or "")
        if found.institution or found.municipality:
            conn.execute(sa.text("UPDATE records SET origin_institution = :i, origin_municipality = :m "
                                 "WHERE source_file = :f"),
                         {"i": found.institution, "m": found.municipality, "f": name})


def downgrade() -> None:
    """Downgrade."""
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.drop_column('origin_municipality')
        batch_op.drop_column('origin_institution')
