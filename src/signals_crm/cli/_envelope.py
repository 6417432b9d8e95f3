"""Reading webhook deliveries from a file or stdin: one JSON object per line.

Each line is an *envelope*: the Signals webhook body the host received (``payload``) and what
the host adds because the payload lacks it::

    {"conversation_id": "c-42", "lead_score": 3, "closed_at": "2026-11-20T12:00:00Z",
     "company": {"name": "Globex", "domain": "globex.test"}, "payload": {...},
     "activities": [{"kind": "form_submitted", "id": "f-1", "data": {"form": "Pricing"}}]}

Rules:

1. ``conversation_id`` and ``payload`` are required; ``lead_score`` (0..3 or null) and
   ``company`` (``name``, ``domain``, ``attributes``) are optional; ``closed_at`` is required for
   a ``conversation-closed`` payload; ``activities`` (activities of kinds declared in the
   settings' ``activity_kinds``: ``kind``, ``id``, ``occurred_on``, ``data``) is optional. Any
   other key is refused (a typo fails loudly).
2. A line longer than :data:`MAX_LINE` bytes, a line that is not UTF-8 JSON, or one whose
   values are refused by the library is *rejected* with its line number and reason; the lines
   around it go on. Blank lines are skipped.
3. Line numbers start at 1 and count every line, blank ones included, so ``--skip N`` and the
   backfill checkpoint name the same lines as an editor does.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import IO, Any

import attrs

from signals_crm.cli._common import CommandError, read_json_object
from signals_crm.core.model import Company, Conversation
from signals_crm.exceptions import SignalsCRMError
from signals_crm.webhook import parse_webhook

__all__ = ["MAX_LINE", "Rejected", "read_envelopes"]

MAX_LINE = 1 << 20
"""The longest line accepted, in bytes (1 MiB)."""

_KEYS = frozenset(
    {"conversation_id", "lead_score", "closed_at", "company", "payload", "activities"}
)
_COMPANY_KEYS = frozenset({"name", "domain", "attributes"})


@attrs.frozen
class Rejected:
    """A line that could not be used, and why (the reason never quotes the line)."""

    line: int
    reason: str


def _closed_at(value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise CommandError("closed_at: must be an ISO-8601 time")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError("closed_at: not an ISO-8601 time") from None
    if parsed.utcoffset() is None:
        raise CommandError("closed_at: must carry a UTC offset (e.g. Z or +00:00)")
    return parsed


def _company(value: object) -> Company | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise CommandError("company: must be an object")
    unknown = sorted(set(value) - _COMPANY_KEYS)
    if unknown:
        raise CommandError(f"company: unknown keys {unknown}")
    for key in ("name", "domain"):
        if value.get(key) is not None and not isinstance(value[key], str):
            raise CommandError(f"company.{key}: must be text")
    attributes = value.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise CommandError("company.attributes: must be an object")
    return Company(name=value.get("name"), domain=value.get("domain"), attributes=attributes)


def conversation_of(envelope: dict[str, Any]) -> Conversation:
    """The conversation one envelope describes (CommandError or a library error if not)."""
    unknown = sorted(set(envelope) - _KEYS)
    if unknown:
        raise CommandError(f"unknown keys {unknown}; known: {', '.join(sorted(_KEYS))}")
    for key in ("conversation_id", "payload"):
        if key not in envelope:
            raise CommandError(f"{key}: required")
    cid = envelope["conversation_id"]
    if not isinstance(cid, str) or not cid.strip():
        raise CommandError("conversation_id: must be non-empty text")
    score = envelope.get("lead_score")
    if score is not None and (isinstance(score, bool) or not isinstance(score, int)):
        raise CommandError("lead_score: must be an integer 0..3 or null")
    payload = envelope["payload"]
    if not isinstance(payload, dict):
        raise CommandError("payload: must be the webhook's JSON object")
    return parse_webhook(
        payload,
        conversation_id=cid,
        lead_score=score,
        closed_at=_closed_at(envelope.get("closed_at")),
        company=_company(envelope.get("company")),
        activities=_activities(envelope.get("activities")),
    )


def _activities(value: object) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise CommandError("activities: must be a list of objects")
    return value


def read_envelopes(
    stream: IO[bytes], *, skip: int = 0
) -> Iterator[tuple[int, Conversation | Rejected]]:
    """``(line number, conversation or rejection)`` for each non-blank line after ``skip``."""
    number = 0
    while True:
        raw = stream.readline(MAX_LINE + 1)
        if not raw:
            return
        number += 1
        too_long = len(raw) > MAX_LINE and not raw.endswith(b"\n")
        if too_long:
            while raw and not raw.endswith(b"\n"):  # drop the rest of the line
                raw = stream.readline(MAX_LINE + 1)
        if number <= skip:
            continue
        if too_long:
            yield number, Rejected(number, f"longer than {MAX_LINE} bytes")
            continue
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            yield number, Rejected(number, "not UTF-8 text")
            continue
        try:
            yield number, conversation_of(read_json_object(text, "line"))
        except CommandError as error:
            yield number, Rejected(number, error.message)
        except SignalsCRMError as error:
            yield number, Rejected(number, str(error).replace("\n", " "))
        except (TypeError, ValueError, RecursionError) as error:  # defensive: never a traceback
            yield number, Rejected(number, f"unusable values ({type(error).__name__})")


def count_lines(stream: IO[bytes]) -> int:
    """How many lines a seekable stream holds (its position is restored)."""
    start = stream.tell()
    count = 0
    last = b"\n"
    while chunk := stream.read(1 << 20):
        count += chunk.count(b"\n")
        last = chunk[-1:]
    stream.seek(start)
    return count + (0 if last == b"\n" else 1)
