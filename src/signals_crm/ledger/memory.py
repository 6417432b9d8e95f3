"""An in-memory ledger: dicts and sorted indexes behind a lock, for tests and throw-away runs.

It follows every rule of :mod:`signals_crm.ledger.base` (the same contract tests run against
it and the SQLite ledger) except durability: everything is gone when the object is.

Every operation costs time in proportion to what it touches, never to what the ledger holds:

1. Syncs by state are kept in sorted lists of ``(due_at, conversation_id)``, so ``due``,
   ``claim`` and ``syncs_in_state`` walk only from the front of their state's list.
2. Pending syncs by visitor email, so the email rule of a claim looks at that email's syncs
   only.
3. Commands by conversation (``commands_for``) and, per state, a sorted list of
   ``(updated_at, key)`` (``commands_in_state``).
4. Counts per state come from the sizes of those indexes (``stats`` is constant time).

Sorted lists use :mod:`bisect`: an insert or removal moves pointers (a ``memmove``), cheap
next to the Python work around it at the sizes a test or a throw-away run holds.
"""

from __future__ import annotations

import bisect
import collections
import functools
import itertools
import json
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self

import attrs

from signals_crm.core.model import Conversation, PersonKind, normalize_email
from signals_crm.exceptions import LedgerError
from signals_crm.ledger.base import (
    DEFAULT_INTEGRATION,
    ClaimWindow,
    Clock,
    CommandRecord,
    CommandState,
    CreateInFlight,
    DueState,
    DueSync,
    LedgerStats,
    Operation,
    Performed,
    PersonLink,
    RunRecord,
    apply_transitions,
    check_fence,
    check_fences,
    check_ids,
    check_integration,
    check_keep,
    check_limit,
    check_seen,
    check_text,
    claim_refused,
    claim_window,
    clean_text,
    fences_of,
    perform_all,
    perform_each,
    retried,
    summary_json,
    to_utc,
    wall_clock,
)
from signals_crm.ledger.codec import conversation_to_dict

__all__ = ["MemoryLedger"]

_SyncKey = tuple[datetime, str]
_CommandKey = tuple[datetime, str]


def _skey(sync: DueSync) -> _SyncKey:
    return (sync.due_at, sync.conversation_id)


def _due_at(key: _SyncKey) -> datetime:
    return key[0]


def _ckey(record: CommandRecord) -> _CommandKey:
    return (record.updated_at, record.key)


def _remove(index: list[tuple[datetime, str]], item: tuple[datetime, str]) -> None:
    at = bisect.bisect_left(index, item)
    if at < len(index) and index[at] == item:
        del index[at]


class _Syncs:
    """Due syncs and their indexes (rules 1 and 2 of the module doc)."""

    def __init__(self, journal: _Journal) -> None:
        self.by_id: dict[str, DueSync] = {}
        self.by_state: dict[DueState, list[_SyncKey]] = {s: [] for s in DueState}
        self.pending_by_email: dict[str, set[str]] = {}
        self.journal = journal

    def put(self, new: DueSync) -> None:
        old = self._drop(new.conversation_id)
        if self.journal.undo is not None:
            self.journal.note(functools.partial(self._undo, new.conversation_id, old))
        self.by_id[new.conversation_id] = new
        bisect.insort(self.by_state[new.state], _skey(new))
        if new.state is DueState.PENDING and new.email:
            self.pending_by_email.setdefault(new.email, set()).add(new.conversation_id)

    def _drop(self, cid: str) -> DueSync | None:
        old = self.by_id.pop(cid, None)
        if old is not None:
            _remove(self.by_state[old.state], _skey(old))
            if old.state is DueState.PENDING and old.email:
                self.pending_by_email[old.email].discard(old.conversation_id)
                if not self.pending_by_email[old.email]:
                    del self.pending_by_email[old.email]
        return old

    def _undo(self, cid: str, old: DueSync | None) -> None:
        self._drop(cid)
        if old is not None:
            self.put(old)

    def email_leased_to_other(self, sync: DueSync, owner: str, at: datetime) -> bool:
        if not sync.email:
            return False
        return any(
            self.by_id[cid].leased_to_other(owner, at)
            for cid in self.pending_by_email.get(sync.email, ())
        )


class _Commands:
    """Commands and their indexes (rule 3 of the module doc)."""

    def __init__(self, journal: _Journal) -> None:
        self.by_key: dict[str, CommandRecord] = {}
        self.by_conversation: dict[str, set[str]] = {}
        self.by_state: dict[CommandState, list[_CommandKey]] = {s: [] for s in CommandState}
        self.journal = journal

    def put(self, new: CommandRecord) -> None:
        old = self.by_key.get(new.key)
        if old is not None:
            _remove(self.by_state[old.state], _ckey(old))
        if self.journal.undo is not None:
            self.journal.note(functools.partial(self._undo, new, old))
        self.by_key[new.key] = new
        self.by_conversation.setdefault(new.conversation_id, set()).add(new.key)
        bisect.insort(self.by_state[new.state], _ckey(new))

    def _undo(self, new: CommandRecord, old: CommandRecord | None) -> None:
        _remove(self.by_state[new.state], _ckey(new))
        if old is None:
            del self.by_key[new.key]
            keys = self.by_conversation[new.conversation_id]
            keys.discard(new.key)
            if not keys:
                del self.by_conversation[new.conversation_id]
            return
        self.by_key[old.key] = old
        bisect.insort(self.by_state[old.state], _ckey(old))


class _Journal:
    """How to undo the writes of an atomic ``perform`` under way (rule 6), newest last; off
    (``None``) otherwise, so a write costs nothing more outside one."""

    def __init__(self) -> None:
        self.undo: list[Callable[[], None]] | None = None

    def note(self, undo: Callable[[], None]) -> None:
        if self.undo is not None:
            self.undo.append(undo)


class _Tenant:
    """One integration's rows."""

    def __init__(self) -> None:
        self.journal = _Journal()
        self.syncs = _Syncs(self.journal)
        self.commands = _Commands(self.journal)
        self.links: dict[str, PersonLink] = {}
        self.runs: collections.deque[RunRecord] = collections.deque()


class _Store:
    """What every ledger bound to one store shares: the lock, the tenants, the run ids."""

    def __init__(self, clock: Clock, keep_runs: int) -> None:
        self.clock = clock
        self.keep_runs = keep_runs
        self.lock = threading.RLock()
        self.tenants: dict[str, _Tenant] = {}
        self.run_ids = itertools.count(1)
        self.views = 0


class MemoryLedger:
    """A :class:`~signals_crm.ledger.Ledger` kept in memory (not durable; thread-safe).

    ``clock`` is the ledger's own clock, which judges leases (default: the wall clock, UTC).
    ``integration`` is the tenant it is bound to; :meth:`for_integration` gives ledgers of other
    tenants on the same memory. ``keep_runs`` run reports are kept per integration.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        integration: str = DEFAULT_INTEGRATION,
        keep_runs: int = 1000,
    ) -> None:
        self._bind(_Store(clock or wall_clock, check_keep(keep_runs)), integration)

    def _bind(self, store: _Store, integration: str) -> None:
        self._integration = check_integration(integration)
        self._store = store
        self._clock = store.clock
        self._lock = store.lock
        self._closed = False
        with store.lock:
            store.views += 1
            self._tenant = store.tenants.setdefault(integration, _Tenant())
        self._syncs = self._tenant.syncs
        self._commands = self._tenant.commands
        self._links = self._tenant.links

    def for_integration(self, integration: str) -> MemoryLedger:
        """A ledger bound to ``integration`` on the same memory (same clock and lock)."""
        self._check_open()
        other = object.__new__(MemoryLedger)
        other._bind(self._store, integration)  # a sibling of this class
        return other

    @property
    def integration(self) -> str:
        """The integration (tenant) this ledger is bound to."""
        return self._integration

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._syncs.by_id)} syncs"
        return f"<MemoryLedger {self._integration!r} {state}>"

    def _check_open(self) -> None:
        if self._closed:
            raise LedgerError("the ledger is closed")

    def _check_fences(self, fences: Mapping[str, int] | None) -> None:
        if fences:
            wanted = {
                check_text("fences", cid): check_fence(f"fences[{cid!r}]", f)
                for cid, f in fences.items()
            }
            by_id = self._syncs.by_id
            check_fences(wanted, {cid: by_id[cid].fence for cid in wanted if cid in by_id})

    # Due syncs -------------------------------------------------------------------------------

    def schedule(self, conversation: Conversation, due_at: datetime) -> DueSync:
        """Record that ``conversation`` is due at ``due_at``; returns what is now stored."""
        return self.schedule_many([(conversation, due_at)])[0]

    def schedule_many(self, entries: Iterable[tuple[Conversation, datetime]]) -> list[DueSync]:
        """``schedule`` for many conversations at once; one result per entry."""
        prepared = [(conversation, to_utc(due_at, "due_at")) for conversation, due_at in entries]
        for conversation, _ in prepared:
            check_text("conversation.id", conversation.id)
            conversation_to_dict(conversation)  # refuse what a durable ledger could not store
        with self._lock:
            self._check_open()
            out: list[DueSync] = []
            before: dict[str, DueSync | None] = {}  # each sync as stored before this call
            for conversation, due_at in prepared:
                old = self._syncs.by_id.get(conversation.id)
                first = before.setdefault(conversation.id, old)
                if old is None:
                    new = DueSync(conversation.id, due_at, conversation)
                elif old.state is DueState.PENDING:
                    # Rule 1b: a different conversation than the one stored moves the fence.
                    fence = old.fence if first is None else first.fence
                    fence += first is not None and first.conversation != conversation
                    new = attrs.evolve(old, due_at=due_at, conversation=conversation, fence=fence)
                else:
                    new = old
                if new is not old:
                    self._syncs.put(new)
                out.append(new)
            return out

    def rearm(self, conversation: Conversation, due_at: datetime) -> DueSync | None:
        """Make a done sync that was skipped (outcome ``"skipped:..."``) pending again.

        The new conversation and due time replace the stored ones, attempts and last error are
        cleared. Anything else is left as it is and ``None`` returned.
        """
        due_at = to_utc(due_at, "due_at")
        check_text("conversation.id", conversation.id)
        conversation_to_dict(conversation)
        with self._lock:
            self._check_open()
            old = self._syncs.by_id.get(conversation.id)
            if old is None or not _skipped(old):
                return None
            new = attrs.evolve(
                old,
                due_at=due_at,
                conversation=conversation,
                state=DueState.PENDING,
                attempts=0,
                last_error=None,
                outcome=None,
                lease_owner=None,
                lease_until=None,
            )
            self._syncs.put(new)
            return new

    def requeue_dead(self, conversation_ids: Iterable[str], due_at: datetime) -> list[str]:
        """Put dead syncs back to pending at ``due_at`` (attempts 0, lease cleared), and their
        FAILED commands back to PLANNED, at once; returns the ids requeued."""
        ids = check_ids("conversation_ids", conversation_ids)
        due_at = to_utc(due_at, "due_at")
        with self._lock:
            self._check_open()
            done: list[str] = []
            for cid in ids:
                old = self._syncs.by_id.get(cid)
                if old is None or old.state is not DueState.DEAD:
                    continue
                self._syncs.put(
                    attrs.evolve(
                        old,
                        state=DueState.PENDING,
                        due_at=due_at,
                        attempts=0,
                        lease_owner=None,
                        lease_until=None,
                    )
                )
                for key in sorted(self._commands.by_conversation.get(cid, ())):
                    record = self._commands.by_key[key]
                    if record.state is CommandState.FAILED:
                        self._commands.put(retried(record, due_at))
                done.append(cid)
            return done

    def _walk(self, state: DueState, cutoff: datetime | None = None) -> Iterable[DueSync]:
        """Syncs in ``state`` by (due time, id), stopping after ``cutoff`` (a snapshot)."""
        index = self._syncs.by_state[state]
        end = len(index) if cutoff is None else bisect.bisect_right(index, cutoff, key=_due_at)
        for _, cid in itertools.islice(index, end):
            yield self._syncs.by_id[cid]

    def _first(self, state: DueState, cutoff: datetime | None, limit: int) -> list[DueSync]:
        out: list[DueSync] = []
        if limit:
            for sync in self._walk(state, cutoff):
                out.append(sync)
                if len(out) >= limit:
                    break
        return out

    def due(self, now: datetime, limit: int) -> list[DueSync]:
        """Pending syncs due at ``now``, by due time then id, at most ``limit``."""
        now = to_utc(now, "now")
        check_limit(limit)
        with self._lock:
            self._check_open()
            return self._first(DueState.PENDING, now, limit)

    def get_due(self, conversation_id: str) -> DueSync | None:
        """The stored sync of ``conversation_id``, in any state, or ``None``."""
        check_text("conversation_id", conversation_id)
        with self._lock:
            self._check_open()
            return self._syncs.by_id.get(conversation_id)

    def syncs_in_state(self, state: DueState, limit: int) -> list[DueSync]:
        """Syncs in ``state``, by due time then id, at most ``limit``."""
        state = DueState(state)
        check_limit(limit)
        with self._lock:
            self._check_open()
            return self._first(state, None, limit)

    def claim(
        self,
        now: datetime | None = None,
        limit: int = 100,
        *,
        owner: str,
        lease: timedelta | None = None,
        until: datetime | None = None,
    ) -> list[DueSync]:
        """Lease to ``owner`` the due syncs no other owner holds (at most ``limit``)."""
        with self._lock:
            self._check_open()
            window = claim_window(self._clock, now, limit, owner, lease, until)
            claimed = [
                attrs.evolve(s, lease_owner=owner, lease_until=window.until, fence=s.fence + 1)
                for s in self._claimable(window, limit, owner)
            ]
            for sync in claimed:
                self._syncs.put(sync)
            return claimed

    def claimable(
        self, now: datetime | None = None, limit: int = 100, *, owner: str
    ) -> list[DueSync]:
        """What ``claim(now, limit, owner=owner)`` would take, leasing nothing (a read)."""
        with self._lock:
            self._check_open()
            window = claim_window(self._clock, now, limit, owner, timedelta(seconds=1), None)
            return self._claimable(window, limit, owner)

    def _claimable(self, window: ClaimWindow, limit: int, owner: str) -> list[DueSync]:
        at = window.judged_at
        found: list[DueSync] = []
        if not limit:
            return found
        for sync in self._walk(DueState.PENDING, window.cutoff):
            if sync.leased_to_other(owner, at):
                continue
            if self._syncs.email_leased_to_other(sync, owner, at):
                continue
            found.append(sync)
            if len(found) >= limit:
                break
        return found

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
        wanted = check_seen(seen)
        with self._lock:
            self._check_open()
            window = claim_window(self._clock, now, 0, owner, lease, None)
            at = window.judged_at
            changed = []
            for cid, fence in wanted.items():
                sync = self._syncs.by_id.get(cid)
                if (
                    sync is None
                    or sync.state is not DueState.PENDING
                    or sync.due_at > window.cutoff
                    or sync.fence != fence
                    or sync.leased_to_other(owner, at)
                    or self._syncs.email_leased_to_other(sync, owner, at)
                ):
                    changed.append(cid)
            if changed:
                raise claim_refused(changed)
            claimed = [
                attrs.evolve(
                    self._syncs.by_id[cid],
                    lease_owner=owner,
                    lease_until=window.until,
                    fence=fence + 1,
                )
                for cid, fence in wanted.items()
            ]
            for sync in claimed:
                self._syncs.put(sync)
            return claimed

    def extend(
        self,
        conversation_ids: Iterable[str],
        *,
        owner: str,
        lease: timedelta,
        fences: Mapping[str, int] | None = None,
    ) -> list[str]:
        """Renew ``owner``'s pending leases for ``lease`` from the ledger's clock; ids renewed."""
        ids = check_ids("conversation_ids", conversation_ids)
        with self._lock:
            self._check_open()
            window = claim_window(self._clock, None, 0, owner, lease, None)
            self._check_fences(fences)
            renewed: list[str] = []
            for cid in ids:
                old = self._syncs.by_id.get(cid)
                if old is None or old.state is not DueState.PENDING or old.lease_owner != owner:
                    continue
                self._syncs.put(attrs.evolve(old, lease_until=window.until))
                renewed.append(cid)
            return renewed

    def release(
        self,
        conversation_ids: Iterable[str],
        owner: str,
        *,
        fences: Mapping[str, int] | None = None,
    ) -> int:
        """End ``owner``'s leases on these syncs without other change; returns how many."""
        ids = check_ids("conversation_ids", conversation_ids)
        released = 0
        with self._lock:
            self._check_open()
            self._check_fences(fences)
            for cid in ids:
                old = self._syncs.by_id.get(cid)
                if old is not None and old.lease_owner == owner:
                    self._syncs.put(attrs.evolve(old, lease_owner=None, lease_until=None))
                    released += 1
        return released

    def complete(
        self,
        conversation_ids: Iterable[str],
        outcome: str,
        *,
        fences: Mapping[str, int] | None = None,
    ) -> int:
        """Mark pending or dead syncs done with ``outcome``; returns how many changed."""
        ids = check_ids("conversation_ids", conversation_ids)
        outcome = clean_text(outcome)
        changed = 0
        with self._lock:
            self._check_open()
            self._check_fences(fences)
            for cid in ids:
                old = self._syncs.by_id.get(cid)
                if old is None or old.state is DueState.DONE:
                    continue
                self._syncs.put(
                    attrs.evolve(
                        old,
                        state=DueState.DONE,
                        outcome=outcome,
                        lease_owner=None,
                        lease_until=None,
                    )
                )
                changed += 1
        return changed

    def _finish_attempt(
        self, conversation_id: str, error: str, due_at: datetime | None, fence: int | None
    ) -> DueSync | None:
        check_text("conversation_id", conversation_id)
        error = clean_text(error)
        with self._lock:
            self._check_open()
            self._check_fences(None if fence is None else {conversation_id: fence})
            old = self._syncs.by_id.get(conversation_id)
            if old is None or old.state is not DueState.PENDING:
                return old
            new = attrs.evolve(
                old,
                state=DueState.PENDING if due_at is not None else DueState.DEAD,
                due_at=old.due_at if due_at is None else due_at,
                attempts=old.attempts + 1,
                last_error=error,
                lease_owner=None,
                lease_until=None,
            )
            self._syncs.put(new)
            return new

    def reschedule(
        self, conversation_id: str, due_at: datetime, error: str, *, fence: int | None = None
    ) -> DueSync | None:
        """Move a pending sync to ``due_at`` after a failed attempt (attempts + 1)."""
        return self._finish_attempt(conversation_id, error, to_utc(due_at, "due_at"), fence)

    def dead_letter(
        self, conversation_id: str, reason: str, *, fence: int | None = None
    ) -> DueSync | None:
        """Give up on a pending sync with the CRM's ``reason`` (attempts + 1)."""
        return self._finish_attempt(conversation_id, reason, None, fence)

    # Commands --------------------------------------------------------------------------------

    def get_command(self, key: str) -> CommandRecord | None:
        """The command stored under ``key``, or ``None``."""
        return self.get_commands([key]).get(key)

    def get_commands(self, keys: Iterable[str]) -> dict[str, CommandRecord]:
        """The stored commands among ``keys`` (unknown keys are absent from the result)."""
        wanted = check_ids("keys", keys)
        with self._lock:
            self._check_open()
            by_key = self._commands.by_key
            return {k: by_key[k] for k in wanted if k in by_key}

    def commands_for(self, conversation_id: str) -> list[CommandRecord]:
        """Every command of one conversation, by key."""
        check_text("conversation_id", conversation_id)
        with self._lock:
            self._check_open()
            keys = sorted(self._commands.by_conversation.get(conversation_id, ()))
            return [self._commands.by_key[k] for k in keys]

    def commands_of(self, conversation_ids: Iterable[str]) -> dict[str, list[CommandRecord]]:
        """``commands_for`` of many conversations at once."""
        ids = check_ids("conversation_ids", conversation_ids)
        with self._lock:
            return {cid: self.commands_for(cid) for cid in ids}

    def perform(self, operations: Sequence[Operation], *, atomic: bool = False) -> list[Performed]:
        """Perform ``operations`` under the ledger's lock, each one's result or error (every
        operation is atomic on its own; there is no commit to save). ``atomic``: all or
        nothing; the writes made before an operation raised are undone (from a journal)."""
        operations = list(operations)
        with self._lock:
            journal = self._tenant.journal
            if not atomic:
                return perform_each(self, operations)
            if journal.undo is not None:  # inside an atomic one: its journal undoes all
                return perform_all(self, operations)
            journal.undo = []
            try:
                return perform_all(self, operations)
            except BaseException:
                steps, journal.undo = journal.undo, None
                for undo in reversed(steps):
                    undo()
                raise
            finally:
                journal.undo = None

    def record(self, commands: Sequence[CommandRecord]) -> None:
        """Insert or update ``commands`` atomically, enforcing the transition rules."""
        commands = list(commands)
        with self._lock:
            self._check_open()
            wanted, keys = fences_of(commands)
            if wanted:
                by_id = self._syncs.by_id
                stored = {cid: by_id[cid].fence for cid in wanted if cid in by_id}
                check_fences(wanted, stored, keys)
            for record in apply_transitions(self._commands.by_key, commands).values():
                self._commands.put(record)

    def retry_failed(self, keys: Iterable[str], now: datetime) -> list[str]:
        """Put FAILED commands among ``keys`` back to PLANNED; returns the keys reset."""
        to_utc(now, "now")
        wanted = check_ids("keys", keys)
        reset: list[str] = []
        with self._lock:
            self._check_open()
            for key in wanted:
                old = self._commands.by_key.get(key)
                if old is not None and old.state is CommandState.FAILED:
                    self._commands.put(retried(old, now))
                    reset.append(key)
        return reset

    def commands_in_state(self, state: CommandState, limit: int) -> list[CommandRecord]:
        """Commands in ``state``, oldest ``updated_at`` first (then by key), at most ``limit``."""
        state = CommandState(state)
        check_limit(limit)
        with self._lock:
            self._check_open()
            index = self._commands.by_state[state]
            return [self._commands.by_key[key] for _, key in itertools.islice(index, limit)]

    def creates_in_flight(self, emails: Iterable[str]) -> list[CreateInFlight]:
        """The unsettled person creates of the syncs of ``emails`` (rule 2h)."""
        wanted = {normalize_email(e) for e in emails}
        with self._lock:
            self._check_open()
            found: list[CreateInFlight] = []
            for state in (CommandState.SENT, CommandState.UNKNOWN):
                for _, key in self._commands.by_state[state]:
                    record = self._commands.by_key[key]
                    if record.kind != "create_person":
                        continue
                    sync = self._syncs.by_id.get(record.conversation_id)
                    email = sync.email if sync is not None else None
                    if email is not None and email in wanted:
                        found.append(
                            CreateInFlight(email, record.conversation_id, record.updated_at)
                        )
            return found

    # Links -----------------------------------------------------------------------------------

    def link(self, email: str, crm_id: str, kind: PersonKind) -> None:
        """Remember that ``email`` was synced to the CRM person ``crm_id``."""
        self.link_many([PersonLink(email, crm_id, kind)])

    def link_many(self, links: Iterable[PersonLink]) -> None:
        """``link`` for many emails at once (later entries win)."""
        links = list(links)
        with self._lock:
            self._check_open()
            journal = self._tenant.journal
            for link in links:
                if journal.undo is not None:
                    old = self._links.get(link.email)
                    journal.note(functools.partial(_restore, self._links, link.email, old))
                self._links[link.email] = link

    def links_for(self, emails: Iterable[str]) -> dict[str, PersonLink]:
        """The links of ``emails``, keyed by normalised email (unknown emails absent)."""
        keys = check_ids("emails", (normalize_email(e) for e in emails))
        with self._lock:
            self._check_open()
            return {k: self._links[k] for k in keys if k in self._links}

    # Run reports -----------------------------------------------------------------------------

    def record_run(self, summary: Mapping[str, Any]) -> RunRecord:
        """Keep one run's summary, stamped by the ledger's clock; returns what was kept."""
        text = summary_json(summary)
        with self._lock:
            self._check_open()
            record = RunRecord(
                next(self._store.run_ids),
                self._integration,
                to_utc(self._clock(), "clock()"),
                json.loads(text),
            )
            runs = self._tenant.runs
            if self._tenant.journal.undo is not None:
                self._tenant.journal.note(functools.partial(_restore_runs, runs, list(runs)))
            runs.append(record)
            while len(runs) > self._store.keep_runs:
                runs.popleft()
            return record

    def recent_runs(self, limit: int) -> list[RunRecord]:
        """The latest ``limit`` run reports, newest first."""
        check_limit(limit)
        with self._lock:
            self._check_open()
            return list(itertools.islice(reversed(self._tenant.runs), limit))

    # The fleet -------------------------------------------------------------------------------

    def integrations_due(
        self, now: datetime | None = None, limit: int = 1000
    ) -> list[tuple[str, datetime]]:
        """Integrations with pending syncs due at ``now`` (default: the ledger's clock), each
        with its oldest due time, oldest first (then by id), at most ``limit``."""
        check_limit(limit)
        with self._lock:
            self._check_open()
            cutoff = to_utc(self._clock() if now is None else now, "now")
            found = []
            for name, tenant in self._store.tenants.items():
                pending = tenant.syncs.by_state[DueState.PENDING]
                if pending and pending[0][0] <= cutoff:
                    found.append((pending[0][0], name))
        found.sort()
        return [(name, at) for at, name in found[:limit]]

    # Housekeeping ----------------------------------------------------------------------------

    def stats(self) -> LedgerStats:
        """Counts per sync state and command state (every state present), and links."""
        with self._lock:
            self._check_open()
            return LedgerStats(
                syncs={s: len(index) for s, index in self._syncs.by_state.items()},
                commands={s: len(index) for s, index in self._commands.by_state.items()},
                links=len(self._links),
            )

    def close(self) -> None:
        """Close this ledger; later calls raise LedgerError. When the last ledger of the
        memory closes, everything is dropped."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._store.views -= 1
            if not self._store.views:
                self._store.tenants.clear()

    def __enter__(self) -> Self:
        self._check_open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _skipped(sync: DueSync) -> bool:
    return sync.state is DueState.DONE and (sync.outcome or "").startswith("skipped:")


def _restore(links: dict[str, PersonLink], email: str, old: PersonLink | None) -> None:
    if old is None:
        links.pop(email, None)
    else:
        links[email] = old


def _restore_runs(runs: collections.deque[RunRecord], old: list[RunRecord]) -> None:
    runs.clear()
    runs.extend(old)
