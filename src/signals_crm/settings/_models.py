"""The settings models: :class:`IntegrationSettings` and its parts, loading and dumping.

Every model is frozen and forbids unknown keys; each converts into its core value with
``to_core()`` (``IntegrationSettings.to_config()`` for the whole). The rules are stated in
:mod:`signals_crm.settings`.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias, Union

import tomli_w
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictStr,
    Tag,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)

from signals_crm._nesting import nested_too_deeply
from signals_crm.core.activities import template_problems
from signals_crm.core.config import (
    ActivityTemplate,
    Condition,
    ConditionGroup,
    ContactPolicy,
    Criteria,
    DomainList,
    FallbackCriteria,
    FieldMapping,
    FieldMappings,
    Operator,
    OwnershipConfig,
    OwnershipRule,
    Segment,
    SyncConfig,
    UserMapEntry,
    UserMapping,
)
from signals_crm.core.model import ActivityKind, Role, check_kind_name, normalize_email
from signals_crm.core.users import UserMappingProposal
from signals_crm.exceptions import ConfigurationError, Problem
from signals_crm.settings._delay import Delay
from signals_crm.settings._problems import (
    check_also,
    get,
    items,
    kind,
    problems_error,
    problems_of,
)
from signals_crm.settings._values import (
    GROUP_DEPTH,
    Attribute,
    ConditionValueField,
    CRMId,
    Domain,
    Email,
    FieldName,
    Name,
    SignalsUserId,
    Source,
    Text,
    at_least_one,
    check_condition_value,
    in_order,
    no_duplicates,
    owner_fields_count,
    refuse_many_campaigns,
)

DEFAULT_PLACEHOLDERS: Mapping[str, str] = {
    "LastName": "[not provided]",
    "Company": "[not provided]",
}
"""Placeholders for the CRM's required fields when the visitor has no value (Salesforce)."""

CriteriaName: TypeAlias = Literal["all", "one_star", "two_stars", "three_stars"]
TaskEvent: TypeAlias = Literal["chat_transcript", "meeting_booked"]
OwnerSource: TypeAlias = Literal["meeting_scheduler", "last_routed", "closer"]
ContactPolicyName: TypeAlias = Literal["attach", "create_lead"]
OperatorName: TypeAlias = Literal[
    "eq", "ne", "in", "not_in", "contains", "starts_with", "gt", "gte", "lt", "lte", "is_set",
    "is_not_set",
]  # fmt: skip
MatchName: TypeAlias = Literal["all", "any"]

_OWNER_PRIORITY: tuple[OwnerSource, ...] = ("meeting_scheduler", "last_routed", "closer")
_TASK_EVENTS: tuple[TaskEvent, ...] = ("chat_transcript", "meeting_booked")

_CONFIG = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _kind_name(value: str) -> str:
    problems = check_kind_name(value, "")
    if problems:
        raise ValueError(problems[0].message)
    return value


def _template(value: str) -> str:
    problems = template_problems(value, "")
    if problems:
        raise ValueError("; ".join(p.message for p in problems))
    return value


KindName = Annotated[StrictStr, AfterValidator(_kind_name)]
Template = Annotated[StrictStr, AfterValidator(_template)]
EventName = Name


def _events_in_order(value: tuple[str, ...]) -> tuple[str, ...]:
    """The built-in events in their fixed order, then the declared kinds as written."""
    built_in = tuple(e for e in _TASK_EVENTS if e in value)
    return (*built_in, *(e for e in value if e not in _TASK_EVENTS))


class ActivityKindSettings(BaseModel):
    """An activity kind the host declares: a name, the task's subject and body templates, and
    the roles that did it (the task's owner, tried in order)."""

    model_config = _CONFIG

    name: KindName
    subject: Template
    body: Template
    owner_roles: Annotated[tuple[OwnerSource, ...], no_duplicates("role")] = (
        "closer",
        "last_routed",
    )

    def to_core(self) -> ActivityTemplate:
        """The core value."""
        return ActivityTemplate(
            self.name, self.subject, self.body, tuple(Role(r) for r in self.owner_roles)
        )


class FieldMappingSettings(BaseModel):
    """One Signals field → one CRM field; ``overwrite`` lets updates replace the CRM's value."""

    model_config = _CONFIG

    source: Source
    target: FieldName
    overwrite: StrictBool = False

    def to_core(self) -> FieldMapping:
        """The core value."""
        return FieldMapping(source=self.source, target=self.target, overwrite=self.overwrite)


def _target_key(item: Any) -> Any:
    target = get(item, "target")
    return target.lower() if isinstance(target, str) else None


def _mapping_set(*, pulled: bool) -> WrapValidator:
    """Targets unique within the set; pulled (account) sources are ``company.*``."""

    def check(value: Any) -> list[Problem]:
        problems: list[Problem] = []
        seen: dict[str, int] = {}
        for index, item in enumerate(items(value)):
            key = _target_key(item)
            if key is not None:
                if key in seen:
                    problems.append(
                        Problem(
                            f"[{index}].target",
                            f"duplicate target {get(item, 'target')!r} (also [{seen[key]}])",
                        )
                    )
                else:
                    seen[key] = index
            source = get(item, "source")
            if pulled and isinstance(source, str) and not source.startswith("company."):
                problems.append(
                    Problem(
                        f"[{index}].source",
                        "account mappings are pulled into company attributes: the source "
                        "must start with company.",
                    )
                )
        return problems

    return check_also(check, FieldMappingSettings)


MappingSet = Annotated[tuple[FieldMappingSettings, ...], _mapping_set(pulled=False)]
PulledMappingSet = Annotated[tuple[FieldMappingSettings, ...], _mapping_set(pulled=True)]


class FieldMappingsSettings(BaseModel):
    """The three mapping sets, by CRM object: ``lead`` and ``contact`` pushed, ``account``
    pulled."""

    model_config = _CONFIG

    lead: MappingSet = ()
    contact: MappingSet = ()
    account: PulledMappingSet = ()

    def to_core(self) -> FieldMappings:
        """The core value."""
        return FieldMappings(
            lead=tuple(m.to_core() for m in self.lead),
            contact=tuple(m.to_core() for m in self.contact),
            account=tuple(m.to_core() for m in self.account),
        )


class UserMapEntrySettings(BaseModel):
    """A Signals user (by id and/or email) → a CRM user id."""

    model_config = _CONFIG

    signals_user_id: SignalsUserId | None = None
    signals_email: Email | None = None
    crm_user_id: CRMId
    licensed: StrictBool = True

    def to_core(self) -> UserMapEntry:
        """The core value."""
        return UserMapEntry(
            crm_user_id=self.crm_user_id,
            signals_user_id=self.signals_user_id,
            signals_email=self.signals_email,
            licensed=self.licensed,
        )


def _check_users(value: Any) -> list[Problem]:
    problems: list[Problem] = []
    ids: dict[str, int] = {}
    emails: dict[str, int] = {}
    for index, item in enumerate(items(value)):
        user_id = get(item, "signals_user_id")
        if isinstance(user_id, int) and not isinstance(user_id, bool) and 0 <= user_id < 2**63:
            user_id = str(user_id)  # (as int_as_text; larger ones are reported at the entry)
        email = get(item, "signals_email")
        if user_id is None and email is None and isinstance(item, Mapping | BaseModel):
            problems.append(Problem(f"[{index}]", "needs signals_user_id or signals_email"))
        if isinstance(user_id, str):
            if user_id in ids:
                problems.append(
                    Problem(
                        f"[{index}].signals_user_id",
                        f"Signals user {user_id!r} is mapped twice (also [{ids[user_id]}])",
                    )
                )
            ids.setdefault(user_id, index)
        if isinstance(email, str):
            key = normalize_email(email)
            if key in emails:
                problems.append(
                    Problem(
                        f"[{index}].signals_email",
                        f"Signals user {email!r} is mapped twice (also [{emails[key]}])",
                    )
                )
            emails.setdefault(key, index)
    return problems


class ConditionSettings(BaseModel):
    """``attribute <operator> value`` over a company's attributes (``company.`` optional)."""

    model_config = _CONFIG

    attribute: Attribute
    operator: OperatorName
    value: ConditionValueField = None

    @model_validator(mode="after")
    def _value_fits_operator(self) -> ConditionSettings:
        problem = check_condition_value(self.operator, self.value)
        if problem is not None:
            raise problems_error([Problem("value", problem)])
        return self

    def to_core(self) -> Condition:
        """The core value."""
        return Condition(self.attribute, Operator(self.operator), self.value)


def _condition_kind(value: Any) -> str | None:
    if isinstance(value, ConditionGroupSettings):
        return "group"
    if isinstance(value, ConditionSettings):
        return "condition"
    if isinstance(value, Mapping):
        return "group" if "conditions" in value or "match" in value else "condition"
    return None


def _segment_kind(value: Any) -> str | None:
    if isinstance(value, ConditionGroupSettings):
        return "group"
    if isinstance(value, DomainListSettings):
        return "domain_list"
    if isinstance(value, Mapping):
        return "domain_list" if "domains" in value else "group"
    return None


ConditionItem = Annotated[
    Union[  # noqa: UP007  # the quoted forward reference needs typing.Union
        Annotated[ConditionSettings, Tag("condition")],
        Annotated["ConditionGroupSettings", Tag("group")],
    ],
    Discriminator(
        _condition_kind,
        custom_error_type="condition_kind",
        custom_error_message="must be a condition (attribute, operator, value) or a group "
        "(match, conditions)",
    ),
]


class ConditionGroupSettings(BaseModel):
    """All (``match = "all"``) or any (``"any"``) of the conditions and nested groups."""

    model_config = _CONFIG

    match: MatchName = "all"
    conditions: Annotated[tuple[ConditionItem, ...], AfterValidator(at_least_one("condition"))]

    def to_core(self) -> ConditionGroup:
        """The core value."""
        return ConditionGroup(
            conditions=tuple(c.to_core() for c in self.conditions), match=self.match
        )


class DomainListSettings(BaseModel):
    """A static list of company domains."""

    model_config = _CONFIG

    domains: Annotated[tuple[Domain, ...], AfterValidator(at_least_one("domain"))]

    def to_core(self) -> DomainList:
        """The core value."""
        # ``Any``: mypy cannot type attrs' ``converter=frozenset`` (core/config.py).
        domains: Any = frozenset(self.domains)
        return DomainList(domains)


SegmentSettings = Annotated[
    Union[  # noqa: UP007  # kept parallel to ConditionItem
        Annotated[ConditionGroupSettings, Tag("group")],
        Annotated[DomainListSettings, Tag("domain_list")],
    ],
    Discriminator(
        _segment_kind,
        custom_error_type="segment_kind",
        custom_error_message="a segment is a table with either `domains` or "
        "`match` and `conditions`",
    ),
]


class OwnershipRuleSettings(BaseModel):
    """For companies in ``segment``: the CRM account's owner fields (one or two, in order),
    then the fallback routing user (a Signals user id)."""

    model_config = _CONFIG

    segment: Name
    owner_fields: Annotated[tuple[FieldName, ...], owner_fields_count(least=1)]
    fallback_user: SignalsUserId | None = None

    def to_core(self) -> OwnershipRule:
        """The core value."""
        return OwnershipRule(self.segment, self.owner_fields, self.fallback_user)


class FallbackCriteriaSettings(BaseModel):
    """What applies to a company in no rule's segment (owner fields may be empty)."""

    model_config = _CONFIG

    owner_fields: Annotated[tuple[FieldName, ...], owner_fields_count(least=0)] = ()
    fallback_user: SignalsUserId | None = None

    def to_core(self) -> FallbackCriteria:
        """The core value."""
        return FallbackCriteria(self.owner_fields, self.fallback_user)


def _check_across(data: Any) -> list[Problem]:
    """Checks between top-level keys, run on the raw input so that they are reported even when
    other parts fail: every rule names a known segment, and no segment has two rules."""
    problems: list[Problem] = []
    segments = get(data, "segments")
    names = set(segments) if isinstance(segments, Mapping) else None
    used: dict[str, int] = {}
    for index, rule in enumerate(items(get(data, "ownership_rules"))):
        segment = get(rule, "segment")
        if not isinstance(segment, str) or not segment.strip():
            continue
        where = f"ownership_rules[{index}].segment"
        unknown = segment not in names if names is not None else segments is None
        if unknown:  # (segments of the wrong type are reported as such)
            problems.append(Problem(where, f"unknown segment {segment!r}"))
        if segment in used:
            problems.append(
                Problem(
                    where,
                    f"segment {segment!r} already has rule ownership_rules[{used[segment]}]; "
                    "this rule would never apply",
                )
            )
        used.setdefault(segment, index)
    problems.extend(_check_events(data))
    return problems


def _check_events(data: Any) -> list[Problem]:
    """Every task event is a built-in one or a declared kind; no kind is declared twice."""
    problems: list[Problem] = []
    declared: dict[str, int] = {}
    for index, declared_kind in enumerate(items(get(data, "activity_kinds"))):
        name = get(declared_kind, "name")
        if isinstance(name, str):
            if name in declared:
                msg = f"kind {name!r} is already declared at activity_kinds[{declared[name]}]"
                problems.append(Problem(f"activity_kinds[{index}].name", msg))
            declared.setdefault(name, index)
    for index, event in enumerate(items(get(data, "task_events"))):
        if isinstance(event, str) and event not in _TASK_EVENTS and event not in declared:
            problems.append(
                Problem(
                    f"task_events[{index}]",
                    f"unknown event {event!r}: chat_transcript, meeting_booked or a kind "
                    "declared in activity_kinds",
                )
            )
    return problems


class IntegrationSettings(BaseModel):
    """Everything a host configures about the integration. See the module docstring."""

    model_config = _CONFIG

    enabled: StrictBool = True
    criteria: CriteriaName = "all"
    synchronization_delay: Delay = timedelta(0)
    task_events: Annotated[
        tuple[EventName, ...], no_duplicates("event"), AfterValidator(_events_in_order)
    ] = _TASK_EVENTS
    activity_kinds: tuple[ActivityKindSettings, ...] = ()
    campaign_id: Annotated[CRMId | None, BeforeValidator(refuse_many_campaigns)] = None
    lead_owner_sources: Annotated[
        tuple[OwnerSource, ...], no_duplicates("source"), in_order(_OWNER_PRIORITY)
    ] = _OWNER_PRIORITY
    default_owner: CRMId | None = None
    field_mappings: FieldMappingsSettings = Field(default_factory=FieldMappingsSettings)
    user_mapping: Annotated[
        tuple[UserMapEntrySettings, ...], check_also(_check_users, UserMapEntrySettings)
    ] = ()
    existing_contact: ContactPolicyName = "attach"
    placeholders: dict[FieldName, Text] = Field(default_factory=lambda: dict(DEFAULT_PLACEHOLDERS))
    ownership_rules: tuple[OwnershipRuleSettings, ...] = ()
    segments: dict[Name, Annotated[SegmentSettings, GROUP_DEPTH]] = Field(default_factory=dict)
    fallback_criteria: FallbackCriteriaSettings | None = None
    default_account_owner: SignalsUserId | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _every_problem(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        problems = _check_across(data) if isinstance(data, Mapping) else []
        if isinstance(data, Mapping) and "task_events" not in data and data.get("activity_kinds"):
            # Every event by default: the built-in kinds and every declared one.
            names = [get(k, "name") for k in items(data["activity_kinds"])]
            events = [*_TASK_EVENTS, *(n for n in names if isinstance(n, str))]
            data = {**data, "task_events": list(dict.fromkeys(events))}
        try:
            result = handler(data)
        except ValidationError as exc:
            raise problems_error([*problems_of(exc, cls, tags=_TAGGED), *problems]) from None
        if problems:
            raise problems_error(problems)
        return result

    # -- loading ------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IntegrationSettings:
        """Validate a mapping (as read from JSON or TOML). Raises ``ConfigurationError``."""
        if not isinstance(data, Mapping):
            raise ConfigurationError(
                [Problem("", "settings must be a table (a JSON object or a TOML document)")]
            )
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            raise ConfigurationError(problems_of(exc, cls, tags=_TAGGED)) from None

    @classmethod
    def from_json(cls, text: str | bytes) -> IntegrationSettings:
        """Validate JSON text (or bytes, in any encoding JSON allows). Raises
        ``ConfigurationError``."""
        if not isinstance(text, str | bytes | bytearray):
            raise ConfigurationError(
                [Problem("", f"JSON settings must be text or bytes, not {kind(text)}")]
            )
        try:
            data = json.loads(text)
            too_deep = nested_too_deeply(data)
        except ValueError as exc:  # (UnicodeDecodeError included)
            raise ConfigurationError([Problem("", f"not valid JSON: {exc}")]) from exc
        except RecursionError:  # the decoder's own limit, lower on some Pythons than ours
            too_deep = True
        if too_deep:
            raise ConfigurationError(
                [Problem("", "not valid JSON: arrays or objects nested too deeply")]
            )
        return cls.from_dict(data)

    @classmethod
    def from_toml(cls, text: str | bytes) -> IntegrationSettings:
        """Validate TOML text (or UTF-8 bytes). Raises ``ConfigurationError``."""
        text = _toml_text(text)
        try:
            data = tomllib.loads(text)
            too_deep = nested_too_deeply(data)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError([Problem("", f"not valid TOML: {exc}")]) from exc
        except RecursionError:  # the parser's own limit, lower on some Pythons than ours
            too_deep = True
        if too_deep:
            raise ConfigurationError(
                [Problem("", "not valid TOML: arrays or tables nested too deeply")]
            )
        return cls.from_dict(data)

    # -- dumping ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible data (``None`` values left out) that loads back equal."""
        data: dict[str, Any] = self.model_dump(mode="json", exclude_none=True)
        return data

    def to_json(self, *, indent: int | None = 2) -> str:
        """JSON text that loads back equal."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False) + "\n"

    def to_toml(self) -> str:
        """TOML text that loads back equal."""
        return tomli_w.dumps(self.to_dict())

    # -- editing ------------------------------------------------------------------------------
    # Each method returns new, validated settings (the settings are frozen); a change that
    # makes them invalid raises ``ConfigurationError`` with the same paths as loading.

    def _edited(self, key: str, value: Any) -> IntegrationSettings:
        data = self.model_dump(mode="json", exclude_none=True)
        data[key] = value
        return type(self).from_dict(data)

    def with_field_mapping(
        self, tab: MappingTab, source: str, target: str, *, overwrite: bool = False
    ) -> IntegrationSettings:
        """These settings with ``source`` mapped to ``target`` in ``tab`` (``"lead"``,
        ``"contact"`` or ``"account"``). A mapping to the same target (any case) is replaced in
        place; otherwise the new one is appended."""
        tabs = self.field_mappings.model_dump(mode="json")
        entries = _tab(tabs, tab)
        entry = {"source": source, "target": target, "overwrite": overwrite}
        same = _index_of(entries, lambda e: str(e["target"]).lower() == target.lower())
        if same is None:
            entries.append(entry)
        else:
            entries[same] = entry
        return self._edited("field_mappings", tabs)

    def without_field_mapping(self, tab: MappingTab, target: str) -> IntegrationSettings:
        """These settings without the mapping to ``target`` (any case) in ``tab``. Raises
        ``ConfigurationError`` when there is none."""
        tabs = self.field_mappings.model_dump(mode="json")
        entries = _tab(tabs, tab)
        same = _index_of(entries, lambda e: str(e["target"]).lower() == target.lower())
        if same is None:
            raise ConfigurationError(
                [Problem(f"field_mappings.{tab}", f"no mapping to {target!r} to remove")]
            )
        del entries[same]
        return self._edited("field_mappings", tabs)

    def with_user_mapping(
        self,
        crm_user_id: str,
        *,
        signals_user_id: str | None = None,
        signals_email: str | None = None,
        licensed: bool = True,
    ) -> IntegrationSettings:
        """These settings with a Signals user (by id and/or email) mapped to ``crm_user_id``.
        The entries of that Signals user (same id, or same email in any case) are replaced by
        this one, in the place of the first; otherwise it is appended."""
        entry: dict[str, Any] = {"crm_user_id": crm_user_id, "licensed": licensed}
        if signals_user_id is not None:
            entry["signals_user_id"] = signals_user_id
        if signals_email is not None:
            entry["signals_email"] = signals_email
        entries = [u.model_dump(mode="json", exclude_none=True) for u in self.user_mapping]
        return self._edited("user_mapping", _put_user(entries, entry))

    def with_user_mapping_proposal(self, proposal: UserMappingProposal) -> IntegrationSettings:
        """These settings with every entry of a proposed user mapping (from
        ``Integration.propose_user_mapping`` or a settings catalog), as
        :meth:`with_user_mapping` would add each one: a Signals user already mapped gets the
        proposed CRM user instead. Users the proposal left unmatched keep their entries."""
        entries = [u.model_dump(mode="json", exclude_none=True) for u in self.user_mapping]
        for proposed in proposal.as_settings():
            entries = _put_user(entries, proposed)
        return self._edited("user_mapping", entries)

    def without_user_mapping(
        self, *, signals_user_id: str | None = None, signals_email: str | None = None
    ) -> IntegrationSettings:
        """These settings without the entries of a Signals user (same id, or same email in any
        case). Raises ``ConfigurationError`` when there is none (or when neither is given)."""
        entries = [u.model_dump(mode="json", exclude_none=True) for u in self.user_mapping]
        kept = [
            e
            for e in entries
            if not _same_signals_user(
                e, signals_user_id=signals_user_id, signals_email=signals_email
            )
        ]
        if len(kept) == len(entries):
            who = signals_user_id if signals_user_id is not None else signals_email
            raise ConfigurationError(
                [Problem("user_mapping", f"no mapping of Signals user {who!r} to remove")]
            )
        return self._edited("user_mapping", kept)

    def with_ownership_rule(
        self,
        segment: str,
        owner_fields: Sequence[str],
        *,
        fallback_user: str | None = None,
        position: int | None = None,
    ) -> IntegrationSettings:
        """These settings with the rule for ``segment`` (which must be in ``segments``): read
        ``owner_fields`` (one or two), then ``fallback_user``. The segment's rule is replaced
        in place; a new rule goes at ``position`` (default: last, the lowest priority)."""
        rule: dict[str, Any] = {"segment": segment, "owner_fields": list(owner_fields)}
        if fallback_user is not None:
            rule["fallback_user"] = fallback_user
        rules = [r.model_dump(mode="json", exclude_none=True) for r in self.ownership_rules]
        same = _index_of(rules, lambda r: r["segment"] == segment)
        if same is not None:
            rules[same] = rule
        elif position is None:
            rules.append(rule)
        else:
            rules.insert(position, rule)
        return self._edited("ownership_rules", rules)

    def without_ownership_rule(self, segment: str) -> IntegrationSettings:
        """These settings without the rule for ``segment``. Raises ``ConfigurationError`` when
        there is none."""
        rules = [r.model_dump(mode="json", exclude_none=True) for r in self.ownership_rules]
        same = _index_of(rules, lambda r: r["segment"] == segment)
        if same is None:
            raise ConfigurationError(
                [Problem("ownership_rules", f"no rule for segment {segment!r} to remove")]
            )
        del rules[same]
        return self._edited("ownership_rules", rules)

    # -- the core value -----------------------------------------------------------------------

    def to_config(self) -> SyncConfig:
        """The frozen core value the sync decides with."""
        # ``Any``: mypy cannot type attrs' ``converter=frozenset`` (core/config.py).
        task_kinds: Any = frozenset(
            ActivityKind(e) if e in _TASK_EVENTS else e for e in self.task_events
        )
        return SyncConfig(
            enabled=self.enabled,
            criteria=Criteria(self.criteria),
            synchronization_delay=self.synchronization_delay,
            task_events=task_kinds,
            campaign_id=self.campaign_id,
            lead_owner_sources=tuple(Role(s) for s in self.lead_owner_sources),
            default_owner=self.default_owner,
            field_mappings=self.field_mappings.to_core(),
            users=UserMapping(tuple(u.to_core() for u in self.user_mapping)),
            existing_contact=ContactPolicy(self.existing_contact),
            placeholders=dict(self.placeholders),
            ownership=OwnershipConfig(
                rules=tuple(r.to_core() for r in self.ownership_rules),
                segments={
                    name: Segment(name, definition.to_core())
                    for name, definition in self.segments.items()
                },
                fallback=self.fallback_criteria.to_core() if self.fallback_criteria else None,
                default_account_owner=self.default_account_owner,
            ),
            activity_kinds=tuple(k.to_core() for k in self.activity_kinds),
        )


def _toml_text(document: object) -> str:
    """A TOML document as text: ``str``, or ``bytes`` decoded as UTF-8 (TOML's encoding)."""
    if isinstance(document, bytes | bytearray):
        try:
            return bytes(document).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigurationError([Problem("", f"not valid TOML: {exc}")]) from exc
    if not isinstance(document, str):
        raise ConfigurationError(
            [Problem("", f"TOML settings must be text or bytes, not {kind(document)}")]
        )
    return document


MappingTab: TypeAlias = Literal["lead", "contact", "account"]


def _tab(tabs: dict[str, Any], tab: str) -> list[dict[str, Any]]:
    if tab not in ("lead", "contact", "account"):
        raise ConfigurationError(
            [Problem("field_mappings", f"unknown tab {tab!r}: lead, contact or account")]
        )
    entries: list[dict[str, Any]] = tabs[tab]
    return entries


def _index_of(entries: list[dict[str, Any]], test: Callable[[dict[str, Any]], bool]) -> int | None:
    return next((i for i, e in enumerate(entries) if test(e)), None)


def _put_user(entries: list[dict[str, Any]], entry: dict[str, Any]) -> list[dict[str, Any]]:
    """``entries`` with ``entry`` in the place of the first entry of its Signals user (same id,
    or same email in any case; the others dropped), or appended."""
    same = [
        i
        for i, e in enumerate(entries)
        if _same_signals_user(
            e,
            signals_user_id=entry.get("signals_user_id"),
            signals_email=entry.get("signals_email"),
        )
    ]
    if not same:
        return [*entries, entry]
    kept = [e for i, e in enumerate(entries) if i not in same[1:]]
    kept[same[0]] = entry
    return kept


def _same_signals_user(
    entry: Mapping[str, Any], *, signals_user_id: str | None, signals_email: str | None
) -> bool:
    if signals_user_id is None and signals_email is None:
        raise ConfigurationError(
            [Problem("user_mapping", "name the Signals user: signals_user_id or signals_email")]
        )
    if signals_user_id is not None and entry.get("signals_user_id") == signals_user_id:
        return True
    email = entry.get("signals_email")
    return (
        signals_email is not None
        and isinstance(email, str)
        and normalize_email(email) == normalize_email(signals_email)
    )


_TAGGED: Mapping[str, type[BaseModel]] = {
    "group": ConditionGroupSettings,
    "condition": ConditionSettings,
    "domain_list": DomainListSettings,
}


def load_settings(path: str | os.PathLike[str]) -> IntegrationSettings:
    """Read settings from a ``.toml`` or ``.json`` file. Raises ``ConfigurationError``."""
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise ConfigurationError(
            [Problem("", f"cannot tell the format of {file.name!r}: use a .toml or .json file")]
        )
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError([Problem("", f"cannot read {str(file)!r}: {exc}")]) from exc
    if suffix == ".toml":
        return IntegrationSettings.from_toml(text)
    return IntegrationSettings.from_json(text)
