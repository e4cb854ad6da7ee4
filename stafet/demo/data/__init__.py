"""Synthetic sample exports (FORMATS.md) for the demo and the tests; all CPRs are synthetic."""
