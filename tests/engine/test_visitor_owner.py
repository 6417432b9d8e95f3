"""Routing pulls: the Signals user owning a returning visitor's Lead, Contact or Account, with
the path, through the user mapping, cached; on the in-memory CRM and both sandboxes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from signals_crm import AsyncIntegration, Integration, IntegrationSettings, PersonKind
from signals_crm.adapters.hubspot import AsyncHubSpotAdapter, HubSpotAdapter, HubSpotAPI
from signals_crm.adapters.salesforce import SalesforceAdapter, StaticToken
from signals_crm.core.config import UserMapEntry, UserMapping
from signals_crm.core.model import PersonRecord
from signals_crm.core.routing import VisitorOwnerPath, decide_visitor_owner
from signals_crm.ledger import MemoryLedger
from signals_crm.testing import InMemoryCRM
from signals_crm.testing.hubspot import HubSpotBackdoor, LocalHubSpot
from signals_crm.testing.salesforce import LocalSalesforce, SalesforceBackdoor

T0 = datetime(2026, 11, 20, 12, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _settings(mapping: list[dict[str, Any]]) -> IntegrationSettings:
    return IntegrationSettings.from_dict({"user_mapping": mapping})


def _salesforce_like() -> tuple[InMemoryCRM, dict[str, str]]:
    """Sally owns the Lead of lead@…, Bob the Contact of contact@…, Jill its Account; Ursula
    (no Signals user) owns the Contact of unowned@…, whose Account Jill owns."""
    crm = InMemoryCRM()
    users = {n: crm.seed_user(email=f"{n}@vendor.test") for n in ("sally", "bob", "jill", "ursula")}
    account = crm.seed_account(domain="acme.test", name="Acme", fields={"OwnerId": users["jill"]})
    crm.seed_person(
        kind=PersonKind.LEAD, email="lead@acme.test", fields={"OwnerId": users["sally"]}
    )
    crm.seed_person(
        kind=PersonKind.CONTACT,
        email="Contact@Acme.test",
        fields={"OwnerId": users["bob"], "AccountId": account},
    )
    crm.seed_person(
        kind=PersonKind.CONTACT,
        email="unowned@acme.test",
        fields={"OwnerId": users["ursula"], "AccountId": account},
    )
    users["account"] = account
    return crm, users


def _mapping(users: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {"crm_user_id": users["sally"], "signals_user_id": "u-sally"},
        {"crm_user_id": users["bob"], "signals_user_id": "u-bob"},
        {"crm_user_id": users["jill"], "signals_user_id": "u-jill"},
    ]


def test_the_lead_owner_the_contact_owner_then_the_account_owner() -> None:
    """A Lead's owner routes its visitor; a Contact's owner routes theirs; a Contact owned by
    someone who is not a Signals user falls to its Account's owner, each with its path."""
    crm, users = _salesforce_like()
    integration = Integration(crm, _settings(_mapping(users)), ledger=MemoryLedger())
    lead = integration.visitor_owner("lead@acme.test")
    assert (lead.signals_user, lead.path) == ("u-sally", VisitorOwnerPath.LEAD_OWNER)
    assert (lead.record_kind, lead.field, lead.crm_owner_id) == ("lead", "OwnerId", users["sally"])
    contact = integration.visitor_owner("  contact@ACME.test ")
    assert (contact.signals_user, contact.path) == ("u-bob", VisitorOwnerPath.CONTACT_OWNER)
    assert contact.account_id == users["account"]
    fallen = integration.visitor_owner("unowned@acme.test")
    assert (fallen.signals_user, fallen.path) == ("u-jill", VisitorOwnerPath.ACCOUNT_OWNER)
    assert (fallen.record_kind, fallen.record_id) == ("account", users["account"])
    assert "owner_not_signals_user" in [r.code for r in fallen.trace]
    assert fallen.as_dict()["path"] == "account_owner"


def test_no_record_no_email_and_an_unlicensed_owner_answer_none() -> None:
    """A stranger, a visitor without a valid email, and a record whose owner is an unlicensed
    Signals user get no Signals user, each with the reason; the first CRM owner is kept."""
    crm, users = _salesforce_like()
    mapping = _mapping(users)
    mapping[0]["licensed"] = False
    integration = Integration(crm, _settings(mapping), ledger=MemoryLedger())
    stranger = integration.visitor_owner("nobody@else.test")
    assert stranger.path is VisitorOwnerPath.NONE
    assert "no_person_record" in [r.code for r in stranger.trace]
    invalid = integration.visitor_owner("not an email")
    assert [r.code for r in invalid.trace] == ["no_email"]
    unlicensed = integration.visitor_owner("lead@acme.test")
    assert unlicensed.signals_user is None
    assert unlicensed.crm_owner_id == users["sally"]
    assert "owner_not_licensed" in [r.code for r in unlicensed.trace]


def test_the_answer_is_cached_like_the_account_owner() -> None:
    """A second ask within the owner cache's lifetime reads nothing; after it, the CRM is read
    again (and a changed owner shows)."""
    crm, users = _salesforce_like()
    clock = Clock()
    integration = Integration(
        crm,
        _settings(_mapping(users)),
        ledger=MemoryLedger(),
        clock=clock,
        owner_cache_ttl=timedelta(minutes=10),
    )
    integration.visitor_owner("lead@acme.test")
    integration.visitor_owner("LEAD@acme.test")
    assert crm.calls["find_people"] == 1
    clock.now += timedelta(minutes=11)
    integration.visitor_owner("lead@acme.test")
    assert crm.calls["find_people"] == 2


@pytest.mark.anyio
async def test_the_async_twin_and_the_hubspot_flavour() -> None:
    """avisitor_owner answers as visitor_owner does; on a HubSpot-like CRM the contact's
    owner field is hubspot_owner_id and its primary company is the account."""
    crm = InMemoryCRM(person_kind=PersonKind.CONTACT)
    owner = crm.seed_user(email="olga@vendor.test")
    company = crm.seed_account(domain="b.test", name="B", fields={"hubspot_owner_id": owner})
    crm.seed_person(
        kind=PersonKind.CONTACT, email="v@b.test", fields={"associatedcompanyid": company}
    )
    settings = _settings([{"crm_user_id": owner, "signals_user_id": "u-olga"}])
    integration = AsyncIntegration(crm, settings, ledger=MemoryLedger())
    found = await integration.avisitor_owner("v@b.test")
    assert (found.signals_user, found.path) == ("u-olga", VisitorOwnerPath.ACCOUNT_OWNER)
    assert found.field == "hubspot_owner_id"


def test_against_the_local_salesforce() -> None:
    """The Salesforce adapter reads the Contact's AccountId and the Account's OwnerId."""
    org = LocalSalesforce()
    door = SalesforceBackdoor(org)
    bob = door.seed_user(email="bob@vendor.test")
    jill = door.seed_user(email="jill@vendor.test")
    account = door.seed_account(domain="acme.test", name="Acme", fields={"OwnerId": jill})
    door.seed_person(
        kind=PersonKind.CONTACT,
        email="c@acme.test",
        fields={"LastName": "C", "AccountId": account, "OwnerId": bob},
    )
    settings = _settings([{"crm_user_id": jill, "signals_user_id": "u-jill"}])
    with httpx.Client(transport=org.transport()) as http:
        adapter = SalesforceAdapter(http, StaticToken(org.issue_token(), org.instance_url))
        found = Integration(adapter, settings, ledger=MemoryLedger()).visitor_owner("c@acme.test")
    assert (found.signals_user, found.path) == ("u-jill", VisitorOwnerPath.ACCOUNT_OWNER)
    assert found.record_id == account
    assert found.crm_owner_id == jill


@pytest.mark.anyio
async def test_against_the_local_hubspot() -> None:
    """The HubSpot adapter reads the contact's primary company (associatedcompanyid, set by
    the primary association) and the company's hubspot_owner_id.

    https://developers.hubspot.com/changelog/2019-01-24-update-the-associatedcompanyid-contact-property-will-become-read-only-on-april-26th
    """
    token = "t-1"
    portal = LocalHubSpot(tokens=(token,), burst_limit=None, search_per_second=None)
    door = HubSpotBackdoor(portal)
    olga = door.seed_user(email="olga@vendor.test")
    company = door.seed_account(domain="b.test", name="B", fields={"hubspot_owner_id": olga})
    door.seed_person(email="v@b.test", fields={"associatedcompanyid": company})
    settings = _settings([{"crm_user_id": olga, "signals_user_id": "u-olga"}])
    api = HubSpotAPI(base_url="https://api.hubapi.test")
    with httpx.Client(transport=portal.transport()) as http:
        found = Integration(
            HubSpotAdapter(http, token, api=api), settings, ledger=MemoryLedger()
        ).visitor_owner("v@b.test")
    assert (found.signals_user, found.path) == ("u-olga", VisitorOwnerPath.ACCOUNT_OWNER)
    assert found.record_id == company
    async with httpx.AsyncClient(transport=portal.transport()) as ahttp:
        again = await AsyncIntegration(
            AsyncHubSpotAdapter(ahttp, token, api=api), settings, ledger=MemoryLedger()
        ).avisitor_owner("v@b.test")
    assert again == found


_IDS = st.sampled_from(["005A", "005B", "005C", None])


@given(lead_owner=_IDS, contact_owner=_IDS, mapped=st.sets(st.sampled_from(["005A", "005B"])))
def test_the_first_mapped_owner_wins_in_lead_contact_order(
    lead_owner: str | None, contact_owner: str | None, mapped: set[str]
) -> None:
    """Whatever the owners and the mapping: the answer is the first of (Lead owner, Contact
    owner) that maps to a Signals user, and its path says which."""
    users = UserMapping(tuple(UserMapEntry(c, signals_user_id=f"u-{c}") for c in sorted(mapped)))
    records = [
        PersonRecord(id="00Q1", kind=PersonKind.LEAD, email="x@y.test", owner_id=lead_owner),
        PersonRecord(id="0031", kind=PersonKind.CONTACT, email="x@y.test", owner_id=contact_owner),
    ]
    found = decide_visitor_owner("x@y.test", records, None, users, owner_field="OwnerId")
    expected = next(
        (
            (f"u-{owner}", path)
            for owner, path in (
                (lead_owner, VisitorOwnerPath.LEAD_OWNER),
                (contact_owner, VisitorOwnerPath.CONTACT_OWNER),
            )
            if owner in mapped
        ),
        (None, VisitorOwnerPath.NONE),
    )
    assert (found.signals_user, found.path) == expected
