"""Scheduling and re-delivery, manual pushes and what a sync remembers: when a sync is due,
replayed, pushed again, and what the ledger keeps of it.

Everything runs against the in-memory CRM (or the local Salesforce) with injected clocks and
sleeps; helpers in ``_hooked.py``."""

from __future__ import annotations

import sys as _sys
from datetime import timedelta
from pathlib import Path

import attrs
import pytest

from signals_crm._flows import OutcomeKind
from signals_crm.core.model import (
    Conversation,
    PersonKind,
)
from signals_crm.exceptions import (
    CRMAPIError,
    TransportError,
)
from signals_crm.ledger import MemoryLedger
from signals_crm.ledger.base import DueState

_sys.path.insert(0, str(Path(__file__).parent))

from _hooked import (
    CLOSED,
    EMAIL,
    LATER,
    HookedCRM,
    async_engine,
    config,
    conv,
    engine,
    make_crm,
)


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


def test_conversation_given_twice_to_backfill_is_synced_once() -> None:
    """A backfill input that repeats a conversation syncs it once, tasks included."""
    crm = make_crm()
    sync = engine(crm, config(crm))
    report = sync.backfill([conv(), conv()], now=LATER)
    (lead,) = crm.people_with_email(EMAIL)
    assert crm.task_markers(lead) == ["signals:c-1:transcript"]
    assert report.count(OutcomeKind.RETRY) == 0


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
