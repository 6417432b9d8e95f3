"""Hypothesis strategies for Signals web-chat webhook payloads: a faithful fake sender.

They follow the emulator checklist of the Signals webhook reference:

1. both ``conversation-start`` and ``conversation-closed``, with the documented names and types
   (integers for ids, minutes and ``tenant_id``; ``YYYY-MM-DD`` for ``meeting_event.date``; an
   ISO-8601 UTC date-time for ``birthdate``);
2. ``contact`` omitted for anonymous visitors, and sparse contacts (empty strings, missing keys);
3. ``meeting_event`` and ``user_emails`` present, ``null`` or absent, and sparse inside;
4. unknown extra keys in ``contact`` and ``chat``;
5. emails with ``+`` tags and mixed case, free-form phone numbers, long transcripts (more than
   32,000 characters);
6. redelivery is the test's business (draw once, parse twice);
7. never a lead score, a conversation id or a timestamp inside the payload.

Every payload drawn is JSON-compatible data that :func:`signals_crm.webhook.parse_webhook`
accepts. All strategies are keyword-only and composable.
"""

from __future__ import annotations

import string
from typing import Any

from hypothesis import strategies as st

__all__ = [
    "WEBHOOK_EVENTS",
    "phones",
    "transcripts",
    "visitor_emails",
    "webhook_contacts",
    "webhook_meeting_events",
    "webhook_payloads",
    "webhook_user_emails",
]

WEBHOOK_EVENTS = ("conversation-start", "conversation-closed")
"""The two web-chat events."""

_ABSENT = object()
_TEXT = st.text(st.characters(codec="utf-8"), max_size=20)
_IDS = st.integers(min_value=1, max_value=2**31 - 1)
_CONTACT_TEXT = (
    "first_name",
    "last_name",
    "middle_name",
    "preferred_name",
    "name",
    "honorific",
    "description",
)


def visitor_emails() -> st.SearchStrategy[str]:
    """Emails as visitors type them: ``+`` tags, mixed case, dots in the local part."""
    local = st.from_regex(r"\A[A-Za-z0-9]{1,8}(\.[A-Za-z0-9]{1,6})?(\+[A-Za-z0-9-]{1,8})?\Z")
    domain = st.from_regex(r"\A[A-Za-z][A-Za-z0-9-]{0,8}[A-Za-z0-9]?\.(test|com|Org|co\.uk)\Z")
    return st.builds(lambda a, b: f"{a}@{b}", local, domain)


def phones() -> st.SearchStrategy[str]:
    """Free-form display phone numbers (not E.164), sometimes empty."""
    return st.one_of(
        st.just(""),
        st.from_regex(r"\A\+?[0-9]{1,3}( \([0-9]{3}\))? [0-9 -]{4,12}( ext\. [0-9]{1,4})?\Z"),
    )


def transcripts(*, long: bool = True) -> st.SearchStrategy[str]:
    """Chat transcripts; with ``long``, some exceed 32,000 characters (built by repetition)."""
    line = st.builds(
        lambda who, said: f"{who}: {said}",
        st.sampled_from(("Visitor", "Ava (bot)", "Priya Nair")),
        st.text(st.characters(codec="utf-8", exclude_characters="\r"), max_size=40),
    )
    short = st.lists(line, min_size=1, max_size=6).map("\n".join)
    if not long:
        return short
    huge = st.builds(
        lambda text, extra: (text + "\n") * (32_000 // (len(text) + 1) + 1 + extra),
        short,
        st.integers(0, 50),
    )
    return st.one_of(short, short, huge)


def _maybe(value: st.SearchStrategy[Any], *, null: bool = True) -> st.SearchStrategy[Any]:
    """``value``, ``None`` (sent as null) or absent (left out)."""
    options = [value, st.just(_ABSENT)]
    if null:
        options.append(st.none())
    return st.one_of(options)


def _present(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not _ABSENT}


def _extra_keys() -> st.SearchStrategy[dict[str, Any]]:
    key = st.from_regex(r"\A[a-z][a-z_]{2,12}\Z")
    value = st.one_of(
        _TEXT,
        st.integers(-(10**6), 10**6),
        st.booleans(),
        st.none(),
        st.lists(st.integers(0, 9), max_size=3),
        st.dictionaries(st.sampled_from(("url", "id")), _TEXT, max_size=2),
    )
    return st.dictionaries(key.map(lambda k: f"x_{k}"), value, max_size=3)


@st.composite
def webhook_contacts(
    draw: st.DrawFn, *, sparse: bool = True, extra_keys: bool = True
) -> dict[str, Any]:
    """A ``contact`` object; ``sparse`` leaves keys out or empty, ``extra_keys`` adds unknown
    ones (prefixed ``x_``)."""
    full: dict[str, Any] = {
        "tenant_id": draw(_IDS),
        "email": draw(visitor_emails()),
        "other_email": draw(st.one_of(st.just(""), visitor_emails())),
        "phone": draw(phones()),
        "home_phone": draw(phones()),
        "mobile_phone": draw(phones()),
        "other_phone": draw(phones()),
        "birthdate": draw(st.dates().map(lambda d: f"{d.isoformat()}T00:00:00Z")),
    }
    for key in _CONTACT_TEXT:
        full[key] = draw(_TEXT)
    if sparse:
        for key in list(full):
            choice = draw(st.sampled_from(("keep", "keep", "empty", "absent")))
            if choice == "absent":
                del full[key]
            elif choice == "empty" and isinstance(full[key], str):
                full[key] = ""
    if extra_keys:
        full.update(draw(_extra_keys()))
    return full


@st.composite
def webhook_meeting_events(draw: st.DrawFn, *, sparse: bool = True) -> dict[str, Any]:
    """A ``chat.meeting_event`` object (always with its ``id``; the rest may be missing)."""
    event: dict[str, Any] = {
        "id": draw(_IDS),
        "name": draw(_TEXT),
        "agent_name": draw(_TEXT),
        "date": draw(st.dates().map(lambda d: d.isoformat())),
        "duration_minutes": draw(st.sampled_from((15, 30, 45, 60, 90))),
        "lead_time_minutes": draw(st.integers(0, 24 * 60)),
    }
    if sparse:
        for key in ("name", "agent_name", "date", "duration_minutes", "lead_time_minutes"):
            if draw(st.booleans()):
                del event[key]
    return event


@st.composite
def webhook_user_emails(draw: st.DrawFn) -> dict[str, Any]:
    """A ``chat.user_emails`` object; each of the six keys present, ``null`` or absent."""
    users: dict[str, Any] = {}
    for role in ("last_routed", "closed_conversation", "meeting_scheduled"):
        users[role] = draw(_maybe(visitor_emails()))
        users[f"{role}_user_id"] = draw(_maybe(_IDS))
    return _present(users)


@st.composite
def webhook_payloads(
    draw: st.DrawFn,
    *,
    events: st.SearchStrategy[str] | None = None,
    anonymous: st.SearchStrategy[bool] | None = None,
    long_transcripts: bool = True,
    extra_keys: bool = True,
) -> dict[str, Any]:
    """A web-chat webhook payload as JSON data.

    ``events`` draws the event (default: both); ``anonymous`` whether ``contact`` is left out
    (default: sometimes); ``long_transcripts`` allows transcripts over 32,000 characters;
    ``extra_keys`` adds unknown keys to ``chat``, ``contact`` and the top level.
    """
    event = draw(events if events is not None else st.sampled_from(WEBHOOK_EVENTS))
    chat: dict[str, Any] = {
        "transcript": draw(_maybe(transcripts(long=long_transcripts))),
        "meeting_event": draw(_maybe(webhook_meeting_events())),
        "user_emails": draw(_maybe(webhook_user_emails())),
        "referrer": draw(_maybe(st.sampled_from(("Direct", "https://www.bing.com/", "")))),
        "source_type": draw(_maybe(st.sampled_from(("Direct Traffic", "Organic Search")))),
        "traffic_source": draw(_maybe(st.text(string.ascii_lowercase, max_size=8))),
        "traffic_campaign": draw(_maybe(st.text(string.ascii_lowercase + "-", max_size=16))),
    }
    chat = _present(chat)
    if extra_keys:
        chat.update(draw(_extra_keys()))
    payload: dict[str, Any] = {"event": event, "chat": chat}
    if not draw(anonymous if anonymous is not None else st.booleans()):
        payload["contact"] = draw(webhook_contacts(extra_keys=extra_keys))
    if extra_keys and draw(st.booleans()):
        payload["x_delivery_note"] = draw(_TEXT)
    return payload
