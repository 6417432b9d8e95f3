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

import re
from typing import Any
from urllib.parse import unquote

import httpx

from signals_crm.testing._loopback import ConnectionDropped
from signals_crm.testing.hubspot._associations import Associations
from signals_crm.testing.hubspot._backdoor import HubSpotBackdoor
from signals_crm.testing.hubspot._core import TYPE_ALIASES, Problem
from signals_crm.testing.hubspot._directory import Directory, unique_refusal
from signals_crm.testing.hubspot._faults import FaultPlan, Faults
from signals_crm.testing.hubspot._gate import Gate
from signals_crm.testing.hubspot._oauth import OAuth
from signals_crm.testing.hubspot._objects import Objects
from signals_crm.testing.hubspot._schema import (
    make_property,
)
from signals_crm.testing.hubspot._search import Search

__all__ = ["ConnectionDropped", "Faults", "HubSpotBackdoor", "LocalHubSpot"]

_PATHS = (
    re.compile(r"^/crm/v3/(?P<api>objects|owners|properties|lists)(?P<rest>/.*)?$"),
    re.compile(
        r"^/crm/(?P<api>objects|owners|properties|lists)/\d{4}-\d{2}(?:-beta)?(?P<rest>/.*)?$"
    ),
)
_V4 = re.compile(r"^/crm/(?:v4|(?P<dated>associations/\d{4}-\d{2}))(?P<rest>/.*)$")
_OAUTH = re.compile(r"^/oauth(?P<rest>/authorize|/(?:v1|v3|\d{4}-\d{2})/.+)$")


def _writes(request: httpx.Request) -> bool:
    """Whether a request may change data (a POST search or batch read does not)."""
    path = request.url.path.rstrip("/")
    if request.method in ("GET", "HEAD") or path.startswith("/oauth"):
        return False
    return not path.endswith(("/search", "/batch/read"))


class LocalHubSpot(Gate, OAuth, Objects, Search, Directory, Associations):
    """An in-memory HubSpot portal that answers HubSpot's REST subset (see module docstring).

    ``tokens`` are static bearer tokens (private apps); :meth:`add_oauth_client` registers an
    OAuth app whose refresh token the ``/oauth/v1/token`` endpoint accepts.
    """

    @property
    def backdoor(self) -> HubSpotBackdoor:
        """Direct access to the state, for tests (the conformance kit's Backdoor)."""
        return HubSpotBackdoor(self)

    def transport(self) -> httpx.MockTransport:
        """An in-process transport serving this portal (sync and async clients)."""
        return httpx.MockTransport(self.handle)

    def add_oauth_client(
        self,
        client_id: str,
        client_secret: str,
        refresh_token: str | None = None,
        *,
        redirect_uris: tuple[str, ...] = (),
    ) -> None:
        """Register an OAuth app, optionally with one ready refresh token; ``redirect_uris``
        are where ``/oauth/authorize`` may send its codes."""
        with self.lock:
            secret, refresh = self.oauth_clients.get(client_id, (client_secret, set()))
            if refresh_token is not None:
                refresh.add(refresh_token)
            self.oauth_clients[client_id] = (secret, refresh)
            known = self.oauth_redirects.get(client_id, ())
            self.oauth_redirects[client_id] = (*known, *redirect_uris)

    def add_property(self, object_type: str, name: str, **options: Any) -> None:
        """Create a custom property (``make_property`` options: type, field_type, options...)."""
        with self.lock:
            kind = TYPE_ALIASES[object_type]
            refused = unique_refusal(
                kind, {"hasUniqueValue": options.get("unique")}, self.properties[kind].values()
            )
            if refused is not None:
                raise ValueError(refused)
            label = str(options.pop("label", name))
            self.properties[kind][name] = make_property(
                name, label, hubspot_defined=False, **options
            )

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer ``request`` (raises ``httpx.RemoteProtocolError`` for a dropped connection)."""
        try:
            return self.answer(request)
        except ConnectionDropped:
            msg = "Server disconnected without sending a response."
            raise httpx.RemoteProtocolError(msg, request=request) from None

    def served_at(self, url: str) -> None:
        """Told the loopback server's URL (HubSpot's answers do not name their host)."""
        self.served_url = url

    def answer(self, request: httpx.Request) -> httpx.Response:
        """Answer ``request``; raises :class:`ConnectionDropped` when the connection must close
        unanswered (the loopback server's entry point)."""
        if self.faults.latency > 0:
            self.sleep(self.faults.latency)
        if self.faults.late_commit_rate and _writes(request):
            with self.lock:
                held = self.rng.random() < self.faults.late_commit_rate
                self.late_commits += held
            if held:
                self.sleep(self.faults.late_commit_hold)  # the client gives up meanwhile
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
                fault = FaultPlan("status", status=503)
            if (
                fault is None
                and self.faults.drop_rate
                and self.rng.random() < self.faults.drop_rate
            ):
                fault = FaultPlan("drop")
            if fault is not None and fault.kind != "drop":
                return self._fault_answer(fault)
            try:
                response = self._route(request)
            except Problem as problem:
                response = problem.response
            if fault is not None:
                raise ConnectionDropped
            return response

    def _route(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        oauth = _OAUTH.match(path)
        if oauth:
            return self._oauth(request, [unquote(p) for p in oauth.group("rest").split("/") if p])
        v4 = _V4.match(path)
        if v4:
            parts = [unquote(p) for p in v4.group("rest").split("/") if p]
            if v4.group("dated"):  # /crm/associations/2026-03/{from}/{to}/... is v4's shape
                parts = ["associations", *parts]
            static = self._authenticate(request)
            self._count(search=False)
            response = self._v4(request, parts)
            response.headers.update(self._limit_headers(static))
            return response
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

    def _endpoint(self, request: httpx.Request, api: str, parts: list[str]) -> httpx.Response:
        method = request.method
        params = request.url.params
        if api == "owners":
            if method != "GET":
                return self._error(405, None, "Method not allowed")
            return self._owners(parts, params)
        if api == "properties":
            if not parts:
                return self._error(405, None, "Method not allowed")
            body = self._body(request) if method in ("POST", "PATCH") else None
            return self._properties(method, parts, body)
        if api == "lists":
            return self._lists(method, parts, request)
        if not parts:
            return self._error(404, None, "Unknown path")
        kind = TYPE_ALIASES.get(parts[0].lower())
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
        elif rest == ["merge"] and method == "POST":
            return self._merge(kind, self._body(request))
        elif rest == ["gdpr-delete"] and method == "POST" and kind == "contacts":
            return self._gdpr_delete(kind, self._body(request))
        elif len(rest) >= 3 and rest[1] == "associations":
            record = self._find(kind, rest[0], None)
            if record is None:
                return self._error(404, "OBJECT_NOT_FOUND", "resource not found")
            return self._v3_associations(method, kind, record, rest[2:])
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
                    self._archive(kind, record)
                return httpx.Response(204)
        return self._error(405, None, "Method not allowed")
