"""The org's multi-record endpoints: sObject Collections, sObject Tree creates and Bulk API 2.0."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from signals_crm.testing.salesforce._bulk import BulkJobs
from signals_crm.testing.salesforce._ids import is_well_formed, to_18
from signals_crm.testing.salesforce._records import ApiError, OrgData, RecordError
from signals_crm.testing.salesforce._reply import (
    Reply,
    allow_save,
    error_reply,
    json_body,
    locked_rows,
    rolled_back,
)
from signals_crm.testing.salesforce._schema import ObjectDef

__all__ = ["Collections"]


class Collections:
    """sObject Collections, tree creates and Bulk API 2.0 jobs (a part of LocalSalesforce)."""

    data: OrgData
    bulk: BulkJobs
    integration_user_id: str

    def _tree_create(
        self, object_name: str, values: dict[str, Any], headers: Mapping[str, str]
    ) -> tuple[str | None, RecordError | None]:
        obj = self.data.object(object_name)
        if obj is None:
            return None, RecordError(
                "INVALID_TYPE", f"sObject type '{object_name}' is not supported."
            )
        try:
            self.data.check_known_fields(obj, values)
        except ApiError as exc:
            return None, exc.error
        return self.data.create(
            obj,
            values,
            auto_assign=headers.get("sforce-auto-assign"),
            allow_save=allow_save(headers),
        )

    def _collections_retrieve(
        self, version: str, object_name: str, method: str, params: Mapping[str, str], body: bytes
    ) -> Reply:
        obj = self.data.object(object_name)
        if obj is None:
            return error_reply(404, "NOT_FOUND", "The requested resource does not exist")
        if method == "POST":
            payload = json_body(body)
            if not isinstance(payload, dict):
                raise ApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
            ids = [str(i) for i in payload.get("ids") or []]
            fields = [str(f) for f in payload.get("fields") or []]
        else:
            ids = [i for i in params.get("ids", "").split(",") if i]
            fields = [f for f in params.get("fields", "").split(",") if f]
        if not ids or not fields:
            raise ApiError(400, "INVALID_QUERY_PARAMETER_VALUE", "ids and fields are required")
        if len(ids) > 2000:
            raise ApiError(400, "EXCEEDED_ID_LIMIT", "cannot retrieve more than 2000 records")
        paths = [self.data.resolve_field(obj, f) for f in fields]
        out: list[Any] = []
        for record_id in ids:
            found = self.data.find(record_id)
            if found is None or found[0].name != obj.name:
                out.append(None)
            else:
                out.append(self.data.render(obj, found[1], paths, version=version))
        return Reply(200, out)

    def _collections_delete(self, params: Mapping[str, str]) -> Reply:
        ids = [i for i in params.get("ids", "").split(",") if i]
        if not ids:
            raise ApiError(400, "INVALID_QUERY_PARAMETER_VALUE", "ids is required")
        if len(ids) > 200:
            raise ApiError(
                400,
                "EXCEEDED_ID_LIMIT",
                "record limit reached. cannot submit more than 200 records into this call",
            )
        all_or_none = params.get("allOrNone", "false").lower() == "true"
        snapshot = self.data.snapshot() if all_or_none else None
        results: list[dict[str, Any]] = []
        failed = False
        for record_id in ids:
            error = self._delete_one(record_id)
            failed |= error is not None
            if error is None:
                results.append({"id": to_18(record_id), "success": True, "errors": []})
            else:
                results.append(
                    {
                        "id": record_id,
                        "success": False,
                        "errors": [error.as_collection(with_extra=False)],
                    }
                )
        if all_or_none and failed and snapshot is not None:
            self.data.restore(snapshot)
            rolled = RecordError(
                "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "Record rolled back because not all records were valid and the request was "
                "using AllOrNone header",
            )
            for entry in results:
                if entry["success"]:
                    entry.update(success=False, errors=[rolled.as_collection(with_extra=False)])
        return Reply(200, results)

    def _delete_one(self, record_id: str) -> RecordError | None:
        if not is_well_formed(record_id):
            return RecordError("MALFORMED_ID", f"malformed id {record_id}", ("Id",))
        if to_18(record_id) in self.data.deleted:
            return RecordError("ENTITY_IS_DELETED", "entity is deleted")
        found = self.data.find(record_id)
        if found is None:
            return RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
        self.data.delete(found[0], found[1]["Id"])
        return None

    def _collections(
        self, method: str, headers: Mapping[str, str], body: bytes, *, lock_fault: bool
    ) -> Reply:
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
        all_or_none = bool(payload.get("allOrNone", False))
        typed: list[tuple[ObjectDef, dict[str, Any]]] = []
        for record in records:
            if not isinstance(record, dict):
                raise ApiError(400, "JSON_PARSER_ERROR", "Each record must be a JSON object")
            attributes = record.get("attributes")
            type_name = attributes.get("type") if isinstance(attributes, dict) else None
            obj = self.data.object(type_name) if isinstance(type_name, str) else None
            if obj is None:
                raise ApiError(400, "INVALID_TYPE", "Must send a concrete entity type.")
            self.data.check_known_fields(obj, record)
            typed.append((obj, record))
        if lock_fault:
            return locked_rows(len(typed))
        snapshot = self.data.snapshot() if all_or_none else None
        auto_assign = headers.get("sforce-auto-assign")
        rule = self.data.duplicate_rule
        with_extra = rule is not None and rule.include_result_in_collections
        outcomes: list[tuple[str | None, RecordError | None]] = []
        saving = allow_save(headers)
        for obj, record in typed:
            if method == "POST":
                outcomes.append(
                    self.data.create(obj, record, auto_assign=auto_assign, allow_save=saving)
                )
            else:
                outcomes.append(
                    self.data.update(
                        obj, record.get("id") or record.get("Id"), record, auto_assign=auto_assign
                    )
                )
        failed = any(error is not None for _, error in outcomes)
        if all_or_none and failed and snapshot is not None:
            self.data.restore(snapshot)
            return rolled_back([error for _, error in outcomes], with_extra=with_extra)
        results: list[dict[str, Any]] = []
        for new_id, outcome in outcomes:
            if outcome is None:
                results.append({"id": new_id, "success": True, "errors": []})
            else:
                results.append(
                    {"success": False, "errors": [outcome.as_collection(with_extra=with_extra)]}
                )
        return Reply(200, results)

    def _jobs(
        self,
        method: str,
        version: str,
        route: tuple[str, str | None, str | None],
        params: Mapping[str, str],
        body: bytes,
    ) -> Reply:
        """Bulk API 2.0 (``_bulk``): ``route`` is (ingest|query, job id, sub-resource)."""
        kind, job_id, part = route
        bulk = self.bulk
        if job_id is None:
            if method == "GET":
                return Reply(200, bulk.all(kind, version))
            if method != "POST":
                return error_reply(
                    405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed."
                )
            job = (
                bulk.create_ingest(json_body(body))
                if kind == "ingest"
                else bulk.create_query(json_body(body))
            )
            return Reply(200, job.info(version, self.integration_user_id))
        if part is None:
            if method == "GET":
                return Reply(200, bulk.info(job_id, kind, version))
            if method == "DELETE":
                bulk.delete(job_id, kind)
                return Reply(204)
            if method == "PATCH":
                payload = json_body(body)
                state = str(payload.get("state", "")) if isinstance(payload, dict) else ""
                if kind == "query":
                    info = bulk.info(job_id, kind, version)
                    if state == "Aborted":
                        bulk.jobs[job_id].state = "Aborted"
                        info["state"] = "Aborted"
                    return Reply(200, info)
                ingest_id = job_id

                def write(
                    operation: str, record_id: str, values: dict[str, Any]
                ) -> tuple[str | None, bool, RecordError | None]:
                    return self._bulk_write(ingest_id, operation, record_id, values)

                done = bulk.set_state(job_id, state, write)
                return Reply(200, done.info(version, self.integration_user_id))
        if kind == "ingest" and part == "batches" and method == "PUT":
            bulk.upload(job_id, body)
            return Reply(201)
        if (
            kind == "ingest"
            and part in ("successfulResults", "failedResults", "unprocessedrecords")
            and method == "GET"
        ):
            return Reply(200, csv=bulk.results(job_id, part))
        if kind == "query" and part == "results" and method == "GET":
            text, headers = bulk.query_results(job_id, params)
            return Reply(200, csv=text, headers=headers)
        return error_reply(404, "NOT_FOUND", "The requested resource does not exist")

    def _bulk_write(
        self, job_id: str, operation: str, record_id: str, values: dict[str, Any]
    ) -> tuple[str | None, bool, RecordError | None]:
        obj = self.data.object(self.bulk.jobs[job_id].object)
        if obj is None:  # pragma: no cover - jobs are created for known objects
            return None, False, RecordError("INVALID_TYPE", "unknown object")
        try:
            self.data.check_known_fields(obj, values)
            typed = self.data.from_text(obj, values)
            if operation == "insert":
                new_id, error = self.data.create(obj, typed)
                return new_id, True, error
            if operation == "update":
                updated, error = self.data.update(obj, record_id, typed)
                return updated, False, error
        except ApiError as exc:
            return None, False, exc.error
        error = self._delete_one(record_id)
        return (to_18(record_id) if is_well_formed(record_id) else record_id), False, error
