"""The optional campaign check of the built-in adapters, and preflight using it."""

from __future__ import annotations

import httpx
import pytest

from signals_crm.adapters.hubspot import AsyncHubSpotAdapter, HubSpotAdapter, HubSpotAPI
from signals_crm.adapters.salesforce import AsyncSalesforceAdapter, SalesforceAdapter, StaticToken
from signals_crm.core.config import SyncConfig
from signals_crm.engine import Integration
from signals_crm.testing.hubspot import HubSpotBackdoor, LocalHubSpot
from signals_crm.testing.memory import InMemoryCRM
from signals_crm.testing.salesforce import LocalSalesforce, SalesforceBackdoor

API = HubSpotAPI(base_url="https://api.hubapi.test")


def test_salesforce_campaign_exists():
    """The Salesforce adapter finds a Campaign by id, and says when there is none."""
    org = LocalSalesforce()
    campaign = SalesforceBackdoor(org).seed_campaign(name="Chat")
    with httpx.Client(transport=org.transport()) as http:
        adapter = SalesforceAdapter(http, StaticToken(org.issue_token(), org.instance_url))
        assert adapter.campaign_exists(campaign)
        assert not adapter.campaign_exists("701000000000000AAA")
        assert not adapter.campaign_exists("it's")  # quoted, never a broken query


def test_hubspot_campaign_exists():
    """The HubSpot adapter finds the static list, and says when there is none."""
    hub = LocalHubSpot(burst_limit=None, search_per_second=None)
    campaign = HubSpotBackdoor(hub).seed_campaign(name="Chat")
    with httpx.Client(transport=hub.transport()) as http:
        adapter = HubSpotAdapter(http, "local-hubspot-token", api=API)
        assert adapter.campaign_exists(campaign)
        assert not adapter.campaign_exists("999999")


@pytest.mark.anyio
async def test_async_campaign_checks():
    """The async adapters answer the same."""
    org = LocalSalesforce()
    campaign = SalesforceBackdoor(org).seed_campaign(name="Chat")
    hub = LocalHubSpot(burst_limit=None, search_per_second=None)
    hub_list = HubSpotBackdoor(hub).seed_campaign(name="Chat")
    async with httpx.AsyncClient(transport=org.transport()) as http:
        sf = AsyncSalesforceAdapter(http, StaticToken(org.issue_token(), org.instance_url))
        assert await sf.acampaign_exists(campaign)
    async with httpx.AsyncClient(transport=hub.transport()) as http:
        hs = AsyncHubSpotAdapter(http, "local-hubspot-token", api=API)
        assert not await hs.acampaign_exists(hub_list + "0")


def test_preflight_names_a_missing_campaign():
    """Preflight reports a configured campaign the CRM does not have."""
    crm = InMemoryCRM()
    problems = Integration(crm, SyncConfig(campaign_id="701MISSING")).preflight()
    assert [p.path for p in problems] == ["campaign_id"]
    good = crm.seed_campaign(name="Chat")
    assert Integration(crm, SyncConfig(campaign_id=good)).preflight() == []
