"""The local org's data and its rules: records, validation, assignment, duplicates, queries.

Everything here runs under the org's lock; errors are raised as :class:`ApiError` (a whole
request fails) or returned as :class:`RecordError` (one record fails), and the HTTP layer
(:mod:`._org`) renders them the way Salesforce does (``errorCode`` for single resources,
``statusCode`` inside Collections results).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from signals_crm.core.model import is_valid_email
from signals_crm.testing.salesforce._ids import is_well_formed, to_18
from signals_crm.testing.salesforce._query import MAX_OFFSET, Queries, date_range
from signals_crm.testing.salesforce._schema import (
    LEAD_STATUSES,
    FieldDef,
    ObjectDef,
)
from signals_crm.testing.salesforce._store import (
    ApiError,
    DuplicateRule,
    RecordError,
    format_datetime,
    json_value,
    parse_datetime,
)

__all__ = [
    "MAX_OFFSET",
    "ApiError",
    "DuplicateRule",
    "OrgData",
    "RecordError",
    "date_range",
    "format_datetime",
    "json_value",
    "parse_datetime",
]

_TEXT_TYPES = frozenset({"string", "textarea", "email", "phone", "url", "combobox", "picklist"})
_PLAIN_TEXT = _TEXT_TYPES - {"email", "picklist"}
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
"""Text types checked for their length alone."""
_ID_TYPES = frozenset({"id", "reference"})


class OrgData(Queries):
    """Records of every object, with Salesforce's validation, rules and query semantics."""

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

    def check_known_fields(self, obj: ObjectDef, body: Mapping[str, Any]) -> None:
        """A field the object does not have fails the whole request (JSON deserialization)."""
        fields = obj.fields
        for name in body:
            if name in ("attributes", "id", "Id"):
                continue
            if fields.get(name.lower()) is None:
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
            plain = type(value) is str and f.type in _PLAIN_TEXT
            if plain and (not f.length or len(value) <= f.length):
                return value, None  # what the checks below let through unchanged
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
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
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ApiError(
                    400, "JSON_PARSER_ERROR", f"Cannot deserialize number from {value!r}"
                )
            return value, None
        if f.type == "date":
            if not isinstance(value, str) or not _DATE.fullmatch(value):
                raise ApiError(400, "JSON_PARSER_ERROR", f"Cannot deserialize date from {value!r}")
            return value, None
        if f.type == "datetime":
            parsed = parse_datetime(value) if isinstance(value, str) else None
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
        full = to_18(value)
        target_obj = self.object_of_id(full)
        if target_obj is None or target_obj.name not in f.reference_to:
            return None, RecordError(
                "FIELD_INTEGRITY_EXCEPTION",
                f"{label}: id value of incorrect type: {value}",
                (f.name,),
            )
        target = self.records[target_obj.name.lower()].get(full)  # what find(value) gives
        if target is None:
            return None, RecordError(
                "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", (f.name,)
            )
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
        fields = obj.fields
        for name, raw in body.items():
            if name in ("attributes", "id", "Id"):
                continue
            f = fields.get(name.lower())
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
        missing = [name for name in obj.plan().required if record.get(name) in (None, "")]
        if missing:
            return RecordError(
                "REQUIRED_FIELD_MISSING",
                f"Required fields are missing: [{', '.join(missing)}]",
                tuple(missing),
            )
        return None

    def unique_clash(self, obj: ObjectDef, record: Mapping[str, Any]) -> RecordError | None:
        """A Unique field whose value another live record of ``obj`` has: ``DUPLICATE_VALUE``
        (case-insensitive, the default of Setup's "treat ABC and abc as duplicates")."""
        for f in obj.plan().unique:
            value = record.get(f.name)
            if value in (None, ""):
                continue
            others = (self.lookup(obj, f.name, [value]) or set()) - {record.get("Id")}
            if others:
                other = self.in_order(others)[0]
                return RecordError(
                    "DUPLICATE_VALUE",
                    f"duplicate value found: {f.name} duplicates value on record with id: {other}",
                    (f.name,),
                )
        return None

    def _duplicates(
        self, obj: ObjectDef, record: Mapping[str, Any], allow_save: bool
    ) -> RecordError | None:
        email = record.get("Email")
        if not email:
            return None
        rule = next(
            (
                r
                for r in self.duplicate_rules
                if r.active and r.object_name.lower() == obj.name.lower()
            ),
            None,
        )
        if rule is None:
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
        record: dict[str, Any] = dict(obj.plan().blank)
        record.update({k: v for k, v in values.items() if v is not None})
        if obj.plan().owned and not record.get("OwnerId"):
            record["OwnerId"] = self.default_lead_owner
        error = (
            self._missing_required(obj, record)
            or self._object_rules(obj, record)
            or self.unique_clash(obj, record)
        )
        if error is None:
            error = self._duplicates(obj, record, allow_save)
        if error is not None:
            return None, error
        self._assign(obj, record, auto_assign)
        return self.insert_raw(obj, record, canonical=True), None

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
        error = (
            self._missing_required(obj, merged)
            or (self._object_rules(obj, merged) if obj.name in ("Task", "CampaignMember") else None)
            or self.unique_clash(obj, merged)
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
