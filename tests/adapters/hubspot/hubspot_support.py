"""Helpers shared by the HubSpot tests (a fake clock and limiters running on it)."""

from __future__ import annotations

from signals_crm.adapters.hubspot import RateLimiter

TOKEN = "local-hubspot-token"
BASE_URL = "https://api.hubapi.com"


class FakeClock:
    """Epoch seconds that move only when someone sleeps (sync or async)."""

    def __init__(self, start: float = 1_750_000_000.0) -> None:
        self.now = start
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


def limiters(clock: FakeClock) -> dict[str, RateLimiter]:
    """A burst and a search limiter running on ``clock``."""
    return {
        "limiter": RateLimiter(clock=clock, sleep=clock.sleep, asleep=clock.asleep),
        "search_limiter": RateLimiter(
            max_requests=5, interval=1.0, clock=clock, sleep=clock.sleep, asleep=clock.asleep
        ),
    }
