"""Fixtures for the HubSpot adapter tests: a fake clock, a local portal, adapters on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from hubspot_support import BASE_URL, TOKEN, FakeClock, limiters

from signals_crm.adapters.hubspot import AsyncHubSpotAdapter, HubSpotAdapter, HubSpotAPI
from signals_crm.testing.hubspot import HubSpotBackdoor, LocalHubSpot


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def portal(clock: FakeClock) -> LocalHubSpot:
    return LocalHubSpot(clock=clock, sleep=clock.sleep)


@pytest.fixture
def backdoor(portal: LocalHubSpot) -> HubSpotBackdoor:
    return portal.backdoor


@pytest.fixture
def client(portal: LocalHubSpot) -> Iterator[httpx.Client]:
    with httpx.Client(transport=portal.transport()) as c:
        yield c


@pytest.fixture
def adapter(client: httpx.Client, clock: FakeClock) -> HubSpotAdapter:
    return HubSpotAdapter(client, TOKEN, api=HubSpotAPI(base_url=BASE_URL), **limiters(clock))


@pytest.fixture
async def async_adapter(
    portal: LocalHubSpot, clock: FakeClock
) -> AsyncIterator[AsyncHubSpotAdapter]:
    async with httpx.AsyncClient(transport=portal.transport()) as c:
        yield AsyncHubSpotAdapter(c, TOKEN, api=HubSpotAPI(base_url=BASE_URL), **limiters(clock))
