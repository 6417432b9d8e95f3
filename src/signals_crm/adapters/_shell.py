"""The IO shells both built-in adapters share: everything but the IO lives in their flows.

Theory of operation (gidgethub's ``abc.py``, httpx's ``BaseClient``):

1. A CRM's pure part subclasses :class:`AdapterFlows`: one generator per operation
   (``find_people_flow`` …) that yields ``httpx.Request``s and receives ``httpx.Response``s,
   plus four hooks: :meth:`~AdapterFlows.prepare` (headers), :meth:`~AdapterFlows.pacer`
   (a client-side rate limiter, if any), :meth:`~AdapterFlows.observe` (usage headers) and
   :meth:`~AdapterFlows.transport_error`.
2. :class:`BlockingAdapter` and :class:`AsyncAdapter` add only the IO: send each request with
   the injected client under the flows' ``httpx.Auth`` (token refresh lives there), map httpx
   errors to the library's, and drive the generators. A concrete adapter is
   ``class SalesforceAdapter(SalesforceFlows, BlockingAdapter)`` and a constructor.
3. Every request carries a timeout: the client's own when it has one, else
   :data:`DEFAULT_TIMEOUT` (an injected client with no timeout would otherwise hang forever
   on a CRM that stops answering).
"""

from __future__ import annotations

from collections.abc import Generator, Hashable, Sequence
from typing import Final, Protocol, TypeAlias, TypeVar

import httpx

from signals_crm._drive import adrive, drive
from signals_crm.adapters._cache import MetadataCache
from signals_crm.core.crm import (
    CampaignInfo,
    CampaignMembershipWrite,
    Capabilities,
    PersonUpdate,
    PersonWrite,
    ReconcileQuery,
    TaskWrite,
    WriteChain,
    WriteChainResult,
    WriteResult,
)
from signals_crm.core.model import AccountRecord, CRMUser, ObjectSchema, PersonRecord
from signals_crm.exceptions import TransportError

__all__ = ["DEFAULT_TIMEOUT", "AdapterFlows", "AsyncAdapter", "BlockingAdapter", "Flow"]

T = TypeVar("T")
Flow: TypeAlias = Generator[httpx.Request, httpx.Response, T]

DEFAULT_TIMEOUT: Final = httpx.Timeout(60.0, connect=10.0)
"""Used when the injected client has no timeout at all: 10 s to connect, 60 s per read."""


class Pacer(Protocol):
    """A client-side rate limiter: wait until one more request may go."""

    def acquire(self) -> None: ...

    async def aacquire(self) -> None: ...


def request_timeout(client: httpx.Client | httpx.AsyncClient) -> httpx.Timeout:
    """The client's timeout, or :data:`DEFAULT_TIMEOUT` when it sets none of the four."""
    timeout = client.timeout
    if all(v is None for v in (timeout.connect, timeout.read, timeout.write, timeout.pool)):
        return DEFAULT_TIMEOUT
    return timeout


def _network_error(exc: httpx.HTTPError, crm: str) -> TransportError:
    maybe_sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    return TransportError(
        f"{crm} could not be reached: {type(exc).__name__}", maybe_sent=maybe_sent
    )


class AdapterFlows:
    """The pure half of an adapter: the flows and the hooks the shells call."""

    auth: httpx.Auth
    crm_name: str = "the CRM"
    metadata_cache: MetadataCache

    def cached(self, key: tuple[Hashable, ...], flow: Flow[T]) -> Flow[T]:
        """``flow``'s answer from the metadata cache when fresh, else run it and keep it."""
        hit, value = self.metadata_cache.get(key)
        if hit:
            flow.close()
            result: T = value
            return result
        result = yield from flow
        self.metadata_cache.put(key, result)
        return result

    def listed_campaign(self, campaign_id: str) -> bool:
        """Whether a fresh cached campaign list (``list_campaigns``, read by a settings
        catalog) holds ``campaign_id``: then it exists, and asking the CRM again is waste."""
        hit, listed = self.metadata_cache.get(("campaigns",))
        return hit and any(c.id == campaign_id for c in listed)

    @property
    def capabilities(self) -> Capabilities:
        raise NotImplementedError

    def prepare(self, request: httpx.Request) -> None:
        """Add what every request of this CRM carries (headers) before it is sent."""

    def pacer(self, request: httpx.Request) -> Pacer | None:  # noqa: ARG002  # a hook
        """The rate limiter ``request`` waits for, if any."""
        return None

    def observe(self, request: httpx.Request, response: httpx.Response) -> None:
        """Read usage headers of an answer (called for every answer)."""

    def transport_error(self, exc: httpx.HTTPError) -> TransportError:
        """The library's error for a network failure (``maybe_sent`` unless it never left)."""
        return _network_error(exc, self.crm_name)

    def find_people_flow(
        self, emails: Sequence[str], fields: Sequence[str] = ()
    ) -> Flow[list[tuple[PersonRecord, ...]]]:
        raise NotImplementedError

    def find_accounts_flow(
        self, domains: Sequence[str], fields: Sequence[str] = ()
    ) -> Flow[list[tuple[AccountRecord, ...]]]:
        raise NotImplementedError

    def read_accounts_flow(
        self, ids: Sequence[str], fields: Sequence[str] = ()
    ) -> Flow[list[AccountRecord | None]]:
        raise NotImplementedError

    def list_users_flow(self) -> Flow[list[CRMUser]]:
        raise NotImplementedError

    def describe_flow(self, object_name: str) -> Flow[ObjectSchema]:
        raise NotImplementedError

    def campaign_exists_flow(self, campaign_id: str) -> Flow[bool]:
        raise NotImplementedError

    def list_campaigns_flow(self) -> Flow[list[CampaignInfo]]:
        raise NotImplementedError

    def create_people_flow(self, records: Sequence[PersonWrite]) -> Flow[list[WriteResult]]:
        raise NotImplementedError

    def update_people_flow(self, records: Sequence[PersonUpdate]) -> Flow[list[WriteResult]]:
        raise NotImplementedError

    def create_tasks_flow(self, tasks: Sequence[TaskWrite]) -> Flow[list[WriteResult]]:
        raise NotImplementedError

    def add_to_campaign_flow(
        self, memberships: Sequence[CampaignMembershipWrite]
    ) -> Flow[list[WriteResult]]:
        raise NotImplementedError

    def reconcile_flow(self, queries: Sequence[ReconcileQuery]) -> Flow[list[str | None]]:
        raise NotImplementedError

    def write_chains_flow(self, chains: Sequence[WriteChain]) -> Flow[list[WriteChainResult]]:
        raise NotImplementedError


class BlockingAdapter(AdapterFlows):
    """The blocking shell: the :class:`~signals_crm.adapters.base.CRMAdapter` methods."""

    _client: httpx.Client

    def _send(self, request: httpx.Request) -> httpx.Response:
        self.prepare(request)
        pacer = self.pacer(request)
        if pacer is not None:
            pacer.acquire()
        request.extensions.setdefault("timeout", request_timeout(self._client).as_dict())
        try:
            response = self._client.send(request, auth=self.auth)
        except httpx.HTTPError as exc:
            raise self.transport_error(exc) from exc
        self.observe(request, response)
        return response

    def _run(self, flow: Flow[T]) -> T:
        # A transport error is thrown into the flow, which may know what it means there.
        return drive(flow, self._send, catch=(TransportError,))

    def find_people(
        self, emails: Sequence[str], fields: Sequence[str] = ()
    ) -> list[tuple[PersonRecord, ...]]:
        """Person records per email (case-insensitive), each carrying ``fields``."""
        return self._run(self.find_people_flow(emails, fields))

    def find_accounts(
        self, domains: Sequence[str], fields: Sequence[str] = ()
    ) -> list[tuple[AccountRecord, ...]]:
        """Accounts per domain (the domain or a subdomain of it), each carrying ``fields``."""
        return self._run(self.find_accounts_flow(domains, fields))

    def read_accounts(
        self, ids: Sequence[str], fields: Sequence[str] = ()
    ) -> list[AccountRecord | None]:
        """Accounts by id, each carrying ``fields``; ``None`` for an unknown id."""
        return self._run(self.read_accounts_flow(ids, fields))

    def list_users(self) -> list[CRMUser]:
        """Every user that can own records, inactive ones flagged."""
        return self._run(self.list_users_flow())

    def describe(self, object_name: str) -> ObjectSchema:
        """The fields of ``object_name`` (cached per object)."""
        return self._run(self.describe_flow(object_name))

    def campaign_exists(self, campaign_id: str) -> bool:
        """Whether the campaign exists (for preflight)."""
        return self._run(self.campaign_exists_flow(campaign_id))

    def list_campaigns(self) -> list[CampaignInfo]:
        """The campaigns a sync may join (active ones; HubSpot: static contact lists)."""
        return self._run(self.list_campaigns_flow())

    def create_people(self, records: Sequence[PersonWrite]) -> list[WriteResult]:
        """Create person records; one result per record."""
        return self._run(self.create_people_flow(records))

    def update_people(self, records: Sequence[PersonUpdate]) -> list[WriteResult]:
        """Update person records by id; one result per record."""
        return self._run(self.update_people_flow(records))

    def create_tasks(self, tasks: Sequence[TaskWrite]) -> list[WriteResult]:
        """Create tasks on person records (with their markers); one result per task."""
        return self._run(self.create_tasks_flow(tasks))

    def add_to_campaign(self, memberships: Sequence[CampaignMembershipWrite]) -> list[WriteResult]:
        """Add people to campaigns; already-a-member is a success with ``created=False``."""
        return self._run(self.add_to_campaign_flow(memberships))

    def reconcile(self, queries: Sequence[ReconcileQuery]) -> list[str | None]:
        """For each query, the id of the record it asks about, or ``None``."""
        return self._run(self.reconcile_flow(queries))

    def write_chains(self, chains: Sequence[WriteChain]) -> list[WriteChainResult]:
        """Each chain's writes in one round trip (``Capabilities.chains_writes``)."""
        return self._run(self.write_chains_flow(chains))


class AsyncAdapter(AdapterFlows):
    """The async shell: the :class:`~signals_crm.adapters.base.AsyncCRMAdapter` methods."""

    _client: httpx.AsyncClient

    async def _send(self, request: httpx.Request) -> httpx.Response:
        self.prepare(request)
        pacer = self.pacer(request)
        if pacer is not None:
            await pacer.aacquire()
        request.extensions.setdefault("timeout", request_timeout(self._client).as_dict())
        try:
            response = await self._client.send(request, auth=self.auth)
        except httpx.HTTPError as exc:
            raise self.transport_error(exc) from exc
        self.observe(request, response)
        return response

    async def _run(self, flow: Flow[T]) -> T:
        return await adrive(flow, self._send, catch=(TransportError,))

    async def afind_people(
        self, emails: Sequence[str], fields: Sequence[str] = ()
    ) -> list[tuple[PersonRecord, ...]]:
        """Async :meth:`BlockingAdapter.find_people`."""
        return await self._run(self.find_people_flow(emails, fields))

    async def afind_accounts(
        self, domains: Sequence[str], fields: Sequence[str] = ()
    ) -> list[tuple[AccountRecord, ...]]:
        """Async :meth:`BlockingAdapter.find_accounts`."""
        return await self._run(self.find_accounts_flow(domains, fields))

    async def alist_users(self) -> list[CRMUser]:
        """Async :meth:`BlockingAdapter.list_users`."""
        return await self._run(self.list_users_flow())

    async def aread_accounts(
        self, ids: Sequence[str], fields: Sequence[str] = ()
    ) -> list[AccountRecord | None]:
        """Async :meth:`BlockingAdapter.read_accounts`."""
        return await self._run(self.read_accounts_flow(ids, fields))

    async def adescribe(self, object_name: str) -> ObjectSchema:
        """Async :meth:`BlockingAdapter.describe`."""
        return await self._run(self.describe_flow(object_name))

    async def acampaign_exists(self, campaign_id: str) -> bool:
        """Async :meth:`BlockingAdapter.campaign_exists`."""
        return await self._run(self.campaign_exists_flow(campaign_id))

    async def alist_campaigns(self) -> list[CampaignInfo]:
        """Async :meth:`BlockingAdapter.list_campaigns`."""
        return await self._run(self.list_campaigns_flow())

    async def acreate_people(self, records: Sequence[PersonWrite]) -> list[WriteResult]:
        """Async :meth:`BlockingAdapter.create_people`."""
        return await self._run(self.create_people_flow(records))

    async def aupdate_people(self, records: Sequence[PersonUpdate]) -> list[WriteResult]:
        """Async :meth:`BlockingAdapter.update_people`."""
        return await self._run(self.update_people_flow(records))

    async def acreate_tasks(self, tasks: Sequence[TaskWrite]) -> list[WriteResult]:
        """Async :meth:`BlockingAdapter.create_tasks`."""
        return await self._run(self.create_tasks_flow(tasks))

    async def aadd_to_campaign(
        self, memberships: Sequence[CampaignMembershipWrite]
    ) -> list[WriteResult]:
        """Async :meth:`BlockingAdapter.add_to_campaign`."""
        return await self._run(self.add_to_campaign_flow(memberships))

    async def areconcile(self, queries: Sequence[ReconcileQuery]) -> list[str | None]:
        """Async :meth:`BlockingAdapter.reconcile`."""
        return await self._run(self.reconcile_flow(queries))

    async def awrite_chains(self, chains: Sequence[WriteChain]) -> list[WriteChainResult]:
        """Async :meth:`BlockingAdapter.write_chains`."""
        return await self._run(self.write_chains_flow(chains))
