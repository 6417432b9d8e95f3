"""The seam between ``signals_crm`` and any CRM.

An adapter is any object with the methods of :class:`CRMAdapter` (blocking) or
:class:`AsyncCRMAdapter` (``async``; the same methods with an ``a`` prefix, so one class can be
both, as ``httpx.MockTransport`` is both a sync and an async transport).

Rules every adapter follows (the conformance kit in :mod:`signals_crm.testing.conformance`
checks them):

1. Batch first. Every operation takes many inputs and returns **one result per input, in input
   order**. Adapters split inputs larger than one API call takes; callers never need to.
2. A per-record failure never fails the batch: write methods return a
   :class:`~signals_crm.core.crm.WriteResult` holding the typed error for that record. Whole-call
   failures (network, auth, limits) raise.
3. Only the error tree of :mod:`signals_crm.exceptions` escapes, each error chained to its
   cause and saying whether it is ``retryable``.
4. Emails match case-insensitively and ignoring surrounding spaces.
5. A create refused as a duplicate yields a :class:`~signals_crm.exceptions.DuplicateRecordError`
   carrying the matched ids; already-a-campaign-member is a success with ``created=False``.
6. Secrets never appear in reprs, logs or errors.

In the data flow (``host → engine → flows → core → plan → adapter → CRM``) an adapter is the
last step before the CRM: the engine's driver calls it for each ``Call`` a flow yields, and
it answers with core values; it never calls back into the engine or the flows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

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

__all__ = [
    "ApiUsage",
    "AsyncCRMAdapter",
    "CRMAdapter",
    "Capabilities",
    "ChainsWrites",
    "ChecksCampaigns",
    "ListsCampaigns",
    "ReadsAccounts",
    "ReportsApiUsage",
]


class ApiUsage(Protocol):
    """What the engine reads of an adapter's API usage: the share of the limit used."""

    @property
    def fraction_used(self) -> float | None: ...


@runtime_checkable
class ReportsApiUsage(Protocol):
    """Optional: an adapter that reports its CRM's API usage (from response headers).

    The engine stops a run before a batch once ``api_usage.fraction_used`` reaches its
    ``api_budget`` (Salesforce: ``Sforce-Limit-Info``; HubSpot: the daily rate-limit headers).
    """

    @property
    def api_usage(self) -> ApiUsage | None: ...


@runtime_checkable
class ChecksCampaigns(Protocol):
    """Optional: an adapter that can tell whether a campaign exists (``campaign_exists``, and
    ``acampaign_exists`` when async). ``preflight`` then checks the configured campaign."""

    def campaign_exists(self, campaign_id: str) -> bool: ...


@runtime_checkable
class ListsCampaigns(Protocol):
    """Optional: an adapter that lists the campaigns a sync may join (``list_campaigns``, and
    ``alist_campaigns`` when async), declared by ``Capabilities.lists_campaigns``."""

    def list_campaigns(self) -> list[CampaignInfo]: ...


@runtime_checkable
class ReadsAccounts(Protocol):
    """Optional: an adapter that reads accounts by id (``read_accounts``, and
    ``aread_accounts`` when async), declared by ``Capabilities.reads_accounts``: one
    ``AccountRecord`` per id, in order, ``None`` for an id the CRM does not have. A routing pull
    then reads the owner of a returning visitor's Account."""

    def read_accounts(
        self, ids: Sequence[str], fields: Sequence[str] = ()
    ) -> list[AccountRecord | None]: ...


@runtime_checkable
class ChainsWrites(Protocol):
    """Optional: an adapter that sends one person's dependent writes in one round trip
    (``write_chains``, and ``awrite_chains`` when async), declared by
    ``Capabilities.chains_writes``.

    One :class:`~signals_crm.core.crm.WriteChainResult` per chain, in order, with one result
    per write of the chain. Rules: a chain's tasks and membership refer to the record its
    person write makes (their ``person_id`` is ignored then); a dependent of a create that did
    not succeed is *not executed* and answers a failure (the engine puts it back to PLANNED);
    otherwise each write succeeds or fails on its own (a per-record failure never fails the
    call); a call takes at most ``Capabilities.max_chain_writes`` writes in all, and a chain
    is never split across round trips. Whole-call failures raise, as for every method.
    """

    def write_chains(self, chains: Sequence[WriteChain]) -> list[WriteChainResult]: ...


@runtime_checkable
class CRMAdapter(Protocol):
    """A blocking CRM adapter."""

    @property
    def capabilities(self) -> Capabilities:
        """What this CRM can do and how its person record is shaped."""
        ...

    def find_people(
        self, emails: Sequence[str], fields: Sequence[str] = ()
    ) -> list[tuple[PersonRecord, ...]]:
        """Person records (leads and contacts) per email, with ``fields`` read."""
        ...

    def find_accounts(
        self, domains: Sequence[str], fields: Sequence[str] = ()
    ) -> list[tuple[AccountRecord, ...]]:
        """Accounts per domain (by domain or website), with ``fields`` read."""
        ...

    def list_users(self) -> list[CRMUser]:
        """Every user that can own records (inactive ones flagged)."""
        ...

    def describe(self, object_name: str) -> ObjectSchema:
        """The fields of ``object_name`` (cache it: schemas rarely change)."""
        ...

    def create_people(self, records: Sequence[PersonWrite]) -> list[WriteResult]:
        """Create person records; one result per record."""
        ...

    def update_people(self, records: Sequence[PersonUpdate]) -> list[WriteResult]:
        """Update person records; one result per record."""
        ...

    def create_tasks(self, tasks: Sequence[TaskWrite]) -> list[WriteResult]:
        """Create tasks on person records; one result per task."""
        ...

    def add_to_campaign(self, memberships: Sequence[CampaignMembershipWrite]) -> list[WriteResult]:
        """Add people to campaigns; already-a-member is a success with ``created=False``."""
        ...

    def reconcile(self, queries: Sequence[ReconcileQuery]) -> list[str | None]:
        """For each query, the id of the record it asks about, or ``None`` if absent."""
        ...


@runtime_checkable
class AsyncCRMAdapter(Protocol):
    """An ``async`` CRM adapter: the methods of :class:`CRMAdapter` with an ``a`` prefix."""

    @property
    def capabilities(self) -> Capabilities: ...

    async def afind_people(
        self, emails: Sequence[str], fields: Sequence[str] = ()
    ) -> list[tuple[PersonRecord, ...]]: ...

    async def afind_accounts(
        self, domains: Sequence[str], fields: Sequence[str] = ()
    ) -> list[tuple[AccountRecord, ...]]: ...

    async def alist_users(self) -> list[CRMUser]: ...

    async def adescribe(self, object_name: str) -> ObjectSchema: ...

    async def acreate_people(self, records: Sequence[PersonWrite]) -> list[WriteResult]: ...

    async def aupdate_people(self, records: Sequence[PersonUpdate]) -> list[WriteResult]: ...

    async def acreate_tasks(self, tasks: Sequence[TaskWrite]) -> list[WriteResult]: ...

    async def aadd_to_campaign(
        self, memberships: Sequence[CampaignMembershipWrite]
    ) -> list[WriteResult]: ...

    async def areconcile(self, queries: Sequence[ReconcileQuery]) -> list[str | None]: ...
