"""The local Salesforce: an in-memory org speaking the REST subset over HTTP semantics.

Routes (each module named does the work; ``_org`` routes, meters and injects faults)::

    POST /services/oauth2/token        password, refresh_token, authorization_code (PKCE),
                                       client_credentials, JWT bearer              (_login)
    GET  /services/oauth2/authorize    approves at once, 302 with a code           (_login)
    POST /services/oauth2/revoke                                                   (_login)
    POST /services/Soap/u/NN.N         SOAP login()                                (_login)
    GET  /services/data/               versions (not metered)
    under /services/data/vNN.N:
    GET  query, queryAll, query/<cursor>-<offset>    SOQL                (_query, _soql)
    GET  search?q=FIND ...                           SOSL                (_search)
    GET  limits; sobjects (global describe); sobjects/X/describe; sobjects/X/updated|deleted
    POST sobjects/X;  GET|PATCH|DELETE sobjects/X/{id}                   (_records)
    GET|PATCH|DELETE sobjects/X/{ExtIdField}/{value}  upsert by external ID  (_upsert)
    POST|PATCH|DELETE composite/sobjects; GET|POST composite/sobjects/X  (_collections)
    PATCH composite/sobjects/X/{ExtIdField}          Collections upsert  (_upsert)
    POST tooling/sobjects/CustomField                a custom field      (_tooling)
    POST composite, composite/graph, composite/batch, composite/tree/X  (_composite)
    *    jobs/ingest[...], jobs/query[...]            Bulk API 2.0        (_bulk)

Every API call needs ``Authorization: Bearer <token>`` (else 401 ``INVALID_SESSION_ID``), is
counted against a daily limit (403 ``REQUEST_LIMIT_EXCEEDED`` when spent) and answers with
``Sforce-Limit-Info: api-usage=used/limit``. URIs over 16,384 bytes get 414, URI + headers over
it 431; versions below 31.0 get 410.

Faults (:class:`Faults`) are drawn from ``random.Random(seed)`` per API call, or scheduled
one-shot with :meth:`LocalSalesforce.schedule_fault`: ``latency`` (an injected ``sleep``),
``server_unavailable`` (503 JSON), ``gateway_html`` (502 HTML page), ``lock_row``
(``UNABLE_TO_LOCK_ROW``: per record inside Collections, else 400), ``request_limit`` (403
``REQUEST_LIMIT_EXCEEDED``, the concurrent flavour), ``too_many_requests`` (429),
``expire_session`` (a one-shot 401) and ``drop_after_commit`` (the write lands, then the
connection drops without an answer). ``expire_session_after=N`` expires each token after N
calls.

``late_commit`` (a rate, for the served org) holds a write request ``late_commit_hold``
seconds before the org processes it, so a client whose read timeout is shorter gives up first
and the write commits after it: what Salesforce does with a slow request, which it keeps
processing up to its API timeout of 10 minutes (*Salesforce Developer Limits and
Allocations*, "API Timeout Limits",
https://developer.salesforce.com/docs/platform/salesforce-app-limits-cheatsheet/guide/salesforce-app-limits-platform-api.html;
a composite subrequest "commits its data" as it executes, *REST API Developer Guide*,
"Batch", https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_batch.htm).
The hold is slept outside the org's lock, so other requests go on meanwhile. Reads (GET, and a
composite request made only of GET subrequests) are never held. ``late_commits`` counts the
requests held.
"""

from __future__ import annotations

import collections
import functools
import itertools
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import format_datetime as format_datetime_rfc
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, unquote

import attrs
import httpx

from signals_crm.testing._loopback import ConnectionDropped
from signals_crm.testing.salesforce._bulk import BulkJobs
from signals_crm.testing.salesforce._collections import Collections
from signals_crm.testing.salesforce._composite import (
    composite,
    composite_batch,
    composite_graph,
    composite_tree,
)
from signals_crm.testing.salesforce._ids import IdFactory, is_well_formed, to_18
from signals_crm.testing.salesforce._login import (
    AuthCode,
    Client,
    Login,
    Logins,
)
from signals_crm.testing.salesforce._records import (
    ApiError,
    DuplicateRule,
    OrgData,
    RecordError,
    json_value,
)
from signals_crm.testing.salesforce._reply import (
    Reply,
    allow_save,
    batch_size,
    error_reply,
    json_body,
    status_for,
)
from signals_crm.testing.salesforce._schema import FieldDef, ObjectDef
from signals_crm.testing.salesforce._search import search
from signals_crm.testing.salesforce._tooling import Tooling
from signals_crm.testing.salesforce._upsert import Upserts, external_id_field

__all__ = ["FAULT_KINDS", "ConnectionDropped", "Faults", "LocalSalesforce"]

URI_LIMIT = 16_384
SOQL_LIMIT = 100_000
"""The longest SOQL statement (SOQL and SOSL Reference, "SOQL and SOSL Limits")."""
FAULT_KINDS = (
    "server_unavailable",
    "gateway_html",
    "lock_row",
    "request_limit",
    "too_many_requests",
    "expire_session",
    "drop_after_commit",
)
_GATEWAY_PAGE = (
    "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    "<body><h1>Bad Gateway</h1><p>The server could not reach the Salesforce instance.</p>"
    "</body></html>"
)


def _locked() -> Reply:
    return error_reply(
        400, "UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record or 1 records"
    )


def _has_collections(payload: Any) -> bool:
    subrequests = payload.get("compositeRequest") if isinstance(payload, Mapping) else None
    return isinstance(subrequests, list) and any(
        isinstance(sub, Mapping) and "/composite/sobjects" in str(sub.get("url", ""))
        for sub in subrequests
    )


@attrs.define
class Faults:
    """Fault injection, drawn per API call from ``random.Random(seed)``; rates are 0..1."""

    seed: int = 0
    latency: float = 0.0
    server_unavailable: float = 0.0
    gateway_html: float = 0.0
    lock_row: float = 0.0
    request_limit: float = 0.0
    too_many_requests: float = 0.0
    expire_session: float = 0.0
    drop_after_commit: float = 0.0
    expire_session_after: int | None = None
    late_commit: float = 0.0
    late_commit_hold: float = 30.0


def _writes(route: str, body: bytes) -> bool:
    """Whether a non-GET request may change data: a composite request made only of GET
    subrequests (the lookups) does not."""
    if not route.rstrip("/").endswith(("/composite", "/composite/batch")):
        return True
    try:
        parsed = json.loads(body or b"{}")
    except ValueError:
        return True
    if not isinstance(parsed, dict):
        return True
    subrequests = parsed.get("compositeRequest") or parsed.get("batchRequests") or []
    if not isinstance(subrequests, list):
        return True
    return any(
        not isinstance(sub, dict) or str(sub.get("method", "")).upper() != "GET"
        for sub in subrequests
    )


def _http_date(value: str) -> datetime | None:
    """An RFC 1123 date (``If-Modified-Since``), or ``None``."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_datetime_http(moment: datetime) -> str:
    """``Wed, 02 Dec 2026 07:00:00 GMT``."""
    return format_datetime_rfc(moment.astimezone(UTC), usegmt=True)


def _now_utc() -> datetime:
    return datetime.now(UTC)


class LocalSalesforce(Logins, Collections, Upserts, Tooling):
    """An in-memory Salesforce org. Thread-safe; usable through :meth:`transport` (in-process,
    sync and async clients alike) or :meth:`serve` (real HTTP on 127.0.0.1)."""

    def __init__(
        self,
        *,
        instance_url: str = "https://local.my.salesforce.com",
        page_size: int = 2000,
        daily_limit: int = 15_000,
        faults: Faults | None = None,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], datetime] | None = None,
        org_id: str = "00D5g000004LoCaL",
        standard_rules: bool = True,
        external_id_fields: Iterable[str] = (),
    ) -> None:
        self.instance_url = instance_url.rstrip("/")
        self.page_size = page_size
        self.daily_limit = daily_limit
        self.api_used = 0
        self.faults = faults or Faults()
        self._rng = random.Random(self.faults.seed)  # noqa: S311  # fault injection, not crypto
        self._sleep = sleep or time.sleep
        self.data = OrgData(clock or _now_utc)
        self._lock = threading.RLock()
        self._scheduled: collections.deque[str] = collections.deque()
        self._tokens: dict[str, int] = {}
        self._refresh_tokens: dict[str, str] = {}
        self._clients: dict[str, Client] = {}
        self._cursors: dict[str, tuple[list[dict[str, Any]], int]] = {}
        self._cursor_sizes: dict[str, int] = {}
        self._serial = itertools.count(1)
        self._tooling_ids = IdFactory()
        self.org_id = org_id
        self.token_requests = 0
        self.late_commits = 0
        """Write requests held by the ``late_commit`` fault (they commit after the hold)."""
        self.calls: list[tuple[str, str]] = []
        """Every API call as ``(method, path)`` — count round trips with it."""
        self.login_audiences = {"https://login.salesforce.com", "https://test.salesforce.com"}
        self.integration_user_id = self.data.insert_raw(
            self.data.objects["user"],
            {
                "Username": "integration@local.example.com",
                "Email": "integration@local.example.com",
                "FirstName": "Integration",
                "LastName": "User",
                "Name": "Integration User",
                "IsActive": True,
            },
        )
        self.data.default_lead_owner = self.integration_user_id
        self.data.acting_user = self.integration_user_id
        self.data.seed_standard(rules=standard_rules)
        self.bulk = BulkJobs(self.data)
        self.created_at = self.data.now()
        self.schema_changed: dict[str, datetime] = {}
        """When each object's metadata last changed (``If-Modified-Since`` on describe)."""
        self.logins: dict[str, Login] = {}
        self._codes: dict[str, AuthCode] = {}
        self._access_by_refresh: dict[str, set[str]] = {}
        self.consenting_user_id = self.integration_user_id
        """The user who approves an authorization-code request (nobody is there to click)."""
        for qualified in external_id_fields:
            object_name, _, field_name = qualified.partition(".")
            if not field_name:
                msg = f"an external ID field is named Object.Field__c, not {qualified!r}"
                raise ValueError(msg)
            self.add_external_id_field(object_name, field_name)

    def __repr__(self) -> str:
        return f"LocalSalesforce(instance_url={self.instance_url!r})"

    # -- configuration -----------------------------------------------------------------------

    @property
    def duplicate_rule(self) -> DuplicateRule | None:
        """The first duplicate rule; a new org has the standard Lead and Contact rules active
        (``standard_rules=False`` starts without them and without the assignment rule)."""
        return self.data.duplicate_rule

    @duplicate_rule.setter
    def duplicate_rule(self, rule: DuplicateRule | None) -> None:
        self.data.duplicate_rule = rule

    @property
    def assignment_rule_owner(self) -> str | None:
        """The owner the active Lead assignment rule gives (``None``: no active rule)."""
        return self.data.assignment_rule_owner

    @assignment_rule_owner.setter
    def assignment_rule_owner(self, owner_id: str | None) -> None:
        self.data.assignment_rule_owner = owner_id

    def add_field(self, object_name: str, field: FieldDef) -> None:
        """Add a (custom) field to an object, e.g. a Task marker field."""
        with self._lock:
            obj = self.data.object(object_name)
            if obj is None:
                raise KeyError(object_name)
            obj.add(field)
            self.schema_changed[obj.name.lower()] = self.data.now()

    def add_external_id_field(
        self, object_name: str, field_name: str, *, length: int = 255, label: str | None = None
    ) -> FieldDef:
        """Add a custom text field marked External ID and Unique (as an admin does in Setup):
        describe shows it with ``externalId``, ``unique`` and ``idLookup`` true, upserts may
        key on it and a second record with the same value is refused (``DUPLICATE_VALUE``).
        The constructor's ``external_id_fields=("Lead.Signals_Sync_Key__c", ...)`` and the CLI's
        ``--external-id`` call this."""
        field = external_id_field(field_name, length=length, label=label)
        self.add_field(object_name, field)
        return field

    def schedule_fault(self, kind: str, times: int = 1) -> None:
        """Make the next ``times`` API calls fail with fault ``kind`` (see :data:`FAULT_KINDS`)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {FAULT_KINDS}")
        with self._lock:
            self._scheduled.extend([kind] * times)

    # -- tokens ------------------------------------------------------------------------------

    # -- transports --------------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        """An ``httpx.MockTransport`` for ``httpx.Client`` and ``httpx.AsyncClient`` alike."""
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request (raises ``httpx.RemoteProtocolError`` for a dropped connection)."""
        try:
            return self.answer(request)
        except ConnectionDropped:
            msg = "Server disconnected without sending a response."
            raise httpx.RemoteProtocolError(msg, request=request) from None

    def answer(self, request: httpx.Request) -> httpx.Response:
        """Answer one request; raises :class:`ConnectionDropped` to hang up (the loopback
        server's entry point)."""
        reply = self.dispatch(
            request.method, str(request.url), dict(request.headers.items()), request.read()
        )
        return httpx.Response(reply.status, headers=reply.all_headers(), content=reply.content())

    def served_at(self, url: str) -> None:
        """The org's instance URL becomes the loopback server's URL."""
        self.instance_url = url.rstrip("/")

    @contextmanager
    def serve(self, port: int = 0, *, tls: bool = False) -> Iterator[str]:
        """Serve this org on 127.0.0.1 in a background thread; yields the base URL.

        ``tls=True`` serves HTTPS from a local CA (see :class:`LoopbackServer` for its bundle).
        """
        from signals_crm.testing._loopback import LoopbackServer

        with LoopbackServer(self, port=port, tls=tls) as server:
            yield server.url

    # -- dispatch ----------------------------------------------------------------------------

    def dispatch(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> Reply:
        """Answer one HTTP exchange; raises :class:`ConnectionDropped` to hang up."""
        lowered = {k.lower(): v for k, v in headers.items()}
        parsed = httpx.URL(url)
        path = parsed.path
        raw_query = parsed.query.decode("ascii", errors="replace")
        uri_length = len(parsed.raw_path)
        if uri_length > URI_LIMIT:
            return error_reply(414, "URI_TOO_LONG", "URI Too Long")
        header_bytes = sum(len(k) + len(v) + 4 for k, v in lowered.items())
        if uri_length + header_bytes > URI_LIMIT:
            return error_reply(
                431, "REQUEST_HEADER_FIELDS_TOO_LARGE", "Request Header Fields Too Large"
            )
        if path.rstrip("/") == "/services/oauth2/token" and method == "POST":
            with self._lock:
                return self._token_endpoint(lowered, body)
        if path.rstrip("/") == "/services/oauth2/authorize" and method == "GET":
            with self._lock:
                return self._authorize(dict(parse_qsl(raw_query, keep_blank_values=True)))
        if path.rstrip("/") == "/services/oauth2/revoke" and method in ("GET", "POST"):
            form = dict(parse_qsl(raw_query if method == "GET" else body.decode(errors="replace")))
            with self._lock:
                return self._revoke(form.get("token", ""))
        if re.match(r"^/services/Soap/u/\d+\.\d/?", path) and method == "POST":
            with self._lock:
                return self._soap_login(body)
        if path.rstrip("/") == "/services/data":
            return Reply(
                200, [{"label": "Summer '24", "url": "/services/data/v61.0", "version": "61.0"}]
            )
        match = re.match(r"^/services/data/v(\d+)\.(\d)(/.*)?$", path)
        if not match:
            return error_reply(404, "NOT_FOUND", "The requested resource does not exist")
        version = f"{match[1]}.{match[2]}"
        if int(match[1]) < 31:
            return error_reply(
                410, "API_VERSION_RETIRED", f"API version {version} has been retired"
            )
        if self.faults.latency:
            self._sleep(self.faults.latency)
        if self.faults.late_commit and self._held(method, match[3] or "/", body):
            self._sleep(self.faults.late_commit_hold)  # the client gives up meanwhile
        with self._lock:
            return self._api(
                method, version, match[3] or "/", raw_query=raw_query, headers=lowered, body=body
            )

    def _api(
        self,
        method: str,
        version: str,
        route: str,
        *,
        raw_query: str,
        headers: Mapping[str, str],
        body: bytes,
    ) -> Reply:
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") and auth:
            return error_reply(401, "INVALID_AUTH_HEADER", "INVALID_HEADER_TYPE")
        token = auth.removeprefix("Bearer ").strip()
        if token not in self._tokens:
            return error_reply(401, "INVALID_SESSION_ID", "Session expired or invalid")
        fault = self._draw_fault()
        if fault == "expire_session":
            return error_reply(401, "INVALID_SESSION_ID", "Session expired or invalid")
        limit_after = self.faults.expire_session_after
        if limit_after is not None and self._tokens[token] >= limit_after:
            del self._tokens[token]
            return error_reply(401, "INVALID_SESSION_ID", "Session expired or invalid")
        self._tokens[token] += 1
        if self.api_used >= self.daily_limit:
            reply = error_reply(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
            reply.headers["Sforce-Limit-Info"] = f"api-usage={self.api_used}/{self.daily_limit}"
            return reply
        self.api_used += 1
        self.calls.append((method, f"/services/data/v{version}{route}"))
        reply = self._faulted(fault, route) or self._route(
            method, version, route, raw_query=raw_query, headers=headers, body=body, fault=fault
        )
        reply.headers["Sforce-Limit-Info"] = f"api-usage={self.api_used}/{self.daily_limit}"
        if fault == "drop_after_commit":
            raise ConnectionDropped
        return reply

    def _held(self, method: str, route: str, body: bytes) -> bool:
        """Whether the ``late_commit`` fault holds this request (writes only; drawn)."""
        if method in ("GET", "HEAD") or not _writes(route, body):
            return False
        with self._lock:
            held = self._rng.random() < self.faults.late_commit
            self.late_commits += held
        return held

    def _draw_fault(self) -> str | None:
        if self._scheduled:
            return self._scheduled.popleft()
        for kind in FAULT_KINDS:
            rate = getattr(self.faults, kind)
            if rate and self._rng.random() < rate:
                return kind
        return None

    @staticmethod
    def _faulted(fault: str | None, route: str) -> Reply | None:
        if fault == "server_unavailable":
            return error_reply(
                503, "SERVER_UNAVAILABLE", "Server temporarily unavailable. Please retry."
            )
        if fault == "gateway_html":
            return Reply(502, html=_GATEWAY_PAGE)
        if fault == "request_limit":
            return error_reply(
                403, "REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded."
            )
        if fault == "too_many_requests":
            reply = error_reply(429, "REQUEST_LIMIT_EXCEEDED", "Too many requests")
            reply.headers["Retry-After"] = "2"
            return reply
        collections = route.startswith("/composite/sobjects") or route.rstrip("/") == "/composite"
        if fault == "lock_row" and not collections:
            return _locked()
        return None

    # -- routes ------------------------------------------------------------------------------

    def _route(
        self,
        method: str,
        version: str,
        route: str,
        *,
        raw_query: str,
        headers: Mapping[str, str],
        body: bytes,
        fault: str | None,
    ) -> Reply:
        params = dict(parse_qsl(raw_query, keep_blank_values=True))
        try:
            if route in ("/query", "/query/", "/queryAll", "/queryAll/") and method == "GET":
                return self._query(
                    version,
                    params.get("q", ""),
                    include_deleted=route.startswith("/queryAll"),
                    batch_size=batch_size(headers.get("sforce-query-options", "")),
                )
            more = re.match(r"^/query(?:All)?/([A-Za-z0-9]+)-(\d+)$", route)
            if more and method == "GET":
                return self._query_more(version, more[1], int(more[2]))
            if route.rstrip("/") == "/limits" and method == "GET":
                return Reply(
                    200,
                    {
                        "DailyApiRequests": {
                            "Max": self.daily_limit,
                            "Remaining": max(0, self.daily_limit - self.api_used),
                        }
                    },
                )
            if route.rstrip("/") == "/composite/sobjects" and method in ("POST", "PATCH"):
                return self._collections(method, headers, body, lock_fault=fault == "lock_row")
            if route.rstrip("/") == "/composite/sobjects" and method == "DELETE":
                return self._collections_delete(params)
            upsert = re.match(r"^/composite/sobjects/([A-Za-z0-9_]+)/([A-Za-z0-9_]+)/?$", route)
            if upsert and method == "PATCH":
                return self._collections_upsert(
                    version, upsert[1], upsert[2], headers, body, lock_fault=fault == "lock_row"
                )
            retrieve = re.match(r"^/composite/sobjects/([A-Za-z0-9_]+)/?$", route)
            if retrieve and method in ("GET", "POST"):
                return self._collections_retrieve(version, retrieve[1], method, params, body)
            if route.rstrip("/") == "/composite" and method == "POST":
                # Lock contention hits the records of its Collections subrequests, as it would
                # the records of a lone Collections call.
                payload = json_body(body)
                dispatch = self._subrequest
                if fault == "lock_row":
                    if not _has_collections(payload):
                        return _locked()  # nothing to lock row by row: the request fails
                    dispatch = functools.partial(self._subrequest, fault="lock_row")
                # Nothing to resolve unless "@{" is in the text, or could be spelled with a
                # \u escape inside a JSON string.
                references = b"@{" in body or b"\\u" in body
                answer = composite(self.data, payload, headers, dispatch, references=references)
                return Reply(200, answer)
            if route.rstrip("/") == "/composite" and method == "GET":
                return Reply(200, self._composite_resources(version))
            if route.rstrip("/") == "/composite/graph" and method == "POST":
                answer = composite_graph(
                    self.data, json_body(body), headers, version, self._subrequest
                )
                return Reply(200, answer)
            if route.rstrip("/") == "/composite/batch" and method == "POST":
                answer = composite_batch(json_body(body), headers, version, self._subrequest)
                return Reply(200, answer)
            tree = re.match(r"^/composite/tree/([A-Za-z0-9_]+)/?$", route)
            if tree and method == "POST":
                status, answer = composite_tree(
                    self.data,
                    tree[1],
                    json_body(body),
                    lambda name, values: self._tree_create(name, values, headers),
                )
                return Reply(status, answer)
            jobs = re.match(r"^/jobs/(ingest|query)(?:/([A-Za-z0-9]+))?(?:/([A-Za-z]+))?/?$", route)
            if jobs:
                return self._jobs(method, version, (jobs[1], jobs[2], jobs[3]), params, body)
            if route.rstrip("/") == "/tooling/sobjects/CustomField" and method == "POST":
                return self._create_custom_field(body)
            if route.rstrip("/") == "/search" and method == "GET":
                return Reply(200, search(self.data, params.get("q", "")))
            if route.rstrip("/") == "/sobjects" and method == "GET":
                return Reply(200, self._global_describe(version))
            by_key = re.match(r"^/sobjects/([A-Za-z0-9_]+)/([A-Za-z0-9_]+)/(.+)$", route)
            if by_key and (obj := self.data.object(by_key[1])) is not None:
                return self._by_external_id(
                    method,
                    version,
                    obj,
                    by_key[2],
                    by_key[3],
                    headers=headers,
                    body=body,
                    params=params,
                )
            sobject = re.match(r"^/sobjects/([A-Za-z0-9_]+)(?:/([^/]+))?/?$", route)
            if sobject:
                return self._sobject(
                    method,
                    version,
                    sobject[1],
                    sobject[2],
                    headers=headers,
                    body=body,
                    params=params,
                )
            return error_reply(404, "NOT_FOUND", "The requested resource does not exist")
        except ApiError as exc:
            return Reply(exc.status, [exc.error.as_single()])

    def _subrequest(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        fault: str | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        """One subrequest of a composite request: no auth, no metering of its own."""
        path, _, query = url.partition("?")
        path = unquote(path)
        match = re.match(r"^/services/data/v(\d+)\.(\d)(/.*)?$", path)
        if not match:
            return (
                404,
                [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}],
                {},
            )
        version = f"{match[1]}.{match[2]}"
        route = match[3] or "/"
        reply = self._route(
            method,
            version,
            route,
            raw_query=query,
            headers=headers,
            body=body,
            fault=fault,
        )
        answer_headers = dict(reply.headers)
        if reply.status == 201 and isinstance(reply.body, dict) and "id" in reply.body:
            answer_headers["Location"] = (
                f"/services/data/v{version}{route.rstrip('/')}/{reply.body['id']}"
            )
        return reply.status, reply.body, answer_headers

    def _global_describe(self, version: str) -> dict[str, Any]:
        base = f"/services/data/v{version}/sobjects"
        return {
            "encoding": "UTF-8",
            "maxBatchSize": 200,
            "sobjects": [
                {
                    "name": obj.name,
                    "label": obj.label or obj.name,
                    "labelPlural": f"{obj.label or obj.name}s",
                    "keyPrefix": obj.key_prefix,
                    "custom": False,
                    "createable": obj.createable,
                    "updateable": obj.updateable,
                    "deletable": obj.createable,
                    "queryable": True,
                    "searchable": obj.name in ("Lead", "Contact", "Account", "Campaign", "Task"),
                    "retrieveable": True,
                    "layoutable": obj.createable,
                    "urls": {
                        "sobject": f"{base}/{obj.name}",
                        "describe": f"{base}/{obj.name}/describe",
                        "rowTemplate": f"{base}/{obj.name}/{{ID}}",
                    },
                }
                for obj in sorted(self.data.objects.values(), key=lambda o: o.name)
            ],
        }

    @staticmethod
    def _composite_resources(version: str) -> dict[str, str]:
        base = f"/services/data/v{version}/composite"
        return {
            "tree": f"{base}/tree",
            "graph": f"{base}/graph",
            "batch": f"{base}/batch",
            "sobjects": f"{base}/sobjects",
        }

    def _changed(
        self, version: str, obj: ObjectDef, which: str, params: Mapping[str, str]
    ) -> Reply:
        """``sobjects/X/updated`` and ``sobjects/X/deleted`` (start/end required, 30 days max)."""
        from signals_crm.testing.salesforce._records import format_datetime, parse_datetime

        start = parse_datetime(params.get("start", ""))
        end = parse_datetime(params.get("end", ""))
        if start is None or end is None:
            raise ApiError(
                400, "INVALID_QUERY_PARAMETER_VALUE", "start and end must be ISO-8601 datetimes"
            )
        if end < start:
            raise ApiError(400, "INVALID_REPLICATION_DATE", "end must be after start")
        covered = min(end, self.data.now()).replace(second=0, microsecond=0)
        del version
        if which == "updated":
            ids = [
                r["Id"]
                for r in self.data.records[obj.name.lower()].values()
                if start <= r["LastModifiedDate"] <= end
            ]
            return Reply(200, {"ids": ids, "latestDateCovered": format_datetime(covered)})
        deleted = [
            {"id": rid, "deletedDate": format_datetime(stamp)}
            for rid, stamp in self.data.deleted_at.items()
            if start <= stamp <= end and rid in self.data.recycle.get(obj.name.lower(), {})
        ]
        earliest = min(self.data.deleted_at.values(), default=covered)
        return Reply(
            200,
            {
                "deletedRecords": deleted,
                "earliestDateAvailable": format_datetime(earliest),
                "latestDateCovered": format_datetime(covered),
            },
        )

    def _query(
        self,
        version: str,
        soql: str,
        *,
        include_deleted: bool = False,
        batch_size: int | None = None,
    ) -> Reply:
        if len(soql) > SOQL_LIMIT:
            raise ApiError(
                400,
                "MALFORMED_QUERY",
                f"SOQL statements cannot be longer than {SOQL_LIMIT} characters",
            )
        _, records, total, is_count = self.data.query(soql, include_deleted=include_deleted)
        if is_count:
            return Reply(200, {"totalSize": total, "done": True, "records": []})
        return self._page(version, records, 0, new_cursor=True, size=batch_size)

    def _page(
        self,
        version: str,
        records: list[dict[str, Any]],
        offset: int,
        *,
        new_cursor: bool,
        cursor: str | None = None,
        size: int | None = None,
    ) -> Reply:
        if cursor is not None and cursor in self._cursor_sizes:
            size = self._cursor_sizes[cursor]
        page_size = size or self.page_size
        page = records[offset : offset + page_size]
        done = offset + len(page) >= len(records)
        body: dict[str, Any] = {"totalSize": len(records), "done": done, "records": page}
        if not done:
            if new_cursor or cursor is None:
                cursor = f"01g5g{next(self._serial):010d}AAA"
                self._cursors[cursor] = (records, len(records))
                if size is not None:
                    self._cursor_sizes[cursor] = size
            body["nextRecordsUrl"] = (
                f"/services/data/v{version}/query/{cursor}-{offset + len(page)}"
            )
        return Reply(200, body)

    def _query_more(self, version: str, cursor: str, offset: int) -> Reply:
        stored = self._cursors.get(cursor)
        if stored is None or offset > len(stored[0]):
            return error_reply(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(version, stored[0], offset, new_cursor=False, cursor=cursor)

    def _sobject(
        self,
        method: str,
        version: str,
        object_name: str,
        record_id: str | None,
        *,
        headers: Mapping[str, str],
        body: bytes,
        params: Mapping[str, str],
    ) -> Reply:
        obj = self.data.object(object_name)
        if obj is None:
            return error_reply(404, "NOT_FOUND", "The requested resource does not exist")
        if record_id == "describe" and method == "GET":
            changed = self.schema_changed.get(obj.name.lower(), self.created_at)
            since = _http_date(headers.get("if-modified-since", ""))
            last_modified = format_datetime_http(changed)
            if since is not None and changed.replace(microsecond=0) <= since:
                return Reply(304, headers={"Last-Modified": last_modified})
            answer = Reply(200, obj.describe(f"/services/data/v{version}"))
            answer.headers["Last-Modified"] = last_modified
            return answer
        if record_id in ("updated", "deleted") and method == "GET":
            return self._changed(version, obj, record_id, params)
        if record_id == "Id" and method == "POST":
            record_id = None  # v37.0+: a create, with Id as an external ID of null value
        if record_id is None:
            if method == "POST":
                payload = json_body(body)
                if not isinstance(payload, dict):
                    raise ApiError(
                        400, "JSON_PARSER_ERROR", "The request body must be a JSON object"
                    )
                self.data.check_known_fields(obj, payload)
                new_id, error = self.data.create(
                    obj,
                    payload,
                    auto_assign=headers.get("sforce-auto-assign"),
                    allow_save=allow_save(headers),
                )
                if error is not None:
                    return Reply(status_for(error), [error.as_single()])
                return Reply(201, {"id": new_id, "success": True, "errors": []})
            return Reply(200, {"objectDescribe": {"name": obj.name}, "recentItems": []})
        return self._record(method, obj, record_id, headers, body)

    def _record(
        self, method: str, obj: ObjectDef, record_id: str, headers: Mapping[str, str], body: bytes
    ) -> Reply:
        if not is_well_formed(record_id):
            return Reply(
                400,
                [
                    RecordError(
                        "MALFORMED_ID",
                        f"{obj.name} ID: id value of incorrect type: {record_id}",
                        ("Id",),
                    ).as_single()
                ],
            )
        if to_18(record_id) in self.data.deleted:
            return Reply(404, [RecordError("ENTITY_IS_DELETED", "entity is deleted").as_single()])
        found = self.data.find(record_id)
        if found is None or found[0].name != obj.name:
            return error_reply(404, "NOT_FOUND", "The requested resource does not exist")
        _, record = found
        if method == "GET":
            return Reply(200, self.data.render_record(obj, record))
        if method == "PATCH":
            payload = json_body(body)
            if not isinstance(payload, dict):
                raise ApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
            self.data.check_known_fields(obj, payload)
            _, error = self.data.update(
                obj, record_id, payload, auto_assign=headers.get("sforce-auto-assign")
            )
            if error is not None:
                return Reply(status_for(error), [error.as_single()])
            return Reply(204)
        if method == "DELETE":
            self.data.delete(obj, record["Id"])
            return Reply(204)
        return error_reply(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed.")

    # -- OAuth -------------------------------------------------------------------------------


def field_value_json(value: Any) -> Any:
    return json_value(value)
