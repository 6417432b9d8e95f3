"""A fault-injecting transport: writes that the CRM commits after the client gave up.

A CRM may keep working on a slow request after its client timed out; the write then appears
some time later. :class:`LateCommits` wraps any httpx transport (blocking or ``async``: the
in-process sandboxes' ``transport()``, ``httpx.HTTPTransport``, ...) and makes a share of the
write requests do exactly that:

- **in process** (``hold=None``, the default): the request is kept, the client gets
  ``httpx.ReadTimeout`` at once, and the request reaches the inner transport ``delay`` seconds
  later (by ``clock``), just before the next request that passes through, or on
  :meth:`deliver`. Tests move an injected clock; nothing is slept.
- **held** (``hold=seconds``, for a server that answers over a socket): the request is held for
  ``hold`` seconds, longer than the client's read timeout, and only then sent on; the answer
  goes nowhere. Use it inside the process that serves the sandbox.

Which requests are writes is decided by ``match`` (default: POST, PATCH, PUT and DELETE, other
than OAuth token requests). Choices are drawn from ``random.Random(seed)``, so a run can be
replayed. ``late`` counts the requests made late, ``delivered`` those the inner transport has
received since.
"""

from __future__ import annotations

import random as _random
import threading
import time
from collections.abc import Callable

import httpx

__all__ = ["LateCommits", "is_write"]

_WRITES = frozenset({"POST", "PATCH", "PUT", "DELETE"})


def is_write(request: httpx.Request) -> bool:
    """A request that changes CRM data: a write method, and not an OAuth token request."""
    path = request.url.path.lower()
    return request.method in _WRITES and "oauth" not in path and "token" not in path


class LateCommits(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Wrap ``inner`` so that a share ``rate`` of write requests commit after the client gave up
    (module doc)."""

    def __init__(
        self,
        inner: httpx.BaseTransport | httpx.AsyncBaseTransport,
        *,
        rate: float,
        seed: int = 0,
        delay: float = 1.0,
        hold: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        match: Callable[[httpx.Request], bool] = is_write,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 0 <= rate <= 1:
            msg = "rate must be within [0, 1]"
            raise ValueError(msg)
        self.inner = inner
        self.rate = rate
        self.delay = delay
        self.hold = hold
        self.late = 0
        self.delivered = 0
        self._clock = clock
        self._match = match
        self._sleep = sleep
        self._random = _random.Random(seed)  # noqa: S311  # fault injection, not crypto
        self._pending: list[tuple[float, httpx.Request]] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LateCommits(rate={self.rate!r}, late={self.late}, pending={len(self._pending)})"

    @property
    def pending(self) -> int:
        """Requests made late that the inner transport has not received yet."""
        return len(self._pending)

    def _chosen(self, request: httpx.Request) -> bool:
        if not self._match(request):
            return False
        with self._lock:
            chosen = self._random.random() < self.rate
            if chosen:
                self.late += 1
        return chosen

    def _due(self, *, everything: bool) -> list[httpx.Request]:
        now = self._clock()
        with self._lock:
            due = [r for at, r in self._pending if everything or at <= now]
            self._pending = [(at, r) for at, r in self._pending if not everything and at > now]
        return due

    def _timeout(self, request: httpx.Request) -> httpx.ReadTimeout:
        return httpx.ReadTimeout("the CRM had not answered in time", request=request)

    # -- blocking ------------------------------------------------------------------------------

    def deliver(self, *, everything: bool = False) -> int:
        """Send on the late requests that are due (all of them with ``everything``)."""
        inner = self.inner
        assert isinstance(inner, httpx.BaseTransport)  # noqa: S101  # a blocking inner
        sent = 0
        for request in self._due(everything=everything):
            inner.handle_request(request).close()
            sent += 1
        self.delivered += sent
        return sent

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Forward ``request``; a chosen write commits late (module doc)."""
        inner = self.inner
        if not isinstance(inner, httpx.BaseTransport):
            msg = "LateCommits wraps an async transport: use it from an AsyncClient"
            raise TypeError(msg)
        self.deliver()
        if not self._chosen(request):
            return inner.handle_request(request)
        request.read()
        if self.hold is not None:
            self._sleep(self.hold)  # the client gives up meanwhile
            response = inner.handle_request(request)
            self.delivered += 1
            return response
        with self._lock:
            self._pending.append((self._clock() + self.delay, request))
        raise self._timeout(request)

    # -- async ---------------------------------------------------------------------------------

    async def adeliver(self, *, everything: bool = False) -> int:
        """The ``async`` :meth:`deliver`."""
        inner = self.inner
        assert isinstance(inner, httpx.AsyncBaseTransport)  # noqa: S101  # an async inner
        sent = 0
        for request in self._due(everything=everything):
            response = await inner.handle_async_request(request)
            await response.aclose()
            sent += 1
        self.delivered += sent
        return sent

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Forward ``request``; a chosen write commits late (module doc; ``hold`` is not
        supported here: serve the sandbox with a blocking server for that)."""
        inner = self.inner
        if not isinstance(inner, httpx.AsyncBaseTransport):
            msg = "LateCommits wraps a blocking transport: use it from a Client"
            raise TypeError(msg)
        await self.adeliver()
        if not self._chosen(request):
            return await inner.handle_async_request(request)
        await request.aread()
        with self._lock:
            self._pending.append((self._clock() + self.delay, request))
        raise self._timeout(request)
