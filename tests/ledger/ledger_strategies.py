"""Hypothesis strategies for conversations, local to the ledger tests (exact round-trips)."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import attrs
from hypothesis import strategies as st

from signals_crm.core.model import (
    Company,
    Conversation,
    ConversationStatus,
    Meeting,
    Participants,
    SignalsUser,
    Traffic,
    Visitor,
)

_ZONES = ("Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "UTC")


def time_zones() -> st.SearchStrategy[tzinfo]:
    """UTC, fixed offsets (to the second) and a few real zones with DST."""
    offsets = st.integers(min_value=-86_399, max_value=86_399).map(
        lambda s: timezone(timedelta(seconds=s))
    )
    return st.one_of(st.just(UTC), offsets, st.sampled_from(_ZONES).map(ZoneInfo))


def aware_datetimes() -> st.SearchStrategy[datetime]:
    """Timezone-aware datetimes, folds included, non-existent wall times excluded."""
    return st.datetimes(
        min_value=datetime(1900, 1, 1),  # noqa: DTZ001  # hypothesis bounds are naive
        max_value=datetime(2200, 1, 1),  # noqa: DTZ001
        timezones=time_zones(),
        allow_imaginary=False,
    )


def field_values() -> st.SearchStrategy[Any]:
    """Every kind of FieldValue: None, str, int, float (non-finite too), bool, date, datetime."""
    return st.one_of(
        st.none(),
        st.text(max_size=20),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.booleans(),
        st.dates(),
        st.datetimes(),  # naive
        aware_datetimes(),
    )


_text = st.none() | st.text(max_size=15)
_keys = st.text(min_size=1, max_size=10)


def _users() -> st.SearchStrategy[SignalsUser | None]:
    return st.none() | st.builds(SignalsUser, id=st.text(min_size=1, max_size=8), email=_text)


def conversations() -> st.SearchStrategy[Conversation]:
    """Conversations with every field exercised (visitor extras, company attributes, ...)."""
    visitors = st.builds(
        Visitor,
        **{f.name: _text for f in attrs.fields(Visitor) if f.name not in {"extra", "birthdate"}},
        birthdate=st.none() | st.datetimes() | aware_datetimes(),
        extra=st.dictionaries(_keys, field_values(), max_size=4),
    )
    companies = st.builds(
        Company,
        domain=_text,
        name=_text,
        attributes=st.dictionaries(_keys, field_values(), max_size=4),
    )
    meetings = st.builds(
        Meeting,
        id=st.text(min_size=1, max_size=8),
        name=_text,
        agent_name=_text,
        date=st.none() | st.dates(),
        duration_minutes=st.none() | st.integers(min_value=0, max_value=600),
        lead_time_minutes=st.none() | st.integers(min_value=-10_000, max_value=10_000),
    )
    return st.builds(
        Conversation,
        id=st.text(min_size=1, max_size=12).filter(lambda s: bool(s.strip())),
        status=st.just(ConversationStatus.CLOSED),
        closed_at=aware_datetimes(),
        lead_score=st.none() | st.integers(min_value=0, max_value=3),
        visitor=st.none() | visitors,
        company=st.none() | companies,
        participants=st.builds(
            Participants, meeting_scheduler=_users(), last_routed=_users(), closer=_users()
        ),
        transcript=_text,
        meeting=st.none() | meetings,
        traffic=st.builds(
            Traffic,
            referrer=_text,
            source_type=_text,
            traffic_source=_text,
            traffic_campaign=_text,
        ),
    ) | st.builds(Conversation, id=st.just("open-1"), status=st.just(ConversationStatus.OPEN))


def assert_identical(a: object, b: object, path: str = "") -> None:
    """Deep equality that also checks types, float bits, time zones and folds."""
    assert type(a) is type(b), f"{path}: {type(a).__name__} != {type(b).__name__}"
    if attrs.has(type(a)):
        for f in attrs.fields(type(a)):  # type: ignore[arg-type]  # attrs.has narrows nothing
            assert_identical(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
    elif isinstance(a, dict):
        assert isinstance(b, dict)
        assert list(a) == list(b), f"{path}: keys {list(a)} != {list(b)}"
        for key in a:
            assert_identical(a[key], b[key], f"{path}[{key!r}]")
    elif isinstance(a, float):
        assert isinstance(b, float)
        assert (math.isnan(a) and math.isnan(b)) or repr(a) == repr(b), f"{path}: {a!r} != {b!r}"
    elif isinstance(a, datetime):
        assert isinstance(b, datetime)
        assert (a.replace(tzinfo=None), a.fold) == (b.replace(tzinfo=None), b.fold), path
        assert a.utcoffset() == b.utcoffset(), f"{path}: offsets differ"
        if isinstance(a.tzinfo, ZoneInfo):
            assert b.tzinfo == a.tzinfo, f"{path}: zone {b.tzinfo!r} != {a.tzinfo!r}"
    elif isinstance(a, date):
        assert a == b, path
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"
