"""Salesforce responses → values. Pure: every function takes an ``httpx.Response`` (or a header)
and returns a value or raises the typed error.

- Every metered response carries ``Sforce-Limit-Info: api-usage=used/limit`` (optionally
  ``; per-app-api-usage=used/limit(appName=name)``): :func:`parse_limit_info` → :class:`ApiUsage`.
- A query page is ``{totalSize, done, nextRecordsUrl?, records}``; ``totalSize`` counts the whole
  result. Records carry ``attributes``; parent relationships are nested objects (or ``null``),
  flattened here into dotted keys (``Owner.Email``).
- Collections answer 200 with one result per record, in request order; failed ones have no id
  and ``errors`` with ``statusCode``.
- Datetimes look like ``2024-05-01T12:00:00.000+0000``.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import attrs
import httpx

from signals_crm.adapters.salesforce._bodies import SubResponse, Successes, json_body
from signals_crm.adapters.salesforce._errors import error_from_record, error_from_response
from signals_crm.core._build import builder
from signals_crm.core.crm import WriteResult
from signals_crm.core.model import FieldSchema, FieldType, FieldValue, ObjectSchema
from signals_crm.exceptions import CRMAPIError, CRMServerError

__all__ = [
    "ApiUsage",
    "AppApiUsage",
    "QueryPage",
    "SalesforceToken",
    "composite_successes",
    "flatten_record",
    "parse_collection_results",
    "parse_composite",
    "parse_datetime",
    "parse_describe",
    "parse_limit_info",
    "parse_query",
    "parse_token",
    "raise_for_error",
]


@attrs.frozen
class AppApiUsage:
    """The connected app's share of the daily API allocation (the per-app quota pilot)."""

    used: int
    limit: int
    app_name: str | None = None


@attrs.frozen
class ApiUsage:
    """The org's rolling 24-hour API allocation, as the last ``Sforce-Limit-Info`` reported."""

    used: int
    limit: int
    per_app: AppApiUsage | None = None

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    @property
    def fraction_used(self) -> float:
        """``used / limit`` (1.0 when the limit is zero)."""
        return self.used / self.limit if self.limit else 1.0


_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")
_PER_APP = re.compile(r"per-app-api-usage=(\d+)/(\d+)(?:\(appName=([^)]*)\))?")


def parse_limit_info(header: str | None) -> ApiUsage | None:
    """``Sforce-Limit-Info`` → :class:`ApiUsage` (``None`` when absent or unreadable).

    >>> parse_limit_info("api-usage=18/5000")
    ApiUsage(used=18, limit=5000, per_app=None)
    """
    if not header:
        return None
    per_app = None
    app_match = _PER_APP.search(header)
    if app_match:
        per_app = AppApiUsage(int(app_match[1]), int(app_match[2]), app_match[3] or None)
    org_part = _PER_APP.sub("", header)
    match = _USAGE.search(org_part)
    if not match:
        return None
    return ApiUsage(used=int(match[1]), limit=int(match[2]), per_app=per_app)


@attrs.frozen
class SalesforceToken:
    """An OAuth access token and the instance it is for. Secrets never show in the repr."""

    access_token: str = attrs.field(repr=False)
    instance_url: str
    issued_at: datetime | None = None
    refresh_token: str | None = attrs.field(default=None, repr=False)


@attrs.frozen
class QueryPage:
    """One page of a SOQL result. ``records`` are flattened (see :func:`flatten_record`)."""

    records: tuple[Mapping[str, FieldValue], ...]
    total_size: int
    done: bool
    next_records_url: str | None = None


def _json(response: httpx.Response) -> Any:
    try:
        return json_body(response)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CRMServerError(
            "Salesforce answered a body that is not JSON", status_code=response.status_code
        ) from exc


def raise_for_error(response: httpx.Response) -> None:
    """Raise the typed error when ``response`` is not a 2xx."""
    if not 200 <= response.status_code < 300:
        raise error_from_response(response)


_DATETIME = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$")


def parse_datetime(value: object) -> datetime | None:
    """A Salesforce datetime (``2024-05-01T12:00:00.000+0000``) → aware ``datetime``."""
    if not isinstance(value, str):
        return None
    if (
        len(value) == _SHAPE_LENGTH
        and value.endswith("+0000")
        and value.isascii()
        and value.encode().translate(_ZEROS) == _SHAPE
    ):
        # Salesforce's own shape, ASCII digits, UTC: what the reading below makes of it, sooner.
        return datetime.fromisoformat(value).astimezone(UTC)
    match = _DATETIME.match(value)
    if not match:
        return None
    base, fraction, zone = match.groups()
    zone = zone or "+0000"
    if zone == "Z":
        zone = "+0000"
    text = base + (fraction or ".0") + zone.replace(":", "")
    if len(fraction or "") <= _MICROSECOND_DIGITS and zone[-2:] < "60":
        # The same reading as strptime's below, about ten times sooner.
        return datetime.fromisoformat(text).astimezone(UTC)
    parsed = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")  # refuses what is left
    return parsed.astimezone(UTC)


_SHAPE = b"0000-00-00T00:00:00.000+0000"  # every LastModifiedDate Salesforce writes, digits 0
_SHAPE_LENGTH = len(_SHAPE)
_ZEROS = bytes.maketrans(b"123456789", b"000000000")
_MICROSECOND_DIGITS = len(".123456")  # strptime's %f reads at most six digits


def _scalar(value: Any) -> FieldValue:
    if value is None or isinstance(value, str | int | float | bool | date):
        return value
    return json.dumps(value, sort_keys=True)


_PLAIN = frozenset({str, bool, int, float})  # what JSON decodes as and _scalar keeps


def flatten_record(record: Mapping[str, Any], prefix: str = "") -> dict[str, FieldValue]:
    """A query record without ``attributes``; parent objects become dotted keys.

    ``{"Id": "1", "Owner": {"attributes": {...}, "Email": "x"}}`` →
    ``{"Id": "1", "Owner.Email": "x"}``; a ``null`` parent stays a single ``None`` (its
    fields then read as ``None``).
    """
    out: dict[str, FieldValue] = {}
    for key, value in record.items():
        if value is None or type(value) in _PLAIN:  # most values: kept as they are
            if key != "attributes":
                out[f"{prefix}{key}" if prefix else key] = value  # a top key: no new string
        elif key == "attributes":
            continue
        elif isinstance(value, Mapping):
            if "records" in value and "totalSize" in value:
                continue  # child subqueries are not used
            out.update(flatten_record(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = _scalar(value)
    return out


def parse_query(response: httpx.Response) -> QueryPage:
    """A query (or query-more) response → :class:`QueryPage`."""
    raise_for_error(response)
    body = _json(response)
    if not isinstance(body, Mapping) or not isinstance(body.get("records"), list):
        raise CRMServerError("a query answer without records", status_code=response.status_code)
    # JSON objects decode as dicts: the exact type test is the cheap one, per record.
    records = tuple(
        flatten_record(r) for r in body["records"] if type(r) is dict or isinstance(r, Mapping)
    )
    done = bool(body.get("done", True))
    next_url = body.get("nextRecordsUrl")
    return QueryPage(
        records=records,
        total_size=int(body.get("totalSize", len(records))),
        done=done,
        next_records_url=str(next_url) if next_url and not done else None,
    )


def parse_composite(response: httpx.Response, references: Sequence[str]) -> list[httpx.Response]:
    """A ``/composite`` answer → one response per subrequest, in ``references`` order.

    Each subresponse becomes an ``httpx.Response`` (its status, headers and JSON body: a
    :class:`~signals_crm.adapters.salesforce._bodies.SubResponse`, whose body is not encoded
    to be decoded again), so the parsers of single requests read it unchanged; a subrequest's
    error is raised by them.
    """
    raise_for_error(response)
    body = _json(response)
    entries = body.get("compositeResponse") if isinstance(body, Mapping) else None
    if not isinstance(entries, list):
        raise CRMServerError("a composite answer without compositeResponse", status_code=200)
    by_ref = {
        str(e.get("referenceId")): e
        for e in entries
        if isinstance(e, Mapping) and isinstance(e.get("httpStatusCode"), int)
    }
    out: list[httpx.Response] = []
    for ref in references:
        entry = by_ref.get(ref)
        if entry is None:
            raise CRMServerError(
                f"the composite answer has no result for {ref}", status_code=response.status_code
            )
        headers = entry.get("httpHeaders")
        out.append(
            SubResponse(
                entry["httpStatusCode"],
                dict(headers) if isinstance(headers, Mapping) else {},
                entry.get("body"),
            )
        )
    return out


_RESULT_SHAPES = (  # compact, as Salesforce writes it, and as json.dumps does by default
    (
        '{"compositeResponse":[',
        '{"body":[',
        '{"id":"',
        '","success":true,"errors":[]}',
        '],"httpHeaders":{},"httpStatusCode":200,"referenceId":"',
        ",",
    ),
    (
        '{"compositeResponse": [',
        '{"body": [',
        '{"id": "',
        '", "success": true, "errors": []}',
        '], "httpHeaders": {}, "httpStatusCode": 200, "referenceId": "',
        ", ",
    ),
)


def composite_successes(
    response: httpx.Response, references: Sequence[str]
) -> list[Successes] | None:
    """A ``/composite`` answer of Collections writes in which every record of every
    subrequest succeeded → their ids, one :class:`Successes` per reference (what
    :func:`parse_composite` and :func:`parse_collection_results` read of it); ``None`` for
    any other answer, to be parsed in full.

    Such an answer is told by its text: its ids and references are picked out and the answer
    written again from them (compact, or with ``json.dumps``'s default separators) must be
    it, character for character, so nothing else (an error, a header, a key, an escape) is
    in it. No dict is built per record: about three times sooner than decoding the JSON.
    """
    if response.status_code != 200:  # the status of a composite answer
        return None
    try:
        text = response.content.decode("utf-8")
    except UnicodeDecodeError:
        return None
    shape = next((shape for shape in _RESULT_SHAPES if text.startswith(shape[0])), None)
    if shape is None:
        return None
    if "\\" in text:
        return None  # an escape: read in full
    head, entry, first, between, tail, comma = shape
    # The answer is head + E0 + comma + E1 ... + "]}", each E = entry + records + tail + ref
    # + '"}': cut at each tail, a piece's ids are its records', its start the ref before it;
    # its records are first + id + between, apart by comma.
    pieces = text.split(tail)
    apart = between + comma + first
    ids_of = [_piece_ids(piece, entry, first, between, apart) for piece in pieces[:-1]]
    picked = "".join(map("".join, ids_of))
    # Salesforce's ids, ASCII letters and digits, told quickly (a byte translation).
    plain = picked.isascii() and not picked.encode("ascii").translate(None, _ID_BYTES)
    if not plain and ('"' in picked or not picked.isprintable()):
        return None  # an id JSON would read otherwise: read in full
    if any("" in ids for ids in ids_of):
        return None  # an empty id: read in full (a failure there)
    refs = [piece[: piece.find('"')] for piece in pieces[1:]]
    entries = [
        f'{entry}{first}{(between + comma + first).join(ids)}{between}{tail}{ref}"}}'
        if ids
        else f'{entry}{tail}{ref}"}}'
        for ids, ref in zip(ids_of, refs, strict=True)
    ]
    found = dict(zip(refs, ids_of, strict=True))  # a reference twice: its last, as there
    if len(found) != len(references) or text != f"{head}{comma.join(entries)}]}}":
        return None  # another answer
    try:
        return [Successes(found[ref]) for ref in references]
    except KeyError:
        return None


_ID_BYTES = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _piece_ids(piece: str, entry: str, first: str, between: str, apart: str) -> list[str]:
    """The ids of a piece of an all-successes answer (see :func:`composite_successes`), if
    it is one: what follows its ``entry`` is ``first + id + between`` per record, ``apart``
    by commas (anything else is told by the answer written again from them)."""
    records = piece[piece.find(entry) + len(entry) :]
    return records[len(first) : len(records) - len(between)].split(apart) if records else []


_success = builder(WriteResult)
"""``WriteResult(id, error, created)``, positionally, slot by slot (a backfill builds 38,000)."""


def parse_collection_results(
    response: httpx.Response, count: int, *, upsert: bool = False
) -> list[WriteResult]:
    """A Collections create/update response → one :class:`WriteResult` per record sent; an
    upsert's UpsertResults say whether each record was ``created``."""
    raise_for_error(response)
    body = _json(response)
    if type(body) is Successes:
        if len(body.ids) == count:  # each WriteResult(id, None, True), as the loop below
            made = itertools.repeat(True)  # noqa: FBT003  # the positional builder's slot
            return list(map(_success, body.ids, itertools.repeat(None), made))
        body = body.as_json()
    if not isinstance(body, list) or len(body) != count:
        raise CRMServerError(
            f"Salesforce answered {len(body) if isinstance(body, list) else 'no'} results "
            f"for {count} records",
            status_code=response.status_code,
        )
    results: list[WriteResult] = []
    append = results.append
    ok = _success
    for item in body:
        # JSON objects decode as dicts: the exact type test is the cheap one, per record.
        if type(item) is dict or isinstance(item, Mapping):
            record_id = item.get("id")
            if record_id and item.get("success"):
                created = bool(item.get("created", True)) if upsert else True
                append(ok(record_id if type(record_id) is str else str(record_id), None, created))
                continue
        error: CRMAPIError = error_from_record(item if isinstance(item, Mapping) else {})
        append(WriteResult.failure(error))
    return results


_TYPES = {
    "id": FieldType.ID,
    "string": FieldType.STRING,
    "textarea": FieldType.TEXTAREA,
    "email": FieldType.EMAIL,
    "phone": FieldType.PHONE,
    "url": FieldType.URL,
    "picklist": FieldType.PICKLIST,
    "combobox": FieldType.STRING,
    "multipicklist": FieldType.MULTIPICKLIST,
    "boolean": FieldType.BOOLEAN,
    "int": FieldType.INTEGER,
    "long": FieldType.INTEGER,
    "double": FieldType.NUMBER,
    "currency": FieldType.NUMBER,
    "percent": FieldType.NUMBER,
    "date": FieldType.DATE,
    "datetime": FieldType.DATETIME,
    "reference": FieldType.REFERENCE,
}
_LENGTH_TYPES = frozenset({"string", "textarea", "email", "phone", "url", "combobox", "picklist"})


def _field_schema(raw: Mapping[str, Any]) -> FieldSchema:
    """One describe field. A ``reference`` whose ``referenceTo`` names ``User`` holds a user's
    id (``names_user``); ``referenceTo`` lists the objects a reference field points to
    (Salesforce, *SOAP API Developer Guide*, DescribeSObjectResult, its Field type),
    <https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_describesobjects_describesobjectresult.htm>."""
    sf_type = str(raw.get("type", "string"))
    createable = bool(raw.get("createable", False))
    picklist = raw.get("picklistValues") or []
    values = tuple(
        str(p["value"])
        for p in picklist
        if isinstance(p, Mapping) and p.get("active", True) and "value" in p
    )
    length = raw.get("length")
    return FieldSchema(
        name=str(raw["name"]),
        type=_TYPES.get(sf_type, FieldType.OTHER),
        length=int(length)
        if sf_type in _LENGTH_TYPES and isinstance(length, int) and length
        else None,
        createable=createable,
        updateable=bool(raw.get("updateable", False)),
        required=createable
        and not raw.get("nillable", True)
        and not raw.get("defaultedOnCreate", False),
        picklist_values=values if sf_type in ("picklist", "multipicklist") else None,
        restricted_picklist=bool(raw.get("restrictedPicklist", False)),
        label=str(raw["label"]) if raw.get("label") is not None else None,
        external_id=bool(raw.get("externalId", False)),
        unique=bool(raw.get("unique", False)),
        names_user=sf_type == "reference" and "User" in _names(raw.get("referenceTo")),
    )


def _names(value: Any) -> tuple[str, ...]:
    """The object names of a describe's ``referenceTo`` (a list; anything else: none)."""
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def parse_describe(response: httpx.Response) -> ObjectSchema:
    """An sObject describe response → :class:`ObjectSchema` (required = createable, not
    nillable and not defaulted on create)."""
    raise_for_error(response)
    body = _json(response)
    if not isinstance(body, Mapping) or not isinstance(body.get("fields"), list):
        raise CRMServerError("a describe answer without fields", status_code=response.status_code)
    fields = [_field_schema(f) for f in body["fields"] if isinstance(f, Mapping) and "name" in f]
    return ObjectSchema(name=str(body.get("name", "")), fields=fields)


def parse_token(response: httpx.Response) -> SalesforceToken:
    """A token endpoint response → :class:`SalesforceToken` (errors → AuthenticationError)."""
    raise_for_error(response)
    body = _json(response)
    if not isinstance(body, Mapping) or not body.get("access_token"):
        raise CRMServerError(
            "the token endpoint answered without an access token",
            status_code=response.status_code,
        )
    issued_at = None
    raw_issued = body.get("issued_at")
    if isinstance(raw_issued, str | int) and str(raw_issued).isdigit():
        issued_at = datetime.fromtimestamp(int(raw_issued) / 1000, UTC)
    refresh = body.get("refresh_token")
    return SalesforceToken(
        access_token=str(body["access_token"]),
        instance_url=str(body.get("instance_url") or "").rstrip("/"),
        issued_at=issued_at,
        refresh_token=str(refresh) if refresh else None,
    )
