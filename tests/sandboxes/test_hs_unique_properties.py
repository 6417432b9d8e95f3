"""Unique-value properties in the local HubSpot: allowed where HubSpot documents them, refused
on tasks (and notes, meetings), at most ten per object.

HubSpot's developer changelog, "Unique Properties support for newly created Contact
properties", https://developers.hubspot.com/changelog/unique-properties-for-contacts: unique
properties exist for companies, deals, tickets and custom objects, and now contacts; "only net
new properties can be set to contain a unique value"; "a maximum of 10 unique properties".
Properties API (``hasUniqueValue``), https://developers.hubspot.com/docs/api/crm/properties.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hubspot import HubSpot
from hubspot.crm.properties import PropertyCreate
from hubspot.crm.properties.exceptions import ApiException

from signals_crm.testing import LoopbackServer
from signals_crm.testing.hubspot import LocalHubSpot

AUTH = {"Authorization": "Bearer local-hubspot-token"}


@pytest.fixture
def http(portal: LocalHubSpot) -> Iterator[httpx.Client]:
    with httpx.Client(
        transport=portal.transport(), base_url="https://api.hubapi.com", headers=AUTH
    ) as client:
        yield client


def _unique(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": name,
        "type": "string",
        "fieldType": "text",
        "groupName": "information",
        "hasUniqueValue": True,
    }


@pytest.mark.parametrize("kind", ["contacts", "companies", "deals"])
def test_unique_properties_on_the_objects_that_have_them(http: httpx.Client, kind: str) -> None:
    """Contacts, companies and deals take a new ``hasUniqueValue`` property (201)."""
    made = http.post(f"/crm/v3/properties/{kind}", json=_unique("signals_sync_key"))
    assert made.status_code == 201
    assert made.json()["hasUniqueValue"] is True


@pytest.mark.parametrize("kind", ["tasks", "notes", "meetings"])
def test_unique_properties_are_refused_on_activities(http: httpx.Client, kind: str) -> None:
    """Tasks, notes and meetings are not among the objects HubSpot gives unique properties:
    400 ``VALIDATION_ERROR``, nothing created; the same property without it is fine."""
    refused = http.post(f"/crm/v3/properties/{kind}", json=_unique("signals_sync_key"))
    assert refused.status_code == 400
    assert refused.json()["category"] == "VALIDATION_ERROR"
    assert "hasUniqueValue" in refused.json()["message"]
    assert http.get(f"/crm/v3/properties/{kind}/signals_sync_key").status_code == 404
    plain = http.post(
        f"/crm/v3/properties/{kind}", json={**_unique("signals_sync_key"), "hasUniqueValue": False}
    )
    assert plain.status_code == 201


def test_at_most_ten_unique_properties_per_object(http: httpx.Client) -> None:
    """The eleventh unique property of an object is refused."""
    for n in range(10):
        assert http.post("/crm/v3/properties/deals", json=_unique(f"key_{n}")).status_code == 201
    eleventh = http.post("/crm/v3/properties/deals", json=_unique("key_10"))
    assert eleventh.status_code == 400
    assert "10 unique" in eleventh.json()["message"]


def test_the_backdoor_refuses_them_too(portal: LocalHubSpot) -> None:
    """``add_property(..., unique=True)`` follows the same rule."""
    portal.add_property("contacts", "signals_key", unique=True)
    with pytest.raises(ValueError, match="not supported on tasks"):
        portal.add_property("tasks", "signals_key", unique=True)


@pytest.fixture
def client(hs_server: LoopbackServer) -> HubSpot:
    return HubSpot(
        access_token="local-hubspot-token",
        ssl_ca_cert=hs_server.ca_file,
        proxy=hs_server.proxy_url,
    )


def test_the_official_client_is_refused_on_tasks(client: HubSpot) -> None:
    """hubspot-api-client's ``PropertyCreate(has_unique_value=True)`` on tasks raises its
    ``ApiException`` with status 400; on contacts it is created."""
    spec = {
        "name": "signals_sync_key",
        "label": "Signals sync key",
        "type": "string",
        "field_type": "text",
        "group_name": "information",
        "has_unique_value": True,
    }
    made = client.crm.properties.core_api.create("contacts", PropertyCreate(**spec))
    assert made.has_unique_value is True
    with pytest.raises(ApiException) as refused:
        client.crm.properties.core_api.create("tasks", PropertyCreate(**spec))
    assert refused.value.status == 400
