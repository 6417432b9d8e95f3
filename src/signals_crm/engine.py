"""What a host application calls: :class:`Integration` and its ``async`` twin.

The engine is the outer shell of the data flow (``docs/concepts.md``)::

    host ──► engine ──► flows ──► core ──► plan ──► (effects) adapter ──► CRM
                                                              ledger, sleep

Both classes are :class:`~signals_crm._flows.operations.Operations` (the engine's state that is
not IO, and one sans-IO flow per operation) plus a driver: each public method builds a flow and
runs it with :func:`signals_crm._drive.drive` (blocking) or :func:`~signals_crm._drive.adrive`
(``async``), performing the effects it yields: adapter calls, ledger operations and sleeps.
Nothing else differs between the twins. The async engine awaits its ledger: an
:class:`~signals_crm.ledger.AsyncLedger` directly, a blocking ledger in a worker thread (the
in-memory ledger, which never waits, inline), so its event loop never blocks on SQLite.
"""

from __future__ import annotations

import inspect
import os
import threading
import time
import warnings
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, Unpack, cast

import anyio

from signals_crm._collector import Pause
from signals_crm._drive import adrive, drive
from signals_crm._flows.effects import THROWN_IN, Collector, Effect, FlowOf, LedgerOp, Sleep
from signals_crm._flows.operations import DEFAULT_SETTLE, Operations
from signals_crm.adapters.base import AsyncCRMAdapter, CRMAdapter
from signals_crm.core.config import SyncConfig
from signals_crm.core.explain import Explanation
from signals_crm.core.model import Company, Conversation, SignalsUser
from signals_crm.core.ownership import OwnershipResult
from signals_crm.core.plan import SyncMode
from signals_crm.core.retry import RetryPolicy
from signals_crm.core.routing import VisitorOwner
from signals_crm.core.users import UserMappingProposal
from signals_crm.exceptions import ConfigurationError, Problem
from signals_crm.ledger.base import AsyncLedger, DueSync, Ledger
from signals_crm.ledger.memory import MemoryLedger
from signals_crm.ledger.sqlite import SQLiteLedger
from signals_crm.ledger.threaded import ThreadedLedger
from signals_crm.reports import ConversationOutcome, DryRun, OutcomeKind, SyncReport

if TYPE_CHECKING:
    from datetime import timedelta

    from signals_crm.adapters.base import ApiUsage, ReportsApiUsage
    from signals_crm.settings import IntegrationSettings

__all__ = [
    "DEFAULT_SETTLE",
    "AsyncIntegration",
    "BackfillOptions",
    "ConversationOutcome",
    "DryRun",
    "EngineOptions",
    "Integration",
    "OutcomeKind",
    "RetryPolicy",
    "SyncReport",
]

T = TypeVar("T")


class EngineOptions(TypedDict, total=False):
    """The options both integrations take (``docs/engine.md`` explains each)."""

    clock: Callable[[], datetime] | None
    random: Callable[[], float] | None
    retry: RetryPolicy | None
    api_budget: float
    batch_size: int | None
    owner_cache_ttl: timedelta
    lease: timedelta
    worker_id: str | None
    settle: timedelta
    optimistic_claims: bool
    pause_gc: bool


class BackfillOptions(TypedDict, total=False):
    """The options of ``backfill`` / ``abackfill``: ``now`` (default: the clock), ``progress``
    (the count done after each batch), ``on_outcome`` (each outcome as it is known)."""

    now: datetime | None
    progress: Callable[[int], None] | None
    on_outcome: Callable[[ConversationOutcome], None] | None


def _open_ledger(ledger: Ledger | str | os.PathLike[str] | None) -> Ledger:
    if ledger is None:
        return MemoryLedger()
    if isinstance(ledger, str | os.PathLike):
        return SQLiteLedger(ledger)
    return ledger


def _is_async(ledger: object) -> bool:
    return inspect.iscoroutinefunction(getattr(type(ledger), "claim", None))


def _usage_of(adapter: object) -> Callable[[], ApiUsage | None]:
    return lambda: cast("ReportsApiUsage", adapter).api_usage


def _renamed(old: str, new: str) -> None:
    warnings.warn(f"{old} is deprecated: use {new}", DeprecationWarning, stacklevel=3)


class Integration(Operations):
    """The integration over a blocking :class:`~signals_crm.adapters.CRMAdapter`.

    ``ledger`` is a :class:`~signals_crm.ledger.Ledger`, or a path for the embedded SQLite
    ledger; ``None`` keeps state in memory only (tests). ``clock``, ``sleep`` and ``random``
    are injected so tests never wait. See ``docs/engine.md`` for every option.
    """

    def __init__(
        self,
        adapter: CRMAdapter,
        settings: IntegrationSettings | SyncConfig,
        *,
        ledger: Ledger | str | os.PathLike[str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        **options: Unpack[EngineOptions],
    ) -> None:
        super().__init__(adapter.capabilities, settings, usage=_usage_of(adapter), **options)
        self.adapter = adapter
        self.ledger = _open_ledger(ledger)
        self._sleep = sleep
        self._lock = threading.RLock()
        self._gc = Pause()

    def __repr__(self) -> str:
        return self._describe(self.ledger)

    def _perform(self, effect: Effect) -> Any:
        """Perform one effect of a flow: a ledger operation, a sleep or an adapter call."""
        if isinstance(effect, LedgerOp):
            return effect.on(self.ledger)
        if isinstance(effect, Sleep):
            self._sleep(effect.seconds)
            return None
        if isinstance(effect, Collector):
            self._gc.set(effect.paused)
            return None
        self._calls += 1
        return getattr(self.adapter, effect.method)(*effect.args)

    def _drive(self, flow: FlowOf[T]) -> T:
        """Run a flow to its result.

        One operation of an integration runs at a time (threads wait their turn), so two
        runs of one worker never handle the same conversation at once.
        """
        with self._lock:
            try:
                return drive(flow, self._perform, catch=THROWN_IN)
            finally:
                self._gc.end()

    def conversation_closed(self, conversation: Conversation) -> DueSync | None:
        """Record that ``conversation`` closed: its sync is due at ``closed_at + delay``.

        Nothing is slept. While the integration is off nothing is scheduled (turning it on does
        not replay history; :meth:`backfill` does that on request). Delivering the same
        conversation again replaces the pending one; a sync that wrote is never replayed. A
        sync that was skipped for what the conversation said (its lead score, its email, still
        open) is re-armed when the conversation is delivered again changed — say, with a
        higher score — and is evaluated again when due (the score counts at sync time).
        """
        return drive(self._closed_flow(conversation), self._perform, catch=THROWN_IN)

    def preflight(self) -> list[Problem]:
        """Every problem of the settings against the CRM's schema and users (re-checked)."""
        return self._drive(self._preflight_flow())

    def run_due(self, now: datetime | None = None, *, limit: int | None = None) -> SyncReport:
        """Sync every conversation whose sync is due at ``now`` (default: the clock)."""
        return self._drive(self._run_due_flow(now, limit))

    def manual_sync(self, conversation: Conversation) -> ConversationOutcome:
        """Sync one visitor now: criteria and delay ignored, no tasks; refused when off."""
        return self._drive(self._manual_flow(conversation))

    def sync_manually(self, conversation: Conversation) -> ConversationOutcome:
        """Deprecated: :meth:`manual_sync`."""
        _renamed("Integration.sync_manually", "manual_sync")
        return self.manual_sync(conversation)

    def backfill(
        self, conversations: Iterable[Conversation], **options: Unpack[BackfillOptions]
    ) -> SyncReport:
        """Sync past conversations by the automatic rules, streaming in batches.

        Memory stays flat however many conversations come: they are read batch by batch, each
        outcome goes to ``on_outcome`` as it is known, and the report keeps totals plus the
        outcomes that need attention. ``progress`` receives, after each batch, how many of the
        first conversations are all done (a resume may skip that many).
        """
        return self._drive(self._backfill_of(conversations, options))

    def dry_run(
        self,
        conversations: Sequence[Conversation],
        *,
        now: datetime | None = None,
        mode: SyncMode = SyncMode.AUTOMATIC,
    ) -> DryRun:
        """The exact writes a sync would make, with nothing written (CRM reads only)."""
        return self._drive(self._dry_run_flow(conversations, now, mode))

    def explain(
        self,
        conversation: Conversation | str,
        *,
        now: datetime | None = None,
        lookup: bool = True,
    ) -> Explanation:
        """Why was, or wasn't, this visitor synced: the core's reasons plus the ledger's facts.

        With ``lookup`` the CRM is read to say what a sync would do now (create, update,
        attach); without, only the rules that need no CRM are evaluated.
        """
        return self._drive(self._explain_flow(conversation, now, lookup))

    def propose_user_mapping(self, signals_users: Iterable[SignalsUser]) -> UserMappingProposal:
        """Propose a user mapping by matching emails with the CRM's active users."""
        return self._drive(self._propose_flow(signals_users))

    def account_owner(self, company: Company) -> OwnershipResult:
        """The account-ownership rules end to end against the CRM (cached for a while)."""
        return self._drive(self._account_owner_flow(company))

    def visitor_owner(self, email: str) -> VisitorOwner:
        """The Signals user owning a returning visitor's Lead, Contact or its Account, with
        the path (which record, which field); cached like :meth:`account_owner`."""
        return self._drive(self._visitor_owner_flow(email))


class AsyncIntegration(Operations):
    """The integration over an :class:`~signals_crm.adapters.AsyncCRMAdapter`.

    The same behaviour as :class:`Integration`, with ``async`` methods prefixed ``a``.
    ``ledger`` may also be an :class:`~signals_crm.ledger.AsyncLedger` (awaited, such as
    ``AsyncPostgresLedger``); a blocking ledger is run in worker threads
    (:class:`~signals_crm.ledger.ThreadedLedger`), the in-memory one inline.
    ``sleep`` defaults to ``anyio.sleep``.
    """

    def __init__(
        self,
        adapter: AsyncCRMAdapter,
        settings: IntegrationSettings | SyncConfig,
        *,
        ledger: Ledger | AsyncLedger | str | os.PathLike[str] | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        **options: Unpack[EngineOptions],
    ) -> None:
        super().__init__(adapter.capabilities, settings, usage=_usage_of(adapter), **options)
        self.adapter = adapter
        self.ledger: Ledger | AsyncLedger
        self._aledger: AsyncLedger | None
        if _is_async(ledger):
            self.ledger = self._aledger = cast("AsyncLedger", ledger)
        else:
            blocking = _open_ledger(cast("Ledger | str | os.PathLike[str] | None", ledger))
            self.ledger = blocking
            self._aledger = None if isinstance(blocking, MemoryLedger) else ThreadedLedger(blocking)
        self._asleep = sleep
        self._alock = anyio.Lock()
        self._gc = Pause()

    def __repr__(self) -> str:
        return self._describe(self.ledger)

    async def _aperform(self, effect: Effect) -> Any:
        """Perform one effect of a flow: await the ledger, the sleep or the adapter's
        ``a``-method."""
        if isinstance(effect, LedgerOp):
            if self._aledger is None:
                return effect.on(self.ledger)  # in memory: never waits
            return await effect.on(self._aledger)
        if isinstance(effect, Sleep):
            await self._asleep(effect.seconds)
            return None
        if isinstance(effect, Collector):
            self._gc.set(effect.paused)
            return None
        self._calls += 1
        return await getattr(self.adapter, "a" + effect.method)(*effect.args)

    async def _adrive(self, flow: FlowOf[T]) -> T:
        """Run a flow to its result.

        One operation of an integration runs at a time (tasks wait their turn), so two
        overlapping runs of one worker never handle the same conversation at once.
        """
        async with self._alock:
            try:
                return await adrive(flow, self._aperform, catch=THROWN_IN)
            finally:
                self._gc.end()

    async def aconversation_closed(self, conversation: Conversation) -> DueSync | None:
        """Record that ``conversation`` closed (see :meth:`Integration.conversation_closed`)."""
        return await adrive(self._closed_flow(conversation), self._aperform, catch=THROWN_IN)

    def conversation_closed(self, conversation: Conversation) -> DueSync | None:
        """:meth:`aconversation_closed`, blocking: only with a blocking ledger (a webhook
        handler that is not ``async``)."""
        ledger = self.ledger
        if _is_async(ledger):
            raise ConfigurationError(
                [Problem("ledger", "is an async ledger: use aconversation_closed")]
            )
        flow = self._closed_flow(conversation)
        return drive(flow, lambda effect: cast("LedgerOp", effect).on(ledger), catch=THROWN_IN)

    async def apreflight(self) -> list[Problem]:
        """Every problem of the settings against the CRM's schema and users (re-checked)."""
        return await self._adrive(self._preflight_flow())

    async def arun_due(
        self, now: datetime | None = None, *, limit: int | None = None
    ) -> SyncReport:
        """Sync every conversation whose sync is due at ``now`` (default: the clock)."""
        return await self._adrive(self._run_due_flow(now, limit))

    async def amanual_sync(self, conversation: Conversation) -> ConversationOutcome:
        """Sync one visitor now: criteria and delay ignored, no tasks; refused when off."""
        return await self._adrive(self._manual_flow(conversation))

    async def async_manually(self, conversation: Conversation) -> ConversationOutcome:
        """Deprecated: :meth:`amanual_sync`."""
        _renamed("AsyncIntegration.async_manually", "amanual_sync")
        return await self.amanual_sync(conversation)

    async def abackfill(
        self, conversations: Iterable[Conversation], **options: Unpack[BackfillOptions]
    ) -> SyncReport:
        """Sync past conversations by the automatic rules (see :meth:`Integration.backfill`)."""
        return await self._adrive(self._backfill_of(conversations, options))

    async def adry_run(
        self,
        conversations: Sequence[Conversation],
        *,
        now: datetime | None = None,
        mode: SyncMode = SyncMode.AUTOMATIC,
    ) -> DryRun:
        """The exact writes a sync would make, with nothing written (CRM reads only)."""
        return await self._adrive(self._dry_run_flow(conversations, now, mode))

    async def aexplain(
        self,
        conversation: Conversation | str,
        *,
        now: datetime | None = None,
        lookup: bool = True,
    ) -> Explanation:
        """Why was, or wasn't, this visitor synced (see :meth:`Integration.explain`)."""
        return await self._adrive(self._explain_flow(conversation, now, lookup))

    async def apropose_user_mapping(
        self, signals_users: Iterable[SignalsUser]
    ) -> UserMappingProposal:
        """Propose a user mapping by matching emails with the CRM's active users."""
        return await self._adrive(self._propose_flow(signals_users))

    async def aaccount_owner(self, company: Company) -> OwnershipResult:
        """The account-ownership rules end to end against the CRM (cached for a while)."""
        return await self._adrive(self._account_owner_flow(company))

    async def avisitor_owner(self, email: str) -> VisitorOwner:
        """Async :meth:`Integration.visitor_owner`."""
        return await self._adrive(self._visitor_owner_flow(email))
