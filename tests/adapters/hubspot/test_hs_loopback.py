"""The local HubSpot over a real loopback socket, reached by plain httpx clients."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

from signals_crm.adapters.hubspot import AsyncHubSpotAdapter, HubSpotAdapter, HubSpotAPI
from signals_crm.core.crm import PersonByEmail, PersonWrite
from signals_crm.core.model import PersonKind
from signals_crm.exceptions import TransportError
from signals_crm.testing.hubspot import LocalHubSpot, LocalHubSpotServer, demo_portal

TOKEN = "local-hubspot-token"


@pytest.fixture
def server() -> Iterator[LocalHubSpotServer]:
    with LocalHubSpotServer(LocalHubSpot()) as running:
        yield running


def person(email: str) -> PersonWrite:
    return PersonWrite(key=email, kind=PersonKind.CONTACT, email=email, fields={"firstname": "Lo"})


def test_adapter_over_a_real_socket(server: LocalHubSpotServer) -> None:
    """Create, find and reconcile through a real HTTP connection on 127.0.0.1."""
    assert server.url.startswith("http://127.0.0.1:")
    with httpx.Client(timeout=5.0) as client:
        adapter = HubSpotAdapter(client, TOKEN, api=HubSpotAPI(base_url=server.url))
        (created,) = adapter.create_people([person("loop@example.com")])
        ((found,),) = adapter.find_people(["LOOP@example.com"], ["firstname"])
        assert adapter.usage is not None
    assert created.ok
    assert found.id == created.id
    assert found.fields == {"firstname": "Lo"}


def test_commit_then_drop_over_a_socket(server: LocalHubSpotServer) -> None:
    """The server writes, then closes the socket: a network error, and the record exists."""
    server.portal.faults.drop_next(path="/batch/create")
    with httpx.Client(timeout=5.0) as client:
        adapter = HubSpotAdapter(client, TOKEN, api=HubSpotAPI(base_url=server.url))
        with pytest.raises(TransportError) as raised:
            adapter.create_people([person("dropped@example.com")])
        (landed,) = adapter.reconcile([PersonByEmail("dropped@example.com", PersonKind.CONTACT)])
    assert raised.value.maybe_sent is True
    assert landed is not None
    assert server.portal.backdoor.people_with_email("dropped@example.com") == [landed]


@pytest.mark.anyio
async def test_async_adapter_over_a_real_socket(server: LocalHubSpotServer) -> None:
    """The async adapter talks to the same loopback server."""
    async with httpx.AsyncClient(timeout=5.0) as client:
        adapter = AsyncHubSpotAdapter(client, TOKEN, api=HubSpotAPI(base_url=server.url))
        (created,) = await adapter.acreate_people([person("aloop@example.com")])
        users = await adapter.alist_users()
    assert created.ok
    assert users == []


def test_demo_portal_serves_owners_and_a_list() -> None:
    """The portal `signals-crm sandbox hubspot` serves has owners and a static list seeded."""
    with LocalHubSpotServer(demo_portal()) as running, httpx.Client(timeout=5.0) as client:
        adapter = HubSpotAdapter(client, TOKEN, api=HubSpotAPI(base_url=running.url))
        emails = sorted(u.email or "" for u in adapter.list_users())
        lists = running.portal.lists
    assert emails == ["bob@example.com", "sally@example.com"]
    assert [lst.name for lst in lists.values()] == ["Signals chat leads"]


def test_late_commit_fault_commits_after_the_client_gave_up() -> None:
    """A held write times out at the client and commits once the hold ends; reads and
    searches are never held."""
    release = threading.Event()
    portal = LocalHubSpot(sleep=lambda _: release.wait(10))
    portal.faults.late_commit_rate = 1.0
    with LocalHubSpotServer(portal) as running, httpx.Client(timeout=0.3) as client:
        adapter = HubSpotAdapter(client, TOKEN, api=HubSpotAPI(base_url=running.url))
        assert adapter.find_people(["late@example.com"]) == [()]  # a search: answered at once
        with pytest.raises(TransportError) as raised:
            adapter.create_people([person("late@example.com")])
        assert raised.value.maybe_sent is True
        assert portal.backdoor.people_with_email("late@example.com") == []
        release.set()
        for _ in range(200):  # the held request commits (bounded wait)
            if portal.backdoor.people_with_email("late@example.com"):
                break
            threading.Event().wait(0.02)
    assert len(portal.backdoor.people_with_email("late@example.com")) == 1
    assert portal.late_commits == 1
