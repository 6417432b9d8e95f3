"""``CompiledFields.values`` against a schema takes a text value into a text field without
``_fit`` when only trimming is left to do: the result and the reasons are the walk's."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signals_crm.core.config import FieldMapping
from signals_crm.core.mapping import CompiledFields, _fit, is_empty
from signals_crm.core.model import FieldSchema, FieldType, ObjectSchema
from signals_crm.core.trace import Reason

SOURCES = ("a", "b", "c", "d")
values = st.one_of(
    st.none(),
    st.text(alphabet=" ab\t\u00e9x1", max_size=8),
    st.integers(min_value=-3, max_value=3),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False, width=16),
)
fields = st.tuples(
    st.sampled_from(list(FieldType)),
    st.one_of(st.none(), st.integers(min_value=0, max_value=5)),
    st.one_of(st.none(), st.just(("ab", "x"))),
    st.booleans(),
)


def walked(compiled: CompiledFields, row: dict[str, Any]) -> tuple[dict[str, Any], list[Reason]]:
    """The per-slot walk of ``values`` (every value through ``_fit``)."""
    out: dict[str, Any] = {}
    trace: list[Reason] = []
    for value, (_, target, field, problem) in zip(compiled.read(row), compiled.slots, strict=True):
        if is_empty(value):
            continue
        if field is None:
            if problem is not None:
                trace.append(problem)
            continue
        fitted, note = _fit(value.strip() if isinstance(value, str) else value, field)
        if note is not None:
            trace.append(note)
        if not is_empty(fitted):
            out[target] = fitted
    return out, trace


@given(
    st.fixed_dictionaries({}, optional=dict.fromkeys(SOURCES, values)),
    st.lists(fields, min_size=4, max_size=4),
)
def test_values_against_a_schema_equal_the_walk(row: dict[str, Any], shapes: list[Any]) -> None:
    schema = ObjectSchema(
        "Lead",
        {
            f"F{s}": FieldSchema(
                f"F{s}", kind, length, picklist_values=picks, restricted_picklist=restricted
            )
            for s, (kind, length, picks, restricted) in zip(SOURCES, shapes, strict=True)
        },
    )
    mappings = [FieldMapping(s, f"F{s}") for s in SOURCES] + [FieldMapping("a", "Missing")]
    compiled = CompiledFields.compile(
        mappings,
        lambda sources: lambda subject: [subject.get(s) for s in sources],
        for_update=False,
        schema=schema,
    )
    trace: list[Reason] = []
    assert (compiled.values(row, trace), trace) == walked(compiled, row)


@given(row=st.fixed_dictionaries(dict.fromkeys(SOURCES, values)))
def test_values_without_a_schema_equal_the_rule(row: dict[str, Any]) -> None:
    """Without a schema every non-empty value is written, text trimmed (rule 2), whatever
    the walk's indexing of the targets."""
    mappings = [FieldMapping(s, f"F_{s}") for s in SOURCES]
    compiled = CompiledFields.compile(
        mappings, lambda srcs: lambda r: [r.get(s) for s in srcs], for_update=False
    )
    trace: list[Reason] = []
    expected = {
        f"F_{s}": v.strip() if isinstance(v, str) else v for s, v in row.items() if not is_empty(v)
    }
    assert compiled.values(row, trace) == expected
    assert trace == []


def test_a_reader_of_the_wrong_length_is_refused() -> None:
    mappings = [FieldMapping(s, f"F_{s}") for s in SOURCES]
    for wrong in (["x"], ["x"] * 5):
        reader = lambda _, w=wrong: lambda _r: w  # noqa: E731
        compiled = CompiledFields.compile(mappings, reader, for_update=False)
        with pytest.raises(ValueError):  # as zip(strict=True) raised it
            compiled.values({}, [])
