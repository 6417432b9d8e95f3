"""The plan: what a sync of some conversations writes, and why.

In the data flow (``host → engine → flows → core → plan → adapter → CRM``) a plan is the
core's answer to the flows: its commands, each with a deterministic key, are what the flows
record in the ledger and turn into adapter calls.

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
4. Automatic syncs plan one task per chosen activity kind, on whichever record the visitor is,
   owned as :mod:`signals_crm.core.task_owner` says (the user who did the activity, else the
   record's owner, else the CRM's default).
5. Every command has a deterministic idempotency key, ``<conversation id>:<command>`` plus the
   activity for tasks, so retries and restarts find what already happened.
"""

from __future__ import annotations

import enum
from collections.abc import Generator, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any

import attrs

from signals_crm.core._build import builder
from signals_crm.core.activities import custom_activities
from signals_crm.core.config import ActivityTemplate, SyncConfig
from signals_crm.core.criteria import Eligibility, EligibilityRule, check_manual
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
from signals_crm.core.mapping import CompiledFields, mapping_set_for
from signals_crm.core.matching import MatchDecision, MatchOutcome, decide_match
from signals_crm.core.model import (
    Activity,
    ActivityKind,
    Conversation,
    FieldValue,
    ObjectSchema,
    PersonKind,
    PersonRecord,
    Role,
    fields_reader,
    kind_name,
)
from signals_crm.core.owner import OwnerDecision, OwnerRule
from signals_crm.core.task_owner import TASK_ROLES, TaskOwnerRule
from signals_crm.core.trace import Reason, info, warning
from signals_crm.exceptions import PlanningError

__all__ = [
    "Command",
    "CommandKind",
    "PersonRef",
    "Plan",
    "PlanOutcome",
    "Planner",
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

    # Members are singletons compared by identity: hash them by identity too (a C slot, where
    # Enum's own __hash__ is a Python call). Dicts and sets of them are built per command.
    __hash__ = object.__hash__


class PlanOutcome(enum.Enum):
    """What the plan does with the visitor's person record."""

    SKIPPED = "skipped"
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    ATTACH_CONTACT = "attach_contact"

    # Members are singletons compared by identity: hash them by identity too (a C slot, where
    # Enum's own __hash__ is a Python call). Dicts and sets of them are built per command.
    __hash__ = object.__hash__


# The members read while planning, as module globals: reading an Enum's member off its class
# is a slow attribute lookup (about ten times a global's), made several times per conversation.
_CREATE_PERSON = CommandKind.CREATE_PERSON
_UPDATE_PERSON = CommandKind.UPDATE_PERSON
_CREATE_TASK = CommandKind.CREATE_TASK
_ADD_TO_CAMPAIGN = CommandKind.ADD_TO_CAMPAIGN
_SKIPPED = PlanOutcome.SKIPPED
_CREATE = PlanOutcome.CREATE
_UPDATED = PlanOutcome.UPDATE
_UNCHANGED = PlanOutcome.UNCHANGED
_ATTACHED = PlanOutcome.ATTACH_CONTACT
_MANUAL = SyncMode.MANUAL
_MATCH_UPDATE = MatchOutcome.UPDATE
_MATCH_ATTACH = MatchOutcome.ATTACH_CONTACT
_CONTACT = PersonKind.CONTACT


@attrs.frozen(weakref_slot=False)  # no __weakref__ slot: _build.builder's quick builder
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
_NO_FIELDS: Mapping[str, FieldValue] = MappingProxyType({})  # shared: tasks, memberships
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


# Command and Plan are built several times per conversation planned: by their builders
# (signals_crm.core._build), which set each slot directly, not by their __init__.
@attrs.frozen(weakref_slot=False)  # no __weakref__ slot: _build.builder's quick builder
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
    campaign_id: str | None = None

    @property
    def marker(self) -> str | None:
        """A task's marker (:func:`task_marker` of its activity); ``None`` for other kinds."""
        activity = self.activity
        return None if activity is None else task_marker(self.conversation_id, activity.key)

    @property
    def depends_on(self) -> str | None:
        """The key of the create this command waits for, if any."""
        return self.person.pending if self.kind is not _CREATE_PERSON else None

    def to_person_write(self) -> PersonWrite:
        return _person_write(self.key, self.person.kind, self.email, self.fields, self.owner_id)

    def to_person_update(self, record_id: str) -> PersonUpdate:
        return _person_update(self.key, record_id, self.person.kind, self.fields)

    def to_task_write(self, person_id: str) -> TaskWrite:
        activity = self.activity
        if activity is None:
            raise PlanningError(f"command {self.key} is not a task")
        return _task_write(  # positional, in the order of TaskWrite's fields
            self.key,
            person_id,
            self.person.kind,
            activity.kind,
            activity.subject,
            activity.body,
            f"signals:{self.conversation_id}:{activity.key}",  # task_marker
            activity.activity_date,
            self.owner_id,
        )

    def to_membership_write(self, person_id: str) -> CampaignMembershipWrite:
        if self.campaign_id is None:
            raise PlanningError(f"command {self.key} is not a campaign membership")
        return _membership_write(self.key, self.campaign_id, person_id, self.person.kind)


@attrs.frozen(weakref_slot=False)  # no __weakref__ slot: _build.builder's quick builder
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
        return self.outcome is not _SKIPPED

    @property
    def blockers(self) -> tuple[Reason, ...]:
        return self.eligibility.blockers

    def commands_of(self, kind: CommandKind) -> tuple[Command, ...]:
        return tuple(c for c in self.commands if c.kind is kind)


_command = builder(Command)
_plan = builder(Plan)
_person_ref = builder(PersonRef)
_person_write = builder(PersonWrite)
_person_update = builder(PersonUpdate)
_task_write = builder(TaskWrite)
_membership_write = builder(CampaignMembershipWrite)


@attrs.frozen
class _Compiled:
    """What every conversation of a batch needs from the configuration, the capabilities, the
    schema and the mode, worked out once: compiled field maps, the task kinds, and every reason
    that does not depend on the conversation."""

    config: SyncConfig
    capabilities: Capabilities
    mode: SyncMode
    schema: ObjectSchema | None
    create_fields: CompiledFields  # every mapping, for a new record
    update_fields: CompiledFields  # the overwrite mappings: all an update reads and writes
    owner_rule: OwnerRule
    task_owners: TaskOwnerRule
    task_kinds: tuple[ActivityKind | str, ...]
    all_task_kinds: bool  # every activity becomes a task: nothing to filter
    templates: Mapping[str, ActivityTemplate]  # the declared activity kinds, by name
    # Per kind name: who did it (for the task's owner), its label in reasons, and its
    # "task_planned" reason (None for a declared kind: that reason names the activity).
    task_specs: Mapping[ActivityKind | str, _TaskSpec]  # by kind, and by kind name
    eligible: Reason
    campaign_reason: Reason | None
    tasks_unsupported: Reason

    @classmethod
    def build(  # noqa: PLR0917  # positional: the planner's compiled rules, in field order
        cls,
        config: SyncConfig,
        capabilities: Capabilities,
        mode: SyncMode,
        schema: ObjectSchema | None,
        owner_rule: OwnerRule,
        task_owners: TaskOwnerRule,
    ) -> _Compiled:
        mappings = mapping_set_for(config.field_mappings, capabilities.person_kind)
        placeholders: Mapping[str, str] = config.placeholders
        required = capabilities.required_on_create
        if schema is None and required is not None:
            # No schema to say what is required: only what this CRM always requires.
            wanted = {name.lower() for name in required}
            placeholders = {k: v for k, v in placeholders.items() if k.lower() in wanted}
        campaign_reason = None
        if config.campaign_id is not None:
            campaign_reason = (
                info("campaign_join", f"the new record joins campaign {config.campaign_id}")
                if capabilities.supports_campaigns
                else warning("campaign_unsupported", f"{capabilities.name} has no campaigns")
            )
        return cls(
            config,
            capabilities,
            mode,
            schema,
            CompiledFields.compile(
                mappings,
                fields_reader,
                for_update=False,
                schema=schema,
                placeholders=placeholders,
                email_field=capabilities.email_field,
            ),
            CompiledFields.compile(mappings, fields_reader, for_update=True, schema=schema),
            owner_rule,
            task_owners,
            tuple(config.task_events),  # a tuple: membership by identity, no enum hashing
            config.task_events >= {*ActivityKind, *(t.name for t in config.activity_kinds)},
            config.templates,
            _task_specs(config),
            info("eligible", f"eligible for {mode.value} sync"),
            campaign_reason,
            warning("tasks_unsupported", f"{capabilities.name} takes no tasks"),
        )


_TaskSpec = tuple[tuple[Role, ...], str, Reason | None]


def _task_specs(config: SyncConfig) -> dict[ActivityKind | str, _TaskSpec]:
    specs: dict[ActivityKind | str, _TaskSpec] = {
        name: (roles, _TASK_LABELS[name], _TASK_PLANNED[name]) for name, roles in TASK_ROLES.items()
    }
    for template in config.activity_kinds:
        specs[template.name] = (template.owner_roles, f"the {template.name} task", None)
    for kind in ActivityKind:  # a built-in kind found by itself, without its name
        if kind.value in specs:
            specs[kind] = specs[kind.value]
    return specs


def _person_fields(config: SyncConfig, capabilities: Capabilities) -> tuple[str, ...]:
    mappings = mapping_set_for(config.field_mappings, capabilities.person_kind)
    names: dict[str, None] = {}
    for m in mappings:
        if m.overwrite:
            names.setdefault(m.target, None)
    return tuple(names)


class Planner:
    """Plans the syncs of one configuration into one CRM, batch after batch.

    The rules are compiled once (the field maps per schema, the eligibility and lead-owner
    rules), and what they work out along the way is kept for later batches: the reasons of
    each Signals user's owner step, of each set of changed fields. A team has few users and a
    CRM few changed-field sets, so this costs little memory and saves most of the work of
    planning. :func:`plan_sync` is the one-batch form; the engine keeps a planner.

    ``inactive`` names CRM users known to be inactive: the owner rules pass over them (a
    mapped user who was deactivated is skipped like an unmapped one, with its own reason).

    Like the rest of the core it does no IO. Threads may share one: what it keeps only saves
    work (any thread would work out the same), and each batch is planned with the rules it
    started with.
    """

    __slots__ = (
        "_compiled",
        "_eligibility",
        "_fields",
        "_owner_rule",
        "_task_owners",
        "capabilities",
        "config",
        "inactive",
    )

    def __init__(
        self,
        config: SyncConfig,
        capabilities: Capabilities,
        *,
        inactive: frozenset[str] = frozenset(),
    ) -> None:
        self.config = config
        self.capabilities = capabilities
        self.inactive = inactive
        self._fields = _person_fields(config, capabilities)
        self._eligibility = EligibilityRule(config)
        self._owner_rule = OwnerRule(
            config.lead_owner_sources, config.users, config.default_owner, inactive
        )
        self._task_owners = TaskOwnerRule(config.users, config.default_owner, inactive)
        self._compiled: dict[SyncMode, _Compiled] = {}  # the last compiled, per mode

    def __repr__(self) -> str:
        return f"Planner(crm={self.capabilities.name!r})"

    def _compile(self, mode: SyncMode, schema: ObjectSchema | None) -> _Compiled:
        compiled = self._compiled.get(mode)
        if compiled is None or compiled.schema is not schema:
            compiled = _Compiled.build(
                self.config, self.capabilities, mode, schema, self._owner_rule, self._task_owners
            )
            self._compiled[mode] = compiled
        return compiled

    def plan(
        self,
        conversations: Sequence[Conversation],
        *,
        now: datetime | None = None,
        mode: SyncMode = SyncMode.AUTOMATIC,
        schema: ObjectSchema | None = None,
        created: Mapping[str, str] | None = None,
    ) -> Generator[Lookup, Any, tuple[Plan, ...]]:
        """Plan the sync of ``conversations``: see :func:`plan_sync`."""
        config = self.config
        capabilities = self.capabilities
        automatic = mode is SyncMode.AUTOMATIC
        if automatic and now is None:
            raise PlanningError("an automatic sync plan needs 'now'")
        # Each conversation's verdict and, when it passes, its trimmed email (two lists, not a
        # tuple per conversation: fewer objects for the garbage collector to track).
        verdicts: list[Eligibility] = []
        passing: list[str | None] = []
        emails: dict[str, None] = {}
        # Emails only resumed creates have: their record is known (``created``) and a lookup
        # would be ignored, so they are not looked up.
        resumed_only: set[str] = set()
        rule = self._eligibility if automatic else None
        for conversation in conversations:
            if rule is not None:
                assert now is not None  # noqa: S101  # narrowed above
                verdict = rule.check(conversation, now)
            else:
                verdict = check_manual(conversation, config)
            verdicts.append(verdict)
            email = conversation.email
            if verdict.blockers or email is None:
                passing.append(None)
            else:
                email = email.strip()
                key = email.lower()  # normalize_email, once trimmed
                if created and conversation.id in created:
                    if key not in emails:
                        resumed_only.add(key)
                else:
                    resumed_only.discard(key)
                emails[key] = None
                passing.append(email)

        found: dict[str, Sequence[PersonRecord]] = {}
        if emails:
            wanted = tuple(e for e in emails if e not in resumed_only)
            if wanted:
                request = FindPeople(wanted, self._fields)
                answer = yield request
                if answer is None or len(answer) != len(request.emails):
                    raise PlanningError("FindPeople must be answered with one result per email")
                found = dict(zip(request.emails, answer, strict=True))
            if schema is None and capabilities.supports_describe:
                schema = yield DescribeObject(capabilities.person_object)
                if not isinstance(schema, ObjectSchema):
                    raise PlanningError("DescribeObject must be answered with an ObjectSchema")

        compiled = self._compile(mode, schema)
        resumed = created or {}
        pending: dict[str, Command] = {}  # normalized email → the create planned for it
        plans: list[Plan] = []
        for conversation, verdict, email in zip(conversations, verdicts, passing, strict=True):
            if email is None:
                plans.append(
                    _plan(  # positional, in the order of Plan's fields
                        conversation.id,
                        mode,
                        conversation.email,
                        verdict,
                        _SKIPPED,
                        (),  # no commands
                        None,  # no match
                        None,  # no owner
                        verdict.blockers,
                    )
                )
            else:
                plans.append(
                    _plan_one(  # positional: called per conversation
                        conversation,
                        verdict,
                        email,
                        found,
                        pending,
                        resumed.get(conversation.id) if resumed else None,
                        compiled,
                    )
                )
        return tuple(plans)


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

    This compiles the rules for one batch; to plan batch after batch, keep a :class:`Planner`.
    """
    return Planner(config, capabilities).plan(
        conversations, now=now, mode=mode, schema=schema, created=created
    )


def _plan_one(  # noqa: PLR0917  # positional: called per conversation
    conversation: Conversation,
    verdict: Eligibility,
    email: str,
    found: Mapping[str, Sequence[PersonRecord]],
    pending: dict[str, Command],
    resumed: str | None,
    compiled: _Compiled,
) -> Plan:
    """The plan of one eligible conversation whose (trimmed) email is ``email``."""
    email_key = email.lower()  # normalize_email: the email is trimmed already
    cid = conversation.id
    config = compiled.config
    kind = compiled.capabilities.person_kind
    trace: list[Reason] = [compiled.eligible]
    commands: list[Command] = []
    owner: OwnerDecision | None = None
    match: MatchDecision | None = None
    person: PersonRef
    record_owner: str | None = None  # the owner of the record the tasks go to (rule 4)

    earlier = pending.get(email_key)
    if earlier is not None:
        trace.append(
            Reason(
                "match_same_batch",
                f"an earlier conversation of this batch creates the record ({earlier.key})",
            )
        )
        person = _person_ref(kind, None, earlier.key)  # pending
        record_owner = earlier.owner_id
        outcome = _update(
            conversation,
            email,
            person,
            earlier.fields,
            commands,
            trace,
            compiled,
        )
    else:
        records = found.get(email_key, ())
        if resumed is not None:
            records = ()
            trace.append(
                Reason("resumed_create", f"this sync already created {resumed}; finishing it")
            )
        match = decide_match(
            email,
            records,
            person_kind=kind,
            separate_contacts=compiled.capabilities.separate_contacts,
            policy=config.existing_contact,
        )
        trace.extend(match.trace)
        if match.outcome is _MATCH_UPDATE:
            assert match.record is not None  # noqa: S101  # an update always names its record
            person = _person_ref(kind, match.record.id, None)
            record_owner = match.record.owner_id
            outcome = _update(
                conversation,
                email,
                person,
                match.record.fields,
                commands,
                trace,
                compiled,
            )
            trace.append(_OWNER_UNTOUCHED)
        elif match.outcome is _MATCH_ATTACH:
            assert match.record is not None  # noqa: S101  # an attach always names its record
            person = _person_ref(_CONTACT, match.record.id, None)
            record_owner = match.record.owner_id
            outcome = _ATTACHED
        else:
            create_key = f"{cid}:{_PERSON}"
            person = _person_ref(kind, None, create_key)  # pending
            owner = compiled.owner_rule.resolve(conversation.participants)
            record_owner = owner.owner_id
            trace.extend(owner.trace)
            payload = compiled.create_fields.create(conversation, email)
            trace.extend(payload.trace)
            create = _command(  # positional, in the order of Command's fields (built per create)
                create_key,
                _CREATE_PERSON,
                cid,
                email,
                person,
                payload.fields,
                owner.owner_id,
                None,  # no activity
                None,  # no campaign
            )
            commands.append(create)
            pending[email_key] = create  # later conversations of the batch with this email
            outcome = _CREATE
            campaign = compiled.campaign_reason  # None when no campaign is configured
            if campaign is not None:
                if compiled.capabilities.supports_campaigns:
                    commands.append(
                        _command(  # positional, in the order of Command's fields
                            f"{cid}:{_CAMPAIGN}",
                            _ADD_TO_CAMPAIGN,
                            cid,
                            email,
                            person,
                            _NO_FIELDS,
                            None,  # no owner
                            None,  # no activity
                            config.campaign_id,
                        )
                    )
                trace.append(campaign)

    if compiled.mode is _MANUAL:
        trace.append(_NO_TASKS_MANUAL)
    else:
        _tasks(conversation, email, person, record_owner, commands, trace, compiled)
    # Positional arguments, in the order of Plan's fields: keyword matching costs more than
    # building the value, and this is built once per conversation.
    return _plan(
        cid, compiled.mode, email, verdict, outcome, tuple(commands), match, owner, tuple(trace)
    )


_TASK_LABELS = {
    ActivityKind.CHAT_TRANSCRIPT.value: "the transcript task",
    ActivityKind.MEETING_BOOKED.value: "the meeting task",
}
_TASK_PLANNED = {
    ActivityKind.CHAT_TRANSCRIPT.value: info("task_planned", "a task for the chat transcript"),
    ActivityKind.MEETING_BOOKED.value: info("task_planned", "a task for the booked meeting"),
}
_OWNER_UNTOUCHED = info("owner_untouched", "an update never changes the owner or campaign")
_NO_TASKS_MANUAL = info("no_tasks_manual", "a manual sync creates no tasks")


def _update(  # noqa: PLR0917  # positional: called per update
    conversation: Conversation,
    email: str,
    person: PersonRef,
    current: Mapping[str, FieldValue],
    commands: list[Command],
    trace: list[Reason],
    compiled: _Compiled,
) -> PlanOutcome:
    """Plan the update of ``person``, whose fields are ``current``: changed overwrite values."""
    payload = compiled.update_fields.update(conversation, current)
    trace.extend(payload.trace)
    if not payload.fields:
        return _UNCHANGED
    commands.append(
        _command(  # positional, in the order of Command's fields
            f"{conversation.id}:{_UPDATE}",
            _UPDATE_PERSON,
            conversation.id,
            email,
            person,
            payload.fields,
            None,  # no owner: an update never changes it
            None,  # no activity
            None,  # no campaign
        )
    )
    return _UPDATED


def _tasks(  # noqa: PLR0917  # positional: called per conversation
    conversation: Conversation,
    email: str,
    person: PersonRef,
    record_owner: str | None,
    commands: list[Command],
    trace: list[Reason],
    compiled: _Compiled,
) -> None:
    """Plan one task per chosen activity kind (automatic syncs only), each with its owner."""
    activities = conversation.activities()
    if conversation.custom_activities:
        declared, skipped = custom_activities(conversation, compiled.templates)
        activities = (*activities, *declared)
        trace.extend(skipped)
    if not compiled.all_task_kinds:
        activities = tuple(a for a in activities if a.kind in compiled.task_kinds)
    if not activities:
        return
    capabilities = compiled.capabilities
    if not capabilities.supports_tasks:
        trace.append(compiled.tasks_unsupported)
        return
    cid = conversation.id
    prefix = f"{cid}:{_TASK}:"
    limit = capabilities.max_task_body_length
    owners = compiled.task_owners
    participants = conversation.participants
    specs = compiled.task_specs
    for activity in activities:
        spec = specs.get(activity.kind)  # one lookup: roles, label, reason
        if spec is None:  # an activity of a kind the settings do not declare
            spec = ((), f"the {kind_name(activity.kind)} task", None)
        roles, label, planned = spec
        owner = owners.resolve(roles, participants, record_owner, label)  # positional: per task
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
            _command(  # positional, in the order of Command's fields (built per task)
                prefix + activity.key,
                _CREATE_TASK,
                cid,
                email,
                person,
                _NO_FIELDS,
                owner.owner_id,
                chosen,
                None,  # no campaign
            )
        )
        if planned is None:
            planned = info(
                "task_planned",
                f"a task for the {kind_name(activity.kind)} activity {activity.key}",
            )
        trace.append(planned)
        trace.extend(owner.trace)
