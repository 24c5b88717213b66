"""Async tests run through the hook in tests/conftest.py."""
