"""imported records live apart from source records; imported packages keep their consent

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 20:00:00

Issue 16, finding 1: a record received in a package was written to ``records`` under the
source's natural key, so a package with the key of a source record replaced what the
source system said (and routing then read it as source data). Received records now live
in ``imported_records``, keyed by (recipient, package, kind, natural key); ``records``
holds our own sources only and loses ``via_package``. Rows that came in a package are
moved, with the recipient and sender their package's import row names.

Finding 2: ``imported_packages.consent_ref`` is the consent a package came under, which a
withdrawal notice must name. Packages imported before this revision get NULL (unknown):
no notice can withdraw them automatically (fail closed; a steward can).
"""
import sqlalchemy as sa
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Upgrade."""
    op.create_table('imported_records',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('recipient', sa.String(length=64), nullable=False),
    sa.Column('package_id', sa.String(length=64), nullable=False),
    sa.Column('sender', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('youth', sa.String(length=32), nullable=False),
    sa.Column('natural_key', sa.String(length=300), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('row', sa.Integer(), nullable=False),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.Column('withdrawn', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['youth'], ['youths.pseudonym'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('recipient', 'package_id', 'kind', 'natural_key', name='uq_imported_record_key')
    )
    with op.batch_alter_table('imported_records', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_imported_records_package_id'), ['package_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_imported_records_youth'), ['youth'], unique=False)

    op.execute(sa.text(
        "INSERT INTO imported_records (recipient, package_id, sender, kind, youth, natural_key, payload, "
        "digest, row, received_at, withdrawn) "
        "SELECT COALESCE(p.recipient, ''), r.via_package, COALESCE(p.sender, ''), r.kind, r.youth, "
        "r.natural_key, r.payload, r.digest, r.source_row, r.received_at, r.withdrawn "
        "FROM records r LEFT JOIN imported_packages p ON p.package_id = r.via_package "
        "WHERE r.via_package <> '' ORDER BY r.id"))
    op.execute(sa.text("DELETE FROM records WHERE via_package <> ''"))
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.drop_column('via_package')
    with op.batch_alter_table('imported_packages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('consent_ref', sa.String(length=64), nullable=True))


def downgrade() -> None:
    """Downgrade: received records back into ``records`` where no source record has their key."""
    with op.batch_alter_table('imported_packages', schema=None) as batch_op:
        batch_op.drop_column('consent_ref')
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('via_package', sa.String(length=64), nullable=False, server_default=''))
    op.execute(sa.text(
        "INSERT INTO records (kind, youth, natural_key, payload, digest, source, source_file, source_row, "
        "received_at, updated_at, via_package, withdrawn) "
        "SELECT i.kind, i.youth, i.natural_key, i.payload, i.digest, 'package:' || i.sender, i.package_id, "
        "i.row, i.received_at, i.received_at, i.package_id, i.withdrawn FROM imported_records i "
        "WHERE i.id = (SELECT MAX(j.id) FROM imported_records j WHERE j.youth = i.youth "
        "AND j.kind = i.kind AND j.natural_key = i.natural_key) "
        "AND NOT EXISTS (SELECT 1 FROM records r WHERE r.youth = i.youth AND r.kind = i.kind "
        "AND r.natural_key = i.natural_key)"))
    with op.batch_alter_table('imported_records', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_imported_records_youth'))
        batch_op.drop_index(batch_op.f('ix_imported_records_package_id'))
    op.drop_table('imported_records')
