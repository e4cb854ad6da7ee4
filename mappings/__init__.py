"""Mappings: pure functions from source rows to canonical records (no I/O)."""
