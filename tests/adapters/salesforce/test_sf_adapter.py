"""The Salesforce adapter's behaviour against the local org: batching, paging, rules, markers."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from typing import Any
from urllib.parse import unquote_plus

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from signals_crm.adapters.base import AsyncCRMAdapter, CRMAdapter
from signals_crm.adapters.salesforce import (
    SALESFORCE_CAPABILITIES,
    AsyncSalesforceAdapter,
    SalesforceAdapter,
    StaticToken,
    TaskMarker,
)
from signals_crm.adapters.salesforce._soql import HARD_URI_LIMIT, quote
from signals_crm.core.crm import (
    CampaignMembershipWrite,
    MembershipByPerson,
    PersonUpdate,
    PersonWrite,
    TaskByMarker,
    TaskWrite,
)
from signals_crm.core.model import ActivityKind, PersonKind, normalize_email
from signals_crm.exceptions import (
    ConfigurationError,
    CRMAPIError,
    DuplicateRecordError,
    TransportError,
)
from signals_crm.testing.salesforce import (
    DuplicateRule,
    FieldDef,
    LocalSalesforce,
    SalesforceBackdoor,
)
from signals_crm.testing.salesforce._soql import parse


def _write(email: str, owner: str | None = None, **fields: object) -> PersonWrite:
    return PersonWrite(
        key=email,
        kind=PersonKind.LEAD,
        email=email,
        fields={"LastName": "L", "Company": "C", **fields},  # type: ignore[dict-item]
        owner_id=owner,
    )


def _task(person: str, marker: str, kind: PersonKind = PersonKind.LEAD) -> TaskWrite:
    return TaskWrite(
        key=marker,
        person_id=person,
        person_kind=kind,
        activity_kind=ActivityKind.MEETING_BOOKED,
        subject="Meeting booked",
        body="Booked",
        marker=marker,
        activity_date=date(2024, 5, 17),
    )


def _queries(org: LocalSalesforce) -> int:
    return sum(1 for _, path in org.calls if "/query" in path)


@pytest.mark.anyio
async def test_async_adapter_satisfies_the_protocol(async_sf: AsyncSalesforceAdapter) -> None:
    """The async adapter is structurally an AsyncCRMAdapter (and not a blocking one)."""
    assert isinstance(async_sf, AsyncCRMAdapter)
    assert not isinstance(async_sf, CRMAdapter)


def test_adapter_satisfies_the_protocol(sf: SalesforceAdapter) -> None:
    """The blocking adapter is structurally a CRMAdapter and declares Salesforce."""
    assert isinstance(sf, CRMAdapter)
    caps = sf.capabilities
    assert caps is SALESFORCE_CAPABILITIES
    assert (caps.person_kind, caps.person_object, caps.email_field) == (
        PersonKind.LEAD,
        "Lead",
        "Email",
    )
    assert caps.separate_contacts is True
    assert caps.write_batch_size == 1_000  # five Collections of 200 in one composite call
    assert caps.max_task_body_length == 32_000


def test_find_people_follows_next_records_url(
    org: LocalSalesforce, sf: SalesforceAdapter, backdoor: SalesforceBackdoor
) -> None:
    """Lookups page through nextRecordsUrl until done."""
    org.page_size = 2
    emails = [f"page{n}@x.com" for n in range(5)]
    ids = [backdoor.seed_person(kind=PersonKind.LEAD, email=e) for e in emails]
    found = sf.find_people(emails)
    assert [[r.id for r in rs] for rs in found] == [[i] for i in ids]
    assert any("/query/01g" in path for _, path in org.calls)


def test_find_people_chunks_in_lists_by_statement_length(
    org: LocalSalesforce, backdoor: SalesforceBackdoor
) -> None:
    """A small statement budget splits the IN lists; up to five queries share one composite."""
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return org.handle(request)

    emails = [f"chunk.{n}+tag@example.com" for n in range(60)]
    last = backdoor.seed_person(kind=PersonKind.LEAD, email=emails[-1])
    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        adapter = SalesforceAdapter(
            http, StaticToken(org.issue_token(), org.instance_url), max_query_length=800
        )
        found = adapter.find_people(emails)
    assert found[-1][0].id == last
    assert all(rs == () for rs in found[:-1])
    urls = [
        sub["url"]
        for r in sent
        for sub in (
            json.loads(r.content)["compositeRequest"]
            if r.url.path.endswith("/composite")
            else [{"url": str(r.url)}]  # a lone last query that fits a URL: a plain GET
        )
    ]
    assert len(urls) > 5  # several Lead chunks, then the Contact chunks
    assert len(sent) == -(-len(urls) // 5)  # five queries a round trip
    for url in urls:
        assert len(unquote_plus(url.split("?q=", 1)[1])) <= 800


def test_a_batch_of_lookups_is_one_round_trip_past_the_uri_limit(
    org: LocalSalesforce, backdoor: SalesforceBackdoor
) -> None:
    """1,000 emails of 60 characters (about 66,000 characters of SOQL a query, four times what
    a URI may hold) are one composite call: a Lead query and a Contact query in its body."""
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return org.handle(request)

    emails = [f"visitor.{n:04d}.{'x' * 28}@bench-company.test" for n in range(1000)]
    assert {len(e) for e in emails} == {60}
    lead = backdoor.seed_person(kind=PersonKind.LEAD, email=emails[10])
    contact = backdoor.seed_person(kind=PersonKind.CONTACT, email=emails[999])
    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        adapter = SalesforceAdapter(http, StaticToken(org.issue_token(), org.instance_url))
        found = adapter.find_people(emails)
    assert [r.id for r in found[10]] == [lead]
    assert [r.id for r in found[999]] == [contact]
    assert sum(1 for rs in found if rs) == 2
    assert len(sent) == 1
    assert org.api_used == 1
    (subrequests,) = [json.loads(r.content)["compositeRequest"] for r in sent]
    assert [s["method"] for s in subrequests] == ["GET", "GET"]
    assert all(len(s["url"]) > HARD_URI_LIMIT for s in subrequests)


def test_a_lone_short_query_is_a_plain_get(org: LocalSalesforce, sf: SalesforceAdapter) -> None:
    """A reconcile by task marker (one query that fits a URL) is a GET, not a composite."""
    sf.reconcile([TaskByMarker("signals:c-1:transcript")])
    assert [(m, p.rsplit("/", 1)[-1]) for m, p in org.calls] == [("GET", "query")]


def test_a_lone_long_query_goes_in_a_composite_body(
    org: LocalSalesforce, sf: SalesforceAdapter
) -> None:
    """A reconcile by 1,500 markers is one statement far longer than any URL (httpx refuses
    URLs over 65,536 characters): it travels in a composite body, one API call."""
    markers = [f"signals:c-{n}:transcript" for n in range(1_500)]
    assert sf.reconcile([TaskByMarker(m) for m in markers]) == [None] * 1_500
    assert [p.rsplit("/", 1)[-1] for _, p in org.calls] == ["composite"]


def test_lookup_of_no_valid_email_makes_no_call(
    org: LocalSalesforce, sf: SalesforceAdapter
) -> None:
    """Blank emails are answered () without an API call."""
    assert sf.find_people(["", "   "]) == [(), ()]
    assert org.calls == []


def test_describe_is_cached_per_object(org: LocalSalesforce, sf: SalesforceAdapter) -> None:
    """describe calls the API once per object, whatever the casing (the Lead's schema is read
    with the rest of preflight's metadata, in one composite request; the Account's alone)."""
    first = sf.describe("Lead")
    assert sf.describe("lead") is first
    assert first.get("Email") is not None
    account = sf.describe("Account")
    assert sf.describe("account") is account
    assert [p.rsplit("/", 1)[-1] for _, p in org.calls] == ["composite", "describe"]


def test_api_usage_is_exposed(org: LocalSalesforce, sf: SalesforceAdapter) -> None:
    """The adapter exposes the last Sforce-Limit-Info as api_usage."""
    before = sf.api_usage
    sf.list_users()
    sf.find_people(["probe@example.com"])
    after = sf.api_usage
    assert before is None
    assert after is not None
    assert (after.used, after.limit) == (2, org.daily_limit)


def test_owner_set_switches_assignment_rules_off(
    org: LocalSalesforce, sf: SalesforceAdapter, backdoor: SalesforceBackdoor
) -> None:
    """Leads with an owner keep it (Sforce-Auto-Assign: FALSE); others follow the rule."""
    rule_owner = backdoor.seed_user(email="rule@x.com")
    chosen = backdoor.seed_user(email="chosen@x.com")
    org.assignment_rule_owner = rule_owner
    results = sf.create_people(
        [_write("a@x.com", chosen), _write("b@x.com"), _write("c@x.com", chosen)]
    )
    owners = [backdoor.record(r.id or "")["OwnerId"] for r in results]  # type: ignore[index]
    assert owners == [chosen, rule_owner, chosen]
    assert [m for m, p in org.calls] == ["POST"]  # one composite: two Collections subrequests


def test_updates_never_move_the_owner(
    org: LocalSalesforce, sf: SalesforceAdapter, backdoor: SalesforceBackdoor
) -> None:
    """Lead updates send Sforce-Auto-Assign: FALSE, so the rule cannot reassign them."""
    owner = backdoor.seed_user(email="owner@x.com")
    lead = backdoor.seed_person(kind=PersonKind.LEAD, email="u@x.com", fields={"OwnerId": owner})
    org.assignment_rule_owner = backdoor.seed_user(email="rule@x.com")
    (result,) = sf.update_people(
        [PersonUpdate(key="u", record_id=lead, kind=PersonKind.LEAD, fields={"Title": "CTO"})]
    )
    assert result.ok
    assert result.created is False
    record = backdoor.record(lead)
    assert record is not None
    assert (record["OwnerId"], record["Title"]) == (owner, "CTO")


def test_duplicates_without_payload_are_named_by_a_lookup(
    org: LocalSalesforce, sf: SalesforceAdapter, backdoor: SalesforceBackdoor
) -> None:
    """When Collections omit duplicateResult, the adapter names the matches by email."""
    existing = backdoor.seed_person(kind=PersonKind.LEAD, email="dupe@x.com")
    org.duplicate_rule = DuplicateRule()
    (result,) = sf.create_people([_write("Dupe@X.com")])
    assert isinstance(result.error, DuplicateRecordError)
    assert result.duplicate_of == (existing,)
    assert backdoor.people_with_email("dupe@x.com") == [existing]


def test_duplicates_with_payload_need_no_lookup(
    org: LocalSalesforce, sf: SalesforceAdapter, backdoor: SalesforceBackdoor
) -> None:
    """With duplicateResult in the Collections error, the ids come from it directly."""
    existing = backdoor.seed_person(kind=PersonKind.LEAD, email="dupe@x.com")
    org.duplicate_rule = DuplicateRule(include_result_in_collections=True)
    (result,) = sf.create_people([_write("dupe@x.com")])
    assert result.duplicate_of == (existing,)
    assert _queries(org) == 0


def test_unknown_field_fails_only_its_records(
    org: LocalSalesforce, sf: SalesforceAdapter, backdoor: SalesforceBackdoor
) -> None:
    """A whole-request INVALID_FIELD fails the records naming the field; the rest are resent."""
    results = sf.create_people(
        [_write("a@x.com"), _write("b@x.com", Nope__c="x"), _write("c@x.com")]
    )
    assert [r.ok for r in results] == [True, False, True]
    assert isinstance(results[1].error, CRMAPIError)
    assert results[1].error.error_code == "INVALID_FIELD"
    assert results[1].error.fields == ("Nope__c",)
    assert len([p for _, p in org.calls if p.endswith("/composite/sobjects")]) == 2


Override = Callable[[list[dict[str, Any]]], "tuple[int, Any] | None"]


def _answering(
    org: LocalSalesforce, override: Override
) -> Callable[[httpx.Request], httpx.Response]:
    """The org, but a Collections call whose records ``override`` answers (status, body) gets
    that answer and does not run, alone or as a composite subrequest (the others of the
    composite answered by the org as if sent alone)."""

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/composite/sobjects"):
            answer = override(json.loads(request.content)["records"])
            if answer is not None:
                return httpx.Response(answer[0], json=answer[1])
        if path.endswith("/composite"):
            answers = []
            for sub in json.loads(request.content)["compositeRequest"]:
                answer = override(sub["body"]["records"])
                if answer is None:
                    alone = org.handle(
                        httpx.Request(
                            sub["method"],
                            org.instance_url + sub["url"],
                            headers={**request.headers, **sub.get("httpHeaders", {})},
                            json=sub["body"],
                        )
                    )
                    answer = (alone.status_code, alone.json())
                answers.append(
                    {
                        "body": answer[1],
                        "httpHeaders": {},
                        "httpStatusCode": answer[0],
                        "referenceId": sub["referenceId"],
                    }
                )
            return httpx.Response(200, json={"compositeResponse": answers})
        return org.handle(request)

    return handler


def _poisoned(org: LocalSalesforce) -> Callable[[httpx.Request], httpx.Response]:
    """A Collections create naming poison@x.com is refused whole with JSON_PARSER_ERROR."""
    error = [{"errorCode": "JSON_PARSER_ERROR", "message": "Unexpected token"}]
    return _answering(
        org,
        lambda records: (
            (400, error) if any(r.get("Email") == "poison@x.com" for r in records) else None
        ),
    )


def test_unidentifiable_whole_request_failure_is_bisected(org: LocalSalesforce) -> None:
    """If the failing record cannot be told from the message, the batch is halved (the halves
    travel together in one composite, each answered on its own)."""
    token = org.issue_token()
    with httpx.Client(transport=httpx.MockTransport(_poisoned(org))) as http:
        adapter = SalesforceAdapter(http, StaticToken(token, org.instance_url))
        emails = ["a@x.com", "b@x.com", "poison@x.com", "d@x.com", "e@x.com"]
        results = adapter.create_people([_write(e) for e in emails])
    assert [r.ok for r in results] == [True, True, False, True, True]
    assert results[2].error is not None
    assert results[2].error.retryable is False


def test_large_batches_are_split_by_200(
    org: LocalSalesforce, sf: SalesforceAdapter, backdoor: SalesforceBackdoor
) -> None:
    """201 tasks take two Collections subrequests of one composite and keep their order."""
    person = backdoor.seed_person(kind=PersonKind.LEAD, email="t@x.com")
    results = sf.create_tasks([_task(person, f"m-{n}") for n in range(201)])
    assert len(results) == 201
    assert all(r.ok for r in results)
    assert [p.rsplit("/", 1)[-1] for _, p in org.calls] == ["composite"]
    assert len(backdoor.task_markers(person)) == 201


def test_a_thousand_records_are_one_api_call(
    org: LocalSalesforce, sf: SalesforceAdapter, backdoor: SalesforceBackdoor
) -> None:
    """1,000 tasks are five Collections subrequests of one composite request: one round trip,
    one API call, results in order (REST API Developer Guide, "Composite": 25 subrequests, 5 of
    them Collections or queries; the whole request counts as one call)."""
    person = backdoor.seed_person(kind=PersonKind.LEAD, email="t@x.com")
    results = sf.create_tasks([_task(person, f"m-{n}") for n in range(1_000)])
    assert all(r.ok for r in results)
    assert org.api_used == 1
    markers = {backdoor.record(r.id or "")["Subject"] for r in results}  # type: ignore[index]
    assert len(markers) == 1_000
    assert [r.id for r in results] == sorted(r.id for r in results if r.id)  # created in order


def test_a_subrequest_refused_beside_landed_ones_is_sent_again(org: LocalSalesforce) -> None:
    """A Collections subrequest refused whole (a 4xx) while the others of its composite landed
    fails its records with a retryable error (nothing of them landed: the engine sends them
    again, alone); the others keep their results and nothing is raised."""
    denied = [{"errorCode": "INSUFFICIENT_ACCESS_OR_READONLY", "message": "no access"}]
    handler = _answering(
        org, lambda records: (403, denied) if records[0].get("Email") == "v200@x.com" else None
    )
    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        adapter = SalesforceAdapter(http, StaticToken(org.issue_token(), org.instance_url))
        results = adapter.create_people([_write(f"v{n}@x.com") for n in range(600)])
    assert all(r.ok for r in results[:200] + results[400:])
    refused = results[200:400]
    assert all(r.error is not None and r.error.retryable for r in refused)
    assert all(
        not SalesforceBackdoor(org).people_with_email(f"v{n}@x.com") for n in range(200, 400)
    )


def test_a_subrequest_that_may_have_landed_makes_the_call_ambiguous(org: LocalSalesforce) -> None:
    """A Collections subrequest answered 5xx may have saved some of its records: the whole
    call raises a retryable error (the engine reads the CRM before sending any of it again)."""
    broken = [{"errorCode": "UNKNOWN_EXCEPTION", "message": "An unexpected error occurred."}]
    handler = _answering(
        org, lambda records: (500, broken) if records[0].get("Email") == "v200@x.com" else None
    )
    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        adapter = SalesforceAdapter(http, StaticToken(org.issue_token(), org.instance_url))
        with pytest.raises(CRMAPIError) as raised:
            adapter.create_people([_write(f"v{n}@x.com") for n in range(600)])
    assert raised.value.retryable is True


@pytest.mark.parametrize("timeout", [False, True])
def test_a_later_round_trip_failing_after_one_landed(org: LocalSalesforce, timeout: bool) -> None:
    """1,100 records take two round trips. When the second fails after the first landed, a
    request that certainly never went out fails its records retryably (the first keep their
    results); one that may have gone out (a timeout) raises, so the call is read back."""
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 2:
            if timeout:
                raise httpx.ReadTimeout("timed out", request=request)
            raise httpx.ConnectError("refused", request=request)
        return org.handle(request)

    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        adapter = SalesforceAdapter(http, StaticToken(org.issue_token(), org.instance_url))
        writes = [_write(f"v{n}@x.com") for n in range(1_100)]
        if timeout:
            with pytest.raises(TransportError):
                adapter.create_people(writes)
            return
        results = adapter.create_people(writes)
    assert all(r.ok for r in results[:1_000])
    assert all(r.error is not None and r.error.retryable for r in results[1_000:])


def test_lock_contention_in_a_composite_fails_each_record_retryably(
    org: LocalSalesforce, sf: SalesforceAdapter, backdoor: SalesforceBackdoor
) -> None:
    """UNABLE_TO_LOCK_ROW on a composite of Collections hits their records, as it would a
    lone Collections call's: each fails retryably, nothing is saved."""
    person = backdoor.seed_person(kind=PersonKind.LEAD, email="t@x.com")
    org.schedule_fault("lock_row")
    results = sf.create_tasks([_task(person, f"m-{n}") for n in range(300)])
    assert all(
        isinstance(r.error, CRMAPIError) and r.error.error_code == "UNABLE_TO_LOCK_ROW"
        for r in results
    )
    assert all(r.error is not None and r.error.retryable for r in results)
    assert backdoor.task_markers(person) == []


def test_task_on_a_converted_lead_fails_alone(
    sf: SalesforceAdapter, backdoor: SalesforceBackdoor
) -> None:
    """A task whose WhoId is a converted Lead fails with CANNOT_UPDATE_CONVERTED_LEAD."""
    live = backdoor.seed_person(kind=PersonKind.LEAD, email="live@x.com")
    converted = backdoor.seed_person(kind=PersonKind.LEAD, email="conv@x.com", is_converted=True)
    results = sf.create_tasks([_task(live, "a"), _task(converted, "b")])
    assert results[0].ok
    assert isinstance(results[1].error, CRMAPIError)
    assert results[1].error.error_code == "CANNOT_UPDATE_CONVERTED_LEAD"
    assert results[1].error.retryable is False


def test_marker_in_a_custom_field(org: LocalSalesforce, client: httpx.Client) -> None:
    """With TaskMarker(field=...) the marker lives in that field and reconcile queries it."""
    org.add_field(
        "Task", FieldDef("Signals_Marker__c", "string", 255, "Signals Marker", custom=True)
    )
    marker = TaskMarker(field="Signals_Marker__c")
    adapter = SalesforceAdapter(
        client, StaticToken(org.issue_token(), org.instance_url), task_marker=marker
    )
    backdoor = SalesforceBackdoor(org, task_marker=marker)
    person = backdoor.seed_person(kind=PersonKind.LEAD, email="f@x.com")
    (created,) = adapter.create_tasks([_task(person, "conv'1:meeting:9")])
    assert backdoor.task_markers(person) == ["conv'1:meeting:9"]
    task = backdoor.record(created.id or "")
    assert task is not None
    assert task["Subject"] == "Meeting booked"
    answers = adapter.reconcile(
        [TaskByMarker(marker="conv'1:meeting:9"), TaskByMarker(marker="conv'1")]
    )
    assert answers == [created.id, None]


def test_subject_marker_reconcile_is_exact(
    sf: SalesforceAdapter, backdoor: SalesforceBackdoor
) -> None:
    """Subject markers match whole: 'conv-1' does not find the task of 'conv-10'."""
    person = backdoor.seed_person(kind=PersonKind.LEAD, email="s@x.com")
    (created,) = sf.create_tasks([_task(person, "conv-10")])
    assert sf.reconcile([TaskByMarker(marker="conv-1"), TaskByMarker(marker="conv-10")]) == [
        None,
        created.id,
    ]


def test_contacts_join_campaigns_and_reconcile(
    sf: SalesforceAdapter, backdoor: SalesforceBackdoor
) -> None:
    """Contacts join campaigns through ContactId; reconcile finds the membership."""
    campaign = backdoor.seed_campaign(name="C")
    contact = backdoor.seed_person(kind=PersonKind.CONTACT, email="c@x.com")
    write = CampaignMembershipWrite(
        key="m", campaign_id=campaign, person_id=contact, person_kind=PersonKind.CONTACT
    )
    (first,) = sf.add_to_campaign([write])
    (again,) = sf.add_to_campaign([write])
    assert first.created is True
    assert (again.ok, again.created, again.id) == (True, False, first.id)
    assert sf.reconcile([MembershipByPerson(campaign_id=campaign, person_id=contact[:15])]) == [
        first.id
    ]


def test_find_accounts_matches_hosts_not_substrings(
    sf: SalesforceAdapter, backdoor: SalesforceBackdoor
) -> None:
    """acme.com finds www.acme.com and eu.acme.com, never notacme.com."""
    main = backdoor.seed_account(domain="acme.com", name="Acme")
    sub = backdoor.seed_account(domain="eu.acme.com", name="Acme EU")
    backdoor.seed_account(domain="notacme.com", name="Other")
    (found,) = sf.find_accounts(["https://ACME.com/about"], ["Owner.Email"])
    assert {a.id for a in found} == {main, sub}
    assert all(a.fields["Owner.Email"] == "integration@local.example.com" for a in found)


def test_invalid_auth_object_is_refused(client: httpx.Client) -> None:
    """An auth argument that is not a flow is a ConfigurationError."""
    with pytest.raises(ConfigurationError):
        SalesforceAdapter(client, "token")  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_async_adapter_writes_and_reads(
    org: LocalSalesforce, async_sf: AsyncSalesforceAdapter, backdoor: SalesforceBackdoor
) -> None:
    """The async adapter creates, finds, tasks and reconciles like the sync one."""
    (created,) = await async_sf.acreate_people([_write("async@x.com")])
    (found,) = await async_sf.afind_people(["ASYNC@x.com"], ["LastName"])
    assert [r.id for r in found] == [created.id]
    assert found[0].fields == {"LastName": "L"}
    (task,) = await async_sf.acreate_tasks([_task(created.id or "", "async-m")])
    assert await async_sf.areconcile([TaskByMarker(marker="async-m")]) == [task.id]
    assert (await async_sf.adescribe("Lead")).get("Company") is not None


_EMAILS = st.one_of(
    st.emails(),
    st.text(
        alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
        min_size=1,
        max_size=40,
    ).map(lambda s: f"{s}@x.com"),
    st.from_regex(r"[a-z'\\\"+%_ ]{1,12}@[a-z]{1,8}\.com", fullmatch=True),
).filter(lambda e: e == e.strip() and e.lower() != "other@x.com")  # the decoy's email


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(email=_EMAILS)
def test_any_email_round_trips_through_a_lookup(email: str) -> None:
    """Whatever characters an email holds (quotes, backslashes, +, %, _), a lookup finds it."""
    assume(normalize_email(email) != "other@x.com")  # the decoy below is another person
    org = LocalSalesforce()
    backdoor = SalesforceBackdoor(org)
    lead = backdoor.seed_person(kind=PersonKind.LEAD, email=email)
    backdoor.seed_person(kind=PersonKind.LEAD, email="other@x.com")
    with httpx.Client(transport=org.transport()) as http:
        adapter = SalesforceAdapter(http, StaticToken(org.issue_token(), org.instance_url))
        (found,) = adapter.find_people([email])
    assert [r.id for r in found] == [lead]


@settings(max_examples=100, deadline=None)
@given(value=st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=50))
def test_quote_round_trips_through_the_soql_parser(value: str) -> None:
    """quote() produces a literal that the SOQL parser decodes back to the same string."""
    query = parse(f"SELECT Id FROM Lead WHERE Email = {quote(value)}")  # noqa: S608  # SOQL under test
    assert query.where is not None
    assert query.where.value.value == value  # type: ignore[union-attr]


def test_a_marker_too_long_for_subject_fails_alone(
    sf: SalesforceAdapter, backdoor: SalesforceBackdoor
) -> None:
    """A task whose marker cannot fit in Subject fails alone; its neighbour is created."""
    person = backdoor.seed_person(kind=PersonKind.LEAD, email="long@x.com")
    results = sf.create_tasks([_task(person, "m" * 300), _task(person, "short")])
    assert isinstance(results[0].error, CRMAPIError)
    assert results[0].error.error_code == "MARKER_TOO_LONG"
    assert results[0].error.retryable is False
    assert results[1].ok
    assert backdoor.task_markers(person) == ["short"]


@settings(max_examples=200, deadline=None)
@given(
    size=st.integers(0, 12),
    picked=st.lists(st.integers(0, 11), max_size=12, unique=True),
    run=st.booleans(),
    extra=st.integers(-1, 1),
)
def test_results_are_placed_by_their_indices(
    size: int, picked: list[int], run: bool, extra: int
) -> None:
    """A group's results land at its indices, a run of them or not, as one by one; lengths
    that disagree are refused, as zip(strict=True) refuses them."""
    from signals_crm.adapters.salesforce._flows import _place
    from signals_crm.core.crm import WriteResult

    indices = sorted(i for i in picked if i < size)
    if run and indices:
        indices = list(range(indices[0], indices[0] + len(indices)))
        indices = [i for i in indices if i < size]
    outcome = [WriteResult.success(f"r{n}") for n in range(max(len(indices) + extra, 0))]
    placed: list[WriteResult | None] = [None] * size
    expected: list[WriteResult | None] = [None] * size
    try:
        for i, result in zip(indices, outcome, strict=True):
            expected[i] = result
    except ValueError:
        with pytest.raises(ValueError, match="zip"):
            _place(placed, indices, outcome)
        return
    _place(placed, indices, outcome)
    assert placed == expected


@settings(max_examples=200, deadline=None)
@given(
    kinds=st.lists(st.sampled_from(["ok", "missing", "error"]), max_size=8),
)
def test_results_filled_and_told_free_of_errors_as_one_by_one(kinds: list[str]) -> None:
    """_filled keeps a call's results when none is missing and makes each missing one the
    lost failure; _no_errors tells results without an error, as reading each would."""
    from signals_crm.adapters.salesforce._flows import _LOST, _filled, _no_errors
    from signals_crm.core.crm import WriteResult

    failure = WriteResult.failure(CRMAPIError("no", error_code="X"))
    made = {"ok": WriteResult.success("00Q1"), "missing": None, "error": failure}
    results = [made[kind] for kind in kinds]
    filled = _filled(results)
    assert filled == [r if r is not None else WriteResult.failure(_LOST) for r in results]
    if None not in results:
        assert filled is results
    assert _no_errors(filled) == all(r.error is None for r in filled)
