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
5. HubSpot counts the window per app and account, not per process: every worker that sends
   for one portal must draw from one window. The send log and the pause live in a
   :class:`RateWindow` (the hook): :class:`LocalWindow` (the default) is one process's;
   :class:`FileWindow` is shared by the processes of one machine through a locked file; a
   fleet on several machines implements the two methods over its own store.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

import anyio

from signals_crm.adapters.hubspot._responses import RateLimitUsage
from signals_crm.exceptions import ConfigurationError, Problem

__all__ = ["FileWindow", "LocalWindow", "RateLimiter", "RateWindow"]


@runtime_checkable
class RateWindow(Protocol):
    """Where limiters keep a portal's send times and pause: one per portal (and window kind),
    shared by every limiter that sends to it. Times are the limiters' ``clock`` readings, so
    limiters sharing a window must share a clock."""

    def reserve(self, now: float, interval: float, limit: int) -> float:
        """Take a send slot at ``now`` and return 0 when fewer than ``limit`` sends fall in
        ``(now - interval, now]`` and no pause holds; else take nothing and return the
        seconds until one frees (the oldest send leaving the window, or the pause's end)."""
        ...

    def pause_until(self, until: float) -> None:
        """Allow no send before ``until`` (kept if a later pause is already set)."""
        ...


def _reserve(sent: deque[float], paused: float, now: float, interval: float, limit: int) -> float:
    if now < paused:
        return paused - now
    horizon = now - interval
    while sent and sent[0] <= horizon:
        sent.popleft()
    if len(sent) < limit:
        sent.append(now)
        return 0.0
    # The (len - limit + 1)-th oldest must leave before one more fits (the limit may have
    # dropped below what the window holds).
    return max(sent[len(sent) - limit] + interval - now, 1e-6)


class LocalWindow:
    """One process's window (the default): a log in memory, guarded by a lock."""

    def __init__(self) -> None:
        self._sent: deque[float] = deque()
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def reserve(self, now: float, interval: float, limit: int) -> float:
        with self._lock:
            return _reserve(self._sent, self._paused_until, now, interval, limit)

    def pause_until(self, until: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, until)


class FileWindow:
    """A window shared by the processes of one machine: the log is a small JSON file, read
    and rewritten under an exclusive ``flock`` for every send (POSIX only). Give every
    worker of one portal the same ``path``, and a clock the processes share
    (``time.monotonic`` is the system's monotonic clock on Linux and macOS)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import fcntl  # POSIX only: imported where it is used

        self.path = Path(path)
        self._flock = fcntl.flock
        self._exclusive = fcntl.LOCK_EX
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FileWindow({str(self.path)!r})"

    def _update(self, change: Callable[[deque[float], list[float]], float]) -> float:
        with self._lock, self.path.open("a+", encoding="utf-8") as handle:
            self._flock(handle.fileno(), self._exclusive)  # released when the file closes
            handle.seek(0)
            try:
                state = json.loads(handle.read() or "{}")
            except ValueError:
                state = {}  # a torn or foreign file: start a fresh log
            sent = deque(float(t) for t in state.get("sent", ()))
            paused = [float(state.get("paused", 0.0))]
            result = change(sent, paused)
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps({"sent": list(sent), "paused": paused[0]}))
            handle.flush()
            return result

    def reserve(self, now: float, interval: float, limit: int) -> float:
        return self._update(lambda sent, paused: _reserve(sent, paused[0], now, interval, limit))

    def pause_until(self, until: float) -> None:
        def change(_sent: deque[float], paused: list[float]) -> float:
            paused[0] = max(paused[0], until)
            return 0.0

        self._update(change)


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
        window: RateWindow | None = None,
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
        self.window: RateWindow = window if window is not None else LocalWindow()
        """The send log and pause (:class:`RateWindow`): shared by the limiters given it."""
        self._lock = threading.Lock()
        self.waited = 0.0
        """Total seconds spent waiting (observability)."""

    def __repr__(self) -> str:
        return f"RateLimiter(limit={self.limit}, interval={self.interval})"

    @property
    def limit(self) -> int:
        """How many sends the limiter allows per window."""
        return max(1, math.floor(self._max * self.share))

    def _wait(self) -> float:
        """Take a slot and return 0, or count and return how long to wait before trying again."""
        wait = self.window.reserve(self._clock(), self.interval, self.limit)
        with self._lock:
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
            pause = usage.remaining is not None and usage.remaining <= 0
        if pause:
            self.window.pause_until(self._clock() + self.interval)

    def pause(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (after a 429)."""
        self.window.pause_until(self._clock() + max(seconds, 0.0))
