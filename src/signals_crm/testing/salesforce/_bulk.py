"""Bulk API 2.0 on the local org: ingest jobs (CSV in, results out) and query jobs.

Rules (Bulk API 2.0 Developer Guide):

1. ``POST /jobs/ingest`` ``{object, operation: insert|update|upsert|delete|hardDelete,
   externalIdFieldName?, contentType: CSV, lineEnding?}`` opens a job (``state: Open``);
   ``PUT /jobs/ingest/{id}/batches`` uploads CSV (``text/csv``, 201); ``PATCH /jobs/ingest/{id}``
   ``{"state": "UploadComplete"}`` processes it (the local org finishes at once:
   ``JobComplete``) or ``{"state": "Aborted"}`` drops it. Uploading to a job that is no longer
   open is 409 ``INVALIDJOBSTATE``.
2. Each CSV row is one record: header = field names; an empty cell sets nothing; ``#N/A``
   clears the field. ``update`` and ``delete`` need an ``Id`` column; ``upsert`` matches on
   ``externalIdFieldName`` (no match creates, one updates, several fail the row).
3. ``GET /jobs/ingest/{id}`` reports ``numberRecordsProcessed`` / ``numberRecordsFailed``;
   ``successfulResults`` (``sf__Id``, ``sf__Created``, the row), ``failedResults``
   (``sf__Id``, ``sf__Error`` as ``CODE:message:fields --``, the row) and
   ``unprocessedrecords`` are CSV.
4. ``POST /jobs/query`` ``{operation: query|queryAll, query}`` runs the SOQL; ``GET
   /jobs/query/{id}/results[?maxRecords=N&locator=L]`` answers CSV pages with the
   ``Sforce-NumberOfRecords`` and ``Sforce-Locator`` headers (``null`` on the last page).
   Relationship columns are dotted (``Owner.Email``); aggregate queries and child subqueries
   are refused (``API_ERROR``), as Bulk API 2.0 does.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from signals_crm.testing.salesforce._records import (
    ApiError,
    OrgData,
    RecordError,
    format_datetime,
    json_value,
)
from signals_crm.testing.salesforce._soql import SoqlError, parse

__all__ = ["BulkJobs", "Job"]

_OPERATIONS = frozenset({"insert", "update", "upsert", "delete", "hardDelete"})
_DEFAULT_PAGE = 10_000


@attrs.define
class Job:
    """One Bulk API 2.0 job."""

    id: str
    operation: str
    object: str
    created: str
    kind: str
    external_id: str | None = None
    state: str = "Open"
    uploads: list[str] = attrs.field(factory=list)
    successes: list[dict[str, str]] = attrs.field(factory=list)
    failures: list[dict[str, str]] = attrs.field(factory=list)
    unprocessed: list[dict[str, str]] = attrs.field(factory=list)
    columns: list[str] = attrs.field(factory=list)
    rows: list[list[str]] = attrs.field(factory=list)
    query: str | None = None

    def info(self, version: str, user_id: str) -> dict[str, Any]:
        base: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": user_id,
            "createdDate": self.created,
            "systemModstamp": self.created,
            "state": self.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(version),
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
            "retries": 0,
            "totalProcessingTime": 0,
            "apiActiveProcessingTime": 0,
            "apexProcessingTime": 0,
        }
        if self.kind == "ingest":
            base.update(
                jobType="V2Ingest",
                contentUrl=f"services/data/v{version}/jobs/ingest/{self.id}/batches",
                numberRecordsProcessed=len(self.successes) + len(self.failures),
                numberRecordsFailed=len(self.failures),
            )
            if self.external_id:
                base["externalIdFieldName"] = self.external_id
        else:
            base.update(jobType="V2Query", numberRecordsProcessed=len(self.rows))
        return base


Write = Callable[[str, str, dict[str, Any]], tuple[str | None, bool, RecordError | None]]
"""Runs one row: (operation, record id or None, values) -> (id, created, error)."""


class BulkJobs:
    """The org's Bulk API 2.0 jobs (the org's lock is held by the caller)."""

    def __init__(self, data: OrgData) -> None:
        self.data = data
        self.jobs: dict[str, Job] = {}
        self._serial = itertools.count(1)

    def _new_id(self) -> str:
        return self.data.ids.new("750")

    def _job(self, job_id: str, kind: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None or job.kind != kind:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        return job

    # -- ingest -----------------------------------------------------------------------------

    def create_ingest(self, payload: Any) -> Job:
        if not isinstance(payload, Mapping):
            raise ApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
        operation = str(payload.get("operation", ""))
        obj = self.data.object(str(payload.get("object", "")))
        if operation not in _OPERATIONS:
            raise ApiError(400, "INVALIDJOB", f"Invalid operation: {operation}")
        if obj is None:
            raise ApiError(400, "INVALIDJOB", f"Unknown object: {payload.get('object')}")
        external = payload.get("externalIdFieldName")
        if operation == "upsert" and (not external or obj.field(str(external)) is None):
            raise ApiError(400, "INVALIDJOB", "upsert needs a valid externalIdFieldName")
        if str(payload.get("contentType", "CSV")) != "CSV":
            raise ApiError(400, "INVALIDJOB", "Only CSV content is supported")
        job = Job(
            self._new_id(),
            operation,
            obj.name,
            format_datetime(self.data.now()),
            "ingest",
            str(external) if external else None,
        )
        self.jobs[job.id] = job
        return job

    def upload(self, job_id: str, body: bytes) -> None:
        job = self._job(job_id, "ingest")
        if job.state != "Open":
            raise ApiError(409, "INVALIDJOBSTATE", f"Job {job_id} is not open for uploads")
        job.uploads.append(body.decode("utf-8-sig"))

    def set_state(self, job_id: str, state: str, write: Write) -> Job:
        job = self._job(job_id, "ingest")
        if state == "Aborted":
            if job.state in ("JobComplete", "Failed"):
                raise ApiError(409, "INVALIDJOBSTATE", f"Job {job_id} is already {job.state}")
            job.state = "Aborted"
            return job
        if state != "UploadComplete" or job.state != "Open":
            raise ApiError(409, "INVALIDJOBSTATE", f"Cannot move job {job_id} to {state}")
        for text in job.uploads:
            for row in csv.DictReader(io.StringIO(text)):
                self._run_row(job, {k: v for k, v in row.items() if k is not None}, write)
        job.uploads.clear()
        job.state = "JobComplete"
        return job

    def _run_row(self, job: Job, row: dict[str, str], write: Write) -> None:
        values: dict[str, Any] = {}
        for name, cell in row.items():
            if cell == "" or name.lower() == "id":
                continue
            values[name] = None if cell == "#N/A" else cell
        record_id = row.get("Id") or row.get("id") or None
        operation = job.operation
        if operation == "upsert" and job.external_id is not None:
            obj = self.data.object(job.object)
            key = row.get(job.external_id, "")
            found = self.data.lookup(obj, job.external_id, [key]) if obj and key else None
            if found is not None and len(found) > 1:
                duplicate = RecordError(
                    "DUPLICATE_EXTERNAL_ID",
                    f"{job.external_id}: more than one record found",
                    (job.external_id,),
                )
                job.failures.append({"sf__Id": "", "sf__Error": _error_text(duplicate), **row})
                return
            record_id = next(iter(found)) if found else None
            operation = "update" if record_id else "insert"
        if operation in ("update", "delete", "hardDelete") and not record_id:
            missing = RecordError("MISSING_ARGUMENT", "Id not specified in an update call", ("Id",))
            job.failures.append({"sf__Id": "", "sf__Error": _error_text(missing), **row})
            return
        new_id, created, error = write(operation, record_id or "", values)
        if error is not None:
            job.failures.append({"sf__Id": record_id or "", "sf__Error": _error_text(error), **row})
        else:
            job.successes.append(
                {"sf__Id": new_id or "", "sf__Created": str(created).lower(), **row}
            )

    def info(self, job_id: str, kind: str, version: str) -> dict[str, Any]:
        return self._job(job_id, kind).info(version, self.data.acting_user or "")

    def results(self, job_id: str, which: str) -> str:
        job = self._job(job_id, "ingest")
        if which == "successfulResults":
            return _csv(job.successes, ["sf__Id", "sf__Created"])
        if which == "failedResults":
            return _csv(job.failures, ["sf__Id", "sf__Error"])
        return _csv(job.unprocessed, [])

    def delete(self, job_id: str, kind: str) -> None:
        job = self._job(job_id, kind)
        if job.state not in ("JobComplete", "Aborted", "Failed", "UploadComplete"):
            raise ApiError(400, "INVALIDJOBSTATE", "Only a closed job can be deleted")
        del self.jobs[job_id]

    def all(self, kind: str, version: str) -> dict[str, Any]:
        records = [
            j.info(version, self.data.acting_user or "")
            for j in self.jobs.values()
            if j.kind == kind
        ]
        return {"done": True, "records": records, "nextRecordsUrl": None}

    # -- query --------------------------------------------------------------------------------

    def create_query(self, payload: Any) -> Job:
        if not isinstance(payload, Mapping) or not isinstance(payload.get("query"), str):
            raise ApiError(400, "INVALIDJOB", "A query job needs a query")
        operation = str(payload.get("operation", "query"))
        if operation not in ("query", "queryAll"):
            raise ApiError(400, "INVALIDJOB", f"Invalid operation: {operation}")
        soql = payload["query"]
        try:
            parsed = parse(soql)
        except SoqlError as exc:
            raise ApiError(400, "MALFORMED_QUERY", str(exc)) from None
        if parsed.aggregates or parsed.group_by or parsed.subqueries or parsed.count:
            raise ApiError(
                400,
                "API_ERROR",
                "Aggregate queries and child subqueries are not supported in Bulk API 2.0",
            )
        obj, records, _, _ = self.data.query(soql, include_deleted=operation == "queryAll")
        columns = [".".join(self.data.resolve_field(obj, ".".join(p))) for p in parsed.fields]
        job = Job(self._new_id(), operation, obj.name, format_datetime(self.data.now()), "query")
        job.query = soql
        job.columns = columns
        job.rows = [[_cell(_walk(r, c)) for c in columns] for r in records]
        job.state = "JobComplete"
        self.jobs[job.id] = job
        return job

    def query_results(self, job_id: str, params: Mapping[str, str]) -> tuple[str, dict[str, str]]:
        job = self._job(job_id, "query")
        try:
            size = int(params.get("maxRecords") or _DEFAULT_PAGE)
            start = int(params.get("locator") or 0)
        except ValueError:
            raise ApiError(400, "INVALID_LOCATOR", "invalid locator or maxRecords") from None
        page = job.rows[start : start + size]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
        writer.writerow(job.columns)
        writer.writerows(page)
        following = start + len(page)
        headers = {
            "Sforce-NumberOfRecords": str(len(page)),
            "Sforce-Locator": str(following) if following < len(job.rows) else "null",
        }
        return out.getvalue(), headers


def _walk(record: Mapping[str, Any], dotted: str) -> Any:
    value: Any = record
    for part in dotted.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _cell(value: Any) -> str:
    value = json_value(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _error_text(error: RecordError) -> str:
    return f"{error.code}:{error.message}:{','.join(error.fields)} --"


def _csv(rows: Sequence[Mapping[str, str]], first: list[str]) -> str:
    out = io.StringIO()
    columns = list(first)
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    writer = csv.DictWriter(out, columns, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
