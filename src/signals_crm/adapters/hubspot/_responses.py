"""Pure parsers of HubSpot answers: objects, batches, owners, properties, lists, usage, tokens.

Rules:

1. Every property value HubSpot returns is a string or ``null``; values are kept as strings
   (``None`` when unset), because that is what the CRM holds and what a later write compares.
2. Batch answers (200/201/207) carry ``results`` and, when some inputs failed, ``errors``
   (``StandardError``); each error names its inputs in ``context.ids`` or
   ``context.objectWriteTraceId``.
3. Usage comes from ``X-HubSpot-RateLimit-*`` headers (absent on search answers, daily headers
   absent for OAuth apps): :class:`RateLimitUsage`.
4. Schemas: ``modificationMetadata.readOnlyValue`` or ``calculated`` makes a property neither
   creatable nor updatable; owner properties (``referencedObjectType == "OWNER"``) are
   references, so no option list is enforced for them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs
import httpx

from signals_crm.core.model import (
    AccountRecord,
    CRMUser,
    FieldSchema,
    FieldType,
    ObjectSchema,
    PersonKind,
    PersonRecord,
    normalize_email,
)

__all__ = [
    "BatchAnswer",
    "RateLimitUsage",
    "TokenAnswer",
    "account_from_object",
    "owner_to_user",
    "parse_batch",
    "parse_datetime",
    "parse_rate_limit",
    "person_from_object",
    "schema_from_properties",
]

HUBSPOT_TEXT_LIMIT = 65536
"""The longest value a HubSpot string property holds."""


@attrs.frozen
class RateLimitUsage:
    """The API budget HubSpot reported on its last answer."""

    interval_ms: int | None = None
    max: int | None = None
    remaining: int | None = None
    daily: int | None = None
    daily_remaining: int | None = None

    @property
    def fraction_used(self) -> float | None:
        """The share (0..1) of the account's daily limit used, when HubSpot sent it (static
        tokens; OAuth apps get no daily headers). The engine's API budget reads this."""
        if self.daily and self.daily_remaining is not None:
            return 1.0 - self.daily_remaining / self.daily
        return None

    @property
    def share_used(self) -> float | None:
        """The share (0..1) of the burst window used, when known."""
        if self.max and self.remaining is not None:
            return 1.0 - self.remaining / self.max
        return None


def _int_header(headers: httpx.Headers, name: str) -> int | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        return int(raw.strip())
    except ValueError:
        return None


def parse_rate_limit(headers: httpx.Headers) -> RateLimitUsage | None:
    """The ``X-HubSpot-RateLimit-*`` headers, or ``None`` when the answer had none."""
    usage = RateLimitUsage(
        interval_ms=_int_header(headers, "x-hubspot-ratelimit-interval-milliseconds"),
        max=_int_header(headers, "x-hubspot-ratelimit-max"),
        remaining=_int_header(headers, "x-hubspot-ratelimit-remaining"),
        daily=_int_header(headers, "x-hubspot-ratelimit-daily"),
        daily_remaining=_int_header(headers, "x-hubspot-ratelimit-daily-remaining"),
    )
    if usage == RateLimitUsage():
        return None
    return usage


@attrs.frozen
class TokenAnswer:
    """An OAuth token answer. The tokens never show in reprs."""

    access_token: str = attrs.field(repr=False)
    expires_in: float
    refresh_token: str | None = attrs.field(repr=False, default=None)


def parse_token(body: Any) -> TokenAnswer | None:
    """The token answer of ``POST /oauth/v1/token``, or ``None`` when it is not one."""
    if not isinstance(body, Mapping):
        return None
    access = body.get("access_token")
    if not isinstance(access, str) or not access:
        return None
    try:
        expires = float(body.get("expires_in", 1800))
    except (TypeError, ValueError):
        expires = 1800.0
    refresh = body.get("refresh_token")
    return TokenAnswer(
        access_token=access,
        expires_in=expires,
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
    )


def parse_datetime(value: Any) -> datetime | None:
    """An ISO-8601 (``...Z``) or epoch-milliseconds value as an aware datetime."""
    if value is None or value == "":
        return None
    text = str(value)
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _props(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    props = obj.get("properties")
    return props if isinstance(props, Mapping) else {}


def _str_or_none(value: Any) -> str | None:
    if value is None:
        return None
    return str(value)


def person_from_object(obj: Mapping[str, Any], fields: Sequence[str]) -> PersonRecord:
    """A contact object as a :class:`PersonRecord` carrying ``fields`` (strings or ``None``)."""
    props = _props(obj)
    modified = parse_datetime(props.get("lastmodifieddate")) or parse_datetime(obj.get("updatedAt"))
    return PersonRecord(
        id=str(obj["id"]),
        kind=PersonKind.CONTACT,
        email=_str_or_none(props.get("email")),
        fields={f: _str_or_none(props.get(f)) for f in fields},
        last_modified=modified,
        owner_id=_str_or_none(props.get("hubspot_owner_id")) or None,
        account_id=_str_or_none(props.get("associatedcompanyid")) or None,
    )


def account_from_object(obj: Mapping[str, Any], fields: Sequence[str]) -> AccountRecord:
    """A company object as an :class:`AccountRecord` carrying ``fields``."""
    props = _props(obj)
    modified = parse_datetime(props.get("hs_lastmodifieddate")) or parse_datetime(
        obj.get("updatedAt")
    )
    return AccountRecord(
        id=str(obj["id"]),
        domain=_str_or_none(props.get("domain")),
        name=_str_or_none(props.get("name")),
        fields={f: _str_or_none(props.get(f)) for f in fields},
        last_modified=modified,
    )


def owner_to_user(owner: Mapping[str, Any], *, archived: bool = False) -> CRMUser:
    """A ``PublicOwner`` as a :class:`CRMUser` (its ``id``, never its ``userId``)."""
    first = str(owner.get("firstName") or "").strip()
    last = str(owner.get("lastName") or "").strip()
    name = " ".join(p for p in (first, last) if p) or None
    email = owner.get("email")
    active = not (archived or bool(owner.get("archived")))
    return CRMUser(
        id=str(owner["id"]),
        email=normalize_email(email) if isinstance(email, str) and email else None,
        active=active,
        name=name,
    )


def next_after(body: Any) -> str | None:
    """The ``paging.next.after`` cursor of a page, or ``None`` on the last page."""
    if not isinstance(body, Mapping):
        return None
    paging = body.get("paging")
    if not isinstance(paging, Mapping):
        return None
    nxt = paging.get("next")
    if not isinstance(nxt, Mapping) or nxt.get("after") in (None, ""):
        return None
    return str(nxt["after"])


def results(body: Any) -> list[Mapping[str, Any]]:
    """The ``results`` array of an answer (objects only)."""
    if not isinstance(body, Mapping):
        return []
    found = body.get("results")
    if not isinstance(found, list):
        return []
    return [r for r in found if isinstance(r, Mapping)]


@attrs.frozen
class BatchAnswer:
    """A batch answer: the objects and the per-input errors."""

    results: tuple[Mapping[str, Any], ...]
    errors: tuple[Mapping[str, Any], ...]

    def errors_by_context(self, key: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
        """``(value, error)`` for each value an error names under ``context[key]``."""
        for err in self.errors:
            context = err.get("context")
            if not isinstance(context, Mapping):
                continue
            values = context.get(key)
            if isinstance(values, list):
                for v in values:
                    yield str(v), err


def parse_batch(body: Any) -> BatchAnswer:
    """A ``BatchResponse…`` / ``BatchResponse…WithErrors`` body."""
    errs: list[Mapping[str, Any]] = []
    if isinstance(body, Mapping) and isinstance(body.get("errors"), list):
        errs = [e for e in body["errors"] if isinstance(e, Mapping)]
    return BatchAnswer(results=tuple(results(body)), errors=tuple(errs))


# ------------------------------------------------------------------------------------------------
# Properties → schema


def _field_type(prop: Mapping[str, Any]) -> FieldType:
    name = str(prop.get("name", ""))
    kind = str(prop.get("type", "string"))
    widget = str(prop.get("fieldType", "text"))
    if prop.get("referencedObjectType") == "OWNER":
        return FieldType.REFERENCE
    if name == "hs_object_id":
        return FieldType.ID
    if kind == "enumeration":
        if widget == "checkbox":
            return FieldType.MULTIPICKLIST
        if widget == "booleancheckbox":
            return FieldType.BOOLEAN
        return FieldType.PICKLIST
    simple = {
        "bool": FieldType.BOOLEAN,
        "number": FieldType.NUMBER,
        "date": FieldType.DATE,
        "datetime": FieldType.DATETIME,
        "phone_number": FieldType.PHONE,
    }
    if kind in simple:
        return simple[kind]
    if kind == "string":
        if name == "email" or name.endswith("_email"):
            return FieldType.EMAIL
        if widget in {"textarea", "html"}:
            return FieldType.TEXTAREA
        if widget == "phonenumber":
            return FieldType.PHONE
        return FieldType.STRING
    return FieldType.OTHER


def field_from_property(prop: Mapping[str, Any]) -> FieldSchema:
    """One ``Property`` as a :class:`FieldSchema`. An owner property (``referencedObjectType:
    "OWNER"``, as ``hubspot_owner_id``) holds an owner's id (``names_user``): HubSpot, *CRM API:
    Properties*, "Read all properties",
    <https://developers.hubspot.com/docs/api-reference/latest/crm/properties/get-properties>."""
    meta = prop.get("modificationMetadata")
    read_only = bool(meta.get("readOnlyValue")) if isinstance(meta, Mapping) else False
    writable = not (read_only or bool(prop.get("calculated")))
    ftype = _field_type(prop)
    picklist: tuple[str, ...] | None = None
    if ftype in {FieldType.PICKLIST, FieldType.MULTIPICKLIST}:
        options = prop.get("options")
        if isinstance(options, list):
            ordered = sorted(
                (o for o in options if isinstance(o, Mapping) and not o.get("hidden")),
                key=lambda o: int(o.get("displayOrder", 0) or 0),
            )
            picklist = tuple(str(o.get("value")) for o in ordered)
    return FieldSchema(
        name=str(prop["name"]),
        type=ftype,
        length=HUBSPOT_TEXT_LIMIT if ftype.is_text else None,
        createable=writable,
        updateable=writable,
        required=False,
        picklist_values=picklist,
        restricted_picklist=picklist is not None,
        label=_str_or_none(prop.get("label")),
        names_user=str(prop.get("referencedObjectType", "")).upper() == "OWNER",
    )


def schema_from_properties(object_name: str, body: Any) -> ObjectSchema:
    """``GET /crm/v3/properties/{object}`` as an :class:`ObjectSchema`."""
    fields = [
        field_from_property(p) for p in results(body) if "name" in p and not p.get("archived")
    ]
    return ObjectSchema(name=object_name, fields=fields)


def stage_order(body: Any) -> dict[str, int]:
    """The ``displayOrder`` of each option of a property answer (``lifecyclestage``)."""
    order: dict[str, int] = {}
    for prop in results(body):
        if prop.get("name") != "lifecyclestage":
            continue
        options = prop.get("options")
        if isinstance(options, list):
            for o in options:
                if isinstance(o, Mapping) and "value" in o:
                    order[str(o["value"])] = int(o.get("displayOrder", 0) or 0)
    return order


# ------------------------------------------------------------------------------------------------
# Lists


@attrs.frozen
class MembershipAnswer:
    """``MembershipsUpdateResponse``: which ids were added, and which do not exist."""

    added: frozenset[str]
    missing: frozenset[str]


def parse_memberships_update(body: Any) -> MembershipAnswer:
    """The answer of ``PUT …/memberships/add`` (HubSpot spells it ``recordsIdsAdded``)."""
    data: Mapping[str, Any] = body if isinstance(body, Mapping) else {}

    def ids(*keys: str) -> frozenset[str]:
        out: set[str] = set()
        for key in keys:
            value = data.get(key)
            if isinstance(value, list):
                out.update(str(v) for v in value)
        return frozenset(out)

    return MembershipAnswer(
        added=ids("recordsIdsAdded", "recordIdsAdded"), missing=ids("recordIdsMissing")
    )


def list_ids_of_record(body: Any) -> set[str]:
    """The list ids of ``GET /crm/v3/lists/records/{type}/{id}/memberships``."""
    return {str(r["listId"]) for r in results(body) if "listId" in r}
