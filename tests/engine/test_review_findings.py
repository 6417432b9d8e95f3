"""An adversarial review of the sync engine against DESIGN.md sections 2-4 and docs/engine.md.

The first group pins the fixes of the bugs the review found (each test failed before its fix);
the second pins behaviour the review checked and found correct. Everything runs against the
in-memory CRM with injected clocks and sleeps; a "crash" is an exception the drivers do not
catch, raised from the adapter before or after its work, after which a fresh engine reopens the
same ledger.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import attrs
import httpx
import pytest

from signals_crm._flows import OutcomeKind, RetryPolicy
from signals_crm.adapters.base import CRMAdapter
from signals_crm.adapters.salesforce import SalesforceAdapter, StaticToken
from signals_crm.core.config import (
    Criteria,
    FieldMapping,
    FieldMappings,
    SyncConfig,
    UserMapEntry,
    UserMapping,
)
from signals_crm.core.crm import (
    CampaignMembershipWrite,
    PersonWrite,
    ReconcileQuery,
    TaskWrite,
    WriteResult,
)
from signals_crm.core.model import (
    Conversation,
    Meeting,
    Participants,
    PersonKind,
    SignalsUser,
    Visitor,
)
from signals_crm.engine import AsyncIntegration, Integration
from signals_crm.exceptions import (
    ConfigurationError,
    CRMAPIError,
    CRMServerError,
    DuplicateRecordError,
    RateLimitedError,
    TransportError,
)
from signals_crm.ledger import MemoryLedger, SQLiteLedger
from signals_crm.ledger.base import CommandState, DueState
from signals_crm.testing.memory import InMemoryCRM
from signals_crm.testing.salesforce import LocalSalesforce, SalesforceBackdoor

CLOSED = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
LATER = CLOSED + timedelta(hours=1)
EMAIL = "lena@brightfield.test"


class Crash(BaseException):
    """Stands for the process dying mid-request (no engine code catches it)."""


class LoopGuard(BaseException):
    """Raised by the test CRM when a run makes far more calls than any sane run would."""


class HookedCRM(InMemoryCRM):
    """The in-memory CRM with crash points, scripted per-record failures and a call guard."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.crash_before: set[str] = set()
        self.crash_after: set[str] = set()
        self.task_failures: list[CRMAPIError] = []
        self.create_failures: list[CRMAPIError] = []
        self.membership_failures: list[CRMAPIError] = []
        self.reconcile_answers: list[list[str | None]] = []
        self.call_limit: int | None = None

    def _enter(self, method: str) -> None:
        if self.call_limit is not None and sum(self.calls.values()) >= self.call_limit:
            raise LoopGuard
        if method in self.crash_before:
            self.crash_before.discard(method)
            raise Crash

    def _leave(self, method: str) -> None:
        if method in self.crash_after:
            self.crash_after.discard(method)
            raise Crash

    def create_people(self, records: Sequence[PersonWrite]) -> list[WriteResult]:
        """Create people unless a scripted failure says otherwise."""
        self._enter("create_people")
        if self.create_failures:
            error = self.create_failures.pop(0)
            self.calls["create_people"] += 1
            return [WriteResult.failure(error) for _ in records]
        result = super().create_people(records)
        self._leave("create_people")
        return result

    def create_tasks(self, tasks: Sequence[TaskWrite]) -> list[WriteResult]:
        """Create tasks unless a scripted failure says otherwise."""
        self._enter("create_tasks")
        if self.task_failures:
            error = self.task_failures.pop(0)
            self.calls["create_tasks"] += 1
            return [WriteResult.failure(error) for _ in tasks]
        result = super().create_tasks(tasks)
        self._leave("create_tasks")
        return result

    def add_to_campaign(self, memberships: Sequence[CampaignMembershipWrite]) -> list[WriteResult]:
        """Add members unless a scripted failure says otherwise."""
        self._enter("add_to_campaign")
        if self.membership_failures:
            error = self.membership_failures.pop(0)
            self.calls["add_to_campaign"] += 1
            return [WriteResult.failure(error) for _ in memberships]
        result = super().add_to_campaign(memberships)
        self._leave("add_to_campaign")
        return result

    def reconcile(self, queries: Sequence[ReconcileQuery]) -> list[str | None]:
        """Reconcile, or give a scripted (possibly malformed) answer."""
        self._enter("reconcile")
        if self.reconcile_answers:
            self.calls["reconcile"] += 1
            return self.reconcile_answers.pop(0)
        return super().reconcile(queries)


SALLY = SignalsUser(id="u-sally", email="sally@vendor.test")


def make_crm(kind: PersonKind = PersonKind.LEAD) -> HookedCRM:
    crm = HookedCRM(person_kind=kind)
    crm.seed_user(email="sally@vendor.test")
    return crm


def config(crm: CRMAdapter, campaign: str | None = None, **changes: Any) -> SyncConfig:
    owner = crm.list_users()[0].id
    base: dict[str, Any] = {
        "criteria": Criteria.ONE_STAR,
        "synchronization_delay": timedelta(minutes=30),
        "campaign_id": campaign,
        "users": UserMapping((UserMapEntry(owner, signals_user_id="u-sally"),)),
        "field_mappings": FieldMappings(
            lead=(
                FieldMapping("contact.first_name", "FirstName", overwrite=True),
                FieldMapping("contact.last_name", "LastName"),
                FieldMapping("company.name", "Company"),
            ),
            contact=(
                FieldMapping("contact.first_name", "firstname", overwrite=True),
                FieldMapping("contact.last_name", "lastname"),
            ),
        ),
        "placeholders": {"LastName": "[not provided]", "Company": "[not provided]"},
    }
    base.update(changes)
    return SyncConfig(**base)


def conv(
    cid: str = "c-1",
    email: str = EMAIL,
    *,
    score: int | None = 2,
    first: str = "Lena",
    meeting: bool = False,
) -> Conversation:
    return Conversation(
        id=cid,
        closed_at=CLOSED,
        lead_score=score,
        visitor=Visitor(email=email, first_name=first, last_name="Okafor"),
        participants=Participants(meeting_scheduler=SALLY),
        transcript="Visitor: hello",
        meeting=Meeting(id="m1", name="Demo") if meeting else None,
    )


def engine(crm: CRMAdapter, cfg: SyncConfig, **kw: Any) -> Integration:
    kw.setdefault("ledger", MemoryLedger())
    kw.setdefault("sleep", lambda _seconds: None)
    kw.setdefault("random", lambda: 0.5)
    kw.setdefault("clock", lambda: LATER)
    return Integration(crm, cfg, **kw)


def async_engine(crm: InMemoryCRM, cfg: SyncConfig, **kw: Any) -> AsyncIntegration:
    async def nap(_seconds: float) -> None:
        return None

    kw.setdefault("ledger", MemoryLedger())
    kw.setdefault("sleep", nap)
    kw.setdefault("random", lambda: 0.5)
    kw.setdefault("clock", lambda: LATER)
    return AsyncIntegration(crm, cfg, **kw)


def state_of(sync: Integration | AsyncIntegration, cid: str) -> str | None:
    due = sync.ledger.get_due(cid)
    return None if due is None else due.state.value


# ------------------------------------------------------------------------------------------------
# Findings of the review: each was a bug (fixed); the tests keep them fixed


def test_crash_during_membership_call_is_finished_after_restart() -> None:
    """Killed while the campaign membership request was in flight, a restart finishes the sync."""
    crm = make_crm()
    campaign = crm.seed_campaign(name="Chat")
    cfg = config(crm, campaign)
    ledger = MemoryLedger()
    first = engine(crm, cfg, ledger=ledger, worker_id="w1")
    first.conversation_closed(conv())
    crm.crash_before.add("add_to_campaign")
    with pytest.raises(Crash):
        first.run_due(LATER)
    second = engine(crm, cfg, ledger=ledger, worker_id="w1")
    for hours in range(3):
        second.run_due(LATER + timedelta(hours=hours))
    (lead,) = crm.people_with_email(EMAIL)
    assert crm.campaign_members(campaign) == {lead}
    assert state_of(second, "c-1") == "done"


@pytest.mark.anyio
async def test_async_crash_during_membership_call_is_finished_after_restart() -> None:
    """The async twin: killed during the membership call, a restart finishes the sync."""
    crm = make_crm()
    campaign = crm.seed_campaign(name="Chat")
    cfg = config(crm, campaign)
    ledger = MemoryLedger()
    first = async_engine(crm, cfg, ledger=ledger, worker_id="w1")
    first.conversation_closed(conv())
    crm.crash_before.add("add_to_campaign")
    with pytest.raises(Crash):
        await first.arun_due(LATER)
    second = async_engine(crm, cfg, ledger=ledger, worker_id="w1")
    for hours in range(3):
        await second.arun_due(LATER + timedelta(hours=hours))
    (lead,) = crm.people_with_email(EMAIL)
    assert crm.campaign_members(campaign) == {lead}
    assert state_of(second, "c-1") == "done"


class DyingTransport(httpx.BaseTransport):
    """Dies (raises Crash) once, as the CampaignMember request is about to leave."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.armed = True

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Forward the request, unless it is the first CampaignMember write."""
        if self.armed and b"CampaignMember" in request.read():
            self.armed = False
            raise Crash
        return self.inner.handle_request(request)


def test_salesforce_crash_during_membership_request_is_finished_after_restart(
    tmp_path: Path,
) -> None:
    """Against the local Salesforce, a kill during the CampaignMember request is finished later."""
    org = LocalSalesforce()
    door = SalesforceBackdoor(org)
    door.seed_user(email="sally@vendor.test")
    campaign = door.seed_campaign(name="Chat")
    transport = DyingTransport(org.transport())
    path = tmp_path / "ledger.sqlite3"
    with httpx.Client(transport=transport) as http:
        adapter = SalesforceAdapter(http, StaticToken(org.issue_token(), org.instance_url))
        cfg = config(adapter, campaign)
        with SQLiteLedger(path) as ledger:
            first = engine(adapter, cfg, ledger=ledger, worker_id="w1")
            first.conversation_closed(conv())
            with pytest.raises(Crash):
                first.run_due(LATER)
        with SQLiteLedger(path) as ledger:
            second = engine(adapter, cfg, ledger=ledger, worker_id="w1")
            for hours in range(3):
                second.run_due(LATER + timedelta(hours=hours))
            (lead,) = door.people_with_email(EMAIL)
            assert door.campaign_members(campaign) == {lead}
            assert state_of(second, "c-1") == "done"


class RacingCRM(HookedCRM):
    """Runs ``during_create`` once while a create request is in flight (another process)."""

    during_create: Any = None

    def create_people(self, records: Sequence[PersonWrite]) -> list[WriteResult]:
        """Let the other process act while this request is on the wire, then create."""
        hook, self.during_create = self.during_create, None
        if hook is not None:
            hook()
        return super().create_people(records)


def test_manual_sync_racing_an_in_flight_automatic_create_makes_one_lead() -> None:
    """A manual sync while the automatic sync's create is on the wire creates no second Lead."""
    crm = RacingCRM(person_kind=PersonKind.LEAD)
    crm.seed_user(email="sally@vendor.test")
    cfg = config(crm)
    ledger = MemoryLedger()
    auto = engine(crm, cfg, ledger=ledger, worker_id="auto")
    manual = engine(crm, cfg, ledger=ledger, worker_id="ui")
    auto.conversation_closed(conv())
    crm.during_create = lambda: manual.manual_sync(conv())
    auto.run_due(LATER)
    assert len(crm.people_with_email(EMAIL)) == 1


class AwaitingCRM(HookedCRM):
    """An async CRM whose writes yield to the event loop, as real network IO does."""

    async def acreate_people(self, records: Sequence[PersonWrite]) -> list[WriteResult]:
        """Yield to the loop (the request is on the wire), then create."""
        await anyio.lowlevel.checkpoint()
        return self.create_people(records)


@pytest.mark.anyio
async def test_overlapping_async_runs_create_one_lead() -> None:
    """Two overlapping runs of one async integration create one Lead, not two."""
    crm = AwaitingCRM(person_kind=PersonKind.LEAD)
    crm.seed_user(email="sally@vendor.test")
    sync = async_engine(crm, config(crm))
    sync.conversation_closed(conv())
    async with anyio.create_task_group() as group:
        group.start_soon(sync.arun_due, LATER)
        group.start_soon(sync.arun_due, LATER)
    assert len(crm.people_with_email(EMAIL)) == 1


def test_two_workers_two_conversations_one_email_make_one_lead() -> None:
    """Two workers sharing a ledger, each syncing a conversation of the same visitor: one Lead."""
    crm = RacingCRM(person_kind=PersonKind.LEAD)
    crm.seed_user(email="sally@vendor.test")
    cfg = config(crm)
    ledger = MemoryLedger()
    worker_a = engine(crm, cfg, ledger=ledger, worker_id="a", batch_size=1)
    worker_b = engine(crm, cfg, ledger=ledger, worker_id="b", batch_size=1)
    worker_a.conversation_closed(conv("c-1"))
    worker_a.conversation_closed(conv("c-2"))
    crm.during_create = lambda: worker_b.run_due(LATER, limit=1)
    worker_a.run_due(LATER, limit=1)
    assert len(crm.people_with_email(EMAIL)) == 1


def test_sync_records_the_visitor_link() -> None:
    """After a sync the ledger links the visitor's email to the CRM record it was synced to."""
    crm = make_crm()
    sync = engine(crm, config(crm))
    sync.conversation_closed(conv())
    sync.run_due(LATER)
    (lead,) = crm.people_with_email(EMAIL)
    links = sync.ledger.links_for([EMAIL])
    assert links[EMAIL].crm_id == lead


def test_preflight_reports_an_unknown_campaign() -> None:
    """Preflight names a configured campaign the CRM does not have."""
    crm = make_crm()
    crm.seed_campaign(name="Chat")
    sync = engine(crm, config(crm, "701000000000BOGUS"))
    problems = sync.preflight()
    assert any("campaign" in p.path for p in problems), problems


def test_manual_sync_after_automatic_sync_pushes_changed_values() -> None:
    """A manual sync after a finished automatic one writes the changed overwrite values."""
    crm = make_crm()
    lead = crm.seed_person(kind=PersonKind.LEAD, email=EMAIL, fields={"FirstName": "Old"})
    sync = engine(crm, config(crm))
    sync.conversation_closed(conv())
    assert sync.run_due(LATER).outcome("c-1").kind is OutcomeKind.UPDATED
    assert (crm.person_fields(lead) or {})["FirstName"] == "Lena"
    outcome = sync.manual_sync(conv(first="Lenora"))
    assert outcome.kind is OutcomeKind.UPDATED
    assert (crm.person_fields(lead) or {})["FirstName"] == "Lenora"


def duplicate_of_other_email(crm: HookedCRM) -> str:
    """Script a duplicate rule that matches on name: the named record has another email."""
    other = crm.seed_person(kind=PersonKind.LEAD, email="l.okafor@elsewhere.test")
    crm.create_failures.append(DuplicateRecordError("dup", matched_ids=[other]))
    return other


def test_duplicate_named_record_gets_the_tasks_in_the_same_run() -> None:
    """When the lookup misses the record a duplicate rejection named, its tasks go there at once."""
    crm = make_crm()
    other = duplicate_of_other_email(crm)
    sync = engine(crm, config(crm))
    sync.conversation_closed(conv())
    outcome = sync.run_due(LATER).outcome("c-1")
    assert crm.task_markers(other) == ["signals:c-1:transcript"]
    assert outcome.kind is not OutcomeKind.RETRY
    assert state_of(sync, "c-1") == "done"


def test_duplicate_matched_record_never_joins_campaign_on_a_later_run() -> None:
    """A record named by a duplicate rejection was not created by the sync, so it never joins."""
    crm = make_crm()
    campaign = crm.seed_campaign(name="Chat")
    other = duplicate_of_other_email(crm)
    sync = engine(crm, config(crm, campaign))
    sync.conversation_closed(conv())
    for hours in range(3):
        sync.run_due(LATER + timedelta(hours=hours))
    assert crm.people_with_email(EMAIL) == []
    assert crm.task_markers(other) == ["signals:c-1:transcript"]
    assert crm.campaign_members(campaign) == set()


def test_daily_api_limit_on_a_write_does_not_dead_letter_the_batch() -> None:
    """A daily API limit hit by a write call leaves the syncs due for after the reset."""
    crm = make_crm()
    sync = engine(crm, config(crm))
    for cid, email in (("c-1", "one@x.test"), ("c-2", "two@x.test")):
        sync.conversation_closed(conv(cid, email))
    limit = RateLimitedError("TotalRequests Limit exceeded.", status_code=403, retryable=False)
    crm.fail_next("create_people", limit)
    with contextlib.suppress(RateLimitedError):  # stopping the run and raising is fine too
        sync.run_due(LATER)
    assert state_of(sync, "c-1") == "pending"
    assert state_of(sync, "c-2") == "pending"
    assert sync.ledger.stats().commands[CommandState.FAILED] == 0


def test_manual_sync_pushes_a_dead_lettered_visitor_again() -> None:
    """After the CRM-side cause is fixed, a manual sync of a dead-lettered visitor creates it."""
    crm = make_crm()
    crm.create_failures.append(CRMAPIError("rule says no", error_code="FIELD_CUSTOM_VALIDATION"))
    sync = engine(crm, config(crm))
    sync.conversation_closed(conv())
    assert sync.run_due(LATER).outcome("c-1").kind is OutcomeKind.FAILED
    outcome = sync.manual_sync(conv())
    assert outcome.kind is OutcomeKind.CREATED
    assert len(crm.people_with_email(EMAIL)) == 1


def test_conversation_given_twice_to_backfill_is_synced_once() -> None:
    """A backfill input that repeats a conversation syncs it once, tasks included."""
    crm = make_crm()
    sync = engine(crm, config(crm))
    report = sync.backfill([conv(), conv()], now=LATER)
    (lead,) = crm.people_with_email(EMAIL)
    assert crm.task_markers(lead) == ["signals:c-1:transcript"]
    assert report.count(OutcomeKind.RETRY) == 0


def test_unnamed_duplicate_is_dead_lettered_not_retried_forever() -> None:
    """A create refused as a duplicate of a record nobody can find ends as a dead letter."""
    crm = make_crm()
    for _ in range(20):
        crm.create_failures.append(DuplicateRecordError("duplicate value found", matched_ids=[]))
    sync = engine(crm, config(crm))
    sync.conversation_closed(conv())
    for hours in range(5):
        sync.run_due(LATER + timedelta(hours=hours))
    assert state_of(sync, "c-1") == "dead"
    assert crm.calls["create_people"] <= 2


def test_zero_reschedule_delay_cannot_spin_run_due() -> None:
    """A non-positive reschedule delay is refused or at least cannot make run_due spin."""
    crm = make_crm()
    crm.task_failures.extend(CRMServerError("busy", retryable=True) for _ in range(10_000))
    crm.call_limit = 200
    try:
        retry = RetryPolicy(max_attempts=1, reschedule_after=0.0)
    except ConfigurationError:
        return
    sync = engine(crm, config(crm), retry=retry)
    sync.conversation_closed(conv())
    report = sync.run_due(LATER)
    assert report.outcome("c-1").kind is OutcomeKind.RETRY


def test_backfill_transient_failure_is_retried_by_run_due() -> None:
    """A backfilled conversation whose task hit a transient error is finished by a later run."""
    crm = make_crm()
    sync = engine(crm, config(crm), retry=RetryPolicy(max_attempts=1))
    crm.task_failures.append(CRMServerError("busy", retryable=True))
    report = sync.backfill([conv()], now=LATER)
    assert report.count(OutcomeKind.RETRY) == 1
    sync.run_due(LATER + timedelta(hours=1))
    (lead,) = crm.people_with_email(EMAIL)
    assert crm.task_markers(lead) == ["signals:c-1:transcript"]


def test_transient_membership_failure_survives_a_failed_task() -> None:
    """A new Lead's membership that failed transiently is still written although a task failed."""
    crm = make_crm()
    campaign = crm.seed_campaign(name="Chat")
    sync = engine(crm, config(crm, campaign), retry=RetryPolicy(max_attempts=1))
    crm.task_failures.append(CRMAPIError("bad task", error_code="FIELD_CUSTOM_VALIDATION"))
    crm.membership_failures.append(CRMServerError("UNABLE_TO_LOCK_ROW", retryable=True))
    sync.conversation_closed(conv())
    assert sync.run_due(LATER).outcome("c-1").kind is OutcomeKind.RETRY  # membership pending
    for hours in range(1, 3):
        sync.run_due(LATER + timedelta(hours=hours))
    (lead,) = crm.people_with_email(EMAIL)
    assert crm.campaign_members(campaign) == {lead}


def test_short_reconcile_answer_holds_back_its_conversation() -> None:
    """An adapter answering reconcile with too few results holds that conversation back with a
    library error as its reason; the run returns its report and nothing is re-sent."""
    crm = make_crm()
    sync = engine(crm, config(crm), settle=timedelta(0))
    crm.fail_next("create_tasks", TransportError("read timeout", maybe_sent=True), after=True)
    crm.reconcile_answers.append([])
    sync.conversation_closed(conv())
    outcome = sync.run_due(LATER).outcome("c-1")
    assert outcome.kind is OutcomeKind.RETRY
    assert "answers for" in (outcome.error or "")
    assert crm.calls["create_tasks"] == 1
    assert state_of(sync, "c-1") == "pending"


class PausingCRM(HookedCRM):
    """Runs ``during_create`` once while a create request is on the wire (a slow request)."""

    during_create: Any = None

    def create_people(self, records: Sequence[PersonWrite]) -> list[WriteResult]:
        """Let the world move on while this request is in flight, then create."""
        hook, self.during_create = self.during_create, None
        if hook is not None:
            hook()
        return super().create_people(records)


def test_a_worker_whose_clock_is_15_minutes_behind_makes_no_second_lead() -> None:
    """Leases are judged by the ledger's clock and fenced: a worker 15 minutes behind loses its
    lease while its create is slow, the worker that takes over adopts the create and reads it
    after the settle window, and the slow worker can record nothing more. One Lead, one Task."""
    wall = [LATER]
    ledger = MemoryLedger(clock=lambda: wall[0])
    crm = PausingCRM(person_kind=PersonKind.LEAD)
    crm.seed_user(email="sally@vendor.test")
    cfg = config(crm)
    behind = engine(
        crm, cfg, ledger=ledger, worker_id="a", clock=lambda: wall[0] - timedelta(minutes=15)
    )
    on_time = engine(crm, cfg, ledger=ledger, worker_id="b", clock=lambda: wall[0])
    behind.conversation_closed(conv())
    taken_over: list[Any] = []

    def meanwhile() -> None:
        wall[0] += timedelta(minutes=11)  # past the 10-minute lease, by the ledger's clock
        taken_over.append(on_time.run_due())

    crm.during_create = meanwhile
    behind.run_due()
    assert taken_over[0].outcome("c-1").kind is OutcomeKind.RETRY  # adopted, settling
    assert len(crm.people_with_email(EMAIL)) == 1
    assert crm.calls["create_people"] == 1
    assert crm.tasks() == ()  # the slow worker's later sends were refused by the fence
    wall[0] += on_time.settle
    done = on_time.run_due().outcome("c-1")
    assert done.kind is OutcomeKind.CREATED
    (lead,) = crm.people_with_email(EMAIL)
    assert crm.task_markers(lead) == ["signals:c-1:transcript"]
    assert crm.calls["create_people"] == 1
    assert state_of(on_time, "c-1") == "done"


def test_switched_off_engine_leaves_another_workers_lease_alone() -> None:
    """An engine switched off does not complete a sync that another worker holds a lease on."""
    crm = make_crm()
    ledger = MemoryLedger()
    on = engine(crm, config(crm), ledger=ledger)
    on.conversation_closed(conv())
    ledger.claim(LATER, 10, owner="worker-a", lease=timedelta(minutes=10))
    off = engine(crm, config(crm, enabled=False), ledger=ledger, worker_id="worker-b")
    off.run_due(LATER)
    assert state_of(off, "c-1") == "pending"


# ------------------------------------------------------------------------------------------------
# Verified correct


def test_crash_after_tasks_landed_creates_no_second_task() -> None:
    """Killed after the task call landed, a restart finds each task by its marker: no second one."""
    crm = make_crm()
    campaign = crm.seed_campaign(name="Chat")
    cfg = config(crm, campaign)
    ledger = MemoryLedger()
    first = engine(crm, cfg, ledger=ledger)
    first.conversation_closed(conv(meeting=True))
    crm.crash_after.add("create_tasks")
    with pytest.raises(Crash):
        first.run_due(LATER)
    second = engine(crm, cfg, ledger=ledger)
    # The restart adopts the unsettled write and reads it a full settle window later.
    adopted = second.run_due(LATER + timedelta(minutes=11))
    assert adopted.outcome("c-1").kind is OutcomeKind.RETRY
    report = second.run_due(LATER + timedelta(minutes=11) + second.settle)
    assert report.outcome("c-1").kind is OutcomeKind.CREATED
    (lead,) = crm.people_with_email(EMAIL)
    assert sorted(crm.task_markers(lead)) == ["signals:c-1:meeting:m1", "signals:c-1:transcript"]
    assert crm.campaign_members(campaign) == {lead}
    assert crm.calls["create_tasks"] == 1


def test_crash_before_create_landed_creates_exactly_one_lead() -> None:
    """Killed after SENT but before the create landed, a restart reconciles to PLANNED, then
    creates the Lead once and finishes."""
    crm = make_crm()
    campaign = crm.seed_campaign(name="Chat")
    cfg = config(crm, campaign)
    ledger = MemoryLedger()
    first = engine(crm, cfg, ledger=ledger)
    first.conversation_closed(conv())
    crm.crash_before.add("create_people")
    with pytest.raises(Crash):
        first.run_due(LATER)
    assert ledger.get_command("c-1:person") is not None
    second = engine(crm, cfg, ledger=ledger)
    # The restart adopts the unsettled write and reads it a full settle window later.
    adopted = second.run_due(LATER + timedelta(minutes=11))
    assert adopted.outcome("c-1").kind is OutcomeKind.RETRY
    report = second.run_due(LATER + timedelta(minutes=11) + second.settle)
    assert report.outcome("c-1").kind is OutcomeKind.CREATED
    (lead,) = crm.people_with_email(EMAIL)
    assert crm.campaign_members(campaign) == {lead}
    assert crm.task_markers(lead) == ["signals:c-1:transcript"]


def test_same_email_twice_in_a_batch_makes_one_lead_and_one_membership() -> None:
    """Two conversations of one batch with one email share one Lead and one membership."""
    crm = make_crm()
    campaign = crm.seed_campaign(name="Chat")
    sync = engine(crm, config(crm, campaign))
    sync.conversation_closed(conv("c-1"))
    sync.conversation_closed(conv("c-2", EMAIL.upper(), first="Lenny"))
    report = sync.run_due(LATER)
    (lead,) = crm.people_with_email(EMAIL)
    assert report.outcome("c-1").kind is OutcomeKind.CREATED
    assert report.outcome("c-2").kind is OutcomeKind.UPDATED
    assert report.outcome("c-2").person_id == lead
    assert (crm.person_fields(lead) or {})["FirstName"] == "Lenny"
    assert crm.campaign_members(campaign) == {lead}
    assert sorted(crm.task_markers(lead)) == ["signals:c-1:transcript", "signals:c-2:transcript"]


def test_same_email_in_two_batches_makes_one_lead() -> None:
    """The same email in two batches of one run: the second batch finds the first one's Lead."""
    crm = make_crm()
    campaign = crm.seed_campaign(name="Chat")
    sync = engine(crm, config(crm, campaign), batch_size=1)
    sync.conversation_closed(conv("c-1"))
    sync.conversation_closed(conv("c-2", f"  {EMAIL.title()} "))
    report = sync.run_due(LATER)
    (lead,) = crm.people_with_email(EMAIL)
    assert report.outcome("c-2").kind in (OutcomeKind.UPDATED, OutcomeKind.UNCHANGED)
    assert crm.campaign_members(campaign) == {lead}


def test_manual_then_automatic_sync_of_one_conversation() -> None:
    """A manual sync then the automatic sync of the same conversation: one Lead, one membership,
    tasks from the automatic one only."""
    crm = make_crm()
    campaign = crm.seed_campaign(name="Chat")
    sync = engine(crm, config(crm, campaign))
    sync.conversation_closed(conv())
    manual = sync.manual_sync(conv())
    (lead,) = crm.people_with_email(EMAIL)
    assert manual.kind is OutcomeKind.CREATED
    assert crm.task_markers(lead) == []
    auto = sync.run_due(LATER).outcome("c-1")
    assert auto.person_id == lead
    assert crm.people_with_email(EMAIL) == [lead]
    assert crm.campaign_members(campaign) == {lead}
    assert crm.task_markers(lead) == ["signals:c-1:transcript"]
    assert crm.calls["add_to_campaign"] == 1


def test_grown_delay_reschedules_instead_of_skipping() -> None:
    """When the delay setting grew after scheduling, the sync is rescheduled, not completed."""
    crm = make_crm()
    ledger = MemoryLedger()
    cfg = config(crm)
    engine(crm, cfg, ledger=ledger).conversation_closed(conv())
    slow = engine(crm, attrs.evolve(cfg, synchronization_delay=timedelta(hours=2)), ledger=ledger)
    assert slow.run_due(LATER).outcome("c-1").kind is OutcomeKind.SKIPPED
    due = ledger.get_due("c-1")
    assert due is not None
    assert due.state is DueState.PENDING
    assert due.due_at == CLOSED + timedelta(hours=2)
    assert crm.people() == ()
    assert slow.run_due(CLOSED + timedelta(hours=2)).outcome("c-1").kind is OutcomeKind.CREATED


def test_redelivered_webhook_never_replays_a_finished_sync() -> None:
    """A webhook delivered again after the sync finished changes nothing and writes nothing."""
    crm = make_crm()
    sync = engine(crm, config(crm))
    sync.conversation_closed(conv())
    sync.conversation_closed(conv())  # delivered twice while pending: still one sync
    assert len(sync.run_due(LATER).outcomes) == 1
    writes = crm.calls["create_people"] + crm.calls["create_tasks"]
    again = sync.conversation_closed(conv())
    assert again is not None
    assert again.state is DueState.DONE
    assert sync.run_due(LATER + timedelta(hours=1)).outcomes == ()
    assert crm.calls["create_people"] + crm.calls["create_tasks"] == writes


def test_permanently_failed_create_writes_no_task_and_is_not_retried() -> None:
    """A create refused for good dead-letters the sync; its tasks are never sent to anyone."""
    crm = make_crm()
    crm.create_failures.append(CRMAPIError("bad value", error_code="INVALID_EMAIL_ADDRESS"))
    sync = engine(crm, config(crm))
    sync.conversation_closed(conv(meeting=True))
    outcome = sync.run_due(LATER).outcome("c-1")
    assert outcome.kind is OutcomeKind.FAILED
    assert state_of(sync, "c-1") == "dead"
    assert crm.calls["create_tasks"] == 0
    sync.conversation_closed(conv(meeting=True))
    assert sync.run_due(LATER + timedelta(hours=1)).outcomes == ()
    assert crm.calls["create_people"] == 1
    assert crm.tasks() == ()


def test_ambiguous_membership_write_is_reconciled_not_resent() -> None:
    """A membership whose answer was lost is found by reconciling: one membership, sync done."""
    crm = make_crm()
    campaign = crm.seed_campaign(name="Chat")
    sync = engine(crm, config(crm, campaign), settle=timedelta(0))
    crm.fail_next("add_to_campaign", TransportError("reset", maybe_sent=True), after=True)
    sync.conversation_closed(conv())
    assert sync.run_due(LATER).outcome("c-1").kind is OutcomeKind.CREATED
    (lead,) = crm.people_with_email(EMAIL)
    assert crm.campaign_members(campaign) == {lead}
    assert crm.calls["add_to_campaign"] == 1
    assert state_of(sync, "c-1") == "done"


def test_rate_limit_waits_retry_after_and_is_not_unknown() -> None:
    """A 429 on a write waits the CRM's Retry-After and re-sends; nothing is recorded UNKNOWN."""
    crm = make_crm()
    naps: list[float] = []
    sync = engine(crm, config(crm), sleep=naps.append)
    crm.fail_next("create_people", RateLimitedError("slow down", retry_after=7.0))
    sync.conversation_closed(conv())
    assert sync.run_due(LATER).outcome("c-1").kind is OutcomeKind.CREATED
    assert naps == [7.0]
    assert sync.ledger.stats().commands[CommandState.UNKNOWN] == 0
    assert len(crm.people_with_email(EMAIL)) == 1


def test_exhausted_transient_retries_reschedule_not_dead_letter() -> None:
    """Transient errors past the retry budget reschedule the sync; it completes on a later run."""
    crm = make_crm()
    sync = engine(crm, config(crm), retry=RetryPolicy(max_attempts=2, reschedule_after=60))
    crm.task_failures.extend([CRMServerError("busy", retryable=True)] * 2)
    sync.conversation_closed(conv())
    assert sync.run_due(LATER).outcome("c-1").kind is OutcomeKind.RETRY
    due = sync.ledger.get_due("c-1")
    assert due is not None
    assert due.state is DueState.PENDING
    assert due.due_at == LATER + timedelta(seconds=60)
    assert sync.run_due(LATER + timedelta(seconds=60)).outcome("c-1").kind is OutcomeKind.CREATED
    (lead,) = crm.people_with_email(EMAIL)
    assert crm.task_markers(lead) == ["signals:c-1:transcript"]


def test_budget_is_checked_between_batches() -> None:
    """Once usage passes the budget after a batch, the next batch is not started and stays due."""

    class Usage:
        fraction_used = 0.0

    class MeteredCRM(HookedCRM):
        api_usage = Usage()

        def find_people(self, emails: Sequence[str], fields: Sequence[str] = ()) -> Any:
            self.api_usage.fraction_used = 0.95
            return super().find_people(emails, fields)

    crm = MeteredCRM(person_kind=PersonKind.LEAD)
    crm.seed_user(email="sally@vendor.test")
    sync = engine(crm, config(crm), batch_size=1, api_budget=0.9)
    sync.conversation_closed(conv("c-1", "one@x.test"))
    sync.conversation_closed(conv("c-2", "two@x.test"))
    report = sync.run_due(LATER)
    assert report.budget_exhausted
    assert [o.conversation_id for o in report.outcomes] == ["c-1"]
    assert state_of(sync, "c-2") == "pending"


def test_switched_off_completes_due_syncs_without_writing() -> None:
    """Switched off after scheduling, run_due writes nothing and completes due syncs as skipped."""
    crm = make_crm()
    ledger = MemoryLedger()
    cfg = config(crm)
    engine(crm, cfg, ledger=ledger).conversation_closed(conv())
    off = engine(crm, attrs.evolve(cfg, enabled=False), ledger=ledger)
    before = sum(crm.calls.values())
    assert off.run_due(LATER).outcomes == ()
    due = ledger.get_due("c-1")
    assert due is not None
    assert due.outcome == "skipped:integration_disabled"
    assert sum(crm.calls.values()) == before
    assert crm.people() == ()


def test_hubspot_like_conflict_becomes_a_match() -> None:
    """In the HubSpot-like flavour a 409 on create (lookup raced) matches the named contact."""

    class RacyCRM(HookedCRM):
        raced = True

        def find_people(self, emails: Sequence[str], fields: Sequence[str] = ()) -> Any:
            if self.raced:
                self.raced = False
                return [() for _ in emails]
            return super().find_people(emails, fields)

    crm = RacyCRM(person_kind=PersonKind.CONTACT)
    crm.seed_user(email="sally@vendor.test")
    existing = crm.seed_person(kind=PersonKind.CONTACT, email=EMAIL)
    sync = engine(crm, config(crm))
    sync.conversation_closed(conv())
    outcome = sync.run_due(LATER).outcome("c-1")
    assert outcome.person_id == existing
    assert crm.people_with_email(EMAIL) == [existing]
    assert crm.task_markers(existing) == ["signals:c-1:transcript"]


@pytest.mark.anyio
async def test_async_twin_matches_blocking_on_a_mixed_batch() -> None:
    """The async engine reaches the same outcomes and CRM state as the blocking one."""

    def scenario(crm: HookedCRM) -> list[Conversation]:
        crm.seed_person(kind=PersonKind.LEAD, email="known@x.test", fields={"FirstName": "Old"})
        crm.fail_next("create_tasks", TransportError("timeout", maybe_sent=True), after=True)
        return [conv("c-1"), conv("c-2", EMAIL), conv("c-3", "known@x.test"), conv("c-4", score=0)]

    blocking_crm, async_crm = make_crm(), make_crm()
    blocking = engine(blocking_crm, config(blocking_crm))
    twin = async_engine(async_crm, config(async_crm))
    for c in scenario(blocking_crm):
        blocking.conversation_closed(c)
    for c in scenario(async_crm):
        twin.conversation_closed(c)
    left = blocking.run_due(LATER)
    right = await twin.arun_due(LATER)
    assert [(o.conversation_id, o.kind) for o in left.outcomes] == [
        (o.conversation_id, o.kind) for o in right.outcomes
    ]
    assert left.adapter_calls == right.adapter_calls
    assert len(blocking_crm.tasks()) == len(async_crm.tasks()) == 3
    assert blocking_crm.calls == async_crm.calls
