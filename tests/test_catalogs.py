"""Settings catalogs: the Signals fields, the CRM fields each tab offers, users with a proposed
mapping, campaigns and owner fields, read through the adapters from the in-process sandboxes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import attrs
import httpx
import pytest

from _jsonschema import assert_valid
from signals_crm import Integration, IntegrationSettings, PersonKind, SignalsUser
from signals_crm.adapters.hubspot import AsyncHubSpotAdapter, HubSpotAdapter, HubSpotAPI
from signals_crm.adapters.salesforce import AsyncSalesforceAdapter, SalesforceAdapter, StaticToken
from signals_crm.catalogs import SIGNALS_FIELDS, asettings_catalog, settings_catalog
from signals_crm.core.catalog import RECEIVES, receives, suggested_attribute
from signals_crm.core.config import FieldMapping
from signals_crm.core.crm import Capabilities
from signals_crm.core.mapping import build_create_fields, validate_mappings
from signals_crm.core.model import (
    Company,
    Conversation,
    FieldSchema,
    FieldType,
    FieldValue,
    Meeting,
    ObjectSchema,
    Visitor,
)
from signals_crm.exceptions import NotFoundError
from signals_crm.ledger import MemoryLedger
from signals_crm.schemas import json_schema
from signals_crm.testing import InMemoryCRM
from signals_crm.testing.hubspot import LocalHubSpot
from signals_crm.testing.salesforce import LocalSalesforce, SalesforceBackdoor

API = HubSpotAPI(base_url="https://api.hubapi.com")
SCHEMA = json_schema("settings_catalog")
PRIYA = SignalsUser(id="u-priya", email="Priya@Vendor.test")
BOB = SignalsUser(id="u-bob", email="bob@vendor.test")
NOBODY = SignalsUser(id="u-nobody")


@pytest.fixture
def org() -> LocalSalesforce:
    return LocalSalesforce()


@pytest.fixture
def salesforce(org: LocalSalesforce) -> Iterator[SalesforceAdapter]:
    with httpx.Client(transport=org.transport()) as http:
        yield SalesforceAdapter(http, StaticToken(org.issue_token(), org.instance_url))


@pytest.fixture
def portal() -> LocalHubSpot:
    return LocalHubSpot()


@pytest.fixture
def hubspot(portal: LocalHubSpot) -> Iterator[HubSpotAdapter]:
    with httpx.Client(transport=portal.transport()) as http:
        yield HubSpotAdapter(http, "local-hubspot-token", api=API)


def valid(data: dict[str, Any]) -> dict[str, Any]:
    assert_valid(data, SCHEMA)
    assert json.loads(json.dumps(data)) == data
    return data


# -- Salesforce ----------------------------------------------------------------------------------


def test_salesforce_catalog_offers_lead_fields_by_type(org, salesforce):
    """The Lead tab offers writable, type-compatible fields with lengths and picklist values;
    the email field and the owner are left out; the Contact tab says it never applies."""
    catalog = settings_catalog(salesforce)
    lead = catalog.tab("lead")
    assert lead.applies
    assert lead.direction == "push"
    assert catalog.push_tab is lead
    first = lead.field("FirstName")
    assert first is not None
    assert first.length == 40
    assert "contact.first_name" in first.accepts
    phone = lead.field("Phone")
    assert phone is not None
    assert "contact.phone" in phone.accepts
    assert "contact.first_name" not in phone.accepts  # a name is no phone number
    source = lead.field("LeadSource")
    assert source is not None
    assert source.type is FieldType.PICKLIST
    assert source.picklist_values is not None
    assert "Web" in source.picklist_values
    assert lead.field("Email") is None  # the sync writes the visitor's email itself
    assert lead.field("OwnerId") is None  # owners come from the owner rules
    assert lead.field("Id") is None  # not writable
    assert {f.name for f in lead.targets_for("contact.phone")} >= {"Phone", "MobilePhone"}
    last = lead.field("LastName")
    assert last is not None
    assert last.required
    contact = catalog.tab("contact")
    assert not contact.applies
    assert contact.fields == ()
    assert "never writes Contacts" in contact.note
    valid(catalog.as_dict())


def test_salesforce_catalog_owner_fields_users_and_active_campaigns(org, salesforce):
    """Owner fields are the Account's user references people set (not audit fields); users
    are listed with a proposed mapping; only active Campaigns are offered."""
    door = SalesforceBackdoor(org)
    priya = door.seed_user(email="priya@vendor.test", name="Priya Raman")
    door.seed_user(email="gone@vendor.test", active=False, name="Gone")
    active = door.seed_campaign(name="Chat leads")
    door._insert("Campaign", {"Name": "Old promo", "IsActive": False})
    catalog = settings_catalog(salesforce, signals_users=[PRIYA, BOB, NOBODY])
    assert [f.name for f in catalog.owner_fields] == ["OwnerId", "SDR_Owner__c"]
    by_email = {u.email: u for u in catalog.users}
    assert by_email["priya@vendor.test"].id == priya
    assert by_email["gone@vendor.test"].active is False
    assert catalog.campaigns is not None
    assert [(c.id, c.name) for c in catalog.campaigns] == [(active, "Chat leads")]
    proposal = catalog.user_mapping
    assert proposal is not None
    assert proposal.as_settings() == [
        {
            "crm_user_id": priya,
            "signals_user_id": "u-priya",
            "signals_email": "Priya@Vendor.test",
            "licensed": True,
        }
    ]
    assert proposal.unmatched == (BOB, NOBODY)
    data = valid(catalog.as_dict())
    assert data["user_mapping"]["user_mapping"] == proposal.as_settings()
    account = data["tabs"]["account"]
    assert account["direction"] == "pull"
    industry = next(f for f in account["fields"] if f["name"] == "Industry")
    assert industry["suggested_source"] == "company.industry"
    employees = next(f for f in account["fields"] if f["name"] == "NumberOfEmployees")
    assert employees["suggested_source"] == "company.number_of_employees"


def test_a_catalog_then_a_preflight_cost_one_round_of_requests(org, salesforce):
    """The catalog reads what preflight reads, through the adapter's metadata cache: the
    preflight that follows the settings page sends no describe, user list or campaign check
    again (a listed campaign exists)."""
    door = SalesforceBackdoor(org)
    priya = door.seed_user(email="priya@vendor.test")
    campaign = door.seed_campaign(name="Chat leads")
    catalog = settings_catalog(salesforce, signals_users=[PRIYA])
    assert catalog.user_mapping is not None
    settings = (
        IntegrationSettings.from_dict({"campaign_id": campaign})
        .with_field_mapping("lead", "contact.first_name", "FirstName", overwrite=True)
        .with_user_mapping_proposal(catalog.user_mapping)
    )
    before = len(org.calls)
    again = settings_catalog(salesforce)
    assert len(org.calls) == before  # all cached
    assert again.as_dict()["tabs"] == catalog.as_dict()["tabs"]
    integration = Integration(salesforce, settings, ledger=MemoryLedger())
    assert integration.preflight() == []
    assert len(org.calls) == before
    assert integration.config.users.crm_user_for(PRIYA) == priya


def test_hubspot_preflight_after_a_catalog_checks_a_listed_campaign_for_free(portal, hubspot):
    """On HubSpot too, a campaign (static list) the catalog listed needs no second request;
    an id it did not list is still asked about, and reported when missing."""
    listed = portal.backdoor.seed_campaign(name="Chat leads")
    settings_catalog(hubspot)
    before = len(portal.requests)
    assert hubspot.campaign_exists(listed) is True
    assert len(portal.requests) == before
    assert hubspot.campaign_exists("999999") is False
    assert len(portal.requests) == before + 1


# -- HubSpot -------------------------------------------------------------------------------------


def test_hubspot_catalog_offers_contact_properties_and_static_lists(portal, hubspot):
    """The contact tab offers writable properties; the lead tab never applies; owner
    properties of companies are the owner fields; static lists are the campaigns."""
    door = portal.backdoor
    owner = door.seed_user(email="priya@vendor.test", name="Priya Raman")
    static = door.seed_campaign(name="Chat leads")
    portal.create_list("Everyone in Paris", processing_type="DYNAMIC")
    catalog = settings_catalog(hubspot, signals_users=[PRIYA])
    contact = catalog.tab("contact")
    assert catalog.push_tab is contact
    assert contact.applies
    first = contact.field("firstname")
    assert first is not None
    assert "contact.first_name" in first.accepts
    assert contact.field("email") is None
    assert contact.field("hubspot_owner_id") is None
    stage = contact.field("lifecyclestage")
    assert stage is not None
    assert stage.picklist_values is not None
    assert "lead" in stage.picklist_values
    lead = catalog.tab("lead")
    assert not lead.applies
    assert "no Lead object" in lead.note
    assert {f.name for f in catalog.owner_fields} == {"account_manager", "hubspot_owner_id"}
    assert catalog.campaigns is not None
    assert [c.id for c in catalog.campaigns] == [static]
    assert catalog.user_mapping is not None
    assert catalog.user_mapping.mapping.crm_user_for(PRIYA) == owner
    data = valid(catalog.as_dict())
    assert data["crm"]["campaign_kind"] == "list"


@pytest.mark.anyio
async def test_async_catalogs_equal_the_blocking_ones(org, portal):
    """asettings_catalog through the async adapters answers what settings_catalog does."""
    SalesforceBackdoor(org).seed_user(email="priya@vendor.test")
    portal.backdoor.seed_user(email="priya@vendor.test")
    with httpx.Client(transport=org.transport()) as http:
        blocking_sf = settings_catalog(
            SalesforceAdapter(http, StaticToken(org.issue_token(), org.instance_url)),
            signals_users=[PRIYA],
        ).as_dict()
    with httpx.Client(transport=portal.transport()) as http:
        blocking_hs = settings_catalog(
            HubSpotAdapter(http, "local-hubspot-token", api=API), signals_users=[PRIYA]
        ).as_dict()
    async with httpx.AsyncClient(transport=org.transport()) as http:
        async_sf = await asettings_catalog(
            AsyncSalesforceAdapter(http, StaticToken(org.issue_token(), org.instance_url)),
            signals_users=[PRIYA],
        )
    async with httpx.AsyncClient(transport=portal.transport()) as http:
        async_hs = await asettings_catalog(
            AsyncHubSpotAdapter(http, "local-hubspot-token", api=API), signals_users=[PRIYA]
        )
    assert async_sf.as_dict() == blocking_sf
    assert async_hs.as_dict() == blocking_hs


# -- the in-memory CRM ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(PersonKind))
def test_the_memory_crm_serves_catalogs_in_both_flavours(kind):
    """The in-memory CRM answers every catalog call, in four adapter calls; an inactive
    campaign is not offered."""
    crm = InMemoryCRM(person_kind=kind)
    user = crm.seed_user(email="priya@vendor.test", name="Priya")
    listed = crm.seed_campaign(name="Chat leads")
    crm.seed_campaign(name="Old", active=False)
    catalog = settings_catalog(crm, signals_users=[PRIYA])
    assert dict(crm.calls) == {"describe": 2, "list_users": 1, "list_campaigns": 1}
    assert catalog.push_tab.tab == kind.value
    assert catalog.push_tab.fields
    assert catalog.owner_fields
    assert [c.id for c in catalog.campaigns or ()] == [listed]
    assert catalog.user_mapping is not None
    assert catalog.user_mapping.mapping.crm_user_for(PRIYA) == user
    valid(catalog.as_dict())


class Undescribed(InMemoryCRM):
    """A CRM that cannot describe its objects nor list campaigns."""

    @property
    def capabilities(self) -> Capabilities:
        return attrs.evolve(super().capabilities, supports_describe=False, lists_campaigns=False)


class NoAccounts(InMemoryCRM):
    """A CRM without an account object."""

    def describe(self, object_name: str) -> ObjectSchema:
        if object_name == self.capabilities.account_object:
            raise NotFoundError("no such object", status_code=404)
        return super().describe(object_name)


class KeyedCRM(InMemoryCRM):
    """A CRM whose creates are upserts keyed on a text field of the person object."""

    @property
    def capabilities(self) -> Capabilities:
        return attrs.evolve(super().capabilities, sync_key_field="Title")


def test_the_sync_key_field_is_not_offered():
    """The field the sync writes its idempotency key to is no mapping target."""
    assert settings_catalog(InMemoryCRM()).push_tab.field("Title") is not None
    assert settings_catalog(KeyedCRM()).push_tab.field("Title") is None


def test_a_crm_that_cannot_describe_or_list_campaigns_gets_an_honest_catalog():
    """No schema: tabs list no fields and say so; campaigns unknown (null, not empty)."""
    crm = Undescribed()
    catalog = settings_catalog(crm)
    assert "describe" not in crm.calls
    lead = catalog.tab("lead")
    assert lead.applies
    assert not lead.described
    assert lead.fields == ()
    assert "did not describe" in lead.note
    assert catalog.campaigns is None
    data = valid(catalog.as_dict())
    assert data["campaigns"] is None


def test_a_crm_without_accounts_gets_an_empty_account_tab():
    """describe of the account object answering NotFoundError leaves that tab empty."""
    catalog = settings_catalog(NoAccounts())
    assert catalog.tab("account").fields == ()
    assert not catalog.tab("account").described
    assert catalog.owner_fields == ()
    assert catalog.push_tab.fields
    valid(catalog.as_dict())


# -- the rules -----------------------------------------------------------------------------------


def _full_conversation() -> Conversation:
    return Conversation(
        id="c-1",
        closed_at=datetime(2026, 11, 20, 15, 0, tzinfo=UTC),
        visitor=Visitor(email="a@b.test"),
        company=Company(domain="b.test", name="B"),
        meeting=Meeting(id="m1"),
    )


def test_signals_fields_are_every_path_a_mapping_can_name():
    """The catalog's Signals fields are exactly the fixed paths a conversation has, plus the
    two patterns; each one loads as a mapping source."""
    paths = {f.path for f in SIGNALS_FIELDS if not f.pattern}
    assert paths == set(_full_conversation().field_values())
    assert {f.path for f in SIGNALS_FIELDS if f.pattern} == {
        "contact.<field>",
        "company.<attribute>",
    }
    for path in paths:
        IntegrationSettings.from_dict(
            {"field_mappings": {"lead": [{"source": path, "target": "Description"}]}}
        )
    by_path = {f.path: f for f in SIGNALS_FIELDS}
    assert by_path["contact.email"].type is FieldType.EMAIL
    assert by_path["chat.transcript"].type is FieldType.TEXTAREA
    assert by_path["conversation.lead_score"].type is FieldType.INTEGER
    assert by_path["chat.meeting.date"].type is FieldType.DATE
    assert by_path["company.<attribute>"].type is None


SAMPLES: dict[FieldType | None, FieldValue] = {
    FieldType.STRING: "Lena",
    FieldType.TEXTAREA: "Visitor: hello\nAgent: hi",
    FieldType.EMAIL: "lena@brightfield.test",
    FieldType.PHONE: "+1 555 0100",
    FieldType.URL: "https://brightfield.test/pricing",
    FieldType.INTEGER: 3,
    FieldType.DATE: datetime(2026, 11, 24, tzinfo=UTC).date(),
    FieldType.DATETIME: datetime(2026, 11, 20, 15, 0, tzinfo=UTC),
}

ANY_SAMPLES: dict[FieldType, FieldValue] = {
    **{k: v for k, v in SAMPLES.items() if k is not None},
    FieldType.BOOLEAN: True,
    FieldType.NUMBER: 2.5,
}


@pytest.mark.parametrize("kind", list(PersonKind))
def test_every_offered_pair_passes_preflight_and_is_written(kind):
    """Each (Signals field, CRM field) pair a push tab offers passes preflight's mapping check
    and, for a value of the Signals field's type, is written (never dropped as the wrong
    type); a restricted picklist is given one of its values."""
    crm = InMemoryCRM(person_kind=kind)
    tab = settings_catalog(crm).push_tab
    schema = crm.describe(crm.capabilities.person_object)
    by_path = {f.path: f for f in SIGNALS_FIELDS}
    pairs = 0
    for option in tab.fields:
        for path in option.accepts:
            signals = by_path[path]
            mapping = FieldMapping(path, option.name, overwrite=option.updateable)
            assert validate_mappings([mapping], schema, path="m") == []
            # A pattern (any type) carries a value of the CRM field's own type.
            value = SAMPLES[signals.type] if signals.type else ANY_SAMPLES.get(option.type, "x")
            if option.picklist_values and option.restricted_picklist:
                value = option.picklist_values[0]
            payload = build_create_fields({path: value}, [mapping], schema=schema)
            assert option.name in payload.fields, (path, option.name, payload.trace)
            pairs += 1
    assert pairs > 50


def test_type_compatibility_table():
    """Rule 2 in examples: text goes to text and picklists, numbers to numbers and text, a
    pattern to anything but ids and references."""
    assert receives(FieldType.PICKLIST, FieldType.STRING)
    assert not receives(FieldType.NUMBER, FieldType.STRING)
    assert receives(FieldType.NUMBER, FieldType.INTEGER)
    assert not receives(FieldType.EMAIL, FieldType.PHONE)
    assert receives(FieldType.DATE, FieldType.DATETIME)
    assert not receives(FieldType.DATETIME, FieldType.DATE)
    assert receives(FieldType.BOOLEAN, None)
    assert not any(receives(FieldType.REFERENCE, t) for t in RECEIVES)


def test_targets_for_a_pattern_path():
    """A company attribute (or an extra contact field) is offered what its pattern accepts."""
    tab = settings_catalog(InMemoryCRM()).push_tab
    by_pattern = tab.targets_for("company.<attribute>")
    assert by_pattern
    assert tab.targets_for("company.industry") == by_pattern
    assert tab.targets_for("contact.favourite_colour") == tab.targets_for("contact.<field>")


def test_suggested_attributes():
    """A pulled account field suggests its name in snake case, custom suffix dropped."""
    assert suggested_attribute("NumberOfEmployees") == "number_of_employees"
    assert suggested_attribute("SDR_Owner__c") == "sdr_owner"
    assert suggested_attribute("industry") == "industry"
    assert suggested_attribute("AnnualRevenue") == "annual_revenue"
    assert suggested_attribute("HTTPStatus") == "http_status"


def test_a_proposal_goes_straight_into_settings():
    """with_user_mapping_proposal adds each proposed entry, replacing that user's old entry and
    keeping the others; the result is validated settings."""
    crm = InMemoryCRM()
    priya = crm.seed_user(email="priya@vendor.test")
    bob = crm.seed_user(email="bob@vendor.test")
    proposal = settings_catalog(crm, signals_users=[PRIYA, BOB]).user_mapping
    assert proposal is not None
    before = (
        IntegrationSettings.from_dict({})
        .with_user_mapping("005OLD", signals_user_id="u-priya")
        .with_user_mapping("005JILL", signals_email="jill@vendor.test")
    )
    after = before.with_user_mapping_proposal(proposal)
    assert [(u.crm_user_id, u.signals_user_id) for u in after.user_mapping] == [
        (priya, "u-priya"),
        ("005JILL", None),
        (bob, "u-bob"),
    ]
    assert IntegrationSettings.from_dict(after.to_dict()) == after


# -- preflight agrees with the catalog's owner fields -------------------------------------------


def _with_owner_rules(*fields: str, fallback: tuple[str, ...] = ()) -> IntegrationSettings:
    settings = IntegrationSettings.from_dict(
        {
            "segments": {"named": {"domains": ["acme.test"]}},
            "fallback_criteria": {"owner_fields": list(fallback)},
        }
    )
    return settings.with_ownership_rule("named", list(fields))


def test_preflight_reports_owner_fields_the_catalog_would_not_offer():
    """An owner field the Account lacks, or one that holds no user, is a preflight problem
    with its path; the catalog's owner fields pass."""
    crm = InMemoryCRM()
    offered = [f.name for f in settings_catalog(crm).owner_fields]
    assert Integration(crm, _with_owner_rules(*offered)).preflight() == []
    problems = Integration(
        crm, _with_owner_rules("OwnerId", "Industry", fallback=("Nope__c",))
    ).preflight()
    assert [(p.path, p.message.split(" ")[0]) for p in problems] == [
        ("ownership_rules[0].owner_fields[1]", "Industry"),
        ("fallback_criteria.owner_fields[0]", "Account"),
    ]
    assert "does not hold a CRM user" in problems[0].message
    assert "has no field 'Nope__c'" in problems[1].message


def test_preflight_checks_only_existence_when_the_crm_marks_no_user_fields():
    """A describe that never says which fields hold a user (a custom CRM) is not second-guessed:
    only a missing owner field is reported."""
    plain = ObjectSchema(
        "Account",
        [
            FieldSchema("Name"),
            FieldSchema("Website", FieldType.URL),
            FieldSchema("Industry"),
            FieldSchema("OwnerId", FieldType.REFERENCE),
        ],
    )
    crm = InMemoryCRM(schemas=[plain])
    assert not any(f.names_user for f in crm.describe("Account").fields.values())
    problems = Integration(crm, _with_owner_rules("Industry", "Gone__c")).preflight()
    assert [p.path for p in problems] == ["ownership_rules[0].owner_fields[1]"]
