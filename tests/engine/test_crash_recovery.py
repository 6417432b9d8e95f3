"""Crash and restart: whatever instant the process dies at, the next run finishes the sync exactly
once (one Lead, one Task per activity, one membership).

Everything runs against the in-memory CRM (or the local Salesforce) with injected clocks and
sleeps; helpers in ``_hooked.py``."""

from __future__ import annotations

import sys as _sys
from datetime import timedelta
from pathlib import Path

import attrs
import httpx
import pytest

from signals_crm._flows import OutcomeKind
from signals_crm.adapters.salesforce import SalesforceAdapter, StaticToken
from signals_crm.core.crm import Capabilities
from signals_crm.core.model import PersonKind
from signals_crm.exceptions import (
    TransportError,
)
from signals_crm.ledger import MemoryLedger, SQLiteLedger
from signals_crm.testing.salesforce import LocalSalesforce, SalesforceBackdoor

_sys.path.insert(0, str(Path(__file__).parent))

from _hooked import (
    EMAIL,
    LATER,
    Crash,
    DyingTransport,
    HookedCRM,
    async_engine,
    config,
    conv,
    engine,
    make_crm,
    state_of,
)


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
    # The restart adopts the unsettled write and reads it at once: found, it is confirmed
    # (only a write not found waits out the settle window before it counts as absent).
    report = second.run_due(LATER + timedelta(minutes=11))
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


def test_ambiguous_membership_write_is_sent_again_where_the_crm_keeps_one() -> None:
    """A membership whose answer was lost is simply sent again where the CRM keeps one
    membership per person (``idempotent_memberships``): one membership, sync done."""
    crm = make_crm()
    campaign = crm.seed_campaign(name="Chat")
    sync = engine(crm, config(crm, campaign), settle=timedelta(0))
    crm.fail_next("add_to_campaign", TransportError("reset", maybe_sent=True), after=True)
    sync.conversation_closed(conv())
    assert sync.run_due(LATER).outcome("c-1").kind is OutcomeKind.CREATED
    (lead,) = crm.people_with_email(EMAIL)
    assert crm.campaign_members(campaign) == {lead}
    assert crm.calls["add_to_campaign"] == 2
    assert state_of(sync, "c-1") == "done"


class _CheckingCRM(HookedCRM):
    """A CRM whose membership add is not idempotent on the CRM's side (undeclared)."""

    @property
    def capabilities(self) -> Capabilities:
        return attrs.evolve(super().capabilities, idempotent_memberships=False)


def test_ambiguous_membership_write_is_reconciled_not_resent() -> None:
    """Without ``idempotent_memberships``, a membership whose answer was lost is found by
    reconciling: never sent again, one membership, sync done."""
    crm = _CheckingCRM(person_kind=PersonKind.LEAD)
    crm.seed_user(email="sally@vendor.test")
    campaign = crm.seed_campaign(name="Chat")
    sync = engine(crm, config(crm, campaign), settle=timedelta(0))
    crm.fail_next("add_to_campaign", TransportError("reset", maybe_sent=True), after=True)
    sync.conversation_closed(conv())
    assert sync.run_due(LATER).outcome("c-1").kind is OutcomeKind.CREATED
    (lead,) = crm.people_with_email(EMAIL)
    assert crm.campaign_members(campaign) == {lead}
    assert crm.calls["add_to_campaign"] == 1
    assert state_of(sync, "c-1") == "done"


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
