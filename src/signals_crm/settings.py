"""The integration's settings: user input, validated, converted into core values.

:class:`IntegrationSettings` is what a host reads from a file (TOML or JSON) or builds from a
dict. It is a pydantic model, so it never reaches the core: :meth:`IntegrationSettings.to_config`
converts it at the boundary into a frozen :class:`signals_crm.core.config.SyncConfig`.

The rules:

1. **Unknown keys are errors** (``extra="forbid"`` everywhere): a typo fails loudly, with a
   suggestion when a known key is close.
2. **Every problem at once.** :meth:`~IntegrationSettings.from_dict`,
   :meth:`~IntegrationSettings.from_json`, :meth:`~IntegrationSettings.from_toml` and
   :func:`load_settings` raise one :class:`~signals_crm.exceptions.ConfigurationError` (also a
   ``ValueError``) listing every problem with its path, such as
   ``ownership_rules[1].owner_fields: at most 2 fields``. Pydantic's own checks (types, unknown
   keys, missing keys) and the checks across fields (duplicate mapping targets, duplicate
   lead-owner sources, a rule naming an unknown segment, ...) are reported together. Building
   the model directly (``IntegrationSettings(...)``, ``model_validate``) raises pydantic's
   ``ValidationError`` (also a ``ValueError``) whose one error lists the same problems.
3. **Strict scalars.** Booleans are ``true``/``false`` only; texts are texts. Ids may be written
   as integers (HubSpot and Signals ids are numbers) and are kept as text.
4. **The synchronization delay** is seconds (an integer) or text: ``"15m"``, ``"1h30m"``,
   ``"2d"``, ``"90s"`` (units ``d``, ``h``, ``m``, ``s`` in that order), a bare number of
   seconds (``"900"``) or an ISO-8601 duration (``"PT15M"``, ``"P1DT2H"``, ``"P2W"``; no years
   or months, which have no fixed length). Whole seconds only; never negative; at most 30 days.
   It is written back as the compact form (``"1h30m"``, ``"0s"``).
5. **CRM ids** (``campaign_id``, ``default_owner``, ``user_mapping[].crm_user_id``) are a
   HubSpot id (1 to 20 digits) or a Salesforce id (exactly 15 or 18 ASCII letters and digits).
   Anything else (empty, spaces, punctuation, a 16-character id) is malformed.
6. **Signals user ids** (``signals_user_id``, ``fallback_user``, ``default_account_owner``) are
   1 to 64 ASCII letters, digits, ``_`` or ``-``, starting with a letter or digit.
7. **CRM field names** (mapping targets, owner fields, placeholder keys) are an ASCII letter
   followed by letters, digits and ``_`` (Salesforce API names such as ``Region__c`` and
   HubSpot internal names such as ``hs_lead_status``).
8. **Mapping sources** are dotted Signals paths: ``contact.<any>`` (unknown contact keys from
   the webhook are kept), ``company.<any>``, and the fixed ``chat.*`` and ``conversation.*``
   fields that :meth:`signals_crm.core.model.Conversation.field_values` produces. The ``account``
   set is pulled into company attributes, so its sources are ``company.*``. Targets are unique
   within a set (compared case-insensitively, as both CRMs do).
9. **Order.** ``lead_owner_sources`` and ``task_events`` are sets: duplicates are errors and the
   order written is irrelevant. The lead-owner priority is fixed (meeting scheduler > last
   routed > closer); the settings keep the chosen sources in that order. ``ownership_rules`` is
   ordered (the first rule whose segment contains the company applies); a second rule on the
   same segment could never apply and is an error.
10. **Round trip.** ``from_dict(s.to_dict()) == s``, and the same through JSON and TOML.
    ``None`` values are left out of a dump (TOML has no null); absent keys load as ``None``.

Settings hold no secrets: CRM credentials belong to the adapters.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import tomllib
import typing
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    PlainValidator,
    StrictBool,
    StrictStr,
    Tag,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from signals_crm.core.config import (
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
from signals_crm.core.model import (
    KNOWN_FIELD_PREFIXES,
    ActivityKind,
    Company,
    Conversation,
    Meeting,
    Role,
    Visitor,
    is_valid_email,
    normalize_email,
)
from signals_crm.exceptions import ConfigurationError, Problem

__all__ = [
    "DEFAULT_PLACEHOLDERS",
    "MAX_DELAY",
    "ConditionGroupSettings",
    "ConditionSettings",
    "ContactPolicyName",
    "CriteriaName",
    "DomainListSettings",
    "FallbackCriteriaSettings",
    "FieldMappingSettings",
    "FieldMappingsSettings",
    "IntegrationSettings",
    "MatchName",
    "OperatorName",
    "OwnerSource",
    "OwnershipRuleSettings",
    "SegmentSettings",
    "TaskEvent",
    "UserMapEntrySettings",
    "format_delay",
    "is_crm_id",
    "load_settings",
    "parse_delay",
]

DEFAULT_PLACEHOLDERS: Mapping[str, str] = {
    "LastName": "[not provided]",
    "Company": "[not provided]",
}
"""Placeholders for the CRM's required fields when the visitor has no value (Salesforce)."""

MAX_DELAY = timedelta(days=30)
"""The longest synchronization delay accepted."""

CriteriaName: TypeAlias = Literal["all", "one_star", "two_stars", "three_stars"]
TaskEvent: TypeAlias = Literal["chat_transcript", "meeting_booked"]
OwnerSource: TypeAlias = Literal["meeting_scheduler", "last_routed", "closer"]
ContactPolicyName: TypeAlias = Literal["attach", "create_lead"]
OperatorName: TypeAlias = Literal[
    "eq", "ne", "in", "not_in", "contains", "starts_with", "gt", "gte", "lt", "lte", "is_set",
    "is_not_set",
]  # fmt: skip
MatchName: TypeAlias = Literal["all", "any"]
Scalar: TypeAlias = str | int | float | bool
ConditionValue: TypeAlias = Scalar | tuple[Scalar, ...] | None

_OWNER_PRIORITY: tuple[OwnerSource, ...] = ("meeting_scheduler", "last_routed", "closer")
_TASK_EVENTS: tuple[TaskEvent, ...] = ("chat_transcript", "meeting_booked")

# ------------------------------------------------------------------------------------------------
# Problems: pydantic errors → paths

_PROBLEMS = "signals_problems"
_TAGS = frozenset({"group", "condition", "domain_list"})
_BARE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")


def _join(base: str, rel: str) -> str:
    if not rel:
        return base
    if not base or rel.startswith("["):
        return base + rel
    return f"{base}.{rel}"


def _is_tag(loc: Sequence[int | str], i: int) -> bool:
    """Whether ``loc[i]`` is the tag pydantic adds inside a discriminated union."""
    after_index = i > 0 and isinstance(loc[i - 1], int)
    segment_kind = i == 2 and loc[0] == "segments"  # segments.<name>.<tag>
    return loc[i] in _TAGS and (after_index or segment_kind)


def _loc_path(loc: Sequence[int | str]) -> tuple[str, bool]:
    """The path of a pydantic ``loc``, and whether it ends on a dict key (``[key]``)."""
    path = ""
    is_key = False
    for i, part in enumerate(loc):
        if isinstance(part, int):
            path += f"[{part}]"
            continue
        if part == "[key]":
            is_key = True
            continue
        if _is_tag(loc, i):
            continue  # the tag of a discriminated union: not part of the user's document
        path = _join(path, part if _BARE_KEY.match(part) else f"[{json.dumps(part)}]")
    return path, is_key


_MESSAGES = {
    "extra_forbidden": "unknown key",
    "missing": "required",
}


def _problems_of(exc: ValidationError, root: type[BaseModel] | None = None) -> list[Problem]:
    """Every problem of a pydantic error, with paths relative to where it was raised."""
    out: list[Problem] = []
    for error in exc.errors(include_url=False):
        path, is_key = _loc_path(error["loc"])
        ctx = error.get("ctx") or {}
        if error["type"] == _PROBLEMS:
            out.extend(Problem(_join(path, p), m) for p, m in ctx["problems"])
            continue
        message = _MESSAGES.get(error["type"], error["msg"])
        message = message.removeprefix("Value error, ")
        if error["type"] == "extra_forbidden" and root is not None:
            message += _suggestion(root, error["loc"])
        if is_key:
            message = f"key: {message}"
        out.append(Problem(path, message))
    return out


def _problems_error(problems: Sequence[Problem]) -> PydanticCustomError:
    text = "; ".join(str(p) for p in problems)
    pairs = tuple((p.path, p.message) for p in problems)
    return PydanticCustomError(_PROBLEMS, "{text}", {"text": text, "problems": pairs})


def _configuration_error(exc: ValidationError) -> ConfigurationError:
    return ConfigurationError(_problems_of(exc, IntegrationSettings))


def _model_at(root: type[BaseModel], loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The settings model that holds the last key of ``loc`` (for "did you mean" hints)."""
    tagged: dict[int | str, type[BaseModel]] = {
        "group": ConditionGroupSettings,
        "condition": ConditionSettings,
        "domain_list": DomainListSettings,
    }
    current: Any = root
    for i, part in enumerate(loc[:-1]):
        if isinstance(part, int):
            continue
        if _is_tag(loc, i):
            current = tagged[part]
        elif (
            isinstance(current, type)
            and issubclass(current, BaseModel)
            and part in current.model_fields
        ):
            current = _models_in(current.model_fields[part].annotation)
        # otherwise ``part`` is a key of a dict (a segment name): the value's model is current
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _models_in(annotation: Any) -> type[BaseModel] | None:
    """The one model inside a field's annotation (``None`` for none or several)."""
    found: list[type[BaseModel]] = []

    def walk(tp: Any) -> None:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            found.append(tp)
            return
        for arg in typing.get_args(tp):
            walk(arg)

    walk(annotation)
    unique = list(dict.fromkeys(found))
    return unique[0] if len(unique) == 1 else None


def _suggestion(root: type[BaseModel], loc: Sequence[int | str]) -> str:
    key = loc[-1] if loc else None
    model = _model_at(root, loc)
    if model is None or not isinstance(key, str):
        return ""
    known = list(model.model_fields)
    close = difflib.get_close_matches(key, known, n=1) or [
        k
        for k in known
        if key.lower() in k.split("_")  # "delay" → synchronization_delay
    ]
    return f"; did you mean {close[0]!r}?" if close else ""


def _check_also(
    check: Callable[[Any], list[Problem]], items: type[BaseModel] | None = None
) -> WrapValidator:
    """A validator that runs ``check`` on the raw value *and* pydantic's own validation, and
    reports the problems of both together (pydantic alone stops at the first failing level).
    ``items`` is the model of the list's entries (for "did you mean" hints)."""

    def validate(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        problems = check(value)
        try:
            result = handler(value)
        except ValidationError as exc:
            raise _problems_error([*_problems_of(exc, items), *problems]) from None
        if problems:
            raise _problems_error(problems)
        return result

    return WrapValidator(validate)


def _get(obj: Any, name: str) -> Any:
    """``obj[name]`` or ``obj.name`` on raw input or models; ``None`` when it has neither."""
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _items(obj: Any) -> list[Any]:
    return list(obj) if isinstance(obj, list | tuple) else []


# ------------------------------------------------------------------------------------------------
# Scalars

_CRM_DIGITS = re.compile(r"^[0-9]{1,20}\Z")
_CRM_SALESFORCE = re.compile(r"^(?:[A-Za-z0-9]{15}|[A-Za-z0-9]{18})\Z")
_SIGNALS_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")
_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,254}\Z")
_PATH_PART = re.compile(r"^[A-Za-z0-9_]+\Z")


def is_crm_id(value: str) -> bool:
    """Whether ``value`` is a HubSpot id (1 to 20 digits) or a Salesforce id (15 or 18 letters and
    digits)."""
    return bool(_CRM_DIGITS.match(value) or _CRM_SALESFORCE.match(value))


def _int_as_text(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    return value


def _check_crm_id(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    if not is_crm_id(value):
        raise ValueError(
            f"malformed CRM id {value!r}: expected a Salesforce id (15 or 18 letters and "
            "digits) or a HubSpot id (digits)"
        )
    return value


def _check_signals_id(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    if not _SIGNALS_ID.match(value):
        raise ValueError(
            f"malformed Signals user id {value!r}: expected letters, digits, '_' or '-' "
            "(at most 64)"
        )
    return value


def _check_field_name(value: str) -> str:
    if not _FIELD_NAME.match(value):
        raise ValueError(
            f"malformed CRM field name {value!r}: expected a letter, then letters, digits or '_'"
        )
    return value


def _check_text(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _check_name(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    if value != value.strip():
        raise ValueError("must not start or end with spaces")
    return value


def _check_email(value: str) -> str:
    if not is_valid_email(value):
        raise ValueError(f"not a valid email address: {value!r}")
    return value


def _check_domain(value: str) -> str:
    if not value.strip() or any(c.isspace() for c in value) or "/" in value or "@" in value:
        raise ValueError(f"not a bare domain such as example.com: {value!r}")
    return value


def _check_attribute(value: str) -> str:
    if not value.strip() or any(c.isspace() for c in value):
        raise ValueError(f"malformed company attribute {value!r}: no spaces, not empty")
    return value


def _known_fixed_fields() -> frozenset[str]:
    """The ``chat.*`` and ``conversation.*`` paths, as the core produces them."""
    sample = Conversation(
        id="sample",
        closed_at=datetime(2000, 1, 1, tzinfo=UTC),
        meeting=Meeting(id="1"),
        visitor=Visitor(),
        company=Company(),
    )
    return frozenset(p for p in sample.field_values() if p.startswith(("chat.", "conversation.")))


_FIXED_FIELDS = _known_fixed_fields()


def _check_source(value: str) -> str:
    prefix, dot, rest = value.partition(".")
    if not dot or f"{prefix}." not in KNOWN_FIELD_PREFIXES:
        known = ", ".join(KNOWN_FIELD_PREFIXES)
        raise ValueError(f"unknown Signals field {value!r}: must start with one of {known}")
    if not all(_PATH_PART.match(part) for part in rest.split(".")):
        raise ValueError(f"malformed Signals field {value!r}")
    if prefix in ("chat", "conversation") and value not in _FIXED_FIELDS:
        known = ", ".join(sorted(p for p in _FIXED_FIELDS if p.startswith(f"{prefix}.")))
        raise ValueError(f"unknown Signals field {value!r}: {prefix}.* is one of {known}")
    return value


def _refuse_many_campaigns(value: Any) -> Any:
    if isinstance(value, list | tuple):
        raise PydanticCustomError(
            "one_campaign", "at most one campaign: give a single campaign id, not a list"
        )
    return value


CRMId = Annotated[str, BeforeValidator(_int_as_text), AfterValidator(_check_crm_id)]
SignalsUserId = Annotated[str, BeforeValidator(_int_as_text), AfterValidator(_check_signals_id)]
FieldName = Annotated[StrictStr, AfterValidator(_check_field_name)]
Email = Annotated[StrictStr, AfterValidator(_check_email)]
Text = Annotated[StrictStr, AfterValidator(_check_text)]
Name = Annotated[StrictStr, AfterValidator(_check_name)]
Domain = Annotated[StrictStr, AfterValidator(_check_domain)]
Attribute = Annotated[StrictStr, AfterValidator(_check_attribute)]
Source = Annotated[StrictStr, AfterValidator(_check_source)]

# ------------------------------------------------------------------------------------------------
# The synchronization delay

_COMPACT = re.compile(r"^(?:([0-9]+)d)?\s*(?:([0-9]+)h)?\s*(?:([0-9]+)m)?\s*(?:([0-9]+)s)?\Z")
_ISO = re.compile(
    r"^P(?:([0-9]+)W)?(?:([0-9]+)D)?(?:T(?=[0-9])(?:([0-9]+)H)?(?:([0-9]+)M)?(?:([0-9]+)S)?)?\Z",
    re.IGNORECASE,
)
_DELAY_HINT = 'use seconds (900) or a duration such as "15m", "1h30m" or "PT15M"'


def parse_delay(value: object) -> timedelta:
    """A synchronization delay from seconds (int), text (``"15m"``, ``"PT15M"``) or a
    ``timedelta``. Raises ``ValueError`` (``TypeError`` for other types) naming what is wrong."""
    if isinstance(value, bool):
        raise TypeError(f"not a delay: {_DELAY_HINT}")
    if isinstance(value, timedelta):
        delay = value
    elif isinstance(value, int):
        delay = timedelta(seconds=value)
    elif isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise ValueError(f"must be a whole number of seconds, not {value!r}")
        delay = timedelta(seconds=int(value))
    elif isinstance(value, str):
        delay = _parse_delay_text(value)
    else:
        raise TypeError(f"not a delay: {_DELAY_HINT}")
    if delay < timedelta(0):
        raise ValueError("must not be negative")
    if delay > MAX_DELAY:
        raise ValueError(f"at most 30 days, not {format_delay(delay)}")
    if delay.microseconds:
        raise ValueError("must be a whole number of seconds")
    return delay


def _parse_delay_text(value: str) -> timedelta:
    text = value.strip()
    if text.startswith("-"):
        raise ValueError("must not be negative")
    if text.isascii() and text.isdigit():
        return timedelta(seconds=int(text))
    compact = _COMPACT.match(text)
    if text and compact and any(compact.groups()):
        d, h, m, s = (int(g) if g else 0 for g in compact.groups())
        return _bounded(days=d, hours=h, minutes=m, seconds=s)
    iso = _ISO.match(text)
    if text and iso and any(iso.groups()):
        w, d, h, m, s = (int(g) if g else 0 for g in iso.groups())
        return _bounded(days=7 * w + d, hours=h, minutes=m, seconds=s)
    if re.match(r"^P.*[YM]", text.upper().split("T")[0]):
        raise ValueError("years and months have no fixed length: give days (P30D)")
    raise ValueError(f"not a delay: {value!r}; {_DELAY_HINT}")


def _bounded(*, days: int, hours: int, minutes: int, seconds: int) -> timedelta:
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total > MAX_DELAY.total_seconds():
        raise ValueError(f"at most 30 days, not {total} seconds")
    return timedelta(seconds=total)


def format_delay(delay: timedelta) -> str:
    """The compact text of a delay: ``"1d2h3m4s"`` with zero units left out, ``"0s"`` for none."""
    total = int(delay.total_seconds())
    sign = "-" if total < 0 else ""
    total = abs(total)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    if seconds or not parts:
        parts.append(f"{seconds}s")
    return sign + "".join(parts)


def _validate_delay(value: object) -> timedelta:
    try:
        return parse_delay(value)
    except (TypeError, ValueError) as exc:
        raise PydanticCustomError("delay", str(exc)) from None


Delay = Annotated[
    timedelta,
    PlainValidator(_validate_delay, json_schema_input_type=int | str),
    PlainSerializer(format_delay, return_type=str),
]

# ------------------------------------------------------------------------------------------------
# Sets without duplicates


def _no_duplicates(label: str) -> WrapValidator:
    """Reject repeated words in a list, naming the later index of each repeat."""

    def check(value: Any) -> list[Problem]:
        seen: set[str] = set()
        problems = []
        for index, item in enumerate(_items(value)):
            if isinstance(item, str):
                if item in seen:
                    problems.append(Problem(f"[{index}]", f"duplicate {label} {item!r}"))
                seen.add(item)
        return problems

    return _check_also(check)


def _in_order(order: tuple[str, ...]) -> AfterValidator:
    """Keep the words of a set in their fixed order, whatever order they were written in."""
    return AfterValidator(lambda value: tuple(w for w in order if w in value))


def _owner_fields_count(*, least: int) -> WrapValidator:
    def check(value: Any) -> list[Problem]:
        items = _items(value)
        if not isinstance(value, list | tuple):
            return []
        problems = []
        if len(items) > 2:  # the product's limit: a field, then a second one
            problems.append(Problem("", "at most 2 fields"))
        if len(items) < least:
            problems.append(Problem("", f"at least {least} field"))
        seen = set()
        for index, item in enumerate(items):
            if isinstance(item, str):
                if item.lower() in seen:
                    problems.append(Problem(f"[{index}]", f"duplicate field {item!r}"))
                seen.add(item.lower())
        return problems

    return _check_also(check)


# ------------------------------------------------------------------------------------------------
# Models

_CONFIG = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


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
    target = _get(item, "target")
    return target.lower() if isinstance(target, str) else None


def _mapping_set(*, pulled: bool) -> WrapValidator:
    """Targets unique within the set; pulled (account) sources are ``company.*``."""

    def check(value: Any) -> list[Problem]:
        problems: list[Problem] = []
        seen: dict[str, int] = {}
        for index, item in enumerate(_items(value)):
            key = _target_key(item)
            if key is not None:
                if key in seen:
                    problems.append(
                        Problem(
                            f"[{index}].target",
                            f"duplicate target {_get(item, 'target')!r} (also [{seen[key]}])",
                        )
                    )
                else:
                    seen[key] = index
            source = _get(item, "source")
            if pulled and isinstance(source, str) and not source.startswith("company."):
                problems.append(
                    Problem(
                        f"[{index}].source",
                        "account mappings are pulled into company attributes: the source "
                        "must start with company.",
                    )
                )
        return problems

    return _check_also(check, FieldMappingSettings)


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
    for index, item in enumerate(_items(value)):
        user_id = _int_as_text(_get(item, "signals_user_id"))
        email = _get(item, "signals_email")
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


def _check_condition_value(operator: str, value: ConditionValue) -> str | None:
    """What is wrong with ``value`` for ``operator``, or ``None``."""
    if operator in ("is_set", "is_not_set"):
        return None if value is None else f"{operator} takes no value"
    if value is None:
        return f"{operator} needs a value"
    if operator in ("in", "not_in"):
        if not isinstance(value, tuple) or not value:
            return f"{operator} needs a non-empty list of values"
        return None
    if isinstance(value, tuple):
        return f"{operator} needs a single value, not a list"
    if operator in ("contains", "starts_with") and not isinstance(value, str):
        return f"{operator} needs text"
    if operator in ("gt", "gte", "lt", "lte") and isinstance(value, bool):
        return f"{operator} needs a number or an ISO date"
    return None


def _validate_condition_value(value: Any) -> ConditionValue:
    def scalar(v: Any) -> bool:
        if isinstance(v, float):
            return math.isfinite(v)
        if isinstance(v, int) and not isinstance(v, bool):
            return -(2**63) <= v < 2**63  # TOML integers are 64-bit
        return isinstance(v, str | bool)

    if value is None or scalar(value):
        return typing.cast("ConditionValue", value)
    if isinstance(value, list | tuple) and all(scalar(v) for v in value):
        return tuple(value)
    raise PydanticCustomError(
        "condition_value",
        "must be text, a (64-bit or finite) number, true/false, or a list of those",
    )


def _dump_condition_value(value: ConditionValue) -> Any:
    return list(value) if isinstance(value, tuple) else value


ConditionValueField = Annotated[
    ConditionValue,
    PlainValidator(
        _validate_condition_value,
        json_schema_input_type=str | int | float | bool | list[str | int | float | bool] | None,
    ),
    PlainSerializer(_dump_condition_value),
]


class ConditionSettings(BaseModel):
    """``attribute <operator> value`` over a company's attributes (``company.`` optional)."""

    model_config = _CONFIG

    attribute: Attribute
    operator: OperatorName
    value: ConditionValueField = None

    @model_validator(mode="after")
    def _value_fits_operator(self) -> ConditionSettings:
        problem = _check_condition_value(self.operator, self.value)
        if problem is not None:
            raise _problems_error([Problem("value", problem)])
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


def _at_least_one(what: str) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    def check(value: tuple[Any, ...]) -> tuple[Any, ...]:
        if not value:
            raise ValueError(f"at least one {what}")
        return value

    return check


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
    conditions: Annotated[tuple[ConditionItem, ...], AfterValidator(_at_least_one("condition"))]

    def to_core(self) -> ConditionGroup:
        """The core value."""
        return ConditionGroup(
            conditions=tuple(c.to_core() for c in self.conditions), match=self.match
        )


class DomainListSettings(BaseModel):
    """A static list of company domains."""

    model_config = _CONFIG

    domains: Annotated[tuple[Domain, ...], AfterValidator(_at_least_one("domain"))]

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
    owner_fields: Annotated[tuple[FieldName, ...], _owner_fields_count(least=1)]
    fallback_user: SignalsUserId | None = None

    def to_core(self) -> OwnershipRule:
        """The core value."""
        return OwnershipRule(self.segment, self.owner_fields, self.fallback_user)


class FallbackCriteriaSettings(BaseModel):
    """What applies to a company in no rule's segment (owner fields may be empty)."""

    model_config = _CONFIG

    owner_fields: Annotated[tuple[FieldName, ...], _owner_fields_count(least=0)] = ()
    fallback_user: SignalsUserId | None = None

    def to_core(self) -> FallbackCriteria:
        """The core value."""
        return FallbackCriteria(self.owner_fields, self.fallback_user)


def _check_across(data: Any) -> list[Problem]:
    """Checks between top-level keys, run on the raw input so that they are reported even when
    other parts fail: every rule names a known segment, and no segment has two rules."""
    problems: list[Problem] = []
    segments = _get(data, "segments")
    names = set(segments) if isinstance(segments, Mapping) else None
    used: dict[str, int] = {}
    for index, rule in enumerate(_items(_get(data, "ownership_rules"))):
        segment = _get(rule, "segment")
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
    return problems


class IntegrationSettings(BaseModel):
    """Everything a host configures about the integration. See the module docstring."""

    model_config = _CONFIG

    enabled: StrictBool = True
    criteria: CriteriaName = "all"
    synchronization_delay: Delay = timedelta(0)
    task_events: Annotated[
        tuple[TaskEvent, ...], _no_duplicates("event"), _in_order(_TASK_EVENTS)
    ] = _TASK_EVENTS
    campaign_id: Annotated[CRMId | None, BeforeValidator(_refuse_many_campaigns)] = None
    lead_owner_sources: Annotated[
        tuple[OwnerSource, ...], _no_duplicates("source"), _in_order(_OWNER_PRIORITY)
    ] = _OWNER_PRIORITY
    default_owner: CRMId | None = None
    field_mappings: FieldMappingsSettings = Field(default_factory=FieldMappingsSettings)
    user_mapping: Annotated[
        tuple[UserMapEntrySettings, ...], _check_also(_check_users, UserMapEntrySettings)
    ] = ()
    existing_contact: ContactPolicyName = "attach"
    placeholders: dict[FieldName, Text] = Field(default_factory=lambda: dict(DEFAULT_PLACEHOLDERS))
    ownership_rules: tuple[OwnershipRuleSettings, ...] = ()
    segments: dict[Name, SegmentSettings] = Field(default_factory=dict)
    fallback_criteria: FallbackCriteriaSettings | None = None
    default_account_owner: SignalsUserId | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _every_problem(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        problems = _check_across(data) if isinstance(data, Mapping) else []
        try:
            result = handler(data)
        except ValidationError as exc:
            raise _problems_error([*_problems_of(exc, cls), *problems]) from None
        if problems:
            raise _problems_error(problems)
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
            raise _configuration_error(exc) from None

    @classmethod
    def from_json(cls, text: str | bytes) -> IntegrationSettings:
        """Validate JSON text. Raises ``ConfigurationError``."""
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigurationError([Problem("", f"not valid JSON: {exc}")]) from exc
        return cls.from_dict(data)

    @classmethod
    def from_toml(cls, text: str) -> IntegrationSettings:
        """Validate TOML text. Raises ``ConfigurationError``."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError([Problem("", f"not valid TOML: {exc}")]) from exc
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
        return _dump_toml(self.to_dict())

    # -- the core value -----------------------------------------------------------------------

    def to_config(self) -> SyncConfig:
        """The frozen core value the sync decides with."""
        # ``Any``: mypy cannot type attrs' ``converter=frozenset`` (core/config.py).
        task_kinds: Any = frozenset(ActivityKind(e) for e in self.task_events)
        return SyncConfig(
            enabled=self.enabled,
            criteria=Criteria(self.criteria),
            delay=self.synchronization_delay,
            task_kinds=task_kinds,
            campaign_id=self.campaign_id,
            owner_sources=tuple(Role(s) for s in self.lead_owner_sources),
            default_owner=self.default_owner,
            mappings=self.field_mappings.to_core(),
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
        )


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


# ------------------------------------------------------------------------------------------------
# A small TOML writer for the shapes settings use: tables, arrays of tables, scalars (text,
# integers, finite floats, booleans) and arrays of scalars.


def _dump_toml(data: Mapping[str, Any]) -> str:
    """TOML text for ``data`` (nested tables, arrays of tables, scalars, arrays of scalars)."""
    lines: list[str] = []
    _write_table(lines, (), data, header=None)
    return "\n".join(lines).strip("\n") + "\n"


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _write_table(
    lines: list[str], path: tuple[str, ...], table: Mapping[str, Any], *, header: str | None
) -> None:
    if header is not None:
        if lines:
            lines.append("")
        lines.append(header)
    nested: list[tuple[str, Any]] = []
    for key, value in table.items():
        if isinstance(value, Mapping) or _is_table_array(value):
            nested.append((key, value))
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, value in nested:
        sub = (*path, key)
        dotted = ".".join(_toml_key(k) for k in sub)
        if isinstance(value, Mapping):
            _write_table(lines, sub, value, header=f"[{dotted}]")
        else:
            for item in value:
                _write_table(lines, sub, item, header=f"[[{dotted}]]")


def _toml_key(key: str) -> str:
    return key if re.match(r"^[A-Za-z0-9_-]+\Z", key) else _toml_string(key)


_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f",
                 "\r": "\\r"}  # fmt: skip


def _toml_string(text: str) -> str:
    out = []
    for char in text:
        if char in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:  # control characters
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("TOML settings hold finite numbers only")
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")
