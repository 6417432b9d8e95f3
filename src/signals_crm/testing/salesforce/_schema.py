"""The local org's objects and fields, described the way ``sobjects/X/describe`` does."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from signals_crm.testing.salesforce._ids import KEY_PREFIXES

__all__ = ["CHILD_RELATIONSHIPS", "FieldDef", "ObjectDef", "standard_objects"]

CHILD_RELATIONSHIPS: dict[tuple[str, str], tuple[str, str]] = {
    ("account", "contacts"): ("Contact", "AccountId"),
    ("account", "tasks"): ("Task", "WhatId"),
    ("campaign", "tasks"): ("Task", "WhatId"),
    ("lead", "tasks"): ("Task", "WhoId"),
    ("contact", "tasks"): ("Task", "WhoId"),
    ("campaign", "campaignmembers"): ("CampaignMember", "CampaignId"),
    ("lead", "campaignmembers"): ("CampaignMember", "LeadId"),
    ("contact", "campaignmembers"): ("CampaignMember", "ContactId"),
}
"""(parent object, child relationship name), lower-case -> (child object, its reference field)."""

_TEXT_TYPES = frozenset({"string", "textarea", "email", "phone", "url", "combobox", "picklist"})
_SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "boolean": "xsd:boolean",
    "int": "xsd:int",
    "double": "xsd:double",
    "currency": "xsd:double",
    "percent": "xsd:double",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
    "address": "urn:address",
}


_GENERATION = [0]
"""Bumped whenever a field definition changes (see :meth:`ObjectDef.plan`)."""


def _changed(_instance: Any, _attribute: Any, value: Any) -> Any:
    _GENERATION[0] += 1
    return value


@attrs.define(on_setattr=_changed)
class FieldDef:
    """One field: its describe metadata and what validation reads from it."""

    name: str
    type: str = "string"
    length: int = 0
    label: str | None = None
    createable: bool = True
    updateable: bool = True
    nillable: bool = True
    defaulted_on_create: bool = False
    default: Any = None
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    picklist: tuple[str, ...] = ()
    restricted_picklist: bool = False
    id_lookup: bool = False
    custom: bool = False
    filterable: bool = True
    compound: str | None = None
    """The compound field this one is part of (``Address``, ``Name``)."""
    external_id: bool = False
    unique: bool = False

    @property
    def required(self) -> bool:
        return self.createable and not self.nillable and not self.defaulted_on_create

    def describe(self) -> dict[str, Any]:
        """The ``fields[]`` entry of a describe answer."""
        is_text = self.type in _TEXT_TYPES
        return {
            "name": self.name,
            "label": self.label or self.name,
            "type": self.type,
            "length": self.length if is_text else 0,
            "byteLength": self.length * 3 if is_text else 0,
            "soapType": _SOAP_TYPES.get(self.type, "xsd:string"),
            "compoundFieldName": self.compound,
            "precision": 18 if self.type == "currency" else 0,
            "scale": 2 if self.type == "currency" else 0,
            "digits": 9 if self.type == "int" else 0,
            "createable": self.createable,
            "updateable": self.updateable,
            "nillable": self.nillable,
            "defaultedOnCreate": self.defaulted_on_create,
            "defaultValue": None,
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "polymorphicForeignKey": len(self.reference_to) > 1,
            "namePointing": len(self.reference_to) > 1,
            "picklistValues": [
                {"active": True, "defaultValue": v == self.default, "label": v, "value": v}
                for v in self.picklist
            ],
            "restrictedPicklist": self.restricted_picklist,
            "idLookup": self.id_lookup,
            "unique": self.unique,
            "custom": self.custom,
            "calculated": False,
            "caseSensitive": False,
            "filterable": self.filterable,
            "sortable": self.filterable,
            "groupable": self.filterable,
            "autoNumber": False,
            "htmlFormatted": False,
            "nameField": self.name == "Name",
            "externalId": self.external_id,
        }


@attrs.define
class ObjectDef:
    """One sObject: its name, key prefix and fields (looked up case-insensitively)."""

    name: str
    fields: dict[str, FieldDef]
    createable: bool = True
    updateable: bool = True
    label: str | None = None
    _plan: FieldPlan | None = attrs.field(default=None, init=False, eq=False, repr=False)

    @property
    def key_prefix(self) -> str:
        return KEY_PREFIXES.get(self.name, "a00")

    def field(self, name: str) -> FieldDef | None:
        return self.fields.get(name.lower())

    def add(self, field: FieldDef) -> None:
        self.fields[field.name.lower()] = field
        self._plan = None

    def plan(self) -> FieldPlan:
        """What every write reads from the fields, worked out once: it is worked out again
        when a field is added (:meth:`add`, or an entry put in :attr:`fields`) or any
        :class:`FieldDef` attribute is set."""
        plan = self._plan
        if plan is None or plan.generation != _GENERATION[0] or plan.size != len(self.fields):
            plan = self._plan = FieldPlan.of(self.fields)
        return plan

    def relationship(self, name: str) -> FieldDef | None:
        lowered = name.lower()
        for f in self.fields.values():
            if f.relationship_name and f.relationship_name.lower() == lowered:
                return f
        return None

    def describe(self, instance_path: str) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label or self.name,
            "keyPrefix": self.key_prefix,
            "custom": False,
            "createable": self.createable,
            "updateable": self.updateable,
            "deletable": True,
            "queryable": True,
            "fields": [f.describe() for f in self.fields.values()],
            "childRelationships": [
                {
                    "cascadeDelete": False,
                    "childSObject": child,
                    "deprecatedAndHidden": False,
                    "field": field,
                    "relationshipName": _CHILD_NAMES[relation],
                    "restrictedDelete": False,
                }
                for (parent, relation), (child, field) in CHILD_RELATIONSHIPS.items()
                if parent == self.name.lower()
            ],
            "recordTypeInfos": [],
            "urls": {
                "sobject": f"{instance_path}/sobjects/{self.name}",
                "describe": f"{instance_path}/sobjects/{self.name}/describe",
            },
        }


@attrs.frozen
class FieldPlan:
    """An object's fields as writes read them, in field order (see :meth:`ObjectDef.plan`).

    ``blank`` is a new record before its values: each field defaulted on create with a
    default has it, every other boolean is false. ``required`` are the createable fields that
    may not be null; ``unique`` the Unique ones; ``indexed`` the fields the store indexes
    (email, references and id lookups); ``owned``: the object has an ``OwnerId``.
    """

    generation: int
    size: int
    blank: Mapping[str, Any]
    required: tuple[str, ...]
    unique: tuple[FieldDef, ...]
    indexed: tuple[FieldDef, ...]
    owned: bool

    @classmethod
    def of(cls, fields: Mapping[str, FieldDef]) -> FieldPlan:
        blank: dict[str, Any] = {}
        for f in fields.values():
            if f.defaulted_on_create and f.default is not None:
                blank[f.name] = f.default
            elif f.type == "boolean":
                blank[f.name] = False
        values = list(fields.values())
        return cls(
            generation=_GENERATION[0],
            size=len(fields),
            blank=blank,
            required=tuple(f.name for f in values if f.createable and not f.nillable),
            unique=tuple(f for f in values if f.unique),
            indexed=tuple(f for f in values if f.type in ("email", "reference") or f.id_lookup),
            owned="ownerid" in fields,
        )


def _audit(name: str, label: str, relationship: str) -> FieldDef:
    return FieldDef(
        name,
        "reference",
        18,
        label,
        createable=False,
        updateable=False,
        nillable=False,
        defaulted_on_create=True,
        reference_to=("User",),
        relationship_name=relationship,
    )


def _system() -> list[FieldDef]:
    return [
        FieldDef("Id", "id", 18, "Record ID", createable=False, updateable=False, nillable=False),
        _audit("CreatedById", "Created By ID", "CreatedBy"),
        _audit("LastModifiedById", "Last Modified By ID", "LastModifiedBy"),
        FieldDef(
            "SystemModstamp",
            "datetime",
            label="System Modstamp",
            createable=False,
            updateable=False,
        ),
        FieldDef(
            "CreatedDate", "datetime", label="Created Date", createable=False, updateable=False
        ),
        FieldDef(
            "LastModifiedDate",
            "datetime",
            label="Last Modified Date",
            createable=False,
            updateable=False,
        ),
        FieldDef("IsDeleted", "boolean", label="Deleted", createable=False, updateable=False),
    ]


def _address(prefix: str, compound: str) -> list[FieldDef]:
    label = f"{prefix} " if prefix else ""
    parts = [
        FieldDef(f"{prefix}Street", "textarea", 255, f"{label}Street", compound=compound),
        FieldDef(f"{prefix}City", "string", 40, f"{label}City", compound=compound),
        FieldDef(f"{prefix}State", "string", 80, f"{label}State/Province", compound=compound),
        FieldDef(f"{prefix}PostalCode", "string", 20, f"{label}Zip/Postal Code", compound=compound),
        FieldDef(f"{prefix}Country", "string", 80, f"{label}Country", compound=compound),
        FieldDef(f"{prefix}Latitude", "double", label=f"{label}Latitude", compound=compound),
        FieldDef(f"{prefix}Longitude", "double", label=f"{label}Longitude", compound=compound),
    ]
    return [
        *parts,
        FieldDef(
            compound,
            "address",
            label=f"{label}Address".strip(),
            createable=False,
            updateable=False,
            filterable=False,
        ),
    ]


ADDRESSES: dict[str, tuple[tuple[str, str], ...]] = {
    "lead": (("", "Address"),),
    "contact": (("Mailing", "MailingAddress"),),
    "account": (("Billing", "BillingAddress"),),
}
"""Compound address fields per object: (component prefix, compound name)."""
NAMED = frozenset({"lead", "contact"})
"""Objects whose ``Name`` is compound: ``FirstName`` and ``LastName``."""
SALUTATIONS = ("Mr.", "Ms.", "Mrs.", "Dr.", "Prof.", "Mx.")


def _person_name() -> list[FieldDef]:
    return [
        FieldDef("Salutation", "picklist", 40, "Salutation", picklist=SALUTATIONS, compound="Name"),
        FieldDef("FirstName", "string", 40, "First Name", compound="Name"),
        FieldDef("LastName", "string", 80, "Last Name", nillable=False, compound="Name"),
        FieldDef("Name", "string", 121, "Full Name", createable=False, updateable=False),
    ]


def _obj(name: str, fields: list[FieldDef], **kw: Any) -> ObjectDef:
    return ObjectDef(name, {f.name.lower(): f for f in [*_system(), *fields]}, **kw)


def _owner(targets: tuple[str, ...] = ("User",)) -> FieldDef:
    return FieldDef(
        "OwnerId",
        "reference",
        18,
        "Owner ID",
        nillable=False,
        defaulted_on_create=True,
        reference_to=targets,
        relationship_name="Owner",
    )


_CHILD_NAMES = {"contacts": "Contacts", "tasks": "Tasks", "campaignmembers": "CampaignMembers"}

RATINGS = ("Hot", "Warm", "Cold")
LEAD_STATUSES = (
    "Open - Not Contacted",
    "Working - Contacted",
    "Closed - Converted",
    "Closed - Not Converted",
)
LEAD_SOURCES = ("Web", "Chat", "Phone Inquiry", "Partner Referral", "Other")
INDUSTRIES = ("Agriculture", "Banking", "Technology", "Retail", "Other")


def standard_objects() -> dict[str, ObjectDef]:
    """Lead, Contact, Account, User, Group, Task, Campaign and CampaignMember, keyed by
    lower-case name."""
    lead = _obj(
        "Lead",
        [
            *_person_name(),
            FieldDef("Company", "string", 255, "Company", nillable=False),
            FieldDef("Email", "email", 80, "Email", id_lookup=True),
            FieldDef("Phone", "phone", 40, "Phone"),
            FieldDef("MobilePhone", "phone", 40, "Mobile Phone"),
            FieldDef("Fax", "phone", 40, "Fax"),
            FieldDef("Title", "string", 128, "Title"),
            FieldDef("Website", "url", 255, "Website"),
            *_address("", "Address"),
            FieldDef("Description", "textarea", 32000, "Description", filterable=False),
            FieldDef("Rating", "picklist", 255, "Rating", picklist=RATINGS),
            FieldDef("NumberOfEmployees", "int", label="Employees"),
            FieldDef("AnnualRevenue", "currency", label="Annual Revenue"),
            FieldDef("HasOptedOutOfEmail", "boolean", label="Email Opt Out"),
            FieldDef("DoNotCall", "boolean", label="Do Not Call"),
            FieldDef("LeadSource", "picklist", 255, "Lead Source", picklist=LEAD_SOURCES),
            FieldDef("Industry", "picklist", 255, "Industry", picklist=INDUSTRIES),
            FieldDef(
                "Status",
                "picklist",
                255,
                "Status",
                nillable=False,
                defaulted_on_create=True,
                default=LEAD_STATUSES[0],
                picklist=LEAD_STATUSES,
                restricted_picklist=True,
            ),
            _owner(("Group", "User")),
            FieldDef(
                "IsConverted", "boolean", label="Converted", createable=False, updateable=False
            ),
            FieldDef(
                "ConvertedContactId",
                "reference",
                18,
                "Converted Contact ID",
                createable=False,
                updateable=False,
                reference_to=("Contact",),
                relationship_name="ConvertedContact",
            ),
            FieldDef(
                "ConvertedAccountId",
                "reference",
                18,
                "Converted Account ID",
                createable=False,
                updateable=False,
                reference_to=("Account",),
                relationship_name="ConvertedAccount",
            ),
            FieldDef(
                "ConvertedDate", "date", label="Converted Date", createable=False, updateable=False
            ),
        ],
    )
    contact = _obj(
        "Contact",
        [
            *_person_name(),
            FieldDef("Email", "email", 80, "Email", id_lookup=True),
            FieldDef("Phone", "phone", 40, "Business Phone"),
            FieldDef("MobilePhone", "phone", 40, "Mobile Phone"),
            FieldDef("Fax", "phone", 40, "Business Fax"),
            FieldDef("Department", "string", 80, "Department"),
            FieldDef("Birthdate", "date", label="Birthdate"),
            FieldDef("LeadSource", "picklist", 255, "Lead Source", picklist=LEAD_SOURCES),
            FieldDef("HasOptedOutOfEmail", "boolean", label="Email Opt Out"),
            *_address("Mailing", "MailingAddress"),
            FieldDef("Title", "string", 128, "Title"),
            FieldDef("Description", "textarea", 32000, "Contact Description", filterable=False),
            FieldDef(
                "AccountId",
                "reference",
                18,
                "Account ID",
                reference_to=("Account",),
                relationship_name="Account",
            ),
            _owner(),
        ],
    )
    account = _obj(
        "Account",
        [
            FieldDef("Name", "string", 255, "Account Name", nillable=False),
            FieldDef("Website", "url", 255, "Website"),
            FieldDef("Phone", "phone", 40, "Account Phone"),
            FieldDef("Fax", "phone", 40, "Account Fax"),
            FieldDef(
                "Type",
                "picklist",
                255,
                "Account Type",
                picklist=(
                    "Prospect",
                    "Customer - Direct",
                    "Customer - Channel",
                    "Partner",
                    "Other",
                ),
            ),
            FieldDef("Rating", "picklist", 255, "Account Rating", picklist=RATINGS),
            FieldDef("NumberOfEmployees", "int", label="Employees"),
            FieldDef("AnnualRevenue", "currency", label="Annual Revenue"),
            *_address("Billing", "BillingAddress"),
            FieldDef("Industry", "picklist", 255, "Industry", picklist=INDUSTRIES),
            FieldDef("Description", "textarea", 32000, "Account Description", filterable=False),
            _owner(),
            FieldDef(
                "SDR_Owner__c",
                "reference",
                18,
                "SDR Owner",
                reference_to=("User",),
                relationship_name="SDR_Owner__r",
                custom=True,
            ),
        ],
    )
    user = _obj(
        "User",
        [
            FieldDef("Username", "string", 80, "Username", createable=False, updateable=False),
            FieldDef("Email", "email", 128, "Email", createable=False, updateable=False),
            FieldDef("FirstName", "string", 40, "First Name", createable=False, updateable=False),
            FieldDef("LastName", "string", 80, "Last Name", createable=False, updateable=False),
            FieldDef("Name", "string", 121, "Full Name", createable=False, updateable=False),
            FieldDef("IsActive", "boolean", label="Active", createable=False, updateable=False),
        ],
        createable=False,
        updateable=False,
    )
    group = _obj(
        "Group",
        [
            FieldDef("Name", "string", 40, "Name", createable=False, updateable=False),
            FieldDef("DeveloperName", "string", 80, "Developer Name", createable=False),
            FieldDef("Type", "picklist", 40, "Type", createable=False, picklist=("Queue",)),
        ],
        createable=False,
        updateable=False,
    )
    task = _obj(
        "Task",
        [
            FieldDef(
                "WhoId",
                "reference",
                18,
                "Name ID",
                reference_to=("Contact", "Lead"),
                relationship_name="Who",
            ),
            FieldDef(
                "WhatId",
                "reference",
                18,
                "Related To ID",
                reference_to=("Account", "Campaign"),
                relationship_name="What",
            ),
            FieldDef("Subject", "combobox", 255, "Subject"),
            FieldDef("Description", "textarea", 32000, "Description", filterable=False),
            FieldDef("ActivityDate", "date", label="Due Date Only"),
            FieldDef(
                "Status",
                "picklist",
                255,
                "Status",
                nillable=False,
                defaulted_on_create=True,
                default="Not Started",
                picklist=("Not Started", "In Progress", "Completed", "Deferred"),
                restricted_picklist=True,
            ),
            FieldDef(
                "Priority",
                "picklist",
                255,
                "Priority",
                nillable=False,
                defaulted_on_create=True,
                default="Normal",
                picklist=("High", "Normal", "Low"),
                restricted_picklist=True,
            ),
            FieldDef(
                "TaskSubtype",
                "picklist",
                255,
                "Task Subtype",
                updateable=False,
                picklist=("Task", "Email", "ListEmail", "Call"),
                restricted_picklist=True,
            ),
            FieldDef(
                "Type", "picklist", 255, "Type", picklist=("Call", "Email", "Meeting", "Other")
            ),
            _owner(),
        ],
    )
    campaign = _obj(
        "Campaign",
        [
            FieldDef("Name", "string", 80, "Name", nillable=False),
            FieldDef("IsActive", "boolean", label="Active"),
            FieldDef("Status", "picklist", 255, "Status", picklist=("Planned", "In Progress")),
            FieldDef("Type", "picklist", 255, "Type", picklist=("Webinar", "Other")),
            _owner(),
        ],
    )
    member = _obj(
        "CampaignMember",
        [
            FieldDef(
                "CampaignId",
                "reference",
                18,
                "Campaign ID",
                nillable=False,
                updateable=False,
                reference_to=("Campaign",),
                relationship_name="Campaign",
            ),
            FieldDef(
                "LeadId",
                "reference",
                18,
                "Lead ID",
                updateable=False,
                reference_to=("Lead",),
                relationship_name="Lead",
            ),
            FieldDef(
                "ContactId",
                "reference",
                18,
                "Contact ID",
                updateable=False,
                reference_to=("Contact",),
                relationship_name="Contact",
            ),
            FieldDef(
                "Status",
                "picklist",
                255,
                "Status",
                defaulted_on_create=True,
                default="Sent",
            ),
            FieldDef(
                "HasResponded", "boolean", label="Responded", createable=False, updateable=False
            ),
        ],
    )
    organization = _obj(
        "Organization",
        [
            FieldDef("Name", "string", 80, "Name", createable=False, updateable=False),
            FieldDef(
                "OrganizationType", "picklist", 40, "Edition", createable=False, updateable=False
            ),
            FieldDef(
                "InstanceName", "string", 5, "Instance Name", createable=False, updateable=False
            ),
            FieldDef(
                "IsSandbox", "boolean", label="Is Sandbox", createable=False, updateable=False
            ),
            FieldDef(
                "LanguageLocaleKey", "picklist", 40, "Language", createable=False, updateable=False
            ),
            FieldDef(
                "TimeZoneSidKey", "picklist", 40, "Time Zone", createable=False, updateable=False
            ),
            FieldDef(
                "DefaultLocaleSidKey", "picklist", 40, "Locale", createable=False, updateable=False
            ),
        ],
        createable=False,
        updateable=False,
    )
    record_type = _obj(
        "RecordType",
        [
            FieldDef("Name", "string", 80, "Record Type Name", createable=False, updateable=False),
            FieldDef(
                "DeveloperName",
                "string",
                80,
                "Record Type Name",
                createable=False,
                updateable=False,
            ),
            FieldDef(
                "SobjectType",
                "picklist",
                40,
                "SObject Type Name",
                createable=False,
                updateable=False,
            ),
            FieldDef("IsActive", "boolean", label="Active", createable=False, updateable=False),
        ],
        createable=False,
        updateable=False,
    )
    lead_status = _obj(
        "LeadStatus",
        [
            FieldDef(
                "MasterLabel", "string", 255, "Master Label", createable=False, updateable=False
            ),
            FieldDef("ApiName", "string", 255, "Api Name", createable=False, updateable=False),
            FieldDef("SortOrder", "int", label="Sort Order", createable=False, updateable=False),
            FieldDef(
                "IsDefault", "boolean", label="Is Default", createable=False, updateable=False
            ),
            FieldDef(
                "IsConverted", "boolean", label="Is Converted", createable=False, updateable=False
            ),
        ],
        createable=False,
        updateable=False,
    )
    member_status = _obj(
        "CampaignMemberStatus",
        [
            FieldDef(
                "CampaignId",
                "reference",
                18,
                "Campaign ID",
                nillable=False,
                updateable=False,
                reference_to=("Campaign",),
                relationship_name="Campaign",
            ),
            FieldDef("Label", "string", 765, "Member Status", nillable=False),
            FieldDef("SortOrder", "int", label="Sort Order"),
            FieldDef("IsDefault", "boolean", label="Is Default"),
            FieldDef("HasResponded", "boolean", label="Responded"),
        ],
    )
    duplicate_rule = _obj(
        "DuplicateRule",
        [
            FieldDef(
                "DeveloperName", "string", 80, "Rule Name", createable=False, updateable=False
            ),
            FieldDef("MasterLabel", "string", 80, "Label", createable=False, updateable=False),
            FieldDef("SobjectType", "picklist", 40, "Object", createable=False, updateable=False),
            FieldDef("IsActive", "boolean", label="Active", createable=False),
        ],
        createable=False,
    )
    assignment_rule = _obj(
        "AssignmentRule",
        [
            FieldDef("Name", "string", 120, "Name", createable=False, updateable=False),
            FieldDef("SobjectType", "picklist", 40, "Object", createable=False, updateable=False),
            FieldDef("Active", "boolean", label="Active", createable=False),
        ],
        createable=False,
    )
    queue_sobject = _obj(
        "QueueSobject",
        [
            FieldDef(
                "QueueId",
                "reference",
                18,
                "Group ID",
                reference_to=("Group",),
                relationship_name="Queue",
                createable=False,
                updateable=False,
            ),
            FieldDef(
                "SobjectType", "picklist", 40, "SObject Type", createable=False, updateable=False
            ),
        ],
        createable=False,
        updateable=False,
    )
    objects = [
        lead,
        contact,
        account,
        user,
        group,
        task,
        campaign,
        member,
        organization,
        record_type,
        lead_status,
        member_status,
        duplicate_rule,
        assignment_rule,
        queue_sobject,
    ]
    return {o.name.lower(): o for o in objects}


def describe_all(objects: Mapping[str, ObjectDef]) -> list[str]:
    return sorted(o.name for o in objects.values())
