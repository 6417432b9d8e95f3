"""The ledger Protocol: what the engine remembers across restarts to deliver exactly once.

A ledger stores three kinds of things, each keyed by a stable id, and nothing else (never a
token, a secret or a CRM response body):

1. **Due syncs**, one per conversation id: the conversation itself, when its automatic sync is
   due, how many attempts failed, the last error, an outcome, and a state::

       (absent) ──schedule──► pending ──complete──► done
                               │   ▲
                               │   └─ reschedule: later due time, attempts + 1, last error
                               └─ dead_letter ──► dead ──complete──► done

   a. ``schedule`` of a new id inserts a pending sync with zero attempts.
   b. ``schedule`` of an id that is still *pending* replaces the stored conversation and due
      time (a re-delivered or updated webhook); attempts, last error and any lease are kept.
      When the conversation differs from the one stored, its ``fence`` grows by one (rule i):
      a worker holding the sync, or about to claim what it read (rule m), can then neither
      record a send nor settle the sync with the conversation it read, and the newer one is
      planned by the next claim. The same conversation delivered again moves nothing. (Within
      one ``schedule_many`` the comparison is with the sync as stored before the call.) There
      is never more than one sync per conversation id.
   c. ``schedule`` of an id that is *done* or *dead* changes nothing: a re-delivered webhook
      never replays a finished sync (a manual sync is the way to push it again).
   d. ``due(now, limit)`` lists pending syncs whose ``due_at <= now``, ordered by due time then
      conversation id, at most ``limit`` of them, so the engine can stream.
   e. ``reschedule`` and ``dead_letter`` act on pending syncs only; on a done or dead sync they
      change nothing (another process may have finished it) and return what is stored.
   f. ``complete`` marks pending or dead syncs done with a short outcome ("created",
      "updated", "skipped", ...); ids it does not know are ignored.
   g. **Leases**, for several engines sharing one ledger: ``claim(now, limit, owner=...,
      lease=...)`` atomically takes what ``due`` would list, minus the syncs another owner
      holds a lease on that has not expired, and leases them to ``owner`` for ``lease``.
      Two owners never get the same sync while a lease runs; the lease of a crashed owner
      expires and the sync is claimed again (its SENT commands are then reconciled). An
      owner may claim its own leased syncs again. A sync whose visitor email is leased by
      another owner (through another conversation) is not claimed either, so two workers never
      create a person record for the same email at once. ``complete``, ``reschedule`` and
      ``dead_letter`` end the lease; ``release`` gives leases back unchanged; ``extend``
      renews them. ``due`` ignores leases (a single engine needs none).
   h. **The ledger's clock judges leases.** Lease expiry is measured by the ledger's own clock
      (the ``clock`` the ledger was built with, read inside the ledger; PostgreSQL: the
      database's ``now()``), never by a time a worker passes, so a worker whose clock is
      behind cannot keep a lease alive and one whose clock is ahead cannot steal one. The
      ``now`` given to ``claim`` is only the due cut-off (default: the ledger's clock).
      (The older call ``claim(now, limit, owner=..., until=...)`` still judges expiry by that
      ``now``; it is kept for callers not yet moved to ``lease=``.)
   i. **Fencing.** Every successful claim of a sync increases its ``fence`` by one (0: never
      claimed) and hands it out on the returned :class:`DueSync`; so does a change of its
      conversation (rule b). A command recorded with a
      ``fence``, and a ``complete`` / ``reschedule`` / ``dead_letter`` / ``release`` /
      ``extend`` given fences, is refused with
      :class:`~signals_crm.exceptions.LeaseLostError` (nothing of the call written) when
      the sync's fence has moved on: a worker that was paused, partitioned or skewed past its
      lease can no longer record a send, so it cannot make a duplicate. Writes without a
      fence (manual syncs, backfills) are not fenced.

   j. ``rearm(conversation, due_at)``: a *done* sync whose outcome starts with ``"skipped:"``
      (it wrote nothing, e.g. the lead score did not meet the criteria) becomes pending again
      with the new conversation and due time, attempts 0, no last error, no lease; it returns
      what is stored then. Any other sync is left alone and ``None`` returned. (A re-delivered
      webhook with a new score re-arms a skipped sync; a sync that wrote is final.)
   k. ``requeue_dead(ids, due_at)``: each *dead* sync among ``ids`` becomes pending at
      ``due_at`` with attempts 0 and no lease, and its conversation's FAILED commands go back
      to PLANNED, all in one transaction (an operator's "retry this dead letter"); returns the
      ids requeued, in the order given. Other ids are ignored.
   l. Ids, keys, owners and emails must be valid Unicode text (no lone surrogate): anything
      else is refused with a ConfigurationError naming the field. Free text (an error, a
      reason, an outcome) is stored with each lone surrogate replaced by U+FFFD.
   m. **Optimistic claims**, so one small run's claim costs no commit of its own:
      ``claimable(now, limit, owner=...)`` reads what ``claim`` would take (the same rules:
      pending, due, no other owner's live lease on the sync or on its email), leasing nothing
      (a read, no commit; damaged rows it meets are dead-lettered as ``claim`` does).
      ``claim_unchanged(seen, owner=..., lease=..., now=...)`` then leases exactly the syncs
      of ``seen`` (conversation id → the fence read) if none changed since:
      each still pending and due at ``now`` (default: the ledger's clock), its fence the one
      read, no other owner holding a live lease on it or on its visitor email. Each fence grows
      by one, as with ``claim``, and the syncs are returned in the order of ``seen``.
      Otherwise it raises :class:`~signals_crm.exceptions.ClaimRefusedError` (a
      ``LeaseLostError``) naming the syncs that changed, and writes nothing. Put first in
      ``perform(..., atomic=True)`` (rule 6), it fences the rest of that transaction: a
      refused claim leaves nothing of it written.

2. **Commands**, one per idempotency key (``"conv-1:person"``, ``"conv-1:task:transcript"``,
   ``"conv-1:campaign"``): the write the engine planned and what became of it. PLANNED: decided,
   not sent. SENT: about to be sent (recorded *before* the request). CONFIRMED: the CRM has it,
   with its id. FAILED: the CRM refused it for good, with its reason. UNKNOWN: the request may or
   may not have landed (timeout, dropped connection, crash after SENT). Allowed changes::

       was / becomes  PLANNED  SENT  CONFIRMED  FAILED  UNKNOWN
       (new key)      yes      yes   yes        yes     yes
       PLANNED        yes      yes   yes        yes     yes
       SENT           yes (1)  no    yes        yes     yes
       UNKNOWN        yes (2)  no    yes        yes     yes
       CONFIRMED      no       no    same id    no      no
       FAILED         (3)      no    no         yes     no

       (1) the request certainly never reached the CRM (connect error, 429)
       (2) reconciled: the CRM was read and the write is not there
       (3) only through retry_failed

   a. A key seen for the first time may start in any state.
   b. CONFIRMED is final: it may only be recorded again with the same CRM id (a replayed
      batch). CONFIRMED needs a CRM id.
   c. SENT may not be recorded again: a second "send" of a command whose first outcome is not
      known is exactly the duplicate the ledger exists to prevent. This makes the
      PLANNED ► SENT step a compare-and-set: of two processes racing to send one key, one wins.
   d. UNKNOWN ► SENT is refused: an unknown command must be *reconciled* first (read the CRM;
      record CONFIRMED if the write landed, PLANNED if it did not) and only then re-sent.
   e. FAILED is final except through ``retry_failed(keys, now)``, which puts FAILED commands
      back to PLANNED (attempts kept, reason cleared) and ignores other keys.
   f. A key never changes its conversation id or kind.
   g. ``record`` applies a batch in order, atomically: if any command breaks a rule,
      :class:`~signals_crm.exceptions.InvalidTransitionError` names every offending key and
      nothing of the batch is written (a stale ``fence``: its subclass ``LeaseLostError``).
   h. ``creates_in_flight(emails)``: the ``create_person`` commands in SENT or UNKNOWN whose
      conversation has a due sync with one of ``emails`` as its visitor email, as
      :class:`CreateInFlight` (email, conversation id, ``updated_at``), SENT first, each state
      oldest first: the engine holds back another conversation of such an email until the
      create is settled (one statement, where reading every unsettled command and each one's
      sync cost a read a create).

3. **Links**: a normalised email (:func:`~signals_crm.core.model.normalize_email`) to the CRM
   person it was synced to (id and kind). The latest link for an email wins.

4. **Run reports**: ``record_run(summary)`` keeps a short JSON object describing one engine run
   (counts per outcome, adapter calls, whether the API budget stopped it, ...), stamped with
   the ledger's clock and a growing id; ``recent_runs(limit)`` returns the newest first. A
   ledger keeps the latest ``keep_runs`` (default 1,000) per integration and drops older ones.
   A summary is at most :data:`MAX_SUMMARY_BYTES` of JSON and never holds a secret.

5. **Tenancy**: every row belongs to an integration (a tenant: one customer's CRM connection).
   A ledger object is bound to one (``integration``, default ``"default"``) and no operation
   of it reads or changes another's rows: two integrations may use the same conversation ids,
   keys and emails without ever meeting. ``for_integration(other)`` gives a ledger bound to
   another integration on the same store (and connection). Listing which integrations have
   due work (``integrations_due``) is the one fleet-level read; it returns ids and times only.

6. **Batches of operations**: ``commands_of(ids)`` reads the commands of many conversations
   at once (one query per batch, not one per conversation), and ``perform(operations)`` runs
   several :class:`Operation` values in one transaction, one commit for all: each operation's
   result or the error it raised is returned in order, and an operation that raised is undone
   alone (the others still commit). The engine writes a batch's outcomes, links, releases and
   completions this way. ``perform(operations, atomic=True)`` is all-or-nothing instead: the
   first operation that raises undoes every operation of the call (those before it too), the
   ones after it are not run, and its error is raised; otherwise each result is returned
   (with no error). An operation may itself be a ``perform``: it joins the transaction (a
   non-atomic one inside an atomic one still undoes its failing operations alone).

Rules every implementation follows:

- The ledger reads its clock only to judge leases (rule 1h); due times, ``now`` and
  ``updated_at`` come in as arguments, and must be timezone-aware. Times are returned in UTC
  (the same instant).
- Every write is atomic, and a write that returned is durable (for the in-memory ledger:
  until the process ends).
- Only :class:`~signals_crm.exceptions.SignalsCRMError` subclasses escape: storage failures
  and use after ``close()`` raise :class:`~signals_crm.exceptions.LedgerError`; invalid
  arguments (naive datetimes, negative limits) raise
  :class:`~signals_crm.exceptions.ConfigurationError`.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

import attrs

from signals_crm.core.model import Conversation, PersonKind, normalize_email
from signals_crm.exceptions import (
    ClaimRefusedError,
    ConfigurationError,
    InvalidTransitionError,
    LeaseLostError,
    Problem,
)

__all__ = [
    "DEFAULT_INTEGRATION",
    "MAX_SUMMARY_BYTES",
    "AsyncLedger",
    "ClaimWindow",
    "Clock",
    "CommandRecord",
    "CommandState",
    "CreateInFlight",
    "DueState",
    "DueSync",
    "FleetLedger",
    "Ledger",
    "LedgerStats",
    "Operation",
    "Performed",
    "PersonLink",
    "RunRecord",
    "aperform_all",
    "aperform_each",
    "apply_transitions",
    "check_fence",
    "check_fences",
    "check_ids",
    "check_integration",
    "check_keep",
    "check_lease",
    "check_limit",
    "check_seen",
    "check_text",
    "claim_refused",
    "claim_window",
    "clean_text",
    "fences_of",
    "lease_lost",
    "perform_all",
    "perform_each",
    "retried",
    "sound_text",
    "summary_json",
    "to_utc",
    "trusted_command",
    "wall_clock",
]

Clock = Callable[[], datetime]
"""A ledger's clock: returns the current time, timezone-aware."""


@attrs.frozen
class Operation:
    """One ledger operation as a value: ``method`` with ``args`` and ``kwargs`` (rule 6).

    The engine's flows yield these and their driver performs them, one at a time or several
    in one transaction (:meth:`Ledger.perform`).
    """

    method: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = attrs.field(factory=dict, hash=False)

    def __attrs_post_init__(self) -> None:
        if self.method not in _OPERATIONS:
            raise _fail("method", f"{self.method!r} is not a ledger operation")

    def on(self, ledger: object) -> Any:
        """Perform this operation on ``ledger`` (awaitable when the ledger is async)."""
        return getattr(ledger, self.method)(*self.args, **self.kwargs)


Performed = tuple[Any, Exception | None]
"""What one operation of :meth:`Ledger.perform` gave: its result, or the error it raised."""


def perform_all(ledger: object, operations: Sequence[Operation]) -> list[Performed]:
    """Perform ``operations`` on ``ledger`` in order, stopping at the first error, which is
    raised (rule 6, ``atomic=True``): the caller undoes the whole transaction then."""
    return [(operation.on(ledger), None) for operation in operations]


async def aperform_all(ledger: object, operations: Sequence[Operation]) -> list[Performed]:
    """:func:`perform_all` on an async ledger: each operation awaited in order."""
    return [(await operation.on(ledger), None) for operation in operations]


def perform_each(ledger: object, operations: Sequence[Operation]) -> list[Performed]:
    """Perform ``operations`` on ``ledger`` in order, each one's result or error (rule 6).

    The caller makes it one transaction; an implementation undoes a failed operation alone.
    """
    results: list[Performed] = []
    for operation in operations:
        try:
            results.append((operation.on(ledger), None))
        except Exception as error:  # noqa: BLE001  # returned, in order, to the caller
            results.append((None, error))
    return results


async def aperform_each(ledger: object, operations: Sequence[Operation]) -> list[Performed]:
    """:func:`perform_each` on an async ledger: each operation awaited in order."""
    results: list[Performed] = []
    for operation in operations:
        try:
            results.append((await operation.on(ledger), None))
        except Exception as error:  # noqa: BLE001  # returned, in order, to the caller
            results.append((None, error))
    return results


def wall_clock() -> datetime:
    """The machine's wall clock in UTC: the default clock of the in-process ledgers."""
    return datetime.now(UTC)


class CommandState(enum.StrEnum):
    """Where one command (a write to the CRM) stands."""

    PLANNED = "planned"
    SENT = "sent"
    CONFIRMED = "confirmed"
    FAILED = "failed"
    UNKNOWN = "unknown"


class DueState(enum.StrEnum):
    """Where one conversation's automatic sync stands. Compares equal to its string value."""

    PENDING = "pending"
    DONE = "done"
    DEAD = "dead"


def _fail(path: str, message: str) -> ConfigurationError:
    return ConfigurationError([Problem(path, message)])


def check_text(name: str, value: str) -> str:
    """``value`` if it is text a store can hold (UTF-8, so no lone surrogate), else a
    ConfigurationError naming ``name``. For ids and keys, which must never change."""
    checked: object = value
    if not isinstance(checked, str):
        raise _fail(name, "must be a string")
    if value.isascii():
        return value  # (ASCII is UTF-8 as it is)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise _fail(
            name, f"must be valid Unicode text (a lone surrogate at position {error.start})"
        ) from error
    return value


def check_ids(name: str, values: Iterable[str]) -> list[str]:
    """Unique ids in order, each checked by :func:`check_text`."""
    return [check_text(name, v) for v in dict.fromkeys(values)]


def clean_text(value: str) -> str:
    """Free text (an error message, an outcome) made storable: lone surrogates become U+FFFD."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", value)
    except AttributeError:  # not text at all: show it, do not fail on it
        return str(value)
    return value


_SURROGATE = re.compile("[\ud800-\udfff]")


def _clean_optional(value: str | None) -> str | None:
    return None if value is None else clean_text(value)


def to_utc(value: datetime, name: str) -> datetime:
    """``value`` as a UTC datetime; a naive datetime is refused with a ConfigurationError."""
    checked: object = value
    if not isinstance(checked, datetime):
        raise _fail(name, "must be a datetime")
    if value.utcoffset() is None:
        raise _fail(name, "must be a timezone-aware datetime")
    return value.astimezone(UTC)


def check_lease(now: datetime, owner: str, until: datetime) -> tuple[datetime, datetime]:
    """``now`` and ``until`` in UTC, checked: a non-empty owner and a lease that ends later."""
    now, until = to_utc(now, "now"), to_utc(until, "until")
    problems: list[Problem] = []
    checked: object = owner
    if not isinstance(checked, str) or not checked:
        problems.append(Problem("owner", "must be a non-empty string"))
    if until <= now:
        problems.append(Problem("until", "a lease must end after now"))
    if problems:
        raise ConfigurationError(problems)
    return now, until


def check_limit(limit: int) -> int:
    """``limit`` if it is a non-negative int, else a ConfigurationError."""
    checked: object = limit
    if isinstance(checked, bool) or not isinstance(checked, int) or checked < 0:
        raise _fail("limit", "must be a non-negative integer")
    return limit


@attrs.frozen
class ClaimWindow:
    """What one ``claim`` call means: the due cut-off, the instant leases are judged at, and
    the end of the new leases (all UTC)."""

    cutoff: datetime
    judged_at: datetime
    until: datetime


def claim_window(  # noqa: PLR0917  # mirrors claim()'s own arguments, in order
    clock: Clock,
    now: datetime | None,
    limit: int,
    owner: str,
    lease: timedelta | None,
    until: datetime | None,
) -> ClaimWindow:
    """Check a claim's arguments and resolve them against the ledger's ``clock`` (rule 1h).

    ``lease`` (the current shape): leases are judged at ``clock()`` and end ``lease`` later;
    ``now`` is only the due cut-off. ``until`` (the older shape, needs ``now``): judged at
    ``now``, ending at ``until``. Exactly one of ``lease`` and ``until`` is given.
    """
    check_limit(limit)
    named: object = owner
    if isinstance(named, str) and named:
        check_text("owner", named)
    if (lease is None) == (until is None):
        raise _fail("lease", "give the lease duration (lease=...), or the older now and until")
    if until is not None:
        if now is None:
            raise _fail("now", "claim(..., until=...) needs now; or pass lease=... instead")
        start, end = check_lease(now, owner, until)
        return ClaimWindow(start, start, end)
    checked: object = lease
    if not isinstance(checked, timedelta) or checked <= timedelta(0):
        raise _fail("lease", "must be a positive timedelta")
    at = to_utc(clock(), "clock()")
    cutoff = at if now is None else to_utc(now, "now")
    check_lease(at, owner, at + checked)
    return ClaimWindow(cutoff, at, at + checked)


def check_seen(seen: Mapping[str, int]) -> dict[str, int]:
    """``claim_unchanged``'s ``seen`` (conversation id → the fence read), checked."""
    checked: object = seen
    if not isinstance(checked, Mapping):
        raise _fail("seen", "must map conversation ids to the fences read")
    return {
        check_text("seen", cid): check_fence(f"seen[{cid!r}]", fence) for cid, fence in seen.items()
    }


def claim_refused(conversation_ids: Iterable[str]) -> ClaimRefusedError:
    """The error of an optimistic claim whose syncs changed since they were read (rule 1m)."""
    ids = list(dict.fromkeys(conversation_ids))
    shown = ", ".join(repr(i) for i in ids[:5]) + (", ..." if len(ids) > 5 else "")
    return ClaimRefusedError(
        f"claim refused: {len(ids)} sync{'s' if len(ids) != 1 else ''} ({shown}) changed since "
        "they were read (claimed by another worker, or no longer pending and due); nothing "
        "written",
        conversation_ids=ids,
    )


def lease_lost(conversation_ids: Iterable[str], keys: Iterable[str] = ()) -> LeaseLostError:
    """The error for writes whose fencing token is no longer current."""
    ids = list(dict.fromkeys(conversation_ids))
    shown = ", ".join(repr(i) for i in ids[:5]) + (", ..." if len(ids) > 5 else "")
    return LeaseLostError(
        f"lease lost on {len(ids)} sync{'s' if len(ids) != 1 else ''} ({shown}): claimed by "
        "another worker since; nothing written",
        conversation_ids=ids,
        keys=list(dict.fromkeys(keys)),
    )


def check_fences(
    wanted: Mapping[str, int],
    stored: Mapping[str, int],
    keys: Mapping[str, list[str]] | None = None,
) -> None:
    """Raise LeaseLostError unless every conversation in ``wanted`` still has that fence.

    ``stored`` maps conversation ids to their current fence (a missing id was never claimed).
    ``keys`` optionally maps a conversation id to the command keys the write carried.
    """
    lost = [cid for cid, fence in wanted.items() if stored.get(cid) != fence]
    if lost:
        refused = [k for cid in lost for k in (keys or {}).get(cid, [])]
        raise lease_lost(lost, refused)


def check_fence(name: str, value: object) -> int:
    """``value`` if it is a fencing token (a non-negative int), else a ConfigurationError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(name, "a fencing token must be a non-negative integer")
    return value


def fences_of(commands: Sequence[CommandRecord]) -> tuple[dict[str, int], dict[str, list[str]]]:
    """The fence each fenced command's conversation must have, and the keys per conversation.

    Two commands of one conversation with different fences are refused as a lost lease (at
    most one of them can be current)."""
    wanted: dict[str, int] = {}
    keys: dict[str, list[str]] = {}
    clash: list[str] = []
    for command in commands:
        if not isinstance(command, CommandRecord):
            raise _fail("commands", "must be CommandRecord values")
        if command.fence is None:
            continue
        cid = command.conversation_id
        if wanted.setdefault(cid, command.fence) != command.fence:
            clash.append(cid)
        keys.setdefault(cid, []).append(command.key)
    if clash:
        raise lease_lost(clash, [k for cid in clash for k in keys[cid]])
    return wanted, keys


@attrs.frozen(weakref_slot=False)  # no __weakref__ slot: _build.builder's quick builder
class CommandRecord:
    """One command and its state, keyed by its deterministic idempotency key.

    ``kind`` is ``"create_person"``, ``"update_person"``, ``"create_task"`` or
    ``"add_to_campaign"``. ``crm_id`` is the record the CRM created or matched (required when
    CONFIRMED). ``reason`` is the CRM's own error message (FAILED, UNKNOWN), never a secret.
    ``owner`` names the worker that recorded it (a SENT command of another, live worker is in
    flight and must not be reconciled). ``updated_at`` is supplied by the caller;
    ``payload_digest`` optionally fingerprints the
    request that was planned.
    """

    key: str
    conversation_id: str
    kind: str
    state: CommandState
    updated_at: datetime
    crm_id: str | None = None
    reason: str | None = attrs.field(default=None, converter=_clean_optional)
    attempts: int = 0
    payload_digest: str | None = None
    owner: str | None = None
    fence: int | None = None

    def __attrs_post_init__(self) -> None:
        problems: list[Problem] = []
        fence: object = self.fence
        if fence is not None and (
            isinstance(fence, bool) or not isinstance(fence, int) or fence < 0
        ):
            problems.append(Problem("fence", "a fencing token must be a non-negative integer"))
        for name in ("key", "conversation_id", "kind"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                problems.append(Problem(name, "must be a non-empty string"))
        for name in ("key", "conversation_id", "kind", "crm_id", "payload_digest", "owner"):
            value = getattr(self, name)
            if isinstance(value, str):
                try:
                    check_text(name, value)
                except ConfigurationError as error:
                    problems.extend(error.problems)
            elif value is not None and name in ("crm_id", "payload_digest", "owner"):
                problems.append(Problem(name, "must be a string"))
        state: object = self.state
        updated_at: object = self.updated_at
        attempts: object = self.attempts
        if not isinstance(state, CommandState):
            problems.append(Problem("state", "must be a CommandState"))
        if not isinstance(updated_at, datetime) or updated_at.utcoffset() is None:
            problems.append(Problem("updated_at", "must be a timezone-aware datetime"))
        if isinstance(attempts, bool) or not isinstance(attempts, int):
            problems.append(Problem("attempts", "must be an integer"))
        elif attempts < 0:
            problems.append(Problem("attempts", "must not be negative"))
        if self.state is CommandState.CONFIRMED and not self.crm_id:
            problems.append(Problem("crm_id", "a confirmed command needs the CRM id"))
        if problems:
            raise ConfigurationError(problems)


_new_record = object.__new__
_set_field = object.__setattr__  # a frozen class: fields are set once, here, as attrs would


def trusted_command(  # noqa: PLR0917  # one parameter per field, in order
    key: str,
    conversation_id: str,
    kind: str,
    state: CommandState,
    updated_at: datetime,
    crm_id: str | None = None,
    reason: str | None = None,
    attempts: int = 0,
    payload_digest: str | None = None,
    owner: str | None = None,
    fence: int | None = None,
) -> CommandRecord:
    """A :class:`CommandRecord` of values its caller has already checked (built by the engine
    from checked values, or read from a stored row whose columns were checked): the same
    value as ``CommandRecord(...)``, without validating it again. ``reason`` must already be
    clean (``clean_text``). Values a user builds go through the validating constructor."""
    record = _new_record(CommandRecord)
    _set_field(record, "key", key)
    _set_field(record, "conversation_id", conversation_id)
    _set_field(record, "kind", kind)
    _set_field(record, "state", state)
    _set_field(record, "updated_at", updated_at)
    _set_field(record, "crm_id", crm_id)
    _set_field(record, "reason", reason)
    _set_field(record, "attempts", attempts)
    _set_field(record, "payload_digest", payload_digest)
    _set_field(record, "owner", owner)
    _set_field(record, "fence", fence)
    return record


def sound_text(value: str) -> bool:
    """Whether ``value`` is text a store can hold as it is (ASCII, or UTF-8 encodable)."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@attrs.frozen
class DueSync:
    """A conversation's automatic sync: when it is due, its attempts, and where it stands.

    ``fence`` is the fencing token of its latest claim (0: never claimed); writes made under a
    claim carry it (rule 1i of :mod:`signals_crm.ledger.base`).
    """

    conversation_id: str
    due_at: datetime
    conversation: Conversation
    attempts: int = 0
    last_error: str | None = None
    state: DueState = DueState.PENDING
    outcome: str | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None
    fence: int = 0

    @property
    def email(self) -> str | None:
        """The visitor's normalised email, which leases also cover."""
        raw = self.conversation.email
        return normalize_email(raw) if raw and raw.strip() else None

    def leased_to_other(self, owner: str, now: datetime) -> bool:
        """Whether another owner holds a lease on this sync that has not expired at ``now``."""
        return (
            self.lease_owner is not None
            and self.lease_owner != owner
            and self.lease_until is not None
            and self.lease_until > now
        )


@attrs.frozen
class CreateInFlight:
    """An unsettled person create (SENT or UNKNOWN) of a due sync, by that sync's visitor
    email (normalised): another conversation of that email waits for it (rule 2h)."""

    email: str
    conversation_id: str
    updated_at: datetime


@attrs.frozen(weakref_slot=False)  # no __weakref__ slot: _build.builder's quick builder
class PersonLink:
    """A visitor's email (normalised) linked to the CRM person record it was synced to."""

    email: str = attrs.field(converter=normalize_email)
    crm_id: str
    kind: PersonKind

    def __attrs_post_init__(self) -> None:
        if not self.email:
            raise _fail("email", "a link needs a non-empty email")
        check_text("email", self.email)
        if not self.crm_id:
            raise _fail("crm_id", "a link needs the CRM id")
        check_text("crm_id", self.crm_id)
        if not isinstance(self.kind, PersonKind):
            raise _fail("kind", "must be a PersonKind")


@attrs.frozen
class LedgerStats:
    """Counts of what a ledger holds: syncs per state, commands per state, and links.

    ``damaged`` counts stored rows that cannot be read as stored (an unknown state, an
    unreadable time); they are counted there instead of under a state.
    """

    syncs: Mapping[DueState, int]
    commands: Mapping[CommandState, int]
    links: int
    damaged: int = 0


DEFAULT_INTEGRATION = "default"
"""The integration (tenant) a ledger is bound to unless told otherwise; rows a ledger wrote
before it knew about tenants belong to it."""

MAX_SUMMARY_BYTES = 16_384
"""The largest run summary (as compact JSON) a ledger stores."""


def check_integration(value: str) -> str:
    """``value`` if it can name an integration (1-200 characters of text, no control
    characters), else a ConfigurationError naming ``integration``."""
    checked: object = value
    if not isinstance(checked, str) or not value.strip():
        raise _fail("integration", "must be a non-empty string")
    check_text("integration", value)
    if len(value) > 200 or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise _fail("integration", "must be at most 200 characters, without control characters")
    return value


@attrs.frozen
class RunRecord:
    """One engine run as the ledger keeps it (``record_run`` / ``recent_runs``).

    ``id`` grows with every run recorded; ``recorded_at`` is the ledger's clock when it was
    recorded; ``summary`` is the JSON object the engine gave (counts, calls, errors), which must
    never hold a secret.
    """

    id: int
    integration: str
    recorded_at: datetime
    summary: Mapping[str, Any]


def summary_json(summary: Mapping[str, Any]) -> str:
    """``summary`` as compact JSON, or a ConfigurationError: it must be an object of JSON
    values (string keys, finite numbers) of at most :data:`MAX_SUMMARY_BYTES`."""
    checked: object = summary
    if not isinstance(checked, Mapping):
        raise _fail("summary", "must be a mapping of JSON values")
    try:
        text = json.dumps(dict(summary), separators=(",", ":"), allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as error:
        raise _fail("summary", f"must hold JSON values only ({error})") from error
    encoded = clean_text(text).encode("utf-8")
    if len(encoded) > MAX_SUMMARY_BYTES:
        raise _fail("summary", f"is {len(encoded)} bytes as JSON; at most {MAX_SUMMARY_BYTES}")
    return encoded.decode("utf-8")


def check_keep(keep_runs: int) -> int:
    """``keep_runs`` (how many run reports a ledger keeps per integration), checked."""
    checked: object = keep_runs
    if isinstance(checked, bool) or not isinstance(checked, int) or checked < 1:
        raise _fail("keep_runs", "must be a positive integer")
    return keep_runs


# ------------------------------------------------------------------------------------------------
# Command transitions (shared by every implementation)

_S = CommandState
_NEXT: Mapping[CommandState, frozenset[CommandState]] = {
    _S.PLANNED: frozenset(_S),
    _S.SENT: frozenset({_S.PLANNED, _S.CONFIRMED, _S.FAILED, _S.UNKNOWN}),
    _S.UNKNOWN: frozenset({_S.PLANNED, _S.CONFIRMED, _S.FAILED, _S.UNKNOWN}),
    _S.CONFIRMED: frozenset({_S.CONFIRMED}),
    _S.FAILED: frozenset({_S.FAILED}),
}


def _transition_problem(old: CommandRecord | None, new: CommandRecord) -> str | None:
    if old is None:
        return None
    if (old.conversation_id, old.kind) != (new.conversation_id, new.kind):
        return (
            f"{new.key}: belongs to {old.conversation_id!r} ({old.kind}), "
            f"not {new.conversation_id!r} ({new.kind})"
        )
    if new.state not in _NEXT[old.state]:
        hint = ""
        if old.state is _S.SENT and new.state is _S.SENT:
            hint = " (its outcome is not known: record UNKNOWN and reconcile)"
        elif old.state is _S.UNKNOWN and new.state is _S.SENT:
            hint = " (reconcile first: record CONFIRMED or PLANNED)"
        elif old.state is _S.FAILED:
            hint = " (use retry_failed)"
        return f"{new.key}: {old.state.value} -> {new.state.value} is not allowed{hint}"
    if old.state is _S.CONFIRMED and old.crm_id != new.crm_id:
        return f"{new.key}: already confirmed as {old.crm_id!r}, not {new.crm_id!r}"
    return None


def apply_transitions(
    stored: Mapping[str, CommandRecord], commands: Sequence[CommandRecord]
) -> dict[str, CommandRecord]:
    """The records to write for ``commands``, applied in order over ``stored``.

    ``stored`` holds the current records of (at least) the keys in ``commands``. Raises
    :class:`InvalidTransitionError` naming every offending key when any rule is broken. The
    returned records have ``updated_at`` in UTC.
    """
    current: dict[str, CommandRecord] = {}
    problems: list[str] = []
    bad_keys: list[str] = []
    for command in commands:
        if not isinstance(command, CommandRecord):
            raise _fail("commands", "must be CommandRecord values")
        old = current.get(command.key, stored.get(command.key))
        problem = _transition_problem(old, command)
        if problem is not None:
            problems.append(problem)
            if command.key not in bad_keys:
                bad_keys.append(command.key)
            continue
        if command.updated_at.tzinfo is UTC:
            current[command.key] = command  # already in UTC: the same value
        else:
            current[command.key] = attrs.evolve(
                command, updated_at=to_utc(command.updated_at, "updated_at")
            )
    if problems:
        count = len(problems)
        head = f"{count} invalid command transition{'s' if count != 1 else ''}; nothing written"
        raise InvalidTransitionError("\n  ".join([head, *problems]), keys=bad_keys)
    return current


def retried(record: CommandRecord, now: datetime) -> CommandRecord:
    """A FAILED record put back to PLANNED by ``retry_failed`` (attempts kept)."""
    return attrs.evolve(
        record, state=CommandState.PLANNED, reason=None, updated_at=to_utc(now, "now")
    )


# ------------------------------------------------------------------------------------------------
# The Protocol


@runtime_checkable
class Ledger(Protocol):
    """Durable storage of due syncs, command states and visitor links (rules: module doc)."""

    @property
    def integration(self) -> str:
        """The integration (tenant) this ledger is bound to: it sees that one's rows only."""
        ...

    # Due syncs -------------------------------------------------------------------------------

    def schedule(self, conversation: Conversation, due_at: datetime) -> DueSync:
        """Record that ``conversation`` is due at ``due_at``; returns what is now stored."""
        ...

    def schedule_many(self, entries: Iterable[tuple[Conversation, datetime]]) -> list[DueSync]:
        """``schedule`` for many conversations in one transaction; one result per entry."""
        ...

    def rearm(self, conversation: Conversation, due_at: datetime) -> DueSync | None:
        """Make a done sync whose outcome starts with ``"skipped:"`` pending again (rule 1j)."""
        ...

    def requeue_dead(self, conversation_ids: Iterable[str], due_at: datetime) -> list[str]:
        """Dead syncs back to pending at ``due_at`` with their FAILED commands (rule 1k)."""
        ...

    def due(self, now: datetime, limit: int) -> list[DueSync]:
        """Pending syncs due at ``now``, by due time then id, at most ``limit``."""
        ...

    def get_due(self, conversation_id: str) -> DueSync | None:
        """The stored sync of ``conversation_id``, in any state, or ``None``."""
        ...

    def syncs_in_state(self, state: DueState, limit: int) -> list[DueSync]:
        """Syncs in ``state`` (for example the dead letters), by due time then id."""
        ...

    def claim(
        self,
        now: datetime | None = None,
        limit: int = 100,
        *,
        owner: str,
        lease: timedelta | None = None,
        until: datetime | None = None,
    ) -> list[DueSync]:
        """Lease to ``owner`` the due syncs no other owner holds (at most ``limit``; rule 1g-i).

        Each returned sync carries its new ``fence``. Give ``lease`` (judged by the ledger's
        clock); ``until`` is the older shape, judged by ``now``.
        """
        ...

    def claimable(
        self, now: datetime | None = None, limit: int = 100, *, owner: str
    ) -> list[DueSync]:
        """What ``claim(now, limit, owner=owner, ...)`` would take, as stored, leasing nothing
        (a read; rule 1m)."""
        ...

    def claim_unchanged(
        self,
        seen: Mapping[str, int],
        *,
        owner: str,
        lease: timedelta,
        now: datetime | None = None,
    ) -> list[DueSync]:
        """Lease to ``owner`` exactly the syncs of ``seen`` (id → the fence read) if none
        changed since the read, else raise ``ClaimRefusedError`` writing nothing (rule 1m)."""
        ...

    def extend(
        self,
        conversation_ids: Iterable[str],
        *,
        owner: str,
        lease: timedelta,
        fences: Mapping[str, int] | None = None,
    ) -> list[str]:
        """Renew ``owner``'s pending leases for ``lease`` from the ledger's clock; ids renewed."""
        ...

    def release(
        self,
        conversation_ids: Iterable[str],
        owner: str,
        *,
        fences: Mapping[str, int] | None = None,
    ) -> int:
        """End ``owner``'s leases on these syncs without other change; returns how many."""
        ...

    def complete(
        self,
        conversation_ids: Iterable[str],
        outcome: str,
        *,
        fences: Mapping[str, int] | None = None,
    ) -> int:
        """Mark pending or dead syncs done with ``outcome``; returns how many changed."""
        ...

    def reschedule(
        self, conversation_id: str, due_at: datetime, error: str, *, fence: int | None = None
    ) -> DueSync | None:
        """Move a pending sync to ``due_at`` after a failed attempt (attempts + 1)."""
        ...

    def dead_letter(
        self, conversation_id: str, reason: str, *, fence: int | None = None
    ) -> DueSync | None:
        """Give up on a pending sync with the CRM's ``reason`` (attempts + 1)."""
        ...

    # Commands --------------------------------------------------------------------------------

    def get_command(self, key: str) -> CommandRecord | None:
        """The command stored under ``key``, or ``None``."""
        ...

    def get_commands(self, keys: Iterable[str]) -> dict[str, CommandRecord]:
        """The stored commands among ``keys`` (unknown keys are absent from the result)."""
        ...

    def commands_for(self, conversation_id: str) -> list[CommandRecord]:
        """Every command of one conversation, by key."""
        ...

    def commands_of(self, conversation_ids: Iterable[str]) -> dict[str, list[CommandRecord]]:
        """``commands_for`` of many conversations in one read: id → its commands, by key
        (every asked id is a key of the result, with no commands when it has none)."""
        ...

    def perform(self, operations: Sequence[Operation], *, atomic: bool = False) -> list[Performed]:
        """Perform ``operations`` in one transaction (rule 6): each one's result or error;
        ``atomic``: all or nothing, the first error raised."""
        ...

    def record(self, commands: Sequence[CommandRecord]) -> None:
        """Insert or update ``commands`` in one transaction, enforcing the transition rules."""
        ...

    def retry_failed(self, keys: Iterable[str], now: datetime) -> list[str]:
        """Put FAILED commands among ``keys`` back to PLANNED; returns the keys reset."""
        ...

    def commands_in_state(self, state: CommandState, limit: int) -> list[CommandRecord]:
        """Commands in ``state``, oldest ``updated_at`` first (then by key), at most ``limit``."""
        ...

    def creates_in_flight(self, emails: Iterable[str]) -> list[CreateInFlight]:
        """The unsettled person creates (rule 2h) of the due syncs whose visitor email is among
        ``emails`` (normalised): SENT ones first, then UNKNOWN, each oldest ``updated_at``
        first (then by key)."""
        ...

    # Links -----------------------------------------------------------------------------------

    def link(self, email: str, crm_id: str, kind: PersonKind) -> None:
        """Remember that ``email`` was synced to the CRM person ``crm_id``."""
        ...

    def link_many(self, links: Iterable[PersonLink]) -> None:
        """``link`` for many emails in one transaction (later entries win)."""
        ...

    def links_for(self, emails: Iterable[str]) -> dict[str, PersonLink]:
        """The links of ``emails``, keyed by normalised email (unknown emails absent)."""
        ...

    # Run reports -----------------------------------------------------------------------------

    def record_run(self, summary: Mapping[str, Any]) -> RunRecord:
        """Keep one run's summary (a JSON object), stamped by the ledger's clock (rule 4)."""
        ...

    def recent_runs(self, limit: int) -> list[RunRecord]:
        """The latest ``limit`` run reports, newest first."""
        ...

    # Housekeeping ----------------------------------------------------------------------------

    def stats(self) -> LedgerStats:
        """Counts per sync state and command state (every state present), and links."""
        ...

    def close(self) -> None:
        """Release the store; later calls raise LedgerError. Closing twice is harmless."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


@runtime_checkable
class FleetLedger(Ledger, Protocol):
    """A :class:`Ledger` whose store serves many integrations, as a worker fleet needs."""

    def for_integration(self, integration: str) -> FleetLedger:
        """A ledger bound to ``integration`` on the same store (and connection)."""
        ...

    def integrations_due(
        self, now: datetime | None = None, limit: int = 1000
    ) -> list[tuple[str, datetime]]:
        """Integrations with pending syncs due at ``now`` (default: the ledger's clock), each
        with its oldest due time, oldest first (then by id), at most ``limit``."""
        ...


@runtime_checkable
class AsyncLedger(Protocol):
    """:class:`Ledger` with every method a coroutine, for ledgers awaited over a network.

    The same rules (module doc) and the same names; ``close`` is awaited, and the object is an
    async context manager. :class:`ThreadedLedger` makes any blocking :class:`Ledger` one.
    """

    @property
    def integration(self) -> str:
        """The integration (tenant) this ledger is bound to."""
        ...

    # Due syncs -------------------------------------------------------------------------------

    async def schedule(self, conversation: Conversation, due_at: datetime) -> DueSync:
        """Awaitable :meth:`Ledger.schedule`."""
        ...

    async def schedule_many(
        self, entries: Iterable[tuple[Conversation, datetime]]
    ) -> list[DueSync]:
        """Awaitable :meth:`Ledger.schedule_many`."""
        ...

    async def rearm(self, conversation: Conversation, due_at: datetime) -> DueSync | None:
        """Awaitable :meth:`Ledger.rearm`."""
        ...

    async def requeue_dead(self, conversation_ids: Iterable[str], due_at: datetime) -> list[str]:
        """Awaitable :meth:`Ledger.requeue_dead`."""
        ...

    async def due(self, now: datetime, limit: int) -> list[DueSync]:
        """Awaitable :meth:`Ledger.due`."""
        ...

    async def get_due(self, conversation_id: str) -> DueSync | None:
        """Awaitable :meth:`Ledger.get_due`."""
        ...

    async def syncs_in_state(self, state: DueState, limit: int) -> list[DueSync]:
        """Awaitable :meth:`Ledger.syncs_in_state`."""
        ...

    async def claim(
        self,
        now: datetime | None = None,
        limit: int = 100,
        *,
        owner: str,
        lease: timedelta | None = None,
        until: datetime | None = None,
    ) -> list[DueSync]:
        """Awaitable :meth:`Ledger.claim`."""
        ...

    async def claimable(
        self, now: datetime | None = None, limit: int = 100, *, owner: str
    ) -> list[DueSync]:
        """Awaitable :meth:`Ledger.claimable`."""
        ...

    async def claim_unchanged(
        self,
        seen: Mapping[str, int],
        *,
        owner: str,
        lease: timedelta,
        now: datetime | None = None,
    ) -> list[DueSync]:
        """Awaitable :meth:`Ledger.claim_unchanged`."""
        ...

    async def extend(
        self,
        conversation_ids: Iterable[str],
        *,
        owner: str,
        lease: timedelta,
        fences: Mapping[str, int] | None = None,
    ) -> list[str]:
        """Awaitable :meth:`Ledger.extend`."""
        ...

    async def release(
        self,
        conversation_ids: Iterable[str],
        owner: str,
        *,
        fences: Mapping[str, int] | None = None,
    ) -> int:
        """Awaitable :meth:`Ledger.release`."""
        ...

    async def complete(
        self,
        conversation_ids: Iterable[str],
        outcome: str,
        *,
        fences: Mapping[str, int] | None = None,
    ) -> int:
        """Awaitable :meth:`Ledger.complete`."""
        ...

    async def reschedule(
        self, conversation_id: str, due_at: datetime, error: str, *, fence: int | None = None
    ) -> DueSync | None:
        """Awaitable :meth:`Ledger.reschedule`."""
        ...

    async def dead_letter(
        self, conversation_id: str, reason: str, *, fence: int | None = None
    ) -> DueSync | None:
        """Awaitable :meth:`Ledger.dead_letter`."""
        ...

    # Commands --------------------------------------------------------------------------------

    async def get_command(self, key: str) -> CommandRecord | None:
        """Awaitable :meth:`Ledger.get_command`."""
        ...

    async def get_commands(self, keys: Iterable[str]) -> dict[str, CommandRecord]:
        """Awaitable :meth:`Ledger.get_commands`."""
        ...

    async def commands_for(self, conversation_id: str) -> list[CommandRecord]:
        """Awaitable :meth:`Ledger.commands_for`."""
        ...

    async def commands_of(self, conversation_ids: Iterable[str]) -> dict[str, list[CommandRecord]]:
        """Awaitable :meth:`Ledger.commands_of`."""
        ...

    async def perform(
        self, operations: Sequence[Operation], *, atomic: bool = False
    ) -> list[Performed]:
        """Awaitable :meth:`Ledger.perform` (each operation awaited in one transaction)."""
        ...

    async def record(self, commands: Sequence[CommandRecord]) -> None:
        """Awaitable :meth:`Ledger.record`."""
        ...

    async def retry_failed(self, keys: Iterable[str], now: datetime) -> list[str]:
        """Awaitable :meth:`Ledger.retry_failed`."""
        ...

    async def commands_in_state(self, state: CommandState, limit: int) -> list[CommandRecord]:
        """Awaitable :meth:`Ledger.commands_in_state`."""
        ...

    async def creates_in_flight(self, emails: Iterable[str]) -> list[CreateInFlight]:
        """Awaitable :meth:`Ledger.creates_in_flight`."""
        ...

    # Links -----------------------------------------------------------------------------------

    async def link(self, email: str, crm_id: str, kind: PersonKind) -> None:
        """Awaitable :meth:`Ledger.link`."""
        ...

    async def link_many(self, links: Iterable[PersonLink]) -> None:
        """Awaitable :meth:`Ledger.link_many`."""
        ...

    async def links_for(self, emails: Iterable[str]) -> dict[str, PersonLink]:
        """Awaitable :meth:`Ledger.links_for`."""
        ...

    # Run reports -----------------------------------------------------------------------------

    async def record_run(self, summary: Mapping[str, Any]) -> RunRecord:
        """Awaitable :meth:`Ledger.record_run`."""
        ...

    async def recent_runs(self, limit: int) -> list[RunRecord]:
        """Awaitable :meth:`Ledger.recent_runs`."""
        ...

    # Housekeeping ----------------------------------------------------------------------------

    async def stats(self) -> LedgerStats:
        """Awaitable :meth:`Ledger.stats`."""
        ...

    async def close(self) -> None:
        """Awaitable :meth:`Ledger.close`."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


_OPERATIONS = frozenset(
    name
    for name in vars(Ledger)
    if not name.startswith("_") and name not in {"close", "integration"}
)
"""The methods an :class:`Operation` may name: the Ledger Protocol's (``perform`` too: a
nested one joins the outer transaction)."""
