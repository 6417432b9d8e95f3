"""Preflight's metadata is read together: one composite request instead of three (rule 8 of
the Salesforce flows)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import httpx
import pytest

from signals_crm.adapters.salesforce import AsyncSalesforceAdapter, SalesforceAdapter, StaticToken
from signals_crm.core.config import (
    Criteria,
    FieldMapping,
    FieldMappings,
    SyncConfig,
    UserMapEntry,
    UserMapping,
)
from signals_crm.engine import Integration
from signals_crm.exceptions import NotFoundError
from signals_crm.ledger import MemoryLedger
from signals_crm.testing.salesforce import LocalSalesforce, SalesforceBackdoor

INSTANCE = "https://x.my.salesforce.com"
NOW = datetime(2026, 11, 20, 16, 0, tzinfo=UTC)
KEY = "Signals_Sync_Key__c"


def _settings(owner: str, campaign: str | None) -> SyncConfig:
    return SyncConfig(
        criteria=Criteria.ALL,
        synchronization_delay=timedelta(minutes=30),
        users=UserMapping((UserMapEntry(owner, signals_user_id="u-sally"),)),
        field_mappings=FieldMappings(lead=(FieldMapping("contact.first_name", "FirstName"),)),
        placeholders={"LastName": "[not provided]", "Company": "[not provided]"},
        campaign_id=campaign,
    )


def _subrequests(body: dict[str, Any]) -> list[str]:
    return [s["url"].split("/v61.0/", 1)[1].split("?", 1)[0] for s in body["compositeRequest"]]


class Recorder(httpx.BaseTransport):
    """Forwards to the local org and keeps each request's body."""

    def __init__(self, org: LocalSalesforce) -> None:
        self.inner = org.transport()
        self.bodies: list[dict[str, Any]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        content = request.read()
        if content:
            self.bodies.append(json.loads(content))
        return self.inner.handle_request(request)


@pytest.mark.parametrize("campaign", [True, False])
def test_a_fresh_integrations_preflight_is_one_round_trip(campaign: bool) -> None:
    """Campaign check, Lead describe and users: one composite request, one API call; the
    problems found are those of three separate reads (a missing user is still reported)."""
    org = LocalSalesforce()
    door = SalesforceBackdoor(org)
    owner = door.seed_user(email="sally@vendor.test")
    campaign_id = door.seed_campaign(name="Fall") if campaign else None
    recorder = Recorder(org)
    with httpx.Client(transport=recorder) as http:
        adapter = SalesforceAdapter(http, StaticToken(org.issue_token(), org.instance_url))
        config = _settings(owner, campaign_id)
        ghost = UserMapEntry("005000000000000AAA", signals_user_id="u-ghost")  # not in the org
        config = attrs.evolve(config, users=UserMapping((*config.users.entries, ghost)))
        sync = Integration(adapter, config, ledger=MemoryLedger(), clock=lambda: NOW)
        problems = sync.preflight()
    assert [path for _, path in org.calls] == ["/services/data/v61.0/composite"]
    parts = _subrequests(recorder.bodies[0])
    expected = (
        ["query", "sobjects/Lead/describe", "query"]
        if campaign
        else ["sobjects/Lead/describe", "query"]
    )
    assert parts == expected
    assert [p.path for p in problems] == ["user_mapping[1].crm_user_id"]


def test_with_a_sync_key_the_task_schema_comes_along() -> None:
    """With ``sync_key_field`` preflight also describes Task: four parts, still one request."""
    org = LocalSalesforce(external_id_fields=(f"Lead.{KEY}", f"Task.{KEY}"))
    owner = SalesforceBackdoor(org).seed_user(email="sally@vendor.test")
    recorder = Recorder(org)
    with httpx.Client(transport=recorder) as http:
        adapter = SalesforceAdapter(
            http, StaticToken(org.issue_token(), org.instance_url), sync_key_field=KEY
        )
        sync = Integration(
            adapter, _settings(owner, None), ledger=MemoryLedger(), clock=lambda: NOW
        )
        assert sync.preflight() == []
    assert len(org.calls) == 1
    assert _subrequests(recorder.bodies[0]) == [
        "sobjects/Lead/describe",
        "sobjects/Task/describe",
        "query",
    ]


def test_one_missing_part_goes_alone_as_before(
    org: LocalSalesforce, sf: SalesforceAdapter, backdoor: SalesforceBackdoor
) -> None:
    """Once the schema and users are cached, a campaign check is a plain query."""
    sf.list_users()
    campaign = backdoor.seed_campaign(name="Fall")
    assert sf.campaign_exists(campaign) is True
    assert [p.rsplit("/", 1)[-1] for _, p in org.calls] == ["composite", "query"]


def _composite_handler(
    answers: Callable[[dict[str, str]], tuple[int, Any]], seen: list[str]
) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        if request.url.path.endswith("/composite"):
            entries = []
            for sub in json.loads(request.content)["compositeRequest"]:
                status, body = answers(sub)
                entries.append(
                    {
                        "body": body,
                        "httpHeaders": {},
                        "httpStatusCode": status,
                        "referenceId": sub["referenceId"],
                    }
                )
            return httpx.Response(200, json={"compositeResponse": entries})
        if request.url.path.endswith("/describe"):
            return httpx.Response(
                404,
                json=[
                    {"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}
                ],
            )
        if "/query/" in request.url.path:  # the users' next page
            records = [{"Id": "005B", "Name": "B", "Email": "b@x.test", "IsActive": True}]
            return httpx.Response(200, json={"totalSize": 2, "done": True, "records": records})
        raise AssertionError(request.url)

    return handler


def _first_page(sub: dict[str, str]) -> tuple[int, Any]:
    if sub["url"].endswith("/describe"):
        return 404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]
    records = [{"Id": "005A", "Name": "A", "Email": "a@x.test", "IsActive": True}]
    more = "/services/data/v61.0/query/01gNEXT-2000"
    return 200, {"totalSize": 2, "done": False, "nextRecordsUrl": more, "records": records}


def test_a_part_that_failed_is_not_kept_and_its_own_call_reports_it() -> None:
    """The describe failing inside the composite leaves it uncached: ``describe`` reads it
    again alone and raises that error; the users, answered there, are kept (their next page
    read with queryMore)."""
    seen: list[str] = []
    transport = httpx.MockTransport(_composite_handler(_first_page, seen))
    with httpx.Client(transport=transport) as http:
        sf = SalesforceAdapter(http, StaticToken("t", INSTANCE))
        users = sf.list_users()
        assert [u.id for u in users] == ["005A", "005B"]
        with pytest.raises(NotFoundError):
            sf.describe("Lead")
        assert [u.id for u in sf.list_users()] == ["005A", "005B"]  # from the cache
    assert seen == [
        "POST /services/data/v61.0/composite",
        "GET /services/data/v61.0/query/01gNEXT-2000",
        "GET /services/data/v61.0/sobjects/Lead/describe",
    ]


@pytest.mark.anyio
async def test_the_async_adapter_reads_metadata_together_too() -> None:
    """The same flow under the async shell: one request for the schema and the users."""
    org = LocalSalesforce()
    SalesforceBackdoor(org).seed_user(email="sally@vendor.test")
    async with httpx.AsyncClient(transport=org.transport()) as http:
        sf = AsyncSalesforceAdapter(http, StaticToken(org.issue_token(), org.instance_url))
        schema = await sf.adescribe("Lead")
        users = await sf.alist_users()
    assert schema.get("Email") is not None
    assert any(u.email == "sally@vendor.test" for u in users)
    assert [p.rsplit("/", 1)[-1] for _, p in org.calls] == ["composite"]
