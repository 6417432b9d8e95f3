"""The org's upserts by external ID: ``sobjects/X/{Field}/{value}`` and Collections upsert.

What the REST API Developer Guide documents, and the sandbox does:

1. **sObject Rows by External ID** (``/vXX.X/sobjects/{SObject}/{fieldName}/{fieldValue}``,
   pages "sObject Rows by External ID" and "Insert or Update (Upsert) a Record Using an External
   ID", https://developer.salesforce.com/docs/platform/api-rest/guide/dome-upsert.html):
   ``PATCH`` creates the record when the value matches none (**201** ``{"id", "success",
   "errors": [], "created": true}``), updates it when it matches one (**200** with
   ``"created": false`` from API version 46.0; 204 without a body before) and writes nothing
   when it matches several (**300**, the body a list of the matching records' URLs).
   ``?updateOnly=true`` refuses the create branch (404). ``GET`` reads the record (200 / 300 /
   404) and ``DELETE`` deletes it (204 / 300 / 404). Neither ``Id`` nor the external-ID field
   may appear in the body (400). A field that is neither an External ID nor an ``idLookup``
   field (``Lead.Email`` is one) is "not found" (404 ``NOT_FOUND``).
2. **Upsert Records Using sObject Collections** (``PATCH /vXX.X/composite/sobjects/{SObject}/
   {ExternalIdFieldName}``, API version 46.0 and later,
   https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-sobjects-collections-upsert.html):
   up to 200 records, only of the type the URI names, each with ``attributes.type``, none with
   an ``id`` ("Only external ids are supported"); processed and answered in request order as
   UpsertResults (``id``, ``success``, ``errors``, ``created``); a malformed request is 400, a
   well-formed one 200 whatever became of each record; ``allOrNone`` rolls everything back on
   any failure. Each record carries its key in the external-ID field; two records of one
   request with the same key both fail with ``DUPLICATE_EXTERNAL_ID`` and a key matching
   several records fails that record with the same code (the SOAP API's name for it).
3. Matching follows the field's index: a Unique field is matched case-insensitively (the
   default "treat ABC and abc as duplicates" option), and a Unique field refuses a second
   record with the same value (``DUPLICATE_VALUE``, see :meth:`OrgData.unique_clash`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from signals_crm.testing.salesforce._records import ApiError, OrgData, RecordError
from signals_crm.testing.salesforce._reply import (
    Reply,
    allow_save,
    error_reply,
    json_body,
    locked_rows,
    rolled_back,
    status_for,
)
from signals_crm.testing.salesforce._schema import FieldDef, ObjectDef

__all__ = ["UPSERT_VERSION", "Upserts", "external_id_field"]

UPSERT_VERSION = 46
"""The first API version whose upserts answer ``created`` (and that has Collections upsert)."""


def external_id_field(name: str, *, length: int = 255, label: str | None = None) -> FieldDef:
    """A custom text field marked External ID and Unique, as an admin creates it in Setup
    ("Setting up the external ID field" in ``docs/salesforce.md``)."""
    if not name.endswith("__c") or len(name) <= 3:
        msg = f"a custom field's API name ends with __c: {name!r}"
        raise ValueError(msg)
    return FieldDef(
        name,
        "string",
        length,
        label or name.removesuffix("__c").replace("_", " "),
        custom=True,
        external_id=True,
        unique=True,
        id_lookup=True,
    )


def _major(version: str) -> int:
    return int(version.split(".", 1)[0])


class Upserts:
    """Upserts by external ID (a part of LocalSalesforce; module doc)."""

    data: OrgData

    def _key_field(self, obj: ObjectDef, field_name: str) -> FieldDef:
        found = obj.field(field_name)
        if found is None or not (found.external_id or found.id_lookup) or found.type == "id":
            raise ApiError(
                404,
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {field_name}",
            )
        return found

    def _matches(self, obj: ObjectDef, key: FieldDef, value: Any) -> list[str]:
        if value is None or value == "":
            return []
        return self.data.in_order(self.data.lookup(obj, key.name, [value]) or set())

    @staticmethod
    def _urls(version: str, obj: ObjectDef, ids: list[str]) -> list[str]:
        return [f"/services/data/v{version}/sobjects/{obj.name}/{i}" for i in ids]

    def _by_external_id(
        self,
        method: str,
        version: str,
        obj: ObjectDef,
        field_name: str,
        value: str,
        *,
        headers: Mapping[str, str],
        body: bytes,
        params: Mapping[str, str],
    ) -> Reply:
        """``sobjects/X/{Field}/{value}``: GET, PATCH (upsert) and DELETE (module doc, 1)."""
        key = self._key_field(obj, field_name)
        matches = self._matches(obj, key, value)
        if len(matches) > 1:
            return Reply(300, self._urls(version, obj, matches))
        if method in ("GET", "HEAD"):
            if not matches:
                return error_reply(404, "NOT_FOUND", "The requested resource does not exist")
            found = self.data.find(matches[0])
            assert found is not None  # noqa: S101  # the index names live records only
            return Reply(200, self.data.render_record(obj, found[1]))
        if method == "DELETE":
            if not matches:
                return error_reply(404, "NOT_FOUND", "The requested resource does not exist")
            self.data.delete(obj, matches[0])
            return Reply(204)
        if method != "PATCH":
            return error_reply(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed.")
        payload = json_body(body)
        if not isinstance(payload, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
        if any(k.lower() in ("id", key.name.lower()) for k in payload):
            raise ApiError(
                400,
                "INVALID_FIELD",
                f"Neither Id nor the external ID field {key.name} may be specified in the "
                "sobject data.",
            )
        self.data.check_known_fields(obj, payload)
        if not matches and params.get("updateOnly", "").lower() == "true":
            return error_reply(404, "NOT_FOUND", "The requested resource does not exist")
        record_id, created, error = self._upsert_one(
            obj, key, value, payload, matches, headers=headers
        )
        if error is not None:
            return Reply(status_for(error), [error.as_single()])
        answer: dict[str, Any] = {"id": record_id, "success": True, "errors": []}
        if _major(version) < UPSERT_VERSION:
            return Reply(201, answer) if created else Reply(204)
        answer["created"] = created
        return Reply(201 if created else 200, answer)

    def _upsert_one(
        self,
        obj: ObjectDef,
        key: FieldDef,
        value: Any,
        values: Mapping[str, Any],
        matches: list[str],
        *,
        headers: Mapping[str, str],
    ) -> tuple[str | None, bool, RecordError | None]:
        """Create (no match) or update (one match) one record; (id, created, error)."""
        auto_assign = headers.get("sforce-auto-assign")
        body = {k: v for k, v in values.items() if k != "attributes" and k.lower() != "id"}
        if matches:
            updated, error = self.data.update(obj, matches[0], body, auto_assign=auto_assign)
            return updated, False, error
        if value not in (None, ""):
            body = {**{k: v for k, v in body.items() if k.lower() != key.name.lower()}}
            body[key.name] = value
        new_id, error = self.data.create(
            obj, body, auto_assign=auto_assign, allow_save=allow_save(headers)
        )
        return new_id, new_id is not None, error

    def _collections_upsert(
        self,
        version: str,
        object_name: str,
        field_name: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        lock_fault: bool,
    ) -> Reply:
        """``PATCH composite/sobjects/X/{Field}`` (module doc, 2)."""
        obj = self.data.object(object_name)
        if obj is None or _major(version) < UPSERT_VERSION:
            return error_reply(404, "NOT_FOUND", "The requested resource does not exist")
        key = self._key_field(obj, field_name)
        payload = json_body(body)
        if not isinstance(payload, dict) or not isinstance(payload.get("records"), list):
            raise ApiError(400, "JSON_PARSER_ERROR", "The request body needs a records array")
        records: list[Any] = payload["records"]
        if len(records) > 200:
            raise ApiError(
                400,
                "EXCEEDED_ID_LIMIT",
                "record limit reached. cannot submit more than 200 records into this call",
            )
        for record in records:
            if not isinstance(record, dict):
                raise ApiError(400, "JSON_PARSER_ERROR", "Each record must be a JSON object")
            attributes = record.get("attributes")
            type_name = attributes.get("type") if isinstance(attributes, dict) else None
            if not isinstance(type_name, str) or type_name.lower() != obj.name.lower():
                raise ApiError(
                    400,
                    "INVALID_TYPE",
                    f"Every record must be of the type the request names: {obj.name}",
                )
            self.data.check_known_fields(obj, record)
        if lock_fault:
            return locked_rows(len(records))
        keys = [self.data.index_key(key, _value(r, key)) for r in records]
        repeated = {k for k in keys if k is not None and keys.count(k) > 1}
        all_or_none = bool(payload.get("allOrNone", False))
        snapshot = self.data.snapshot() if all_or_none else None
        outcomes: list[tuple[str | None, bool, RecordError | None]] = []
        for record, index_key in zip(records, keys, strict=True):
            value = _value(record, key)
            if any(k in record for k in ("id", "Id")):
                outcomes.append(
                    (None, False, RecordError("INVALID_FIELD", "Only external ids are supported"))
                )
                continue
            matches = self._matches(obj, key, value)
            if index_key in repeated or len(matches) > 1:
                outcomes.append(
                    (
                        None,
                        False,
                        RecordError(
                            "DUPLICATE_EXTERNAL_ID",
                            f"Duplicate external id specified: {value}",
                            (key.name,),
                        ),
                    )
                )
                continue
            outcomes.append(self._upsert_one(obj, key, value, record, matches, headers=headers))
        rule = self.data.duplicate_rule
        with_extra = rule is not None and rule.include_result_in_collections
        failed = any(error is not None for _, _, error in outcomes)
        if all_or_none and failed and snapshot is not None:
            self.data.restore(snapshot)
            return rolled_back([error for _, _, error in outcomes], with_extra=with_extra)
        results: list[dict[str, Any]] = []
        for record_id, created, failure in outcomes:
            if failure is None:
                results.append({"id": record_id, "success": True, "errors": [], "created": created})
            else:
                results.append(
                    {
                        "success": False,
                        "errors": [failure.as_collection(with_extra=with_extra)],
                        "created": False,
                    }
                )
        return Reply(200, results)


def _value(record: Mapping[str, Any], key: FieldDef) -> Any:
    for name, value in record.items():
        if name.lower() == key.name.lower():
            return value
    return None
