"""An in-memory ledger: plain dicts behind a lock, for tests and throw-away runs.

It follows every rule of :mod:`signals_crm.ledger.base` (the same contract tests run against
it and the SQLite ledger) except durability: everything is gone when the object is.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Self

import attrs

from signals_crm.core.model import Conversation, PersonKind, normalize_email
from signals_crm.exceptions import LedgerError
from signals_crm.ledger.base import (
    CommandRecord,
    CommandState,
    DueState,
    DueSync,
    LedgerStats,
    PersonLink,
    apply_transitions,
    check_lease,
    check_limit,
    retried,
    to_utc,
)
from signals_crm.ledger.codec import conversation_to_dict

__all__ = ["MemoryLedger"]


class MemoryLedger:
    """A :class:`~signals_crm.ledger.Ledger` kept in dicts (not durable; thread-safe)."""

    def __init__(self) -> None:
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

    def claim(self, now: datetime, limit: int, *, owner: str, until: datetime) -> list[DueSync]:
        """Lease to ``owner`` until ``until`` the due syncs no other owner holds (at most limit)."""
        now, until = check_lease(now, owner, until)
        check_limit(limit)
        with self._lock:
            self._check_open()
            busy = {
                s.email
                for s in self._syncs.values()
                if s.state is DueState.PENDING and s.email and s.leased_to_other(owner, now)
            }
            ready = [
                s
                for s in self._syncs.values()
                if s.state is DueState.PENDING
                and s.due_at <= now
                and not s.leased_to_other(owner, now)
                and s.email not in busy
            ]
            ready.sort(key=lambda s: (s.due_at, s.conversation_id))
            claimed = [attrs.evolve(s, lease_owner=owner, lease_until=until) for s in ready[:limit]]
            for s in claimed:
                self._syncs[s.conversation_id] = s
            return claimed

    def release(self, conversation_ids: Iterable[str], owner: str) -> int:
        """End ``owner``'s leases on these syncs without other change; returns how many."""
        released = 0
        with self._lock:
            self._check_open()
            for conversation_id in dict.fromkeys(conversation_ids):
                old = self._syncs.get(conversation_id)
                if old is not None and old.lease_owner == owner:
                    self._syncs[conversation_id] = attrs.evolve(
                        old, lease_owner=None, lease_until=None
                    )
                    released += 1
        return released

    def complete(self, conversation_ids: Iterable[str], outcome: str) -> int:
        """Mark pending or dead syncs done with ``outcome``; returns how many changed."""
        changed = 0
        with self._lock:
            self._check_open()
            for conversation_id in conversation_ids:
                old = self._syncs.get(conversation_id)
                if old is None or old.state is DueState.DONE:
                    continue
                self._syncs[conversation_id] = attrs.evolve(
                    old, state=DueState.DONE, outcome=outcome, lease_owner=None, lease_until=None
                )
                changed += 1
        return changed

    def reschedule(self, conversation_id: str, due_at: datetime, error: str) -> DueSync | None:
        """Move a pending sync to ``due_at`` after a failed attempt (attempts + 1)."""
        due_at = to_utc(due_at, "due_at")
        with self._lock:
            self._check_open()
            old = self._syncs.get(conversation_id)
            if old is None or old.state is not DueState.PENDING:
                return old
            new = attrs.evolve(
                old,
                due_at=due_at,
                attempts=old.attempts + 1,
                last_error=error,
                lease_owner=None,
                lease_until=None,
            )
            self._syncs[conversation_id] = new
            return new

    def dead_letter(self, conversation_id: str, reason: str) -> DueSync | None:
        """Give up on a pending sync with the CRM's ``reason`` (attempts + 1)."""
        with self._lock:
            self._check_open()
            old = self._syncs.get(conversation_id)
            if old is None or old.state is not DueState.PENDING:
                return old
            new = attrs.evolve(
                old,
                state=DueState.DEAD,
                attempts=old.attempts + 1,
                last_error=reason,
                lease_owner=None,
                lease_until=None,
            )
            self._syncs[conversation_id] = new
            return new

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
        with self._lock:
            self._check_open()
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
