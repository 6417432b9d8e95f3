"""Core values refuse values of the wrong type when built, naming every wrong field."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signals_crm.core.model import (
    VISITOR_FIELDS,
    AccountRecord,
    Company,
    Conversation,
    CRMUser,
    Meeting,
    Participants,
    PersonKind,
    PersonRecord,
    SignalsUser,
    Traffic,
    Visitor,
)
from signals_crm.exceptions import ConfigurationError

CLOSED = datetime(2026, 11, 1, 12, tzinfo=UTC)


def problems(build: Any, *args: Any, **kwargs: Any) -> dict[str, str]:
    """The problems (path → message) of building a value that must be refused."""
    with pytest.raises(ConfigurationError) as exc:
        build(*args, **kwargs)
    return {p.path: p.message for p in exc.value.problems}


def test_visitor_email_must_be_text() -> None:
    """Visitor(email=123) is refused when built, not later in explain or a sync."""
    assert problems(Visitor, email=123) == {"email": "must be text, not int"}


def test_every_wrong_field_is_named_at_once() -> None:
    """Several wrong fields are reported together."""
    found = problems(Visitor, first_name=1, birthdate="1988-03-09", phone=b"555")
    assert found == {
        "first_name": "must be text, not int",
        "birthdate": "must be a datetime, not str",
        "phone": "must be text, not bytes",
    }


def test_conversation_refuses_a_non_text_transcript_and_id() -> None:
    """A transcript or an id that is not text, or a lead score of True, is refused."""
    found = problems(Conversation, id=7, closed_at=CLOSED, transcript=["hi"], lead_score=True)
    assert found == {
        "id": "must be text, not int",
        "transcript": "must be text, not list",
        "lead_score": "must be 0, 1, 2, 3 or None (unscored), not bool",
    }


def test_conversation_parts_must_be_core_values() -> None:
    """A visitor, company, meeting or participants given as a dict is refused by name."""
    found = problems(
        Conversation,
        id="c",
        closed_at=CLOSED,
        visitor={"email": "a@b.test"},
        company="acme.test",
        meeting={"id": "1"},
        participants=None,
        status="closed",
    )
    assert found == {
        "visitor": "must be a Visitor, not dict",
        "company": "must be a Company, not str",
        "meeting": "must be a Meeting, not dict",
        "participants": "required: must be Participants",
        "status": "must be a ConversationStatus, not str",
    }


def test_meeting_and_traffic_fields() -> None:
    """Counts are integers (never true/false), dates are dates, texts are text."""
    assert problems(Meeting, id=1, duration_minutes=True, date="2026-11-17") == {
        "id": "must be text, not int",
        "duration_minutes": "must be a whole number of minutes, not bool",
        "date": "must be a date, not str",
    }
    assert problems(Traffic, referrer=1.5) == {"referrer": "must be text, not float"}
    assert Meeting(id="1", duration_minutes=30, date=date(2026, 11, 17)).duration_minutes == 30


def test_users_and_participants() -> None:
    """A Signals user's id is text; a participant is a SignalsUser."""
    assert problems(SignalsUser, id=5512) == {"id": "must be text, not int"}
    assert problems(Participants, closer="marco@x.test") == {
        "closer": "must be a SignalsUser, not str"
    }


def test_field_maps_have_text_keys_and_field_values() -> None:
    """Visitor.extra and Company.attributes hold text keys and FieldValues only."""
    assert problems(Visitor, extra={1: "a", "tags": ["x"], "ok": 2}) == {
        "extra[1]": "key: must be text",
        "extra.tags": "must be text, a number, true/false, a date or a datetime, not list",
    }
    assert problems(Company, domain=3, attributes={"tier": {"a": 1}}) == {
        "domain": "must be text, not int",
        "attributes.tier": "must be text, a number, true/false, a date or a datetime, not dict",
    }


def test_crm_records_are_checked() -> None:
    """Records built by adapters are checked the same way."""
    assert problems(PersonRecord, id=1, kind="lead", is_converted="no") == {
        "id": "must be text, not int",
        "kind": "must be a PersonKind, not str",
        "is_converted": "must be true/false, not str",
    }
    assert problems(AccountRecord, id="001", fields={"Owner": object()}) == {
        "fields.Owner": "must be text, a number, true/false, a date or a datetime, not object"
    }
    assert problems(CRMUser, id="005", active=1) == {"active": "must be true/false, not int"}
    lead = PersonRecord(id="00Q1", kind=PersonKind.LEAD, fields={"LastModified": CLOSED})
    assert lead.fields["LastModified"] == CLOSED


@given(
    field=st.sampled_from(VISITOR_FIELDS),
    value=st.integers() | st.floats() | st.binary() | st.lists(st.text(), max_size=2),
)
def test_any_visitor_field_of_a_wrong_type_is_named(field: str, value: object) -> None:
    """Whichever visitor field gets a non-text value (non-datetime for the birthdate), the
    error names exactly that field."""
    assert list(problems(Visitor, **{field: value})) == [field]
