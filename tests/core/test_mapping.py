"""Field mapping: create and update payloads, schema checks, placeholders, truncation."""

from __future__ import annotations

from datetime import date

from signals_crm.core.config import FieldMapping
from signals_crm.core.mapping import (
    build_create_fields,
    build_update_fields,
    same_value,
    validate_mappings,
)
from signals_crm.core.model import FieldSchema, FieldType, ObjectSchema

LEAD = ObjectSchema(
    "Lead",
    [
        FieldSchema("FirstName", FieldType.STRING, length=5),
        FieldSchema("LastName", FieldType.STRING, length=80, required=True),
        FieldSchema("Company", FieldType.STRING, length=255, required=True),
        FieldSchema("Email", FieldType.EMAIL, length=80),
        FieldSchema(
            "LeadSource",
            FieldType.PICKLIST,
            picklist_values=("Web", "Chat"),
            restricted_picklist=True,
        ),
        FieldSchema("NumberOfEmployees", FieldType.INTEGER),
        FieldSchema("HasOptedOut", FieldType.BOOLEAN),
        FieldSchema("Birthday__c", FieldType.DATE),
        FieldSchema("CreatedDate", FieldType.DATETIME, createable=False, updateable=False),
        FieldSchema("Rating", FieldType.STRING, updateable=False),
    ],
)


def m(source: str, target: str, overwrite: bool = False) -> FieldMapping:
    return FieldMapping(source, target, overwrite)


def test_create_sends_non_empty_values_and_email():
    """Create payloads carry every mapped non-empty value and the email."""
    payload = build_create_fields(
        {"contact.first_name": "Ada", "contact.last_name": "  ", "company.name": None},
        [
            m("contact.first_name", "FirstName"),
            m("contact.last_name", "LastName"),
            m("company.name", "Company"),
        ],
        email_field="Email",
        email=" ada@x.test ",
    )
    assert dict(payload.fields) == {"FirstName": "Ada", "Email": "ada@x.test"}


def test_placeholders_fill_required_fields_only():
    """Required empty fields get placeholders; fields the schema does not require do not."""
    payload = build_create_fields(
        {"contact.first_name": "Ada"},
        [m("contact.first_name", "FirstName")],
        schema=LEAD,
        placeholders={"LastName": "[none]", "Company": "[none]", "Rating": "x"},
    )
    assert payload.fields["LastName"] == "[none]"
    assert payload.fields["Company"] == "[none]"
    assert "Rating" not in payload.fields
    assert [r.code for r in payload.trace].count("placeholder_used") == 2


def test_too_long_text_is_truncated_with_a_warning():
    """Text over the field's length is cut to it, with a warning in the trace."""
    payload = build_create_fields(
        {"contact.first_name": "Bartholomew"},
        [m("contact.first_name", "FirstName")],
        schema=LEAD,
    )
    assert payload.fields["FirstName"] == "Barth"
    assert payload.trace[0].code == "value_truncated"


def test_schema_drops_unknown_readonly_and_misfit_values():
    """Unknown fields, read-only fields, bad picklist values and non-numbers are dropped."""
    payload = build_create_fields(
        {"a": "x", "b": "2026-01-01", "c": "Phone", "d": "many", "e": "yes", "f": "1990-05-04"},
        [
            m("a", "Nope__c"),
            m("b", "CreatedDate"),
            m("c", "LeadSource"),
            m("d", "NumberOfEmployees"),
            m("e", "HasOptedOut"),
            m("f", "Birthday__c"),
        ],
        schema=LEAD,
    )
    assert dict(payload.fields) == {"HasOptedOut": True, "Birthday__c": date(1990, 5, 4)}
    codes = sorted(r.code for r in payload.trace)
    assert codes == ["field_not_createable", "field_unknown", "value_dropped", "value_dropped"]


def test_update_sends_only_changed_overwrite_fields():
    """Update payloads hold overwrite fields whose value differs from the CRM's."""
    payload = build_update_fields(
        {"contact.first_name": "Ada", "contact.last_name": "Lovelace", "x": "42"},
        [
            m("contact.first_name", "FirstName", True),
            m("contact.last_name", "LastName"),
            m("x", "NumberOfEmployees", True),
        ],
        {"FirstName": "ada", "LastName": "Byron", "NumberOfEmployees": 42.0},
    )
    assert dict(payload.fields) == {"FirstName": "Ada"}


def test_update_never_writes_a_non_updateable_field():
    """A field the CRM will not update is dropped from updates with a warning."""
    payload = build_update_fields({"r": "Hot"}, [m("r", "Rating", True)], {}, schema=LEAD)
    assert dict(payload.fields) == {}
    assert payload.trace[0].code == "field_not_updateable"


def test_same_value_rules():
    """Numbers compare by value, text after trimming and with case, empties equal each other."""
    assert same_value("42", 42.0)
    assert same_value(" Ada ", "Ada")
    assert not same_value("ada", "Ada")
    assert same_value(None, "  ")
    assert not same_value("x", None)
    assert same_value(True, "true")


def test_validate_mappings_reports_every_problem_with_its_path():
    """Preflight names each bad target with its index."""
    problems = validate_mappings(
        [m("a", "FirstName"), m("b", "Missing__c"), m("c", "Rating", True), m("d", "CreatedDate")],
        LEAD,
        path="field_mappings.lead",
    )
    assert [p.path for p in problems] == [
        "field_mappings.lead[1].target",
        "field_mappings.lead[2].target",
        "field_mappings.lead[3].target",
    ]
