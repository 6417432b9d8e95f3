"""Why was, or wasn't, this visitor synced?

An :class:`Explanation` gathers a plan's eligibility verdict, its decisions and trace, and —
when the engine adds them — the ledger's facts (when the sync is scheduled, attempts, CRM ids,
the last error). It is a value (for programs) that reads as text (for people).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import attrs

from signals_crm.core.plan import Plan, PlanOutcome
from signals_crm.core.trace import Level, Reason

__all__ = ["Explanation", "LedgerFacts", "explain_many", "explain_plan"]


@attrs.frozen
class LedgerFacts:
    """What the ledger knows about a conversation."""

    scheduled_for: datetime | None = None
    schedule_state: str | None = None
    attempts: int = 0
    last_error: str | None = None
    command_states: Mapping[str, str] = attrs.field(factory=dict)
    crm_ids: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class Explanation:
    """The structured answer to "why was / wasn't this visitor synced"."""

    conversation_id: str
    synced: bool
    outcome: PlanOutcome
    blockers: tuple[Reason, ...]
    passes_at: datetime | None
    steps: tuple[Reason, ...]
    planned_writes: tuple[str, ...] = ()
    ledger: LedgerFacts | None = None

    @property
    def codes(self) -> tuple[str, ...]:
        """The stable codes of the blockers."""
        return tuple(b.code for b in self.blockers)

    @property
    def warnings(self) -> tuple[Reason, ...]:
        return tuple(s for s in self.steps if s.level is Level.WARNING)

    def as_text(self) -> str:
        lines = [f"Conversation {self.conversation_id}:"]
        if self.synced:
            lines.append(f"  will sync ({self.outcome.value})")
        else:
            lines.append("  not synced, because:")
            lines.extend(f"    - {b.message} [{b.code}]" for b in self.blockers)
            if self.passes_at is not None:
                lines.append(f"  it becomes eligible at {self.passes_at.isoformat()}")
        if self.synced:
            lines.append("  decisions:")
            lines.extend(f"    - {s.message}" for s in self.steps if s.level is not Level.BLOCKER)
        if self.planned_writes:
            lines.append("  writes:")
            lines.extend(f"    - {w}" for w in self.planned_writes)
        if self.ledger is not None:
            facts = self.ledger
            if facts.scheduled_for is not None:
                lines.append(
                    f"  scheduled for {facts.scheduled_for.isoformat()}"
                    f" ({facts.schedule_state or 'pending'})"
                )
            if facts.attempts:
                lines.append(f"  attempts: {facts.attempts}")
            for key, state in sorted(facts.command_states.items()):
                crm = facts.crm_ids.get(key)
                lines.append(f"  {key}: {state}" + (f" (CRM id {crm})" if crm else ""))
            if facts.last_error:
                lines.append(f"  last error: {facts.last_error}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.as_text()


def _describe_writes(plan: Plan) -> tuple[str, ...]:
    out: list[str] = []
    for command in plan.commands:
        detail = ""
        if command.fields:
            detail = " " + ", ".join(f"{k}={v!r}" for k, v in sorted(command.fields.items()))
        if command.owner_id:
            detail += f" owner={command.owner_id}"
        out.append(f"{command.kind.value} [{command.key}]{detail}")
    return tuple(out)


def explain_plan(plan: Plan, ledger: LedgerFacts | None = None) -> Explanation:
    """Turn a plan (and optionally ledger facts) into an explanation."""
    return Explanation(
        conversation_id=plan.conversation_id,
        synced=plan.synced,
        outcome=plan.outcome,
        blockers=plan.eligibility.blockers,
        passes_at=plan.eligibility.passes_at,
        steps=plan.trace,
        planned_writes=_describe_writes(plan),
        ledger=ledger,
    )


def explain_many(plans: Sequence[Plan]) -> tuple[Explanation, ...]:
    return tuple(explain_plan(p) for p in plans)
