"""Domain values: what a conversation is, and what the CRM holds.

Everything here is a frozen ``attrs`` class validated when built: invalid input raises
:class:`~signals_crm.exceptions.ConfigurationError` naming the field, never a bare ``KeyError``
or ``TypeError``. No IO, no clock, no randomness: times come in as arguments.

The rules for values:

1. **Types are checked when a value is built.** Every field holds the type it declares (text is
   ``str``, a count is an ``int`` and never ``True``/``False``, a time is a ``datetime``),
   ``None`` where it is optional. A wrong type is refused with every wrong field named
   (``email: must be text, not int``), so it cannot fail later in ``explain`` or a sync.
2. **Field maps** (``Visitor.extra``, ``Company.attributes``, the ``fields`` of CRM records) have
   text keys and :data:`FieldValue` values.
3. The checks are ``isinstance`` tests over a per-class table, run when a host or an adapter
   builds a value; what planning builds from checked values (an :class:`Activity`) is not
   checked again, so planning is not slowed (``benchmarks/plan_throughput.py``).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from operator import attrgetter
from typing import Any, TypeAlias

import attrs

from signals_crm.core._build import builder
from signals_crm.core.normalize import normalize_email
from signals_crm.exceptions import ConfigurationError, Problem

__all__ = [
    "BUILT_IN_KINDS",
    "AccountRecord",
    "Activity",
    "ActivityKind",
    "CRMUser",
    "Company",
    "Conversation",
    "ConversationStatus",
    "CustomActivity",
    "FieldSchema",
    "FieldType",
    "FieldValue",
    "Meeting",
    "ObjectSchema",
    "Participants",
    "PersonKind",
    "PersonRecord",
    "Role",
    "SignalsUser",
    "Traffic",
    "Visitor",
    "check_kind_name",
    "field_getter",
    "field_map",
    "fields_reader",
    "is_valid_email",
    "kind_name",
    "normalize_email",
]

FieldValue: TypeAlias = str | int | float | bool | date | datetime | None
"""A value read from Signals or the CRM. ``None`` means empty."""


def field_map(value: Mapping[str, FieldValue]) -> dict[str, FieldValue]:
    """Converter: a private copy of a field-value mapping."""
    return dict(value)


def _fail(path: str, message: str) -> ConfigurationError:
    return ConfigurationError([Problem(path, message)])


_FIELD_VALUE_TYPES = (str, int, float, bool, date, datetime)

# (attribute, accepted types, None allowed, what the message calls it)
_Spec: TypeAlias = tuple[tuple[str, type | tuple[type, ...], bool, str], ...]


def _type_name(value: object) -> str:
    return type(value).__name__


def _wrong_types(obj: object, spec: _Spec) -> list[Problem]:
    """The fields of ``obj`` whose value is not of its declared type (rule 1)."""
    problems: list[Problem] = []
    for name, types, optional, expected in spec:
        value = getattr(obj, name)
        if value is None:
            if not optional:
                problems.append(Problem(name, f"required: must be {expected}"))
        elif not isinstance(value, types) or (value.__class__ is bool and types is int):
            # (a bool is an int to isinstance; a count or an id never is true/false)
            problems.append(Problem(name, f"must be {expected}, not {_type_name(value)}"))
    return problems


def _wrong_fields(name: str, fields: Mapping[Any, Any]) -> list[Problem]:
    """The entries of a field map that are not text → :data:`FieldValue` (rule 2)."""
    problems: list[Problem] = []
    for key, value in fields.items():
        if not isinstance(key, str):
            problems.append(Problem(f"{name}[{key!r}]", "key: must be text"))
        elif value is not None and not isinstance(value, _FIELD_VALUE_TYPES):
            problems.append(
                Problem(
                    f"{name}.{key}",
                    "must be text, a number, true/false, a date or a datetime, "
                    f"not {_type_name(value)}",
                )
            )
    return problems


def _check(obj: object, spec: _Spec, *, fields: str | None = None) -> None:
    """Raise one :class:`ConfigurationError` naming every field of ``obj`` of a wrong type."""
    problems = _wrong_types(obj, spec)
    if fields is not None:
        value = getattr(obj, fields)
        problems.extend(_wrong_fields(fields, value))
    if problems:
        raise ConfigurationError(problems)


_TEXT = "text"


# ------------------------------------------------------------------------------------------------
# Emails

# The whole address at most 254 characters, the local part at most 64 (the lookaheads), then
# a dot-atom local part and a domain of letter-digit-hyphen labels with a 2-63 letter TLD.
_EMAIL_RE = re.compile(
    r"""(?=.{1,254}\Z)(?=[^@]{1,64}@)"""
    r"""[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"""
    r"""@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}""",
    re.DOTALL,
)


def is_valid_email(email: str | None) -> bool:
    """Whether ``email`` (after trimming) is a syntactically valid address.

    Plain ``local@domain.tld`` with the dot-atom characters of RFC 5322 in the local part; no
    quoted local parts, no IP-literal domains, at most 254 characters. This is what both CRMs
    accept in their email fields.
    """
    return email is not None and _EMAIL_RE.fullmatch(email.strip()) is not None


# ------------------------------------------------------------------------------------------------
# Conversation side


class Role(enum.Enum):
    """A Signals user's part in a conversation, in lead-owner priority order."""

    MEETING_SCHEDULER = "meeting_scheduler"
    LAST_ROUTED = "last_routed"
    CLOSER = "closer"

    # Members are singletons compared by identity: hash them by identity too (a C slot, where
    # Enum's own __hash__ is a Python call). Dicts and sets of them are built per command.
    __hash__ = object.__hash__

    @property
    def priority(self) -> int:
        """0 is the highest priority."""
        return _ROLE_PRIORITY[self]


_ROLE_PRIORITY = {Role.MEETING_SCHEDULER: 0, Role.LAST_ROUTED: 1, Role.CLOSER: 2}


class ConversationStatus(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"


class ActivityKind(enum.Enum):
    """Kinds of conversation activity that can become CRM tasks."""

    CHAT_TRANSCRIPT = "chat_transcript"
    MEETING_BOOKED = "meeting_booked"

    # Members are singletons compared by identity: hash them by identity too (a C slot, where
    # Enum's own __hash__ is a Python call). Dicts and sets of them are built per command.
    __hash__ = object.__hash__


@attrs.frozen
class SignalsUser:
    """A Signals user (agent, rep) identified by id and/or email."""

    id: str | None = None
    email: str | None = None

    def __attrs_post_init__(self) -> None:
        _check(self, _SIGNALS_USER)
        if not self.id and not self.email:
            raise _fail("user", "a Signals user needs an id or an email")


_SIGNALS_USER: _Spec = (("id", str, True, _TEXT), ("email", str, True, _TEXT))


@attrs.frozen
class Participants:
    """The three Signals users a conversation may name, any of them absent."""

    meeting_scheduler: SignalsUser | None = None
    last_routed: SignalsUser | None = None
    closer: SignalsUser | None = None

    def __attrs_post_init__(self) -> None:
        _check(self, _PARTICIPANTS)

    def get(self, role: Role) -> SignalsUser | None:
        if role is Role.MEETING_SCHEDULER:
            return self.meeting_scheduler
        if role is Role.LAST_ROUTED:
            return self.last_routed
        return self.closer


_PARTICIPANTS: _Spec = tuple(
    (role, SignalsUser, True, "a SignalsUser")
    for role in ("meeting_scheduler", "last_routed", "closer")
)


@attrs.frozen
class Meeting:
    """A meeting booked during the chat. ``date`` has no time of day (as Signals sends it)."""

    id: str
    name: str | None = None
    agent_name: str | None = None
    date: date | None = None
    duration_minutes: int | None = None
    lead_time_minutes: int | None = None

    def __attrs_post_init__(self) -> None:
        _check(self, _MEETING)


_MEETING: _Spec = (
    ("id", str, False, _TEXT),
    ("name", str, True, _TEXT),
    ("agent_name", str, True, _TEXT),
    ("date", date, True, "a date"),
    ("duration_minutes", int, True, "a whole number of minutes"),
    ("lead_time_minutes", int, True, "a whole number of minutes"),
)


@attrs.frozen
class Traffic:
    """Where the visitor came from (text fields of the chat)."""

    referrer: str | None = None
    source_type: str | None = None
    traffic_source: str | None = None
    traffic_campaign: str | None = None

    def __attrs_post_init__(self) -> None:
        _check(self, _TRAFFIC)


_TRAFFIC: _Spec = tuple(
    (name, str, True, _TEXT)
    for name in ("referrer", "source_type", "traffic_source", "traffic_campaign")
)


@attrs.frozen
class Visitor:
    """The Signals contact the visitor is. ``extra`` keeps fields Signals adds later."""

    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    middle_name: str | None = None
    preferred_name: str | None = None
    name: str | None = None
    honorific: str | None = None
    phone: str | None = None
    home_phone: str | None = None
    mobile_phone: str | None = None
    other_phone: str | None = None
    other_email: str | None = None
    birthdate: datetime | None = None
    description: str | None = None
    tenant_id: str | None = None
    extra: Mapping[str, FieldValue] = attrs.field(factory=dict, converter=field_map)

    def __attrs_post_init__(self) -> None:
        _check(self, _VISITOR, fields="extra")


@attrs.frozen
class Company:
    """The company a visitor belongs to. ``attributes`` feed segments and field mappings."""

    domain: str | None = None
    name: str | None = None
    attributes: Mapping[str, FieldValue] = attrs.field(factory=dict, converter=field_map)

    def __attrs_post_init__(self) -> None:
        _check(self, _COMPANY, fields="attributes")

    def with_attributes(self, extra: Mapping[str, FieldValue]) -> Company:
        """A copy whose attributes are updated with ``extra`` (pulled account fields)."""
        merged: dict[str, FieldValue] = {**self.attributes, **extra}
        return Company(domain=self.domain, name=self.name, attributes=merged)


_COMPANY: _Spec = (("domain", str, True, _TEXT), ("name", str, True, _TEXT))


@attrs.frozen(weakref_slot=False)  # no __weakref__ slot: _build.builder's quick builder
class Activity:
    """One conversation activity that may become a CRM task.

    ``key`` is stable for the conversation (``"transcript"``, ``"meeting:48213"``): with the
    conversation id it forms the task's marker and idempotency key. Activities are made by
    the core from a conversation whose types were checked, so they are not checked again
    (planning builds one per task).
    """

    kind: ActivityKind | str
    """A built-in kind, or the name of a kind the host declared (``SyncConfig.activity_kinds``)."""
    key: str
    subject: str
    body: str
    activity_date: date | None = None


_activity = builder(Activity)  # positional, every field: built per task planned
# The built-in kinds as module globals: reading an Enum's member off its class is a slow
# attribute lookup, and activities are made per conversation planned.
_CHAT_TRANSCRIPT = ActivityKind.CHAT_TRANSCRIPT
_MEETING_BOOKED = ActivityKind.MEETING_BOOKED


_KIND_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
BUILT_IN_KINDS: frozenset[str] = frozenset(k.value for k in ActivityKind)


def kind_name(kind: ActivityKind | str) -> str:
    """The name of an activity kind: a built-in's value, or a declared kind's own name."""
    return kind.value if isinstance(kind, ActivityKind) else kind


def check_kind_name(name: object, path: str) -> list[Problem]:
    """Why ``name`` cannot name a host-declared activity kind (empty when it can)."""
    if not isinstance(name, str) or not _KIND_NAME.match(name):
        return [Problem(path, "a kind name is a lower-case letter, then letters, digits or _")]
    if name in BUILT_IN_KINDS:
        return [Problem(path, f"{name!r} is a built-in kind; declare another name")]
    return []


@attrs.frozen
class CustomActivity:
    """An activity of a kind the host declared (a form filled, a file shared, a call logged).

    ``kind`` names a declared kind (``SyncConfig.activity_kinds``); ``id`` is stable for the
    conversation (with the kind it makes the task's marker, so a redelivery never makes a second
    task); ``occurred_on`` dates the task (else the close date); ``data`` holds the values its
    templates name as ``{activity.<key>}``.
    """

    kind: str
    id: str
    occurred_on: date | None = None
    data: Mapping[str, FieldValue] = attrs.field(factory=dict, converter=field_map)

    def __attrs_post_init__(self) -> None:
        problems = check_kind_name(self.kind, "kind")
        given: object = self.id
        if not isinstance(given, str) or not given.strip():
            problems.append(Problem("id", "an activity needs a non-empty id"))
        occurred: object = self.occurred_on
        wrong_type = not isinstance(occurred, date) or isinstance(occurred, datetime)
        if occurred is not None and wrong_type:
            problems.append(Problem("occurred_on", "must be a date"))
        problems.extend(_wrong_fields("data", self.data))
        if problems:
            raise ConfigurationError(problems)


def _activities(value: Iterable[CustomActivity]) -> tuple[CustomActivity, ...]:
    return tuple(value)


@attrs.frozen
class Conversation:
    """A Signals web-chat conversation and everything the sync needs to know about it.

    ``lead_score`` is 0 to 3 stars, or ``None`` when the visitor is unscored.
    ``closed_at`` must be timezone-aware.
    """

    id: str
    status: ConversationStatus = ConversationStatus.CLOSED
    closed_at: datetime | None = None
    lead_score: int | None = None
    visitor: Visitor | None = None
    company: Company | None = None
    participants: Participants = attrs.field(factory=Participants)
    transcript: str | None = None
    meeting: Meeting | None = None
    traffic: Traffic = attrs.field(factory=Traffic)
    custom_activities: tuple[CustomActivity, ...] = attrs.field(default=(), converter=_activities)
    """Activities of host-declared kinds (the host supplies them; see ``docs/activities.md``)."""

    def __attrs_post_init__(self) -> None:
        problems = _wrong_types(self, _CONVERSATION)
        listed: tuple[object, ...] = self.custom_activities
        for index, item in enumerate(listed):
            if not isinstance(item, CustomActivity):
                problems.append(Problem(f"custom_activities[{index}]", "a CustomActivity"))
        seen: set[tuple[str, str]] = set()
        for index, activity in enumerate(self.custom_activities):
            if isinstance(activity, CustomActivity):  # (others are reported above)
                if (activity.kind, activity.id) in seen:
                    msg = f"a second {activity.kind} activity with id {activity.id!r}"
                    problems.append(Problem(f"custom_activities[{index}]", msg))
                seen.add((activity.kind, activity.id))
        if problems:  # (the checks below assume the types are right)
            raise ConfigurationError(problems)
        if not self.id.strip():
            problems.append(Problem("id", "a conversation needs a non-empty id"))
        score = self.lead_score
        if score is not None and (isinstance(score, bool) or score not in (0, 1, 2, 3)):
            problems.append(Problem("lead_score", "must be 0, 1, 2, 3 or None (unscored)"))
        if self.closed_at is not None and self.closed_at.utcoffset() is None:
            problems.append(Problem("closed_at", "must be a timezone-aware datetime"))
        if self.status is ConversationStatus.CLOSED and self.closed_at is None:
            problems.append(Problem("closed_at", "a closed conversation needs its close time"))
        if problems:
            raise ConfigurationError(problems)

    @property
    def email(self) -> str | None:
        """The visitor's email, if any."""
        return self.visitor.email if self.visitor else None

    def activities(self) -> tuple[Activity, ...]:
        """The activities this conversation produced, in a stable order."""
        closed_on = self.closed_at.date() if self.closed_at else None
        transcript = (
            _activity(
                _CHAT_TRANSCRIPT,
                "transcript",
                "Signals chat transcript",
                self.transcript,
                closed_on,
            )
            if self.transcript
            else None
        )
        m = self.meeting
        if m is None:
            return () if transcript is None else (transcript,)
        body = f"Meeting booked in a Signals chat: {m.name or 'meeting'}"
        if m.agent_name:
            body += f"\nWith: {m.agent_name}"
        if m.date:
            body += f"\nDate: {m.date.isoformat()}"
        if m.duration_minutes is not None:
            body += f"\nDuration: {m.duration_minutes} minutes"
        meeting = _activity(
            _MEETING_BOOKED,
            f"meeting:{m.id}",
            f"Meeting booked: {m.name}" if m.name else "Meeting booked",
            body,
            m.date or closed_on,
        )
        return (meeting,) if transcript is None else (transcript, meeting)

    def field_values(self) -> dict[str, FieldValue]:
        """Every Signals field a mapping can name, by dotted path.

        ``contact.*`` (the visitor, extra keys included), ``chat.*`` (traffic fields and the
        transcript, ``chat.meeting.*``), ``company.domain``, ``company.name`` and
        ``company.<attribute>``, ``conversation.id``, ``conversation.lead_score``.
        """
        out: dict[str, FieldValue] = {
            "conversation.id": self.id,
            "conversation.lead_score": self.lead_score,
            "conversation.closed_at": self.closed_at,
            "chat.transcript": self.transcript,
            "chat.referrer": self.traffic.referrer,
            "chat.source_type": self.traffic.source_type,
            "chat.traffic_source": self.traffic.traffic_source,
            "chat.traffic_campaign": self.traffic.traffic_campaign,
        }
        if self.meeting is not None:
            for name in _MEETING_FIELDS:
                out[f"chat.meeting.{name}"] = getattr(self.meeting, name)
        if self.visitor is not None:
            v = self.visitor
            for name in VISITOR_FIELDS:
                out[f"contact.{name}"] = getattr(v, name)
            for key, value in v.extra.items():
                out.setdefault(f"contact.{key}", value)
        if self.company is not None:
            out["company.domain"] = self.company.domain
            out["company.name"] = self.company.name
            for key, value in self.company.attributes.items():
                out.setdefault(f"company.{key}", value)
        return out


_CONVERSATION: _Spec = (
    ("id", str, False, _TEXT),
    ("status", ConversationStatus, False, "a ConversationStatus"),
    ("closed_at", datetime, True, "a datetime"),
    ("lead_score", int, True, "0, 1, 2, 3 or None (unscored)"),
    ("visitor", Visitor, True, "a Visitor"),
    ("company", Company, True, "a Company"),
    ("participants", Participants, False, "Participants"),
    ("transcript", str, True, _TEXT),
    ("meeting", Meeting, True, "a Meeting"),
    ("traffic", Traffic, False, "Traffic"),
)

VISITOR_FIELDS: tuple[str, ...] = tuple(a.name for a in attrs.fields(Visitor) if a.name != "extra")

_VISITOR: _Spec = tuple(
    (
        name,
        datetime if name == "birthdate" else str,
        True,
        "a datetime" if name == "birthdate" else _TEXT,
    )
    for name in VISITOR_FIELDS
)

_MEETING_FIELDS = ("name", "date", "agent_name", "duration_minutes")

# The Signals fields that are plain attributes of a conversation, by the attribute path that
# reads them (an optional part, such as the visitor, may be None).
_ATTRIBUTE_PATHS: dict[str, str] = {
    "chat.transcript": "transcript",
    "chat.referrer": "traffic.referrer",
    "chat.source_type": "traffic.source_type",
    "chat.traffic_source": "traffic.traffic_source",
    "chat.traffic_campaign": "traffic.traffic_campaign",
    "conversation.id": "id",
    "conversation.lead_score": "lead_score",
    "conversation.closed_at": "closed_at",
    **{f"chat.meeting.{name}": f"meeting.{name}" for name in _MEETING_FIELDS},
    **{f"contact.{name}": f"visitor.{name}" for name in VISITOR_FIELDS},
    "company.domain": "company.domain",
    "company.name": "company.name",
}


def field_getter(path: str) -> Callable[[Conversation], FieldValue]:
    """A function reading one Signals field of a conversation, equal to
    ``conversation.field_values().get(path)`` but compiled once, so that planning many
    conversations does not rebuild every value of each."""
    attribute = _ATTRIBUTE_PATHS.get(path)
    if attribute is not None:
        part, _, name = attribute.rpartition(".")
        if not part:
            return attrgetter(name)  # an attribute of every conversation
        get_part = attrgetter(part)
        return lambda c: getattr(part_, name) if (part_ := get_part(c)) is not None else None
    prefix, _, name = path.partition(".")
    if prefix == "contact":
        return lambda c: c.visitor.extra.get(name) if c.visitor is not None else None
    if prefix == "company":
        return lambda c: c.company.attributes.get(name) if c.company is not None else None
    return lambda _: None


def fields_reader(paths: Sequence[str]) -> Callable[[Conversation], Sequence[FieldValue]]:
    """A function reading the Signals fields ``paths`` of a conversation, in order: equal to
    ``[field_getter(p)(conversation) for p in paths]``, in one step when it can.

    When every path is a plain attribute, one :func:`operator.attrgetter` reads them all; a
    conversation missing a part (no company, no meeting) is then read path by path.
    """
    getters = tuple(field_getter(path) for path in paths)

    def one_by_one(conversation: Conversation) -> Sequence[FieldValue]:
        return [get(conversation) for get in getters]

    attributes = [_ATTRIBUTE_PATHS.get(path) for path in paths]
    if len(paths) < 2 or None in attributes:
        return one_by_one
    at_once = attrgetter(*attributes)  # type: ignore[arg-type]  # no None left

    def read(conversation: Conversation) -> Sequence[FieldValue]:
        try:
            return at_once(conversation)
        except AttributeError:  # an absent part: None.<name>
            return one_by_one(conversation)

    return read


KNOWN_FIELD_PREFIXES = ("contact.", "chat.", "company.", "conversation.")


# ------------------------------------------------------------------------------------------------
# CRM side


class PersonKind(enum.Enum):
    """The CRM person object a record is."""

    LEAD = "lead"
    CONTACT = "contact"

    # Members are singletons compared by identity: hash them by identity too (a C slot, where
    # Enum's own __hash__ is a Python call). Dicts and sets of them are built per command.
    __hash__ = object.__hash__


@attrs.frozen(weakref_slot=False)  # no __weakref__ slot: _build.builder's quick builder
class PersonRecord:
    """A person record read from the CRM (a Salesforce Lead or Contact, a HubSpot contact).

    ``fields`` holds the CRM field values that were asked for (the mapped fields). A Salesforce
    Lead that was converted has ``is_converted`` and usually ``converted_contact_id``.
    ``last_modified`` orders several matches (most recent wins; ties broken by ``id``).
    """

    id: str
    kind: PersonKind
    email: str | None = None
    fields: Mapping[str, FieldValue] = attrs.field(factory=dict, converter=field_map)
    is_converted: bool = False
    converted_contact_id: str | None = None
    last_modified: datetime | None = None
    owner_id: str | None = None
    account_id: str | None = None
    """The account a Contact belongs to (Salesforce ``AccountId``; HubSpot's primary company,
    ``associatedcompanyid``), when the CRM says."""

    def __attrs_post_init__(self) -> None:
        _check(self, _PERSON_RECORD, fields="fields")


_PERSON_RECORD: _Spec = (
    ("id", str, False, _TEXT),
    ("kind", PersonKind, False, "a PersonKind"),
    ("email", str, True, _TEXT),
    ("is_converted", bool, False, "true/false"),
    ("converted_contact_id", str, True, _TEXT),
    ("last_modified", datetime, True, "a datetime"),
    ("owner_id", str, True, _TEXT),
    ("account_id", str, True, _TEXT),
)


@attrs.frozen
class AccountRecord:
    """A CRM account/company found by domain, with the fields that were asked for."""

    id: str
    domain: str | None = None
    name: str | None = None
    fields: Mapping[str, FieldValue] = attrs.field(factory=dict, converter=field_map)
    last_modified: datetime | None = None

    def __attrs_post_init__(self) -> None:
        _check(self, _ACCOUNT_RECORD, fields="fields")


_ACCOUNT_RECORD: _Spec = (
    ("id", str, False, _TEXT),
    ("domain", str, True, _TEXT),
    ("name", str, True, _TEXT),
    ("last_modified", datetime, True, "a datetime"),
)


@attrs.frozen
class CRMUser:
    """A CRM user (Salesforce User, HubSpot owner) that can own records."""

    id: str
    email: str | None = None
    active: bool = True
    name: str | None = None

    def __attrs_post_init__(self) -> None:
        _check(self, _CRM_USER)


_CRM_USER: _Spec = (
    ("id", str, False, _TEXT),
    ("email", str, True, _TEXT),
    ("active", bool, False, "true/false"),
    ("name", str, True, _TEXT),
)


class FieldType(enum.Enum):
    """The value type of a CRM field, normalised across CRMs."""

    STRING = "string"
    TEXTAREA = "textarea"
    EMAIL = "email"
    PHONE = "phone"
    URL = "url"
    PICKLIST = "picklist"
    MULTIPICKLIST = "multipicklist"
    BOOLEAN = "boolean"
    INTEGER = "integer"
    NUMBER = "number"
    DATE = "date"
    DATETIME = "datetime"
    REFERENCE = "reference"
    ID = "id"
    OTHER = "other"

    @property
    def is_text(self) -> bool:
        return self in _TEXT_TYPES


_TEXT_TYPES = frozenset(
    {FieldType.STRING, FieldType.TEXTAREA, FieldType.EMAIL, FieldType.PHONE, FieldType.URL}
)


@attrs.frozen
class FieldSchema:
    """What the CRM says about one field (Salesforce describe, HubSpot properties).

    ``names_user`` says the field holds a CRM user's id, so it can name an owner: on
    Salesforce a reference to ``User`` (``referenceTo``), on HubSpot an owner property
    (``referencedObjectType: "OWNER"``).
    """

    name: str
    type: FieldType = FieldType.STRING
    length: int | None = None
    createable: bool = True
    updateable: bool = True
    required: bool = False
    picklist_values: tuple[str, ...] | None = None
    restricted_picklist: bool = False
    label: str | None = None
    external_id: bool = False
    """Marked External ID (Salesforce): an upsert may key on it."""
    unique: bool = False
    """The CRM refuses a second record with the same value (Salesforce Unique, HubSpot
    ``hasUniqueValue``)."""
    names_user: bool = False


def _schema_fields(value: Any) -> dict[str, FieldSchema]:
    if isinstance(value, Mapping):
        return {k.lower(): v for k, v in value.items()}
    return {f.name.lower(): f for f in value}


@attrs.frozen
class ObjectSchema:
    """The fields of one CRM object. Field names are looked up case-insensitively."""

    name: str
    fields: Mapping[str, FieldSchema] = attrs.field(converter=_schema_fields, factory=dict)

    def get(self, field_name: str) -> FieldSchema | None:
        return self.fields.get(field_name.lower())

    def __contains__(self, field_name: object) -> bool:
        return isinstance(field_name, str) and field_name.lower() in self.fields

    @property
    def required_fields(self) -> tuple[str, ...]:
        return tuple(sorted(f.name for f in self.fields.values() if f.required))
