"""list_campaigns: the campaigns a sync may join, for the host's settings page."""

from __future__ import annotations

import httpx
import pytest

from signals_crm.adapters.hubspot import AsyncHubSpotAdapter, HubSpotAdapter, HubSpotAPI
from signals_crm.adapters.salesforce import SalesforceAdapter, StaticToken
from signals_crm.core.crm import CampaignInfo
from signals_crm.testing.hubspot import LocalHubSpot
from signals_crm.testing.salesforce import LocalSalesforce, SalesforceBackdoor

API = HubSpotAPI(base_url="https://api.hubapi.com")


def test_salesforce_lists_active_campaigns_only() -> None:
    """Active Campaigns, by name; an inactive one is left out; cached like preflight reads."""
    org = LocalSalesforce()
    door = SalesforceBackdoor(org)
    spring = door.seed_campaign(name="Spring webinar")
    door._insert("Campaign", {"Name": "Old promo", "IsActive": False})
    autumn = door.seed_campaign(name="Autumn launch")
    with httpx.Client(transport=org.transport()) as http:
        adapter = SalesforceAdapter(http, StaticToken(org.issue_token(), org.instance_url))
        listed = adapter.list_campaigns()
        again = adapter.list_campaigns()
    assert (
        listed
        == again
        == [
            CampaignInfo(id=autumn, name="Autumn launch"),
            CampaignInfo(id=spring, name="Spring webinar"),
        ]
    )
    assert len(org.calls) == 1


def test_hubspot_lists_static_contact_lists_across_pages() -> None:
    """Every MANUAL contact list, over several pages; dynamic and company lists are left out."""
    portal = LocalHubSpot()
    statics = [portal.create_list(f"Static {n:03d}") for n in range(230)]
    portal.create_list("Everyone in Paris", processing_type="DYNAMIC")
    portal.create_list("Key accounts", object_type_id="0-2")
    with httpx.Client(transport=portal.transport()) as http:
        listed = HubSpotAdapter(http, "local-hubspot-token", api=API).list_campaigns()
    assert [c.id for c in listed] == statics
    assert listed[0] == CampaignInfo(id=statics[0], name="Static 000", active=True)
    searches = [r for r in portal.requests if "lists/search" in str(r)]
    assert len(searches) == 3  # 100 a page


@pytest.mark.anyio
async def test_async_adapters_list_campaigns_too() -> None:
    """The async shell offers alist_campaigns with the same answer."""
    portal = LocalHubSpot()
    only = portal.backdoor.seed_campaign(name="Leads")
    async with httpx.AsyncClient(transport=portal.transport()) as http:
        listed = await AsyncHubSpotAdapter(http, "local-hubspot-token", api=API).alist_campaigns()
    assert listed == [CampaignInfo(id=only, name="Leads")]
