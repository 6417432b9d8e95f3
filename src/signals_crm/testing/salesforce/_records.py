"""The local org's data and its rules: records, validation, assignment, duplicates, queries.

Everything here runs under the org's lock; errors are raised as :class:`ApiError` (a whole
request fails) or returned as :class:`RecordError` (one record fails), and the HTTP layer
(:mod:`._org`) renders them the way Salesforce does (``errorCode`` for single resources,
``statusCode`` inside Collections results).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import attrs

from signals_crm.core.model import is_valid_email
from signals_crm.testing.salesforce._ids import IdFactory, is_well_formed, to_18
from signals_crm.testing.salesforce._schema import (
    ADDRESSES,
    CHILD_RELATIONSHIPS,
    LEAD_STATUSES,
    NAMED,
    FieldDef,
    ObjectDef,
    standard_objects,
)
from signals_crm.testing.salesforce._soql import (
    And,
    Comparison,
    Condition,
    DateLiteral,
    InList,
    Like,
    Not,
    Or,
    Query,
    SoqlError,
    parse,
)

__all__ = ["ApiError", "DuplicateRule", "OrgData", "RecordError"]

MAX_OFFSET = 2000
"""SOQL's largest OFFSET (SOQL and SOSL Reference, "OFFSET")."""
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


class OrgData:
    """Records of every object, with Salesforce's validation and query semantics."""

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
        self._clock = clock
        self._last_time: datetime | None = None
        self.duplicate_rules: list[DuplicateRule] = []
        self.assignment_rules: dict[str, str] = {}
        """Active Lead assignment rules: AssignmentRule id -> the owner it gives."""
        self.default_assignment_rule: str | None = None
        self.acting_user: str | None = None
        """The user the API acts as (``CreatedById``, ``LastModifiedById``)."""
        self.default_lead_owner: str | None = None

    # -- basics ------------------------------------------------------------------------------

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
        for obj in self.objects.values():
            if record_id.startswith(obj.key_prefix):
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
        self, obj: ObjectDef, values: Mapping[str, Any], *, when: datetime | None = None
    ) -> str:
        """Store a record without validation (the backdoor); returns its id."""
        record_id = self.ids.new(obj.key_prefix)
        stamp = when or self.now()
        record: dict[str, Any] = {
            "Id": record_id,
            "CreatedDate": stamp,
            "LastModifiedDate": stamp,
            "IsDeleted": False,
        }
        for f in obj.fields.values():
            if f.default is not None and f.defaulted_on_create:
                record[f.name] = f.default
            if f.type == "boolean" and f.name not in record:
                record[f.name] = False
        for name, value in values.items():
            known = obj.field(name)
            record[known.name if known is not None else name] = value
        if obj.field("OwnerId") is not None and not record.get("OwnerId"):
            record["OwnerId"] = self.default_lead_owner
        record.setdefault("CreatedById", self.acting_user or self.default_lead_owner)
        self.derive(obj, record)
        self.records[obj.name.lower()][record_id] = record
        self.seq[record_id] = len(self.seq)
        if obj.name == "Campaign":
            self._default_member_statuses(record_id)
        self._index_record(obj, record, add=True)
        return record_id

    def seed_standard(self, *, rules: bool) -> None:
        """What a new org ships: its Organization record, the lead statuses and, with
        ``rules``, the standard duplicate rules (Allow + Alert: API saves are refused unless
        ``allowSave=true``) and an active Lead assignment rule giving new Leads to a queue."""
        self.insert_raw(
            self.objects["organization"],
            {
                "Name": "Local Sandbox Org",
                "OrganizationType": "Developer Edition",
                "InstanceName": "LOCAL1",
                "IsSandbox": False,
                "LanguageLocaleKey": "en_US",
                "TimeZoneSidKey": "America/Los_Angeles",
                "DefaultLocaleSidKey": "en_US",
            },
        )
        for order, label in enumerate(LEAD_STATUSES, start=1):
            self.insert_raw(
                self.objects["leadstatus"],
                {
                    "MasterLabel": label,
                    "ApiName": label,
                    "SortOrder": order,
                    "IsDefault": order == 1,
                    "IsConverted": label == "Closed - Converted",
                },
            )
        if not rules:
            return
        queue = self.insert_raw(
            self.objects["group"],
            {"Name": "Web Leads", "DeveloperName": "Web_Leads", "Type": "Queue"},
        )
        self.insert_raw(self.objects["queuesobject"], {"QueueId": queue, "SobjectType": "Lead"})
        rule_id = self.insert_raw(
            self.objects["assignmentrule"],
            {"Name": "Standard", "SobjectType": "Lead", "Active": True},
        )
        self.assignment_rules[rule_id] = queue
        self.default_assignment_rule = rule_id
        for rule in (
            DuplicateRule("Lead", ("Lead", "Contact"), allow_save=True),
            DuplicateRule(
                "Contact", ("Contact",), allow_save=True, name="Standard_Contact_Duplicate_Rule"
            ),
        ):
            self.duplicate_rules.append(rule)
            self.insert_raw(
                self.objects["duplicaterule"],
                {
                    "DeveloperName": rule.name,
                    "MasterLabel": rule.name.replace("_", " "),
                    "SobjectType": rule.object_name,
                    "IsActive": True,
                },
            )

    def _sync_rules(self, obj: ObjectDef, record: Mapping[str, Any]) -> None:
        """An update of a DuplicateRule or AssignmentRule record switches the rule."""
        if obj.name == "DuplicateRule":
            for rule in self.duplicate_rules:
                if rule.name == record.get("DeveloperName"):
                    rule.active = bool(record.get("IsActive"))
        if obj.name == "AssignmentRule":
            if record.get("Active"):
                self.default_assignment_rule = record["Id"]
            elif self.default_assignment_rule == record["Id"]:
                self.default_assignment_rule = None

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

    # -- indexes -----------------------------------------------------------------------------

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
        for f in obj.fields.values():
            if not self._indexed(f):
                continue
            key = self.index_key(f, record.get(f.name))
            if key is None:
                continue
            ids = per_object.setdefault(f.name, {}).setdefault(key, set())
            if add:
                ids.add(record["Id"])
            else:
                ids.discard(record["Id"])

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

    # -- validation --------------------------------------------------------------------------

    def check_known_fields(self, obj: ObjectDef, body: Mapping[str, Any]) -> None:
        """A field the object does not have fails the whole request (JSON deserialization)."""
        for name in body:
            if name in ("attributes", "id", "Id"):
                continue
            if obj.field(name) is None:
                raise ApiError(
                    400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {obj.name}"
                )

    def from_text(self, obj: ObjectDef, values: Mapping[str, Any]) -> dict[str, Any]:
        """CSV cells as the JSON values the field types take (numbers parsed)."""
        out: dict[str, Any] = {}
        for name, value in values.items():
            f = obj.field(name)
            if (
                f is not None
                and isinstance(value, str)
                and f.type in ("int", "double", "currency", "percent")
            ):
                try:
                    number = float(value)
                except ValueError:
                    raise ApiError(
                        400,
                        "INVALID_TYPE_ON_FIELD_IN_RECORD",
                        f"{f.name}: value not of required type: {value}",
                        (f.name,),
                    ) from None
                out[name] = int(number) if f.type == "int" and number.is_integer() else number
            else:
                out[name] = value
        return out

    def _coerce(self, obj: ObjectDef, f: FieldDef, value: Any) -> tuple[Any, RecordError | None]:
        label = f.label or f.name
        if value is None or (value == "" and f.type != "boolean"):
            return None, None
        if f.type in _TEXT_TYPES:
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise ApiError(
                    400,
                    "JSON_PARSER_ERROR",
                    f"Cannot deserialize instance of string from {type(value).__name__} value",
                )
            text = str(value)
            if f.length and len(text) > f.length:
                return None, RecordError(
                    "STRING_TOO_LONG",
                    f"{label}: data value too large: {text[:40]} (max length={f.length})",
                    (f.name,),
                )
            if f.type == "email" and not is_valid_email(text):
                return None, RecordError(
                    "INVALID_EMAIL_ADDRESS", f"{label}: invalid email address: {text}", (f.name,)
                )
            if f.type == "picklist" and f.restricted_picklist and text not in f.picklist:
                return None, RecordError(
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    f"{label}: bad value for restricted picklist field: {text}",
                    (f.name,),
                )
            return text, None
        if f.type == "boolean":
            if isinstance(value, bool):
                return value, None
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true", None
            raise ApiError(400, "JSON_PARSER_ERROR", f"Cannot deserialize boolean from {value!r}")
        if f.type in ("int", "double", "currency", "percent"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ApiError(
                    400, "JSON_PARSER_ERROR", f"Cannot deserialize number from {value!r}"
                )
            return value, None
        if f.type == "date":
            if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
                raise ApiError(400, "JSON_PARSER_ERROR", f"Cannot deserialize date from {value!r}")
            return value, None
        if f.type == "datetime":
            parsed = _parse_dt(value) if isinstance(value, str) else None
            if parsed is None:
                raise ApiError(
                    400, "JSON_PARSER_ERROR", f"Cannot deserialize datetime from {value!r}"
                )
            return parsed, None
        if f.type in _ID_TYPES:
            return self._reference(obj, f, value)
        return value, None

    def _reference(self, obj: ObjectDef, f: FieldDef, value: Any) -> tuple[Any, RecordError | None]:
        label = f.label or f.name
        if not isinstance(value, str) or not is_well_formed(value):
            return None, RecordError(
                "MALFORMED_ID", f"{label}: id value of incorrect type: {value}", (f.name,)
            )
        target_obj = self.object_of_id(to_18(value))
        if target_obj is None or target_obj.name not in f.reference_to:
            return None, RecordError(
                "FIELD_INTEGRITY_EXCEPTION",
                f"{label}: id value of incorrect type: {value}",
                (f.name,),
            )
        found = self.find(value)
        if found is None:
            return None, RecordError(
                "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", (f.name,)
            )
        target_obj, target = found
        if f.name == "OwnerId" and target_obj.name == "User" and not target.get("IsActive"):
            return None, RecordError(
                "INACTIVE_OWNER_OR_USER",
                f"operation performed with inactive user [{target['Id']}] as owner of "
                f"{obj.name.lower()}",
                (f.name,),
            )
        return target["Id"], None

    def _apply_fields(
        self, obj: ObjectDef, body: Mapping[str, Any], *, creating: bool
    ) -> tuple[dict[str, Any], RecordError | None]:
        values: dict[str, Any] = {}
        for name, raw in body.items():
            if name in ("attributes", "id", "Id"):
                continue
            f = obj.field(name)
            if f is None:  # check_known_fields normally ran first
                raise ApiError(
                    400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {obj.name}"
                )
            if (creating and not f.createable) or (not creating and not f.updateable):
                return {}, RecordError(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {f.name}. Please check the security "
                    "settings of this field and verify that it is read/write for your profile "
                    "or permission set.",
                    (f.name,),
                )
            value, error = self._coerce(obj, f, raw)
            if error is not None:
                return {}, error
            values[f.name] = value
        return values, None

    @staticmethod
    def _missing_required(obj: ObjectDef, record: Mapping[str, Any]) -> RecordError | None:
        missing = [
            f.name
            for f in obj.fields.values()
            if f.createable and not f.nillable and record.get(f.name) in (None, "")
        ]
        if missing:
            return RecordError(
                "REQUIRED_FIELD_MISSING",
                f"Required fields are missing: [{', '.join(missing)}]",
                tuple(missing),
            )
        return None

    # -- object rules ------------------------------------------------------------------------

    def _duplicates(
        self, obj: ObjectDef, record: Mapping[str, Any], allow_save: bool
    ) -> RecordError | None:
        email = record.get("Email")
        rule = next(
            (
                r
                for r in self.duplicate_rules
                if r.active and r.object_name.lower() == obj.name.lower()
            ),
            None,
        )
        if rule is None or not email:
            return None
        if rule.allow_save and allow_save:
            return None
        matches: list[tuple[str, str]] = []
        for match_name in rule.match_objects:
            match_obj = self.object(match_name)
            found = self.lookup(match_obj, "Email", [email]) if match_obj else None
            matches.extend((match_name, rid) for rid in self.in_order(found or set()))
        if not matches:
            return None
        message = "Use one of these records?"
        match_results = [
            {
                "entityType": name,
                "errors": [],
                "matchEngine": "ExactMatchEngine",
                "matchRecords": [
                    {
                        "additionalInformation": [],
                        "fieldDiffs": [],
                        "matchConfidence": 100.0,
                        "record": {
                            "attributes": {
                                "type": name,
                                "url": f"/services/data/v61.0/sobjects/{name}/{rid}",
                            },
                            "Id": rid,
                        },
                    }
                    for n, rid in matches
                    if n == name
                ],
                "rule": f"Standard_{name}_Match_Rule_v1_1",
                "size": sum(1 for n, _ in matches if n == name),
                "success": True,
            }
            for name in dict.fromkeys(n for n, _ in matches)
        ]
        payload = {
            "duplicateResult": {
                "allowSave": rule.allow_save,
                "duplicateRule": rule.name,
                "duplicateRuleEntityType": obj.name,
                "errorMessage": message,
                "matchResults": match_results,
            }
        }
        return RecordError("DUPLICATES_DETECTED", message, (), payload)

    def _object_rules(self, obj: ObjectDef, record: dict[str, Any]) -> RecordError | None:
        if obj.name == "Task":
            who = record.get("WhoId")
            found = self.find(who) if who else None
            if found is not None and found[0].name == "Lead":
                if found[1].get("IsConverted"):
                    return RecordError(
                        "CANNOT_UPDATE_CONVERTED_LEAD",
                        "cannot reference converted lead",
                        ("WhoId",),
                    )
                if record.get("WhatId"):
                    return RecordError(
                        "FIELD_INTEGRITY_EXCEPTION",
                        "Related To ID: a task on a lead cannot be related to another record",
                        ("WhatId",),
                    )
        if obj.name == "CampaignMember":
            if record.get("ContactId"):
                record["LeadId"] = None
            person = record.get("LeadId") or record.get("ContactId")
            if not person:
                return RecordError(
                    "REQUIRED_FIELD_MISSING",
                    "Required fields are missing: [LeadId or ContactId]",
                    ("LeadId", "ContactId"),
                )
            member = self.objects["campaignmember"]
            field = "LeadId" if record.get("LeadId") else "ContactId"
            members = self.records["campaignmember"]
            for other_id in self.lookup(member, field, [person]) or set():
                other = members[other_id]
                same_campaign = str(other["CampaignId"])[:15] == str(record["CampaignId"])[:15]
                if same_campaign and other_id != record.get("Id"):
                    return RecordError("DUPLICATE_VALUE", "Already a campaign member.")
            if self._member_status(record["CampaignId"], record.get("Status")) is None:
                return RecordError(
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    f"Status: bad value for restricted picklist field: {record.get('Status')}",
                    ("Status",),
                )
        return None

    def _assign(self, obj: ObjectDef, record: dict[str, Any], auto_assign: str | None) -> None:
        """Lead assignment: the active rule overwrites OwnerId unless the header says FALSE."""
        if obj.name != "Lead":
            return
        header = (auto_assign or "TRUE").strip()
        if header.upper() == "FALSE":
            return
        if header.upper() == "TRUE":
            owner = self.assignment_rule_owner
        else:  # a rule id: run that rule (15 or 18 characters)
            owner = next(
                (o for rid, o in self.assignment_rules.items() if rid[:15] == header[:15]), None
            )
        if owner is not None:
            record["OwnerId"] = owner

    # -- writes ------------------------------------------------------------------------------

    def create(
        self,
        obj: ObjectDef,
        body: Mapping[str, Any],
        *,
        auto_assign: str | None = None,
        allow_save: bool = False,
    ) -> tuple[str | None, RecordError | None]:
        """Create one record (``check_known_fields`` must have passed)."""
        if not obj.createable:
            return None, RecordError(
                "INVALID_TYPE", f"Cannot create a record of type {obj.name} through the API"
            )
        if "Id" in body or "id" in body:
            return None, RecordError(
                "INVALID_FIELD", "The Id field should not be specified in the sobject data."
            )
        values, error = self._apply_fields(obj, body, creating=True)
        if error is not None:
            return None, error
        record: dict[str, Any] = {}
        for f in obj.fields.values():
            if f.defaulted_on_create and f.default is not None:
                record[f.name] = f.default
            elif f.type == "boolean":
                record[f.name] = False
        record.update({k: v for k, v in values.items() if v is not None})
        if obj.field("OwnerId") is not None and not record.get("OwnerId"):
            record["OwnerId"] = self.default_lead_owner
        error = self._missing_required(obj, record) or self._object_rules(obj, record)
        if error is None:
            error = self._duplicates(obj, record, allow_save)
        if error is not None:
            return None, error
        self._assign(obj, record, auto_assign)
        return self.insert_raw(obj, record), None

    def update(
        self,
        obj: ObjectDef,
        record_id: Any,
        body: Mapping[str, Any],
        *,
        auto_assign: str | None = None,
    ) -> tuple[str | None, RecordError | None]:
        """Update one record (``check_known_fields`` must have passed)."""
        if not isinstance(record_id, str) or not is_well_formed(record_id):
            return None, RecordError(
                "MALFORMED_ID", f"{obj.name} ID: id value of incorrect type: {record_id}", ("Id",)
            )
        full = to_18(record_id)
        if full in self.deleted:
            return None, RecordError("ENTITY_IS_DELETED", "entity is deleted")
        found = self.find(full)
        if found is None or found[0].name != obj.name:
            return None, RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
        _, record = found
        if obj.name == "Lead" and record.get("IsConverted"):
            return None, RecordError(
                "CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead"
            )
        values, error = self._apply_fields(obj, body, creating=False)
        if error is not None:
            return None, error
        merged = {**record, **values}
        error = self._missing_required(obj, merged) or (
            self._object_rules(obj, merged) if obj.name in ("Task", "CampaignMember") else None
        )
        if error is not None:
            return None, error
        self._assign(obj, merged, auto_assign)
        merged["LastModifiedDate"] = self.now()
        self.derive(obj, merged)
        self._index_record(obj, record, add=False)
        record.clear()
        record.update(merged)
        self._index_record(obj, record, add=True)
        self._sync_rules(obj, record)
        return full, None

    def snapshot(self) -> Any:
        state = (self.records, self.deleted, self.recycle, self.deleted_at, self.ids._counter)  # noqa: SLF001  # the org owns its factory
        return copy.deepcopy(state)

    def restore(self, state: Any) -> None:
        self.records, self.deleted, self.recycle, self.deleted_at, self.ids._counter = state  # noqa: SLF001  # the org owns its factory
        self.rebuild_indexes()

    # -- queries -----------------------------------------------------------------------------

    def _resolve(self, obj: ObjectDef, path: tuple[str, ...]) -> tuple[str, ...]:
        """Canonical names of a field path; INVALID_FIELD when it names nothing."""
        names: list[str] = []
        current: list[ObjectDef] = [obj]
        for i, part in enumerate(path):
            last = i == len(path) - 1
            if last:
                for candidate in current:
                    f = candidate.field(part)
                    if f is not None:
                        names.append(f.name)
                        return tuple(names)
                if part.lower() == "type" and len(current) > 1:  # Who.Type, What.Type
                    names.append("Type")
                    return tuple(names)
            else:
                for candidate in current:
                    rel = candidate.relationship(part)
                    if rel is not None:
                        names.append(rel.relationship_name or part)
                        current = [o for o in (self.object(t) for t in rel.reference_to) if o]
                        break
                else:
                    break
        dotted = ".".join(path)
        raise ApiError(
            400,
            "INVALID_FIELD",
            f"No such column '{dotted}' on entity '{obj.name}'. If you are attempting to use a "
            "custom field, be sure to append the '__c' after the custom field name. Please "
            "reference your WSDL or the describe call for the appropriate names.",
        )

    def _field_def(self, obj: ObjectDef, path: tuple[str, ...]) -> FieldDef | None:
        current = [obj]
        for part in path[:-1]:
            nxt: list[ObjectDef] = []
            for candidate in current:
                rel = candidate.relationship(part)
                if rel is not None:
                    nxt = [o for o in (self.object(t) for t in rel.reference_to) if o]
                    break
            current = nxt
        for candidate in current:
            f = candidate.field(path[-1])
            if f is not None:
                return f
        return None

    def _value(self, obj: ObjectDef, record: Mapping[str, Any], path: tuple[str, ...]) -> Any:
        current_obj, current = obj, record
        for part in path[:-1]:
            rel = current_obj.relationship(part)
            if rel is None:
                return None
            target = current.get(rel.name)
            found = self.find(target) if target else None
            if found is None:
                return None
            current_obj, current = found
        f = current_obj.field(path[-1])
        if f is None and path[-1] == "Type" and len(path) > 1:
            return current_obj.name
        return current.get(f.name) if f else None

    def _candidates(self, obj: ObjectDef, cond: Condition | None) -> set[str] | None:
        """Ids that can match ``cond``, from the indexes (``None``: every record may match).

        ``field = literal`` and ``field IN (...)`` on an indexed field (Id, Email, references)
        narrow; ``AND`` takes the narrowest part; ``OR`` narrows only when every part does.
        """
        if isinstance(cond, Comparison) and cond.op == "=" and len(cond.path) == 1:
            return self.lookup(obj, cond.path[0], [cond.value.value])
        if isinstance(cond, InList) and not cond.negated and len(cond.path) == 1:
            return self.lookup(obj, cond.path[0], [v.value for v in cond.values])
        if isinstance(cond, And):
            narrowed = [c for c in (self._candidates(obj, p) for p in cond.parts) if c is not None]
            return min(narrowed, key=len) if narrowed else None
        if isinstance(cond, Or):
            parts = [self._candidates(obj, p) for p in cond.parts]
            if any(p is None for p in parts):
                return None
            return set().union(*(p for p in parts if p is not None))
        return None

    def _rows(
        self, obj: ObjectDef, cond: Condition | None, *, include_deleted: bool
    ) -> list[dict[str, Any]]:
        live = self.records[obj.name.lower()]
        candidates = self._candidates(obj, cond)
        if candidates is None:
            pool: list[dict[str, Any]] = list(live.values())
        else:
            pool = [live[i] for i in self.in_order(candidates)]
        if include_deleted:
            deleted = list(self.recycle.get(obj.name.lower(), {}).values())
            pool = sorted([*pool, *deleted], key=lambda r: self.seq[r["Id"]])
        return [r for r in pool if cond is None or self._matches(obj, r, cond)]

    def query(
        self, soql: str, *, include_deleted: bool = False
    ) -> tuple[ObjectDef, list[dict[str, Any]], int, bool]:
        """Run a query: (object, rendered records, total size, is COUNT()).

        ``include_deleted`` (``queryAll``) also returns records in the recycle bin.
        """
        try:
            parsed = parse(soql)
        except SoqlError as exc:
            raise ApiError(400, "MALFORMED_QUERY", str(exc)) from None
        obj = self.object(parsed.object_name)
        if obj is None:
            raise ApiError(
                400,
                "INVALID_TYPE",
                f"sObject type '{parsed.object_name}' is not supported. If you are attempting to "
                "use a custom object, be sure to append the '__c' after the entity name.",
            )
        if parsed.offset > MAX_OFFSET:
            raise ApiError(
                400,
                "NUMBER_OUTSIDE_VALID_RANGE",
                f"Maximum SOQL offset allowed is {MAX_OFFSET}",
            )
        select = [self._resolve(obj, p) for p in parsed.fields]
        self._check_condition(obj, parsed.where)
        children = [self._child_relation(obj, sub) for sub in parsed.subqueries]
        rows = self._rows(obj, parsed.where, include_deleted=include_deleted)
        if parsed.aggregates or parsed.group_by:
            grouped = self._aggregate(obj, parsed, rows)
            grouped = grouped[parsed.offset :]
            if parsed.limit is not None:
                grouped = grouped[: parsed.limit]
            return obj, grouped, len(grouped), False
        if children:
            rendered_rows = self._order(obj, rows, parsed)[parsed.offset :]
            if parsed.limit is not None:
                rendered_rows = rendered_rows[: parsed.limit]
            if parsed.count:
                return obj, [], len(rendered_rows), True
            out = [self._render_items(obj, r, parsed, select, children) for r in rendered_rows]
            return obj, out, len(out), False
        rows = self._order(obj, rows, parsed)
        rows = rows[parsed.offset :]
        if parsed.limit is not None:
            rows = rows[: parsed.limit]
        if parsed.count:
            return obj, [], len(rows), True
        rendered = [self._render(obj, r, select) for r in rows]
        return obj, rendered, len(rendered), False

    def select_rows(
        self, obj: ObjectDef, parsed: Query, keep: Callable[[dict[str, Any]], bool]
    ) -> list[dict[str, Any]]:
        """Rows of ``parsed`` (its WHERE, ORDER BY, OFFSET, LIMIT) that ``keep`` accepts,
        rendered with its select list (SOSL's RETURNING)."""
        select = [self._resolve(obj, p) for p in parsed.fields]
        self._check_condition(obj, parsed.where)
        rows = [r for r in self._rows(obj, parsed.where, include_deleted=False) if keep(r)]
        rows = self._order(obj, rows, parsed)[parsed.offset :]
        if parsed.limit is not None:
            rows = rows[: parsed.limit]
        return [self._render(obj, r, select) for r in rows]

    def _child_relation(
        self, obj: ObjectDef, sub: Query
    ) -> tuple[ObjectDef, str, str, list[tuple[str, ...]]]:
        """The child object, its reference field and the canonical relationship name of a
        subquery ``(SELECT ... FROM Tasks)``, with its select list resolved."""
        relation = CHILD_RELATIONSHIPS.get((obj.name.lower(), sub.object_name.lower()))
        child = self.object(relation[0]) if relation else None
        if relation is None or child is None:
            raise ApiError(
                400,
                "INVALID_TYPE",
                f"Didn't understand relationship '{sub.object_name}' in FROM part of query call. "
                "If you are attempting to use a custom relationship, be sure to append the '__r' "
                "after the custom relationship name.",
            )
        if sub.subqueries or sub.aggregates:
            raise ApiError(400, "MALFORMED_QUERY", "Nested subqueries are not supported")
        self._check_condition(child, sub.where)
        paths = [self._resolve(child, p) for p in sub.fields]
        name = next(
            r["relationshipName"]
            for r in obj.describe("")["childRelationships"]
            if r["relationshipName"].lower() == sub.object_name.lower()
        )
        return child, relation[1], name, paths

    def _render_items(
        self,
        obj: ObjectDef,
        record: Mapping[str, Any],
        parsed: Query,
        select: Sequence[tuple[str, ...]],
        children: Sequence[tuple[ObjectDef, str, str, list[tuple[str, ...]]]],
    ) -> dict[str, Any]:
        out = self._render(obj, record, [])
        for kind, index in parsed.items:
            if kind == "field":
                self._render_path(obj, record, select[index], out)
            elif kind == "subquery":
                child, field, name, paths = children[index]
                sub = parsed.subqueries[index]
                ids = self.lookup(child, field, [record["Id"]]) or set()
                live = self.records[child.name.lower()]
                rows = [live[i] for i in self.in_order(ids)]
                rows = [r for r in rows if sub.where is None or self._matches(child, r, sub.where)]
                rows = self._order(child, rows, sub)[sub.offset :]
                if sub.limit is not None:
                    rows = rows[: sub.limit]
                out[name] = (
                    {
                        "totalSize": len(rows),
                        "done": True,
                        "records": [self._render(child, r, paths) for r in rows],
                    }
                    if rows
                    else None
                )
        return out

    def _aggregate(
        self, obj: ObjectDef, parsed: Query, rows: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """``GROUP BY`` and aggregate functions: one ``AggregateResult`` per group."""
        group_paths = [self._resolve(obj, p) for p in parsed.group_by]
        select = [self._resolve(obj, p) for p in parsed.fields]
        for path in select:
            if path not in group_paths:
                raise ApiError(
                    400,
                    "MALFORMED_QUERY",
                    f"Field must be grouped or aggregated: {'.'.join(path)}",
                )
        aggregates = [
            (a, self._resolve(obj, a.path) if a.path is not None else None)
            for a in parsed.aggregates
        ]
        groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        for row in rows:
            key = tuple(_group_key(self._value(obj, row, p)) for p in group_paths)
            groups.setdefault(key, []).append(row)
        if not group_paths and not groups:
            groups[()] = []
        out: list[dict[str, Any]] = []
        for members in groups.values():
            result: dict[str, Any] = {"attributes": {"type": "AggregateResult"}}
            expressions: dict[str, Any] = {}
            unnamed = 0
            for kind, index in parsed.items:
                if kind == "field":
                    path = select[index]
                    result[path[-1]] = json_value(self._value(obj, members[0], path))
                elif kind == "aggregate":
                    spec, agg_path = aggregates[index]
                    value = _apply_aggregate(
                        spec.function,
                        [self._value(obj, r, agg_path) for r in members] if agg_path else members,
                    )
                    label = spec.alias or f"expr{unnamed}"
                    if spec.alias is None:
                        unnamed += 1
                    result[label] = value
                    dotted = ".".join(spec.path or ())
                    expressions[f"{spec.function}({dotted})".upper()] = value

            def measure(
                name: str,
                group: list[dict[str, Any]] = members,
                result: dict[str, Any] = result,
                expressions: dict[str, Any] = expressions,
            ) -> Any:
                found = re.fullmatch(r"([A-Z_]+)\((.*)\)", name.upper())
                if found is None:
                    return result.get(name)
                if name.upper() in expressions:
                    return expressions[name.upper()]
                inner = name[name.index("(") + 1 : -1]
                if not inner:
                    return len(group)
                path = self._resolve(obj, tuple(inner.split(".")))
                return _apply_aggregate(found[1], [self._value(obj, r, path) for r in group])

            if parsed.having is None or _having(parsed.having, measure):
                out.append(result)
        for order in reversed(parsed.order_by):
            name = order.path[-1]
            present = [r for r in out if r.get(name) is not None]
            absent = [r for r in out if r.get(name) is None]
            present.sort(key=lambda r: _sort_key("string", r.get(name)), reverse=order.descending)
            out = present + absent
        return out

    def _check_condition(self, obj: ObjectDef, cond: Condition | None) -> None:
        if cond is None:
            return
        if isinstance(cond, And | Or):
            for part in cond.parts:
                self._check_condition(obj, part)
            return
        if isinstance(cond, Not):
            self._check_condition(obj, cond.part)
            return
        self._resolve(obj, cond.path)
        f = self._field_def(obj, cond.path)
        if f is not None and not f.filterable:
            raise ApiError(
                400,
                "INVALID_FIELD",
                f"field '{f.name}' can not be filtered in a query call",
            )

    def _matches(self, obj: ObjectDef, record: Mapping[str, Any], cond: Condition) -> bool:
        if isinstance(cond, And):
            return all(self._matches(obj, record, p) for p in cond.parts)
        if isinstance(cond, Or):
            return any(self._matches(obj, record, p) for p in cond.parts)
        if isinstance(cond, Not):
            return not self._matches(obj, record, cond.part)
        value = self._value(obj, record, cond.path)
        f = self._field_def(obj, cond.path)
        ftype = f.type if f else "string"
        if isinstance(cond, Like):
            if value is None:
                return cond.negated
            hit = cond.pattern.fullmatch(str(value).casefold()) is not None
            return hit != cond.negated
        if isinstance(cond, InList):
            hit = any(_equal(ftype, value, lit.value) for lit in cond.values)
            return hit != cond.negated
        if isinstance(cond.value.value, DateLiteral):
            start, end = date_range(cond.value.value, self.now())
            return _in_range(value, start, end, cond.op)
        if cond.op == "=":
            return _equal(ftype, value, cond.value.value)
        if cond.op == "!=":
            return not _equal(ftype, value, cond.value.value)
        return _ordered(ftype, value, cond.value.value, cond.op)

    def _order(
        self, obj: ObjectDef, rows: list[dict[str, Any]], parsed: Query
    ) -> list[dict[str, Any]]:
        for order in reversed(parsed.order_by):
            self._resolve(obj, order.path)
            f = self._field_def(obj, order.path)
            ftype = f.type if f else "string"
            nulls_last = order.nulls_last if order.nulls_last is not None else order.descending
            present = [r for r in rows if self._value(obj, r, order.path) is not None]
            absent = [r for r in rows if self._value(obj, r, order.path) is None]
            present.sort(
                key=lambda r: _sort_key(ftype, self._value(obj, r, order.path)),
                reverse=order.descending,
            )
            rows = present + absent if nulls_last else absent + present
        return rows

    def resolve_field(self, obj: ObjectDef, dotted: str) -> tuple[str, ...]:
        """The canonical path of a (dotted) field name; ``INVALID_FIELD`` when unknown."""
        return self._resolve(obj, tuple(dotted.strip().split(".")))

    def render(
        self,
        obj: ObjectDef,
        record: Mapping[str, Any],
        select: Sequence[tuple[str, ...]],
        *,
        version: str = "61.0",
    ) -> dict[str, Any]:
        """A record with the selected paths, as query and Collections retrieve answer it."""
        del version
        return self._render(obj, record, select)

    def _render(
        self, obj: ObjectDef, record: Mapping[str, Any], select: Sequence[tuple[str, ...]]
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "attributes": {
                "type": obj.name,
                "url": f"/services/data/v61.0/sobjects/{obj.name}/{record['Id']}",
            }
        }
        for path in select:
            self._render_path(obj, record, path, out)
        return out

    def _render_path(
        self, obj: ObjectDef, record: Mapping[str, Any], path: tuple[str, ...], out: dict[str, Any]
    ) -> None:
        if len(path) == 1:
            f = obj.field(path[0])
            if f is None and path[0] == "Type":
                out["Type"] = obj.name
                return
            out[f.name if f else path[0]] = json_value(record.get(f.name) if f else None)
            return
        rel = obj.relationship(path[0])
        if rel is None:
            return
        name = rel.relationship_name or path[0]
        target_id = record.get(rel.name)
        found = self.find(target_id) if target_id else None
        if found is None:
            out.setdefault(name, None)
            return
        target_obj, target = found
        nested = out.get(name)
        if not isinstance(nested, dict):
            nested = {
                "attributes": {
                    "type": target_obj.name,
                    "url": f"/services/data/v61.0/sobjects/{target_obj.name}/{target['Id']}",
                }
            }
            out[name] = nested
        self._render_path(target_obj, target, path[1:], nested)

    def render_record(self, obj: ObjectDef, record: Mapping[str, Any]) -> dict[str, Any]:
        """A record as ``GET sobjects/X/{id}`` answers it (every field)."""
        out: dict[str, Any] = {
            "attributes": {
                "type": obj.name,
                "url": f"/services/data/v61.0/sobjects/{obj.name}/{record['Id']}",
            }
        }
        for f in obj.fields.values():
            out[f.name] = json_value(record.get(f.name))
        return out


_MS = datetime(2000, 1, 1, 0, 0, 0, 1000, tzinfo=UTC) - datetime(2000, 1, 1, tzinfo=UTC)


def _equal(ftype: str, value: Any, literal: Any) -> bool:
    if literal is None:
        return value is None
    if value is None:
        return False
    if ftype in _ID_TYPES and isinstance(literal, str) and isinstance(value, str):
        return value[:15] == literal[:15]
    if isinstance(literal, bool) or isinstance(value, bool):
        return value is literal
    if isinstance(literal, datetime):
        return isinstance(value, datetime) and value == literal
    if isinstance(literal, int | float) and isinstance(value, int | float):
        return float(value) == float(literal)
    return str(value).casefold() == str(literal).casefold()


def _sort_key(ftype: str, value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    text = str(value)
    return text if ftype in _ID_TYPES else text.casefold()


def _ordered(ftype: str, value: Any, literal: Any, op: str) -> bool:
    if value is None or literal is None:
        return False
    if isinstance(literal, datetime) and isinstance(value, datetime):
        left: Any = value
        right: Any = literal
    elif isinstance(literal, int | float) and isinstance(value, int | float):
        left, right = value, literal
    else:
        left, right = _sort_key(ftype, value), _sort_key(ftype, literal)
    try:
        if op == "<":
            return bool(left < right)
        if op == "<=":
            return bool(left <= right)
        if op == ">":
            return bool(left > right)
        return bool(left >= right)
    except TypeError:
        return False


def _group_key(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _apply_aggregate(function: str, values: list[Any]) -> Any:
    if function == "COUNT":
        return sum(1 for v in values if v is not None)
    present = [v for v in values if v is not None]
    if function == "COUNT_DISTINCT":
        return len({_group_key(v) for v in present})
    if not present:
        return None
    if function == "SUM":
        return sum(present)
    if function == "AVG":
        return sum(present) / len(present)
    chosen = min(present) if function == "MIN" else max(present)
    return json_value(chosen)


def _having(cond: Condition, measure: Callable[[str], Any]) -> bool:
    if isinstance(cond, And):
        return all(_having(p, measure) for p in cond.parts)
    if isinstance(cond, Or):
        return any(_having(p, measure) for p in cond.parts)
    if isinstance(cond, Not):
        return not _having(cond.part, measure)
    if not isinstance(cond, Comparison):
        raise ApiError(400, "MALFORMED_QUERY", "HAVING takes comparisons of aggregates")
    value = measure(".".join(cond.path))
    literal = cond.value.value
    if cond.op == "=":
        return _equal("double", value, literal)
    if cond.op == "!=":
        return not _equal("double", value, literal)
    return _ordered("double", value, literal, cond.op)


def _start_of_day(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _add_months(moment: datetime, months: int) -> datetime:
    index = moment.year * 12 + moment.month - 1 + months
    return moment.replace(year=index // 12, month=index % 12 + 1, day=1)


def date_range(literal: DateLiteral, now: datetime) -> tuple[datetime, datetime]:
    """The [start, end) a relative date literal covers, in UTC (weeks start on Sunday)."""
    today = _start_of_day(now)
    day = timedelta(days=1)
    week = today - timedelta(days=(today.weekday() + 1) % 7)
    month = today.replace(day=1)
    quarter = month.replace(month=(month.month - 1) // 3 * 3 + 1)
    year = month.replace(month=1)
    n = literal.n or 0
    table: dict[str, tuple[datetime, datetime]] = {
        "YESTERDAY": (today - day, today),
        "TODAY": (today, today + day),
        "TOMORROW": (today + day, today + 2 * day),
        "LAST_WEEK": (week - 7 * day, week),
        "THIS_WEEK": (week, week + 7 * day),
        "NEXT_WEEK": (week + 7 * day, week + 14 * day),
        "LAST_MONTH": (_add_months(month, -1), month),
        "THIS_MONTH": (month, _add_months(month, 1)),
        "NEXT_MONTH": (_add_months(month, 1), _add_months(month, 2)),
        "LAST_90_DAYS": (today - 90 * day, today + day),
        "NEXT_90_DAYS": (today + day, today + 91 * day),
        "LAST_QUARTER": (_add_months(quarter, -3), quarter),
        "THIS_QUARTER": (quarter, _add_months(quarter, 3)),
        "NEXT_QUARTER": (_add_months(quarter, 3), _add_months(quarter, 6)),
        "LAST_YEAR": (_add_months(year, -12), year),
        "THIS_YEAR": (year, _add_months(year, 12)),
        "NEXT_YEAR": (_add_months(year, 12), _add_months(year, 24)),
        "LAST_N_DAYS": (today - n * day, today + day),
        "NEXT_N_DAYS": (today + day, today + (n + 1) * day),
        "N_DAYS_AGO": (today - n * day, today - (n - 1) * day),
        "LAST_N_WEEKS": (week - 7 * n * day, week),
        "NEXT_N_WEEKS": (week + 7 * day, week + 7 * (n + 1) * day),
        "LAST_N_MONTHS": (_add_months(month, -n), month),
        "NEXT_N_MONTHS": (_add_months(month, 1), _add_months(month, n + 1)),
        "LAST_N_YEARS": (_add_months(year, -12 * n), year),
        "NEXT_N_YEARS": (_add_months(year, 12), _add_months(year, 12 * (n + 1))),
    }
    return table[literal.name]


def _in_range(value: Any, start: datetime, end: datetime, op: str) -> bool:
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        moment: datetime | None = datetime.fromisoformat(value).replace(tzinfo=UTC)
    else:
        moment = value if isinstance(value, datetime) else None
    if moment is None:
        return op == "!="
    checks = {
        "=": start <= moment < end,
        "!=": not start <= moment < end,
        "<": moment < start,
        "<=": moment < end,
        ">": moment >= end,
        ">=": moment >= start,
    }
    return checks[op]
