"""The exchange: handovers leave through the outbox and come back as signed receipts.

- :mod:`~stafet.exchange.outbox` — plan handovers from routing's decisions, build each package
  once, send, retry (the outbox pattern: the order of writes is in its docstring);
- :mod:`~stafet.exchange.withdrawals` — a consent withdrawn: cancel what is unsent, notify who
  received, and mark what a notice names as withdrawn on the receiving side;
- :mod:`~stafet.exchange.inbox` — a receive pass: open, check, import in batches, answer, refuse;
- :mod:`~stafet.exchange.receipts` — send a signed receipt, accept one that comes back;
- :mod:`~stafet.exchange.endpoints` — certificates, outlets and inboxes of the network's members.

Packages travel as typed documents (:mod:`stafet.packages.document`), never as dicts.
May import ``stafet.core``, ``stafet.store`` (its query modules: no SQL here), ``keys``,
``transports``, ``stafet.context``, ``stafet.duties`` and ``stafet.packages``; nothing above.
"""
