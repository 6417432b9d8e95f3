"""Fixtures for the Salesforce adapter tests: a fresh local org, clients and adapters."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from signals_crm.adapters.salesforce import AsyncSalesforceAdapter, SalesforceAdapter, StaticToken
from signals_crm.testing.salesforce import LocalSalesforce, SalesforceBackdoor


@pytest.fixture
def org() -> LocalSalesforce:
    """A fresh, empty local org whose clock never sleeps."""
    return LocalSalesforce(sleep=lambda _seconds: None)


@pytest.fixture
def backdoor(org: LocalSalesforce) -> SalesforceBackdoor:
    """Direct access to the org's data."""
    return SalesforceBackdoor(org)


@pytest.fixture
def client(org: LocalSalesforce) -> Iterator[httpx.Client]:
    """A blocking client wired to the org in-process."""
    with httpx.Client(transport=org.transport()) as http:
        yield http


@pytest.fixture
def sf(org: LocalSalesforce, client: httpx.Client) -> SalesforceAdapter:
    """A blocking adapter with a static token for the org."""
    return SalesforceAdapter(client, StaticToken(org.issue_token(), org.instance_url))


@pytest.fixture
async def async_client(org: LocalSalesforce) -> AsyncIterator[httpx.AsyncClient]:
    """An async client wired to the org in-process."""
    async with httpx.AsyncClient(transport=org.transport()) as http:
        yield http


@pytest.fixture
def async_sf(org: LocalSalesforce, async_client: httpx.AsyncClient) -> AsyncSalesforceAdapter:
    """An async adapter with a static token for the org."""
    return AsyncSalesforceAdapter(async_client, StaticToken(org.issue_token(), org.instance_url))
