"""Field mapping: which CRM fields a sync writes, with which values.

The rule:

1. The person record uses the ``lead`` mapping set when the CRM's person object is a Lead
   (Salesforce) and the ``contact`` set when it is a contact (HubSpot). The ``account`` set is
   pulled, never pushed (see :mod:`signals_crm.core.ownership`).
2. Empty values (``None``, or text that is blank after trimming) are never sent.
3. **Create** sends every mapped non-empty value. A required field still empty afterwards gets
   its configured placeholder (Salesforce ``LastName`` and ``Company``), when the CRM says the
   field is required (or when no schema is known).
4. **Update** sends only mappings marked ``overwrite``, only non-empty values, and only values
   that differ from the CRM's current value (text compared after trimming; numbers by value;
   dates by their ISO form). Nothing changed → no update at all.
5. With a schema, each value is checked before it is written: a field the CRM does not have, or
   that it will not let us create/update, is dropped with a warning; a value that does not fit
   the type or a restricted picklist is dropped with a warning; too-long text is **truncated**
   to the field's length with a warning — the CRM never sees a value it would reject.
6. **What each tab means**, per CRM (:func:`inapplicable_mappings`, reported by preflight):

   ============  ===========================================  ==============================
   tab           Salesforce (person object: Lead)              HubSpot (person object: contact)
   ============  ===========================================  ==============================
   ``lead``      pushed to the Lead a sync creates or updates  never applies (no Lead object)
   ``contact``   never applies (Contacts are never written)    pushed to the contact
   ``account``   pulled from the Account into ``company.*``    pulled from the company
   ============  ===========================================  ==============================

   In general the pushed tab is the one named after the CRM's person object; the other person
   tab can never apply; an ``account`` mapping whose source is not ``company.<attribute>`` can
   never apply either. Each of those is a preflight problem, never silently ignored. They stop
   ``run_due`` (like every preflight problem) except in one case: mappings of the *other*
   person tab while the CRM's own tab has mappings too — settings written for both CRMs —
   which are reported (and logged) but do not block (:func:`blocking_mapping_problems`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any, NamedTuple

import attrs

from signals_crm.core.config import FieldMapping, FieldMappings
from signals_crm.core.crm import Capabilities
from signals_crm.core.model import FieldSchema, FieldType, FieldValue, ObjectSchema, PersonKind
from signals_crm.core.trace import Reason, info, warning
from signals_crm.exceptions import Problem

__all__ = [
    "CompiledFields",
    "FieldPayload",
    "FieldSlot",
    "RowReader",
    "TabMeaning",
    "blocking_mapping_problems",
    "build_create_fields",
    "build_update_fields",
    "inapplicable_mappings",
    "is_empty",
    "mapping_set_for",
    "portable_mapping_problems",
    "same_value",
    "tab_meaning",
    "validate_mappings",
]


class FieldPayload(NamedTuple):
    """CRM field → value to write, and the reasons behind each drop or change."""

    fields: Mapping[str, FieldValue]
    trace: tuple[Reason, ...] = ()


def mapping_set_for(mappings: FieldMappings, person_kind: PersonKind) -> tuple[FieldMapping, ...]:
    """The mapping set that applies to the CRM's person object."""
    return mappings.lead if person_kind is PersonKind.LEAD else mappings.contact


def is_empty(value: FieldValue) -> bool:
    """``None`` and blank text are empty; ``0`` and ``False`` are values."""
    return value is None or (isinstance(value, str) and not value.strip())


def _as_text(value: FieldValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _as_number(value: FieldValue) -> float | None:
    if isinstance(value, bool) or value is None or isinstance(value, date | datetime):
        return None
    if isinstance(value, int | float):
        return float(value)
    return _text_number(value.strip())


def _text_number(text: str) -> float | None:
    """The finite number a trimmed text spells (thousands commas ignored), or ``None``."""
    text = text.replace(",", "")
    if _NOT_NUMERIC.search(text):
        return None  # what float() would refuse, without paying for its exception
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


# A character float() never accepts: not a decimal digit, space, sign, point, underscore, or a
# letter of an exponent, "inf", "infinity" or "nan".
_NOT_NUMERIC = re.compile(r"[^\d\s+\-._eEiInNfFtTyYaA]")


def same_value(ours: FieldValue, theirs: FieldValue) -> bool:
    """Whether a value we would write equals the CRM's current value.

    Empty equals empty; numbers compare by value (``"42"`` = ``42.0``); booleans by truth
    (``"true"`` = ``True``); everything else by its trimmed text (case-sensitive: a changed
    capitalisation is a change).
    """
    if theirs is None:
        return is_empty(ours)
    if ours.__class__ is str and theirs.__class__ is str:
        # The common case, text against text, without exceptions from number parsing.
        a_text, b_text = ours.strip(), theirs.strip()
        if a_text == b_text:
            return True
        if not (a_text[:1] in _NUMERIC_START and b_text[:1] in _NUMERIC_START):
            return False
        # Different texts are the same value only as equal numbers.
        a = _text_number(a_text)
        return a is not None and a == _text_number(b_text)
    if is_empty(ours) or is_empty(theirs):
        return is_empty(ours) and is_empty(theirs)
    if isinstance(ours, bool) or isinstance(theirs, bool):
        return _as_text(ours).lower() == _as_text(theirs).lower()
    a = _as_number(ours)
    b = _as_number(theirs) if a is not None else None
    if a is not None and b is not None:
        return a == b
    return _as_text(ours) == _as_text(theirs)


_NUMERIC_START = frozenset("0123456789+-.")
_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


def _fit(value: FieldValue, schema: FieldSchema) -> tuple[FieldValue, Reason | None]:
    """Convert ``value`` to what ``schema`` accepts; ``(None, reason)`` drops it."""
    name = schema.name
    kind = schema.type
    if kind is FieldType.BOOLEAN:
        if isinstance(value, bool):
            return value, None
        text = _as_text(value).lower()
        if text in _TRUE:
            return True, None
        if text in _FALSE:
            return False, None
        return None, warning(
            "value_dropped", f"{name}: {value!r} is not a boolean; not written", field=name
        )
    if kind in (FieldType.INTEGER, FieldType.NUMBER):
        number = _as_number(value)
        if number is None:
            return None, warning(
                "value_dropped", f"{name}: {value!r} is not a number; not written", field=name
            )
        if kind is FieldType.INTEGER:
            if not number.is_integer():
                return None, warning(
                    "value_dropped", f"{name}: {value!r} is not a whole number", field=name
                )
            return int(number), None
        return number, None
    if kind is FieldType.DATE:
        if isinstance(value, datetime):
            return value.date(), None
        if isinstance(value, date):
            return value, None
        try:
            return date.fromisoformat(_as_text(value)[:10]), None
        except ValueError:
            return None, warning(
                "value_dropped", f"{name}: {value!r} is not a date; not written", field=name
            )
    if kind is FieldType.DATETIME:
        if isinstance(value, datetime):
            return value, None
        try:
            return datetime.fromisoformat(_as_text(value)), None
        except ValueError:
            return None, warning(
                "value_dropped", f"{name}: {value!r} is not a date-time; not written", field=name
            )
    if kind in (FieldType.REFERENCE, FieldType.ID, FieldType.OTHER):
        return value, None
    text = _as_text(value)
    if kind in (FieldType.PICKLIST, FieldType.MULTIPICKLIST) and schema.picklist_values:
        allowed = schema.picklist_values
        parts = text.split(";") if kind is FieldType.MULTIPICKLIST else [text]
        unknown = [p for p in parts if p not in allowed]
        if unknown and schema.restricted_picklist:
            return None, warning(
                "value_dropped",
                f"{name}: {text!r} is not one of the picklist's values; not written",
                field=name,
            )
    if schema.length is not None and len(text) > schema.length:
        return text[: schema.length], warning(
            "value_truncated",
            f"{name}: {len(text)} characters truncated to the field's {schema.length}",
            field=name,
        )
    return text, None


def _check_field(
    target: str, schema: ObjectSchema | None, *, for_update: bool
) -> tuple[FieldSchema | None, Reason | None]:
    if schema is None:
        return None, None
    field = schema.get(target)
    if field is None:
        return None, warning(
            "field_unknown", f"{schema.name} has no field {target!r}; not written", field=target
        )
    if for_update and not field.updateable:
        return None, warning(
            "field_not_updateable", f"{target} cannot be updated; not written", field=target
        )
    if not for_update and not field.createable:
        return None, warning(
            "field_not_createable", f"{target} cannot be set on create; not written", field=target
        )
    return field, None


class FieldSlot(NamedTuple):
    """One mapping, resolved against the CRM's schema once: where its value comes from, and
    where (and whether) it is written."""

    source: str
    target: str  # the CRM field, spelled as the schema spells it when one is known
    field: FieldSchema | None  # ``None`` when no schema is known (or the field is refused)
    problem: Reason | None  # why the CRM would refuse the field: it is never written


RowReader = Callable[[Sequence[str]], Callable[[Any], Sequence[FieldValue]]]
"""Given the sources of a mapping set, a function reading all their values from a subject."""


@attrs.frozen
class CompiledFields:
    """A mapping set worked out once against a schema, then applied to many subjects.

    Rules 2 to 5 read the schema the same way for every conversation, so a planner compiles
    them once per schema: each slot knows its target's spelling, field type or refusal; each
    applicable placeholder its reason; ``read`` (made by a :data:`RowReader`) reads every
    source of a subject (a conversation, or a mapping of source → value) at once.
    """

    slots: tuple[FieldSlot, ...]
    read: Callable[[Any], Sequence[FieldValue]]
    schema_free: bool  # compiled without a schema: every slot is written as it is
    email_target: str | None = None
    placeholders: tuple[tuple[str, str, str, Reason], ...] = ()  # target, lower, value, why
    targets: tuple[str, ...] = attrs.field(init=False, eq=False, repr=False)
    # Per slot, for a text value: its field's length limit (-1: none) when _fit only trims it
    # (a text field without picklist values), else None (_fit decides).
    _text_limits: tuple[int | None, ...] = attrs.field(init=False, eq=False, repr=False)
    # Updates change few distinct sets of fields: each set's reason, made once.
    _changed: dict[tuple[str, ...], Reason] = attrs.field(
        factory=dict, init=False, eq=False, repr=False
    )

    @targets.default
    def _targets(self) -> tuple[str, ...]:
        return tuple(slot.target for slot in self.slots)

    @_text_limits.default
    def _limits(self) -> tuple[int | None, ...]:
        limits: list[int | None] = []
        for slot in self.slots:
            field = slot.field
            if field is None or not field.type.is_text:
                limits.append(None)
            else:
                limits.append(-1 if field.length is None else field.length)
        return tuple(limits)

    @classmethod
    def compile(
        cls,
        mappings: Iterable[FieldMapping],
        reader: RowReader,
        *,
        for_update: bool,
        schema: ObjectSchema | None = None,
        placeholders: Mapping[str, str] | None = None,
        email_field: str | None = None,
    ) -> CompiledFields:
        slots = []
        for mapping in mappings:
            if for_update and not mapping.overwrite:
                continue
            field, problem = _check_field(mapping.target, schema, for_update=for_update)
            name = field.name if field is not None else mapping.target
            slots.append(FieldSlot(mapping.source, name, field, problem))
        email_target = None
        if email_field is not None:
            email_schema = schema.get(email_field) if schema is not None else None
            email_target = email_schema.name if email_schema is not None else email_field
        filled: list[tuple[str, str, str, Reason]] = []
        for target, placeholder in (placeholders or {}).items():
            field = schema.get(target) if schema is not None else None
            if schema is not None and (field is None or not field.required):
                continue  # only a field the schema marks required gets a placeholder
            name = field.name if field is not None else target
            why = info(
                "placeholder_used", f"{name} is required and empty; placeholder {placeholder!r}"
            )
            filled.append((name, name.lower(), placeholder, why))
        read = reader([slot.source for slot in slots])
        return cls(tuple(slots), read, schema is None, email_target, tuple(filled))

    def values(self, subject: Any, trace: list[Reason]) -> dict[str, FieldValue]:
        """CRM field → value of every slot that applies (rules 2 and 5)."""
        out: dict[str, FieldValue] = {}
        values = self.read(subject)
        if self.schema_free:  # nothing to check: the hot path of a batch, kept bare
            # ``read`` gives one value per slot, in their order: the targets are indexed,
            # which costs less than zipping them (the lengths checked as zip(strict=True) does)
            targets = self.targets
            if len(values) != len(targets):
                raise ValueError(f"{len(values)} values read for {len(targets)} slots")
            for index, value in enumerate(values):
                if value.__class__ is str:
                    value = value.strip()  # noqa: PLW2901
                    if value:
                        out[targets[index]] = value
                elif value is not None:
                    out[targets[index]] = value
            return out
        for value, (_, target, field, problem), limit in zip(
            values, self.slots, self._text_limits, strict=True
        ):
            if limit is not None and value.__class__ is str:
                # Text into a text field: _fit trims it, and cuts it (with a reason) only when
                # it is longer than the field.
                text = value.strip()
                if not text:
                    continue
                if limit < 0 or len(text) <= limit:
                    out[target] = text
                    continue
            if is_empty(value):
                continue
            if field is None:  # refused by the schema
                if problem is not None:
                    trace.append(problem)
                continue
            fitted, note = _fit(value.strip() if isinstance(value, str) else value, field)
            if note is not None:
                trace.append(note)
            if not is_empty(fitted):
                out[target] = fitted
        return out

    def create(self, subject: Any, email: str | None = None) -> FieldPayload:
        """The fields of a new person record (rules 2, 3, 5)."""
        trace: list[Reason] = []
        fields = self.values(subject, trace)
        if self.email_target is not None and email is not None:
            fields[self.email_target] = email.strip()
        lowered: set[str] | None = None
        for target, lower, placeholder, why in self.placeholders:
            if target in fields:
                continue  # mapped values are never empty
            if lowered is None:
                lowered = {k.lower() for k in fields}
            if lower in lowered:
                continue
            fields[target] = placeholder
            trace.append(why)
        return FieldPayload(fields, tuple(trace) if trace else ())

    def update(self, subject: Any, current: Mapping[str, FieldValue]) -> FieldPayload:
        """The fields an update changes (rules 2, 4, 5); empty when nothing changes."""
        trace: list[Reason] = []
        fields: dict[str, FieldValue] = {}
        lowered: dict[str, FieldValue] | None = None
        for name, value in self.values(subject, trace).items():
            if name in current:
                theirs = current[name]
            else:
                if lowered is None:
                    lowered = {k.lower(): v for k, v in current.items()}
                theirs = lowered.get(name.lower())
            if not same_value(value, theirs):
                fields[name] = value
        if fields:
            changed = tuple(fields)
            reason = self._changed.get(changed)
            if reason is None:
                names = tuple(sorted(changed))
                reason = info("update_fields", f"overwriting {', '.join(names)}", fields=names)
                self._changed[changed] = reason
            trace.append(reason)
        else:
            trace.append(_UNCHANGED)
        return FieldPayload(fields, tuple(trace))


def _from_values(sources: Sequence[str]) -> Callable[[Mapping[str, FieldValue]], list[FieldValue]]:
    return lambda values: [values.get(source) for source in sources]


def build_create_fields(
    values: Mapping[str, FieldValue],
    mappings: Iterable[FieldMapping],
    *,
    schema: ObjectSchema | None = None,
    placeholders: Mapping[str, str] | None = None,
    email_field: str | None = None,
    email: str | None = None,
) -> FieldPayload:
    """The fields of a new person record (rules 2, 3, 5), from source → value."""
    compiled = CompiledFields.compile(
        mappings,
        _from_values,
        for_update=False,
        schema=schema,
        placeholders=placeholders,
        email_field=email_field,
    )
    return compiled.create(values, email)


def build_update_fields(
    values: Mapping[str, FieldValue],
    mappings: Iterable[FieldMapping],
    current: Mapping[str, FieldValue],
    *,
    schema: ObjectSchema | None = None,
) -> FieldPayload:
    """The fields an update changes (rules 2, 4, 5), from source → value; empty when nothing
    changes."""
    compiled = CompiledFields.compile(mappings, _from_values, for_update=True, schema=schema)
    return compiled.update(values, current)


_UNCHANGED = info("update_unchanged", "no overwrite field differs from the CRM's value")


def validate_mappings(
    mappings: Iterable[FieldMapping], schema: ObjectSchema, *, path: str
) -> list[Problem]:
    """Preflight: every problem of a mapping set against the CRM's schema.

    A target must exist and be creatable; an ``overwrite`` target must also be updatable.
    """
    problems: list[Problem] = []
    for index, mapping in enumerate(mappings):
        where = f"{path}[{index}].target"
        field = schema.get(mapping.target)
        if field is None:
            problems.append(Problem(where, f"{schema.name} has no field {mapping.target!r}"))
            continue
        if not field.createable:
            problems.append(Problem(where, f"{field.name} cannot be set when creating"))
        if mapping.overwrite and not field.updateable:
            problems.append(
                Problem(where, f"{field.name} cannot be updated, so it cannot be 'overwrite'")
            )
    return problems


class TabMeaning(NamedTuple):
    """What one mapping tab means on one CRM (rule 6): whether it ever applies, which way
    (``push``: written to the person record; ``pull``: read from the account into
    ``company.*``), the CRM object, and a sentence saying so."""

    tab: str
    applies: bool
    direction: str | None
    object_name: str | None
    note: str


def tab_meaning(tab: str, capabilities: Capabilities) -> TabMeaning:
    """Rule 6 for one tab (``lead``, ``contact`` or ``account``) on this CRM."""
    crm = capabilities.name
    person = capabilities.person_object
    if tab == "account":
        return TabMeaning(
            tab,
            applies=True,
            direction="pull",
            object_name=capabilities.account_object,
            note=f"pulled from the {capabilities.account_object} into company attributes "
            "(source company.<attribute>)",
        )
    if tab == capabilities.person_kind.value:
        return TabMeaning(
            tab,
            applies=True,
            direction="push",
            object_name=person,
            note=f"pushed to the {person} a sync creates or updates",
        )
    if tab == "contact":
        why = (
            f"{crm} never writes Contacts (a matched Contact is attached to, never "
            f"updated): this mapping can never apply; map {person} fields in "
            "field_mappings.lead"
        )
    else:
        why = (
            f"{crm} has no Lead object: the person record is its {person}, so this "
            "mapping can never apply; map it in field_mappings.contact"
        )
    return TabMeaning(tab, applies=False, direction=None, object_name=None, note=why)


def inapplicable_mappings(mappings: FieldMappings, capabilities: Capabilities) -> list[Problem]:
    """Preflight (rule 6): every mapping that can never apply on this CRM, with its path."""
    problems: list[Problem] = []
    for tab, entries in (("lead", mappings.lead), ("contact", mappings.contact)):
        meaning = tab_meaning(tab, capabilities)
        if meaning.applies:
            continue
        problems.extend(
            Problem(f"field_mappings.{tab}[{index}]", meaning.note) for index in range(len(entries))
        )
    for index, mapping in enumerate(mappings.account):
        if not mapping.source.startswith("company."):
            problems.append(
                Problem(
                    f"field_mappings.account[{index}].source",
                    "account mappings are pulled into company attributes: a source outside "
                    "company.* can never apply",
                )
            )
    return problems


def portable_mapping_problems(mappings: FieldMappings, capabilities: Capabilities) -> list[Problem]:
    """The inapplicable mappings that do not block (rule 6): the other person tab's, when the
    CRM's own person tab has mappings too (settings written for both CRMs)."""
    if not mapping_set_for(mappings, capabilities.person_kind):
        return []
    other = "contact" if capabilities.person_kind is PersonKind.LEAD else "lead"
    return [
        p
        for p in inapplicable_mappings(mappings, capabilities)
        if p.path.startswith(f"field_mappings.{other}[")
    ]


def blocking_mapping_problems(
    problems: Iterable[Problem], mappings: FieldMappings, capabilities: Capabilities
) -> list[Problem]:
    """``problems`` (a preflight's) without those that only report (rule 6)."""
    portable = set(portable_mapping_problems(mappings, capabilities))
    return [p for p in problems if p not in portable]
