"""What each mapping tab means on each CRM, and preflight reporting what can never apply."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given

from signals_crm.adapters.hubspot.adapter import CAPABILITIES as HUBSPOT_CAPABILITIES
from signals_crm.adapters.salesforce.adapter import SALESFORCE_CAPABILITIES
from signals_crm.core.config import FieldMapping, FieldMappings, SyncConfig
from signals_crm.core.mapping import inapplicable_mappings, mapping_set_for
from signals_crm.core.model import Conversation, PersonKind, Visitor
from signals_crm.engine import Integration
from signals_crm.exceptions import ConfigurationError
from signals_crm.settings import IntegrationSettings
from signals_crm.testing import strategies as sst
from signals_crm.testing.memory import InMemoryCRM
from signals_crm.testing.static import HUBSPOT_LIKE, SALESFORCE_LIKE

FIRST_NAME = FieldMapping("contact.first_name", "FirstName", overwrite=True)


def test_a_lead_tab_on_hubspot_is_reported_not_ignored():
    """Only a lead tab on HubSpot: preflight says it can never apply, and run_due refuses."""
    crm = InMemoryCRM(person_kind=PersonKind.CONTACT)
    config = SyncConfig(field_mappings=FieldMappings(lead=(FIRST_NAME,)), placeholders={})
    sync = Integration(crm, config)
    (problem,) = sync.preflight()
    assert problem.path == "field_mappings.lead[0]"
    assert "no Lead object" in problem.message
    assert "field_mappings.contact" in problem.message
    with pytest.raises(ConfigurationError, match=r"mappings\.lead\[0\]"):
        sync.run_due()


def test_a_contact_tab_on_salesforce_is_reported_even_for_a_missing_field():
    """A contact tab on Salesforce can never apply (Contacts are never written): reported,
    whether or not its field exists."""
    crm = InMemoryCRM(person_kind=PersonKind.LEAD)
    config = SyncConfig(
        field_mappings=FieldMappings(
            lead=(FIRST_NAME,),
            contact=(
                FieldMapping("contact.first_name", "FirstName"),
                FieldMapping("contact.phone", "NoSuchField__c"),
            ),
        )
    )
    problems = Integration(crm, config).preflight()
    assert [p.path for p in problems] == ["field_mappings.contact[0]", "field_mappings.contact[1]"]
    assert all("never writes Contacts" in p.message for p in problems)


def test_each_crm_uses_its_own_person_tab_quietly():
    """The tab named after the CRM's person object is used, and preflight is clean."""
    both = FieldMappings(
        lead=(FIRST_NAME,),
        contact=(FieldMapping("contact.first_name", "firstname", overwrite=True),),
    )
    assert [p.path for p in inapplicable_mappings(both, SALESFORCE_LIKE)] == [
        "field_mappings.contact[0]"
    ]
    assert [p.path for p in inapplicable_mappings(both, HUBSPOT_LIKE)] == ["field_mappings.lead[0]"]
    lead_only = FieldMappings(lead=(FIRST_NAME,))
    assert (
        Integration(
            InMemoryCRM(person_kind=PersonKind.LEAD), SyncConfig(field_mappings=lead_only)
        ).preflight()
        == []
    )


def test_an_account_mapping_outside_company_attributes_is_reported():
    """Account mappings are pulled into company.*: another source can never apply."""
    mappings = FieldMappings(
        account=(
            FieldMapping("company.industry", "Industry"),
            FieldMapping("contact.first_name", "Name"),
        )
    )
    problems = inapplicable_mappings(mappings, SALESFORCE_LIKE)
    assert [p.path for p in problems] == ["field_mappings.account[1].source"]


@given(config=sst.sync_configs())
def test_every_mapping_of_the_unused_person_tab_is_reported(config):
    """On each CRM, every mapping of the other person tab is reported once, and none of the
    used tab is (the rule's invariant over the shipped strategies)."""
    for caps, unused in ((SALESFORCE_LIKE, "contact"), (HUBSPOT_LIKE, "lead")):
        paths = [p.path for p in inapplicable_mappings(config.field_mappings, caps)]
        count = len(getattr(config.field_mappings, unused))
        assert paths == [f"field_mappings.{unused}[{i}]" for i in range(count)]


def test_settings_for_both_crms_report_the_other_tab_but_still_sync():
    """Both person tabs filled (one settings file for either CRM): preflight reports the tab
    this CRM never uses, and run_due still syncs with the CRM's own tab."""
    both = FieldMappings(
        lead=(FIRST_NAME,),
        contact=(FieldMapping("contact.first_name", "firstname", overwrite=True),),
    )
    crm = InMemoryCRM(person_kind=PersonKind.CONTACT)
    sync = Integration(crm, SyncConfig(field_mappings=both, placeholders={}))
    assert [p.path for p in sync.preflight()] == ["field_mappings.lead[0]"]
    now = datetime(2026, 11, 20, tzinfo=UTC)
    visitor = Visitor(email="nia@acme.test", first_name="Nia")
    sync.conversation_closed(Conversation(id="c-1", closed_at=now, visitor=visitor))
    report = sync.run_due(now)
    person = report.outcome("c-1").person_id
    assert person is not None
    assert crm.person_fields(person)["firstname"] == "Nia"


def test_the_readme_quickstart_fits_each_crm():
    """The README's Salesforce and HubSpot settings each map into the tab their CRM uses."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    quickstart = readme[readme.index("## Quickstart") : readme.index("## Documentation")]
    tomls = re.findall(r'from_toml\("""\n(.*?)"""\)', quickstart, flags=re.DOTALL)
    assert len(tomls) == 2
    for text, caps in zip(tomls, (SALESFORCE_CAPABILITIES, HUBSPOT_CAPABILITIES), strict=True):
        config = IntegrationSettings.from_toml(text).to_config()
        assert mapping_set_for(config.field_mappings, caps.person_kind)
        assert inapplicable_mappings(config.field_mappings, caps) == []
