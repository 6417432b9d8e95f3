"""Stored rows to ledger values, never raising: a damaged row is read as damaged, not fatal.

A store's row can be damaged by hand edits, a foreign writer, disk faults or a bug: a state
string no version knows, a time stored as text, a time out of any calendar's range, a number
where text belongs, a conversation that does not decode. One such row must never stop the
rest of the queue (``stats``, ``due``, ``claim``, ``get_due``, a run). So reading is total:

1. A **sync** row that cannot be read as stored reads as a **dead** :class:`DueSync` whose
   ``last_error`` starts with :data:`DAMAGED` and names every problem; an unreadable time
   reads as the epoch (1970-01-01 UTC), an undecodable conversation as a bare
   ``Conversation(id, status=OPEN)``; its lease is dropped. ``claim`` dead-letters such rows
   in the store (they stay listed among the dead letters with their reason) and fills its
   batch from the rest; ``due`` leaves them out.
2. A **command** row that cannot be read reads as **UNKNOWN** (nobody can say whether it was
   sent, so it is reconciled before anything is re-sent) with the damage as its ``reason``;
   an unreadable ``updated_at`` reads as the epoch. The next write of that key replaces it.
3. ``stats`` counts a row whose state is not known, or whose time is unreadable, under
   ``damaged`` instead of under a state.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeGuard

from signals_crm.core.model import Conversation, ConversationStatus
from signals_crm.exceptions import SignalsCRMError
from signals_crm.ledger.base import (
    CommandRecord,
    CommandState,
    DueState,
    DueSync,
    sound_text,
    trusted_command,
)

__all__ = [
    "DAMAGED",
    "EPOCH",
    "MAX_MICROS",
    "MIN_MICROS",
    "Damage",
    "RowReader",
    "micros_time",
    "read_command",
    "read_sync",
]

DAMAGED = "damaged ledger row: "
"""How the reason of every damaged row starts."""

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
MIN_MICROS = (datetime(1, 1, 2, tzinfo=UTC) - EPOCH) // _MICROSECOND
"""The earliest storable instant in microseconds since the epoch (a day inside the range, so
any time zone can still show it)."""
MAX_MICROS = (datetime(9999, 12, 30, tzinfo=UTC) - EPOCH) // _MICROSECOND
"""The latest storable instant in microseconds since the epoch."""


class Damage(Exception):  # noqa: N818  # an internal signal, never escapes this module's callers
    """One unreadable value of a row (internal: collected into the row's reason)."""


def micros_time(value: object) -> datetime:
    """A time stored as integer microseconds since the epoch; Damage for anything else."""
    if type(value) is not int:
        raise Damage(f"is {type(value).__name__} {value!r:.40}, not integer microseconds")
    if not MIN_MICROS <= value <= MAX_MICROS:
        raise Damage(f"{value} is out of range")
    return EPOCH + value * _MICROSECOND


class RowReader:
    """Reads one row's values, collecting every problem instead of raising."""

    def __init__(self, time: Callable[[object], datetime]) -> None:
        self._time = time
        self.problems: list[str] = []

    def _note(self, column: str, problem: str) -> None:
        self.problems.append(f"{column} {problem}")

    def time(self, column: str, value: object) -> datetime:
        """A required time; the epoch when unreadable."""
        try:
            return self._time(value)
        except Damage as damage:
            self._note(column, str(damage))
            return EPOCH

    def optional_time(self, column: str, value: object) -> datetime | None:
        """An optional time; ``None`` when unreadable."""
        if value is None:
            return None
        try:
            return self._time(value)
        except Damage as damage:
            self._note(column, str(damage))
            return None

    def text(self, column: str, value: object) -> str | None:
        """Optional text; ``None`` when it is something else."""
        if value is None or isinstance(value, str):
            return value
        self._note(column, f"is {type(value).__name__}, not text")
        return None

    def count(self, column: str, value: object, default: int = 0) -> int:
        """A non-negative integer; ``default`` when it is something else."""
        if type(value) is int and value >= 0:
            return value
        self._note(column, f"is {value!r:.40}, not a non-negative integer")
        return default

    @property
    def reason(self) -> str:
        """The damage, as a reason to store and show."""
        return DAMAGED + "; ".join(self.problems)


def read_sync(  # noqa: PLR0917  # one parameter per stored column, in order
    conversation_id: object,
    due_at: object,
    state: object,
    attempts: object,
    last_error: object,
    outcome: object,
    conversation: Callable[[], Conversation],
    lease_owner: object,
    lease_until: object,
    fence: object,
    *,
    time: Callable[[object], datetime],
) -> DueSync:
    """The :class:`DueSync` a stored row means, or its damaged reading (rule 1)."""
    row = RowReader(time)
    cid = conversation_id if isinstance(conversation_id, str) else str(conversation_id)
    when = row.time("due_at", due_at)
    if isinstance(state, str) and state in DueState._value2member_map_:
        known = DueState(state)
    else:
        row.problems.append(f"state {state!r:.40} is not a sync state")
        known = DueState.DEAD
    tries = row.count("attempts", attempts)
    error = row.text("last_error", last_error)
    done_as = row.text("outcome", outcome)
    owner = row.text("lease_owner", lease_owner)
    until = row.optional_time("lease_until", lease_until)
    token = row.count("fence", fence)
    try:
        stored = conversation()
    except SignalsCRMError as problem:
        row.problems.append(f"conversation does not decode ({problem})")
        stored = Conversation(cid, status=ConversationStatus.OPEN)  # nothing else is known
    if row.problems:
        return DueSync(
            cid, when, stored, tries, row.reason, DueState.DEAD, done_as, None, None, token
        )
    return DueSync(cid, when, stored, tries, error, known, done_as, owner, until, token)


_STATES = CommandState._value2member_map_


def _name(value: object) -> TypeGuard[str]:
    return type(value) is str and sound_text(value) and bool(value) and not value.isspace()


def _text(value: object) -> TypeGuard[str | None]:
    return value is None or (type(value) is str and sound_text(value))


def _count(value: object) -> TypeGuard[int]:
    return type(value) is int and value >= 0


def _fence(value: object) -> TypeGuard[int | None]:
    return value is None or (type(value) is int and value >= 0)


def _clean(value: object) -> TypeGuard[str | None]:
    return value is None or (type(value) is str and value.isascii())


def _sound_command(  # noqa: PLR0917  # one parameter per stored column, in order
    key: object,
    conversation_id: object,
    kind: object,
    state: object,
    crm_id: object,
    reason: object,
    attempts: object,
    updated_at: object,
    payload_digest: object,
    owner: object,
    fence: object,
    time: Callable[[object], datetime],
) -> CommandRecord | None:
    """The record of a row whose every column is what a record holds, built as it is (not
    checked again); ``None`` when any column is not (:func:`read_command` names why)."""
    known = _STATES.get(state) if type(state) is str else None
    if (
        isinstance(known, CommandState)
        and _name(key)
        and _name(conversation_id)
        and _name(kind)
        and _text(crm_id)
        and _clean(reason)
        and _count(attempts)
        and _text(payload_digest)
        and _text(owner)
        and _fence(fence)
        and (crm_id or known is not CommandState.CONFIRMED)
    ):
        try:
            when = time(updated_at)
        except Damage:
            return None
        return trusted_command(
            key, conversation_id, kind, known, when, crm_id, reason, attempts,
            payload_digest, owner, fence,
        )  # fmt: skip
    return None


def read_command(  # noqa: PLR0917  # one parameter per stored column, in order
    key: str,
    conversation_id: str,
    kind: str,
    state: object,
    crm_id: object,
    reason: object,
    attempts: object,
    updated_at: object,
    payload_digest: object,
    owner: object,
    fence: object,
    *,
    time: Callable[[object], datetime],
) -> CommandRecord:
    """The :class:`CommandRecord` a stored row means, or its damaged reading (rule 2)."""
    fast = _sound_command(
        key, conversation_id, kind, state, crm_id, reason, attempts, updated_at,
        payload_digest, owner, fence, time,
    )  # fmt: skip
    if fast is not None:
        return fast
    row = RowReader(time)
    if isinstance(state, str) and state in CommandState._value2member_map_:
        known = CommandState(state)
    else:
        row.problems.append(f"state {state!r:.40} is not a command state")
        known = CommandState.UNKNOWN
    when = row.time("updated_at", updated_at)
    crm = row.text("crm_id", crm_id)
    why = row.text("reason", reason)
    tries = row.count("attempts", attempts)
    digest = row.text("payload_digest", payload_digest)
    by = row.text("owner", owner)
    token = None if fence is None else row.count("fence", fence)
    if known is CommandState.CONFIRMED and not crm:
        row.problems.append("state confirmed has no crm_id")
    if row.problems:
        known, why = CommandState.UNKNOWN, row.reason
    return CommandRecord(
        key, conversation_id, kind, known, when, crm, why, tries, digest, by, token
    )
