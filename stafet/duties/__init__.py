"""Duties: who must be told what and by when — routing by legal duty or consent, deadlines.

The rules and their legal basis live in ``rules.yaml``. May import ``stafet.core``,
``stafet.store`` and ``stafet.context``; never ingest, packages, transports or exchange.
"""
