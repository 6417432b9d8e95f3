"""Shared test configuration."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

# CI machines are small and shared: judge properties by their examples, not their speed.
settings.register_profile("signals", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("signals")


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio (the anyio pytest plugin reads this)."""
    return "asyncio"
