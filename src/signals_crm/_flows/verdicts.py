"""What a failed write means: the error-classification table of the write path (pure).

Errors are classified once, here; :func:`signals_crm._flows.batch.write_phase` only acts on
the verdict. A whole call's failure is looked up in :data:`WHOLE_CALL`, one record's failure
inside an answered call in :data:`PER_RECORD`; the first row whose test holds gives the verdict,
which may depend on whether the call carried one record or several (then a broken call is
split or isolated to find the record it is about). The rows, in order:

=================================================  ==============  ================
whole call failed with                             one record      several records
=================================================  ==============  ================
authentication or permission failure               STOP            STOP
429 / rate limited with ``Retry-After``            RETRY           RETRY
the CRM's daily limit (rate limited, no retry)     DAILY_LIMIT     DAILY_LIMIT
transport error after the request went out         UNKNOWN         UNKNOWN
transport error before it went out                 RETRY           RETRY
a retryable CRM error (5xx, lock contention)       UNKNOWN         UNKNOWN
a 4xx the CRM answered for the whole call          FAILED          SPLIT
any other adapter error                            UNKNOWN         ISOLATE
anything else (a malformed answer, a bug)          FAILED          ISOLATE
=================================================  ==============  ================

==========================================  =========
one record failed with                      verdict
==========================================  =========
permission denied (an inactive owner)       ADMIN
a retryable error (lock contention)         RETRY
anything else (validation, bad field)       FAILED
==========================================  =========
"""

from __future__ import annotations

import enum
from collections.abc import Callable

import attrs

from signals_crm.exceptions import (
    AdapterError,
    AuthenticationError,
    CRMAPIError,
    PermissionDeniedError,
    RateLimitedError,
    TransportError,
)

__all__ = ["PER_RECORD", "WHOLE_CALL", "Row", "Verdict", "classify"]


class Verdict(enum.Enum):
    """What one failure of a write means: the pure half of the write path."""

    CONFIRMED = "confirmed"  # the record is there
    DUPLICATE = "duplicate"  # a match on the record the CRM named (rule 5)
    RETRY = "retry"  # nothing landed: send again after a backoff
    UNKNOWN = "unknown"  # it may have landed: settle, then reconcile
    SPLIT = "split"  # the CRM refused the whole call: send halves to find the record
    ISOLATE = "isolate"  # the call broke, perhaps midway: settle, then send alone
    ADMIN = "admin"  # needs an administrator: keep it, report once, try later
    FAILED = "failed"  # refused for good: a dead letter with the CRM's reason
    STOP = "stop"  # the run cannot go on (authentication, permission)
    DAILY_LIMIT = "daily_limit"  # the CRM's daily limit: nothing sent, the syncs stay due


@attrs.frozen
class Row:
    """One row of a table: when ``test`` holds, the verdict for one record / several."""

    test: Callable[[BaseException], bool]
    one: Verdict
    several: Verdict


def _is(kind: type[BaseException] | tuple[type[BaseException], ...]) -> Callable[..., bool]:
    return lambda error: isinstance(error, kind)


def _retryable(error: BaseException) -> bool:
    return isinstance(error, AdapterError) and error.retryable


def _client_error(error: BaseException) -> bool:
    status = error.status_code if isinstance(error, CRMAPIError) else None
    return status is not None and 400 <= status < 500


_V = Verdict
WHOLE_CALL: tuple[Row, ...] = (
    Row(_is((AuthenticationError, PermissionDeniedError)), _V.STOP, _V.STOP),
    Row(lambda e: isinstance(e, RateLimitedError) and e.retryable, _V.RETRY, _V.RETRY),
    Row(_is(RateLimitedError), _V.DAILY_LIMIT, _V.DAILY_LIMIT),
    Row(lambda e: isinstance(e, TransportError) and e.maybe_sent, _V.UNKNOWN, _V.UNKNOWN),
    Row(_is(TransportError), _V.RETRY, _V.RETRY),
    Row(_retryable, _V.UNKNOWN, _V.UNKNOWN),
    Row(_client_error, _V.FAILED, _V.SPLIT),
    Row(_is(AdapterError), _V.UNKNOWN, _V.ISOLATE),
    Row(lambda _: True, _V.FAILED, _V.ISOLATE),
)
"""A whole write call failed (the module's first table)."""

PER_RECORD: tuple[Row, ...] = (
    Row(_is(PermissionDeniedError), _V.ADMIN, _V.ADMIN),
    Row(_retryable, _V.RETRY, _V.RETRY),
    Row(lambda _: True, _V.FAILED, _V.FAILED),
)
"""One record of an answered call failed (the module's second table)."""


def classify(error: BaseException, *, records: int, per_record: bool) -> Verdict:
    """The verdict on ``error`` for a call of ``records`` records (or one record's error)."""
    table = PER_RECORD if per_record else WHOLE_CALL
    row = next(r for r in table if r.test(error))
    return row.one if records <= 1 else row.several
