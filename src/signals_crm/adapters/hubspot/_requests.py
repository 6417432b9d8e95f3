"""Pure builders of the HubSpot requests the adapter sends (no IO, no clock, no auth header).

Theory of operation:

1. Every request is an ``httpx.Request`` built from an :class:`HubSpotAPI` (base URL and API
   version) and plain values. The IO shell adds the ``Authorization`` header and sends it.
2. Paths come in two families with the same bodies: numeric (``v3``: ``/crm/v3/objects/...``)
   and date-based (``2026-03``: ``/crm/objects/2026-03/...``). :class:`HubSpotAPI` builds both;
   switching is one setting.
3. Every property value is sent as a string (:func:`property_value`): booleans ``"true"`` /
   ``"false"``, dates ``YYYY-MM-DD``, datetimes ISO-8601 UTC, numbers without separators,
   ``None`` as ``""`` (which clears the value in HubSpot).
4. Emails are trimmed and lower-cased before they are sent as ids.
5. An activity carries the marker of its source activity as a final line of its body,
   ``[signals-marker: <marker> | sgnl<40 hex>]``. The ``sgnl…`` token is a hash of the marker:
   one alphanumeric word that HubSpot's ``CONTAINS_TOKEN`` search finds exactly, which is how
   :class:`~signals_crm.core.crm.TaskByMarker` reconciles. (A custom property can carry the
   marker instead; see ``marker_property`` on the adapter.)
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Final
from urllib.parse import quote

import attrs
import httpx

from signals_crm.core.model import FieldValue, normalize_email
from signals_crm.exceptions import ConfigurationError, Problem

__all__ = [
    "ASSOCIATION_TYPE_IDS",
    "CONTACT_OBJECT_TYPE_ID",
    "MAX_ASSOCIATION_READ",
    "MAX_BATCH",
    "MAX_SEARCH_LIMIT",
    "HubSpotAPI",
    "activity_body",
    "marker_token",
    "parse_marker",
    "property_value",
    "timestamp_value",
]

MAX_BATCH: Final = 100
"""The most inputs one batch read/create/update/upsert call takes."""

MAX_SEARCH_LIMIT: Final = 200
"""The largest page a search returns."""

MAX_ASSOCIATION_READ: Final = 100
"""The inputs one v4 association batch read is sent with (kept at the batch size of the other
batch endpoints: a bound well inside what HubSpot takes)."""

CONTACT_OBJECT_TYPE_ID: Final = "0-1"

ASSOCIATION_TYPE_IDS: Final[Mapping[tuple[str, str], int]] = {
    ("tasks", "contacts"): 204,
    ("notes", "contacts"): 202,
    ("meetings", "contacts"): 200,
    ("tasks", "companies"): 192,
    ("notes", "companies"): 190,
    ("meetings", "companies"): 188,
    ("contacts", "companies"): 279,
}
"""HUBSPOT_DEFINED association type ids, by (from, to) object type (reference §9)."""

_NUMERIC_VERSION = re.compile(r"^v\d+$")
_DATE_VERSION = re.compile(r"^\d{4}-\d{2}(?:-beta)?$")


@attrs.frozen
class HubSpotAPI:
    """Where HubSpot is and which API path family to speak (``v3`` or ``YYYY-MM``)."""

    base_url: str = "https://api.hubapi.com"
    version: str = "v3"

    def __attrs_post_init__(self) -> None:
        if not (_NUMERIC_VERSION.match(self.version) or _DATE_VERSION.match(self.version)):
            raise ConfigurationError(
                [Problem("version", "must be a numeric version like 'v3' or a date like '2026-03'")]
            )
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigurationError([Problem("base_url", "must be an http(s) URL")])

    @property
    def dated(self) -> bool:
        """Whether this is a date-based version (``/crm/objects/2026-03/...``)."""
        return _DATE_VERSION.match(self.version) is not None

    def url(self, path: str, params: Mapping[str, str] | None = None) -> httpx.URL:
        """The absolute URL of ``path`` with ``params``."""
        url = httpx.URL(self.base_url.rstrip("/") + path)
        return url.copy_merge_params(dict(params)) if params else url

    def crm_path(self, api: str, *parts: str) -> str:
        """``/crm/v3/{api}/...`` or ``/crm/{api}/{date}/...``; parts are path-encoded."""
        head = f"/crm/{api}/{self.version}" if self.dated else f"/crm/{self.version}/{api}"
        tail = "".join("/" + quote(p, safe="") for p in parts if p)
        return head + tail

    def oauth_token_path(self) -> str:
        """The OAuth token endpoint (``/oauth/v1/token`` or ``/oauth/{date}/token``)."""
        return f"/oauth/{self.version}/token" if self.dated else "/oauth/v1/token"

    # --------------------------------------------------------------------------------------
    # Builders

    def _json(
        self, method: str, path: str, body: Any, params: Mapping[str, str] | None = None
    ) -> httpx.Request:
        return httpx.Request(method, self.url(path, params), json=body)

    def batch_read(
        self,
        object_type: str,
        ids: Sequence[str],
        properties: Sequence[str],
        *,
        id_property: str | None = None,
    ) -> httpx.Request:
        """``POST …/{object}/batch/read`` (at most 100 ids; by ``id_property`` when given)."""
        _check_batch(ids)
        body: dict[str, Any] = {
            "inputs": [{"id": i} for i in ids],
            "properties": list(properties),
            "propertiesWithHistory": [],
        }
        if id_property is not None:
            body["idProperty"] = id_property
        return self._json("POST", self.crm_path("objects", object_type, "batch", "read"), body)

    def batch_create(self, object_type: str, inputs: Sequence[Mapping[str, Any]]) -> httpx.Request:
        """``POST …/{object}/batch/create`` with ready-made inputs (at most 100)."""
        _check_batch(inputs)
        path = self.crm_path("objects", object_type, "batch", "create")
        return self._json("POST", path, {"inputs": list(inputs)})

    def batch_update(self, object_type: str, inputs: Sequence[Mapping[str, Any]]) -> httpx.Request:
        """``POST …/{object}/batch/update`` by record id (at most 100)."""
        _check_batch(inputs)
        path = self.crm_path("objects", object_type, "batch", "update")
        return self._json("POST", path, {"inputs": list(inputs)})

    def get_object(
        self, object_type: str, record_id: str, properties: Sequence[str] = ()
    ) -> httpx.Request:
        """``GET …/{object}/{id}`` with ``properties``."""
        params = {"properties": ",".join(properties)} if properties else None
        return httpx.Request(
            "GET", self.url(self.crm_path("objects", object_type, record_id), params)
        )

    def search(self, object_type: str, body: Mapping[str, Any]) -> httpx.Request:
        """``POST …/{object}/search`` with a ``PublicObjectSearchRequest`` body."""
        return self._json("POST", self.crm_path("objects", object_type, "search"), dict(body))

    def list_owners(self, *, after: str | None = None, archived: bool = False) -> httpx.Request:
        """``GET /crm/v3/owners`` (one page of 100)."""
        params = {"limit": "100", "archived": "true" if archived else "false"}
        if after:
            params["after"] = after
        return httpx.Request("GET", self.url(self.crm_path("owners"), params))

    def get_properties(self, object_type: str) -> httpx.Request:
        """``GET /crm/v3/properties/{object}`` (every property, no paging)."""
        return httpx.Request("GET", self.url(self.crm_path("properties", object_type)))

    def get_list(self, list_id: str) -> httpx.Request:
        """``GET /crm/v3/lists/{listId}``."""
        return httpx.Request("GET", self.url(self.crm_path("lists", list_id)))

    def search_lists(
        self, *, processing_types: Sequence[str], offset: int = 0, count: int = 100
    ) -> httpx.Request:
        """``POST /crm/v3/lists/search`` for every list of those processing types, a page."""
        body = {
            "query": "",
            "processingTypes": list(processing_types),
            "offset": offset,
            "count": count,
        }
        return self._json("POST", self.crm_path("lists", "search"), body)

    def add_to_list(self, list_id: str, record_ids: Sequence[str]) -> httpx.Request:
        """``PUT /crm/v3/lists/{listId}/memberships/add`` with a JSON array of record ids."""
        path = self.crm_path("lists", list_id, "memberships", "add")
        return self._json("PUT", path, [str(r) for r in record_ids])

    def record_memberships(self, record_id: str, object_type_id: str = "0-1") -> httpx.Request:
        """``GET /crm/v3/lists/records/{objectTypeId}/{recordId}/memberships``."""
        path = self.crm_path("lists", "records", object_type_id, record_id, "memberships")
        return httpx.Request("GET", self.url(path))

    def association_path(self, from_type: str, to_type: str, *parts: str) -> str:
        """``/crm/v4/associations/{from}/{to}/...`` (date versions:
        ``/crm/associations/{date}/{from}/{to}/...``)."""
        head = f"/crm/associations/{self.version}" if self.dated else "/crm/v4/associations"
        tail = "".join("/" + quote(p, safe="") for p in (from_type, to_type, *parts) if p)
        return head + tail

    def read_associations(
        self, from_type: str, to_type: str, inputs: Sequence[tuple[str, str | None]]
    ) -> httpx.Request:
        """``POST /crm/v4/associations/{from}/{to}/batch/read``: the records of ``to_type``
        associated with each ``(id, after)`` input (``after``: the cursor of its next page)."""
        if len(inputs) > MAX_ASSOCIATION_READ:
            msg = f"at most {MAX_ASSOCIATION_READ} inputs per association read"
            raise ConfigurationError([Problem("inputs", msg)])
        body = {
            "inputs": [
                {"id": i} if after is None else {"id": i, "after": after} for i, after in inputs
            ]
        }
        return self._json("POST", self.association_path(from_type, to_type, "batch", "read"), body)

    def refresh_token(
        self, *, client_id: str, client_secret: str, refresh_token: str
    ) -> httpx.Request:
        """``POST /oauth/v1/token`` (form-encoded ``refresh_token`` grant)."""
        form = {
            "grant_type": "refresh_token",
            "client_id": client_id,
            "client_secret": client_secret,
            "refresh_token": refresh_token,
        }
        return httpx.Request("POST", self.url(self.oauth_token_path()), data=form)


def _check_batch(items: Sequence[object]) -> None:
    if len(items) > MAX_BATCH:
        raise ValueError(f"a HubSpot batch takes at most {MAX_BATCH} inputs, got {len(items)}")


# ------------------------------------------------------------------------------------------------
# Values


def property_value(value: FieldValue) -> str:
    """A field value as the string HubSpot expects."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return timestamp_value(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f")
    return str(value)


def timestamp_value(moment: datetime | date) -> str:
    """An ISO-8601 UTC timestamp (a ``date`` is midnight UTC; a naive datetime is UTC)."""
    if not isinstance(moment, datetime):
        moment = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    elif moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def email_id(email: str) -> str:
    """The form of an email used as an id (trimmed, lower-cased)."""
    return normalize_email(email)


# ------------------------------------------------------------------------------------------------
# Markers

_MARKER_OPEN = "[signals-marker: "
_MARKER_LINE = re.compile(r"\[signals-marker: (?P<marker>.*?) \| (?P<token>sgnl[0-9a-f]{40})\]")


def marker_token(marker: str) -> str:
    """The one-word search token of ``marker`` (``sgnl`` + 40 hex digits of its SHA-256)."""
    return "sgnl" + hashlib.sha256(marker.encode("utf-8")).hexdigest()[:40]


def marker_line(marker: str) -> str:
    """The line appended to an activity body to carry ``marker``."""
    return f"[signals-marker: {marker} | {marker_token(marker)}]"


def activity_body(body: str, marker: str, max_length: int | None) -> str:
    """``body`` with the marker line appended, the body cut so the whole fits ``max_length``."""
    line = marker_line(marker)
    if max_length is not None:
        room = max(max_length - len(line) - 2, 0)
        body = body[:room]
    return f"{body}\n\n{line}" if body else line


def parse_marker(body: str | None) -> str | None:
    """The marker of an activity body: its **last** valid marker line, or ``None``.

    The adapter appends the marker line after everything else, so the last line whose token
    hashes its marker is the activity's own; a marker line quoted inside the text (a visitor
    pasting another conversation's line into the chat) comes before it and never counts.
    Every ``[signals-marker:`` is tried (overlapping), and HTML entities are decoded first, in
    case HubSpot stored the body re-encoded.
    """
    if not body:
        return None
    text = html.unescape(body)
    found: str | None = None
    start = text.find(_MARKER_OPEN)
    while start >= 0:
        match = _MARKER_LINE.match(text, start)
        if match is not None and marker_token(match.group("marker")) == match.group("token"):
            found = match.group("marker")
        start = text.find(_MARKER_OPEN, start + 1)
    return found


def has_marker_token(body: str | None, marker: str) -> bool:
    """Whether ``body`` contains the token of ``marker`` anywhere (a search pre-filter only:
    a quoted token matches too; compare :func:`parse_marker` with the whole marker)."""
    return bool(body) and marker_token(marker) in (body or "")
