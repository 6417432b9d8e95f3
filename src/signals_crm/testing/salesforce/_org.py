"""The local Salesforce: an in-memory org speaking the REST subset over HTTP semantics.

Routes (reference §12)::

    POST /services/oauth2/token                       refresh_token, JWT bearer, client_credentials
    GET  /services/data/                              versions (not metered)
    GET  /services/data/vNN.N/query?q=...             SOQL subset, paginated (nextRecordsUrl)
    GET  /services/data/vNN.N/queryAll?q=...
    GET  /services/data/vNN.N/query/<cursor>-<offset> the next page
    GET  /services/data/vNN.N/limits
    GET  /services/data/vNN.N/sobjects/X/describe
    POST /services/data/vNN.N/sobjects/X              create: 201 {id, success, errors}
    GET|PATCH|DELETE /services/data/vNN.N/sobjects/X/{id}
    POST|PATCH /services/data/vNN.N/composite/sobjects   Collections (<= 200 records)

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
"""

from __future__ import annotations

import base64
import collections
import itertools
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote

import attrs
import httpx

from signals_crm.testing._loopback import ConnectionDropped
from signals_crm.testing.salesforce._bulk import BulkJobs
from signals_crm.testing.salesforce._composite import composite, composite_batch, composite_tree
from signals_crm.testing.salesforce._ids import is_well_formed, to_18
from signals_crm.testing.salesforce._login import (
    AuthCode,
    Login,
    pkce_matches,
    soap_fault,
    soap_login_answer,
    soap_login_request,
)
from signals_crm.testing.salesforce._records import (
    ApiError,
    DuplicateRule,
    OrgData,
    RecordError,
    json_value,
)
from signals_crm.testing.salesforce._schema import FieldDef, ObjectDef
from signals_crm.testing.salesforce._search import search

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


@attrs.define
class _Client:
    client_id: str
    client_secret: str | None = attrs.field(default=None, repr=False)
    jwt_public_key: str | bytes | None = attrs.field(default=None, repr=False)
    jwt_username: str | None = None
    client_credentials: bool = False
    rotate_refresh_tokens: bool = False
    redirect_uris: tuple[str, ...] = ()
    password_flow: bool = True


@attrs.define
class _Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = attrs.field(factory=dict)
    html: str | None = None
    drop: bool = False
    xml: str | None = None
    csv: str | None = None

    def content(self) -> bytes:
        if self.html is not None:
            return self.html.encode()
        if self.xml is not None:
            return self.xml.encode()
        if self.csv is not None:
            return self.csv.encode()
        if self.body is None:
            return b""
        return json.dumps(self.body).encode()

    def all_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.html is not None:
            headers["Content-Type"] = "text/html; charset=utf-8"
        elif self.xml is not None:
            headers["Content-Type"] = "text/xml; charset=utf-8"
        elif self.csv is not None:
            headers["Content-Type"] = "text/csv"
        elif self.body is not None:
            headers["Content-Type"] = "application/json;charset=UTF-8"
        return headers


def _now_utc() -> datetime:
    return datetime.now(UTC)


class LocalSalesforce:
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
        self._clients: dict[str, _Client] = {}
        self._cursors: dict[str, tuple[list[dict[str, Any]], int]] = {}
        self._cursor_sizes: dict[str, int] = {}
        self._serial = itertools.count(1)
        self.org_id = org_id
        self.token_requests = 0
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
        self.logins: dict[str, Login] = {}
        self._codes: dict[str, AuthCode] = {}
        self._access_by_refresh: dict[str, set[str]] = {}
        self.consenting_user_id = self.integration_user_id
        """The user who approves an authorization-code request (nobody is there to click)."""

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

    def schedule_fault(self, kind: str, times: int = 1) -> None:
        """Make the next ``times`` API calls fail with fault ``kind`` (see :data:`FAULT_KINDS`)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {FAULT_KINDS}")
        with self._lock:
            self._scheduled.extend([kind] * times)

    # -- tokens ------------------------------------------------------------------------------

    def _new_token(self) -> str:
        return f"{self.org_id}!LOCAL.{self._rng.getrandbits(96):024x}"

    def issue_token(self) -> str:
        """A fresh, valid access token (for :class:`StaticToken` and other clients)."""
        with self._lock:
            token = self._new_token()
            self._tokens[token] = 0
            return token

    def expire_tokens(self) -> None:
        """Expire every access token (the next call with one gets 401 INVALID_SESSION_ID)."""
        with self._lock:
            self._tokens.clear()

    def register_client(
        self,
        client_id: str,
        client_secret: str | None = None,
        *,
        jwt_public_key: str | bytes | None = None,
        jwt_username: str | None = None,
        client_credentials: bool = False,
        rotate_refresh_tokens: bool = False,
        redirect_uris: tuple[str, ...] = (),
        password_flow: bool = True,
    ) -> None:
        """Register a connected app (the flows it may use follow from what is given):
        refresh tokens always; client credentials when ``client_credentials``; JWT bearer with
        a ``jwt_public_key``; the username-password flow unless ``password_flow=False``; the
        authorization-code flow (with or without PKCE) to the given ``redirect_uris``."""
        with self._lock:
            self._clients[client_id] = _Client(
                client_id,
                client_secret,
                jwt_public_key,
                jwt_username,
                client_credentials,
                rotate_refresh_tokens,
                tuple(redirect_uris),
                password_flow,
            )

    def add_login(self, username: str, password: str, security_token: str = "") -> str:
        """Let ``username`` log in (SOAP login, OAuth username-password flow) with ``password``
        followed by ``security_token``; creates the User when there is none. Returns its id."""
        with self._lock:
            users = self.data.records["user"]
            user_id = next(
                (
                    i
                    for i, u in users.items()
                    if str(u.get("Username", "")).lower() == username.lower()
                ),
                None,
            )
            if user_id is None:
                first, _, last = username.split("@", 1)[0].partition(".")
                user_id = self.data.insert_raw(
                    self.data.objects["user"],
                    {
                        "Username": username,
                        "Email": username,
                        "FirstName": first.title() if last else None,
                        "LastName": (last or first).title(),
                        "Name": username.split("@", 1)[0],
                        "IsActive": True,
                    },
                )
            self.logins[username.lower()] = Login(username, user_id, password, security_token)
            return user_id

    def issue_refresh_token(self, client_id: str) -> str:
        """A refresh token for a registered client (as a web-server flow would have given)."""
        with self._lock:
            token = f"5Aep{self._rng.getrandbits(96):024x}"
            self._refresh_tokens[token] = client_id
            return token

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

    def dispatch(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> _Reply:
        """Answer one HTTP exchange; raises :class:`ConnectionDropped` to hang up."""
        lowered = {k.lower(): v for k, v in headers.items()}
        parsed = httpx.URL(url)
        path = parsed.path
        raw_query = parsed.query.decode("ascii", errors="replace")
        uri_length = len(parsed.raw_path)
        if uri_length > URI_LIMIT:
            return _error(414, "URI_TOO_LONG", "URI Too Long")
        header_bytes = sum(len(k) + len(v) + 4 for k, v in lowered.items())
        if uri_length + header_bytes > URI_LIMIT:
            return _error(431, "REQUEST_HEADER_FIELDS_TOO_LARGE", "Request Header Fields Too Large")
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
            return _Reply(
                200, [{"label": "Summer '24", "url": "/services/data/v61.0", "version": "61.0"}]
            )
        match = re.match(r"^/services/data/v(\d+)\.(\d)(/.*)?$", path)
        if not match:
            return _error(404, "NOT_FOUND", "The requested resource does not exist")
        version = f"{match[1]}.{match[2]}"
        if int(match[1]) < 31:
            return _error(410, "API_VERSION_RETIRED", f"API version {version} has been retired")
        if self.faults.latency:
            self._sleep(self.faults.latency)
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
    ) -> _Reply:
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") and auth:
            return _error(401, "INVALID_AUTH_HEADER", "INVALID_HEADER_TYPE")
        token = auth.removeprefix("Bearer ").strip()
        if token not in self._tokens:
            return _error(401, "INVALID_SESSION_ID", "Session expired or invalid")
        fault = self._draw_fault()
        if fault == "expire_session":
            return _error(401, "INVALID_SESSION_ID", "Session expired or invalid")
        limit_after = self.faults.expire_session_after
        if limit_after is not None and self._tokens[token] >= limit_after:
            del self._tokens[token]
            return _error(401, "INVALID_SESSION_ID", "Session expired or invalid")
        self._tokens[token] += 1
        if self.api_used >= self.daily_limit:
            reply = _error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
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

    def _draw_fault(self) -> str | None:
        if self._scheduled:
            return self._scheduled.popleft()
        for kind in FAULT_KINDS:
            rate = getattr(self.faults, kind)
            if rate and self._rng.random() < rate:
                return kind
        return None

    @staticmethod
    def _faulted(fault: str | None, route: str) -> _Reply | None:
        if fault == "server_unavailable":
            return _error(
                503, "SERVER_UNAVAILABLE", "Server temporarily unavailable. Please retry."
            )
        if fault == "gateway_html":
            return _Reply(502, html=_GATEWAY_PAGE)
        if fault == "request_limit":
            return _error(403, "REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded.")
        if fault == "too_many_requests":
            reply = _error(429, "REQUEST_LIMIT_EXCEEDED", "Too many requests")
            reply.headers["Retry-After"] = "2"
            return reply
        if fault == "lock_row" and not route.startswith("/composite/sobjects"):
            return _error(
                400,
                "UNABLE_TO_LOCK_ROW",
                "unable to obtain exclusive access to this record or 1 records",
            )
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
    ) -> _Reply:
        params = dict(parse_qsl(raw_query, keep_blank_values=True))
        try:
            if route in ("/query", "/query/", "/queryAll", "/queryAll/") and method == "GET":
                return self._query(
                    version,
                    params.get("q", ""),
                    include_deleted=route.startswith("/queryAll"),
                    batch_size=_batch_size(headers.get("sforce-query-options", "")),
                )
            more = re.match(r"^/query(?:All)?/([A-Za-z0-9]+)-(\d+)$", route)
            if more and method == "GET":
                return self._query_more(version, more[1], int(more[2]))
            if route.rstrip("/") == "/limits" and method == "GET":
                return _Reply(
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
            retrieve = re.match(r"^/composite/sobjects/([A-Za-z0-9_]+)/?$", route)
            if retrieve and method in ("GET", "POST"):
                return self._collections_retrieve(version, retrieve[1], method, params, body)
            if route.rstrip("/") == "/composite" and method == "POST":
                answer = composite(self.data, _json_body(body), headers, self._subrequest)
                return _Reply(200, answer)
            if route.rstrip("/") == "/composite" and method == "GET":
                return _Reply(200, self._composite_resources(version))
            if route.rstrip("/") == "/composite/batch" and method == "POST":
                answer = composite_batch(_json_body(body), headers, version, self._subrequest)
                return _Reply(200, answer)
            tree = re.match(r"^/composite/tree/([A-Za-z0-9_]+)/?$", route)
            if tree and method == "POST":
                status, answer = composite_tree(
                    self.data,
                    tree[1],
                    _json_body(body),
                    lambda name, values: self._tree_create(name, values, headers),
                )
                return _Reply(status, answer)
            jobs = re.match(r"^/jobs/(ingest|query)(?:/([A-Za-z0-9]+))?(?:/([A-Za-z]+))?/?$", route)
            if jobs:
                return self._jobs(method, version, (jobs[1], jobs[2], jobs[3]), params, body)
            if route.rstrip("/") == "/search" and method == "GET":
                return _Reply(200, search(self.data, params.get("q", "")))
            if route.rstrip("/") == "/sobjects" and method == "GET":
                return _Reply(200, self._global_describe(version))
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
            return _error(404, "NOT_FOUND", "The requested resource does not exist")
        except ApiError as exc:
            return _Reply(exc.status, [exc.error.as_single()])

    def _subrequest(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
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
            fault=None,
        )
        answer_headers = dict(reply.headers)
        if reply.status == 201 and isinstance(reply.body, dict) and "id" in reply.body:
            answer_headers["Location"] = (
                f"/services/data/v{version}{route.rstrip('/')}/{reply.body['id']}"
            )
        return reply.status, reply.body, answer_headers

    def _jobs(
        self,
        method: str,
        version: str,
        route: tuple[str, str | None, str | None],
        params: Mapping[str, str],
        body: bytes,
    ) -> _Reply:
        """Bulk API 2.0 (``_bulk``): ``route`` is (ingest|query, job id, sub-resource)."""
        kind, job_id, part = route
        bulk = self.bulk
        if job_id is None:
            if method == "GET":
                return _Reply(200, bulk.all(kind, version))
            if method != "POST":
                return _error(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed.")
            job = (
                bulk.create_ingest(_json_body(body))
                if kind == "ingest"
                else bulk.create_query(_json_body(body))
            )
            return _Reply(200, job.info(version, self.integration_user_id))
        if part is None:
            if method == "GET":
                return _Reply(200, bulk.info(job_id, kind, version))
            if method == "DELETE":
                bulk.delete(job_id, kind)
                return _Reply(204)
            if method == "PATCH":
                payload = _json_body(body)
                state = str(payload.get("state", "")) if isinstance(payload, dict) else ""
                if kind == "query":
                    info = bulk.info(job_id, kind, version)
                    if state == "Aborted":
                        bulk.jobs[job_id].state = "Aborted"
                        info["state"] = "Aborted"
                    return _Reply(200, info)
                ingest_id = job_id

                def write(
                    operation: str, record_id: str, values: dict[str, Any]
                ) -> tuple[str | None, bool, RecordError | None]:
                    return self._bulk_write(ingest_id, operation, record_id, values)

                done = bulk.set_state(job_id, state, write)
                return _Reply(200, done.info(version, self.integration_user_id))
        if kind == "ingest" and part == "batches" and method == "PUT":
            bulk.upload(job_id, body)
            return _Reply(201)
        if (
            kind == "ingest"
            and part in ("successfulResults", "failedResults", "unprocessedrecords")
            and method == "GET"
        ):
            return _Reply(200, csv=bulk.results(job_id, part))
        if kind == "query" and part == "results" and method == "GET":
            text, headers = bulk.query_results(job_id, params)
            return _Reply(200, csv=text, headers=headers)
        return _error(404, "NOT_FOUND", "The requested resource does not exist")

    def _bulk_write(
        self, job_id: str, operation: str, record_id: str, values: dict[str, Any]
    ) -> tuple[str | None, bool, RecordError | None]:
        obj = self.data.object(self.bulk.jobs[job_id].object)
        if obj is None:  # pragma: no cover - jobs are created for known objects
            return None, False, RecordError("INVALID_TYPE", "unknown object")
        try:
            self.data.check_known_fields(obj, values)
            typed = self.data.from_text(obj, values)
            if operation == "insert":
                new_id, error = self.data.create(obj, typed)
                return new_id, True, error
            if operation == "update":
                updated, error = self.data.update(obj, record_id, typed)
                return updated, False, error
        except ApiError as exc:
            return None, False, exc.error
        error = self._delete_one(record_id)
        return (to_18(record_id) if is_well_formed(record_id) else record_id), False, error

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
            "batch": f"{base}/batch",
            "sobjects": f"{base}/sobjects",
        }

    def _tree_create(
        self, object_name: str, values: dict[str, Any], headers: Mapping[str, str]
    ) -> tuple[str | None, RecordError | None]:
        obj = self.data.object(object_name)
        if obj is None:
            return None, RecordError(
                "INVALID_TYPE", f"sObject type '{object_name}' is not supported."
            )
        try:
            self.data.check_known_fields(obj, values)
        except ApiError as exc:
            return None, exc.error
        return self.data.create(
            obj,
            values,
            auto_assign=headers.get("sforce-auto-assign"),
            allow_save=_allow_save(headers),
        )

    def _collections_retrieve(
        self, version: str, object_name: str, method: str, params: Mapping[str, str], body: bytes
    ) -> _Reply:
        obj = self.data.object(object_name)
        if obj is None:
            return _error(404, "NOT_FOUND", "The requested resource does not exist")
        if method == "POST":
            payload = _json_body(body)
            if not isinstance(payload, dict):
                raise ApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
            ids = [str(i) for i in payload.get("ids") or []]
            fields = [str(f) for f in payload.get("fields") or []]
        else:
            ids = [i for i in params.get("ids", "").split(",") if i]
            fields = [f for f in params.get("fields", "").split(",") if f]
        if not ids or not fields:
            raise ApiError(400, "INVALID_QUERY_PARAMETER_VALUE", "ids and fields are required")
        if len(ids) > 2000:
            raise ApiError(400, "EXCEEDED_ID_LIMIT", "cannot retrieve more than 2000 records")
        paths = [self.data.resolve_field(obj, f) for f in fields]
        out: list[Any] = []
        for record_id in ids:
            found = self.data.find(record_id)
            if found is None or found[0].name != obj.name:
                out.append(None)
            else:
                out.append(self.data.render(obj, found[1], paths, version=version))
        return _Reply(200, out)

    def _collections_delete(self, params: Mapping[str, str]) -> _Reply:
        ids = [i for i in params.get("ids", "").split(",") if i]
        if not ids:
            raise ApiError(400, "INVALID_QUERY_PARAMETER_VALUE", "ids is required")
        if len(ids) > 200:
            raise ApiError(
                400,
                "EXCEEDED_ID_LIMIT",
                "record limit reached. cannot submit more than 200 records into this call",
            )
        all_or_none = params.get("allOrNone", "false").lower() == "true"
        snapshot = self.data.snapshot() if all_or_none else None
        results: list[dict[str, Any]] = []
        failed = False
        for record_id in ids:
            error = self._delete_one(record_id)
            failed |= error is not None
            if error is None:
                results.append({"id": to_18(record_id), "success": True, "errors": []})
            else:
                results.append(
                    {
                        "id": record_id,
                        "success": False,
                        "errors": [error.as_collection(with_extra=False)],
                    }
                )
        if all_or_none and failed and snapshot is not None:
            self.data.restore(snapshot)
            rolled = RecordError(
                "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "Record rolled back because not all records were valid and the request was "
                "using AllOrNone header",
            )
            for entry in results:
                if entry["success"]:
                    entry.update(success=False, errors=[rolled.as_collection(with_extra=False)])
        return _Reply(200, results)

    def _delete_one(self, record_id: str) -> RecordError | None:
        if not is_well_formed(record_id):
            return RecordError("MALFORMED_ID", f"malformed id {record_id}", ("Id",))
        if to_18(record_id) in self.data.deleted:
            return RecordError("ENTITY_IS_DELETED", "entity is deleted")
        found = self.data.find(record_id)
        if found is None:
            return RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
        self.data.delete(found[0], found[1]["Id"])
        return None

    def _changed(
        self, version: str, obj: ObjectDef, which: str, params: Mapping[str, str]
    ) -> _Reply:
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
            return _Reply(200, {"ids": ids, "latestDateCovered": format_datetime(covered)})
        deleted = [
            {"id": rid, "deletedDate": format_datetime(stamp)}
            for rid, stamp in self.data.deleted_at.items()
            if start <= stamp <= end and rid in self.data.recycle.get(obj.name.lower(), {})
        ]
        earliest = min(self.data.deleted_at.values(), default=covered)
        return _Reply(
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
    ) -> _Reply:
        if len(soql) > SOQL_LIMIT:
            raise ApiError(
                400,
                "MALFORMED_QUERY",
                f"SOQL statements cannot be longer than {SOQL_LIMIT} characters",
            )
        _, records, total, is_count = self.data.query(soql, include_deleted=include_deleted)
        if is_count:
            return _Reply(200, {"totalSize": total, "done": True, "records": []})
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
    ) -> _Reply:
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
        return _Reply(200, body)

    def _query_more(self, version: str, cursor: str, offset: int) -> _Reply:
        stored = self._cursors.get(cursor)
        if stored is None or offset > len(stored[0]):
            return _error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
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
    ) -> _Reply:
        obj = self.data.object(object_name)
        if obj is None:
            return _error(404, "NOT_FOUND", "The requested resource does not exist")
        if record_id == "describe" and method == "GET":
            return _Reply(200, obj.describe(f"/services/data/v{version}"))
        if record_id in ("updated", "deleted") and method == "GET":
            return self._changed(version, obj, record_id, params)
        if record_id is None:
            if method == "POST":
                payload = _json_body(body)
                if not isinstance(payload, dict):
                    raise ApiError(
                        400, "JSON_PARSER_ERROR", "The request body must be a JSON object"
                    )
                self.data.check_known_fields(obj, payload)
                new_id, error = self.data.create(
                    obj,
                    payload,
                    auto_assign=headers.get("sforce-auto-assign"),
                    allow_save=_allow_save(headers),
                )
                if error is not None:
                    return _Reply(_status_for(error), [error.as_single()])
                return _Reply(201, {"id": new_id, "success": True, "errors": []})
            return _Reply(200, {"objectDescribe": {"name": obj.name}, "recentItems": []})
        return self._record(method, obj, record_id, headers, body)

    def _record(
        self, method: str, obj: ObjectDef, record_id: str, headers: Mapping[str, str], body: bytes
    ) -> _Reply:
        if not is_well_formed(record_id):
            return _Reply(
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
            return _Reply(404, [RecordError("ENTITY_IS_DELETED", "entity is deleted").as_single()])
        found = self.data.find(record_id)
        if found is None or found[0].name != obj.name:
            return _error(404, "NOT_FOUND", "The requested resource does not exist")
        _, record = found
        if method == "GET":
            return _Reply(200, self.data.render_record(obj, record))
        if method == "PATCH":
            payload = _json_body(body)
            if not isinstance(payload, dict):
                raise ApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
            self.data.check_known_fields(obj, payload)
            _, error = self.data.update(
                obj, record_id, payload, auto_assign=headers.get("sforce-auto-assign")
            )
            if error is not None:
                return _Reply(_status_for(error), [error.as_single()])
            return _Reply(204)
        if method == "DELETE":
            self.data.delete(obj, record["Id"])
            return _Reply(204)
        return _error(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed.")

    def _collections(
        self, method: str, headers: Mapping[str, str], body: bytes, *, lock_fault: bool
    ) -> _Reply:
        payload = _json_body(body)
        if not isinstance(payload, dict) or not isinstance(payload.get("records"), list):
            raise ApiError(400, "JSON_PARSER_ERROR", "The request body needs a records array")
        records: list[Any] = payload["records"]
        if len(records) > 200:
            raise ApiError(
                400,
                "EXCEEDED_ID_LIMIT",
                "record limit reached. cannot submit more than 200 records into this call",
            )
        all_or_none = bool(payload.get("allOrNone", False))
        typed: list[tuple[ObjectDef, dict[str, Any]]] = []
        for record in records:
            if not isinstance(record, dict):
                raise ApiError(400, "JSON_PARSER_ERROR", "Each record must be a JSON object")
            attributes = record.get("attributes")
            type_name = attributes.get("type") if isinstance(attributes, dict) else None
            obj = self.data.object(type_name) if isinstance(type_name, str) else None
            if obj is None:
                raise ApiError(400, "INVALID_TYPE", "Must send a concrete entity type.")
            self.data.check_known_fields(obj, record)
            typed.append((obj, record))
        if lock_fault:
            error = RecordError(
                "UNABLE_TO_LOCK_ROW",
                "unable to obtain exclusive access to this record or 1 records",
            )
            return _Reply(
                200,
                [
                    {"success": False, "errors": [error.as_collection(with_extra=False)]}
                    for _ in typed
                ],
            )
        snapshot = self.data.snapshot() if all_or_none else None
        auto_assign = headers.get("sforce-auto-assign")
        rule = self.data.duplicate_rule
        with_extra = rule is not None and rule.include_result_in_collections
        outcomes: list[tuple[str | None, RecordError | None]] = []
        for obj, record in typed:
            if method == "POST":
                outcomes.append(
                    self.data.create(
                        obj, record, auto_assign=auto_assign, allow_save=_allow_save(headers)
                    )
                )
            else:
                outcomes.append(
                    self.data.update(
                        obj, record.get("id") or record.get("Id"), record, auto_assign=auto_assign
                    )
                )
        failed = any(error is not None for _, error in outcomes)
        if all_or_none and failed and snapshot is not None:
            self.data.restore(snapshot)
            rolled = RecordError(
                "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "Record rolled back because not all records were valid and the request was "
                "using AllOrNone header",
            )
            return _Reply(
                200,
                [
                    {
                        "success": False,
                        "errors": [(error or rolled).as_collection(with_extra=with_extra)],
                    }
                    for _, error in outcomes
                ],
            )
        results: list[dict[str, Any]] = []
        for new_id, outcome in outcomes:
            if outcome is None:
                results.append({"id": new_id, "success": True, "errors": []})
            else:
                results.append(
                    {"success": False, "errors": [outcome.as_collection(with_extra=with_extra)]}
                )
        return _Reply(200, results)

    # -- OAuth -------------------------------------------------------------------------------

    def _token_endpoint(self, headers: Mapping[str, str], body: bytes) -> _Reply:
        self.token_requests += 1
        form = dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
        basic_id, basic_secret = _basic_auth(headers.get("authorization", ""))
        client_id = form.get("client_id") or basic_id
        client_secret = form.get("client_secret") or basic_secret
        grant = form.get("grant_type", "")
        if grant == "refresh_token":
            owner = self._refresh_tokens.get(form.get("refresh_token", ""))
            client = self._clients.get(client_id or "")
            if client is None:
                return _oauth_error("invalid_client_id", "client identifier invalid")
            if owner != client.client_id:
                return _oauth_error("invalid_grant", "expired access/refresh token")
            if client.client_secret is not None and client_secret != client.client_secret:
                return _oauth_error("invalid_client", "invalid client credentials")
            extra: dict[str, str] = {}
            if client.rotate_refresh_tokens:
                del self._refresh_tokens[form["refresh_token"]]
                extra["refresh_token"] = self.issue_refresh_token(client.client_id)
            return self._token_reply(extra)
        if grant == "client_credentials":
            client = self._clients.get(client_id or "")
            if client is None or not client.client_credentials:
                return _oauth_error("invalid_client_id", "client identifier invalid")
            if client_secret != client.client_secret:
                return _oauth_error("invalid_client", "invalid client credentials")
            return self._token_reply({})
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return self._jwt_grant(form.get("assertion", ""))
        if grant == "password":
            client = self._clients.get(client_id or "")
            if client is None or not client.password_flow:
                return _oauth_error("invalid_client_id", "client identifier invalid")
            if client.client_secret is not None and client_secret != client.client_secret:
                return _oauth_error("invalid_client", "invalid client credentials")
            login = self.logins.get(form.get("username", "").lower())
            if login is None or not login.accepts(form.get("password", "")):
                return _oauth_error("invalid_grant", "authentication failure")
            return self._token_reply({}, user_id=login.user_id)
        if grant == "authorization_code":
            return self._code_grant(form, client_id, client_secret)
        return _oauth_error("unsupported_grant_type", "grant type not supported")

    def _authorize(self, params: Mapping[str, str]) -> _Reply:
        client = self._clients.get(params.get("client_id", ""))
        redirect = params.get("redirect_uri", "")
        if client is None:
            return _Reply(400, html="<html><body>error=invalid_client_id</body></html>")
        if redirect not in client.redirect_uris:
            return _Reply(
                400,
                html="<html><body>error=redirect_uri_mismatch&amp;error_description=redirect_uri "
                "must match configuration</body></html>",
            )
        query: dict[str, str] = {}
        if params.get("response_type") != "code":
            query = {
                "error": "unsupported_response_type",
                "error_description": "response type not supported",
            }
        else:
            code = f"aPrx{self._rng.getrandbits(128):032x}"
            challenge = params.get("code_challenge") or None
            self._codes[code] = AuthCode(
                client.client_id,
                redirect,
                self.consenting_user_id,
                self.data.now().timestamp() + 15 * 60,
                challenge,
                params.get("scope") or "api refresh_token",
            )
            query = {"code": code}
        if "state" in params:
            query["state"] = params["state"]
        location = str(httpx.URL(redirect).copy_merge_params(query))
        return _Reply(302, headers={"Location": location})

    def _code_grant(
        self, form: Mapping[str, str], client_id: str | None, client_secret: str | None
    ) -> _Reply:
        client = self._clients.get(client_id or "")
        if client is None:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        code = self._codes.pop(form.get("code", ""), None)
        if (
            code is None
            or code.client_id != client.client_id
            or code.expires_at <= self.data.now().timestamp()
        ):
            return _oauth_error("invalid_grant", "invalid authorization code")
        if form.get("redirect_uri", "") != code.redirect_uri:
            return _oauth_error("redirect_uri_mismatch", "redirect_uri must match configuration")
        if code.challenge is not None:
            if not pkce_matches(code.challenge, form.get("code_verifier", "")):
                return _oauth_error("invalid_grant", "invalid code verifier")
        elif client.client_secret is not None and client_secret != client.client_secret:
            return _oauth_error("invalid_client", "invalid client credentials")
        refresh = self.issue_refresh_token(client.client_id)
        reply = self._token_reply({"refresh_token": refresh}, user_id=code.user_id)
        self._access_by_refresh.setdefault(refresh, set()).add(reply.body["access_token"])
        return reply

    def _revoke(self, token: str) -> _Reply:
        if token in self._tokens:
            del self._tokens[token]
            return _Reply(200)
        if token in self._refresh_tokens:
            del self._refresh_tokens[token]
            for access in self._access_by_refresh.pop(token, set()):
                self._tokens.pop(access, None)
            return _Reply(200)
        return _oauth_error("unsupported_token_type", "this token type is not supported")

    def _soap_login(self, body: bytes) -> _Reply:
        request = soap_login_request(body)
        if request is None:
            return _Reply(500, xml=soap_fault("INVALID_LOGIN", "Invalid request: no login found"))
        username, password = request
        login = self.logins.get(username.lower())
        if login is None or not login.accepts(password):
            message = "Invalid username, password, security token; or user locked out."
            return _Reply(500, xml=soap_fault("INVALID_LOGIN", message))
        self.token_requests += 1
        token = self._new_token()
        self._tokens[token] = 0
        server_url = f"{self.instance_url}/services/Soap/u/61.0/{self.org_id}"
        answer = soap_login_answer(
            server_url=server_url,
            session_id=token,
            user_id=login.user_id,
            org_id=self.org_id,
            username=login.username,
        )
        return _Reply(200, xml=answer)

    def _jwt_grant(self, assertion: str) -> _Reply:
        try:
            import jwt
        except ImportError:  # pragma: no cover - PyJWT is a test dependency
            return _oauth_error("invalid_grant", "JWT support is not installed on this server")
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            return _oauth_error("invalid_grant", "invalid assertion")
        client = self._clients.get(str(unverified.get("iss", "")))
        if client is None or client.jwt_public_key is None:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        try:
            claims = jwt.decode(
                assertion,
                client.jwt_public_key,
                algorithms=["RS256"],
                audience=sorted(self.login_audiences),
                options={"verify_exp": False},
            )
        except jwt.InvalidAudienceError:
            return _oauth_error("invalid_grant", "audience is invalid")
        except jwt.PyJWTError:
            return _oauth_error("invalid_grant", "invalid assertion")
        try:
            expires = float(claims.get("exp", ""))
        except (TypeError, ValueError):
            expires = 0.0
        if expires <= self.data.now().timestamp():
            return _oauth_error("invalid_grant", "expired authorization code")
        if client.jwt_username is not None and claims.get("sub") != client.jwt_username:
            return _oauth_error("invalid_grant", "user hasn't approved this consumer")
        return self._token_reply({})

    def _token_reply(self, extra: Mapping[str, str], *, user_id: str | None = None) -> _Reply:
        token = self._new_token()
        self._tokens[token] = 0
        issued = int(self.data.now().timestamp() * 1000)
        who = user_id or self.integration_user_id
        body = {
            "access_token": token,
            "instance_url": self.instance_url,
            "id": f"https://login.salesforce.com/id/{self.org_id}/{who}",
            "token_type": "Bearer",
            "issued_at": str(issued),
            "signature": base64.b64encode(f"sig-{issued}".encode()).decode(),
            "scope": "api refresh_token",
            **extra,
        }
        return _Reply(200, body)


def _json_body(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError:
        raise ApiError(400, "JSON_PARSER_ERROR", "The request body is not valid JSON") from None


def _batch_size(options: str) -> int | None:
    """``Sforce-Query-Options: batchSize=N``: 200 to 2,000 records a page (REST API guide,
    "Query Options Header")."""
    found = re.search(r"batchsize\s*=\s*(\d+)", options.lower())
    return min(max(int(found[1]), 200), 2000) if found else None


def _allow_save(headers: Mapping[str, str]) -> bool:
    value = headers.get("sforce-duplicate-rule-header", "")
    return "allowsave=true" in value.replace(" ", "").lower()


def _status_for(error: RecordError) -> int:
    return 404 if error.code in ("NOT_FOUND", "ENTITY_IS_DELETED") else 400


def _error(status: int, code: str, message: str) -> _Reply:
    return _Reply(status, [{"message": message, "errorCode": code}])


def _oauth_error(code: str, description: str) -> _Reply:
    return _Reply(400, {"error": code, "error_description": description})


def _basic_auth(header: str) -> tuple[str | None, str | None]:
    if not header.lower().startswith("basic "):
        return None, None
    try:
        decoded = base64.b64decode(header[6:]).decode()
    except ValueError:
        return None, None
    client_id, _, secret = decoded.partition(":")
    return client_id, secret


def field_value_json(value: Any) -> Any:
    return json_value(value)
