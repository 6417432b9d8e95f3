"""The portal's state and the helpers every endpoint shares (records, answers, shapes).

:class:`PortalCore` holds the state behind one lock: objects by type, owners, lists,
properties, tokens, rate windows, counters. Endpoint mixins (``_objects``, ``_search``,
``_directory``, ``_oauth``, ``_gate``) build on it; :class:`~._portal.LocalHubSpot` routes.
"""

from __future__ import annotations

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

import attrs
import httpx

from signals_crm.core.model import normalize_email
from signals_crm.testing.hubspot._faults import Faults
from signals_crm.testing.hubspot._schema import (
    ASSOCIATION_TYPES,
    OBJECT_TYPE_IDS,
    SINGULAR,
    default_properties,
)

__all__ = [
    "DATE",
    "DEFAULT_PROPS",
    "MODIFIED",
    "NUMBER",
    "OBJECT_LABEL",
    "QUERY_PROPS",
    "TYPE_ALIASES",
    "Owner",
    "PortalCore",
    "PortalList",
    "Problem",
    "Record",
]

TYPE_ALIASES: Final[Mapping[str, str]] = {
    **{t: t for t in OBJECT_TYPE_IDS},
    **{v: k for k, v in OBJECT_TYPE_IDS.items()},
    **{one: many for many, one in SINGULAR.items()},
}


OBJECT_LABEL: Final[Mapping[str, str]] = {kind: name.upper() for kind, name in SINGULAR.items()}


MODIFIED: Final[Mapping[str, str]] = {"contacts": "lastmodifieddate"}


DEFAULT_PROPS: Final[Mapping[str, tuple[str, ...]]] = {
    "contacts": ("firstname", "lastname", "email"),
    "companies": ("name", "domain"),
    "deals": ("dealname", "amount", "closedate", "pipeline", "dealstage"),
}


QUERY_PROPS: Final[Mapping[str, tuple[str, ...]]] = {
    "contacts": ("firstname", "lastname", "email", "phone", "hs_additional_emails", "company"),
    "companies": ("website", "phone", "name", "domain"),
    "tasks": ("hs_task_body", "hs_task_subject"),
    "notes": ("hs_note_body",),
    "meetings": ("hs_meeting_title", "hs_meeting_body"),
    "deals": ("dealname",),
    "calls": ("hs_call_title", "hs_call_body"),
}


INDEXED: Final[Mapping[str, tuple[str, ...]]] = {
    "contacts": ("email",),
    "companies": ("domain",),
}
"""Properties looked up through an index (email includes ``hs_additional_emails``)."""


NUMBER = re.compile(r"^-?(\d+\.?\d*|\.\d+)$")


DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@attrs.define
class Record:
    id: str
    props: dict[str, str]
    created: float
    updated: float
    archived: bool = False
    assoc: dict[str, dict[str, set[int]]] = attrs.field(factory=dict)
    archived_at: float | None = None


@attrs.define
class Owner:
    id: str
    email: str
    first_name: str | None
    last_name: str | None
    user_id: int
    archived: bool = False
    created: float = 0.0


@attrs.define
class PortalList:
    id: str
    name: str
    object_type_id: str
    processing_type: str
    members: dict[str, float] = attrs.field(factory=dict)
    created: float = 0.0


class Problem(Exception):  # noqa: N818  # a control-flow signal, not an error of the library
    def __init__(self, response: httpx.Response) -> None:
        super().__init__("problem")
        self.response = response


class PortalCore:
    """State and shared helpers of the local portal (see :class:`LocalHubSpot`)."""

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
        """Seconds a write takes to reach the search index (search only: reads by id or
        ``idProperty`` and association reads see every committed write at once)."""
        self.association_page_size = 500
        """Associations per input on one page of the v4 batch read (HubSpot documents the
        paging, not the page size; 500 is the single-record read's documented maximum)."""
        self.send_retry_after = send_retry_after
        self.static_tokens: set[str] = set(tokens)
        self.access_tokens: dict[str, float] = {}
        self.oauth_clients: dict[str, tuple[str, set[str]]] = {}
        self.oauth_redirects: dict[str, tuple[str, ...]] = {}
        self.auth_codes: dict[str, tuple[str, str, tuple[str, ...], float, str | None]] = {}
        """Code -> (app, redirect URI, scopes, expiry, PKCE S256 challenge or None)."""
        self.token_owner: dict[str, tuple[str, str]] = {}
        """Access token -> (app, refresh token it came from)."""
        self.token_scopes: dict[str, tuple[str, ...]] = {}
        self.denied_scopes: set[str] = set()
        self.properties = default_properties()
        self.objects: dict[str, dict[str, Record]] = {t: {} for t in OBJECT_TYPE_IDS}
        self.gdpr_blocked: set[str] = set()
        """Emails erased by a GDPR delete: a contact can no longer be created with one."""
        self.value_index: dict[tuple[str, str], dict[str, set[str]]] = {}
        """Live records by (object type, property) and lower-cased value (see ``INDEXED``)."""
        self.owners: dict[str, Owner] = {}
        self.lists: dict[str, PortalList] = {}
        self._ids = itertools.count(1001)
        self._user_ids = itertools.count(9_000_001)
        self._burst: deque[float] = deque()
        self._search: deque[float] = deque()
        self.daily_used = 0
        self.calls = 0
        self.authenticated_calls = 0
        self.token_requests = 0
        self.rate_limited = 0
        self.late_commits = 0
        """Write requests held by the ``late_commit_rate`` fault (they commit after the hold)."""
        self.served_url: str | None = None
        self.requests: list[tuple[str, str]] = []
        """``(method, path)`` of every request received (observability for tests)."""

    def __repr__(self) -> str:
        counts = {t: len(o) for t, o in self.objects.items()}
        return f"LocalHubSpot(objects={counts}, owners={len(self.owners)}, lists={len(self.lists)})"

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

    def _body(self, request: httpx.Request) -> Any:
        if not request.content:
            return None
        try:
            return json.loads(request.content)
        except ValueError:
            raise Problem(
                self._error(400, "VALIDATION_ERROR", "Invalid input JSON on line 1")
            ) from None

    @staticmethod
    def _association_name(kind: str, target: str, type_id: int) -> str:
        spec = ASSOCIATION_TYPES.get((kind, type_id))
        if spec is not None:
            return spec.name
        return f"{SINGULAR.get(kind, kind)}_to_{SINGULAR.get(target, target)}"

    def _is_archived(self, kind: str, record_id: str) -> bool:
        other = self.objects.get(kind, {}).get(record_id)
        return other is None or other.archived

    def _reindex(self, kind: str, record: Record, *, add: bool) -> None:
        """Add ``record`` to (or remove it from) the value indexes of its type."""
        for name in INDEXED.get(kind, ()):
            values = [record.props.get(name, "")]
            if kind == "contacts" and name == "email":
                values.extend(record.props.get("hs_additional_emails", "").split(";"))
            index = self.value_index.setdefault((kind, name), {})
            for value in values:
                key = value.strip().lower()
                if not key:
                    continue
                if add:
                    index.setdefault(key, set()).add(record.id)
                else:
                    index.get(key, set()).discard(record.id)

    def indexed(self, kind: str, name: str, values: Iterable[str]) -> list[Record] | None:
        """Live records whose ``name`` equals one of ``values`` (case-insensitive), oldest
        first; ``None`` when that property is not indexed."""
        if name not in INDEXED.get(kind, ()):
            return None
        index = self.value_index.get((kind, name), {})
        ids: set[str] = set()
        for value in values:
            ids |= index.get(value.strip().lower(), set())
        store = self.objects[kind]
        return [store[i] for i in sorted(ids, key=int)]

    def _archive(self, kind: str, record: Record) -> None:
        if not record.archived:
            self._reindex(kind, record, add=False)
            record.archived = True
            record.archived_at = self.clock()

    def _find(
        self, kind: str, key: str, id_property: str | None, *, archived: bool | None = False
    ) -> Record | None:
        """The record ``key`` names; ``archived`` False: live only, True: archived only,
        None: either."""
        store = self.objects[kind]
        if id_property in (None, "hs_object_id", "id"):
            record = store.get(key)
            if record is None or (archived is not None and record.archived != archived):
                return None
            return record
        if archived:
            needle = key.strip().lower()
            return next(
                (
                    r
                    for r in store.values()
                    if r.archived and r.props.get(id_property or "", "").lower() == needle
                ),
                None,
            )
        if id_property == "email" and kind == "contacts":
            return self._contact_by_email(key)
        found = self.indexed(kind, id_property or "", [key])
        if found is not None:
            return found[0] if found else None
        needle = key.lower()
        for record in store.values():
            if not record.archived and record.props.get(id_property or "", "").lower() == needle:
                return record
        return None

    def _contact_by_email(self, email: str) -> Record | None:
        key = normalize_email(email)
        if not key:
            return None
        found = self.indexed("contacts", "email", [key])
        return found[0] if found else None

    def _shape(
        self,
        kind: str,
        record: Record,
        properties: Sequence[str] | None,
        *,
        associations: Sequence[str] = (),
        trace: str | None = None,
    ) -> dict[str, Any]:
        wanted = list(properties) if properties else list(DEFAULT_PROPS.get(kind, ()))
        modified = MODIFIED.get(kind, "hs_lastmodifieddate")
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
                to = TYPE_ALIASES.get(target.lower())
                links = record.assoc.get(to or "", {})
                results = [
                    {"id": other, "type": self._association_name(kind, to or "", type_id)}
                    for other in sorted(links, key=int)
                    if not self._is_archived(to or "", other)
                    for type_id in sorted(links[other] or {0})
                ]
                if results:
                    assoc[target] = {"results": results}
            if assoc:
                shaped["associations"] = assoc
        return shaped

    def _insert(
        self, kind: str, props: Mapping[str, str], links: Sequence[tuple[str, str, int]] = ()
    ) -> Record:
        now = self.clock()
        record_id = self._new_id()
        stored = {k: v for k, v in props.items() if v != ""}
        if kind == "contacts":
            if stored.get("email"):
                stored["email"] = normalize_email(stored["email"])
            stored.setdefault("lifecyclestage", "lead")
        stored["hs_object_id"] = record_id
        stored["createdate"] = self._now_iso(now)
        stored[MODIFIED.get(kind, "hs_lastmodifieddate")] = self._now_iso(now)
        record = Record(id=record_id, props=stored, created=now, updated=now)
        self.objects[kind][record_id] = record
        self._reindex(kind, record, add=True)
        for target, to_id, type_id in links:
            self._associate(kind, record, target, to_id, type_id)
        return record

    def _associate(self, kind: str, record: Record, target: str, to_id: str, type_id: int) -> None:
        """Link both ways: ``type_id`` from ``record`` and its inverse from the target; a
        primary (labelled) association brings the unlabeled one with it."""
        spec = ASSOCIATION_TYPES.get((kind, type_id))
        ids = {type_id}
        if spec is not None and spec.label is not None:
            ids |= {
                t.type_id
                for (k, _), t in ASSOCIATION_TYPES.items()
                if k == kind and t.to_type == target and t.default
            }
        record.assoc.setdefault(target, {}).setdefault(to_id, set()).update(ids)
        self._primary_company(kind, record, target)
        other = self.objects[target].get(to_id)
        if other is not None:
            inverse = {
                ASSOCIATION_TYPES[(kind, i)].inverse_id
                for i in ids
                if (kind, i) in ASSOCIATION_TYPES
            }
            other.assoc.setdefault(kind, {}).setdefault(record.id, set()).update(inverse)

    def _dissociate(
        self, kind: str, record: Record, target: str, to_id: str, type_ids: set[int] | None = None
    ) -> None:
        """Remove the given association types (all when ``None``) both ways."""
        links = record.assoc.get(target, {})
        current = links.get(to_id, set())
        removed = set(current) if type_ids is None else current & type_ids
        current -= removed
        if not current:
            links.pop(to_id, None)
        other = self.objects[target].get(to_id)
        if other is not None:
            back = other.assoc.get(kind, {})
            inverse = {
                ASSOCIATION_TYPES[(kind, i)].inverse_id
                for i in removed
                if (kind, i) in ASSOCIATION_TYPES
            }
            remaining = back.get(record.id, set())
            remaining -= inverse if type_ids is not None else set(remaining)
            if not remaining:
                back.pop(record.id, None)
        self._primary_company(kind, record, target)

    def _primary_company(self, kind: str, record: Record, target: str) -> None:
        """Keep a contact's ``associatedcompanyid`` on its primary company (type 1)."""
        if (kind, target) != ("contacts", "companies"):
            return
        primary = [cid for cid, types in record.assoc.get(target, {}).items() if 1 in types]
        if primary:
            record.props["associatedcompanyid"] = primary[-1]
        else:
            record.props.pop("associatedcompanyid", None)

    def _apply(self, kind: str, record: Record, props: Mapping[str, str]) -> None:
        self._reindex(kind, record, add=False)
        for name, value in props.items():
            if value == "":
                record.props.pop(name, None)
            elif kind == "contacts" and name == "email":
                record.props[name] = normalize_email(value)
            else:
                record.props[name] = value
        record.updated = self.clock()
        record.props[MODIFIED.get(kind, "hs_lastmodifieddate")] = self._now_iso(record.updated)
        self._reindex(kind, record, add=not record.archived)

    def _conflict(self, existing: Record) -> httpx.Response:
        return self._error(409, "CONFLICT", f"Contact already exists. Existing ID: {existing.id}")
