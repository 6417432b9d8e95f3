"""The scalar values of settings and the checks on lists of them.

Each ``Annotated`` type here is one rule of :mod:`signals_crm.settings` (numbers refer to its
module docstring): CRM ids (rule 5), Signals user ids (6), CRM field names (7), mapping sources
(8), texts, names, domains and company attributes; sets without duplicates kept in their fixed
order (9); the values a segment condition compares with.
"""

from __future__ import annotations

import math
import re
import typing
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeAlias

from pydantic import (
    AfterValidator,
    BeforeValidator,
    PlainSerializer,
    PlainValidator,
    StrictStr,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import PydanticCustomError

from signals_crm.core.model import (
    KNOWN_FIELD_PREFIXES,
    Company,
    Conversation,
    Meeting,
    Visitor,
    is_valid_email,
)
from signals_crm.exceptions import Problem
from signals_crm.settings._problems import check_also, get, items, problems_error

Scalar: TypeAlias = str | int | float | bool
ConditionValue: TypeAlias = Scalar | tuple[Scalar, ...] | None

# ------------------------------------------------------------------------------------------------
# Scalars

_CRM_DIGITS = re.compile(r"^[0-9]{1,20}\Z")
_CRM_SALESFORCE = re.compile(r"^(?:[A-Za-z0-9]{15}|[A-Za-z0-9]{18})\Z")
_SIGNALS_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")
_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,254}\Z")
_PATH_PART = re.compile(r"^[A-Za-z0-9_]+\Z")


def is_crm_id(value: str) -> bool:
    """Whether ``value`` is a HubSpot id (1 to 20 digits) or a Salesforce id (15 or 18 letters and
    digits).

    Deprecated: settings accept any well-formed id (rule 5), and the shape of an id is the
    adapter's to check (:meth:`signals_crm.core.crm.Capabilities.is_id`, run by preflight).
    """
    warnings.warn(
        "is_crm_id is deprecated: the shape of a CRM id is the adapter's to check "
        "(Capabilities.is_id, reported by preflight)",
        DeprecationWarning,
        stacklevel=2,
    )
    return bool(_CRM_DIGITS.match(value) or _CRM_SALESFORCE.match(value))


MAX_ID_LENGTH = 255
"""The longest CRM id settings accept (Salesforce ids have 18 characters, HubSpot's 20 digits)."""


def int_as_text(value: Any) -> Any:
    """An id written as a (64-bit, non-negative) integer, as text; anything else unchanged."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        if value >= 2**63:  # (TOML integers are 64-bit; str() of thousands of digits raises)
            raise PydanticCustomError(
                "id_too_large", "an id written as a number must fit in 64 bits; write it as text"
            )
        return str(value)
    return value


def _check_crm_id(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    if len(value) > MAX_ID_LENGTH or not value.isprintable() or any(c.isspace() for c in value):
        shown = repr(value) if len(value) <= 40 else repr(value[:40]) + "…"
        raise ValueError(
            f"malformed CRM id {shown}: expected 1 to {MAX_ID_LENGTH} characters without "
            "spaces or control characters"
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


def refuse_many_campaigns(value: Any) -> Any:
    if isinstance(value, list | tuple):
        raise PydanticCustomError(
            "one_campaign", "at most one campaign: give a single campaign id, not a list"
        )
    return value


CRMId = Annotated[str, BeforeValidator(int_as_text), AfterValidator(_check_crm_id)]
SignalsUserId = Annotated[str, BeforeValidator(int_as_text), AfterValidator(_check_signals_id)]
FieldName = Annotated[StrictStr, AfterValidator(_check_field_name)]
Email = Annotated[StrictStr, AfterValidator(_check_email)]
Text = Annotated[StrictStr, AfterValidator(_check_text)]
Name = Annotated[StrictStr, AfterValidator(_check_name)]
Domain = Annotated[StrictStr, AfterValidator(_check_domain)]
Attribute = Annotated[StrictStr, AfterValidator(_check_attribute)]
Source = Annotated[StrictStr, AfterValidator(_check_source)]

# ------------------------------------------------------------------------------------------------
# Sets without duplicates


def no_duplicates(label: str) -> WrapValidator:
    """Reject repeated words in a list, naming the later index of each repeat."""

    def check(value: Any) -> list[Problem]:
        seen: set[str] = set()
        problems = []
        for index, item in enumerate(items(value)):
            if isinstance(item, str):
                if item in seen:
                    problems.append(Problem(f"[{index}]", f"duplicate {label} {item!r}"))
                seen.add(item)
        return problems

    return check_also(check)


def in_order(order: tuple[str, ...]) -> AfterValidator:
    """Keep the words of a set in their fixed order, whatever order they were written in."""
    return AfterValidator(lambda value: tuple(w for w in order if w in value))


def owner_fields_count(*, least: int) -> WrapValidator:
    def check(value: Any) -> list[Problem]:
        entries = items(value)
        if not isinstance(value, list | tuple):
            return []
        problems = []
        if len(entries) > 2:  # the product's limit: a field, then a second one
            problems.append(Problem("", "at most 2 fields"))
        if len(entries) < least:
            problems.append(Problem("", f"at least {least} field"))
        seen = set()
        for index, item in enumerate(entries):
            if isinstance(item, str):
                if item.lower() in seen:
                    problems.append(Problem(f"[{index}]", f"duplicate field {item!r}"))
                seen.add(item.lower())
        return problems

    return check_also(check)


# ------------------------------------------------------------------------------------------------
# Condition values


def check_condition_value(operator: str, value: ConditionValue) -> str | None:
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


def at_least_one(what: str) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    def check(value: tuple[Any, ...]) -> tuple[Any, ...]:
        if not value:
            raise ValueError(f"at least one {what}")
        return value

    return check


MAX_GROUP_DEPTH = 16
"""How deep condition groups may nest inside a segment."""


def _group_depth(value: Any) -> int:
    """How deep the groups of a raw segment nest (iteratively: the input may be very deep)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_GROUP_DEPTH:
            return depth
        deepest = max(deepest, depth)
        conditions = get(node, "conditions")
        stack.extend((c, depth + 1) for c in items(conditions) if get(c, "conditions") is not None)
    return deepest


def _limit_depth(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    if _group_depth(value) > MAX_GROUP_DEPTH:
        raise problems_error(
            [Problem("", f"condition groups nest at most {MAX_GROUP_DEPTH} levels deep")]
        )
    return handler(value)


GROUP_DEPTH = WrapValidator(_limit_depth)
"""Refuses a segment whose groups nest deeper than :data:`MAX_GROUP_DEPTH` before pydantic
validates it (which would otherwise recurse as deep as the input)."""
