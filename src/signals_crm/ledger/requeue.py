"""Sending dead letters round again: the operators' one write (console and command line).

``requeue_dead(ledger, conversation_ids, due_at)`` gives a person's "retry" its meaning:

1. Only **dead** syncs change; pending and done ones, and ids the ledger lacks, are left alone
   (another person or worker may have acted meanwhile) and are not in the returned list.
2. A requeued sync becomes **pending**, due at ``due_at``, with zero attempts (the retry cap
   counts afresh) and no lease; its last error stays until the next attempt replaces it, so
   the reason is still visible while it waits.
3. Its **failed** commands go back to planned (attempts kept, reason cleared), as
   ``Ledger.retry_failed`` does: the next run plans and sends them again. Confirmed commands
   stay confirmed (nothing is written twice); unknown ones are reconciled first as always.
4. One transaction per call: all of it lands, or nothing does.

A ledger that has its own ``requeue_dead`` method is asked to do it; the SQLite ledger is
updated through its file (``BEGIN IMMEDIATE``, like its own writes). Anything else raises
:class:`~signals_crm.exceptions.LedgerError`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from signals_crm.exceptions import LedgerError
from signals_crm.ledger.base import to_utc

__all__ = ["requeue_dead"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CHUNK = 400


def _micros(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(microseconds=1)


def _sqlite_requeue(path: str, ids: list[str], due_at: datetime, integration: str) -> list[str]:
    try:
        conn = sqlite3.connect(path, timeout=10.0, isolation_level=None)
    except sqlite3.Error as error:
        raise LedgerError(f"cannot open the ledger {path!r}: {error}") from error
    try:
        columns = {r[1] for r in conn.execute("PRAGMA table_info(due_syncs)")}
        command_columns = {r[1] for r in conn.execute("PRAGMA table_info(commands)")}
        tenant = " AND integration = ?" if "integration" in columns else ""
        command_tenant = " AND integration = ?" if "integration" in command_columns else ""
        extra: tuple[Any, ...] = (integration,) if tenant else ()
        command_extra: tuple[Any, ...] = (integration,) if command_tenant else ()
        done: list[str] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                marks = ", ".join("?" * len(chunk))
                found = [
                    r[0]
                    for r in conn.execute(
                        "SELECT conversation_id FROM due_syncs "  # noqa: S608  # marks only
                        f"WHERE state = 'dead' AND conversation_id IN ({marks}){tenant}",
                        (*chunk, *extra),
                    )
                ]
                if not found:
                    continue
                marks = ", ".join("?" * len(found))
                conn.execute(
                    "UPDATE due_syncs SET state = 'pending', due_at = ?, attempts = 0, "  # noqa: S608
                    "lease_owner = NULL, lease_until = NULL "
                    f"WHERE state = 'dead' AND conversation_id IN ({marks}){tenant}",
                    (_micros(due_at), *found, *extra),
                )
                conn.execute(
                    "UPDATE commands SET state = 'planned', reason = NULL, updated_at = ? "  # noqa: S608
                    f"WHERE state = 'failed' AND conversation_id IN ({marks}){command_tenant}",
                    (_micros(due_at), *found, *command_extra),
                )
                done.extend(found)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    except sqlite3.Error as error:
        raise LedgerError(f"requeue failed on {path!r}: {error}") from error
    finally:
        conn.close()
    return done


def requeue_dead(ledger: Any, conversation_ids: Iterable[str], due_at: datetime) -> list[str]:
    """Put the dead syncs among ``conversation_ids`` back to pending (rules: module doc)."""
    due_at = to_utc(due_at, "due_at")
    ids = list(dict.fromkeys(str(c) for c in conversation_ids))
    if not ids:
        return []
    own = getattr(ledger, "requeue_dead", None)
    if callable(own):
        return list(own(ids, due_at))
    from signals_crm.ledger.sqlite import SQLiteLedger

    if isinstance(ledger, SQLiteLedger):
        return _sqlite_requeue(ledger.path, ids, due_at, getattr(ledger, "integration", "default"))
    raise LedgerError(f"{type(ledger).__name__} cannot requeue dead letters")
