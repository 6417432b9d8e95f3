"""The engine's operations, one sans-IO flow each: what ``run_due``, a manual sync, a backfill,
``explain``, preflight and the account-owner and user-mapping helpers do.

:class:`Operations` holds the engine's state that is not IO (settings, caches, the retry
policy, the worker's identity) and builds the flows; :class:`signals_crm.Integration` and
:class:`signals_crm.AsyncIntegration` only perform their effects. Every ledger access is a
:class:`~signals_crm._flows.effects.LedgerOp` the flow yields, so the async engine awaits its
ledger and never blocks its event loop.

Lifecycle of an automatic sync::

    conversation_closed(conv)  →  ledger: due at closed_at + delay   (nothing is slept)
    run_due(now)               →  for every due sync, in batches: claim, reconcile, plan,
                                  write (:mod:`.batch`), then complete / reschedule /
                                  dead-letter it in the ledger, and release the claim
"""

from __future__ import annotations

import itertools
import logging
import os
import random as _random
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

from signals_crm._drive import drive
from signals_crm._flows.batch import (
    BatchResult,
    OptimisticClaim,
    account_owners,
    finish_batch,
    plan_batch,
    preflight,
    repair_text,
    sync_batch,
)
from signals_crm._flows.effects import (
    STOPS_A_RUN,
    Call,
    Collector,
    FlowOf,
    LedgerOp,
    Reader,
    reason_of,
    store,
)
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
from signals_crm.core.retry import RetryPolicy
from signals_crm.core.routing import VisitorOwner, plan_visitor_owners
from signals_crm.core.users import UserMappingProposal, propose_user_mapping
from signals_crm.exceptions import (
    AdapterError,
    ClaimRefusedError,
    ConfigurationError,
    IntegrationDisabledError,
    LeaseLostError,
    Problem,
    RateLimitedError,
)
from signals_crm.ledger.base import CommandRecord, CommandState, DueState, DueSync, PersonLink
from signals_crm.reports import ConversationOutcome, DryRun, OutcomeKind, SyncReport, _Tally

if TYPE_CHECKING:
    from signals_crm.adapters.base import ApiUsage
    from signals_crm.settings import IntegrationSettings

__all__ = ["DEFAULT_SETTLE", "Operations"]


def _to_config(settings: IntegrationSettings | SyncConfig) -> SyncConfig:
    if isinstance(settings, SyncConfig):
        return settings
    return settings.to_config()


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


_ENDS_LEASE = frozenset({"complete", "reschedule", "dead_letter"})
_MIN_WAIT = timedelta(seconds=1)
DEFAULT_SETTLE = timedelta(minutes=15)
"""How long after an ambiguous write the engine waits before reading the CRM to settle it:
Salesforce's REST API request time limit is 10 minutes, plus 5 minutes of margin for clock
drift between workers (see docs/engine.md)."""
_log = logging.getLogger("signals_crm")
_NOT_REACHED = "carried into a round the backfill did not reach (the CRM's API limit or budget)"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Operations:
    """The engine's state that is not IO, and one flow per public operation.

    Each ``*_flow`` method returns a flow; the integrations drive it. ``usage`` reads the
    adapter's API usage (``None`` when it reports none); ``calls`` counts the adapter calls a
    driver performed (the reports' ``adapter_calls``).
    """

    def __init__(
        self,
        capabilities: Capabilities,
        settings: IntegrationSettings | SyncConfig,
        *,
        usage: Callable[[], ApiUsage | None],
        clock: Callable[[], datetime] | None = None,
        random: Callable[[], float] | None = None,
        retry: RetryPolicy | None = None,
        api_budget: float = 0.9,
        batch_size: int | None = None,
        owner_cache_ttl: timedelta = timedelta(minutes=10),
        lease: timedelta = timedelta(minutes=10),
        worker_id: str | None = None,
        settle: timedelta = DEFAULT_SETTLE,
        optimistic_claims: bool = True,
        pause_gc: bool = True,
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
        self._caps = capabilities
        self._usage = usage
        self.config = _to_config(settings)
        self._clock = clock or _utc_now
        self._random = random or _random.Random().random  # noqa: S311  # jitter, not crypto
        self.retry = retry or RetryPolicy()
        self.api_budget = api_budget
        # Five write batches per round: per-kind remainders then cost little (see docs/engine.md).
        self.batch_size = batch_size or 5 * capabilities.write_batch_size
        self._owner_ttl = owner_cache_ttl
        self._owner_cache: dict[str, tuple[datetime, OwnershipResult]] = {}
        self._visitor_cache: dict[str, tuple[datetime, VisitorOwner]] = {}
        self._schema: ObjectSchema | None = None
        self._planner_kept: Planner | None = None
        self._preflight: list[Problem] | None = None
        self._calls = 0
        self._reader = Reader(self.retry, self._random)
        self.lease = lease
        self.settle = settle
        self._inactive: frozenset[str] = frozenset()
        self._advisory: list[Problem] = []
        self._owner = worker_id or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.optimistic_claims = optimistic_claims
        self.pause_gc = pause_gc
        self._explicit_until: datetime | None = None  # after a refused optimistic claim

    def _describe(self, ledger: object) -> str:
        return (
            f"{type(self).__name__}(crm={self._caps.name!r}, enabled={self.config.enabled!r}, "
            f"ledger={type(ledger).__name__})"
        )

    @property
    def capabilities(self) -> Capabilities:
        return self._caps

    def _planner(self) -> Planner:
        """The planner of the current configuration (kept across batches; a new one when
        ``config`` is replaced)."""
        planner = self._planner_kept
        if (
            planner is None
            or planner.config is not self.config
            or planner.inactive != self._inactive
        ):
            planner = self._planner_kept = Planner(self.config, self._caps, inactive=self._inactive)
        return planner

    def _learn_inactive(self, result: BatchResult) -> None:
        """CRM users the CRM refused as inactive owners: the owner rules pass over them from
        now on (logged once; the run's report lists each once in ``admin_issues``)."""
        new = result.inactive - self._inactive
        for owner in sorted(new):
            _log.warning("CRM user %s is inactive: the owner rules pass over it now", owner)
        self._inactive |= new

    # -- scheduling -----------------------------------------------------------------------

    def _closed_flow(self, conversation: Conversation) -> FlowOf[DueSync | None]:
        """``conversation_closed``: its sync is due at ``closed_at + delay`` (see the shells)."""
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
        stored: DueSync = yield from store("schedule", conversation, due_at)
        if (
            stored.state is DueState.DONE
            and _rearmable(stored.outcome)
            and stored.conversation != conversation
        ):
            rearmed: DueSync | None = yield from store("rearm", conversation, due_at)
            return rearmed or stored
        return stored

    # -- what the ledger knows --------------------------------------------------------------

    def _ledger_facts(self, conversation_id: str) -> FlowOf[LedgerFacts]:
        due: DueSync | None = yield from store("get_due", conversation_id)
        commands: list[CommandRecord] = yield from store("commands_for", conversation_id)
        last_error = due.last_error if due else None
        for record in commands:
            if record.reason and record.state.value in ("failed", "unknown", "planned"):
                last_error = last_error or record.reason
        confirmed = [r for r in commands if r.state is CommandState.CONFIRMED]
        person_id = next((r.crm_id for r in confirmed if r.key.endswith(":person")), None)
        email = due.conversation.email if due is not None else None
        if email and email.strip():
            links: dict[str, PersonLink] = yield from store("links_for", [email])
            link = links.get(normalize_email(email))
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

    # -- after a batch ----------------------------------------------------------------------

    def _settle(
        self, now: datetime, result: BatchResult, fences: Mapping[str, int], release: LedgerOp
    ) -> FlowOf[None]:
        """Write a claimed batch's last outcomes and links, release its claims and move each
        due sync on, all in one commit.

        Every update carries the sync's fencing token; a sync another worker has claimed
        since is left to it (its lease was lost): its updates are retried one by one, and
        the lost ones skipped."""
        dues: dict[str, DueSync | None] = {}
        for outcome in result.outcomes:
            if self._reads_due(now, outcome) and outcome.conversation_id not in result.lost:
                dues[outcome.conversation_id] = yield from store("get_due", outcome.conversation_id)
        moves = self._moves(now, result, fences, dues)
        # Completing, rescheduling or dead-lettering a sync ends its lease: no release of it.
        ending = {cid for op, ids in moves if op.method in _ENDS_LEASE for cid in ids}
        leases = self._leases(now, result, fences, release, ending)
        performed = yield from finish_batch(result, [*leases, *(op for op, _ in moves)])
        for lease_op, (_, error) in zip(leases, performed[: len(leases)], strict=True):
            if isinstance(error, LeaseLostError) and lease_op.method == "extend":
                # A sync's fence moved since its claim (taken over, or its conversation
                # replaced: ledger rule 1b): the lease it keeps is not this run's to extend.
                # The others are kept one by one.
                yield from self._each_kept(lease_op)
            elif error is not None:
                raise error
        lost: list[str] = []
        for (_, ids), (_, error) in zip(moves, performed[len(leases) :], strict=True):
            if isinstance(error, LeaseLostError):
                lost.extend(ids)
            elif error is not None:
                raise error
        for outcome in (o for o in result.outcomes if o.conversation_id in lost):
            alone = attrs.evolve(result, outcomes=[outcome], writes=())
            for operation, _ in self._moves(now, alone, fences, dues):
                try:  # one by one: only the lost syncs are skipped
                    yield operation
                except LeaseLostError:
                    break

    def _each_kept(self, keep: LedgerOp) -> FlowOf[None]:
        """``keep`` (an ``extend`` of several syncs, refused as a whole) sync by sync, the
        lost ones skipped."""
        (ids,) = keep.args
        fences: Mapping[str, int] = keep.kwargs.get("fences") or {}
        for cid in ids:
            alone = {cid: fences[cid]} if cid in fences else None
            try:
                yield LedgerOp("extend", ([cid],), {**keep.kwargs, "fences": alone})
            except LeaseLostError:
                continue

    def _leases(  # the batch's parts, in the order _settle has them
        self,
        now: datetime,
        result: BatchResult,
        fences: Mapping[str, int],
        release: LedgerOp,
        ending: Iterable[str] = (),
    ) -> list[LedgerOp]:
        """The batch's claims given back, but for the syncs waiting for a settle window: those
        stay leased to this worker until the window's end (and a lease more), so the worker
        that sent the write reads it back when the window passes. Another worker would first
        have to adopt the write, and wait a full window more by its own clock. The syncs of
        ``ending`` (completed, rescheduled or dead-lettered in the same commit, which ends
        their leases) are not released again."""
        ids, owner = release.args
        ended = set(ending)
        if ended:
            ids = [cid for cid in ids if cid not in ended]
            release = LedgerOp("release", (ids, owner))
        waiting: dict[str, datetime] = {
            o.conversation_id: o.retry_at
            for o in result.outcomes
            if o.kind is OutcomeKind.RETRY
            and o.retry_at is not None
            and not o.needs_admin
            and not result.rate_limited
            and o.conversation_id not in result.lost
        }
        if not waiting:
            return [release] if ids else []
        rest = [cid for cid in ids if cid not in waiting]
        longest = max(waiting.values()) - now
        held = {cid: fences[cid] for cid in waiting if cid in fences}
        keep = LedgerOp(
            "extend",
            (list(waiting),),
            {"owner": owner, "lease": max(longest, timedelta(0)) + self.lease, "fences": held},
        )
        return [LedgerOp("release", (rest, owner)), keep] if rest else [keep]

    def _reads_due(self, now: datetime, outcome: ConversationOutcome) -> bool:
        """Whether moving this sync on needs what the ledger holds of it now."""
        if outcome.kind is OutcomeKind.RETRY:
            return True
        plan = outcome.plan
        passes_at = plan.eligibility.passes_at if plan is not None else None
        return outcome.kind is OutcomeKind.SKIPPED and passes_at is not None and passes_at > now

    def _moves(
        self,
        now: datetime,
        result: BatchResult,
        fences: Mapping[str, int],
        dues: Mapping[str, DueSync | None],
    ) -> list[tuple[LedgerOp, list[str]]]:
        """The ledger updates that move each due sync of ``result`` on, with the syncs each
        one moves (pure: ``dues`` holds what was read of the syncs that need it)."""
        moves: list[tuple[LedgerOp, list[str]]] = []
        done: dict[str, list[str]] = {}
        later = now + timedelta(seconds=self.retry.reschedule_after)
        for outcome in result.outcomes:
            cid = outcome.conversation_id
            if cid in result.lost:
                continue  # another worker owns it now
            fence = fences.get(cid)
            plan = outcome.plan
            due = dues.get(cid)
            if outcome.kind is OutcomeKind.SKIPPED:
                if self._reads_due(now, outcome):
                    passes_at = plan.eligibility.passes_at if plan is not None else None
                    if due is not None:
                        moves.append((LedgerOp("schedule", (due.conversation, passes_at)), [cid]))
                    continue
                codes = ",".join(plan.eligibility.codes) if plan is not None else ""
                done.setdefault(f"skipped:{codes}", []).append(cid)
            elif outcome.kind is OutcomeKind.FAILED:
                _log.warning("conversation %s dead-lettered: %s", cid, outcome.error)
                dead = LedgerOp("dead_letter", (cid, outcome.error or "failed"), {"fence": fence})
                moves.append((dead, [cid]))
            elif outcome.kind is OutcomeKind.RETRY:
                if due is None:
                    continue
                if outcome.retry_at is not None or outcome.needs_admin or result.rate_limited:
                    # Waiting on a settle window, an administrator or the CRM's limit: not a
                    # failed attempt of its own. Never due again within this run.
                    at = max(outcome.retry_at or later, now + _MIN_WAIT)
                    moves.append((LedgerOp("schedule", (due.conversation, at)), [cid]))
                elif due.attempts + 1 >= self.retry.max_reschedules:
                    reason = f"gave up after {due.attempts + 1} runs: {outcome.error}"
                    _log.warning("conversation %s dead-lettered: %s", cid, reason)
                    moves.append((LedgerOp("dead_letter", (cid, reason), {"fence": fence}), [cid]))
                else:
                    args = (cid, later, outcome.error or "retry")
                    moves.append((LedgerOp("reschedule", args, {"fence": fence}), [cid]))
            else:
                done.setdefault(outcome.kind.value, []).append(cid)
        for label, ids in done.items():
            held = {cid: fences[cid] for cid in ids if cid in fences}
            complete = LedgerOp("complete", (ids, label), {"fences": held or None})
            moves.append((complete, ids))
        return moves

    def _batch_failed(
        self, now: datetime, due: Sequence[DueSync], error: Exception
    ) -> FlowOf[list[ConversationOutcome]]:
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
                    yield from store("dead_letter", cid, gave_up, fence=sync.fence)
                    outcomes.append(ConversationOutcome(cid, OutcomeKind.FAILED, error=reason))
                    continue
                delay = self.retry.reschedule_delay(sync.attempts, self._random)
                at = now + timedelta(seconds=delay)
                yield from store("reschedule", cid, at, reason, fence=sync.fence)
            except LeaseLostError:
                continue  # another worker owns it now
            outcomes.append(ConversationOutcome(cid, OutcomeKind.RETRY, error=reason))
        return outcomes

    def _owner_key(self, company: Company) -> str:
        return normalize_domain(company.domain) if company.domain else f"name:{company.name}"

    # -- the operations, each one flow shared by both integrations ----------------------------

    def _budget_exhausted(self) -> bool:
        if not self._caps.reports_api_usage:
            return False
        usage = self._usage()
        share = usage.fraction_used if usage is not None else None
        return isinstance(share, int | float) and share >= self.api_budget

    def _preflight_flow(self) -> FlowOf[list[Problem]]:
        inactive: dict[str, Problem] = {}
        problems: list[Problem] = yield from preflight(
            self.config,
            self._caps,
            self._reader,
            check_campaign=self._caps.checks_campaigns,
            inactive=inactive,
        )
        self._preflight = problems
        # As the CRM says now (a reactivated user too). The owner rules pass over them, so
        # preflight reports them without stopping the sync (docs/engine.md).
        self._inactive = frozenset(inactive)
        self._advisory = list(inactive.values())
        return list(problems)

    def _ready_flow(self) -> FlowOf[None]:
        """Preflight once (refusing to write with a mapping it rejects), and the schema."""
        if self._preflight is None:
            yield from self._preflight_flow()
            for problem in portable_mapping_problems(self.config.field_mappings, self._caps):
                _log.warning("mapping never applies on %s: %s", self._caps.name, problem)
        blocking = [
            p
            for p in blocking_mapping_problems(
                self._preflight or (), self.config.field_mappings, self._caps
            )
            if p not in self._advisory
        ]
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
        *,
        carry: bool = False,
        claim: OptimisticClaim | None = None,
    ) -> FlowOf[BatchResult]:
        result: BatchResult = yield from sync_batch(
            conversations,
            self._planner(),
            now=now,
            mode=mode,
            schema=self._schema,
            retry=self.retry,
            random=self._random,
            owner=self._owner,
            lease=self.lease,
            settle=self.settle,
            clock=self._clock,
            hold_emails=True,
            fences=fences,
            carry=carry,
            claim=claim,
        )
        return result

    def _run_due_flow(self, now: datetime | None, limit: int | None) -> FlowOf[SyncReport]:
        now = now or self._clock()
        start = self._calls
        claim = {"owner": self._owner, "lease": self.lease}
        if not self.config.enabled:
            # Off: nothing is written, and what is due is not replayed when it is turned on.
            while due := (yield from store("claim", now, self.batch_size, **claim)):
                yield from store("complete", [d.conversation_id for d in due], _DISABLED)
                if len(due) < self.batch_size:
                    break  # all there was (what becomes due meanwhile waits for the next run)
            return SyncReport()
        try:
            yield from self._ready_flow()
        except STOPS_A_RUN:
            raise
        except AdapterError as error:
            # The preflight reads failed past their retries: nothing is claimed yet, so all
            # stays due for the next run (liveness: a run returns its report).
            calls = self._calls - start
            if isinstance(error, RateLimitedError) and not error.retryable:
                _log.warning("run_due stopped early: the CRM's API limit (in its preflight)")
                return SyncReport(adapter_calls=calls, budget_exhausted=True)
            reason = f"preflight failed: {reason_of(error)}"
            _log.warning("run_due: %s; the due syncs wait for the next run", reason)
            return SyncReport(adapter_calls=calls, stopped=reason)
        outcomes: list[ConversationOutcome] = []
        exhausted = False
        first = True
        while limit is None or len(outcomes) < limit:
            if self._budget_exhausted():
                exhausted = True
                break
            size = self.batch_size if limit is None else min(self.batch_size, limit - len(outcomes))
            optimistic: OptimisticClaim | None = None
            if first and self._optimistic():
                # A run's first batch is read, not claimed: fewer than a full batch (a run
                # seconds after one visitor's delay, the latency case) is claimed optimistically
                # with the batch's first commit, sparing the claim's own. A full batch (a
                # backlog, a fleet) is claimed explicitly, so workers never plan the same rows.
                first = False
                due = yield from store("claimable", now, size, owner=self._owner)
                if not due:
                    break
                if len(due) < size:
                    seen = {d.conversation_id: d.fence for d in due}
                    optimistic = OptimisticClaim(
                        LedgerOp("claim_unchanged", (seen,), {**claim, "now": now})
                    )
            if optimistic is None:
                # Leases are judged by the ledger's clock and fenced: a worker whose clock is
                # off cannot keep one alive, and one that lost its lease cannot record a send.
                due = yield from store("claim", now, size, **claim)
                if not due:
                    break
            try:
                done, stop = yield from self._due_batch(now, due, optimistic)
            except ClaimRefusedError as refused:
                # Another worker took one of them (or it changed) between the read and the
                # commit: nothing of the batch was written, nothing sent. Claim, plan again.
                _log.info("run_due: optimistic claim refused, claiming explicitly: %s", refused)
                # Other workers take the same syncs: claim explicitly for a lease's time, so
                # they stop spending CRM reads on each other's work.
                self._explicit_until = self._clock() + self.lease
                due = yield from store("claim", now, size, **claim)
                if not due:
                    break
                done, stop = yield from self._due_batch(now, due, None)
            outcomes.extend(done)
            if stop:
                exhausted = True
                break
            if len(due) < size:
                # That was all there was: no claim again in this run (an empty claim is one
                # more commit). Work that becomes due during the run waits for the next.
                break
        report = SyncReport.of(outcomes, self._calls - start, exhausted)
        _log.info("run_due: %s in %d adapter call(s)", report.counts, report.adapter_calls)
        if exhausted:
            _log.warning("run_due stopped early: the CRM's API limit (or its budget share)")
        return report

    def _optimistic(self) -> bool:
        """Whether a run may claim its first batch optimistically: unless switched off
        (``optimistic_claims=False``, a fleet's default), or refused within a lease's time."""
        if not self.optimistic_claims:
            return False
        until = self._explicit_until
        return until is None or self._clock() >= until

    def _due_batch(
        self, now: datetime, due: Sequence[DueSync], optimistic: OptimisticClaim | None
    ) -> FlowOf[tuple[list[ConversationOutcome], bool]]:
        """Sync one batch of due syncs, claimed (or, with ``optimistic``, only read: the
        claim goes with the batch's first commit, and its refusal is raised as
        ``ClaimRefusedError`` with nothing written). Returns the outcomes, and whether the
        CRM's API limit stops the run."""
        bump = 0 if optimistic is None else 1  # the fences the optimistic claim hands out
        fences = {d.conversation_id: d.fence + bump for d in due}
        ids = [d.conversation_id for d in due]
        released = False

        def held() -> list[DueSync]:
            """The syncs with the fences this worker holds them by now."""
            if optimistic is None or not optimistic.committed:
                return list(due)  # claimed explicitly, or not claimed at all (as read)
            return [attrs.evolve(d, fence=fences[d.conversation_id]) for d in due]

        try:
            result = yield from self._sync_flow(
                [d.conversation for d in due], SyncMode.AUTOMATIC, now, fences, claim=optimistic
            )
            released = True  # with the batch's last writes, by _settle below
        except STOPS_A_RUN:
            raise
        except ClaimRefusedError:
            released = True  # nothing was claimed
            raise
        except RateLimitedError as error:
            if error.retryable:
                return (yield from self._batch_failed(now, held(), error)), False
            return [], True  # the CRM's daily limit, met on a read: stop, all stays due
        except Exception as error:  # noqa: BLE001  # liveness: one batch, not the run
            return (yield from self._batch_failed(now, held(), error)), False
        finally:
            # Also on the way out of a crash: drivers throw every exception into the flow.
            if not released and (optimistic is None or optimistic.committed):
                yield from store("release", ids, self._owner)
        yield from self._settle(now, result, fences, LedgerOp("release", (ids, self._owner)))
        self._learn_inactive(result)
        return result.outcomes, result.rate_limited

    def _manual_flow(self, conversation: Conversation) -> FlowOf[ConversationOutcome]:
        if not self.config.enabled:
            raise IntegrationDisabledError("the integration is switched off: no manual sync")
        yield from self._ready_flow()
        now = self._clock()
        # A person asking again is the way to push a dead letter: its failed writes go again.
        records: list[CommandRecord] = yield from store("commands_for", conversation.id)
        failed = [r.key for r in records if r.state is CommandState.FAILED]
        if failed:
            yield from store("retry_failed", failed, now)
        result: BatchResult = yield from self._sync_flow([conversation], SyncMode.MANUAL, now)
        yield from finish_batch(result)
        self._learn_inactive(result)
        return result.outcomes[0]

    def _backfill_flow(
        self,
        conversations: Iterable[Conversation],
        now: datetime | None,
        progress: Callable[[int], None] | None,
        on_outcome: Callable[[ConversationOutcome], None] | None,
    ) -> FlowOf[SyncReport]:
        if not self.config.enabled:
            raise IntegrationDisabledError("the integration is switched off: no backfill")
        yield from self._ready_flow()
        now = now or self._clock()
        start = self._calls
        tally = _Tally()
        exhausted = False
        # Each round but the last carries the conversations whose writes would only part-fill
        # a call into the next one (signals_crm._flows.carry), so the rounds send full calls.
        # A round is batch_size new conversations plus those carried (at most half a round),
        # and the stream is read one ahead so the last round is known as such.
        stream = iter(conversations)
        ahead = list(itertools.islice(stream, 1))
        read = 0  # conversations taken from the stream
        carried: list[tuple[int, Conversation]] = []  # with their place in the stream
        while ahead or carried:
            fresh = [*ahead, *itertools.islice(stream, self.batch_size - len(ahead))]
            ahead = list(itertools.islice(stream, 1))
            places = {c.id: read + n for n, c in enumerate(fresh)}
            read += len(fresh)
            places.update({c.id: place for place, c in carried})
            batch = [*(c for _, c in carried), *fresh]
            if self._budget_exhausted():
                exhausted = True
                break
            if self.pause_gc:  # the round's objects form no cycles (signals_crm._collector)
                yield Collector(paused=True)
            result: BatchResult = yield from self._sync_flow(
                batch, SyncMode.AUTOMATIC, now, carry=bool(ahead)
            )
            by_id = {c.id: c for c in batch}
            carried = [(places[cid], by_id[cid]) for cid in result.carried]
            self._learn_inactive(result)
            retry = OutcomeKind.RETRY  # (read once: a member read from its enum is a lookup)
            retry_later = [o.conversation_id for o in result.outcomes if o.kind is retry]
            more: list[LedgerOp] = []
            if retry_later:  # finished later by run_due, like any automatic sync
                later = now + timedelta(seconds=self.retry.reschedule_after)
                entries = [(by_id[cid], later) for cid in retry_later]
                more.append(LedgerOp("schedule_many", (entries,)))
            for _, error in (yield from finish_batch(result, more)):
                if error is not None:
                    raise error
            tally.add_streamed(result.outcomes)  # (the tally is local: counted first)
            # The round's objects (its plans, commands, records) are freed before the collector
            # runs again: its first young collection walks only what is still alive.
            outcomes = result.outcomes if on_outcome is not None else ()
            stopped = result.rate_limited
            del result
            if self.pause_gc:
                yield Collector(paused=False)
            if on_outcome is not None:
                for outcome in outcomes:
                    on_outcome(outcome)
            if stopped:
                exhausted = True
                break
            if progress is not None:
                # How many of the stream's first conversations are all done: a carried one
                # holds the count back, so a resume after it never skips what is not done.
                progress(min((place for place, _ in carried), default=read))
        if carried:  # the run stopped early: run_due finishes them, like any automatic sync
            later = now + timedelta(seconds=self.retry.reschedule_after)
            yield from store("schedule_many", [(c, later) for _, c in carried])
            for _, conversation in carried:
                outcome = ConversationOutcome(
                    conversation.id, OutcomeKind.RETRY, error=_NOT_REACHED, retry_at=later
                )
                tally.add(outcome, keep_all=False)
                if on_outcome is not None:
                    on_outcome(outcome)
        return tally.report(self._calls - start, exhausted)

    def _backfill_of(
        self, conversations: Iterable[Conversation], options: Mapping[str, Any]
    ) -> FlowOf[SyncReport]:
        """The backfill flow of ``backfill(conversations, **options)``."""
        return self._backfill_flow(
            conversations, options.get("now"), options.get("progress"), options.get("on_outcome")
        )

    def _dry_run_flow(
        self, conversations: Sequence[Conversation], now: datetime | None, mode: SyncMode
    ) -> FlowOf[DryRun]:
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
    ) -> FlowOf[Explanation]:
        if isinstance(conversation, str):
            due: DueSync | None = yield from store("get_due", conversation)
            if due is None:
                # Never scheduled (closed while off, or never delivered): answer, don't raise.
                return explain_unplanned(
                    conversation,
                    enabled=self.config.enabled,
                    ledger=(yield from self._ledger_facts(conversation)),
                )
            conv = due.conversation
        else:
            conv = conversation
        now = now or self._clock()
        facts: LedgerFacts = yield from self._ledger_facts(conv.id)
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
    ) -> FlowOf[ManualPreview]:
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

    def _account_owner_flow(self, company: Company) -> FlowOf[OwnershipResult]:
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

    def _visitor_owner_flow(self, email: str) -> FlowOf[VisitorOwner]:
        now = self._clock()
        key = normalize_email(email)
        hit = self._visitor_cache.get(key)
        if hit is not None and now - hit[0] < self._owner_ttl:
            return hit[1]
        plan = plan_visitor_owners(
            [email],
            self.config.users,
            owner_field=self._caps.owner_field,
            read_accounts=self._caps.reads_accounts,
        )
        results: list[VisitorOwner] = yield from self._reader.lookups(plan)
        self._visitor_cache[key] = (now, results[0])
        return results[0]

    def _propose_flow(self, signals_users: Iterable[SignalsUser]) -> FlowOf[UserMappingProposal]:
        crm_users: list[CRMUser] = yield from self._reader.read(Call("list_users", ()))
        return propose_user_mapping(signals_users, crm_users)


def _plan_without_crm(
    conversations: Sequence[Conversation], config: SyncConfig, caps: Capabilities, now: datetime
) -> tuple[Plan, ...]:
    """Plan as if the CRM held nothing: eligibility and owner rules only, no CRM reads."""
    flow = plan_sync(conversations, config, attrs.evolve(caps, supports_describe=False), now=now)

    def nothing(request: object) -> list[tuple[()]]:
        return [() for _ in (request.emails if isinstance(request, FindPeople) else ())]

    plans: tuple[Plan, ...] = drive(flow, nothing)
    return plans
