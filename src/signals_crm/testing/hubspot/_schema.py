"""The default properties of the local HubSpot portal (shapes of the Properties API).

Realistic defaults for contacts, companies, tasks, notes and meetings: read-only system
properties (``hs_object_id``, ``createdate``, ``lastmodifieddate``), enumerations with
``displayOrder`` (``lifecyclestage``, ``hs_lead_status``, ``hs_task_status``, ...), and owner
properties (``referencedObjectType: "OWNER"``, ``externalOptions: true``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs

__all__ = [
    "ASSOCIATION_TYPES",
    "MAX_UNIQUE_PROPERTIES",
    "OBJECT_TYPE_IDS",
    "SINGULAR",
    "UNIQUE_VALUE_OBJECTS",
    "AssociationType",
    "default_properties",
    "make_property",
]

OBJECT_TYPE_IDS: Final[Mapping[str, str]] = {
    "contacts": "0-1",
    "companies": "0-2",
    "deals": "0-3",
    "tasks": "0-27",
    "notes": "0-46",
    "meetings": "0-47",
    "calls": "0-48",
}
UNIQUE_VALUE_OBJECTS: Final = frozenset({"contacts", "companies", "deals", "calls"})
"""The portal's objects whose custom properties may be ``hasUniqueValue`` (served ones only).

HubSpot's developer changelog "Unique Properties support for newly created Contact properties"
(https://developers.hubspot.com/changelog/unique-properties-for-contacts) says unique
properties exist for companies, deals, tickets and custom objects, and from then on for
contacts ("only net new properties", "a maximum of 10 unique properties" per object); a later
product update (reported by HubSpot partners) added further objects, calls among them. Tasks,
notes and meetings are in neither list: the portal refuses ``hasUniqueValue`` on them."""
MAX_UNIQUE_PROPERTIES: Final = 10
SINGULAR: Final[Mapping[str, str]] = {
    "contacts": "contact",
    "companies": "company",
    "deals": "deal",
    "tasks": "task",
    "notes": "note",
    "meetings": "meeting",
    "calls": "call",
}


@attrs.frozen
class AssociationType:
    """One HUBSPOT_DEFINED association type between two object types (Associations v4)."""

    from_type: str
    to_type: str
    type_id: int
    inverse_id: int
    label: str | None = None
    default: bool = False

    @property
    def name(self) -> str:
        """The v3 name (``contact_to_company``, ``contact_to_company_unlabeled``)."""
        base = f"{SINGULAR[self.from_type]}_to_{SINGULAR[self.to_type]}"
        if self.label is None and self.type_id in _HAS_PRIMARY:
            return f"{base}_unlabeled"
        return base


# (from, to, typeId, inverse typeId, label, default) -- HubSpot's documented default type ids.
_TABLE: Final = (
    ("contacts", "companies", 279, 280, None, True),
    ("contacts", "companies", 1, 2, "Primary", False),
    ("deals", "contacts", 3, 4, None, True),
    ("deals", "companies", 341, 342, None, True),
    ("deals", "companies", 5, 6, "Primary", False),
    ("tasks", "contacts", 204, 203, None, True),
    ("tasks", "companies", 192, 191, None, True),
    ("tasks", "deals", 216, 215, None, True),
    ("notes", "contacts", 202, 201, None, True),
    ("notes", "companies", 190, 189, None, True),
    ("notes", "deals", 214, 213, None, True),
    ("meetings", "contacts", 200, 199, None, True),
    ("meetings", "companies", 188, 187, None, True),
    ("meetings", "deals", 212, 211, None, True),
    ("calls", "contacts", 194, 193, None, True),
    ("calls", "companies", 182, 181, None, True),
    ("calls", "deals", 206, 205, None, True),
)
_HAS_PRIMARY: Final = frozenset({279, 280, 341, 342})


def _types() -> dict[tuple[str, int], AssociationType]:
    out: dict[tuple[str, int], AssociationType] = {}
    for from_type, to_type, type_id, inverse, label, default in _TABLE:
        out[(from_type, type_id)] = AssociationType(
            from_type, to_type, type_id, inverse, label, default
        )
        out[(to_type, inverse)] = AssociationType(
            to_type, from_type, inverse, type_id, label, default
        )
    return out


ASSOCIATION_TYPES: Final[Mapping[tuple[str, int], AssociationType]] = _types()
"""(from object type, typeId) -> the association type, both directions."""

LIFECYCLE_STAGES: Final = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
)


def make_property(
    name: str,
    label: str,
    *,
    type: str = "string",  # noqa: A002  # HubSpot's own field name
    field_type: str = "text",
    options: Sequence[str] = (),
    read_only: bool = False,
    owner: bool = False,
    group: str = "information",
    unique: bool = False,
    hubspot_defined: bool = True,
) -> dict[str, Any]:
    """One ``Property`` as the Properties API returns it."""
    prop: dict[str, Any] = {
        "name": name,
        "label": label,
        "type": "enumeration" if owner else type,
        "fieldType": "select" if owner else field_type,
        "description": "",
        "groupName": group,
        "options": [
            {"label": v.replace("_", " ").title(), "value": v, "displayOrder": i, "hidden": False}
            for i, v in enumerate(options)
        ],
        "displayOrder": -1,
        "calculated": False,
        "externalOptions": owner,
        "hasUniqueValue": unique,
        "hidden": False,
        "hubspotDefined": hubspot_defined,
        "modificationMetadata": {
            "archivable": not hubspot_defined,
            "readOnlyDefinition": hubspot_defined,
            "readOnlyValue": read_only,
        },
        "formField": not read_only,
        "dataSensitivity": "non_sensitive",
        "archived": False,
        "createdAt": "2020-01-01T00:00:00.000Z",
        "updatedAt": "2020-01-01T00:00:00.000Z",
    }
    if owner:
        prop["referencedObjectType"] = "OWNER"
    return prop


def _system(modified: str) -> list[dict[str, Any]]:
    return [
        make_property(
            "hs_object_id", "Record ID", type="number", field_type="number", read_only=True
        ),
        make_property(
            "createdate", "Create Date", type="datetime", field_type="date", read_only=True
        ),
        make_property(
            modified, "Last Modified Date", type="datetime", field_type="date", read_only=True
        ),
        make_property("hubspot_owner_id", "Owner", owner=True),
    ]


def default_properties() -> dict[str, dict[str, dict[str, Any]]]:
    """Fresh default properties, by object type and property name."""
    contacts = [
        *_system("lastmodifieddate"),
        make_property("email", "Email"),
        # Set by HubSpot from the primary company association; read-only since 2019 (changelog
        # "The associatedcompanyid contact property will become read-only").
        make_property(
            "associatedcompanyid",
            "Primary Associated Company ID",
            type="number",
            field_type="number",
            read_only=True,
        ),
        make_property("firstname", "First Name"),
        make_property("lastname", "Last Name"),
        make_property("phone", "Phone Number", field_type="phonenumber"),
        make_property("mobilephone", "Mobile Phone Number", field_type="phonenumber"),
        make_property("company", "Company Name"),
        make_property("jobtitle", "Job Title"),
        make_property("website", "Website URL"),
        make_property("city", "City"),
        make_property("country", "Country/Region"),
        make_property("message", "Message", field_type="textarea"),
        make_property("numemployees", "Number of Employees", type="number", field_type="number"),
        make_property("date_of_birth", "Date of birth", type="date", field_type="date"),
        make_property(
            "hs_additional_emails",
            "Additional email addresses",
            type="enumeration",
            field_type="checkbox",
            read_only=True,
        ),
        make_property(
            "lifecyclestage",
            "Lifecycle Stage",
            type="enumeration",
            field_type="radio",
            options=LIFECYCLE_STAGES,
        ),
        make_property(
            "hs_lead_status",
            "Lead Status",
            type="enumeration",
            field_type="select",
            options=(
                "NEW",
                "OPEN",
                "IN_PROGRESS",
                "OPEN_DEAL",
                "UNQUALIFIED",
                "ATTEMPTED_TO_CONTACT",
                "CONNECTED",
                "BAD_TIMING",
            ),
        ),
        make_property(
            "hs_email_optout",
            "Unsubscribed from all email",
            type="bool",
            field_type="booleancheckbox",
        ),
    ]
    companies = [
        *_system("hs_lastmodifieddate"),
        make_property("name", "Company name"),
        make_property("domain", "Company Domain Name"),
        make_property("website", "Website URL"),
        make_property("description", "Description", field_type="textarea"),
        make_property("city", "City"),
        make_property("country", "Country/Region"),
        make_property("phone", "Phone Number", field_type="phonenumber"),
        make_property(
            "numberofemployees", "Number of Employees", type="number", field_type="number"
        ),
        make_property("annualrevenue", "Annual Revenue", type="number", field_type="number"),
        make_property(
            "industry",
            "Industry",
            type="enumeration",
            field_type="select",
            options=("COMPUTER_SOFTWARE", "FINANCIAL_SERVICES", "HOSPITAL_HEALTH_CARE", "RETAIL"),
        ),
        make_property("hubspot_team_id", "HubSpot Team", type="enumeration", field_type="select"),
        make_property("account_manager", "Account manager", owner=True, hubspot_defined=False),
    ]
    tasks = [
        *_system("hs_lastmodifieddate"),
        make_property("hs_timestamp", "Due date", type="datetime", field_type="date"),
        make_property("hs_task_subject", "Task Title"),
        make_property("hs_task_body", "Notes", field_type="html"),
        make_property(
            "hs_task_status",
            "Task Status",
            type="enumeration",
            field_type="select",
            options=("NOT_STARTED", "IN_PROGRESS", "WAITING", "COMPLETED", "DEFERRED"),
        ),
        make_property(
            "hs_task_priority",
            "Priority",
            type="enumeration",
            field_type="select",
            options=("NONE", "LOW", "MEDIUM", "HIGH"),
        ),
        make_property(
            "hs_task_type",
            "Task Type",
            type="enumeration",
            field_type="select",
            options=("TODO", "CALL", "EMAIL", "LINKED_IN"),
        ),
        make_property("hs_task_reminders", "Reminder", type="enumeration", field_type="checkbox"),
    ]
    notes = [
        *_system("hs_lastmodifieddate"),
        make_property("hs_timestamp", "Activity date", type="datetime", field_type="date"),
        make_property("hs_note_body", "Note body", field_type="html"),
        make_property(
            "hs_attachment_ids", "Attachment IDs", type="enumeration", field_type="checkbox"
        ),
    ]
    meetings = [
        *_system("hs_lastmodifieddate"),
        make_property("hs_timestamp", "Activity date", type="datetime", field_type="date"),
        make_property("hs_meeting_title", "Meeting name"),
        make_property("hs_meeting_body", "Meeting description", field_type="html"),
        make_property("hs_meeting_start_time", "Start Time", type="datetime", field_type="date"),
        make_property("hs_meeting_end_time", "End Time", type="datetime", field_type="date"),
        make_property(
            "hs_meeting_outcome",
            "Meeting outcome",
            type="enumeration",
            field_type="select",
            options=("SCHEDULED", "COMPLETED", "RESCHEDULED", "NO_SHOW", "CANCELED"),
        ),
    ]
    deals = [
        *_system("hs_lastmodifieddate"),
        make_property("dealname", "Deal Name"),
        make_property("amount", "Amount", type="number", field_type="number"),
        make_property("closedate", "Close Date", type="datetime", field_type="date"),
        make_property(
            "pipeline", "Pipeline", type="enumeration", field_type="select", options=("default",)
        ),
        make_property(
            "dealstage",
            "Deal Stage",
            type="enumeration",
            field_type="radio",
            options=(
                "appointmentscheduled",
                "qualifiedtobuy",
                "presentationscheduled",
                "decisionmakerboughtin",
                "contractsent",
                "closedwon",
                "closedlost",
            ),
        ),
        make_property("description", "Deal Description", field_type="textarea"),
    ]
    calls = [
        *_system("hs_lastmodifieddate"),
        make_property("hs_timestamp", "Activity date", type="datetime", field_type="date"),
        make_property("hs_call_title", "Call Title"),
        make_property("hs_call_body", "Call notes", field_type="html"),
        make_property("hs_call_duration", "Call duration", type="number", field_type="number"),
        make_property("hs_call_from_number", "From number", field_type="phonenumber"),
        make_property("hs_call_to_number", "To number", field_type="phonenumber"),
        make_property(
            "hs_call_direction",
            "Call direction",
            type="enumeration",
            field_type="select",
            options=("INBOUND", "OUTBOUND"),
        ),
        make_property(
            "hs_call_status",
            "Call status",
            type="enumeration",
            field_type="select",
            options=(
                "BUSY",
                "CALLING_CRM_USER",
                "CANCELED",
                "COMPLETED",
                "CONNECTING",
                "FAILED",
                "IN_PROGRESS",
                "NO_ANSWER",
                "QUEUED",
                "RINGING",
            ),
        ),
    ]
    return {
        name: {p["name"]: p for p in props}
        for name, props in (
            ("contacts", contacts),
            ("companies", companies),
            ("deals", deals),
            ("tasks", tasks),
            ("notes", notes),
            ("meetings", meetings),
            ("calls", calls),
        )
    }
