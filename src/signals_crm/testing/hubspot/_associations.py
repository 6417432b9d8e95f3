"""Associations: the v3 per-record paths and the v4 API (records, batches, labels).

Rules (HubSpot "Associations v4" guide; type ids in ``_schema.ASSOCIATION_TYPES``):

1. v3: ``PUT|DELETE /crm/v3/objects/{type}/{id}/associations/{toType}/{toId}/{typeId}``
   links or unlinks one type (the type may be given by its v3 name, e.g.
   ``contact_to_company``); ``GET .../associations/{toType}`` lists ``{id, type}``.
2. v4 record paths under ``/crm/v4/objects/{type}/{id}/associations``:
   ``PUT .../default/{toType}/{toId}`` links with the default (unlabeled) type;
   ``PUT .../{toType}/{toId}`` with a body ``[{associationCategory, associationTypeId}]``
   links those types; ``GET .../{toType}`` lists ``{toObjectId, associationTypes}``
   (paged by ``after``/``limit``, 500 at most); ``DELETE .../{toType}/{toId}`` removes all.
3. v4 batches under ``/crm/v4/associations/{fromType}/{toType}/batch/``: ``create``
   (``inputs: [{from: {id}, to: {id}, types: [...]}]``), ``associate/default``, ``read``
   (``inputs: [{id}]`` -> ``results: [{from: {id}, to: [{toObjectId, associationTypes}]}]``)
   and ``archive``; at most 2,000 inputs (read: 1,000). Unknown ids answer 207 with errors.
4. ``GET /crm/v4/associations/{fromType}/{toType}/labels``: the type definitions.
5. Both ends must exist; an unknown type id for the pair is a 400 ``VALIDATION_ERROR``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from signals_crm.testing.hubspot._core import TYPE_ALIASES, PortalCore, Record
from signals_crm.testing.hubspot._schema import ASSOCIATION_TYPES, OBJECT_TYPE_IDS

__all__ = ["Associations"]

_BATCH_LIMIT = 2000
_READ_LIMIT = 1000


class Associations(PortalCore):
    """The association endpoints (v3 per record, v4 records and batches)."""

    # -- helpers ----------------------------------------------------------------------------

    def _types_for(self, kind: str, target: str) -> list[int]:
        return [
            t.type_id
            for (k, _), t in ASSOCIATION_TYPES.items()
            if k == kind and t.to_type == target
        ]

    def _default_type(self, kind: str, target: str) -> int | None:
        return next(
            (
                t.type_id
                for (k, _), t in ASSOCIATION_TYPES.items()
                if k == kind and t.to_type == target and t.default
            ),
            None,
        )

    def _type_spec(self, type_id: int, kind: str) -> dict[str, Any]:
        spec = ASSOCIATION_TYPES.get((kind, type_id))
        return {
            "category": "HUBSPOT_DEFINED",
            "typeId": type_id,
            "label": spec.label if spec is not None else None,
        }

    def _pair(self, from_raw: str, to_raw: str) -> tuple[str, str] | httpx.Response:
        kind = TYPE_ALIASES.get(from_raw.lower())
        target = TYPE_ALIASES.get(to_raw.lower())
        if kind is None or target is None:
            return self._error(
                400, "VALIDATION_ERROR", f"Unable to infer object type from: {from_raw}/{to_raw}"
            )
        return kind, target

    def _link_types(self, kind: str, target: str, raw_types: Any) -> list[int] | httpx.Response:
        if not isinstance(raw_types, list) or not raw_types:
            return self._error(400, "VALIDATION_ERROR", "At least one association type is required")
        allowed = set(self._types_for(kind, target))
        chosen: list[int] = []
        for item in raw_types:
            try:
                type_id = int(str((item or {}).get("associationTypeId")))
            except (TypeError, ValueError, AttributeError):
                return self._error(400, "VALIDATION_ERROR", "associationTypeId must be a number")
            if type_id not in allowed:
                return self._error(
                    400,
                    "VALIDATION_ERROR",
                    f"{type_id} is not a valid association type id between {kind} and {target}",
                )
            chosen.append(type_id)
        return chosen

    def _listing(self, kind: str, record: Record, target: str) -> list[dict[str, Any]]:
        links = record.assoc.get(target, {})
        return [
            {
                "toObjectId": int(other),
                "associationTypes": [self._type_spec(t, kind) for t in sorted(links[other])],
            }
            for other in sorted(links, key=int)
            if not self._is_archived(target, other)
        ]

    # -- v3 -----------------------------------------------------------------------------------

    def _v3_associations(
        self, method: str, kind: str, record: Record, rest: Sequence[str]
    ) -> httpx.Response:
        target = TYPE_ALIASES.get(rest[0].lower()) if rest else None
        if target is None:
            return self._error(400, "VALIDATION_ERROR", "Unknown object type to associate")
        if len(rest) == 1 and method == "GET":
            links = record.assoc.get(target, {})
            results = [
                {"id": other, "type": self._association_name(kind, target, t)}
                for other in sorted(links, key=int)
                if not self._is_archived(target, other)
                for t in sorted(links[other])
            ]
            return self._json(200, {"results": results})
        if len(rest) != 3 or method not in ("PUT", "DELETE"):
            return self._error(405, None, "Method not allowed")
        to_id, type_raw = rest[1], rest[2]
        type_id = self._v3_type(kind, target, type_raw)
        if type_id is None:
            return self._error(
                400, "VALIDATION_ERROR", f"{type_raw} is not a valid association type for {kind}"
            )
        other = self._find(target, to_id, None)
        if other is None:
            return self._error(404, "OBJECT_NOT_FOUND", f"{target} {to_id} does not exist")
        if method == "PUT":
            self._associate(kind, record, target, to_id, type_id)
            return self._json(200, self._shape(kind, record, None, associations=[target]))
        self._dissociate(kind, record, target, to_id, {type_id})
        return httpx.Response(204)

    def _v3_type(self, kind: str, target: str, raw: str) -> int | None:
        if raw.isdigit():
            return int(raw) if int(raw) in self._types_for(kind, target) else None
        for type_id in self._types_for(kind, target):
            if self._association_name(kind, target, type_id) == raw.lower():
                return type_id
        return None

    # -- v4 records ---------------------------------------------------------------------------

    def _v4(self, request: httpx.Request, parts: list[str]) -> httpx.Response:
        """Route ``/crm/v4/...`` (``parts`` after the version)."""
        method = request.method
        if len(parts) >= 4 and parts[0] == "objects" and parts[3] == "associations":
            return self._v4_record(request, parts[1], parts[2], parts[4:])
        if len(parts) >= 4 and parts[0] == "associations":
            pair = self._pair(parts[1], parts[2])
            if isinstance(pair, httpx.Response):
                return pair
            if parts[3] == "labels" and method == "GET":
                return self._labels(*pair)
            if parts[3] == "batch" and method == "POST":
                return self._v4_batch(pair[0], pair[1], "/".join(parts[4:]), self._body(request))
        return self._error(404, None, f"Unknown path {request.url.path}")

    def _v4_record(
        self, request: httpx.Request, from_raw: str, record_id: str, rest: list[str]
    ) -> httpx.Response:
        method = request.method
        default = bool(rest) and rest[0] == "default"
        tail = rest[1:] if default else rest
        if not tail:
            return self._error(404, None, "Unknown association path")
        pair = self._pair(from_raw, tail[0])
        if isinstance(pair, httpx.Response):
            return pair
        kind, target = pair
        record = self._find(kind, record_id, None)
        if record is None:
            return self._error(404, "OBJECT_NOT_FOUND", f"{kind} {record_id} does not exist")
        if len(tail) == 1 and method == "GET" and not default:
            return self._v4_list(kind, record, target, request.url.params)
        if len(tail) != 2:
            return self._error(405, None, "Method not allowed")
        to_id = tail[1]
        other = self._find(target, to_id, None)
        if other is None:
            return self._error(404, "OBJECT_NOT_FOUND", f"{target} {to_id} does not exist")
        if method == "DELETE" and not default:
            self._dissociate(kind, record, target, to_id)
            return httpx.Response(204)
        if method != "PUT":
            return self._error(405, None, "Method not allowed")
        if default:
            type_id = self._default_type(kind, target)
            if type_id is None:
                return self._error(
                    400, "VALIDATION_ERROR", f"No default type from {kind} to {target}"
                )
            self._associate(kind, record, target, to_id, type_id)
            return self._json(200, self._default_answer(kind, record.id, target, to_id, type_id))
        chosen = self._link_types(kind, target, self._body(request))
        if isinstance(chosen, httpx.Response):
            return chosen
        for type_id in chosen:
            self._associate(kind, record, target, to_id, type_id)
        labels = [label for t in chosen if (label := self._type_spec(t, kind)["label"]) is not None]
        return self._json(
            200,
            {
                "fromObjectTypeId": OBJECT_TYPE_IDS[kind],
                "fromObjectId": int(record.id),
                "toObjectTypeId": OBJECT_TYPE_IDS[target],
                "toObjectId": int(to_id),
                "labels": labels,
            },
        )

    def _default_answer(
        self, kind: str, from_id: str, target: str, to_id: str, type_id: int
    ) -> dict[str, Any]:
        del target
        inverse = ASSOCIATION_TYPES[(kind, type_id)].inverse_id
        now = self._now_iso()
        return {
            "status": "COMPLETE",
            "results": [
                {
                    "from": {"id": from_id},
                    "to": {"id": to_id},
                    "associationSpec": {
                        "associationCategory": "HUBSPOT_DEFINED",
                        "associationTypeId": type_id,
                    },
                },
                {
                    "from": {"id": to_id},
                    "to": {"id": from_id},
                    "associationSpec": {
                        "associationCategory": "HUBSPOT_DEFINED",
                        "associationTypeId": inverse,
                    },
                },
            ],
            "startedAt": now,
            "completedAt": now,
        }

    def _v4_list(
        self, kind: str, record: Record, target: str, params: httpx.QueryParams
    ) -> httpx.Response:
        try:
            limit = int(params.get("limit", "500") or 500)
            after = int(params.get("after", "0") or 0)
        except ValueError:
            return self._error(400, "VALIDATION_ERROR", "limit and after must be integers")
        if limit > 500:
            return self._error(400, "VALIDATION_ERROR", "limit must be at most 500")
        results = self._listing(kind, record, target)
        body: dict[str, Any] = {"results": results[after : after + limit]}
        if after + limit < len(results):
            body["paging"] = {"next": {"after": str(after + limit)}}
        return self._json(200, body)

    def _labels(self, kind: str, target: str) -> httpx.Response:
        results = [
            {"category": "HUBSPOT_DEFINED", "typeId": t, "label": self._type_spec(t, kind)["label"]}
            for t in self._types_for(kind, target)
        ]
        return self._json(200, {"results": results})

    # -- v4 batches ---------------------------------------------------------------------------

    def _v4_batch(self, kind: str, target: str, op: str, body: Any) -> httpx.Response:
        inputs = body.get("inputs") if isinstance(body, Mapping) else None
        if not isinstance(inputs, list):
            return self._error(400, "VALIDATION_ERROR", "Invalid input: inputs is required")
        limit = _READ_LIMIT if op == "read" else _BATCH_LIMIT
        if len(inputs) > limit:
            return self._error(
                400,
                "VALIDATION_ERROR",
                f"Batch input size {len(inputs)} exceeds the limit of {limit}",
            )
        results: list[dict[str, Any]] = []
        missing: list[str] = []
        for raw in inputs:
            item: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
            if op == "read":
                record = self._find(kind, str(item.get("id", "")), None)
                if record is None:
                    missing.append(str(item.get("id", "")))
                    continue
                try:
                    start = int(item.get("after") or 0)
                except (TypeError, ValueError):
                    return self._error(400, "VALIDATION_ERROR", "after must be a paging cursor")
                links = self._listing(kind, record, target)
                size = self.association_page_size
                page: dict[str, Any] = {
                    "from": {"id": record.id},
                    "to": links[start : start + size],
                }
                if start + size < len(links):
                    page["paging"] = {"next": {"after": str(start + size)}}
                results.append(page)
                continue
            from_id = str((item.get("from") or {}).get("id", ""))
            to_id = str((item.get("to") or {}).get("id", ""))
            record = self._find(kind, from_id, None)
            other = self._find(target, to_id, None)
            if record is None or other is None:
                missing.extend([i for i, r in ((from_id, record), (to_id, other)) if r is None])
                continue
            if op == "archive":
                self._dissociate(kind, record, target, to_id)
            elif op == "associate/default":
                type_id = self._default_type(kind, target)
                if type_id is None:
                    return self._error(
                        400, "VALIDATION_ERROR", f"No default type from {kind} to {target}"
                    )
                self._associate(kind, record, target, to_id, type_id)
                results.extend(
                    self._default_answer(kind, from_id, target, to_id, type_id)["results"]
                )
            elif op == "create":
                chosen = self._link_types(kind, target, item.get("types"))
                if isinstance(chosen, httpx.Response):
                    return chosen
                for type_id in chosen:
                    self._associate(kind, record, target, to_id, type_id)
                results.append(
                    {
                        "fromObjectTypeId": OBJECT_TYPE_IDS[kind],
                        "fromObjectId": int(from_id),
                        "toObjectTypeId": OBJECT_TYPE_IDS[target],
                        "toObjectId": int(to_id),
                        "labels": [],
                    }
                )
            else:
                return self._error(404, None, f"Unknown batch operation {op}")
        if op == "archive" and not missing:
            return httpx.Response(204)
        now = self._now_iso()
        answer: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": now,
            "completedAt": now,
        }
        if missing:
            answer["numErrors"] = 1
            answer["errors"] = [
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": "No records found for the given ids",
                    "context": {"ids": missing},
                    "errors": [],
                }
            ]
            return self._json(207, answer)
        return self._json(200 if op == "read" else 201, answer)
