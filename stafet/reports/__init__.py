"""Reports for people: the steward's validation report, the night's report, the statistics.

``stafet status`` and ``stafet statistics`` (the network's monthly figures) are here too.

May import every stage below (core, store, context, ingest, duties, exchange); nothing
imports reports but the night, the CLI and flows.
"""
