"""Prefect flows: orchestration only; nothing imports this package."""
