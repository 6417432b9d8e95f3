"""How transient failures are retried: a policy of numbers, no clock and no randomness.

1. Within a run, the n-th retry of a call waits ``min(max_delay, base_delay * 2**n)`` seconds,
   scaled by a jitter factor drawn in ``[1 - jitter, 1]``; when the CRM said how long to wait
   (``Retry-After``), exactly that.
2. After ``max_attempts`` tries the commands stay PLANNED and the conversation is rescheduled
   ``reschedule_after`` seconds later.
3. After ``max_reschedules`` such runs the conversation is dead-lettered with its last error:
   nothing is retried forever.
4. A batch whose read or reconcile failed as a whole is rescheduled after
   :meth:`RetryPolicy.reschedule_delay` (doubling per run, up to 32 times
   ``reschedule_after``), counting the run the same way.

The random numbers for the jitter come in as an argument (a callable returning ``[0, 1)``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from signals_crm.exceptions import ConfigurationError, Problem

__all__ = ["RetryPolicy"]


def _positive(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise ConfigurationError([Problem(f"retry.{attribute.name}", "must be positive")])


def _non_negative(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value < 0:
        raise ConfigurationError([Problem(f"retry.{attribute.name}", "must not be negative")])


def _share(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not 0 <= value <= 1:
        raise ConfigurationError([Problem(f"retry.{attribute.name}", "must be within [0, 1]")])


@attrs.frozen
class RetryPolicy:
    """How transient failures are retried (the module's rules 1-4)."""

    max_attempts: int = attrs.field(default=4, validator=_positive)
    base_delay: float = attrs.field(default=0.5, validator=_non_negative)
    max_delay: float = attrs.field(default=30.0, validator=_non_negative)
    jitter: float = attrs.field(default=0.5, validator=_share)
    reschedule_after: float = attrs.field(default=300.0, validator=_positive)
    max_reschedules: int = attrs.field(default=24, validator=_positive)

    def delay(self, attempt: int, random: Callable[[], float], hint: float | None = None) -> float:
        """Seconds to wait before retry ``attempt`` (rule 1); ``hint`` is the CRM's own."""
        if hint is not None:
            return max(0.0, hint)
        raw = min(self.max_delay, self.base_delay * (2.0**attempt))
        return raw * (1.0 - self.jitter * random())

    def reschedule_delay(self, runs: int, random: Callable[[], float]) -> float:
        """Seconds until a batch that failed ``runs`` runs before is tried again (rule 4)."""
        raw = self.reschedule_after * (2.0 ** min(max(runs, 0), 5))
        return raw * (1.0 - self.jitter * random() / 2)
