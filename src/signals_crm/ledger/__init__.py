"""The durable ledger: due syncs, command states and visitor links (rules in ``base``).

``SQLiteLedger`` is the embedded default (one file, WAL, several processes on one machine);
``PostgresLedger`` / ``AsyncPostgresLedger`` serve many workers on many machines (the
``postgres`` extra); ``MemoryLedger`` is for tests. Another store implements the
:class:`Ledger` Protocol (or, for a store awaited over a network, :class:`AsyncLedger`) and
runs the same contract tests (see ``docs/ledger.md``). :class:`ThreadedLedger` runs any
blocking ledger as an ``AsyncLedger``.

The engine's flows never hold a ledger: they yield ledger operations
(:class:`~signals_crm.ledger.Operation`) that the engine's driver performs, blocking or
awaited; a ledger never calls back into the engine.
"""

from __future__ import annotations

from signals_crm.ledger.base import (
    AsyncLedger,
    CommandRecord,
    CommandState,
    CreateInFlight,
    DueState,
    DueSync,
    FleetLedger,
    Ledger,
    LedgerStats,
    Operation,
    PersonLink,
    RunRecord,
)
from signals_crm.ledger.memory import MemoryLedger
from signals_crm.ledger.postgres import AsyncPostgresLedger, PostgresLedger
from signals_crm.ledger.sqlite import SQLiteLedger
from signals_crm.ledger.threaded import ThreadedLedger

__all__ = [
    "AsyncLedger",
    "AsyncPostgresLedger",
    "CommandRecord",
    "CommandState",
    "CreateInFlight",
    "DueState",
    "DueSync",
    "FleetLedger",
    "Ledger",
    "LedgerStats",
    "MemoryLedger",
    "Operation",
    "PersonLink",
    "PostgresLedger",
    "RunRecord",
    "SQLiteLedger",
    "ThreadedLedger",
]
