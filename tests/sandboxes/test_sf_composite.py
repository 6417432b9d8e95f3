"""The local Salesforce's multi-request resources, as the REST API Developer Guide has them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote_plus

import httpx
import pytest

from signals_crm.core.model import PersonKind
from signals_crm.testing.salesforce import LocalSalesforce, SalesforceBackdoor, to_18

V = "/services/data/v61.0"


@pytest.fixture
def sf(org: LocalSalesforce) -> Iterator[httpx.Client]:
    with httpx.Client(
        transport=org.transport(),
        base_url=org.instance_url,
        headers={"Authorization": f"Bearer {org.issue_token()}"},
    ) as client:
        yield client


def _lead(email: str, **extra: Any) -> dict[str, Any]:
    return {"LastName": "Doe", "Company": "Acme", "Email": email, **extra}


def _composite(
    sf: httpx.Client, subrequests: list[dict[str, Any]], **options: Any
) -> httpx.Response:
    return sf.post(f"{V}/composite", json={"compositeRequest": subrequests, **options})


def test_references_chain_subrequests_in_one_api_call(
    org: LocalSalesforce, sf: httpx.Client
) -> None:
    """A Lead, then a Task on it through ``@{newLead.id}``, then a query reading it back by
    ``@{newLead.id}``: one API call, 200 with each subrequest's status, body and headers; the
    subrequest's own ``Sforce-Auto-Assign`` header applies to it.

    https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_composite_post.htm
    """
    org.assignment_rule_owner = SalesforceBackdoor(org).seed_user(email="queue@x.com")
    used = org.api_used
    answer = _composite(
        sf,
        [
            {
                "method": "POST",
                "url": f"{V}/sobjects/Lead",
                "referenceId": "newLead",
                "body": _lead("c@x.com"),
                "httpHeaders": {"Sforce-Auto-Assign": "FALSE"},
            },
            {
                "method": "POST",
                "url": f"{V}/sobjects/Task",
                "referenceId": "newTask",
                "body": {"Subject": "Chat", "WhoId": "@{newLead.id}"},
            },
            {
                "method": "GET",
                "url": f"{V}/query?q=SELECT+Id,OwnerId+FROM+Lead+WHERE+Id='@{{newLead.id}}'",
                "referenceId": "readBack",
            },
        ],
    )
    assert answer.status_code == 200
    lead, task, read = answer.json()["compositeResponse"]
    assert org.api_used == used + 1
    assert [lead["httpStatusCode"], task["httpStatusCode"], read["httpStatusCode"]] == [
        201,
        201,
        200,
    ]
    assert lead["httpHeaders"]["Location"] == f"{V}/sobjects/Lead/{lead['body']['id']}"
    stored = SalesforceBackdoor(org).record(task["body"]["id"])
    assert stored is not None
    assert stored["WhoId"] == lead["body"]["id"]
    (row,) = read["body"]["records"]
    assert row["OwnerId"] == org.integration_user_id  # the rule did not run for this subrequest


def test_all_or_none_rolls_every_write_back(org: LocalSalesforce, sf: httpx.Client) -> None:
    """With ``allOrNone`` the failing subrequest keeps its error, the others answer
    ``PROCESSING_HALTED``, and nothing is saved.

    https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_composite_post.htm
    """
    answer = _composite(
        sf,
        [
            {
                "method": "POST",
                "url": f"{V}/sobjects/Lead",
                "referenceId": "a",
                "body": _lead("a@x.com"),
            },
            {
                "method": "POST",
                "url": f"{V}/sobjects/Lead",
                "referenceId": "b",
                "body": {"Company": "C"},
            },
            {
                "method": "POST",
                "url": f"{V}/sobjects/Lead",
                "referenceId": "c",
                "body": _lead("c@x.com"),
            },
        ],
        allOrNone=True,
    )
    first, second, third = answer.json()["compositeResponse"]
    assert second["httpStatusCode"] == 400
    assert second["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    for halted in (first, third):
        assert halted["httpStatusCode"] == 400
        assert halted["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert SalesforceBackdoor(org).people_with_email("a@x.com") == []


def test_without_all_or_none_only_dependents_fail(org: LocalSalesforce, sf: httpx.Client) -> None:
    """Without ``allOrNone`` a failure stays local: a subrequest referring to the failed one
    fails with ``PROCESSING_HALTED``, an independent one is saved.

    https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_composite_post.htm
    """
    answer = _composite(
        sf,
        [
            {
                "method": "POST",
                "url": f"{V}/sobjects/Lead",
                "referenceId": "bad",
                "body": {"Company": "C"},
            },
            {
                "method": "POST",
                "url": f"{V}/sobjects/Task",
                "referenceId": "task",
                "body": {"Subject": "Chat", "WhoId": "@{bad.id}"},
            },
            {
                "method": "POST",
                "url": f"{V}/sobjects/Lead",
                "referenceId": "ok",
                "body": _lead("ok@x.com"),
            },
        ],
    )
    bad, task, ok = answer.json()["compositeResponse"]
    assert bad["httpStatusCode"] == 400
    assert task["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert ok["httpStatusCode"] == 201
    assert SalesforceBackdoor(org).people_with_email("ok@x.com") == [ok["body"]["id"]]


@pytest.mark.parametrize(
    ("subrequests", "fragment"),
    [
        (
            [{"method": "GET", "url": f"{V}/limits", "referenceId": f"r{i}"} for i in range(26)],
            "25",
        ),
        (
            [
                {"method": "GET", "url": f"{V}/query?q=SELECT+Id+FROM+Lead", "referenceId": f"q{i}"}
                for i in range(6)
            ],
            "at most 5",
        ),
        (
            [
                {"method": "GET", "url": f"{V}/limits", "referenceId": "same"},
                {"method": "GET", "url": f"{V}/limits", "referenceId": "same"},
            ],
            "Duplicate referenceId",
        ),
        ([{"method": "GET", "url": f"{V}/limits"}], "referenceId"),
    ],
)
def test_a_request_over_the_limits_runs_nothing(
    sf: httpx.Client, subrequests: list[dict[str, Any]], fragment: str
) -> None:
    """25 subrequests at most, 5 of them queries or Collections, unique reference ids: else
    the whole request is a 400.

    https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_composite_post.htm
    """
    answer = _composite(sf, subrequests)
    assert answer.status_code == 400
    assert fragment in answer.json()[0]["message"]


def test_collections_and_queries_as_subrequests(org: LocalSalesforce, sf: httpx.Client) -> None:
    """A Collections create and a query inside one composite request; Tasks refer to the
    Collections result by index (``@{people[0].id}``).

    https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_allornone.htm
    """
    records = [{"attributes": {"type": "Lead"}, **_lead(f"p{i}@x.com")} for i in range(2)]
    answer = _composite(
        sf,
        [
            {
                "method": "POST",
                "url": f"{V}/composite/sobjects",
                "referenceId": "people",
                "body": {"records": records},
            },
            {
                "method": "POST",
                "url": f"{V}/composite/sobjects",
                "referenceId": "tasks",
                "body": {
                    "records": [
                        {
                            "attributes": {"type": "Task"},
                            "Subject": "Chat",
                            "WhoId": f"@{{people[{i}].id}}",
                        }
                        for i in range(2)
                    ]
                },
            },
        ],
        allOrNone=True,
    )
    people, tasks = answer.json()["compositeResponse"]
    assert [r["success"] for r in people["body"]] == [True, True]
    assert [r["success"] for r in tasks["body"]] == [True, True]
    door = SalesforceBackdoor(org)
    assert len(door.tasks(people["body"][1]["id"])) == 1


def test_composite_batch_halts_on_error(sf: httpx.Client) -> None:
    """``composite/batch`` runs independent subrequests; with ``haltOnError`` the ones after a
    failure answer 412 ``BATCH_PROCESSING_HALTED``.

    https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_batch.htm
    """
    body = {
        "haltOnError": True,
        "batchRequests": [
            {"method": "POST", "url": "v61.0/sobjects/Lead", "richInput": _lead("b@x.com")},
            {"method": "GET", "url": f"v61.0/sobjects/Lead/{to_18('00Q5g0000000zzz')}"},
            {"method": "GET", "url": "v61.0/limits"},
        ],
    }
    answer = sf.post(f"{V}/composite/batch", json=body).json()
    assert answer["hasErrors"] is True
    assert [r["statusCode"] for r in answer["results"]] == [201, 404, 412]
    assert answer["results"][2]["result"][0]["errorCode"] == "BATCH_PROCESSING_HALTED"


def test_sobject_tree_saves_parents_and_children_or_nothing(
    org: LocalSalesforce, sf: httpx.Client
) -> None:
    """``composite/tree/Account``: an Account with its Contacts (by the child relationship
    name) answers 201 with ids by reference; a bad child rolls the whole tree back.

    https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobject_tree.htm
    """
    tree = {
        "records": [
            {
                "attributes": {"type": "Account", "referenceId": "acme"},
                "Name": "Acme",
                "Contacts": {
                    "records": [
                        {"attributes": {"type": "Contact", "referenceId": "ann"}, "LastName": "Ann"}
                    ]
                },
            }
        ]
    }
    saved = sf.post(f"{V}/composite/tree/Account", json=tree)
    assert saved.status_code == 201
    refs = {r["referenceId"]: r["id"] for r in saved.json()["results"]}
    contact = SalesforceBackdoor(org).record(refs["ann"])
    assert contact is not None
    assert contact["AccountId"] == refs["acme"]
    tree["records"][0]["Contacts"]["records"][0] = {
        "attributes": {"type": "Contact", "referenceId": "nobody"}
    }
    tree["records"][0]["attributes"]["referenceId"] = "acme2"
    failed = sf.post(f"{V}/composite/tree/Account", json=tree)
    assert failed.status_code == 400
    assert failed.json()["results"][0]["referenceId"] == "nobody"
    names = sf.get(f"{V}/query", params={"q": "SELECT Name FROM Account"}).json()["records"]
    assert [r["Name"] for r in names] == ["Acme"]


def test_collections_retrieve_and_delete(org: LocalSalesforce, sf: httpx.Client) -> None:
    """Retrieve by ids and fields (``null`` for an id that is not there), then delete several
    records at once; an unknown id fails alone unless ``allOrNone`` is set.

    https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_retrieve.htm
    https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-sobjects-collections-delete.html
    """
    door = SalesforceBackdoor(org)
    ids = [door.seed_person(kind=PersonKind.LEAD, email=f"d{i}@x.com") for i in range(3)]
    missing = to_18("00Q5g0000000zzz")
    got = sf.get(
        f"{V}/composite/sobjects/Lead", params={"ids": f"{ids[0]},{missing}", "fields": "Id,Email"}
    )
    first, absent = got.json()
    assert first["Email"] == "d0@x.com"
    assert absent is None
    refused = sf.delete(
        f"{V}/composite/sobjects", params={"ids": f"{ids[0]},{missing}", "allOrNone": "true"}
    )
    assert [r["success"] for r in refused.json()] == [False, False]
    assert door.record(ids[0]) is not None
    done = sf.delete(f"{V}/composite/sobjects", params={"ids": ",".join(ids[:2])})
    assert [r["success"] for r in done.json()] == [True, True]
    assert door.record(ids[0]) is None
    assert sf.get(f"{V}/sobjects/Lead/{ids[0]}").json()[0]["errorCode"] == "ENTITY_IS_DELETED"


def test_updated_and_deleted_windows(org: LocalSalesforce, sf: httpx.Client) -> None:
    """``sobjects/Lead/updated`` lists ids modified in the window, ``deleted`` the deleted ones
    with their dates.

    https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_getupdated.htm
    https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_getdeleted.htm
    """
    door = SalesforceBackdoor(org)
    kept = door.seed_person(kind=PersonKind.LEAD, email="kept@x.com")
    gone = door.seed_person(kind=PersonKind.LEAD, email="gone@x.com")
    sf.delete(f"{V}/sobjects/Lead/{gone}")
    now = datetime.now(UTC)
    window = {
        "start": (now - timedelta(hours=1)).isoformat(),
        "end": (now + timedelta(hours=1)).isoformat(),
    }
    updated = sf.get(f"{V}/sobjects/Lead/updated/", params=window).json()
    deleted = sf.get(f"{V}/sobjects/Lead/deleted/", params=window).json()
    assert updated["ids"] == [kept]
    assert [d["id"] for d in deleted["deletedRecords"]] == [gone]
    assert sf.get(f"{V}/sobjects/Lead/updated/").status_code == 400


def test_queries_in_a_composite_body_are_bounded_by_the_statement_limit(
    org: LocalSalesforce, sf: httpx.Client
) -> None:
    """A query too long for a URL is answered as a composite subrequest (Help article
    000386264: "incorporate the SOQL statement into the body of a Composite API request");
    the statement limit (100,000 characters, "SOQL and SOSL Limits for Search Queries") still
    holds, failing only its own subrequest.

    https://help.salesforce.com/s/articleView?id=000386264&type=1
    https://developer.salesforce.com/docs/atlas.en-us.salesforce_app_limits_cheatsheet.meta/salesforce_app_limits_cheatsheet/salesforce_app_limits_platform_soslsoql.htm
    """
    lead = SalesforceBackdoor(org).seed_person(kind=PersonKind.LEAD, email="found@x.com")

    def soql(count: int) -> str:
        pad = "x" * 30
        emails = ", ".join(f"'visitor.{n:06d}.{pad}@example.com'" for n in range(count))
        return f"SELECT Id FROM Lead WHERE Email IN ('found@x.com', {emails})"  # noqa: S608

    fits, too_long = soql(1_000), soql(1_700)
    assert 16_384 < len(fits) <= 100_000 < len(too_long)
    assert len(f"{V}/query?q={quote_plus(fits)}") > 16_384  # a GET would be a 414
    answer = _composite(
        sf,
        [
            {"method": "GET", "url": f"{V}/query?q={quote_plus(fits)}", "referenceId": "fits"},
            {"method": "GET", "url": f"{V}/query?q={quote_plus(too_long)}", "referenceId": "long"},
        ],
    )
    assert answer.status_code == 200
    first, second = answer.json()["compositeResponse"]
    assert first["httpStatusCode"] == 200
    assert [r["Id"] for r in first["body"]["records"]] == [lead]
    assert second["httpStatusCode"] == 400
    assert second["body"][0]["errorCode"] == "MALFORMED_QUERY"
