"""The engine against the local Salesforce with injected faults: nothing duplicated or lost."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from signals_crm._flows import OutcomeKind
from signals_crm.adapters.salesforce import RefreshTokenFlow, SalesforceAdapter, StaticToken
from signals_crm.engine import Integration
from signals_crm.ledger import MemoryLedger
from signals_crm.testing.salesforce import Faults, LocalSalesforce, SalesforceBackdoor

sys.path.insert(0, str(Path(__file__).parent))

from _scenario import NOW, check_exactly_once, config, conversations


def setup(org: LocalSalesforce):
    door = SalesforceBackdoor(org)
    owner = door.seed_user(email="owner@vendor.test")
    campaign = door.seed_campaign(name="Chat")
    return door, owner, campaign


def run_until_settled(integration: Integration, rounds: int = 12) -> list[OutcomeKind]:
    """Run due syncs repeatedly (as a scheduler would), moving time on past reschedules."""
    kinds: list[OutcomeKind] = []
    for conversation in conversations():
        integration.conversation_closed(conversation)
    now = NOW
    for _ in range(rounds):
        report = integration.run_due(now)
        kinds.extend(o.kind for o in report.outcomes)
        if integration.ledger.due(now.replace(year=2030), 1) == []:
            break
        now = now.replace(hour=now.hour + 1)
    return kinds


@pytest.mark.parametrize("seed", range(6))
def test_transient_and_ambiguous_faults_end_exactly_once(seed):
    """5xx, HTML gateway pages, lock errors, 429s and commits whose answer is dropped, at
    random: after the retries every email has one Lead, every activity one Task."""
    faults = Faults(
        seed=seed,
        server_unavailable=0.08,
        gateway_html=0.05,
        lock_row=0.08,
        too_many_requests=0.05,
        drop_after_commit=0.1,
    )
    org = LocalSalesforce(faults=faults)
    door, owner, campaign = setup(org)
    with httpx.Client(transport=org.transport()) as http:
        adapter = SalesforceAdapter(http, StaticToken(org.issue_token(), org.instance_url))
        integration = Integration(
            adapter,
            config(owner, campaign),
            ledger=MemoryLedger(),
            sleep=lambda _: None,
            random=lambda: 0.5,
            clock=lambda: NOW,
        )
        run_until_settled(integration)
    check_exactly_once(door, campaign)


def test_session_expiry_is_refreshed_and_replayed():
    """Sessions that expire every few calls are refreshed once each time; the sync completes."""
    org = LocalSalesforce(faults=Faults(expire_session_after=3))
    door, owner, campaign = setup(org)
    org.register_client("app", "secret")
    refresh = org.issue_refresh_token("app")
    with httpx.Client(transport=org.transport()) as http:
        auth = RefreshTokenFlow(
            client_id="app",
            client_secret="secret",
            refresh_token=refresh,
            login_url=org.instance_url,
        )
        adapter = SalesforceAdapter(http, auth)
        integration = Integration(
            adapter,
            config(owner, campaign),
            ledger=MemoryLedger(),
            sleep=lambda _: None,
            random=lambda: 0.5,
            clock=lambda: NOW,
        )
        kinds = run_until_settled(integration)
    assert OutcomeKind.FAILED not in kinds
    check_exactly_once(door, campaign)


def test_daily_limit_stops_with_the_budget():
    """With the org's daily limit nearly used, the run stops at the budget share."""
    org = LocalSalesforce(daily_limit=100)
    door, owner, campaign = setup(org)
    org.api_used = 95
    with httpx.Client(transport=org.transport()) as http:
        adapter = SalesforceAdapter(http, StaticToken(org.issue_token(), org.instance_url))
        integration = Integration(
            adapter,
            config(owner, campaign),
            ledger=MemoryLedger(),
            api_budget=0.9,
            sleep=lambda _: None,
            clock=lambda: NOW,
        )
        for conversation in conversations():
            integration.conversation_closed(conversation)
        report = integration.run_due(NOW)
    assert report.budget_exhausted
    assert report.outcomes == ()
    assert door.people_with_email("visitor0@kill.test") == []
