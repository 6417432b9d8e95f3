"""The local Salesforce's shortcuts answer as the long way round does.

Writes read an object's fields through a plan worked out once (defaults, required, unique and
indexed fields); a composite request with no ``@{`` in its text skips reference resolution and
hands its subrequests' bodies on parsed. These tests pin that a schema change reaches the plan
at once and that a reference is still found however the JSON spells it.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from signals_crm.testing.salesforce import FieldDef, LocalSalesforce
from signals_crm.testing.salesforce._ids import _suffix
from signals_crm.testing.salesforce._reply import ParsedJson, json_body

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


def _create(sf: httpx.Client, values: dict[str, Any]) -> httpx.Response:
    return sf.post(f"{V}/sobjects/Lead", json=values)


def test_a_field_added_or_changed_reaches_the_next_write(
    org: LocalSalesforce, sf: httpx.Client
) -> None:
    """A required field added after writes is required at once; making it nillable (a
    ``FieldDef`` attribute set in place) lets the next create through; a boolean added later
    starts false; an id-lookup field made Unique is enforced from the next write; an email
    field added later is found by a query on it (indexed)."""
    assert _create(sf, _lead("a@x.com")).status_code == 201
    region = FieldDef("Region__c", "string", 40, "Region", nillable=False, custom=True)
    org.add_field("Lead", region)
    refused = _create(sf, _lead("b@x.com"))
    assert refused.status_code == 400
    assert refused.json()[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert refused.json()[0]["fields"] == ["Region__c"]
    region.nillable = True
    created = _create(sf, _lead("b@x.com"))
    assert created.status_code == 201, created.text
    org.add_field("Lead", FieldDef("Vip__c", "boolean", label="VIP", custom=True))
    third = _create(sf, _lead("c@x.com")).json()["id"]
    assert sf.get(f"{V}/sobjects/Lead/{third}").json()["Vip__c"] is False
    badge = FieldDef("Badge__c", "string", 20, "Badge", custom=True, id_lookup=True)
    org.add_field("Lead", badge)
    assert _create(sf, _lead("d@x.com", Badge__c="B1")).status_code == 201
    badge.unique = True
    clash = _create(sf, _lead("e@x.com", Badge__c="b1"))
    assert clash.json()[0]["errorCode"] == "DUPLICATE_VALUE", clash.text
    org.add_field("Lead", FieldDef("Backup__c", "email", 80, "Backup email", custom=True))
    fourth = _create(sf, _lead("f@x.com", Backup__c="Spare@X.com")).json()["id"]
    soql = "SELECT Id FROM Lead WHERE Backup__c = 'spare@x.com'"
    found = sf.get(f"{V}/query", params={"q": soql}).json()["records"]
    assert [r["Id"] for r in found] == [fourth]


def test_a_reference_spelled_with_a_unicode_escape_is_still_resolved(
    org: LocalSalesforce, sf: httpx.Client
) -> None:
    """``\\u0040{lead.id}`` is ``@{lead.id}`` once parsed: the request text holds no ``@{``,
    and the Task still lands on the Lead created before it."""
    owner = org.integration_user_id
    subrequests = [
        {
            "method": "POST",
            "url": f"{V}/sobjects/Lead",
            "referenceId": "lead",
            "body": _lead("u@x.com"),
        },
        {
            "method": "POST",
            "url": f"{V}/sobjects/Task",
            "referenceId": "task",
            "body": {"Subject": "Chat", "WhoId": "@{lead.id}", "OwnerId": owner},
        },
    ]
    text = json.dumps({"compositeRequest": subrequests}).replace("@{", "\\u0040{")
    assert "@{" not in text
    answer = sf.post(
        f"{V}/composite", content=text, headers={"Content-Type": "application/json"}
    ).json()["compositeResponse"]
    assert [a["httpStatusCode"] for a in answer] == [201, 201], answer
    task = sf.get(f"{V}/sobjects/Task/{answer[1]['body']['id']}").json()
    assert task["WhoId"] == answer[0]["body"]["id"]


def test_a_composite_without_references_writes_what_it_was_sent(sf: httpx.Client) -> None:
    """No ``@{`` anywhere: each Collections subrequest's records land as sent (an ``@`` in a
    value is no reference), and a subrequest body that is not an object fails alone, as it
    would have parsed."""
    records = [
        {"attributes": {"type": "Lead"}, **_lead(f"p{i}@x.com", FirstName=f"A@{i}")}
        for i in range(3)
    ]
    subrequests = [
        {
            "method": "POST",
            "url": f"{V}/composite/sobjects",
            "referenceId": "leads",
            "body": {"allOrNone": False, "records": records},
        },
        {"method": "POST", "url": f"{V}/sobjects/Lead", "referenceId": "bad", "body": [1, 2]},
    ]
    answer = sf.post(f"{V}/composite", json={"compositeRequest": subrequests}).json()
    first, second = answer["compositeResponse"]
    assert [r["success"] for r in first["body"]] == [True, True, True]
    assert second["httpStatusCode"] == 400
    assert second["body"][0]["errorCode"] == "JSON_PARSER_ERROR"
    names = [sf.get(f"{V}/sobjects/Lead/{r['id']}").json()["FirstName"] for r in first["body"]]
    assert names == ["A@0", "A@1", "A@2"]


def test_parsed_json_is_its_bytes_and_its_value() -> None:
    value = {"records": [{"Name": "é", "n": 1.5, "ok": True, "none": None}]}
    body = ParsedJson(value)
    assert bytes(body) == json.dumps(value).encode()
    assert json_body(body) is value
    assert json_body(bytes(body)) == value


def test_text_values_keep_their_checks(sf: httpx.Client) -> None:
    """A text value at its field's length is stored as sent, one character more is
    ``STRING_TOO_LONG``; a number sent to a text field is stored as its text; a bad email and
    a non-text value are still refused."""
    at_limit = _create(sf, _lead("t1@x.com", FirstName="F" * 40))
    assert at_limit.status_code == 201, at_limit.text
    lead = sf.get(f"{V}/sobjects/Lead/{at_limit.json()['id']}").json()
    assert lead["FirstName"] == "F" * 40
    over = _create(sf, _lead("t2@x.com", FirstName="F" * 41))
    assert over.json()[0]["errorCode"] == "STRING_TOO_LONG"
    numbered = _create(sf, _lead("t3@x.com", Phone=5550100)).json()["id"]
    assert sf.get(f"{V}/sobjects/Lead/{numbered}").json()["Phone"] == "5550100"
    assert _create(sf, _lead("not-an-email")).json()[0]["errorCode"] == "INVALID_EMAIL_ADDRESS"
    listed = _create(sf, _lead("t4@x.com", FirstName=["F"]))
    assert listed.json()[0]["errorCode"] == "JSON_PARSER_ERROR"


@given(st.text(alphabet=string.ascii_letters + string.digits + "é_", min_size=15, max_size=15))
def test_the_id_suffix_is_the_documented_one(id15: str) -> None:
    """Each 5-character chunk's uppercase letters, bit i for character i, through
    ``A``-``Z0``-``5`` (the loop the reference describes)."""
    expected = ""
    for start in (0, 5, 10):
        bits = sum(1 << i for i, ch in enumerate(id15[start : start + 5]) if "A" <= ch <= "Z")
        expected += "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"[bits]
    assert _suffix.__wrapped__(id15) == expected


def test_a_date_is_checked_and_a_task_without_email_is_no_duplicate(
    org: LocalSalesforce, sf: httpx.Client
) -> None:
    """``ActivityDate`` takes ``YYYY-MM-DD`` only (else the request fails as unreadable JSON);
    two identical Tasks are both saved (no duplicate rule looks at a record without Email)."""
    lead = _create(sf, _lead("w@x.com")).json()["id"]
    task = {"Subject": "Chat", "WhoId": lead, "OwnerId": org.integration_user_id}
    bad = sf.post(f"{V}/sobjects/Task", json={**task, "ActivityDate": "2026-11-1"})
    assert bad.status_code == 400
    assert bad.json()[0]["errorCode"] == "JSON_PARSER_ERROR"
    for _ in range(2):
        good = sf.post(f"{V}/sobjects/Task", json={**task, "ActivityDate": "2026-11-01"})
        assert good.status_code == 201, good.text
