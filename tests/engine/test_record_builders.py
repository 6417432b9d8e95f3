"""The values the engine builds per command and per conversation (``CommandRecord``,
``PersonLink``, ``ConversationOutcome``) have no ``__weakref__`` slot, so their positional
builders are the quick ones of :mod:`signals_crm.core._build` (a twin of the same slots, its
class then assigned); what they build equals what the constructors build."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from signals_crm._flows import batch
from signals_crm.core.model import PersonKind
from signals_crm.ledger.base import CommandRecord, CommandState, PersonLink, trusted_command
from signals_crm.reports import ConversationOutcome, OutcomeKind

_BUILDERS = [batch._trusted_record, batch._trusted_link, batch._new_outcome]


@pytest.mark.parametrize("build", _BUILDERS, ids=lambda b: b.__name__)
def test_the_engines_builders_fill_a_twin(build: object) -> None:
    """(On the old code these classes had a ``__weakref__`` slot: built slot by slot.)"""
    assert build.__globals__["_twin"] is not None  # type: ignore[attr-defined]


@pytest.mark.parametrize("cls", [CommandRecord, PersonLink, ConversationOutcome])
def test_no_weakref_slot(cls: type) -> None:
    assert "__weakref__" not in cls.__slots__  # type: ignore[attr-defined]


_TEXT = st.text(st.characters(codec="utf-8"), min_size=1).filter(  # (no lone surrogate)
    str.strip
)
_AT = st.datetimes(timezones=st.just(UTC)) | st.just(datetime(2026, 12, 4, tzinfo=UTC))


@st.composite
def _records(draw: st.DrawFn) -> tuple[object, ...]:
    state = draw(st.sampled_from(CommandState))
    crm_id = draw(_TEXT if state is CommandState.CONFIRMED else st.none() | _TEXT)
    return (
        draw(_TEXT),
        draw(_TEXT),
        draw(st.sampled_from(["create_person", "update_person", "create_task"])),
        state,
        draw(_AT),
        crm_id,
        None,
        draw(st.integers(0, 5)),
        None,
        draw(st.none() | _TEXT),
        draw(st.none() | st.integers(0, 9)),
    )


@given(_records())
def test_a_trusted_record_equals_the_validated_one(values: tuple[object, ...]) -> None:
    made = batch._trusted_record(*values)
    for expected in (trusted_command(*values), CommandRecord(*values)):  # type: ignore[arg-type]
        assert type(made) is CommandRecord
        assert made == expected
        assert attrs.astuple(made, recurse=False) == attrs.astuple(expected, recurse=False)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        made.state = CommandState.FAILED  # type: ignore[misc]  # still frozen


@given(_TEXT.map(str.lower).map(str.strip).filter(bool), _TEXT, st.sampled_from(PersonKind))
def test_a_trusted_link_equals_the_validated_one(email: str, crm_id: str, kind: PersonKind) -> None:
    made, expected = batch._trusted_link(email, crm_id, kind), PersonLink(email, crm_id, kind)
    assert type(made) is PersonLink
    assert attrs.astuple(made, recurse=False) == attrs.astuple(expected, recurse=False)


@given(
    _TEXT,
    st.sampled_from(OutcomeKind),
    st.none() | _TEXT,
    st.none() | _TEXT,
    st.booleans(),
    st.none() | _AT.map(lambda at: at + timedelta(seconds=1)),
)
def test_an_outcome_equals_the_constructed_one(
    cid: str,
    kind: OutcomeKind,
    person: str | None,
    error: str | None,
    admin: bool,  # a drawn value
    retry_at: datetime | None,
) -> None:
    values = (cid, kind, person, (), error, admin, None, retry_at)
    made, expected = batch._new_outcome(*values), ConversationOutcome(*values)
    assert type(made) is ConversationOutcome
    assert made == expected
    assert attrs.astuple(made, recurse=False) == attrs.astuple(expected, recurse=False)
