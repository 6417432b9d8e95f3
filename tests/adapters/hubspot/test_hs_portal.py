"""The local HubSpot speaks HubSpot's bodies, statuses and headers (raw HTTP against it)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hubspot_support import FakeClock

from signals_crm.core.model import PersonKind
from signals_crm.testing.hubspot import LocalHubSpot

AUTH = {"Authorization": "Bearer local-hubspot-token"}


@pytest.fixture
def http(portal: LocalHubSpot) -> Iterator[httpx.Client]:
    with httpx.Client(
        transport=portal.transport(), base_url="https://api.hubapi.com", headers=AUTH
    ) as client:
        yield client


def contact(http: httpx.Client, **props: str) -> httpx.Response:
    return http.post("/crm/v3/objects/contacts", json={"properties": props})


def search(http: httpx.Client, body: dict[str, Any], kind: str = "contacts") -> httpx.Response:
    return http.post(f"/crm/v3/objects/{kind}/search", json=body)


def eq(name: str, value: str, op: str = "EQ") -> dict[str, Any]:
    return {"filters": [{"propertyName": name, "operator": op, "value": value}]}


# -- objects -----------------------------------------------------------------------------------


def test_create_returns_201_with_string_properties_and_iso_dates(http: httpx.Client) -> None:
    """A create answers 201 SimplePublicObject: string values, hs_object_id = id, ISO dates."""
    answer = contact(http, email="A@Example.com", numemployees="5")
    assert answer.status_code == 201
    body = answer.json()
    assert body["properties"]["email"] == "a@example.com"
    assert body["properties"]["hs_object_id"] == body["id"]
    assert body["createdAt"].endswith("Z")
    assert body["archived"] is False
    assert "x-hubspot-correlation-id" in answer.headers


def test_duplicate_email_is_a_409_naming_the_existing_id(http: httpx.Client) -> None:
    """A second contact with the same email (any case) is refused with the documented body."""
    first = contact(http, email="dup@example.com").json()["id"]
    answer = contact(http, email="DUP@example.com")
    assert answer.status_code == 409
    body = answer.json()
    assert body["category"] == "CONFLICT"
    assert body["message"] == f"Contact already exists. Existing ID: {first}"
    assert body["correlationId"]


def test_batch_create_conflict_fails_the_whole_call(
    http: httpx.Client, portal: LocalHubSpot
) -> None:
    """One duplicate in a batch create refuses every input, creating nothing."""
    contact(http, email="dup@example.com")
    inputs = [
        {"properties": {"email": "new@example.com"}},
        {"properties": {"email": "dup@example.com"}},
    ]
    answer = http.post("/crm/v3/objects/contacts/batch/create", json={"inputs": inputs})
    assert answer.status_code == 409
    assert portal.backdoor.people_with_email("new@example.com") == []


def test_batch_create_with_trace_ids_answers_207_per_input(http: httpx.Client) -> None:
    """With objectWriteTraceIds, a bad input is reported per input and the rest are created."""
    inputs = [
        {"properties": {"email": "ok@example.com"}, "objectWriteTraceId": "a"},
        {"properties": {"email": "x@example.com", "missing": "1"}, "objectWriteTraceId": "b"},
    ]
    answer = http.post("/crm/v3/objects/contacts/batch/create", json={"inputs": inputs})
    assert answer.status_code == 207
    body = answer.json()
    assert [r["objectWriteTraceId"] for r in body["results"]] == ["a"]
    (error,) = body["errors"]
    assert error["category"] == "VALIDATION_ERROR"
    assert error["context"] == {"objectWriteTraceId": ["b"]}
    (problem,) = json.loads(error["message"].removeprefix("Property values were not valid: "))
    assert problem["error"] == "PROPERTY_DOESNT_EXIST"
    assert problem["name"] == "missing"


def test_batch_create_without_trace_ids_is_all_or_nothing(
    http: httpx.Client, portal: LocalHubSpot
) -> None:
    """Without trace ids a bad input fails the call with 400 and nothing is created."""
    inputs = [
        {"properties": {"email": "ok@example.com"}},
        {"properties": {"email": "not-an-email"}},
    ]
    answer = http.post("/crm/v3/objects/contacts/batch/create", json={"inputs": inputs})
    assert answer.status_code == 400
    assert "INVALID_EMAIL" in answer.json()["message"]
    assert portal.backdoor.people_with_email("ok@example.com") == []


def test_more_than_100_inputs_is_a_400(http: httpx.Client) -> None:
    """Batches are capped at 100 inputs."""
    inputs = [{"id": str(n)} for n in range(101)]
    answer = http.post("/crm/v3/objects/contacts/batch/read", json={"inputs": inputs})
    assert answer.status_code == 400
    assert answer.json()["category"] == "VALIDATION_ERROR"


def test_batch_read_reports_missing_ids_as_207(http: httpx.Client) -> None:
    """Missing inputs of a batch read come back as one OBJECT_NOT_FOUND error with their ids."""
    contact(http, email="here@example.com", firstname="H")
    answer = http.post(
        "/crm/v3/objects/contacts/batch/read",
        json={
            "inputs": [{"id": "HERE@example.com"}, {"id": "gone@example.com"}],
            "idProperty": "email",
            "properties": ["firstname", "jobtitle"],
        },
    )
    assert answer.status_code == 207
    body = answer.json()
    (found,) = body["results"]
    assert found["properties"]["firstname"] == "H"
    assert found["properties"]["jobtitle"] is None
    assert body["errors"][0]["category"] == "OBJECT_NOT_FOUND"
    assert body["errors"][0]["context"] == {"ids": ["gone@example.com"]}


def test_get_and_patch_by_email_and_404(http: httpx.Client) -> None:
    """idProperty=email works for GET and PATCH; a missing contact is a 404."""
    contact(http, email="p@example.com")
    patched = http.patch(
        "/crm/v3/objects/contacts/p%40example.com",
        params={"idProperty": "email"},
        json={"properties": {"firstname": "Pat"}},
    )
    assert patched.status_code == 200
    got = http.get(
        "/crm/v3/objects/contacts/P@example.com",
        params={"idProperty": "email", "properties": "firstname"},
    )
    assert got.json()["properties"]["firstname"] == "Pat"
    assert http.get("/crm/v3/objects/contacts/424242").status_code == 404


def test_batch_update_by_email_is_refused(http: httpx.Client) -> None:
    """batch/update takes record ids only, as HubSpot does."""
    answer = http.post(
        "/crm/v3/objects/contacts/batch/update",
        json={"inputs": [{"id": "a@b.com", "idProperty": "email", "properties": {}}]},
    )
    assert answer.status_code == 400
    assert "non-unique 0-1 property" in answer.json()["message"]


def test_batch_upsert_by_email_flags_new_records(http: httpx.Client) -> None:
    """batch/upsert by email creates or updates, flagging new=true/false."""
    contact(http, email="old@example.com")
    answer = http.post(
        "/crm/v3/objects/contacts/batch/upsert",
        json={
            "inputs": [
                {"id": "old@example.com", "idProperty": "email", "properties": {"firstname": "O"}},
                {"id": "new@example.com", "idProperty": "email", "properties": {"firstname": "N"}},
            ]
        },
    )
    assert answer.status_code == 200
    assert [r["new"] for r in answer.json()["results"]] == [False, True]


def test_lifecycle_backward_write_is_ignored_or_rejected(clock: FakeClock) -> None:
    """A backward lifecyclestage is ignored by default and refused when configured."""
    for mode, status in (("ignore", 200), ("reject", 400)):
        portal = LocalHubSpot(clock=clock, backward_lifecycle=mode)  # type: ignore[arg-type]
        person = portal.backdoor.seed_person(
            kind=PersonKind.CONTACT, email="c@example.com", fields={"lifecyclestage": "customer"}
        )
        with httpx.Client(transport=portal.transport(), base_url="https://x", headers=AUTH) as http:
            answer = http.patch(
                f"/crm/v3/objects/contacts/{person}",
                json={"properties": {"lifecyclestage": "lead"}},
            )
            cleared = http.patch(
                f"/crm/v3/objects/contacts/{person}", json={"properties": {"lifecyclestage": ""}}
            )
            again = http.patch(
                f"/crm/v3/objects/contacts/{person}",
                json={"properties": {"lifecyclestage": "lead"}},
            )
        assert answer.status_code == status
        assert cleared.status_code == 200
        assert again.status_code == 200
        assert (portal.backdoor.person_fields(person) or {})["lifecyclestage"] == "lead"


@pytest.mark.parametrize(
    ("props", "code"),
    [
        ({"numemployees": "1,000"}, "INVALID_INTEGER"),
        ({"hs_email_optout": "yes"}, "INVALID_BOOLEAN"),
        ({"date_of_birth": "17/05/2024"}, "INVALID_DATE"),
        ({"hs_lead_status": "new"}, "INVALID_OPTION"),
        ({"hubspot_owner_id": "999"}, "INVALID_OWNER_ID"),
        ({"createdate": "2024-01-01"}, "READ_ONLY_VALUE"),
    ],
)
def test_property_values_are_validated(
    http: httpx.Client, props: dict[str, str], code: str
) -> None:
    """Values are checked against the property's type, options and read-only flag."""
    answer = contact(http, email="v@example.com", **props)
    assert answer.status_code == 400
    assert code in answer.json()["message"]


def test_activities_need_a_timestamp_and_existing_targets(http: httpx.Client) -> None:
    """A task without hs_timestamp, or associated to a missing contact, is refused."""
    person = contact(http, email="t@example.com").json()["id"]
    assoc = [
        {
            "to": {"id": person},
            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 204}],
        }
    ]
    no_time = http.post(
        "/crm/v3/objects/tasks",
        json={"properties": {"hs_task_subject": "s"}, "associations": assoc},
    )
    assert no_time.status_code == 400
    missing = [
        {
            "to": {"id": "424242"},
            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 204}],
        }
    ]
    bad_target = http.post(
        "/crm/v3/objects/tasks",
        json={"properties": {"hs_timestamp": "2024-01-01T00:00:00Z"}, "associations": missing},
    )
    assert bad_target.status_code == 400
    wrong_type = [
        {
            "to": {"id": person},
            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 2}],
        }
    ]
    bad_type = http.post(
        "/crm/v3/objects/tasks",
        json={"properties": {"hs_timestamp": "2024-01-01T00:00:00Z"}, "associations": wrong_type},
    )
    assert bad_type.status_code == 400
    made = http.post(
        "/crm/v3/objects/tasks",
        json={"properties": {"hs_timestamp": "1704067200000"}, "associations": assoc},
    )
    assert made.status_code == 201
    got = http.get(
        f"/crm/v3/objects/tasks/{made.json()['id']}", params={"associations": "contacts"}
    )
    assert got.json()["associations"]["contacts"]["results"] == [
        {"id": person, "type": "task_to_contact"}
    ]


def test_both_path_families_are_served(http: httpx.Client) -> None:
    """/crm/v3/objects/... and /crm/objects/2026-03/... reach the same objects."""
    made = http.post(
        "/crm/objects/2026-03/contacts", json={"properties": {"email": "d@example.com"}}
    )
    assert made.status_code == 201
    assert http.get(f"/crm/v3/objects/contacts/{made.json()['id']}").status_code == 200
    assert http.get("/crm/owners/2026-03").status_code == 200
    assert http.get("/crm/properties/2026-03/contacts/email").json()["name"] == "email"


# -- search ------------------------------------------------------------------------------------


@pytest.fixture
def people(http: httpx.Client, clock: FakeClock) -> list[str]:
    rows = [
        ("ann@acme.com", "Ann", "10"),
        ("bob@acme.com", "Bob", "20"),
        ("cy@other.org", "Cy", "30"),
    ]
    ids = []
    for email, first, size in rows:
        ids.append(contact(http, email=email, firstname=first, numemployees=size).json()["id"])
        clock.sleep(1.0)  # distinct create dates
    return ids


@pytest.mark.parametrize(
    ("group", "expected"),
    [
        (eq("firstname", "ANN"), [0]),
        (eq("firstname", "ann", "NEQ"), [1, 2]),
        ({"filters": [{"propertyName": "numemployees", "operator": "GT", "value": "10"}]}, [1, 2]),
        ({"filters": [{"propertyName": "numemployees", "operator": "LTE", "value": "20"}]}, [0, 1]),
        (
            {
                "filters": [
                    {
                        "propertyName": "numemployees",
                        "operator": "BETWEEN",
                        "value": "15",
                        "highValue": "30",
                    }
                ]
            },
            [1, 2],
        ),
        (
            {
                "filters": [
                    {
                        "propertyName": "email",
                        "operator": "IN",
                        "values": ["ann@acme.com", "cy@other.org"],
                    }
                ]
            },
            [0, 2],
        ),
        (
            {"filters": [{"propertyName": "email", "operator": "IN", "values": ["ANN@acme.com"]}]},
            [],
        ),
        (
            {
                "filters": [
                    {"propertyName": "email", "operator": "CONTAINS_TOKEN", "value": "*@acme.com"}
                ]
            },
            [0, 1],
        ),
        ({"filters": [{"propertyName": "jobtitle", "operator": "NOT_HAS_PROPERTY"}]}, [0, 1, 2]),
        (
            {
                "filters": [
                    {"propertyName": "firstname", "operator": "HAS_PROPERTY"},
                    eq("firstname", "Cy")["filters"][0],
                ]
            },
            [2],
        ),
    ],
)
def test_search_operators(
    http: httpx.Client, people: list[str], group: dict[str, Any], expected: list[int]
) -> None:
    """The documented operators, case-insensitive EQ, lower-case-only IN, token wildcards."""
    answer = search(http, {"filterGroups": [group], "limit": 100})
    assert answer.status_code == 200
    assert [r["id"] for r in answer.json()["results"]] == [people[i] for i in expected]
    assert answer.json()["total"] == len(expected)


def test_search_groups_are_ored_and_paged(http: httpx.Client, people: list[str]) -> None:
    """Filter groups OR together; paging.next.after is an integer string; no rate headers."""
    body = {
        "filterGroups": [eq("firstname", "Ann"), eq("firstname", "Cy")],
        "limit": 1,
        "sorts": ["-createdate"],
    }
    first = search(http, body)
    assert first.json()["total"] == 2
    assert [r["id"] for r in first.json()["results"]] == [people[2]]
    after = first.json()["paging"]["next"]["after"]
    assert after.isdigit()
    second = search(http, {**body, "after": after})
    assert [r["id"] for r in second.json()["results"]] == [people[0]]
    assert "paging" not in second.json()
    assert "X-HubSpot-RateLimit-Max" not in first.headers


@pytest.mark.parametrize(
    "body",
    [
        {"filterGroups": [eq("firstname", "a")] * 6},
        {"filterGroups": [{"filters": [eq("firstname", "a")["filters"][0]] * 7}]},
        {"filterGroups": [{"filters": [eq("firstname", "a")["filters"][0]] * 6}] * 4},
        {"limit": 201},
        {"after": "9950", "limit": 100},
        {"after": "abc"},
        {"query": "x" * 3001},
        {"filterGroups": [{"filters": [{"propertyName": "a", "operator": "LIKE", "value": "x"}]}]},
    ],
)
def test_search_limits_are_validation_errors(http: httpx.Client, body: dict[str, Any]) -> None:
    """5 groups, 6 filters a group, 18 filters, 200 a page, 10,000 results, 3,000 characters."""
    answer = search(http, body)
    assert answer.status_code == 400
    assert answer.json()["category"] == "VALIDATION_ERROR"


def test_search_lag_hides_fresh_writes(clock: FakeClock) -> None:
    """With a search lag, new records become searchable only after it passes."""
    portal = LocalHubSpot(clock=clock, search_lag=2.0)
    with httpx.Client(transport=portal.transport(), base_url="https://x", headers=AUTH) as http:
        contact(http, email="lag@example.com")
        body = {"filterGroups": [eq("email", "lag@example.com")]}
        assert search(http, body).json()["total"] == 0
        clock.sleep(2.0)
        assert search(http, body).json()["total"] == 1


def test_free_text_query(http: httpx.Client, people: list[str]) -> None:
    """``query`` searches the object's default text properties."""
    answer = search(http, {"query": "bob"})
    assert [r["id"] for r in answer.json()["results"]] == [people[1]]


# -- rate limits, auth, oauth ------------------------------------------------------------------


def test_burst_window_answers_429_with_policy_and_headers(clock: FakeClock) -> None:
    """The 101st call in ten seconds is a 429 TEN_SECONDLY_ROLLING; headers count down."""
    portal = LocalHubSpot(clock=clock, send_retry_after=True)
    with httpx.Client(transport=portal.transport(), base_url="https://x", headers=AUTH) as http:
        answers = [http.get("/crm/v3/owners") for _ in range(101)]
    assert answers[0].headers["X-HubSpot-RateLimit-Remaining"] == "99"
    assert answers[0].headers["X-HubSpot-RateLimit-Max"] == "100"
    assert answers[0].headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert answers[99].headers["X-HubSpot-RateLimit-Remaining"] == "0"
    last = answers[100]
    assert last.status_code == 429
    assert last.json()["policyName"] == "TEN_SECONDLY_ROLLING"
    assert last.json()["errorType"] == "RATE_LIMIT"
    assert last.headers["Retry-After"] == "10"


def test_search_bucket_is_five_per_second(clock: FakeClock) -> None:
    """The sixth search within a second is a 429 SECONDLY; a second later it passes."""
    portal = LocalHubSpot(clock=clock)
    with httpx.Client(transport=portal.transport(), base_url="https://x", headers=AUTH) as http:
        answers = [search(http, {}) for _ in range(6)]
        clock.sleep(1.0)
        later = search(http, {})
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert answers[5].json()["policyName"] == "SECONDLY"
    assert later.status_code == 200


def test_daily_limit(clock: FakeClock) -> None:
    """Past the daily budget every call is a 429 DAILY."""
    portal = LocalHubSpot(clock=clock, daily_limit=2)
    with httpx.Client(transport=portal.transport(), base_url="https://x", headers=AUTH) as http:
        codes = [http.get("/crm/v3/owners").status_code for _ in range(3)]
        body = http.get("/crm/v3/owners").json()
    assert codes == [200, 200, 429]
    assert body["policyName"] == "DAILY"


def test_unknown_token_is_invalid_authentication(portal: LocalHubSpot) -> None:
    """A missing or unknown bearer token is a 401 INVALID_AUTHENTICATION."""
    with httpx.Client(transport=portal.transport(), base_url="https://x") as http:
        answer = http.get("/crm/v3/owners")
    assert answer.status_code == 401
    assert answer.json()["category"] == "INVALID_AUTHENTICATION"


def test_oauth_token_endpoint(portal: LocalHubSpot, clock: FakeClock) -> None:
    """The refresh grant returns a 30-minute bearer token that later expires with a 401."""
    portal.add_oauth_client("cid", "sec", "ref")
    with httpx.Client(transport=portal.transport(), base_url="https://x") as http:
        bad = http.post(
            "/oauth/v1/token",
            data={
                "grant_type": "refresh_token",
                "client_id": "cid",
                "client_secret": "sec",
                "refresh_token": "nope",
            },
        )
        good = http.post(
            "/oauth/v1/token",
            data={
                "grant_type": "refresh_token",
                "client_id": "cid",
                "client_secret": "sec",
                "refresh_token": "ref",
            },
        )
        token = good.json()["access_token"]
        ok = http.get("/crm/v3/owners", headers={"Authorization": f"Bearer {token}"})
        clock.sleep(1801)
        expired = http.get("/crm/v3/owners", headers={"Authorization": f"Bearer {token}"})
    assert bad.status_code == 400
    assert bad.json()["status"] == "BAD_REFRESH_TOKEN"
    assert good.json()["expires_in"] == 1800
    assert good.json()["token_type"] == "bearer"
    assert ok.status_code == 200
    assert "X-HubSpot-RateLimit-Daily" not in ok.headers
    assert expired.status_code == 401
    assert expired.json()["category"] == "EXPIRED_AUTHENTICATION"


# -- owners, properties, lists, faults ----------------------------------------------------------


def test_owners_filter_and_archived(http: httpx.Client, portal: LocalHubSpot) -> None:
    """Owners filter by email; archived owners appear only with archived=true, without userId."""
    door = portal.backdoor
    live = door.seed_user(email="Live@example.com", name="Li Ve")
    gone = door.seed_user(email="gone@example.com", active=False)
    by_email = http.get("/crm/v3/owners", params={"email": "live@example.com"}).json()["results"]
    assert [o["id"] for o in by_email] == [live]
    archived = http.get("/crm/v3/owners", params={"archived": "true"}).json()["results"]
    assert [o["id"] for o in archived] == [gone]
    assert archived[0]["userId"] is None
    assert archived[0]["userIdIncludingInactive"] is not None


def test_properties_have_realistic_metadata(http: httpx.Client) -> None:
    """Properties carry options with displayOrder, read-only flags and owner references."""
    props = {p["name"]: p for p in http.get("/crm/v3/properties/contacts").json()["results"]}
    assert [o["value"] for o in props["lifecyclestage"]["options"]][:2] == ["subscriber", "lead"]
    assert props["hs_object_id"]["modificationMetadata"]["readOnlyValue"] is True
    assert props["hubspot_owner_id"]["referencedObjectType"] == "OWNER"
    assert http.get("/crm/v3/properties/contacts/nope").status_code == 404
    assert http.get("/crm/v3/properties/nosuch").status_code == 400


def test_lists_api(http: httpx.Client, portal: LocalHubSpot) -> None:
    """Lists are created, take members (ignoring repeats), and report a record's lists."""
    person = contact(http, email="m@example.com").json()["id"]
    made = http.post(
        "/crm/v3/lists", json={"name": "L", "objectTypeId": "0-1", "processingType": "MANUAL"}
    )
    list_id = made.json()["list"]["listId"]
    first = http.put(f"/crm/v3/lists/{list_id}/memberships/add", json=[person, "424242"]).json()
    again = http.put(f"/crm/v3/lists/{list_id}/memberships/add", json=[person]).json()
    assert first == {
        "recordIdsMissing": ["424242"],
        "recordIdsRemoved": [],
        "recordsIdsAdded": [person],
    }
    assert again["recordsIdsAdded"] == []
    lists = http.get(f"/crm/v3/lists/records/0-1/{person}/memberships").json()["results"]
    assert [entry["listId"] for entry in lists] == [list_id]
    assert http.put("/crm/v3/lists/999/memberships/add", json=[person]).status_code == 404


def test_drop_before_commit_leaves_nothing(http: httpx.Client, portal: LocalHubSpot) -> None:
    """A connection dropped before the request took effect leaves the portal unchanged."""
    portal.faults.drop_next(after_commit=False)
    with pytest.raises(httpx.RemoteProtocolError):
        contact(http, email="never@example.com")
    assert portal.backdoor.people_with_email("never@example.com") == []


def test_latency_uses_the_injected_sleep(
    http: httpx.Client, portal: LocalHubSpot, clock: FakeClock
) -> None:
    """Latency is served through the portal's sleep, so tests spend no real time."""
    portal.faults.latency = 0.25
    http.get("/crm/v3/owners")
    assert clock.slept == pytest.approx(0.25)


def test_random_faults_are_reproducible(clock: FakeClock) -> None:
    """The same seed gives the same sequence of random 503s."""

    def run() -> list[int]:
        portal = LocalHubSpot(clock=clock, seed=7, burst_limit=None)
        portal.faults.error_rate = 0.3
        with httpx.Client(transport=portal.transport(), base_url="https://x", headers=AUTH) as http:
            return [http.get("/crm/v3/owners").status_code for _ in range(30)]

    first = run()
    assert first == run()
    assert 503 in first
    assert 200 in first


def test_gateway_error_is_html(http: httpx.Client, portal: LocalHubSpot) -> None:
    """A gateway fault answers an HTML page, as Cloudflare does."""
    portal.faults.gateway_error_next(502, path="/owners")
    answer = http.get("/crm/v3/owners")
    assert answer.status_code == 502
    assert answer.headers["content-type"] == "text/html"
    assert http.get("/crm/v3/owners").status_code == 200
