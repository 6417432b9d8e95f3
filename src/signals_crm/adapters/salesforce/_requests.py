"""Salesforce requests, built as ``httpx.Request`` values. Pure: no IO, no clock, no state.

What is sent (reference §§1-4, 9):

1. Everything lives under ``{instance_url}/services/data/v{version}/``; the adapter pins one
   version (default 61.0; ≥ 46.0 is needed for Collections results). Every request carries
   ``Accept: application/json`` and ``Sforce-Call-Options: client=signals-crm``; the
   ``Authorization`` header is added at send time, never here.
2. A query is ``GET query?q=<SOQL>`` with the SOQL form-encoded (``+`` → ``%2B``, see
   :mod:`._soql`), or the same URL as a subrequest in a ``/composite`` body. ``IN`` lists are
   chunked by encoded URL length for the first, by statement length (100,000 characters) for
   the second; later pages follow ``nextRecordsUrl`` verbatim, with no query parameters.
3. Writes go through sObject Collections: ``POST composite/sobjects`` (create) and
   ``PATCH composite/sobjects`` (update), at most 200 records, ``allOrNone: false`` so one bad
   record never sinks the others. Every record names its type in ``attributes``. Up to five
   such calls travel as the subrequests of one ``POST composite`` (one round trip, one API
   call), ``Sforce-Auto-Assign`` in each subrequest's ``httpHeaders``.
4. A Lead write whose owner ``signals_crm`` chose carries ``Sforce-Auto-Assign: FALSE`` so the
   org's assignment rules cannot overwrite it. Lead *updates* always carry it too: REST treats a
   missing header as ``TRUE``, and an update must never move the owner.
5. A Task is ``{WhoId, Subject, Description, ActivityDate, Status, Priority, OwnerId}``. Its
   source activity's marker is stored so a retry can find the task (see :class:`TaskMarker`):
   by default as a tag at the end of ``Subject``: the marker in brackets,
   ``[signals:<conversation>:<activity>]`` (``Subject`` is
   filterable; ``Description`` is a long text area, which SOQL cannot filter), or in a custom
   text field the org adds (``marker_field``, ideally a unique External ID).
6. A CampaignMember is ``{CampaignId, LeadId | ContactId}``; the campaign's default status
   applies.
"""

from __future__ import annotations

import json
import json.encoder
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote as url_quote

import attrs
import httpx

from signals_crm.adapters.salesforce._soql import (
    DEFAULT_MAX_URL_LENGTH,
    MAX_SOQL_LENGTH,
    chunk_in_clause,
    chunk_terms,
    encode_q,
    like_literal,
    quote,
)
from signals_crm.core.crm import CampaignMembershipWrite, PersonUpdate, PersonWrite, TaskWrite
from signals_crm.core.model import FieldValue, PersonKind
from signals_crm.exceptions import ConfigurationError, Problem

__all__ = [
    "COLLECTION_LIMIT",
    "DEFAULT_API_VERSION",
    "EncodedRecords",
    "Endpoint",
    "JSONText",
    "PersonJSON",
    "TaskJSON",
    "TaskMarker",
    "campaign_member_json",
    "campaign_member_record",
    "campaign_members_json",
    "collection_create_request",
    "collection_update_request",
    "describe_request",
    "in_queries",
    "json_value",
    "key_path",
    "object_for_kind",
    "or_queries",
    "person_record",
    "person_record_json",
    "person_update_json",
    "person_update_record",
    "query_more_request",
    "query_request",
    "record_subrequest",
    "task_record",
    "task_record_json",
]

DEFAULT_API_VERSION = "61.0"
COLLECTION_LIMIT = 200
SUBJECT_LENGTH = 255
_TAGGED_ROOM = SUBJECT_LENGTH - 1  # the subject's room beside a tag: less the tag and a space


def _strip_slash(value: str) -> str:
    return str(value).rstrip("/")


@attrs.frozen
class Endpoint:
    """Where requests go: the org's instance URL and the pinned API version."""

    instance_url: str = attrs.field(converter=_strip_slash)
    api_version: str = DEFAULT_API_VERSION
    client_name: str = "signals-crm"

    @property
    def base(self) -> str:
        """``{instance_url}/services/data/v{version}``."""
        return f"{self.instance_url}/services/data/v{self.api_version}"

    def headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {
            "Accept": "application/json",
            "Sforce-Call-Options": f"client={self.client_name}",
        }
        if extra:
            headers.update(extra)
        return headers


def object_for_kind(kind: PersonKind) -> str:
    """The sObject of a person kind: ``Lead`` or ``Contact``."""
    return "Lead" if kind is PersonKind.LEAD else "Contact"


def json_value(value: FieldValue) -> Any:
    """A field value as Salesforce JSON: dates ``YYYY-MM-DD``, datetimes in UTC with ms."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
            f"{aware.microsecond // 1000:03d}+0000"
        )
    if isinstance(value, date):
        return value.isoformat()
    return value


# ------------------------------------------------------------------------------------------------
# Queries


def query_request(endpoint: Endpoint, soql: str) -> httpx.Request:
    """``GET query?q=...`` with ``q`` form-encoded (``+`` as ``%2B``)."""
    url = f"{endpoint.base}/query?q={encode_q(soql)}"
    return httpx.Request("GET", url, headers=endpoint.headers())


def query_more_request(endpoint: Endpoint, next_records_url: str) -> httpx.Request:
    """``GET {instance_url}{nextRecordsUrl}`` exactly as Salesforce gave it."""
    if next_records_url.startswith(("http://", "https://")):
        url = next_records_url
    else:
        url = endpoint.instance_url + next_records_url
    return httpx.Request("GET", url, headers=endpoint.headers())


def in_queries(
    endpoint: Endpoint,
    *,
    select: Sequence[str],
    object_name: str,
    field: str,
    values: Sequence[str],
    where_extra: str | None = None,
    max_url_length: int = DEFAULT_MAX_URL_LENGTH,
    in_body: bool = False,
    max_query_length: int = MAX_SOQL_LENGTH,
) -> Iterator[str]:
    """SOQL statements ``SELECT ... FROM object WHERE field IN (...)``, chunked so each query's
    URL stays within ``max_url_length`` bytes once encoded, or (``in_body``: the queries travel
    in a ``/composite`` body) so each statement has at most ``max_query_length`` characters."""
    # Every value below is a quoted, escaped literal (see _soql.quote).
    before = f"SELECT {', '.join(select)} FROM {object_name} WHERE "  # noqa: S608
    if where_extra:
        before += f"({where_extra}) AND "
    before += f"{field} IN ("
    yield from chunk_in_clause(
        values, before=before, **_budget(endpoint, max_url_length, in_body, max_query_length)
    )


def _budget(
    endpoint: Endpoint, max_url_length: int, in_body: bool, max_query_length: int
) -> dict[str, Any]:
    """The chunking budget of a query sent in a URL, or in a request body (``in_body``)."""
    if in_body:
        return {
            "fixed_length": 0,
            "max_url_length": max_query_length,
            "max_values": None,
            "encoded": False,
        }
    return {"fixed_length": len(f"{endpoint.base}/query?q="), "max_url_length": max_url_length}


def or_queries(
    endpoint: Endpoint,
    *,
    select: Sequence[str],
    object_name: str,
    conditions: Sequence[str],
    max_url_length: int = DEFAULT_MAX_URL_LENGTH,
    in_body: bool = False,
    max_query_length: int = MAX_SOQL_LENGTH,
) -> Iterator[str]:
    """SOQL statements ``SELECT ... FROM object WHERE c1 OR c2 ...``, chunked by URL length
    (or by statement length, ``in_body``: see :func:`in_queries`)."""
    # Conditions are built from escaped literals (see _soql.quote / like_literal).
    before = f"SELECT {', '.join(select)} FROM {object_name} WHERE "  # noqa: S608
    for chunk in chunk_terms(
        conditions,
        before=before,
        after="",
        separator=" OR ",
        **_budget(endpoint, max_url_length, in_body, max_query_length),
    ):
        yield before + " OR ".join(chunk)


MAX_COMPOSITE_QUERIES = 5
"""A ``/composite`` request holds at most 25 subrequests, at most 5 of them queries or
Collections (REST API Developer Guide, "Composite"); the whole request is one API call."""
MAX_COMPOSITE_COLLECTIONS = MAX_COMPOSITE_QUERIES


def query_subrequest(endpoint: Endpoint, soql: str, reference: str) -> dict[str, str | JSONText]:
    """One ``GET query`` subrequest of a ``/composite`` request (its URL relative to the host).

    The URL goes as :class:`JSONText`: the form-encoded statement is ASCII letters, digits,
    ``_.-~``, ``%`` escapes and ``+`` only, which JSON writes as they are, so only its short
    path is escaped (a lookup's statements are most of its request's bytes)."""
    path = _json_string(f"/services/data/v{endpoint.api_version}/query?q=")
    return {
        "method": "GET",
        "url": JSONText((path[:-1], encode_q(soql), '"')),
        "referenceId": reference,
    }


def composite_request(
    endpoint: Endpoint,
    subrequests: Sequence[Mapping[str, Any]],
    *,
    all_or_none: bool = False,
    collate: bool | None = None,
) -> httpx.Request:
    """``POST composite`` with ``subrequests`` (which may refer to each other's answers);
    ``collate=False`` asks Salesforce to run them strictly in order (``collateSubrequests``)."""
    body: dict[str, Any] = {"allOrNone": all_or_none, "compositeRequest": list(subrequests)}
    if collate is not None:
        body["collateSubrequests"] = collate
    return httpx.Request(
        "POST",
        f"{endpoint.base}/composite",
        headers=endpoint.headers({"Content-Type": "application/json"}),
        content=_composite_json(body).encode(),
    )


@attrs.frozen
class JSONText:
    """A JSON value already written as ``json.dumps(value, separators=(",", ":"))`` writes
    it (compact, ASCII), as the pieces that make it, in order: a subrequest's value of this
    type goes in the composite body as it is (the ``body`` of :func:`collection_subrequest`
    of :class:`EncodedRecords`, the ``url`` of :func:`query_subrequest`), its pieces joined
    with the rest of the body at once."""

    parts: tuple[str, ...]

    @property
    def text(self) -> str:
        return "".join(self.parts)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


_json_string = json.encoder.encode_basestring_ascii  # what json.dumps writes a str with


def _json_value(value: Any) -> str:
    """``value`` as ``json.dumps(value, separators=(",", ":"))`` writes it (str the quick way)."""
    return _json_string(value) if type(value) is str else _dumps(value)


def _composite_json(body: Mapping[str, Any]) -> str:
    """``json.dumps(body, separators=(",", ":"))``, the subrequests' :class:`JSONText` values
    (a body, a query's URL) written in as they are: a subrequest holding one is written key by
    key (it has five at most), the others whole; every piece is joined once, at the end (a
    write's body is most of the request: it is copied once, not once for each level)."""
    subs = body["compositeRequest"]
    if not any(isinstance(value, JSONText) for sub in subs for value in sub.values()):
        return _dumps(body)
    parts: list[str] = []
    for key, value in body.items():
        parts.append(f"{',' if parts else '{'}{_dumps(key)}:")
        if key == "compositeRequest":
            parts.append("[")
            for n, sub in enumerate(value):
                if n:
                    parts.append(",")
                _subrequest_parts(sub, parts)
            parts.append("]")
        else:
            parts.append(_dumps(value))
    parts.append("}" if parts else "{}")
    return "".join(parts)


def _subrequest_parts(sub: Mapping[str, Any], parts: list[str]) -> None:
    """The pieces of ``json.dumps(sub, separators=(",", ":"))``, its :class:`JSONText`
    values' as they are, added to ``parts``."""
    if not any(isinstance(value, JSONText) for value in sub.values()):
        parts.append(_dumps(sub))
        return
    opening = "{"
    for key, value in sub.items():
        parts.append(f"{opening}{_dumps(key)}:")
        opening = ","
        if isinstance(value, JSONText):
            parts.extend(value.parts)
        else:
            parts.append(_dumps(value))
    parts.append("}")


def record_subrequest(
    endpoint: Endpoint,
    method: str,
    path: str,
    record: Mapping[str, Any],
    *,
    reference: str,
    auto_assign: bool | None = None,
) -> dict[str, Any]:
    """One single-record sObject write (``POST sobjects/Lead``, ``PATCH sobjects/Lead/{id}``,
    ``PATCH sobjects/Lead/{Field}/{value}``: ``path`` under the version) as a subrequest of a
    ``/composite`` request. The record's ``attributes`` (a Collections shape) are left out;
    its values may be references to earlier subrequests (``"@{p0.id}"``)."""
    sub: dict[str, Any] = {
        "method": method,
        "url": f"/services/data/v{endpoint.api_version}/{path}",
        "referenceId": reference,
        "body": {k: v for k, v in record.items() if k != "attributes"},
    }
    header = _assign_header(auto_assign)
    if header:
        sub["httpHeaders"] = header
    return sub


def key_path(object_name: str, key_field: str, value: str) -> str:
    """``sobjects/{object}/{key_field}/{value}``: the upsert of one record by an external ID,
    the value URL-encoded (``:``, ``@`` and ``/`` included)."""
    return f"sobjects/{object_name}/{key_field}/{url_quote(value, safe='')}"


def describe_request(endpoint: Endpoint, object_name: str) -> httpx.Request:
    """``GET sobjects/{object}/describe``."""
    return httpx.Request(
        "GET", f"{endpoint.base}/sobjects/{object_name}/describe", headers=endpoint.headers()
    )


# ------------------------------------------------------------------------------------------------
# Collections


@attrs.frozen
class EncodedRecords:
    """Collections records already written as JSON objects, one text a record, each as
    ``json.dumps(record, separators=(",", ":"))`` writes it (:func:`task_record_json`,
    :func:`campaign_member_json`): a composite subrequest's body is then put together from
    them, with no dict built or walked per record."""

    texts: Sequence[str]

    def __len__(self) -> int:
        return len(self.texts)


def _check_count(records: Sequence[Any] | EncodedRecords) -> None:
    if not records or len(records) > COLLECTION_LIMIT:
        raise ConfigurationError(
            [Problem("records", f"a Collections call takes 1 to {COLLECTION_LIMIT} records")]
        )


def collection_body(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A Collections body: 1 to 200 typed records, ``allOrNone: false``."""
    _check_count(records)
    return {"allOrNone": False, "records": [dict(r) for r in records]}


def _encoded_collection_body(records: EncodedRecords) -> JSONText:
    """:func:`collection_body` of records already encoded, as JSON text."""
    _check_count(records)
    return JSONText(('{"allOrNone":false,"records":[', ",".join(records.texts), "]}"))


def _assign_header(auto_assign: bool | None) -> dict[str, str]:
    if auto_assign is None:
        return {}
    return {"Sforce-Auto-Assign": "TRUE" if auto_assign else "FALSE"}


def _collection(
    method: str,
    endpoint: Endpoint,
    records: Sequence[Mapping[str, Any]],
    auto_assign: bool | None,
    path: str = "composite/sobjects",
) -> httpx.Request:
    body = collection_body(records)
    return httpx.Request(
        method,
        f"{endpoint.base}/{path}",
        headers=endpoint.headers(_assign_header(auto_assign)),
        json=body,
    )


def collection_request(
    endpoint: Endpoint,
    method: str,
    path: str,
    records: Sequence[Mapping[str, Any]],
    *,
    auto_assign: bool | None,
) -> httpx.Request:
    """One Collections call (``path`` under the version) sent alone."""
    return _collection(method, endpoint, records, auto_assign, path)


def collection_subrequest(
    endpoint: Endpoint,
    method: str,
    path: str,
    records: Sequence[Mapping[str, Any]] | EncodedRecords,
    *,
    auto_assign: bool | None,
    reference: str,
) -> dict[str, Any]:
    """One Collections call (``path`` under the version, such as ``composite/sobjects``) as a
    subrequest of a ``/composite`` request; ``Sforce-Auto-Assign`` goes in its own
    ``httpHeaders`` (subrequests may carry any header of their resource but ``Accept``,
    ``Authorization`` and ``Content-Type``: REST API Developer Guide, "Composite"). Records
    already encoded (:class:`EncodedRecords`) make a :class:`JSONText` body."""
    sub: dict[str, Any] = {
        "method": method,
        "url": f"/services/data/v{endpoint.api_version}/{path}",
        "referenceId": reference,
        "body": _encoded_collection_body(records)
        if isinstance(records, EncodedRecords)
        else collection_body(records),
    }
    header = _assign_header(auto_assign)
    if header:
        sub["httpHeaders"] = header
    return sub


def collection_create_request(
    endpoint: Endpoint, records: Sequence[Mapping[str, Any]], *, auto_assign: bool | None = None
) -> httpx.Request:
    """``POST composite/sobjects`` with ``allOrNone: false``; ``auto_assign=False`` sends
    ``Sforce-Auto-Assign: FALSE`` (``None`` sends no header)."""
    return _collection("POST", endpoint, records, auto_assign)


def collection_update_request(
    endpoint: Endpoint, records: Sequence[Mapping[str, Any]], *, auto_assign: bool | None = None
) -> httpx.Request:
    """``PATCH composite/sobjects`` with ``allOrNone: false``; each record carries its ``id``."""
    return _collection("PATCH", endpoint, records, auto_assign)


def collection_upsert_request(
    endpoint: Endpoint,
    object_name: str,
    key_field: str,
    records: Sequence[Mapping[str, Any]],
    *,
    auto_assign: bool | None = None,
) -> httpx.Request:
    """``PATCH composite/sobjects/{object}/{key_field}`` with ``allOrNone: false``: each record
    created, or updated when its ``key_field`` value matches one (REST API Developer Guide,
    "Upsert Records Using sObject Collections", v46.0+)."""
    return _collection(
        "PATCH", endpoint, records, auto_assign, f"composite/sobjects/{object_name}/{key_field}"
    )


def person_record(write: PersonWrite, *, email_field: str = "Email") -> dict[str, Any]:
    """A Lead/Contact create record: the fields, ``PersonWrite.email`` as the email (it wins
    over a value in ``fields``), and ``OwnerId`` when an owner was chosen."""
    record: dict[str, Any] = {"attributes": {"type": object_for_kind(write.kind)}}
    for name, value in write.fields.items():
        if name.lower() in (email_field.lower(), "id", "ownerid"):
            continue
        record[name] = json_value(value)
    record[email_field] = write.email.strip()
    if write.owner_id:
        record["OwnerId"] = write.owner_id
    return record


def _fields_json(fields: Mapping[str, FieldValue], skip: tuple[str, ...]) -> str:
    """``,"Name":value`` for each field whose lowered name is not in ``skip``, each value
    as :func:`json_value` makes it and ``json.dumps`` writes it. The fields' layout (which
    are kept, and their ``,"Name":``) is worked out once per set of names, in order (a sync
    writes the same few); the values are then read by one ``itemgetter`` and written in one
    pass of C (a value not a ``str`` sends them through :func:`_field_json`)."""
    key = (tuple(fields), skip)
    layout = _LAYOUTS.get(key)
    if layout is None:
        layout = _layout(*key)
        if len(_LAYOUTS) < _LAYOUTS_KEPT:
            _LAYOUTS[key] = layout
    pick, heads = layout
    values = pick(fields)
    try:
        return "".join(map(operator.add, heads, map(_json_string, values)))  # type: ignore[arg-type]  # a value not a str raises TypeError
    except TypeError:  # a value that is not a str (a str subclass is written as one)
        return "".join(map(operator.add, heads, map(_field_json, values)))


def _field_json(value: FieldValue) -> str:
    """A field value as :func:`json_value` makes it and ``json.dumps`` writes it."""
    return _json_string(value) if type(value) is str else _dumps(json_value(value))


def _layout(
    names: tuple[str, ...], skip: tuple[str, ...]
) -> tuple[Callable[[Mapping[str, FieldValue]], tuple[FieldValue, ...]], tuple[str, ...]]:
    """The reader of the values of ``names`` kept (lowered, not in ``skip``) and their JSON
    keys, ``,"Name":`` each, in the order of ``names``."""
    kept = [name for name in names if name.lower() not in skip]
    heads = tuple(f",{_json_string(name)}:" for name in kept)
    if len(kept) > 1:
        return operator.itemgetter(*kept), heads
    return (lambda fields: tuple(fields[name] for name in kept)), heads


_LAYOUTS: dict[
    tuple[tuple[str, ...], tuple[str, ...]],
    tuple[Callable[[Mapping[str, FieldValue]], tuple[FieldValue, ...]], tuple[str, ...]],
] = {}
"""The layouts :func:`_fields_json` worked out, by field names and names skipped."""
_LAYOUTS_KEPT = 4096


_OBJECT_HEADS = {
    kind: '{"attributes":{"type":' + _json_string(object_for_kind(kind)) + "}"
    for kind in PersonKind
}


def person_record_json(
    write: PersonWrite, *, email_field: str = "Email", sync_key_field: str | None = None
) -> str:
    """``json.dumps(person_record(write), separators=(",", ":"))`` written without building
    the dict; with ``sync_key_field``, as a keyed create sends it (any field of that name
    dropped, the write's key last). A batch's writes share one :class:`PersonJSON`."""
    return PersonJSON(email_field=email_field, sync_key_field=sync_key_field)(write)


class PersonJSON:
    """Writes person records as :func:`person_record_json` does, what is the same for every
    write of a batch (the names skipped, the email's and the key's JSON keys) worked out
    once."""

    def __init__(self, *, email_field: str = "Email", sync_key_field: str | None = None) -> None:
        self._email_field, self._key_field = email_field, sync_key_field
        named = {email_field.lower(), "ownerid", "attributes"}
        # The email field named as another, or the key as one of them: written as a dict.
        self._as_dict = len(named) < 3 or (
            sync_key_field is not None and sync_key_field.lower() in named
        )
        skip: tuple[str, ...] = (email_field.lower(), "id", "ownerid")
        if sync_key_field is not None:
            skip = (*skip, sync_key_field.lower())
        self._skip = skip
        self._email_key = f",{_json_string(email_field)}:"
        self._key_key = None if sync_key_field is None else f",{_json_string(sync_key_field)}:"

    def __call__(self, write: PersonWrite) -> str:
        fields = write.fields
        if self._as_dict or "attributes" in fields:  # it would take the record type's place
            record = person_record(write, email_field=self._email_field)
            key_field = self._key_field
            if key_field is not None:
                record = {k: v for k, v in record.items() if k.lower() != key_field.lower()}
                record[key_field] = write.key
            return _dumps(record)
        owner = write.owner_id
        owned = ',"OwnerId":' + _json_value(owner) if owner else ""
        return (
            f"{_OBJECT_HEADS[write.kind]}{_fields_json(fields, self._skip)}"
            f"{self._email_key}{_json_value(write.email.strip())}{owned}"
            f"{'' if self._key_key is None else self._key_key + _json_value(write.key)}}}"
        )


def person_update_json(update: PersonUpdate) -> str:
    """``json.dumps(person_update_record(update), separators=(",", ":"))`` written without
    building the dict."""
    if "attributes" in update.fields:
        return _dumps(person_update_record(update))
    return (
        _OBJECT_HEADS[update.kind]
        + ',"id":'
        + _json_value(update.record_id)
        + _fields_json(update.fields, ("id", "ownerid"))
        + "}"
    )


def person_update_record(update: PersonUpdate) -> dict[str, Any]:
    """A Lead/Contact update record: ``id`` and the changed fields (never the owner)."""
    record: dict[str, Any] = {"attributes": {"type": object_for_kind(update.kind)}}
    record["id"] = update.record_id
    for name, value in update.fields.items():
        if name.lower() in ("id", "ownerid"):
            continue
        record[name] = json_value(value)
    return record


@attrs.frozen
class TaskMarker:
    """Where a Task keeps the marker of its source activity.

    ``field=None`` (the default) appends a tag to ``Subject`` (which stays within its 255
    characters: the subject text is shortened, never the tag) and finds it with
    ``Subject LIKE '%<tag>'``. The core's markers already read
    ``signals:<conversation>:<activity>``, so their tag is the marker in brackets,
    ``[signals:c-1:transcript]``; any other marker is
    tagged ``[signals-marker:<marker>]``, so reading a tag back always gives the marker sent.
    A custom text field (``field="Signals_Marker__c"``, best a unique External ID) holds the bare
    marker instead and is matched with ``=``.
    """

    field: str | None = None

    def tag(self, marker: str) -> str:
        if marker.startswith(_CORE_PREFIX):
            return f"[{marker}]"
        return f"[{_OTHER_PREFIX}{marker}]"

    def subject(self, subject: str, marker: str) -> str:
        """The Task subject to send, marker tag included unless a field holds the marker."""
        if self.field is not None:
            return subject[:SUBJECT_LENGTH]
        tag = self.tag(marker)
        room = SUBJECT_LENGTH - len(tag) - 1
        if room < 0:
            raise ConfigurationError(
                [Problem("marker", "a task marker must fit in the 255-character Subject")]
            )
        return f"{subject[:room].rstrip()} {tag}".lstrip()

    def read(self, record: Mapping[str, FieldValue]) -> str | None:
        """The marker stored on a Task record (as read back from a query), if any."""
        if self.field is not None:
            value = _get_ci(record, self.field)
            return str(value) if value else None
        subject = _get_ci(record, "Subject")
        if not isinstance(subject, str) or not subject.endswith("]"):
            return None
        start = subject.rfind("[signals")
        if start < 0:
            return None
        content = subject[start + 1 : -1]
        if content.startswith(_OTHER_PREFIX):
            return content[len(_OTHER_PREFIX) :]
        return content if content.startswith(_CORE_PREFIX) else None

    def select_fields(self) -> tuple[str, ...]:
        return ("Id", "WhoId", self.field or "Subject")

    def where(self, marker: str) -> str:
        """A SOQL condition true for Tasks carrying ``marker``."""
        if self.field is not None:
            return f"{self.field} = {quote(marker)}"
        return f"Subject LIKE {like_literal(self.tag(marker), prefix='%')}"


_UNSET = object()  # no value seen yet
_BARE_KEPT = 64  # subject texts a Task writer remembers
_CORE_PREFIX = "signals:"  # every marker the core makes starts so (core.plan.task_marker)
_OTHER_PREFIX = "signals-marker:"


def _get_ci(record: Mapping[str, FieldValue], name: str) -> FieldValue:
    if name in record:
        return record[name]
    lowered = name.lower()
    for key, value in record.items():
        if key.lower() == lowered:
            return value
    return None


def task_record(
    task: TaskWrite,
    *,
    marker: TaskMarker,
    max_body_length: int = 32_000,
    status: str | None = "Completed",
    priority: str | None = "Normal",
) -> dict[str, Any]:
    """A Task create record on the person (``WhoId``; never a ``WhatId`` for a Lead)."""
    record: dict[str, Any] = {
        "attributes": {"type": "Task"},
        "WhoId": task.person_id,
        "Subject": marker.subject(task.subject, task.marker),
        "Description": task.body[:max_body_length],
    }
    if marker.field is not None:
        record[marker.field] = task.marker
    if task.activity_date is not None:
        record["ActivityDate"] = task.activity_date.isoformat()
    if status:
        record["Status"] = status
    if priority:
        record["Priority"] = priority
    if task.owner_id:
        record["OwnerId"] = task.owner_id
    return record


_TASK_KEYS = frozenset(
    {"attributes", "WhoId", "Subject", "Description", "ActivityDate", "Status", "Priority"}
    | {"OwnerId"}
)


def task_record_json(
    task: TaskWrite,
    *,
    marker: TaskMarker,
    max_body_length: int = 32_000,
    status: str | None = "Completed",
    priority: str | None = "Normal",
    sync_key_field: str | None = None,
) -> str:
    """``json.dumps(task_record(...), separators=(",", ":"))`` with ``sync_key_field`` set to
    ``task.key`` (as a keyed create sends it), written without building the dict. Raises what
    :func:`task_record` raises. A batch's Tasks share one :class:`TaskJSON`."""
    return TaskJSON(
        marker=marker,
        max_body_length=max_body_length,
        status=status,
        priority=priority,
        sync_key_field=sync_key_field,
    )(task)


class TaskJSON:
    """Writes Tasks as :func:`task_record_json` does, what is the same for every Task of a
    batch (the options' pairs, each ``ActivityDate``) worked out once: a backfill sends 20,000."""

    def __init__(
        self,
        *,
        marker: TaskMarker,
        max_body_length: int = 32_000,
        status: str | None = "Completed",
        priority: str | None = "Normal",
        sync_key_field: str | None = None,
    ) -> None:
        self._status, self._priority = status, priority
        self._marker = marker
        self._max_body = max_body_length
        self._key_field = sync_key_field
        # A field named twice: the dict keeps its first place and its last value.
        self._as_dict = (marker.field is not None and marker.field in _TASK_KEYS) or (
            sync_key_field is not None and sync_key_field in {*_TASK_KEYS, marker.field}
        )
        self._marker_key = None if marker.field is None else f",{_json_value(marker.field)}:"
        self._constants = "".join(
            f",{_json_string(k)}:{_json_value(v)}"
            for k, v in (("Status", status), ("Priority", priority))
            if v
        )
        self._key_key = None if sync_key_field is None else f",{_json_value(sync_key_field)}:"
        self._days: dict[date, str] = {}
        # A subject text → its length when it has no white space around it (else 0): it is
        # then tagged as it is whenever it fits beside the tag (a batch has a few subjects).
        self._bare: dict[str, int] = {}
        # The subject tagged here, as TaskMarker.subject tags it, unless a subclass may not.
        self._tags = marker.field is None and type(marker) is TaskMarker

    def __call__(self, task: TaskWrite) -> str:
        (text,) = self.all((task,))
        return text

    def all(self, tasks: Iterable[TaskWrite]) -> list[str]:
        """Each task's text, in order; raises what :func:`task_record` raises (at the first
        task that does). What each task reads of this writer is read once for them all."""
        if self._as_dict:
            return [self._as_record(task) for task in tasks]
        max_body, tags, marker_key, key_key = (
            self._max_body,
            self._tags,
            self._marker_key,
            self._key_key,
        )
        constants, days, subject_of = self._constants, self._days, self._marker.subject
        bare = self._bare
        texts: list[str] = []
        add = texts.append
        # A person's Tasks follow each other and share their owner: the JSON of the last
        # person and owner is kept, for the next task of the same (the same object).
        last_who: object = _UNSET
        last_owner: object = _UNSET
        whom = owned = ""
        for task in tasks:
            who, body, owner, day, marker = (
                task.person_id,
                task.body[:max_body],
                task.owner_id,
                task.activity_date,
                task.marker,
            )
            if tags and type(marker) is str:
                # TaskMarker.subject of a marker kept in Subject, without the two calls.
                tag = (
                    f"[{marker}]"
                    if marker.startswith(_CORE_PREFIX)
                    else f"[{_OTHER_PREFIX}{marker}]"
                )
                room = _TAGGED_ROOM - len(tag)
                if room < 0:
                    subject_of(task.subject, marker)  # raises what it raises
                text = task.subject
                length = bare.get(text) if type(text) is str else 0
                if length is None:
                    length = len(text) if text and text == text.strip() else 0
                    if len(bare) < _BARE_KEPT:
                        bare[text] = length
                if 0 < length <= room:  # the cut and the strips below change nothing
                    subject = f"{text} {tag}"
                else:
                    subject = f"{text[:room].rstrip()} {tag}".lstrip()
            else:
                subject = subject_of(task.subject, marker)
            written = None
            if day is not None:
                written = days.get(day)
                if written is None:
                    written = days[day] = ',"ActivityDate":' + _json_string(day.isoformat())
            if owner is not last_owner:
                last_owner, owned = owner, ""
                if owner:
                    owned = ',"OwnerId":' + (
                        _json_string(owner) if type(owner) is str else _dumps(owner)
                    )
            if who is not last_who:
                last_who = who
                whom = _json_string(who) if type(who) is str else _dumps(who)
            add(
                '{"attributes":{"type":"Task"},"WhoId":'
                f"{whom}"
                f',"Subject":{_json_string(subject)}'
                f',"Description":{_json_string(body) if type(body) is str else _dumps(body)}'
                f"{'' if marker_key is None else marker_key + _json_value(marker)}"
                f"{written or ''}{constants}{owned}"
                f"{'' if key_key is None else key_key + _json_value(task.key)}}}"
            )
        return texts

    def _as_record(self, task: TaskWrite) -> str:
        record = task_record(
            task,
            marker=self._marker,
            max_body_length=self._max_body,
            status=self._status,
            priority=self._priority,
        )
        if self._key_field is not None:
            record[self._key_field] = task.key
        return _dumps(record)


def campaign_member_json(membership: CampaignMembershipWrite) -> str:
    """``json.dumps(campaign_member_record(membership), separators=(",", ":"))``, written
    without building the dict."""
    (text,) = campaign_members_json((membership,))
    return text


def campaign_members_json(memberships: Iterable[CampaignMembershipWrite]) -> list[str]:
    """:func:`campaign_member_json` of each membership, in order; the JSON of a campaign is
    kept for the memberships after it in the same one (the same object: a batch's usually)."""
    texts: list[str] = []
    add = texts.append
    last_campaign: object = _UNSET
    head = ""
    for membership in memberships:
        campaign = membership.campaign_id
        if campaign is not last_campaign:
            last_campaign = campaign
            head = '{"attributes":{"type":"CampaignMember"},"CampaignId":' + _json_value(campaign)
        person_field = (
            ',"LeadId":' if membership.person_kind is PersonKind.LEAD else ',"ContactId":'
        )
        add(f"{head}{person_field}{_json_value(membership.person_id)}}}")
    return texts


def campaign_member_record(membership: CampaignMembershipWrite) -> dict[str, Any]:
    """A CampaignMember create record (``LeadId`` or ``ContactId``)."""
    person_field = "LeadId" if membership.person_kind is PersonKind.LEAD else "ContactId"
    return {
        "attributes": {"type": "CampaignMember"},
        "CampaignId": membership.campaign_id,
        person_field: membership.person_id,
    }
