"""Upsert by external ID in the local Salesforce: custom External ID fields, single upserts,
Collections upserts, and late commits that can no longer make a second record.

Pages followed:

- "Insert or Update (Upsert) a Record Using an External ID",
  https://developer.salesforce.com/docs/platform/api-rest/guide/dome-upsert.html
- "Upsert Records Using sObject Collections",
  https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-sobjects-collections-upsert.html
- "UpsertResult" (``created``),
  https://developer.salesforce.com/docs/atlas.en-us.api.meta/object_ref/sforce_api_calls_upsert_upsertresult.htm
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from simple_salesforce import Salesforce

from signals_crm.testing import LoopbackServer
from signals_crm.testing.late import LateCommits
from signals_crm.testing.salesforce import LocalSalesforce

KEY = "Signals_Sync_Key__c"
BASE = "/services/data/v61.0"


def _org() -> LocalSalesforce:
    return LocalSalesforce(external_id_fields=(f"Lead.{KEY}", f"Task.{KEY}"))


def _client(org: LocalSalesforce, transport: httpx.BaseTransport | None = None) -> httpx.Client:
    return httpx.Client(
        transport=transport or org.transport(),
        base_url=org.instance_url,
        headers={"Authorization": f"Bearer {org.issue_token()}"},
    )


def _lead(**extra: Any) -> dict[str, Any]:
    return {"LastName": "Lovelace", "Company": "Analytical", **extra}


def _records(org: LocalSalesforce, object_name: str) -> list[dict[str, Any]]:
    return list(org.data.records[object_name.lower()].values())


def test_describe_shows_the_custom_external_id_field() -> None:
    """A field an admin creates as Text, External ID and Unique describes as custom, ``__c``,
    ``externalId``, ``unique`` and ``idLookup`` (sObject Describe, ``fields[]``)."""
    org = _org()
    with _client(org) as http:
        for object_name in ("Lead", "Task"):
            fields = http.get(f"{BASE}/sobjects/{object_name}/describe").json()["fields"]
            field = next(f for f in fields if f["name"] == KEY)
            assert field["custom"] is True
            assert field["externalId"] is True
            assert field["unique"] is True
            assert field["idLookup"] is True
            assert field["type"] == "string"
            assert field["length"] == 255


def test_a_custom_field_name_must_end_in_c() -> None:
    """Custom fields' API names end with ``__c``: anything else is refused when defined."""
    with pytest.raises(ValueError, match="__c"):
        LocalSalesforce(external_id_fields=("Lead.SyncKey",))
    with pytest.raises(ValueError, match=r"Object\.Field__c"):
        LocalSalesforce(external_id_fields=("Signals_Sync_Key__c",))


def test_single_upsert_creates_then_updates() -> None:
    """PATCH by external ID: no match creates (201, ``created: true``), one match updates (200,
    ``created: false``) the same record; matching ignores case on a Unique field."""
    org = _org()
    with _client(org) as http:
        first = http.patch(f"{BASE}/sobjects/Lead/{KEY}/c-1:person", json=_lead(Email="a@x.io"))
        assert first.status_code == 201
        assert first.json() == {
            "id": first.json()["id"],
            "success": True,
            "errors": [],
            "created": True,
        }
        again = http.patch(f"{BASE}/sobjects/Lead/{KEY}/C-1:PERSON", json={"FirstName": "Ada"})
        assert again.status_code == 200
        assert again.json()["created"] is False
        assert again.json()["id"] == first.json()["id"]
        read = http.get(f"{BASE}/sobjects/Lead/{KEY}/c-1:person").json()
        assert read["FirstName"] == "Ada"
        assert read[KEY] == "c-1:person"
    assert len(_records(org, "Lead")) == 1


def test_single_upsert_before_v46_answers_as_it_did() -> None:
    """Before API version 46.0 an upsert that updates answers 204 with no body, and a create
    answers 201 without ``created``."""
    org = _org()
    with _client(org) as http:
        created = http.patch(f"/services/data/v45.0/sobjects/Lead/{KEY}/k", json=_lead())
        assert created.status_code == 201
        assert "created" not in created.json()
        updated = http.patch(f"/services/data/v45.0/sobjects/Lead/{KEY}/k", json=_lead())
        assert updated.status_code == 204
        assert updated.content == b""


def test_upsert_errors_as_documented() -> None:
    """An unknown or non-external-ID field is 404 ``NOT_FOUND``; ``Id`` or the key field in the
    body is 400; ``updateOnly=true`` with no match is 404; a record error is the usual array."""
    org = _org()
    with _client(org) as http:
        unknown = http.patch(f"{BASE}/sobjects/Lead/Nope__c/x", json=_lead())
        assert unknown.status_code == 404
        assert unknown.json()[0]["errorCode"] == "NOT_FOUND"
        not_key = http.patch(f"{BASE}/sobjects/Lead/LastName/x", json=_lead())
        assert not_key.status_code == 404
        in_body = http.patch(f"{BASE}/sobjects/Lead/{KEY}/x", json=_lead(**{KEY: "x"}))
        assert in_body.status_code == 400
        assert in_body.json()[0]["errorCode"] == "INVALID_FIELD"
        with_id = http.patch(f"{BASE}/sobjects/Lead/{KEY}/x", json=_lead(Id="00Q000000000001"))
        assert with_id.status_code == 400
        update_only = http.patch(f"{BASE}/sobjects/Lead/{KEY}/x?updateOnly=true", json=_lead())
        assert update_only.status_code == 404
        invalid = http.patch(f"{BASE}/sobjects/Lead/{KEY}/x", json=_lead(Email="not an email"))
        assert invalid.status_code == 400
        assert invalid.json()[0]["errorCode"] == "INVALID_EMAIL_ADDRESS"
    assert _records(org, "Lead") == []


def test_several_matches_answer_300_and_write_nothing() -> None:
    """A key that matches several records (a non-unique idLookup field such as ``Email``) is
    300 with the records' URLs, and nothing is written."""
    org = LocalSalesforce(standard_rules=False)
    with _client(org) as http:
        for _ in range(2):
            assert http.post(f"{BASE}/sobjects/Lead", json=_lead(Email="d@x.io")).status_code == 201
        answer = http.patch(f"{BASE}/sobjects/Lead/Email/d@x.io", json={"FirstName": "X"})
        assert answer.status_code == 300
        assert len(answer.json()) == 2
        assert all(url.startswith(f"{BASE}/sobjects/Lead/00Q") for url in answer.json())
        assert http.get(f"{BASE}/sobjects/Lead/Email/d@x.io").status_code == 300
    assert all(r.get("FirstName") is None for r in _records(org, "Lead"))


def test_delete_by_external_id() -> None:
    """DELETE by external ID deletes the one match (204); no match is 404."""
    org = _org()
    with _client(org) as http:
        http.patch(f"{BASE}/sobjects/Lead/{KEY}/gone", json=_lead())
        assert http.delete(f"{BASE}/sobjects/Lead/{KEY}/gone").status_code == 204
        assert http.delete(f"{BASE}/sobjects/Lead/{KEY}/gone").status_code == 404
        assert http.get(f"{BASE}/sobjects/Lead/{KEY}/gone").status_code == 404


def test_a_unique_field_refuses_a_second_record() -> None:
    """A plain create or update that would give a Unique field's value to a second record fails
    with ``DUPLICATE_VALUE`` naming the record that has it."""
    org = _org()
    with _client(org) as http:
        first = http.post(f"{BASE}/sobjects/Lead", json=_lead(**{KEY: "k1"})).json()["id"]
        second = http.post(f"{BASE}/sobjects/Lead", json=_lead(**{KEY: "K1"}))
        assert second.status_code == 400
        assert second.json()[0]["errorCode"] == "DUPLICATE_VALUE"
        assert first in second.json()[0]["message"]
        other = http.post(f"{BASE}/sobjects/Lead", json=_lead(**{KEY: "k2"})).json()["id"]
        clash = http.patch(f"{BASE}/sobjects/Lead/{other}", json={KEY: "k1"})
        assert clash.status_code == 400
        assert clash.json()[0]["errorCode"] == "DUPLICATE_VALUE"


def _upsert_body(*records: dict[str, Any], all_or_none: bool = False) -> dict[str, Any]:
    return {
        "allOrNone": all_or_none,
        "records": [{"attributes": {"type": "Lead"}, **r} for r in records],
    }


def test_collections_upsert_answers_upsert_results_in_order() -> None:
    """Collections upsert: 200 with one UpsertResult per record, in order, ``created`` true for
    the new record and false for the one matched by its key."""
    org = _org()
    with _client(org) as http:
        existing = http.patch(f"{BASE}/sobjects/Lead/{KEY}/old", json=_lead()).json()["id"]
        answer = http.patch(
            f"{BASE}/composite/sobjects/Lead/{KEY}",
            json=_upsert_body(_lead(**{KEY: "new"}), {KEY: "old", "FirstName": "Ada"}),
        )
        assert answer.status_code == 200
        new, old = answer.json()
        assert new["success"] is True
        assert new["created"] is True
        assert old == {"id": existing, "success": True, "errors": [], "created": False}
    assert len(_records(org, "Lead")) == 2


def test_collections_upsert_per_record_failures_and_all_or_none() -> None:
    """A bad record fails alone (``statusCode``), a key repeated within the request fails
    ``DUPLICATE_EXTERNAL_ID``; with ``allOrNone`` every other record is rolled back."""
    org = _org()
    with _client(org) as http:
        answer = http.patch(
            f"{BASE}/composite/sobjects/Lead/{KEY}",
            json=_upsert_body(
                _lead(**{KEY: "ok"}),
                _lead(**{KEY: "bad"}, Email="nope"),
                _lead(**{KEY: "twice"}),
                _lead(**{KEY: "twice"}),
            ),
        ).json()
        assert [r["success"] for r in answer] == [True, False, False, False]
        assert answer[1]["errors"][0]["statusCode"] == "INVALID_EMAIL_ADDRESS"
        assert answer[2]["errors"][0]["statusCode"] == "DUPLICATE_EXTERNAL_ID"
        rolled = http.patch(
            f"{BASE}/composite/sobjects/Lead/{KEY}",
            json=_upsert_body(
                _lead(**{KEY: "fresh"}), _lead(**{KEY: "bad"}, Email="nope"), all_or_none=True
            ),
        ).json()
        assert rolled[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
        assert rolled[1]["errors"][0]["statusCode"] == "INVALID_EMAIL_ADDRESS"
    assert sorted(r[KEY] for r in _records(org, "Lead")) == ["ok"]


def test_collections_upsert_refuses_malformed_requests() -> None:
    """400 for more than 200 records or a record of another type than the URI names; 404 for a
    field that is no external ID, and before API version 46.0 (the resource did not exist)."""
    org = _org()
    with _client(org) as http:
        too_many = _upsert_body(*[_lead(**{KEY: f"k{i}"}) for i in range(201)])
        answer = http.patch(f"{BASE}/composite/sobjects/Lead/{KEY}", json=too_many)
        assert answer.status_code == 400
        assert answer.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
        mixed = {"records": [{"attributes": {"type": "Task"}, KEY: "t", "Subject": "x"}]}
        answer = http.patch(f"{BASE}/composite/sobjects/Lead/{KEY}", json=mixed)
        assert answer.status_code == 400
        assert answer.json()[0]["errorCode"] == "INVALID_TYPE"
        no_key = http.patch(f"{BASE}/composite/sobjects/Lead/LastName", json=_upsert_body())
        assert no_key.status_code == 404
        old = http.patch(f"/services/data/v45.0/composite/sobjects/Lead/{KEY}", json=_upsert_body())
        assert old.status_code == 404
    assert _records(org, "Lead") == []


def test_collections_upsert_lock_fault_fails_each_record() -> None:
    """The ``lock_row`` fault fails every record of a Collections upsert with
    ``UNABLE_TO_LOCK_ROW`` (the org's fault kinds apply to upserts as to creates)."""
    org = _org()
    org.schedule_fault("lock_row")
    with _client(org) as http:
        answer = http.patch(
            f"{BASE}/composite/sobjects/Lead/{KEY}", json=_upsert_body(_lead(**{KEY: "a"}))
        ).json()
    assert answer[0]["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"
    assert _records(org, "Lead") == []


def test_a_late_committed_upsert_never_makes_a_second_record() -> None:
    """A Collections upsert that commits after the client gave up (``LateCommits``), sent again
    by the client, leaves exactly one Lead and one Task: the late one updates what the resend
    created."""
    org = _org()
    now = [0.0]
    late = LateCommits(org.transport(), rate=1.0, delay=5.0, clock=lambda: now[0])
    with _client(org, late) as http:
        lead_body = _upsert_body(_lead(**{KEY: "c-9:person"}, Email="late@x.io"))
        with pytest.raises(httpx.ReadTimeout):
            http.patch(f"{BASE}/composite/sobjects/Lead/{KEY}", json=lead_body)
        late.rate = 0.0
        resent = http.patch(f"{BASE}/composite/sobjects/Lead/{KEY}", json=lead_body).json()
        assert resent[0]["created"] is True
        lead_id = resent[0]["id"]
        task_body = {
            "records": [
                {
                    "attributes": {"type": "Task"},
                    KEY: "c-9:task:t",
                    "Subject": "Chat",
                    "WhoId": lead_id,
                }
            ]
        }
        late.rate = 1.0
        with pytest.raises(httpx.ReadTimeout):
            http.patch(f"{BASE}/composite/sobjects/Task/{KEY}", json=task_body)
        late.rate = 0.0
        assert http.patch(f"{BASE}/composite/sobjects/Task/{KEY}", json=task_body).json()[0][
            "success"
        ]
        now[0] = 10.0
        assert late.deliver() == 2  # both late requests commit now: they update, not create
    assert len(_records(org, "Lead")) == 1
    assert len(_records(org, "Task")) == 1


@settings(max_examples=30, deadline=None)
@given(
    keys=st.lists(st.sampled_from(["a", "A", "b", "c", "C"]), min_size=1, max_size=12),
    all_or_none=st.booleans(),
)
def test_upserts_keep_one_record_per_key(keys: list[str], all_or_none: bool) -> None:
    """Whatever sequence of upserts (single or Collections, keys in any case), the org holds
    exactly one Lead per distinct key, case-insensitively."""
    org = _org()
    with _client(org) as http:
        for n, key in enumerate(keys):
            if n % 2:
                http.patch(f"{BASE}/sobjects/Lead/{KEY}/{key}", json=_lead(FirstName=str(n)))
            else:
                body = _upsert_body(_lead(**{KEY: key}), all_or_none=all_or_none)
                http.patch(f"{BASE}/composite/sobjects/Lead/{KEY}", json=body)
    stored = sorted(str(r[KEY]).casefold() for r in _records(org, "Lead"))
    assert stored == sorted({k.casefold() for k in keys})


@pytest.fixture
def org() -> LocalSalesforce:
    """The org of the HTTPS fixtures (``sf_env``): with the sync-key fields."""
    return _org()


@pytest.fixture
def upsert_sf(org: LocalSalesforce, sf_env: LoopbackServer) -> Iterator[Salesforce]:
    """simple-salesforce logged in its default way (SOAP), CA bundle and proxy from ``sf_env``."""
    del sf_env
    org.add_login("ada@local.example.com", "correct-horse", "TOKEN123")
    with requests.Session() as http:
        yield Salesforce(
            username="ada@local.example.com",
            password="correct-horse",
            security_token="TOKEN123",
            session=http,
        )


def test_simple_salesforce_upserts_by_external_id(upsert_sf: Salesforce) -> None:
    """simple-salesforce's ``SFType.upsert("Field/value", data)`` answers 201 then 200 (its
    return value is the status unless ``raw_response=True``), and ``get_by_custom_id`` reads it;
    ``restful`` sends a Collections upsert."""
    assert upsert_sf.Lead.upsert(f"{KEY}/ss-1", _lead(Email="ss@x.io")) == 201
    raw = upsert_sf.Lead.upsert(f"{KEY}/ss-1", {"FirstName": "Ada"}, raw_response=True)
    assert raw.status_code == 200
    assert raw.json()["created"] is False
    assert upsert_sf.Lead.get_by_custom_id(KEY, "ss-1")["FirstName"] == "Ada"
    answer = upsert_sf.restful(
        f"composite/sobjects/Lead/{KEY}",
        method="PATCH",
        json=_upsert_body(_lead(**{KEY: "ss-2"}), {KEY: "ss-1", "Title": "Countess"}),
    )
    assert [r["created"] for r in answer] == [True, False]


def _custom_field(name: str, **metadata: Any) -> dict[str, Any]:
    return {
        "FullName": name,
        "Metadata": {
            "label": "Signals Sync Key",
            "type": "Text",
            "length": 255,
            "externalId": True,
            "unique": True,
            "caseSensitive": False,
            **metadata,
        },
    }


def test_a_custom_field_created_over_the_tooling_api() -> None:
    """``POST tooling/sobjects/CustomField`` (Tooling API "CustomField") adds the field: 201
    with an ``00N`` id, the describe shows it External ID and Unique, upserts key on it.

    https://developer.salesforce.com/docs/atlas.en-us.api_tooling.meta/api_tooling/tooling_api_objects_customfield.htm
    """
    org = LocalSalesforce()
    with _client(org) as http:
        made = http.post(f"{BASE}/tooling/sobjects/CustomField", json=_custom_field(f"Lead.{KEY}"))
        assert made.status_code == 201
        assert made.json()["id"].startswith("00N")
        assert made.json()["success"] is True
        fields = http.get(f"{BASE}/sobjects/Lead/describe").json()["fields"]
        field = next(f for f in fields if f["name"] == KEY)
        assert (field["externalId"], field["unique"], field["custom"]) == (True, True, True)
        upsert = http.patch(f"{BASE}/sobjects/Lead/{KEY}/k-1", json=_lead())
        assert upsert.status_code == 201


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (_custom_field(f"Nope.{KEY}"), "INVALID_FIELD"),
        (_custom_field("Lead.NoSuffix"), "INVALID_FIELD"),
        (_custom_field("Lead.Email__c", type="Date"), "FIELD_INTEGRITY_EXCEPTION"),
        (_custom_field("Lead.Flag__c", type="Checkbox"), "FIELD_INTEGRITY_EXCEPTION"),
        (_custom_field("Lead.Long__c", length=256), "FIELD_INTEGRITY_EXCEPTION"),
        ({"FullName": f"Lead.{KEY}"}, "REQUIRED_FIELD_MISSING"),
    ],
    ids=["unknown-object", "no-__c", "type-not-served", "checkbox-key", "too-long", "no-metadata"],
)
def test_tooling_custom_field_errors(body: dict[str, Any], code: str) -> None:
    """A bad CustomField create is a 400 and the org's schema is unchanged."""
    org = LocalSalesforce()
    with _client(org) as http:
        answer = http.post(f"{BASE}/tooling/sobjects/CustomField", json=body)
    assert answer.status_code == 400
    assert answer.json()[0]["errorCode"] == code


def test_a_field_cannot_be_created_twice() -> None:
    """The same field again is ``DUPLICATE_DEVELOPER_NAME``."""
    org = _org()
    with _client(org) as http:
        answer = http.post(
            f"{BASE}/tooling/sobjects/CustomField", json=_custom_field(f"Task.{KEY}")
        )
    assert answer.status_code == 400
    assert answer.json()[0]["errorCode"] == "DUPLICATE_DEVELOPER_NAME"


def test_simple_salesforce_creates_the_field_with_toolingexecute(upsert_sf: Salesforce) -> None:
    """simple-salesforce's ``toolingexecute("sobjects/CustomField", method="POST", data=...)``
    creates a field that its ``SFType.describe()`` then shows."""
    made = upsert_sf.toolingexecute(
        "sobjects/CustomField", method="POST", data=_custom_field("Contact.Signals_Key__c")
    )
    assert made["success"] is True
    fields = {f["name"]: f for f in upsert_sf.Contact.describe()["fields"]}
    assert fields["Signals_Key__c"]["externalId"] is True
