"""The plan: what a sync of some conversations writes, and why.

:func:`plan_sync` is a sans-IO generator (the pattern of h11 and httpx's ``auth_flow``): it
yields the CRM lookups it needs — one :class:`~signals_crm.core.crm.FindPeople` for *all* the
conversations' emails, and a :class:`~signals_crm.core.crm.DescribeObject` when no schema was
given — receives their answers through ``send``, and returns one :class:`Plan` per
conversation. The blocking and the ``async`` engine drive the same generator.

A plan, per conversation:

1. Automatic sync plans only eligible conversations (:mod:`signals_crm.core.criteria`); a manual
   sync needs only the integration on and a valid email, and never plans tasks.
2. The person record follows :mod:`signals_crm.core.matching`: *create* (mapped values, resolved
   owner, then the campaign), *update* (changed overwrite values only; owner and campaign never
   touched; nothing changed → no command), or *attach to a Contact* (no person write).
3. Two conversations of one batch with the same email share one record: the first plans the
   create, the later ones refer to it (tasks attach to it; no second create, no second
   membership).
4. Automatic syncs plan one task per chosen activity kind, on whichever record the visitor is.
5. Every command has a deterministic idempotency key, ``<conversation id>:<command>`` plus the
   activity for tasks, so retries and restarts find what already happened.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Generator, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from signals_crm.core.config import FieldMapping, SyncConfig
from signals_crm.core.criteria import Eligibility, check_eligibility, check_manual
from signals_crm.core.crm import (
    CampaignMembershipWrite,
    Capabilities,
    DescribeObject,
    FindPeople,
    Lookup,
    PersonUpdate,
    PersonWrite,
    TaskWrite,
)
from signals_crm.core.mapping import (
    build_create_fields,
    build_update_fields,
    mapping_set_for,
)
from signals_crm.core.matching import MatchDecision, MatchOutcome, decide_match
from signals_crm.core.model import (
    Activity,
    ActivityKind,
    Conversation,
    FieldValue,
    ObjectSchema,
    PersonKind,
    PersonRecord,
    field_getter,
    normalize_email,
)
from signals_crm.core.owner import OwnerDecision, resolve_owner
from signals_crm.core.trace import Reason, info, warning
from signals_crm.exceptions import PlanningError

__all__ = [
    "Command",
    "CommandKind",
    "PersonRef",
    "Plan",
    "PlanOutcome",
    "SyncMode",
    "command_key",
    "plan_sync",
    "task_marker",
]


class SyncMode(enum.Enum):
    AUTOMATIC = "automatic"
    MANUAL = "manual"


class CommandKind(enum.Enum):
    CREATE_PERSON = "create_person"
    UPDATE_PERSON = "update_person"
    CREATE_TASK = "create_task"
    ADD_TO_CAMPAIGN = "add_to_campaign"


class PlanOutcome(enum.Enum):
    """What the plan does with the visitor's person record."""

    SKIPPED = "skipped"
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    ATTACH_CONTACT = "attach_contact"


@attrs.frozen
class PersonRef:
    """The person record a command acts on: an existing ``id``, or the key of the create
    command (``pending``) whose result will be that record."""

    kind: PersonKind
    id: str | None = None
    pending: str | None = None

    def resolve(self, created: Mapping[str, str]) -> str | None:
        """The record id, looking pending creates up in ``created`` (key → CRM id)."""
        if self.id is not None:
            return self.id
        return created.get(self.pending) if self.pending is not None else None


_PERSON, _UPDATE, _TASK, _CAMPAIGN = "person", "update", "task", "campaign"
_KEY_NAMES = {
    CommandKind.CREATE_PERSON.value: _PERSON,
    CommandKind.UPDATE_PERSON.value: _UPDATE,
    CommandKind.CREATE_TASK.value: _TASK,
    CommandKind.ADD_TO_CAMPAIGN.value: _CAMPAIGN,
}


def command_key(conversation_id: str, kind: CommandKind, activity_key: str | None = None) -> str:
    """The deterministic idempotency key of a command."""
    base = f"{conversation_id}:{_KEY_NAMES[kind.value]}"
    return f"{base}:{activity_key}" if activity_key is not None else base


def task_marker(conversation_id: str, activity_key: str) -> str:
    """The stable marker a task carries, naming its source activity."""
    return f"signals:{conversation_id}:{activity_key}"


@attrs.frozen
class Command:
    """One write of a plan. ``person`` names the record it writes or attaches to."""

    key: str
    kind: CommandKind
    conversation_id: str
    email: str
    person: PersonRef
    fields: Mapping[str, FieldValue] = attrs.field(factory=dict)
    owner_id: str | None = None
    activity: Activity | None = None
    marker: str | None = None
    campaign_id: str | None = None

    @property
    def depends_on(self) -> str | None:
        """The key of the create this command waits for, if any."""
        return self.person.pending if self.kind is not CommandKind.CREATE_PERSON else None

    def to_person_write(self) -> PersonWrite:
        return PersonWrite(
            key=self.key,
            kind=self.person.kind,
            email=self.email,
            fields=self.fields,
            owner_id=self.owner_id,
        )

    def to_person_update(self, record_id: str) -> PersonUpdate:
        return PersonUpdate(
            key=self.key, record_id=record_id, kind=self.person.kind, fields=self.fields
        )

    def to_task_write(self, person_id: str) -> TaskWrite:
        if self.activity is None or self.marker is None:
            raise PlanningError(f"command {self.key} is not a task")
        return TaskWrite(
            key=self.key,
            person_id=person_id,
            person_kind=self.person.kind,
            activity_kind=self.activity.kind,
            subject=self.activity.subject,
            body=self.activity.body,
            marker=self.marker,
            activity_date=self.activity.activity_date,
        )

    def to_membership_write(self, person_id: str) -> CampaignMembershipWrite:
        if self.campaign_id is None:
            raise PlanningError(f"command {self.key} is not a campaign membership")
        return CampaignMembershipWrite(
            key=self.key,
            campaign_id=self.campaign_id,
            person_id=person_id,
            person_kind=self.person.kind,
        )


@attrs.frozen
class Plan:
    """Everything a sync of one conversation would write, and every reason behind it."""

    conversation_id: str
    mode: SyncMode
    email: str | None
    eligibility: Eligibility
    outcome: PlanOutcome
    commands: tuple[Command, ...] = ()
    match: MatchDecision | None = None
    owner: OwnerDecision | None = None
    trace: tuple[Reason, ...] = ()

    @property
    def synced(self) -> bool:
        """Whether the conversation passes (eligible, or manual with an email)."""
        return self.outcome is not PlanOutcome.SKIPPED

    @property
    def blockers(self) -> tuple[Reason, ...]:
        return self.eligibility.blockers

    def commands_of(self, kind: CommandKind) -> tuple[Command, ...]:
        return tuple(c for c in self.commands if c.kind is kind)


@attrs.frozen
class _Pending:
    """A create planned earlier in the same batch, for later conversations with that email."""

    key: str
    fields: Mapping[str, FieldValue]


@attrs.frozen
class _Compiled:
    """What every conversation of a batch needs from the configuration, worked out once."""

    mappings: tuple[FieldMapping, ...]
    getters: tuple[tuple[str, Callable[[Conversation], FieldValue]], ...]
    task_kinds: tuple[ActivityKind, ...]
    mode_label: str

    @classmethod
    def build(cls, config: SyncConfig, capabilities: Capabilities, mode: SyncMode) -> _Compiled:
        mappings = mapping_set_for(config.mappings, capabilities.person_kind)
        sources = dict.fromkeys(m.source for m in mappings)
        return cls(
            mappings,
            tuple((s, field_getter(s)) for s in sources),
            tuple(config.task_kinds),  # a tuple: membership by identity, no enum hashing
            mode.value,
        )


def _person_fields(config: SyncConfig, capabilities: Capabilities) -> tuple[str, ...]:
    mappings = mapping_set_for(config.mappings, capabilities.person_kind)
    names: dict[str, None] = {}
    for m in mappings:
        if m.overwrite:
            names.setdefault(m.target, None)
    return tuple(names)


def plan_sync(
    conversations: Sequence[Conversation],
    config: SyncConfig,
    capabilities: Capabilities,
    *,
    now: datetime | None = None,
    mode: SyncMode = SyncMode.AUTOMATIC,
    schema: ObjectSchema | None = None,
    created: Mapping[str, str] | None = None,
) -> Generator[Lookup, Any, tuple[Plan, ...]]:
    """Plan the sync of ``conversations`` (see the module docstring for the rules).

    ``now`` is required for automatic syncs (the delay); a manual sync ignores it.
    ``created`` maps a conversation id to the person record an earlier, interrupted run of
    this same sync already created: that conversation is planned as the create it was (same
    keys, so the engine skips what is done and finishes the rest, campaign included) instead
    of as a match on its own record.
    """
    if mode is SyncMode.AUTOMATIC and now is None:
        raise PlanningError("an automatic sync plan needs 'now'")
    eligibility: list[Eligibility] = []
    for conversation in conversations:
        if mode is SyncMode.AUTOMATIC:
            assert now is not None  # noqa: S101  # narrowed above
            eligibility.append(check_eligibility(conversation, config, now))
        else:
            eligibility.append(check_manual(conversation, config))

    emails: dict[str, None] = {}
    for conversation, verdict in zip(conversations, eligibility, strict=True):
        if verdict.eligible and conversation.email is not None:
            emails.setdefault(normalize_email(conversation.email), None)

    found: dict[str, tuple[PersonRecord, ...]] = {}
    if emails:
        request = FindPeople(tuple(emails), _person_fields(config, capabilities))
        answer = yield request
        if answer is None or len(answer) != len(request.emails):
            raise PlanningError("FindPeople must be answered with one result per email")
        found = dict(zip(request.emails, (tuple(a) for a in answer), strict=True))
        if schema is None and capabilities.supports_describe:
            schema = yield DescribeObject(capabilities.person_object)
            if not isinstance(schema, ObjectSchema):
                raise PlanningError("DescribeObject must be answered with an ObjectSchema")

    pending: dict[str, _Pending] = {}
    compiled = _Compiled.build(config, capabilities, mode)
    plans: list[Plan] = []
    for conversation, verdict in zip(conversations, eligibility, strict=True):
        if not verdict.eligible or conversation.email is None:
            plans.append(
                Plan(
                    conversation_id=conversation.id,
                    mode=mode,
                    email=conversation.email,
                    eligibility=verdict,
                    outcome=PlanOutcome.SKIPPED,
                    trace=verdict.blockers,
                )
            )
            continue
        key = normalize_email(conversation.email)
        plans.append(
            _plan_one(
                conversation,
                verdict=verdict,
                records=found.get(key, ()),
                config=config,
                capabilities=capabilities,
                mode=mode,
                schema=schema,
                pending=pending,
                compiled=compiled,
                resumed=(created or {}).get(conversation.id),
            )
        )
    return tuple(plans)


def _plan_one(
    conversation: Conversation,
    *,
    verdict: Eligibility,
    records: tuple[PersonRecord, ...],
    config: SyncConfig,
    capabilities: Capabilities,
    mode: SyncMode,
    schema: ObjectSchema | None,
    pending: dict[str, _Pending],
    compiled: _Compiled,
    resumed: str | None,
) -> Plan:
    assert conversation.email is not None  # noqa: S101  # checked by the caller
    email = conversation.email.strip()
    email_key = normalize_email(email)
    cid = conversation.id
    kind = capabilities.person_kind
    mappings = compiled.mappings
    values = {source: get(conversation) for source, get in compiled.getters}
    trace: list[Reason] = [info("eligible", f"{compiled.mode_label} sync of {email}")]
    commands: list[Command] = []
    owner: OwnerDecision | None = None
    match: MatchDecision | None = None
    person: PersonRef | None

    earlier = pending.get(email_key)
    if earlier is not None:
        trace.append(
            info(
                "match_same_batch",
                f"an earlier conversation of this batch creates the record ({earlier.key})",
            )
        )
        person = PersonRef(kind, pending=earlier.key)
        payload = build_update_fields(values, mappings, earlier.fields, schema=schema)
        trace.extend(payload.trace)
        outcome = PlanOutcome.UNCHANGED
        if payload.fields:
            outcome = PlanOutcome.UPDATE
            commands.append(
                Command(
                    key=f"{cid}:{_UPDATE}",
                    kind=CommandKind.UPDATE_PERSON,
                    conversation_id=cid,
                    email=email,
                    person=person,
                    fields=payload.fields,
                )
            )
    else:
        if resumed is not None:
            records = ()
            trace.append(
                info("resumed_create", f"this sync already created {resumed}; finishing it")
            )
        match = decide_match(
            email,
            records,
            person_kind=kind,
            separate_contacts=capabilities.separate_contacts,
            policy=config.existing_contact,
        )
        trace.extend(match.trace)
        if match.outcome is MatchOutcome.UPDATE:
            assert match.record is not None  # noqa: S101  # an update always names its record
            person = PersonRef(kind, id=match.record.id)
            payload = build_update_fields(values, mappings, match.record.fields, schema=schema)
            trace.extend(payload.trace)
            outcome = PlanOutcome.UNCHANGED
            if payload.fields:
                outcome = PlanOutcome.UPDATE
                commands.append(
                    Command(
                        key=f"{cid}:{_UPDATE}",
                        kind=CommandKind.UPDATE_PERSON,
                        conversation_id=cid,
                        email=email,
                        person=person,
                        fields=payload.fields,
                    )
                )
            trace.append(info("owner_untouched", "an update never changes the owner or campaign"))
        elif match.outcome is MatchOutcome.ATTACH_CONTACT:
            assert match.record is not None  # noqa: S101  # an attach always names its record
            person = PersonRef(PersonKind.CONTACT, id=match.record.id)
            outcome = PlanOutcome.ATTACH_CONTACT
        else:
            create_key = f"{cid}:{_PERSON}"
            person = PersonRef(kind, pending=create_key)
            owner = resolve_owner(
                conversation.participants,
                config.owner_sources,
                config.users,
                config.default_owner,
            )
            trace.extend(owner.trace)
            payload = build_create_fields(
                values,
                mappings,
                schema=schema,
                placeholders=config.placeholders,
                email_field=capabilities.email_field,
                email=email,
            )
            trace.extend(payload.trace)
            commands.append(
                Command(
                    key=create_key,
                    kind=CommandKind.CREATE_PERSON,
                    conversation_id=cid,
                    email=email,
                    person=person,
                    fields=payload.fields,
                    owner_id=owner.owner_id,
                )
            )
            pending[email_key] = _Pending(create_key, payload.fields)
            outcome = PlanOutcome.CREATE
            if config.campaign_id is not None:
                if capabilities.supports_campaigns:
                    commands.append(
                        Command(
                            key=f"{cid}:{_CAMPAIGN}",
                            kind=CommandKind.ADD_TO_CAMPAIGN,
                            conversation_id=cid,
                            email=email,
                            person=person,
                            campaign_id=config.campaign_id,
                        )
                    )
                    trace.append(
                        info("campaign_join", f"the new record joins campaign {config.campaign_id}")
                    )
                else:
                    trace.append(
                        warning("campaign_unsupported", f"{capabilities.name} has no campaigns")
                    )

    commands.extend(
        _tasks(
            conversation,
            capabilities=capabilities,
            mode=mode,
            person=person,
            email=email,
            trace=trace,
            compiled=compiled,
        )
    )
    return Plan(
        conversation_id=cid,
        mode=mode,
        email=email,
        eligibility=verdict,
        outcome=outcome,
        commands=tuple(commands),
        match=match,
        owner=owner,
        trace=tuple(trace),
    )


def _tasks(
    conversation: Conversation,
    *,
    capabilities: Capabilities,
    mode: SyncMode,
    person: PersonRef,
    email: str,
    trace: list[Reason],
    compiled: _Compiled,
) -> list[Command]:
    if mode is SyncMode.MANUAL:
        trace.append(info("no_tasks_manual", "a manual sync creates no tasks"))
        return []
    kinds = compiled.task_kinds
    activities = [a for a in conversation.activities() if a.kind in kinds]
    if not activities:
        return []
    if not capabilities.supports_tasks:
        trace.append(warning("tasks_unsupported", f"{capabilities.name} takes no tasks"))
        return []
    limit = capabilities.max_task_body_length
    commands: list[Command] = []
    for activity in activities:
        chosen = activity
        if limit is not None and len(activity.body) > limit:
            chosen = attrs.evolve(activity, body=activity.body[:limit])
            trace.append(
                warning(
                    "value_truncated",
                    f"task {activity.key}: body of {len(activity.body)} characters truncated "
                    f"to {limit}",
                )
            )
        commands.append(
            Command(
                key=f"{conversation.id}:{_TASK}:{activity.key}",
                kind=CommandKind.CREATE_TASK,
                conversation_id=conversation.id,
                email=email,
                person=person,
                activity=chosen,
                marker=task_marker(conversation.id, activity.key),
            )
        )
        trace.append(info("task_planned", f"task for the {activity.key} activity"))
    return commands
