# ruff: noqa: S101  # The kit is a test suite: pytest asserts are its language.
"""The adapter conformance kit: the tests every CRM adapter must pass, for you to subclass.

Theory of operation
-------------------
An adapter author subclasses :class:`AdapterConformance` (blocking adapters) or
:class:`AsyncAdapterConformance` (``async`` ones) in their own test suite and provides:

- a fixture ``adapter``: a fresh adapter talking to a CRM (a sandbox, a mock, a real org);
- a fixture ``backdoor``: a :class:`Backdoor` that reads and writes *the same* CRM directly,
  bypassing the adapter, so the tests can seed records and check what really landed;
- the class attributes ``text_field`` (a creatable, updatable text field of the person object)
  and, where the CRM needs them, ``create_fields`` (values a create needs besides the email),
  ``account_field`` (a field of the account object), ``account_owner_field`` (its owner
  field) and ``missing_person_id`` (an id shaped like the CRM's that names no record).

Every test is written once, as a *scenario*: a generator that yields the adapter calls it
wants (``_Call("find_people", (emails, fields))``) and receives their results, the sans-IO
pattern of httpx's ``auth_flow``. :class:`AdapterConformance` drives each scenario with plain
calls, :class:`AsyncAdapterConformance` with ``await``-ed ``a``-prefixed calls; an error raised
by the adapter is thrown back into the scenario, which may expect it. So the sync and async
kits always check the same rules.

What the kit checks, per the rules of :mod:`signals_crm.adapters.base`:

1. One result per input, in input order, for every batch operation; empty input, empty output;
   inputs larger than the declared batch sizes are split by the adapter.
2. Person lookups match emails case-insensitively, ignoring surrounding spaces; records of the
   person kind carry the requested fields; Salesforce-style separate Contacts are returned too
   (with at least id, kind and email); converted Leads are flagged.
3. A bad record in the middle of a write batch fails alone, with a typed, non-retryable
   :class:`~signals_crm.exceptions.CRMAPIError`; an update of a missing record fails alone with
   :class:`~signals_crm.exceptions.NotFoundError`.
4. A create refused as a duplicate yields a :class:`~signals_crm.exceptions.DuplicateRecordError`
   naming the existing record (skipped when :meth:`Backdoor.enable_duplicate_detection` says the
   CRM cannot detect duplicates).
5. Tasks carry their markers; campaign membership is idempotent (a second add is a success with
   ``created=False``, and there is still one membership).
6. Reconciliation finds what landed and answers ``None`` for what did not, for each query kind,
   returning the same id the write returned.
7. The optional methods the engine uses exist exactly when the capabilities say so:
   ``campaign_exists`` ⇔ ``checks_campaigns`` (and it tells a seeded campaign from
   ``missing_campaign_id``), ``list_campaigns`` ⇔ ``lists_campaigns`` (and it lists a seeded
   campaign), ``read_accounts`` ⇔ ``reads_accounts`` (and it reads seeded accounts by id,
   in order, with ``None`` for ``missing_account_id``), ``api_usage`` ⇔ ``reports_api_usage``.
8. An adapter that declares ``upserts_people`` / ``upserts_tasks`` names its
   ``sync_key_field``, and the same create sent twice (one idempotency key) answers the same id,
   ``created=False`` the second time, and leaves one record.
9. describe marks the fields that hold a CRM user's id (``FieldSchema.names_user``), the
   account's owner field among them: the settings catalog offers those for ownership rules.
10. An adapter that declares ``chains_writes`` has ``write_chains`` (``awrite_chains``): a
    chain's tasks and membership land on the record its create makes (whatever ``person_id``
    they carry), or on the record it updates; the dependents of a create that failed are not
    executed and answer a failure while the call's other chains go on; chains come back one
    result each, in order, with one result per write; more writes than
    ``max_chain_writes`` are split by the adapter, never a chain.

Tests that need a capability the adapter does not declare (``supports_tasks``,
``supports_campaigns``, ``supports_describe``, ``supports_reconcile``, ``separate_contacts``,
a Lead person object) are skipped with the reason, as zarr's store tests do.

:func:`adapter_state_machine` builds a hypothesis state machine that drives random creates,
updates, lookups, tasks, memberships and reconciliations against a fresh adapter and checks them
against a plain dict model.

This module imports ``pytest`` and ``hypothesis``: they are test-time dependencies of whoever
runs the kit, not of ``signals_crm`` itself.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType
from typing import Any, ClassVar, Protocol, TypeAlias, TypeVar, runtime_checkable

import attrs
import hypothesis.strategies as st
import pytest
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    precondition,
    rule,
)

from signals_crm._drive import adrive, drive
from signals_crm.adapters.base import AsyncCRMAdapter, CRMAdapter
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
    ActivityKind,
    CRMUser,
    FieldType,
    FieldValue,
    ObjectSchema,
    PersonKind,
    PersonRecord,
    normalize_email,
)
from signals_crm.exceptions import (
    AdapterError,
    CRMAPIError,
    DuplicateRecordError,
    NotFoundError,
)

__all__ = [
    "AdapterConformance",
    "AsyncAdapterConformance",
    "Backdoor",
    "adapter_state_machine",
]


@runtime_checkable
class Backdoor(Protocol):
    """Reads and writes the CRM directly, bypassing the adapter under test.

    ``seed_*`` methods fill in whatever else the CRM requires (a Contact's ``LastName``, a
    required account field) when ``fields`` lacks it, and return the new record's id.
    """

    def seed_person(
        self,
        *,
        kind: PersonKind,
        email: str,
        fields: Mapping[str, FieldValue] | None = None,
        is_converted: bool = False,
        converted_contact_id: str | None = None,
        last_modified: datetime | None = None,
    ) -> str:
        """Create a person record of ``kind`` directly; returns its id."""
        ...

    def seed_account(
        self, *, domain: str, name: str, fields: Mapping[str, FieldValue] | None = None
    ) -> str:
        """Create an account whose domain (or website) is ``domain``; returns its id."""
        ...

    def seed_user(self, *, email: str, active: bool = True, name: str | None = None) -> str:
        """Create a CRM user; returns its id."""
        ...

    def seed_campaign(self, *, name: str) -> str:
        """Create a campaign (a HubSpot static list); returns its id."""
        ...

    def person_fields(self, record_id: str) -> Mapping[str, FieldValue] | None:
        """The stored field values of a person record, or ``None`` if there is none."""
        ...

    def people_with_email(self, email: str) -> list[str]:
        """Ids of person records of any kind with this email (case-insensitive)."""
        ...

    def task_markers(self, person_id: str) -> list[str]:
        """The markers of the tasks on that person record."""
        ...

    def campaign_members(self, campaign_id: str) -> set[str]:
        """The person ids that are members of the campaign."""
        ...

    def enable_duplicate_detection(self) -> bool:
        """Switch duplicate detection on; ``False`` when the CRM cannot (tests skip then)."""
        ...


# ------------------------------------------------------------------------------------------------
# Scenarios: each test written once, driven by a sync or an async runner


@attrs.frozen
class _Call:
    """One adapter call a scenario wants made: the sync method name and its arguments."""

    method: str
    args: tuple[Any, ...] = ()


Scenario: TypeAlias = Generator[_Call, Any, None]

_serial = itertools.count(1)


def _unique(label: str) -> str:
    return f"{label}-{next(_serial)}"


def _get(values: Mapping[str, FieldValue] | None, name: str) -> FieldValue:
    """A field value looked up case-insensitively (CRM field names are)."""
    if values is None:
        return None
    if name in values:
        return values[name]
    lowered = name.lower()
    for key, value in values.items():
        if key.lower() == lowered:
            return value
    return None


@attrs.frozen
class _Kit:
    """What a scenario knows: the adapter's capabilities, the backdoor and the class settings."""

    caps: Capabilities
    backdoor: Backdoor
    create_fields: Mapping[str, FieldValue]
    text_field: str
    account_field: str
    missing_person_id: str
    missing_campaign_id: str = "999999999999"
    account_owner_field: str | None = None
    missing_account_id: str = "999999999999"
    adapter: object = None
    prefix: str = ""
    """``""`` for a blocking adapter, ``"a"`` for an async one (its method names' prefix)."""

    def email(self, label: str) -> str:
        return f"kit.{_unique(label)}@example.com"

    def write(self, email: str, text: str) -> PersonWrite:
        fields: dict[str, FieldValue] = {
            **self.create_fields,
            self.caps.email_field: email,
            self.text_field: text,
        }
        return PersonWrite(
            key=_unique("write"), kind=self.caps.person_kind, email=email, fields=fields
        )

    def seed(self, email: str, text: str | None = None, **extra: Any) -> str:
        fields: dict[str, FieldValue] = dict(self.create_fields)
        if text is not None:
            fields[self.text_field] = text
        return self.backdoor.seed_person(
            kind=self.caps.person_kind, email=email, fields=fields, **extra
        )

    def stored(self, record_id: str, name: str) -> FieldValue:
        return _get(self.backdoor.person_fields(record_id), name)

    def task(self, person_id: str, marker: str) -> TaskWrite:
        return TaskWrite(
            key=_unique("task"),
            person_id=person_id,
            person_kind=self.caps.person_kind,
            activity_kind=ActivityKind.CHAT_TRANSCRIPT,
            subject="Signals chat transcript",
            body=f"Visitor: hello\nAgent: hi ({marker})",
            marker=marker,
            activity_date=date(2024, 5, 17),
        )

    def require(self, flag: bool, capability: str) -> None:
        if not flag:
            pytest.skip(f"{self.caps.name} does not declare {capability}")


def _assert_validation_failure(result: WriteResult) -> CRMAPIError:
    assert not result.ok, f"expected a per-record failure, got {result!r}"
    assert result.id is None
    assert isinstance(result.error, CRMAPIError), f"untyped error {result.error!r}"
    assert result.error.retryable is False, "validation errors must not be retryable"
    return result.error


def _assert_created(results: Sequence[WriteResult], count: int) -> list[str]:
    assert len(results) == count, "one result per input"
    ids: list[str] = []
    for result in results:
        assert result.ok, f"expected success, got {result.error!r}"
        assert result.id is not None
        ids.append(result.id)
    assert len(set(ids)) == count, "each created record has its own id"
    return ids


_SCENARIOS: dict[str, Callable[[_Kit], Scenario]] = {}


def _scenario(func: Callable[[_Kit], Scenario]) -> Callable[[_Kit], Scenario]:
    """Register ``func`` as the kit test ``test_<name>`` (its docstring is the test's)."""
    _SCENARIOS[f"test_{func.__name__.removeprefix('_')}"] = func
    return func


# -- capabilities and empty input ---------------------------------------------------------------


@_scenario
def _capabilities_are_declared(kit: _Kit) -> Scenario:
    """The adapter declares coherent capabilities: a person object, its email field, batches."""
    caps = kit.caps
    assert isinstance(caps, Capabilities)
    assert isinstance(caps.person_kind, PersonKind)
    assert caps.person_object
    assert caps.email_field
    assert caps.lookup_batch_size >= 1
    assert caps.write_batch_size >= 1
    if caps.separate_contacts:
        assert caps.person_kind is PersonKind.LEAD, "separate contacts exist beside Leads"
    if caps.upserts_people or caps.upserts_tasks:
        assert caps.sync_key_field, "an adapter that upserts names its sync_key_field"
    if caps.upserts_tasks:
        assert caps.task_object, "an adapter that upserts tasks names its task_object"
    if caps.chains_writes:
        assert caps.max_chain_writes >= 1, "an adapter that chains writes takes one at least"
    yield from ()


@_scenario
def _optional_methods_match_capabilities(kit: _Kit) -> Scenario:
    """The optional methods the engine uses exist exactly when the capabilities declare them."""
    caps, adapter = kit.caps, kit.adapter
    has_check = callable(getattr(adapter, f"{kit.prefix}campaign_exists", None))
    assert has_check == caps.checks_campaigns, (
        f"{kit.prefix}campaign_exists present: {has_check}, but checks_campaigns="
        f"{caps.checks_campaigns}; declare what the adapter has (the engine reads only the flag)"
    )
    has_list = callable(getattr(adapter, f"{kit.prefix}list_campaigns", None))
    assert has_list == caps.lists_campaigns, (
        f"{kit.prefix}list_campaigns present: {has_list}, but lists_campaigns="
        f"{caps.lists_campaigns}"
    )
    has_read = callable(getattr(adapter, f"{kit.prefix}read_accounts", None))
    assert has_read == caps.reads_accounts, (
        f"{kit.prefix}read_accounts present: {has_read}, but reads_accounts={caps.reads_accounts}"
    )
    if caps.chains_writes:
        assert callable(getattr(adapter, f"{kit.prefix}write_chains", None)), (
            f"chains_writes is declared but {kit.prefix}write_chains is missing"
        )
    has_usage = hasattr(type(adapter), "api_usage") or hasattr(adapter, "api_usage")
    assert has_usage == caps.reports_api_usage, (
        f"api_usage present: {has_usage}, but reports_api_usage={caps.reports_api_usage}"
    )
    if caps.reports_api_usage:
        yield _Call("find_people", ([kit.email("usage")], ()))
        usage = getattr(adapter, "api_usage", None)
        if usage is not None:
            share = usage.fraction_used
            assert share is None or (isinstance(share, int | float) and share >= 0), (
                f"api_usage.fraction_used must be a share >= 0 or None, got {share!r}"
            )


@_scenario
def _campaign_exists_tells_known_from_unknown(kit: _Kit) -> Scenario:
    """campaign_exists is True for a campaign the CRM has and False for an id it has not."""
    kit.require(kit.caps.checks_campaigns, "checks_campaigns")
    campaign = kit.backdoor.seed_campaign(name=_unique("Kit existing campaign"))
    assert (yield _Call("campaign_exists", (campaign,))) is True
    assert (yield _Call("campaign_exists", (kit.missing_campaign_id,))) is False


@_scenario
def _list_campaigns_includes_a_seeded_campaign(kit: _Kit) -> Scenario:
    """list_campaigns names a campaign the backdoor created, once, as active."""
    kit.require(kit.caps.lists_campaigns, "lists_campaigns")
    name = _unique("Kit listed campaign")
    campaign = kit.backdoor.seed_campaign(name=name)
    listed: list[CampaignInfo] = yield _Call("list_campaigns", ())
    assert all(isinstance(c, CampaignInfo) for c in listed)
    mine = [c for c in listed if c.id == campaign]
    assert len(mine) == 1, f"campaign {campaign} listed {len(mine)} times"
    assert mine[0].name == name
    assert mine[0].active


@_scenario
def _read_accounts_reads_by_id_in_order(kit: _Kit) -> Scenario:
    """read_accounts answers one record per id, in input order, with the asked field, and
    ``None`` for an id the CRM does not have."""
    kit.require(kit.caps.reads_accounts, "reads_accounts")
    first_domain, second_domain = f"{_unique('kit-a')}.example", f"{_unique('kit-b')}.example"
    first = kit.backdoor.seed_account(
        domain=first_domain, name="Kit First", fields={kit.account_field: "Energy"}
    )
    second = kit.backdoor.seed_account(domain=second_domain, name="Kit Second")
    ids = [second, kit.missing_account_id, first]
    read: list[AccountRecord | None] = yield _Call("read_accounts", (ids, [kit.account_field]))
    assert len(read) == 3, f"read_accounts answered {len(read)} results for 3 ids"
    got_second, missing, got_first = read
    assert missing is None, f"{kit.missing_account_id} should read as None, got {missing!r}"
    assert got_first is not None
    assert got_first.id == first
    assert got_second is not None
    assert got_second.id == second
    assert got_first.fields.get(kit.account_field) == "Energy"
    assert (yield _Call("read_accounts", ((), ()))) == []


@_scenario
def _empty_batches_return_empty_lists(kit: _Kit) -> Scenario:
    """Every batch operation answers an empty input with an empty list."""
    assert (yield _Call("find_people", ((), ()))) == []
    assert (yield _Call("find_accounts", ((), ()))) == []
    assert (yield _Call("create_people", ((),))) == []
    assert (yield _Call("update_people", ((),))) == []
    if kit.caps.supports_tasks:
        assert (yield _Call("create_tasks", ((),))) == []
    if kit.caps.supports_campaigns:
        assert (yield _Call("add_to_campaign", ((),))) == []
    if kit.caps.supports_reconcile:
        assert (yield _Call("reconcile", ((),))) == []


# -- find people --------------------------------------------------------------------------------


@_scenario
def _find_people_in_input_order(kit: _Kit) -> Scenario:
    """find_people answers one tuple per email in input order, () for unknown, repeats kept."""
    email_a, email_b = kit.email("order-a"), kit.email("order-b")
    id_a = kit.seed(email_a, "Ada")
    id_b = kit.seed(email_b, "Bob")
    unknown = kit.email("order-unknown")
    found: list[tuple[PersonRecord, ...]] = yield _Call(
        "find_people", ([email_b, unknown, email_a, email_b], ())
    )
    assert isinstance(found, list)
    assert len(found) == 4
    assert [r.id for r in found[0]] == [id_b]
    assert found[1] == ()
    assert [r.id for r in found[2]] == [id_a]
    assert [r.id for r in found[3]] == [id_b]
    for record in (*found[0], *found[2]):
        assert isinstance(record, PersonRecord)
        assert record.kind is kit.caps.person_kind
        assert record.is_converted is False
    assert found[0][0].email is not None
    assert normalize_email(found[0][0].email) == normalize_email(email_b)


@_scenario
def _find_people_ignores_case_and_spaces(kit: _Kit) -> Scenario:
    """Emails match case-insensitively and ignoring surrounding spaces, both ways."""
    stored = kit.email("Case.Mixed").replace("kit.", "Kit.")
    record_id = kit.seed(stored, "Cas")
    asked = [f"  {stored.upper()}  ", stored.lower(), f"\t{stored}"]
    found: list[tuple[PersonRecord, ...]] = yield _Call("find_people", (asked, ()))
    assert [[r.id for r in rs] for rs in found] == [[record_id]] * 3


@_scenario
def _find_people_reads_requested_fields(kit: _Kit) -> Scenario:
    """Records of the person kind carry the requested fields under the requested names."""
    email = kit.email("fields")
    record_id = kit.seed(email, "Grace")
    found: list[tuple[PersonRecord, ...]] = yield _Call("find_people", ([email], (kit.text_field,)))
    (record,) = found[0]
    assert record.id == record_id
    assert record.fields.get(kit.text_field) == "Grace", record.fields


@_scenario
def _find_people_returns_every_match(kit: _Kit) -> Scenario:
    """Several Leads with one email all come back, each with its own last-modified time."""
    if kit.caps.person_kind is not PersonKind.LEAD:
        pytest.skip(f"{kit.caps.name}: the person object's email is unique")
    email = kit.email("several")
    older = datetime(2024, 1, 1, 9, 0, tzinfo=UTC)
    newer = older + timedelta(days=3)
    id_old = kit.seed(email, "Old", last_modified=older)
    id_new = kit.seed(email.upper(), "New", last_modified=newer)
    found: list[tuple[PersonRecord, ...]] = yield _Call("find_people", ([email], (kit.text_field,)))
    by_id = {r.id: r for r in found[0]}
    assert set(by_id) == {id_old, id_new}
    assert by_id[id_old].fields.get(kit.text_field) == "Old"
    assert by_id[id_new].fields.get(kit.text_field) == "New"
    modified_old = by_id[id_old].last_modified
    modified_new = by_id[id_new].last_modified
    assert modified_old is not None
    assert modified_new is not None
    assert modified_old < modified_new


@_scenario
def _find_people_returns_separate_contacts(kit: _Kit) -> Scenario:
    """Contacts kept beside Leads are found too, with at least id, kind and email."""
    kit.require(kit.caps.separate_contacts, "separate_contacts")
    email = kit.email("contact")
    contact_id = kit.backdoor.seed_person(kind=PersonKind.CONTACT, email=email)
    lead_id = kit.seed(email, "Lea")
    found: list[tuple[PersonRecord, ...]] = yield _Call(
        "find_people", ([email.upper()], (kit.text_field,))
    )
    kinds = {r.id: r.kind for r in found[0]}
    assert kinds == {contact_id: PersonKind.CONTACT, lead_id: kit.caps.person_kind}
    contact = next(r for r in found[0] if r.id == contact_id)
    assert contact.email is not None
    assert normalize_email(contact.email) == email


@_scenario
def _find_people_flags_converted_leads(kit: _Kit) -> Scenario:
    """A converted Lead is returned flagged, naming the Contact it became."""
    kit.require(kit.caps.person_kind is PersonKind.LEAD, "a Lead person object")
    email = kit.email("converted")
    contact_id = kit.backdoor.seed_person(kind=PersonKind.CONTACT, email=email)
    lead_id = kit.seed(email, "Conv", is_converted=True, converted_contact_id=contact_id)
    found: list[tuple[PersonRecord, ...]] = yield _Call("find_people", ([email], ()))
    lead = next(r for r in found[0] if r.id == lead_id)
    assert lead.kind is PersonKind.LEAD
    assert lead.is_converted is True
    assert lead.converted_contact_id == contact_id


@_scenario
def _find_people_splits_large_batches(kit: _Kit) -> Scenario:
    """More emails than one lookup takes are split by the adapter, order kept."""
    count = kit.caps.lookup_batch_size + 1
    first, last = kit.email("big-first"), kit.email("big-last")
    id_first, id_last = kit.seed(first, "First"), kit.seed(last, "Last")
    emails = [first, *(kit.email("big-none") for _ in range(count - 2)), last]
    found: list[tuple[PersonRecord, ...]] = yield _Call("find_people", (emails, ()))
    assert len(found) == count
    assert [r.id for r in found[0]] == [id_first]
    assert [r.id for r in found[-1]] == [id_last]
    assert all(rs == () for rs in found[1:-1])


# -- accounts, users, describe ------------------------------------------------------------------


@_scenario
def _find_accounts_by_domain(kit: _Kit) -> Scenario:
    """Accounts are found by domain (any case), one tuple per domain, with requested fields."""
    domain = f"{_unique('acme')}.example.com"
    account_id = kit.backdoor.seed_account(
        domain=domain, name="Acme Kit", fields={kit.account_field: "Kit value"}
    )
    other = f"{_unique('nobody')}.example.com"
    found: list[tuple[AccountRecord, ...]] = yield _Call(
        "find_accounts", ([domain.upper(), other, domain], (kit.account_field,))
    )
    assert len(found) == 3
    assert found[1] == ()
    for records in (found[0], found[2]):
        (account,) = records
        assert isinstance(account, AccountRecord)
        assert account.id == account_id
        assert account.name == "Acme Kit"
        assert _get(account.fields, kit.account_field) == "Kit value"


@_scenario
def _list_users_flags_inactive(kit: _Kit) -> Scenario:
    """list_users returns every user that can own records, inactive ones flagged."""
    active_email = kit.email("active-user")
    inactive_email = kit.email("inactive-user")
    active_id = kit.backdoor.seed_user(email=active_email, name="Active Kit")
    inactive_id = kit.backdoor.seed_user(email=inactive_email, active=False, name="Gone Kit")
    users: list[CRMUser] = yield _Call("list_users")
    by_id = {u.id: u for u in users}
    assert all(isinstance(u, CRMUser) for u in users)
    assert by_id[active_id].active is True
    assert by_id[inactive_id].active is False
    assert by_id[active_id].email is not None
    assert normalize_email(by_id[active_id].email or "") == active_email


@_scenario
def _describe_person_object(kit: _Kit) -> Scenario:
    """describe gives the person object's fields: types, lengths, createable, required."""
    kit.require(kit.caps.supports_describe, "supports_describe")
    schema: ObjectSchema = yield _Call("describe", (kit.caps.person_object,))
    assert isinstance(schema, ObjectSchema)
    email = schema.get(kit.caps.email_field)
    assert email is not None, f"{kit.caps.email_field} missing from the schema"
    assert email.type.is_text
    text = schema.get(kit.text_field)
    assert text is not None, f"{kit.text_field} missing from the schema"
    assert text.type.is_text
    assert text.createable
    assert text.updateable
    for name in kit.create_fields:
        field = schema.get(name)
        assert field is not None, f"{name} missing from the schema"
        assert field.createable
    provided = {name.lower() for name in kit.create_fields} | {kit.caps.email_field.lower()}
    for field in schema.fields.values():
        if field.required and field.createable:
            assert field.name.lower() in provided, f"required {field.name} not in create_fields"
        if field.type.is_text:
            assert field.length is None or field.length > 0
        if field.type in (FieldType.PICKLIST, FieldType.MULTIPICKLIST):
            assert field.picklist_values is not None, f"{field.name} lists no values"


@_scenario
def _describe_account_names_its_owner_field(kit: _Kit) -> Scenario:
    """describe of the account object marks the owner field as naming a user (``names_user``),
    so a settings page can offer it for ownership rules; fields that name a user are no text."""
    kit.require(kit.caps.supports_describe, "supports_describe")
    if kit.account_owner_field is None:
        pytest.skip("no account_owner_field given: set it to the account object's owner field")
    schema: ObjectSchema = yield _Call("describe", (kit.caps.account_object,))
    owner = schema.get(kit.account_owner_field)
    assert owner is not None, f"{kit.account_owner_field} missing from {kit.caps.account_object}"
    assert owner.names_user, f"{owner.name} holds a user id but names_user is false"
    text = schema.get(kit.account_field)
    assert text is not None, f"{kit.account_field} missing from {kit.caps.account_object}"
    assert not text.names_user, f"{text.name} is not a user reference but names_user is true"


@_scenario
def _describe_unknown_object_raises(kit: _Kit) -> Scenario:
    """Describing an object the CRM does not have raises a typed, non-retryable error."""
    kit.require(kit.caps.supports_describe, "supports_describe")
    with pytest.raises(CRMAPIError) as raised:
        yield _Call("describe", ("NoSuchObjectKit__zz",))
    assert raised.value.retryable is False


# -- create and update --------------------------------------------------------------------------


@_scenario
def _create_people_in_order(kit: _Kit) -> Scenario:
    """create_people answers one success per record in order; the records really exist."""
    emails = [kit.email(f"create-{n}") for n in range(3)]
    texts = ["Ann", "Ben", "Cat"]
    results: list[WriteResult] = yield _Call(
        "create_people", ([kit.write(e, t) for e, t in zip(emails, texts, strict=True)],)
    )
    ids = _assert_created(results, 3)
    assert all(r.created for r in results)
    for email, text, record_id in zip(emails, texts, ids, strict=True):
        assert kit.backdoor.people_with_email(email) == [record_id]
        assert kit.stored(record_id, kit.text_field) == text
    found: list[tuple[PersonRecord, ...]] = yield _Call("find_people", (emails, ()))
    assert [[r.id for r in rs] for rs in found] == [[i] for i in ids]


@_scenario
def _create_people_bad_email_fails_alone(kit: _Kit) -> Scenario:
    """A record with an invalid email fails alone, non-retryable; its neighbours are created."""
    good_1, good_2 = kit.email("neighbour-1"), kit.email("neighbour-2")
    writes = [kit.write(good_1, "One"), kit.write("not-an-email", "Bad"), kit.write(good_2, "Two")]
    results: list[WriteResult] = yield _Call("create_people", (writes,))
    assert len(results) == 3
    _assert_validation_failure(results[1])
    assert results[0].ok
    assert results[2].ok
    assert kit.backdoor.people_with_email(good_1) == [results[0].id]
    assert kit.backdoor.people_with_email(good_2) == [results[2].id]
    assert kit.backdoor.people_with_email("not-an-email") == []


@_scenario
def _create_people_unknown_field_fails_alone(kit: _Kit) -> Scenario:
    """A record naming a field the CRM does not have fails alone, non-retryable."""
    good_1, bad, good_2 = (kit.email(f"unknown-field-{n}") for n in range(3))
    broken = kit.write(bad, "Bad")
    broken = attrs.evolve(broken, fields={**broken.fields, "NoSuchFieldKit__zz": "x"})
    writes = [kit.write(good_1, "One"), broken, kit.write(good_2, "Two")]
    results: list[WriteResult] = yield _Call("create_people", (writes,))
    assert len(results) == 3
    _assert_validation_failure(results[1])
    assert results[0].ok
    assert results[2].ok
    assert kit.backdoor.people_with_email(bad) == []
    assert kit.backdoor.people_with_email(good_2) == [results[2].id]


@_scenario
def _create_people_splits_large_batches(kit: _Kit) -> Scenario:
    """More records than one write takes are split by the adapter, one result each, in order."""
    count = kit.caps.write_batch_size + 1
    emails = [kit.email("bulk") for _ in range(count)]
    results: list[WriteResult] = yield _Call(
        "create_people", ([kit.write(e, "Bulk") for e in emails],)
    )
    ids = _assert_created(results, count)
    assert kit.backdoor.people_with_email(emails[0]) == [ids[0]]
    assert kit.backdoor.people_with_email(emails[-1]) == [ids[-1]]


@_scenario
def _update_people_changes_values(kit: _Kit) -> Scenario:
    """update_people writes the new values, one success per record naming the record."""
    id_1 = kit.seed(kit.email("update-1"), "Before")
    id_2 = kit.seed(kit.email("update-2"), "Before")
    updates = [
        PersonUpdate(
            key=_unique("update"),
            record_id=record_id,
            kind=kit.caps.person_kind,
            fields={kit.text_field: text},
        )
        for record_id, text in ((id_1, "After"), (id_2, "Later"))
    ]
    results: list[WriteResult] = yield _Call("update_people", (updates,))
    assert [r.id for r in results] == [id_1, id_2]
    assert all(r.ok for r in results)
    assert kit.stored(id_1, kit.text_field) == "After"
    assert kit.stored(id_2, kit.text_field) == "Later"


@_scenario
def _update_unknown_id_fails_alone(kit: _Kit) -> Scenario:
    """Updating a record that does not exist fails alone with a non-retryable NotFoundError."""
    id_1 = kit.seed(kit.email("upd-ok-1"), "Before")
    id_2 = kit.seed(kit.email("upd-ok-2"), "Before")
    updates = [
        PersonUpdate(
            key=_unique("update"),
            record_id=record_id,
            kind=kit.caps.person_kind,
            fields={kit.text_field: "After"},
        )
        for record_id in (id_1, kit.missing_person_id, id_2)
    ]
    results: list[WriteResult] = yield _Call("update_people", (updates,))
    assert len(results) == 3
    error = _assert_validation_failure(results[1])
    assert isinstance(error, NotFoundError), f"expected NotFoundError, got {error!r}"
    assert [results[0].id, results[2].id] == [id_1, id_2]
    assert kit.stored(id_1, kit.text_field) == "After"
    assert kit.stored(id_2, kit.text_field) == "After"


@_scenario
def _duplicate_create_names_existing_record(kit: _Kit) -> Scenario:
    """A create refused as a duplicate names the existing record and creates nothing."""
    if not kit.backdoor.enable_duplicate_detection():
        pytest.skip(f"{kit.caps.name}: duplicate detection cannot be switched on")
    email = kit.email("dupe")
    existing = kit.seed(email, "First")
    fresh = kit.email("not-dupe")
    writes = [kit.write(f" {email.upper()} ", "Second"), kit.write(fresh, "Fresh")]
    results: list[WriteResult] = yield _Call("create_people", (writes,))
    assert len(results) == 2
    refused = results[0]
    assert not refused.ok
    assert isinstance(refused.error, DuplicateRecordError), repr(refused.error)
    assert refused.error.retryable is False
    assert existing in refused.duplicate_of
    assert results[1].ok
    assert kit.backdoor.people_with_email(email) == [existing]
    assert kit.stored(existing, kit.text_field) == "First"


# -- tasks and campaigns ------------------------------------------------------------------------


@_scenario
def _create_tasks_with_markers(kit: _Kit) -> Scenario:
    """Tasks land on the person record, one result each, each carrying its marker."""
    kit.require(kit.caps.supports_tasks, "supports_tasks")
    person = kit.seed(kit.email("tasks"), "Tia")
    markers = [_unique("marker-transcript"), _unique("marker-meeting")]
    results: list[WriteResult] = yield _Call(
        "create_tasks", ([kit.task(person, m) for m in markers],)
    )
    _assert_created(results, 2)
    assert sorted(kit.backdoor.task_markers(person)) == sorted(markers)


@_scenario
def _upserted_person_create_is_idempotent(kit: _Kit) -> Scenario:
    """With ``upserts_people``, the same create (one key) sent twice makes one record: the
    second answer names it with ``created=False``."""
    kit.require(kit.caps.upserts_people, "upserts_people")
    email = kit.email("upsert")
    write = kit.write(email, "first")
    (first,) = yield _Call("create_people", ([write],))
    (again,) = yield _Call("create_people", ([write],))
    assert first.ok, f"expected success, got {first.error!r}"
    assert first.created is True
    assert again.ok, f"a replayed upsert must succeed, got {again.error!r}"
    assert again.id == first.id, "a replayed upsert names the record the first one made"
    assert again.created is False, "a replayed upsert says it created nothing"
    assert kit.backdoor.people_with_email(email) == [first.id]


@_scenario
def _upserted_task_create_is_idempotent(kit: _Kit) -> Scenario:
    """With ``upserts_tasks``, the same task (one key) sent twice makes one task."""
    kit.require(kit.caps.supports_tasks and kit.caps.upserts_tasks, "upserts_tasks")
    person = kit.seed(kit.email("upsert-task"))
    marker = f"signals:{_unique('conv')}:transcript"
    task = kit.task(person, marker)
    (first,) = yield _Call("create_tasks", ([task],))
    (again,) = yield _Call("create_tasks", ([task],))
    assert first.ok, f"expected success, got {first.error!r}"
    assert again.ok, f"a replayed upsert must succeed, got {again.error!r}"
    assert again.id == first.id
    assert again.created is False
    assert kit.backdoor.task_markers(person) == [marker]


@_scenario
def _create_task_on_missing_person_fails_alone(kit: _Kit) -> Scenario:
    """A task on a record that does not exist fails alone, non-retryable."""
    kit.require(kit.caps.supports_tasks, "supports_tasks")
    person = kit.seed(kit.email("task-neighbour"), "Tom")
    marker_1, marker_2 = _unique("marker-a"), _unique("marker-b")
    tasks = [
        kit.task(person, marker_1),
        kit.task(kit.missing_person_id, _unique("marker-lost")),
        kit.task(person, marker_2),
    ]
    results: list[WriteResult] = yield _Call("create_tasks", (tasks,))
    assert len(results) == 3
    _assert_validation_failure(results[1])
    assert results[0].ok
    assert results[2].ok
    assert sorted(kit.backdoor.task_markers(person)) == sorted([marker_1, marker_2])


@_scenario
def _campaign_membership_is_idempotent(kit: _Kit) -> Scenario:
    """A second add of a member is a success with created=False, and one membership remains."""
    kit.require(kit.caps.supports_campaigns, "supports_campaigns")
    campaign = kit.backdoor.seed_campaign(name=_unique("Kit campaign"))
    person_1 = kit.seed(kit.email("member-1"), "Mia")
    person_2 = kit.seed(kit.email("member-2"), "Max")

    def join(person: str) -> CampaignMembershipWrite:
        return CampaignMembershipWrite(
            key=_unique("member"),
            campaign_id=campaign,
            person_id=person,
            person_kind=kit.caps.person_kind,
        )

    first: list[WriteResult] = yield _Call("add_to_campaign", ([join(person_1)],))
    assert len(first) == 1
    assert first[0].ok
    assert first[0].created is True
    again: list[WriteResult] = yield _Call("add_to_campaign", ([join(person_1), join(person_2)],))
    assert len(again) == 2
    assert again[0].ok, repr(again[0].error)
    assert again[0].created is False
    assert again[0].id == first[0].id
    assert again[1].ok
    assert again[1].created is True
    assert kit.backdoor.campaign_members(campaign) == {person_1, person_2}


# -- chained writes -----------------------------------------------------------------------------


def _dependents(
    kit: _Kit, person_id: str, label: str, campaign: str | None
) -> tuple[tuple[TaskWrite, ...], CampaignMembershipWrite | None, list[str]]:
    """Two tasks and a membership (where the CRM has them) on ``person_id``, and the markers."""
    markers = [_unique(f"marker-{label}-transcript"), _unique(f"marker-{label}-meeting")]
    tasks = tuple(kit.task(person_id, m) for m in markers) if kit.caps.supports_tasks else ()
    member = None
    if campaign is not None:
        member = CampaignMembershipWrite(
            key=_unique("member"),
            campaign_id=campaign,
            person_id=person_id,
            person_kind=kit.caps.person_kind,
        )
    return tasks, member, markers if tasks else []


def _chain_campaign(kit: _Kit) -> str | None:
    if not kit.caps.supports_campaigns:
        return None
    return kit.backdoor.seed_campaign(name=_unique("Kit chain campaign"))


def _assert_chain_shape(results: Sequence[WriteChainResult], chains: Sequence[WriteChain]) -> None:
    assert len(results) == len(chains), "one result per chain"
    for result, chain in zip(results, chains, strict=True):
        assert isinstance(result, WriteChainResult), f"not a WriteChainResult: {result!r}"
        assert (result.person is None) == (chain.person is None), "a person result iff a write"
        assert len(result.tasks) == len(chain.tasks), "one result per task of the chain"
        assert (result.membership is None) == (chain.membership is None)


@_scenario
def _chain_creates_a_person_then_its_dependents(kit: _Kit) -> Scenario:
    """A chain's create lands, and its tasks and membership land on the new record, whatever
    ``person_id`` they carry (the adapter refers them to the create's answer)."""
    kit.require(kit.caps.chains_writes, "chains_writes")
    campaign = _chain_campaign(kit)
    email = kit.email("chain")
    tasks, member, markers = _dependents(kit, kit.missing_person_id, "chain", campaign)
    chain = WriteChain(kit.write(email, "Cy"), tasks, member)
    results: list[WriteChainResult] = yield _Call("write_chains", ([chain],))
    _assert_chain_shape(results, [chain])
    (result,) = results
    assert result.person is not None
    assert result.person.ok, f"expected success, got {result.person.error!r}"
    assert result.person.created is True
    person_id = result.person.id
    assert person_id is not None
    assert kit.backdoor.people_with_email(email) == [person_id]
    for task in result.tasks:
        assert task.ok, f"a chained task failed: {task.error!r}"
    assert sorted(kit.backdoor.task_markers(person_id)) == sorted(markers)
    if campaign is not None:
        assert result.membership is not None
        assert result.membership.ok, f"a chained membership failed: {result.membership.error!r}"
        assert kit.backdoor.campaign_members(campaign) == {person_id}


@_scenario
def _chain_halts_the_dependents_of_a_failed_create(kit: _Kit) -> Scenario:
    """The dependents of a create that failed are not executed and answer a typed failure;
    the other chains of the call (here: tasks on an existing record) go on."""
    kit.require(kit.caps.chains_writes, "chains_writes")
    kit.require(kit.caps.supports_tasks, "supports_tasks")
    campaign = _chain_campaign(kit)
    halted_tasks, halted_member, _ = _dependents(kit, kit.missing_person_id, "halted", campaign)
    existing = kit.seed(kit.email("chain-neighbour"), "Ned")
    tasks, _, markers = _dependents(kit, existing, "neighbour", None)
    chains = [
        WriteChain(kit.write("not-an-email", "Bad"), halted_tasks, halted_member),
        WriteChain(None, tasks),
    ]
    results: list[WriteChainResult] = yield _Call("write_chains", (chains,))
    _assert_chain_shape(results, chains)
    failed, neighbour = results
    assert failed.person is not None
    _assert_validation_failure(failed.person)
    halted = [*failed.tasks, *([failed.membership] if failed.membership is not None else [])]
    for result in halted:
        assert not result.ok, f"a dependent of a failed create was executed: {result!r}"
        assert result.id is None
        assert isinstance(result.error, CRMAPIError), f"untyped error {result.error!r}"
    if campaign is not None:
        assert kit.backdoor.campaign_members(campaign) == set()
    for result in neighbour.tasks:
        assert result.ok, f"a call-mate of a failed chain failed: {result.error!r}"
    assert sorted(kit.backdoor.task_markers(existing)) == sorted(markers)


@_scenario
def _chain_updates_a_person_then_writes_on_it(kit: _Kit) -> Scenario:
    """A chain's update is applied, and its dependents land on the updated record."""
    kit.require(kit.caps.chains_writes, "chains_writes")
    existing = kit.seed(kit.email("chain-update"), "Before")
    update = PersonUpdate(
        key=_unique("update"),
        record_id=existing,
        kind=kit.caps.person_kind,
        fields={kit.text_field: "After"},
    )
    tasks, _, markers = _dependents(kit, existing, "update", None)
    chain = WriteChain(update, tasks)
    results: list[WriteChainResult] = yield _Call("write_chains", ([chain],))
    _assert_chain_shape(results, [chain])
    (result,) = results
    assert result.person is not None
    assert result.person.ok, f"expected success, got {result.person.error!r}"
    assert result.person.id == existing
    assert result.person.created is False
    assert kit.stored(existing, kit.text_field) == "After"
    assert all(t.ok for t in result.tasks)
    assert sorted(kit.backdoor.task_markers(existing)) == sorted(markers)


@_scenario
def _chains_beyond_one_call_are_split_in_order(kit: _Kit) -> Scenario:
    """More writes than ``max_chain_writes`` are split by the adapter (never a chain): each
    chain's dependents land on its own record, one result per chain, in order."""
    kit.require(kit.caps.chains_writes, "chains_writes")
    size = 1 + (2 if kit.caps.supports_tasks else 0)
    count = kit.caps.max_chain_writes // size + 1
    emails = [kit.email("chain-many") for _ in range(count)]
    chains: list[WriteChain] = []
    expected: list[list[str]] = []
    for email in emails:
        tasks, _, markers = _dependents(kit, kit.missing_person_id, "many", None)
        chains.append(WriteChain(kit.write(email, "Many"), tasks))
        expected.append(markers)
    results: list[WriteChainResult] = yield _Call("write_chains", (chains,))
    _assert_chain_shape(results, chains)
    for email, result, markers in zip(emails, results, expected, strict=True):
        assert result.person is not None
        assert result.person.ok, f"expected success, got {result.person.error!r}"
        assert kit.backdoor.people_with_email(email) == [result.person.id]
        assert result.person.id is not None
        assert sorted(kit.backdoor.task_markers(result.person.id)) == sorted(markers)


# -- reconciliation -----------------------------------------------------------------------------


@_scenario
def _reconcile_person_by_email(kit: _Kit) -> Scenario:
    """PersonByEmail finds a record created through the adapter, and None for an unknown email."""
    kit.require(kit.caps.supports_reconcile, "supports_reconcile")
    email = kit.email("Reconcile.Person")
    created: list[WriteResult] = yield _Call("create_people", ([kit.write(email, "Rey")],))
    (record_id,) = _assert_created(created, 1)
    queries: list[ReconcileQuery] = [
        PersonByEmail(email=f" {email.upper()}", kind=kit.caps.person_kind),
        PersonByEmail(email=kit.email("reconcile-nobody"), kind=kit.caps.person_kind),
    ]
    answers: list[str | None] = yield _Call("reconcile", (queries,))
    assert answers == [record_id, None]


@_scenario
def _reconcile_task_by_marker(kit: _Kit) -> Scenario:
    """TaskByMarker finds the task carrying the marker, and None for an unused marker."""
    kit.require(kit.caps.supports_reconcile, "supports_reconcile")
    kit.require(kit.caps.supports_tasks, "supports_tasks")
    person = kit.seed(kit.email("reconcile-task"), "Tad")
    marker = _unique("marker-reconcile")
    created: list[WriteResult] = yield _Call("create_tasks", ([kit.task(person, marker)],))
    (task_id,) = _assert_created(created, 1)
    queries: list[ReconcileQuery] = [
        TaskByMarker(marker=_unique("marker-never")),
        TaskByMarker(marker=marker),
    ]
    answers: list[str | None] = yield _Call("reconcile", (queries,))
    assert answers == [None, task_id]


@_scenario
def _reconcile_membership(kit: _Kit) -> Scenario:
    """MembershipByPerson finds a membership (the id the add returned), None for a non-member."""
    kit.require(kit.caps.supports_reconcile, "supports_reconcile")
    kit.require(kit.caps.supports_campaigns, "supports_campaigns")
    campaign = kit.backdoor.seed_campaign(name=_unique("Kit reconcile campaign"))
    member = kit.seed(kit.email("reconcile-member"), "Meg")
    outsider = kit.seed(kit.email("reconcile-outsider"), "Oz")
    added: list[WriteResult] = yield _Call(
        "add_to_campaign",
        (
            [
                CampaignMembershipWrite(
                    key=_unique("member"),
                    campaign_id=campaign,
                    person_id=member,
                    person_kind=kit.caps.person_kind,
                )
            ],
        ),
    )
    (membership_id,) = _assert_created(added, 1)
    queries: list[ReconcileQuery] = [
        MembershipByPerson(campaign_id=campaign, person_id=member),
        MembershipByPerson(campaign_id=campaign, person_id=outsider),
    ]
    answers: list[str | None] = yield _Call("reconcile", (queries,))
    assert answers == [membership_id, None]


@_scenario
def _reconcile_mixed_queries_in_order(kit: _Kit) -> Scenario:
    """One reconcile call answers a mix of query kinds, one answer per query, in order."""
    kit.require(kit.caps.supports_reconcile, "supports_reconcile")
    email = kit.email("reconcile-mixed")
    person = kit.seed(email, "Mix")
    queries: list[ReconcileQuery] = [
        PersonByEmail(email=kit.email("nobody"), kind=kit.caps.person_kind)
    ]
    expected: list[str | None] = [None]
    if kit.caps.supports_tasks:
        queries.append(TaskByMarker(marker=_unique("marker-never")))
        expected.append(None)
    queries.append(PersonByEmail(email=email, kind=kit.caps.person_kind))
    expected.append(person)
    answers: list[str | None] = yield _Call("reconcile", (queries,))
    assert answers == expected


# ------------------------------------------------------------------------------------------------
# Drivers and the test classes


def _drive_sync(adapter: CRMAdapter, scenario: Scenario) -> None:
    """Run a scenario with blocking calls; adapter errors are thrown back into it."""

    def call(request: _Call) -> Any:
        return getattr(adapter, request.method)(*request.args)

    drive(scenario, call, catch=(AdapterError,))


async def _drive_async(adapter: AsyncCRMAdapter, scenario: Scenario) -> None:
    """Run a scenario with awaited ``a``-prefixed calls; adapter errors are thrown back into it."""

    async def call(request: _Call) -> Any:
        method: Callable[..., Awaitable[Any]] = getattr(adapter, f"a{request.method}")
        return await method(*request.args)

    await adrive(scenario, call, catch=(AdapterError,))


class _KitSettings:
    """The class attributes a kit subclass sets (see the module docstring)."""

    create_fields: ClassVar[Mapping[str, FieldValue]] = MappingProxyType({})
    """Values a create needs besides the email, e.g. ``{"LastName": "X", "Company": "Y"}``."""

    text_field: ClassVar[str]
    """A creatable and updatable text field of the person object (``FirstName``)."""

    account_field: ClassVar[str] = "Industry"
    """A text field of the account object that ``seed_account`` can set and lookups read."""

    missing_person_id: ClassVar[str] = "999999999999"
    """An id shaped like the CRM's person ids that names no record."""

    missing_campaign_id: ClassVar[str] = "999999999999"
    """An id shaped like the CRM's campaign ids that names no campaign."""

    account_owner_field: ClassVar[str | None] = None
    """The account object's owner field (``OwnerId``, ``hubspot_owner_id``): describe must mark
    it ``names_user``. ``None`` skips that test."""
    missing_account_id: ClassVar[str] = "999999999999"
    """An id shaped like the CRM's account ids that names no account."""

    def _kit(self, adapter: CRMAdapter | AsyncCRMAdapter, backdoor: Backdoor, prefix: str) -> _Kit:
        return _Kit(
            caps=adapter.capabilities,
            backdoor=backdoor,
            create_fields=self.create_fields,
            text_field=self.text_field,
            account_field=self.account_field,
            missing_person_id=self.missing_person_id,
            missing_campaign_id=self.missing_campaign_id,
            account_owner_field=self.account_owner_field,
            missing_account_id=self.missing_account_id,
            adapter=adapter,
            prefix=prefix,
        )


class AdapterConformance(_KitSettings):
    """The kit for a blocking :class:`~signals_crm.adapters.CRMAdapter`.

    Subclass it in your test suite (named ``Test...``) and provide the fixtures ``adapter`` and
    ``backdoor`` and the class attribute ``text_field`` (plus ``create_fields``,
    ``account_field``, ``missing_person_id`` where the defaults do not fit your CRM). Every
    ``test_*`` method is generated from the scenarios of this module.
    """


class AsyncAdapterConformance(_KitSettings):
    """The kit for an ``async`` :class:`~signals_crm.adapters.AsyncCRMAdapter`.

    The same tests as :class:`AdapterConformance`, marked ``anyio``; the ``adapter`` fixture
    provides an ``AsyncCRMAdapter`` (it may be an async fixture).
    """


def _sync_test(name: str, scenario: Callable[[_Kit], Scenario]) -> Callable[..., None]:
    def test(self: _KitSettings, adapter: CRMAdapter, backdoor: Backdoor) -> None:
        _drive_sync(adapter, scenario(self._kit(adapter, backdoor, "")))

    test.__name__ = test.__qualname__ = name
    test.__doc__ = scenario.__doc__
    return test


def _async_test(name: str, scenario: Callable[[_Kit], Scenario]) -> Callable[..., Awaitable[None]]:
    async def test(self: _KitSettings, adapter: AsyncCRMAdapter, backdoor: Backdoor) -> None:
        await _drive_async(adapter, scenario(self._kit(adapter, backdoor, "a")))

    test.__name__ = test.__qualname__ = name
    test.__doc__ = scenario.__doc__
    marked: Callable[..., Awaitable[None]] = pytest.mark.anyio(test)
    return marked


for _name, _func in _SCENARIOS.items():
    setattr(AdapterConformance, _name, _sync_test(_name, _func))
    setattr(AsyncAdapterConformance, _name, _async_test(_name, _func))


# ------------------------------------------------------------------------------------------------
# The state machine

AdapterT = TypeVar("AdapterT", bound=CRMAdapter)

_POOL = ("ada", "bob", "cyd", "dee")


@st.composite
def _pool_email(draw: st.DrawFn) -> str:
    """An email from a small pool (so records collide), in a random case, maybe padded."""
    local = draw(st.sampled_from(_POOL))
    email = f"{local}.machine@example.com"
    style = draw(st.sampled_from(("plain", "upper", "title", "padded")))
    if style == "upper":
        return email.upper()
    if style == "title":
        return email.title()
    if style == "padded":
        return f"  {email} "
    return email


_TEXT = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=12
)


@attrs.define
class _ModelPerson:
    email: str
    text: str
    markers: list[str] = attrs.field(factory=list)


def adapter_state_machine(
    adapter_factory: Callable[[], AdapterT],
    backdoor_factory: Callable[[AdapterT], Backdoor],
    *,
    text_field: str,
    create_fields: Mapping[str, FieldValue] | None = None,
    missing_person_id: str = "999999999999",
    duplicate_detection: bool = True,
    close: Callable[[AdapterT], None] | None = None,
) -> type[RuleBasedStateMachine]:
    """A hypothesis state machine checking a fresh adapter against a dict model.

    Each example calls ``adapter_factory()`` for a new adapter on an empty CRM and
    ``backdoor_factory(adapter)`` for the backdoor to that CRM; ``close(adapter)`` runs at the
    end (close your HTTP clients there). With ``duplicate_detection`` (the default) the machine
    switches it on through the backdoor and expects a second create of an email to be refused
    when the backdoor says it could; without, it expects a second record (pass ``False`` only
    for a CRM whose emails are not unique). Run it with
    ``TestMyAdapter = adapter_state_machine(...).TestCase``.
    """
    extra_fields: Mapping[str, FieldValue] = dict(create_fields or {})

    class AdapterStateMachine(RuleBasedStateMachine):
        """Random creates, updates, finds, tasks, memberships and reconciliations."""

        people = Bundle("people")

        def __init__(self) -> None:
            super().__init__()
            self.adapter = adapter_factory()
            self.backdoor = backdoor_factory(self.adapter)
            self.caps = self.adapter.capabilities
            self.dedupe = duplicate_detection and self.backdoor.enable_duplicate_detection()
            self.model: dict[str, _ModelPerson] = {}
            self.members: dict[str, str] = {}
            self.tasks: dict[str, str] = {}
            self.campaign: str | None = None
            if self.caps.supports_campaigns:
                self.campaign = self.backdoor.seed_campaign(name="Machine campaign")
            self.markers = itertools.count(1)

        def teardown(self) -> None:
            if close is not None:
                close(self.adapter)

        def ids_with(self, email: str) -> set[str]:
            key = normalize_email(email)
            return {i for i, p in self.model.items() if p.email == key}

        @rule(
            target=people,
            batch=st.lists(
                st.tuples(_pool_email(), _TEXT, st.booleans()),
                min_size=1,
                max_size=3,
                unique_by=lambda item: normalize_email(item[0]),
            ),
        )
        def create(self, batch: list[tuple[str, str, bool]]) -> Any:
            writes: list[PersonWrite] = []
            for email, text, valid in batch:
                address = email if valid else email.replace("@", " at ")
                fields = {**extra_fields, self.caps.email_field: address, text_field: text}
                writes.append(
                    PersonWrite(
                        key=_unique("m-write"),
                        kind=self.caps.person_kind,
                        email=address,
                        fields=fields,
                    )
                )
            results = self.adapter.create_people(writes)
            assert len(results) == len(writes)
            created: list[str] = []
            for (email, text, valid), result in zip(batch, results, strict=True):
                existing = self.ids_with(email)
                if not valid:
                    _assert_validation_failure(result)
                elif existing and self.dedupe:
                    assert isinstance(result.error, DuplicateRecordError), repr(result)
                    assert set(result.duplicate_of) == existing
                else:
                    assert result.ok, repr(result.error)
                    assert result.id is not None
                    assert result.id not in self.model
                    self.model[result.id] = _ModelPerson(normalize_email(email), text)
                    created.append(result.id)
            return multiple(*created)

        @rule(person=people, text=_TEXT)
        def update(self, person: str, text: str) -> None:
            update = PersonUpdate(
                key=_unique("m-update"),
                record_id=person,
                kind=self.caps.person_kind,
                fields={text_field: text},
            )
            (result,) = self.adapter.update_people([update])
            assert result.ok, repr(result.error)
            assert result.id == person
            self.model[person].text = text

        @rule()
        def update_missing(self) -> None:
            update = PersonUpdate(
                key=_unique("m-update"),
                record_id=missing_person_id,
                kind=self.caps.person_kind,
                fields={text_field: "Nobody"},
            )
            (result,) = self.adapter.update_people([update])
            assert isinstance(result.error, NotFoundError), repr(result)

        @rule(emails=st.lists(_pool_email(), min_size=1, max_size=5))
        def find(self, emails: list[str]) -> None:
            found = self.adapter.find_people(emails, (text_field,))
            assert len(found) == len(emails)
            for email, records in zip(emails, found, strict=True):
                mine = [r for r in records if r.kind is self.caps.person_kind]
                assert {r.id for r in mine} == self.ids_with(email)
                for record in mine:
                    assert record.fields.get(text_field) == self.model[record.id].text

        @precondition(lambda self: self.caps.supports_tasks)
        @rule(person=people)
        def add_task(self, person: str) -> None:
            marker = f"machine-marker-{next(self.markers)}"
            task = TaskWrite(
                key=_unique("m-task"),
                person_id=person,
                person_kind=self.caps.person_kind,
                activity_kind=ActivityKind.MEETING_BOOKED,
                subject="Meeting booked",
                body=f"Booked ({marker})",
                marker=marker,
            )
            (result,) = self.adapter.create_tasks([task])
            assert result.ok, repr(result.error)
            assert result.id is not None
            self.model[person].markers.append(marker)
            self.tasks[marker] = result.id

        @precondition(lambda self: self.campaign is not None)
        @rule(person=people)
        def join_campaign(self, person: str) -> None:
            assert self.campaign is not None
            membership = CampaignMembershipWrite(
                key=_unique("m-member"),
                campaign_id=self.campaign,
                person_id=person,
                person_kind=self.caps.person_kind,
            )
            (result,) = self.adapter.add_to_campaign([membership])
            assert result.ok, repr(result.error)
            assert result.created is (person not in self.members)
            assert result.id is not None
            if person in self.members:
                assert result.id == self.members[person]
            self.members[person] = result.id

        @precondition(lambda self: self.caps.supports_reconcile)
        @rule(email=_pool_email())
        def reconcile_person(self, email: str) -> None:
            (answer,) = self.adapter.reconcile(
                [PersonByEmail(email=email, kind=self.caps.person_kind)]
            )
            expected = self.ids_with(email)
            if expected:
                assert answer in expected
            else:
                assert answer is None

        @precondition(lambda self: self.caps.supports_reconcile and self.caps.supports_tasks)
        @rule(data=st.data())
        def reconcile_task(self, data: st.DataObject) -> None:
            used = sorted(self.tasks)
            marker = data.draw(st.sampled_from([*used, "machine-marker-never"]))
            (answer,) = self.adapter.reconcile([TaskByMarker(marker=marker)])
            assert answer == self.tasks.get(marker)

        @precondition(lambda self: self.caps.supports_reconcile and self.campaign is not None)
        @rule(person=people)
        def reconcile_membership(self, person: str) -> None:
            assert self.campaign is not None
            (answer,) = self.adapter.reconcile(
                [MembershipByPerson(campaign_id=self.campaign, person_id=person)]
            )
            assert answer == self.members.get(person)

        @invariant()
        def crm_matches_model(self) -> None:
            for local in _POOL:
                email = f"{local}.machine@example.com"
                stored = set(self.backdoor.people_with_email(email))
                assert stored == self.ids_with(email)
            for record_id, person in self.model.items():
                assert _get(self.backdoor.person_fields(record_id), text_field) == person.text
                if self.caps.supports_tasks:
                    markers = self.backdoor.task_markers(record_id)
                    assert sorted(markers) == sorted(person.markers)
            if self.campaign is not None:
                assert self.backdoor.campaign_members(self.campaign) == set(self.members)

    return AdapterStateMachine
