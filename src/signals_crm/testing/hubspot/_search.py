"""The CRM search endpoint: filter groups, operators, sorts, paging and its limits."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

import httpx

from signals_crm.testing.hubspot._core import (
    DATE,
    NUMBER,
    QUERY_PROPS,
    TYPE_ALIASES,
    PortalCore,
    Record,
)
from signals_crm.testing.hubspot._validation import epoch_ms

__all__ = ["Search"]

_OPERATORS: Final = frozenset(
    {
        "EQ",
        "NEQ",
        "LT",
        "LTE",
        "GT",
        "GTE",
        "BETWEEN",
        "IN",
        "NOT_IN",
        "HAS_PROPERTY",
        "NOT_HAS_PROPERTY",
        "CONTAINS_TOKEN",
        "NOT_CONTAINS_TOKEN",
    }
)


class Search(PortalCore):
    """``POST /crm/v3/objects/{type}/search``."""

    def _search_objects(self, kind: str, request: httpx.Request) -> httpx.Response:
        if len(request.content) > 3000:
            return self._error(
                400, "VALIDATION_ERROR", "Search request body exceeds 3000 characters"
            )
        body = self._body(request) or {}
        groups = body.get("filterGroups") or []
        if len(groups) > 5:
            return self._error(400, "VALIDATION_ERROR", "Too many filter groups (max 5)")
        total_filters = 0
        for group in groups:
            filters = group.get("filters") or []
            if len(filters) > 6:
                return self._error(400, "VALIDATION_ERROR", "Too many filters in a group (max 6)")
            total_filters += len(filters)
            for f in filters:
                if f.get("operator") not in _OPERATORS:
                    return self._error(
                        400, "VALIDATION_ERROR", f"Unknown operator {f.get('operator')!r}"
                    )
        if total_filters > 18:
            return self._error(400, "VALIDATION_ERROR", "Too many filters (max 18)")
        limit = int(body.get("limit", 10) or 10)
        if limit > 200:
            return self._error(400, "VALIDATION_ERROR", "limit must be at most 200")
        after_raw = str(body.get("after", "0") or "0")
        if not after_raw.isdigit():
            return self._error(400, "VALIDATION_ERROR", f"after must be an integer: {after_raw}")
        after = int(after_raw)
        if after + limit > 10_000:
            return self._error(
                400, "VALIDATION_ERROR", "Paging beyond 10,000 results is not supported"
            )
        sorts = body.get("sorts") or []
        if len(sorts) > 1:
            return self._error(400, "VALIDATION_ERROR", "Only one sort is supported")
        now = self.clock()
        query = str(body.get("query") or "").lower()
        pool = self._candidates(kind, groups)
        matched = [
            r
            for r in (self.objects[kind].values() if pool is None else pool)
            if not r.archived
            and r.updated + self.search_lag <= now
            and (not groups or any(self._group_matches(kind, r, g) for g in groups))
            and (not query or self._query_matches(kind, r, query))
        ]
        matched.sort(key=lambda r: (r.created, int(r.id)))
        if sorts:
            name, descending = _sort_rule(sorts[0])
            matched.sort(key=lambda r: _sort_key(r.props.get(name)), reverse=descending)
        page = matched[after : after + limit]
        props = body.get("properties") or []
        out: dict[str, Any] = {
            "total": len(matched),
            "results": [self._shape(kind, r, props) for r in page],
        }
        if after + limit < len(matched):
            out["paging"] = {"next": {"after": str(after + limit)}}
        return self._json(200, out)

    def _candidates(self, kind: str, groups: Sequence[Mapping[str, Any]]) -> list[Record] | None:
        """Records that can match, from the value indexes: each group must hold an ``EQ`` or
        ``IN`` filter on an indexed property (``None``: scan every record)."""
        if not groups:
            return None
        found: dict[str, Record] = {}
        for group in groups:
            narrowed: list[Record] | None = None
            for f in group.get("filters") or []:
                name = str(f.get("propertyName", ""))
                if f.get("operator") == "EQ":
                    narrowed = self.indexed(kind, name, [str(f.get("value", ""))])
                elif f.get("operator") == "IN":
                    narrowed = self.indexed(kind, name, [str(v) for v in f.get("values") or []])
                if narrowed is not None:
                    break
            if narrowed is None:
                return None
            found.update((r.id, r) for r in narrowed)
        return list(found.values())

    def _group_matches(self, kind: str, record: Record, group: Mapping[str, Any]) -> bool:
        return all(self._filter_matches(kind, record, f) for f in group.get("filters") or [])

    def _filter_matches(self, kind: str, record: Record, f: Mapping[str, Any]) -> bool:
        name = str(f.get("propertyName", ""))
        op = f.get("operator")
        if name.startswith("associations."):
            target = TYPE_ALIASES.get(name.split(".", 1)[1], "")
            linked = set(record.assoc.get(target, {}))
            value = str(f.get("value", ""))
            return (value in linked) if op == "EQ" else (value not in linked)
        stored = record.props.get(name)
        if name == "hs_object_id":
            stored = record.id
        prop = self.properties[kind].get(name, {})
        exact = prop.get("type") == "enumeration"
        if op == "HAS_PROPERTY":
            return stored not in (None, "")
        if op == "NOT_HAS_PROPERTY":
            return stored in (None, "")
        if op in {"IN", "NOT_IN"}:
            values = [str(v) for v in f.get("values") or []]
            candidate = stored if exact else (stored or "").lower()
            inside = stored is not None and candidate in values
            return inside if op == "IN" else not inside
        value = str(f.get("value", ""))
        if op in {"CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"}:
            hit = stored is not None and _token_match(stored, value)
            return hit if op == "CONTAINS_TOKEN" else not hit
        if op == "EQ":
            return stored is not None and (
                stored == value if exact else stored.lower() == value.lower()
            )
        if op == "NEQ":
            return stored is None or (stored != value if exact else stored.lower() != value.lower())
        if stored is None:
            return False
        left, right = _comparable(stored), _comparable(value)
        if op == "BETWEEN":
            high = _comparable(str(f.get("highValue", "")))
            return _lte(right, left) and _lte(left, high)
        if op == "LT":
            return _lt(left, right)
        if op == "LTE":
            return _lte(left, right)
        if op == "GT":
            return _lt(right, left)
        if op == "GTE":
            return _lte(right, left)
        return False

    def _query_matches(self, kind: str, record: Record, query: str) -> bool:
        for name in QUERY_PROPS.get(kind, ()):
            value = record.props.get(name, "").lower()
            if query in value or _token_match(value, query + "*"):
                return True
        return False


def _comparable(value: str) -> float | str:
    if NUMBER.match(value):
        return float(value)
    ms = epoch_ms(value) if ("-" in value and "T" in value) or DATE.match(value) else None
    if ms is not None:
        return float(ms)
    return value.lower()


def _lt(a: float | str, b: float | str) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a < b
    return str(a) < str(b)


def _lte(a: float | str, b: float | str) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a <= b
    return str(a) <= str(b)


def _token_match(stored: str, pattern: str) -> bool:
    pattern = pattern.lower()
    text = stored.lower()
    if re.search(r"[^0-9a-z*]", pattern):
        return fnmatch.fnmatchcase(text, pattern) or pattern.strip("*") in text
    tokens = re.split(r"[^0-9a-z]+", text)
    return any(fnmatch.fnmatchcase(t, pattern) for t in tokens if t)


def _sort_rule(rule: Any) -> tuple[str, bool]:
    if isinstance(rule, str):
        return rule.lstrip("-"), rule.startswith("-")
    if isinstance(rule, Mapping):
        return str(rule.get("propertyName", "")), rule.get("direction") == "DESCENDING"
    return "", False


def _sort_key(value: str | None) -> tuple[int, float, str]:
    if value is None:
        return (2, 0.0, "")
    compared = _comparable(value)
    if isinstance(compared, float):
        return (0, compared, "")
    return (1, 0.0, compared)
