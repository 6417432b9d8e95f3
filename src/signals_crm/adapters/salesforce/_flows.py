"""The Salesforce adapter's pure part: one generator per operation, no IO.

Theory of operation (the httpx ``auth_flow`` pattern):

1. Each operation is a plain generator of :class:`SalesforceFlows`: it *yields* the
   ``httpx.Request`` it needs (built by :mod:`._requests`), *receives* the ``httpx.Response``,
   parses it with :mod:`._responses` and finally *returns* the result. Paging, chunking and the
   follow-up queries all live here, once, for both the blocking and the async adapter.
2. The adapters (:mod:`.adapter`) only drive these generators through the shared shells of
   :mod:`signals_crm.adapters._shell`; the session (token, refresh, instance URL) is the
   ``httpx.Auth`` of :mod:`._auth`. Every answer's ``Sforce-Limit-Info`` becomes
   :attr:`SalesforceFlows.api_usage`.
3. Lookups group by email case-insensitively; results come back one per input, in order.
4. Writes use sObject Collections (200 records a request, ``allOrNone: false``). Failures are
   per record (:class:`~signals_crm.core.crm.WriteResult`); only whole-call failures raise.
5. With ``sync_key_field`` (a custom External ID + Unique field on Lead and Task), new Leads
   and Tasks are Collections *upserts* by it, each record carrying its write's idempotency key:
   a create sent again after an ambiguous outcome, or one that commits after the client gave
   up, updates the record instead of making a second one (``created=False``). Two upserts of
   one key racing inside Salesforce may end in ``DUPLICATE_VALUE`` naming the record the other
   made: that is the record, not a failure.
6. Up to five Collections requests of one write travel as the subrequests of one
   ``/composite`` request: one round trip, one API call, so one write call takes 1,000 records
   (``write_batch_size``). Each subrequest is answered as if it had been sent alone, so the
   rules above hold per subrequest. A composite whose subrequests fared differently is read so
   that nothing that landed is ever reported as not sent: a subrequest the CRM refused (a 4xx)
   beside others that landed fails its records with a retryable error, so the engine sends them
   again (alone, where the refusal is their own); one that may have landed in part (a 5xx,
   lock contention) makes the whole call ambiguous (a retryable error raised: the engine
   reconciles it); a later round trip of the same write that fails after an earlier one landed
   does the same.
7. **Chained writes** (``write_chains``): a person's create (or update), its Tasks and its
   CampaignMember travel as single-record subrequests of one ``/composite`` request
   (``allOrNone: false``, ``collateSubrequests: false``), the dependents referring to the
   create's answer (``"WhoId": "@{p0.id}"``), at most 25 subrequests a request, several chains
   a request. Single-record subrequests, never Collections, because a reference into a
   Collections answer for a record that failed there has no documented value. With
   ``sync_key_field`` the create is an upsert by it (``PATCH sobjects/Lead/{field}/{key}``,
   the REST API's "Upsert a Record Using an External ID", which composite subrequests may
   use), and so are the Tasks. A dependent of a create that did not succeed was not executed
   (Salesforce: "Dependent subrequests aren't executed", REST API Developer Guide,
   "Composite Request Body"): it answers ``PROCESSING_HALTED``, retryable, whatever the
   subrequest said.
8. **Metadata is read together.** Preflight needs the campaign check, the Lead's schema (and
   the Task's, with ``sync_key_field``) and the users, one after another. A miss on any of
   them reads every one of them the metadata cache lacks in one ``/composite`` request (GET
   query and sObject describe subrequests: one round trip, one API call) and keeps each
   answer; the calls that follow are answered from the cache. A part that failed there is
   not kept: its own call reads it again alone and reports its error. One missing part alone
   goes as a plain request, as before.
"""

from __future__ import annotations

import functools
import itertools
import operator
import re
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any, TypeAlias, TypedDict, TypeVar, overload

import attrs
import httpx

from signals_crm.adapters._cache import MetadataCache
from signals_crm.adapters._shell import AdapterFlows, Flow
from signals_crm.adapters.salesforce._auth import SalesforceAuth
from signals_crm.adapters.salesforce._bodies import SubResponse
from signals_crm.adapters.salesforce._errors import (
    error_for_code,
    error_from_response,
    is_already_member,
)
from signals_crm.adapters.salesforce._requests import (
    COLLECTION_LIMIT,
    DEFAULT_API_VERSION,
    MAX_COMPOSITE_COLLECTIONS,
    MAX_COMPOSITE_QUERIES,
    EncodedRecords,
    Endpoint,
    PersonJSON,
    TaskJSON,
    TaskMarker,
    campaign_member_record,
    campaign_members_json,
    collection_request,
    collection_subrequest,
    composite_request,
    describe_request,
    in_queries,
    key_path,
    object_for_kind,
    or_queries,
    person_record,
    person_update_json,
    person_update_record,
    query_more_request,
    query_request,
    query_subrequest,
    record_subrequest,
    task_record,
)
from signals_crm.adapters.salesforce._responses import (
    ApiUsage,
    QueryPage,
    composite_successes,
    parse_collection_results,
    parse_composite,
    parse_datetime,
    parse_describe,
    parse_limit_info,
    parse_query,
)
from signals_crm.adapters.salesforce._soql import (
    DEFAULT_MAX_URL_LENGTH,
    MAX_SOQL_LENGTH,
    encode_q,
    like_literal,
    quote,
)
from signals_crm.core._build import builder
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
    WriteChain,
    WriteChainResult,
    WriteResult,
)
from signals_crm.core.model import (
    AccountRecord,
    CRMUser,
    FieldValue,
    ObjectSchema,
    PersonKind,
    PersonRecord,
    normalize_email,
)
from signals_crm.core.normalize import normalize_domain
from signals_crm.exceptions import (
    AdapterError,
    ConfigurationError,
    CRMAPIError,
    DuplicateRecordError,
    NotFoundError,
    PermissionDeniedError,
    Problem,
    RateLimitedError,
    TransportError,
)

__all__ = ["SALESFORCE_CAPABILITIES", "SalesforceFlows", "website_host"]

T = TypeVar("T")
Record: TypeAlias = Mapping[str, FieldValue]

SALESFORCE_CAPABILITIES = Capabilities(
    name="salesforce",
    person_kind=PersonKind.LEAD,
    person_object="Lead",
    email_field="Email",
    separate_contacts=True,
    lookup_batch_size=200,
    write_batch_size=COLLECTION_LIMIT * MAX_COMPOSITE_COLLECTIONS,
    max_task_body_length=32_000,
    account_object="Account",
    required_on_create=("LastName", "Company"),
    id_pattern="[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?",
    id_description="a Salesforce id (15 or 18 letters and digits)",
    checks_campaigns=True,
    lists_campaigns=True,
    reads_accounts=True,
    reports_api_usage=True,
    chains_writes=True,
    max_chain_writes=25,
    task_object="Task",
    idempotent_memberships=True,  # a second CampaignMember is refused (DUPLICATE_VALUE)
)
_UNCHAINED = attrs.evolve(SALESFORCE_CAPABILITIES, chains_writes=False)
_SYNC_KEY_FIELD = re.compile(r"[A-Za-z][A-Za-z0-9_]*__c")
_KEY_CLASH = re.compile(r"with id:\s*([A-Za-z0-9]{15,18})")

_PLACEHOLDER_INSTANCE = "https://instance.invalid"
_TASK_OBJECT = "Task"
_PERSON_OBJECT = SALESFORCE_CAPABILITIES.person_object.lower()
_USERS_SOQL = "SELECT Id, Name, Email, IsActive FROM User"


def _campaign_soql(campaign_id: str) -> str:
    return f"SELECT Id FROM Campaign WHERE Id = {quote(campaign_id)}"  # noqa: S608  # quoted


def _crm_users(raws: Sequence[Record]) -> tuple[CRMUser, ...]:
    users: list[CRMUser] = []
    for raw in raws:
        email = _get(raw, "Email")
        name = _get(raw, "Name")
        users.append(
            CRMUser(
                id=str(_get(raw, "Id")),
                email=str(email) if email else None,
                active=bool(_get(raw, "IsActive")),
                name=str(name) if name else None,
            )
        )
    return tuple(users)


_Parse: TypeAlias = Callable[["SalesforceFlows", httpx.Response], Generator[Any, Any, Any]]
"""How one answered part of the metadata composite becomes the value its cache entry keeps."""


def _found(flows: SalesforceFlows, response: httpx.Response) -> Flow[bool]:
    return bool((yield from flows._pages_from(parse_query(response))))  # noqa: SLF001  # its own


def _schema(_: SalesforceFlows, response: httpx.Response) -> Flow[ObjectSchema]:
    yield from ()  # nothing more to read: a flow like its siblings
    return parse_describe(response)


def _users(flows: SalesforceFlows, response: httpx.Response) -> Flow[tuple[CRMUser, ...]]:
    return _crm_users((yield from flows._pages_from(parse_query(response))))  # noqa: SLF001


_LEAD_BASE_FIELDS = (
    "Id",
    "Email",
    "IsConverted",
    "ConvertedContactId",
    "LastModifiedDate",
    "OwnerId",
)
_CONTACT_BASE_FIELDS = ("Id", "Email", "LastModifiedDate", "OwnerId", "AccountId")
_PERSON_READ = {
    kind: ("Id", "Email", "IsConverted", "ConvertedContactId", "LastModifiedDate", "OwnerId")
    + (("AccountId",) if kind is PersonKind.CONTACT else ())
    for kind in PersonKind
}
"""What :meth:`SalesforceFlows._person` reads of a record of each kind, in its order (then
the fields asked for)."""
_ACCOUNT_BASE_FIELDS = ("Id", "Name", "Website", "LastModifiedDate")


_write_result = builder(WriteResult)
"""``WriteResult(id, error, created)``, positionally (an update's result is made again)."""
_person_record = builder(PersonRecord, trusted=True)
"""``PersonRecord(...)`` of checked values, positionally: no converter or check run."""


def _get(record: Record, name: str) -> FieldValue:
    if name in record:
        return record[name]
    lowered = name.lower()
    for key, value in record.items():
        if key.lower() == lowered:
            return value
    return None


def _reader(
    select: Sequence[str], names: Sequence[str]
) -> Callable[[Record], Sequence[FieldValue]]:
    """What :func:`_get` reads of each of ``names`` in a record of a query that selected
    ``select``, in one sequence. A record holding just the selected fields, each spelled as
    selected (what Salesforce answers), is read by one ``itemgetter``: each name is then the
    selected field of its spelling, or of its lower case, or none (``None``), found once here
    (no two selected fields alike but for case, else this path is not taken). Any other
    record: name by name."""
    count = len(select)
    lowered = {field.lower(): n for n, field in enumerate(select)}
    exact = operator.itemgetter(*select, *select[:1]) if count else None  # 2 names: a tuple
    missing = count + 1  # the None appended below
    pick = operator.itemgetter(*[lowered.get(n.lower(), missing) for n in names], missing, missing)
    wanted = len(names)
    usable = len(lowered) == count

    def read(record: Record) -> Sequence[FieldValue]:
        if exact is not None and usable and len(record) == count:
            try:
                values: tuple[FieldValue, ...] = exact(record)
            except KeyError:
                pass
            else:
                picked: tuple[FieldValue, ...] = pick((*values, None))
                return picked[:wanted]
        return [_get(record, name) for name in names]

    return read


def _merge_fields(base: Sequence[str], extra: Sequence[str]) -> list[str]:
    seen = {f.lower() for f in base}
    merged = list(base)
    for name in extra:
        if name.lower() not in seen:
            seen.add(name.lower())
            merged.append(name)
    return merged


def _dedupe(values: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))


def _id15(record_id: str) -> str:
    return record_id[:15]


website_host = normalize_domain
"""The bare host of a Website value (the core's :func:`normalize_domain`)."""


def _chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class SalesforceOptions(TypedDict, total=False):
    """The keyword options of both Salesforce adapters.

    ``api_version`` of the REST API; ``task_marker`` says where a Task keeps its activity
    marker (default: a tag in ``Subject``); ``task_status`` / ``task_priority`` are sent on
    every Task (``None`` leaves the org's default); ``max_query_length`` bounds each SOQL
    statement of a lookup, which travels in a ``/composite`` body (``IN`` lists are chunked to
    fit; default 100,000 characters, Salesforce's statement limit); ``max_url_length`` bounds a
    query sent in a URL (a lone lookup query that fits goes as a plain ``GET``);
    ``metadata_cache`` keeps describes, users and
    campaign checks (default: the one of ``auth``, shared by adapters of one connection);
    ``sync_key_field`` names a custom External ID + Unique text field on Lead and Task (such as
    ``Signals_Sync_Key__c``): new Leads and Tasks are then upserts by each write's idempotency
    key, so a replayed or late write can never make a second record (``docs/salesforce.md``,
    "Setting up the external ID field"; preflight checks the field). ``chain_writes``
    (default ``True``) declares ``Capabilities.chains_writes``: a small batch's Lead, its Tasks
    and its campaign member go in one composite request (module doc, rule 7); ``False`` keeps
    every write kind in its own Collections call.
    """

    api_version: str
    task_marker: TaskMarker | None
    task_status: str | None
    task_priority: str | None
    max_url_length: int
    max_query_length: int
    metadata_cache: MetadataCache | None
    sync_key_field: str | None
    chain_writes: bool


class SalesforceFlows(AdapterFlows):
    """Everything but the IO: configuration, caches and one generator per operation."""

    crm_name = "Salesforce"

    def __init__(
        self,
        auth: SalesforceAuth,
        *,
        api_version: str = DEFAULT_API_VERSION,
        task_marker: TaskMarker | None = None,
        task_status: str | None = "Completed",
        task_priority: str | None = "Normal",
        max_url_length: int = DEFAULT_MAX_URL_LENGTH,
        max_query_length: int = MAX_SOQL_LENGTH,
        metadata_cache: MetadataCache | None = None,
        sync_key_field: str | None = None,
        chain_writes: bool = True,
    ) -> None:
        if not isinstance(auth, SalesforceAuth):
            raise ConfigurationError([Problem("auth", "must be a Salesforce auth flow")])
        marker = task_marker or TaskMarker()
        _check_sync_key_field(sync_key_field, marker)
        self._sync_key_field = sync_key_field
        self._chain_writes = bool(chain_writes)
        self.auth: SalesforceAuth = auth
        self._api_version = api_version
        self._marker = marker
        self._task_status = task_status
        self._task_priority = task_priority
        self._max_url_length = max_url_length
        self._max_query_length = max_query_length
        self.metadata_cache = metadata_cache or auth.metadata_cache
        self._api_usage: ApiUsage | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(api_version={self._api_version!r}, auth={self.auth!r})"

    # -- public state ------------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        """Salesforce: Leads are the person records; Contacts exist and are never updated. With
        ``sync_key_field``, Lead and Task creates are upserts by it."""
        caps = SALESFORCE_CAPABILITIES
        if not self._chain_writes:
            caps = _UNCHAINED
        if self._sync_key_field is None:
            return caps
        return attrs.evolve(
            caps,
            sync_key_field=self._sync_key_field,
            upserts_people=True,
            upserts_tasks=True,
        )

    @property
    def sync_key_field(self) -> str | None:
        """The External ID field new Leads and Tasks are upserted by (``None``: plain creates)."""
        return self._sync_key_field

    @property
    def api_usage(self) -> ApiUsage | None:
        """The org's API usage as the last ``Sforce-Limit-Info`` header reported it."""
        return self._api_usage

    @property
    def refresh_token(self) -> str | None:
        """The newest rotated refresh token, if the token endpoint sent one (persist it)."""
        return self.auth.rotated_refresh_token

    @property
    def task_marker(self) -> TaskMarker:
        return self._marker

    @property
    def endpoint(self) -> Endpoint:
        instance = self.auth.current_instance_url or _PLACEHOLDER_INSTANCE
        return Endpoint(instance_url=instance, api_version=self._api_version)

    def observe(self, request: httpx.Request, response: httpx.Response) -> None:  # noqa: ARG002  # the hook's signature
        usage = parse_limit_info(response.headers.get("Sforce-Limit-Info"))
        if usage is not None:
            self._api_usage = usage

    # -- query helper ------------------------------------------------------------------------

    def _query_all(self, soql: str) -> Flow[list[Record]]:
        first = parse_query((yield query_request(self.endpoint, soql)))
        return (yield from self._pages_from(first))

    def _pages_from(self, page: QueryPage) -> Flow[list[Record]]:
        """The records of ``page`` and of every page after it."""
        endpoint = self.endpoint
        records = list(page.records)
        while page.next_records_url:
            page = parse_query((yield query_more_request(endpoint, page.next_records_url)))
            records.extend(page.records)
        return records

    def _query_many(self, queries: Sequence[str]) -> Flow[list[Record]]:
        pages = yield from self._query_each(queries)
        return [record for page in pages for record in page]

    def _query_each(self, queries: Sequence[str]) -> Flow[list[list[Record]]]:
        """Every record of each query, one list per query, in as few round trips as can be.

        The queries travel in ``/composite`` bodies, five a request (one round trip, one API
        call), so their length is bounded by the SOQL statement limit, not the URI's (Help
        article 000386264 gives this as the way round the URI limit). A lone query whose URL
        fits ``max_url_length`` is a plain ``GET``. Further pages are read one ``queryMore`` at
        a time.
        """
        endpoint = self.endpoint
        out: list[list[Record]] = [[] for _ in queries]
        for group in _chunks(range(len(queries)), MAX_COMPOSITE_QUERIES):
            lone = queries[group[0]] if len(group) == 1 else None
            if lone is not None and self._fits_url(endpoint, lone):
                pages = [parse_query((yield query_request(endpoint, lone)))]
            else:
                refs = [f"q{n}" for n in range(len(group))]
                subs = [
                    query_subrequest(endpoint, queries[i], ref)
                    for i, ref in zip(group, refs, strict=True)
                ]
                answer = yield composite_request(endpoint, subs)
                pages = [parse_query(r) for r in parse_composite(answer, refs)]
            for i, first in zip(group, pages, strict=True):
                out[i].extend(first.records)
                more = first.next_records_url
                while more:
                    page = parse_query((yield query_more_request(endpoint, more)))
                    out[i].extend(page.records)
                    more = page.next_records_url
        return out

    def _fits_url(self, endpoint: Endpoint, soql: str) -> bool:
        """Whether ``soql`` may go as a plain ``GET`` (measured before any URL is built)."""
        fixed = len(endpoint.base) + len("/query?q=")
        return fixed + len(soql) <= self._max_url_length and (
            fixed + len(encode_q(soql)) <= self._max_url_length
        )

    def _in(
        self,
        *,
        select: Sequence[str],
        object_name: str,
        field: str,
        values: Sequence[str],
        where_extra: str | None = None,
    ) -> list[str]:
        return list(
            in_queries(
                self.endpoint,
                select=select,
                object_name=object_name,
                field=field,
                values=values,
                where_extra=where_extra,
                in_body=True,
                max_query_length=self._max_query_length,
            )
        )

    # -- lookups -----------------------------------------------------------------------------

    def find_people_flow(
        self, emails: Sequence[str], fields: Sequence[str] = ()
    ) -> Flow[list[tuple[PersonRecord, ...]]]:
        keys = [normalize_email(e) for e in emails]
        unique = _dedupe(keys)
        if not unique:
            return [() for _ in keys]
        lead_select = _merge_fields(_LEAD_BASE_FIELDS, fields)
        lead_queries = self._in(
            select=lead_select, object_name="Lead", field="Email", values=unique
        )
        contact_queries = self._in(
            select=_CONTACT_BASE_FIELDS, object_name="Contact", field="Email", values=unique
        )
        # Lead and Contact queries travel together: one round trip for up to five of them.
        pages = yield from self._query_each([*lead_queries, *contact_queries])
        leads = [r for page in pages[: len(lead_queries)] for r in page]
        contacts = [r for page in pages[len(lead_queries) :] for r in page]
        found: dict[str, list[PersonRecord]] = {}
        for raws, kind, asked, select in (
            (leads, PersonKind.LEAD, fields, lead_select),
            (contacts, PersonKind.CONTACT, (), _CONTACT_BASE_FIELDS),
        ):
            read = _reader(select, (*_PERSON_READ[kind], *asked))
            for raw in raws:
                record = self._person(raw, kind, asked, read)
                found.setdefault(normalize_email(record.email or ""), []).append(record)
        return [tuple(found.get(key, ())) if key else () for key in keys]

    @staticmethod
    def _person(
        raw: Record,
        kind: PersonKind,
        fields: Sequence[str],
        read: Callable[[Record], Sequence[FieldValue]] | None = None,
    ) -> PersonRecord:
        """The person of a query record; ``read`` is the :func:`_reader` of its query for
        its kind's :data:`_PERSON_READ` names, then ``fields`` (made here when not given)."""
        if read is None:
            read = _reader((), (*_PERSON_READ[kind], *fields))
        values = read(raw)
        record_id, email, converted, converted_contact, modified, owner = values[:6]
        account = values[6] if kind is PersonKind.CONTACT else None
        asked = values[len(_PERSON_READ[kind]) :]
        # Every value is of its field's type by construction (a query record's values are
        # FieldValues), so PersonRecord's checks and its copy of a new dict are left out.
        return _person_record(
            str(record_id),
            kind,
            str(email) if email is not None else None,
            dict(zip(fields, asked, strict=True)),
            bool(converted),
            str(converted_contact) if converted_contact else None,
            parse_datetime(modified),
            str(owner) if owner else None,
            str(account) if account else None,
        )

    @staticmethod
    def _account(raw: Record, fields: Sequence[str]) -> AccountRecord:
        website = _get(raw, "Website")
        name = _get(raw, "Name")
        return AccountRecord(
            id=str(_get(raw, "Id")),
            domain=website_host(str(website)) if website else None,
            name=str(name) if name is not None else None,
            fields={f: _get(raw, f) for f in fields},
            last_modified=parse_datetime(_get(raw, "LastModifiedDate")),
        )

    def read_accounts_flow(
        self, ids: Sequence[str], fields: Sequence[str] = ()
    ) -> Flow[list[AccountRecord | None]]:
        # An id of another shape names no account (and would fail the whole query).
        unique = _dedupe([i for i in ids if i and SALESFORCE_CAPABILITIES.is_id(i)])
        if not unique:
            return [None for _ in ids]
        queries = self._in(
            select=_merge_fields(_ACCOUNT_BASE_FIELDS, fields),
            object_name="Account",
            field="Id",
            values=unique,
        )
        pages = yield from self._query_each(queries)
        by_id: dict[str, AccountRecord] = {}
        for page in pages:
            for raw in page:
                record = self._account(raw, fields)
                by_id[record.id] = record
                by_id.setdefault(record.id[:15], record)  # a 15-letter id names it too
        return [(by_id.get(i) or by_id.get(i[:15])) if i else None for i in ids]

    def find_accounts_flow(
        self, domains: Sequence[str], fields: Sequence[str] = ()
    ) -> Flow[list[tuple[AccountRecord, ...]]]:
        keys = [normalize_domain(d) for d in domains]
        unique = _dedupe(keys)
        if not unique:
            return [() for _ in keys]
        select = _merge_fields(_ACCOUNT_BASE_FIELDS, fields)
        conditions = [f"Website LIKE {like_literal(d, prefix='%', suffix='%')}" for d in unique]
        queries = or_queries(
            self.endpoint,
            select=select,
            object_name="Account",
            conditions=conditions,
            in_body=True,
            max_query_length=self._max_query_length,
        )
        raws = yield from self._query_many(list(queries))
        accounts = [self._account(raw, fields) for raw in raws]
        out: list[tuple[AccountRecord, ...]] = []
        for key in keys:
            matches = tuple(
                a
                for a in accounts
                if key and a.domain and (a.domain == key or a.domain.endswith("." + key))
            )
            out.append(matches)
        return out

    def list_users_flow(self) -> Flow[list[CRMUser]]:
        yield from self._read_metadata()
        users = yield from self.cached(("users",), self._list_users())
        return list(users)

    def campaign_exists_flow(self, campaign_id: str) -> Flow[bool]:
        if self.listed_campaign(campaign_id):
            return True
        yield from self._read_metadata(campaign_id)
        return (
            yield from self.cached(("campaign", campaign_id), self._campaign_exists(campaign_id))
        )

    def _read_metadata(self, campaign_id: str | None = None) -> Flow[None]:
        """Every part of preflight's metadata the cache lacks, read in one composite request
        when more than one is missing (module doc, rule 8); answers that failed are not kept."""
        endpoint = self.endpoint
        version = endpoint.api_version
        cache = self.metadata_cache
        objects = [SALESFORCE_CAPABILITIES.person_object]  # preflight's describes
        if self._sync_key_field is not None:
            objects.append(_TASK_OBJECT)
        missing: list[tuple[tuple[str, ...], dict[str, Any], _Parse]] = []
        if campaign_id is not None and not cache.fresh(("campaign", campaign_id)):
            soql = _campaign_soql(campaign_id)
            missing.append(
                (("campaign", campaign_id), query_subrequest(endpoint, soql, "c"), _found)
            )
        for n, object_name in enumerate(objects):
            if not cache.fresh(("describe", object_name.lower())):
                url = f"/services/data/v{version}/sobjects/{object_name}/describe"
                sub = {"method": "GET", "url": url, "referenceId": f"d{n}"}
                missing.append((("describe", object_name.lower()), sub, _schema))
        if not cache.fresh(("users",)):
            missing.append((("users",), query_subrequest(endpoint, _USERS_SOQL, "u"), _users))
        if len(missing) < 2:
            return  # one part alone goes as it always did
        refs = [sub["referenceId"] for _, sub, _ in missing]
        answer = yield composite_request(endpoint, [sub for _, sub, _ in missing])
        for (key, _, parse), response in zip(missing, parse_composite(answer, refs), strict=True):
            try:
                value = yield from parse(self, response)
            except AdapterError:
                continue  # its own call reads it again alone and reports what is wrong
            cache.put(key, value)

    def list_campaigns_flow(self) -> Flow[list[CampaignInfo]]:
        campaigns = yield from self.cached(("campaigns",), self._list_campaigns())
        return list(campaigns)

    def _list_campaigns(self) -> Flow[tuple[CampaignInfo, ...]]:
        raws = yield from self._query_all(
            "SELECT Id, Name, IsActive FROM Campaign WHERE IsActive = true ORDER BY Name"
        )
        return tuple(
            CampaignInfo(
                id=str(_get(raw, "Id")),
                name=str(name) if (name := _get(raw, "Name")) is not None else None,
                active=bool(_get(raw, "IsActive")),
            )
            for raw in raws
        )

    def _list_users(self) -> Flow[tuple[CRMUser, ...]]:
        return _crm_users((yield from self._query_all(_USERS_SOQL)))

    def _campaign_exists(self, campaign_id: str) -> Flow[bool]:
        return bool((yield from self._query_all(_campaign_soql(campaign_id))))

    def describe_flow(self, object_name: str) -> Flow[ObjectSchema]:
        if object_name.lower() in (_PERSON_OBJECT, _TASK_OBJECT.lower()):
            yield from self._read_metadata()
        return (
            yield from self.cached(("describe", object_name.lower()), self._describe(object_name))
        )

    def _describe(self, object_name: str) -> Flow[ObjectSchema]:
        return parse_describe((yield describe_request(self.endpoint, object_name)))

    # -- writes ------------------------------------------------------------------------------

    def _collection_call(
        self,
        bodies: Sequence[Mapping[str, Any]],
        *,
        update: bool,
        auto_assign: bool | None = None,
        upsert: str | None = None,
    ) -> Flow[list[WriteResult]]:
        """One result per body, sent in Collections calls of 200 (see :meth:`_collections`)."""
        (results,) = yield from self._collections(
            [_Call(bodies, update=update, auto_assign=auto_assign, upsert=upsert)]
        )
        return results

    def _collections(self, calls: Sequence[_Call]) -> Flow[list[list[WriteResult]]]:
        """Every call's bodies sent in Collections groups of at most 200, up to five groups a
        round trip (module doc, rule 6); one result list per call, one result per body.

        Salesforce rejects a *whole* Collections request when one record names a field the
        object lacks (``INVALID_FIELD``, a JSON deserialization failure). That is a per-record
        problem, so the records naming the field fail alone and the others are sent again; when
        the culprit cannot be told from the message, the group is halved until it can.
        """
        results: list[list[WriteResult | None]] = [[None] * len(c.bodies) for c in calls]
        queue: list[_Group] = [
            _Group(n, list(chunk))
            for n, call in enumerate(calls)
            for chunk in _chunks(range(len(call.bodies)), COLLECTION_LIMIT)
        ]
        landed = False
        while queue:
            trip, queue = queue[:MAX_COMPOSITE_COLLECTIONS], queue[MAX_COMPOSITE_COLLECTIONS:]
            try:
                responses = yield from self._send_groups(calls, trip)
            except AdapterError as error:
                # Nothing of this trip has an answer. Before anything landed the error is the
                # call's, as for one request; after, only an ambiguous one may stand for it all.
                if not landed or _ambiguous(error):
                    raise
                for group in [*trip, *queue]:
                    for i in group.indices:
                        results[group.call][i] = WriteResult.failure(_send_again(error))
                queue = []
                break
            again: list[_Group] = []
            for group, response in zip(trip, responses, strict=True):
                call = calls[group.call]
                outcome = self._group_outcome(call, group, response)
                if isinstance(outcome, _Retry):
                    again.extend(outcome.groups)
                    for i, result in outcome.failed.items():
                        results[group.call][i] = result
                    continue
                if isinstance(outcome, AdapterError):
                    if not landed and len(trip) == 1:
                        raise outcome
                    if _ambiguous(outcome):
                        raise outcome  # may have landed in part: the whole call settles
                    for i in group.indices:  # refused, nothing landed: each sent again
                        results[group.call][i] = WriteResult.failure(_send_again(outcome))
                    continue
                landed = True
                _place(results[group.call], group.indices, outcome)
            queue[:0] = again
        return [_filled(rs) for rs in results]

    def _send_groups(
        self, calls: Sequence[_Call], trip: Sequence[_Group]
    ) -> Flow[list[httpx.Response]]:
        """One round trip: a lone group as its Collections request, several as the subrequests
        of one ``/composite`` request (each answered as if it had been sent alone)."""
        endpoint = self.endpoint
        if len(trip) == 1:
            (group,) = trip
            call = calls[group.call]
            method, path = self._collection_target(update=call.update, upsert=call.upsert)
            records = [call.bodies[i] for i in group.indices]
            request = collection_request(
                endpoint, method, path, records, auto_assign=call.auto_assign
            )
            return [(yield request)]
        parts: list[tuple[str, str, Sequence[Mapping[str, Any]] | EncodedRecords, bool | None]]
        parts = []
        for group in trip:
            call = calls[group.call]
            method, path = self._collection_target(update=call.update, upsert=call.upsert)
            texts = call.texts
            chosen: Sequence[Mapping[str, Any]] | EncodedRecords
            if texts is not None:
                indices = group.indices
                start = _run_start(indices)
                chosen = EncodedRecords(
                    texts[start : start + len(indices)]
                    if start is not None
                    else [texts[i] for i in indices]
                )
            else:
                chosen = [call.bodies[i] for i in group.indices]
            parts.append((method, path, chosen, call.auto_assign))
        refs = [f"w{n}" for n in range(len(parts))]
        subs = [
            collection_subrequest(
                endpoint, method, path, records, auto_assign=auto_assign, reference=ref
            )
            for (method, path, records, auto_assign), ref in zip(parts, refs, strict=True)
        ]
        answer = yield composite_request(endpoint, subs)
        succeeded = composite_successes(answer, refs)
        if succeeded is not None:  # every record of every group: their ids, no JSON decoded
            return [SubResponse(200, {}, ids) for ids in succeeded]
        return parse_composite(answer, refs)

    def _group_outcome(
        self, call: _Call, group: _Group, response: httpx.Response
    ) -> list[WriteResult] | AdapterError | _Retry:
        """What one Collections answer says of its group: per-record results, the error of the
        whole group, or (a record-content refusal) the records that failed and the rest to send
        again."""
        upsert = call.upsert
        if upsert is not None and response.status_code == 404:
            return self._no_key_field(upsert, error_from_response(response))
        if response.status_code == 400:
            error = error_from_response(response)
            if error.error_code not in _RECORD_CONTENT_CODES:
                return error
            self.metadata_cache.forget("describe")  # the schema changed: read it again
            field = _field_in_message(error.message)
            indices = group.indices
            culprits = [
                i
                for i in indices
                if field and any(k.lower() == field.lower() for k in call.bodies[i])
            ]
            if not culprits and len(indices) > 1:
                half = len(indices) // 2
                return _Retry(
                    {}, [_Group(group.call, indices[:half]), _Group(group.call, indices[half:])]
                )
            culprits = culprits or indices
            failure = error_for_code(
                error.error_code,
                error.message,
                status_code=None,
                fields=(field,) if field else error.fields,
            )
            rest = [i for i in indices if i not in culprits]
            return _Retry(
                {i: WriteResult.failure(failure) for i in culprits},
                [_Group(group.call, rest)] if rest else [],
            )
        try:
            parsed = parse_collection_results(
                response, len(group.indices), upsert=upsert is not None
            )
        except AdapterError as error:
            return error
        if upsert is None:
            return parsed
        return [self._key_clash(result) for result in parsed]

    def _collection_target(self, *, update: bool, upsert: str | None) -> tuple[str, str]:
        """The method and path (under the version) of a Collections call."""
        if upsert is not None and self._sync_key_field is not None:
            return "PATCH", f"composite/sobjects/{upsert}/{self._sync_key_field}"
        return ("PATCH" if update else "POST"), "composite/sobjects"

    def _no_key_field(self, object_name: str, cause: CRMAPIError) -> PermissionDeniedError:
        """The org has no such External ID field (any more): an administrator's to fix."""
        error = PermissionDeniedError(
            f"Salesforce has no External ID field {object_name}.{self._sync_key_field} to "
            "upsert by (see 'Setting up the external ID field' in docs/salesforce.md)",
            status_code=cause.status_code,
            error_code=cause.error_code,
        )
        error.__cause__ = cause
        return error

    def _key_clash(self, result: WriteResult) -> WriteResult:
        """``DUPLICATE_VALUE`` on the sync key naming a record: the upsert's record (module
        doc, rule 5), made by a concurrent upsert of the same key."""
        error = result.error
        if (
            not isinstance(error, CRMAPIError)
            or error.error_code != "DUPLICATE_VALUE"
            or self._sync_key_field is None
            or self._sync_key_field.lower() not in (f.lower() for f in error.fields)
        ):
            return result
        found = _KEY_CLASH.search(error.message)
        return WriteResult.success(found[1], created=False) if found else result

    def create_people_flow(self, records: Sequence[PersonWrite]) -> Flow[list[WriteResult]]:
        results: list[WriteResult | None] = [None] * len(records)
        calls: list[_Call] = []
        placed: list[list[int]] = []
        # Owner chosen → assignment rules off; otherwise the org's rules apply as usual.
        owners = list(map(_OWNER_ID, records))
        with_owner = list(itertools.compress(range(len(records)), owners))
        without = list(itertools.compress(range(len(records)), map(operator.not_, owners)))
        keyed = self._sync_key_field is not None
        email_field = SALESFORCE_CAPABILITIES.email_field
        for owned, auto_assign in ((with_owner, False), (without, None)):
            upserts = [i for i in owned if records[i].kind is PersonKind.LEAD] if keyed else []
            plain = sorted(set(owned) - set(upserts)) if upserts else owned  # (in order)
            for indices, upsert in ((upserts, "Lead"), (plain, None)):
                if indices:
                    start = _run_start(indices)
                    writes = (
                        records[start : start + len(indices)]
                        if start is not None
                        else [records[i] for i in indices]
                    )
                    key_field = self._sync_key_field if upsert is not None else None
                    write = PersonJSON(email_field=email_field, sync_key_field=key_field)
                    texts = [write(w) for w in writes]
                    bodies = _Bodies(writes, functools.partial(self._person_body, upsert=upsert))
                    calls.append(
                        _Call(
                            bodies,
                            update=False,
                            auto_assign=auto_assign,
                            upsert=upsert,
                            texts=texts,
                        )
                    )
                    placed.append(indices)
        answered = yield from self._collections(calls)
        for indices, parsed in zip(placed, answered, strict=True):
            _place(results, indices, parsed)
        return (yield from self._name_duplicates(records, _filled(results)))

    def _person_body(self, record: PersonWrite, upsert: str | None) -> dict[str, Any]:
        body = person_record(record, email_field=SALESFORCE_CAPABILITIES.email_field)
        if upsert is not None and self._sync_key_field is not None:
            body = {k: v for k, v in body.items() if k.lower() != self._sync_key_field.lower()}
            body[self._sync_key_field] = record.key
        return body

    def _name_duplicates(
        self, records: Sequence[PersonWrite], results: list[WriteResult]
    ) -> Flow[list[WriteResult]]:
        """Fill in the matched ids of ``DUPLICATES_DETECTED`` failures that carry none.

        Collections errors may omit the ``duplicateResult`` payload; the rule that fired
        matches on email, so the records of that kind with the same email are the duplicates.
        """
        if _no_errors(results):
            return results
        unnamed = [
            i
            for i, r in enumerate(results)
            if isinstance(r.error, DuplicateRecordError)
            and r.error.error_code == "DUPLICATES_DETECTED"
            and not r.error.matched_ids
        ]
        if not unnamed:
            return results
        found = yield from self.find_people_flow([records[i].email for i in unnamed])
        for i, people in zip(unnamed, found, strict=True):
            error = results[i].error
            if not isinstance(error, DuplicateRecordError):  # pragma: no cover - filtered above
                continue
            ids = [p.id for p in people if p.kind is records[i].kind and not p.is_converted]
            results[i] = WriteResult.failure(
                DuplicateRecordError(
                    error.message,
                    matched_ids=ids,
                    status_code=error.status_code,
                    error_code=error.error_code,
                    fields=error.fields,
                )
            )
        return results

    def update_people_flow(self, records: Sequence[PersonUpdate]) -> Flow[list[WriteResult]]:
        if not records:
            return []
        call = _Call(
            _Bodies(records, person_update_record),
            update=True,
            auto_assign=False,  # never let an update re-run assignment rules (no header: TRUE)
            texts=[person_update_json(r) for r in records],
        )
        (parsed,) = yield from self._collections([call])
        return [_update_result(r) for r in parsed]

    def _task_body(self, task: TaskWrite) -> dict[str, Any]:
        """The Task record of ``task`` with this adapter's marker, status and priority."""
        return task_record(
            task,
            marker=self._marker,
            max_body_length=SALESFORCE_CAPABILITIES.max_task_body_length or 32_000,
            status=self._task_status,
            priority=self._task_priority,
        )

    def _keyed_task_body(self, task: TaskWrite) -> dict[str, Any]:
        """A Task create's body, with its sync key when creates are upserts by it."""
        body = self._task_body(task)
        if self._sync_key_field is not None:
            body[self._sync_key_field] = task.key
        return body

    def create_tasks_flow(self, tasks: Sequence[TaskWrite]) -> Flow[list[WriteResult]]:
        results: list[WriteResult | None] = [None] * len(tasks)
        sendable: list[int] = []
        texts: list[str] = []
        write = TaskJSON(
            marker=self._marker,
            max_body_length=SALESFORCE_CAPABILITIES.max_task_body_length or 32_000,
            status=self._task_status,
            priority=self._task_priority,
            sync_key_field=self._sync_key_field,
        )
        try:
            texts = write.all(tasks)  # every task (a task's marker almost never fails it)
        except ConfigurationError:
            texts = []
            for i, task in enumerate(tasks):
                try:
                    text = write(task)
                except ConfigurationError as exc:  # a marker too long for Subject fails alone
                    results[i] = WriteResult.failure(
                        CRMAPIError(str(exc.problems[0].message), error_code="MARKER_TOO_LONG")
                    )
                    continue
                sendable.append(i)
                texts.append(text)
        else:
            sendable = list(range(len(tasks)))
        upsert = "Task" if self._sync_key_field is not None else None
        if sendable:
            sent = tasks if len(sendable) == len(tasks) else [tasks[i] for i in sendable]
            bodies = _Bodies(sent, self._keyed_task_body)
            (parsed,) = yield from self._collections(
                [_Call(bodies, update=False, upsert=upsert, texts=texts)]
            )
            if len(sendable) == len(tasks):  # every task sent: one result each, in order
                return parsed
            for i, result in zip(sendable, parsed, strict=True):
                results[i] = result
        return _filled(results)

    def add_to_campaign_flow(
        self, memberships: Sequence[CampaignMembershipWrite]
    ) -> Flow[list[WriteResult]]:
        results: list[WriteResult] = []
        if memberships:
            bodies = _Bodies(memberships, campaign_member_record)
            texts = campaign_members_json(memberships)
            (results,) = yield from self._collections([_Call(bodies, update=False, texts=texts)])
        already = (
            []
            if _no_errors(results)
            else [
                i
                for i, r in enumerate(results)
                if isinstance(r.error, CRMAPIError) and is_already_member(r.error)
            ]
        )
        if already:
            pairs = [(memberships[i].campaign_id, memberships[i].person_id) for i in already]
            ids = yield from self._membership_ids(pairs)
            for i, member_id in zip(already, ids, strict=True):
                if member_id is not None:
                    results[i] = WriteResult.success(member_id, created=False)
        return results

    # -- chained writes (rule 7) ----------------------------------------------------------------

    def write_chains_flow(self, chains: Sequence[WriteChain]) -> Flow[list[WriteChainResult]]:
        """Each chain's writes as single-record subrequests of one ``/composite`` request
        (module doc, rule 7), as many chains a request as fit in 25 subrequests."""
        limit = SALESFORCE_CAPABILITIES.max_chain_writes
        for chain in chains:
            if chain.size > limit:
                raise ConfigurationError(
                    [Problem("chains", f"a chain holds at most {limit} writes, not {chain.size}")]
                )
        trips: list[list[int]] = []
        used = limit
        for n, chain in enumerate(chains):
            if not chain.size:
                continue
            if used + chain.size > limit:
                trips.append([])
                used = 0
            trips[-1].append(n)
            used += chain.size
        results: list[WriteChainResult] = [WriteChainResult() for _ in chains]
        for trip in trips:
            subs: list[dict[str, Any]] = []
            slots: dict[int, list[tuple[str, int, str, WriteResult | None]]] = {}
            for n in trip:
                slots[n] = self._chain_subrequests(n, chains[n], subs)
            refs = [sub["referenceId"] for sub in subs]
            request = composite_request(self.endpoint, subs, collate=False)
            answers = dict(zip(refs, parse_composite((yield request), refs), strict=True))
            for n in trip:
                results[n] = yield from self._chain_result(chains[n], slots[n], answers)
        return results

    def _chain_subrequests(
        self, n: int, chain: WriteChain, subs: list[dict[str, Any]]
    ) -> list[tuple[str, int, str, WriteResult | None]]:
        """Append chain ``n``'s subrequests to ``subs``; each write's (part, index, reference,
        result when it is not sent at all)."""
        endpoint = self.endpoint
        slots: list[tuple[str, int, str, WriteResult | None]] = []
        person = chain.person
        who: str | None = None
        if isinstance(person, PersonWrite):
            ref = f"p{n}"
            upsert = self._sync_key_field is not None and person.kind is PersonKind.LEAD
            body = self._person_body(person, "Lead" if upsert else None)
            object_name = object_for_kind(person.kind)
            if upsert and self._sync_key_field is not None:
                method = "PATCH"
                path = key_path(object_name, self._sync_key_field, person.key)
                body.pop(self._sync_key_field, None)
            else:
                method, path = "POST", f"sobjects/{object_name}"
            auto_assign = False if person.owner_id else None
            subs.append(
                record_subrequest(
                    endpoint, method, path, body, reference=ref, auto_assign=auto_assign
                )
            )
            slots.append(("person", 0, ref, None))
            who = f"@{{{ref}.id}}"
        elif isinstance(person, PersonUpdate):
            ref = f"p{n}"
            body = person_update_record(person)
            body.pop("id", None)
            path = f"sobjects/{object_for_kind(person.kind)}/{person.record_id}"
            subs.append(record_subrequest(endpoint, "PATCH", path, body, reference=ref))
            slots.append(("person", 0, ref, None))
        for j, task in enumerate(chain.tasks):
            ref = f"t{n}x{j}"
            try:
                body = self._task_body(task)
            except ConfigurationError as exc:  # a marker too long for Subject fails alone
                failure = CRMAPIError(str(exc.problems[0].message), error_code="MARKER_TOO_LONG")
                slots.append(("task", j, ref, WriteResult.failure(failure)))
                continue
            if who is not None:
                body["WhoId"] = who
            method, path = "POST", "sobjects/Task"
            if self._sync_key_field is not None:
                method, path = "PATCH", key_path("Task", self._sync_key_field, task.key)
            subs.append(record_subrequest(endpoint, method, path, body, reference=ref))
            slots.append(("task", j, ref, None))
        membership = chain.membership
        if membership is not None:
            ref = f"m{n}"
            body = campaign_member_record(membership)
            if who is not None:
                field = "LeadId" if membership.person_kind is PersonKind.LEAD else "ContactId"
                body[field] = who
            path = "sobjects/CampaignMember"
            subs.append(record_subrequest(endpoint, "POST", path, body, reference=ref))
            slots.append(("membership", 0, ref, None))
        return slots

    def _chain_result(
        self,
        chain: WriteChain,
        slots: Sequence[tuple[str, int, str, WriteResult | None]],
        answers: Mapping[str, httpx.Response],
    ) -> Flow[WriteChainResult]:
        """One chain's results from its subrequests' answers."""
        person: WriteResult | None = None
        tasks: list[WriteResult] = [WriteResult.failure(_LOST) for _ in chain.tasks]
        membership: WriteResult | None = None
        for part, index, ref, preset in slots:
            result = preset if preset is not None else _record_result(answers[ref])
            if part == "person":
                person = result
            elif part == "task":
                tasks[index] = result
            else:
                membership = result
        write = chain.person
        if isinstance(write, PersonWrite) and person is not None:
            if self._sync_key_field is not None and write.kind is PersonKind.LEAD:
                person = self._key_clash(person)
            (person,) = yield from self._name_duplicates([write], [person])
        elif isinstance(write, PersonUpdate) and person is not None:
            if person.ok or person.error is None:
                person = WriteResult.success(write.record_id, created=False)
            else:
                person = _update_result(person)
        if isinstance(write, PersonWrite) and (person is None or not person.ok):
            # Its dependents referred to a record that was not made: never executed.
            halted = WriteResult.failure(_halted())
            tasks = [halted for _ in tasks]
            membership = halted if membership is not None else None
        elif membership is not None and chain.membership is not None:
            error = membership.error
            if isinstance(error, CRMAPIError) and is_already_member(error):
                pair = (chain.membership.campaign_id, chain.membership.person_id)
                if isinstance(write, PersonWrite) and person is not None and person.id:
                    pair = (pair[0], person.id)
                (found,) = yield from self._membership_ids([pair])
                if found is not None:
                    membership = WriteResult.success(found, created=False)
        return WriteChainResult(person, tuple(tasks), membership)

    # -- reconcile ---------------------------------------------------------------------------

    def _membership_ids(self, pairs: Sequence[tuple[str, str]]) -> Flow[list[str | None]]:
        by_campaign: dict[str, list[str]] = {}
        for campaign_id, person_id in pairs:
            by_campaign.setdefault(campaign_id, []).append(person_id)
        found: dict[tuple[str, str], str] = {}
        for campaign_id, people in by_campaign.items():
            leads = _dedupe([p for p in people if not p.startswith("003")])
            contacts = _dedupe([p for p in people if p.startswith("003")])
            where = f"CampaignId = {quote(campaign_id)}"
            for field, values in (("LeadId", leads), ("ContactId", contacts)):
                if not values:
                    continue
                raws = yield from self._query_many(
                    self._in(
                        select=("Id", "CampaignId", "LeadId", "ContactId"),
                        object_name="CampaignMember",
                        field=field,
                        values=values,
                        where_extra=where,
                    )
                )
                for raw in raws:
                    person = _get(raw, field)
                    if person:
                        found[(_id15(campaign_id), _id15(str(person)))] = str(_get(raw, "Id"))
        return [found.get((_id15(c), _id15(p))) for c, p in pairs]

    def _people_ids(self, queries: Sequence[PersonByEmail]) -> Flow[list[str | None]]:
        best: dict[tuple[PersonKind, str], tuple[bool, str, str]] = {}
        soqls: list[str] = []
        kinds: list[PersonKind] = []
        for kind in (PersonKind.LEAD, PersonKind.CONTACT):
            emails = _dedupe([normalize_email(q.email) for q in queries if q.kind is kind])
            if not emails:
                continue
            select = ["Id", "Email", "LastModifiedDate"]
            if kind is PersonKind.LEAD:
                select.append("IsConverted")
            chunk = self._in(
                select=select, object_name=object_for_kind(kind), field="Email", values=emails
            )
            soqls.extend(chunk)
            kinds.extend(kind for _ in chunk)
        pages = yield from self._query_each(soqls)
        for kind, raws in zip(kinds, pages, strict=True):
            for raw in raws:
                key = (kind, normalize_email(str(_get(raw, "Email") or "")))
                # Prefer a live (not converted) record, then the most recently modified, then id.
                rank = (
                    not _get(raw, "IsConverted"),
                    str(_get(raw, "LastModifiedDate") or ""),
                    str(_get(raw, "Id")),
                )
                if key not in best or rank > best[key]:
                    best[key] = rank
        return [
            best[(q.kind, normalize_email(q.email))][2]
            if (q.kind, normalize_email(q.email)) in best
            else None
            for q in queries
        ]

    def _task_ids(self, markers: Sequence[str]) -> Flow[list[str | None]]:
        unique = _dedupe(list(markers))
        if not unique:
            return [None for _ in markers]
        select = self._marker.select_fields()
        if self._marker.field is not None:
            soqls = self._in(
                select=select, object_name="Task", field=self._marker.field, values=unique
            )
        else:
            soqls = list(
                or_queries(
                    self.endpoint,
                    select=select,
                    object_name="Task",
                    conditions=[self._marker.where(m) for m in unique],
                    in_body=True,
                    max_query_length=self._max_query_length,
                )
            )
        raws = yield from self._query_many(soqls)
        found: dict[str, str] = {}
        for raw in sorted(raws, key=lambda r: str(_get(r, "Id"))):
            marker = self._marker.read(raw)
            if marker is not None:
                found.setdefault(marker, str(_get(raw, "Id")))
        return [found.get(m) for m in markers]

    def reconcile_flow(self, queries: Sequence[ReconcileQuery]) -> Flow[list[str | None]]:
        answers: list[str | None] = [None] * len(queries)
        people = [(i, q) for i, q in enumerate(queries) if isinstance(q, PersonByEmail)]
        tasks = [(i, q) for i, q in enumerate(queries) if isinstance(q, TaskByMarker)]
        members = [(i, q) for i, q in enumerate(queries) if isinstance(q, MembershipByPerson)]
        if people:
            ids = yield from self._people_ids([q for _, q in people])
            for (i, _), found in zip(people, ids, strict=True):
                answers[i] = found
        if tasks:
            ids = yield from self._task_ids([q.marker for _, q in tasks])
            for (i, _), found in zip(tasks, ids, strict=True):
                answers[i] = found
        if members:
            ids = yield from self._membership_ids(
                [(q.campaign_id, q.person_id) for _, q in members]
            )
            for (i, _), found in zip(members, ids, strict=True):
                answers[i] = found
        return answers


@attrs.frozen
class _Call:
    """One Collections call's worth of bodies (any number: sent in groups of 200).

    ``texts``, when given, are the bodies already written as JSON (as ``json.dumps`` writes
    them in a composite body): a composite request is put together from them, and
    ``bodies`` (then usually :class:`_Bodies`) are built only for a request sent alone or to
    tell which record named a refused field.
    """

    bodies: Sequence[Mapping[str, Any]]
    update: bool
    auto_assign: bool | None = None
    upsert: str | None = None  # the object upserted by sync_key_field, or a plain write
    texts: Sequence[str] | None = None


class _Bodies(Sequence[Mapping[str, Any]]):
    """The bodies of ``writes``, each built by ``build`` when it is read."""

    def __init__(self, writes: Sequence[T], build: Callable[[T], dict[str, Any]]) -> None:
        self._writes = writes
        self._build = build

    def __len__(self) -> int:
        return len(self._writes)

    @overload
    def __getitem__(self, index: int) -> Mapping[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Mapping[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> Mapping[str, Any] | Sequence[Mapping[str, Any]]:
        if isinstance(index, slice):
            return [self._build(w) for w in self._writes[index]]
        return self._build(self._writes[index])


def _place(
    results: list[WriteResult | None], indices: list[int], outcome: list[WriteResult]
) -> None:
    """``results[i] = outcome[n]`` for the n-th of ``indices``: one slice when they are a run
    (a group of 200 as chunked, or a half of one), else one by one (lengths must agree)."""
    start = _run_start(indices) if len(outcome) == len(indices) else None
    if start is not None:
        results[start : start + len(indices)] = outcome
        return
    for i, result in zip(indices, outcome, strict=True):
        results[i] = result


def _filled(results: list[WriteResult | None]) -> list[WriteResult]:
    """``results`` as they are when none is missing (told in C), else with each missing
    one a failure (``_LOST``: the call ended before its answer)."""
    if all(map(operator.is_not, results, itertools.repeat(None))):
        return results  # type: ignore[return-value]  # no None left (checked)
    return [r if r is not None else WriteResult.failure(_LOST) for r in results]


_OWNER_ID = operator.attrgetter("owner_id")
_ERROR = operator.attrgetter("error")


def _no_errors(results: Sequence[WriteResult]) -> bool:
    """Whether no result carries an error (read in C: a backfill's results mostly)."""
    return list(map(_ERROR, results)).count(None) == len(results)


def _run_start(indices: list[int]) -> int | None:
    """The first of ``indices`` when they are a run (``start, start + 1, ...``), else
    ``None`` (and for none)."""
    if indices and indices == list(range(indices[0], indices[0] + len(indices))):
        return indices[0]
    return None


@attrs.frozen
class _Group:
    """The bodies of one Collections request: indices into ``calls[call].bodies``."""

    call: int
    indices: list[int]


@attrs.frozen
class _Retry:
    """A record-content refusal: the records it was about, and the groups to send again."""

    failed: dict[int, WriteResult]
    groups: list[_Group]


def _record_result(response: httpx.Response) -> WriteResult:
    """A single-record write's answer: 201 / 200 with the id (``created`` for an upsert), 204
    (an update: the caller knows the id), or the typed error."""
    if response.status_code >= 300:
        return WriteResult.failure(error_from_response(response))
    if response.status_code == 204:
        return WriteResult()  # no body: the caller fills in the id it sent
    if isinstance(response, SubResponse):
        if response.body is None:
            return WriteResult()
        body = response.body
    elif not response.content:
        return WriteResult()
    else:
        body = response.json()
    record_id = body.get("id") if isinstance(body, Mapping) else None
    if not isinstance(record_id, str) or not record_id:
        return WriteResult.failure(_LOST)
    created = body.get("created", True) if isinstance(body, Mapping) else True
    return WriteResult.success(record_id, created=created is not False)


def _halted() -> CRMAPIError:
    """The failure of a chained write that was not executed (its create did not succeed)."""
    return CRMAPIError(
        "not executed: the record it refers to was not created in the same request",
        error_code="PROCESSING_HALTED",
        retryable=True,
    )


def _ambiguous(error: AdapterError) -> bool:
    """Whether a failed request may have landed, in part (then only a read can tell)."""
    if isinstance(error, TransportError):
        return error.maybe_sent
    if isinstance(error, RateLimitedError):
        return False  # refused before anything ran
    return error.retryable  # a server error or lock contention midway


def _send_again(error: AdapterError) -> CRMAPIError:
    """A record's failure when its request was refused beside others that landed: it did not
    land, and is sent again (alone, where the refusal is its own)."""
    code = error.error_code if isinstance(error, CRMAPIError) else None
    return CRMAPIError(
        f"refused with records sent beside it, to be sent again: {error}",
        error_code=code,
        retryable=True,
    )


_RECORD_CONTENT_CODES = frozenset(
    {"INVALID_FIELD", "INVALID_FIELD_FOR_INSERT_UPDATE", "JSON_PARSER_ERROR", "INVALID_TYPE"}
)
_COLUMN = re.compile(r"(?:No such column|Unable to create/update fields:?)\s*'?([A-Za-z0-9_.]+)'?")
_LOST = CRMAPIError("Salesforce gave no result for this record")


def _check_sync_key_field(name: object, marker: TaskMarker) -> None:
    if name is None:
        return
    if not isinstance(name, str) or _SYNC_KEY_FIELD.fullmatch(name) is None:
        raise ConfigurationError(
            [
                Problem(
                    "sync_key_field",
                    f"must be a custom field's API name ending in __c, not {name!r}",
                )
            ]
        )
    if marker.field is not None and marker.field.lower() == name.lower():
        raise ConfigurationError(
            [
                Problem(
                    "sync_key_field",
                    f"{name} already holds the task marker (task_marker): use another field",
                )
            ]
        )


def _field_in_message(message: str) -> str | None:
    match = _COLUMN.search(message)
    return match.group(1) if match else None


def _update_result(result: WriteResult) -> WriteResult:
    """An update's result: ``created=False``; an unknown record id is a NotFoundError.

    On update, ``INVALID_CROSS_REFERENCE_KEY`` naming no field is about the record's own id
    (it does not exist); naming a field it is a bad lookup value and stays as it is.
    """
    if result.ok and result.id:
        return _write_result(result.id, None, False)  # noqa: FBT003  # its slots, in order
    error = result.error
    if (
        isinstance(error, CRMAPIError)
        and error.error_code == "INVALID_CROSS_REFERENCE_KEY"
        and not error.fields
    ):
        return WriteResult.failure(
            NotFoundError(error.message, error_code=error.error_code, status_code=error.status_code)
        )
    return result
