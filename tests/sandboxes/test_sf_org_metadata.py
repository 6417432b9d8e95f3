"""What a new org ships, seen through simple-salesforce over HTTPS: standard fields and
compound fields, describe typed as Salesforce types it, standard objects, and the rules that
are active out of the box."""

from __future__ import annotations

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from signals_crm.testing import LoopbackServer
from signals_crm.testing.salesforce import LocalSalesforce

USER = "ada@local.example.com"
PASSWORD = "correct-horse"
TOKEN = "TOKEN123"


@pytest.fixture
def sf(org: LocalSalesforce, sf_env: LoopbackServer) -> Salesforce:
    del sf_env
    org.add_login(USER, PASSWORD, TOKEN)
    return Salesforce(username=USER, password=PASSWORD, security_token=TOKEN)


def test_compound_name_and_audit_fields(sf: Salesforce, org: LocalSalesforce) -> None:
    """``Name`` is FirstName and LastName, read-only; every record carries ``SystemModstamp``,
    ``CreatedById`` and ``LastModifiedById`` (here the logged-in integration user).

    https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_lead.htm
    https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/system_fields.htm
    """
    lead = sf.Lead.create({"FirstName": "Ada", "LastName": "Lovelace", "Company": "AE"})["id"]
    (row,) = sf.query(
        f"SELECT Name, SystemModstamp, CreatedById, LastModifiedById FROM Lead WHERE Id = '{lead}'"  # noqa: S608  # SOQL
    )["records"]
    assert row["Name"] == "Ada Lovelace"
    assert row["SystemModstamp"].endswith("+0000")
    assert row["CreatedById"] == row["LastModifiedById"] == org.integration_user_id
    with pytest.raises(SalesforceMalformedRequest, match="INVALID_FIELD_FOR_INSERT_UPDATE"):
        sf.Lead.update(lead, {"Name": "Someone Else"})


def test_address_compound_and_standard_fields(sf: Salesforce) -> None:
    """Street, City, PostalCode... make the read-only compound ``Address``; MobilePhone, Fax,
    Rating, NumberOfEmployees, AnnualRevenue and Salutation are writable standard fields.

    https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/compound_fields_address.htm
    """
    made = sf.Lead.create(
        {
            "Salutation": "Dr.",
            "LastName": "Hopper",
            "Company": "Navy",
            "Street": "1 Harbor Rd",
            "City": "Arlington",
            "PostalCode": "22201",
            "Country": "USA",
            "MobilePhone": "+1 555 0100",
            "Fax": "+1 555 0101",
            "Rating": "Hot",
            "NumberOfEmployees": 40,
            "AnnualRevenue": 1250000.5,
        }
    )
    read = sf.Lead.get(made["id"])
    assert read["Address"]["street"] == "1 Harbor Rd"
    assert read["Address"]["postalCode"] == "22201"
    assert (read["Rating"], read["NumberOfEmployees"], read["AnnualRevenue"]) == (
        "Hot",
        40,
        1250000.5,
    )
    with pytest.raises(SalesforceMalformedRequest, match="INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"):
        sf.Lead.create({"LastName": "X", "Company": "Y", "Status": "Bogus"})


def test_describe_types_fields_as_salesforce_does(sf: Salesforce) -> None:
    """Describe reports each field's type and SOAP type (email is ``xsd:string``, employees
    ``int``/``xsd:int``, revenue ``currency``/``xsd:double``, Address ``address``), compound
    components name their compound, and the global describe lists the objects.

    https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_sobject_describe.htm
    https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_describeGlobal.htm
    """
    fields = {f["name"]: f for f in sf.Lead.describe()["fields"]}
    assert (fields["Email"]["type"], fields["Email"]["soapType"]) == ("email", "xsd:string")
    assert (fields["NumberOfEmployees"]["type"], fields["NumberOfEmployees"]["soapType"]) == (
        "int",
        "xsd:int",
    )
    assert (fields["AnnualRevenue"]["type"], fields["AnnualRevenue"]["soapType"]) == (
        "currency",
        "xsd:double",
    )
    assert (fields["CreatedDate"]["soapType"], fields["Address"]["type"]) == (
        "xsd:dateTime",
        "address",
    )
    assert fields["PostalCode"]["compoundFieldName"] == "Address"
    assert fields["Name"]["createable"] is False
    names = {o["name"] for o in sf.describe()["sobjects"]}
    assert {
        "Lead",
        "Contact",
        "Organization",
        "RecordType",
        "LeadStatus",
        "CampaignMemberStatus",
    } <= names


def test_organization_lead_statuses_and_member_statuses(sf: Salesforce) -> None:
    """The Organization record, the LeadStatus values (one default, one converted), and the
    two statuses a new campaign gets; a member's ``HasResponded`` follows its status.

    https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_leadstatus.htm
    https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_campaignmemberstatus.htm
    """
    (org_row,) = sf.query("SELECT Id, Name, IsSandbox FROM Organization")["records"]
    assert org_row["IsSandbox"] is False
    statuses = sf.query(
        "SELECT MasterLabel, IsDefault, IsConverted FROM LeadStatus ORDER BY SortOrder"
    )
    assert [r["MasterLabel"] for r in statuses["records"] if r["IsConverted"]] == [
        "Closed - Converted"
    ]
    assert [r["MasterLabel"] for r in statuses["records"] if r["IsDefault"]] == [
        "Open - Not Contacted"
    ]
    campaign = sf.Campaign.create({"Name": "Chat"})["id"]
    labels = sf.query(
        f"SELECT Label, HasResponded FROM CampaignMemberStatus WHERE CampaignId = '{campaign}'"  # noqa: S608  # SOQL
    )["records"]
    assert {r["Label"]: r["HasResponded"] for r in labels} == {"Sent": False, "Responded": True}
    lead = sf.Lead.create({"LastName": "M", "Company": "C"})["id"]
    member = sf.CampaignMember.create({"CampaignId": campaign, "LeadId": lead})["id"]
    assert sf.CampaignMember.get(member)["HasResponded"] is False
    sf.CampaignMember.update(member, {"Status": "Responded"})
    assert sf.CampaignMember.get(member)["HasResponded"] is True
    with pytest.raises(SalesforceMalformedRequest):
        sf.CampaignMember.update(member, {"Status": "Maybe"})


def test_standard_duplicate_rule_is_on_and_switchable(sf: Salesforce) -> None:
    """A second Lead with the same email is refused with ``DUPLICATES_DETECTED`` (the
    standard rule alerts, and API saves are blocked) unless the duplicate rule header allows
    the save; deactivating the rule lets it through.

    https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_duplicaterules.htm
    https://help.salesforce.com/s/articleView?id=sf.duplicate_rules_standard_rules.htm
    """
    sf.Lead.create({"LastName": "Dup", "Company": "C", "Email": "dup@x.com"})
    with pytest.raises(SalesforceMalformedRequest) as raised:
        sf.Lead.create({"LastName": "Dup", "Company": "C", "Email": "DUP@x.com"})
    (error,) = raised.value.content
    assert error["errorCode"] == "DUPLICATES_DETECTED"
    assert error["duplicateResult"]["duplicateRule"] == "Standard_Lead_Duplicate_Rule"
    saved = sf.Lead.create(
        {"LastName": "Dup", "Company": "C", "Email": "dup@x.com"},
        headers={"Sforce-Duplicate-Rule-Header": "allowSave=true"},
    )
    assert saved["success"] is True
    (rule,) = sf.query("SELECT Id FROM DuplicateRule WHERE SobjectType = 'Lead'")["records"]
    sf.DuplicateRule.update(rule["Id"], {"IsActive": False})
    assert sf.Lead.create({"LastName": "Dup", "Company": "C", "Email": "dup@x.com"})["success"]


def test_assignment_rule_runs_unless_told_not_to(sf: Salesforce, org: LocalSalesforce) -> None:
    """The active Lead assignment rule gives a new Lead to its queue, overriding OwnerId,
    unless ``Sforce-Auto-Assign: FALSE`` is sent.

    https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_autoassign.htm
    """
    (rule,) = sf.query(
        "SELECT Id, Name FROM AssignmentRule WHERE SobjectType = 'Lead' AND Active = true"
    )["records"]
    (queue,) = sf.query("SELECT QueueId FROM QueueSobject WHERE SobjectType = 'Lead'")["records"]
    me = org.integration_user_id
    assigned = sf.Lead.create({"LastName": "A", "Company": "C", "OwnerId": me})["id"]
    kept = sf.Lead.create(
        {"LastName": "K", "Company": "C", "OwnerId": me}, headers={"Sforce-Auto-Assign": "FALSE"}
    )["id"]
    by_rule = sf.Lead.create(
        {"LastName": "R", "Company": "C", "OwnerId": me}, headers={"Sforce-Auto-Assign": rule["Id"]}
    )["id"]
    owners = {r["Id"]: r["OwnerId"] for r in sf.query("SELECT Id, OwnerId FROM Lead")["records"]}
    assert owners == {assigned: queue["QueueId"], kept: me, by_rule: queue["QueueId"]}


def test_offset_is_capped_at_2000(sf: Salesforce) -> None:
    """OFFSET above 2,000 is refused with ``NUMBER_OUTSIDE_VALID_RANGE``.

    https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_offset.htm
    """
    assert sf.query("SELECT Id FROM Lead LIMIT 10 OFFSET 2000")["records"] == []
    with pytest.raises(SalesforceMalformedRequest, match="NUMBER_OUTSIDE_VALID_RANGE"):
        sf.query("SELECT Id FROM Lead LIMIT 10 OFFSET 2001")
