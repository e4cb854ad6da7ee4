"""The demo's synthetic source exports (synthetic CPRs only): data, it imports nothing."""
