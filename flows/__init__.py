"""Prefect flows: orchestration only, they call ``stafet.night``; nothing imports this package.

May import ``stafet.night``, ``stafet.core`` and Prefect; the CLI (an entry point) runs them.
"""
