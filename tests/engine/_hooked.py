"""Helpers of the engine tests that crash, race and hook an in-memory CRM (a "crash" is an
exception the drivers do not catch, raised from the adapter before or after its work, after
which a fresh engine reopens the same ledger)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import anyio.lowlevel
import httpx

from signals_crm.adapters.base import CRMAdapter
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
    CRMAPIError,
    DuplicateRecordError,
)
from signals_crm.ledger import DueSync, MemoryLedger, SQLiteLedger
from signals_crm.testing.memory import InMemoryCRM

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


class RacingCRM(HookedCRM):
    """Runs ``during_create`` once while a create request is in flight (another process)."""

    during_create: Any = None

    def create_people(self, records: Sequence[PersonWrite]) -> list[WriteResult]:
        """Let the other process act while this request is on the wire, then create."""
        hook, self.during_create = self.during_create, None
        if hook is not None:
            hook()
        return super().create_people(records)


class AwaitingCRM(HookedCRM):
    """An async CRM whose writes yield to the event loop, as real network IO does."""

    async def acreate_people(self, records: Sequence[PersonWrite]) -> list[WriteResult]:
        """Yield to the loop (the request is on the wire), then create."""
        await anyio.lowlevel.checkpoint()
        return self.create_people(records)


def duplicate_of_other_email(crm: HookedCRM) -> str:
    """Script a duplicate rule that matches on name: the named record has another email."""
    other = crm.seed_person(kind=PersonKind.LEAD, email="l.okafor@elsewhere.test")
    crm.create_failures.append(DuplicateRecordError("dup", matched_ids=[other]))
    return other


class PausingCRM(HookedCRM):
    """Runs ``during_create`` once while a create request is on the wire (a slow request)."""

    during_create: Any = None

    def create_people(self, records: Sequence[PersonWrite]) -> list[WriteResult]:
        """Let the world move on while this request is in flight, then create."""
        hook, self.during_create = self.during_create, None
        if hook is not None:
            hook()
        return super().create_people(records)


class Raced:
    """A ledger mixin that runs ``race`` once, right after the first ``claimable`` read (or,
    with ``race_on = "claim"``, the first ``claim``); ``reads`` counts the ``claimable``
    reads."""

    race: Callable[[], object] | None = None
    race_on = "claimable"
    reads = 0

    def _raced(self, method: str) -> None:
        if method == self.race_on:
            race, self.race = self.race, None
            if race is not None:
                race()

    def claimable(self, *args: Any, **kwargs: Any) -> list[DueSync]:
        found: list[DueSync] = super().claimable(*args, **kwargs)  # type: ignore[misc]
        self.reads += 1
        self._raced("claimable")
        return found

    def claim(self, *args: Any, **kwargs: Any) -> list[DueSync]:
        claimed: list[DueSync] = super().claim(*args, **kwargs)  # type: ignore[misc]
        self._raced("claim")
        return claimed


class RacedMemory(Raced, MemoryLedger):
    """:class:`Raced` in memory."""


class RacedSQLite(Raced, SQLiteLedger):
    """:class:`Raced` on a SQLite file."""
