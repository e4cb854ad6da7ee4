"""Ingest: one source file in, its rows validated (Great Expectations), mapped and stored.

Bad rows go to quarantine for a steward, a bad file is refused and kept. ``pipeline``
(one file: archive, dedupe, chunks, store), ``gx`` (GX context, suites, validate),
``mapping`` (rows that pass → records prepared for the store), ``packing`` (rows for the
worker pipe), ``worker`` (the validation worker pool; ``worker_main`` its handler,
in the worker), ``ahead`` (a night's small files validated together, one GX call per
source kind), ``docs`` (Data Docs), ``quarantine`` (the steward's release/reject). May import
``stafet.core``, ``connectors``, ``mappings`` (the source declarations), ``stafet.store``
and ``stafet.context``; never duties, packages, transports or exchange.
"""
