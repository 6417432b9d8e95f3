"""Sending dead letters round again: the operators' one write (console and command line).

``requeue_dead(ledger, conversation_ids, due_at)`` gives a person's "retry" its meaning, by the
ledger's own ``Ledger.requeue_dead`` (one transaction):

1. Only **dead** syncs change; pending and done ones, and ids the ledger lacks, are left alone
   (another person or worker may have acted meanwhile) and are not in the returned list.
2. A requeued sync becomes **pending**, due at ``due_at``, with zero attempts (the retry cap
   counts afresh) and no lease; its last error stays until the next attempt replaces it.
3. Its **failed** commands go back to planned: the next run plans and sends them again.
   Confirmed commands stay confirmed (nothing is written twice).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from signals_crm.exceptions import LedgerError
from signals_crm.ledger.base import to_utc

__all__ = ["requeue_dead"]


def requeue_dead(ledger: Any, conversation_ids: Iterable[str], due_at: datetime) -> list[str]:
    """Put the dead syncs among ``conversation_ids`` back to pending (rules: module doc)."""
    due_at = to_utc(due_at, "due_at")
    ids = list(dict.fromkeys(str(c) for c in conversation_ids))
    if not ids:
        return []
    own = getattr(ledger, "requeue_dead", None)
    if not callable(own):
        raise LedgerError(f"{type(ledger).__name__} cannot requeue dead letters")
    return list(own(ids, due_at))
