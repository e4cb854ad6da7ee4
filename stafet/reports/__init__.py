"""Reports for people: the steward's validation report, the night's report, ``stafet status``.

May import every stage below (core, store, context, ingest, duties, exchange); nothing
imports reports but the night, the CLI and flows.
"""
