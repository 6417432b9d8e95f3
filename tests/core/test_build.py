"""The core's positional builders make the same values as the classes' constructors."""

from __future__ import annotations

from datetime import UTC, date, datetime

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from signals_crm.core import plan
from signals_crm.core._build import builder
from signals_crm.core.crm import CampaignMembershipWrite, PersonUpdate, PersonWrite, TaskWrite
from signals_crm.core.model import Activity, ActivityKind, Conversation, PersonKind
from signals_crm.core.plan import Command, CommandKind, PersonRef
from signals_crm.ledger.base import CommandRecord, CommandState, trusted_command
from signals_crm.reports import ConversationOutcome, OutcomeKind

ACTIVITY = Activity(ActivityKind.MEETING_BOOKED, "meeting:1", "Meeting", "body", date(2026, 1, 2))
PERSON = PersonRef(PersonKind.LEAD, None, "c-1:person")
VALUES = [
    (Activity, (ActivityKind.CHAT_TRANSCRIPT, "transcript", "Chat", "hello", None)),
    (PersonRef, (PersonKind.CONTACT, "003X", None)),
    (
        Command,
        (
            "c-1:task:t",
            CommandKind.CREATE_TASK,
            "c-1",
            "a@x.test",
            PERSON,
            {},
            "005U",
            ACTIVITY,
            None,
        ),
    ),
    (PersonWrite, ("c-1:person", PersonKind.LEAD, "a@x.test", {"LastName": "L"}, None)),
    (PersonUpdate, ("c-1:update", "00QX", PersonKind.LEAD, {"Phone": "1"})),
    (TaskWrite, ("k", "00QX", PersonKind.LEAD, "custom_kind", "S", "B", "m", None, "005U")),
    (CampaignMembershipWrite, ("k", "701C", "00QX", PersonKind.LEAD)),
    (ConversationOutcome, ("c-1", OutcomeKind.CREATED, "00QX", (), None, False, None, None)),
]


@pytest.mark.parametrize(("cls", "values"), VALUES)
def test_a_builder_makes_what_the_constructor_makes(cls: type, values: tuple[object, ...]) -> None:
    build = builder(cls)
    assert build is not cls  # these classes have fast builders
    made, expected = build(*values), cls(*values)
    assert type(made) is cls
    assert made == expected
    assert attrs.astuple(made, recurse=False) == attrs.astuple(expected, recurse=False)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        made.key = "other"  # type: ignore[attr-defined,misc]  # still frozen


def test_converters_run_as_in_the_constructor() -> None:
    fields = {"LastName": "L"}
    made = builder(PersonWrite)("c-1:person", PersonKind.LEAD, "a@x.test", fields, None)
    assert made.fields == fields
    assert made.fields is not fields  # field_map's private copy, as PersonWrite(...) makes


def test_classes_with_checks_keep_their_constructor() -> None:
    assert builder(Conversation) is Conversation  # __attrs_post_init__ checks its types

    @attrs.frozen
    class Checked:
        value: int = attrs.field(validator=attrs.validators.instance_of(int))

    @attrs.define
    class Mutable:  # not frozen, but the builder is only a faster __init__: still fine
        value: int

    assert builder(Checked) is Checked
    assert builder(Mutable)(3) == Mutable(3)


def test_the_planner_builds_with_them() -> None:
    assert plan._command is not Command
    assert plan._plan is not plan.Plan


def test_a_trusted_builder_makes_what_trusted_command_makes() -> None:
    at = datetime(2026, 12, 4, 19, tzinfo=UTC)
    for values in (
        ("c-1:person", "c-1", "create_person", CommandState.SENT, at, None, None, 1, None, "w", 3),
        (
            "c-1:task:t",
            "c-1",
            "create_task",
            CommandState.CONFIRMED,
            at,
            "00T",
            None,
            2,
            "d",
            None,
            None,
        ),
    ):
        made, expected = builder(CommandRecord, trusted=True)(*values), trusted_command(*values)
        assert type(made) is CommandRecord
        assert made == expected
        assert attrs.astuple(made, recurse=False) == attrs.astuple(expected, recurse=False)
    assert builder(CommandRecord) is CommandRecord  # it validates: not trusted, its __init__


_TWINNED = [Activity, PersonRef, Command, plan.Plan, PersonWrite, PersonUpdate, TaskWrite]
_TWINNED += [CampaignMembershipWrite]


@pytest.mark.parametrize("cls", _TWINNED)
def test_classes_without_a_weakref_slot_get_the_twin_builder(cls: type) -> None:
    """The classes built per conversation planned have no ``__weakref__`` slot, so their
    builders fill a twin and assign its class (on the old code they were weak-referenceable
    and built slot by slot)."""
    assert "__weakref__" not in cls.__slots__  # type: ignore[attr-defined]
    assert builder(cls).__globals__["_twin"] is not None


def test_classes_the_twin_cannot_stand_for_keep_the_slot_builder() -> None:
    @attrs.frozen
    class Weak:  # a __weakref__ slot: CPython refuses the __class__ assignment
        a: int
        b: str

    @attrs.frozen(weakref_slot=False)
    class Base:
        a: int

    @attrs.frozen(weakref_slot=False)
    class Derived(Base):  # slots of a base of its own
        b: str

    for cls in (Weak, Derived):
        build = builder(cls)
        assert build.__globals__["_twin"] is None
        made = build(1, "x")
        assert type(made) is cls
        assert made == cls(1, "x")


_ANY = st.one_of(st.none(), st.integers(), st.text(max_size=5), st.booleans())


@given(data=st.data())
@pytest.mark.parametrize("cls", [Activity, PersonRef, Command, plan.Plan, TaskWrite])
def test_a_twin_builder_makes_what_the_constructor_makes(cls: type, data: st.DataObject) -> None:
    """Whatever the values, the twin builder's value is the constructor's: same type, same
    slots in the same places, equal, frozen."""
    values = data.draw(st.tuples(*[_ANY for _ in attrs.fields(cls)]))
    made, expected = builder(cls)(*values), cls(*values)
    assert type(made) is cls
    assert attrs.astuple(made, recurse=False) == values
    assert made == expected
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(made, attrs.fields(cls)[0].name, "other")
