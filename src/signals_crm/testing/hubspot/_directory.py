"""Owners, the properties API and lists (static lists stand for campaigns)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from signals_crm.testing.hubspot._core import TYPE_ALIASES, Owner, PortalCore, PortalList
from signals_crm.testing.hubspot._schema import (
    MAX_UNIQUE_PROPERTIES,
    UNIQUE_VALUE_OBJECTS,
    make_property,
)

__all__ = ["Directory", "unique_refusal"]

_TYPES = frozenset({"string", "number", "date", "datetime", "enumeration", "bool"})
_FIELD_TYPES = frozenset(
    {
        "text",
        "textarea",
        "html",
        "number",
        "date",
        "file",
        "select",
        "radio",
        "checkbox",
        "booleancheckbox",
        "phonenumber",
        "calculation_equation",
    }
)


def _options(raw: Any) -> list[dict[str, Any]]:
    options = raw if isinstance(raw, list) else []
    return [
        {
            "label": str(o.get("label", o.get("value", ""))),
            "value": str(o.get("value", "")),
            "displayOrder": int(o.get("displayOrder", i)),
            "hidden": bool(o.get("hidden", False)),
        }
        for i, o in enumerate(options)
        if isinstance(o, dict)
    ]


class Directory(PortalCore):
    """Owners, properties and lists endpoints."""

    def _owner_body(self, owner: Owner) -> dict[str, Any]:
        return {
            "id": owner.id,
            "email": owner.email,
            "type": "PERSON",
            "firstName": owner.first_name,
            "lastName": owner.last_name,
            "userId": None if owner.archived else owner.user_id,
            "userIdIncludingInactive": owner.user_id,
            "createdAt": self._now_iso(owner.created),
            "updatedAt": self._now_iso(owner.created),
            "archived": owner.archived,
            "teams": [],
        }

    def _owners(self, parts: list[str], params: httpx.QueryParams) -> httpx.Response:
        archived = params.get("archived", "false") == "true"
        if parts:
            key = parts[0]
            by_user = params.get("idProperty") == "userId"
            for owner in self.owners.values():
                if (
                    str(owner.user_id) if by_user else owner.id
                ) == key and owner.archived == archived:
                    return self._json(200, self._owner_body(owner))
            return self._error(404, "OBJECT_NOT_FOUND", "resource not found")
        limit = min(int(params.get("limit", "100") or 100), 500)
        after = int(params.get("after", "0") or 0)
        email = params.get("email")
        chosen = [
            o
            for o in self.owners.values()
            if o.archived == archived and (email is None or o.email.lower() == email.lower())
        ]
        page = chosen[after : after + limit]
        body: dict[str, Any] = {"results": [self._owner_body(o) for o in page]}
        if after + limit < len(chosen):
            body["paging"] = {"next": {"after": str(after + limit)}}
        return self._json(200, body)

    def _properties(self, method: str, parts: list[str], body: Any) -> httpx.Response:
        """The properties API: read all or one; create (``POST``, 201; 409 when the name is
        taken), update (``PATCH``) and archive (``DELETE``, 204) custom properties."""
        kind = TYPE_ALIASES.get(parts[0].lower())
        if kind is None:
            return self._error(
                400, "VALIDATION_ERROR", f"Unable to infer object type from: {parts[0]}"
            )
        props = self.properties[kind]
        if len(parts) == 1 and method == "GET":
            return self._json(200, {"results": [json.loads(json.dumps(p)) for p in props.values()]})
        if len(parts) == 1 and method == "POST":
            return self._create_property(kind, body)
        if len(parts) != 2:
            return self._error(405, None, "Method not allowed")
        prop = props.get(parts[1])
        if prop is None:
            return self._error(
                404, "OBJECT_NOT_FOUND", f"Unable to find property {parts[1]} on {kind}"
            )
        if method == "GET":
            return self._json(200, json.loads(json.dumps(prop)))
        if prop["hubspotDefined"] and method in ("PATCH", "DELETE"):
            return self._error(400, "VALIDATION_ERROR", f"{parts[1]} is a HubSpot-defined property")
        if method == "DELETE":
            del props[parts[1]]
            return httpx.Response(204)
        if method == "PATCH" and isinstance(body, Mapping):
            for key in ("label", "description", "groupName", "hidden", "displayOrder"):
                if key in body:
                    prop[key] = body[key]
            if "options" in body:
                prop["options"] = _options(body["options"])
            prop["updatedAt"] = self._now_iso()
            return self._json(200, json.loads(json.dumps(prop)))
        return self._error(405, None, "Method not allowed")

    def _create_property(self, kind: str, body: Any) -> httpx.Response:
        if not isinstance(body, Mapping):
            return self._error(400, "VALIDATION_ERROR", "Invalid input JSON")
        missing = [
            k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)
        ]
        if missing:
            return self._error(
                400,
                "VALIDATION_ERROR",
                f"Property is missing required fields: {missing}",
                errors=[
                    {
                        "message": f"{k} is required",
                        "code": "REQUIRED_FIELD",
                        "context": {"propertyName": [k]},
                    }
                    for k in missing
                ],
            )
        refused = unique_refusal(kind, body, self.properties[kind].values())
        if refused is not None:
            return self._error(400, "VALIDATION_ERROR", refused)
        name = str(body["name"])
        if name in self.properties[kind]:
            return self._error(
                409, "OBJECT_ALREADY_EXISTS", f"A property named '{name}' already exists."
            )
        ptype, field_type = str(body["type"]), str(body["fieldType"])
        if ptype not in _TYPES or field_type not in _FIELD_TYPES:
            return self._error(
                400,
                "VALIDATION_ERROR",
                f"{ptype}/{field_type} is not a valid property type and field type",
            )
        prop = make_property(
            name,
            str(body["label"]),
            type=ptype,
            field_type=field_type,
            group=str(body["groupName"]),
            unique=bool(body.get("hasUniqueValue", False)),
            hubspot_defined=False,
        )
        prop["options"] = _options(body.get("options") or [])
        prop["description"] = str(body.get("description") or "")
        prop["createdAt"] = prop["updatedAt"] = self._now_iso()
        self.properties[kind][name] = prop
        return self._json(201, json.loads(json.dumps(prop)))

    def _list_body(self, found: PortalList) -> dict[str, Any]:
        return {
            "listId": found.id,
            "listVersion": 1,
            "name": found.name,
            "objectTypeId": found.object_type_id,
            "processingType": found.processing_type,
            "processingStatus": "COMPLETE",
            "size": len(found.members),
            "createdAt": self._now_iso(found.created),
            "updatedAt": self._now_iso(found.created),
        }

    def _search_lists(self, body: Any) -> httpx.Response:
        """``POST /crm/v3/lists/search``: by name (``query``, contains, case-insensitive),
        ``processingTypes``, ``listIds``; paged by ``offset`` and ``count`` (at most 500)."""
        if not isinstance(body, dict):
            return self._error(400, "VALIDATION_ERROR", "Expected a JSON object")
        query = str(body.get("query") or "").lower()
        types = body.get("processingTypes") or []
        ids = {str(i) for i in body.get("listIds") or []}
        count = min(max(int(body.get("count") or 20), 1), 500)
        offset = max(int(body.get("offset") or 0), 0)
        found = [
            lst
            for lst in sorted(self.lists.values(), key=lambda lst: int(lst.id))
            if query in lst.name.lower()
            and (not types or lst.processing_type in types)
            and (not ids or lst.id in ids)
        ]
        page = found[offset : offset + count]
        return self._json(
            200,
            {
                "lists": [self._list_body(lst) for lst in page],
                "offset": offset + len(page),
                "hasMore": offset + len(page) < len(found),
                "total": len(found),
            },
        )

    def create_list(
        self, name: str, processing_type: str = "MANUAL", object_type_id: str = "0-1"
    ) -> str:
        """Create a list directly; returns its id."""
        with self.lock:
            list_id = str(next(self._ids))
            self.lists[list_id] = PortalList(
                list_id, name, object_type_id, processing_type, created=self.clock()
            )
            return list_id

    def _lists(self, method: str, parts: list[str], request: httpx.Request) -> httpx.Response:
        if parts == ["search"] and method == "POST":
            return self._search_lists(self._body(request) or {})
        if not parts and method == "POST":
            body = self._body(request) or {}
            name = body.get("name")
            if not name:
                return self._error(400, "VALIDATION_ERROR", "name is required")
            if any(lst.name == name for lst in self.lists.values()):
                return self._error(409, "CONFLICT", f"A list named {name} already exists")
            list_id = self.create_list(
                str(name),
                str(body.get("processingType", "MANUAL")),
                str(body.get("objectTypeId", "0-1")),
            )
            return self._json(200, {"list": self._list_body(self.lists[list_id])})
        if (
            len(parts) == 4
            and parts[0] == "records"
            and parts[3] == "memberships"
            and method == "GET"
        ):
            record_id = parts[2]
            results = [
                {
                    "listId": lst.id,
                    "listVersion": 1,
                    "firstAddedTimestamp": self._now_iso(lst.members[record_id]),
                    "lastAddedTimestamp": self._now_iso(lst.members[record_id]),
                    "isPublicList": True,
                }
                for lst in self.lists.values()
                if record_id in lst.members
            ]
            return self._json(200, {"results": results, "total": len(results)})
        if not parts:
            return self._error(405, None, "Method not allowed")
        found = self.lists.get(parts[0])
        if found is None:
            return self._error(404, "OBJECT_NOT_FOUND", f"List {parts[0]} does not exist")
        rest = parts[1:]
        if not rest and method == "GET":
            return self._json(200, {"list": self._list_body(found)})
        if rest == ["memberships"] and method == "GET":
            members = sorted(found.members, key=int)
            results = [
                {"recordId": m, "membershipTimestamp": self._now_iso(found.members[m])}
                for m in members
            ]
            return self._json(200, {"results": results, "total": len(results)})
        if rest in (["memberships", "add"], ["memberships", "remove"]) and method == "PUT":
            if found.processing_type not in {"MANUAL", "SNAPSHOT"}:
                return self._error(
                    400,
                    "VALIDATION_ERROR",
                    f"List {found.id} has processingType {found.processing_type}; "
                    "only MANUAL and SNAPSHOT lists take manual memberships",
                )
            ids = self._body(request)
            if not isinstance(ids, list):
                return self._error(400, "VALIDATION_ERROR", "Expected a JSON array of record ids")
            kind = TYPE_ALIASES.get(found.object_type_id, "contacts")
            added: list[str] = []
            removed: list[str] = []
            missing: list[str] = []
            for raw in ids:
                rid = str(raw)
                if self._find(kind, rid, None) is None:
                    missing.append(rid)
                elif rest[1] == "add" and rid not in found.members:
                    found.members[rid] = self.clock()
                    added.append(rid)
                elif rest[1] == "remove" and rid in found.members:
                    del found.members[rid]
                    removed.append(rid)
            return self._json(
                200,
                {
                    "recordIdsMissing": missing,
                    "recordIdsRemoved": removed,
                    "recordsIdsAdded": added,
                },
            )
        return self._error(405, None, "Method not allowed")


def unique_refusal(kind: str, body: Mapping[str, Any], existing: Iterable[Any]) -> str | None:
    """Why a new property may not be ``hasUniqueValue`` on ``kind`` (``UNIQUE_VALUE_OBJECTS``,
    at most ``MAX_UNIQUE_PROPERTIES`` of them per object), or ``None``. The wording is the
    sandbox's: HubSpot documents the rule, not its error text."""
    if not body.get("hasUniqueValue"):
        return None
    if kind not in UNIQUE_VALUE_OBJECTS:
        return f"Unique value properties are not supported on {kind}: hasUniqueValue must be false"
    unique = sum(1 for p in existing if isinstance(p, Mapping) and p.get("hasUniqueValue"))
    if unique >= MAX_UNIQUE_PROPERTIES:
        return (
            f"{kind} already has {MAX_UNIQUE_PROPERTIES} unique value properties, the most allowed"
        )
    return None
