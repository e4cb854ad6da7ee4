"""Handover packages: signed and encrypted S/MIME messages, built and opened.

No knowledge of the store: a package is built from a handover document and opened
back into one. May import ``stafet.core`` and ``keys`` (keys, certificates, trust).
"""
