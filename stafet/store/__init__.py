"""The store: tables, migrations and every query (SQLAlchemy 2.x + Alembic).

Nothing outside this package builds SQL or imports SQLAlchemy: the other layers open a
transaction with :meth:`Store.session` and call the query modules with it —
:mod:`~stafet.store.outbox` (handovers), :mod:`~stafet.store.inbox` (imported packages,
receipts), :mod:`~stafet.store.records` (our own sources), :mod:`~stafet.store.imported`
(records received in packages, kept apart), :mod:`~stafet.store.youths`,
:mod:`~stafet.store.consents`, :mod:`~stafet.store.quarantine`, :mod:`~stafet.store.files`
(source files), :mod:`~stafet.store.audit` (the hash chain) — or the :class:`Store`'s own
methods (youths by CPR, records by natural key). :data:`Session` is re-exported for type
annotations. May import ``stafet.core`` only.
"""

from sqlalchemy.orm import Session

from stafet.store.clock import utcnow
from stafet.store.db import Store, payload_digest

__all__ = ["Session", "Store", "payload_digest", "utcnow"]
