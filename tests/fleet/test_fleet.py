"""The worker fleet: fair rounds across tenants, concurrency, isolation, clean stops, and the
job-system recipe driving the same claims (rules in ``signals_crm.fleet``)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from signals_crm.core.config import FieldMapping, FieldMappings, SyncConfig
from signals_crm.core.model import Conversation, PersonKind, Visitor
from signals_crm.exceptions import AuthenticationError, ConfigurationError
from signals_crm.fleet import AsyncFleet, Fleet, Tenant, arun_tenant, due_tenants, run_tenant
from signals_crm.ledger import DueState, MemoryLedger, SQLiteLedger
from signals_crm.testing.memory import InMemoryCRM

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
CONFIG = SyncConfig(
    synchronization_delay=timedelta(0),
    campaign_id=None,
    field_mappings=FieldMappings(lead=(FieldMapping("contact.last_name", "LastName"),)),
    placeholders={"LastName": "[none]", "Company": "[none]"},
)


def conv(tenant: str, i: int) -> Conversation:
    """Conversation ``i`` of ``tenant``, closed before T0, of a visitor with an email."""
    return Conversation(
        f"{tenant}-{i}",
        closed_at=T0 - timedelta(hours=1),
        lead_score=2,
        visitor=Visitor(email=f"v{i}@{tenant}.test"),
    )


class Org:
    """The tenants' CRMs and a resolver over them, as a host would hold them."""

    def __init__(self, names: Sequence[str], crm: type[InMemoryCRM] = InMemoryCRM) -> None:
        self.crms = {name: crm(person_kind=PersonKind.LEAD) for name in names}
        self.resolved: list[str] = []
        self.broken: set[str] = set()

    def __call__(self, tenant_id: str) -> Tenant:
        self.resolved.append(tenant_id)
        if tenant_id in self.broken:
            raise AuthenticationError("the refresh token was revoked")
        return Tenant(self.crms[tenant_id], CONFIG, options={"clock": lambda: T0})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteLedger]:
    """One SQLite ledger file holding every tenant."""
    with SQLiteLedger(tmp_path / "fleet.db", synchronous="NORMAL") as ledger:
        yield ledger


def schedule(store: SQLiteLedger, tenant: str, count: int) -> None:
    """Give ``tenant`` ``count`` due syncs."""
    store.for_integration(tenant).schedule_many(
        (conv(tenant, i), T0 - timedelta(minutes=30)) for i in range(count)
    )


def test_a_backlog_cannot_hold_back_another_tenants_single_sync(store: SQLiteLedger) -> None:
    """With 600 due for one tenant and one for another, the first round syncs the lone visitor
    (and one batch of the backlog): the backlog delays it by no more than one round."""
    org = Org(["big", "small"])
    schedule(store, "big", 600)
    schedule(store.for_integration("small"), "small", 1)
    fleet = Fleet(store, org, concurrency=2, per_tenant=50, poll_interval=0)
    try:
        first = fleet.run_round(T0)
        assert set(first.tenants) == {"big", "small"}
        assert first.reports["small"].total == 1
        assert first.reports["big"].total == 50
        assert org.crms["small"].people_with_email("v0@small.test") != []
        assert store.for_integration("small").stats().syncs[DueState.DONE] == 1
        rounds = fleet.run(rounds=20, now=T0)
        assert store.for_integration("big").stats().syncs[DueState.DONE] == 600
        assert rounds <= 20
    finally:
        fleet.close()


def test_tenants_are_synced_concurrently(store: SQLiteLedger) -> None:
    """Four tenants' batches run at the same time: each CRM's first lookup waits for all four
    at a barrier, which only concurrent syncs can pass."""
    barrier = threading.Barrier(4, timeout=20)

    class MeetingCRM(InMemoryCRM):
        def find_people(self, emails: Sequence[str], fields: Sequence[str] = ()) -> Any:
            barrier.wait()
            return super().find_people(emails, fields)

    names = ["a", "b", "c", "d"]
    org = Org(names, MeetingCRM)
    for name in names:
        schedule(store, name, 2)
    fleet = Fleet(store, org, concurrency=4, poll_interval=0)
    try:
        report = fleet.run_round(T0)
    finally:
        fleet.close()
    assert report.errors == {}
    assert {t: r.total for t, r in report.reports.items()} == dict.fromkeys(names, 2)


def test_a_failing_tenant_is_rested_and_the_others_go_on(store: SQLiteLedger) -> None:
    """A tenant whose credentials fail is reported and rested; the rest of the round syncs."""
    now = [0.0]
    org = Org(["ok", "revoked"])
    org.broken.add("revoked")
    schedule(store, "ok", 3)
    schedule(store, "revoked", 3)
    fleet = Fleet(store, org, error_backoff=60, monotonic=lambda: now[0], poll_interval=0)
    try:
        first = fleet.run_round(T0)
        assert first.reports["ok"].total == 3
        assert "AuthenticationError" in first.errors["revoked"]
        assert fleet.run_round(T0).tenants == ()  # ok is done; revoked rests
        now[0] = 61
        org.broken.clear()
        third = fleet.run_round(T0)
        assert third.reports["revoked"].total == 3
    finally:
        fleet.close()


def test_sigterm_stops_after_the_batches_under_way(store: SQLiteLedger) -> None:
    """SIGTERM during a run lets the current round finish and starts no other one."""
    org = Org(["t"])
    schedule(store, "t", 30)
    fleet = Fleet(store, org, per_tenant=10, poll_interval=0)

    class Signalling(InMemoryCRM):
        def find_people(self, emails: Sequence[str], fields: Sequence[str] = ()) -> Any:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives while this batch is under way
            return super().find_people(emails, fields)

    org.crms["t"] = Signalling(person_kind=PersonKind.LEAD)
    restore = fleet.install_signal_handlers()
    try:
        rounds = fleet.run(now=T0)
    finally:
        restore()
        fleet.close()
    assert fleet.stopping
    assert rounds == 1
    stats = store.for_integration("t").stats()
    assert (stats.syncs[DueState.DONE], stats.syncs[DueState.PENDING]) == (10, 20)
    leased = [s for s in store.for_integration("t").due(T0, 50) if s.lease_owner is not None]
    assert leased == []  # every lease of the stopped fleet was given back


def test_a_job_system_drives_the_same_claims(store: SQLiteLedger) -> None:
    """The Celery/Dramatiq/arq recipe: a periodic job enqueues due_tenants(), worker jobs run
    run_tenant() per id; every visitor is synced once, whatever the order jobs run in."""
    org = Org(["north", "south"])
    schedule(store, "north", 5)
    schedule(store, "south", 120)
    queue: list[str] = []
    for _ in range(10):  # ten beats of the scheduler, each followed by the workers' jobs
        queue.extend(due_tenants(store, now=T0))
        while queue:
            tenant = queue.pop()
            run_tenant(store, org, tenant, limit=50, worker_id=f"job-{tenant}")
    for name, count in (("north", 5), ("south", 120)):
        assert store.for_integration(name).stats().syncs[DueState.DONE] == count
        for i in range(count):
            assert len(org.crms[name].people_with_email(f"v{i}@{name}.test")) == 1


def test_bad_options_are_refused() -> None:
    """Fleet options are positive integers; a ConfigurationError names each bad one."""
    with pytest.raises(ConfigurationError) as info:
        Fleet(MemoryLedger(), Org([]), concurrency=0, per_tenant=-1)
    assert set(info.value.paths) == {"concurrency", "per_tenant"}


@pytest.mark.anyio
async def test_the_async_fleet_serves_tenants_as_tasks(store: SQLiteLedger) -> None:
    """AsyncFleet gives each due tenant one batch per round, as tasks, until all is synced."""
    org = Org(["x", "y"])
    schedule(store, "x", 120)
    schedule(store, "y", 1)
    fleet = AsyncFleet(store, org, concurrency=2, per_tenant=50, poll_interval=0)
    first = await fleet.run_round(T0)
    assert {t: r.total for t, r in first.reports.items()} == {"x": 50, "y": 1}
    await fleet.run(rounds=5, now=T0)
    assert store.for_integration("x").stats().syncs[DueState.DONE] == 120
    fleet.stop()
    assert await fleet.run(now=T0) == 0


@pytest.mark.anyio
async def test_an_async_job_system_drives_the_same_claims(store: SQLiteLedger) -> None:
    """arun_tenant (an arq job) syncs one batch of one tenant through the async engine; two
    jobs of one tenant at once never take one sync twice."""
    import anyio

    org = Org(["east"])
    schedule(store, "east", 80)
    totals: list[int] = []

    async def job(worker: str) -> None:
        report = await arun_tenant(store, org, "east", limit=50, worker_id=worker)
        totals.append(report.total)

    async with anyio.create_task_group() as group:
        group.start_soon(job, "job-1")
        group.start_soon(job, "job-2")
    assert sorted(totals) == [30, 50]
    assert store.for_integration("east").stats().syncs[DueState.DONE] == 80
    for i in range(80):
        assert len(org.crms["east"].people_with_email(f"v{i}@east.test")) == 1


def test_fleet_engines_claim_before_planning(
    store: SQLiteLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every worker of a fleet serves every due tenant each round, so a tenant's short batch
    is contended: fleet engines claim it (SKIP LOCKED on PostgreSQL) before reading the CRM,
    never read it optimistically, and a tenant's option can say otherwise."""
    read: list[str] = []
    claimable = SQLiteLedger.claimable

    def spy(self: SQLiteLedger, *args: Any, **kwargs: Any) -> Any:
        read.append(self.integration)
        return claimable(self, *args, **kwargs)

    monkeypatch.setattr(SQLiteLedger, "claimable", spy)
    org = Org(["north"])
    schedule(store, "north", 3)
    report = run_tenant(store, org, "north", limit=50, worker_id="w1")
    assert len(report.outcomes) == 3
    assert read == []
    fleet = Fleet(store, org, concurrency=1, per_tenant=50, worker_id="w2")
    try:
        schedule(store, "north", 5)  # three of them done already; two more
        fleet.run_round(T0)
        assert read == []
        assert store.for_integration("north").stats().syncs[DueState.DONE] == 5
    finally:
        fleet.close()
