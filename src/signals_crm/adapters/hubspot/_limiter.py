"""A client-side limiter that keeps an adapter under HubSpot's rolling windows.

Theory of operation:

1. HubSpot counts requests in a rolling window (burst: 100 or 190 per 10 s per app; search:
   5 per second). The limiter keeps a log of its own send times and allows a send only while
   fewer than ``floor(max_requests * share)`` fall within the last ``interval`` seconds;
   otherwise it waits until the oldest one leaves the window.
2. HubSpot's answers say what the real window is (``X-HubSpot-RateLimit-Max`` and
   ``-Interval-Milliseconds``): :meth:`RateLimiter.observe` adopts them, and pauses a whole
   window when ``-Remaining`` reaches zero (other apps share the budget).
3. A 429 pauses sends for its ``retry_after`` (:meth:`RateLimiter.pause`).
4. Time is injected: ``clock`` (monotonic seconds), ``sleep`` and ``asleep``. Tests pass a fake
   clock whose sleep advances it, so a burst of thousands of writes takes no real time.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable

import anyio

from signals_crm.adapters.hubspot._responses import RateLimitUsage
from signals_crm.exceptions import ConfigurationError, Problem

__all__ = ["RateLimiter"]


class RateLimiter:
    """Sliding-window request limiter with injected clock and sleep (sync and async)."""

    def __init__(
        self,
        *,
        max_requests: int = 100,
        interval: float = 10.0,
        share: float = 0.9,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        asleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        if max_requests < 1 or interval <= 0 or not 0 < share <= 1:
            raise ConfigurationError(
                [
                    Problem(
                        "limiter", "max_requests >= 1, interval > 0 and 0 < share <= 1 are required"
                    )
                ]
            )
        self._max = max_requests
        self.interval = interval
        self.share = share
        self._clock = clock
        self._sleep = sleep
        self._asleep = asleep
        self._sent: deque[float] = deque()
        self._paused_until = 0.0
        self._lock = threading.Lock()
        self.waited = 0.0
        """Total seconds spent waiting (observability)."""

    def __repr__(self) -> str:
        return f"RateLimiter(limit={self.limit}, interval={self.interval})"

    @property
    def limit(self) -> int:
        """How many sends the limiter allows per window."""
        return max(1, math.floor(self._max * self.share))

    def _reserve(self) -> float:
        """Take a slot now and return 0, or return how long to wait before trying again."""
        now = self._clock()
        if now < self._paused_until:
            return self._paused_until - now
        horizon = now - self.interval
        while self._sent and self._sent[0] <= horizon:
            self._sent.popleft()
        if len(self._sent) < self.limit:
            self._sent.append(now)
            return 0.0
        return max(self._sent[0] + self.interval - now, 1e-6)

    def _wait(self) -> float:
        """Take a slot and return 0, or count and return how long to wait before trying again."""
        with self._lock:
            wait = self._reserve()
            self.waited += wait
        return wait

    def acquire(self) -> None:
        """Block (with the injected ``sleep``) until a send is allowed, and take it."""
        while (wait := self._wait()) > 0:
            self._sleep(wait)

    async def aacquire(self) -> None:
        """Wait (with the injected ``asleep``) until a send is allowed, and take it."""
        while (wait := self._wait()) > 0:
            await self._asleep(wait)

    def observe(self, usage: RateLimitUsage | None) -> None:
        """Adopt the window HubSpot reports; pause a window when it says none is left."""
        if usage is None:
            return
        with self._lock:
            if usage.max:
                self._max = usage.max
            if usage.interval_ms:
                self.interval = usage.interval_ms / 1000
            if usage.remaining is not None and usage.remaining <= 0:
                self._paused_until = max(self._paused_until, self._clock() + self.interval)

    def pause(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (after a 429)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + max(seconds, 0.0))
