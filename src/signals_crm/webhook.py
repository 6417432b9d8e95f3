"""The Signals web-chat webhook (``conversation-start``, ``conversation-closed``) → a Conversation.

The payload (``docs/configuration.md`` and the Signals "Web Chat" webhook page) carries the
visitor, the chat and the Signals users involved, but no conversation id, lead score, close time
or company: the host supplies those to :func:`parse_webhook`.

The rules:

1. ``event`` is the only required key; it is ``"conversation-start"`` (→ an ``OPEN``
   conversation) or ``"conversation-closed"`` (→ ``CLOSED``, which needs the host's
   ``closed_at``; for a start event ``closed_at`` is ignored). :func:`parse_webhook_event`
   tells a receiver which event a payload is, and ``None`` for an event it does not know, so
   the receiver can acknowledge and skip it.
2. Every other key is optional, and ``null`` means absent. Unknown keys are tolerated: at the
   top level and in ``chat`` they are ignored; in ``contact`` they are kept in
   :attr:`Visitor.extra` (text, numbers, booleans and nulls as they are; objects and arrays as
   compact JSON text).
3. A value that is present must have its documented type; otherwise the payload is malformed.
   Every problem is reported at once in one :class:`~signals_crm.exceptions.WebhookError`
   (a :class:`~signals_crm.exceptions.ConfigurationError`, also a ``ValueError``) with its path,
   such as ``chat.meeting_event.date``. Wrong host arguments (a closed event without
   ``closed_at``, a lead score of 5) raise a plain ``ConfigurationError`` instead, after the
   payload is known to be well formed: a receiver answers the first with a client error and
   treats the second as its own bug.
4. Texts are kept exactly as sent: emails keep their ``+`` tags and case (matching compares
   them case-insensitively later), phones stay free-form, empty strings stay empty (the core
   treats blank text as empty).
5. Numeric ids become text: ``meeting_event.id``, the ``*_user_id`` of ``user_emails`` (ids of
   :class:`SignalsUser`) and ``contact.tenant_id``. Ids sent as text are accepted too.
6. ``chat.meeting_event.date`` is ``YYYY-MM-DD`` → a ``date`` (no time of day, no zone).
   ``contact.birthdate`` is an ISO-8601 date-time → an aware ``datetime``; one without a zone
   (or a bare date) is taken as UTC, as Signals sends UTC midnight.
7. ``chat.meeting_event`` absent, ``null`` or with every value empty → no meeting. A meeting
   with data but without ``id`` is malformed: its id keys the meeting task, so that a
   redelivery cannot create a second one.
8. ``chat.user_emails`` roles map to :class:`Participants`: ``meeting_scheduled`` → meeting
   scheduler, ``last_routed`` → last routed, ``closed_conversation`` → closer. A role with
   neither an email nor an id is absent.
9. **Bounded input.** Whatever the payload holds, only a :class:`WebhookError` (or, for host
   arguments, a ``ConfigurationError``) escapes: JSON nested too deeply to decode, integers
   beyond 64 bits (ids, minutes, numbers in ``contact``), non-finite numbers and non-text keys
   in ``contact`` (a host may pass a dict), and unknown ``contact`` values nested more than
   :data:`MAX_DEPTH` levels are problems with their path. Dates inside such values are written
   as ISO text; other non-JSON objects are refused.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from signals_crm._nesting import nested_too_deeply
from signals_crm.core.model import (
    VISITOR_FIELDS,
    Company,
    Conversation,
    ConversationStatus,
    CustomActivity,
    FieldValue,
    Meeting,
    Participants,
    SignalsUser,
    Traffic,
    Visitor,
)
from signals_crm.exceptions import ConfigurationError, Problem, WebhookError
from signals_crm.settings._problems import key_path, kind

__all__ = ["WebhookEvent", "custom_activities_of", "parse_webhook", "parse_webhook_event"]


class WebhookEvent(enum.Enum):
    """The web-chat events Signals sends."""

    CONVERSATION_START = "conversation-start"
    CONVERSATION_CLOSED = "conversation-closed"


Payload = Mapping[str, Any] | str | bytes | bytearray

_ROLES = (
    ("meeting_scheduled", "meeting_scheduler"),
    ("last_routed", "last_routed"),
    ("closed_conversation", "closer"),
)
_TRAFFIC = ("referrer", "source_type", "traffic_source", "traffic_campaign")
_CONTACT_TEXT = tuple(f for f in VISITOR_FIELDS if f not in ("birthdate", "tenant_id"))
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")


class _Reader:
    """Typed reads from JSON objects that collect problems instead of raising at the first."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def raise_problems(self) -> None:
        """Raise every problem found so far as one :class:`WebhookError`."""
        if self.problems:
            raise WebhookError(self.problems)

    def table(self, data: Mapping[str, Any], base: str, key: str) -> Mapping[str, Any] | None:
        value = data.get(key)
        path = key_path(base, key)
        if value is None or isinstance(value, Mapping):
            return value
        self.fail(path, f"must be an object, not {kind(value)}")
        return None

    def text(self, data: Mapping[str, Any], base: str, key: str) -> str | None:
        value = data.get(key)
        path = key_path(base, key)
        if value is None or isinstance(value, str):
            return value
        self.fail(path, f"must be text, not {kind(value)}")
        return None

    def ident(self, data: Mapping[str, Any], base: str, key: str) -> str | None:
        value = data.get(key)
        path = key_path(base, key)
        if isinstance(value, int) and not isinstance(value, bool):
            if not _INT_MIN <= value <= _INT_MAX:
                self.fail(path, _TOO_LARGE)
                return None
            return str(value)
        if value is None:
            return None
        if isinstance(value, str):
            return value.strip() or None
        self.fail(path, f"must be an integer id, not {kind(value)}")
        return None

    def minutes(self, data: Mapping[str, Any], base: str, key: str) -> int | None:
        value = data.get(key)
        path = key_path(base, key)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            self.fail(path, f"must be a whole number of minutes, not {kind(value)}")
            return None
        if value < 0:
            self.fail(path, "must not be negative")
            return None
        if value > _INT_MAX:
            self.fail(path, _TOO_LARGE)
            return None
        return value

    def kept(self, path: str, value: Any) -> FieldValue:
        """An unknown ``contact`` value as kept in :attr:`Visitor.extra` (rule 2): a scalar as
        it is, an object or array as compact JSON text."""
        problem = _json_problem(value)
        if problem is not None:
            where, message = problem
            self.fail(path + where, message)
            return None
        if value is None or isinstance(value, str | int | float | bool):
            return value
        return json.dumps(value, separators=(",", ":"), sort_keys=True, default=_isoformat)

    def day(self, data: Mapping[str, Any], base: str, key: str) -> date | None:
        path = key_path(base, key)
        value = self.text(data, base, key)
        if not value:
            return None
        parsed = None
        if _DATE.match(value):
            try:
                parsed = date.fromisoformat(value)
            except ValueError:  # a day that does not exist, such as 2026-02-30
                parsed = None
        if parsed is None:
            self.fail(path, f"must be a date as YYYY-MM-DD, not {value!r}")
        return parsed

    def moment(self, data: Mapping[str, Any], base: str, key: str) -> datetime | None:
        path = key_path(base, key)
        value = self.text(data, base, key)
        if not value:
            return None
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            self.fail(path, f"must be an ISO-8601 date-time, not {value!r}")
            return None
        return parsed if parsed.utcoffset() is not None else parsed.replace(tzinfo=UTC)


_INT_MAX = 2**63 - 1
_INT_MIN = -(2**63)
_TOO_LARGE = "number too large: at most 64-bit integers"
MAX_DEPTH = 64
"""How deep arrays and objects may nest inside one unknown ``contact`` value."""


def _isoformat(value: object) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def _json_problem(value: Any) -> tuple[str, str] | None:
    """Where and why ``value`` cannot be kept as JSON (rule 9), or ``None``; iterative, so any
    depth is safe."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        node, where, depth = stack.pop()
        if node is None or isinstance(node, str | bool | date):
            continue
        if isinstance(node, int):
            if not _INT_MIN <= node <= _INT_MAX:
                return where, _TOO_LARGE
        elif isinstance(node, float):
            if not math.isfinite(node):
                return where, "must be a finite number (JSON has no NaN or Infinity)"
        elif isinstance(node, Mapping | list | tuple):
            if depth >= MAX_DEPTH:
                return where, f"arrays and objects nest at most {MAX_DEPTH} levels deep"
            if isinstance(node, Mapping):
                for key, item in node.items():
                    if not isinstance(key, str):
                        return key_path(where, key), "key: must be text"
                    stack.append((item, key_path(where, key), depth + 1))
            else:
                stack.extend((item, f"{where}[{i}]", depth + 1) for i, item in enumerate(node))
        else:
            return where, f"must be a JSON value, not {kind(node)}"
    return None


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _decode(payload: Payload) -> Mapping[str, Any]:
    if isinstance(payload, str | bytes | bytearray):
        try:
            payload = json.loads(payload, parse_constant=_reject_constant)
            too_deep = nested_too_deeply(payload)
        except ValueError as exc:  # (UnicodeDecodeError included)
            raise WebhookError([Problem("", f"not valid JSON: {exc}")]) from exc
        except RecursionError:  # the decoder's own limit, lower on some Pythons than ours
            too_deep = True
        if too_deep:
            raise WebhookError([Problem("", "not valid JSON: arrays or objects nested too deeply")])
    if not isinstance(payload, Mapping):
        raise WebhookError([Problem("", f"the payload must be a JSON object, not {kind(payload)}")])
    return payload


def _read_event(
    read: _Reader, data: Mapping[str, Any], *, unknown_is_problem: bool
) -> WebhookEvent | None:
    value = data.get("event")
    if value is None:
        read.fail("event", "required")
        return None
    if not isinstance(value, str):
        read.fail("event", f"must be text, not {kind(value)}")
        return None
    try:
        return WebhookEvent(value)
    except ValueError:
        if unknown_is_problem:
            known = ", ".join(repr(e.value) for e in WebhookEvent)
            read.fail("event", f"unknown event {value!r}: expected one of {known}")
        return None


def parse_webhook_event(payload: Payload) -> WebhookEvent | None:
    """Which event ``payload`` is, or ``None`` for an event Signals added after this library.

    Raises :class:`~signals_crm.exceptions.WebhookError` when the payload is not a JSON object
    or has no textual ``event``.
    """
    read = _Reader()
    event = _read_event(read, _decode(payload), unknown_is_problem=False)
    read.raise_problems()
    return event


def parse_webhook(
    payload: Payload,
    *,
    conversation_id: str,
    lead_score: int | None,
    closed_at: datetime | None = None,
    company: Company | None = None,
    activities: Iterable[CustomActivity | Mapping[str, Any]] = (),
) -> Conversation:
    """The :class:`Conversation` a ``conversation-start``/``conversation-closed`` payload
    describes (a mapping, or JSON as text or bytes), completed by the host's values.

    ``activities`` are the conversation's activities of host-declared kinds (the payload has
    none): :class:`~signals_crm.core.model.CustomActivity` values, or JSON-ready mappings
    ``{"kind", "id", "occurred_on" (ISO date, optional), "data" (optional)}``.

    Raises :class:`~signals_crm.exceptions.WebhookError` listing every problem of a malformed
    payload, then :class:`~signals_crm.exceptions.ConfigurationError` for wrong host arguments.
    """
    data = _decode(payload)
    read = _Reader()
    event = _read_event(read, data, unknown_is_problem=True)
    chat = read.table(data, "", "chat") or {}
    transcript = read.text(chat, "chat", "transcript")
    traffic = Traffic(**{k: read.text(chat, "chat", k) for k in _TRAFFIC})
    meeting = _meeting(read, chat)
    participants = _participants(read, chat)
    visitor = _visitor(read, data)
    read.raise_problems()

    closed = event is WebhookEvent.CONVERSATION_CLOSED
    _check_host(
        conversation_id=conversation_id,
        lead_score=lead_score,
        closed_at=closed_at,
        company=company,
        closed=closed,
    )
    return Conversation(
        id=conversation_id,
        status=ConversationStatus.CLOSED if closed else ConversationStatus.OPEN,
        closed_at=closed_at if closed else None,
        lead_score=lead_score,
        visitor=visitor,
        company=company,
        participants=participants,
        transcript=transcript,
        meeting=meeting,
        traffic=traffic,
        custom_activities=custom_activities_of(activities),
    )


_ACTIVITY_KEYS = frozenset({"kind", "id", "occurred_on", "data"})


def custom_activities_of(
    activities: Iterable[CustomActivity | Mapping[str, Any]],
) -> tuple[CustomActivity, ...]:
    """Host-declared-kind activities from values or JSON-ready mappings; a
    :class:`~signals_crm.exceptions.ConfigurationError` names every bad ``activities[i]``."""
    out: list[CustomActivity] = []
    problems: list[Problem] = []
    listed: Iterable[object] = activities
    for index, item in enumerate(listed):
        where = f"activities[{index}]"
        if isinstance(item, CustomActivity):
            out.append(item)
            continue
        if not isinstance(item, Mapping):
            problems.append(Problem(where, "an object with kind and id"))
            continue
        unknown = sorted(set(item) - _ACTIVITY_KEYS)
        if unknown:
            problems.append(Problem(where, f"unknown keys {unknown}: kind, id, occurred_on, data"))
            continue
        raw_day = item.get("occurred_on")
        day: date | None = None
        if raw_day is not None:
            try:
                day = date.fromisoformat(str(raw_day))
            except ValueError:
                problems.append(Problem(f"{where}.occurred_on", "an ISO date (YYYY-MM-DD)"))
                continue
        data = item.get("data") or {}
        if not isinstance(data, Mapping):
            problems.append(Problem(f"{where}.data", "an object of values"))
            continue
        try:
            out.append(
                CustomActivity(
                    kind=item.get("kind", ""), id=item.get("id", ""), occurred_on=day, data=data
                )
            )
        except ConfigurationError as error:
            problems.extend(Problem(f"{where}.{p.path}", p.message) for p in error.problems)
    if problems:
        raise ConfigurationError(problems)
    return tuple(out)


def _meeting(read: _Reader, chat: Mapping[str, Any]) -> Meeting | None:
    base = "chat.meeting_event"
    event = read.table(chat, "chat", "meeting_event")
    if event is None:
        return None
    meeting_id = read.ident(event, base, "id")
    name = read.text(event, base, "name")
    agent_name = read.text(event, base, "agent_name")
    day = read.day(event, base, "date")
    duration = read.minutes(event, base, "duration_minutes")
    lead_time = read.minutes(event, base, "lead_time_minutes")
    if meeting_id is None:
        missing = isinstance(event.get("id"), str | None)  # (a wrong type is reported as such)
        if missing and any(v not in (None, "") for v in event.values()):
            read.fail(f"{base}.id", "required when a meeting is present (it keys the task)")
        return None
    return Meeting(
        id=meeting_id,
        name=name,
        agent_name=agent_name,
        date=day,
        duration_minutes=duration,
        lead_time_minutes=lead_time,
    )


def _participants(read: _Reader, chat: Mapping[str, Any]) -> Participants:
    base = "chat.user_emails"
    users = read.table(chat, "chat", "user_emails")
    if users is None:
        return Participants()
    found: dict[str, SignalsUser | None] = {}
    for key, role in _ROLES:
        email = read.text(users, base, key)
        user_id = read.ident(users, base, f"{key}_user_id")
        email = email if email and email.strip() else None
        found[role] = SignalsUser(id=user_id, email=email) if user_id or email else None
    return Participants(**found)


def _visitor(read: _Reader, data: Mapping[str, Any]) -> Visitor | None:
    contact = read.table(data, "", "contact")
    if contact is None:
        return None
    texts = {k: read.text(contact, "contact", k) for k in _CONTACT_TEXT}
    tenant = read.ident(contact, "contact", "tenant_id")
    birthdate = read.moment(contact, "contact", "birthdate")
    known = {*_CONTACT_TEXT, "tenant_id", "birthdate"}
    extra: dict[str, FieldValue] = {}
    entries: Iterable[tuple[object, Any]] = contact.items()  # (a host's dict may have any keys)
    for key, value in entries:
        if not isinstance(key, str):
            read.fail(key_path("contact", key), "key: must be text")
        elif key not in known:
            extra[key] = read.kept(key_path("contact", key), value)
    if read.problems:
        return None
    return Visitor(tenant_id=tenant, birthdate=birthdate, extra=extra, **texts)


def _check_host(
    *,
    conversation_id: object,
    lead_score: object,
    closed_at: object,
    company: object,
    closed: bool,
) -> None:
    problems: list[Problem] = []
    if not isinstance(conversation_id, str) or not conversation_id.strip():
        problems.append(Problem("conversation_id", "must be non-empty text"))
    if lead_score is not None and (isinstance(lead_score, bool) or lead_score not in (0, 1, 2, 3)):
        problems.append(Problem("lead_score", "must be 0, 1, 2, 3 or None (unscored)"))
    if closed:
        if closed_at is None:
            problems.append(
                Problem(
                    "closed_at",
                    "a conversation-closed event needs closed_at (the payload has no time)",
                )
            )
        elif not isinstance(closed_at, datetime) or closed_at.utcoffset() is None:
            problems.append(Problem("closed_at", "must be a timezone-aware datetime"))
    if company is not None and not isinstance(company, Company):
        problems.append(Problem("company", "must be a signals_crm Company"))
    if problems:
        raise ConfigurationError(problems)
