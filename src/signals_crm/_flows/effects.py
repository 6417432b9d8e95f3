"""What a flow can ask for, and the reads every flow shares.

A flow yields one of four effects and receives its answer (``send``) or its error
(``throw``); :func:`signals_crm._drive.drive` / :func:`~signals_crm._drive.adrive` perform them:

- :class:`Call`: a method of the CRM adapter (the async driver awaits the ``a``-prefixed twin);
- :class:`LedgerOp`: a method of the ledger (the async driver awaits an
  :class:`~signals_crm.ledger.AsyncLedger`, or runs a blocking ledger in a worker thread);
- :class:`Sleep`: a backoff, performed with the driver's injected sleep;
- :class:`Collector`: pause Python's garbage collector for a bulk round, or resume it
  (``signals_crm._collector``; the engine's ``pause_gc`` option may ignore it).

No flow touches an adapter, a ledger or a clock itself: that is what lets one flow serve the
blocking and the ``async`` engine, and lets the async engine await a networked ledger.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import Any, TypeAlias, TypeVar

import attrs

from signals_crm._drive import nest
from signals_crm.core.crm import DescribeObject, FindAccounts, FindPeople, ListUsers, ReadAccounts
from signals_crm.core.retry import RetryPolicy
from signals_crm.exceptions import (
    AdapterError,
    AuthenticationError,
    CRMAPIError,
    PermissionDeniedError,
    RateLimitedError,
)
from signals_crm.ledger.base import Operation

T = TypeVar("T")

__all__ = [
    "CALL_ERRORS",
    "STOPS_A_RUN",
    "THROWN_IN",
    "Call",
    "Collector",
    "Effect",
    "Flow",
    "FlowOf",
    "LedgerOp",
    "Reader",
    "Sleep",
    "reason_of",
]


@attrs.frozen
class Call:
    """Call ``method`` of the adapter with ``args`` (the async engine adds the ``a`` prefix)."""

    method: str
    args: tuple[Any, ...] = ()


LedgerOp = Operation
"""A ledger operation (:class:`signals_crm.ledger.Operation`): ``method`` of the ledger with
``args`` and ``kwargs``; ``LedgerOp("perform", (operations,))`` runs several in one commit."""


@attrs.frozen
class Sleep:
    """Wait ``seconds`` before going on (a backoff); drivers use their injected sleep."""

    seconds: float


@attrs.frozen
class Collector:
    """Pause the cyclic garbage collector (``paused``) for a round whose objects form no
    cycles, or resume it; a driver resumes it anyway when its flow ends."""

    paused: bool


Effect: TypeAlias = Call | LedgerOp | Sleep | Collector
Flow: TypeAlias = Generator[Effect, Any, Any]
FlowOf: TypeAlias = Generator[Effect, Any, T]
"""A flow that returns a ``T``."""


def store(method: str, *args: Any, **kwargs: Any) -> Flow:
    """Perform one ledger operation and return its result (``yield from store(...)``)."""
    result = yield LedgerOp(method, args, kwargs)
    return result


CALL_ERRORS: tuple[type[Exception], ...] = (Exception,)
"""The failures a flow handles as failures of an effect: everything but ``BaseException``s
that are not ``Exception``s (a kill, ``KeyboardInterrupt``, a cancellation)."""

THROWN_IN: tuple[type[BaseException], ...] = (BaseException,)
"""What a driver throws back into the flow when performing an effect raises: everything, so
the flow unwinds through its own ``finally`` blocks (which may still yield, say to release a
claim) and the error then escapes the driver unchanged when the flow does not handle it."""

STOPS_A_RUN: tuple[type[AdapterError], ...] = (AuthenticationError, PermissionDeniedError)
"""Whole-call failures no retry can cure: they stop a run, typed, for someone to fix."""


def _answer(request: Any) -> Call:
    """Translate a core lookup into an adapter call."""
    if isinstance(request, FindPeople):
        return Call("find_people", (list(request.emails), list(request.fields)))
    if isinstance(request, FindAccounts):
        return Call("find_accounts", (list(request.domains), list(request.fields)))
    if isinstance(request, ReadAccounts):
        return Call("read_accounts", (list(request.ids), list(request.fields)))
    if isinstance(request, DescribeObject):
        return Call("describe", (request.object_name,))
    if isinstance(request, ListUsers):
        return Call("list_users", ())
    msg = f"unknown lookup {request!r}"
    raise TypeError(msg)


@attrs.frozen
class Reader:
    """Reads from the CRM, retried on transient errors (reads are always safe to repeat)."""

    retry: RetryPolicy = attrs.field(factory=RetryPolicy)
    random: Callable[[], float] = attrs.field(default=lambda: 1.0)
    lookup_size: int | None = None
    """Emails per request of the adapter's person lookup (``lookup_batch_size``): a failed
    lookup of more is read again in pieces of this size (:meth:`read_each`)."""

    def read(self, call: Call) -> Flow:
        """Yield ``call``; on a retryable error back off and try again, up to the policy."""
        attempt = 0
        while True:
            try:
                result = yield call
            except AdapterError as error:
                if not error.retryable or attempt + 1 >= self.retry.max_attempts:
                    raise
                hint = error.retry_after if isinstance(error, RateLimitedError) else None
                yield Sleep(self.retry.delay(attempt, self.random, hint))
                attempt += 1
                continue
            return result

    def read_each(
        self, method: str, items: Sequence[Any], *rest: Any, size: int | None = None
    ) -> Flow:
        """``method(items, *rest)``, one answer per item, read so that one failing request
        costs only its own items (liveness). An adapter call of many items may be many
        requests; while the CRM fails a share of its requests such a call rarely succeeds as
        a whole, however often it is retried. So a call of several items that fails
        transiently is not retried until it succeeds: it is read again in pieces, each read
        the same way down to single items, which get the policy's retries. While the call is
        larger than ``size`` (the adapter's items per request, ``lookup_batch_size``) the
        pieces are of ``size`` items, each one request, at once. A call of at most ``size``
        is tried once more (after the policy's first backoff) before its halves are read:
        halves of a read whose every step is one request (a HubSpot task reconcile: contacts,
        their associations, the tasks) each cost as many requests as the whole. A rate limit
        is waited out (``Retry-After``) instead."""
        if len(items) <= 1:
            return list((yield from self.read(Call(method, (list(items), *rest)))))
        larger = size is not None and 1 <= size < len(items)
        for attempt in range(1 if larger else 2):
            try:
                return list((yield Call(method, (list(items), *rest))))
            except AdapterError as error:
                if not error.retryable:
                    raise
                if isinstance(error, RateLimitedError):
                    return list((yield from self.read(Call(method, (list(items), *rest)))))
                if not larger and attempt == 0 and self.retry.max_attempts > 1:
                    yield Sleep(self.retry.delay(0, self.random, None))
                    continue
                break
        step = size if larger and size is not None else (len(items) + 1) // 2
        found: list[Any] = []
        for start in range(0, len(items), step):
            piece = items[start : start + step]
            found.extend((yield from self.read_each(method, piece, *rest, size=size)))
        return found

    def lookups(self, flow: Generator[Any, Any, Any]) -> Flow:
        """Run a core generator inside this flow, each lookup it yields a (retried) call; a
        person lookup of many emails is read with :meth:`read_each`."""
        return (yield from nest(flow, self._lookup))

    def _lookup(self, request: Any) -> Flow:
        if isinstance(request, FindPeople) and len(request.emails) > 1:
            return (
                yield from self.read_each(
                    "find_people",
                    list(request.emails),
                    list(request.fields),
                    size=self.lookup_size,
                )
            )
        return (yield from self.read(_answer(request)))


def reason_of(error: BaseException) -> str:
    """The text a ledger row and a report keep for ``error``."""
    if isinstance(error, CRMAPIError):
        return str(error)
    return f"{type(error).__name__}: {error}"
