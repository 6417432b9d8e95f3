"""The integration's configuration as core values.

Users write :class:`signals_crm.settings.IntegrationSettings` (pydantic, validated, with every
problem reported at once); it converts into a :class:`SyncConfig` at the boundary. The core
only ever sees these frozen values.
"""

from __future__ import annotations

import enum
import warnings
from collections.abc import Iterable, Mapping
from datetime import timedelta

import attrs

from signals_crm.core.activities import template_problems
from signals_crm.core.model import (
    ActivityKind,
    FieldValue,
    Role,
    SignalsUser,
    check_kind_name,
    normalize_email,
)
from signals_crm.exceptions import ConfigurationError, Problem

__all__ = [
    "ActivityTemplate",
    "Condition",
    "ConditionGroup",
    "ContactPolicy",
    "Criteria",
    "DomainList",
    "FallbackCriteria",
    "FieldMapping",
    "FieldMappings",
    "Operator",
    "OwnershipConfig",
    "OwnershipRule",
    "Segment",
    "SyncConfig",
    "UserMapEntry",
    "UserMapping",
]


class Criteria(enum.Enum):
    """The lead-score requirement of automatic sync. Unscored visitors pass only ``ALL``."""

    ALL = "all"
    ONE_STAR = "one_star"
    TWO_STARS = "two_stars"
    THREE_STARS = "three_stars"

    @property
    def min_stars(self) -> int | None:
        """The least score that passes; ``None`` for ``ALL`` (everyone, unscored included)."""
        return _MIN_STARS[self._value_]  # by value: a str key hashes faster than an enum


_MIN_STARS = {
    Criteria.ALL.value: None,
    Criteria.ONE_STAR.value: 1,
    Criteria.TWO_STARS.value: 2,
    Criteria.THREE_STARS.value: 3,
}


class ContactPolicy(enum.Enum):
    """What to do when the email matches no Lead but a (never updated) Contact."""

    ATTACH = "attach"
    CREATE_LEAD = "create_lead"


@attrs.frozen
class FieldMapping:
    """One Signals field (dotted path) → one CRM field, and whether updates may overwrite it."""

    source: str
    target: str
    overwrite: bool = False


@attrs.frozen
class FieldMappings:
    """The three mapping sets, by CRM object. ``account`` is pulled, the others pushed."""

    lead: tuple[FieldMapping, ...] = ()
    contact: tuple[FieldMapping, ...] = ()
    account: tuple[FieldMapping, ...] = ()


@attrs.frozen
class UserMapEntry:
    """A Signals user (by id and/or email) → a CRM user id.

    ``licensed`` is false for a Signals user who exists but may not own accounts in Signals
    (account ownership then treats the CRM owner as "not a Signals user").
    """

    crm_user_id: str
    signals_user_id: str | None = None
    signals_email: str | None = None
    licensed: bool = True


def _index_users(
    entries: tuple[UserMapEntry, ...],
) -> tuple[dict[str, UserMapEntry], dict[str, UserMapEntry], dict[str, UserMapEntry]]:
    by_id: dict[str, UserMapEntry] = {}
    by_email: dict[str, UserMapEntry] = {}
    by_crm: dict[str, UserMapEntry] = {}
    for entry in entries:
        if entry.signals_user_id:
            by_id.setdefault(entry.signals_user_id, entry)
        if entry.signals_email:
            by_email.setdefault(normalize_email(entry.signals_email), entry)
        by_crm.setdefault(entry.crm_user_id, entry)
    return by_id, by_email, by_crm


@attrs.frozen
class UserMapping:
    """Signals users ↔ CRM users. Lookups by Signals id first, then by email (any case)."""

    entries: tuple[UserMapEntry, ...] = ()
    _by_id: dict[str, UserMapEntry] = attrs.field(init=False, repr=False, eq=False)
    _by_email: dict[str, UserMapEntry] = attrs.field(init=False, repr=False, eq=False)
    _by_crm: dict[str, UserMapEntry] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        by_id, by_email, by_crm = _index_users(self.entries)
        object.__setattr__(self, "_by_id", by_id)
        object.__setattr__(self, "_by_email", by_email)
        object.__setattr__(self, "_by_crm", by_crm)

    def crm_user_for(self, user: SignalsUser) -> str | None:
        """The CRM user id a Signals user maps to, or ``None``."""
        if user.id and user.id in self._by_id:
            return self._by_id[user.id].crm_user_id
        if user.email:
            entry = self._by_email.get(normalize_email(user.email))
            if entry is not None:
                return entry.crm_user_id
        return None

    def signals_user_for(self, crm_user_id: str) -> UserMapEntry | None:
        """The mapping entry of a CRM user, or ``None`` when no Signals user maps to it."""
        return self._by_crm.get(crm_user_id)


class Operator(enum.Enum):
    EQ = "eq"
    NE = "ne"
    IN = "in"
    NOT_IN = "not_in"
    CONTAINS = "contains"
    STARTS_WITH = "starts_with"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    IS_SET = "is_set"
    IS_NOT_SET = "is_not_set"


@attrs.frozen
class Condition:
    """``attribute <operator> value`` over a company's attributes."""

    attribute: str
    operator: Operator
    value: FieldValue | tuple[FieldValue, ...] = None


@attrs.frozen
class ConditionGroup:
    """All (``match="all"``) or any (``match="any"``) of the conditions and nested groups."""

    conditions: tuple[Condition | ConditionGroup, ...]
    match: str = "all"


def _domains(value: Iterable[str]) -> frozenset[str]:
    return frozenset(value)


def _kinds(value: Iterable[ActivityKind | str]) -> frozenset[ActivityKind | str]:
    return frozenset(value)


@attrs.frozen
class ActivityTemplate:
    """An activity kind the host declares: its name, the task's subject and body templates
    (``{activity.<key>}`` and Signals field placeholders; see :mod:`signals_crm.core.activities`)
    and the conversation roles that did it, tried in order for the task's owner."""

    name: str
    subject: str
    body: str
    owner_roles: tuple[Role, ...] = (Role.CLOSER, Role.LAST_ROUTED)

    def __attrs_post_init__(self) -> None:
        problems = check_kind_name(self.name, "name")
        problems += template_problems(self.subject, "subject")
        problems += template_problems(self.body, "body")
        roles: tuple[object, ...] = self.owner_roles
        problems += [
            Problem(f"owner_roles[{i}]", "a Role")
            for i, r in enumerate(roles)
            if not isinstance(r, Role)
        ]
        if problems:
            raise ConfigurationError(problems)


def _templates(value: Iterable[ActivityTemplate]) -> tuple[ActivityTemplate, ...]:
    return tuple(value)


@attrs.frozen
class DomainList:
    """A static list of company domains (compared lower-case, ``www.`` ignored)."""

    domains: frozenset[str] = attrs.field(converter=_domains)


@attrs.frozen
class Segment:
    """A named predicate over companies: a condition group or a static domain list."""

    name: str
    definition: ConditionGroup | DomainList


@attrs.frozen
class OwnershipRule:
    """For companies in ``segment``: read ``owner_fields`` (one or two) from the CRM account in
    order; when none yields a Signals user, use ``fallback_user`` (a Signals user id)."""

    segment: str
    owner_fields: tuple[str, ...]
    fallback_user: str | None = None


@attrs.frozen
class FallbackCriteria:
    """What applies to a company in no rule's segment: the same owner-field walk and fallback
    user as a rule, for every company. With no owner fields only ``fallback_user`` applies."""

    owner_fields: tuple[str, ...] = ()
    fallback_user: str | None = None


def _segments(value: Mapping[str, Segment]) -> dict[str, Segment]:
    return dict(value)


def _placeholders(value: Mapping[str, str]) -> dict[str, str]:
    return dict(value)


@attrs.frozen
class OwnershipConfig:
    rules: tuple[OwnershipRule, ...] = ()
    segments: Mapping[str, Segment] = attrs.field(factory=dict, converter=_segments)
    fallback: FallbackCriteria | None = None
    default_account_owner: str | None = None


_ALL_KINDS = frozenset(ActivityKind)
_ALL_SOURCES = (Role.MEETING_SCHEDULER, Role.LAST_ROUTED, Role.CLOSER)

# The names SyncConfig used before it took the settings' names: old → new.
_RENAMED = {
    "delay": "synchronization_delay",
    "task_kinds": "task_events",
    "owner_sources": "lead_owner_sources",
    "mappings": "field_mappings",
}


def _renamed(old: str) -> None:
    warnings.warn(
        f"SyncConfig.{old} is deprecated: use {_RENAMED[old]} (the settings' name)",
        DeprecationWarning,
        stacklevel=3,
    )


@attrs.frozen(init=False)
class SyncConfig:
    """Everything the core needs to decide a sync.

    Its fields have the names of :class:`~signals_crm.settings.IntegrationSettings`
    (``synchronization_delay``, ``task_events``, ``lead_owner_sources``, ``field_mappings``).
    The names used before (``delay``, ``task_kinds``, ``owner_sources``, ``mappings``) still
    work, as keywords and attributes, with a ``DeprecationWarning``. Fields are given by
    keyword.
    """

    enabled: bool = True
    criteria: Criteria = Criteria.ALL
    synchronization_delay: timedelta = timedelta(0)
    task_events: frozenset[ActivityKind | str] = attrs.field(default=_ALL_KINDS, converter=_kinds)
    campaign_id: str | None = None
    lead_owner_sources: tuple[Role, ...] = _ALL_SOURCES
    default_owner: str | None = None
    field_mappings: FieldMappings = attrs.field(factory=FieldMappings)
    users: UserMapping = attrs.field(factory=UserMapping)
    existing_contact: ContactPolicy = ContactPolicy.ATTACH
    placeholders: Mapping[str, str] = attrs.field(factory=dict, converter=_placeholders)
    ownership: OwnershipConfig = attrs.field(factory=OwnershipConfig)
    activity_kinds: tuple[ActivityTemplate, ...] = attrs.field(default=(), converter=_templates)
    """Activity kinds the host declared; ``task_events`` chooses them by name."""

    def __attrs_post_init__(self) -> None:
        problems: list[Problem] = []
        names: set[str] = set()
        for index, template in enumerate(self.activity_kinds):
            if template.name in names:
                problems.append(
                    Problem(f"activity_kinds[{index}]", f"{template.name!r} is declared twice")
                )
            names.add(template.name)
        for event in sorted(e for e in self.task_events if isinstance(e, str)):
            if event not in names:
                msg = f"task event {event!r} is not a declared activity kind"
                problems.append(Problem("task_events", msg))
        if problems:
            raise ConfigurationError(problems)

    @property
    def templates(self) -> Mapping[str, ActivityTemplate]:
        """The declared activity kinds by name."""
        return {t.name: t for t in self.activity_kinds}

    def __init__(  # one keyword per setting, and the deprecated names
        self,
        *,
        enabled: bool = True,
        criteria: Criteria = Criteria.ALL,
        synchronization_delay: timedelta = timedelta(0),
        task_events: Iterable[ActivityKind | str] | None = None,
        campaign_id: str | None = None,
        lead_owner_sources: tuple[Role, ...] = _ALL_SOURCES,
        default_owner: str | None = None,
        field_mappings: FieldMappings | None = None,
        users: UserMapping | None = None,
        existing_contact: ContactPolicy = ContactPolicy.ATTACH,
        placeholders: Mapping[str, str] | None = None,
        ownership: OwnershipConfig | None = None,
        activity_kinds: Iterable[ActivityTemplate] = (),
        delay: timedelta | None = None,
        task_kinds: Iterable[ActivityKind] | None = None,
        owner_sources: tuple[Role, ...] | None = None,
        mappings: FieldMappings | None = None,
    ) -> None:
        if delay is not None:
            _renamed("delay")
            synchronization_delay = delay
        if task_kinds is not None:
            _renamed("task_kinds")
            task_events = task_kinds
        declared = tuple(activity_kinds)
        if task_events is None:  # every event: the built-in kinds and every declared one
            task_events = (*_ALL_KINDS, *(t.name for t in declared))
        if owner_sources is not None:
            _renamed("owner_sources")
            lead_owner_sources = owner_sources
        if mappings is not None:
            _renamed("mappings")
            field_mappings = mappings
        self.__attrs_init__(
            enabled=enabled,
            criteria=criteria,
            synchronization_delay=synchronization_delay,
            task_events=task_events,
            campaign_id=campaign_id,
            lead_owner_sources=lead_owner_sources,
            default_owner=default_owner,
            field_mappings=field_mappings if field_mappings is not None else FieldMappings(),
            users=users if users is not None else UserMapping(),
            existing_contact=existing_contact,
            placeholders=placeholders if placeholders is not None else {},
            ownership=ownership if ownership is not None else OwnershipConfig(),
            activity_kinds=declared,
        )

    @property
    def delay(self) -> timedelta:
        """Deprecated: :attr:`synchronization_delay`."""
        _renamed("delay")
        return self.synchronization_delay

    @property
    def task_kinds(self) -> frozenset[ActivityKind | str]:
        """Deprecated: :attr:`task_events`."""
        _renamed("task_kinds")
        return self.task_events

    @property
    def owner_sources(self) -> tuple[Role, ...]:
        """Deprecated: :attr:`lead_owner_sources`."""
        _renamed("owner_sources")
        return self.lead_owner_sources

    @property
    def mappings(self) -> FieldMappings:
        """Deprecated: :attr:`field_mappings`."""
        _renamed("mappings")
        return self.field_mappings
