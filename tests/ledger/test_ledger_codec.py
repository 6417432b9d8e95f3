"""The conversation codec: exact JSON round-trips, tagged types, strict decoding."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import pytest
from hypothesis import given, settings
from ledger_strategies import assert_identical, conversations, field_values

from signals_crm.core.model import (
    Company,
    Conversation,
    FieldValue,
    Meeting,
    Participants,
    SignalsUser,
    Visitor,
)
from signals_crm.exceptions import LedgerError
from signals_crm.ledger.codec import CODEC_VERSION, conversation_from_dict, conversation_to_dict

CLOSED = datetime(2026, 11, 29, 10, 30, tzinfo=UTC)


def _through_json(conversation: Conversation) -> Conversation:
    text = json.dumps(conversation_to_dict(conversation), allow_nan=False)
    return conversation_from_dict(json.loads(text))


@settings(max_examples=100, deadline=None)
@given(conversations())
def test_round_trip_is_exact(conversation: Conversation) -> None:
    """Every conversation survives to_dict, strict JSON and from_dict with types and zones."""
    assert_identical(_through_json(conversation), conversation)  # == is false for NaN


@settings(max_examples=200, deadline=None)
@given(field_values())
def test_every_field_value_type_round_trips(value: FieldValue) -> None:
    """Each FieldValue kind comes back as the same type and value inside a visitor's extras."""
    conversation = Conversation("c", closed_at=CLOSED, visitor=Visitor(extra={"v": value}))
    assert conversation.visitor is not None
    back = _through_json(conversation)
    assert back.visitor is not None
    assert_identical(back.visitor.extra["v"], conversation.visitor.extra["v"])


def test_encoded_keys_cover_every_conversation_field() -> None:
    """A field added to Conversation must be handled by the codec (this fails otherwise)."""
    encoded = conversation_to_dict(Conversation("c", closed_at=CLOSED))
    assert set(encoded) - {"v"} == {f.name for f in attrs.fields(Conversation)}
    assert encoded["v"] == CODEC_VERSION


def test_tags_keep_types_apart() -> None:
    """Dates, datetimes and non-finite floats are tagged; true, 1 and 1.0 stay distinct."""
    paris = ZoneInfo("Europe/Paris")
    conversation = Conversation(
        "c",
        closed_at=datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=paris),
        company=Company(
            attributes={
                "b": True,
                "i": 1,
                "f": 1.0,
                "d": date(2026, 1, 2),
                "inf": float("-inf"),
                "naive": datetime(2026, 1, 2, 3, 4, 5, 6),  # noqa: DTZ001  # naive on purpose
            }
        ),
    )
    encoded = conversation_to_dict(conversation)
    attributes = encoded["company"]["attributes"]
    assert attributes["d"] == {"$date": "2026-01-02"}
    assert attributes["inf"] == {"$float": "-inf"}
    assert attributes["naive"] == {"$datetime": "2026-01-02T03:04:05.000006"}
    assert encoded["closed_at"] == {
        "$datetime": "2026-10-25T02:30:00+01:00",
        "$zone": "Europe/Paris",
        "$fold": 1,
    }
    assert json.dumps([attributes["b"], attributes["i"], attributes["f"]]) == "[true, 1, 1.0]"
    back = _through_json(conversation)
    assert back.closed_at is not None
    assert back.closed_at.fold == 1
    assert back.closed_at.tzinfo == paris
    assert back.closed_at.utcoffset() == timedelta(hours=1)


def test_fixed_offsets_keep_their_offset() -> None:
    """A fixed-offset datetime comes back with the same offset, not converted to UTC."""
    tz = timezone(timedelta(hours=-3, minutes=-30))
    conversation = Conversation("c", closed_at=datetime(2026, 1, 1, 9, tzinfo=tz))
    back = _through_json(conversation)
    assert back.closed_at is not None
    assert back.closed_at.utcoffset() == timedelta(hours=-3, minutes=-30)
    assert back.closed_at.hour == 9


def test_nested_values_round_trip() -> None:
    """Participants, meeting date and company attributes come back as the same values."""
    conversation = Conversation(
        "c",
        closed_at=CLOSED,
        lead_score=2,
        participants=Participants(
            meeting_scheduler=SignalsUser(id="u1"), closer=SignalsUser(email="j@x.io")
        ),
        meeting=Meeting(id="m1", name="Demo", date=date(2026, 12, 1), duration_minutes=30),
    )
    back = _through_json(conversation)
    assert back == conversation
    assert_identical(back, conversation)


def test_unsupported_value_is_refused_with_its_path() -> None:
    """A value that is not a FieldValue is refused when encoding, naming where it was."""
    conversation = Conversation("c", closed_at=CLOSED, visitor=Visitor(extra={"amount": 1}))
    assert conversation.visitor is not None
    conversation.visitor.extra["amount"] = Decimal("1.5")  # type: ignore[index]
    with pytest.raises(LedgerError, match=r"visitor\.extra\.amount"):
        conversation_to_dict(conversation)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(v=99),
        lambda d: d.update(surprise=1),
        lambda d: d.update(closed_at={"$when": "now"}),
        lambda d: d.update(closed_at={"$date": "2026-01-01"}),
        lambda d: d["visitor"].update(nickname="x"),
        lambda d: d["participants"].update(boss=None),
        lambda d: d.update(lead_score=7),
        lambda d: d.update(closed_at={"$datetime": "not a time"}),
        lambda d: d.update(closed_at={"$datetime": "2026-01-01T00:00:00", "$zone": "Nowhere/X"}),
        lambda d: d.pop("id"),
    ],
    ids=[
        "version",
        "unknown-field",
        "unknown-tag",
        "date-for-closed-at",
        "unknown-visitor-field",
        "unknown-role",
        "invalid-score",
        "bad-iso",
        "unknown-zone",
        "missing-id",
    ],
)
def test_decoding_is_strict(mutate: Callable[[dict[str, Any]], object]) -> None:
    """Anything the codec did not write raises LedgerError, never KeyError or ValueError."""
    data = conversation_to_dict(Conversation("c", closed_at=CLOSED, visitor=Visitor()))
    mutate(data)
    with pytest.raises(LedgerError):
        conversation_from_dict(data)


def test_decoding_a_non_mapping_is_refused() -> None:
    """A list where a conversation belongs raises LedgerError."""
    with pytest.raises(LedgerError):
        conversation_from_dict([])  # type: ignore[arg-type]
