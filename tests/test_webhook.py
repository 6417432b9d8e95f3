"""The Signals web-chat webhook parser: payload → Conversation."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from signals_crm.core.model import (
    Company,
    Conversation,
    ConversationStatus,
    Meeting,
    Participants,
    SignalsUser,
    Traffic,
)
from signals_crm.exceptions import ConfigurationError, WebhookError
from signals_crm.testing.strategies_webhook import webhook_payloads
from signals_crm.webhook import WebhookEvent, parse_webhook, parse_webhook_event

CLOSED_AT = datetime(2026, 11, 10, 15, 30, tzinfo=UTC)

# The example payload of the Signals webhook reference (§3), verbatim.
EXAMPLE: dict[str, Any] = {
    "event": "conversation-closed",
    "chat": {
        "transcript": "Visitor: Hi, do you integrate with Salesforce?\nAva (bot): Yes. Would you "
        "like a demo?\nVisitor: Sure, next Tuesday works.\nPriya Nair: Booked you for Tuesday. "
        "Talk soon!",
        "meeting_event": {
            "id": 48213,
            "name": "Product demo (30 min)",
            "agent_name": "Priya Nair",
            "date": "2026-11-17",
            "duration_minutes": 30,
            "lead_time_minutes": 60,
        },
        "user_emails": {
            "last_routed": "priya.nair@northwind-analytics.test",
            "last_routed_user_id": 5512,
            "closed_conversation": "marco.bell@northwind-analytics.test",
            "closed_conversation_user_id": 5520,
            "meeting_scheduled": "priya.nair@northwind-analytics.test",
            "meeting_scheduled_user_id": 5512,
        },
        "referrer": "https://www.bing.com/",
        "source_type": "Organic Search",
        "traffic_source": "bing",
        "traffic_campaign": "fall-webinar-2026",
    },
    "contact": {
        "tenant_id": 907,
        "first_name": "Lena",
        "last_name": "Okafor",
        "middle_name": "Adaeze",
        "preferred_name": "Lena",
        "name": "Lena Okafor",
        "honorific": "Dr.",
        "phone": "+44 20 7946 0321",
        "home_phone": "",
        "mobile_phone": "+44 7700 900412",
        "other_phone": "",
        "email": "lena.okafor@brightfield-labs.test",
        "other_email": "lena.o+chat@example.org",
        "birthdate": "1988-03-09T00:00:00Z",
        "description": "Head of RevOps; evaluating chat-to-CRM routing.",
    },
}


def example(**changes: Any) -> dict[str, Any]:
    """A deep copy of the example payload with top-level keys replaced (``None`` removes)."""
    payload = copy.deepcopy(EXAMPLE)
    for key, value in changes.items():
        if value is None:
            payload.pop(key, None)
        else:
            payload[key] = value
    return payload


def parse(payload: Any, **host: Any) -> Any:
    host.setdefault("conversation_id", "conv-1")
    host.setdefault("lead_score", 2)
    host.setdefault("closed_at", CLOSED_AT)
    return parse_webhook(payload, **host)


def problems(exc: pytest.ExceptionInfo[ConfigurationError]) -> dict[str, str]:
    return {p.path: p.message for p in exc.value.problems}


def test_reference_example_parses_into_every_core_value() -> None:
    """The reference's example payload becomes the matching Conversation, field by field."""
    company = Company(domain="brightfield-labs.test", name="Brightfield Labs")
    conv = parse(EXAMPLE, company=company)
    assert conv.id == "conv-1"
    assert conv.status is ConversationStatus.CLOSED
    assert conv.closed_at == CLOSED_AT
    assert conv.lead_score == 2
    assert conv.company is company
    assert conv.transcript == EXAMPLE["chat"]["transcript"]
    assert conv.meeting == Meeting(
        id="48213",
        name="Product demo (30 min)",
        agent_name="Priya Nair",
        date=date(2026, 11, 17),
        duration_minutes=30,
        lead_time_minutes=60,
    )
    priya = SignalsUser(id="5512", email="priya.nair@northwind-analytics.test")
    assert conv.participants == Participants(
        meeting_scheduler=priya,
        last_routed=priya,
        closer=SignalsUser(id="5520", email="marco.bell@northwind-analytics.test"),
    )
    assert conv.traffic == Traffic(
        referrer="https://www.bing.com/",
        source_type="Organic Search",
        traffic_source="bing",
        traffic_campaign="fall-webinar-2026",
    )
    visitor = conv.visitor
    assert visitor is not None
    assert visitor.email == "lena.okafor@brightfield-labs.test"
    assert visitor.other_email == "lena.o+chat@example.org"
    assert (visitor.first_name, visitor.last_name, visitor.middle_name) == (
        "Lena",
        "Okafor",
        "Adaeze",
    )
    assert (visitor.name, visitor.preferred_name, visitor.honorific) == (
        "Lena Okafor",
        "Lena",
        "Dr.",
    )
    assert (visitor.phone, visitor.mobile_phone) == ("+44 20 7946 0321", "+44 7700 900412")
    assert (visitor.home_phone, visitor.other_phone) == ("", "")
    assert visitor.tenant_id == "907"
    assert visitor.birthdate == datetime(1988, 3, 9, tzinfo=UTC)
    assert visitor.description == "Head of RevOps; evaluating chat-to-CRM routing."
    assert visitor.extra == {}


def test_json_text_and_bytes_parse_like_the_mapping() -> None:
    """A payload given as JSON text or UTF-8 bytes parses to the same Conversation."""
    expected = parse(EXAMPLE)
    assert parse(json.dumps(EXAMPLE)) == expected
    assert parse(json.dumps(EXAMPLE, ensure_ascii=False).encode()) == expected


def test_anonymous_start_event_is_open_without_visitor() -> None:
    """A conversation-start without contact is an OPEN conversation with no visitor."""
    payload = {"event": "conversation-start", "chat": {"referrer": "Direct"}}
    conv = parse(payload, lead_score=None)
    assert conv.status is ConversationStatus.OPEN
    assert conv.closed_at is None  # the host's closed_at is ignored for a start event
    assert conv.visitor is None
    assert conv.lead_score is None
    assert conv.meeting is None
    assert conv.participants == Participants()
    assert conv.traffic == Traffic(referrer="Direct")
    assert conv.activities() == ()


def test_start_event_needs_no_closed_at() -> None:
    """A start event parses without the host's close time."""
    conv = parse_webhook({"event": "conversation-start"}, conversation_id="c", lead_score=0)
    assert conv.status is ConversationStatus.OPEN
    assert conv.transcript is None


@pytest.mark.parametrize("how", ["absent", "null", "empty"])
def test_meeting_and_user_emails_may_be_missing(how: str) -> None:
    """``meeting_event`` and ``user_emails`` absent, null or empty give no meeting and no users."""
    chat = dict(EXAMPLE["chat"])
    for key in ("meeting_event", "user_emails"):
        if how == "absent":
            del chat[key]
        else:
            chat[key] = None if how == "null" else {}
    conv = parse(example(chat=chat))
    assert conv.meeting is None
    assert conv.participants == Participants()
    assert [a.key for a in conv.activities()] == ["transcript"]


def test_each_user_role_may_be_null_or_partial() -> None:
    """A role with only an id or only an email still names a user; a role with neither is None."""
    chat = dict(EXAMPLE["chat"])
    chat["user_emails"] = {
        "last_routed": None,
        "last_routed_user_id": 77,
        "closed_conversation": "Closer@Example.test",
        "meeting_scheduled": None,
        "meeting_scheduled_user_id": None,
    }
    conv = parse(example(chat=chat))
    assert conv.participants == Participants(
        meeting_scheduler=None,
        last_routed=SignalsUser(id="77"),
        closer=SignalsUser(email="Closer@Example.test"),
    )


def test_unknown_keys_are_tolerated_and_contact_extras_kept() -> None:
    """Unknown keys anywhere are accepted; unknown contact keys land in Visitor.extra."""
    contact = dict(EXAMPLE["contact"])
    contact.update(
        {
            "job_title": "Head of RevOps",
            "employees": 250,
            "vip": True,
            "score": 0.5,
            "nothing": None,
            "linkedin": {"url": "https://example.test/lena"},
            "tags": ["a", "b"],
        }
    )
    chat = dict(EXAMPLE["chat"], widget_version="4.2", new_thing={"a": 1})
    payload = example(contact=contact, chat=chat, delivery={"attempt": 2})
    payload["chat"]["meeting_event"] = dict(EXAMPLE["chat"]["meeting_event"], location="Zoom")
    conv = parse(payload)
    assert conv.visitor is not None
    assert conv.visitor.extra == {
        "job_title": "Head of RevOps",
        "employees": 250,
        "vip": True,
        "score": 0.5,
        "nothing": None,
        "linkedin": '{"url":"https://example.test/lena"}',
        "tags": '["a","b"]',
    }
    assert conv.field_values()["contact.job_title"] == "Head of RevOps"
    assert conv.meeting is not None
    assert conv.meeting.id == "48213"


def test_plus_tags_and_mixed_case_emails_are_preserved() -> None:
    """Emails keep their ``+`` tags and letter case exactly as sent."""
    contact = dict(EXAMPLE["contact"], email="  Lena.O+Chat@BrightField-Labs.TEST ")
    chat = dict(EXAMPLE["chat"])
    chat["user_emails"] = {"closed_conversation": "Marco.Bell+sales@Northwind.TEST"}
    conv = parse(example(contact=contact, chat=chat))
    assert conv.email == "  Lena.O+Chat@BrightField-Labs.TEST "
    assert conv.participants.closer == SignalsUser(email="Marco.Bell+sales@Northwind.TEST")


def test_sparse_contact_keeps_what_is_there() -> None:
    """A contact with only some keys gives a Visitor with the rest None."""
    conv = parse(example(contact={"email": "a@b.test", "first_name": ""}))
    assert conv.visitor is not None
    assert conv.visitor.email == "a@b.test"
    assert conv.visitor.first_name == ""
    assert conv.visitor.last_name is None
    assert conv.visitor.birthdate is None
    assert conv.visitor.tenant_id is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1988-03-09T00:00:00Z", datetime(1988, 3, 9, tzinfo=UTC)),
        ("1988-03-09T00:00:00+02:00", datetime(1988, 3, 9, tzinfo=timezone(timedelta(hours=2)))),
        ("1988-03-09T00:00:00", datetime(1988, 3, 9, tzinfo=UTC)),
        ("1988-03-09", datetime(1988, 3, 9, tzinfo=UTC)),
        ("", None),
    ],
)
def test_birthdate_is_an_aware_datetime(text: str, expected: datetime | None) -> None:
    """``birthdate`` parses to an aware datetime; without a zone it is taken as UTC."""
    conv = parse(example(contact={"birthdate": text}))
    assert conv.visitor is not None
    assert conv.visitor.birthdate == expected
    if expected is not None:
        assert conv.visitor.birthdate is not None
        assert conv.visitor.birthdate.utcoffset() is not None


def test_ids_sent_as_text_are_accepted() -> None:
    """Meeting, user and tenant ids sent as text are kept as text ids (trimmed)."""
    chat = dict(EXAMPLE["chat"])
    chat["meeting_event"] = {"id": " m-1 "}
    chat["user_emails"] = {"last_routed_user_id": "u9"}
    conv = parse(example(chat=chat, contact={"tenant_id": "907"}))
    assert conv.meeting == Meeting(id="m-1")
    assert conv.participants.last_routed == SignalsUser(id="u9")
    assert conv.visitor is not None
    assert conv.visitor.tenant_id == "907"


def test_malformed_payload_names_every_field() -> None:
    """Wrong types and bad dates raise one WebhookError naming each field's path."""
    chat = dict(EXAMPLE["chat"])
    chat["transcript"] = ["not", "text"]
    chat["meeting_event"] = dict(
        EXAMPLE["chat"]["meeting_event"],
        date="17/11/2026",
        duration_minutes="30",
        lead_time_minutes=-5,
    )
    chat["user_emails"] = {"last_routed": 5, "closed_conversation_user_id": True}
    chat["referrer"] = 3
    contact = dict(EXAMPLE["contact"], birthdate="yesterday", email=None, first_name=1)
    with pytest.raises(WebhookError) as exc:
        parse(example(chat=chat, contact=contact))
    assert isinstance(exc.value, ConfigurationError)
    assert isinstance(exc.value, ValueError)
    found = problems(exc)
    assert set(found) == {
        "chat.transcript",
        "chat.meeting_event.date",
        "chat.meeting_event.duration_minutes",
        "chat.meeting_event.lead_time_minutes",
        "chat.user_emails.last_routed",
        "chat.user_emails.closed_conversation_user_id",
        "chat.referrer",
        "contact.birthdate",
        "contact.first_name",
    }
    assert "YYYY-MM-DD" in found["chat.meeting_event.date"]
    assert "must be text" in found["chat.transcript"]
    assert "negative" in found["chat.meeting_event.lead_time_minutes"]
    assert "ISO-8601" in found["contact.birthdate"]
    assert "chat.meeting_event.date: must be a date" in str(exc.value)


@pytest.mark.parametrize(
    ("payload", "path", "fragment"),
    [
        ({"chat": {}}, "event", "required"),
        ({"event": None}, "event", "required"),
        ({"event": 3}, "event", "must be text"),
        ({"event": "conversation-transferred"}, "event", "unknown event"),
        ({"event": "conversation-closed", "chat": []}, "chat", "must be an object"),
        ({"event": "conversation-closed", "contact": "lena"}, "contact", "must be an object"),
        (
            {"event": "conversation-closed", "chat": {"meeting_event": 48213}},
            "chat.meeting_event",
            "must be an object",
        ),
        (
            {"event": "conversation-closed", "chat": {"user_emails": ["a@b.test"]}},
            "chat.user_emails",
            "must be an object",
        ),
        (
            {"event": "conversation-closed", "chat": {"meeting_event": {"date": "2026-02-30"}}},
            "chat.meeting_event.date",
            "YYYY-MM-DD",
        ),
        (
            {"event": "conversation-closed", "chat": {"meeting_event": {"name": "Demo"}}},
            "chat.meeting_event.id",
            "required",
        ),
        (
            {"event": "conversation-closed", "chat": {"meeting_event": {"id": 1.5}}},
            "chat.meeting_event.id",
            "integer id",
        ),
    ],
)
def test_each_malformation_is_named(payload: dict[str, Any], path: str, fragment: str) -> None:
    """Each kind of malformed payload raises a WebhookError whose problem names the field."""
    with pytest.raises(WebhookError) as exc:
        parse(payload)
    found = problems(exc)
    assert path in found
    assert fragment in found[path]


@pytest.mark.parametrize(
    "payload", ["{not json", b"\xff\xfe", "[1, 2]", '"text"', '{"event": NaN}', b"null"]
)
def test_undecodable_or_non_object_payload(payload: str | bytes) -> None:
    """A payload that is not a JSON object is a WebhookError, never a bare JSON error."""
    with pytest.raises(WebhookError):
        parse(payload)


def test_host_arguments_are_checked_after_the_payload() -> None:
    """Wrong host values raise a plain ConfigurationError naming each argument."""
    with pytest.raises(ConfigurationError) as exc:
        parse_webhook(EXAMPLE, conversation_id=" ", lead_score=5, company="acme")  # type: ignore[arg-type]
    assert not isinstance(exc.value, WebhookError)
    assert set(problems(exc)) == {"conversation_id", "lead_score", "closed_at", "company"}
    assert "needs closed_at" in problems(exc)["closed_at"]


def test_closed_event_needs_an_aware_close_time() -> None:
    """A naive closed_at is refused for a closed event."""
    with pytest.raises(ConfigurationError) as exc:
        parse(EXAMPLE, closed_at=datetime(2026, 11, 10, 15, 30))  # noqa: DTZ001
    assert problems(exc) == {"closed_at": "must be a timezone-aware datetime"}


def test_missing_event_is_reported_with_the_other_problems() -> None:
    """A payload without event still has its other problems listed in the same error."""
    with pytest.raises(WebhookError) as exc:
        parse({"chat": {"transcript": 5}, "contact": {"birthdate": "soon"}})
    assert problems(exc) == {
        "event": "required",
        "chat.transcript": "must be text, not a number",
        "contact.birthdate": "must be an ISO-8601 date-time, not 'soon'",
    }


def test_malformed_payload_wins_over_host_errors() -> None:
    """A malformed payload is reported as a WebhookError even when host values are wrong too."""
    with pytest.raises(WebhookError):
        parse_webhook({"event": 1}, conversation_id="", lead_score=9)


def test_parse_webhook_event() -> None:
    """parse_webhook_event names known events, returns None for new ones, refuses no event."""
    assert parse_webhook_event(EXAMPLE) is WebhookEvent.CONVERSATION_CLOSED
    assert parse_webhook_event(b'{"event": "conversation-start"}') is (
        WebhookEvent.CONVERSATION_START
    )
    assert parse_webhook_event({"event": "conversation-rated"}) is None
    with pytest.raises(WebhookError) as exc:
        parse_webhook_event({"chat": {}})
    assert exc.value.paths == ("event",)


def test_redelivery_parses_identically() -> None:
    """The same payload delivered twice gives equal Conversations (processing can dedupe)."""
    assert parse(EXAMPLE) == parse(copy.deepcopy(EXAMPLE))


def test_parsing_does_not_mutate_the_payload() -> None:
    """The caller's payload is left as it was."""
    payload = copy.deepcopy(EXAMPLE)
    parse(payload)
    assert payload == EXAMPLE


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=webhook_payloads(), score=st.none() | st.integers(0, 3))
def test_emulated_payloads_parse_faithfully(payload: dict[str, Any], score: int | None) -> None:
    """Every payload of the emulator checklist parses, as data or JSON, keeping what it says."""
    conv = parse(payload, lead_score=score)
    assert parse(json.dumps(payload).encode(), lead_score=score) == conv
    closed = payload["event"] == "conversation-closed"
    assert conv.status is (ConversationStatus.CLOSED if closed else ConversationStatus.OPEN)
    assert conv.lead_score == score
    chat = payload["chat"]
    assert conv.transcript == chat.get("transcript")
    contact = payload.get("contact")
    if contact is None:
        assert conv.visitor is None
    else:
        assert conv.visitor is not None
        assert conv.visitor.email == contact.get("email")
        assert conv.visitor.phone == contact.get("phone")
        assert set(conv.visitor.extra) == {k for k in contact if k.startswith("x_")}
        if contact.get("tenant_id") is not None:
            assert conv.visitor.tenant_id == str(contact["tenant_id"])
    meeting = chat.get("meeting_event")
    if meeting:
        assert conv.meeting is not None
        assert conv.meeting.id == str(meeting["id"])
        if "date" in meeting:
            assert conv.meeting.date is not None
            assert conv.meeting.date.isoformat() == meeting["date"]
    else:
        assert conv.meeting is None
    users = chat.get("user_emails") or {}
    for key, role in (
        ("meeting_scheduled", conv.participants.meeting_scheduler),
        ("last_routed", conv.participants.last_routed),
        ("closed_conversation", conv.participants.closer),
    ):
        email, user_id = users.get(key), users.get(f"{key}_user_id")
        if email is None and user_id is None:
            assert role is None
        else:
            assert role == SignalsUser(id=None if user_id is None else str(user_id), email=email)


# ------------------------------------------------------------------------------------------------
# Hostile input: only typed errors, naming the field (rule 9)


def nested_list(depth: int) -> list[Any]:
    """A list nested ``depth`` levels deep, built without recursion."""
    root: list[Any] = []
    node = root
    for _ in range(depth - 1):
        child: list[Any] = []
        node.append(child)
        node = child
    return root


def test_json_text_nested_too_deeply_is_a_webhook_error() -> None:
    """JSON nested 2,000 levels deep (more than the decoder recurses) is a typed error."""
    text = '{"event": "conversation-closed", "contact": {"x": ' + "[" * 2000 + "]" * 2000 + "}}"
    with pytest.raises(WebhookError) as exc:
        parse(text)
    assert problems(exc) == {"": "not valid JSON: arrays or objects nested too deeply"}


def test_deep_contact_value_in_a_mapping_is_refused_at_its_path() -> None:
    """A host's dict with a contact value nested 2,000 levels deep names the value, at the
    depth where it stops being kept."""
    with pytest.raises(WebhookError) as exc:
        parse(example(contact={"email": "a@b.test", "x": nested_list(2000)}))
    [problem] = exc.value.problems
    assert problem.path == "contact.x" + "[0]" * 64
    assert "nest at most 64 levels" in problem.message


def test_a_contact_value_at_the_depth_limit_is_kept_as_json() -> None:
    """An unknown contact value nested as deep as allowed is kept as compact JSON text."""
    conv = parse(example(contact={"x": nested_list(64)}))
    assert conv.visitor.extra["x"] == "[" * 64 + "]" * 64


HUGE = 10**5000  # 5,001 digits: str() of it raises ValueError in Python


@pytest.mark.parametrize(
    ("payload", "path"),
    [
        (example(contact={"x_score": HUGE}), "contact.x_score"),
        (example(contact={"x": {"deep key": [1, -HUGE]}}), 'contact.x["deep key"][1]'),
        (example(contact={"tenant_id": HUGE}), "contact.tenant_id"),
        (example(chat={"meeting_event": {"id": HUGE}}), "chat.meeting_event.id"),
        (
            example(chat={"meeting_event": {"id": 1, "duration_minutes": HUGE}}),
            "chat.meeting_event.duration_minutes",
        ),
        (
            example(chat={"user_emails": {"closed_conversation_user_id": HUGE}}),
            "chat.user_emails.closed_conversation_user_id",
        ),
    ],
)
def test_integers_beyond_64_bits_are_refused_at_their_path(
    payload: dict[str, Any], path: str
) -> None:
    """A 5,000-digit integer anywhere in a host's mapping is a problem at its path, never a
    ValueError from converting it to text."""
    with pytest.raises(WebhookError) as exc:
        parse(payload)
    assert problems(exc) == {path: "number too large: at most 64-bit integers"}


def test_64_bit_integers_are_kept() -> None:
    """The largest 64-bit integers are still ids and extra numbers."""
    conv = parse(example(contact={"tenant_id": 2**63 - 1, "x_n": -(2**63)}))
    assert conv.visitor.tenant_id == str(2**63 - 1)
    assert conv.visitor.extra["x_n"] == -(2**63)


def test_non_text_keys_in_contact_are_refused() -> None:
    """Mixed key types (a host's dict) are named, at the top of contact and inside a value,
    instead of a TypeError from sorting them."""
    with pytest.raises(WebhookError) as exc:
        parse(example(contact={1: "a", "email": "a@b.test", "x": {2: "b", "c": 3}}))
    assert problems(exc) == {
        'contact["1"]': "key: must be text",
        'contact.x["2"]': "key: must be text",
    }


@pytest.mark.parametrize(
    "payload",
    [
        '{"event": "conversation-closed", "contact": {"x": 1e400}}',
        example(contact={"x": float("nan")}),
        example(contact={"x": [float("-inf")]}),
    ],
)
def test_non_finite_numbers_are_refused(payload: str | dict[str, Any]) -> None:
    """JSON has no NaN or Infinity: a number that overflows to one, or a host's NaN, is named."""
    with pytest.raises(WebhookError) as exc:
        parse(payload)
    [problem] = exc.value.problems
    assert problem.path.startswith("contact.x")
    assert "finite" in problem.message


def test_non_json_objects_in_contact_are_refused_but_dates_are_kept_as_text() -> None:
    """A set cannot be kept; a date inside an unknown value is written as ISO text."""
    with pytest.raises(WebhookError) as exc:
        parse(example(contact={"x": {1, 2}}))
    assert problems(exc) == {"contact.x": "must be a JSON value, not set"}
    conv = parse(example(contact={"x": {"on": date(2026, 1, 2)}}))
    assert conv.visitor.extra["x"] == '{"on":"2026-01-02"}'


_KEYS = st.text(max_size=12) | st.integers()
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**70)
    | st.sampled_from([2**63, -(2**63) - 1, 10**30, 1e300, float("inf"), float("nan"), "9" * 40])
    | st.floats()
    | st.text(max_size=20)
)
_JSON_LIKE = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=25,
)


def _tables(keys: tuple[str, ...]) -> st.SearchStrategy[Any]:
    """Objects with some of ``keys`` (and others), each holding anything JSON-like."""
    return _JSON_LIKE | st.fixed_dictionaries({}, optional=dict.fromkeys(keys, _JSON_LIKE))


_PAYLOADS = st.fixed_dictionaries(
    {},
    optional={
        "event": st.sampled_from(["conversation-closed", "conversation-start"]) | _JSON_LIKE,
        "chat": _JSON_LIKE
        | st.fixed_dictionaries(
            {},
            optional={
                "transcript": _JSON_LIKE,
                "referrer": _JSON_LIKE,
                "meeting_event": _tables(
                    ("id", "name", "date", "duration_minutes", "lead_time_minutes")
                ),
                "user_emails": _tables(("last_routed", "last_routed_user_id", "closer")),
            },
        ),
        "contact": _tables(("email", "tenant_id", "birthdate", "first_name", "x_extra")),
    },
)


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=_PAYLOADS | _JSON_LIKE)
def test_arbitrary_json_like_input_raises_only_webhook_errors(payload: Any) -> None:
    """Whatever JSON-like value a host passes (as data, or as JSON text when it has one),
    parse_webhook returns a Conversation or raises a WebhookError, nothing else."""
    try:
        text = json.dumps(payload)
    except (TypeError, ValueError):  # integer keys mixed with text, digits beyond the limit
        text = None
    for candidate in (payload, text):
        if candidate is None:
            continue
        try:
            conv = parse(candidate)
        except WebhookError:
            continue
        assert isinstance(conv, Conversation)


def test_json_text_nesting_limit_is_the_same_on_every_python() -> None:
    """Text nested deeper than MAX_DECODED_DEPTH is refused whole, whatever this Python's
    decoder allows; at the limit it is read, and the deep contact value named at its path."""
    from signals_crm._nesting import MAX_DECODED_DEPTH

    def text(depth: int) -> str:  # the payload and its contact are the first two levels
        inner = depth - 2
        return (
            '{"event": "conversation-closed", "contact": {"x": ' + "[" * inner + "]" * inner + "}}"
        )

    with pytest.raises(WebhookError) as exc:
        parse(text(MAX_DECODED_DEPTH + 1))
    assert problems(exc) == {"": "not valid JSON: arrays or objects nested too deeply"}
    with pytest.raises(WebhookError) as exc:
        parse(text(MAX_DECODED_DEPTH))
    [(where, message)] = problems(exc).items()
    assert where.startswith("contact.x[0]")
    assert message == "arrays and objects nest at most 64 levels deep"
