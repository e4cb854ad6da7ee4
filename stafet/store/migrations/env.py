"""Alembic environment: stafet passes its own connection in ``config.attributes``."""

from alembic import context
from sqlalchemy import create_engine

from stafet.store.schema import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # `alembic` run by hand: use STAFET_DATABASE_URL / the default
    from stafet.core.config import database_url

    with create_engine(database_url()).begin() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata,
                          render_as_batch=True)
        context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
