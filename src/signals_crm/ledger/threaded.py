"""Any blocking :class:`~signals_crm.ledger.Ledger` as an :class:`~signals_crm.ledger.AsyncLedger`.

Each call runs the blocking method in a worker thread (``anyio.to_thread.run_sync``), so the
event loop never waits on SQLite's locks or fsyncs. Rules that make this safe:

1. The wrapped ledger must be usable from any thread (both built-in ledgers are: their calls
   are serialised by a lock).
2. A call, once started, runs to its end even if the awaiting task is cancelled: the
   cancellation is delivered when the thread returns, so a write the ledger committed is never
   mistaken for one that was not made.
3. ``limiter`` (an ``anyio.CapacityLimiter``) bounds how many threads this ledger uses at once;
   by default anyio's shared limiter is used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self, TypeVar

import anyio
import anyio.to_thread

from signals_crm.core.model import Conversation, PersonKind
from signals_crm.ledger.base import (
    CommandRecord,
    CommandState,
    CreateInFlight,
    DueState,
    DueSync,
    Ledger,
    LedgerStats,
    Operation,
    Performed,
    PersonLink,
    RunRecord,
)

__all__ = ["ThreadedLedger"]

_T = TypeVar("_T")


class ThreadedLedger:
    """An :class:`~signals_crm.ledger.AsyncLedger` running a blocking ledger in threads."""

    def __init__(self, ledger: Ledger, *, limiter: anyio.CapacityLimiter | None = None) -> None:
        self.ledger = ledger
        self._limiter = limiter

    def __repr__(self) -> str:
        return f"<ThreadedLedger {self.ledger!r}>"

    @property
    def integration(self) -> str:
        """The integration (tenant) the wrapped ledger is bound to."""
        return self.ledger.integration

    async def _run(self, call: Callable[[], _T]) -> _T:
        return await anyio.to_thread.run_sync(call, limiter=self._limiter)

    # Due syncs -------------------------------------------------------------------------------

    async def schedule(self, conversation: Conversation, due_at: datetime) -> DueSync:
        """Awaitable :meth:`Ledger.schedule`."""
        return await self._run(lambda: self.ledger.schedule(conversation, due_at))

    async def schedule_many(
        self, entries: Iterable[tuple[Conversation, datetime]]
    ) -> list[DueSync]:
        """Awaitable :meth:`Ledger.schedule_many`."""
        return await self._run(lambda: self.ledger.schedule_many(entries))

    async def rearm(self, conversation: Conversation, due_at: datetime) -> DueSync | None:
        """Awaitable :meth:`Ledger.rearm`."""
        return await self._run(lambda: self.ledger.rearm(conversation, due_at))

    async def requeue_dead(self, conversation_ids: Iterable[str], due_at: datetime) -> list[str]:
        """Awaitable :meth:`Ledger.requeue_dead`."""
        return await self._run(lambda: self.ledger.requeue_dead(conversation_ids, due_at))

    async def due(self, now: datetime, limit: int) -> list[DueSync]:
        """Awaitable :meth:`Ledger.due`."""
        return await self._run(lambda: self.ledger.due(now, limit))

    async def get_due(self, conversation_id: str) -> DueSync | None:
        """Awaitable :meth:`Ledger.get_due`."""
        return await self._run(lambda: self.ledger.get_due(conversation_id))

    async def syncs_in_state(self, state: DueState, limit: int) -> list[DueSync]:
        """Awaitable :meth:`Ledger.syncs_in_state`."""
        return await self._run(lambda: self.ledger.syncs_in_state(state, limit))

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
        return await self._run(
            lambda: self.ledger.claim(now, limit, owner=owner, lease=lease, until=until)
        )

    async def claimable(
        self, now: datetime | None = None, limit: int = 100, *, owner: str
    ) -> list[DueSync]:
        """Awaitable :meth:`Ledger.claimable`."""
        return await self._run(lambda: self.ledger.claimable(now, limit, owner=owner))

    async def claim_unchanged(
        self,
        seen: Mapping[str, int],
        *,
        owner: str,
        lease: timedelta,
        now: datetime | None = None,
    ) -> list[DueSync]:
        """Awaitable :meth:`Ledger.claim_unchanged`."""
        return await self._run(
            lambda: self.ledger.claim_unchanged(seen, owner=owner, lease=lease, now=now)
        )

    async def extend(
        self,
        conversation_ids: Iterable[str],
        *,
        owner: str,
        lease: timedelta,
        fences: Mapping[str, int] | None = None,
    ) -> list[str]:
        """Awaitable :meth:`Ledger.extend`."""
        return await self._run(
            lambda: self.ledger.extend(conversation_ids, owner=owner, lease=lease, fences=fences)
        )

    async def release(
        self,
        conversation_ids: Iterable[str],
        owner: str,
        *,
        fences: Mapping[str, int] | None = None,
    ) -> int:
        """Awaitable :meth:`Ledger.release`."""
        return await self._run(lambda: self.ledger.release(conversation_ids, owner, fences=fences))

    async def complete(
        self,
        conversation_ids: Iterable[str],
        outcome: str,
        *,
        fences: Mapping[str, int] | None = None,
    ) -> int:
        """Awaitable :meth:`Ledger.complete`."""
        return await self._run(
            lambda: self.ledger.complete(conversation_ids, outcome, fences=fences)
        )

    async def reschedule(
        self, conversation_id: str, due_at: datetime, error: str, *, fence: int | None = None
    ) -> DueSync | None:
        """Awaitable :meth:`Ledger.reschedule`."""
        return await self._run(
            lambda: self.ledger.reschedule(conversation_id, due_at, error, fence=fence)
        )

    async def dead_letter(
        self, conversation_id: str, reason: str, *, fence: int | None = None
    ) -> DueSync | None:
        """Awaitable :meth:`Ledger.dead_letter`."""
        return await self._run(
            lambda: self.ledger.dead_letter(conversation_id, reason, fence=fence)
        )

    # Commands --------------------------------------------------------------------------------

    async def get_command(self, key: str) -> CommandRecord | None:
        """Awaitable :meth:`Ledger.get_command`."""
        return await self._run(lambda: self.ledger.get_command(key))

    async def get_commands(self, keys: Iterable[str]) -> dict[str, CommandRecord]:
        """Awaitable :meth:`Ledger.get_commands`."""
        return await self._run(lambda: self.ledger.get_commands(keys))

    async def commands_for(self, conversation_id: str) -> list[CommandRecord]:
        """Awaitable :meth:`Ledger.commands_for`."""
        return await self._run(lambda: self.ledger.commands_for(conversation_id))

    async def commands_of(self, conversation_ids: Iterable[str]) -> dict[str, list[CommandRecord]]:
        """Awaitable :meth:`Ledger.commands_of`."""
        return await self._run(lambda: self.ledger.commands_of(conversation_ids))

    async def perform(
        self, operations: Sequence[Operation], *, atomic: bool = False
    ) -> list[Performed]:
        """Awaitable :meth:`Ledger.perform`: all the operations in one worker thread."""
        return await self._run(lambda: self.ledger.perform(operations, atomic=atomic))

    async def record(self, commands: Sequence[CommandRecord]) -> None:
        """Awaitable :meth:`Ledger.record`."""
        await self._run(lambda: self.ledger.record(commands))

    async def retry_failed(self, keys: Iterable[str], now: datetime) -> list[str]:
        """Awaitable :meth:`Ledger.retry_failed`."""
        return await self._run(lambda: self.ledger.retry_failed(keys, now))

    async def commands_in_state(self, state: CommandState, limit: int) -> list[CommandRecord]:
        """Awaitable :meth:`Ledger.commands_in_state`."""
        return await self._run(lambda: self.ledger.commands_in_state(state, limit))

    async def creates_in_flight(self, emails: Iterable[str]) -> list[CreateInFlight]:
        """Awaitable :meth:`Ledger.creates_in_flight`."""
        return await self._run(lambda: self.ledger.creates_in_flight(emails))

    # Links -----------------------------------------------------------------------------------

    async def link(self, email: str, crm_id: str, kind: PersonKind) -> None:
        """Awaitable :meth:`Ledger.link`."""
        await self._run(lambda: self.ledger.link(email, crm_id, kind))

    async def link_many(self, links: Iterable[PersonLink]) -> None:
        """Awaitable :meth:`Ledger.link_many`."""
        await self._run(lambda: self.ledger.link_many(links))

    async def links_for(self, emails: Iterable[str]) -> dict[str, PersonLink]:
        """Awaitable :meth:`Ledger.links_for`."""
        return await self._run(lambda: self.ledger.links_for(emails))

    # Run reports -----------------------------------------------------------------------------

    async def record_run(self, summary: Mapping[str, Any]) -> RunRecord:
        """Awaitable :meth:`Ledger.record_run`."""
        return await self._run(lambda: self.ledger.record_run(summary))

    async def recent_runs(self, limit: int) -> list[RunRecord]:
        """Awaitable :meth:`Ledger.recent_runs`."""
        return await self._run(lambda: self.ledger.recent_runs(limit))

    # Housekeeping ----------------------------------------------------------------------------

    async def stats(self) -> LedgerStats:
        """Awaitable :meth:`Ledger.stats`."""
        return await self._run(self.ledger.stats)

    async def close(self) -> None:
        """Awaitable :meth:`Ledger.close`."""
        await self._run(self.ledger.close)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
