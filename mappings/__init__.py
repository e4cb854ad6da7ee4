"""Pure mappings from source rows (dicts of raw strings) to canonical records.

One module per source format; each exposes ``map_row(fields, provenance)``. No I/O,
no Prefect, no Great Expectations here: see :mod:`mappings.common` for why the
tables are small Python dicts.
"""
