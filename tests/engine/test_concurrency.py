"""Concurrent runs, workers and syncs of one visitor: never a second Lead, whoever races whom.

Everything runs against the in-memory CRM (or the local Salesforce) with injected clocks and
sleeps; helpers in ``_hooked.py``."""

from __future__ import annotations

import sys as _sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from signals_crm._flows import OutcomeKind
from signals_crm.core.model import (
    PersonKind,
)
from signals_crm.ledger import MemoryLedger

_sys.path.insert(0, str(Path(__file__).parent))

from _hooked import (
    EMAIL,
    LATER,
    AwaitingCRM,
    PausingCRM,
    RacingCRM,
    async_engine,
    config,
    conv,
    engine,
    make_crm,
    state_of,
)


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
