"""Upserts by the sync key: with ``sync_key_field`` new Leads and Tasks are sObject Collections
upserts by each write's idempotency key, so a replayed or late write never makes a second
record ("Upsert Records Using sObject Collections",
https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-sobjects-collections-upsert.html).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import date
from types import MappingProxyType

import httpx
import pytest
from hypothesis import HealthCheck, settings

from signals_crm.adapters.salesforce import (
    AsyncSalesforceAdapter,
    SalesforceAdapter,
    StaticToken,
    TaskMarker,
)
from signals_crm.core.crm import PersonWrite, TaskWrite
from signals_crm.core.model import ActivityKind, PersonKind
from signals_crm.exceptions import ConfigurationError, PermissionDeniedError, TransportError
from signals_crm.testing.conformance import (
    AdapterConformance,
    AsyncAdapterConformance,
    adapter_state_machine,
)
from signals_crm.testing.salesforce import FieldDef, LocalSalesforce, SalesforceBackdoor, to_18

KEY = "Signals_Sync_Key__c"
CREATE_FIELDS = MappingProxyType({"LastName": "Kit", "Company": "Kit Inc."})
MISSING_LEAD = to_18("00Q000000000000")
MISSING_CAMPAIGN = to_18("701000000000000")


def keyed_org() -> LocalSalesforce:
    return LocalSalesforce(
        sleep=lambda _seconds: None, external_id_fields=(f"Lead.{KEY}", f"Task.{KEY}")
    )


@pytest.fixture
def org() -> LocalSalesforce:
    """An org whose admin created the sync-key field on Lead and Task."""
    return keyed_org()


def _adapter(org: LocalSalesforce, client: httpx.Client) -> SalesforceAdapter:
    return SalesforceAdapter(
        client, StaticToken(org.issue_token(), org.instance_url), sync_key_field=KEY
    )


class TestUpsertingSalesforceConformance(AdapterConformance):
    """The whole kit, with upserts by the sync key (and the upsert scenarios it adds)."""

    create_fields = CREATE_FIELDS
    text_field = "FirstName"
    account_field = "Industry"
    missing_person_id = MISSING_LEAD
    missing_campaign_id = MISSING_CAMPAIGN

    @pytest.fixture
    def adapter(self, org: LocalSalesforce) -> Iterator[SalesforceAdapter]:
        with httpx.Client(transport=org.transport()) as client:
            yield _adapter(org, client)


class TestAsyncUpsertingSalesforceConformance(AsyncAdapterConformance):
    """The async adapter, with upserts by the sync key."""

    create_fields = CREATE_FIELDS
    text_field = "FirstName"
    account_field = "Industry"
    missing_person_id = MISSING_LEAD
    missing_campaign_id = MISSING_CAMPAIGN

    @pytest.fixture
    async def adapter(self, org: LocalSalesforce) -> AsyncIterator[AsyncSalesforceAdapter]:
        async with httpx.AsyncClient(transport=org.transport()) as client:
            yield AsyncSalesforceAdapter(
                client, StaticToken(org.issue_token(), org.instance_url), sync_key_field=KEY
            )


_orgs: dict[int, tuple[LocalSalesforce, httpx.Client]] = {}


def _new_adapter() -> SalesforceAdapter:
    org = keyed_org()
    client = httpx.Client(transport=org.transport())
    adapter = _adapter(org, client)
    _orgs[id(adapter)] = (org, client)
    return adapter


def _close(adapter: SalesforceAdapter) -> None:
    _, client = _orgs.pop(id(adapter))
    client.close()


_Machine = adapter_state_machine(
    _new_adapter,
    lambda adapter: SalesforceBackdoor(_orgs[id(adapter)][0]),
    text_field="FirstName",
    create_fields=CREATE_FIELDS,
    missing_person_id=MISSING_LEAD,
    close=_close,
)
TestUpsertingStateMachine = _Machine.TestCase
TestUpsertingStateMachine.settings = settings(
    max_examples=10,
    stateful_step_count=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _write(key: str, email: str, owner: str | None = None) -> PersonWrite:
    return PersonWrite(
        key=key, kind=PersonKind.LEAD, email=email, fields=dict(CREATE_FIELDS), owner_id=owner
    )


def _task(key: str, person: str) -> TaskWrite:
    return TaskWrite(
        key=key,
        person_id=person,
        person_kind=PersonKind.LEAD,
        activity_kind=ActivityKind.CHAT_TRANSCRIPT,
        subject="Signals chat transcript",
        body="Visitor: hi",
        marker=f"signals:{key}",
        activity_date=date(2026, 11, 20),
    )


def test_capabilities_say_creates_are_upserts(org: LocalSalesforce) -> None:
    """With ``sync_key_field`` the adapter declares upserted Leads and Tasks by that field;
    without it, plain creates."""
    with httpx.Client(transport=org.transport()) as client:
        caps = _adapter(org, client).capabilities
        plain = SalesforceAdapter(client, StaticToken("t", org.instance_url)).capabilities
    assert (caps.sync_key_field, caps.upserts_people, caps.upserts_tasks) == (KEY, True, True)
    assert caps.task_object == "Task"
    assert (plain.sync_key_field, plain.upserts_people, plain.upserts_tasks) == (
        None,
        False,
        False,
    )


def test_writes_are_collections_upserts_carrying_the_key(org: LocalSalesforce) -> None:
    """New Leads go as ``PATCH composite/sobjects/Lead/<field>`` with each record's key in the
    field (owner set: ``Sforce-Auto-Assign: FALSE``); Tasks as ``.../Task/<field>``."""
    seen: list[httpx.Request] = []

    def spy(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return org.handle(request)

    owner = SalesforceBackdoor(org).seed_user(email="o@x.io")
    with httpx.Client(transport=httpx.MockTransport(spy)) as client:
        sf = _adapter(org, client)
        (lead,) = sf.create_people([_write("c-1:person", "a@x.io", owner)])
        assert lead.ok
        assert lead.created is True
        (task,) = sf.create_tasks([_task("c-1:task:t", str(lead.id))])
        assert task.ok
    writes = [r for r in seen if r.method == "PATCH"]
    assert [r.url.path for r in writes] == [
        f"/services/data/v61.0/composite/sobjects/Lead/{KEY}",
        f"/services/data/v61.0/composite/sobjects/Task/{KEY}",
    ]
    assert writes[0].headers["Sforce-Auto-Assign"] == "FALSE"
    lead_body = json.loads(writes[0].content)
    assert lead_body["allOrNone"] is False
    assert lead_body["records"][0][KEY] == "c-1:person"
    assert json.loads(writes[1].content)["records"][0][KEY] == "c-1:task:t"


def test_a_replayed_create_names_the_same_records(org: LocalSalesforce) -> None:
    """The same Lead and Task writes sent twice: one Lead, one Task, ``created=False``."""
    door = SalesforceBackdoor(org)
    with httpx.Client(transport=org.transport()) as client:
        sf = _adapter(org, client)
        (first,) = sf.create_people([_write("c-2:person", "b@x.io")])
        (again,) = sf.create_people([_write("c-2:person", "b@x.io")])
        (task,) = sf.create_tasks([_task("c-2:task:t", str(first.id))])
        (task_again,) = sf.create_tasks([_task("c-2:task:t", str(first.id))])
    assert (again.id, again.created) == (first.id, False)
    assert (task_again.id, task_again.created) == (task.id, False)
    assert door.people_with_email("b@x.io") == [first.id]
    assert len(door.tasks(str(first.id))) == 1


def test_a_missing_field_stops_the_write_for_an_administrator() -> None:
    """Upserting by a field the org lacks (404 ``NOT_FOUND``) is a PermissionDeniedError naming
    the field: an administrator's to fix, never a dead letter per record."""
    org = LocalSalesforce(sleep=lambda _s: None)
    with httpx.Client(transport=org.transport()) as client:
        sf = _adapter(org, client)
        with pytest.raises(PermissionDeniedError, match=f"Lead.{KEY}"):
            sf.create_people([_write("c-3:person", "c@x.io")])
    assert SalesforceBackdoor(org).people_with_email("c@x.io") == []


def test_a_key_clash_from_a_racing_upsert_is_that_record() -> None:
    """Two upserts of one key racing inside Salesforce can end in ``DUPLICATE_VALUE`` on the
    key naming the record the other made: the adapter answers that record, not a failure."""
    other = to_18("00Q5g0000000abc")

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json=[
                {
                    "success": False,
                    "errors": [
                        {
                            "statusCode": "DUPLICATE_VALUE",
                            "message": f"duplicate value found: {KEY} duplicates value on "
                            f"record with id: {other}",
                            "fields": [KEY],
                        }
                    ],
                }
            ],
        )

    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        sf = SalesforceAdapter(
            client, StaticToken("t", "https://x.my.salesforce.com"), sync_key_field=KEY
        )
        (result,) = sf.create_people([_write("c-4:person", "d@x.io")])
    assert (result.ok, result.id, result.created) == (True, other, False)


@pytest.mark.parametrize("name", ["Email", "Signals Key__c", "__c", "", 42])
def test_a_malformed_field_name_is_refused(name: object) -> None:
    """``sync_key_field`` must be a custom field's API name (ending ``__c``)."""
    with pytest.raises(ConfigurationError, match="sync_key_field"):
        SalesforceAdapter(
            httpx.Client(),
            StaticToken("t", "https://x.my.salesforce.com"),
            sync_key_field=name,  # type: ignore[arg-type]
        )


def test_the_marker_field_cannot_be_the_sync_key() -> None:
    """The task marker and the sync key are different values: one field cannot hold both."""
    with pytest.raises(ConfigurationError, match="task marker"):
        SalesforceAdapter(
            httpx.Client(),
            StaticToken("t", "https://x.my.salesforce.com"),
            sync_key_field=KEY,
            task_marker=TaskMarker(field=KEY),
        )


def test_describe_reports_external_id_and_unique(org: LocalSalesforce) -> None:
    """The parsed schema carries ``externalId`` and ``unique`` (for preflight)."""
    with httpx.Client(transport=org.transport()) as client:
        schema = _adapter(org, client).describe("Lead")
    field = schema.get(KEY)
    assert field is not None
    assert (field.external_id, field.unique) == (True, True)
    email = schema.get("Email")
    assert email is not None
    assert (email.external_id, email.unique) == (False, False)


def test_a_field_without_external_id_or_unique_shows_in_describe() -> None:
    """A custom field an admin made without the External ID or Unique boxes parses as such."""
    org = LocalSalesforce(sleep=lambda _s: None)
    org.add_field("Lead", FieldDef(KEY, "string", 255, custom=True, unique=True))
    with httpx.Client(transport=org.transport()) as client:
        field = _adapter(org, client).describe("Lead").get(KEY)
    assert field is not None
    assert (field.external_id, field.unique) == (False, True)


def test_an_upsert_that_landed_before_the_connection_dropped_is_not_made_twice(
    org: LocalSalesforce,
) -> None:
    """The org's ``drop_after_commit`` fault applies to upserts: the Lead lands, the client
    sees a dropped connection (a retryable ``TransportError``), and the resend names that Lead
    with ``created=False``."""
    org.schedule_fault("drop_after_commit")
    with httpx.Client(transport=org.transport()) as client:
        sf = _adapter(org, client)
        with pytest.raises(TransportError):
            sf.create_people([_write("c-5:person", "e@x.io")])
        (again,) = sf.create_people([_write("c-5:person", "e@x.io")])
    assert again.ok
    assert again.created is False
    assert SalesforceBackdoor(org).people_with_email("e@x.io") == [again.id]
