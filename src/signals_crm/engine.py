"""What a host application calls: :class:`Integration` and its ``async`` twin.

Both classes share everything but IO (:class:`_IntegrationBase`); each drives the sans-IO flows
of :mod:`signals_crm._flows` with a short loop (:meth:`Integration._drive`,
:meth:`AsyncIntegration._adrive`). The ledger is local storage and is called directly by both.

Lifecycle of an automatic sync::

    conversation_closed(conv)  →  ledger: due at closed_at + delay   (nothing is slept)
    run_due(now)               →  for every due sync, in batches: reconcile, plan, write,
                                  then complete / reschedule / dead-letter it in the ledger
"""

from __future__ import annotations

import contextlib
import logging
import os
import random as _random
import socket
import threading
import time
import warnings
from collections.abc import (
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar, cast

import anyio
import attrs

from signals_crm._flows import (
    CALL_ERRORS,
    STOPS_A_RUN,
    BatchResult,
    Call,
    ConversationOutcome,
    OutcomeKind,
    Reader,
    RetryPolicy,
    Sleep,
    account_owners,
    plan_batch,
    preflight,
    reason_of,
    repair_text,
    sync_batch,
)
from signals_crm.adapters.base import AsyncCRMAdapter, CRMAdapter
from signals_crm.core.config import SyncConfig
from signals_crm.core.crm import Capabilities, FindPeople
from signals_crm.core.explain import (
    Explanation,
    LedgerFacts,
    ManualPreview,
    explain_plan,
    explain_unplanned,
    offline_manual_preview,
)
from signals_crm.core.mapping import blocking_mapping_problems, portable_mapping_problems
from signals_crm.core.model import (
    Company,
    Conversation,
    CRMUser,
    ObjectSchema,
    SignalsUser,
    normalize_email,
)
from signals_crm.core.ownership import OwnershipResult, normalize_domain
from signals_crm.core.plan import Plan, Planner, SyncMode, plan_sync
from signals_crm.core.users import UserMappingProposal, propose_user_mapping
from signals_crm.exceptions import (
    ConfigurationError,
    IntegrationDisabledError,
    LeaseLostError,
    PlanningError,
    Problem,
    RateLimitedError,
    SignalsCRMError,
)
from signals_crm.ledger.base import CommandState, DueState, DueSync, Ledger
from signals_crm.ledger.memory import MemoryLedger
from signals_crm.ledger.sqlite import SQLiteLedger
from signals_crm.reports import DryRun, SyncReport, _Tally

if TYPE_CHECKING:
    from signals_crm.adapters.base import ReportsApiUsage
    from signals_crm.settings import IntegrationSettings

__all__ = [
    "AsyncIntegration",
    "ConversationOutcome",
    "DryRun",
    "Integration",
    "OutcomeKind",
    "RetryPolicy",
    "SyncReport",
]

T = TypeVar("T")


def _to_config(settings: IntegrationSettings | SyncConfig) -> SyncConfig:
    if isinstance(settings, SyncConfig):
        return settings
    return settings.to_config()


def _open_ledger(ledger: Ledger | str | os.PathLike[str] | None) -> Ledger:
    if ledger is None:
        return MemoryLedger()
    if isinstance(ledger, str | os.PathLike):
        return SQLiteLedger(ledger)
    return ledger


_DISABLED = "skipped:integration_disabled"
# Skips for what the conversation itself said: a changed conversation may pass (re-armed).
_REARM_CODES = frozenset(
    {"criteria_not_met", "no_email", "invalid_email", "conversation_open", "delay_pending"}
)


def _rearmable(outcome: str | None) -> bool:
    """Whether a finished sync's outcome is a skip a changed conversation may undo."""
    if outcome is None or not outcome.startswith("skipped:"):
        return False
    codes = set(outcome.removeprefix("skipped:").split(","))
    return bool(codes) and codes <= _REARM_CODES


_MIN_WAIT = timedelta(seconds=1)
DEFAULT_SETTLE = timedelta(minutes=15)
"""How long after an ambiguous write the engine waits before reading the CRM to settle it:
Salesforce's REST API request time limit is 10 minutes, plus 5 minutes of margin for clock
drift between workers (see docs/engine.md)."""
_log = logging.getLogger("signals_crm")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _renamed(old: str, new: str) -> None:
    warnings.warn(f"{old} is deprecated: use {new}", DeprecationWarning, stacklevel=3)


class _IntegrationBase:
    """Everything of the two integrations that is not IO."""

    def __init__(
        self,
        adapter: CRMAdapter | AsyncCRMAdapter,
        settings: IntegrationSettings | SyncConfig,
        *,
        ledger: Ledger | str | os.PathLike[str] | None,
        clock: Callable[[], datetime] | None,
        random: Callable[[], float] | None,
        retry: RetryPolicy | None,
        api_budget: float,
        batch_size: int | None,
        owner_cache_ttl: timedelta,
        lease: timedelta,
        worker_id: str | None,
        settle: timedelta,
    ) -> None:
        if not 0 < api_budget <= 1:
            raise ConfigurationError([Problem("api_budget", "must be in (0, 1]")])
        if batch_size is not None and batch_size < 1:
            raise ConfigurationError([Problem("batch_size", "must be at least 1")])
        if lease <= timedelta(0):
            raise ConfigurationError([Problem("lease", "must be positive")])
        checked: object = settle
        if not isinstance(checked, timedelta) or settle < timedelta(0):
            raise ConfigurationError([Problem("settle", "must be a timedelta of zero or more")])
        capabilities = adapter.capabilities
        self._adapter: object = adapter
        self._caps = capabilities
        self.config = _to_config(settings)
        self.ledger = _open_ledger(ledger)
        self._clock = clock or _utc_now
        self._random = random or _random.Random().random  # noqa: S311  # jitter, not crypto
        self.retry = retry or RetryPolicy()
        self.api_budget = api_budget
        # Five write batches per round: per-kind remainders then cost little (see docs/engine.md).
        self.batch_size = batch_size or 5 * capabilities.write_batch_size
        self._owner_ttl = owner_cache_ttl
        self._owner_cache: dict[str, tuple[datetime, OwnershipResult]] = {}
        self._schema: ObjectSchema | None = None
        self._planner_kept: Planner | None = None
        self._preflight: list[Problem] | None = None
        self._calls = 0
        self._reader = Reader(self.retry, self._random)
        self.lease = lease
        self.settle = settle
        self._emails: dict[str, str | None] = {}
        self._owner = worker_id or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(crm={self._caps.name!r}, enabled={self.config.enabled!r}, "
            f"ledger={type(self.ledger).__name__})"
        )

    @property
    def capabilities(self) -> Capabilities:
        return self._caps

    def _planner(self) -> Planner:
        """The planner of the current configuration (kept across batches; a new one when
        ``config`` is replaced)."""
        planner = self._planner_kept
        if planner is None or planner.config is not self.config:
            planner = self._planner_kept = Planner(self.config, self._caps)
        return planner

    def conversation_closed(self, conversation: Conversation) -> DueSync | None:
        """Record that ``conversation`` closed: its sync is due at ``closed_at + delay``.

        Nothing is slept. While the integration is off nothing is scheduled (turning it on does
        not replay history; :meth:`backfill` does that on request). Delivering the same
        conversation again replaces the pending one; a sync that wrote is never replayed. A
        sync that was skipped for what the conversation said (its lead score, its email, still
        open) is re-armed when the conversation is delivered again changed — say, with a
        higher score — and is evaluated again when due (the score counts at sync time).
        """
        if not self.config.enabled:
            return None
        if conversation.closed_at is None:
            raise ConfigurationError([Problem("closed_at", "the conversation is not closed")])
        due_at = conversation.closed_at + self.config.synchronization_delay
        if repair_text(conversation.id)[1]:
            raise ConfigurationError(
                [Problem("id", "must be text that can be encoded as UTF-8 (no lone surrogate)")]
            )
        conversation, repaired = repair_text(conversation)
        if repaired:
            _log.warning(
                "conversation %s: invalid text replaced by U+FFFD in %s",
                conversation.id,
                ", ".join(repaired),
            )
        stored = self.ledger.schedule(conversation, due_at)
        if (
            stored.state is DueState.DONE
            and _rearmable(stored.outcome)
            and stored.conversation != conversation
        ):
            return self.ledger.rearm(conversation, due_at) or stored
        return stored

    def _ledger_facts(self, conversation_id: str) -> LedgerFacts:
        due = self.ledger.get_due(conversation_id)
        commands = self.ledger.commands_for(conversation_id)
        last_error = due.last_error if due else None
        for record in commands:
            if record.reason and record.state.value in ("failed", "unknown", "planned"):
                last_error = last_error or record.reason
        confirmed = [r for r in commands if r.state is CommandState.CONFIRMED]
        person_id = next((r.crm_id for r in confirmed if r.key.endswith(":person")), None)
        email = due.conversation.email if due is not None else None
        if email and email.strip():
            link = self.ledger.links_for([email]).get(normalize_email(email))
            person_id = link.crm_id if link is not None else person_id
        return LedgerFacts(
            scheduled_for=due.due_at if due else None,
            schedule_state=due.state.value if due else None,
            attempts=max([due.attempts if due else 0, *(r.attempts for r in commands)]),
            last_error=last_error,
            command_states={r.key: r.state.value for r in commands},
            crm_ids={r.key: r.crm_id for r in commands if r.crm_id},
            outcome=due.outcome if due else None,
            synced_at=max((r.updated_at for r in confirmed), default=None),
            person_id=person_id,
        )

    def _conversation(self, conversation: Conversation | str) -> Conversation:
        if isinstance(conversation, Conversation):
            return conversation
        due = self.ledger.get_due(conversation)
        if due is None:
            raise PlanningError(
                f"conversation {conversation!r} is not in the ledger; pass the Conversation"
            )
        return due.conversation

    def _settle(
        self, now: datetime, result: BatchResult, fences: Mapping[str, int] | None = None
    ) -> None:
        """Move each due sync on in the ledger after a batch.

        With ``fences`` (a claimed batch), every update carries the sync's fencing token; a
        sync another worker has claimed since is left to it (its lease was lost)."""
        fences = fences or {}
        try:
            self._settle_fenced(now, result, fences)
        except LeaseLostError:
            for outcome in result.outcomes:  # one by one: only the lost syncs are skipped
                with contextlib.suppress(LeaseLostError):
                    self._settle_fenced(now, attrs.evolve(result, outcomes=[outcome]), fences)

    def _settle_fenced(self, now: datetime, result: BatchResult, fences: Mapping[str, int]) -> None:
        done: dict[str, list[str]] = {}
        later = now + timedelta(seconds=self.retry.reschedule_after)
        for outcome in result.outcomes:
            cid = outcome.conversation_id
            if cid in result.lost:
                continue  # another worker owns it now
            fence = fences.get(cid)
            plan = outcome.plan
            if outcome.kind is OutcomeKind.SKIPPED:
                passes_at = plan.eligibility.passes_at if plan is not None else None
                if passes_at is not None and passes_at > now:
                    due = self.ledger.get_due(cid)
                    if due is not None:
                        self.ledger.schedule(due.conversation, passes_at)
                    continue
                codes = ",".join(plan.eligibility.codes) if plan is not None else ""
                done.setdefault(f"skipped:{codes}", []).append(cid)
            elif outcome.kind is OutcomeKind.FAILED:
                _log.warning("conversation %s dead-lettered: %s", cid, outcome.error)
                self.ledger.dead_letter(cid, outcome.error or "failed", fence=fence)
            elif outcome.kind is OutcomeKind.RETRY:
                due = self.ledger.get_due(cid)
                if due is None:
                    continue
                if outcome.retry_at is not None or outcome.needs_admin or result.rate_limited:
                    # Waiting on a settle window, an administrator or the CRM's limit: not a
                    # failed attempt of its own. Never due again within this run.
                    at = max(outcome.retry_at or later, now + _MIN_WAIT)
                    self.ledger.schedule(due.conversation, at)
                elif due.attempts + 1 >= self.retry.max_reschedules:
                    reason = f"gave up after {due.attempts + 1} runs: {outcome.error}"
                    _log.warning("conversation %s dead-lettered: %s", cid, reason)
                    self.ledger.dead_letter(cid, reason, fence=fence)
                else:
                    self.ledger.reschedule(cid, later, outcome.error or "retry", fence=fence)
            else:
                done.setdefault(outcome.kind.value, []).append(cid)
        for label, ids in done.items():
            held = {cid: fences[cid] for cid in ids if cid in fences}
            self.ledger.complete(ids, label, fences=held or None)

    def _batch_failed(
        self, now: datetime, due: Sequence[DueSync], error: Exception
    ) -> list[ConversationOutcome]:
        """A batch's read or reconcile failed as a whole: reschedule its syncs with backoff,
        counting the attempt; past the cap, dead-letter them with the error (liveness)."""
        reason = f"batch failed: {reason_of(error)}"
        _log.warning("run_due: a batch of %d failed and is rescheduled: %s", len(due), reason)
        outcomes: list[ConversationOutcome] = []
        for sync in due:
            cid = sync.conversation_id
            try:
                if sync.attempts + 1 >= self.retry.max_reschedules:
                    gave_up = f"gave up after {sync.attempts + 1} runs: {reason}"
                    self.ledger.dead_letter(cid, gave_up, fence=sync.fence)
                    outcomes.append(ConversationOutcome(cid, OutcomeKind.FAILED, error=reason))
                    continue
                delay = self.retry.reschedule_delay(sync.attempts, self._random)
                self.ledger.reschedule(
                    cid, now + timedelta(seconds=delay), reason, fence=sync.fence
                )
            except LeaseLostError:
                continue  # another worker owns it now
            outcomes.append(ConversationOutcome(cid, OutcomeKind.RETRY, error=reason))
        return outcomes

    def _owner_key(self, company: Company) -> str:
        return normalize_domain(company.domain) if company.domain else f"name:{company.name}"

    # -- the operations, each one flow shared by both integrations ----------------------------
    #
    # Each yields adapter calls and sleeps, and returns its result; the twins only drive them.

    def _budget_exhausted(self) -> bool:
        if not self._caps.reports_api_usage:
            return False
        usage = cast("ReportsApiUsage", self._adapter).api_usage
        share = usage.fraction_used if usage is not None else None
        return isinstance(share, int | float) and share >= self.api_budget

    def _preflight_flow(self) -> Generator[Call | Sleep, Any, list[Problem]]:
        problems: list[Problem] = yield from preflight(
            self.config,
            self._caps,
            self._reader,
            check_campaign=self._caps.checks_campaigns,
        )
        self._preflight = problems
        return list(problems)

    def _ready_flow(self) -> Generator[Call | Sleep, Any, None]:
        """Preflight once (refusing to write with a mapping it rejects), and the schema."""
        if self._preflight is None:
            yield from self._preflight_flow()
            for problem in portable_mapping_problems(self.config.field_mappings, self._caps):
                _log.warning("mapping never applies on %s: %s", self._caps.name, problem)
        blocking = blocking_mapping_problems(
            self._preflight or (), self.config.field_mappings, self._caps
        )
        if blocking:
            raise ConfigurationError(blocking)
        if self._schema is None and self._caps.supports_describe:
            self._schema = yield from self._reader.read(
                Call("describe", (self._caps.person_object,))
            )

    def _sync_flow(
        self,
        conversations: Sequence[Conversation],
        mode: SyncMode,
        now: datetime,
        fences: Mapping[str, int] | None = None,
    ) -> Generator[Call | Sleep, Any, BatchResult]:
        result: BatchResult = yield from sync_batch(
            conversations,
            self._planner(),
            self.ledger,
            now=now,
            mode=mode,
            schema=self._schema,
            retry=self.retry,
            random=self._random,
            owner=self._owner,
            lease=self.lease,
            settle=self.settle,
            clock=self._clock,
            emails_of=self._email_of,
            fences=fences,
        )
        return result

    def _email_of(self, conversation_id: str) -> str | None:
        """The normalised email of a conversation in the ledger (remembered: it rarely changes)."""
        if conversation_id not in self._emails:
            try:
                due = self.ledger.get_due(conversation_id)
            except SignalsCRMError:
                due = None
            email = due.conversation.email if due is not None else None
            self._emails[conversation_id] = normalize_email(email) if email else None
        return self._emails[conversation_id]

    def _run_due_flow(
        self, now: datetime | None, limit: int | None
    ) -> Generator[Call | Sleep, Any, SyncReport]:
        now = now or self._clock()
        start = self._calls
        if not self.config.enabled:
            # Off: nothing is written, and what is due is not replayed when it is turned on.
            while due := self.ledger.claim(
                now, self.batch_size, owner=self._owner, lease=self.lease
            ):
                self.ledger.complete([d.conversation_id for d in due], _DISABLED)
            return SyncReport()
        yield from self._ready_flow()
        outcomes: list[ConversationOutcome] = []
        exhausted = False
        while limit is None or len(outcomes) < limit:
            if self._budget_exhausted():
                exhausted = True
                break
            size = self.batch_size if limit is None else min(self.batch_size, limit - len(outcomes))
            # Leases are judged by the ledger's clock and fenced: a worker whose clock is off
            # cannot keep one alive, and one that lost its lease cannot record a send.
            due = self.ledger.claim(now, size, owner=self._owner, lease=self.lease)
            if not due:
                break
            fences = {d.conversation_id: d.fence for d in due}
            try:
                result = yield from self._sync_flow(
                    [d.conversation for d in due], SyncMode.AUTOMATIC, now, fences
                )
            except STOPS_A_RUN:
                raise
            except RateLimitedError as error:
                if error.retryable:
                    outcomes.extend(self._batch_failed(now, due, error))
                    continue
                exhausted = True  # the CRM's daily limit, met on a read: stop, all stays due
                break
            except Exception as error:  # noqa: BLE001  # liveness: one batch, not the run
                outcomes.extend(self._batch_failed(now, due, error))
                continue
            finally:
                self.ledger.release([d.conversation_id for d in due], self._owner)
            self._settle(now, result, fences)
            outcomes.extend(result.outcomes)
            if result.rate_limited:
                exhausted = True
                break
        report = SyncReport.of(outcomes, self._calls - start, exhausted)
        _log.info("run_due: %s in %d adapter call(s)", report.counts, report.adapter_calls)
        if exhausted:
            _log.warning("run_due stopped early: the CRM's API limit (or its budget share)")
        return report

    def _manual_flow(
        self, conversation: Conversation
    ) -> Generator[Call | Sleep, Any, ConversationOutcome]:
        if not self.config.enabled:
            raise IntegrationDisabledError("the integration is switched off: no manual sync")
        yield from self._ready_flow()
        now = self._clock()
        # A person asking again is the way to push a dead letter: its failed writes go again.
        failed = [
            r.key
            for r in self.ledger.commands_for(conversation.id)
            if r.state is CommandState.FAILED
        ]
        if failed:
            self.ledger.retry_failed(failed, now)
        result = yield from self._sync_flow([conversation], SyncMode.MANUAL, now)
        return result.outcomes[0]

    def _backfill_flow(
        self,
        conversations: Iterable[Conversation],
        now: datetime | None,
        progress: Callable[[int], None] | None,
        on_outcome: Callable[[ConversationOutcome], None] | None,
    ) -> Generator[Call | Sleep, Any, SyncReport]:
        if not self.config.enabled:
            raise IntegrationDisabledError("the integration is switched off: no backfill")
        yield from self._ready_flow()
        now = now or self._clock()
        start = self._calls
        tally = _Tally()
        exhausted = False
        for batch in _batches(conversations, self.batch_size):
            if self._budget_exhausted():
                exhausted = True
                break
            result = yield from self._sync_flow(batch, SyncMode.AUTOMATIC, now)
            retry_later = [
                o.conversation_id for o in result.outcomes if o.kind is OutcomeKind.RETRY
            ]
            if retry_later:  # finished later by run_due, like any automatic sync
                by_id = {c.id: c for c in batch}
                later = now + timedelta(seconds=self.retry.reschedule_after)
                self.ledger.schedule_many((by_id[cid], later) for cid in retry_later)
            for outcome in result.outcomes:
                tally.add(outcome, keep_all=False)
                if on_outcome is not None:
                    on_outcome(outcome)
            if result.rate_limited:
                exhausted = True
                break
            if progress is not None:
                progress(tally.count)
        return tally.report(self._calls - start, exhausted)

    def _dry_run_flow(
        self, conversations: Sequence[Conversation], now: datetime | None, mode: SyncMode
    ) -> Generator[Call | Sleep, Any, DryRun]:
        start = self._calls
        plans: tuple[Plan, ...] = yield from plan_batch(
            conversations,
            self._planner(),
            now=now or self._clock(),
            mode=mode,
            schema=self._schema,
            reader=self._reader,
        )
        return DryRun(plans, self._calls - start)

    def _explain_flow(
        self, conversation: Conversation | str, now: datetime | None, lookup: bool
    ) -> Generator[Call | Sleep, Any, Explanation]:
        if isinstance(conversation, str) and self.ledger.get_due(conversation) is None:
            # Never scheduled (closed while off, or never delivered): answer, don't raise.
            return explain_unplanned(
                conversation,
                enabled=self.config.enabled,
                ledger=self._ledger_facts(conversation),
            )
        conv = self._conversation(conversation)
        now = now or self._clock()
        facts = self._ledger_facts(conv.id)
        if facts.synced:
            # The automatic sync is final: say what a manual sync would do now instead.
            manual = yield from self._manual_preview_flow(conv, now, lookup)
            plan = _plan_without_crm([conv], self.config, self._caps, now)[0]
            return explain_plan(plan, facts, manual=manual)
        if lookup:
            (plan,) = yield from plan_batch(
                [conv],
                self._planner(),
                now=now,
                mode=SyncMode.AUTOMATIC,
                schema=self._schema,
                reader=self._reader,
            )
        else:
            plan = _plan_without_crm([conv], self.config, self._caps, now)[0]
        return explain_plan(plan, facts)

    def _manual_preview_flow(
        self, conv: Conversation, now: datetime, lookup: bool
    ) -> Generator[Call | Sleep, Any, ManualPreview]:
        if not lookup or not self.config.enabled:
            return offline_manual_preview(conv, self.config, self._caps)
        (plan,) = yield from plan_batch(
            [conv],
            self._planner(),
            now=now,
            mode=SyncMode.MANUAL,
            schema=self._schema,
            reader=self._reader,
        )
        return ManualPreview.of(plan)

    def _account_owner_flow(
        self, company: Company
    ) -> Generator[Call | Sleep, Any, OwnershipResult]:
        now = self._clock()
        key = self._owner_key(company)
        hit = self._owner_cache.get(key)
        if hit is not None and now - hit[0] < self._owner_ttl:
            return hit[1]
        results: list[OwnershipResult] = yield from account_owners(
            [company], self.config, self._reader
        )
        self._owner_cache[key] = (now, results[0])
        return results[0]

    def _propose_flow(
        self, signals_users: Iterable[SignalsUser]
    ) -> Generator[Call | Sleep, Any, UserMappingProposal]:
        crm_users: list[CRMUser] = yield from self._reader.read(Call("list_users", ()))
        return propose_user_mapping(signals_users, crm_users)


class Integration(_IntegrationBase):
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
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] | None = None,
        retry: RetryPolicy | None = None,
        api_budget: float = 0.9,
        batch_size: int | None = None,
        owner_cache_ttl: timedelta = timedelta(minutes=10),
        lease: timedelta = timedelta(minutes=10),
        worker_id: str | None = None,
        settle: timedelta = DEFAULT_SETTLE,
    ) -> None:
        super().__init__(
            adapter,
            settings,
            ledger=ledger,
            clock=clock,
            random=random,
            retry=retry,
            api_budget=api_budget,
            batch_size=batch_size,
            owner_cache_ttl=owner_cache_ttl,
            lease=lease,
            worker_id=worker_id,
            settle=settle,
        )
        self.adapter = adapter
        self._sleep = sleep
        self._lock = threading.RLock()

    def _drive(self, flow: Generator[Call | Sleep, Any, T]) -> T:
        """Run a flow: call the adapter for each call, sleep for each sleep.

        One operation of an integration runs at a time (threads wait their turn), so two
        runs of one worker never handle the same conversation at once.
        """
        with self._lock:
            return self._drive_unlocked(flow)

    def _drive_unlocked(self, flow: Generator[Call | Sleep, Any, T]) -> T:
        try:
            request = next(flow)
            while True:
                if isinstance(request, Sleep):
                    self._sleep(request.seconds)
                    request = flow.send(None)
                    continue
                self._calls += 1
                try:
                    result = getattr(self.adapter, request.method)(*request.args)
                except CALL_ERRORS as error:
                    request = flow.throw(error)
                    continue
                request = flow.send(result)
        except StopIteration as done:
            value: T = done.value
            return value

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
        self,
        conversations: Iterable[Conversation],
        *,
        now: datetime | None = None,
        progress: Callable[[int], None] | None = None,
        on_outcome: Callable[[ConversationOutcome], None] | None = None,
    ) -> SyncReport:
        """Sync past conversations by the automatic rules, streaming in batches.

        Memory stays flat however many conversations come: they are read batch by batch, each
        outcome goes to ``on_outcome`` as it is known, and the report keeps totals plus the
        outcomes that need attention. ``progress`` receives the count done after each batch.
        """
        return self._drive(self._backfill_flow(conversations, now, progress, on_outcome))

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


class AsyncIntegration(_IntegrationBase):
    """The integration over an :class:`~signals_crm.adapters.AsyncCRMAdapter`.

    The same behaviour as :class:`Integration`, with ``async`` methods prefixed ``a``. The
    ledger is called directly (it is local and fast). ``sleep`` defaults to ``anyio.sleep``.
    """

    def __init__(
        self,
        adapter: AsyncCRMAdapter,
        settings: IntegrationSettings | SyncConfig,
        *,
        ledger: Ledger | str | os.PathLike[str] | None = None,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        random: Callable[[], float] | None = None,
        retry: RetryPolicy | None = None,
        api_budget: float = 0.9,
        batch_size: int | None = None,
        owner_cache_ttl: timedelta = timedelta(minutes=10),
        lease: timedelta = timedelta(minutes=10),
        worker_id: str | None = None,
        settle: timedelta = DEFAULT_SETTLE,
    ) -> None:
        super().__init__(
            adapter,
            settings,
            ledger=ledger,
            clock=clock,
            random=random,
            retry=retry,
            api_budget=api_budget,
            batch_size=batch_size,
            owner_cache_ttl=owner_cache_ttl,
            lease=lease,
            worker_id=worker_id,
            settle=settle,
        )
        self.adapter = adapter
        self._asleep = sleep
        self._alock = anyio.Lock()

    async def _adrive(self, flow: Generator[Call | Sleep, Any, T]) -> T:
        """Run a flow: await the adapter's ``a``-method for each call, sleep for each sleep.

        One operation of an integration runs at a time (tasks wait their turn), so two
        overlapping runs of one worker never handle the same conversation at once.
        """
        async with self._alock:
            return await self._adrive_unlocked(flow)

    async def _adrive_unlocked(self, flow: Generator[Call | Sleep, Any, T]) -> T:
        try:
            request = next(flow)
            while True:
                if isinstance(request, Sleep):
                    await self._asleep(request.seconds)
                    request = flow.send(None)
                    continue
                self._calls += 1
                try:
                    result = await getattr(self.adapter, "a" + request.method)(*request.args)
                except CALL_ERRORS as error:
                    request = flow.throw(error)
                    continue
                request = flow.send(result)
        except StopIteration as done:
            value: T = done.value
            return value

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
        self,
        conversations: Iterable[Conversation],
        *,
        now: datetime | None = None,
        progress: Callable[[int], None] | None = None,
        on_outcome: Callable[[ConversationOutcome], None] | None = None,
    ) -> SyncReport:
        """Sync past conversations by the automatic rules (see :meth:`Integration.backfill`)."""
        return await self._adrive(self._backfill_flow(conversations, now, progress, on_outcome))

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


def _plan_without_crm(
    conversations: Sequence[Conversation], config: SyncConfig, caps: Capabilities, now: datetime
) -> tuple[Plan, ...]:
    """Plan as if the CRM held nothing: eligibility and owner rules only, no CRM reads."""
    flow = plan_sync(conversations, config, attrs.evolve(caps, supports_describe=False), now=now)
    try:
        request = next(flow)
        while True:
            count = len(request.emails) if isinstance(request, FindPeople) else 0
            request = flow.send([() for _ in range(count)])
    except StopIteration as done:
        plans: tuple[Plan, ...] = done.value
        return plans
