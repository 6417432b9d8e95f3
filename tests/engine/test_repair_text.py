"""``repair_text`` first asks whether a value needs repairing at all (``_sound``): whatever
the value, the answer must be the one the full walk gives."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import attrs
from hypothesis import assume, given
from hypothesis import strategies as st

from signals_crm._flows import batch
from signals_crm._flows.batch import repair_text
from signals_crm.core.crm import PersonWrite
from signals_crm.core.model import (
    Activity,
    ActivityKind,
    Company,
    Conversation,
    ConversationStatus,
    Meeting,
    PersonKind,
    SignalsUser,
    Visitor,
)
from signals_crm.core.plan import Command, CommandKind, PersonRef
from signals_crm.exceptions import ConfigurationError
from signals_crm.testing.strategies import conversations

# Text that is ASCII, other Unicode, or carries lone / paired surrogates.
texts = st.text(
    alphabet=st.sampled_from(["a", "é", "\u2603", "\ud800", "\udc00", "\U0001f600", " "]),
    max_size=6,
)
leaves = st.one_of(texts, st.none(), st.integers(), st.booleans(), st.floats(allow_nan=False))
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(texts, st.integers()), inner, max_size=3),
    ),
    max_leaves=12,
)


def full_walk(value: Any) -> tuple[Any, list[str]]:
    return batch._repair(value, "")  # the walk the shortcut stands for


@given(values)
def test_any_value_is_repaired_as_the_full_walk_does(value: Any) -> None:
    fixed, paths = repair_text(value)
    expected, expected_paths = full_walk(value)
    assert paths == expected_paths
    assert repr(fixed) == repr(expected)
    if not paths:
        assert fixed is value  # untouched: the same object, nothing copied


@given(texts, texts, values)
def test_attrs_values_are_repaired_as_the_full_walk_does(name: str, email: str, field: Any) -> None:
    write = PersonWrite(key="c:person", kind=PersonKind.LEAD, email=email, fields={"F": field})
    conversation = Conversation(
        "c-1", status=ConversationStatus.OPEN, visitor=Visitor(first_name=name, email=None)
    )
    for value in (write, conversation, [write, conversation]):
        assert repair_text(value) == full_walk(value)


@given(conversations())
def test_generated_conversations_are_left_as_they_are(conversation: Conversation) -> None:
    fixed, paths = repair_text(conversation)
    assert (fixed, paths) == full_walk(conversation)


@given(texts, texts, texts, texts, st.sampled_from(list(CommandKind)))
def test_a_write_is_unsendable_exactly_when_its_full_walk_says_so(
    body: str, field: str, campaign: str, person_id: str, kind: CommandKind
) -> None:
    """The shortcut (the command's soundness, kept per batch, and its person's id) gives the
    verdict the walk of the whole write gives, for every kind of write, asked twice."""
    activity = Activity(ActivityKind.CHAT_TRANSCRIPT, "transcript", f"Chat {body}", body)
    command = Command(
        f"c-1:{kind.value}",
        kind,
        "c-1",
        "a@x.test",
        PersonRef(PersonKind.LEAD, None, "c-1:person"),
        {"FirstName": field},
        None,
        activity if kind is CommandKind.CREATE_TASK else None,
        campaign if kind is CommandKind.ADD_TO_CAMPAIGN else None,
    )
    write: Any
    if kind is CommandKind.CREATE_PERSON:
        write = command.to_person_write()
    elif kind is CommandKind.UPDATE_PERSON:
        write = command.to_person_update(person_id)
    elif kind is CommandKind.CREATE_TASK:
        write = command.to_task_write(person_id)
    else:
        write = command.to_membership_write(person_id)
    known = SimpleNamespace(sound={})  # the one part of a batch the shortcut keeps
    for _ in range(2):
        assert batch._unsendable_write(command, write, known) == batch._unsendable(write)  # type: ignore[arg-type]


odd = st.one_of(texts, st.none(), st.integers(), st.tuples(texts))


@given(texts, texts, odd, odd, st.one_of(texts, st.integers()), st.sampled_from(list(CommandKind)))
def test_a_command_is_sound_exactly_when_the_full_walk_says_so(
    body: str, value: str, owner: Any, kind_name: Any, key: Any, kind: CommandKind
) -> None:
    """The joined-texts check of a command gives the walk's verdict, for the shapes the
    planner builds and for odd ones (a number for an owner, a tuple for a field, a declared
    activity kind's name, a non-text field name), which it walks instead."""
    activity_kind = kind_name if isinstance(kind_name, str) else ActivityKind.MEETING_BOOKED
    activity = Activity(activity_kind, "meeting:1", f"Meeting {body}", body)
    command = Command(
        "c-1:task",
        kind,
        "c-1",
        "a@x.test",
        PersonRef(PersonKind.LEAD, None, "c-1:person"),
        {"FirstName": value, key: owner},
        owner,
        activity if kind is CommandKind.CREATE_TASK else None,
        value if kind is CommandKind.ADD_TO_CAMPAIGN else None,
    )
    assert batch._command_sound(command) == batch._sound(command)


_PARTS = ("conversation", "visitor", "company", "meeting", "traffic", "user", "extra")


@given(conversations(), texts, st.sampled_from(_PARTS), st.integers(min_value=0, max_value=20))
def test_a_conversation_is_sound_exactly_when_the_full_walk_says_so(
    conversation: Conversation, text: str, part: str, index: int
) -> None:
    """The joined-texts check of a conversation gives the walk's verdict, whichever text field
    of whichever part holds the text (lone surrogates or not), and for odd values the
    model's checks let through (a number in an extra field)."""
    changed: Any = conversation
    fields: dict[str, Any]
    try:
        if part == "conversation":
            fields = {("id", "transcript")[index % 2]: text or "c"}
            changed = attrs.evolve(conversation, **fields)
        elif part == "user":
            user = SignalsUser(id=text or None, email=None)
            fields = {("meeting_scheduler", "last_routed", "closer")[index % 3]: user}
            participants = attrs.evolve(conversation.participants, **fields)
            changed = attrs.evolve(conversation, participants=participants)
        elif part == "extra":
            visitor = Visitor(email="a@x.test", extra={text or "k": index or text})
            changed = attrs.evolve(conversation, visitor=visitor)
        else:
            holder: Any = {
                "visitor": conversation.visitor or Visitor(),
                "company": conversation.company or Company(),
                "meeting": conversation.meeting or Meeting(id="m"),
                "traffic": conversation.traffic,
            }[part]
            names = batch._TEXT_FIELDS[type(holder)]
            fields = {names[index % len(names)]: text or None}
            inner = attrs.evolve(holder, **fields)
            fields = {part: inner}
            changed = attrs.evolve(conversation, **fields)
    except ConfigurationError:
        assume(False)
    assert batch._conversation_sound(changed) == batch._sound(changed)
    assert repair_text(changed) == full_walk(changed)
