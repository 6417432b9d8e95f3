"""Why was, or wasn't, this visitor synced?

An :class:`Explanation` gathers a plan's eligibility verdict, its decisions and trace, and —
when the engine adds them — the ledger's facts (when the sync is scheduled, attempts, CRM ids,
when it was synced, the last error) and a preview of what a manual sync would do now. It is a
value (for programs, with a stable JSON form: :meth:`Explanation.as_dict`, schema
``signals_crm/schemas/explanation.schema.json``) that reads as text (for people).

The status rule (:class:`ExplainStatus`), first that holds:

1. ``synced``: the automatic sync finished having written (created, updated, unchanged,
   attached to a Contact), or the ledger holds confirmed writes and no scheduled sync (a
   backfill or a manual sync). The answer says when, with which CRM ids, and what a manual
   sync would do now; it never plans the automatic sync again.
2. ``failed``: the sync was dead-lettered (a write the CRM refused for good, or retries
   exhausted).
3. ``integration_off``: the integration is switched off, or the sync was skipped because it
   was off (conversations closed while it is off are never scheduled).
4. ``skipped``: the automatic sync ran and skipped the conversation (criteria, email). A
   conversation skipped for its criteria is re-armed when it is delivered again.
5. ``due``: it passes every condition now; the next ``run_due`` syncs it.
6. ``waiting``: only time-bound conditions fail (the delay); ``passes_at`` says when.
7. ``blocked``: a condition fails that time alone will not fix.
8. ``unknown``: the ledger knows nothing of the conversation and none was given.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import attrs

from signals_crm.core.config import SyncConfig
from signals_crm.core.crm import Capabilities
from signals_crm.core.mapping import mapping_set_for
from signals_crm.core.model import Conversation, FieldValue, is_valid_email
from signals_crm.core.plan import Command, CommandKind, Plan, PlanOutcome, SyncMode
from signals_crm.core.trace import Level, Reason, blocker

__all__ = [
    "SCHEMA_VERSION",
    "ExplainStatus",
    "Explanation",
    "FieldChange",
    "LedgerFacts",
    "ManualPreview",
    "PlannedWrite",
    "describe_writes",
    "explain_many",
    "explain_plan",
    "explain_unplanned",
    "json_value",
    "offline_manual_preview",
    "reason_dict",
]

SCHEMA_VERSION = 1
"""The version of the JSON form (:meth:`Explanation.as_dict`); bumped only on a breaking
change (a key removed or its meaning changed). New keys may appear within a version."""

SYNCED_OUTCOMES = frozenset({"created", "updated", "unchanged", "attached_to_contact"})
"""Ledger outcomes of an automatic sync that wrote (or had nothing to change): final."""


class ExplainStatus(enum.Enum):
    """Where a conversation's sync stands (the module's status rule)."""

    SYNCED = "synced"
    FAILED = "failed"
    INTEGRATION_OFF = "integration_off"
    SKIPPED = "skipped"
    DUE = "due"
    WAITING = "waiting"
    BLOCKED = "blocked"
    UNKNOWN = "unknown"


def json_value(value: object) -> Any:
    """A field value in its JSON form: dates and times as ISO 8601 text, the rest as is."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def reason_dict(reason: Reason) -> dict[str, Any]:
    """A reason in its JSON form."""
    return {
        "code": reason.code,
        "message": reason.message,
        "level": reason.level.value,
        "passes_at": json_value(reason.passes_at),
        "data": {str(k): _json_data(v) for k, v in reason.data.items()},
    }


def _json_data(value: object) -> Any:
    if isinstance(value, frozenset | set):  # (sorted: a set has no order to keep)
        return sorted((json_value(v) for v in value), key=str)
    if isinstance(value, tuple | list):
        return [json_value(v) for v in value]
    return json_value(value)


@attrs.frozen
class LedgerFacts:
    """What the ledger knows about a conversation.

    ``schedule_state`` is ``pending``, ``done`` or ``dead`` (``None``: never scheduled) and
    ``outcome`` the finished sync's outcome (``created``, ``skipped:criteria_not_met``, ...).
    ``synced_at`` is when the last write was confirmed; ``person_id`` the CRM person record the
    visitor was synced to.
    """

    scheduled_for: datetime | None = None
    schedule_state: str | None = None
    attempts: int = 0
    last_error: str | None = None
    command_states: Mapping[str, str] = attrs.field(factory=dict)
    crm_ids: Mapping[str, str] = attrs.field(factory=dict)
    outcome: str | None = None
    synced_at: datetime | None = None
    person_id: str | None = None

    @property
    def has_writes(self) -> bool:
        """Whether any write of this conversation is confirmed."""
        return any(state == "confirmed" for state in self.command_states.values())

    @property
    def synced(self) -> bool:
        """Rule 1: the sync wrote and is final."""
        if self.schedule_state == "done":
            return self.outcome in SYNCED_OUTCOMES
        return self.schedule_state is None and self.has_writes

    def as_dict(self) -> dict[str, Any]:
        return {
            "scheduled_for": json_value(self.scheduled_for),
            "schedule_state": self.schedule_state,
            "outcome": self.outcome,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "synced_at": json_value(self.synced_at),
            "person_id": self.person_id,
            "commands": [
                {"key": key, "state": state, "crm_id": self.crm_ids.get(key)}
                for key, state in sorted(self.command_states.items())
            ],
        }


@attrs.frozen
class FieldChange:
    """One field a write sets: its value in the CRM now (``old``; ``None`` when empty or
    unknown, and always for a create) and the value written (``new``)."""

    field: str
    old: FieldValue
    new: FieldValue

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "old": json_value(self.old), "new": json_value(self.new)}

    def as_text(self) -> str:
        if self.old is None:
            return f"{self.field}={self.new!r}"
        return f"{self.field}: {self.old!r} → {self.new!r}"


@attrs.frozen
class PlannedWrite:
    """One write of a plan, as data: what it writes, on which record, and why it is keyed so.

    ``person_id`` is the existing record it acts on, or ``None`` with ``pending`` naming the
    create whose record it will be. ``changes`` lists every field written (old → new for an
    update). A task names its ``activity`` key, ``subject`` and ``owner_id``; a membership its
    ``campaign_id``.
    """

    key: str
    kind: CommandKind
    person_kind: str
    person_id: str | None = None
    pending: str | None = None
    changes: tuple[FieldChange, ...] = ()
    owner_id: str | None = None
    campaign_id: str | None = None
    activity: str | None = None
    subject: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "kind": self.kind.value,
            "person_kind": self.person_kind,
            "person_id": self.person_id,
            "pending": self.pending,
            "changes": [c.as_dict() for c in self.changes],
            "owner_id": self.owner_id,
            "campaign_id": self.campaign_id,
            "activity": self.activity,
            "subject": self.subject,
        }

    def as_text(self) -> str:
        detail = ""
        if self.changes:
            detail = " " + ", ".join(c.as_text() for c in self.changes)
        if self.subject is not None:
            detail += f" {self.subject!r}"
        if self.owner_id:
            detail += f" owner={self.owner_id}"
        if self.campaign_id:
            detail += f" campaign={self.campaign_id}"
        return f"{self.kind.value} [{self.key}]{detail}"


def _current_lookup(current: Mapping[str, FieldValue]) -> dict[str, FieldValue]:
    return {k.lower(): v for k, v in current.items()}


def _write_of(command: Command, current: Mapping[str, FieldValue]) -> PlannedWrite:
    kind = command.kind
    changes: tuple[FieldChange, ...] = ()
    if command.fields:
        lowered = _current_lookup(current) if kind is CommandKind.UPDATE_PERSON else {}
        changes = tuple(
            FieldChange(name, lowered.get(name.lower()), value)
            for name, value in sorted(command.fields.items())
        )
    activity = command.activity
    return PlannedWrite(
        key=command.key,
        kind=kind,
        person_kind=command.person.kind.value,
        person_id=command.person.id,
        pending=command.person.pending,
        changes=changes,
        owner_id=command.owner_id,
        campaign_id=command.campaign_id,
        activity=activity.key if activity is not None else None,
        subject=activity.subject if activity is not None else None,
    )


def describe_writes(plan: Plan) -> tuple[PlannedWrite, ...]:
    """Every write of ``plan`` as data; an update shows each field's old and new value."""
    current: Mapping[str, FieldValue] = {}
    if plan.match is not None and plan.match.record is not None:
        current = plan.match.record.fields
    return tuple(_write_of(c, current) for c in plan.commands)


@attrs.frozen
class ManualPreview:
    """What a manual sync of the visitor would do now (criteria and delay ignored, no tasks).

    ``outcome`` and ``writes`` come from a manual plan against the CRM; without a CRM read
    (``looked_up`` false) only ``summary`` is known.
    """

    summary: str
    looked_up: bool = False
    outcome: PlanOutcome | None = None
    writes: tuple[PlannedWrite, ...] = ()
    blockers: tuple[Reason, ...] = ()
    steps: tuple[Reason, ...] = ()

    @classmethod
    def of(cls, plan: Plan) -> ManualPreview:
        writes = describe_writes(plan)
        if plan.blockers:
            summary = "a manual sync is refused: " + "; ".join(b.message for b in plan.blockers)
        elif not writes:
            summary = f"a manual sync would write nothing ({plan.outcome.value})"
        else:
            summary = f"a manual sync would {plan.outcome.value}: " + "; ".join(
                w.as_text() for w in writes
            )
        return cls(
            summary,
            looked_up=True,
            outcome=plan.outcome,
            writes=writes,
            blockers=plan.blockers,
            steps=plan.trace,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "looked_up": self.looked_up,
            "outcome": self.outcome.value if self.outcome is not None else None,
            "writes": [w.as_dict() for w in self.writes],
            "blockers": [reason_dict(b) for b in self.blockers],
            "steps": [reason_dict(s) for s in self.steps],
        }


@attrs.frozen
class Explanation:
    """The structured answer to "why was / wasn't this visitor synced".

    ``status`` is where the sync stands (the module's rule); ``would_sync`` whether the plan
    shown (``outcome``, ``writes``) passes now. For a synced conversation no automatic plan is
    shown: ``manual`` says what a manual sync would do instead.
    """

    conversation_id: str
    status: ExplainStatus
    would_sync: bool
    outcome: PlanOutcome
    blockers: tuple[Reason, ...]
    passes_at: datetime | None
    steps: tuple[Reason, ...]
    writes: tuple[PlannedWrite, ...] = ()
    ledger: LedgerFacts | None = None
    manual: ManualPreview | None = None
    mode: SyncMode = SyncMode.AUTOMATIC

    @property
    def synced(self) -> bool:
        """Whether the conversation was synced already (status ``synced``)."""
        return self.status is ExplainStatus.SYNCED

    @property
    def codes(self) -> tuple[str, ...]:
        """The stable codes of the blockers."""
        return tuple(b.code for b in self.blockers)

    @property
    def warnings(self) -> tuple[Reason, ...]:
        return tuple(s for s in self.steps if s.level is Level.WARNING)

    @property
    def planned_writes(self) -> tuple[str, ...]:
        """The writes, one line of text each."""
        return tuple(w.as_text() for w in self.writes)

    def as_dict(self) -> dict[str, Any]:
        """The stable JSON form (``schemas/explanation.schema.json``, version
        :data:`SCHEMA_VERSION`): plain dicts, lists, strings, numbers, booleans and nulls."""
        return {
            "schema_version": SCHEMA_VERSION,
            "conversation_id": self.conversation_id,
            "status": self.status.value,
            "mode": self.mode.value,
            "would_sync": self.would_sync,
            "outcome": self.outcome.value,
            "blockers": [reason_dict(b) for b in self.blockers],
            "passes_at": json_value(self.passes_at),
            "steps": [reason_dict(s) for s in self.steps],
            "writes": [w.as_dict() for w in self.writes],
            "ledger": self.ledger.as_dict() if self.ledger is not None else None,
            "manual": self.manual.as_dict() if self.manual is not None else None,
        }

    def as_text(self) -> str:
        lines = [f"Conversation {self.conversation_id}: {self.status.value}"]
        facts = self.ledger
        status = self.status
        if status is ExplainStatus.SYNCED and facts is not None:
            when = f" at {facts.synced_at.isoformat()}" if facts.synced_at else ""
            what = f" ({facts.outcome})" if facts.outcome else ""
            lines.append(f"  synced{what}{when}")
            if facts.person_id:
                lines.append(f"  the visitor's CRM record: {facts.person_id}")
        elif self.would_sync:
            lines.append(f"  will sync ({self.outcome.value})")
        elif self.blockers:
            lines.append("  not synced, because:")
            lines.extend(f"    - {b.message} [{b.code}]" for b in self.blockers)
            if self.passes_at is not None:
                lines.append(f"  it becomes eligible at {self.passes_at.isoformat()}")
        if self.would_sync:
            lines.append("  decisions:")
            lines.extend(f"    - {s.message}" for s in self.steps if s.level is not Level.BLOCKER)
        if self.writes:
            lines.append("  writes:")
            lines.extend(f"    - {w}" for w in self.planned_writes)
        if facts is not None:
            lines.extend(_ledger_lines(facts))
        if self.manual is not None:
            lines.append(f"  now: {self.manual.summary}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.as_text()


def _ledger_lines(facts: LedgerFacts) -> list[str]:
    lines: list[str] = []
    if facts.scheduled_for is not None:
        state = facts.outcome or facts.schedule_state or "pending"
        lines.append(f"  scheduled for {facts.scheduled_for.isoformat()} ({state})")
    if facts.attempts:
        lines.append(f"  attempts: {facts.attempts}")
    for key, state in sorted(facts.command_states.items()):
        crm = facts.crm_ids.get(key)
        lines.append(f"  {key}: {state}" + (f" (CRM id {crm})" if crm else ""))
    if facts.last_error:
        lines.append(f"  last error: {facts.last_error}")
    return lines


def _status(
    would_sync: bool,
    blockers: Sequence[Reason],
    passes_at: datetime | None,
    facts: LedgerFacts | None,
) -> ExplainStatus:
    codes = {b.code for b in blockers}
    if facts is not None:
        if facts.synced:
            return ExplainStatus.SYNCED
        if facts.schedule_state == "dead":
            return ExplainStatus.FAILED
        outcome = facts.outcome or ""
        if outcome == "skipped:integration_disabled" or "integration_disabled" in codes:
            return ExplainStatus.INTEGRATION_OFF
        if facts.schedule_state == "done" and outcome.startswith("skipped"):
            return ExplainStatus.SKIPPED
    elif "integration_disabled" in codes:
        return ExplainStatus.INTEGRATION_OFF
    if would_sync:
        return ExplainStatus.DUE
    return ExplainStatus.WAITING if passes_at is not None else ExplainStatus.BLOCKED


def explain_plan(
    plan: Plan, ledger: LedgerFacts | None = None, *, manual: ManualPreview | None = None
) -> Explanation:
    """Turn a plan (and optionally ledger facts and a manual preview) into an explanation.

    When the ledger says the conversation was synced, the plan's writes are not shown: the
    automatic sync is final, and ``manual`` says what a manual sync would do now.
    """
    eligibility = plan.eligibility
    status = _status(plan.synced, eligibility.blockers, eligibility.passes_at, ledger)
    if status is ExplainStatus.SYNCED:
        return Explanation(
            conversation_id=plan.conversation_id,
            status=status,
            would_sync=False,
            outcome=plan.outcome,
            blockers=(),
            passes_at=None,
            steps=(),
            writes=(),
            ledger=ledger,
            manual=manual,
            mode=plan.mode,
        )
    return Explanation(
        conversation_id=plan.conversation_id,
        status=status,
        would_sync=plan.synced,
        outcome=plan.outcome,
        blockers=eligibility.blockers,
        passes_at=eligibility.passes_at,
        steps=plan.trace,
        writes=describe_writes(plan),
        ledger=ledger,
        manual=manual,
        mode=plan.mode,
    )


_OFF = blocker(
    "integration_disabled",
    "the integration is switched off: a conversation closed while it is off is never scheduled",
)
_NOT_SCHEDULED = blocker(
    "not_scheduled",
    "the ledger holds no sync for this conversation: it was closed while the integration was "
    "off, or never delivered (pass the Conversation to explain it, or backfill it)",
)


def explain_unplanned(
    conversation_id: str, *, enabled: bool, ledger: LedgerFacts | None = None
) -> Explanation:
    """The answer for a conversation known only by its id that the ledger never scheduled:
    synced (a backfill's or manual sync's confirmed writes), ``integration_off``, or
    ``unknown``. Nothing is planned: the conversation itself is not known."""
    blockers: tuple[Reason, ...] = ()
    if ledger is not None and ledger.has_writes:
        status = ExplainStatus.SYNCED
    elif not enabled:
        status, blockers = ExplainStatus.INTEGRATION_OFF, (_OFF,)
    else:
        status, blockers = ExplainStatus.UNKNOWN, (_NOT_SCHEDULED,)
    manual = None
    if status is ExplainStatus.SYNCED:
        manual = ManualPreview("pass the Conversation to preview what a manual sync would do")
    return Explanation(
        conversation_id=conversation_id,
        status=status,
        would_sync=False,
        outcome=PlanOutcome.SKIPPED,
        blockers=blockers,
        passes_at=None,
        steps=blockers,
        ledger=ledger,
        manual=manual,
    )


def offline_manual_preview(
    conversation: Conversation, config: SyncConfig, capabilities: Capabilities
) -> ManualPreview:
    """What a manual sync would do, said without reading the CRM (``explain(lookup=False)``):
    the rules that need no CRM, in words; the exact writes need the CRM's current values."""
    if not config.enabled:
        return ManualPreview("a manual sync is refused: the integration is switched off")
    if not is_valid_email(conversation.email):
        return ManualPreview("a manual sync is refused: the visitor has no valid email")
    email = (conversation.email or "").strip()
    mappings = mapping_set_for(config.field_mappings, capabilities.person_kind)
    overwrite = sorted({m.target for m in mappings if m.overwrite})
    fields = ", ".join(overwrite) if overwrite else "none is marked overwrite"
    return ManualPreview(
        f"a manual sync would look {email} up again: a matching "
        f"{capabilities.person_object} gets the overwrite fields that differ ({fields}), a "
        "Contact is never updated, none found is created; no tasks, owner and campaign "
        "untouched (explain with lookup for the exact writes)"
    )


def explain_many(plans: Sequence[Plan]) -> tuple[Explanation, ...]:
    return tuple(explain_plan(p) for p in plans)
