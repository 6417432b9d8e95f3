"""What a sync reports: per-conversation outcomes, run reports and dry runs.

- :class:`OutcomeKind` and :class:`ConversationOutcome`: what became of one conversation.
- :class:`SyncReport`: a run (``run_due``, ``backfill``): outcomes, totals, cost, admin issues.
- :class:`DryRun`: the exact writes a sync would make, with nothing written.

These are values the engine returns; they were importable from ``signals_crm.engine`` and
``signals_crm._flows`` before, and still are. Each has a stable JSON form, ``as_dict()``,
described by a shipped JSON Schema (:func:`signals_crm.schemas.json_schema`: ``sync_report``,
``dry_run``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from signals_crm.core.explain import (
    SCHEMA_VERSION,
    Explanation,
    explain_plan,
    json_value,
    reason_dict,
)
from signals_crm.core.plan import Plan, PlanOutcome
from signals_crm.core.trace import Reason
from signals_crm.exceptions import PlanningError

__all__ = ["ConversationOutcome", "DryRun", "OutcomeKind", "SyncReport"]


class OutcomeKind(enum.Enum):
    """What became of one conversation in a run."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    ATTACHED_TO_CONTACT = "attached_to_contact"
    SKIPPED = "skipped"
    FAILED = "failed"
    RETRY = "retry"


_FROM_PLAN = {
    PlanOutcome.CREATE: OutcomeKind.CREATED,
    PlanOutcome.UPDATE: OutcomeKind.UPDATED,
    PlanOutcome.UNCHANGED: OutcomeKind.UNCHANGED,
    PlanOutcome.ATTACH_CONTACT: OutcomeKind.ATTACHED_TO_CONTACT,
    PlanOutcome.SKIPPED: OutcomeKind.SKIPPED,
}


@attrs.frozen(weakref_slot=False)  # no __weakref__ slot: _build.builder's quick builder
class ConversationOutcome:
    """One conversation's result: what happened, the person record, the reasons, the error.

    ``retry_at`` is set on a RETRY that waits for something with a known end (an ambiguous
    write settling): the sync is rescheduled to then, without counting a failed attempt.
    """

    conversation_id: str
    kind: OutcomeKind
    person_id: str | None = None
    reasons: tuple[Reason, ...] = ()
    error: str | None = None
    needs_admin: bool = False
    plan: Plan | None = None
    retry_at: datetime | None = None

    @property
    def blockers(self) -> tuple[str, ...]:
        return self.plan.eligibility.codes if self.plan is not None else ()

    def as_dict(self) -> dict[str, Any]:
        """This outcome in the JSON form of ``sync_report``'s ``outcomes``."""
        return {
            "conversation_id": self.conversation_id,
            "kind": self.kind.value,
            "person_id": self.person_id,
            "error": self.error,
            "needs_admin": self.needs_admin,
            "retry_at": json_value(self.retry_at),
            "blockers": list(self.blockers),
            "reasons": [reason_dict(r) for r in self.reasons],
        }


@attrs.frozen
class SyncReport:
    """The result of a run: outcomes, totals per kind, and what it cost.

    ``outcomes`` holds one outcome per conversation for :meth:`Integration.run_due`; a
    :meth:`Integration.backfill` keeps only those needing attention (failed, retry) so its
    memory stays flat, and streams every outcome to its ``on_outcome`` callback. ``totals``
    always counts every conversation by kind. ``adapter_calls`` counts adapter method calls (an
    adapter may split one into several HTTP requests past its batch size). ``budget_exhausted``
    says the run stopped early to stay under the configured share of the CRM's API limit; the
    rest stays due. ``admin_issues`` lists, once each, errors that need an administrator.
    ``stopped`` says why a run synced nothing it was due, when the CRM failed it before any
    batch (``run_due``'s preflight reads failing after their retries): every due sync stays due,
    no attempt counted, and the next run tries again; ``None`` otherwise.
    """

    outcomes: tuple[ConversationOutcome, ...] = ()
    adapter_calls: int = 0
    budget_exhausted: bool = False
    admin_issues: tuple[str, ...] = ()
    totals: Mapping[str, int] = attrs.field(factory=dict)
    stopped: str | None = None

    @classmethod
    def of(cls, outcomes: Sequence[ConversationOutcome], calls: int, exhausted: bool) -> SyncReport:
        """A report holding every outcome."""
        tally = _Tally()
        for outcome in outcomes:
            tally.add(outcome, keep_all=True)
        return tally.report(calls, exhausted)

    def count(self, kind: OutcomeKind) -> int:
        return self.totals.get(kind.value, 0)

    @property
    def total(self) -> int:
        return sum(self.totals.values())

    @property
    def counts(self) -> dict[str, int]:
        return {k.value: self.count(k) for k in OutcomeKind if self.count(k)}

    def outcome(self, conversation_id: str) -> ConversationOutcome:
        for o in self.outcomes:
            if o.conversation_id == conversation_id:
                return o
        raise PlanningError(f"conversation {conversation_id!r} is not in this report")

    def as_dict(self) -> dict[str, Any]:
        """The stable JSON form (schema ``sync_report``, version 1)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "total": self.total,
            "totals": {kind: n for kind, n in self.totals.items() if n},
            "adapter_calls": self.adapter_calls,
            "budget_exhausted": self.budget_exhausted,
            "admin_issues": list(self.admin_issues),
            "outcomes": [o.as_dict() for o in self.outcomes],
            "stopped": self.stopped,
        }

    def as_text(self) -> str:
        lines = [f"{self.total} conversation(s), {self.adapter_calls} adapter call(s)"]
        lines.extend(f"  {kind}: {n}" for kind, n in self.counts.items())
        for o in self.outcomes:
            extra = f" ({o.person_id})" if o.person_id else ""
            why = f" - {o.error}" if o.error else ""
            if o.kind is OutcomeKind.SKIPPED and o.plan is not None:
                why = " - " + ", ".join(o.plan.eligibility.codes)
            lines.append(f"  {o.conversation_id}: {o.kind.value}{extra}{why}")
        if self.budget_exhausted:
            lines.append("  stopped early: the API budget share is used up")
        if self.stopped is not None:
            lines.append(f"  stopped before syncing: {self.stopped} (all stays due)")
        lines.extend(f"  needs an administrator: {issue}" for issue in self.admin_issues)
        return "\n".join(lines)


@attrs.define
class _Tally:
    """Accumulates outcomes into a report; keeps few when asked to stream."""

    kept: list[ConversationOutcome] = attrs.field(factory=list)
    totals: dict[str, int] = attrs.field(factory=dict)
    admin: dict[str, None] = attrs.field(factory=dict)

    def add(self, outcome: ConversationOutcome, *, keep_all: bool) -> None:
        kind = outcome.kind._value_  # the enum's value, without the property's lookup
        self.totals[kind] = self.totals.get(kind, 0) + 1
        if outcome.needs_admin and outcome.error:
            self.admin.setdefault(outcome.error, None)
        if keep_all:
            self.kept.append(outcome)
        elif outcome.kind in (OutcomeKind.FAILED, OutcomeKind.RETRY):
            self.kept.append(attrs.evolve(outcome, plan=None, reasons=()))

    def add_streamed(self, outcomes: Iterable[ConversationOutcome]) -> None:
        """``add(outcome, keep_all=False)`` of each of ``outcomes``, in order."""
        totals, admin, kept = self.totals, self.admin, self.kept
        failed, retry = OutcomeKind.FAILED, OutcomeKind.RETRY
        for outcome in outcomes:
            kind = outcome.kind
            value = kind._value_
            totals[value] = totals.get(value, 0) + 1
            if outcome.needs_admin and outcome.error:
                admin.setdefault(outcome.error, None)
            if kind is failed or kind is retry:
                kept.append(attrs.evolve(outcome, plan=None, reasons=()))

    @property
    def count(self) -> int:
        return sum(self.totals.values())

    def report(self, calls: int, exhausted: bool) -> SyncReport:
        return SyncReport(tuple(self.kept), calls, exhausted, tuple(self.admin), dict(self.totals))


@attrs.frozen
class DryRun:
    """What a sync would write, field by field, with nothing written.

    Each explanation's ``writes`` list every write with every field it sets: for an update,
    the CRM's value now (``old``) and the value written (``new``).
    """

    plans: tuple[Plan, ...]
    adapter_calls: int = 0

    @property
    def explanations(self) -> tuple[Explanation, ...]:
        return tuple(explain_plan(p) for p in self.plans)

    def as_dict(self) -> dict[str, Any]:
        """The stable JSON form (schema ``dry_run``, version 1): one explanation per
        conversation, in input order."""
        return {
            "schema_version": SCHEMA_VERSION,
            "adapter_calls": self.adapter_calls,
            "explanations": [e.as_dict() for e in self.explanations],
        }

    def as_text(self) -> str:
        return "\n\n".join(e.as_text() for e in self.explanations)
