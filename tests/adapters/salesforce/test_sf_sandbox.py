"""The local Salesforce itself: routes, SOQL subset, validation, rules, ids — raw HTTP."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from signals_crm.core.model import PersonKind
from signals_crm.testing.salesforce import (
    DuplicateRule,
    LocalSalesforce,
    SalesforceBackdoor,
    is_well_formed,
    to_18,
)

V = "/services/data/v61.0"


@pytest.fixture
def api(org: LocalSalesforce, client: httpx.Client) -> httpx.Client:
    """A raw client with a valid token, speaking to the org's instance URL."""
    client.headers["Authorization"] = f"Bearer {org.issue_token()}"
    client.base_url = httpx.URL(org.instance_url)
    return client


def q(api: httpx.Client, soql: str) -> httpx.Response:
    return api.get(f"{V}/query", params={"q": soql})


def lead(api: httpx.Client, **fields: Any) -> httpx.Response:
    body = {"LastName": "Doe", "Company": "Acme", **fields}
    return api.post(f"{V}/sobjects/Lead/", json=body)


@pytest.mark.parametrize(
    ("short", "full"),
    [
        ("a01M00000062mPg", "a01M00000062mPgIAI"),
        ("001M000000qfPyS", "001M000000qfPySIAU"),
        ("a0RE000000IJmcN", "a0RE000000IJmcNMAT"),
        ("aaaaaaaaaaaaaaa", "aaaaaaaaaaaaaaaAAA"),
        ("AbCdEfGhIjKlMnO", "AbCdEfGhIjKlMnOVKV"),
    ],
)
def test_id_checksum_vectors(short: str, full: str) -> None:
    """15-char ids get the documented 3-character case-safe suffix."""
    assert to_18(short) == full
    assert is_well_formed(full)
    assert is_well_formed(short)
    assert not is_well_formed(full[:15] + "AAA" if full[15:] != "AAA" else full[:15] + "BBB")


def test_create_read_update_roundtrip(api: httpx.Client, org: LocalSalesforce) -> None:
    """POST creates (201 with id), GET reads every field, PATCH updates (204)."""
    created = lead(api, Email="Jo@X.com", FirstName="Jo")
    assert created.status_code == 201
    record_id = created.json()["id"]
    assert created.json() == {"id": record_id, "success": True, "errors": []}
    assert record_id.startswith("00Q")
    assert len(record_id) == 18
    assert is_well_formed(record_id)
    assert api.patch(f"{V}/sobjects/Lead/{record_id}", json={"FirstName": "Joe"}).status_code == 204
    read = api.get(f"{V}/sobjects/Lead/{record_id[:15]}").json()
    assert read["FirstName"] == "Joe"
    assert read["Email"] == "Jo@X.com"  # kept as sent
    assert read["Status"] == "Open - Not Contacted"
    assert read["OwnerId"] == org.assignment_rule_owner  # the standard rule's queue
    assert read["OwnerId"].startswith("00G")
    assert read["LastModifiedDate"].endswith("+0000")


def test_every_metered_call_reports_usage(api: httpx.Client, org: LocalSalesforce) -> None:
    """Sforce-Limit-Info counts every API call; the versions list is not metered."""
    first = q(api, "SELECT Id FROM Lead")
    assert first.headers["Sforce-Limit-Info"] == f"api-usage=1/{org.daily_limit}"
    versions = api.get("/services/data/")
    assert versions.status_code == 200
    assert "Sforce-Limit-Info" not in versions.headers
    assert q(api, "SELECT Id FROM Lead").headers["Sforce-Limit-Info"].startswith("api-usage=2/")


def test_missing_token_and_bad_header(org: LocalSalesforce, client: httpx.Client) -> None:
    """No token is 401 INVALID_SESSION_ID; a non-Bearer header is INVALID_AUTH_HEADER."""
    url = f"{org.instance_url}{V}/query?q=SELECT+Id+FROM+Lead"
    missing = client.get(url)
    assert missing.status_code == 401
    assert missing.json() == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]
    bad = client.get(url, headers={"Authorization": "Basic abc"})
    assert bad.json()[0]["errorCode"] == "INVALID_AUTH_HEADER"


def test_retired_versions_are_gone(api: httpx.Client) -> None:
    """API versions below 31.0 answer 410."""
    assert (
        api.get("/services/data/v30.0/query", params={"q": "SELECT Id FROM Lead"}).status_code
        == 410
    )


def test_required_fields_and_lengths(api: httpx.Client) -> None:
    """Lead creates enforce LastName/Company, field lengths and email syntax."""
    missing = api.post(f"{V}/sobjects/Lead/", json={"Email": "a@b.co"})
    assert missing.status_code == 400
    assert missing.json()[0] == {
        "errorCode": "REQUIRED_FIELD_MISSING",
        "message": "Required fields are missing: [LastName, Company]",
        "fields": ["LastName", "Company"],
    }
    long = lead(api, FirstName="x" * 41)
    assert long.json()[0]["errorCode"] == "STRING_TOO_LONG"
    assert long.json()[0]["message"].startswith("First Name: data value too large")
    email = lead(api, Email="not an email")
    assert email.json()[0]["errorCode"] == "INVALID_EMAIL_ADDRESS"
    assert email.json()[0]["fields"] == ["Email"]
    picklist = lead(api, Status="Nope")
    assert picklist.json()[0]["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    with_id = lead(api, Id="00Q5g0000000VMdEAM")
    assert with_id.json()[0]["errorCode"] == "INVALID_FIELD"
    readonly = lead(api, IsConverted=True)
    assert readonly.json()[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"


def test_unknown_and_deleted_records(api: httpx.Client) -> None:
    """Malformed ids are 400 MALFORMED_ID, unknown 404 NOT_FOUND, deleted 404 ENTITY_IS_DELETED."""
    assert api.get(f"{V}/sobjects/Lead/nope").json()[0]["errorCode"] == "MALFORMED_ID"
    missing = api.get(f"{V}/sobjects/Lead/{to_18('00Q000000000000')}")
    assert missing.status_code == 404
    assert missing.json()[0]["errorCode"] == "NOT_FOUND"
    record_id = lead(api).json()["id"]
    assert api.delete(f"{V}/sobjects/Lead/{record_id}").status_code == 204
    gone = api.patch(f"{V}/sobjects/Lead/{record_id}", json={"FirstName": "x"})
    assert gone.status_code == 404
    assert gone.json()[0]["errorCode"] == "ENTITY_IS_DELETED"


def test_soql_subset(api: httpx.Client, org: LocalSalesforce) -> None:
    """WHERE with =, !=, IN, LIKE, AND/OR, parentheses, ORDER BY, LIMIT; case-insensitive."""
    backdoor = SalesforceBackdoor(org)
    ids = {
        name: backdoor.seed_person(
            kind=PersonKind.LEAD, email=f"{name}@Example.com", fields={"FirstName": name.title()}
        )
        for name in ("ann", "bob", "cyd", "dee")
    }
    body = q(
        api,
        "select firstname, ID from LEAD where (Email IN ('ANN@example.COM', 'bob@example.com') "
        "or FirstName like 'c%') and Email != 'bob@EXAMPLE.com' order by FirstName desc limit 5",
    ).json()
    assert body["totalSize"] == 2
    assert [r["FirstName"] for r in body["records"]] == ["Cyd", "Ann"]
    assert set(body["records"][0]) == {"attributes", "FirstName", "Id"}  # canonical casing
    assert body["records"][0]["attributes"]["type"] == "Lead"
    count = q(api, "SELECT COUNT() FROM Lead WHERE NOT FirstName LIKE '%n%'").json()
    assert count == {"totalSize": 3, "done": True, "records": []}
    by_id = q(api, f"SELECT Id FROM Lead WHERE Id = '{ids['dee'][:15]}'").json()  # noqa: S608  # SOQL under test
    assert [r["Id"] for r in by_id["records"]] == [ids["dee"]]
    offset = q(api, "SELECT FirstName FROM Lead ORDER BY FirstName LIMIT 2 OFFSET 1").json()
    assert [r["FirstName"] for r in offset["records"]] == ["Bob", "Cyd"]


def test_soql_parent_paths_and_nulls(api: httpx.Client, org: LocalSalesforce) -> None:
    """Parent fields come back nested with attributes, or null when the lookup is empty."""
    backdoor = SalesforceBackdoor(org)
    backdoor.seed_account(domain="acme.com", name="Acme", fields={"Industry": "Retail"})
    body = q(
        api,
        "SELECT Name, Owner.Email, Owner.IsActive, SDR_Owner__r.Email FROM Account "
        "WHERE Website LIKE '%acme.com%' AND Owner.IsActive = TRUE",
    ).json()
    (record,) = body["records"]
    assert record["Owner"]["attributes"]["type"] == "User"
    assert record["Owner"]["Email"] == "integration@local.example.com"
    assert record["Owner"]["IsActive"] is True
    assert record["SDR_Owner__r"] is None


def test_soql_escapes(api: httpx.Client, org: LocalSalesforce) -> None:
    """Quote and backslash escapes match literally; a bare backslash is MALFORMED_QUERY."""
    backdoor = SalesforceBackdoor(org)
    backdoor.seed_person(kind=PersonKind.LEAD, email="o'neil@x.com", fields={"FirstName": "a\\b"})
    hit = q(api, "SELECT Id FROM Lead WHERE Email = 'O\\'NEIL@x.com' AND FirstName = 'a\\\\b'")
    assert hit.json()["totalSize"] == 1
    like = q(api, "SELECT Id FROM Lead WHERE Email LIKE 'o\\'n_il%'")
    assert like.json()["totalSize"] == 1
    escaped = q(api, "SELECT Id FROM Lead WHERE Email LIKE 'o\\'n\\_il%'")
    assert escaped.json()["totalSize"] == 0
    for bad in (
        "SELECT Id FROM Lead WHERE Email = 'a\\qb'",
        'SELECT Id FROM Lead WHERE Email = "a"',
        "SELECT Id FROM Lead WHERE Email = 'a\\%'",
        "SELECT Id FROM Lead WHERE Email = 'open",
        "SELECT Id FRM Lead",
    ):
        response = q(api, bad)
        assert response.status_code == 400, bad
        assert response.json()[0]["errorCode"] == "MALFORMED_QUERY", bad


def test_plus_in_a_query_string_is_a_space(api: httpx.Client, org: LocalSalesforce) -> None:
    """A raw + in the query string decodes as a space, as on Salesforce: the lookup misses."""
    SalesforceBackdoor(org).seed_person(kind=PersonKind.LEAD, email="jo+tag@x.com")
    url = f"{V}/query?q=SELECT+Id+FROM+Lead+WHERE+Email+%3D+%27jo+tag%40x.com%27"
    assert api.get(url).json()["totalSize"] == 0
    encoded = f"{V}/query?q=SELECT+Id+FROM+Lead+WHERE+Email+%3D+%27jo%2Btag%40x.com%27"
    assert api.get(encoded).json()["totalSize"] == 1


def test_query_errors(api: httpx.Client) -> None:
    """Unknown columns, objects and non-filterable fields are 400s with Salesforce's codes."""
    column = q(api, "SELECT Foo FROM Lead").json()[0]
    assert column["errorCode"] == "INVALID_FIELD"
    assert column["message"].startswith("No such column 'Foo' on entity 'Lead'.")
    assert q(api, "SELECT Id FROM Nope").json()[0]["errorCode"] == "INVALID_TYPE"
    filtered = q(api, "SELECT Id FROM Lead WHERE Description = 'x'").json()[0]
    assert filtered["errorCode"] == "INVALID_FIELD"


def test_pagination_with_next_records_url(org: LocalSalesforce, api: httpx.Client) -> None:
    """Pages follow nextRecordsUrl; totalSize is the whole result; bad locators are refused."""
    org.page_size = 2
    backdoor = SalesforceBackdoor(org)
    for n in range(5):
        backdoor.seed_person(kind=PersonKind.LEAD, email=f"p{n}@x.com")
    page = q(api, "SELECT Email FROM Lead ORDER BY Email").json()
    emails = [r["Email"] for r in page["records"]]
    pages = 1
    while not page["done"]:
        assert page["totalSize"] == 5
        assert page["nextRecordsUrl"].startswith(f"{V}/query/01g")
        page = api.get(page["nextRecordsUrl"]).json()
        emails += [r["Email"] for r in page["records"]]
        pages += 1
    assert pages == 3
    assert "nextRecordsUrl" not in page
    assert emails == [f"p{n}@x.com" for n in range(5)]
    bad = api.get(f"{V}/query/01gNOPE-2")
    assert bad.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_uri_limits(api: httpx.Client) -> None:
    """URIs over 16,384 bytes get 414; URI plus headers over it get 431."""
    long_value = "x" * 16_400
    too_long = f"SELECT Id FROM Lead WHERE Email = '{long_value}'"  # noqa: S608  # SOQL under test
    assert q(api, too_long).status_code == 414
    nearly = "x" * 15_900
    response = api.get(
        f"{V}/query",
        params={"q": f"SELECT Id FROM Lead WHERE Email = '{nearly}'"},  # noqa: S608  # SOQL under test
        headers={"X-Padding": "p" * 1000},
    )
    assert response.status_code == 431


def test_collections_results_and_limits(api: httpx.Client) -> None:
    """Collections answer 200 with per-record results (statusCode), and refuse > 200 records."""
    records = [
        {"attributes": {"type": "Lead"}, "LastName": "A", "Company": "C", "Email": "a@x.com"},
        {"attributes": {"type": "Lead"}, "LastName": "B", "Email": "b@x.com"},
    ]
    response = api.post(f"{V}/composite/sobjects", json={"allOrNone": False, "records": records})
    assert response.status_code == 200
    first, second = response.json()
    assert first["success"] is True
    assert second == {
        "success": False,
        "errors": [
            {
                "statusCode": "REQUIRED_FIELD_MISSING",
                "message": "Required fields are missing: [Company]",
                "fields": ["Company"],
            }
        ],
    }
    too_many = api.post(f"{V}/composite/sobjects", json={"records": records * 101})
    assert too_many.status_code == 400
    untyped = api.post(f"{V}/composite/sobjects", json={"records": [{"LastName": "x"}]})
    assert untyped.json()[0]["errorCode"] == "INVALID_TYPE"


def test_collections_all_or_none_rolls_back(api: httpx.Client, org: LocalSalesforce) -> None:
    """allOrNone=true keeps nothing when one record fails; the others say rolled back."""
    records = [
        {"attributes": {"type": "Lead"}, "LastName": "A", "Company": "C", "Email": "keep@x.com"},
        {"attributes": {"type": "Lead"}, "LastName": "B", "Email": "bad"},
    ]
    body = api.post(f"{V}/composite/sobjects", json={"allOrNone": True, "records": records}).json()
    assert body[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert body[1]["errors"][0]["statusCode"] == "INVALID_EMAIL_ADDRESS"
    assert SalesforceBackdoor(org).people_with_email("keep@x.com") == []


def test_assignment_rule_honours_sforce_auto_assign(
    api: httpx.Client, org: LocalSalesforce
) -> None:
    """The active rule overwrites OwnerId unless Sforce-Auto-Assign is FALSE."""
    backdoor = SalesforceBackdoor(org)
    queue_user = backdoor.seed_user(email="rule@x.com")
    chosen = backdoor.seed_user(email="chosen@x.com")
    org.assignment_rule_owner = queue_user
    ruled = lead(api, OwnerId=chosen).json()["id"]
    kept = api.post(
        f"{V}/sobjects/Lead/",
        json={"LastName": "D", "Company": "A", "OwnerId": chosen},
        headers={"Sforce-Auto-Assign": "false"},
    ).json()["id"]
    assert backdoor.record(ruled)["OwnerId"] == queue_user  # type: ignore[index]
    assert backdoor.record(kept)["OwnerId"] == chosen  # type: ignore[index]
    api.patch(f"{V}/sobjects/Lead/{kept}", json={"FirstName": "x"})
    assert backdoor.record(kept)["OwnerId"] == queue_user  # type: ignore[index]


def test_inactive_owner_is_refused(api: httpx.Client, org: LocalSalesforce) -> None:
    """An inactive user as owner is INACTIVE_OWNER_OR_USER."""
    inactive = SalesforceBackdoor(org).seed_user(email="gone@x.com", active=False)
    error = lead(api, OwnerId=inactive).json()[0]
    assert error["errorCode"] == "INACTIVE_OWNER_OR_USER"


def test_duplicate_rule_block_and_allow(api: httpx.Client, org: LocalSalesforce) -> None:
    """A same-email Lead is DUPLICATES_DETECTED with duplicateResult; allowSave saves in
    Alert mode."""
    existing = lead(api, Email="dupe@x.com").json()["id"]
    org.duplicate_rule = DuplicateRule(allow_save=True)
    refused = lead(api, Email="DUPE@x.com")
    assert refused.status_code == 400
    error = refused.json()[0]
    assert error["errorCode"] == "DUPLICATES_DETECTED"
    match = error["duplicateResult"]["matchResults"][0]["matchRecords"][0]["record"]
    assert match["Id"] == existing
    allowed = api.post(
        f"{V}/sobjects/Lead/",
        json={"LastName": "D", "Company": "A", "Email": "dupe@x.com"},
        headers={"Sforce-Duplicate-Rule-Header": "allowSave=true"},
    )
    assert allowed.status_code == 201


def test_converted_leads_refuse_updates_and_tasks(api: httpx.Client, org: LocalSalesforce) -> None:
    """A converted Lead cannot be updated nor be a Task's WhoId."""
    backdoor = SalesforceBackdoor(org)
    converted = backdoor.seed_person(kind=PersonKind.LEAD, email="c@x.com", is_converted=True)
    update = api.patch(f"{V}/sobjects/Lead/{converted}", json={"FirstName": "x"})
    assert update.json()[0]["errorCode"] == "CANNOT_UPDATE_CONVERTED_LEAD"
    task = api.post(f"{V}/sobjects/Task/", json={"WhoId": converted, "Subject": "s"})
    assert task.json()[0]["errorCode"] == "CANNOT_UPDATE_CONVERTED_LEAD"


def test_campaign_membership_is_unique(api: httpx.Client, org: LocalSalesforce) -> None:
    """A second CampaignMember for one person is DUPLICATE_VALUE 'Already a campaign member.'"""
    backdoor = SalesforceBackdoor(org)
    campaign = backdoor.seed_campaign(name="C")
    person = backdoor.seed_person(kind=PersonKind.LEAD, email="m@x.com")
    body = {"CampaignId": campaign, "LeadId": person}
    assert api.post(f"{V}/sobjects/CampaignMember/", json=body).status_code == 201
    again = api.post(f"{V}/sobjects/CampaignMember/", json=body).json()[0]
    assert again == {
        "errorCode": "DUPLICATE_VALUE",
        "message": "Already a campaign member.",
        "fields": [],
    }


def test_describe_shape(api: httpx.Client) -> None:
    """describe lists fields with the keys of reference §8.1; OwnerId is polymorphic."""
    body = api.get(f"{V}/sobjects/Lead/describe").json()
    assert body["name"] == "Lead"
    assert body["keyPrefix"] == "00Q"
    owner = next(f for f in body["fields"] if f["name"] == "OwnerId")
    assert owner["referenceTo"] == ["Group", "User"]
    assert owner["relationshipName"] == "Owner"
    assert owner["defaultedOnCreate"] is True
    salutation_like = next(f for f in body["fields"] if f["name"] == "FirstName")
    assert salutation_like["byteLength"] == 3 * salutation_like["length"]
    assert api.get(f"{V}/sobjects/Nope/describe").status_code == 404


def test_limits_resource(api: httpx.Client, org: LocalSalesforce) -> None:
    """/limits reports DailyApiRequests Max and Remaining."""
    body = api.get(f"{V}/limits").json()
    assert body["DailyApiRequests"] == {"Max": org.daily_limit, "Remaining": org.daily_limit - 1}
