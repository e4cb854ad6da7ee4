"""Connectors: read and write bytes and rows (source readers, transports)."""
