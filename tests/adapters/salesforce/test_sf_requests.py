"""Golden tests of the pure Salesforce request builders and SOQL helpers."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote_plus

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signals_crm.adapters.salesforce._requests import (
    EncodedRecords,
    Endpoint,
    PersonJSON,
    TaskJSON,
    TaskMarker,
    campaign_member_json,
    campaign_member_record,
    campaign_members_json,
    collection_create_request,
    collection_subrequest,
    collection_update_request,
    composite_request,
    describe_request,
    in_queries,
    json_value,
    or_queries,
    person_record,
    person_record_json,
    person_update_json,
    person_update_record,
    query_more_request,
    query_request,
    query_subrequest,
    task_record,
    task_record_json,
)
from signals_crm.adapters.salesforce._soql import (
    DEFAULT_MAX_URL_LENGTH,
    HARD_URI_LIMIT,
    MAX_SOQL_LENGTH,
    chunk_in_clause,
    chunk_terms,
    encode_q,
    like_literal,
    quote,
)
from signals_crm.core.crm import CampaignMembershipWrite, PersonUpdate, PersonWrite, TaskWrite
from signals_crm.core.model import ActivityKind, PersonKind
from signals_crm.exceptions import ConfigurationError

EP = Endpoint("https://acme.my.salesforce.com/")


def body(request: httpx.Request) -> object:
    return json.loads(request.content)


def test_quote_escapes_reserved_characters() -> None:
    """Quotes, backslashes, double quotes and control characters are backslash-escaped."""
    assert quote("o'neil\\x\"y\n\r\t\b\f") == "'o\\'neil\\\\x\\\"y\\n\\r\\t\\b\\f'"
    assert quote("plain@x.com") == "'plain@x.com'"


def test_like_literal_escapes_wildcards_only_inside() -> None:
    """LIKE literals escape % and _ in the value but keep the wildcards added around it."""
    assert like_literal("50%_off", prefix="%", suffix="%") == "'%50\\%\\_off%'"


def test_quote_rejects_literals_over_4000_characters() -> None:
    """A string literal longer than Salesforce's 4,000 characters is refused up front."""
    with pytest.raises(ConfigurationError):
        quote("x" * 4001)
    assert len(quote("x" * 4000)) == 4002


def test_the_literal_limit_counts_escapes() -> None:
    """The 4,000 characters are counted after escaping: 3,999 letters and a quote are 4,001."""
    with pytest.raises(ConfigurationError, match="4001"):
        quote("x" * 3999 + "'")
    with pytest.raises(ConfigurationError, match="escaped"):
        quote("\n" * 2001)
    assert len(quote("x" * 3998 + "'")) == 4002


def test_the_like_limit_counts_escapes_and_wildcards() -> None:
    """A LIKE pattern's escaped wildcards and its added ones count toward the 4,000 too."""
    with pytest.raises(ConfigurationError):
        like_literal("x" * 3999, prefix="%", suffix="%")
    with pytest.raises(ConfigurationError):
        like_literal("_" * 2000, prefix="%")
    assert len(like_literal("x" * 3998, prefix="%", suffix="%")) == 4002


def test_encode_q_sends_plus_as_percent_2b() -> None:
    """A literal + is %2B and a space is +, so Salesforce never reads a + as a space."""
    assert encode_q("a+b c") == "a%2Bb+c"


_SOQL_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)) | st.sampled_from("'\\\"@+ ,.%_-~\n\t"),
    max_size=60,
)


@settings(max_examples=500, deadline=None)
@given(
    _SOQL_TEXT
    | st.text(alphabet=st.characters(max_codepoint=127), max_size=60)
    | st.lists(st.sampled_from(["', '", "'", ",", " ", "%", "+", "a@b", "("]), max_size=12).map(
        "".join
    )
)
def test_encode_q_is_quote_plus(text: str) -> None:
    """encode_q encodes a character throughout, or runs of characters, at a time: the same
    text as quote_plus."""
    assert encode_q(text) == quote_plus(text, safe="")


@settings(max_examples=300, deadline=None)
@given(
    statements=st.lists(_SOQL_TEXT, min_size=1, max_size=5),
    version=st.sampled_from(["61.0", 'x"\\é']),
    writes=st.booleans(),
)
def test_a_query_composite_is_the_json_of_its_plain_subrequests(
    statements: list[str], version: str, writes: bool
) -> None:
    """Query subrequests write their form-encoded URL into the composite body as it is: the
    body json.dumps makes of the same subrequests with the URL a plain string, byte for
    byte, with or without a subrequest of encoded records beside them."""
    endpoint = Endpoint("https://acme.my.salesforce.com/", api_version=version)
    subs: list[dict[str, Any]] = [
        query_subrequest(endpoint, soql, f"q{n}") for n, soql in enumerate(statements)
    ]
    plain: list[dict[str, Any]] = [
        {
            "method": "GET",
            "url": f"/services/data/v{version}/query?q={quote_plus(soql, safe='')}",
            "referenceId": f"q{n}",
        }
        for n, soql in enumerate(statements)
    ]
    if writes:
        record = {"attributes": {"type": "Task"}, "Subject": "s"}
        subs.append(
            collection_subrequest(
                endpoint,
                "POST",
                "composite/sobjects",
                EncodedRecords([json.dumps(record, separators=(",", ":"))]),
                auto_assign=None,
                reference="w",
            )
        )
        plain.append(
            collection_subrequest(
                endpoint, "POST", "composite/sobjects", [record], auto_assign=None, reference="w"
            )
        )
    expected = {"allOrNone": False, "compositeRequest": plain}
    got = composite_request(endpoint, subs).content
    assert got == json.dumps(expected, separators=(",", ":")).encode()


def test_query_request_golden() -> None:
    """A query is GET {base}/query?q=<form-encoded SOQL> with JSON accepted."""
    request = query_request(EP, "SELECT Id FROM Lead WHERE Email = 'jo+tag@x.com'")
    assert request.method == "GET"
    assert str(request.url) == (
        "https://acme.my.salesforce.com/services/data/v61.0/query?q=SELECT+Id+FROM+Lead+WHERE+"
        "Email+%3D+%27jo%2Btag%40x.com%27"
    )
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Sforce-Call-Options"] == "client=signals-crm"
    assert "Authorization" not in request.headers


def test_query_more_request_uses_the_locator_verbatim() -> None:
    """nextRecordsUrl is followed on the instance, unchanged and without parameters."""
    request = query_more_request(EP, "/services/data/v61.0/query/01gD0000002HU6KIAW-2000")
    assert str(request.url) == (
        "https://acme.my.salesforce.com/services/data/v61.0/query/01gD0000002HU6KIAW-2000"
    )


def test_describe_request_golden() -> None:
    """describe is GET sobjects/{object}/describe."""
    request = describe_request(EP, "Lead")
    assert str(request.url) == (
        "https://acme.my.salesforce.com/services/data/v61.0/sobjects/Lead/describe"
    )


def test_in_queries_chunk_by_encoded_url_length() -> None:
    """IN lists are split so each query URL fits the budget, and no value is lost or repeated."""
    emails = [f"user{n}+tag@example.com" for n in range(300)]
    queries = list(
        in_queries(
            EP,
            select=("Id", "Email"),
            object_name="Lead",
            field="Email",
            values=emails,
            max_url_length=2000,
        )
    )
    assert len(queries) > 1
    seen: list[str] = []
    for soql in queries:
        assert soql.startswith("SELECT Id, Email FROM Lead WHERE Email IN (")
        assert len(str(query_request(EP, soql).url)) <= 2000
        inner = soql.split("IN (", 1)[1].rstrip(")")
        seen.extend(v.strip().strip("'") for v in inner.split(","))
    assert seen == emails


def test_in_queries_default_budget_leaves_room_for_the_headers() -> None:
    """The default budget is the 16,384-byte URI limit less 2,048 bytes for the headers."""
    assert DEFAULT_MAX_URL_LENGTH == HARD_URI_LIMIT - 2048
    emails = [f"{'x' * 60}{n}@{'y' * 60}.example.com" for n in range(200)]
    queries = list(in_queries(EP, select=("Id",), object_name="Lead", field="Email", values=emails))
    assert len(queries) == 3  # 200 emails of 134 characters: about 14 KB of URL each chunk
    for soql in queries:
        assert len(str(query_request(EP, soql).url)) <= DEFAULT_MAX_URL_LENGTH


def test_two_hundred_ordinary_emails_are_one_query() -> None:
    """200 emails of 30 to 60 characters fit one query URL (they took two at 8,000 bytes)."""
    emails = [f"visitor.{n:03d}.{'a' * (n % 31)}@company-{n % 7}.example.com" for n in range(200)]
    assert all(30 <= len(e) <= 70 for e in emails)
    queries = list(in_queries(EP, select=("Id",), object_name="Lead", field="Email", values=emails))
    assert len(queries) == 1


def test_in_body_queries_chunk_by_statement_length_alone() -> None:
    """In a request body a statement may take 100,000 characters (Salesforce, "SOQL and SOSL
    Limits for Search Queries"), measured as written, not encoded, with no cap on values."""
    assert MAX_SOQL_LENGTH == 100_000
    emails = [f"o'neil+{n:04d}.{'x' * 40}@example.com" for n in range(2500)]
    queries = list(
        in_queries(
            EP,
            select=("Id", "Email"),
            object_name="Lead",
            field="Email",
            values=emails,
            in_body=True,
        )
    )
    assert len(queries) == 2  # 2,500 literals of 69 characters with their separators
    assert all(len(q) <= MAX_SOQL_LENGTH for q in queries)
    assert len(queries[0]) > MAX_SOQL_LENGTH - 70  # filled up to the limit, not by a count
    seen = [v for q in queries for v in q.split("IN (", 1)[1][:-1].split(", ")]
    assert seen == [quote(e) for e in emails]


def test_in_body_or_queries_honour_a_smaller_budget() -> None:
    """max_query_length bounds OR-joined statements in a body the same way."""
    conditions = [f"Website LIKE {like_literal(f'site{n}.example', prefix='%')}" for n in range(50)]
    queries = list(
        or_queries(
            EP,
            select=("Id",),
            object_name="Account",
            conditions=conditions,
            in_body=True,
            max_query_length=300,
        )
    )
    assert len(queries) > 1
    assert all(len(q) <= 300 for q in queries)
    assert sum(q.count("LIKE") for q in queries) == 50


def test_chunk_in_clause_caps_values_per_chunk() -> None:
    """At most max_values literals go in one IN list."""
    chunks = list(
        chunk_in_clause([str(n) for n in range(5)], before="X IN (", fixed_length=10, max_values=2)
    )
    assert chunks == ["X IN ('0', '1')", "X IN ('2', '3')", "X IN ('4')"]


def _chunked_one_by_one(values: list[str], **budget: Any) -> list[str] | str:
    """chunk_in_clause's statements as the general path makes them (each value quoted and
    measured), or the error's message."""
    before, after = budget.pop("before"), ")"
    try:
        return [
            before + ", ".join(chunk) + after
            for chunk in chunk_terms(
                (quote(v) for v in values), before=before, after=after, separator=", ", **budget
            )
        ]
    except ConfigurationError as exc:
        return str(exc)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(_SOQL_TEXT | st.text(alphabet="ab@.", max_size=30), max_size=40),
    st.integers(1, 400),
    st.sampled_from([None, 0, 1, 3, 200]),
    st.integers(0, 20),
)
def test_in_body_chunks_of_plain_values_are_those_of_the_general_path(
    values: list[str], max_length: int, max_values: int | None, fixed: int
) -> None:
    """Values needing no escape are chunked for the whole list at once (statement length,
    as in a composite body): the same statements as quoting and measuring each, and the same
    errors."""
    budget: dict[str, Any] = {
        "before": "SELECT Id FROM Lead WHERE Email IN (",
        "fixed_length": fixed,
        "max_url_length": max_length,
        "max_values": max_values,
        "encoded": False,
    }
    try:
        got: list[str] | str = list(chunk_in_clause(values, **budget))
    except ConfigurationError as exc:
        got = str(exc)
    assert got == _chunked_one_by_one(values, **budget)


def test_chunk_in_clause_refuses_a_value_that_cannot_fit() -> None:
    """A single value longer than the whole budget is a clear error, not an endless loop."""
    with pytest.raises(ConfigurationError):
        list(chunk_in_clause(["x" * 500], before="X IN (", fixed_length=10, max_url_length=100))


def test_or_queries_join_conditions() -> None:
    """OR queries join rendered conditions and split them by URL length too."""
    conditions = [f"Website LIKE '%d{n}.com%'" for n in range(3)]
    (soql,) = or_queries(EP, select=("Id",), object_name="Account", conditions=conditions)
    assert soql == (
        "SELECT Id FROM Account WHERE Website LIKE '%d0.com%' OR Website LIKE '%d1.com%' "
        "OR Website LIKE '%d2.com%'"
    )


def test_collection_create_request_golden() -> None:
    """Creates are POST composite/sobjects with allOrNone false and typed records."""
    write = PersonWrite(
        key="k1",
        kind=PersonKind.LEAD,
        email=" Jo@X.com ",
        fields={"LastName": "Doe", "Company": "Acme", "Email": "ignored@x.com"},
        owner_id="0055g0000000TIuAAM",
    )
    request = collection_create_request(EP, [person_record(write)], auto_assign=False)
    assert request.method == "POST"
    assert str(request.url).endswith("/services/data/v61.0/composite/sobjects")
    assert request.headers["Sforce-Auto-Assign"] == "FALSE"
    assert request.headers["Content-Type"] == "application/json"
    assert body(request) == {
        "allOrNone": False,
        "records": [
            {
                "attributes": {"type": "Lead"},
                "LastName": "Doe",
                "Company": "Acme",
                "Email": "Jo@X.com",
                "OwnerId": "0055g0000000TIuAAM",
            }
        ],
    }


def test_create_without_owner_sends_no_assignment_header() -> None:
    """Without an owner the org's assignment rules apply: no Sforce-Auto-Assign header."""
    write = PersonWrite(key="k", kind=PersonKind.LEAD, email="a@b.co", fields={})
    request = collection_create_request(EP, [person_record(write)])
    assert "Sforce-Auto-Assign" not in request.headers
    assert body(request)["records"][0] == {"attributes": {"type": "Lead"}, "Email": "a@b.co"}  # type: ignore[index]


def test_collection_update_request_golden() -> None:
    """Updates are PATCH composite/sobjects, each record with its id, never the owner."""
    update = PersonUpdate(
        key="u",
        record_id="00Q5g0000000VMdEAM",
        kind=PersonKind.LEAD,
        fields={"FirstName": "Jo", "OwnerId": "005x", "Birth__c": date(1990, 1, 2)},
    )
    request = collection_update_request(EP, [person_update_record(update)], auto_assign=False)
    assert request.method == "PATCH"
    assert request.headers["Sforce-Auto-Assign"] == "FALSE"
    assert body(request) == {
        "allOrNone": False,
        "records": [
            {
                "attributes": {"type": "Lead"},
                "id": "00Q5g0000000VMdEAM",
                "FirstName": "Jo",
                "Birth__c": "1990-01-02",
            }
        ],
    }


def test_collections_take_one_to_200_records() -> None:
    """An empty or oversized Collections call is refused before it is sent."""
    with pytest.raises(ConfigurationError):
        collection_create_request(EP, [])
    with pytest.raises(ConfigurationError):
        collection_create_request(EP, [{"attributes": {"type": "Lead"}}] * 201)


def _task(**overrides: object) -> TaskWrite:
    values: dict[str, object] = {
        "key": "t",
        "person_id": "00Q5g0000000VMdEAM",
        "person_kind": PersonKind.LEAD,
        "activity_kind": ActivityKind.CHAT_TRANSCRIPT,
        "subject": "Signals chat transcript",
        "body": "hello",
        "marker": "signals:conv-1:transcript",
        "activity_date": date(2024, 5, 17),
    }
    values.update(overrides)
    return TaskWrite(**values)  # type: ignore[arg-type]


def test_task_record_golden_with_subject_marker() -> None:
    """By default the core's marker, in brackets once, ends the Subject (never doubled)."""
    record = task_record(_task(owner_id="0055g0000000TIuAAM"), marker=TaskMarker())
    assert record == {
        "attributes": {"type": "Task"},
        "WhoId": "00Q5g0000000VMdEAM",
        "Subject": "Signals chat transcript [signals:conv-1:transcript]",
        "Description": "hello",
        "ActivityDate": "2024-05-17",
        "Status": "Completed",
        "Priority": "Normal",
        "OwnerId": "0055g0000000TIuAAM",
    }
    assert "signals:signals" not in record["Subject"]
    assert TaskMarker().read(record) == "signals:conv-1:transcript"


def test_task_subject_is_shortened_never_the_marker() -> None:
    """A long subject is cut to fit 255 characters with the marker tag intact."""
    marker = TaskMarker()
    subject = marker.subject("S" * 400, "m-1")
    assert len(subject) == 255
    assert subject.endswith(" [signals-marker:m-1]")
    assert marker.read({"Subject": subject}) == "m-1"


def test_subject_tags_read_back_as_the_marker_sent() -> None:
    """A core marker and a bare one never share a tag: reading a tag gives the marker sent."""
    marker = TaskMarker()
    for sent in ("signals:c-1:transcript", "c-1:transcript", "signals-marker:x"):
        subject = marker.subject("Chat", sent)
        assert marker.read({"Subject": subject}) == sent
    assert marker.read({"Subject": "Chat [other:thing]"}) is None


def test_task_body_is_truncated_to_the_limit() -> None:
    """The Description is cut to the configured maximum length."""
    record = task_record(_task(body="x" * 40), marker=TaskMarker(), max_body_length=10)
    assert record["Description"] == "x" * 10


def test_task_marker_in_a_custom_field() -> None:
    """With a marker field the bare marker goes there and the Subject stays clean."""
    marker = TaskMarker(field="Signals_Marker__c")
    record = task_record(_task(), marker=marker, status=None, priority=None)
    assert record["Subject"] == "Signals chat transcript"
    assert record["Signals_Marker__c"] == "signals:conv-1:transcript"
    assert "Status" not in record
    assert marker.where("a'b") == "Signals_Marker__c = 'a\\'b'"
    assert marker.read({"signals_marker__c": "m"}) == "m"


_FIELD_TEXT = st.text(max_size=12) | st.sampled_from(["Subject", "OwnerId", "Signals_Marker__c"])
# Markers as the core makes them, bare ones, and ones near and past the Subject's room.
_MARKERS = (
    _SOQL_TEXT
    | _SOQL_TEXT.map(lambda s: "signals:" + s)
    | st.integers(230, 260).map(lambda n: "signals:" + "m" * n)
    | st.integers(230, 260).map(lambda n: "x" * n)
)
_SUBJECTS = _SOQL_TEXT | st.integers(180, 300).map(lambda n: "Chat " * (n // 5) + " ")


@settings(max_examples=300, deadline=None)
@given(
    person_id=_SOQL_TEXT,
    subject=_SUBJECTS,
    body=_SOQL_TEXT,
    marker=_MARKERS,
    owner=st.none() | _SOQL_TEXT,
    day=st.none() | st.dates(),
    marker_field=st.none() | _FIELD_TEXT,
    status=st.none() | _SOQL_TEXT,
    priority=st.none() | _SOQL_TEXT,
    key_field=st.none() | _FIELD_TEXT,
    max_body=st.integers(0, 80),
)
def test_task_record_json_is_the_record_dumped(
    person_id: str,
    subject: str,
    body: str,
    marker: str,
    owner: str | None,
    day: date | None,
    marker_field: str | None,
    status: str | None,
    priority: str | None,
    key_field: str | None,
    max_body: int,
) -> None:
    """A Task written straight to JSON is json.dumps of task_record (with the sync key as a
    keyed create adds it), byte for byte, and fails where task_record fails."""
    task = _task(
        key="c-1:task:t",
        person_id=person_id,
        subject=subject,
        body=body,
        marker=marker,
        owner_id=owner,
        activity_date=day,
    )
    options: dict[str, Any] = {
        "marker": TaskMarker(field=marker_field),
        "max_body_length": max_body,
        "status": status,
        "priority": priority,
    }
    try:
        record = task_record(task, **options)
    except ConfigurationError:
        with pytest.raises(ConfigurationError):
            task_record_json(task, sync_key_field=key_field, **options)
        return
    if key_field is not None:
        record[key_field] = task.key
    written = task_record_json(task, sync_key_field=key_field, **options)
    assert written == json.dumps(record, separators=(",", ":"))


@settings(max_examples=200, deadline=None)
@given(
    tasks=st.lists(
        st.builds(
            lambda marker, subject, owner, day: _task(
                marker=marker, subject=subject, owner_id=owner, activity_date=day
            ),
            _MARKERS,
            _SUBJECTS,
            st.none() | st.just("005A"),
            st.none() | st.sampled_from([date(2024, 5, 17), date(2024, 5, 18)]),
        ),
        max_size=6,
    ),
    marker_field=st.none() | st.just("Signals_Marker__c"),
    key_field=st.none() | st.just("Signals_Sync_Key__c"),
)
def test_a_batch_of_task_json_is_each_task_alone(
    tasks: list[TaskWrite], marker_field: str | None, key_field: str | None
) -> None:
    """TaskJSON.all writes a batch (one writer's days and options shared by its tasks) as
    json.dumps of each task's record, and fails where task_record fails."""
    marker = TaskMarker(field=marker_field)
    try:
        records = [task_record(task, marker=marker) for task in tasks]
    except ConfigurationError:
        with pytest.raises(ConfigurationError):
            TaskJSON(marker=marker, sync_key_field=key_field).all(tasks)
        return
    if key_field is not None:
        for record, task in zip(records, tasks, strict=True):
            record[key_field] = task.key
    dumped = [json.dumps(record, separators=(",", ":")) for record in records]
    assert TaskJSON(marker=marker, sync_key_field=key_field).all(tasks) == dumped


_FIELD_VALUES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _SOQL_TEXT
    | st.dates()
    | st.datetimes(timezones=st.none() | st.timezones())
)
_FIELD_NAMES = _FIELD_TEXT | st.sampled_from(
    ["attributes", "Email", "email", "Id", "OwnerId", "Signals_Sync_Key__c", "Title"]
)


@settings(max_examples=300, deadline=None)
@given(
    fields=st.dictionaries(_FIELD_NAMES, _FIELD_VALUES, max_size=6),
    email=_SOQL_TEXT,
    owner=st.none() | _SOQL_TEXT,
    kind=st.sampled_from(PersonKind),
    key_field=st.none() | st.sampled_from(["Signals_Sync_Key__c", "Email", "title"]),
)
def test_person_json_is_the_record_dumped(
    fields: dict[str, Any],
    email: str,
    owner: str | None,
    kind: PersonKind,
    key_field: str | None,
) -> None:
    """A Lead create or update written straight to JSON is json.dumps of its record (a keyed
    create's: the key's field dropped, the key last), byte for byte."""
    write = PersonWrite(key="c-1:person", kind=kind, email=email, fields=fields, owner_id=owner)
    record = person_record(write)
    if key_field is not None:
        record = {k: v for k, v in record.items() if k.lower() != key_field.lower()}
        record[key_field] = write.key
    written = person_record_json(write, sync_key_field=key_field)
    assert written == json.dumps(record, separators=(",", ":"))
    update = PersonUpdate(key="u", record_id="00Q1", kind=kind, fields=fields)
    assert person_update_json(update) == json.dumps(
        person_update_record(update), separators=(",", ":")
    )


@settings(max_examples=200, deadline=None)
@given(
    batch=st.lists(
        st.tuples(
            st.dictionaries(_FIELD_NAMES, _FIELD_VALUES, max_size=4)
            | st.sampled_from([{"FirstName": "F", "Phone": "1"}, {"Phone": "1", "FirstName": 2}]),
            st.none() | st.just("005A"),
        ),
        min_size=1,
        max_size=5,
    ),
    email_field=st.sampled_from(["Email", "email", "OwnerId", "Title", "attributes"]),
    key_field=st.none() | st.sampled_from(["Signals_Sync_Key__c", "Title", "Email"]),
)
def test_a_batch_of_person_json_is_each_record_dumped(
    batch: list[tuple[dict[str, Any], str | None]], email_field: str, key_field: str | None
) -> None:
    """One PersonJSON writing a batch (the layouts of its writes' field names kept between
    them) writes each record as json.dumps of it, whatever the email and key fields."""
    write = PersonJSON(email_field=email_field, sync_key_field=key_field)
    for n, (fields, owner) in enumerate(batch):
        person = PersonWrite(
            key=f"c-{n}:person", kind=PersonKind.LEAD, email=" a@x ", fields=fields, owner_id=owner
        )
        record = person_record(person, email_field=email_field)
        if key_field is not None:
            record = {k: v for k, v in record.items() if k.lower() != key_field.lower()}
            record[key_field] = person.key
        assert write(person) == json.dumps(record, separators=(",", ":"))


@pytest.mark.parametrize("kind", [PersonKind.LEAD, PersonKind.CONTACT])
def test_campaign_member_json_is_the_record_dumped(kind: PersonKind) -> None:
    """A CampaignMember written straight to JSON is json.dumps of its record."""
    membership = CampaignMembershipWrite("m", '701x\u00e9"', "00Q\n1", kind)
    record = campaign_member_record(membership)
    assert campaign_member_json(membership) == json.dumps(record, separators=(",", ":"))


@settings(max_examples=200, deadline=None)
@given(
    members=st.lists(
        st.tuples(
            st.sampled_from(["701A", '701x\u00e9"']) | _SOQL_TEXT,
            _SOQL_TEXT,
            st.sampled_from(PersonKind),
        ),
        max_size=6,
    )
)
def test_a_batch_of_campaign_members_is_each_record_dumped(
    members: list[tuple[str, str, PersonKind]],
) -> None:
    """campaign_members_json writes each membership of a batch (a campaign's JSON kept for
    the next of the same) as json.dumps of its record."""
    memberships = [
        CampaignMembershipWrite(f"m{n}", campaign, person, kind)
        for n, (campaign, person, kind) in enumerate(members)
    ]
    assert campaign_members_json(memberships) == [
        json.dumps(campaign_member_record(m), separators=(",", ":")) for m in memberships
    ]


def test_a_composite_of_encoded_records_is_the_composite_of_their_dicts() -> None:
    """Collections subrequests of records already written as JSON make the same composite
    body, byte for byte, as those of the records' dicts, beside subrequests of dicts."""
    members = [
        CampaignMembershipWrite(f"m{n}", "701000000000001", f"00Q{n}\u00e9", PersonKind.LEAD)
        for n in range(3)
    ]
    records = [campaign_member_record(m) for m in members]
    texts = EncodedRecords([campaign_member_json(m) for m in members])
    path = "composite/sobjects"
    lead = [{"attributes": {"type": "Lead"}, "LastName": "L\u2603", "Email": "a@x.io"}]

    def composite(first: Any) -> bytes:
        subs = [
            collection_subrequest(EP, "POST", path, first, auto_assign=None, reference="w0"),
            collection_subrequest(EP, "POST", path, lead, auto_assign=False, reference="w1"),
        ]
        return composite_request(EP, subs, collate=False).content

    assert composite(texts) == composite(records)
    assert json.loads(composite(texts))["compositeRequest"][0]["body"]["records"] == records
    with pytest.raises(ConfigurationError):
        collection_subrequest(
            EP, "POST", path, EncodedRecords([]), auto_assign=None, reference="w0"
        )


def test_subject_marker_where_clause_escapes_like_wildcards() -> None:
    """The reconcile condition matches the tag literally, wildcards escaped."""
    assert TaskMarker().where("signals:c_1%") == "Subject LIKE '%[signals:c\\_1\\%]'"


def test_campaign_member_records() -> None:
    """CampaignMember creates name the campaign and the Lead or the Contact."""
    lead = CampaignMembershipWrite(
        key="m", campaign_id="7015g", person_id="00Q5g", person_kind=PersonKind.LEAD
    )
    contact = CampaignMembershipWrite(
        key="m", campaign_id="7015g", person_id="0035g", person_kind=PersonKind.CONTACT
    )
    assert campaign_member_record(lead) == {
        "attributes": {"type": "CampaignMember"},
        "CampaignId": "7015g",
        "LeadId": "00Q5g",
    }
    assert campaign_member_record(contact)["ContactId"] == "0035g"


def test_json_values_use_salesforce_formats() -> None:
    """Dates are YYYY-MM-DD and datetimes UTC with milliseconds and +0000."""
    assert json_value(date(2024, 5, 1)) == "2024-05-01"
    moment = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert json_value(moment) == "2024-05-01T12:00:00.123+0000"
    assert json_value(value=True) is True
