"""Custom fields created over HTTP, as the Tooling API creates them.

``POST /services/data/vXX.X/tooling/sobjects/CustomField`` with ``{"FullName":
"Lead.Signals_Sync_Key__c", "Metadata": {"label", "type": "Text", "length": 255,
"externalId": true, "unique": true, "caseSensitive": false}}`` (Tooling API Developer Guide,
"CustomField": ``FullName`` and ``Metadata`` (``CustomFieldMetadata``) are createable, REST
``POST`` is supported,
https://developer.salesforce.com/docs/atlas.en-us.api_tooling.meta/api_tooling/tooling_api_objects_customfield.htm)
answers 201 ``{"id": "00N...", "success": true, "errors": [], "warnings": [], "infos": []}``;
the field is then in the object's describe. Served types: ``Text``, ``Email``, ``Number`` and
``Checkbox``; ``externalId`` on the first three (External ID fields are text, number or
email). A name that does not end in ``__c``, an object the org does not have, a field that
exists or a type not served is a 400; those messages are the sandbox's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from signals_crm.testing.salesforce._ids import IdFactory
from signals_crm.testing.salesforce._records import ApiError, OrgData
from signals_crm.testing.salesforce._reply import Reply, json_body
from signals_crm.testing.salesforce._schema import FieldDef

__all__ = ["Tooling"]

_TYPES = {"Text": "string", "Email": "email", "Number": "double", "Checkbox": "boolean"}
_KEY_TYPES = frozenset({"Text", "Email", "Number"})


class Tooling:
    """The Tooling API's ``CustomField`` create (a part of LocalSalesforce; module doc)."""

    data: OrgData
    add_field: Callable[[str, FieldDef], None]
    _tooling_ids: IdFactory

    def _create_custom_field(self, body: bytes) -> Reply:
        payload = json_body(body)
        if not isinstance(payload, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
        full_name = payload.get("FullName")
        metadata: Any = payload.get("Metadata")
        if not isinstance(full_name, str) or not isinstance(metadata, dict):
            raise ApiError(400, "REQUIRED_FIELD_MISSING", "FullName and Metadata are required")
        object_name, _, field_name = full_name.partition(".")
        obj = self.data.object(object_name)
        if obj is None:
            raise ApiError(400, "INVALID_FIELD", f"Cannot find the entity {object_name}")
        if not field_name.endswith("__c") or len(field_name) <= 3:
            raise ApiError(
                400, "INVALID_FIELD", f"A custom field's name must end with __c: {field_name}"
            )
        if obj.field(field_name) is not None:
            raise ApiError(
                400,
                "DUPLICATE_DEVELOPER_NAME",
                f"There is already a field named {field_name} on {obj.name}.",
            )
        kind = metadata.get("type")
        if kind not in _TYPES:
            raise ApiError(400, "FIELD_INTEGRITY_EXCEPTION", f"Field type not served: {kind}")
        external_id = bool(metadata.get("externalId", False))
        if external_id and kind not in _KEY_TYPES:
            raise ApiError(
                400,
                "FIELD_INTEGRITY_EXCEPTION",
                "External ID fields must be text, number or email fields",
            )
        length = metadata.get("length")
        text_length = int(length) if isinstance(length, int) and kind == "Text" else 0
        if kind == "Text" and not 1 <= text_length <= 255:
            raise ApiError(400, "FIELD_INTEGRITY_EXCEPTION", "A text field's length is 1 to 255")
        label = metadata.get("label")
        field = FieldDef(
            field_name,
            _TYPES[kind],
            text_length or (80 if kind == "Email" else 0),
            str(label) if label else field_name.removesuffix("__c").replace("_", " "),
            custom=True,
            external_id=external_id,
            unique=bool(metadata.get("unique", False)),
            id_lookup=external_id,
            nillable=not bool(metadata.get("required", False)),
        )
        self.add_field(obj.name, field)
        new_id = self._tooling_ids.new("00N")
        return Reply(
            201, {"id": new_id, "success": True, "errors": [], "warnings": [], "infos": []}
        )
