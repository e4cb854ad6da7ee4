"""The store: tables, migrations and operations (SQLAlchemy 2.x + Alembic)."""

from stafet.store.db import Store, payload_digest, utcnow

__all__ = ["Store", "payload_digest", "utcnow"]
