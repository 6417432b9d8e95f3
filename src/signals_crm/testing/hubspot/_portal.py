"""The local HubSpot portal: an in-memory CRM answering HubSpot's REST subset.

Theory of operation:

1. :class:`LocalHubSpot` holds the state (objects, associations, owners, properties, lists,
   tokens) behind one lock, and answers ``httpx.Request``s with ``httpx.Response``s carrying
   HubSpot's real statuses, bodies and headers. ``transport()`` wraps it in an
   ``httpx.MockTransport`` (for ``httpx.Client`` and ``httpx.AsyncClient`` alike);
   :class:`~signals_crm.testing.hubspot.LocalHubSpotServer` serves it over loopback HTTP.
2. Every request goes through, in order: injected latency, scheduled or random faults, auth
   (``Authorization: Bearer``; static tokens and expiring OAuth tokens), rate limits (a rolling
   burst window with ``X-HubSpot-RateLimit-*`` headers, a daily budget, and a separate 5/s
   search bucket without headers), then the endpoint.
3. Paths of both families are served: ``/crm/v3/objects/contacts`` and
   ``/crm/objects/2026-03/contacts`` (and the same for owners, properties and lists).
4. Domain rules: contact emails are unique (case-insensitive, ``hs_additional_emails``
   included; a duplicate create is ``409 CONFLICT`` "Contact already exists. Existing ID: N"
   for the *whole* batch); ``lifecyclestage`` only moves forward (a backward write is ignored,
   or refused with ``VALIDATION_ERROR`` when ``backward_lifecycle="reject"``); activities need
   ``hs_timestamp`` and their inline associations must name existing records with a known
   type id; property values are validated against the properties (unknown, read-only, option,
   number, bool, date, email); every value is returned as a string, requested unset ones as
   ``null``.
5. Batch creates with an ``objectWriteTraceId`` on every input answer per-input errors as 207
   multi-status; without them a bad input fails the call with 400. Batch reads answer missing
   ids as 207 ``OBJECT_NOT_FOUND`` with ``context.ids``.
6. Time and randomness are injected: ``clock`` (epoch seconds), ``sleep`` (latency) and
   ``seed`` (correlation ids, random faults), so runs are reproducible.
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import random
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Literal
from urllib.parse import parse_qs, unquote

import attrs
import httpx

from signals_crm.adapters.hubspot._requests import parse_marker, property_value
from signals_crm.core.model import FieldValue, PersonKind, is_valid_email, normalize_email
from signals_crm.testing.hubspot._schema import (
    LIFECYCLE_STAGES,
    OBJECT_TYPE_IDS,
    default_properties,
    make_property,
)

__all__ = ["Drop", "Faults", "HubSpotBackdoor", "LocalHubSpot"]

_TYPE_ALIASES: Final[Mapping[str, str]] = {
    **{t: t for t in OBJECT_TYPE_IDS},
    **{v: k for k, v in OBJECT_TYPE_IDS.items()},
    "contact": "contacts",
    "company": "companies",
    "task": "tasks",
    "note": "notes",
    "meeting": "meetings",
}
_OBJECT_LABEL: Final[Mapping[str, str]] = {
    "contacts": "CONTACT",
    "companies": "COMPANY",
    "tasks": "TASK",
    "notes": "NOTE",
    "meetings": "MEETING",
}
_MODIFIED: Final[Mapping[str, str]] = {"contacts": "lastmodifieddate"}
_DEFAULT_PROPS: Final[Mapping[str, tuple[str, ...]]] = {
    "contacts": ("firstname", "lastname", "email"),
    "companies": ("name", "domain"),
}
_QUERY_PROPS: Final[Mapping[str, tuple[str, ...]]] = {
    "contacts": ("firstname", "lastname", "email", "phone", "hs_additional_emails", "company"),
    "companies": ("website", "phone", "name", "domain"),
    "tasks": ("hs_task_body", "hs_task_subject"),
    "notes": ("hs_note_body",),
    "meetings": ("hs_meeting_title", "hs_meeting_body"),
}
# (from, typeId) -> to
_ASSOCIATION_TYPES: Final[Mapping[tuple[str, int], str]] = {
    ("tasks", 204): "contacts",
    ("notes", 202): "contacts",
    ("meetings", 200): "contacts",
    ("tasks", 192): "companies",
    ("notes", 190): "companies",
    ("meetings", 188): "companies",
    ("contacts", 279): "companies",
    ("contacts", 1): "companies",
    ("companies", 280): "contacts",
    ("companies", 2): "contacts",
}
_OPERATORS: Final = frozenset(
    {
        "EQ",
        "NEQ",
        "LT",
        "LTE",
        "GT",
        "GTE",
        "BETWEEN",
        "IN",
        "NOT_IN",
        "HAS_PROPERTY",
        "NOT_HAS_PROPERTY",
        "CONTAINS_TOKEN",
        "NOT_CONTAINS_TOKEN",
    }
)
_NUMBER = re.compile(r"^-?(\d+\.?\d*|\.\d+)$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_PATHS = (
    re.compile(r"^/crm/v3/(?P<api>objects|owners|properties|lists)(?P<rest>/.*)?$"),
    re.compile(
        r"^/crm/(?P<api>objects|owners|properties|lists)/\d{4}-\d{2}(?:-beta)?(?P<rest>/.*)?$"
    ),
)
_OAUTH = re.compile(r"^/oauth/(?:v1|v3|\d{4}-\d{2})/token$")
_HTML_GATEWAY = (
    "<html><head><title>{status} Bad Gateway</title></head><body><center><h1>{status} Bad "
    "Gateway</h1></center><hr><center>cloudflare</center></body></html>"
)


class Drop:
    """Answer with no answer: the connection is closed (after the request took effect)."""


@attrs.define
class _Fault:
    kind: Literal["status", "html", "rate_limit", "drop", "drop_before"]
    status: int = 503
    path: str | None = None
    count: int = 1
    policy: str = "TEN_SECONDLY_ROLLING"


class Faults:
    """Fault injection: faults scheduled for the next matching requests, and random ones.

    ``latency`` (seconds, through the portal's injected ``sleep``) applies to every request;
    ``error_rate`` and ``drop_rate`` are probabilities drawn from the portal's seeded random
    generator; ``expire_tokens_after`` expires every OAuth access token after that many
    authenticated calls.
    """

    def __init__(self) -> None:
        self._scheduled: list[_Fault] = []
        self.latency = 0.0
        self.error_rate = 0.0
        self.drop_rate = 0.0
        self.expire_tokens_after: int | None = None

    def fail_next(self, status: int = 503, *, count: int = 1, path: str | None = None) -> None:
        """Answer the next ``count`` requests (whose path contains ``path``) with ``status``."""
        self._scheduled.append(_Fault("status", status=status, path=path, count=count))

    def gateway_error_next(
        self, status: int = 502, *, count: int = 1, path: str | None = None
    ) -> None:
        """Answer with an HTML gateway page (as Cloudflare does), not JSON."""
        self._scheduled.append(_Fault("html", status=status, path=path, count=count))

    def lock_next(self, *, count: int = 1, path: str | None = None) -> None:
        """Answer ``423 Locked`` (high-volume upserts)."""
        self._scheduled.append(_Fault("status", status=423, path=path, count=count))

    def rate_limit_next(
        self,
        policy: str = "TEN_SECONDLY_ROLLING",
        *,
        count: int = 1,
        path: str | None = None,
    ) -> None:
        """Answer 429 with ``policyName`` (``TEN_SECONDLY_ROLLING``, ``SECONDLY``, ``DAILY``)."""
        self._scheduled.append(
            _Fault("rate_limit", status=429, path=path, count=count, policy=policy)
        )

    def drop_next(
        self, *, count: int = 1, path: str | None = None, after_commit: bool = True
    ) -> None:
        """Close the connection without answering; ``after_commit``: the request took effect."""
        kind: Literal["drop", "drop_before"] = "drop" if after_commit else "drop_before"
        self._scheduled.append(_Fault(kind, path=path, count=count))

    def take(self, path: str) -> _Fault | None:
        """The scheduled fault for a request to ``path``, if any (consumes one use)."""
        for fault in self._scheduled:
            if fault.path is None or fault.path in path:
                fault.count -= 1
                if fault.count <= 0:
                    self._scheduled.remove(fault)
                return fault
        return None


@attrs.define
class _Record:
    id: str
    props: dict[str, str]
    created: float
    updated: float
    archived: bool = False
    assoc: dict[str, dict[str, set[int]]] = attrs.field(factory=dict)


@attrs.define
class _Owner:
    id: str
    email: str
    first_name: str | None
    last_name: str | None
    user_id: int
    archived: bool = False
    created: float = 0.0


@attrs.define
class _List:
    id: str
    name: str
    object_type_id: str
    processing_type: str
    members: dict[str, float] = attrs.field(factory=dict)
    created: float = 0.0


class _Problem(Exception):  # noqa: N818  # a control-flow signal, not an error of the library
    def __init__(self, response: httpx.Response) -> None:
        super().__init__("problem")
        self.response = response


class LocalHubSpot:
    """An in-memory HubSpot portal that answers HubSpot's REST subset (see module docstring).

    ``tokens`` are static bearer tokens (private apps); :meth:`add_oauth_client` registers an
    OAuth app whose refresh token the ``/oauth/v1/token`` endpoint accepts.
    """

    def __init__(
        self,
        *,
        tokens: Iterable[str] = ("local-hubspot-token",),
        seed: int | None = 0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        burst_limit: int | None = 100,
        burst_interval: float = 10.0,
        daily_limit: int | None = 250_000,
        search_per_second: int | None = 5,
        access_token_ttl: int = 1800,
        backward_lifecycle: Literal["ignore", "reject"] = "ignore",
        search_lag: float = 0.0,
        send_retry_after: bool = False,
        portal_id: int = 891936587,
    ) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.sleep = sleep
        self.rng = random.Random(seed)  # noqa: S311  # reproducible ids, not cryptography
        self.faults = Faults()
        self.portal_id = portal_id
        self.burst_limit = burst_limit
        self.burst_interval = burst_interval
        self.daily_limit = daily_limit
        self.search_per_second = search_per_second
        self.access_token_ttl = access_token_ttl
        self.backward_lifecycle = backward_lifecycle
        self.search_lag = search_lag
        self.send_retry_after = send_retry_after
        self.static_tokens: set[str] = set(tokens)
        self.access_tokens: dict[str, float] = {}
        self.oauth_clients: dict[str, tuple[str, set[str]]] = {}
        self.denied_scopes: set[str] = set()
        self.properties = default_properties()
        self.objects: dict[str, dict[str, _Record]] = {t: {} for t in OBJECT_TYPE_IDS}
        self.owners: dict[str, _Owner] = {}
        self.lists: dict[str, _List] = {}
        self._ids = itertools.count(1001)
        self._user_ids = itertools.count(9_000_001)
        self._burst: deque[float] = deque()
        self._search: deque[float] = deque()
        self.daily_used = 0
        self.calls = 0
        self.authenticated_calls = 0
        self.token_requests = 0
        self.rate_limited = 0
        self.requests: list[tuple[str, str]] = []
        """``(method, path)`` of every request received (observability for tests)."""

    def __repr__(self) -> str:
        counts = {t: len(o) for t, o in self.objects.items()}
        return f"LocalHubSpot(objects={counts}, owners={len(self.owners)}, lists={len(self.lists)})"

    # ------------------------------------------------------------------------------------------
    # Set-up and wiring

    @property
    def backdoor(self) -> HubSpotBackdoor:
        """Direct access to the state, for tests (the conformance kit's Backdoor)."""
        return HubSpotBackdoor(self)

    def transport(self) -> httpx.MockTransport:
        """An in-process transport serving this portal (sync and async clients)."""
        return httpx.MockTransport(self.handle)

    def add_oauth_client(self, client_id: str, client_secret: str, refresh_token: str) -> None:
        """Register an OAuth app and one of its refresh tokens."""
        with self.lock:
            secret, refresh = self.oauth_clients.get(client_id, (client_secret, set()))
            refresh.add(refresh_token)
            self.oauth_clients[client_id] = (secret, refresh)

    def issue_access_token(self, ttl: float | None = None) -> str:
        """A fresh OAuth access token valid for ``ttl`` seconds (the configured TTL)."""
        with self.lock:
            token = f"CJ{uuid.UUID(int=self.rng.getrandbits(128)).hex}"
            self.access_tokens[token] = self.clock() + (
                ttl if ttl is not None else self.access_token_ttl
            )
            return token

    def expire_access_tokens(self) -> None:
        """Expire every OAuth access token now."""
        with self.lock:
            now = self.clock()
            for token in self.access_tokens:
                self.access_tokens[token] = min(self.access_tokens[token], now - 1)

    def add_property(self, object_type: str, name: str, **options: Any) -> None:
        """Create a custom property (``make_property`` options: type, field_type, options...)."""
        with self.lock:
            kind = _TYPE_ALIASES[object_type]
            label = str(options.pop("label", name))
            self.properties[kind][name] = make_property(
                name, label, hubspot_defined=False, **options
            )

    # ------------------------------------------------------------------------------------------
    # Helpers

    def _now_iso(self, at: float | None = None) -> str:
        moment = datetime.fromtimestamp(self.clock() if at is None else at, tz=UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"

    def _correlation(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _json(
        self, status: int, body: Any, headers: Mapping[str, str] | None = None
    ) -> httpx.Response:
        extra = dict(headers or {})
        extra.setdefault("x-hubspot-correlation-id", self._correlation())
        return httpx.Response(status, json=body, headers=extra)

    def _error_body(self, category: str | None, message: str, **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"status": "error", "message": message}
        body["correlationId"] = self._correlation()
        if category is not None:
            body["category"] = category
        body.update({k: v for k, v in extra.items() if v is not None})
        return body

    def _error(
        self, status: int, category: str | None, message: str, **extra: Any
    ) -> httpx.Response:
        body = self._error_body(category, message, **extra)
        return self._json(status, body, {"x-hubspot-correlation-id": body["correlationId"]})

    def _new_id(self) -> str:
        return str(next(self._ids))

    # ------------------------------------------------------------------------------------------
    # Entry points

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer ``request`` (raises ``httpx.RemoteProtocolError`` for a dropped connection)."""
        answer = self.dispatch(request)
        if isinstance(answer, Drop):
            msg = "Server disconnected without sending a response."
            raise httpx.RemoteProtocolError(msg, request=request)
        return answer

    def dispatch(self, request: httpx.Request) -> httpx.Response | Drop:
        """Answer ``request``, or :class:`Drop` when the connection must close unanswered."""
        if self.faults.latency > 0:
            self.sleep(self.faults.latency)
        with self.lock:
            self.calls += 1
            path = request.url.path
            self.requests.append((request.method, path))
            fault = self.faults.take(path)
            if (
                fault is None
                and self.faults.error_rate
                and self.rng.random() < self.faults.error_rate
            ):
                fault = _Fault("status", status=503)
            if (
                fault is None
                and self.faults.drop_rate
                and self.rng.random() < self.faults.drop_rate
            ):
                fault = _Fault("drop")
            if fault is not None and fault.kind != "drop":
                return self._fault_answer(fault)
            try:
                response = self._route(request)
            except _Problem as problem:
                response = problem.response
            if fault is not None:
                return Drop()
            return response

    def _fault_answer(self, fault: _Fault) -> httpx.Response | Drop:
        if fault.kind == "drop_before":
            return Drop()
        if fault.kind == "html":
            page = _HTML_GATEWAY.format(status=fault.status)
            return httpx.Response(
                fault.status, content=page.encode(), headers={"content-type": "text/html"}
            )
        if fault.kind == "rate_limit":
            return self._rate_limited(fault.policy)
        if fault.status == 423:
            return self._error(423, "LOCKED", "Resource is locked; retry after 2 seconds")
        return self._error(fault.status, None, "internal error")

    def _rate_limited(self, policy: str) -> httpx.Response:
        self.rate_limited += 1
        messages = {
            "DAILY": "You have reached your daily limit.",
            "SECONDLY": "You have reached your secondly limit.",
            "TEN_SECONDLY_ROLLING": "You have reached your ten_secondly_rolling limit.",
        }
        body = {
            "status": "error",
            "message": messages.get(policy, "You have reached your limit."),
            "errorType": "RATE_LIMIT",
            "correlationId": self._correlation(),
            "policyName": policy,
            "groupName": "publicapi:local",
        }
        headers: dict[str, str] = {}
        if self.send_retry_after:
            headers["Retry-After"] = "1" if policy == "SECONDLY" else "10"
        return self._json(429, body, headers)

    # ------------------------------------------------------------------------------------------
    # Auth and limits

    def _authenticate(self, request: httpx.Request) -> bool:
        """Check the bearer token; returns whether it is static (raises a 401 otherwise)."""
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if token in self.static_tokens:
            self.authenticated_calls += 1
            return True
        expiry = self.access_tokens.get(token)
        if expiry is None:
            raise _Problem(
                self._error(
                    401,
                    "INVALID_AUTHENTICATION",
                    "Authentication credentials not found. This API supports OAuth 2.0 "
                    "authentication and you can find more details at "
                    "https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                )
            )
        now = self.clock()
        if now >= expiry:
            ago = int(now - expiry) + 1
            raise _Problem(
                self._error(
                    401,
                    "EXPIRED_AUTHENTICATION",
                    f"The OAuth token used to make this call expired {ago} second(s) ago.",
                )
            )
        self.authenticated_calls += 1
        limit = self.faults.expire_tokens_after
        if limit is not None and self.authenticated_calls >= limit:
            self.faults.expire_tokens_after = None
            self.expire_access_tokens()
        return False

    def _limit_headers(self, static: bool) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.burst_limit is not None:
            headers["X-HubSpot-RateLimit-Interval-Milliseconds"] = str(
                int(self.burst_interval * 1000)
            )
            headers["X-HubSpot-RateLimit-Max"] = str(self.burst_limit)
            headers["X-HubSpot-RateLimit-Remaining"] = str(
                max(self.burst_limit - len(self._burst), 0)
            )
            headers["X-HubSpot-RateLimit-Secondly"] = str(max(self.burst_limit // 10, 1))
            headers["X-HubSpot-RateLimit-Secondly-Remaining"] = headers[
                "X-HubSpot-RateLimit-Secondly"
            ]
        if static and self.daily_limit is not None:
            headers["X-HubSpot-RateLimit-Daily"] = str(self.daily_limit)
            headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(
                max(self.daily_limit - self.daily_used, 0)
            )
        return headers

    def _count(self, search: bool) -> None:
        """Count one call against the windows; raise a 429 when a window is full."""
        now = self.clock()
        if search:
            if self.search_per_second is None:
                return
            while self._search and self._search[0] <= now - 1.0:
                self._search.popleft()
            if len(self._search) >= self.search_per_second:
                raise _Problem(self._rate_limited("SECONDLY"))
            self._search.append(now)
            return
        if self.daily_limit is not None and self.daily_used >= self.daily_limit:
            raise _Problem(self._rate_limited("DAILY"))
        if self.burst_limit is not None:
            while self._burst and self._burst[0] <= now - self.burst_interval:
                self._burst.popleft()
            if len(self._burst) >= self.burst_limit:
                raise _Problem(self._rate_limited("TEN_SECONDLY_ROLLING"))
            self._burst.append(now)
        self.daily_used += 1

    # ------------------------------------------------------------------------------------------
    # Routing

    def _route(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if _OAUTH.match(path):
            if request.method != "POST":
                return self._error(405, None, "Method not allowed")
            return self._oauth_token(request)
        for pattern in _PATHS:
            found = pattern.match(path)
            if found:
                break
        else:
            return self._error(404, None, f"Unknown path {path}")
        api = found.group("api")
        parts = [unquote(p) for p in (found.group("rest") or "").split("/") if p]
        static = self._authenticate(request)
        search = api == "objects" and len(parts) == 2 and parts[1] == "search"
        self._count(search)
        response = self._endpoint(request, api, parts)
        if not search:
            response.headers.update(self._limit_headers(static))
        return response

    def _body(self, request: httpx.Request) -> Any:
        if not request.content:
            return None
        try:
            return json.loads(request.content)
        except ValueError:
            raise _Problem(
                self._error(400, "VALIDATION_ERROR", "Invalid input JSON on line 1")
            ) from None

    def _endpoint(self, request: httpx.Request, api: str, parts: list[str]) -> httpx.Response:
        method = request.method
        params = request.url.params
        if api == "owners":
            if method != "GET":
                return self._error(405, None, "Method not allowed")
            return self._owners(parts, params)
        if api == "properties":
            if method != "GET" or not parts:
                return self._error(405, None, "Method not allowed")
            return self._properties(parts)
        if api == "lists":
            return self._lists(method, parts, request)
        if not parts:
            return self._error(404, None, "Unknown path")
        kind = _TYPE_ALIASES.get(parts[0].lower())
        if kind is None:
            return self._error(
                400, "VALIDATION_ERROR", f"Unable to infer object type from: {parts[0]}"
            )
        if kind in self.denied_scopes:
            return self._missing_scopes(kind, method)
        rest = parts[1:]
        if not rest:
            if method == "POST":
                return self._create_one(kind, self._body(request))
            if method == "GET":
                return self._list_objects(kind, params)
        elif rest == ["search"] and method == "POST":
            return self._search_objects(kind, request)
        elif len(rest) == 2 and rest[0] == "batch" and method == "POST":
            return self._batch(kind, rest[1], self._body(request))
        elif len(rest) == 1:
            if method == "GET":
                return self._get_one(kind, rest[0], params)
            if method == "PATCH":
                return self._patch_one(kind, rest[0], params, self._body(request))
            if method == "DELETE":
                record = self._find(kind, rest[0], None)
                if record is not None:
                    record.archived = True
                return httpx.Response(204)
        return self._error(405, None, "Method not allowed")

    def _missing_scopes(self, kind: str, method: str) -> httpx.Response:
        scope = f"crm.objects.{kind}.{'read' if method == 'GET' else 'write'}"
        return self._error(
            403,
            "MISSING_SCOPES",
            "This app hasn't been granted all required scopes to make this call. Read more "
            "about required scopes here: https://developers.hubspot.com/scopes.",
            errors=[
                {
                    "message": "One or more of the following scopes are required.",
                    "context": {"requiredScopes": [scope]},
                }
            ],
            links={"scopes": "https://developers.hubspot.com/scopes"},
        )

    # ------------------------------------------------------------------------------------------
    # OAuth

    def _oauth_token(self, request: httpx.Request) -> httpx.Response:
        self.token_requests += 1
        form = {k: v[-1] for k, v in parse_qs(request.content.decode("utf-8")).items()}
        if form.get("grant_type") != "refresh_token":
            return self._json(
                400,
                {
                    "status": "BAD_GRANT_TYPE",
                    "message": "unsupported grant_type",
                    "correlationId": self._correlation(),
                },
            )
        client = self.oauth_clients.get(form.get("client_id", ""))
        if client is None or client[0] != form.get("client_secret"):
            return self._json(
                400,
                {
                    "status": "BAD_CLIENT_ID",
                    "message": "missing or unknown client id",
                    "correlationId": self._correlation(),
                },
            )
        if form.get("refresh_token") not in client[1]:
            return self._json(
                400,
                {
                    "status": "BAD_REFRESH_TOKEN",
                    "message": "missing or unknown refresh token",
                    "correlationId": self._correlation(),
                },
            )
        token = self.issue_access_token()
        return self._json(
            200,
            {
                "token_type": "bearer",
                "refresh_token": form["refresh_token"],
                "access_token": token,
                "expires_in": self.access_token_ttl,
                "token_use": "access_token",
                "hub_id": self.portal_id,
            },
        )

    # ------------------------------------------------------------------------------------------
    # Objects, shapes

    def _find(self, kind: str, key: str, id_property: str | None) -> _Record | None:
        store = self.objects[kind]
        if id_property in (None, "hs_object_id", "id"):
            record = store.get(key)
            return record if record is not None and not record.archived else None
        if id_property == "email" and kind == "contacts":
            return self._contact_by_email(key)
        needle = key.lower()
        for record in store.values():
            if not record.archived and record.props.get(id_property or "", "").lower() == needle:
                return record
        return None

    def _contact_by_email(self, email: str) -> _Record | None:
        key = normalize_email(email)
        if not key:
            return None
        for record in self.objects["contacts"].values():
            if record.archived:
                continue
            if normalize_email(record.props.get("email", "")) == key:
                return record
            extra = record.props.get("hs_additional_emails", "")
            if key in {normalize_email(e) for e in extra.split(";") if e}:
                return record
        return None

    def _shape(
        self,
        kind: str,
        record: _Record,
        properties: Sequence[str] | None,
        *,
        associations: Sequence[str] = (),
        trace: str | None = None,
    ) -> dict[str, Any]:
        wanted = list(properties) if properties else list(_DEFAULT_PROPS.get(kind, ()))
        modified = _MODIFIED.get(kind, "hs_lastmodifieddate")
        always = ["hs_object_id", "createdate", modified]
        props: dict[str, str | None] = {}
        for name in [*wanted, *always]:
            props[name] = record.props.get(name)
        shaped: dict[str, Any] = {
            "id": record.id,
            "properties": props,
            "createdAt": self._now_iso(record.created),
            "updatedAt": self._now_iso(record.updated),
            "archived": record.archived,
        }
        if trace is not None:
            shaped["objectWriteTraceId"] = trace
        if associations:
            assoc: dict[str, Any] = {}
            for target in associations:
                to = _TYPE_ALIASES.get(target.lower())
                links = record.assoc.get(to or "", {})
                if links:
                    assoc[target] = {
                        "results": [
                            {"id": i, "type": f"{kind[:-1]}_to_{(to or '')[:-1]}"}
                            for i in sorted(links, key=int)
                        ]
                    }
            if assoc:
                shaped["associations"] = assoc
        return shaped

    # ------------------------------------------------------------------------------------------
    # Objects, validation

    def _check_props(
        self, kind: str, values: Any, current: _Record | None
    ) -> tuple[dict[str, str], list[dict[str, Any]]]:
        """Validate a ``properties`` object; returns the values to store and the problems."""
        if not isinstance(values, Mapping):
            return {}, [
                self._invalid("properties", "properties must be an object", "INVALID_INPUT")
            ]
        schema = self.properties[kind]
        out: dict[str, str] = {}
        problems: list[dict[str, Any]] = []
        for name, raw in values.items():
            prop = schema.get(name)
            if prop is None:
                problems.append(
                    self._invalid(
                        name, f'Property "{name}" does not exist', "PROPERTY_DOESNT_EXIST"
                    )
                )
                continue
            if prop["modificationMetadata"]["readOnlyValue"]:
                problems.append(
                    self._invalid(
                        name, f'Property "{name}" is a read only property', "READ_ONLY_VALUE"
                    )
                )
                continue
            value = "" if raw is None else raw if isinstance(raw, str) else json.dumps(raw)
            if isinstance(raw, bool):
                value = "true" if raw else "false"
            elif isinstance(raw, int | float) and not isinstance(raw, bool):
                value = str(raw)
            problem = self._check_value(kind, name, prop, value)
            if problem is not None:
                problems.append(problem)
                continue
            out[name] = value
        if kind == "contacts" and "lifecyclestage" in out and current is not None:
            old = current.props.get("lifecyclestage", "")
            new = out["lifecyclestage"]
            if old and new and _stage_rank(new) < _stage_rank(old):
                if self.backward_lifecycle == "reject":
                    problems.append(
                        self._invalid(
                            "lifecyclestage",
                            f"{new} is before the current lifecycle stage {old}; clear it first",
                            "INVALID_LIFECYCLE_STAGE",
                        )
                    )
                else:
                    del out["lifecyclestage"]
        return out, problems

    def _check_value(
        self, kind: str, name: str, prop: Mapping[str, Any], value: str
    ) -> dict[str, Any] | None:
        if value == "":
            return None
        ptype = prop["type"]
        if prop.get("referencedObjectType") == "OWNER":
            if value not in self.owners:
                return self._invalid(name, f"{value} is not a valid owner id", "INVALID_OWNER_ID")
            return None
        if ptype == "enumeration":
            options = {o["value"] for o in prop["options"]}
            if not options:
                return None
            chosen = (
                [v for v in value.split(";") if v] if prop["fieldType"] == "checkbox" else [value]
            )
            for v in chosen:
                if v not in options:
                    allowed = ", ".join(sorted(options))
                    return self._invalid(
                        name,
                        f"{v} was not one of the allowed options: [{allowed}]",
                        "INVALID_OPTION",
                    )
            return None
        if ptype == "number" and not _NUMBER.match(value):
            return self._invalid(name, f"{value} is not a valid number", "INVALID_INTEGER")
        if ptype == "bool" and value not in {"true", "false"}:
            return self._invalid(name, f"{value} is not a valid boolean", "INVALID_BOOLEAN")
        if ptype == "date" and not (_DATE.match(value) or _midnight_ms(value)):
            return self._invalid(name, f"{value} is not a valid date", "INVALID_DATE")
        if ptype == "datetime" and _epoch_ms(value) is None:
            return self._invalid(name, f"{value} is not a valid datetime", "INVALID_DATETIME")
        if kind == "contacts" and name == "email" and not is_valid_email(value):
            return self._invalid(name, f"Email address {value} is invalid", "INVALID_EMAIL")
        if len(value) > 65536:
            return self._invalid(name, f"{name} is longer than 65536 characters", "INVALID_LENGTH")
        return None

    def _invalid(self, name: str, message: str, code: str) -> dict[str, Any]:
        return {
            "isValid": False,
            "message": message,
            "error": code,
            "name": name,
            "localizedErrorMessage": message,
            "portalId": self.portal_id,
        }

    def _validation_body(
        self, problems: Sequence[Mapping[str, Any]], trace: str | None
    ) -> dict[str, Any]:
        message = "Property values were not valid: " + json.dumps(list(problems))
        context = {"objectWriteTraceId": [trace]} if trace is not None else None
        return self._error_body("VALIDATION_ERROR", message, context=context)

    def _check_associations(
        self, kind: str, associations: Any
    ) -> tuple[list[tuple[str, str, int]], str | None]:
        if associations in (None, []):
            return [], None
        if not isinstance(associations, list):
            return [], "associations must be a list"
        links: list[tuple[str, str, int]] = []
        for item in associations:
            to_id = str(((item or {}).get("to") or {}).get("id", ""))
            for t in (item or {}).get("types") or []:
                try:
                    type_id = int(t.get("associationTypeId"))
                except (TypeError, ValueError):
                    return [], "associationTypeId must be a number"
                target = _ASSOCIATION_TYPES.get((kind, type_id))
                if target is None:
                    return [], f"{type_id} is not a valid association type id from {kind}"
                if self._find(target, to_id, None) is None:
                    return [], (
                        f"One or more associations are invalid: {target} {to_id} does not exist"
                    )
                links.append((target, to_id, type_id))
        return links, None

    def _prepare_create(
        self, kind: str, item: Any
    ) -> tuple[dict[str, str], list[tuple[str, str, int]], dict[str, Any] | None]:
        """Validate one create input; returns (props, links, error body or None)."""
        trace = (item or {}).get("objectWriteTraceId") if isinstance(item, Mapping) else None
        trace = str(trace) if trace is not None else None
        if not isinstance(item, Mapping):
            return {}, [], self._error_body("VALIDATION_ERROR", "Invalid input")
        props, problems = self._check_props(kind, item.get("properties") or {}, None)
        if problems:
            return {}, [], self._validation_body(problems, trace)
        if kind == "contacts" and not any(props.get(p) for p in ("email", "firstname", "lastname")):
            return (
                {},
                [],
                self._error_body(
                    "VALIDATION_ERROR",
                    "A contact needs at least one of email, firstname or lastname",
                    context={"objectWriteTraceId": [trace]} if trace else None,
                ),
            )
        if kind in {"tasks", "notes", "meetings"} and not props.get("hs_timestamp"):
            problem = self._invalid("hs_timestamp", "hs_timestamp is required", "REQUIRED_PROPERTY")
            return {}, [], self._validation_body([problem], trace)
        links, bad = self._check_associations(kind, item.get("associations"))
        if bad is not None:
            return (
                {},
                [],
                self._error_body(
                    "VALIDATION_ERROR",
                    bad,
                    subCategory="crm.associations.INVALID_OBJECT_IDS",
                    context={"objectWriteTraceId": [trace]} if trace else None,
                ),
            )
        return props, links, None

    def _insert(
        self, kind: str, props: Mapping[str, str], links: Sequence[tuple[str, str, int]] = ()
    ) -> _Record:
        now = self.clock()
        record_id = self._new_id()
        stored = {k: v for k, v in props.items() if v != ""}
        if kind == "contacts":
            if stored.get("email"):
                stored["email"] = normalize_email(stored["email"])
            stored.setdefault("lifecyclestage", "lead")
        stored["hs_object_id"] = record_id
        stored["createdate"] = self._now_iso(now)
        stored[_MODIFIED.get(kind, "hs_lastmodifieddate")] = self._now_iso(now)
        record = _Record(id=record_id, props=stored, created=now, updated=now)
        self.objects[kind][record_id] = record
        for target, to_id, type_id in links:
            self._associate(kind, record, target, to_id, type_id)
        return record

    def _associate(self, kind: str, record: _Record, target: str, to_id: str, type_id: int) -> None:
        record.assoc.setdefault(target, {}).setdefault(to_id, set()).add(type_id)
        other = self.objects[target].get(to_id)
        if other is not None:
            other.assoc.setdefault(kind, {}).setdefault(record.id, set())

    def _apply(self, kind: str, record: _Record, props: Mapping[str, str]) -> None:
        for name, value in props.items():
            if value == "":
                record.props.pop(name, None)
            elif kind == "contacts" and name == "email":
                record.props[name] = normalize_email(value)
            else:
                record.props[name] = value
        record.updated = self.clock()
        record.props[_MODIFIED.get(kind, "hs_lastmodifieddate")] = self._now_iso(record.updated)

    def _conflict(self, existing: _Record) -> httpx.Response:
        return self._error(409, "CONFLICT", f"Contact already exists. Existing ID: {existing.id}")

    # ------------------------------------------------------------------------------------------
    # Objects, single-record endpoints

    def _create_one(self, kind: str, body: Any) -> httpx.Response:
        props, links, error = self._prepare_create(kind, body)
        if error is not None:
            return self._json(400, error)
        if kind == "contacts" and props.get("email"):
            existing = self._contact_by_email(props["email"])
            if existing is not None:
                return self._conflict(existing)
        record = self._insert(kind, props, links)
        return self._json(201, self._shape(kind, record, list(props)))

    def _get_one(self, kind: str, key: str, params: httpx.QueryParams) -> httpx.Response:
        record = self._find(kind, key, params.get("idProperty"))
        if record is None:
            return self._error(404, "OBJECT_NOT_FOUND", "resource not found")
        props = [p for p in (params.get("properties") or "").split(",") if p]
        assoc = [a for a in (params.get("associations") or "").split(",") if a]
        return self._json(200, self._shape(kind, record, props, associations=assoc))

    def _patch_one(
        self, kind: str, key: str, params: httpx.QueryParams, body: Any
    ) -> httpx.Response:
        record = self._find(kind, key, params.get("idProperty"))
        if record is None:
            return self._error(404, "OBJECT_NOT_FOUND", "resource not found")
        props, problems = self._check_props(kind, (body or {}).get("properties"), record)
        if problems:
            return self._json(400, self._validation_body(problems, None))
        if kind == "contacts" and props.get("email"):
            other = self._contact_by_email(props["email"])
            if other is not None and other.id != record.id:
                return self._conflict(other)
        self._apply(kind, record, props)
        return self._json(200, self._shape(kind, record, list(props)))

    def _list_objects(self, kind: str, params: httpx.QueryParams) -> httpx.Response:
        limit = min(int(params.get("limit", "10") or 10), 100)
        after = int(params.get("after", "0") or 0)
        props = [p for p in (params.get("properties") or "").split(",") if p]
        live = [r for r in self.objects[kind].values() if not r.archived]
        page = live[after : after + limit]
        body: dict[str, Any] = {"results": [self._shape(kind, r, props) for r in page]}
        if after + limit < len(live):
            body["paging"] = {"next": {"after": str(after + limit)}}
        return self._json(200, body)

    # ------------------------------------------------------------------------------------------
    # Objects, batches

    def _batch(self, kind: str, op: str, body: Any) -> httpx.Response:
        inputs = (body or {}).get("inputs") if isinstance(body, Mapping) else None
        if not isinstance(inputs, list):
            return self._error(400, "VALIDATION_ERROR", "Invalid input: inputs is required")
        if len(inputs) > 100:
            return self._error(
                400,
                "VALIDATION_ERROR",
                f"Batch input size {len(inputs)} exceeds the limit of 100",
            )
        if op == "read":
            return self._batch_read(kind, body, inputs)
        if op == "create":
            return self._batch_create(kind, inputs)
        if op == "update":
            return self._batch_update(kind, inputs)
        if op == "upsert":
            return self._batch_upsert(kind, inputs)
        if op == "archive":
            for item in inputs:
                record = self._find(kind, str((item or {}).get("id", "")), None)
                if record is not None:
                    record.archived = True
            return httpx.Response(204)
        return self._error(404, None, f"Unknown batch operation {op}")

    def _batch_answer(
        self, results: list[dict[str, Any]], errors: list[dict[str, Any]], ok: int
    ) -> httpx.Response:
        now = self._now_iso()
        body: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": now,
            "completedAt": now,
        }
        if errors:
            body["numErrors"] = len(errors)
            body["errors"] = errors
            return self._json(207, body)
        return self._json(ok, body)

    def _batch_read(self, kind: str, body: Mapping[str, Any], inputs: list[Any]) -> httpx.Response:
        id_property = body.get("idProperty")
        props = body.get("properties") or []
        results: list[dict[str, Any]] = []
        missing: list[str] = []
        seen: set[str] = set()
        for item in inputs:
            key = str((item or {}).get("id", ""))
            record = self._find(kind, key, id_property)
            if record is None:
                missing.append(key)
            elif record.id not in seen:
                seen.add(record.id)
                results.append(self._shape(kind, record, props))
        errors: list[dict[str, Any]] = []
        if missing:
            label = _OBJECT_LABEL[kind]
            errors.append(
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": (
                        f"Could not get some {label} objects, they may be deleted or not exist. "
                        "Check that ids are valid."
                    ),
                    "context": {"ids": missing},
                }
            )
        return self._batch_answer(results, errors, 200)

    def _batch_create(self, kind: str, inputs: list[Any]) -> httpx.Response:
        multi = all(isinstance(i, Mapping) and i.get("objectWriteTraceId") for i in inputs)
        prepared: list[tuple[Any, dict[str, str], list[tuple[str, str, int]]]] = []
        errors: list[dict[str, Any]] = []
        for item in inputs:
            props, links, error = self._prepare_create(kind, item)
            if error is not None:
                if not multi:
                    return self._json(400, error)
                errors.append(error)
            else:
                prepared.append((item, props, links))
        if kind == "contacts":
            emails: dict[str, int] = {}
            for _, props, _ in prepared:
                email = normalize_email(props.get("email", ""))
                if not email:
                    continue
                existing = self._contact_by_email(email)
                if existing is not None:
                    return self._conflict(existing)
                if email in emails:
                    return self._error(
                        409, "CONFLICT", f"Duplicate email addresses in batch input: {email}"
                    )
                emails[email] = 1
        results = []
        for item, props, links in prepared:
            record = self._insert(kind, props, links)
            trace = item.get("objectWriteTraceId")
            results.append(
                self._shape(kind, record, list(props), trace=str(trace) if trace else None)
            )
        return self._batch_answer(results, errors, 201)

    def _batch_update(self, kind: str, inputs: list[Any]) -> httpx.Response:
        ids = [str((i or {}).get("id", "")) for i in inputs]
        if any((i or {}).get("idProperty") not in (None, "hs_object_id") for i in inputs):
            return self._error(
                400,
                "VALIDATION_ERROR",
                f"Unable to perform update/upsert by non-unique {OBJECT_TYPE_IDS[kind]} property",
            )
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            return self._error(
                400, "VALIDATION_ERROR", f"Duplicate IDs found in batch input: {duplicated}"
            )
        multi = all(isinstance(i, Mapping) and i.get("objectWriteTraceId") for i in inputs)
        plan: list[tuple[_Record, dict[str, str], str | None]] = []
        errors: list[dict[str, Any]] = []
        missing: list[str] = []
        for item, key in zip(inputs, ids, strict=True):
            record = self._find(kind, key, None)
            if record is None:
                missing.append(key)
                continue
            trace = item.get("objectWriteTraceId")
            trace = str(trace) if trace else None
            props, problems = self._check_props(kind, item.get("properties"), record)
            if problems:
                if not multi:
                    return self._json(400, self._validation_body(problems, None))
                errors.append(self._validation_body(problems, trace))
                continue
            if kind == "contacts" and props.get("email"):
                other = self._contact_by_email(props["email"])
                if other is not None and other.id != record.id:
                    return self._conflict(other)
            plan.append((record, props, trace))
        if missing:
            errors.append(
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": f"Could not get some {_OBJECT_LABEL[kind]} objects, they may be "
                    "deleted or not exist. Check that ids are valid.",
                    "context": {"ids": missing},
                }
            )
        results = []
        for record, props, trace in plan:
            self._apply(kind, record, props)
            results.append(self._shape(kind, record, list(props), trace=trace))
        return self._batch_answer(results, errors, 200)

    def _batch_upsert(self, kind: str, inputs: list[Any]) -> httpx.Response:
        results: list[dict[str, Any]] = []
        for item in inputs:
            id_property = (item or {}).get("idProperty")
            key = str((item or {}).get("id", ""))
            if kind != "contacts" or id_property != "email":
                return self._error(
                    400, "VALIDATION_ERROR", "Upsert needs a unique idProperty (email for contacts)"
                )
            record = self._find(kind, key, "email")
            raw = dict((item or {}).get("properties") or {})
            if record is None:
                raw.setdefault("email", key)
                props, links, error = self._prepare_create(kind, {"properties": raw})
                if error is not None:
                    return self._json(400, error)
                del links
                record = self._insert(kind, props)
                shaped = self._shape(kind, record, list(props))
                shaped["new"] = True
            else:
                props, problems = self._check_props(kind, raw, record)
                if problems:
                    return self._json(400, self._validation_body(problems, None))
                self._apply(kind, record, props)
                shaped = self._shape(kind, record, list(props))
                shaped["new"] = False
            results.append(shaped)
        return self._batch_answer(results, [], 200)

    # ------------------------------------------------------------------------------------------
    # Search

    def _search_objects(self, kind: str, request: httpx.Request) -> httpx.Response:
        if len(request.content) > 3000:
            return self._error(
                400, "VALIDATION_ERROR", "Search request body exceeds 3000 characters"
            )
        body = self._body(request) or {}
        groups = body.get("filterGroups") or []
        if len(groups) > 5:
            return self._error(400, "VALIDATION_ERROR", "Too many filter groups (max 5)")
        total_filters = 0
        for group in groups:
            filters = group.get("filters") or []
            if len(filters) > 6:
                return self._error(400, "VALIDATION_ERROR", "Too many filters in a group (max 6)")
            total_filters += len(filters)
            for f in filters:
                if f.get("operator") not in _OPERATORS:
                    return self._error(
                        400, "VALIDATION_ERROR", f"Unknown operator {f.get('operator')!r}"
                    )
        if total_filters > 18:
            return self._error(400, "VALIDATION_ERROR", "Too many filters (max 18)")
        limit = int(body.get("limit", 10) or 10)
        if limit > 200:
            return self._error(400, "VALIDATION_ERROR", "limit must be at most 200")
        after_raw = str(body.get("after", "0") or "0")
        if not after_raw.isdigit():
            return self._error(400, "VALIDATION_ERROR", f"after must be an integer: {after_raw}")
        after = int(after_raw)
        if after + limit > 10_000:
            return self._error(
                400, "VALIDATION_ERROR", "Paging beyond 10,000 results is not supported"
            )
        sorts = body.get("sorts") or []
        if len(sorts) > 1:
            return self._error(400, "VALIDATION_ERROR", "Only one sort is supported")
        now = self.clock()
        query = str(body.get("query") or "").lower()
        matched = [
            r
            for r in self.objects[kind].values()
            if not r.archived
            and r.updated + self.search_lag <= now
            and (not groups or any(self._group_matches(kind, r, g) for g in groups))
            and (not query or self._query_matches(kind, r, query))
        ]
        matched.sort(key=lambda r: (r.created, int(r.id)))
        if sorts:
            name, descending = _sort_rule(sorts[0])
            matched.sort(key=lambda r: _sort_key(r.props.get(name)), reverse=descending)
        page = matched[after : after + limit]
        props = body.get("properties") or []
        out: dict[str, Any] = {
            "total": len(matched),
            "results": [self._shape(kind, r, props) for r in page],
        }
        if after + limit < len(matched):
            out["paging"] = {"next": {"after": str(after + limit)}}
        return self._json(200, out)

    def _group_matches(self, kind: str, record: _Record, group: Mapping[str, Any]) -> bool:
        return all(self._filter_matches(kind, record, f) for f in group.get("filters") or [])

    def _filter_matches(self, kind: str, record: _Record, f: Mapping[str, Any]) -> bool:
        name = str(f.get("propertyName", ""))
        op = f.get("operator")
        if name.startswith("associations."):
            target = _TYPE_ALIASES.get(name.split(".", 1)[1], "")
            linked = set(record.assoc.get(target, {}))
            value = str(f.get("value", ""))
            return (value in linked) if op == "EQ" else (value not in linked)
        stored = record.props.get(name)
        if name == "hs_object_id":
            stored = record.id
        prop = self.properties[kind].get(name, {})
        exact = prop.get("type") == "enumeration"
        if op == "HAS_PROPERTY":
            return stored not in (None, "")
        if op == "NOT_HAS_PROPERTY":
            return stored in (None, "")
        if op in {"IN", "NOT_IN"}:
            values = [str(v) for v in f.get("values") or []]
            candidate = stored if exact else (stored or "").lower()
            inside = stored is not None and candidate in values
            return inside if op == "IN" else not inside
        value = str(f.get("value", ""))
        if op in {"CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"}:
            hit = stored is not None and _token_match(stored, value)
            return hit if op == "CONTAINS_TOKEN" else not hit
        if op == "EQ":
            return stored is not None and (
                stored == value if exact else stored.lower() == value.lower()
            )
        if op == "NEQ":
            return stored is None or (stored != value if exact else stored.lower() != value.lower())
        if stored is None:
            return False
        left, right = _comparable(stored), _comparable(value)
        if op == "BETWEEN":
            high = _comparable(str(f.get("highValue", "")))
            return _lte(right, left) and _lte(left, high)
        if op == "LT":
            return _lt(left, right)
        if op == "LTE":
            return _lte(left, right)
        if op == "GT":
            return _lt(right, left)
        if op == "GTE":
            return _lte(right, left)
        return False

    def _query_matches(self, kind: str, record: _Record, query: str) -> bool:
        for name in _QUERY_PROPS.get(kind, ()):
            value = record.props.get(name, "").lower()
            if query in value or _token_match(value, query + "*"):
                return True
        return False

    # ------------------------------------------------------------------------------------------
    # Owners, properties, lists

    def _owner_body(self, owner: _Owner) -> dict[str, Any]:
        return {
            "id": owner.id,
            "email": owner.email,
            "type": "PERSON",
            "firstName": owner.first_name,
            "lastName": owner.last_name,
            "userId": None if owner.archived else owner.user_id,
            "userIdIncludingInactive": owner.user_id,
            "createdAt": self._now_iso(owner.created),
            "updatedAt": self._now_iso(owner.created),
            "archived": owner.archived,
            "teams": [],
        }

    def _owners(self, parts: list[str], params: httpx.QueryParams) -> httpx.Response:
        archived = params.get("archived", "false") == "true"
        if parts:
            key = parts[0]
            by_user = params.get("idProperty") == "userId"
            for owner in self.owners.values():
                if (
                    str(owner.user_id) if by_user else owner.id
                ) == key and owner.archived == archived:
                    return self._json(200, self._owner_body(owner))
            return self._error(404, "OBJECT_NOT_FOUND", "resource not found")
        limit = min(int(params.get("limit", "100") or 100), 500)
        after = int(params.get("after", "0") or 0)
        email = params.get("email")
        chosen = [
            o
            for o in self.owners.values()
            if o.archived == archived and (email is None or o.email.lower() == email.lower())
        ]
        page = chosen[after : after + limit]
        body: dict[str, Any] = {"results": [self._owner_body(o) for o in page]}
        if after + limit < len(chosen):
            body["paging"] = {"next": {"after": str(after + limit)}}
        return self._json(200, body)

    def _properties(self, parts: list[str]) -> httpx.Response:
        kind = _TYPE_ALIASES.get(parts[0].lower())
        if kind is None:
            return self._error(
                400, "VALIDATION_ERROR", f"Unable to infer object type from: {parts[0]}"
            )
        props = self.properties[kind]
        if len(parts) == 1:
            return self._json(200, {"results": [json.loads(json.dumps(p)) for p in props.values()]})
        prop = props.get(parts[1])
        if prop is None:
            return self._error(
                404, "OBJECT_NOT_FOUND", f"Unable to find property {parts[1]} on {kind}"
            )
        return self._json(200, json.loads(json.dumps(prop)))

    def _list_body(self, found: _List) -> dict[str, Any]:
        return {
            "listId": found.id,
            "listVersion": 1,
            "name": found.name,
            "objectTypeId": found.object_type_id,
            "processingType": found.processing_type,
            "processingStatus": "COMPLETE",
            "size": len(found.members),
            "createdAt": self._now_iso(found.created),
            "updatedAt": self._now_iso(found.created),
        }

    def create_list(
        self, name: str, processing_type: str = "MANUAL", object_type_id: str = "0-1"
    ) -> str:
        """Create a list directly; returns its id."""
        with self.lock:
            list_id = str(next(self._ids))
            self.lists[list_id] = _List(
                list_id, name, object_type_id, processing_type, created=self.clock()
            )
            return list_id

    def _lists(self, method: str, parts: list[str], request: httpx.Request) -> httpx.Response:
        if not parts and method == "POST":
            body = self._body(request) or {}
            name = body.get("name")
            if not name:
                return self._error(400, "VALIDATION_ERROR", "name is required")
            if any(lst.name == name for lst in self.lists.values()):
                return self._error(409, "CONFLICT", f"A list named {name} already exists")
            list_id = self.create_list(
                str(name),
                str(body.get("processingType", "MANUAL")),
                str(body.get("objectTypeId", "0-1")),
            )
            return self._json(200, {"list": self._list_body(self.lists[list_id])})
        if (
            len(parts) == 4
            and parts[0] == "records"
            and parts[3] == "memberships"
            and method == "GET"
        ):
            record_id = parts[2]
            results = [
                {
                    "listId": lst.id,
                    "listVersion": 1,
                    "firstAddedTimestamp": self._now_iso(lst.members[record_id]),
                    "lastAddedTimestamp": self._now_iso(lst.members[record_id]),
                    "isPublicList": True,
                }
                for lst in self.lists.values()
                if record_id in lst.members
            ]
            return self._json(200, {"results": results, "total": len(results)})
        if not parts:
            return self._error(405, None, "Method not allowed")
        found = self.lists.get(parts[0])
        if found is None:
            return self._error(404, "OBJECT_NOT_FOUND", f"List {parts[0]} does not exist")
        rest = parts[1:]
        if not rest and method == "GET":
            return self._json(200, {"list": self._list_body(found)})
        if rest == ["memberships"] and method == "GET":
            members = sorted(found.members, key=int)
            results = [
                {"recordId": m, "membershipTimestamp": self._now_iso(found.members[m])}
                for m in members
            ]
            return self._json(200, {"results": results, "total": len(results)})
        if rest in (["memberships", "add"], ["memberships", "remove"]) and method == "PUT":
            if found.processing_type not in {"MANUAL", "SNAPSHOT"}:
                return self._error(
                    400,
                    "VALIDATION_ERROR",
                    f"List {found.id} has processingType {found.processing_type}; "
                    "only MANUAL and SNAPSHOT lists take manual memberships",
                )
            ids = self._body(request)
            if not isinstance(ids, list):
                return self._error(400, "VALIDATION_ERROR", "Expected a JSON array of record ids")
            kind = _TYPE_ALIASES.get(found.object_type_id, "contacts")
            added: list[str] = []
            removed: list[str] = []
            missing: list[str] = []
            for raw in ids:
                rid = str(raw)
                if self._find(kind, rid, None) is None:
                    missing.append(rid)
                elif rest[1] == "add" and rid not in found.members:
                    found.members[rid] = self.clock()
                    added.append(rid)
                elif rest[1] == "remove" and rid in found.members:
                    del found.members[rid]
                    removed.append(rid)
            return self._json(
                200,
                {
                    "recordIdsMissing": missing,
                    "recordIdsRemoved": removed,
                    "recordsIdsAdded": added,
                },
            )
        return self._error(405, None, "Method not allowed")


# ------------------------------------------------------------------------------------------------
# Value helpers


def _stage_rank(value: str) -> int:
    try:
        return LIFECYCLE_STAGES.index(value)
    except ValueError:
        return len(LIFECYCLE_STAGES)


def _epoch_ms(value: str) -> int | None:
    if value.isdigit():
        return int(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _midnight_ms(value: str) -> bool:
    return value.isdigit() and int(value) % 86_400_000 == 0


def _comparable(value: str) -> float | str:
    if _NUMBER.match(value):
        return float(value)
    ms = _epoch_ms(value) if ("-" in value and "T" in value) or _DATE.match(value) else None
    if ms is not None:
        return float(ms)
    return value.lower()


def _lt(a: float | str, b: float | str) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a < b
    return str(a) < str(b)


def _lte(a: float | str, b: float | str) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a <= b
    return str(a) <= str(b)


def _token_match(stored: str, pattern: str) -> bool:
    pattern = pattern.lower()
    text = stored.lower()
    if re.search(r"[^0-9a-z*]", pattern):
        return fnmatch.fnmatchcase(text, pattern) or pattern.strip("*") in text
    tokens = re.split(r"[^0-9a-z]+", text)
    return any(fnmatch.fnmatchcase(t, pattern) for t in tokens if t)


def _sort_rule(rule: Any) -> tuple[str, bool]:
    if isinstance(rule, str):
        return rule.lstrip("-"), rule.startswith("-")
    if isinstance(rule, Mapping):
        return str(rule.get("propertyName", "")), rule.get("direction") == "DESCENDING"
    return "", False


def _sort_key(value: str | None) -> tuple[int, float, str]:
    if value is None:
        return (2, 0.0, "")
    compared = _comparable(value)
    if isinstance(compared, float):
        return (0, compared, "")
    return (1, 0.0, compared)


# ------------------------------------------------------------------------------------------------
# The backdoor


def _text(value: FieldValue) -> str:
    return property_value(value)


class HubSpotBackdoor:
    """Reads and writes a :class:`LocalHubSpot` directly (the conformance kit's Backdoor)."""

    def __init__(self, portal: LocalHubSpot) -> None:
        self.portal = portal

    def __repr__(self) -> str:
        return f"HubSpotBackdoor({self.portal!r})"

    def seed_person(
        self,
        *,
        kind: PersonKind = PersonKind.CONTACT,
        email: str,
        fields: Mapping[str, FieldValue] | None = None,
        is_converted: bool = False,
        converted_contact_id: str | None = None,
        last_modified: datetime | None = None,
    ) -> str:
        """Create a contact (HubSpot has no other person kind); returns its id."""
        del kind, is_converted, converted_contact_id
        portal = self.portal
        with portal.lock:
            props = {k: _text(v) for k, v in (fields or {}).items() if v is not None}
            props["email"] = email.strip()
            record = portal._insert("contacts", props)  # noqa: SLF001  # the backdoor is the portal's
            if last_modified is not None:
                stamp = last_modified.timestamp()
                record.updated = stamp
                record.props["lastmodifieddate"] = portal._now_iso(stamp)  # noqa: SLF001
            return record.id

    def seed_account(
        self, *, domain: str, name: str, fields: Mapping[str, FieldValue] | None = None
    ) -> str:
        """Create a company with this domain and name; returns its id."""
        with self.portal.lock:
            props = {k: _text(v) for k, v in (fields or {}).items() if v is not None}
            props.update(domain=domain.strip().lower(), name=name)
            return self.portal._insert("companies", props).id  # noqa: SLF001

    def seed_user(self, *, email: str, active: bool = True, name: str | None = None) -> str:
        """Create an owner (archived when not active); returns its owner id."""
        portal = self.portal
        with portal.lock:
            first, _, last = (name or "").partition(" ")
            owner_id = str(next(portal._ids))  # noqa: SLF001
            portal.owners[owner_id] = _Owner(
                id=owner_id,
                email=email.strip(),
                first_name=first or None,
                last_name=last or None,
                user_id=next(portal._user_ids),  # noqa: SLF001
                archived=not active,
                created=portal.clock(),
            )
            return owner_id

    def seed_campaign(self, *, name: str) -> str:
        """Create a static (``MANUAL``) contact list; returns its id."""
        return self.portal.create_list(name)

    def person_fields(self, record_id: str) -> Mapping[str, FieldValue] | None:
        """The stored properties of a contact, or ``None``."""
        with self.portal.lock:
            record = self.portal.objects["contacts"].get(record_id)
            if record is None or record.archived:
                return None
            return dict(record.props)

    def people_with_email(self, email: str) -> list[str]:
        """Ids of the contacts with this email (case-insensitive)."""
        key = normalize_email(email)
        with self.portal.lock:
            return sorted(
                (
                    r.id
                    for r in self.portal.objects["contacts"].values()
                    if not r.archived and normalize_email(r.props.get("email", "")) == key
                ),
                key=int,
            )

    def task_markers(self, person_id: str) -> list[str]:
        """The markers of the tasks and notes associated with the contact."""
        markers: list[str] = []
        with self.portal.lock:
            for kind, body in (("tasks", "hs_task_body"), ("notes", "hs_note_body")):
                for record in self.portal.objects[kind].values():
                    if record.archived or person_id not in record.assoc.get("contacts", {}):
                        continue
                    marker = parse_marker(record.props.get(body))
                    if marker is not None:
                        markers.append(marker)
        return markers

    def campaign_members(self, campaign_id: str) -> set[str]:
        """The record ids in the list."""
        with self.portal.lock:
            found = self.portal.lists.get(campaign_id)
            return set(found.members) if found else set()

    def enable_duplicate_detection(self) -> bool:
        """Contact emails are always unique in HubSpot: nothing to switch on."""
        return True

    def tasks_of(self, person_id: str) -> list[dict[str, str]]:
        """The properties of the tasks associated with the contact."""
        with self.portal.lock:
            return [
                dict(r.props)
                for r in self.portal.objects["tasks"].values()
                if not r.archived and person_id in r.assoc.get("contacts", {})
            ]

    def company_fields(self, record_id: str) -> Mapping[str, str] | None:
        """The stored properties of a company, or ``None``."""
        with self.portal.lock:
            record = self.portal.objects["companies"].get(record_id)
            return dict(record.props) if record is not None and not record.archived else None
