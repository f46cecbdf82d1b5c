"""Fixtures for the monitoring tests."""

import pytest


@pytest.fixture(autouse=True)
def _fast_password_hashing(fast_password_hashing):
    """Every monitoring test (tests/conftest.py)."""
