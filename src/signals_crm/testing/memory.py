"""An in-memory CRM that is a complete, honest adapter: the model every other adapter matches.

:class:`InMemoryCRM` implements both :class:`~signals_crm.adapters.CRMAdapter` and
:class:`~signals_crm.adapters.AsyncCRMAdapter` (the ``a``-prefixed methods run the same
blocking logic) over plain records, and the conformance kit's
:class:`~signals_crm.testing.conformance.Backdoor` (``seed_*``, ``person_fields``, ...), so host
applications can seed it, run their code against it and look at what landed.

Two flavours, chosen by ``person_kind``:

- ``PersonKind.LEAD`` behaves like Salesforce: the person object is ``Lead`` (``Email``,
  ``FirstName`` 40, ``LastName`` 80 and ``Company`` 255 required, a restricted ``LeadSource``
  picklist, ...), Contacts exist beside Leads and are returned by lookups, Leads may be
  converted, accounts are ``Account`` with a ``Website``. Duplicate detection is off unless
  switched on (``duplicate_detection=True`` or :meth:`InMemoryCRM.enable_duplicate_detection`);
  then a Lead create whose email matches a non-converted Lead is refused with
  ``DUPLICATES_DETECTED`` naming the matches. Ids look like Salesforce's (``00Q…``).
- ``PersonKind.CONTACT`` behaves like HubSpot: the person object is ``contacts`` with lower-case
  property names (``email``, ``firstname``, ``lastname``, ``jobtitle``, ``lifecyclestage``,
  ...), emails are stored lower-cased and are unique (a clash is a 409 duplicate), accounts are
  ``companies`` with a ``domain``. Ids are numbers, as HubSpot's.

Rules the records follow:

1. Emails match trimmed and case-insensitively (:func:`~signals_crm.core.model.normalize_email`).
   ``PersonWrite.email`` is the truth; an email in ``fields`` is replaced by it. A blank email
   means none.
2. Writes are validated per record against :meth:`InMemoryCRM.describe`'s schema: unknown field
   (``INVALID_FIELD``), not createable/updateable (``INVALID_FIELD_FOR_INSERT_UPDATE``), wrong
   type (``INVALID_TYPE``), too long (``STRING_TOO_LONG``), not a picklist value of a restricted
   picklist (``INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST``), invalid email
   (``INVALID_EMAIL_ADDRESS``), required field missing (``REQUIRED_FIELD_MISSING``), unknown or
   inactive owner. Each is a non-retryable :class:`~signals_crm.exceptions.CRMAPIError` in that
   record's :class:`~signals_crm.core.crm.WriteResult`; the rest of the batch goes on.
3. An update of an id that does not exist (or is not of the named kind) fails with
   :class:`~signals_crm.exceptions.NotFoundError`; a converted Lead cannot be updated. ``None``
   or ``""`` clears a field. Updates answer ``created=False``.
4. ``last_modified`` comes from the injected ``clock`` (by default a :class:`TickingClock`,
   which needs no real time) and moves only when a write changes something.
5. Adding a member again is a success with ``created=False`` and the existing membership id.
6. ``upserts=True`` makes person and task creates upserts by each write's idempotency key (as
   the Salesforce adapter's ``sync_key_field`` does): the same key again answers the record it
   made with ``created=False``. The capabilities then declare ``upserts_people`` and
   ``upserts_tasks`` by :data:`SYNC_KEY_FIELD`, which the person and task schemas carry
   (external ID, unique).
7. Reconciliation answers: ``PersonByEmail`` → the best non-converted record of that kind (most
   recently modified, ties broken by the smaller id); ``TaskByMarker`` → the oldest task with the
   marker; ``MembershipByPerson`` → the membership id.
8. Requested fields that a record does not have (or the schema does not know) read as ``None``;
   lookups never fail on field names.
9. ``chains=True`` declares ``Capabilities.chains_writes`` (25 writes a call, like Salesforce's
   composite request): ``write_chains`` applies each chain's person write, then its tasks and
   membership on that record; the dependents of a create that failed are not executed and
   answer ``PROCESSING_HALTED`` (retryable). ``fail_next("write_chains", ...)`` fails a whole
   call (with ``after=True``: applied, answer lost).

For engine tests: ``crm.calls`` counts calls per (blocking) method name, async calls included;
``crm.round_trips`` counts the API requests a real CRM would need (inputs split by the declared
batch sizes); :meth:`InMemoryCRM.fail_next` makes the next call of a method raise a given
:class:`~signals_crm.exceptions.AdapterError`, before doing anything or, with ``after=True``,
after the write landed (the answer was lost: the outcome is unknown to the caller).
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

import attrs

from signals_crm.adapters.base import ApiUsage
from signals_crm.core.crm import (
    CampaignInfo,
    CampaignMembershipWrite,
    Capabilities,
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
    FieldSchema,
    FieldType,
    FieldValue,
    ObjectSchema,
    PersonKind,
    PersonRecord,
    is_valid_email,
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
)

if TYPE_CHECKING:
    from signals_crm.testing.conformance import Backdoor

__all__ = ["SYNC_KEY_FIELD", "InMemoryCRM", "MemoryMembership", "MemoryTask", "TickingClock"]

_T = TypeVar("_T")

_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
SYNC_KEY_FIELD = "Signals_Sync_Key__c"
"""The field ``InMemoryCRM(upserts=True)`` upserts people and tasks by (rule 6)."""


class TickingClock:
    """A deterministic clock: each call returns the previous time plus ``step``."""

    def __init__(self, start: datetime = _EPOCH, step: timedelta = timedelta(seconds=1)) -> None:
        self._next = start
        self._step = step

    def __call__(self) -> datetime:
        now = self._next
        self._next = now + self._step
        return now

    def __repr__(self) -> str:
        return f"TickingClock(next={self._next.isoformat()}, step={self._step})"


@attrs.frozen
class MemoryTask:
    """A task stored in an :class:`InMemoryCRM`."""

    id: str
    person_id: str
    person_kind: PersonKind
    activity_kind: ActivityKind | str
    subject: str
    body: str
    marker: str
    activity_date: date | None
    owner_id: str | None
    created_at: datetime


@attrs.frozen
class MemoryMembership:
    """A campaign membership stored in an :class:`InMemoryCRM`."""

    id: str
    campaign_id: str
    person_id: str
    person_kind: PersonKind


# ------------------------------------------------------------------------------------------------
# Schemas


def _field(
    name: str,
    type_: FieldType = FieldType.STRING,
    length: int | None = None,
    *,
    createable: bool = True,
    updateable: bool = True,
    required: bool = False,
    picklist: tuple[str, ...] | None = None,
    restricted: bool = False,
) -> FieldSchema:
    return FieldSchema(
        name=name,
        type=type_,
        length=length,
        createable=createable,
        updateable=updateable,
        required=required,
        picklist_values=picklist,
        restricted_picklist=restricted,
        label=name,
    )


def _readonly(name: str, type_: FieldType) -> FieldSchema:
    return _field(name, type_, createable=False, updateable=False)


_LEAD_SOURCES = ("Web", "Chat", "Phone Inquiry", "Partner Referral", "Purchased List", "Other")
_LEAD_STATUSES = ("Open - Not Contacted", "Working - Contacted", "Closed - Converted")
_INDUSTRIES = ("Agriculture", "Banking", "Education", "Media", "Retail", "Software", "Other")
_LIFECYCLE = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
)


def _salesforce_schemas() -> list[ObjectSchema]:
    """Lead, Contact, Account, Task and Campaign as the local Salesforce describes them (the
    adapter's own describe parser reads them), plus the Task marker field."""
    import httpx

    from signals_crm.adapters.salesforce._responses import parse_describe
    from signals_crm.testing.salesforce._schema import FieldDef, standard_objects

    objects = standard_objects()
    objects["task"].add(FieldDef("Signals_Marker__c", "string", 255, "Signals Marker", custom=True))
    return [
        parse_describe(httpx.Response(200, json=objects[name].describe("")))
        for name in ("lead", "contact", "account", "task", "campaign")
    ]


def _hubspot_schemas() -> list[ObjectSchema]:
    """Contacts, companies and tasks as the local HubSpot's properties API answers them (read
    by the adapter's own parser)."""
    from signals_crm.adapters.hubspot._responses import schema_from_properties
    from signals_crm.testing.hubspot._schema import default_properties

    properties = default_properties()
    return [
        schema_from_properties(name, {"results": list(properties[name].values())})
        for name in ("contacts", "companies", "tasks")
    ]


@attrs.frozen
class _Flavour:
    """What differs between the Salesforce-like and the HubSpot-like CRM."""

    capabilities: Capabilities
    objects: Mapping[PersonKind, str]
    owner_field: str
    account_link_field: str
    account_name_field: str
    account_domain_field: str
    required_defaults: Mapping[str, Mapping[str, FieldValue]]
    lowercase_emails: bool
    unique_emails: bool
    id_prefixes: Mapping[str, str] | None


def _flavour(
    kind: PersonKind, lookup_batch_size: int | None, write_batch_size: int | None
) -> _Flavour:
    if kind is PersonKind.LEAD:
        caps = Capabilities(
            name="in-memory (Salesforce-like)",
            person_kind=PersonKind.LEAD,
            person_object="Lead",
            email_field="Email",
            separate_contacts=True,
            lookup_batch_size=lookup_batch_size or 200,
            write_batch_size=write_batch_size or 200,
            campaign_kind="campaign",
            max_task_body_length=32000,
            account_object="Account",
            required_on_create=("LastName", "Company"),
            checks_campaigns=True,
            lists_campaigns=True,
            reads_accounts=True,
            reports_api_usage=True,
            task_object="Task",
            idempotent_memberships=True,  # one membership per (campaign, person), as Salesforce
        )
        return _Flavour(
            capabilities=caps,
            objects={PersonKind.LEAD: "Lead", PersonKind.CONTACT: "Contact"},
            owner_field="OwnerId",
            account_link_field="AccountId",
            account_name_field="Name",
            account_domain_field="Website",
            required_defaults={
                "Lead": {"LastName": "[not provided]", "Company": "[not provided]"},
                "Contact": {"LastName": "[not provided]"},
            },
            lowercase_emails=False,
            unique_emails=False,
            id_prefixes={
                "Lead": "00Q",
                "Contact": "003",
                "Account": "001",
                "User": "005",
                "Campaign": "701",
                "Task": "00T",
                "CampaignMember": "00v",
            },
        )
    caps = Capabilities(
        name="in-memory (HubSpot-like)",
        person_kind=PersonKind.CONTACT,
        person_object="contacts",
        email_field="email",
        separate_contacts=False,
        lookup_batch_size=lookup_batch_size or 100,
        write_batch_size=write_batch_size or 100,
        campaign_kind="list",
        max_task_body_length=65536,
        account_object="companies",
        required_on_create=(),
        checks_campaigns=True,
        lists_campaigns=True,
        owner_field="hubspot_owner_id",
        reads_accounts=True,
        reports_api_usage=True,
        task_object="tasks",
        idempotent_memberships=True,  # one membership per (list, contact), as HubSpot
    )
    return _Flavour(
        capabilities=caps,
        objects={PersonKind.CONTACT: "contacts"},
        owner_field="hubspot_owner_id",
        account_link_field="associatedcompanyid",
        account_name_field="name",
        account_domain_field="domain",
        required_defaults={},
        lowercase_emails=True,
        unique_emails=True,
        id_prefixes=None,
    )


# ------------------------------------------------------------------------------------------------
# Records


@attrs.define
class _Person:
    id: str
    kind: PersonKind
    email: str | None
    fields: dict[str, FieldValue]
    last_modified: datetime
    is_converted: bool = False
    converted_contact_id: str | None = None


@attrs.define
class _Account:
    id: str
    domain: str
    fields: dict[str, FieldValue]
    last_modified: datetime


@attrs.frozen
class _Fault:
    error: AdapterError
    after: bool


_METHODS = frozenset(
    {
        "find_people",
        "find_accounts",
        "read_accounts",
        "list_users",
        "describe",
        "create_people",
        "update_people",
        "create_tasks",
        "add_to_campaign",
        "reconcile",
        "list_campaigns",
        "write_chains",
    }
)


def _blank(value: FieldValue) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _domain_key(value: str | None) -> str:
    """A domain or website reduced to its host (the core's :func:`normalize_domain`)."""
    return normalize_domain(value) if value else ""


def _record_error(
    message: str, code: str, fields: Sequence[str] = (), status_code: int | None = None
) -> CRMAPIError:
    return CRMAPIError(message, status_code=status_code, error_code=code, fields=fields)


def _type_error(schema: FieldSchema, value: FieldValue) -> str | None:
    """Why ``value`` cannot go into a field of this type, or ``None`` when it can."""
    kind = schema.type
    if kind is FieldType.BOOLEAN:
        ok = isinstance(value, bool)
    elif kind is FieldType.INTEGER:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is FieldType.NUMBER:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif kind is FieldType.DATE:
        ok = (isinstance(value, date) and not isinstance(value, datetime)) or (
            isinstance(value, str) and _parses(date.fromisoformat, value)
        )
    elif kind is FieldType.DATETIME:
        ok = isinstance(value, datetime) or (
            isinstance(value, str) and _parses(datetime.fromisoformat, value)
        )
    else:
        ok = not isinstance(value, date)
    if ok:
        return None
    return f"{schema.name}: value of type {type(value).__name__} is not a valid {kind.value}"


def _parses(parser: Callable[[str], object], value: str) -> bool:
    try:
        parser(value)
    except ValueError:
        return False
    return True


class InMemoryCRM:
    """A CRM held in memory: a blocking and an ``async`` adapter, and its own backdoor.

    ``InMemoryCRM(person_kind=PersonKind.LEAD)`` is Salesforce-like, ``PersonKind.CONTACT``
    HubSpot-like (see the module docstring). ``clock`` stamps ``last_modified`` (default: a
    :class:`TickingClock` from 2024-01-01 UTC, one second per write). ``schemas`` replace or
    add object schemas by name.
    """

    api_usage: ApiUsage | None = None
    """The API usage this CRM reports (``None``: none yet); set it to exercise ``api_budget``."""

    def __init__(
        self,
        *,
        person_kind: PersonKind = PersonKind.LEAD,
        clock: Callable[[], datetime] | None = None,
        duplicate_detection: bool = False,
        lookup_batch_size: int | None = None,
        write_batch_size: int | None = None,
        schemas: Iterable[ObjectSchema] = (),
        upserts: bool = False,
        chains: bool = False,
    ) -> None:
        problems = [
            Problem(name, "must be at least 1")
            for name, size in (
                ("lookup_batch_size", lookup_batch_size),
                ("write_batch_size", write_batch_size),
            )
            if size is not None and size < 1
        ]
        if problems:
            raise ConfigurationError(problems)
        self._flavour = _flavour(person_kind, lookup_batch_size, write_batch_size)
        self._clock: Callable[[], datetime] = clock if clock is not None else TickingClock()
        self._dedupe = duplicate_detection or self._flavour.unique_emails
        base = _salesforce_schemas() if person_kind is PersonKind.LEAD else _hubspot_schemas()
        self._schemas: dict[str, ObjectSchema] = {s.name.lower(): s for s in base}
        for schema in schemas:
            self._schemas[schema.name.lower()] = schema
        self._upserts = upserts
        self._chains = chains
        if upserts:
            self._add_sync_key_field()
        self._person_by_key: dict[str, str] = {}
        self._task_by_key: dict[str, str] = {}
        self._people: dict[str, _Person] = {}
        self._by_email: dict[str, dict[str, None]] = {}
        """Person ids by normalised email, in insertion order (lookups never scan)."""
        self._accounts: dict[str, _Account] = {}
        self._users: dict[str, CRMUser] = {}
        self._campaigns: dict[str, str] = {}
        self._inactive_campaigns: set[str] = set()
        self._tasks: dict[str, MemoryTask] = {}
        self._memberships: dict[tuple[str, str], MemoryMembership] = {}
        self._task_by_marker: dict[str, str] = {}
        self._counter = itertools.count(1)
        self._faults: dict[str, deque[_Fault]] = {}
        self.calls: Counter[str] = Counter()
        """Calls per blocking method name (``"find_people"``); async calls count here too."""
        self.round_trips: Counter[str] = Counter()
        """API requests a real CRM would need per method, inputs split by the batch sizes."""

    def __repr__(self) -> str:
        return (
            f"InMemoryCRM(person_kind={self._flavour.capabilities.person_kind.name}, "
            f"people={len(self._people)}, accounts={len(self._accounts)}, "
            f"tasks={len(self._tasks)}, memberships={len(self._memberships)})"
        )

    # -- plumbing -------------------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        """What this CRM can do and how its person record is shaped."""
        caps = self._flavour.capabilities
        if self._chains:
            caps = attrs.evolve(caps, chains_writes=True, max_chain_writes=25)
        if not self._upserts:
            return caps
        return attrs.evolve(
            caps, sync_key_field=SYNC_KEY_FIELD, upserts_people=True, upserts_tasks=True
        )

    def _add_sync_key_field(self) -> None:
        """``upserts=True``: the person and task objects have the unique external-ID field."""
        caps = self._flavour.capabilities
        key = FieldSchema(
            name=SYNC_KEY_FIELD, length=255, label=SYNC_KEY_FIELD, external_id=True, unique=True
        )
        for name in (caps.person_object, caps.task_object or ""):
            schema = self._schemas.get(name.lower())
            if schema is not None:
                fields = {**schema.fields, SYNC_KEY_FIELD.lower(): key}
                self._schemas[name.lower()] = ObjectSchema(name=schema.name, fields=fields)

    def fail_next(self, method: str, error: AdapterError, *, after: bool = False) -> None:
        """Make the next call of ``method`` raise ``error`` once (queued when called again).

        ``method`` is a Protocol method name, blocking or ``a``-prefixed. With ``after=True``
        the call does its work first, then raises: a write that landed but whose answer was
        lost.
        """
        name = self._method_name(method)
        if not isinstance(error, AdapterError):
            raise ConfigurationError([Problem("error", "must be an AdapterError instance")])
        self._faults.setdefault(name, deque()).append(_Fault(error, after))

    @staticmethod
    def _method_name(method: str) -> str:
        if method in _METHODS:
            return method
        if method.startswith("a") and method[1:] in _METHODS:
            return method[1:]
        known = ", ".join(sorted(_METHODS))
        raise ConfigurationError([Problem("method", f"unknown method {method!r}; one of {known}")])

    def _run(self, method: str, inputs: int | None, batch: int, work: Callable[[], _T]) -> _T:
        self.calls[method] += 1
        self.round_trips[method] += 1 if inputs is None else math.ceil(inputs / batch)
        queue = self._faults.get(method)
        fault = queue.popleft() if queue else None
        if fault is not None and not fault.after:
            raise fault.error
        result = work()
        if fault is not None:
            raise fault.error
        return result

    def _new_id(self, object_name: str) -> str:
        number = next(self._counter)
        prefixes = self._flavour.id_prefixes
        if prefixes is None:
            return str(1000 + number)
        prefix = prefixes.get(object_name, "a0X")
        return f"{prefix}{number:0{18 - len(prefix)}d}"

    def _schema(self, object_name: str) -> ObjectSchema | None:
        return self._schemas.get(object_name.lower())

    def _object(self, kind: PersonKind) -> str | None:
        return self._flavour.objects.get(kind)

    def _canonical(
        self, object_name: str, values: Mapping[str, FieldValue]
    ) -> dict[str, FieldValue]:
        """``values`` with field names spelled as the schema spells them (unknown ones kept)."""
        schema = self._schema(object_name)
        out: dict[str, FieldValue] = {}
        for name, value in values.items():
            field = schema.get(name) if schema is not None else None
            out[field.name if field is not None else name] = value
        return out

    def _store_email(self, email: str | None) -> str | None:
        if email is None or not email.strip():
            return None
        email = email.strip()
        return email.lower() if self._flavour.lowercase_emails else email

    def _email_field(self, object_name: str) -> str:
        schema = self._schema(object_name)
        field = schema.get(self.capabilities.email_field) if schema is not None else None
        return field.name if field is not None else self.capabilities.email_field

    @staticmethod
    def _read(values: Mapping[str, FieldValue], name: str) -> FieldValue:
        if name in values:
            return values[name]
        lowered = name.lower()
        for key, value in values.items():
            if key.lower() == lowered:
                return value
        return None

    # -- validation -----------------------------------------------------------------------------

    def _validate(
        self,
        object_name: str,
        values: Mapping[str, FieldValue],
        *,
        creating: bool,
    ) -> CRMAPIError | None:
        """The first problem with writing ``values`` to ``object_name``, or ``None``."""
        schema = self._schema(object_name)
        if schema is None:
            return _record_error(f"no object {object_name}", "NOT_FOUND")
        for name, value in values.items():
            field = schema.get(name)
            if field is None:
                return _record_error(
                    f"No such column '{name}' on entity '{object_name}'", "INVALID_FIELD", [name]
                )
            allowed = field.createable if creating else field.updateable
            if not allowed:
                action = "create" if creating else "update"
                return _record_error(
                    f"Unable to {action} field {field.name}",
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    [field.name],
                )
            if _blank(value):
                continue
            problem = _type_error(field, value)
            if problem is not None:
                return _record_error(problem, "INVALID_TYPE", [field.name])
            error = self._validate_value(field, value)
            if error is not None:
                return error
        if creating:
            checked = [f for f in schema.fields.values() if f.required and f.createable]
        else:
            checked = [f for f in map(schema.get, values) if f is not None and f.required]
        missing = [f.name for f in checked if _blank(self._read(values, f.name))]
        if missing:
            return _record_error(
                f"Required fields are missing: [{', '.join(missing)}]",
                "REQUIRED_FIELD_MISSING",
                missing,
            )
        return None

    def _validate_value(self, field: FieldSchema, value: FieldValue) -> CRMAPIError | None:
        text = str(value)
        if field.type.is_text and field.length is not None and len(text) > field.length:
            return _record_error(
                f"{field.name}: data value too large: {len(text)} > {field.length}",
                "STRING_TOO_LONG",
                [field.name],
            )
        if (
            field.type is FieldType.PICKLIST
            and field.restricted_picklist
            and field.picklist_values is not None
            and text not in field.picklist_values
        ):
            return _record_error(
                f"{field.name}: bad value for restricted picklist field: {text}",
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                [field.name],
            )
        if field.type is FieldType.EMAIL and not is_valid_email(text):
            return _record_error(
                f"{field.name}: invalid email address: {text}",
                "INVALID_EMAIL_ADDRESS",
                [field.name],
            )
        if field.name == self._flavour.owner_field:
            return self._owner_error(text)
        return None

    def _owner_error(self, owner_id: str) -> CRMAPIError | None:
        user = self._users.get(owner_id)
        if user is None:
            return _record_error(
                f"invalid cross reference id: {owner_id}",
                "INVALID_CROSS_REFERENCE_KEY",
                [self._flavour.owner_field],
            )
        if not user.active:
            return PermissionDeniedError(
                f"operation performed with inactive user [{owner_id}] as owner",
                error_code="INACTIVE_OWNER_OR_USER",
                fields=[self._flavour.owner_field],
            )
        return None

    def _store_person(self, person: _Person) -> None:
        self._people[person.id] = person
        self._index(person)

    def _index(self, person: _Person) -> None:
        if person.email is not None:
            self._by_email.setdefault(normalize_email(person.email), {})[person.id] = None

    def _unindex(self, person: _Person) -> None:
        if person.email is not None:
            self._by_email.get(normalize_email(person.email), {}).pop(person.id, None)

    def _with_email(self, email: str) -> list[_Person]:
        return [self._people[i] for i in self._by_email.get(normalize_email(email), {})]

    def _duplicates(self, kind: PersonKind, email: str | None, *, exclude: str = "") -> list[str]:
        if email is None or not self._dedupe:
            return []
        return [
            p.id
            for p in self._with_email(email)
            if p.kind is kind and not p.is_converted and p.id != exclude
        ]

    def _duplicate_error(self, matched: list[str]) -> DuplicateRecordError:
        if self._flavour.unique_emails:
            return DuplicateRecordError(
                f"Contact already exists. Existing ID: {matched[0]}",
                matched_ids=matched,
                status_code=409,
                error_code="CONFLICT",
            )
        return DuplicateRecordError(
            "You're creating a duplicate record. We recommend you use an existing record instead.",
            matched_ids=matched,
            error_code="DUPLICATES_DETECTED",
        )

    # -- the adapter: reads ---------------------------------------------------------------------

    def _record(self, person: _Person, fields: Sequence[str]) -> PersonRecord:
        return PersonRecord(
            id=person.id,
            kind=person.kind,
            email=person.email,
            fields={name: self._read(person.fields, name) for name in fields},
            is_converted=person.is_converted,
            converted_contact_id=person.converted_contact_id,
            last_modified=person.last_modified,
            owner_id=_str_or_none(person.fields.get(self._flavour.owner_field)),
            account_id=(
                _str_or_none(self._read(person.fields, self._flavour.account_link_field))
                if person.kind is PersonKind.CONTACT
                else None
            ),
        )

    def _find_people(
        self, emails: Sequence[str], fields: Sequence[str]
    ) -> list[tuple[PersonRecord, ...]]:
        return [tuple(self._record(p, fields) for p in self._with_email(email)) for email in emails]

    def find_people(
        self, emails: Sequence[str], fields: Sequence[str] = ()
    ) -> list[tuple[PersonRecord, ...]]:
        """Person records (leads and contacts) per email, with ``fields`` read."""
        batch = self.capabilities.lookup_batch_size
        return self._run(
            "find_people", len(emails), batch, lambda: self._find_people(emails, fields)
        )

    def _find_accounts(
        self, domains: Sequence[str], fields: Sequence[str]
    ) -> list[tuple[AccountRecord, ...]]:
        out: list[tuple[AccountRecord, ...]] = []
        for domain in domains:
            key = _domain_key(domain)
            found = [
                self._account_record(a, fields)
                for a in self._accounts.values()
                if key
                and key
                in (
                    _domain_key(a.domain),
                    _domain_key(_str_or_none(a.fields.get(self._flavour.account_domain_field))),
                )
            ]
            out.append(tuple(found))
        return out

    def _account_record(self, account: _Account, fields: Sequence[str]) -> AccountRecord:
        return AccountRecord(
            id=account.id,
            domain=account.domain,
            name=_str_or_none(self._read(account.fields, self._flavour.account_name_field)),
            fields={name: self._read(account.fields, name) for name in fields},
            last_modified=account.last_modified,
        )

    def read_accounts(
        self, ids: Sequence[str], fields: Sequence[str] = ()
    ) -> list[AccountRecord | None]:
        """Accounts by id, with ``fields`` read; ``None`` for an unknown id."""
        batch = self.capabilities.lookup_batch_size

        def read() -> list[AccountRecord | None]:
            found = [self._accounts.get(i) for i in ids]
            return [self._account_record(a, fields) if a else None for a in found]

        return self._run("read_accounts", len(ids), batch, read)

    def find_accounts(
        self, domains: Sequence[str], fields: Sequence[str] = ()
    ) -> list[tuple[AccountRecord, ...]]:
        """Accounts per domain (by domain or website, ignoring scheme and ``www.``)."""
        batch = self.capabilities.lookup_batch_size
        return self._run(
            "find_accounts", len(domains), batch, lambda: self._find_accounts(domains, fields)
        )

    def campaign_exists(self, campaign_id: str) -> bool:
        """Whether the campaign exists (the optional preflight check)."""
        return campaign_id in self._campaigns

    def list_campaigns(self) -> list[CampaignInfo]:
        """The campaigns a sync may join, in the order they were made: the active ones (as
        Salesforce lists active Campaigns; every HubSpot static list is usable)."""
        return self._run(
            "list_campaigns",
            None,
            1,
            lambda: [
                CampaignInfo(campaign_id, name, active=True)
                for campaign_id, name in self._campaigns.items()
                if campaign_id not in self._inactive_campaigns
            ],
        )

    def list_users(self) -> list[CRMUser]:
        """Every user, inactive ones flagged, in id order."""
        return self._run("list_users", None, 1, lambda: list(self._users.values()))

    def _describe(self, object_name: str) -> ObjectSchema:
        schema = self._schema(object_name)
        if schema is None:
            raise NotFoundError(
                f"The requested resource does not exist: {object_name}",
                status_code=404,
                error_code="NOT_FOUND",
            )
        return schema

    def describe(self, object_name: str) -> ObjectSchema:
        """The fields of ``object_name`` (names match case-insensitively)."""
        return self._run("describe", None, 1, lambda: self._describe(object_name))

    # -- the adapter: writes --------------------------------------------------------------------

    def _create_person(self, write: PersonWrite) -> WriteResult:
        known = self._person_by_key.get(write.key) if self._upserts else None
        if known is not None and known in self._people:
            return WriteResult.success(known, created=False)  # an upsert by its key
        object_name = self._object(write.kind)
        if object_name is None:
            return WriteResult.failure(
                _record_error(f"this CRM has no {write.kind.value} object", "INVALID_TYPE")
            )
        email_field = self._email_field(object_name)
        values = {
            k: v
            for k, v in self._canonical(object_name, write.fields).items()
            if k.lower() != email_field.lower()
        }
        email = self._store_email(write.email)
        if email is not None:
            values[email_field] = email
        if write.owner_id is not None:
            values[self._flavour.owner_field] = write.owner_id
        error = self._validate(object_name, values, creating=True)
        if error is not None:
            return WriteResult.failure(error)
        matched = self._duplicates(write.kind, email)
        if matched:
            return WriteResult.failure(self._duplicate_error(matched))
        record_id = self._new_id(object_name)
        stored = {k: v for k, v in values.items() if not _blank(v)}
        self._store_person(
            _Person(
                id=record_id,
                kind=write.kind,
                email=email,
                fields=stored,
                last_modified=self._clock(),
            )
        )
        if self._upserts:
            self._person_by_key[write.key] = record_id
        return WriteResult.success(record_id)

    def create_people(self, records: Sequence[PersonWrite]) -> list[WriteResult]:
        """Create person records; one result per record, failures per record."""
        batch = self.capabilities.write_batch_size
        return self._run(
            "create_people",
            len(records),
            batch,
            lambda: [self._create_person(r) for r in records],
        )

    def _update_person(self, update: PersonUpdate) -> WriteResult:
        person = self._people.get(update.record_id)
        object_name = self._object(update.kind)
        if person is None or person.kind is not update.kind or object_name is None:
            return WriteResult.failure(
                NotFoundError(
                    f"no {update.kind.value} with id {update.record_id}",
                    error_code="ENTITY_IS_DELETED",
                )
            )
        if person.is_converted:
            return WriteResult.failure(
                _record_error("cannot reference converted lead", "CANNOT_UPDATE_CONVERTED_LEAD")
            )
        values = self._canonical(object_name, update.fields)
        email_field = self._email_field(object_name)
        if email_field in values:
            values[email_field] = self._store_email(_str_or_none(values[email_field]))
        error = self._validate(object_name, values, creating=False)
        if error is not None:
            return WriteResult.failure(error)
        if email_field in values:
            new_email = _str_or_none(values[email_field])
            matched = self._duplicates(person.kind, new_email, exclude=person.id)
            if matched and self._flavour.unique_emails:
                return WriteResult.failure(self._duplicate_error(matched))
        changed = False
        for name, value in values.items():
            if _blank(value):
                changed |= person.fields.pop(name, None) is not None
            elif person.fields.get(name) != value:
                person.fields[name] = value
                changed = True
        if changed:
            self._unindex(person)
            person.email = _str_or_none(person.fields.get(email_field))
            self._index(person)
            person.last_modified = self._clock()
        return WriteResult.success(person.id, created=False)

    def update_people(self, records: Sequence[PersonUpdate]) -> list[WriteResult]:
        """Update person records; one result per record (``created=False``)."""
        batch = self.capabilities.write_batch_size
        return self._run(
            "update_people",
            len(records),
            batch,
            lambda: [self._update_person(r) for r in records],
        )

    def _missing_person(self, person_id: str, kind: PersonKind) -> NotFoundError | None:
        person = self._people.get(person_id)
        if person is None or person.kind is not kind:
            return NotFoundError(
                f"invalid cross reference id: no {kind.value} {person_id}",
                error_code="INVALID_CROSS_REFERENCE_KEY",
            )
        return None

    def _create_task(self, task: TaskWrite) -> WriteResult:
        known = self._task_by_key.get(task.key) if self._upserts else None
        if known is not None and known in self._tasks:
            return WriteResult.success(known, created=False)  # an upsert by its key
        missing = self._missing_person(task.person_id, task.person_kind)
        if missing is not None:
            return WriteResult.failure(missing)
        limit = self.capabilities.max_task_body_length
        if limit is not None and len(task.body) > limit:
            return WriteResult.failure(
                _record_error(f"task body too large: {len(task.body)} > {limit}", "STRING_TOO_LONG")
            )
        if len(task.subject) > 255:
            return WriteResult.failure(_record_error("task subject too large", "STRING_TOO_LONG"))
        if task.owner_id is not None:
            owner_error = self._owner_error(task.owner_id)
            if owner_error is not None:
                return WriteResult.failure(owner_error)
        task_id = self._new_id("Task")
        self._tasks[task_id] = MemoryTask(
            id=task_id,
            person_id=task.person_id,
            person_kind=task.person_kind,
            activity_kind=task.activity_kind,
            subject=task.subject,
            body=task.body,
            marker=task.marker,
            activity_date=task.activity_date,
            owner_id=task.owner_id,
            created_at=self._clock(),
        )
        self._task_by_marker.setdefault(task.marker, task_id)
        if self._upserts:
            self._task_by_key[task.key] = task_id
        return WriteResult.success(task_id)

    def create_tasks(self, tasks: Sequence[TaskWrite]) -> list[WriteResult]:
        """Create tasks on person records; one result per task."""
        batch = self.capabilities.write_batch_size
        return self._run(
            "create_tasks", len(tasks), batch, lambda: [self._create_task(t) for t in tasks]
        )

    def _add_member(self, membership: CampaignMembershipWrite) -> WriteResult:
        if membership.campaign_id not in self._campaigns:
            return WriteResult.failure(
                NotFoundError(
                    f"no {self.capabilities.campaign_kind} {membership.campaign_id}",
                    error_code="INVALID_CROSS_REFERENCE_KEY",
                )
            )
        missing = self._missing_person(membership.person_id, membership.person_kind)
        if missing is not None:
            return WriteResult.failure(missing)
        key = (membership.campaign_id, membership.person_id)
        existing = self._memberships.get(key)
        if existing is not None:
            return WriteResult.success(existing.id, created=False)
        member_id = self._new_id("CampaignMember")
        self._memberships[key] = MemoryMembership(
            id=member_id,
            campaign_id=membership.campaign_id,
            person_id=membership.person_id,
            person_kind=membership.person_kind,
        )
        return WriteResult.success(member_id)

    def add_to_campaign(self, memberships: Sequence[CampaignMembershipWrite]) -> list[WriteResult]:
        """Add people to campaigns; already-a-member is a success with ``created=False``."""
        batch = self.capabilities.write_batch_size
        return self._run(
            "add_to_campaign",
            len(memberships),
            batch,
            lambda: [self._add_member(m) for m in memberships],
        )

    def _reconcile_one(self, query: ReconcileQuery) -> str | None:
        if isinstance(query, PersonByEmail):
            candidates = [
                p
                for p in self._with_email(query.email)
                if p.kind is query.kind and not p.is_converted
            ]
            if not candidates:
                return None
            newest = max(p.last_modified for p in candidates)
            return min(p.id for p in candidates if p.last_modified == newest)
        if isinstance(query, TaskByMarker):
            return self._task_by_marker.get(query.marker)
        membership = self._memberships.get((query.campaign_id, query.person_id))
        return membership.id if membership is not None else None

    def reconcile(self, queries: Sequence[ReconcileQuery]) -> list[str | None]:
        """For each query, the id of the record it asks about, or ``None`` if absent."""
        batch = self.capabilities.lookup_batch_size
        return self._run(
            "reconcile", len(queries), batch, lambda: [self._reconcile_one(q) for q in queries]
        )

    def _chain(self, chain: WriteChain) -> WriteChainResult:
        person: WriteResult | None = None
        person_id: str | None = None
        write = chain.person
        if isinstance(write, PersonWrite):
            person = self._create_person(write)
            person_id = person.id if person.ok else None
            if person_id is None:
                halted = WriteResult.failure(
                    CRMAPIError(
                        "not executed: the record it refers to was not created",
                        error_code="PROCESSING_HALTED",
                        retryable=True,
                    )
                )
                return WriteChainResult(
                    person,
                    tuple(halted for _ in chain.tasks),
                    halted if chain.membership is not None else None,
                )
        elif isinstance(write, PersonUpdate):
            person = self._update_person(write)
        tasks = tuple(
            self._create_task(t if person_id is None else attrs.evolve(t, person_id=person_id))
            for t in chain.tasks
        )
        membership: WriteResult | None = None
        if chain.membership is not None:
            member = chain.membership
            if person_id is not None:
                member = attrs.evolve(member, person_id=person_id)
            membership = self._add_member(member)
        return WriteChainResult(person, tasks, membership)

    def write_chains(self, chains: Sequence[WriteChain]) -> list[WriteChainResult]:
        """Each chain's person write, then its tasks and membership on that record (rule 9)."""
        limit = self.capabilities.max_chain_writes
        if not self._chains:
            raise ConfigurationError([Problem("chains", "this CRM was built without chains")])
        for chain in chains:
            if chain.size > limit:
                raise ConfigurationError(
                    [Problem("chains", f"a chain holds at most {limit} writes, not {chain.size}")]
                )
        writes = sum(c.size for c in chains)
        return self._run("write_chains", writes, limit, lambda: [self._chain(c) for c in chains])

    # -- the async adapter ----------------------------------------------------------------------

    async def acampaign_exists(self, campaign_id: str) -> bool:
        """:meth:`campaign_exists`, awaitable."""
        return self.campaign_exists(campaign_id)

    async def alist_campaigns(self) -> list[CampaignInfo]:
        """:meth:`list_campaigns`, awaitable."""
        return self.list_campaigns()

    async def afind_people(
        self, emails: Sequence[str], fields: Sequence[str] = ()
    ) -> list[tuple[PersonRecord, ...]]:
        """:meth:`find_people`, awaitable."""
        return self.find_people(emails, fields)

    async def afind_accounts(
        self, domains: Sequence[str], fields: Sequence[str] = ()
    ) -> list[tuple[AccountRecord, ...]]:
        """:meth:`find_accounts`, awaitable."""
        return self.find_accounts(domains, fields)

    async def aread_accounts(
        self, ids: Sequence[str], fields: Sequence[str] = ()
    ) -> list[AccountRecord | None]:
        """:meth:`read_accounts`, awaitable."""
        return self.read_accounts(ids, fields)

    async def alist_users(self) -> list[CRMUser]:
        """:meth:`list_users`, awaitable."""
        return self.list_users()

    async def adescribe(self, object_name: str) -> ObjectSchema:
        """:meth:`describe`, awaitable."""
        return self.describe(object_name)

    async def acreate_people(self, records: Sequence[PersonWrite]) -> list[WriteResult]:
        """:meth:`create_people`, awaitable."""
        return self.create_people(records)

    async def aupdate_people(self, records: Sequence[PersonUpdate]) -> list[WriteResult]:
        """:meth:`update_people`, awaitable."""
        return self.update_people(records)

    async def acreate_tasks(self, tasks: Sequence[TaskWrite]) -> list[WriteResult]:
        """:meth:`create_tasks`, awaitable."""
        return self.create_tasks(tasks)

    async def aadd_to_campaign(
        self, memberships: Sequence[CampaignMembershipWrite]
    ) -> list[WriteResult]:
        """:meth:`add_to_campaign`, awaitable."""
        return self.add_to_campaign(memberships)

    async def areconcile(self, queries: Sequence[ReconcileQuery]) -> list[str | None]:
        """:meth:`reconcile`, awaitable."""
        return self.reconcile(queries)

    async def awrite_chains(self, chains: Sequence[WriteChain]) -> list[WriteChainResult]:
        """:meth:`write_chains`, awaitable."""
        return self.write_chains(chains)

    # -- the backdoor (direct reads and writes, no validation, not counted) ----------------------

    def backdoor(self) -> Backdoor:
        """This CRM as the conformance kit's backdoor (it implements the methods itself)."""
        return self

    def enable_duplicate_detection(self) -> bool:
        """Switch duplicate detection on (always on in the HubSpot-like flavour)."""
        self._dedupe = True
        return True

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
        """Store a person record as given (required fields filled in); returns its id."""
        object_name = self._object(kind)
        if object_name is None:
            raise ConfigurationError(
                [Problem("kind", f"this CRM has no {kind.value} object to seed")]
            )
        if is_converted and kind is not PersonKind.LEAD:
            raise ConfigurationError([Problem("is_converted", "only Leads can be converted")])
        values = dict(self._flavour.required_defaults.get(object_name, {}))
        values.update(self._canonical(object_name, fields or {}))
        stored_email = self._store_email(email)
        email_field = self._email_field(object_name)
        values = {k: v for k, v in values.items() if k.lower() != email_field.lower()}
        if stored_email is not None:
            values[email_field] = stored_email
        record_id = self._new_id(object_name)
        self._store_person(
            _Person(
                id=record_id,
                kind=kind,
                email=stored_email,
                fields={k: v for k, v in values.items() if not _blank(v)},
                last_modified=last_modified if last_modified is not None else self._clock(),
                is_converted=is_converted,
                converted_contact_id=converted_contact_id,
            )
        )
        return record_id

    def seed_account(
        self, *, domain: str, name: str, fields: Mapping[str, FieldValue] | None = None
    ) -> str:
        """Store an account for ``domain`` (its website, in the Salesforce flavour)."""
        object_name = self.capabilities.account_object
        values = self._canonical(object_name, fields or {})
        values[self._flavour.account_name_field] = name
        domain_field = self._flavour.account_domain_field
        if _blank(self._read(values, domain_field)):
            website = f"https://www.{_domain_key(domain)}" if domain_field == "Website" else None
            values[domain_field] = website or _domain_key(domain)
        account_id = self._new_id(object_name)
        self._accounts[account_id] = _Account(
            id=account_id, domain=_domain_key(domain), fields=values, last_modified=self._clock()
        )
        return account_id

    def seed_user(self, *, email: str, active: bool = True, name: str | None = None) -> str:
        """Store a CRM user; returns its id."""
        user_id = self._new_id("User")
        self._users[user_id] = CRMUser(id=user_id, email=email.strip(), active=active, name=name)
        return user_id

    def seed_campaign(self, *, name: str, active: bool = True) -> str:
        """Store a campaign (a list, in the HubSpot flavour); returns its id. An inactive one
        exists but is not listed by :meth:`list_campaigns`."""
        campaign_id = self._new_id("Campaign")
        self._campaigns[campaign_id] = name
        if not active:
            self._inactive_campaigns.add(campaign_id)
        return campaign_id

    def person_fields(self, record_id: str) -> Mapping[str, FieldValue] | None:
        """A copy of a person record's stored fields (email included), or ``None``."""
        person = self._people.get(record_id)
        return dict(person.fields) if person is not None else None

    def people_with_email(self, email: str) -> list[str]:
        """Ids of person records of any kind with this email, in id order."""
        return list(self._by_email.get(normalize_email(email), {}))

    def task_markers(self, person_id: str) -> list[str]:
        """The markers of the tasks on that person record, oldest first."""
        return [t.marker for t in self._tasks.values() if t.person_id == person_id]

    def campaign_members(self, campaign_id: str) -> set[str]:
        """The person ids that are members of the campaign."""
        return {m.person_id for m in self._memberships.values() if m.campaign_id == campaign_id}

    # -- inspection for tests -------------------------------------------------------------------

    def people(self) -> tuple[PersonRecord, ...]:
        """Every person record with all its fields, oldest first."""
        return tuple(self._record(p, tuple(p.fields)) for p in self._people.values())

    def tasks(self) -> tuple[MemoryTask, ...]:
        """Every task, oldest first."""
        return tuple(self._tasks.values())

    def memberships(self) -> tuple[MemoryMembership, ...]:
        """Every campaign membership, oldest first."""
        return tuple(self._memberships.values())

    def add_field(self, object_name: str, field: FieldSchema) -> None:
        """Add (or replace) a field of an object's schema, e.g. a custom ``Score__c``."""
        schema = self._schema(object_name)
        if schema is None:
            raise ConfigurationError([Problem("object_name", f"no object {object_name}")])
        fields = dict(schema.fields)
        fields[field.name.lower()] = field
        self._schemas[schema.name.lower()] = ObjectSchema(name=schema.name, fields=fields)


def _str_or_none(value: FieldValue) -> str | None:
    return None if value is None else str(value)
