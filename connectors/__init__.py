"""Connectors: bytes in, rows out — streaming CSV and XML readers, with the XSDs.

Generic: a source's own reader is declared with its columns in ``mappings/``. May import
``stafet.core`` only.
"""
