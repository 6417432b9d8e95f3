"""The local org's store: records by object, ids, indexes, the recycle bin, snapshots, and
the values every layer shares (record errors, request errors, duplicate rules, datetimes).

:class:`Store` keeps the records and the indexes that make lookups by Id, Email and reference
fields cost the same at 1,000 and 100,000 records; it also computes the fields Salesforce
derives on every write (compound Name and addresses, audit fields, ``HasResponded``).
:class:`~._query.Queries` reads it; :class:`~._records.OrgData` validates and writes.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import attrs

from signals_crm.testing.salesforce._ids import IdFactory, is_well_formed, to_18
from signals_crm.testing.salesforce._schema import (
    ADDRESSES,
    NAMED,
    FieldDef,
    ObjectDef,
    standard_objects,
)

__all__ = [
    "ApiError",
    "DuplicateRule",
    "RecordError",
    "Store",
    "format_datetime",
    "json_value",
    "parse_datetime",
]

_ADDRESS_PARTS = (
    ("street", "Street"),
    ("city", "City"),
    ("state", "State"),
    ("postalCode", "PostalCode"),
    ("country", "Country"),
    ("latitude", "Latitude"),
    ("longitude", "Longitude"),
)
_TEXT_TYPES = frozenset({"string", "textarea", "email", "phone", "url", "combobox", "picklist"})
_ID_TYPES = frozenset({"id", "reference"})


@attrs.frozen
class RecordError:
    """One record's failure: Salesforce's code, message, fields and extra keys."""

    code: str
    message: str
    fields: tuple[str, ...] = ()
    extra: Mapping[str, Any] = attrs.field(factory=dict)

    def as_single(self) -> dict[str, Any]:
        """The entry of a single-resource error array (``errorCode``)."""
        return {
            **self.extra,
            "errorCode": self.code,
            "message": self.message,
            "fields": list(self.fields),
        }

    def as_collection(self, *, with_extra: bool) -> dict[str, Any]:
        """The entry of a Collections result's ``errors`` (``statusCode``)."""
        entry: dict[str, Any] = {
            "statusCode": self.code,
            "message": self.message,
            "fields": list(self.fields),
        }
        if with_extra:
            entry.update(self.extra)
        return entry


class ApiError(Exception):
    """A whole request fails with ``status`` and a JSON error array."""

    def __init__(self, status: int, code: str, message: str, fields: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.error = RecordError(code, message, tuple(fields))


@attrs.define
class DuplicateRule:
    """A duplicate rule: same email (case-insensitive) on ``match_objects``.

    ``allow_save=True`` is "Allow + Alert" (a request with ``Sforce-Duplicate-Rule-Header:
    allowSave=true`` saves anyway); ``False`` is "Block". ``include_result_in_collections``
    says whether Collections errors carry the ``duplicateResult`` payload (unconfirmed for real
    orgs; off by default so clients must cope without it).
    """

    object_name: str = "Lead"
    match_objects: tuple[str, ...] = ("Lead",)
    allow_save: bool = False
    name: str = "Standard_Lead_Duplicate_Rule"
    include_result_in_collections: bool = False
    active: bool = True


def format_datetime(value: datetime) -> str:
    """``2024-05-01T12:00:00.000+0000``."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def parse_datetime(value: str) -> datetime | None:
    """An ISO-8601 datetime as Salesforce accepts it (``Z``, ``+0000`` or ``+00:00``)."""
    return _parse_dt(value) if value else None


def _parse_dt(value: str) -> datetime | None:
    text = value.strip().replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", text):
        text = text[:-2] + ":" + text[-2:]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Store:
    """Records, ids and indexes of the local org (its lock is held by the caller)."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.objects: dict[str, ObjectDef] = standard_objects()
        self.records: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in self.objects}
        self.deleted: set[str] = set()
        self.seq: dict[str, int] = {}
        self.deleted_at: dict[str, datetime] = {}
        self.recycle: dict[str, dict[str, dict[str, Any]]] = {}
        """Deleted records by object (lower-case name), as the recycle bin keeps them."""
        self.index: dict[str, dict[str, dict[str, set[str]]]] = {}
        """Per object (lower-case name): indexed field -> key -> ids (see :meth:`lookup`)."""
        self.ids = IdFactory()
        self._by_prefix: dict[str, ObjectDef] = {}  # what object_of_id found for a prefix
        self._clock = clock
        self._last_time: datetime | None = None
        self.duplicate_rules: list[DuplicateRule] = []
        self.assignment_rules: dict[str, str] = {}
        """Active Lead assignment rules: AssignmentRule id -> the owner it gives."""
        self.default_assignment_rule: str | None = None
        self.acting_user: str | None = None
        """The user the API acts as (``CreatedById``, ``LastModifiedById``)."""
        self.default_lead_owner: str | None = None

    @property
    def duplicate_rule(self) -> DuplicateRule | None:
        """The first duplicate rule (older single-rule spelling)."""
        return self.duplicate_rules[0] if self.duplicate_rules else None

    @duplicate_rule.setter
    def duplicate_rule(self, rule: DuplicateRule | None) -> None:
        self.duplicate_rules = [] if rule is None else [rule]

    @property
    def assignment_rule_owner(self) -> str | None:
        """The owner the default active Lead assignment rule gives (``None``: no rule)."""
        if self.default_assignment_rule is None:
            return None
        return self.assignment_rules.get(self.default_assignment_rule)

    @assignment_rule_owner.setter
    def assignment_rule_owner(self, owner_id: str | None) -> None:
        key = self.default_assignment_rule or "default"
        if owner_id is None:
            self.assignment_rules.pop(key, None)
            self.default_assignment_rule = None
        else:
            self.assignment_rules[key] = owner_id
            self.default_assignment_rule = key

    def now(self) -> datetime:
        """The org clock, strictly increasing by at least a millisecond per call."""
        current = self._clock().astimezone(UTC)
        current = current.replace(microsecond=current.microsecond // 1000 * 1000)
        if self._last_time is not None and current <= self._last_time:
            current = self._last_time.replace() + _MS
        self._last_time = current
        return current

    def object(self, name: str) -> ObjectDef | None:
        return self.objects.get(name.lower())

    def object_of_id(self, record_id: str) -> ObjectDef | None:
        prefix = record_id[:3]
        known = self._by_prefix.get(prefix)
        if known is not None and self.objects.get(known.name.lower()) is known:
            return known  # still the first object with this prefix: objects are only added
        for obj in self.objects.values():
            if record_id.startswith(obj.key_prefix):
                if obj.key_prefix == prefix:
                    self._by_prefix[prefix] = obj
                return obj
        return None

    def find(self, record_id: str) -> tuple[ObjectDef, dict[str, Any]] | None:
        """The live record with this id (15 or 18 characters), if any."""
        if not record_id or not is_well_formed(record_id):
            return None
        full = to_18(record_id)
        obj = self.object_of_id(full)
        if obj is None:
            return None
        record = self.records[obj.name.lower()].get(full)
        return (obj, record) if record is not None else None

    def insert_raw(
        self,
        obj: ObjectDef,
        values: Mapping[str, Any],
        *,
        when: datetime | None = None,
        canonical: bool = False,
    ) -> str:
        """Store a record without validation (the backdoor); returns its id. ``canonical``:
        ``values`` is a validated create's record, every name its field's own spelling and the
        object's blank record (:attr:`FieldPlan.blank`) already in it."""
        record_id = self.ids.new(obj.key_prefix)
        stamp = when or self.now()
        record: dict[str, Any] = {
            "Id": record_id,
            "CreatedDate": stamp,
            "LastModifiedDate": stamp,
            "IsDeleted": False,
        }
        plan = obj.plan()
        if canonical:
            record.update(values)  # the blank first, in field order, as below
        else:
            record.update(plan.blank)
            fields = obj.fields
            for name, value in values.items():
                known = fields.get(name.lower())
                record[known.name if known is not None else name] = value
        if plan.owned and not record.get("OwnerId"):
            record["OwnerId"] = self.default_lead_owner
        record.setdefault("CreatedById", self.acting_user or self.default_lead_owner)
        self.derive(obj, record)
        self.records[obj.name.lower()][record_id] = record
        self.seq[record_id] = len(self.seq)
        if obj.name == "Campaign":
            self._default_member_statuses(record_id)
        self._index_record(obj, record, add=True)
        return record_id

    def derive(self, obj: ObjectDef, record: dict[str, Any]) -> None:
        """Fields Salesforce computes: compound ``Name`` and addresses, ``SystemModstamp``,
        ``LastModifiedById``, a campaign member's ``HasResponded``."""
        name = obj.name.lower()
        if name in NAMED:
            names = [record.get("FirstName"), record.get("LastName")]
            record["Name"] = " ".join(str(p) for p in names if p) or None
        for prefix, compound in ADDRESSES.get(name, ()):
            parts = {key: record.get(f"{prefix}{field}") for key, field in _ADDRESS_PARTS}
            has_any = any(v is not None for v in parts.values())
            record[compound] = {**parts, "geocodeAccuracy": None} if has_any else None
        record["SystemModstamp"] = record.get("LastModifiedDate")
        record["LastModifiedById"] = self.acting_user or record.get("CreatedById")
        if name == "campaignmember":
            status = self._member_status(record.get("CampaignId"), record.get("Status"))
            record["HasResponded"] = bool(status and status.get("HasResponded"))

    def _member_status(self, campaign_id: Any, label: Any) -> dict[str, Any] | None:
        if not campaign_id:
            return None
        statuses = self.objects["campaignmemberstatus"]
        for sid in self.lookup(statuses, "CampaignId", [campaign_id]) or set():
            status = self.records["campaignmemberstatus"][sid]
            if label is None and status.get("IsDefault"):
                return status
            if label is not None and str(status.get("Label")) == str(label):
                return status
        return None

    def _default_member_statuses(self, campaign_id: str) -> None:
        statuses = self.objects["campaignmemberstatus"]
        for order, (label, responded, default) in enumerate(
            (("Sent", False, True), ("Responded", True, False)), start=1
        ):
            self.insert_raw(
                statuses,
                {
                    "CampaignId": campaign_id,
                    "Label": label,
                    "SortOrder": order,
                    "HasResponded": responded,
                    "IsDefault": default,
                },
            )

    def in_order(self, ids: set[str]) -> list[str]:
        """``ids`` in creation order (the order a scan of the records would give)."""
        return sorted(ids, key=self.seq.__getitem__)

    @staticmethod
    def _indexed(f: FieldDef) -> bool:
        return f.type in ("email", "reference") or f.id_lookup

    @staticmethod
    def index_key(f: FieldDef, value: Any) -> str | None:
        """The key a value is indexed under: an id's 15 characters, else the casefolded text."""
        if value is None or value == "":
            return None
        if f.type in _ID_TYPES:
            return str(value)[:15]
        return str(value).casefold()

    def _index_record(self, obj: ObjectDef, record: Mapping[str, Any], *, add: bool) -> None:
        per_object = self.index.setdefault(obj.name.lower(), {})
        record_id = record["Id"]
        for f in obj.plan().indexed:
            value = record.get(f.name)
            if value is None or value == "":
                continue
            key = str(value)[:15] if f.type in _ID_TYPES else str(value).casefold()  # index_key
            per_field = per_object.get(f.name)
            if per_field is None:
                per_field = per_object[f.name] = {}
            ids = per_field.get(key)
            if ids is None:
                ids = per_field[key] = set()
            if add:
                ids.add(record_id)
            else:
                ids.discard(record_id)

    def rebuild_indexes(self) -> None:
        """Index every live record again (after a restore, or a direct edit of ``records``)."""
        self.index = {}
        for name, records in self.records.items():
            obj = self.objects[name]
            for record in records.values():
                self._index_record(obj, record, add=True)

    def lookup(self, obj: ObjectDef, field_name: str, values: Sequence[Any]) -> set[str] | None:
        """Ids of live records whose field equals one of ``values`` (``None``: not indexed)."""
        f = obj.field(field_name)
        if f is None or not (self._indexed(f) or f.type == "id"):
            return None
        if f.type == "id":
            return {
                to_18(str(v))
                for v in values
                if isinstance(v, str)
                and is_well_formed(v)
                and to_18(v) in self.records[obj.name.lower()]
            }
        per_field = self.index.get(obj.name.lower(), {}).get(f.name, {})
        found: set[str] = set()
        for value in values:
            key = self.index_key(f, value)
            if key is not None:
                found |= per_field.get(key, set())
        return found

    def delete(self, obj: ObjectDef, record_id: str) -> None:
        """Move a live record to the recycle bin (``queryAll`` still sees it)."""
        record = self.records[obj.name.lower()].pop(record_id)
        self._index_record(obj, record, add=False)
        record["IsDeleted"] = True
        self.recycle.setdefault(obj.name.lower(), {})[record_id] = record
        self.deleted.add(record_id)
        self.deleted_at[record_id] = self.now()

    def snapshot(self) -> Any:
        state = (self.records, self.deleted, self.recycle, self.deleted_at, self.ids._counter)  # noqa: SLF001  # the org owns its factory
        return copy.deepcopy(state)

    def restore(self, state: Any) -> None:
        self.records, self.deleted, self.recycle, self.deleted_at, self.ids._counter = state  # noqa: SLF001  # the org owns its factory
        self.rebuild_indexes()


_MS = datetime(2000, 1, 1, 0, 0, 0, 1000, tzinfo=UTC) - datetime(2000, 1, 1, tzinfo=UTC)
