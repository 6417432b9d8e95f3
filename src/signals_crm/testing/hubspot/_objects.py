"""The object endpoints: single-record create/read/update/archive, listings and batches."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from signals_crm.core.model import normalize_email
from signals_crm.testing.hubspot._core import OBJECT_LABEL, Record
from signals_crm.testing.hubspot._schema import (
    OBJECT_TYPE_IDS,
)
from signals_crm.testing.hubspot._validation import Validation

__all__ = ["Objects"]


def _listed(params: httpx.QueryParams, name: str) -> list[str]:
    """Every value of a repeated and/or comma-separated parameter (``a&a=b,c``), in order."""
    return [v for raw in params.get_list(name) for v in raw.split(",") if v]


def _flag(params: httpx.QueryParams, name: str) -> bool:
    return str(params.get(name, "false")).lower() == "true"


class Objects(Validation):
    """Create, read, update, list and batch endpoints of every object type."""

    def _merge(self, kind: str, body: Any) -> httpx.Response:
        """``POST /{type}/merge``: the second record folds into the primary, which survives
        with the other's associations (and, for contacts, its email as an additional one)."""
        if not isinstance(body, Mapping):
            return self._error(400, "VALIDATION_ERROR", "Invalid input JSON")
        primary = self._find(kind, str(body.get("primaryObjectId", "")), None)
        other = self._find(kind, str(body.get("objectIdToMerge", "")), None)
        if primary is None or other is None:
            return self._error(404, "OBJECT_NOT_FOUND", "resource not found")
        if primary.id == other.id:
            return self._error(400, "VALIDATION_ERROR", "Cannot merge an object with itself")
        merged = {k: v for k, v in other.props.items() if k not in primary.props}
        if kind == "contacts":
            emails = [e for e in primary.props.get("hs_additional_emails", "").split(";") if e]
            emails += [
                e
                for e in (
                    other.props.get("email"),
                    *other.props.get("hs_additional_emails", "").split(";"),
                )
                if e
            ]
            merged.pop("email", None)
            merged["hs_additional_emails"] = ";".join(dict.fromkeys(emails))
        for target, links in list(other.assoc.items()):
            for to_id, type_ids in list(links.items()):
                for type_id in type_ids:
                    self._associate(kind, primary, target, to_id, type_id)
                self._dissociate(kind, other, target, to_id)
        self._archive(kind, other)
        self._reindex(kind, primary, add=False)
        primary.props.update(
            {k: v for k, v in merged.items() if k not in ("hs_object_id", "createdate")}
        )
        self._apply(kind, primary, {})
        return self._json(200, self._shape(kind, primary, None))

    def _gdpr_delete(self, kind: str, body: Any) -> httpx.Response:
        """``POST /contacts/gdpr-delete``: the record is erased for good (not restorable); an
        unknown email is blocked from coming back. 204 either way."""
        if not isinstance(body, Mapping) or not body.get("objectId"):
            return self._error(400, "VALIDATION_ERROR", "objectId is required")
        key = str(body["objectId"])
        id_property = body.get("idProperty")
        record = self._find(kind, key, str(id_property) if id_property else None, archived=None)
        if record is None:
            if id_property == "email":
                self.gdpr_blocked.add(normalize_email(key))
            return httpx.Response(204)
        for target, links in list(record.assoc.items()):
            for to_id in list(links):
                self._dissociate(kind, record, target, to_id)
        self._reindex(kind, record, add=False)
        if kind == "contacts" and record.props.get("email"):
            self.gdpr_blocked.add(normalize_email(record.props["email"]))
        del self.objects[kind][record.id]
        return httpx.Response(204)

    def _create_one(self, kind: str, body: Any) -> httpx.Response:
        props, links, error = self._prepare_create(kind, body)
        if error is not None:
            return self._json(400, error)
        if kind == "contacts" and props.get("email"):
            existing = self._contact_by_email(props["email"])
            if existing is not None:
                return self._conflict(existing)
        record = self._insert(kind, props, links)
        return self._json(201, self._shape(kind, record, list(props)))

    def _get_one(self, kind: str, key: str, params: httpx.QueryParams) -> httpx.Response:
        archived = _flag(params, "archived")
        record = self._find(kind, key, params.get("idProperty"), archived=archived)
        if record is None:
            return self._error(404, "OBJECT_NOT_FOUND", "resource not found")
        props = _listed(params, "properties")
        assoc = _listed(params, "associations")
        history = _listed(params, "propertiesWithHistory")
        shaped = self._shape(kind, record, props, associations=assoc)
        if history:
            shaped["propertiesWithHistory"] = self._history(record, history)
        return self._json(200, shaped)

    def _history(self, record: Record, names: list[str]) -> dict[str, list[dict[str, str]]]:
        return {
            name: [
                {
                    "value": record.props[name],
                    "timestamp": self._now_iso(record.updated),
                    "sourceType": "API",
                }
            ]
            if name in record.props
            else []
            for name in names
        }

    def _patch_one(
        self, kind: str, key: str, params: httpx.QueryParams, body: Any
    ) -> httpx.Response:
        record = self._find(kind, key, params.get("idProperty"))
        if record is None:
            return self._error(404, "OBJECT_NOT_FOUND", "resource not found")
        props, problems = self._check_props(kind, (body or {}).get("properties"), record)
        if problems:
            return self._json(400, self._validation_body(problems, None))
        if kind == "contacts" and props.get("email"):
            other = self._contact_by_email(props["email"])
            if other is not None and other.id != record.id:
                return self._conflict(other)
        self._apply(kind, record, props)
        return self._json(200, self._shape(kind, record, list(props)))

    def _list_objects(self, kind: str, params: httpx.QueryParams) -> httpx.Response:
        try:
            limit = int(params.get("limit", "10") or 10)
            after = int(params.get("after", "0") or 0)
        except ValueError:
            return self._error(400, "VALIDATION_ERROR", "limit and after must be integers")
        if limit > 100 or limit < 1:
            return self._error(
                400, "VALIDATION_ERROR", f"limit must be between 1 and 100, was {limit}"
            )
        props = _listed(params, "properties")
        assoc = _listed(params, "associations")
        archived = _flag(params, "archived")
        live = [r for r in self.objects[kind].values() if r.archived == archived]
        page = live[after : after + limit]
        body: dict[str, Any] = {
            "results": [self._shape(kind, r, props, associations=assoc) for r in page]
        }
        if after + limit < len(live):
            body["paging"] = {"next": {"after": str(after + limit)}}
        return self._json(200, body)

    def _batch(self, kind: str, op: str, body: Any) -> httpx.Response:
        inputs = (body or {}).get("inputs") if isinstance(body, Mapping) else None
        if not isinstance(inputs, list):
            return self._error(400, "VALIDATION_ERROR", "Invalid input: inputs is required")
        if len(inputs) > 100:
            return self._error(
                400,
                "VALIDATION_ERROR",
                f"Batch input size {len(inputs)} exceeds the limit of 100",
            )
        if op == "read":
            return self._batch_read(kind, body, inputs)
        if op == "create":
            return self._batch_create(kind, inputs)
        if op == "update":
            return self._batch_update(kind, inputs)
        if op == "upsert":
            return self._batch_upsert(kind, inputs)
        if op == "archive":
            for item in inputs:
                record = self._find(kind, str((item or {}).get("id", "")), None)
                if record is not None:
                    self._archive(kind, record)
            return httpx.Response(204)
        return self._error(404, None, f"Unknown batch operation {op}")

    def _batch_answer(
        self, results: list[dict[str, Any]], errors: list[dict[str, Any]], ok: int
    ) -> httpx.Response:
        now = self._now_iso()
        body: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": now,
            "completedAt": now,
        }
        if errors:
            body["numErrors"] = len(errors)
            body["errors"] = errors
            return self._json(207, body)
        return self._json(ok, body)

    def _batch_read(self, kind: str, body: Mapping[str, Any], inputs: list[Any]) -> httpx.Response:
        id_property = body.get("idProperty")
        props = body.get("properties") or []
        results: list[dict[str, Any]] = []
        missing: list[str] = []
        seen: set[str] = set()
        for item in inputs:
            key = str((item or {}).get("id", ""))
            record = self._find(kind, key, id_property)
            if record is None:
                missing.append(key)
            elif record.id not in seen:
                seen.add(record.id)
                results.append(self._shape(kind, record, props))
        errors: list[dict[str, Any]] = []
        if missing:
            label = OBJECT_LABEL[kind]
            errors.append(
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": (
                        f"Could not get some {label} objects, they may be deleted or not exist. "
                        "Check that ids are valid."
                    ),
                    "context": {"ids": missing},
                }
            )
        return self._batch_answer(results, errors, 200)

    def _batch_create(self, kind: str, inputs: list[Any]) -> httpx.Response:
        multi = all(isinstance(i, Mapping) and i.get("objectWriteTraceId") for i in inputs)
        prepared: list[tuple[Any, dict[str, str], list[tuple[str, str, int]]]] = []
        errors: list[dict[str, Any]] = []
        for item in inputs:
            props, links, error = self._prepare_create(kind, item)
            if error is not None:
                if not multi:
                    return self._json(400, error)
                errors.append(error)
            else:
                prepared.append((item, props, links))
        if kind == "contacts":
            emails: dict[str, int] = {}
            for _, props, _ in prepared:
                email = normalize_email(props.get("email", ""))
                if not email:
                    continue
                existing = self._contact_by_email(email)
                if existing is not None:
                    return self._conflict(existing)
                if email in emails:
                    return self._error(
                        409, "CONFLICT", f"Duplicate email addresses in batch input: {email}"
                    )
                emails[email] = 1
        results = []
        for item, props, links in prepared:
            record = self._insert(kind, props, links)
            trace = item.get("objectWriteTraceId")
            results.append(
                self._shape(kind, record, list(props), trace=str(trace) if trace else None)
            )
        return self._batch_answer(results, errors, 201)

    def _batch_update(self, kind: str, inputs: list[Any]) -> httpx.Response:
        ids = [str((i or {}).get("id", "")) for i in inputs]
        if any((i or {}).get("idProperty") not in (None, "hs_object_id") for i in inputs):
            return self._error(
                400,
                "VALIDATION_ERROR",
                f"Unable to perform update/upsert by non-unique {OBJECT_TYPE_IDS[kind]} property",
            )
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            return self._error(
                400, "VALIDATION_ERROR", f"Duplicate IDs found in batch input: {duplicated}"
            )
        multi = all(isinstance(i, Mapping) and i.get("objectWriteTraceId") for i in inputs)
        plan: list[tuple[Record, dict[str, str], str | None]] = []
        errors: list[dict[str, Any]] = []
        missing: list[str] = []
        for item, key in zip(inputs, ids, strict=True):
            record = self._find(kind, key, None)
            if record is None:
                missing.append(key)
                continue
            trace = item.get("objectWriteTraceId")
            trace = str(trace) if trace else None
            props, problems = self._check_props(kind, item.get("properties"), record)
            if problems:
                if not multi:
                    return self._json(400, self._validation_body(problems, None))
                errors.append(self._validation_body(problems, trace))
                continue
            if kind == "contacts" and props.get("email"):
                other = self._contact_by_email(props["email"])
                if other is not None and other.id != record.id:
                    return self._conflict(other)
            plan.append((record, props, trace))
        if missing:
            errors.append(
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": f"Could not get some {OBJECT_LABEL[kind]} objects, they may be "
                    "deleted or not exist. Check that ids are valid.",
                    "context": {"ids": missing},
                }
            )
        results = []
        for record, props, trace in plan:
            self._apply(kind, record, props)
            results.append(self._shape(kind, record, list(props), trace=trace))
        return self._batch_answer(results, errors, 200)

    def _batch_upsert(self, kind: str, inputs: list[Any]) -> httpx.Response:
        results: list[dict[str, Any]] = []
        for item in inputs:
            id_property = str((item or {}).get("idProperty") or "")
            key = str((item or {}).get("id", ""))
            prop = self.properties[kind].get(id_property)
            unique = (kind == "contacts" and id_property == "email") or bool(
                prop and prop.get("hasUniqueValue")
            )
            if not unique:
                return self._error(
                    400,
                    "VALIDATION_ERROR",
                    f"Unable to perform upsert by non-unique {OBJECT_TYPE_IDS[kind]} property "
                    f"{id_property or '(none)'}: use email or a property with hasUniqueValue",
                )
            record = self._find(kind, key, id_property)
            raw = dict((item or {}).get("properties") or {})
            if record is None:
                raw.setdefault(id_property, key)
                props, links, error = self._prepare_create(kind, {"properties": raw})
                if error is not None:
                    return self._json(400, error)
                del links
                record = self._insert(kind, props)
                shaped = self._shape(kind, record, list(props))
                shaped["new"] = True
            else:
                props, problems = self._check_props(kind, raw, record)
                if problems:
                    return self._json(400, self._validation_body(problems, None))
                self._apply(kind, record, props)
                shaped = self._shape(kind, record, list(props))
                shaped["new"] = False
            results.append(shaped)
        return self._batch_answer(results, [], 200)
