"""The engine's work, written once as sans-IO flows for the blocking and ``async`` engines.

The data flows one way (``docs/concepts.md`` draws it)::

    host ──► engine (Integration / AsyncIntegration: drivers only)
               └─► flows (this package: operations → batch → verdicts)
                     └─► core (pure rules) ──► plan (commands)
                           └─► effects the driver performs: adapter ──► CRM, ledger, sleep

A *flow* is a generator that yields effects (:mod:`.effects`) and receives their answers.
Modules:

- :mod:`.effects`: the four effects (an adapter ``Call``, a ``LedgerOp``, a ``Sleep``, a
  ``Collector`` pause) and the retried CRM reads every flow shares;
- :mod:`.operations`: one flow per public operation (``run_due``, manual sync, backfill,
  explain, preflight, ...), holding the engine's state that is not IO;
- :mod:`.batch`: one batch synced (reconcile, plan, write in dependency order);
- :mod:`.verdicts`: what a failed write means, as a table.
"""

from __future__ import annotations

from signals_crm._flows.batch import (
    BatchResult,
    account_owners,
    held_emails,
    plan_batch,
    preflight,
    repair_text,
    sync_batch,
)
from signals_crm._flows.effects import (
    CALL_ERRORS,
    STOPS_A_RUN,
    Call,
    Collector,
    Effect,
    Flow,
    LedgerOp,
    Reader,
    Sleep,
    reason_of,
)
from signals_crm._flows.verdicts import Verdict, classify
from signals_crm.core.retry import RetryPolicy
from signals_crm.reports import ConversationOutcome, OutcomeKind

__all__ = [
    "CALL_ERRORS",
    "STOPS_A_RUN",
    "BatchResult",
    "Call",
    "Collector",
    "ConversationOutcome",
    "Effect",
    "Flow",
    "LedgerOp",
    "OutcomeKind",
    "Reader",
    "RetryPolicy",
    "Sleep",
    "Verdict",
    "account_owners",
    "classify",
    "held_emails",
    "plan_batch",
    "preflight",
    "reason_of",
    "repair_text",
    "sync_batch",
]
