"""SOQL beyond plain selects, SOSL and Bulk API 2.0, through simple-salesforce over HTTPS."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from signals_crm.core.model import PersonKind
from signals_crm.testing import LoopbackServer
from signals_crm.testing.salesforce import FieldDef, LocalSalesforce, SalesforceBackdoor

USER = "ada@local.example.com"
PASSWORD = "correct-horse"
TOKEN = "TOKEN123"


@pytest.fixture
def sf(org: LocalSalesforce, sf_env: LoopbackServer) -> Salesforce:
    del sf_env
    org.add_login(USER, PASSWORD, TOKEN)
    return Salesforce(username=USER, password=PASSWORD, security_token=TOKEN)


def _leads(sf: Salesforce) -> list[str]:
    rows = [
        ("Ada", "Lovelace", "ada@engine.example", "Web", 40),
        ("Grace", "Hopper", "grace@navy.example", "Web", 900),
        ("Alan", "Turing", "alan@bletchley.example", "Phone Inquiry", 12),
    ]
    return [
        sf.Lead.create(
            {
                "FirstName": first,
                "LastName": last,
                "Company": "C",
                "Email": email,
                "LeadSource": source,
                "NumberOfEmployees": size,
            },
            headers={"Sforce-Auto-Assign": "FALSE"},
        )["id"]
        for first, last, email, source, size in rows
    ]


def test_aggregates_group_by_and_having(sf: Salesforce) -> None:
    """``GROUP BY`` with aggregate functions answers ``AggregateResult`` rows, unaliased
    aggregates named ``expr0``, ``expr1``...; ``HAVING`` filters the groups.

    https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_groupby.htm
    https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_agg_functions.htm
    """
    _leads(sf)
    grouped = sf.query(
        "SELECT LeadSource, COUNT(Id) total, MAX(NumberOfEmployees) FROM Lead "
        "GROUP BY LeadSource ORDER BY LeadSource"
    )
    assert [(r["LeadSource"], r["total"], r["expr0"]) for r in grouped["records"]] == [
        ("Phone Inquiry", 1, 12),
        ("Web", 2, 900),
    ]
    assert grouped["records"][0]["attributes"]["type"] == "AggregateResult"
    busy = sf.query("SELECT LeadSource FROM Lead GROUP BY LeadSource HAVING COUNT(Id) > 1")
    assert [r["LeadSource"] for r in busy["records"]] == ["Web"]
    (overall,) = sf.query("SELECT COUNT(Id), AVG(NumberOfEmployees) FROM Lead")["records"]
    assert (overall["expr0"], round(overall["expr1"])) == (3, 317)
    with pytest.raises(SalesforceMalformedRequest, match="MALFORMED_QUERY"):
        sf.query("SELECT LeadSource, COUNT(Id) FROM Lead")


def test_child_subqueries_and_polymorphic_who(sf: Salesforce) -> None:
    """A parent-to-child subquery nests the Tasks of each Lead (``null`` when none); a Task's
    polymorphic ``Who`` reads the Lead's name and its ``Type``.

    https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_relationships_query_using.htm
    https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_relationships_and_polymorph_keys.htm
    """
    ada, grace, _ = _leads(sf)
    sf.Task.create({"Subject": "Chat transcript", "WhoId": ada})
    sf.Task.create({"Subject": "Meeting booked", "WhoId": ada})
    listed = f"'{ada}', '{grace}'"
    soql = "SELECT Id, (SELECT Subject FROM Tasks ORDER BY Subject) FROM Lead WHERE Id IN "
    rows = sf.query(soql + f"({listed}) ORDER BY LastName")["records"]
    by_id = {r["Id"]: r["Tasks"] for r in rows}
    assert by_id[grace] is None
    assert [t["Subject"] for t in by_id[ada]["records"]] == ["Chat transcript", "Meeting booked"]
    tasks = sf.query("SELECT Subject, Who.Name, Who.Type FROM Task ORDER BY Subject")["records"]
    assert [(t["Who"]["Name"], t["Who"]["Type"]) for t in tasks] == [("Ada Lovelace", "Lead")] * 2


def test_date_literals(sf: Salesforce) -> None:
    """``TODAY``, ``YESTERDAY``, ``LAST_N_DAYS:n`` and ``NEXT_N_DAYS:n`` on datetime and date
    fields, resolved against the org's clock.

    https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_dateformats.htm
    """
    _leads(sf)
    assert sf.query("SELECT COUNT() FROM Lead WHERE CreatedDate = TODAY")["totalSize"] == 3
    assert sf.query("SELECT COUNT() FROM Lead WHERE CreatedDate = YESTERDAY")["totalSize"] == 0
    assert sf.query("SELECT COUNT() FROM Lead WHERE CreatedDate = LAST_N_DAYS:7")["totalSize"] == 3
    assert sf.query("SELECT COUNT() FROM Lead WHERE CreatedDate < TODAY")["totalSize"] == 0
    sf.Task.create({"Subject": "Soon", "ActivityDate": "2999-01-01"})
    assert sf.query("SELECT COUNT() FROM Task WHERE ActivityDate = NEXT_N_DAYS:3")["totalSize"] == 0
    assert sf.query("SELECT COUNT() FROM Task WHERE ActivityDate > TODAY")["totalSize"] == 1


def test_sosl_search(sf: Salesforce) -> None:
    """``FIND {term}`` finds records by word across text fields; ``IN EMAIL FIELDS`` narrows
    the fields; ``RETURNING`` picks objects and columns; a one-letter term is refused.

    https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_sosl_find.htm
    https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_search.htm
    """
    ada, grace, _ = _leads(sf)
    found = sf.search("FIND {lovelace} IN ALL FIELDS RETURNING Lead(Id, Email), Contact(Id)")
    assert [(r["Id"], r["Email"]) for r in found["searchRecords"]] == [(ada, "ada@engine.example")]
    by_domain = sf.search("FIND {navy.example} IN EMAIL FIELDS RETURNING Lead(Id)")
    assert [r["Id"] for r in by_domain["searchRecords"]] == [grace]
    assert sf.quick_search("hop*")["searchRecords"][0]["Id"] == grace
    assert sf.search("FIND {Web} IN NAME FIELDS RETURNING Lead(Id)")["searchRecords"] == []
    with pytest.raises(SalesforceMalformedRequest, match="MALFORMED_SEARCH"):
        sf.search("FIND {a}")


def test_bulk_api_2_ingest_and_query(sf: Salesforce) -> None:
    """Bulk API 2.0: an insert job (one bad row fails alone, with its error in the failed
    results), then a query job answering CSV.

    https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/walkthrough_upload_data.htm
    https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_get_job_results.htm
    """
    records = [
        {"LastName": "Bulk1", "Company": "B", "Email": "b1@x.com"},
        {"LastName": "Bulk2", "Company": "B", "Email": "b2@x.com"},
        {"LastName": "", "Company": "B", "Email": "b3@x.com"},
    ]
    (result,) = sf.bulk2.Lead.insert(records=records, wait=0)
    assert (result["numberRecordsProcessed"], result["numberRecordsFailed"]) == (3, 1)
    failed = list(csv.DictReader(io.StringIO(sf.bulk2.Lead.get_failed_records(result["job_id"]))))
    assert [row["Email"] for row in failed] == ["b3@x.com"]
    assert failed[0]["sf__Error"].startswith("REQUIRED_FIELD_MISSING")
    pages = list(sf.bulk2.Lead.query("SELECT Email FROM Lead ORDER BY Email", wait=0))
    rows = [row for page in pages for row in csv.DictReader(io.StringIO(str(page)))]
    assert [row["Email"] for row in rows] == ["b1@x.com", "b2@x.com"]


def test_query_options_batch_size_and_statement_limit(sf: Salesforce, org: LocalSalesforce) -> None:
    """``Sforce-Query-Options: batchSize=N`` sets the page size (200 at least, 2,000 at most)
    for the whole cursor; a statement over 100,000 characters is refused.

    https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_queryoptions.htm
    https://developer.salesforce.com/docs/atlas.en-us.salesforce_app_limits_cheatsheet.meta/salesforce_app_limits_cheatsheet/salesforce_app_limits_platform_soslsoql.htm
    """
    door = SalesforceBackdoor(org)
    for i in range(450):
        door.seed_person(kind=PersonKind.LEAD, email=f"page{i}@x.com")
    options = {"Sforce-Query-Options": "batchSize=10"}
    first = sf.query("SELECT Id FROM Lead", headers=options)
    assert (len(first["records"]), first["done"]) == (200, False)
    second = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True, headers=options)
    assert len(second["records"]) == 200
    assert len(sf.query_all("SELECT Id FROM Lead", headers=options)["records"]) == 450
    # A statement this long only fits in a request body: a composite query subrequest.
    emails = ",".join(f"'{i:020d}@example.com'" for i in range(3500))
    subrequest = {
        "method": "GET",
        "url": f"/services/data/v{sf.sf_version}/query?q=SELECT+Id+FROM+Lead+WHERE+Email+IN+"
        f"({emails})",
        "referenceId": "long",
    }
    answer = sf.restful(
        "composite", method="POST", data=json.dumps({"compositeRequest": [subrequest]})
    )
    (result,) = answer["compositeResponse"]
    assert result["httpStatusCode"] == 400
    assert "100000" in result["body"][0]["message"]


def test_semi_join_and_anti_join(sf: Salesforce) -> None:
    """``Id IN (SELECT LeadId FROM CampaignMember WHERE ...)`` keeps the campaign's Leads;
    ``NOT IN`` the others.

    https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_comparisonoperators.htm
    """
    ada, grace, alan = _leads(sf)
    campaign = sf.Campaign.create({"Name": "Chat"})["id"]
    sf.CampaignMember.create({"CampaignId": campaign, "LeadId": grace})
    inner = f"SELECT LeadId FROM CampaignMember WHERE CampaignId = '{campaign}'"  # noqa: S608  # SOQL
    members = sf.query(f"SELECT Id FROM Lead WHERE Id IN ({inner})")["records"]  # noqa: S608  # SOQL
    others = sf.query(f"SELECT Id FROM Lead WHERE Id NOT IN ({inner})")["records"]  # noqa: S608  # SOQL
    assert [r["Id"] for r in members] == [grace]
    assert {r["Id"] for r in others} == {ada, alan}


def test_describe_answers_304_when_unchanged(sf: Salesforce, org: LocalSalesforce) -> None:
    """``If-Modified-Since`` on describe: 304 while the metadata has not changed since, the
    full describe once a field was added.

    https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_sobject_describe.htm
    """
    url = f"{sf.base_url}sobjects/Lead/describe"
    first = sf.session.get(url, headers=sf.headers)
    stamp = first.headers["Last-Modified"]
    again = sf.session.get(url, headers={**sf.headers, "If-Modified-Since": stamp})
    assert (first.status_code, again.status_code) == (200, 304)
    later = datetime.now(UTC) + timedelta(seconds=5)
    org.data._clock = lambda: later  # HTTP dates have whole seconds: change it visibly later
    org.add_field("Lead", FieldDef("Score__c", "double", label="Score", custom=True))
    changed = sf.session.get(url, headers={**sf.headers, "If-Modified-Since": stamp})
    assert changed.status_code == 200
    assert "Score__c" in {f["name"] for f in changed.json()["fields"]}


def test_typeof_picks_fields_per_type(sf: Salesforce) -> None:
    """``TYPEOF Who WHEN Lead THEN ... WHEN Contact THEN ... END`` selects fields by the type
    each Task's ``Who`` points to.

    https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_typeof.htm
    """
    ada, _, _ = _leads(sf)
    contact = sf.Contact.create({"LastName": "Babbage", "Email": "cb@engine.example"})["id"]
    sf.Task.create({"Subject": "a", "WhoId": ada})
    sf.Task.create({"Subject": "b", "WhoId": contact})
    sf.Task.create({"Subject": "c"})
    rows = sf.query(
        "SELECT Subject, TYPEOF Who WHEN Lead THEN Company, Email WHEN Contact THEN Email "
        "END FROM Task ORDER BY Subject"
    )["records"]
    assert rows[0]["Who"]["attributes"]["type"] == "Lead"
    assert (rows[0]["Who"]["Company"], rows[0]["Who"]["Email"]) == ("C", "ada@engine.example")
    assert rows[1]["Who"]["Email"] == "cb@engine.example"
    assert "Company" not in rows[1]["Who"]
    assert rows[2]["Who"] is None
    with pytest.raises(SalesforceMalformedRequest):
        sf.query("SELECT TYPEOF Owner WHEN User THEN Email END FROM Contact")
