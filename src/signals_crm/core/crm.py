"""The vocabulary shared by the core, the engine and every CRM adapter.

- *Lookups* (:class:`FindPeople`, :class:`FindAccounts`, :class:`DescribeObject`,
  :class:`ListUsers`) are what a planning generator yields; each names the adapter method that
  answers it, so a driver is a two-line loop.
- *Writes* (:class:`PersonWrite`, :class:`PersonUpdate`, :class:`TaskWrite`,
  :class:`CampaignMembershipWrite`) are what adapters send; each carries its idempotency key.
- *Reconcile queries* ask the CRM whether a write whose outcome is unknown landed.
- :class:`WriteResult` is one per-record outcome: an id, or the typed error.
- :class:`Capabilities` is what an adapter declares about its CRM.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING, TypeAlias

import attrs

from signals_crm.core.model import (
    ActivityKind,
    FieldValue,
    PersonKind,
    field_map,
)
from signals_crm.exceptions import AdapterError, DuplicateRecordError, Problem

if TYPE_CHECKING:
    from signals_crm.core.config import SyncConfig

__all__ = [
    "CampaignInfo",
    "CampaignMembershipWrite",
    "Capabilities",
    "DescribeObject",
    "FindAccounts",
    "FindPeople",
    "ListUsers",
    "Lookup",
    "MembershipByPerson",
    "PersonByEmail",
    "PersonUpdate",
    "PersonWrite",
    "ReadAccounts",
    "ReconcileQuery",
    "TaskByMarker",
    "TaskWrite",
    "WriteChain",
    "WriteChainResult",
    "WriteResult",
    "id_problems",
]


@attrs.frozen
class Capabilities:
    """What an adapter's CRM can do, and how its person record is shaped.

    ``person_kind`` is the object a sync creates: ``LEAD`` for Salesforce (which also has
    separate Contacts: ``separate_contacts=True``, never updated), ``CONTACT`` for HubSpot
    (whose contacts *are* the person records and are updated by overwrite fields).
    ``lookup_batch_size`` and ``write_batch_size`` are the largest batches one API call takes;
    adapters split larger inputs themselves, the engine uses the sizes to stream.
    """

    name: str
    person_kind: PersonKind
    person_object: str
    email_field: str
    separate_contacts: bool = False
    lookup_batch_size: int = 200
    write_batch_size: int = 200
    supports_tasks: bool = True
    supports_campaigns: bool = True
    campaign_kind: str = "campaign"
    supports_describe: bool = True
    supports_reconcile: bool = True
    max_task_body_length: int | None = None
    account_object: str = "Account"
    marker_search_lag: float = 0.0
    """Seconds after a task is written during which a search for its marker may miss it
    (HubSpot's search index trails writes). The engine waits this long before reconciling a
    task whose outcome is unknown, instead of wrongly concluding it never landed."""
    idempotent_memberships: bool = False
    """Whether the CRM itself keeps one campaign membership per person and campaign, so a
    second add changes nothing even when it commits late (Salesforce refuses a second
    CampaignMember, HubSpot list adds ignore members). The engine then sends an ambiguous
    membership again at once instead of waiting out the settle window. Leave it off when the
    adapter only checks before adding: a late add could then make a second membership."""
    reads_tasks_by_person: bool = False
    """Whether a :class:`TaskByMarker` that names the task's person record (``person_id``
    or ``email``) is answered by reads that see every committed write (HubSpot: the contact's
    task associations, then a batch read of those tasks), so ``marker_search_lag`` does not
    apply to it; the engine then reads such a task back once its settle window has passed."""
    required_on_create: tuple[str, ...] | None = None
    """The person-object fields the CRM always requires on create (Salesforce's ``LastName``
    and ``Company``; none on HubSpot). When no schema is known, only these get placeholders;
    ``None`` (unknown) gives every configured placeholder, as a schema-less CRM always did."""
    id_pattern: str | None = None
    """The shape of this CRM's ids (users, campaigns, records) as a regular expression an id
    matches in full, such as ``[0-9]{1,20}``; ``None`` (the default, for a custom CRM that
    does not say) accepts any id. Settings accept any well-formed id; preflight reports a
    configured id of another shape (:func:`id_problems`)."""
    id_description: str = "an id of this CRM"
    """How a problem names the expected shape (``"a Salesforce id (15 or 18 letters and
    digits)"``)."""
    checks_campaigns: bool = False
    """The adapter has ``campaign_exists`` (``acampaign_exists`` when async): preflight then
    checks the configured campaign (the ``ChecksCampaigns`` Protocol)."""
    lists_campaigns: bool = False
    """The adapter has ``list_campaigns`` (``alist_campaigns`` when async): the campaigns a sync
    may join, for a settings page (Salesforce: active Campaigns; HubSpot: static contact
    lists)."""
    owner_field: str = "OwnerId"
    """The field holding a record's owner (a CRM user id) on the person records and accounts
    (Salesforce ``OwnerId``; HubSpot ``hubspot_owner_id``): routing pulls name it in their
    path."""
    reads_accounts: bool = False
    """The adapter has ``read_accounts`` (``aread_accounts`` when async): accounts by id, so a
    routing pull can read the owner of a Contact's Account (the ``ReadsAccounts`` Protocol)."""
    reports_api_usage: bool = False
    """The adapter has an ``api_usage`` property (``fraction_used``: the share of the CRM's API
    limit used): the engine's ``api_budget`` then stops a run in time (``ReportsApiUsage``)."""
    task_object: str | None = None
    """The CRM's task object (``Task``, ``tasks``): preflight describes it to check
    ``sync_key_field`` when ``upserts_tasks``."""
    sync_key_field: str | None = None
    """The field that holds each create's idempotency key (``PersonWrite.key``,
    ``TaskWrite.key``) on the objects the adapter upserts by it (Salesforce: a custom External
    ID + Unique field such as ``Signals_Sync_Key__c``). Preflight checks that it exists on
    those objects, marked external ID and unique."""
    upserts_people: bool = False
    """Person creates are upserts by ``sync_key_field``: the same create sent twice (after a
    lost answer, or while the first still commits late) leaves one record, the second answer
    ``created=False``. The engine still waits out the settle window before re-planning an
    ambiguous person create, because *another* conversation with the same email must not
    create a Lead meanwhile."""
    upserts_tasks: bool = False
    """Task creates are upserts by ``sync_key_field``: the engine sends an ambiguous task create
    again at once, without a settle window or a read (a task belongs to one conversation)."""
    chains_writes: bool = False
    """The adapter has ``write_chains`` (``awrite_chains`` when async; the ``ChainsWrites``
    Protocol): one person's write and the tasks and membership that depend on it in one round
    trip (:class:`WriteChain`). The engine uses it when it costs fewer calls than writing kind
    by kind; adapters that do not declare it are written kind by kind."""
    max_chain_writes: int = 25
    """The most writes (person, tasks, membership, of any number of chains) one chained call
    takes: Salesforce's 25 subrequests of a composite request."""

    def is_id(self, value: str) -> bool:
        """Whether ``value`` has the shape of this CRM's ids (always true without a pattern)."""
        return self.id_pattern is None or re.fullmatch(self.id_pattern, value) is not None


def id_problems(config: SyncConfig, caps: Capabilities) -> list[Problem]:
    """The configured CRM ids whose shape ``caps`` says this CRM cannot have, by the settings'
    paths (``campaign_id``, ``default_owner``, ``user_mapping[i].crm_user_id``)."""
    named: list[tuple[str, str | None]] = [
        ("campaign_id", config.campaign_id),
        ("default_owner", config.default_owner),
    ]
    named.extend(
        (f"user_mapping[{i}].crm_user_id", entry.crm_user_id)
        for i, entry in enumerate(config.users.entries)
    )
    return [
        Problem(path, f"malformed {caps.name} id {value!r}: expected {caps.id_description}")
        for path, value in named
        if value is not None and not caps.is_id(value)
    ]


@attrs.frozen
class CampaignInfo:
    """A campaign a sync can join (a HubSpot static list): its id, name and whether active."""

    id: str
    name: str | None = None
    active: bool = True


# ------------------------------------------------------------------------------------------------
# Lookups (yielded by planning generators, answered by adapters)


@attrs.frozen
class FindPeople:
    """Find person records (Leads and Contacts, or HubSpot contacts) by email.

    Answer: one tuple of :class:`~signals_crm.core.model.PersonRecord` per email, in order,
    each record carrying ``fields``.
    """

    emails: tuple[str, ...]
    fields: tuple[str, ...] = ()


@attrs.frozen
class FindAccounts:
    """Find CRM accounts by domain (matched against the account's domain/website).

    Answer: one tuple of :class:`~signals_crm.core.model.AccountRecord` per domain, in order.
    """

    domains: tuple[str, ...]
    fields: tuple[str, ...] = ()


@attrs.frozen
class ReadAccounts:
    """Read CRM accounts by id, with ``fields``.

    Answer: one :class:`~signals_crm.core.model.AccountRecord` per id, in order, ``None`` for
    an id the CRM does not have (or no longer has).
    """

    ids: tuple[str, ...]
    fields: tuple[str, ...] = ()


@attrs.frozen
class DescribeObject:
    """Describe one CRM object. Answer: an :class:`~signals_crm.core.model.ObjectSchema`."""

    object_name: str


@attrs.frozen
class ListUsers:
    """List the CRM's users. Answer: a sequence of :class:`~signals_crm.core.model.CRMUser`."""


Lookup: TypeAlias = FindPeople | FindAccounts | ReadAccounts | DescribeObject | ListUsers


# ------------------------------------------------------------------------------------------------
# Writes


@attrs.frozen(weakref_slot=False)  # no __weakref__ slot: _build.builder's quick builder
class PersonWrite:
    """Create one person record. ``fields`` are CRM field names to values (email included)."""

    key: str
    kind: PersonKind
    email: str
    fields: Mapping[str, FieldValue] = attrs.field(factory=dict, converter=field_map)
    owner_id: str | None = None


@attrs.frozen(weakref_slot=False)  # no __weakref__ slot: _build.builder's quick builder
class PersonUpdate:
    """Update fields of an existing person record. Owner and campaign are never in here."""

    key: str
    record_id: str
    kind: PersonKind
    fields: Mapping[str, FieldValue] = attrs.field(factory=dict, converter=field_map)


@attrs.frozen(weakref_slot=False)  # no __weakref__ slot: _build.builder's quick builder
class TaskWrite:
    """Create one task on a person record, carrying the marker of its source activity."""

    key: str
    person_id: str
    person_kind: PersonKind
    activity_kind: ActivityKind | str
    subject: str
    body: str
    marker: str
    activity_date: date | None = None
    owner_id: str | None = None


@attrs.frozen(weakref_slot=False)  # no __weakref__ slot: _build.builder's quick builder
class CampaignMembershipWrite:
    """Add one person record to a campaign (a HubSpot static list). Already-a-member is fine."""

    key: str
    campaign_id: str
    person_id: str
    person_kind: PersonKind


@attrs.frozen(weakref_slot=False)  # no __weakref__ slot: _build.builder's quick builder
class WriteResult:
    """The outcome of one record in a batch write: the CRM id, or the typed error.

    ``created`` is false for a membership that already existed (which still counts as success).
    """

    id: str | None = None
    error: AdapterError | None = None
    created: bool = True

    @property
    def ok(self) -> bool:
        return self.error is None and self.id is not None

    @property
    def duplicate_of(self) -> tuple[str, ...]:
        """The matched record ids when the CRM refused a create as a duplicate."""
        if isinstance(self.error, DuplicateRecordError):
            return self.error.matched_ids
        return ()

    @classmethod
    def success(cls, record_id: str, *, created: bool = True) -> WriteResult:
        return cls(id=record_id, error=None, created=created)

    @classmethod
    def failure(cls, error: AdapterError) -> WriteResult:
        return cls(id=None, error=error, created=False)


@attrs.frozen
class WriteChain:
    """One person's writes in one round trip: the person record (created, updated, or
    ``None`` when it exists already), then the tasks and the campaign membership on it.

    When ``person`` is a :class:`PersonWrite`, the dependents' ``person_id`` is not known yet
    and is ignored: the adapter makes them refer to the record the create makes (or finds, for
    an upsert). A dependent of a create that did not succeed is never executed; its result is a
    failure (Salesforce: ``PROCESSING_HALTED``). Otherwise the writes succeed or fail each on
    its own, as in the batch methods.
    """

    person: PersonWrite | PersonUpdate | None = None
    tasks: tuple[TaskWrite, ...] = ()
    membership: CampaignMembershipWrite | None = None

    @property
    def size(self) -> int:
        """How many writes the chain holds (Salesforce: subrequests)."""
        return (self.person is not None) + len(self.tasks) + (self.membership is not None)


@attrs.frozen
class WriteChainResult:
    """The outcome of one :class:`WriteChain`: one result per write, in the chain's order."""

    person: WriteResult | None = None
    tasks: tuple[WriteResult, ...] = ()
    membership: WriteResult | None = None


# ------------------------------------------------------------------------------------------------
# Reconciliation (did a write whose outcome is unknown land?)


@attrs.frozen
class PersonByEmail:
    """Is there a person record of ``kind`` with this email? Answer: its id or ``None``."""

    email: str
    kind: PersonKind


@attrs.frozen
class TaskByMarker:
    """Is there a task carrying ``marker``? Answer: its id or ``None``.

    ``person_id`` and ``email`` say, when the caller knows, which person record the task was
    written on (its id; the email of the person records it may be). An adapter that declares
    ``Capabilities.reads_tasks_by_person`` reads that record's tasks instead of searching;
    others ignore them. Either way the answer is a task whose marker is ``marker`` exactly.
    """

    marker: str
    person_id: str | None = None
    email: str | None = None


@attrs.frozen
class MembershipByPerson:
    """Is ``person_id`` a member of ``campaign_id``? Answer: the membership id or ``None``."""

    campaign_id: str
    person_id: str


ReconcileQuery: TypeAlias = PersonByEmail | TaskByMarker | MembershipByPerson
