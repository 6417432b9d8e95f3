"""The conformance kit run against the in-memory CRM, in both flavours, sync and async."""

from __future__ import annotations

from typing import ClassVar

import pytest
from hypothesis import HealthCheck, settings

from signals_crm.core.model import FieldValue, PersonKind
from signals_crm.testing import InMemoryCRM
from signals_crm.testing.conformance import (
    AdapterConformance,
    AsyncAdapterConformance,
    Backdoor,
    adapter_state_machine,
)

LEAD_CREATE_FIELDS: dict[str, FieldValue] = {"LastName": "Kit", "Company": "Kit Inc"}


@pytest.fixture(params=[False, True], ids=["kind-by-kind", "chains"])
def crm_lead(request: pytest.FixtureRequest) -> InMemoryCRM:
    """A fresh Salesforce-like CRM, with and without chained writes."""
    return InMemoryCRM(person_kind=PersonKind.LEAD, chains=request.param)


@pytest.fixture(params=[False, True], ids=["kind-by-kind", "chains"])
def crm_contact(request: pytest.FixtureRequest) -> InMemoryCRM:
    """A fresh HubSpot-like CRM, with and without chained writes."""
    return InMemoryCRM(person_kind=PersonKind.CONTACT, chains=request.param)


class TestLeadFlavour(AdapterConformance):
    """The blocking kit against the Salesforce-like flavour."""

    create_fields: ClassVar[dict[str, FieldValue]] = LEAD_CREATE_FIELDS
    text_field = "FirstName"
    account_owner_field = "OwnerId"

    @pytest.fixture
    def adapter(self, crm_lead: InMemoryCRM) -> InMemoryCRM:
        return crm_lead

    @pytest.fixture
    def backdoor(self, crm_lead: InMemoryCRM) -> Backdoor:
        return crm_lead.backdoor()


class TestContactFlavour(AdapterConformance):
    """The blocking kit against the HubSpot-like flavour."""

    text_field = "firstname"
    account_field = "industry"
    account_owner_field = "hubspot_owner_id"

    @pytest.fixture
    def adapter(self, crm_contact: InMemoryCRM) -> InMemoryCRM:
        return crm_contact

    @pytest.fixture
    def backdoor(self, crm_contact: InMemoryCRM) -> Backdoor:
        return crm_contact.backdoor()


class TestAsyncLeadFlavour(AsyncAdapterConformance):
    """The async kit against the Salesforce-like flavour."""

    create_fields: ClassVar[dict[str, FieldValue]] = LEAD_CREATE_FIELDS
    text_field = "FirstName"
    account_owner_field = "OwnerId"

    @pytest.fixture
    def adapter(self, crm_lead: InMemoryCRM) -> InMemoryCRM:
        return crm_lead

    @pytest.fixture
    def backdoor(self, crm_lead: InMemoryCRM) -> Backdoor:
        return crm_lead.backdoor()


class TestAsyncContactFlavour(AsyncAdapterConformance):
    """The async kit against the HubSpot-like flavour."""

    text_field = "firstname"
    account_field = "industry"
    account_owner_field = "hubspot_owner_id"

    @pytest.fixture
    def adapter(self, crm_contact: InMemoryCRM) -> InMemoryCRM:
        return crm_contact

    @pytest.fixture
    def backdoor(self, crm_contact: InMemoryCRM) -> Backdoor:
        return crm_contact.backdoor()


_machine_settings = settings(
    max_examples=25,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

LeadMachine = adapter_state_machine(
    lambda: InMemoryCRM(person_kind=PersonKind.LEAD),
    InMemoryCRM.backdoor,
    text_field="FirstName",
    create_fields=LEAD_CREATE_FIELDS,
    duplicate_detection=False,
)
TestLeadMachine = LeadMachine.TestCase
TestLeadMachine.settings = _machine_settings

DedupedLeadMachine = adapter_state_machine(
    lambda: InMemoryCRM(person_kind=PersonKind.LEAD),
    InMemoryCRM.backdoor,
    text_field="FirstName",
    create_fields=LEAD_CREATE_FIELDS,
)
TestDedupedLeadMachine = DedupedLeadMachine.TestCase
TestDedupedLeadMachine.settings = _machine_settings

ContactMachine = adapter_state_machine(
    lambda: InMemoryCRM(person_kind=PersonKind.CONTACT),
    InMemoryCRM.backdoor,
    text_field="firstname",
)
TestContactMachine = ContactMachine.TestCase
TestContactMachine.settings = _machine_settings
