"""An in-memory ledger: plain dicts behind a lock, for tests and throw-away runs.

It follows every rule of :mod:`signals_crm.ledger.base` (the same contract tests run against
it and the SQLite ledger) except durability: everything is gone when the object is.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Self

import attrs

from signals_crm.core.model import Conversation, PersonKind, normalize_email
from signals_crm.exceptions import LedgerError
from signals_crm.ledger.base import (
    Clock,
    CommandRecord,
    CommandState,
    DueState,
    DueSync,
    LedgerStats,
    PersonLink,
    apply_transitions,
    check_fence,
    check_fences,
    check_limit,
    claim_window,
    fences_of,
    retried,
    to_utc,
    wall_clock,
)
from signals_crm.ledger.codec import conversation_to_dict

__all__ = ["MemoryLedger"]


class MemoryLedger:
    """A :class:`~signals_crm.ledger.Ledger` kept in dicts (not durable; thread-safe).

    ``clock`` is the ledger's own clock, which judges leases (default: the wall clock, UTC).
    """

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock: Clock = clock or wall_clock
        self._lock = threading.RLock()
        self._closed = False
        self._syncs: dict[str, DueSync] = {}
        self._commands: dict[str, CommandRecord] = {}
        self._links: dict[str, PersonLink] = {}

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._syncs)} syncs"
        return f"<MemoryLedger {state}>"

    def _check_open(self) -> None:
        if self._closed:
            raise LedgerError("the ledger is closed")

    # Due syncs -------------------------------------------------------------------------------

    def schedule(self, conversation: Conversation, due_at: datetime) -> DueSync:
        """Record that ``conversation`` is due at ``due_at``; returns what is now stored."""
        return self.schedule_many([(conversation, due_at)])[0]

    def schedule_many(self, entries: Iterable[tuple[Conversation, datetime]]) -> list[DueSync]:
        """``schedule`` for many conversations at once; one result per entry."""
        prepared = [(conversation, to_utc(due_at, "due_at")) for conversation, due_at in entries]
        for conversation, _ in prepared:
            conversation_to_dict(conversation)  # refuse what a durable ledger could not store
        with self._lock:
            self._check_open()
            out: list[DueSync] = []
            for conversation, due_at in prepared:
                old = self._syncs.get(conversation.id)
                if old is None:
                    new = DueSync(conversation.id, due_at, conversation)
                elif old.state is DueState.PENDING:
                    new = attrs.evolve(old, due_at=due_at, conversation=conversation)
                else:
                    new = old
                self._syncs[conversation.id] = new
                out.append(new)
            return out

    def due(self, now: datetime, limit: int) -> list[DueSync]:
        """Pending syncs due at ``now``, by due time then id, at most ``limit``."""
        now = to_utc(now, "now")
        check_limit(limit)
        with self._lock:
            self._check_open()
            ready = [
                s for s in self._syncs.values() if s.state is DueState.PENDING and s.due_at <= now
            ]
        ready.sort(key=lambda s: (s.due_at, s.conversation_id))
        return ready[:limit]

    def get_due(self, conversation_id: str) -> DueSync | None:
        """The stored sync of ``conversation_id``, in any state, or ``None``."""
        with self._lock:
            self._check_open()
            return self._syncs.get(conversation_id)

    def syncs_in_state(self, state: DueState, limit: int) -> list[DueSync]:
        """Syncs in ``state``, by due time then id, at most ``limit``."""
        state = DueState(state)
        check_limit(limit)
        with self._lock:
            self._check_open()
            found = [s for s in self._syncs.values() if s.state is state]
        found.sort(key=lambda s: (s.due_at, s.conversation_id))
        return found[:limit]

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
            at = window.judged_at
            busy = {
                s.email
                for s in self._syncs.values()
                if s.state is DueState.PENDING and s.email and s.leased_to_other(owner, at)
            }
            ready = [
                s
                for s in self._syncs.values()
                if s.state is DueState.PENDING
                and s.due_at <= window.cutoff
                and not s.leased_to_other(owner, at)
                and s.email not in busy
            ]
            ready.sort(key=lambda s: (s.due_at, s.conversation_id))
            claimed = [
                attrs.evolve(s, lease_owner=owner, lease_until=window.until, fence=s.fence + 1)
                for s in ready[:limit]
            ]
            for s in claimed:
                self._syncs[s.conversation_id] = s
            return claimed

    def _check_fences(self, fences: Mapping[str, int] | None) -> None:
        if fences:
            wanted = {cid: check_fence(f"fences[{cid!r}]", f) for cid, f in fences.items()}
            stored = {cid: self._syncs[cid].fence for cid in wanted if cid in self._syncs}
            check_fences(wanted, stored)

    def extend(
        self,
        conversation_ids: Iterable[str],
        *,
        owner: str,
        lease: timedelta,
        fences: Mapping[str, int] | None = None,
    ) -> list[str]:
        """Renew ``owner``'s pending leases for ``lease`` from the ledger's clock; ids renewed."""
        ids = list(dict.fromkeys(conversation_ids))
        with self._lock:
            self._check_open()
            window = claim_window(self._clock, None, 0, owner, lease, None)
            self._check_fences(fences)
            renewed: list[str] = []
            for cid in ids:
                old = self._syncs.get(cid)
                if old is None or old.state is not DueState.PENDING or old.lease_owner != owner:
                    continue
                self._syncs[cid] = attrs.evolve(old, lease_until=window.until)
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
        released = 0
        with self._lock:
            self._check_open()
            self._check_fences(fences)
            for conversation_id in dict.fromkeys(conversation_ids):
                old = self._syncs.get(conversation_id)
                if old is not None and old.lease_owner == owner:
                    self._syncs[conversation_id] = attrs.evolve(
                        old, lease_owner=None, lease_until=None
                    )
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
        changed = 0
        with self._lock:
            self._check_open()
            self._check_fences(fences)
            for conversation_id in conversation_ids:
                old = self._syncs.get(conversation_id)
                if old is None or old.state is DueState.DONE:
                    continue
                self._syncs[conversation_id] = attrs.evolve(
                    old, state=DueState.DONE, outcome=outcome, lease_owner=None, lease_until=None
                )
                changed += 1
        return changed

    def _finish_attempt(
        self, conversation_id: str, error: str, due_at: datetime | None, fence: int | None
    ) -> DueSync | None:
        with self._lock:
            self._check_open()
            self._check_fences(None if fence is None else {conversation_id: fence})
            old = self._syncs.get(conversation_id)
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
            self._syncs[conversation_id] = new
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
        with self._lock:
            self._check_open()
            return self._commands.get(key)

    def get_commands(self, keys: Iterable[str]) -> dict[str, CommandRecord]:
        """The stored commands among ``keys`` (unknown keys are absent from the result)."""
        with self._lock:
            self._check_open()
            return {k: self._commands[k] for k in keys if k in self._commands}

    def commands_for(self, conversation_id: str) -> list[CommandRecord]:
        """Every command of one conversation, by key."""
        with self._lock:
            self._check_open()
            found = [c for c in self._commands.values() if c.conversation_id == conversation_id]
        return sorted(found, key=lambda c: c.key)

    def record(self, commands: Sequence[CommandRecord]) -> None:
        """Insert or update ``commands`` atomically, enforcing the transition rules."""
        commands = list(commands)
        with self._lock:
            self._check_open()
            wanted, keys = fences_of(commands)
            if wanted:
                stored = {cid: self._syncs[cid].fence for cid in wanted if cid in self._syncs}
                check_fences(wanted, stored, keys)
            self._commands.update(apply_transitions(self._commands, commands))

    def retry_failed(self, keys: Iterable[str], now: datetime) -> list[str]:
        """Put FAILED commands among ``keys`` back to PLANNED; returns the keys reset."""
        to_utc(now, "now")
        reset: list[str] = []
        with self._lock:
            self._check_open()
            for key in keys:
                old = self._commands.get(key)
                if old is not None and old.state is CommandState.FAILED:
                    self._commands[key] = retried(old, now)
                    reset.append(key)
        return reset

    def commands_in_state(self, state: CommandState, limit: int) -> list[CommandRecord]:
        """Commands in ``state``, oldest ``updated_at`` first (then by key), at most ``limit``."""
        state = CommandState(state)
        check_limit(limit)
        with self._lock:
            self._check_open()
            found = [c for c in self._commands.values() if c.state is state]
        found.sort(key=lambda c: (c.updated_at, c.key))
        return found[:limit]

    # Links -----------------------------------------------------------------------------------

    def link(self, email: str, crm_id: str, kind: PersonKind) -> None:
        """Remember that ``email`` was synced to the CRM person ``crm_id``."""
        self.link_many([PersonLink(email, crm_id, kind)])

    def link_many(self, links: Iterable[PersonLink]) -> None:
        """``link`` for many emails at once (later entries win)."""
        links = list(links)
        with self._lock:
            self._check_open()
            for link in links:
                self._links[link.email] = link

    def links_for(self, emails: Iterable[str]) -> dict[str, PersonLink]:
        """The links of ``emails``, keyed by normalised email (unknown emails absent)."""
        keys = [normalize_email(e) for e in emails]
        with self._lock:
            self._check_open()
            return {k: self._links[k] for k in keys if k in self._links}

    # Housekeeping ----------------------------------------------------------------------------

    def stats(self) -> LedgerStats:
        """Counts per sync state and command state (every state present), and links."""
        with self._lock:
            self._check_open()
            syncs = dict.fromkeys(DueState, 0)
            for s in self._syncs.values():
                syncs[s.state] += 1
            commands = dict.fromkeys(CommandState, 0)
            for c in self._commands.values():
                commands[c.state] += 1
            return LedgerStats(syncs=syncs, commands=commands, links=len(self._links))

    def close(self) -> None:
        """Drop everything; later calls raise LedgerError."""
        with self._lock:
            self._closed = True
            self._syncs.clear()
            self._commands.clear()
            self._links.clear()

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
