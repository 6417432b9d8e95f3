"""One batch of conversations synced: the engine's write path, as a sans-IO flow.

Every step yields its effects (:mod:`signals_crm._flows.effects`): CRM reads and writes as
:class:`~signals_crm._flows.effects.Call`, ledger reads and writes as
:class:`~signals_crm._flows.effects.LedgerOp`, backoffs as
:class:`~signals_crm._flows.effects.Sleep`. It decides with the core (plans, error verdicts)
and never performs IO itself.

How one batch of conversations is synced (:func:`sync_batch`):

0. **Text is made valid first.** A string that cannot be encoded as UTF-8 (a lone surrogate
   such as ``"\\ud800"``: half an emoji cut by a JavaScript sender) has each such code point
   replaced by U+FFFD before anything is planned, with a ``text_repaired`` warning in the
   plan's trace naming the field. A payload that still cannot be encoded is never sent: its
   command fails with that reason (a dead letter of that record only).
1. **Reconcile first, once the write has settled.** Commands the ledger holds as SENT (a crash
   mid-request) or UNKNOWN (an ambiguous answer) are looked up in the CRM — person by email,
   task by marker, membership by campaign and person — before anything else: found →
   CONFIRMED with its id, absent → PLANNED. A CRM may commit a request after its client gave
   up, so the read waits until ``settle`` has passed since the write was sent; meanwhile the
   conversation (and any other conversation of the same email) waits and is rescheduled to
   when the window ends, while the rest of the batch goes on. A SENT command of another
   worker is first *adopted*: recorded UNKNOWN at this worker's clock, and its window runs
   from then (a clock that is behind cannot shorten it). The reads go out in chunks; a chunk
   that fails holds back only its own conversations. Nothing of unknown outcome is ever sent
   again without this read, and the planning lookup reads the CRM once more right before.
2. **Plan** with the core (a :class:`~signals_crm.core.plan.Planner`), telling it which person
   records this very sync already created, so an interrupted sync is finished, not re-decided.
3. **Write in dependency order**, each kind in calls of at most the adapter's write batch size:
   person creates, then updates, then tasks and campaign memberships (which need the new ids).
   Every command is recorded SENT before its request and CONFIRMED / FAILED / UNKNOWN after;
   commands already CONFIRMED or FAILED are skipped.
4. **Errors are classified once** (:data:`CALL_ERRORS` and :func:`classify`): a per-record
   retryable error (lock contention) is retried with backoff and jitter; a whole call that may
   have landed (timeout, dropped connection, 5xx) is UNKNOWN and settles (rule 1); a 429 waits
   ``Retry-After``; a whole call the CRM refused (4xx) is split in halves until the record it
   is about fails alone; a permanent per-record error is FAILED with the CRM's reason (a dead
   letter, never retried); a per-record error that needs an administrator (an inactive owner)
   keeps the command PLANNED, is reported once and the conversation is rescheduled; an
   authentication or permission failure of a whole call stops the run and is surfaced.
5. A create refused as a **duplicate** becomes a match on the record the CRM names: its
   conversation is planned again (the lookup now finds the record), and its activities go to
   that record; never a second create.
6. A person create is reconciled by reading the person records of the email and taking only a
   live (not converted) record of the kind that was created, so an old converted Lead is never
   mistaken for a create that did not land.
"""

from __future__ import annotations

import hashlib
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType
from typing import Any

import attrs

from signals_crm._flows.carry import carried
from signals_crm._flows.effects import (
    CALL_ERRORS,
    STOPS_A_RUN,
    Call,
    Flow,
    LedgerOp,
    Reader,
    Sleep,
    reason_of,
    store,
)
from signals_crm._flows.verdicts import Verdict, classify
from signals_crm.core._build import builder
from signals_crm.core.config import SyncConfig
from signals_crm.core.crm import (
    Capabilities,
    MembershipByPerson,
    ReconcileQuery,
    TaskByMarker,
    WriteChain,
    WriteChainResult,
    WriteResult,
    id_problems,
)
from signals_crm.core.mapping import inapplicable_mappings, mapping_set_for, validate_mappings
from signals_crm.core.model import (
    Activity,
    ActivityKind,
    Company,
    Conversation,
    ConversationStatus,
    Meeting,
    ObjectSchema,
    Participants,
    PersonKind,
    PersonRecord,
    SignalsUser,
    Traffic,
    Visitor,
    normalize_email,
)
from signals_crm.core.ownership import (
    OwnershipResult,
    owner_field_paths,
    owner_field_problems,
    plan_account_owners,
)
from signals_crm.core.plan import (
    Command,
    CommandKind,
    PersonRef,
    Plan,
    Planner,
    PlanOutcome,
    SyncMode,
    task_marker,
)
from signals_crm.core.retry import RetryPolicy
from signals_crm.core.trace import Reason, info, warning
from signals_crm.exceptions import (
    ClaimRefusedError,
    CRMAPIError,
    DuplicateRecordError,
    InvalidTransitionError,
    LeaseLostError,
    Problem,
    RateLimitedError,
    SignalsCRMError,
    TransportError,
)
from signals_crm.ledger.base import (
    CommandRecord,
    CommandState,
    CreateInFlight,
    Performed,
    PersonLink,
    sound_text,
)
from signals_crm.reports import _FROM_PLAN, ConversationOutcome, OutcomeKind

_new_command, _new_plan = builder(Command), builder(Plan)
_trusted_record = builder(CommandRecord, trusted=True)
_trusted_link = builder(PersonLink, trusted=True)  # (only for values _links has checked)
"""``trusted_command`` (the ledger's): a record of values the engine has checked, set slot by
slot, not validated again."""

# Enum members the hot paths compare with by identity, read once: a member read from its
# class is an attribute lookup on the enum's metaclass each time (about 0.1 us).
_CREATE_KIND, _UPDATE_KIND = CommandKind.CREATE_PERSON, CommandKind.UPDATE_PERSON
_TASK_KIND, _MEMBERSHIP_KIND = CommandKind.CREATE_TASK, CommandKind.ADD_TO_CAMPAIGN
_PLANNED, _CONFIRMED, _FAILED = CommandState.PLANNED, CommandState.CONFIRMED, CommandState.FAILED
_SENT, _UNKNOWN = CommandState.SENT, CommandState.UNKNOWN
_SKIPPED_PLAN = PlanOutcome.SKIPPED
_SKIPPED, _FAILED_OUTCOME = OutcomeKind.SKIPPED, OutcomeKind.FAILED

__all__ = [
    "BatchResult",
    "OptimisticClaim",
    "Verdict",
    "account_owners",
    "classify",
    "finish_batch",
    "held_emails",
    "plan_batch",
    "preflight",
    "repair_text",
    "sync_batch",
]


# ------------------------------------------------------------------------------------------------
# Valid text at the boundary (rule 0)

_SURROGATE = re.compile("[\ud800-\udfff]")


def _valid(text: str) -> str:
    """``text`` with well-formed surrogate pairs joined and every lone one replaced by U+FFFD."""
    if not _SURROGATE.search(text):
        return text
    joined = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return _SURROGATE.sub("\ufffd", joined)


# How _sound walks a value of each type (worked out once per type): text, a leaf (no text it
# walks into: None, numbers, times, enums that are not str), a tuple or list, a mapping, or an
# attrs class (a getter of its __init__ fields' values, all in one call).
_TEXT, _LEAF, _SEQUENCE, _MAPPING = 0, 1, 2, 3
_Fields = Callable[[Any], tuple[Any, ...]]
_Shape = int | _Fields
_SHAPES: dict[type, _Shape] = {
    str: _TEXT,
    **dict.fromkeys((type(None), int, float, bool, date, datetime, timedelta), _LEAF),
}


def _shape(cls: type) -> _Shape:
    shape = _SHAPES.get(cls)
    if shape is None:
        if issubclass(cls, str):
            shape = _TEXT
        elif attrs.has(cls):
            shape = _fields_getter(tuple(f.name for f in attrs.fields(cls) if f.init))
        elif issubclass(cls, tuple | list):
            shape = _SEQUENCE
        elif issubclass(cls, Mapping):
            shape = _MAPPING
        else:
            shape = _LEAF
        _SHAPES[cls] = shape
    return shape


def _fields_getter(names: tuple[str, ...]) -> _Fields:
    """The values of the fields ``names`` of an instance, as a tuple."""
    if len(names) > 1:
        return operator.attrgetter(*names)
    if names:
        one = operator.attrgetter(names[0])
        return lambda value: (one(value),)
    return lambda _: ()


def _sound(value: Any) -> bool:
    """Whether :func:`repair_text` would leave ``value`` as it is: every string reachable
    the way it walks is free of lone surrogates. (``False`` only means "look closer".)"""
    shape = _SHAPES.get(type(value))
    if shape is None:
        shape = _shape(type(value))
    if shape == _TEXT:
        return value.isascii() or not _SURROGATE.search(value)
    if shape == _LEAF:
        return True
    if shape == _SEQUENCE:
        return _sound_items(value)
    if shape == _MAPPING:
        return all((not isinstance(k, str) or _sound(k)) and _sound(v) for k, v in value.items())
    assert callable(shape)  # noqa: S101  # an attrs class: the getter of its fields' values
    return _sound_items(shape(value))


def _sound_items(items: Iterable[Any]) -> bool:
    shapes = _SHAPES
    for item in items:
        shape = shapes.get(type(item))
        if shape == _LEAF:
            continue
        if shape == _TEXT:
            if not item.isascii() and _SURROGATE.search(item):
                return False
        elif not _sound(item):
            return False
    return True


def repair_text(value: Any, path: str = "") -> tuple[Any, list[str]]:
    """``value`` with every string made encodable as UTF-8, and the paths that were repaired.

    Walks attrs instances, tuples, lists and mappings; other values are returned as they are.
    """
    if _conversation_sound(value) if type(value) is Conversation else _sound(value):
        return value, []  # the common case, found without building anything
    return _repair(value, path)


# A conversation's texts, field by field, for _conversation_sound: every init field of these
# classes is named here as text (joined), a leaf (None, a number, a time, an enum), a mapping,
# or a part (walked). Should a class gain a field, the fast check is off (_sound walks).
_TEXT_FIELDS: dict[type, tuple[str, ...]] = {
    Visitor: (
        "email",
        "first_name",
        "last_name",
        "middle_name",
        "preferred_name",
        "name",
        "honorific",
        "phone",
        "home_phone",
        "mobile_phone",
        "other_phone",
        "other_email",
        "description",
        "tenant_id",
    ),
    Company: ("domain", "name"),
    SignalsUser: ("id", "email"),
    Meeting: ("id", "name", "agent_name"),
    Traffic: ("referrer", "source_type", "traffic_source", "traffic_campaign"),
}
_OTHER_FIELDS: dict[type, tuple[str, ...]] = {
    Conversation: (
        "id",
        "status",
        "closed_at",
        "lead_score",
        "visitor",
        "company",
        "participants",
        "transcript",
        "meeting",
        "traffic",
        "custom_activities",
    ),
    Visitor: ("birthdate", "extra"),
    Company: ("attributes",),
    SignalsUser: (),
    Participants: ("meeting_scheduler", "last_routed", "closer"),
    Meeting: ("date", "duration_minutes", "lead_time_minutes"),
    Traffic: (),
}
_FAST_CONVERSATION = all(
    sorted(f.name for f in attrs.fields(cls) if f.init)
    == sorted((*_TEXT_FIELDS.get(cls, ()), *others))
    for cls, others in _OTHER_FIELDS.items()
)
_TEXTS_OF = {cls: operator.attrgetter(*names) for cls, names in _TEXT_FIELDS.items()}
_VISITOR_TEXTS, _COMPANY_TEXTS = _TEXTS_OF[Visitor], _TEXTS_OF[Company]
_USER_TEXTS, _MEETING_TEXTS = _TEXTS_OF[SignalsUser], _TEXTS_OF[Meeting]
_TRAFFIC_TEXTS = _TEXTS_OF[Traffic]


def _conversation_sound(conversation: Conversation) -> bool:
    """``_sound(conversation)``, for a conversation of the model's own classes, by one check
    of its texts joined (a text has no lone surrogate exactly when none of its parts has one);
    any other shape, or a text field holding something else, is walked as :func:`_sound`
    walks it."""
    visitor, company, meeting = conversation.visitor, conversation.company, conversation.meeting
    participants, traffic = conversation.participants, conversation.traffic
    if (
        not _FAST_CONVERSATION
        or conversation.custom_activities
        or type(conversation.status) is not ConversationStatus
        or type(conversation.closed_at) not in _LEAF_VALUES
        or type(conversation.lead_score) not in _LEAF_VALUES
        or (visitor is not None and type(visitor) is not Visitor)
        or (company is not None and type(company) is not Company)
        or (meeting is not None and type(meeting) is not Meeting)
        or type(participants) is not Participants
        or type(traffic) is not Traffic
    ):
        return _sound(conversation)
    parts: list[Any] = [conversation.id, conversation.transcript, *_TRAFFIC_TEXTS(traffic)]
    mappings: list[Any] = []
    if visitor is not None:
        if type(visitor.birthdate) not in _LEAF_VALUES:
            return _sound(conversation)
        parts += _VISITOR_TEXTS(visitor)
        if visitor.extra:
            mappings.append(visitor.extra)
    if company is not None:
        parts += _COMPANY_TEXTS(company)
        if company.attributes:
            mappings.append(company.attributes)
    if meeting is not None:
        if (
            type(meeting.date) not in _LEAF_VALUES
            or type(meeting.duration_minutes) not in _LEAF_VALUES
            or type(meeting.lead_time_minutes) not in _LEAF_VALUES
        ):
            return _sound(conversation)
        parts += _MEETING_TEXTS(meeting)
    for user in (participants.meeting_scheduler, participants.last_routed, participants.closer):
        if user is not None:
            if type(user) is not SignalsUser:
                return _sound(conversation)
            parts += _USER_TEXTS(user)
    try:
        text = "".join(filter(None, parts))  # None and "" hold no text
    except TypeError:  # a part that is not text: walked as it is
        return _sound(conversation)
    if not text.isascii() and _SURROGATE.search(text):
        return False
    return not mappings or all(_sound(mapping) for mapping in mappings)


def _repair(value: Any, path: str) -> tuple[Any, list[str]]:
    if isinstance(value, str):
        fixed = _valid(value)
        return fixed, ([path or "value"] if fixed is not value else [])
    if attrs.has(type(value)):
        changes: dict[str, Any] = {}
        paths: list[str] = []
        for field in attrs.fields(type(value)):
            if not field.init:
                continue
            inner, found = _repair(
                getattr(value, field.name), f"{path}.{field.name}" if path else field.name
            )
            if found:
                changes[field.alias or field.name] = inner
                paths.extend(found)
        return (attrs.evolve(value, **changes) if changes else value), paths
    if isinstance(value, tuple | list):
        items = [_repair(v, f"{path}[{i}]") for i, v in enumerate(value)]
        paths = [p for _, found in items for p in found]
        if not paths:
            return value, []
        return type(value)(v for v, _ in items), paths
    if isinstance(value, Mapping):
        pairs = [
            (_repair(k, f"{path}<key>")[0], _repair(v, f"{path}.{k}")) for k, v in value.items()
        ]
        paths = [p for _, (_, found) in pairs for p in found]
        paths += [f"{path}<key>" for k, _ in pairs if isinstance(k, str) and k not in value]
        if not paths:
            return value, []
        return {k: v for k, (v, _) in pairs}, paths
    return value, []


def _unsendable(payload: Any) -> str | None:
    """Why ``payload`` cannot be sent as UTF-8 (the field), or ``None`` when it can."""
    if _sound(payload):
        return None
    _, paths = _repair(payload, "")
    if not paths:
        return None
    return f"text that cannot be encoded as UTF-8 in {', '.join(paths)}; not sent"


_LEAF_VALUES = frozenset({type(None), int, float, bool, date, datetime})
_FIELD_MAPS = (dict, MappingProxyType)


def _command_sound(command: Command) -> bool:
    """``_sound(command)``, for a command of the shape the planner builds, by one check of its
    texts joined (a text has no surrogate exactly when none of its parts has one); any other
    shape is walked as :func:`_sound` walks it."""
    person = command.person
    activity = command.activity
    fields = command.fields
    if (
        type(command) is not Command
        or type(command.kind) is not CommandKind
        or type(person) is not PersonRef
        or type(person.kind) is not PersonKind
        or type(fields) not in _FIELD_MAPS
    ):
        return _sound(command)
    texts: list[Any] | tuple[Any, ...]
    own = (  # the texts every command has
        command.key,
        command.conversation_id,
        command.email,
        command.owner_id or "",
        command.campaign_id or "",
        person.id or "",
        person.pending or "",
    )
    if fields:
        texts = [*own, *fields]
        for value in fields.values():
            if type(value) is str:
                texts.append(value)
            elif type(value) not in _LEAF_VALUES:
                return _sound(command)
        if activity is not None:
            kind = activity.kind
            if type(activity) is not Activity or type(activity.activity_date) not in _LEAF_VALUES:
                return _sound(command)
            if type(kind) is str:
                texts.append(kind)
            elif type(kind) is not ActivityKind:
                return _sound(command)
            texts += (activity.key, activity.subject, activity.body)
    elif activity is not None:  # a task: its texts in one tuple
        kind = activity.kind
        if type(activity) is not Activity or type(activity.activity_date) not in _LEAF_VALUES:
            return _sound(command)
        if type(kind) is not ActivityKind and type(kind) is not str:
            return _sound(command)
        texts = (
            *own,
            kind if type(kind) is str else "",
            activity.key,
            activity.subject,
            activity.body,
        )
    else:
        texts = own
    try:
        text = "".join(texts)
    except TypeError:  # a part that is not text: walked as it is
        return _sound(command)
    return text.isascii() or not _SURROGATE.search(text)


def _unsendable_write(
    command: Command, payload: Any, batch: _Batch, *, keep: bool = False
) -> str | None:
    """:func:`_unsendable` of ``payload``, the write of ``command``, known sooner: every text
    a write holds is the command's (whole, cut, or joined) or its person's id, so a sound
    command with a sound person id makes a sound write. A command found sound by the chained
    path (``keep``) is remembered for the kind-by-kind path, which may ask again."""
    sound = batch.sound.get(command.key) is command
    if not sound:
        sound = _command_sound(command)
        if sound and keep:
            batch.sound[command.key] = command
    if sound:
        person: object = getattr(payload, "person_id", None) or getattr(payload, "record_id", "")
        if isinstance(person, str):
            if person.isascii() or not _SURROGATE.search(person):
                return None
        elif _sound(person):
            return None
    return _unsendable(payload)


def _repaired_note(paths: Sequence[str]) -> Reason:
    return warning(
        "text_repaired",
        "text that could not be encoded as UTF-8 (a lone surrogate) was replaced by U+FFFD "
        f"in {', '.join(paths)}",
    )


# ------------------------------------------------------------------------------------------------
# One batch's bookkeeping


@attrs.define
class OptimisticClaim:
    """``run_due``'s claim of syncs it only read (``claim_unchanged``, rule 1m of
    :mod:`signals_crm.ledger.base`), not written yet: the batch's first commit starts with it,
    all or nothing (``perform(..., atomic=True)``), so no SENT is recorded unless it holds.
    ``committed`` turns true with that commit; a refusal raises ``ClaimRefusedError``."""

    op: LedgerOp
    committed: bool = False

    def first(self, operations: Sequence[LedgerOp]) -> LedgerOp:
        """``operations`` as one commit behind the claim."""
        return LedgerOp("perform", ([self.op, *operations],), {"atomic": True})


_TAKEN_OVER = "settling after takeover"
_ISOLATE = "[sent alone next] "


@attrs.define
class _Batch:
    """Mutable bookkeeping of one batch run."""

    now: datetime
    retry: RetryPolicy
    random: Callable[[], float]
    reader: Reader
    owner: str
    lease: timedelta
    settle: timedelta = timedelta(0)
    clock: Callable[[], datetime] | None = None
    records: dict[str, CommandRecord] = attrs.field(factory=dict)
    created: dict[str, str] = attrs.field(factory=dict)  # create key → CRM id
    matched: dict[str, str] = attrs.field(factory=dict)  # cid → record the CRM named
    errors: dict[str, tuple[str, bool]] = attrs.field(factory=dict)  # cid → (reason, admin)
    waits: dict[str, datetime] = attrs.field(factory=dict)  # cid → when its writes settle
    blocked: dict[str, str] = attrs.field(factory=dict)  # cid → why it could not go on
    damaged: dict[str, str] = attrs.field(factory=dict)  # cid → its unreadable ledger rows
    fences: Mapping[str, int] = attrs.field(factory=dict)  # cid → its claim's fencing token
    lost: set[str] = attrs.field(factory=set)  # cids another worker has claimed since
    inactive: set[str] = attrs.field(factory=set)  # owners the CRM refused as inactive
    pending: list[CommandRecord] = attrs.field(factory=list)  # outcomes not written yet
    before_send: dict[str, CommandRecord | None] = attrs.field(factory=dict)  # key → as it was
    sound: dict[str, Command] = attrs.field(factory=dict)  # key → a command found sound
    rate_limited: bool = False
    claim: OptimisticClaim | None = None  # written with the first commit, if not yet
    owner_sound: bool = attrs.field(init=False)  # the owner is text a record can hold

    def __attrs_post_init__(self) -> None:
        owner: object = self.owner
        self.owner_sound = type(owner) is str and sound_text(owner)

    def wall(self) -> datetime:
        """The time to stamp and judge sends by: the clock, never before the run's ``now``."""
        if self.clock is None:
            return self.now
        return max(self.now, self.clock())

    def window(self, kind: str, caps: Capabilities, *, read_by_person: bool = False) -> timedelta:
        """How long after a send its outcome may still change in the CRM (or, for a task
        found by a lagging marker search, still be missed by the read)."""
        if kind == CommandKind.CREATE_TASK.value:
            if caps.upserts_tasks:
                return timedelta(0)  # an upsert by its key: sending it again is harmless
            if read_by_person and caps.reads_tasks_by_person:
                return self.settle  # read from its person record: no search lag
            return max(self.settle, timedelta(seconds=caps.marker_search_lag))
        if kind == CommandKind.ADD_TO_CAMPAIGN.value and caps.idempotent_memberships:
            return timedelta(0)  # the CRM keeps one membership: sending it again is harmless
        return self.settle

    def wait(self, cid: str, until: datetime) -> None:
        self.waits[cid] = max(until, self.waits.get(cid, until))

    def defer(self, updates: Sequence[CommandRecord]) -> None:
        """Outcomes of a call: known now, written with the next commit (the next SENT, or the
        batch's end). A crash before then leaves them SENT, reconciled like any crash."""
        for record in updates:
            self.records[record.key] = record
        self.pending.extend(updates)

    def save(self, updates: Sequence[CommandRecord]) -> Flow:
        """Record the deferred outcomes and ``updates`` now, in one commit; those another
        process raced us to are dropped and returned."""
        pending = [*self.pending, *updates]
        self.pending = []
        saved, lost = yield from _record(pending, self.lost, self.claim)
        records = self.records
        if lost:
            for record in saved:
                records[record.key] = record
        else:  # every one saved: the deferred ones are in records already (defer)
            for record in updates:
                records[record.key] = record
        return lost

    def state(self, key: str) -> CommandState | None:
        record = self.records.get(key)
        return record.state if record is not None else None

    def mark(
        self,
        command: Command,
        state: CommandState,
        *,
        crm_id: str | None = None,
        reason: str | None = None,
        attempt: bool = False,
        at: datetime | None = None,
    ) -> CommandRecord:
        """The record of ``command`` in ``state``, stamped ``at`` (default: :meth:`wall`; the
        records of one call or one commit share a stamp, read once)."""
        old = self.records.get(command.key)
        if at is None:
            at = self.wall()
        kept = crm_id if crm_id is not None else (old.crm_id if old else None)
        if (
            reason is None
            and self.owner_sound
            and (crm_id is None or (type(crm_id) is str and crm_id and sound_text(crm_id)))
            and (kept or state is not CommandState.CONFIRMED)
            and at.utcoffset() is not None
        ):
            # Every value is the engine's own, already checked: not validated again.
            return _trusted_record(
                command.key,
                command.conversation_id,
                command.kind._value_,  # the enum's value, without the property's lookup
                state,
                at,
                kept,
                None,
                (old.attempts if old else 0) + (1 if attempt else 0),
                None,
                self.owner,
                self.fences.get(command.conversation_id),
            )
        return CommandRecord(
            key=command.key,
            conversation_id=command.conversation_id,
            kind=command.kind.value,
            state=state,
            updated_at=at,
            crm_id=kept,
            reason=reason,
            attempts=(old.attempts if old else 0) + (1 if attempt else 0),
            owner=self.owner,
            fence=self.fences.get(command.conversation_id),
        )

    def mark_all(
        self, commands: Sequence[Command], state: CommandState, reason: str | None = None
    ) -> None:
        at = self.wall()
        self.defer([self.mark(c, state, reason=reason, at=at) for c in commands])

    def mark_sent(
        self, commands: Sequence[Command], unsent: dict[str, CommandRecord | None]
    ) -> list[CommandRecord]:
        """``mark(c, SENT, attempt=True)`` of each command, stamped alike: what the records
        share (the stamp, the owner) is checked once, not once per record. Each command's
        record before the batch first sent it is kept in ``before_send`` (read here once)
        and entered in ``unsent`` (key → that record)."""
        at = self.wall()
        records, before = self.records, self.before_send
        if not (self.owner_sound and at.utcoffset() is not None):
            for command in commands:
                unsent[command.key] = before.setdefault(command.key, records.get(command.key))
            return [self.mark(c, _SENT, attempt=True, at=at) for c in commands]
        fences, owner = self.fences, self.owner
        out: list[CommandRecord] = []
        for command in commands:
            key = command.key
            old = records.get(key)
            unsent[key] = before.setdefault(key, old)
            cid = command.conversation_id
            out.append(
                _trusted_record(
                    key,
                    cid,
                    command.kind._value_,
                    _SENT,
                    at,
                    old.crm_id if old is not None else None,
                    None,
                    old.attempts + 1 if old is not None else 1,
                    None,
                    owner,
                    fences.get(cid) if fences else None,
                )
            )
        return out

    def settle_record(self, record: CommandRecord, state: CommandState, crm_id: str | None) -> Flow:
        """Record what reconciling ``record`` found."""
        yield from self.save(
            [
                attrs.evolve(
                    record,
                    state=state,
                    crm_id=crm_id if crm_id is not None else record.crm_id,
                    reason=None if state is CommandState.CONFIRMED else record.reason,
                    updated_at=self.wall(),
                    owner=self.owner,
                    fence=self.fences.get(record.conversation_id),
                )
            ]
        )

    def adopt(self, record: CommandRecord) -> Flow:
        """Take over another worker's unsettled write: UNKNOWN from now, by this clock."""
        reason = f"{_TAKEN_OVER} from {record.owner or 'an earlier worker'}"
        if record.reason:
            reason = f"{reason}: {record.reason}"
        adopted = attrs.evolve(
            record,
            state=CommandState.UNKNOWN,
            reason=reason,
            updated_at=self.wall(),
            owner=self.owner,
            fence=self.fences.get(record.conversation_id),
        )
        yield from self.save([adopted])
        return self.records.get(record.key, adopted)

    def load(self, conversations: Sequence[Conversation]) -> Flow:
        """What the ledger knows of these conversations' commands (rule 1 needs the ids).

        A conversation whose rows cannot be read is set aside as damaged; the rest go on.
        """
        ids = [c.id for c in conversations]
        try:
            found: dict[str, list[CommandRecord]] = yield from store("commands_of", ids)
        except SignalsCRMError:
            found = {}  # one of them cannot be read: one by one, to set only it aside
            for cid in ids:
                try:
                    found[cid] = yield from store("commands_for", cid)
                except SignalsCRMError as error:
                    self.damaged[cid] = f"damaged ledger row: {reason_of(error)}"
        for rows in found.values():
            for record in rows:
                self.records[record.key] = record
        for record in self.records.values():
            if (
                record.kind == _CREATE
                and record.state is CommandState.CONFIRMED
                and record.crm_id is not None
            ):
                if (record.reason or "").startswith(_DUPLICATE):
                    self.matched[record.conversation_id] = record.crm_id
                else:
                    self.created[record.key] = record.crm_id


def _record(
    records: Sequence[CommandRecord], lost_ids: set[str], claim: OptimisticClaim | None = None
) -> Flow:
    """Record ``records``, dropping those the ledger refuses (raced by another process, or of
    a conversation whose lease is lost: added to ``lost_ids``, never sent). Returns what was
    saved and what was dropped. A ``claim`` not written yet goes first, in the same commit;
    its refusal (``ClaimRefusedError``) is raised, with nothing written."""
    dropped: list[CommandRecord] = []
    pending = list(records)
    while pending:
        try:
            if claim is not None and not claim.committed:
                yield claim.first([LedgerOp("record", (pending,))])
                claim.committed = True
            else:
                yield from store("record", pending)
        except ClaimRefusedError:
            raise  # the syncs changed since they were read: nothing of the commit written
        except InvalidTransitionError as exc:
            if isinstance(exc, LeaseLostError):
                # Another worker claimed these syncs: stop touching them (never send).
                lost_ids.update(exc.conversation_ids)
            bad = set(exc.keys) | {r.key for r in pending if r.conversation_id in lost_ids}
            dropped.extend(r for r in pending if r.key in bad)
            pending = [r for r in pending if r.key not in bad]
            continue
        break
    return pending, dropped


_CREATE = CommandKind.CREATE_PERSON.value
_DUPLICATE = "duplicate of "
_RECONCILE_CHUNK = 200  # queries per reconcile read at most (a failing one holds back these)


def _answers(found: Any, asked: Sequence[object]) -> list[Any]:
    answers = list(found)
    if len(answers) != len(asked):
        msg = f"reconcile returned {len(answers)} answers for {len(asked)} queries"
        raise CRMAPIError(msg)
    return answers


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _live_person(records: Sequence[PersonRecord], kind: PersonKind) -> str | None:
    """The id of the best live record of ``kind`` (rule 6): never a converted Lead."""
    live = [r for r in records if r.kind is kind and not r.is_converted]
    if not live:
        return None
    floor = datetime.min.replace(tzinfo=UTC)
    return max(live, key=lambda r: (r.last_modified or floor, r.id)).id


def _find_created(emails: Sequence[str], kinds: Sequence[PersonKind], batch: _Batch) -> Flow:
    """For each email, the live person record of its kind (rule 6), or ``None``."""
    found: list[tuple[PersonRecord, ...]] = _answers(
        (
            yield from batch.reader.read_each(
                "find_people", list(emails), [], size=batch.reader.lookup_size
            )
        ),
        emails,
    )
    return [_live_person(rs, kind) for rs, kind in zip(found, kinds, strict=True)]


def _reconcile_query(
    record: CommandRecord,
    conversation: Conversation,
    batch: _Batch,
    campaign: str | None,
) -> ReconcileQuery | None:
    kind = record.kind
    cid = conversation.id
    if kind == CommandKind.CREATE_TASK.value:
        prefix = f"{cid}:task:"
        person = batch.created.get(f"{cid}:person") or batch.matched.get(cid)
        email = conversation.email.strip() if conversation.email else None
        return TaskByMarker(
            task_marker(cid, record.key.removeprefix(prefix)), person_id=person, email=email
        )
    if kind == CommandKind.ADD_TO_CAMPAIGN.value:
        person = batch.created.get(f"{cid}:person")
        if person is None or campaign is None:
            return None
        return MembershipByPerson(campaign, person)
    return None


def _reconcile_chunk(
    asked: Sequence[tuple[CommandRecord, Any]],
    batch: _Batch,
    caps: Capabilities,
    early: Mapping[str, datetime] | None = None,
    absent: dict[str, datetime] | None = None,
) -> Flow:
    """Reconcile one chunk; a failure holds back only the chunk's conversations.

    ``early`` holds the writes read before their settle window ends (key → when it ends): one
    found is CONFIRMED (a write that has landed cannot un-land, and it was sent once); one not
    found, or whose read fails, waits for the window's end, when it is read again.
    """
    early = early or {}
    try:
        creates = [(r, q) for r, q in asked if r.kind == _CREATE]
        others = [(r, q) for r, q in asked if r.kind != _CREATE]
        found: list[tuple[CommandRecord, str | None]] = []
        if creates:
            ids = yield from _find_created(
                [q for _, q in creates], [caps.person_kind for _ in creates], batch
            )
            found.extend(zip([r for r, _ in creates], ids, strict=True))
        if others:
            queries = [q for _, q in others]
            ids = _answers((yield from batch.reader.read_each("reconcile", queries)), queries)
            found.extend(zip([r for r, _ in others], ids, strict=True))
    except STOPS_A_RUN:
        raise
    except Exception as error:  # noqa: BLE001  # rule 1: one failing read holds back its own
        reason = f"reconcile read failed: {reason_of(error)}"
        for record, _ in asked:
            if record.key in early:
                batch.wait(record.conversation_id, early[record.key])
            else:
                batch.blocked.setdefault(record.conversation_id, reason)
        return
    for record, crm_id in found:
        if crm_id is None:
            if record.key in early:
                batch.wait(record.conversation_id, early[record.key])  # may still land
                continue
            if record.kind == _CREATE and absent is not None:
                absent[record.conversation_id] = record.updated_at  # when it was sent
            yield from batch.settle_record(record, CommandState.PLANNED, None)
            continue
        yield from batch.settle_record(record, CommandState.CONFIRMED, crm_id)
        if record.kind == _CREATE:
            batch.created[record.key] = crm_id


def reconcile(
    conversations: Sequence[Conversation],
    batch: _Batch,
    caps: Capabilities,
    campaign: str | None,
) -> Flow:
    """Rule 1: settle every SENT / UNKNOWN command of these conversations by reading the CRM.

    A write not found is taken as absent only once its settle window has passed; before
    that it is read too (found: CONFIRMED), and if absent its conversation waits for the
    window's end. Another worker's SENT write is adopted first, and its window runs from now.
    """
    if not batch.records:
        return  # the ledger holds no command of these conversations: nothing is unsettled
    by_id = {c.id: c for c in conversations}
    unsettled = [
        r
        for r in batch.records.values()
        if r.state in (CommandState.SENT, CommandState.UNKNOWN) and r.conversation_id in by_id
    ]
    # Person creates first: memberships need their ids.
    absent: dict[str, datetime] = {}  # cid → when its create, read just now as absent, was sent
    for creates in (True, False):
        group = [r for r in unsettled if (r.kind == _CREATE) is creates]
        asked: list[tuple[CommandRecord, Any]] = []
        early: dict[str, datetime] = {}
        for record in group:
            cid = record.conversation_id
            if (
                record.kind == CommandKind.UPDATE_PERSON.value
                or (record.kind == CommandKind.CREATE_TASK.value and caps.upserts_tasks)
                or (
                    record.kind == CommandKind.ADD_TO_CAMPAIGN.value and caps.idempotent_memberships
                )
            ):
                # An update, a task upserted by its key, or a membership the CRM keeps one of
                # is idempotent: simply sent again.
                yield from batch.settle_record(record, CommandState.PLANNED, None)
                continue
            current = record
            if record.owner != batch.owner and not (record.reason or "").startswith(_TAKEN_OVER):
                current = yield from batch.adopt(record)
                if current.state not in (CommandState.SENT, CommandState.UNKNOWN):
                    continue  # the other worker settled it meanwhile
            conversation = by_id[cid]
            query: Any = _reconcile_query(current, conversation, batch, campaign)
            by_person = isinstance(query, TaskByMarker) and bool(query.person_id or query.email)
            ready = current.updated_at + batch.window(current.kind, caps, read_by_person=by_person)
            if record.kind == _CREATE:
                query = conversation.email.strip() if conversation.email else None
            elif absent.get(cid) == current.updated_at and record.kind in (
                CommandKind.ADD_TO_CAMPAIGN.value,
                CommandKind.CREATE_TASK.value,
            ):
                # Sent chained with its create (one request, one time), which did not land:
                # it cannot have either. (A task of this conversation sent on to another
                # record, its create never re-sent, is read like any other.)
                yield from batch.settle_record(current, CommandState.PLANNED, None)
                continue
            if not caps.supports_reconcile or query is None:
                if batch.wall() < ready:
                    batch.wait(cid, ready)
                continue  # stays unknown; reported, never blindly re-sent
            if batch.wall() < ready:
                early[current.key] = ready
            asked.append((current, query))
        # As many a chunk as one lookup request takes: creates are read by email; a chunk
        # of tasks read from their people is one association read and its activities' reads
        # (HubSpot: about three requests per hundred).
        size = max(1, min(caps.lookup_batch_size, _RECONCILE_CHUNK))
        for chunk in _chunks(asked, size):
            yield from _reconcile_chunk(chunk, batch, caps, early, absent)


def held_emails(conversations: Sequence[Conversation]) -> Flow:
    """Emails of these conversations that another conversation's unsettled create may still
    give a person record to (email → that conversation, and when its create was last sent or
    adopted). They wait with it (rule 1). One ledger read (``creates_in_flight``)."""
    wanted = {normalize_email(email) for c in conversations if (email := c.email)}
    if not wanted:
        return {}
    held: dict[str, tuple[str, datetime]] = {}
    creates: list[CreateInFlight] = yield from store("creates_in_flight", sorted(wanted))
    if not creates:
        return held
    ids = {c.id for c in conversations}
    for create in creates:
        if create.conversation_id not in ids:
            held.setdefault(create.email, (create.conversation_id, create.updated_at))
    return held


# ------------------------------------------------------------------------------------------------
# Writing


_METHODS = {
    CommandKind.CREATE_PERSON: "create_people",
    CommandKind.UPDATE_PERSON: "update_people",
    CommandKind.CREATE_TASK: "create_tasks",
    CommandKind.ADD_TO_CAMPAIGN: "add_to_campaign",
}


def _payload(command: Command, batch: _Batch) -> Any:
    kind = command.kind
    if kind is _CREATE_KIND:
        return command.to_person_write()
    person_id = command.person.resolve(batch.created)
    if person_id is None:
        return None
    if kind is _TASK_KIND:
        return command.to_task_write(person_id)
    if kind is _UPDATE_KIND:
        return command.to_person_update(person_id)
    return command.to_membership_write(person_id)


def _reconcile_sent(
    commands: Sequence[Command], payloads: Sequence[Any], batch: _Batch, caps: Capabilities
) -> Flow:
    """After an ambiguous failure of a write call (settle window zero): which landed?

    Person creates are read first (by email, rule 6): a chained task or membership refers to
    its create, so it is looked for on the record the create made, and when the create did not
    land it certainly did not either."""
    creates = [c for c in commands if c.kind is CommandKind.CREATE_PERSON]
    landed: dict[str, str] = {}
    unknown: list[str] = []
    if not caps.supports_reconcile:
        unknown.extend(
            c.key
            for c, p in zip(commands, payloads, strict=True)
            if c.kind is CommandKind.CREATE_PERSON
            or (c.kind is CommandKind.CREATE_TASK and not caps.upserts_tasks)
            or (
                c.kind is CommandKind.ADD_TO_CAMPAIGN
                and c.campaign_id is not None
                and not caps.idempotent_memberships
            )
        )
        return landed, unknown
    if creates:
        ids = yield from _find_created(
            [c.email for c in creates], [c.person.kind for c in creates], batch
        )
        landed.update({c.key: i for c, i in zip(creates, ids, strict=True) if i is not None})
    sent_creates = {c.key for c in creates}
    queries: list[ReconcileQuery | None] = []
    for command, payload in zip(commands, payloads, strict=True):
        person_id = getattr(payload, "person_id", None)
        if _is_chained(command, payload) or (
            command.depends_on in sent_creates and person_id == _CHAINED
        ):
            person_id = landed.get(command.depends_on or "")
            if person_id is None:
                queries.append(None)  # its create did not land: neither did it
                continue
        if command.kind is CommandKind.CREATE_PERSON:
            queries.append(None)  # read by email above (rule 6)
        elif command.kind is CommandKind.CREATE_TASK and caps.upserts_tasks:
            queries.append(None)  # an upsert by its key: simply sent again
        elif command.kind is CommandKind.CREATE_TASK:
            if command.marker is not None and caps.reads_tasks_by_person and person_id:
                # Read from the person record the task was written on: no search lag.
                queries.append(TaskByMarker(command.marker, person_id=str(person_id)))
            elif command.marker is None or caps.marker_search_lag > 0:
                # A marker search may trail the write: settle it in a later run instead.
                unknown.append(command.key)
                queries.append(None)
            else:
                queries.append(TaskByMarker(command.marker))
        elif command.kind is CommandKind.ADD_TO_CAMPAIGN and caps.idempotent_memberships:
            queries.append(None)  # the CRM keeps one membership: simply sent again
        elif (
            command.kind is CommandKind.ADD_TO_CAMPAIGN
            and command.campaign_id is not None
            and person_id
        ):
            queries.append(MembershipByPerson(command.campaign_id, person_id))
        else:
            queries.append(None)  # updates: idempotent, simply sent again
    asked = [q for q in queries if q is not None]
    found: list[str | None] = []
    if asked:
        found = _answers((yield from batch.reader.read(Call("reconcile", (asked,)))), asked)
    answers = iter(found)
    for command, query in zip(commands, queries, strict=True):
        if query is None:
            continue
        crm_id = next(answers)
        if crm_id is not None:
            landed[command.key] = crm_id
    return landed, unknown


Todo = list[tuple[Command, Any]]
"""Commands of one kind with their payloads, about to go out in one call."""


def write_phase(
    plans: Iterable[Plan], batch: _Batch, caps: Capabilities, kinds: Sequence[CommandKind]
) -> Flow:
    """Send the plans' commands of ``kinds``, one kind after the other (dependency order).

    Every command about to go out is recorded SENT first, all of the phase in one commit
    (together with the outcomes of earlier calls not yet written); a command recorded SENT
    that the phase then does not send (the CRM's daily limit, a run stopped) is put back.
    """
    # The phase's commands by kind, in one pass (a kind's identity, not its hash, picks it).
    by_kind: dict[int, list[Command]] = {id(kind): [] for kind in kinds}
    for plan in plans:
        for command in plan.commands:
            bucket = by_kind.get(id(command.kind))
            if bucket is not None:
                bucket.append(command)
    calls: list[Todo] = []
    for commands in by_kind.values():
        calls.extend(_calls(commands, batch, caps))
    if not calls or batch.rate_limited:
        return
    unsent: dict[str, CommandRecord | None] = {}  # recorded SENT, not sent yet
    items = [item for call in calls for item in call]
    marked = yield from _mark_sent(items, batch, {}, into=unsent)
    whole = len(marked) == sum(len(call) for call in calls)  # nothing raced: each call whole
    try:
        for call in calls:
            todo = call if whole else [(c, p) for c, p in call if c.key in unsent]
            if todo and not batch.rate_limited:
                yield from _send(todo, batch, caps, unsent)
    except STOPS_A_RUN:
        _put_back(unsent, batch)
        yield from batch.save([])
        raise
    _put_back(unsent, batch)


def _sendable(command: Command, batch: _Batch) -> bool:
    """Whether ``command`` may go out now: not settled (a confirmed create's id is noted),
    not unsettled (never re-sent blindly), and its conversation neither waits nor stopped."""
    return _sendable_as(command, batch.records.get(command.key), batch)


def _sendable_as(command: Command, old: CommandRecord | None, batch: _Batch) -> bool:
    """:func:`_sendable`, with ``command``'s record (``old``) read already."""
    if old is not None:
        state = old.state
        if state is _CONFIRMED or state is _FAILED:
            if state is _CONFIRMED and command.kind is _CREATE_KIND and old.crm_id is not None:
                batch.created[command.key] = old.crm_id
            return False
        if state is _UNKNOWN or state is _SENT:
            return False  # not reconciled (yet): never re-sent blindly
    cid = command.conversation_id
    return not (cid in batch.waits or cid in batch.blocked or cid in batch.lost)


def _calls(commands: Sequence[Command], batch: _Batch, caps: Capabilities) -> list[Todo]:
    """The calls that send ``commands`` (one kind), in the adapter's write batch size; a
    command whose last call broke perhaps midway goes alone."""
    todo: Todo = []
    alone: Todo = []
    records = batch.records
    for command in commands:
        old = records.get(command.key)  # read once, for _sendable_as and the isolation below
        if not _sendable_as(command, old, batch):
            continue
        payload = _payload(command, batch)
        if payload is None:
            continue  # its person record does not exist (yet): the conversation is retried
        why = _unsendable_write(command, payload, batch)
        if why is not None:
            batch.defer([batch.mark(command, CommandState.FAILED, reason=why)])
            batch.errors.setdefault(command.conversation_id, (why, False))
            continue
        if old is not None and (old.reason or "").startswith(_ISOLATE):
            alone.append((command, payload))
        else:
            todo.append((command, payload))
    size = max(1, caps.write_batch_size)
    return [list(chunk) for chunk in _chunks(todo, size)] + [[item] for item in alone]


def _mark_sent(
    todo: Todo,
    batch: _Batch,
    unsent: dict[str, CommandRecord | None],
    into: dict[str, CommandRecord | None] | None = None,
) -> Flow:
    """Record ``todo`` SENT (those of ``unsent`` already are: they only leave it); the ones
    another process raced us to are dropped. Returns what may go out. ``into`` (a phase's
    unsent list, filled while the records are at hand) receives each command recorded SENT
    here, with its record before the batch first sent it."""
    if unsent:
        # (Which were recorded SENT already is read before any leaves unsent: a key twice.)
        fresh = [c for c, _ in todo if c.key not in unsent]
        for command, _ in todo:
            unsent.pop(command.key, None)  # recorded SENT already: it only leaves unsent
        if not fresh:
            return todo  # all recorded SENT already (the outcomes before stay deferred)
    else:
        fresh = [c for c, _ in todo]
    entered: dict[str, CommandRecord | None] = {} if into is None else into
    lost = {r.key for r in (yield from batch.save(batch.mark_sent(fresh, entered)))}
    if not lost:
        return todo
    for key in lost:
        entered.pop(key, None)  # never sent: it was not recorded SENT
    return [(c, p) for c, p in todo if c.key not in lost]


def _put_back(unsent: Mapping[str, CommandRecord | None], batch: _Batch) -> None:
    """Commands recorded SENT that never went out: back to what they were (PLANNED)."""
    back: list[CommandRecord] = []
    for key, old in unsent.items():
        record = batch.records[key]
        back.append(
            attrs.evolve(
                record,
                state=CommandState.PLANNED,
                reason=old.reason if old is not None else None,
                attempts=old.attempts if old is not None else 0,
                updated_at=batch.wall(),
            )
        )
    batch.defer(back)


def _send(todo: Todo, batch: _Batch, caps: Capabilities, unsent: dict[str, Any]) -> Flow:
    """Send one call's worth of commands of one kind until each has an outcome (rule 4):
    the verdict on a failure (:mod:`.verdicts`) picks what is done, the loop only repeats."""
    attempt = 0
    while todo:
        todo = yield from _mark_sent(_refresh(todo, batch), batch, unsent)
        if not todo:
            return
        hint: float | None = None
        reason: str | None = None
        try:
            results = yield from _write_call(todo)
        except CALL_ERRORS as error:
            verdict = classify(error, records=len(todo), per_record=False)
            todo = yield from _ON_FAILED_CALL[verdict](todo, error, batch, caps)
            reason = reason_of(error)
            hint = error.retry_after if isinstance(error, RateLimitedError) else None
        else:
            todo = _answered(todo, results, batch)
        if not todo:
            return
        todo = _refresh(todo, batch)  # a chained dependent of a failed create: left PLANNED
        if not todo:
            return
        attempt += 1
        if attempt >= batch.retry.max_attempts:
            for command, _ in todo:
                why = reason or batch.records[command.key].reason or "retries exhausted"
                batch.errors.setdefault(command.conversation_id, (why, False))
            return
        yield Sleep(batch.retry.delay(attempt - 1, batch.random, hint))


def _write_call(todo: Todo) -> Flow:
    """The adapter call for ``todo``; one answer per record, or the call counts as broken."""
    if _needs_chain(todo):
        return (yield from _chain_call(todo))
    method = _METHODS[todo[0][0].kind]
    results: list[WriteResult] = list((yield Call(method, ([p for _, p in todo],))))
    if len(results) != len(todo):
        msg = f"{method} returned {len(results)} results for {len(todo)} records"
        raise CRMAPIError(msg)  # one verdict for every broken call
    return results


# -- chained writes: a person's write and its dependents in one call (rule 3) ------------------

_CHAINED = ""
"""The ``person_id`` of a task or membership sent in the same chain as its person's create:
the adapter refers it to the create's answer (``WriteChain``)."""


def _is_chained(command: Command, payload: Any) -> bool:
    kind = command.kind
    return (kind is _TASK_KIND or kind is _MEMBERSHIP_KIND) and (
        getattr(payload, "person_id", None) == _CHAINED
    )


def _needs_chain(todo: Todo) -> bool:
    """Whether ``todo`` must go as chains: several kinds, or a dependent of a create in it."""
    kind = todo[0][0].kind
    dependent = kind is CommandKind.CREATE_TASK or kind is CommandKind.ADD_TO_CAMPAIGN
    for command, payload in todo:
        if command.kind is not kind:
            return True
        if dependent and getattr(payload, "person_id", None) == _CHAINED:
            return True
    return False


def _chain_of(command: Command, payload: Any) -> str:
    """Which chain a write belongs to: its person's create (the writes of every conversation
    of one visitor that wait for it), else its own conversation."""
    if command.kind is CommandKind.CREATE_PERSON:
        return command.key
    if _is_chained(command, payload) and command.depends_on is not None:
        return command.depends_on
    return f"{command.conversation_id}\x00"


def _groups(todo: Todo) -> list[Todo]:
    """``todo`` by chain (:func:`_chain_of`), in order."""
    by_chain: dict[str, Todo] = {}
    for command, payload in todo:
        by_chain.setdefault(_chain_of(command, payload), []).append((command, payload))
    return list(by_chain.values())


_PERSON_WRITES = (CommandKind.CREATE_PERSON, CommandKind.UPDATE_PERSON)


def _chain_call(todo: Todo) -> Flow:
    """``todo`` sent as chains in one ``write_chains`` call; one result per record."""
    groups = _groups(todo)
    chains: list[WriteChain] = []
    for group in groups:
        person = next((p for c, p in group if c.kind in _PERSON_WRITES), None)
        tasks = tuple(p for c, p in group if c.kind is CommandKind.CREATE_TASK)
        member = next((p for c, p in group if c.kind is CommandKind.ADD_TO_CAMPAIGN), None)
        chains.append(WriteChain(person, tasks, member))
    answers: list[WriteChainResult] = list((yield Call("write_chains", (chains,))))
    if len(answers) != len(chains) or any(
        len(a.tasks) != len(c.tasks)
        or (a.person is None) != (c.person is None)
        or (a.membership is None) != (c.membership is None)
        for a, c in zip(answers, chains, strict=False)
    ):
        msg = f"write_chains returned results that do not match its {len(chains)} chains"
        raise CRMAPIError(msg)  # one verdict for every broken call
    results: dict[str, WriteResult] = {}
    for group, answer in zip(groups, answers, strict=True):
        task_results = iter(answer.tasks)
        create_ok = True
        for command, _ in group:
            if command.kind in (CommandKind.CREATE_PERSON, CommandKind.UPDATE_PERSON):
                assert answer.person is not None  # noqa: S101  # checked above
                results[command.key] = answer.person
                if command.kind is CommandKind.CREATE_PERSON:
                    create_ok = answer.person.ok
            elif command.kind is CommandKind.CREATE_TASK:
                results[command.key] = next(task_results)
            else:
                assert answer.membership is not None  # noqa: S101  # checked above
                results[command.key] = answer.membership
        for command, payload in group:
            if not create_ok and _is_chained(command, payload):
                # Its create did not succeed: whatever the adapter says, it was not executed.
                results[command.key] = WriteResult.failure(_not_executed())
    return [results[c.key] for c, _ in todo]


def _not_executed() -> CRMAPIError:
    return CRMAPIError(
        "not executed: its person record was not created in the same request",
        error_code="PROCESSING_HALTED",
        retryable=True,
    )


def _refresh(todo: Todo, batch: _Batch) -> Todo:
    """Chained dependents whose create is no longer in ``todo``: with the id it got now, or
    left out (still PLANNED) when it has none."""
    keys: set[str] | None = None
    out: Todo | None = None  # a copy, from the first item that changes
    for index, (command, sent) in enumerate(todo):
        if _is_chained(command, sent):
            if keys is None:
                keys = {c.key for c, _ in todo}
            if command.depends_on not in keys:
                if out is None:
                    out = todo[:index]
                payload = _payload(command, batch)
                if payload is not None:
                    out.append((command, payload))
                continue
        if out is not None:
            out.append((command, sent))
    return todo if out is None else out


def chain_todo(plans: Iterable[Plan], batch: _Batch, caps: Capabilities) -> list[Todo] | None:
    """The batch's writes as one chain per conversation (its person write first), when the
    adapter chains writes and that costs fewer calls than writing kind by kind; else
    ``None`` (rule 3). Backfills, whose calls are full, stay kind by kind."""
    if not caps.chains_writes or caps.max_chain_writes < 1:
        return None
    plans = list(plans)
    size = max(1, caps.write_batch_size)
    # Kind by kind would cost at most ``ceiling`` calls (every command sent), and chains never
    # fewer than their writes over max_chain_writes: once that many writes are chained the
    # answer is None (writing kind by kind), and what is left unread is left to that path.
    planned: dict[str, int] = {}  # by the kind's value: no enum hash (a Python call)
    for plan in plans:
        for command in plan.commands:
            kind = command.kind._value_
            planned[kind] = planned.get(kind, 0) + 1
    ceiling = sum(-(-n // size) for n in planned.values())
    enough = ceiling * caps.max_chain_writes
    chained = 0
    order = {  # by the kind's value, like planned
        CommandKind.CREATE_PERSON.value: 0,
        CommandKind.UPDATE_PERSON.value: 1,
        CommandKind.CREATE_TASK.value: 2,
        CommandKind.ADD_TO_CAMPAIGN.value: 3,
    }
    by_chain: dict[str, Todo] = {}
    counts: dict[str, int] = {}
    creating: set[str] = set()
    for plan in plans:
        commands = sorted(plan.commands, key=lambda c: order[c.kind._value_])
        for command in commands:
            if not _sendable(command, batch):
                continue
            old = batch.records.get(command.key)
            if old is not None and (old.reason or "").startswith(_ISOLATE):
                return None  # a call broke midway: its records go alone, kind by kind
            payload = _payload(command, batch)
            if payload is None and command.depends_on in creating:
                if command.kind is _TASK_KIND:
                    payload = command.to_task_write(_CHAINED)
                elif command.kind is _MEMBERSHIP_KIND:
                    payload = command.to_membership_write(_CHAINED)
                else:
                    return None  # an update of a record made in this batch: after it, by kind
            if payload is None:
                continue  # its person record does not exist (yet): the conversation is retried
            why = _unsendable_write(command, payload, batch, keep=True)
            if why is not None:
                batch.defer([batch.mark(command, CommandState.FAILED, reason=why)])
                batch.errors.setdefault(command.conversation_id, (why, False))
                continue
            if command.kind is _CREATE_KIND:
                creating.add(command.key)
            by_chain.setdefault(_chain_of(command, payload), []).append((command, payload))
            kind = command.kind._value_
            counts[kind] = counts.get(kind, 0) + 1
            chained += 1
        if chained >= enough:
            return None  # kind by kind costs fewer calls, whatever the rest of the batch holds
    chains = list(by_chain.values())
    if not chains or any(len(chain) > caps.max_chain_writes for chain in chains):
        return None
    phased = sum(-(-n // size) for n in counts.values())
    if len(_pack(chains, caps.max_chain_writes)) >= phased:
        return None
    return chains


def _pack(chains: Sequence[Todo], limit: int) -> list[Todo]:
    """Chains in calls of at most ``limit`` writes, in order; a chain is never split."""
    calls: list[Todo] = []
    for chain in chains:
        if not calls or len(calls[-1]) + len(chain) > limit:
            calls.append([])
        calls[-1].extend(chain)
    return calls


def chain_phase(chains: Sequence[Todo], batch: _Batch, caps: Capabilities) -> Flow:
    """Send the chains (:func:`chain_todo`): every write of them recorded SENT in one commit
    (with the outcomes not written yet), then the calls; a write recorded SENT that did not go
    out is put back to PLANNED, like :func:`write_phase`."""
    if batch.rate_limited:
        return
    items = [item for chain in chains for item in chain]
    unsent: dict[str, CommandRecord | None] = {}  # recorded SENT, not sent yet
    yield from _mark_sent(items, batch, {}, into=unsent)
    try:
        for call in _pack(chains, caps.max_chain_writes):
            todo = _refresh([(c, p) for c, p in call if c.key in unsent], batch)
            if todo and not batch.rate_limited:
                yield from _send(todo, batch, caps, unsent)
    except STOPS_A_RUN:
        _put_back(unsent, batch)
        yield from batch.save([])
        raise
    _put_back(unsent, batch)


# -- what a failed call leads to, by verdict: each returns what is still to send ---------------


def _stop(todo: Todo, error: BaseException, batch: _Batch, _caps: Capabilities) -> Flow:
    """Authentication or permission: nothing landed; the run stops with the error."""
    yield from ()  # a flow like the others, with nothing to ask
    batch.mark_all([c for c, _ in todo], CommandState.PLANNED)
    raise error


def _daily_limit(todo: Todo, error: BaseException, batch: _Batch, _caps: Capabilities) -> Flow:
    """The CRM's daily limit: nothing sent; the batch stops, its syncs stay due."""
    yield from ()  # a flow like the others, with nothing to ask
    batch.mark_all([c for c, _ in todo], CommandState.PLANNED, reason_of(error))
    batch.rate_limited = True
    return []


def _failed(todo: Todo, error: BaseException, batch: _Batch, _caps: Capabilities) -> Flow:
    """Refused for good: a dead letter with the CRM's reason."""
    yield from ()  # a flow like the others, with nothing to ask
    reason = reason_of(error)
    batch.mark_all([c for c, _ in todo], CommandState.FAILED, reason)
    for command, _ in todo:
        batch.errors.setdefault(command.conversation_id, (reason, False))
    return []


def _split(todo: Todo, error: BaseException, batch: _Batch, caps: Capabilities) -> Flow:
    """The CRM refused the request as a whole: nothing landed. Halves find the record (a
    chain stays whole; one chain alone goes kind by kind, its person write first)."""
    batch.mark_all([c for c, _ in todo], CommandState.PLANNED, reason_of(error))
    parts: list[Todo]
    if _needs_chain(todo):
        groups = _groups(todo)
        if len(groups) > 1:
            half = len(groups) // 2
            parts = [
                [i for g in groups[:half] for i in g],
                [i for g in groups[half:] for i in g],
            ]
        else:
            kinds = list(dict.fromkeys(c.kind for c, _ in todo))
            parts = [[(c, p) for c, p in todo if c.kind is k] for k in kinds]
    else:
        half = len(todo) // 2
        parts = [todo[:half], todo[half:]]
    for part in parts:
        if part and not batch.rate_limited:
            yield from _send(part, batch, caps, {})
    return []


def _retry(todo: Todo, error: BaseException, batch: _Batch, _caps: Capabilities) -> Flow:
    """Certainly not sent: all of it again, after a backoff."""
    yield from ()  # a flow like the others, with nothing to ask
    batch.mark_all([c for c, _ in todo], CommandState.PLANNED, reason_of(error))
    return todo


def _isolate(todo: Todo, error: BaseException, batch: _Batch, caps: Capabilities) -> Flow:
    """The call broke, perhaps midway: settle, then send each record alone."""
    return (yield from _unknown(todo, error, batch, caps, isolate=True))


def _unknown(
    todo: Todo, error: BaseException, batch: _Batch, caps: Capabilities, *, isolate: bool = False
) -> Flow:
    """It may have landed: UNKNOWN; read back now (no settle window) or after the window."""
    reason = reason_of(error)
    tag = _ISOLATE if isolate else ""
    commands = [c for c, _ in todo]
    # The settle window runs from the ambiguous answer: the request went out before it (a
    # phase records its commands SENT before its first call, and a later call of the phase
    # may leave long after that, behind a rate limiter's wait).
    batch.defer([batch.mark(c, CommandState.UNKNOWN, reason=f"{tag}{reason}") for c in commands])
    # A task is read back from the person record it was written on (its payload names it).
    window = max(batch.window(c.kind.value, caps, read_by_person=True) for c in commands)
    if isolate or window > timedelta(0):
        if not isolate and isinstance(error, TransportError):
            # No answer at all (a dropped connection, a timeout): the write may well have
            # landed, so read it back now. A 5xx answer seldom means it did; reading would
            # mostly spend calls of the CRM's rate limit.
            yield from _probe(todo, batch, caps)
        again = [] if isolate else _harmless_again(todo, batch, caps, reason)
        until = batch.wall() + window
        for command in commands:
            if batch.state(command.key) is CommandState.UNKNOWN:
                batch.wait(command.conversation_id, until)
        return again
    payloads = [p for _, p in todo]
    landed, unknown = yield from _reconcile_sent(commands, payloads, batch, caps)
    done = []
    for command in commands:
        if command.key in landed:
            done.append(batch.mark(command, CommandState.CONFIRMED, crm_id=landed[command.key]))
            if command.kind is CommandKind.CREATE_PERSON:
                batch.created[command.key] = landed[command.key]
        elif command.key not in unknown:
            done.append(batch.mark(command, CommandState.PLANNED, reason=reason))
    batch.defer(done)
    return [(c, p) for c, p in todo if c.key not in landed and c.key not in unknown]


def _harmless_again(todo: Todo, batch: _Batch, caps: Capabilities, reason: str) -> Todo:
    """The writes of an ambiguous call that are harmless to send again (no window of their
    own: a membership the CRM keeps one of, an upserted task), once the record they refer to
    is known: back to PLANNED, to go again in this run. A chained call's window is its
    create's; without this they would wait it out with their create long confirmed."""
    again: Todo = []
    for command, payload in todo:
        if batch.state(command.key) is not CommandState.UNKNOWN:
            continue
        if batch.window(command.kind.value, caps, read_by_person=True) > timedelta(0):
            continue
        if _is_chained(command, payload) and command.depends_on not in batch.created:
            continue  # its create is not known to have landed: it waits with it
        again.append((command, payload))
    batch.defer([batch.mark(c, CommandState.PLANNED, reason=reason) for c, _ in again])
    return again


def _probe(todo: Todo, batch: _Batch, caps: Capabilities) -> Flow:
    """Read an ambiguous call's writes back at once, before their settle window ends: those
    found are CONFIRMED (a write that has landed cannot un-land, and it was sent once), so
    their dependents go on in this run; the rest stay UNKNOWN and wait for the window. A
    failing read leaves them all waiting."""
    commands = [c for c, _ in todo]
    try:
        landed, _ = yield from _reconcile_sent(commands, [p for _, p in todo], batch, caps)
    except STOPS_A_RUN:
        raise
    except Exception:  # noqa: BLE001  # only a shortcut: the window's read decides
        return
    done = []
    for command in commands:
        if command.key in landed:
            done.append(batch.mark(command, CommandState.CONFIRMED, crm_id=landed[command.key]))
            if command.kind is CommandKind.CREATE_PERSON:
                batch.created[command.key] = landed[command.key]
    batch.defer(done)


_ON_FAILED_CALL: Mapping[Verdict, Callable[[Todo, BaseException, _Batch, Capabilities], Flow]] = {
    Verdict.STOP: _stop,
    Verdict.DAILY_LIMIT: _daily_limit,
    Verdict.FAILED: _failed,
    Verdict.SPLIT: _split,
    Verdict.RETRY: _retry,
    Verdict.UNKNOWN: _unknown,
    Verdict.ISOLATE: _isolate,
}
"""What a whole call's verdict leads to (the table of :mod:`.verdicts` says which verdict)."""


def _answered(todo: Todo, results: Sequence[WriteResult], batch: _Batch) -> Todo:
    """Each record's outcome of an answered call; returns the records to send again."""
    again: Todo = []
    updates: list[CommandRecord] = []
    at = batch.wall()  # one stamp for the call's outcomes
    # What batch.mark checks of every record: the owner and the stamp, checked once here.
    trusted = batch.owner_sound and at.utcoffset() is not None
    records, fences, worker, created = batch.records, batch.fences, batch.owner, batch.created
    confirmed, create = CommandState.CONFIRMED, CommandKind.CREATE_PERSON
    for (command, payload), result in zip(todo, results, strict=True):
        crm_id = result.id
        if result.error is None and crm_id is not None:  # result.ok
            key = command.key
            if (
                trusted
                and type(crm_id) is str
                and crm_id
                and (crm_id.isascii() or sound_text(crm_id))
            ):
                old = records.get(key)
                cid = command.conversation_id
                updates.append(
                    _trusted_record(
                        key,
                        cid,
                        command.kind._value_,
                        confirmed,
                        at,
                        crm_id,
                        None,
                        old.attempts if old is not None else 0,
                        None,
                        worker,
                        fences.get(cid) if fences else None,
                    )
                )
            else:
                updates.append(batch.mark(command, confirmed, crm_id=crm_id, at=at))
            if command.kind is create:
                created[key] = crm_id
            continue
        failure = result.error
        if (
            isinstance(failure, DuplicateRecordError)
            and command.kind is CommandKind.CREATE_PERSON
            and failure.matched_ids
        ):
            # Rule 5: a match on the record the CRM names, never a second create.
            matched = failure.matched_ids[0]
            reason = f"{_DUPLICATE}{matched}"
            updates.append(
                batch.mark(command, CommandState.CONFIRMED, crm_id=matched, reason=reason, at=at)
            )
            batch.matched[command.conversation_id] = matched
            continue
        verdict = Verdict.FAILED
        if failure is not None:
            verdict = classify(failure, records=1, per_record=True)
        reason = reason_of(failure) if failure is not None else "no id returned"
        if verdict is Verdict.RETRY:
            updates.append(batch.mark(command, CommandState.PLANNED, reason=reason, at=at))
            again.append((command, payload))
        elif verdict is Verdict.ADMIN:
            owner = _inactive_owner(failure, payload)
            if owner is not None:
                # Surfaced once, and planned again without that owner (its next source).
                batch.inactive.add(owner)
                reason = _inactive_issue(owner)
            updates.append(batch.mark(command, CommandState.PLANNED, reason=reason, at=at))
            batch.errors.setdefault(command.conversation_id, (reason, True))
        else:
            updates.append(batch.mark(command, CommandState.FAILED, reason=reason, at=at))
            batch.errors.setdefault(command.conversation_id, (reason, False))
    batch.defer(updates)
    return again


INACTIVE_OWNER = "INACTIVE_OWNER_OR_USER"


def _inactive_owner(failure: BaseException | None, payload: Any) -> str | None:
    """The owner a per-record refusal says is inactive (the CRM's ``INACTIVE_OWNER_OR_USER``
    on a write that named an owner), or ``None``."""
    if not isinstance(failure, CRMAPIError) or failure.error_code != INACTIVE_OWNER:
        return None
    owner = getattr(payload, "owner_id", None)
    return owner if isinstance(owner, str) else None


def _inactive_issue(owner: str) -> str:
    return (
        f"CRM user {owner} is inactive: what it would own goes to the next owner source (then "
        "the default owner, then the CRM's default) until the user or the user mapping is fixed"
    )


# ------------------------------------------------------------------------------------------------
# Planning and syncing a batch


def plan_batch(
    conversations: Sequence[Conversation],
    planner: Planner,
    *,
    now: datetime,
    mode: SyncMode,
    schema: ObjectSchema | None,
    created: Mapping[str, str] | None = None,
    reader: Reader | None = None,
) -> Flow:
    """Plan with the core, answering its lookups through the adapter."""
    plans: tuple[Plan, ...] = yield from (reader or Reader()).lookups(
        planner.plan(conversations, now=now, mode=mode, schema=schema, created=created)
    )
    return plans


@attrs.frozen
class BatchResult:
    """The outcomes of a batch, and whether the CRM's daily limit stopped it."""

    outcomes: list[ConversationOutcome]
    rate_limited: bool = False
    lost: frozenset[str] = frozenset()
    inactive: frozenset[str] = frozenset()
    """CRM users the CRM refused as inactive owners in this batch."""
    carried: tuple[str, ...] = ()  # conversations left for the next round (backfill only)
    writes: tuple[LedgerOp, ...] = ()
    """What is left to write (the last outcomes, the links): :func:`finish_batch` does."""
    claim: OptimisticClaim | None = None
    """``run_due``'s optimistic claim, when nothing was written yet: the settle commit
    (:func:`finish_batch`) starts with it."""


def _digest(fields: Mapping[str, Any]) -> str:
    text = repr(sorted((k, repr(v)) for k, v in fields.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _keyed_updates(plan: Plan) -> Plan:
    """Key each update by its payload: the same change is sent once, a new change again."""
    for command in plan.commands:
        if command.kind is _UPDATE_KIND:
            break
    else:
        return plan
    if type(plan) is not Plan or any(type(c) is not Command for c in plan.commands):
        commands = tuple(
            attrs.evolve(c, key=f"{c.key}:{_digest(c.fields)}") if c.kind is _UPDATE_KIND else c
            for c in plan.commands
        )
        return attrs.evolve(plan, commands=commands)
    # attrs.evolve, by the builders (positional, every field): the same values
    commands = tuple(
        _new_command(
            f"{c.key}:{_digest(c.fields)}",
            c.kind,
            c.conversation_id,
            c.email,
            c.person,
            c.fields,
            c.owner_id,
            c.activity,
            c.campaign_id,
        )
        if c.kind is _UPDATE_KIND
        else c
        for c in plan.commands
    )
    return _new_plan(
        plan.conversation_id,
        plan.mode,
        plan.email,
        plan.eligibility,
        plan.outcome,
        commands,
        plan.match,
        plan.owner,
        plan.trace,
    )


def _adopt_match(plan: Plan, batch: _Batch) -> Plan:
    """A conversation whose create the CRM matched to an existing record (rule 5)."""
    if not batch.matched:
        return plan
    matched = batch.matched.get(plan.conversation_id)
    if matched is None or plan.outcome is PlanOutcome.SKIPPED:
        return plan
    note = info("duplicate_matched", f"the CRM named the existing record {matched}")
    if plan.outcome is not PlanOutcome.CREATE:
        return attrs.evolve(plan, trace=(*plan.trace, note))  # the lookup found it now
    # The lookup still misses it: no create, no campaign; the activities go to that record.
    batch.created[f"{plan.conversation_id}:person"] = matched
    tasks = tuple(c for c in plan.commands if c.kind is CommandKind.CREATE_TASK)
    return attrs.evolve(
        plan, outcome=PlanOutcome.UNCHANGED, commands=tasks, trace=(*plan.trace, note)
    )


def sync_batch(
    conversations: Sequence[Conversation],
    planner: Planner,
    *,
    now: datetime,
    mode: SyncMode,
    schema: ObjectSchema | None,
    retry: RetryPolicy,
    random: Callable[[], float],
    owner: str = "",
    lease: timedelta = timedelta(minutes=10),
    settle: timedelta = timedelta(0),
    clock: Callable[[], datetime] | None = None,
    hold_emails: bool = False,
    fences: Mapping[str, int] | None = None,
    carry: bool = False,
    claim: OptimisticClaim | None = None,
) -> Flow:
    """Sync a batch of conversations (module doc); one outcome per distinct conversation.

    ``settle`` is rule 1's window, ``clock`` the wall clock sends are stamped with (never
    before ``now``), ``hold_emails`` whether to hold back the batch's visitors whose email
    another conversation may still be creating a record for (rule 1), ``fences`` the fencing
    token of each claimed conversation (every command of it is recorded with it; refused ones
    mean another worker took over).
    ``carry`` (a backfill's rounds but the last) lets the conversations whose writes would
    only part-fill a call wait for the next round (:mod:`signals_crm._flows.carry`). They get
    no outcome here: ``BatchResult.carried`` lists them. ``claim`` (``run_due``'s optimistic
    claim of syncs it read) goes first in the batch's first commit, ``fences`` being the
    fences it will hand out; if it is refused, ``ClaimRefusedError`` is raised with nothing
    written (nothing was sent: every request follows a commit).
    """
    config, caps = planner.config, planner.capabilities
    conversations = list({c.id: c for c in conversations}.values())  # a repeat: the last wins
    repaired: dict[str, list[str]] = {}
    valid: list[Conversation] = []
    for conversation in conversations:
        fixed, paths = repair_text(conversation)
        if paths:
            repaired[conversation.id] = paths
        valid.append(fixed)
    conversations = valid
    reader = Reader(retry, random, caps.lookup_batch_size)
    batch = _Batch(
        now=now,
        retry=retry,
        random=random,
        reader=reader,
        owner=owner,
        lease=lease,
        settle=settle,
        clock=clock,
        fences=dict(fences or {}),
        claim=claim,
    )
    try:
        yield from batch.load(conversations)
        damaged = batch.damaged
        healthy = [c for c in conversations if c.id not in damaged] if damaged else conversations
        yield from reconcile(healthy, batch, caps, config.campaign_id)
        if hold_emails and mode is SyncMode.AUTOMATIC:
            yield from _hold_shared_emails(healthy, batch)
        waiting = set(batch.waits) | set(batch.blocked)
        active = [c for c in healthy if c.id not in waiting] if waiting else list(healthy)
        if caps.upserts_people and batch.records:  # (none held: the order stays)
            # A visitor's create that went out before goes out again from the same
            # conversation, so with the same key: its late request and the resend are one
            # upsert, one record.
            active.sort(key=lambda c: f"{c.id}:person" not in batch.records)
        resumed = {key.removesuffix(":person"): crm_id for key, crm_id in batch.created.items()}
        planned: tuple[Plan, ...] = ()
        if active:
            planned = yield from plan_batch(
                active,
                planner,
                now=now,
                mode=mode,
                schema=schema,
                created=resumed,
                reader=reader,
            )
        if batch.matched:
            plans = {p.conversation_id: _adopt_match(_keyed_updates(p), batch) for p in planned}
        else:  # (_adopt_match leaves every plan as it is)
            plans = {p.conversation_id: _keyed_updates(p) for p in planned}
        planned = ()  # (the plans re-keyed are not kept twice)
        later: set[str] = set()
        records = batch.records
        if carry:
            later = carried(
                list(plans.values()),
                size=caps.write_batch_size,
                pending=(
                    (lambda c: (r := records.get(c.key)) is None or r.state is CommandState.PLANNED)
                    if records
                    else None  # the ledger holds none of their commands: each is to send
                ),
            )
            plans = {cid: plan for cid, plan in plans.items() if cid not in later}
        before = set(batch.matched)
        chains = chain_todo(plans.values(), batch, caps)
        if chains is not None:
            yield from chain_phase(chains, batch, caps)
        else:
            yield from write_phase(plans.values(), batch, caps, (CommandKind.CREATE_PERSON,))
        fresh = [c for c in active if c.id in batch.matched and c.id not in before]
        if fresh:
            # Creates the CRM just refused as duplicates: plan again, the lookup may find them now.
            replanned: tuple[Plan, ...] = yield from plan_batch(
                fresh, planner, now=now, mode=mode, schema=schema, reader=reader
            )
            for plan in replanned:
                plans[plan.conversation_id] = _adopt_match(_keyed_updates(plan), batch)
        dependents = (
            CommandKind.UPDATE_PERSON,
            CommandKind.CREATE_TASK,
            CommandKind.ADD_TO_CAMPAIGN,
        )
        if chains is None:
            yield from write_phase(plans.values(), batch, caps, dependents)
        elif fresh:
            # Chained: only the duplicates' activities are left, for the records they matched.
            again = [plans[c.id] for c in fresh if c.id in plans]
            yield from write_phase(again, batch, caps, dependents)
        outcomes: list[ConversationOutcome] = []
        siblings = _sibling_creates(plans.values())
        for conversation in conversations:
            cid = conversation.id
            if cid in later:
                continue
            note = (_repaired_note(repaired[cid]),) if cid in repaired else ()
            if cid in plans:
                outcome = _outcome(plans[cid], batch, siblings)
            elif cid in batch.damaged:
                outcome = ConversationOutcome(cid, OutcomeKind.FAILED, error=batch.damaged[cid])
            elif cid in batch.blocked:
                outcome = ConversationOutcome(cid, OutcomeKind.RETRY, error=batch.blocked[cid])
            else:
                outcome = _waiting(cid, batch)
            if note:
                outcome = attrs.evolve(outcome, reasons=(*note, *outcome.reasons))
            outcomes.append(outcome)
    except Exception:
        # What is known is written before the error goes on: an outcome is never lost to it.
        # (With an optimistic claim not written yet nothing was sent: nothing to keep.)
        if batch.pending and (claim is None or claim.committed):
            yield from batch.save([])
        raise
    writes = [LedgerOp("record", (batch.pending,))] if batch.pending else []
    links = _links(outcomes)
    if links:
        writes.append(LedgerOp("link_many", (links,)))
    return BatchResult(
        outcomes,
        batch.rate_limited,
        frozenset(batch.lost),
        frozenset(batch.inactive),
        tuple(c.id for c in conversations if c.id in later) if later else (),
        tuple(writes),
        claim if claim is not None and not claim.committed else None,
    )


def _hold_shared_emails(conversations: Sequence[Conversation], batch: _Batch) -> Flow:
    """Rule 1: a visitor whose email another conversation may still be creating a record for
    (its create is unsettled) waits with it, so a late commit never meets a second create."""
    candidates = [c for c in conversations if c.id not in batch.waits]
    held: dict[str, tuple[str, datetime]] = yield from held_emails(candidates)
    if not held:
        return
    soonest = batch.wall() + timedelta(seconds=batch.retry.reschedule_after)
    for conversation in candidates:
        email = normalize_email(conversation.email) if conversation.email else None
        if email is not None and email in held:
            # Until the other create's window ends (when it is read back), or a retry's delay.
            batch.wait(conversation.id, max(held[email][1] + batch.settle, soonest))
            batch.errors.setdefault(
                conversation.id,
                (f"waiting for conversation {held[email][0]}'s create of the same email", False),
            )


def _waiting(cid: str, batch: _Batch) -> ConversationOutcome:
    until = batch.waits[cid]
    reason = batch.errors.get(cid, (None, False))[0] or (
        f"waiting until {until.isoformat()} for the CRM to settle an ambiguous write"
    )
    return ConversationOutcome(cid, OutcomeKind.RETRY, error=reason, retry_at=until)


def _links(outcomes: Sequence[ConversationOutcome]) -> list[PersonLink]:
    """Which CRM record each synced visitor is (remembered in the ledger)."""
    links: list[PersonLink] = []
    for outcome in outcomes:
        plan = outcome.plan
        if outcome.person_id is None or plan is None or plan.email is None:
            continue
        if outcome.kind is _SKIPPED or outcome.kind is _FAILED_OUTCOME:
            continue
        # The kind of the first command's person, else of the record matched.
        if plan.commands:
            kind = plan.commands[0].person.kind
        elif plan.match is not None and plan.match.record is not None:
            kind = plan.match.record.kind
        else:
            continue
        email, crm_id = plan.email, outcome.person_id
        if type(email) is str and type(crm_id) is str and type(kind) is PersonKind:
            email = normalize_email(email)  # PersonLink's converter
            if email and crm_id and sound_text(email) and sound_text(crm_id):
                # What PersonLink's checks ask, asked here: built slot by slot.
                links.append(_trusted_link(email, crm_id, kind))
                continue
        links.append(PersonLink(plan.email, outcome.person_id, kind))
    return links


def finish_batch(result: BatchResult, more: Sequence[LedgerOp] = ()) -> Flow:
    """Write what a batch left to write (its last outcomes, its links) and the caller's
    ``more`` operations in one transaction: one commit. Returns what each of ``more`` gave.

    A record the ledger refuses (another process raced us to it) is dropped and the rest
    recorded again; any other failure of the batch's own writes is raised."""
    own = list(result.writes)
    writes = LedgerOp("perform", ([*own, *more],))
    performed: list[Performed]
    if result.claim is not None and not result.claim.committed:
        # The optimistic claim first, all or nothing with the rest: a refusal writes nothing.
        claimed: list[Performed] = yield result.claim.first([writes])
        result.claim.committed = True
        performed = claimed[1][0]
    else:
        performed = yield writes
    for operation, (_, error) in zip(own, performed, strict=False):
        if error is None:
            continue
        if operation.method == "record" and isinstance(error, InvalidTransitionError):
            yield from _record(operation.args[0], set())
            continue
        raise error
    return performed[len(own) :]


def _settled_state(command: Command, batch: _Batch) -> CommandState | None:
    """A command's state; one waiting for a person record whose create failed for good has
    failed with it (it can never be sent)."""
    state = batch.state(command.key)
    dependency = command.depends_on
    if (
        (state is None or state is _PLANNED)
        and dependency is not None
        and batch.state(dependency) is _FAILED
    ):
        return _FAILED  # never sent, and it never can be
    return state


_OUTCOME_KINDS = {outcome.value: kind for outcome, kind in _FROM_PLAN.items()}  # by value
_new_outcome = builder(ConversationOutcome)  # positional, every field
_NO_ADMIN = False  # (needs_admin)


def _sibling_creates(plans: Iterable[Plan]) -> dict[str, Command] | None:
    """Each email's person create in this batch, when some plan writes nothing of its own
    against a record an earlier conversation of the batch creates (``None`` when none does)."""
    if not any(
        p.match is None and not p.commands and p.outcome is not PlanOutcome.SKIPPED for p in plans
    ):
        return None
    return {
        normalize_email(command.email): command
        for plan in plans
        for command in plan.commands
        if command.kind is CommandKind.CREATE_PERSON and command.email
    }


def _outcome(
    plan: Plan, batch: _Batch, siblings: Mapping[str, Command] | None = None
) -> ConversationOutcome:
    kind = _OUTCOME_KINDS[plan.outcome._value_]  # (a str key: no enum hash)
    cid = plan.conversation_id
    if siblings is not None and plan.match is None and not plan.commands and plan.email:
        # Planned against the record an earlier conversation of this batch creates, with
        # nothing of its own to write: done only once that create is. Until then (unknown,
        # refused, not sent) it goes again, and is then planned on what the CRM holds (an
        # ambiguous create holds its email, rule 1): its own create, if the other's never
        # lands or that conversation no longer qualifies (a webhook changed it meanwhile).
        create = siblings.get(normalize_email(plan.email))
        made = batch.created.get(create.key) if create is not None else None
        if made is None:
            other = create.conversation_id if create is not None else "another conversation"
            return ConversationOutcome(
                cid,
                OutcomeKind.RETRY,
                None,
                plan.trace if type(plan.trace) is tuple else tuple(plan.trace),
                f"waiting for conversation {other}'s create of the same email",
                plan=plan,
                retry_at=batch.waits.get(cid),
            )
        trace = plan.trace if type(plan.trace) is tuple else tuple(plan.trace)
        return _new_outcome(cid, kind, made, trace, None, _NO_ADMIN, plan, None)
    person_id: str | None = None
    match = plan.match
    if match is not None and match.record is not None:
        person_id = match.record.id
    created, records = batch.created, batch.records
    last: PersonRef | None = None
    found: str | None = None
    settled = True  # every command CONFIRMED or FAILED
    failed = False
    for command in plan.commands:
        person = command.person  # a record created by this plan, or by an earlier one
        if person is not last:  # the commands of a plan mostly share their person
            last = person
            found = person.resolve(created)
        person_id = found or person_id
        record = records.get(command.key)
        state = record.state if record is not None else None
        if state is _CONFIRMED:
            continue
        if state is None or state is _PLANNED:
            state = _settled_state(command, batch)
        if state is _FAILED:
            failed = True
        else:
            settled = False
    if not person_id:
        person_id = batch.matched.get(cid) if batch.matched else None
    trace = plan.trace if type(plan.trace) is tuple else tuple(plan.trace)
    if plan.outcome is _SKIPPED_PLAN:
        return _new_outcome(cid, kind, None, trace, None, _NO_ADMIN, plan, None)
    if settled and not failed:
        return _new_outcome(cid, kind, person_id, trace, None, _NO_ADMIN, plan, None)
    reasons = list(trace)
    error = batch.errors.get(cid)
    if not settled:
        # Something can still land (planned, unknown, in flight): try again later, even when
        # another write of the conversation failed for good.
        reason, admin = error or ("some writes are not confirmed yet", False)
        return ConversationOutcome(
            cid,
            OutcomeKind.RETRY,
            person_id,
            tuple(reasons),
            reason,
            needs_admin=admin,
            plan=plan,
            retry_at=batch.waits.get(cid),
        )
    failed_reason = next(
        (
            batch.records[c.key].reason
            for c in plan.commands
            if c.key in batch.records and batch.records[c.key].state is CommandState.FAILED
        ),
        None,
    )
    reason, admin = error or (failed_reason or "a write failed", False)
    reasons.append(warning("write_failed", reason))
    return ConversationOutcome(
        cid,
        OutcomeKind.FAILED,
        person_id,
        tuple(reasons),
        reason,
        needs_admin=admin,
        plan=plan,
    )


# ------------------------------------------------------------------------------------------------
# Account owners and preflight


def account_owners(
    companies: Sequence[Company], config: SyncConfig, reader: Reader | None = None
) -> Flow:
    """The ownership rules end to end: one account lookup for all the companies."""
    pulled = [
        (m.source.removeprefix("company."), m.target)
        for m in config.field_mappings.account
        if m.source.startswith("company.")
    ]
    results: list[OwnershipResult] = yield from (reader or Reader()).lookups(
        plan_account_owners(companies, config.ownership, config.users, pulled=pulled)
    )
    return results


def _sync_key_problems(caps: Capabilities, read: Callable[[Call], Flow]) -> Flow:
    """The adapter upserts by ``caps.sync_key_field``: it must exist on each object it upserts,
    marked external ID and unique (else a replay could make a second record)."""
    field = caps.sync_key_field
    objects = [caps.person_object] if caps.upserts_people else []
    if caps.upserts_tasks and caps.task_object:
        objects.append(caps.task_object)
    problems: list[Problem] = []
    if field is None or not caps.supports_describe:
        return problems
    for object_name in objects:
        schema = yield from read(Call("describe", (object_name,)))
        found = schema.get(field)
        if found is None:
            why = "has no such field"
        elif not found.external_id:
            why = "has it, but not marked External ID"
        elif not found.unique:
            why = "has it, but not marked Unique"
        else:
            continue
        problems.append(
            Problem(
                "sync_key_field",
                f"{object_name} {why}: {field} must be a custom text field marked External ID "
                "and Unique on it (see 'Setting up the external ID field' in the CRM's docs)",
            )
        )
    return problems


def preflight(
    config: SyncConfig,
    caps: Capabilities,
    reader: Reader | None = None,
    *,
    check_campaign: bool = False,
    inactive: dict[str, Problem] | None = None,
) -> Flow:
    """Every problem of ``config`` against the CRM's schema, users and (when the adapter can
    tell) campaign, and every mapping that can never apply on this CRM (mapping rule 6).
    ``inactive``, when given, receives the configured CRM users that are inactive, each with
    the problem that reports it (the owner rules pass over them, so it is not blocking)."""
    read = (reader or Reader()).read
    problems: list[Problem] = id_problems(config, caps)  # ids this CRM cannot have
    problems.extend(inapplicable_mappings(config.field_mappings, caps))
    malformed = {p.path for p in problems}  # (not looked up: their problem is said)
    if (
        check_campaign
        and config.campaign_id is not None
        and caps.supports_campaigns
        and "campaign_id" not in malformed
    ):
        exists = yield from read(Call("campaign_exists", (config.campaign_id,)))
        if not exists:
            problems.append(
                Problem("campaign_id", f"the CRM has no {caps.campaign_kind} {config.campaign_id}")
            )
    person_set = "lead" if caps.person_kind.value == "lead" else "contact"
    mappings = mapping_set_for(config.field_mappings, caps.person_kind)
    if caps.supports_describe:
        schema = yield from read(Call("describe", (caps.person_object,)))
        problems.extend(validate_mappings(mappings, schema, path=f"field_mappings.{person_set}"))
        if config.field_mappings.account or owner_field_paths(config.ownership):
            account = yield from read(Call("describe", (caps.account_object,)))
            for index, mapping in enumerate(config.field_mappings.account):
                if account.get(mapping.target) is None:
                    problems.append(
                        Problem(
                            f"field_mappings.account[{index}].target",
                            f"{account.name} has no field {mapping.target!r}",
                        )
                    )
            problems.extend(owner_field_problems(config.ownership, account))
    problems.extend((yield from _sync_key_problems(caps, read)))
    users = yield from read(Call("list_users", ()))
    by_id = {u.id: u for u in users}
    for index, entry in enumerate(config.users.entries):
        user = by_id.get(entry.crm_user_id)
        where = f"user_mapping[{index}].crm_user_id"
        if where in malformed:
            continue
        if user is None:
            problems.append(Problem(where, f"no CRM user {entry.crm_user_id}"))
        elif not user.active:
            problems.append(Problem(where, f"CRM user {entry.crm_user_id} is inactive"))
            if inactive is not None:
                inactive[entry.crm_user_id] = problems[-1]
    if config.default_owner is not None and "default_owner" not in malformed:
        user = by_id.get(config.default_owner)
        if user is None or not user.active:
            problems.append(
                Problem("default_owner", f"{config.default_owner} is not an active CRM user")
            )
        if user is not None and not user.active and inactive is not None:
            inactive[config.default_owner] = problems[-1]
    return problems
