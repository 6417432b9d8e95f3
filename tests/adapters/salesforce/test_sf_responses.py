"""Golden tests of the pure Salesforce response parsers."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signals_crm.adapters.salesforce import _responses as responses
from signals_crm.adapters.salesforce._bodies import SubResponse
from signals_crm.adapters.salesforce._responses import (
    ApiUsage,
    AppApiUsage,
    composite_successes,
    flatten_record,
    parse_collection_results,
    parse_composite,
    parse_datetime,
    parse_describe,
    parse_limit_info,
    parse_query,
    parse_token,
)
from signals_crm.core.model import FieldType
from signals_crm.exceptions import (
    AuthenticationError,
    CRMServerError,
    DuplicateRecordError,
    NotFoundError,
)


def test_parse_limit_info_org_usage() -> None:
    """api-usage=used/limit becomes an ApiUsage with the remaining share."""
    usage = parse_limit_info("api-usage=18/5000")
    assert usage == ApiUsage(used=18, limit=5000)
    assert usage is not None
    assert usage.remaining == 4982
    assert usage.fraction_used == pytest.approx(18 / 5000)


def test_parse_limit_info_per_app_usage() -> None:
    """The per-app quota pilot's part is parsed too, with the app name."""
    usage = parse_limit_info(
        "api-usage=25/5000; per-app-api-usage=17/250(appName=sample-connected-app)"
    )
    assert usage == ApiUsage(25, 5000, AppApiUsage(17, 250, "sample-connected-app"))


@pytest.mark.parametrize("header", [None, "", "garbage", "per-app-api-usage=1/2"])
def test_parse_limit_info_unreadable(header: str | None) -> None:
    """An absent or unreadable header yields None, never an error."""
    assert parse_limit_info(header) is None


def test_parse_datetime_salesforce_format() -> None:
    """Salesforce datetimes (+0000, Z, or none) become aware UTC datetimes."""
    expected = datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)
    assert parse_datetime("2024-05-01T12:00:00.250+0000") == expected
    assert parse_datetime("2024-05-01T14:00:00.250+02:00") == expected
    assert parse_datetime("2024-05-01T12:00:00Z") == expected.replace(microsecond=0)
    assert parse_datetime("not a date") is None
    assert parse_datetime(None) is None


@pytest.mark.parametrize(
    "text",
    [
        "2024-05-01T12:00:00.1234567+0000",  # more digits than microseconds
        "2024-05-01T12:00:00.000+0060",  # an offset's minutes past 59
        "2024-02-30T12:00:00.000+0000",
        "2024-05-01T24:00:00.000+0000",
    ],
)
def test_parse_datetime_refuses_what_is_not_a_time(text: str) -> None:
    """What is not a valid instant is refused (not read some other way)."""
    with pytest.raises(ValueError, match=r"does not match|out of range|must be in"):
        parse_datetime(text)


def test_parse_datetime_reads_short_fractions_and_offsets() -> None:
    """Fractions of one to six digits and offsets with or without a colon."""
    assert parse_datetime("2024-05-01T12:00:00.5-05:30") == datetime(
        2024, 5, 1, 17, 30, 0, 500000, tzinfo=UTC
    )
    assert parse_datetime("2024-05-01T12:00:00.123456+1400") == datetime(
        2024, 4, 30, 22, 0, 0, 123456, tzinfo=UTC
    )
    assert parse_datetime("2024-05-01T12:00:00") == datetime(2024, 5, 1, 12, tzinfo=UTC)


def test_flatten_record_nests_parents_as_dotted_keys() -> None:
    """attributes are dropped; parent objects become dotted keys; a null parent stays None."""
    record = {
        "attributes": {"type": "Account"},
        "Id": "001",
        "Owner": {"attributes": {"type": "User"}, "Email": "o@x.com", "IsActive": True},
        "SDR_Owner__r": None,
        "Contacts": {"totalSize": 0, "done": True, "records": []},
    }
    assert flatten_record(record) == {
        "Id": "001",
        "Owner.Email": "o@x.com",
        "Owner.IsActive": True,
        "SDR_Owner__r": None,
    }


def test_parse_query_page_with_next_records_url() -> None:
    """A page reports the whole totalSize and its nextRecordsUrl while not done."""
    response = httpx.Response(
        200,
        json={
            "totalSize": 3214,
            "done": False,
            "nextRecordsUrl": "/services/data/v61.0/query/01gD0000002HU6KIAW-2000",
            "records": [{"attributes": {"type": "Lead"}, "Id": "00Q1", "Email": "a@b.com"}],
        },
    )
    page = parse_query(response)
    assert page.total_size == 3214
    assert page.done is False
    assert page.next_records_url == "/services/data/v61.0/query/01gD0000002HU6KIAW-2000"
    assert page.records == ({"Id": "00Q1", "Email": "a@b.com"},)


def test_parse_query_raises_the_typed_error() -> None:
    """A failed query raises the mapped error (here INVALID_FIELD, not retryable)."""
    response = httpx.Response(
        400,
        json=[{"message": "No such column 'Foo' on entity 'Lead'", "errorCode": "INVALID_FIELD"}],
    )
    with pytest.raises(Exception, match="No such column") as raised:
        parse_query(response)
    assert getattr(raised.value, "retryable", None) is False


def test_parse_collection_results_per_record() -> None:
    """Each Collections item becomes a success or its typed error, in order."""
    response = httpx.Response(
        200,
        json=[
            {"id": "00Q1", "success": True, "errors": []},
            {
                "success": False,
                "errors": [
                    {"statusCode": "DUPLICATES_DETECTED", "message": "Use one of these records?"}
                ],
            },
            {"success": False, "errors": [{"statusCode": "ENTITY_IS_DELETED", "message": "gone"}]},
            {"success": False, "errors": [{"statusCode": "UNABLE_TO_LOCK_ROW", "message": "lock"}]},
        ],
    )
    results = parse_collection_results(response, 4)
    assert results[0].ok
    assert results[0].id == "00Q1"
    assert isinstance(results[1].error, DuplicateRecordError)
    assert results[1].error.status_code is None
    assert isinstance(results[2].error, NotFoundError)
    assert isinstance(results[3].error, CRMServerError)
    assert results[3].error.retryable is True


@pytest.mark.parametrize(
    "body",
    [
        [{"id": "00Q1", "success": True, "errors": [], "created": False}],
        [{"errorCode": "INVALID_FIELD", "message": "No such column 'Bad__c' on Lead"}],
        {"id": "00Q1", "success": True, "errors": [], "name": "Zoë \u2603"},
        "plain text",
        0,
        None,
    ],
)
def test_composite_subresponses_read_as_the_responses_they_were(body: object) -> None:
    """A subrequest's answer keeps its decoded body instead of encoding it to be decoded
    again; anything reading its bytes still gets those of ``httpx.Response(json=body)``."""
    status = 200 if body != 0 else 400
    answer = httpx.Response(
        200,
        json={
            "compositeResponse": [
                {
                    "body": body,
                    "httpHeaders": {"Retry-After": "3"},
                    "httpStatusCode": status,
                    "referenceId": "w0",
                }
            ]
        },
    )
    (sub,) = parse_composite(answer, ["w0"])
    reference = httpx.Response(status, headers={"Retry-After": "3"}, json=body)
    assert sub.status_code == status
    assert sub.headers["Retry-After"] == "3"
    assert sub.headers.get("Content-Type") == reference.headers.get("Content-Type")
    assert sub.content == reference.content
    assert sub.read() == reference.content
    assert sub.text == reference.text
    if body is not None:
        assert sub.json() == reference.json()


def test_collection_results_from_a_composite_as_from_their_own_request() -> None:
    """parse_collection_results reads a composite subresponse as it reads a whole answer."""
    items = [
        {"id": "00Q1", "success": True, "errors": [], "created": False},
        {"success": False, "errors": [{"statusCode": "UNABLE_TO_LOCK_ROW", "message": "lock"}]},
        "not a record",
    ]
    entry = {"body": items, "httpHeaders": {}, "httpStatusCode": 200, "referenceId": "w0"}
    (sub,) = parse_composite(httpx.Response(200, json={"compositeResponse": [entry]}), ["w0"])
    for upsert in (False, True):
        alone = parse_collection_results(httpx.Response(200, json=items), 3, upsert=upsert)
        within = parse_collection_results(sub, 3, upsert=upsert)
        assert [(r.id, r.created, type(r.error), str(r.error)) for r in within] == [
            (r.id, r.created, type(r.error), str(r.error)) for r in alone
        ]
    assert within[0].created is False


def test_parse_collection_results_count_mismatch_is_a_server_error() -> None:
    """Fewer results than records sent is a retryable server-side failure."""
    response = httpx.Response(200, json=[{"id": "1", "success": True, "errors": []}])
    with pytest.raises(CRMServerError):
        parse_collection_results(response, 2)


def test_parse_describe_maps_field_metadata() -> None:
    """describe fields map type, length, writability, required and picklist values."""
    response = httpx.Response(
        200,
        json={
            "name": "Lead",
            "fields": [
                {
                    "name": "LastName",
                    "type": "string",
                    "length": 80,
                    "createable": True,
                    "updateable": True,
                    "nillable": False,
                    "defaultedOnCreate": False,
                    "label": "Last Name",
                },
                {
                    "name": "OwnerId",
                    "type": "reference",
                    "length": 18,
                    "createable": True,
                    "updateable": True,
                    "nillable": False,
                    "defaultedOnCreate": True,
                },
                {
                    "name": "Status",
                    "type": "picklist",
                    "length": 255,
                    "createable": True,
                    "updateable": True,
                    "nillable": False,
                    "defaultedOnCreate": True,
                    "restrictedPicklist": True,
                    "picklistValues": [
                        {"active": True, "value": "Open"},
                        {"active": False, "value": "Old"},
                    ],
                },
                {"name": "Id", "type": "id", "createable": False, "updateable": False},
            ],
        },
    )
    schema = parse_describe(response)
    last = schema.get("lastname")
    assert last is not None
    assert (last.type, last.length, last.required, last.label) == (
        FieldType.STRING,
        80,
        True,
        "Last Name",
    )
    owner = schema.get("OwnerId")
    assert owner is not None
    assert owner.required is False
    assert owner.type is FieldType.REFERENCE
    status = schema.get("Status")
    assert status is not None
    assert status.picklist_values == ("Open",)
    assert status.restricted_picklist is True
    assert schema.required_fields == ("LastName",)


def test_parse_token_reads_instance_and_issued_at() -> None:
    """The token answer gives the token, the instance URL and issued_at (ms since epoch)."""
    response = httpx.Response(
        200,
        json={
            "access_token": "00Dxx!AQ",
            "instance_url": "https://acme.my.salesforce.com/",
            "issued_at": "1708058728442",
            "token_type": "Bearer",
            "refresh_token": "5Aep-rotated",
        },
    )
    token = parse_token(response)
    assert token.instance_url == "https://acme.my.salesforce.com"
    assert token.issued_at == datetime(2024, 2, 16, 4, 45, 28, 442000, tzinfo=UTC)
    assert token.refresh_token == "5Aep-rotated"
    assert "00Dxx" not in repr(token)
    assert "5Aep" not in repr(token)


def test_parse_token_error_is_an_authentication_error() -> None:
    """An OAuth error object (invalid_grant) becomes an AuthenticationError."""
    response = httpx.Response(
        400, json={"error": "invalid_grant", "error_description": "expired access/refresh token"}
    )
    with pytest.raises(AuthenticationError, match="expired access/refresh token") as raised:
        parse_token(response)
    assert raised.value.error_code == "invalid_grant"
    assert raised.value.retryable is False


def test_a_found_person_is_the_checked_record() -> None:
    """A Lead or Contact read back is built without PersonRecord's checks (its values are of
    their types by construction): equal to the record the checked constructor makes."""
    from signals_crm.adapters.salesforce._flows import SalesforceFlows
    from signals_crm.core.model import PersonKind, PersonRecord

    raw = flatten_record(
        {
            "attributes": {"type": "Contact"},
            "Id": "003A",
            "Email": "A@x.test",
            "IsConverted": False,
            "ConvertedContactId": None,
            "LastModifiedDate": "2024-05-01T12:00:00.000+0000",
            "OwnerId": "005A",
            "AccountId": "001A",
            "title": "CEO",
        }
    )
    got = SalesforceFlows._person(raw, PersonKind.CONTACT, ("Title", "Phone"))
    assert got == PersonRecord(
        id="003A",
        kind=PersonKind.CONTACT,
        email="A@x.test",
        fields={"Title": "CEO", "Phone": None},
        last_modified=parse_datetime("2024-05-01T12:00:00.000+0000"),
        owner_id="005A",
        account_id="001A",
    )
    assert type(got.fields) is dict


_RESULT_ITEMS = st.one_of(
    st.builds(
        lambda i: {"id": i, "success": True, "errors": []},
        st.text(max_size=4) | st.sampled_from(["00T1", 'a"b', "a\\b", "é", "\x01"]),
    ),
    st.just({"id": None, "success": False, "errors": [{"statusCode": "X", "message": "m"}]}),
    st.just({"id": "00T2", "success": True, "errors": [], "created": False}),
    st.just({"id": "00T3", "success": False, "errors": []}),
)
_ENTRIES = st.builds(
    lambda body, headers, status, ref: {
        "body": body,
        "httpHeaders": headers,
        "httpStatusCode": status,
        "referenceId": ref,
    },
    st.lists(_RESULT_ITEMS, max_size=4) | st.none(),
    st.just({}) | st.just({"Location": "x"}),
    st.sampled_from([200, 200, 200, 400]),
    st.sampled_from(["w0", "w1", "w2", 'w"0', "w\\1", ""]),
)


@settings(max_examples=400, deadline=None)
@given(
    entries=st.lists(_ENTRIES, max_size=4),
    separators=st.sampled_from([(",", ":"), (", ", ": "), (",", ": "), (" ,", ":")]),
    status=st.sampled_from([200, 200, 201]),
    count=st.integers(1, 3),
)
def test_composite_successes_is_the_full_reading(
    entries: list[dict[str, object]],
    separators: tuple[str, str],
    status: int,
    count: int,
) -> None:
    """Whenever a composite answer is taken for all-successes by its text, each subresponse
    reads as the full parse of the JSON reads it (results, and the body's JSON); the compact
    and json.dumps shapes of an all-successes answer are taken."""
    refs = [f"w{n}" for n in range(count)]
    text = json.dumps({"compositeResponse": entries}, separators=separators)
    response = httpx.Response(status, content=text.encode())
    fast = composite_successes(response, refs)
    all_ok = (
        status == 200
        and separators in ((",", ":"), (", ", ": "))
        and {str(e["referenceId"]) for e in entries} == set(refs)  # a ref twice: its last
        and all(
            e["httpStatusCode"] == 200
            and e["httpHeaders"] == {}
            and isinstance(e["body"], list)
            and all(
                set(r) == {"id", "success", "errors"}
                and r["success"] is True
                and isinstance(r["id"], str)
                and r["id"]
                and json.dumps(r["id"]) == f'"{r["id"]}"'  # written with no escape
                for r in e["body"]
            )
            for e in entries
        )
    )
    assert (fast is not None) == all_ok
    if fast is None:
        return
    full = parse_composite(response, refs)
    for quick, slow in zip(fast, full, strict=True):
        sub = SubResponse(200, {}, quick)
        assert sub.json() == slow.json()
        n = len(quick.ids)
        assert parse_collection_results(sub, n) == parse_collection_results(slow, n)
        assert parse_collection_results(SubResponse(200, {}, quick), n, upsert=True) == (
            parse_collection_results(slow, n, upsert=True)
        )
        with pytest.raises(CRMServerError):
            parse_collection_results(SubResponse(200, {}, quick), n + 1)


@pytest.mark.parametrize("separators", [(",", ":"), (", ", ": ")])
def test_an_all_successes_composite_is_read_by_its_text(separators: tuple[str, str]) -> None:
    """Salesforce's compact answer and the sandbox's json.dumps one give their ids in the
    order of the references asked for; an error in one record leaves it to the full parse."""
    entries = [
        {
            "body": [{"id": f"00T{ref}{n}", "success": True, "errors": []} for n in range(3)],
            "httpHeaders": {},
            "httpStatusCode": 200,
            "referenceId": ref,
        }
        for ref in ("w1", "w0")
    ]
    text = json.dumps({"compositeResponse": entries}, separators=separators)
    found = composite_successes(httpx.Response(200, content=text.encode()), ["w0", "w1"])
    assert found is not None
    assert [s.ids for s in found] == [
        ["00Tw00", "00Tw01", "00Tw02"],
        ["00Tw10", "00Tw11", "00Tw12"],
    ]
    entries[0]["body"][1] = {"success": False, "errors": [{"statusCode": "X", "message": "m"}]}  # type: ignore[index]
    text = json.dumps({"compositeResponse": entries}, separators=separators)
    assert composite_successes(httpx.Response(200, content=text.encode()), ["w0", "w1"]) is None


@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(min_value=datetime(1000, 1, 1)),  # noqa: DTZ001  # naive: its digits
    offset=st.sampled_from(["+0000", "-0000", "+0060", "+0100", "+2400", "+0000"]),
    digits=st.lists(st.sampled_from("0123456789"), min_size=21, max_size=21),
    other=st.sampled_from(["", "", "\u0663", "Z", " ", "9"]),
    at=st.integers(0, 27),
)
def test_parse_datetime_in_salesforce_shape_is_the_general_reading(
    moment: datetime, offset: str, digits: list[str], other: str, at: int
) -> None:
    """A datetime in Salesforce's own shape (``YYYY-MM-DDTHH:MM:SS.fff+0000``), read the
    short way, is what the general reading makes of it (or both refuse it alike), whatever
    its digits and offset; a character changed in it leaves it to the general reading."""
    text = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}{offset}"
    if other == "9":  # any digits at all
        text = "{}{}{}{}-{}{}-{}{}T{}{}:{}{}:{}{}.{}{}{}+{}{}{}{}".format(*digits)
    elif other:
        text = text[:at] + other + text[at + 1 :]

    def read() -> object:
        try:
            return parse_datetime(text)
        except ValueError as exc:
            return type(exc)

    quick = read()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(responses, "_SHAPE_LENGTH", -1)  # the general reading only
        assert read() == quick


_NAMES = st.sampled_from(["Id", "id", "ID", "Email", "email", "Owner.Email", "attributes", "X"])


@settings(max_examples=400, deadline=None)
@given(
    select=st.lists(_NAMES, max_size=4),
    names=st.lists(_NAMES, max_size=5),
    keys=st.lists(_NAMES, max_size=5),
    use_select=st.booleans(),
)
def test_a_query_reader_reads_what_get_reads(
    select: list[str], names: list[str], keys: list[str], use_select: bool
) -> None:
    """A query's record reader reads each name as _get does, for a record of just the
    selected fields (its one-itemgetter path) or of any other keys, selected fields alike
    but for case or not."""
    from signals_crm.adapters.salesforce._flows import _get, _reader

    record = {key: f"v{n}" for n, key in enumerate(select if use_select else keys)}
    assert list(_reader(select, names)(record)) == [_get(record, name) for name in names]


def _flattened(record: dict[str, object], prefix: str = "") -> dict[str, object]:
    """flatten_record as it was first written (the reference its quick paths must match)."""
    out: dict[str, object] = {}
    for key, value in record.items():
        if key == "attributes":
            continue
        if isinstance(value, dict):
            if "records" in value and "totalSize" in value:
                continue
            out.update(_flattened(value, f"{prefix}{key}."))
        elif value is None or isinstance(value, str | int | float | bool):
            out[f"{prefix}{key}"] = value
        else:
            out[f"{prefix}{key}"] = json.dumps(value, sort_keys=True)
    return out


_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=2),
    lambda inner: (
        st.lists(inner, max_size=2)
        | st.dictionaries(st.sampled_from(["attributes", "A", "B", "records", "totalSize"]), inner)
    ),
    max_leaves=6,
)


@settings(max_examples=400, deadline=None)
@given(record=st.dictionaries(st.sampled_from(["attributes", "Id", "Owner", "A.B"]), _VALUES))
def test_flatten_record_is_its_reference(record: dict[str, object]) -> None:
    """flatten_record keeps top keys as they are and skips attributes at every level: the
    reference's keys, values and order."""
    flat = flatten_record(record)
    assert list(flat.items()) == list(_flattened(record).items())
