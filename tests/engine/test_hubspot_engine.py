"""The engine end to end against the local HubSpot, through the real HubSpot adapter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from signals_crm._flows import OutcomeKind
from signals_crm.adapters.hubspot import AsyncHubSpotAdapter, HubSpotAdapter, HubSpotAPI
from signals_crm.core.config import (
    FieldMapping,
    FieldMappings,
    SyncConfig,
    UserMapEntry,
    UserMapping,
)
from signals_crm.core.model import (
    Conversation,
    Meeting,
    Participants,
    PersonKind,
    SignalsUser,
    Visitor,
)
from signals_crm.engine import AsyncIntegration, Integration
from signals_crm.ledger import MemoryLedger
from signals_crm.testing.hubspot import HubSpotBackdoor, LocalHubSpot

CLOSED = datetime(2026, 11, 20, 12, tzinfo=UTC)
NOW = CLOSED + timedelta(hours=1)
API = HubSpotAPI(base_url="https://api.hubapi.test")


def portal() -> tuple[LocalHubSpot, HubSpotBackdoor, str, str]:
    hub = LocalHubSpot(burst_limit=None, search_per_second=None)
    door = HubSpotBackdoor(hub)
    owner = door.seed_user(email="owner@vendor.test")
    campaign = door.seed_campaign(name="Chat leads")
    return hub, door, owner, campaign


def config(owner: str, campaign: str) -> SyncConfig:
    return SyncConfig(
        campaign_id=campaign,
        users=UserMapping((UserMapEntry(owner, signals_user_id="u1"),)),
        field_mappings=FieldMappings(
            contact=(
                FieldMapping("contact.first_name", "firstname", overwrite=True),
                FieldMapping("contact.last_name", "lastname"),
            )
        ),
        placeholders={},
    )


def conv(cid: str, email: str, first: str) -> Conversation:
    return Conversation(
        id=cid,
        closed_at=CLOSED,
        lead_score=3,
        visitor=Visitor(email=email, first_name=first, last_name="Test"),
        participants=Participants(closer=SignalsUser(id="u1")),
        transcript="Visitor: hi",
        meeting=Meeting(id="m1", name="Demo"),
    )


def test_hubspot_contacts_are_created_and_updated():
    """New contacts are created (lead stage, owner, list); existing ones get overwrite fields
    updated — on HubSpot a matched contact is the person record — and both get their tasks."""
    hub, door, owner, campaign = portal()
    existing = door.seed_person(
        kind=PersonKind.CONTACT,
        email="old@acme.test",
        fields={"firstname": "Olga", "lastname": "Keep"},
    )
    with httpx.Client(transport=hub.transport()) as http:
        adapter = HubSpotAdapter(http, "local-hubspot-token", api=API)
        sync = Integration(
            adapter,
            config(owner, campaign),
            ledger=MemoryLedger(),
            sleep=lambda _: None,
            clock=lambda: NOW,
        )
        sync.conversation_closed(conv("c-new", "New@Acme.test", "Nia"))
        sync.conversation_closed(conv("c-old", "OLD@acme.test ", "Olivia"))
        report = sync.run_due(NOW)
    assert report.outcome("c-new").kind is OutcomeKind.CREATED
    assert report.outcome("c-old").kind is OutcomeKind.UPDATED
    (new,) = door.people_with_email("new@acme.test")
    fields = door.person_fields(new)
    assert fields["firstname"] == "Nia"
    assert fields["lifecyclestage"] == "lead"
    assert fields["hubspot_owner_id"] == owner
    old = door.person_fields(existing)
    assert old["firstname"] == "Olivia"
    assert old["lastname"] == "Keep"
    assert door.campaign_members(campaign) == {new}
    assert sorted(door.task_markers(new)) == [
        "signals:c-new:meeting:m1",
        "signals:c-new:transcript",
    ]
    assert len(door.task_markers(existing)) == 2


def test_hubspot_daily_budget_stops_the_run():
    """With HubSpot's daily headers past the budget share, the run stops before writing."""
    hub, door, owner, campaign = portal()
    hub.daily_limit = 100
    hub.daily_used = 95
    with httpx.Client(transport=hub.transport()) as http:
        adapter = HubSpotAdapter(http, "local-hubspot-token", api=API)
        sync = Integration(
            adapter,
            config(owner, campaign),
            ledger=MemoryLedger(),
            sleep=lambda _: None,
            clock=lambda: NOW,
            api_budget=0.9,
        )
        sync.conversation_closed(conv("c-1", "a@acme.test", "A"))
        report = sync.run_due(NOW)
    assert report.budget_exhausted
    assert door.people_with_email("a@acme.test") == []


@pytest.mark.anyio
async def test_async_hubspot_end_to_end():
    """The async engine over the async HubSpot adapter creates the contact and its tasks."""
    hub, door, owner, campaign = portal()
    async with httpx.AsyncClient(transport=hub.transport()) as http:
        adapter = AsyncHubSpotAdapter(http, "local-hubspot-token", api=API)
        sync = AsyncIntegration(
            adapter, config(owner, campaign), ledger=MemoryLedger(), clock=lambda: NOW
        )
        sync.conversation_closed(conv("c-1", "async@acme.test", "Ada"))
        report = await sync.arun_due(NOW)
    assert report.outcome("c-1").kind is OutcomeKind.CREATED
    (person,) = door.people_with_email("async@acme.test")
    assert len(door.task_markers(person)) == 2
