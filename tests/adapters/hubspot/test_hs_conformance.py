"""The adapter conformance kit against the HubSpot adapters and the local HubSpot portal."""

from __future__ import annotations

import httpx
import pytest
from hubspot_support import BASE_URL, TOKEN, FakeClock, limiters
from hypothesis import settings

from signals_crm.adapters.hubspot import AsyncHubSpotAdapter, HubSpotAdapter, HubSpotAPI
from signals_crm.testing.conformance import (
    AdapterConformance,
    AsyncAdapterConformance,
    Backdoor,
    adapter_state_machine,
)
from signals_crm.testing.hubspot import HubSpotBackdoor, LocalHubSpot


class TestHubSpotConformance(AdapterConformance):
    """The blocking adapter passes the kit."""

    text_field = "firstname"
    account_field = "description"
    account_owner_field = "hubspot_owner_id"

    @pytest.fixture
    def adapter(self, adapter: HubSpotAdapter) -> HubSpotAdapter:
        return adapter


class TestHubSpotDatedNotesConformance(AdapterConformance):
    """The kit passes too with date-versioned paths and activities written as notes."""

    text_field = "firstname"
    account_field = "description"
    account_owner_field = "hubspot_owner_id"

    @pytest.fixture
    def adapter(self, client: httpx.Client, clock: FakeClock) -> HubSpotAdapter:
        return HubSpotAdapter(
            client,
            TOKEN,
            api=HubSpotAPI(base_url=BASE_URL, version="2026-03"),
            activity_object="notes",
            **limiters(clock),
        )


class TestAsyncHubSpotConformance(AsyncAdapterConformance):
    """The async adapter passes the kit."""

    text_field = "firstname"
    account_field = "description"
    account_owner_field = "hubspot_owner_id"

    @pytest.fixture
    def adapter(self, async_adapter: AsyncHubSpotAdapter) -> AsyncHubSpotAdapter:
        return async_adapter


def _machine_adapter() -> HubSpotAdapter:
    clock = FakeClock()
    portal = LocalHubSpot(clock=clock, sleep=clock.sleep)
    client = httpx.Client(transport=portal.transport())
    adapter = HubSpotAdapter(client, TOKEN, api=HubSpotAPI(base_url=BASE_URL), **limiters(clock))
    _PORTALS[id(adapter)] = (portal, client)
    return adapter


def _machine_backdoor(adapter: HubSpotAdapter) -> HubSpotBackdoor:
    return _PORTALS[id(adapter)][0].backdoor


def _machine_close(adapter: HubSpotAdapter) -> None:
    _, client = _PORTALS.pop(id(adapter))
    client.close()


_PORTALS: dict[int, tuple[LocalHubSpot, httpx.Client]] = {}

HubSpotMachine = adapter_state_machine(
    _machine_adapter, _machine_backdoor, text_field="firstname", close=_machine_close
)
HubSpotMachine.TestCase.settings = settings(max_examples=30, stateful_step_count=15, deadline=None)


class TestHubSpotStateMachine(HubSpotMachine.TestCase):  # type: ignore[name-defined,misc]
    """Random operations against adapter + local HubSpot agree with a dict model."""


def test_backdoor_implements_the_kit_protocol(backdoor: HubSpotBackdoor) -> None:
    """The local portal's backdoor is a kit Backdoor (checked by mypy and at runtime)."""
    door: Backdoor = backdoor
    assert isinstance(door, Backdoor)
    assert door.enable_duplicate_detection() is True
