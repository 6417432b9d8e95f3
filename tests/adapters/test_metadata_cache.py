"""Preflight reads are cached per CRM connection, for a while, and re-read on schema change."""

from __future__ import annotations

import httpx
import pytest

from signals_crm.adapters._cache import MetadataCache
from signals_crm.adapters.hubspot import HubSpotAdapter, HubSpotAPI
from signals_crm.adapters.hubspot import StaticToken as HubSpotToken
from signals_crm.adapters.salesforce import SalesforceAdapter, StaticToken
from signals_crm.core.crm import PersonWrite
from signals_crm.core.model import PersonKind
from signals_crm.testing.hubspot import LocalHubSpot
from signals_crm.testing.salesforce import LocalSalesforce, SalesforceBackdoor


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _preflight(adapter: SalesforceAdapter | HubSpotAdapter, campaign: str, obj: str) -> None:
    adapter.campaign_exists(campaign)
    adapter.describe(obj)
    adapter.list_users()


def test_adapters_sharing_an_auth_share_the_preflight_reads() -> None:
    """A second adapter on the same Salesforce auth reads nothing the first one read."""
    org = LocalSalesforce()
    campaign = SalesforceBackdoor(org).seed_campaign(name="C")
    auth = StaticToken(org.issue_token(), org.instance_url)
    with httpx.Client(transport=org.transport()) as http:
        _preflight(SalesforceAdapter(http, auth), campaign, "Lead")
        first = len(org.calls)
        _preflight(SalesforceAdapter(http, auth), campaign, "Lead")
        assert len(org.calls) == first == 1  # the three reads in one composite request
        other = StaticToken(org.issue_token(), org.instance_url)
        _preflight(SalesforceAdapter(http, other), campaign, "Lead")
    assert len(org.calls) == 2  # another connection has its own cache


def test_entries_expire_after_the_ttl() -> None:
    """Past the TTL every preflight read goes to the CRM again."""
    org = LocalSalesforce()
    campaign = SalesforceBackdoor(org).seed_campaign(name="C")
    clock = Clock()
    cache = MetadataCache(ttl=60.0, clock=clock)
    with httpx.Client(transport=org.transport()) as http:
        adapter = SalesforceAdapter(
            http, StaticToken(org.issue_token(), org.instance_url), metadata_cache=cache
        )
        _preflight(adapter, campaign, "Lead")
        assert cache.hits == 3  # read together, then each answered from the cache
        clock.now += 59.0
        _preflight(adapter, campaign, "Lead")
        assert len(org.calls) == 1
        assert cache.hits == 6
        clock.now += 1.0
        _preflight(adapter, campaign, "Lead")
    assert len(org.calls) == 2


def test_a_write_naming_an_unknown_field_forgets_the_schemas() -> None:
    """Salesforce refusing a field means the schema changed: the next describe reads it again."""
    org = LocalSalesforce()
    with httpx.Client(transport=org.transport()) as http:
        adapter = SalesforceAdapter(http, StaticToken(org.issue_token(), org.instance_url))
        adapter.describe("Lead")
        adapter.describe("Lead")
        assert len(org.calls) == 1
        bad = PersonWrite(
            key="k",
            kind=PersonKind.LEAD,
            email="a@example.com",
            fields={"Email": "a@example.com", "LastName": "A", "Company": "B", "Nope__c": "x"},
        )
        (result,) = adapter.create_people([bad])
        assert not result.ok
        calls = len(org.calls)
        adapter.describe("Lead")
    assert len(org.calls) == calls + 1


def test_hubspot_adapters_share_their_auth_s_cache() -> None:
    """HubSpot too: owners, properties and the list check are read once per connection."""
    portal = LocalHubSpot()
    campaign = portal.backdoor.seed_campaign(name="C")
    auth = HubSpotToken("local-hubspot-token")
    api = HubSpotAPI(base_url="https://api.hubapi.com")
    with httpx.Client(transport=portal.transport()) as http:
        _preflight(HubSpotAdapter(http, auth, api=api), campaign, "contacts")
        first = len(portal.requests)
        _preflight(HubSpotAdapter(http, auth, api=api), campaign, "contacts")
    assert len(portal.requests) == first


def test_cached_users_are_copies() -> None:
    """Changing the list a call returned never changes what the next call returns."""
    org = LocalSalesforce()
    with httpx.Client(transport=org.transport()) as http:
        adapter = SalesforceAdapter(http, StaticToken(org.issue_token(), org.instance_url))
        users = adapter.list_users()
        users.clear()
        assert adapter.list_users()


@pytest.mark.parametrize("kind", ["describe", None])
def test_forget_drops_one_kind_or_everything(kind: str | None) -> None:
    """forget(kind) drops that kind's entries only; forget() drops all."""
    cache = MetadataCache()
    cache.put(("describe", "lead"), 1)
    cache.put(("users",), 2)
    cache.forget(kind)
    assert cache.get(("describe", "lead")) == (False, None)
    assert cache.get(("users",)) == ((True, 2) if kind else (False, None))
