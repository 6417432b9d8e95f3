"""The HubSpot adapter's pure part: one generator per operation, no IO.

Theory of operation:

1. Each operation is written once, as a generator (a *flow*) of :class:`HubSpotFlows` that
   yields ``httpx.Request``s and receives ``httpx.Response``s, like httpx's ``auth_flow``. The
   adapters (:mod:`.adapter`) drive them through the shared shells of
   :mod:`signals_crm.adapters._shell`: each request waits for the rate limiter
   (:meth:`HubSpotFlows.pacer`), carries the bearer token of the ``httpx.Auth`` (:mod:`._auth`:
   refresh once on a 401) and every answer's rate-limit headers are read
   (:meth:`HubSpotFlows.observe`).
2. The person record is the **contact**. Lookups batch-read contacts by email
   (``idProperty=email``, lower-cased, 100 per call). Contacts found by email *are* updated
   (unlike Salesforce Contacts).
3. Creates use ``batch/create`` (100 per call) with one ``objectWriteTraceId`` per input, so a
   207 answer names the input each error belongs to. New contacts get ``lifecyclestage=lead``
   unless the caller set a stage. A duplicate email fails the *whole* call with 409
   ``CONFLICT`` naming one existing id: the flow looks that id up, marks the inputs with its
   email as :class:`DuplicateRecordError` (with the id), and resends the rest — or, when it
   cannot tell, splits the batch in halves. Nothing is ever created twice: a 409 created
   nothing. Two inputs with one email in the same call: the first is sent, the later ones
   become duplicates of its result.
4. Updates use ``batch/update`` by record id. ``lifecyclestage`` never moves backwards: the
   current stage and the options' ``displayOrder`` are read first and a backward (or clearing)
   value is dropped from the update.
5. Activities (tasks by default, notes when chosen) are created with ``hs_timestamp`` and an
   inline association to the contact (task→contact 204, note→contact 202); their body ends with
   the marker line of :mod:`._requests`. :class:`~signals_crm.core.crm.TaskByMarker` is
   reconciled by a ``CONTAINS_TOKEN`` search for the marker's token (five markers per search).
6. A campaign is a static (``MANUAL``) list: ``PUT …/lists/{id}/memberships/add``. Records
   HubSpot reports as added are ``created``; records it ignores because they already belong are
   a success with ``created=False``; missing records fail with
   :class:`~signals_crm.exceptions.NotFoundError`. A membership's id is ``"{listId}:{recordId}"``.
7. Whole-call failures (network, auth, 429, 5xx) raise; per-record failures are results.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final, TypedDict, TypeVar

import httpx

from signals_crm.adapters._cache import MetadataCache
from signals_crm.adapters._shell import AdapterFlows, Flow
from signals_crm.adapters.hubspot._auth import HubSpotAuth, StaticToken
from signals_crm.adapters.hubspot._errors import (
    batch_error,
    error_from_response,
    json_body,
    transport_error,
)
from signals_crm.adapters.hubspot._limiter import RateLimiter
from signals_crm.adapters.hubspot._requests import (
    ASSOCIATION_TYPE_IDS,
    MAX_ASSOCIATION_READ,
    MAX_BATCH,
    MAX_SEARCH_LIMIT,
    HubSpotAPI,
    activity_body,
    email_id,
    marker_token,
    parse_marker,
    property_value,
    timestamp_value,
)
from signals_crm.adapters.hubspot._responses import (
    RateLimitUsage,
    account_from_object,
    list_ids_of_record,
    next_after,
    owner_to_user,
    parse_batch,
    parse_memberships_update,
    parse_rate_limit,
    person_from_object,
    results,
    schema_from_properties,
    stage_order,
)
from signals_crm.core.crm import (
    CampaignInfo,
    CampaignMembershipWrite,
    Capabilities,
    MembershipByPerson,
    PersonByEmail,
    PersonUpdate,
    PersonWrite,
    ReconcileQuery,
    TaskByMarker,
    TaskWrite,
    WriteResult,
)
from signals_crm.core.model import (
    AccountRecord,
    CRMUser,
    ObjectSchema,
    PersonKind,
    PersonRecord,
    normalize_email,
)
from signals_crm.core.normalize import normalize_domain
from signals_crm.exceptions import (
    ConfigurationError,
    DuplicateRecordError,
    NotFoundError,
    Problem,
    TransportError,
)

__all__ = [
    "CAPABILITIES",
    "HUBSPOT_CAPABILITIES",
    "HubSpotFlows",
    "HubSpotOptions",
    "membership_id",
    "normalize_domain",
]

T = TypeVar("T")

MAX_TASK_BODY: Final = 65536
_SEARCH_BODY_LIMIT: Final = 2900  # HubSpot refuses search bodies over 3,000 characters.
_SEARCH_CAP: Final = 10_000
_MAX_ASSOCIATION_PAGES: Final = 1000  # a bound on pages read, so a portal always paging ends
_MAX_LIST_PAGES: Final = 100  # 10,000 lists: a bound, so a portal that always says hasMore ends
_OBJECT_ALIASES: Final[Mapping[str, str]] = {
    "contact": "contacts",
    "company": "companies",
    "account": "companies",
    "task": "tasks",
    "note": "notes",
    "meeting": "meetings",
}

HUBSPOT_CAPABILITIES: Final = Capabilities(
    name="hubspot",
    person_kind=PersonKind.CONTACT,
    person_object="contacts",
    email_field="email",
    separate_contacts=False,
    lookup_batch_size=MAX_BATCH,
    write_batch_size=MAX_BATCH,
    supports_tasks=True,
    supports_campaigns=True,
    campaign_kind="list",
    supports_describe=True,
    supports_reconcile=True,
    max_task_body_length=MAX_TASK_BODY,
    account_object="companies",
    marker_search_lag=15.0,
    reads_tasks_by_person=True,
    idempotent_memberships=True,  # a list add ignores records that are already members
    required_on_create=(),
    id_pattern="[0-9]{1,20}",
    id_description="a HubSpot id (digits)",
    checks_campaigns=True,
    lists_campaigns=True,
    owner_field="hubspot_owner_id",
    reads_accounts=True,
    reports_api_usage=True,
)
CAPABILITIES: Final = HUBSPOT_CAPABILITIES
"""The former name of :data:`HUBSPOT_CAPABILITIES` (deprecated)."""


def _chunks(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def membership_id(list_id: str, record_id: str) -> str:
    """The id the adapter gives a list membership (HubSpot has none)."""
    return f"{list_id}:{record_id}"


def _expect(response: httpx.Response, *ok: int) -> Any:
    if response.status_code not in ok:
        raise error_from_response(response)
    return json_body(response)


def _per_record(response: httpx.Response) -> bool:
    """Whether a whole-call error can stem from the records sent (so splitting may help).

    A 400 can; a 404 only when HubSpot says a *record* was not found (a wrong base URL or path
    is also a 404, and must raise instead of being blamed on each record).
    """
    if response.status_code == 400:
        return True
    return response.status_code == 404 and _not_found(response)


def _not_found(response: httpx.Response) -> bool:
    """A 404 naming a missing object (``OBJECT_NOT_FOUND``), not an unknown path."""
    body = json_body(response)
    return (
        response.status_code == 404
        and isinstance(body, Mapping)
        and body.get("category") == "OBJECT_NOT_FOUND"
    )


def _no_result() -> TransportError:
    return TransportError(
        "HubSpot's batch answer had no result for this record; it may have been written",
        maybe_sent=True,
    )


class HubSpotOptions(TypedDict, total=False):
    """The keyword options of both HubSpot adapters.

    ``api`` (base URL and API version), ``limiter`` / ``search_limiter`` (client-side rate
    limiters for the burst and the search windows), ``activity_object`` (``"tasks"`` or
    ``"notes"``), ``marker_property`` (a property holding each activity's marker),
    ``task_status``, ``now`` (the clock for activity timestamps), ``metadata_cache`` (schemas,
    owners and list checks; default: the one of ``auth``, shared by its adapters), the deprecated
    ``token`` (use ``auth``).
    """

    api: HubSpotAPI | None
    limiter: RateLimiter | None
    search_limiter: RateLimiter | None
    activity_object: str
    marker_property: str | None
    task_status: str
    now: Callable[[], datetime]
    metadata_cache: MetadataCache | None
    token: str | None


class HubSpotFlows(AdapterFlows):
    """Everything but the IO: configuration, caches, and the flows."""

    crm_name = "HubSpot"

    def __init__(  # the adapters' documented options
        self,
        auth: HubSpotAuth | str | None = None,
        *,
        token: str | None = None,
        api: HubSpotAPI | None = None,
        limiter: RateLimiter | None = None,
        search_limiter: RateLimiter | None = None,
        activity_object: str = "tasks",
        marker_property: str | None = None,
        task_status: str = "NOT_STARTED",
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        metadata_cache: MetadataCache | None = None,
    ) -> None:
        problems: list[Problem] = []
        if token is not None:
            warnings.warn(
                "token= is deprecated: pass the token (or a HubSpot auth) as auth",
                DeprecationWarning,
                stacklevel=3,
            )
        if (token is None) == (auth is None):
            problems.append(Problem("auth", "give exactly one of auth= or the deprecated token="))
        elif not isinstance(auth if auth is not None else token, HubSpotAuth | str):
            problems.append(Problem("auth", "must be a HubSpot auth or an access token string"))
        if activity_object not in {"tasks", "notes"}:
            problems.append(Problem("activity_object", "must be 'tasks' or 'notes'"))
        if problems:
            raise ConfigurationError(problems)
        given = auth if auth is not None else token
        self.auth: HubSpotAuth = (
            given if isinstance(given, HubSpotAuth) else StaticToken(str(given))
        )
        self.api = api or HubSpotAPI()
        self.auth.use_api(self.api)
        self.limiter = limiter or RateLimiter()
        self.search_limiter = search_limiter or RateLimiter(max_requests=5, interval=1.0)
        self.activity_object = activity_object
        self.marker_property = marker_property
        self.task_status = task_status
        self._now = now
        self.metadata_cache = metadata_cache or self.auth.metadata_cache
        self.usage: RateLimitUsage | None = None
        """The ``X-HubSpot-RateLimit-*`` budget of the last answer that carried it."""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self.api.base_url!r}, "
            f"version={self.api.version!r}, auth={self.auth!r})"
        )

    @property
    def capabilities(self) -> Capabilities:
        return HUBSPOT_CAPABILITIES

    @property
    def api_usage(self) -> RateLimitUsage | None:
        """The rate-limit headers of the last answer (``fraction_used``: the daily share)."""
        return self.usage

    # ------------------------------------------------------------------------------------------
    # The shells' hooks (pure)

    def prepare(self, request: httpx.Request) -> None:
        request.headers.setdefault("User-Agent", "signals-crm")

    def pacer(self, request: httpx.Request) -> RateLimiter:
        return self.search_limiter if request.url.path.endswith("/search") else self.limiter

    def transport_error(self, exc: httpx.HTTPError) -> TransportError:
        if isinstance(exc, httpx.RequestError):
            return transport_error(exc)
        return super().transport_error(exc)

    def observe(self, request: httpx.Request, response: httpx.Response) -> None:
        if response.status_code in {207, 400} and b"PROPERTY_DOESNT_EXIST" in response.content:
            self.metadata_cache.forget("describe")  # the schema changed: read it again
        usage = parse_rate_limit(response.headers)
        if usage is not None:
            self.usage = usage
            self.limiter.observe(usage)
        if response.status_code == 429:
            err = error_from_response(response)
            wait = getattr(err, "retry_after", None)
            if wait:
                self.pacer(request).pause(float(wait))

    # ------------------------------------------------------------------------------------------
    # Flows

    def find_people_flow(
        self, emails: Sequence[str], fields: Sequence[str] = ()
    ) -> Flow[list[tuple[PersonRecord, ...]]]:
        keys = [normalize_email(e) for e in emails]
        found = yield from self._contacts_by_email(keys, fields)
        return [tuple(found.get(k, ())) for k in keys]

    def _contacts_by_email(
        self, keys: Sequence[str], fields: Sequence[str]
    ) -> Flow[dict[str, list[PersonRecord]]]:
        unique = [k for k in dict.fromkeys(keys) if k]
        base = ["email", "lastmodifieddate", "hubspot_owner_id", "associatedcompanyid"]
        props = list(dict.fromkeys([*base, *fields]))
        found: dict[str, list[PersonRecord]] = {}
        for chunk in _chunks(unique, MAX_BATCH):
            response = yield self.api.batch_read("contacts", chunk, props, id_property="email")
            if _not_found(response):
                continue  # none of them exists
            body = _expect(response, 200, 207)
            wanted = set(chunk)
            for obj in parse_batch(body).results:
                record = person_from_object(obj, fields)
                key = normalize_email(record.email or "")
                if key in wanted and all(r.id != record.id for r in found.get(key, [])):
                    found.setdefault(key, []).append(record)
        return found

    def read_accounts_flow(
        self, ids: Sequence[str], fields: Sequence[str] = ()
    ) -> Flow[list[AccountRecord | None]]:
        unique = [i for i in dict.fromkeys(ids) if i]
        props = list(
            dict.fromkeys(["domain", "name", "hs_lastmodifieddate", "hubspot_owner_id", *fields])
        )
        by_id: dict[str, AccountRecord] = {}
        for chunk in _chunks(unique, MAX_BATCH):
            response = yield self.api.batch_read("companies", chunk, props)
            if _not_found(response):
                continue  # none of them exists
            for obj in parse_batch(_expect(response, 200, 207)).results:
                record = account_from_object(obj, fields)
                by_id[record.id] = record
        return [by_id.get(i) if i else None for i in ids]

    def find_accounts_flow(
        self, domains: Sequence[str], fields: Sequence[str] = ()
    ) -> Flow[list[tuple[AccountRecord, ...]]]:
        keys = [normalize_domain(d) for d in domains]
        unique = [k for k in dict.fromkeys(keys) if k]
        props = list(
            dict.fromkeys(["domain", "name", "hs_lastmodifieddate", "hubspot_owner_id", *fields])
        )
        found: dict[str, list[AccountRecord]] = {}
        for chunk in self._search_chunks(unique, props):
            after: str | None = None
            seen = 0
            while True:
                body: dict[str, Any] = {
                    "filterGroups": [
                        {"filters": [{"propertyName": "domain", "operator": "IN", "values": chunk}]}
                    ],
                    "properties": props,
                    "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
                    "limit": MAX_SEARCH_LIMIT,
                }
                if after is not None:
                    body["after"] = after
                answer = _expect((yield self.api.search("companies", body)), 200)
                page = results(answer)
                for obj in page:
                    record = account_from_object(obj, fields)
                    key = normalize_domain(record.domain or "")
                    found.setdefault(key, []).append(record)
                seen += len(page)
                after = next_after(answer)
                if after is None or seen >= _SEARCH_CAP:
                    break
        return [tuple(found.get(k, ())) for k in keys]

    def _search_chunks(self, values: Sequence[str], props: Sequence[str]) -> list[list[str]]:
        """Split ``values`` so that each domain search body stays under 3,000 characters."""
        base = len(json.dumps({"filterGroups": [], "properties": list(props)})) + 200
        chunks: list[list[str]] = []
        current: list[str] = []
        size = base
        for value in values:
            cost = len(json.dumps(value)) + 2
            if current and (size + cost > _SEARCH_BODY_LIMIT or len(current) >= MAX_BATCH):
                chunks.append(current)
                current, size = [], base
            current.append(value)
            size += cost
        if current:
            chunks.append(current)
        return chunks

    def campaign_exists_flow(self, campaign_id: str) -> Flow[bool]:
        if self.listed_campaign(campaign_id):
            return True
        check = self._campaign_exists(campaign_id)
        return (yield from self.cached(("campaign", campaign_id), check))

    def _campaign_exists(self, campaign_id: str) -> Flow[bool]:
        response = yield self.api.get_list(campaign_id)
        if response.status_code == 404:
            return False
        _expect(response, 200)
        return True

    def list_users_flow(self) -> Flow[list[CRMUser]]:
        users = yield from self.cached(("users",), self._list_users())
        return list(users)

    def list_campaigns_flow(self) -> Flow[list[CampaignInfo]]:
        campaigns = yield from self.cached(("campaigns",), self._list_campaigns())
        return list(campaigns)

    def _list_campaigns(self) -> Flow[tuple[CampaignInfo, ...]]:
        """Static (``MANUAL``) contact lists, the only ones a sync can add contacts to."""
        found: list[CampaignInfo] = []
        offset = 0
        for _ in range(_MAX_LIST_PAGES):
            body = _expect(
                (yield self.api.search_lists(processing_types=["MANUAL"], offset=offset)), 200
            )
            lists = body.get("lists") if isinstance(body, Mapping) else None
            for entry in lists if isinstance(lists, list) else []:
                if (
                    isinstance(entry, Mapping)
                    and entry.get("objectTypeId", "0-1") == "0-1"
                    and not entry.get("deletedAt")
                    and "listId" in entry
                ):
                    name = entry.get("name")
                    found.append(
                        CampaignInfo(id=str(entry["listId"]), name=str(name) if name else None)
                    )
            if not (isinstance(body, Mapping) and body.get("hasMore")):
                break
            offset = int(body.get("offset") or offset + len(lists or []))
        return tuple(found)

    def _list_users(self) -> Flow[tuple[CRMUser, ...]]:
        users: dict[str, CRMUser] = {}
        for archived in (False, True):
            after: str | None = None
            while True:
                body = _expect((yield self.api.list_owners(after=after, archived=archived)), 200)
                for owner in results(body):
                    if "id" in owner:
                        user = owner_to_user(owner, archived=archived)
                        users.setdefault(user.id, user)
                after = next_after(body)
                if after is None:
                    break
        return tuple(users.values())

    def describe_flow(self, object_name: str) -> Flow[ObjectSchema]:
        schema, _ = yield from self._described(object_name)
        return schema

    def _described(self, object_name: str) -> Flow[tuple[ObjectSchema, Mapping[str, int]]]:
        """The object's schema and (contacts) the lifecycle stages' order, cached together."""
        name = object_name.strip().lower()
        name = _OBJECT_ALIASES.get(name, name)
        return (yield from self.cached(("describe", name), self._describe(name)))

    def _describe(self, name: str) -> Flow[tuple[ObjectSchema, Mapping[str, int]]]:
        body = _expect((yield self.api.get_properties(name)), 200)
        order = stage_order(body) if name == "contacts" else {}
        return schema_from_properties(name, body), MappingProxyType(dict(order))

    def _stage_order_flow(self) -> Flow[Mapping[str, int]]:
        _, order = yield from self._described("contacts")
        return order

    # -- people writes -----------------------------------------------------------------------

    def _contact_input(self, record: PersonWrite, trace: str) -> dict[str, Any]:
        props: dict[str, str] = {}
        for name, value in record.fields.items():
            if value is None or name.lower() == "email":
                continue
            text = property_value(value)
            if text != "":
                props[name] = text
        props["email"] = email_id(record.email)
        if not props.get("lifecyclestage"):
            props["lifecyclestage"] = "lead"
        if record.owner_id:
            props["hubspot_owner_id"] = str(record.owner_id)
        return {"properties": props, "objectWriteTraceId": trace}

    def create_people_flow(self, records: Sequence[PersonWrite]) -> Flow[list[WriteResult]]:
        out: list[WriteResult | None] = [None] * len(records)
        first: dict[str, int] = {}
        later: dict[int, int] = {}
        pending: list[int] = []
        for i, record in enumerate(records):
            key = normalize_email(record.email)
            if key in first:
                later[i] = first[key]
            else:
                first[key] = i
                pending.append(i)
        for chunk in _chunks(pending, MAX_BATCH):
            yield from self._create_contacts(records, list(chunk), out)
        for i, j in later.items():
            earlier = out[j]
            if earlier is not None and earlier.ok and earlier.id is not None:
                out[i] = WriteResult.failure(
                    DuplicateRecordError(
                        f"Contact already exists. Existing ID: {earlier.id}",
                        matched_ids=(earlier.id,),
                        error_code="CONFLICT",
                    )
                )
            else:
                out[i] = earlier
        return [r if r is not None else WriteResult.failure(_no_result()) for r in out]

    def _create_contacts(
        self, records: Sequence[PersonWrite], idxs: list[int], out: list[WriteResult | None]
    ) -> Flow[None]:
        inputs = [self._contact_input(records[i], str(i)) for i in idxs]
        response = yield self.api.batch_create("contacts", inputs)
        status = response.status_code
        if status in (200, 201, 207):
            self._assign_created(
                json_body(response),
                idxs,
                out,
                email_of={i: email_id(records[i].email) for i in idxs},
            )
            return
        if status == 409:
            err = error_from_response(response)
            if not isinstance(err, DuplicateRecordError):  # pragma: no cover - 409 maps so
                raise err
            if len(idxs) == 1:
                if not err.matched_ids:
                    found = yield from self._contacts_by_email(
                        [email_id(records[idxs[0]].email)], []
                    )
                    ids = tuple(r.id for recs in found.values() for r in recs)
                    err = DuplicateRecordError(
                        err.message, matched_ids=ids, status_code=409, error_code=err.error_code
                    )
                out[idxs[0]] = WriteResult.failure(err)
                return
            culprits: list[int] = []
            if err.matched_ids:
                existing = err.matched_ids[0]
                check = yield self.api.get_object("contacts", existing, ["email"])
                if check.status_code == 200:
                    props = (json_body(check) or {}).get("properties") or {}
                    email = normalize_email(str(props.get("email") or ""))
                    culprits = [i for i in idxs if email_id(records[i].email) == email and email]
            if culprits:
                for i in culprits:
                    out[i] = WriteResult.failure(err)
                rest = [i for i in idxs if i not in culprits]
                if rest:
                    yield from self._create_contacts(records, rest, out)
                return
            yield from self._bisect(records, idxs, out)
            return
        if _per_record(response) and len(idxs) > 1:
            yield from self._bisect(records, idxs, out)
            return
        if _per_record(response):
            out[idxs[0]] = WriteResult.failure(error_from_response(response))
            return
        raise error_from_response(response)

    def _bisect(
        self, records: Sequence[PersonWrite], idxs: list[int], out: list[WriteResult | None]
    ) -> Flow[None]:
        mid = len(idxs) // 2
        yield from self._create_contacts(records, idxs[:mid], out)
        yield from self._create_contacts(records, idxs[mid:], out)

    @staticmethod
    def _assign_created(
        body: Any,
        idxs: Sequence[int],
        out: list[WriteResult | None],
        *,
        email_of: Mapping[int, str] | None = None,
    ) -> None:
        """Give each input of a create batch its result (by trace id, then by email)."""
        answer = parse_batch(body)
        pending = set(idxs)
        unmatched: list[Mapping[str, Any]] = []
        for obj in answer.results:
            trace = obj.get("objectWriteTraceId")
            if trace is not None and str(trace).isdigit() and int(str(trace)) in pending:
                out[int(str(trace))] = WriteResult.success(str(obj["id"]))
                pending.discard(int(str(trace)))
            else:
                unmatched.append(obj)
        for trace, err in answer.errors_by_context("objectWriteTraceId"):
            if trace.isdigit() and int(trace) in pending:
                out[int(trace)] = WriteResult.failure(batch_error(err))
                pending.discard(int(trace))
        if email_of is not None:
            by_email = {email: i for i, email in email_of.items() if i in pending}
            for obj in unmatched:
                props = obj.get("properties") or {}
                email = normalize_email(str(props.get("email") or ""))
                if email in by_email:
                    i = by_email.pop(email)
                    out[i] = WriteResult.success(str(obj["id"]))
                    pending.discard(i)
        elif len(unmatched) == len(pending):
            for i, obj in zip(sorted(pending), unmatched, strict=True):
                out[i] = WriteResult.success(str(obj["id"]))
            pending.clear()
        for i in pending:
            out[i] = WriteResult.failure(_no_result())

    def update_people_flow(self, records: Sequence[PersonUpdate]) -> Flow[list[WriteResult]]:
        out: list[WriteResult | None] = [None] * len(records)
        props: dict[int, dict[str, str]] = {}
        for i, record in enumerate(records):
            values = {k: property_value(v) for k, v in record.fields.items()}
            if values.get("lifecyclestage") == "":
                del values["lifecyclestage"]  # clearing would allow a backward move
            props[i] = values
        staged = [i for i, p in props.items() if "lifecyclestage" in p]
        if staged:
            order = yield from self._stage_order_flow()
            current = yield from self._current_stages([records[i].record_id for i in staged])
            for i in staged:
                new = props[i]["lifecyclestage"]
                old = current.get(records[i].record_id)
                if old and new in order and order[new] <= order.get(old, -1):
                    del props[i]["lifecyclestage"]
        send: list[int] = []
        for i, record in enumerate(records):
            if props[i]:
                send.append(i)
            else:
                out[i] = WriteResult.success(record.record_id, created=False)
        for chunk in self._distinct_chunks(send, [r.record_id for r in records]):
            yield from self._update_chunk(records, chunk, props, out)
        return [r if r is not None else WriteResult.failure(_no_result()) for r in out]

    @staticmethod
    def _distinct_chunks(idxs: Sequence[int], ids: Sequence[str]) -> list[list[int]]:
        """Chunks of at most 100 in which no record id appears twice (HubSpot refuses that)."""
        chunks: list[list[int]] = []
        current: list[int] = []
        seen: set[str] = set()
        for i in idxs:
            if len(current) >= MAX_BATCH or ids[i] in seen:
                chunks.append(current)
                current, seen = [], set()
            current.append(i)
            seen.add(ids[i])
        if current:
            chunks.append(current)
        return chunks

    def _current_stages(self, ids: Sequence[str]) -> Flow[dict[str, str]]:
        stages: dict[str, str] = {}
        for chunk in _chunks(list(dict.fromkeys(ids)), MAX_BATCH):
            response = yield self.api.batch_read("contacts", chunk, ["lifecyclestage"])
            if _not_found(response):
                continue
            for obj in parse_batch(_expect(response, 200, 207)).results:
                stage = (obj.get("properties") or {}).get("lifecyclestage")
                if stage:
                    stages[str(obj["id"])] = str(stage)
        return stages

    def _update_chunk(
        self,
        records: Sequence[PersonUpdate],
        idxs: list[int],
        props: Mapping[int, Mapping[str, str]],
        out: list[WriteResult | None],
    ) -> Flow[None]:
        inputs = [
            {"id": records[i].record_id, "properties": dict(props[i]), "objectWriteTraceId": str(i)}
            for i in idxs
        ]
        response = yield self.api.batch_update("contacts", inputs)
        status = response.status_code
        if status in (200, 207):
            answer = parse_batch(json_body(response))
            by_id = {records[i].record_id: i for i in idxs}
            pending = set(idxs)
            for obj in answer.results:
                i = by_id.get(str(obj.get("id")))
                if i is not None and i in pending:
                    out[i] = WriteResult.success(records[i].record_id, created=False)
                    pending.discard(i)
            for trace, err in answer.errors_by_context("objectWriteTraceId"):
                if trace.isdigit() and int(trace) in pending:
                    out[int(trace)] = WriteResult.failure(batch_error(err))
                    pending.discard(int(trace))
            for rid, err in answer.errors_by_context("ids"):
                i = by_id.get(rid)
                if i is not None and i in pending:
                    out[i] = WriteResult.failure(batch_error(err))
                    pending.discard(i)
            for i in pending:
                out[i] = WriteResult.failure(_no_result())
            return
        if _per_record(response) and len(idxs) > 1:
            mid = len(idxs) // 2
            yield from self._update_chunk(records, idxs[:mid], props, out)
            yield from self._update_chunk(records, idxs[mid:], props, out)
            return
        if _per_record(response):
            out[idxs[0]] = WriteResult.failure(error_from_response(response))
            return
        raise error_from_response(response)

    # -- activities --------------------------------------------------------------------------

    def _activity_input(self, task: TaskWrite, trace: str) -> dict[str, Any]:
        when = task.activity_date or self._now()
        obj = self.activity_object
        body = activity_body(task.body, task.marker, MAX_TASK_BODY)
        props: dict[str, str] = {"hs_timestamp": timestamp_value(when)}
        if obj == "tasks":
            props.update(
                hs_task_subject=task.subject,
                hs_task_body=body,
                hs_task_status=self.task_status,
                hs_task_type="TODO",
            )
        else:
            note = f"{task.subject}\n\n{task.body}" if task.subject else task.body
            props["hs_note_body"] = activity_body(note, task.marker, MAX_TASK_BODY)
        if self.marker_property:
            props[self.marker_property] = task.marker
        if task.owner_id:
            props["hubspot_owner_id"] = str(task.owner_id)
        association = {
            "to": {"id": str(task.person_id)},
            "types": [
                {
                    "associationCategory": "HUBSPOT_DEFINED",
                    "associationTypeId": ASSOCIATION_TYPE_IDS[(obj, "contacts")],
                }
            ],
        }
        return {"properties": props, "associations": [association], "objectWriteTraceId": trace}

    def create_tasks_flow(self, tasks: Sequence[TaskWrite]) -> Flow[list[WriteResult]]:
        out: list[WriteResult | None] = [None] * len(tasks)
        for chunk in _chunks(list(range(len(tasks))), MAX_BATCH):
            yield from self._create_activities(tasks, list(chunk), out)
        return [r if r is not None else WriteResult.failure(_no_result()) for r in out]

    def _create_activities(
        self, tasks: Sequence[TaskWrite], idxs: list[int], out: list[WriteResult | None]
    ) -> Flow[None]:
        inputs = [self._activity_input(tasks[i], str(i)) for i in idxs]
        response = yield self.api.batch_create(self.activity_object, inputs)
        status = response.status_code
        if status in (200, 201, 207):
            self._assign_created(json_body(response), idxs, out)
            return
        if _per_record(response) and len(idxs) > 1:
            mid = len(idxs) // 2
            yield from self._create_activities(tasks, idxs[:mid], out)
            yield from self._create_activities(tasks, idxs[mid:], out)
            return
        if _per_record(response):
            out[idxs[0]] = WriteResult.failure(error_from_response(response))
            return
        raise error_from_response(response)

    # -- lists -------------------------------------------------------------------------------

    def add_to_campaign_flow(
        self, memberships: Sequence[CampaignMembershipWrite]
    ) -> Flow[list[WriteResult]]:
        out: list[WriteResult | None] = [None] * len(memberships)
        groups: dict[str, list[int]] = {}
        for i, m in enumerate(memberships):
            groups.setdefault(str(m.campaign_id), []).append(i)
        for list_id, idxs in groups.items():
            first: dict[str, int] = {}
            for i in idxs:
                first.setdefault(str(memberships[i].person_id), i)
            ids = list(first)
            for chunk in _chunks(ids, MAX_BATCH):
                response = yield self.api.add_to_list(list_id, chunk)
                members = [i for i in idxs if str(memberships[i].person_id) in set(chunk)]
                if response.status_code == 400 or _not_found(response):
                    err = error_from_response(response)
                    for i in members:
                        out[i] = WriteResult.failure(err)
                    continue
                answer = parse_memberships_update(_expect(response, 200))
                for i in members:
                    pid = str(memberships[i].person_id)
                    if pid in answer.missing:
                        out[i] = WriteResult.failure(
                            NotFoundError(
                                f"record {pid} does not exist, so it cannot join list {list_id}",
                                error_code="OBJECT_NOT_FOUND",
                            )
                        )
                    else:
                        created = pid in answer.added and first[pid] == i
                        out[i] = WriteResult.success(membership_id(list_id, pid), created=created)
        return [r if r is not None else WriteResult.failure(_no_result()) for r in out]

    # -- reconcile ---------------------------------------------------------------------------

    def reconcile_flow(self, queries: Sequence[ReconcileQuery]) -> Flow[list[str | None]]:
        out: list[str | None] = [None] * len(queries)
        people = [(i, q) for i, q in enumerate(queries) if isinstance(q, PersonByEmail)]
        contacts = [(i, q) for i, q in people if q.kind is PersonKind.CONTACT]
        if contacts:
            found = yield from self._contacts_by_email(
                [normalize_email(q.email) for _, q in contacts], []
            )
            for i, q in contacts:
                records = sorted(found.get(normalize_email(q.email), []), key=_recency)
                out[i] = records[0].id if records else None
        tasks = [(i, q) for i, q in enumerate(queries) if isinstance(q, TaskByMarker)]
        hinted = [(i, q) for i, q in tasks if q.person_id or q.email]
        if hinted:
            answers = yield from self._tasks_of_people([q for _, q in hinted])
            for (i, _), answer in zip(hinted, answers, strict=True):
                out[i] = answer
        markers = [(i, q.marker) for i, q in tasks if not (q.person_id or q.email)]
        if markers:
            ids = yield from self._tasks_by_marker(list(dict.fromkeys(m for _, m in markers)))
            for i, marker in markers:
                out[i] = ids.get(marker)
        lists: dict[str, set[str]] = {}
        for i, query in enumerate(queries):
            if not isinstance(query, MembershipByPerson):
                continue
            pid = str(query.person_id)
            if pid not in lists:
                response = yield self.api.record_memberships(pid)
                if _not_found(response):
                    lists[pid] = set()
                else:
                    lists[pid] = list_ids_of_record(_expect(response, 200))
            if str(query.campaign_id) in lists[pid]:
                out[i] = membership_id(str(query.campaign_id), pid)
        return out

    def _tasks_of_people(self, queries: Sequence[TaskByMarker]) -> Flow[list[str | None]]:
        """Each query's task among the activities associated with its person record (by id;
        else the contacts of its email): read, never searched, so no search lag applies. The
        marker is compared whole, as in a search hit."""
        emails = [normalize_email(q.email) for q in queries if q.email and not q.person_id]
        by_email: dict[str, list[PersonRecord]] = {}
        if emails:
            by_email = yield from self._contacts_by_email(emails, [])
        people: list[list[str]] = []
        for query in queries:
            if query.person_id:  # the record it was written on: exactly where to look
                people.append([str(query.person_id)])
                continue
            email = normalize_email(query.email or "")
            people.append(list(dict.fromkeys(r.id for r in by_email.get(email, []))))
        contacts = list(dict.fromkeys(p for ids in people for p in ids))
        linked = yield from self._associated(contacts)
        activities = list(dict.fromkeys(a for p in contacts for a in linked.get(p, ())))
        markers = yield from self._markers_of(activities)
        out: list[str | None] = []
        for query, ids in zip(queries, people, strict=True):
            hits = {a for p in ids for a in linked.get(p, ()) if markers.get(a) == query.marker}
            out.append(min(hits, key=lambda a: (len(a), a)) if hits else None)
        return out

    def _associated(self, contact_ids: Sequence[str]) -> Flow[dict[str, list[str]]]:
        """The activities (``activity_object``) associated with each contact: the v4 batch
        read, every page of every input."""
        found: dict[str, list[str]] = {c: [] for c in contact_ids}
        pending: list[tuple[str, str | None]] = [(c, None) for c in contact_ids]
        pages = 0
        while pending:
            chunk, pending = pending[:MAX_ASSOCIATION_READ], pending[MAX_ASSOCIATION_READ:]
            request = self.api.read_associations("contacts", self.activity_object, chunk)
            response = yield request
            if _not_found(response):
                continue  # none of these contacts exists (any more)
            answer = _expect(response, 200, 207)
            for result in results(answer):
                source = str((result.get("from") or {}).get("id", ""))
                if source not in found:
                    continue
                for link in result.get("to") or ():
                    if isinstance(link, Mapping) and link.get("toObjectId") is not None:
                        found[source].append(str(link["toObjectId"]))
                after = next_after(result)
                pages += 1
                if after is not None and pages < _MAX_ASSOCIATION_PAGES:
                    pending.append((source, after))
        return found

    def _markers_of(self, activity_ids: Sequence[str]) -> Flow[dict[str, str | None]]:
        """The marker of each live activity (``marker_property``, else its body's marker line)."""
        body_prop = "hs_task_body" if self.activity_object == "tasks" else "hs_note_body"
        props = [body_prop] + ([self.marker_property] if self.marker_property else [])
        markers: dict[str, str | None] = {}
        for chunk in _chunks(list(activity_ids), MAX_BATCH):
            response = yield self.api.batch_read(self.activity_object, chunk, props)
            if _not_found(response):
                continue  # archived or gone
            for obj in parse_batch(_expect(response, 200, 207)).results:
                values = obj.get("properties") or {}
                if self.marker_property:
                    markers[str(obj["id"])] = values.get(self.marker_property)
                else:
                    markers[str(obj["id"])] = parse_marker(values.get(body_prop))
        return markers

    def _tasks_by_marker(self, markers: Sequence[str]) -> Flow[dict[str, str]]:
        obj = self.activity_object
        body_prop = "hs_task_body" if obj == "tasks" else "hs_note_body"
        found: dict[str, str] = {}
        for chunk in _chunks(list(markers), 5):
            if self.marker_property:
                groups = [
                    {
                        "filters": [
                            {"propertyName": self.marker_property, "operator": "EQ", "value": m}
                        ]
                    }
                    for m in chunk
                ]
            else:
                groups = [
                    {
                        "filters": [
                            {
                                "propertyName": body_prop,
                                "operator": "CONTAINS_TOKEN",
                                "value": marker_token(m),
                            }
                        ]
                    }
                    for m in chunk
                ]
            props = [body_prop] + ([self.marker_property] if self.marker_property else [])
            after: str | None = None
            while True:
                search: dict[str, Any] = {
                    "filterGroups": groups,
                    "properties": props,
                    "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
                    "limit": MAX_SEARCH_LIMIT,
                }
                if after is not None:
                    search["after"] = after
                answer = _expect((yield self.api.search(obj, search)), 200)
                for result in results(answer):
                    props_of = result.get("properties") or {}
                    for m in chunk:
                        if m in found:
                            continue
                        if self.marker_property:
                            hit = props_of.get(self.marker_property) == m
                        else:
                            hit = parse_marker(props_of.get(body_prop)) == m
                        if hit:
                            found[m] = str(result["id"])
                after = next_after(answer)
                if after is None or all(m in found for m in chunk):
                    break
        return found


def _recency(record: PersonRecord) -> tuple[float, str]:
    stamp = record.last_modified.timestamp() if record.last_modified else 0.0
    return (-stamp, record.id)
