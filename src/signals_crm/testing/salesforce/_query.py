"""SOQL over the store: candidates from the indexes, filters, ordering, parent paths, child
subqueries, aggregates with GROUP BY and HAVING, date literals, and rendering as the REST API
answers (rules in the SOQL and SOSL Reference)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from signals_crm.testing.salesforce._ids import is_well_formed
from signals_crm.testing.salesforce._schema import (
    CHILD_RELATIONSHIPS,
    FieldDef,
    ObjectDef,
)
from signals_crm.testing.salesforce._soql import (
    And,
    Comparison,
    Condition,
    DateLiteral,
    InList,
    Like,
    Not,
    Or,
    Query,
    SemiJoin,
    SoqlError,
    TypeOf,
    parse,
)
from signals_crm.testing.salesforce._store import ApiError, Store, json_value

__all__ = ["MAX_OFFSET", "Queries", "date_range"]

MAX_OFFSET = 2000
"""SOQL's largest OFFSET (SOQL and SOSL Reference, "OFFSET")."""
_ID_TYPES = frozenset({"id", "reference"})


class Queries(Store):
    """The read side of the org: :meth:`query` and what it is made of."""

    def _resolve(self, obj: ObjectDef, path: tuple[str, ...]) -> tuple[str, ...]:
        """Canonical names of a field path; INVALID_FIELD when it names nothing."""
        names: list[str] = []
        current: list[ObjectDef] = [obj]
        for i, part in enumerate(path):
            last = i == len(path) - 1
            if last:
                for candidate in current:
                    f = candidate.field(part)
                    if f is not None:
                        names.append(f.name)
                        return tuple(names)
                if part.lower() == "type" and len(current) > 1:  # Who.Type, What.Type
                    names.append("Type")
                    return tuple(names)
            else:
                for candidate in current:
                    rel = candidate.relationship(part)
                    if rel is not None:
                        names.append(rel.relationship_name or part)
                        current = [o for o in (self.object(t) for t in rel.reference_to) if o]
                        break
                else:
                    break
        dotted = ".".join(path)
        raise ApiError(
            400,
            "INVALID_FIELD",
            f"No such column '{dotted}' on entity '{obj.name}'. If you are attempting to use a "
            "custom field, be sure to append the '__c' after the custom field name. Please "
            "reference your WSDL or the describe call for the appropriate names.",
        )

    def _field_def(self, obj: ObjectDef, path: tuple[str, ...]) -> FieldDef | None:
        current = [obj]
        for part in path[:-1]:
            nxt: list[ObjectDef] = []
            for candidate in current:
                rel = candidate.relationship(part)
                if rel is not None:
                    nxt = [o for o in (self.object(t) for t in rel.reference_to) if o]
                    break
            current = nxt
        for candidate in current:
            f = candidate.field(path[-1])
            if f is not None:
                return f
        return None

    def _value(self, obj: ObjectDef, record: Mapping[str, Any], path: tuple[str, ...]) -> Any:
        current_obj, current = obj, record
        for part in path[:-1]:
            rel = current_obj.relationship(part)
            if rel is None:
                return None
            target = current.get(rel.name)
            found = self.find(target) if target else None
            if found is None:
                return None
            current_obj, current = found
        f = current_obj.field(path[-1])
        if f is None and path[-1] == "Type" and len(path) > 1:
            return current_obj.name
        return current.get(f.name) if f else None

    def _candidates(self, obj: ObjectDef, cond: Condition | None) -> set[str] | None:
        """Ids that can match ``cond``, from the indexes (``None``: every record may match).

        ``field = literal`` and ``field IN (...)`` on an indexed field (Id, Email, references)
        narrow; ``AND`` takes the narrowest part; ``OR`` narrows only when every part does.
        """
        if isinstance(cond, Comparison) and cond.op == "=" and len(cond.path) == 1:
            return self.lookup(obj, cond.path[0], [cond.value.value])
        if isinstance(cond, InList) and not cond.negated and len(cond.path) == 1:
            return self.lookup(obj, cond.path[0], [v.value for v in cond.values])
        if isinstance(cond, SemiJoin) and not cond.negated and len(cond.path) == 1:
            return self.lookup(obj, cond.path[0], sorted(self._semi_join_values(cond)))
        if isinstance(cond, And):
            narrowed = [c for c in (self._candidates(obj, p) for p in cond.parts) if c is not None]
            return min(narrowed, key=len) if narrowed else None
        if isinstance(cond, Or):
            parts = [self._candidates(obj, p) for p in cond.parts]
            if any(p is None for p in parts):
                return None
            return set().union(*(p for p in parts if p is not None))
        return None

    def _rows(
        self, obj: ObjectDef, cond: Condition | None, *, include_deleted: bool
    ) -> list[dict[str, Any]]:
        live = self.records[obj.name.lower()]
        candidates = self._candidates(obj, cond)
        if candidates is None:
            pool: list[dict[str, Any]] = list(live.values())
        else:
            pool = [live[i] for i in self.in_order(candidates)]
        if include_deleted:
            deleted = list(self.recycle.get(obj.name.lower(), {}).values())
            pool = sorted([*pool, *deleted], key=lambda r: self.seq[r["Id"]])
        return [r for r in pool if cond is None or self._matches(obj, r, cond)]

    def query(
        self, soql: str, *, include_deleted: bool = False
    ) -> tuple[ObjectDef, list[dict[str, Any]], int, bool]:
        """Run a query: (object, rendered records, total size, is COUNT()).

        ``include_deleted`` (``queryAll``) also returns records in the recycle bin.
        """
        try:
            parsed = parse(soql)
        except SoqlError as exc:
            raise ApiError(400, "MALFORMED_QUERY", str(exc)) from None
        obj = self.object(parsed.object_name)
        if obj is None:
            raise ApiError(
                400,
                "INVALID_TYPE",
                f"sObject type '{parsed.object_name}' is not supported. If you are attempting to "
                "use a custom object, be sure to append the '__c' after the entity name.",
            )
        if parsed.offset > MAX_OFFSET:
            raise ApiError(
                400,
                "NUMBER_OUTSIDE_VALID_RANGE",
                f"Maximum SOQL offset allowed is {MAX_OFFSET}",
            )
        select = [self._resolve(obj, p) for p in parsed.fields]
        self._check_condition(obj, parsed.where)
        children = [self._child_relation(obj, sub) for sub in parsed.subqueries]
        rows = self._rows(obj, parsed.where, include_deleted=include_deleted)
        if parsed.aggregates or parsed.group_by:
            grouped = self._aggregate(obj, parsed, rows)
            grouped = grouped[parsed.offset :]
            if parsed.limit is not None:
                grouped = grouped[: parsed.limit]
            return obj, grouped, len(grouped), False
        if children or parsed.typeofs:
            for typeof in parsed.typeofs:
                self._typeof_fields(obj, typeof)
            rendered_rows = self._order(obj, rows, parsed)[parsed.offset :]
            if parsed.limit is not None:
                rendered_rows = rendered_rows[: parsed.limit]
            if parsed.count:
                return obj, [], len(rendered_rows), True
            out = [self._render_items(obj, r, parsed, select, children) for r in rendered_rows]
            return obj, out, len(out), False
        rows = self._order(obj, rows, parsed)
        rows = rows[parsed.offset :]
        if parsed.limit is not None:
            rows = rows[: parsed.limit]
        if parsed.count:
            return obj, [], len(rows), True
        rendered = [self._render(obj, r, select) for r in rows]
        return obj, rendered, len(rendered), False

    def select_rows(
        self, obj: ObjectDef, parsed: Query, keep: Callable[[dict[str, Any]], bool]
    ) -> list[dict[str, Any]]:
        """Rows of ``parsed`` (its WHERE, ORDER BY, OFFSET, LIMIT) that ``keep`` accepts,
        rendered with its select list (SOSL's RETURNING)."""
        select = [self._resolve(obj, p) for p in parsed.fields]
        self._check_condition(obj, parsed.where)
        rows = [r for r in self._rows(obj, parsed.where, include_deleted=False) if keep(r)]
        rows = self._order(obj, rows, parsed)[parsed.offset :]
        if parsed.limit is not None:
            rows = rows[: parsed.limit]
        return [self._render(obj, r, select) for r in rows]

    def _child_relation(
        self, obj: ObjectDef, sub: Query
    ) -> tuple[ObjectDef, str, str, list[tuple[str, ...]]]:
        """The child object, its reference field and the canonical relationship name of a
        subquery ``(SELECT ... FROM Tasks)``, with its select list resolved."""
        relation = CHILD_RELATIONSHIPS.get((obj.name.lower(), sub.object_name.lower()))
        child = self.object(relation[0]) if relation else None
        if relation is None or child is None:
            raise ApiError(
                400,
                "INVALID_TYPE",
                f"Didn't understand relationship '{sub.object_name}' in FROM part of query call. "
                "If you are attempting to use a custom relationship, be sure to append the '__r' "
                "after the custom relationship name.",
            )
        if sub.subqueries or sub.aggregates:
            raise ApiError(400, "MALFORMED_QUERY", "Nested subqueries are not supported")
        self._check_condition(child, sub.where)
        paths = [self._resolve(child, p) for p in sub.fields]
        name = next(
            r["relationshipName"]
            for r in obj.describe("")["childRelationships"]
            if r["relationshipName"].lower() == sub.object_name.lower()
        )
        return child, relation[1], name, paths

    def _typeof_fields(
        self, obj: ObjectDef, typeof: TypeOf
    ) -> tuple[FieldDef, dict[str, list[tuple[str, ...]]], list[tuple[str, ...]] | None]:
        """The polymorphic relationship of a TYPEOF and its resolved fields per type."""
        rel = obj.relationship(typeof.relationship)
        if rel is None or len(rel.reference_to) < 2:
            raise ApiError(
                400,
                "INVALID_FIELD",
                f"TYPEOF needs a polymorphic relationship; {typeof.relationship} is not one on "
                f"{obj.name}",
            )
        per_type: dict[str, list[tuple[str, ...]]] = {}
        for type_name, paths in typeof.branches:
            target = self.object(type_name)
            if target is None or target.name not in rel.reference_to:
                raise ApiError(
                    400,
                    "INVALID_TYPE",
                    f"{type_name} is not a type of {obj.name}.{typeof.relationship}",
                )
            per_type[target.name] = [self._resolve(target, p) for p in paths]
        otherwise = None
        if typeof.otherwise:
            otherwise = []
            for path in typeof.otherwise:
                # ELSE fields are common to every type the relationship points to
                resolved = [self._resolve(t, path) for t in map(self.object, rel.reference_to) if t]
                otherwise.append(resolved[0])
        return rel, per_type, otherwise

    def _render_typeof(
        self, obj: ObjectDef, record: Mapping[str, Any], typeof: TypeOf, out: dict[str, Any]
    ) -> None:
        rel, per_type, otherwise = self._typeof_fields(obj, typeof)
        name = rel.relationship_name or typeof.relationship
        target_id = record.get(rel.name)
        found = self.find(target_id) if target_id else None
        if found is None:
            out[name] = None
            return
        target_obj, target = found
        paths = per_type.get(target_obj.name, otherwise or [])
        out[name] = self._render(target_obj, target, paths)

    def _render_items(
        self,
        obj: ObjectDef,
        record: Mapping[str, Any],
        parsed: Query,
        select: Sequence[tuple[str, ...]],
        children: Sequence[tuple[ObjectDef, str, str, list[tuple[str, ...]]]],
    ) -> dict[str, Any]:
        out = self._render(obj, record, [])
        for kind, index in parsed.items:
            if kind == "field":
                self._render_path(obj, record, select[index], out)
            elif kind == "typeof":
                self._render_typeof(obj, record, parsed.typeofs[index], out)
            elif kind == "subquery":
                child, field, name, paths = children[index]
                sub = parsed.subqueries[index]
                ids = self.lookup(child, field, [record["Id"]]) or set()
                live = self.records[child.name.lower()]
                rows = [live[i] for i in self.in_order(ids)]
                rows = [r for r in rows if sub.where is None or self._matches(child, r, sub.where)]
                rows = self._order(child, rows, sub)[sub.offset :]
                if sub.limit is not None:
                    rows = rows[: sub.limit]
                out[name] = (
                    {
                        "totalSize": len(rows),
                        "done": True,
                        "records": [self._render(child, r, paths) for r in rows],
                    }
                    if rows
                    else None
                )
        return out

    def _aggregate(
        self, obj: ObjectDef, parsed: Query, rows: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """``GROUP BY`` and aggregate functions: one ``AggregateResult`` per group."""
        group_paths = [self._resolve(obj, p) for p in parsed.group_by]
        select = [self._resolve(obj, p) for p in parsed.fields]
        for path in select:
            if path not in group_paths:
                raise ApiError(
                    400,
                    "MALFORMED_QUERY",
                    f"Field must be grouped or aggregated: {'.'.join(path)}",
                )
        aggregates = [
            (a, self._resolve(obj, a.path) if a.path is not None else None)
            for a in parsed.aggregates
        ]
        groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        for row in rows:
            key = tuple(_group_key(self._value(obj, row, p)) for p in group_paths)
            groups.setdefault(key, []).append(row)
        if not group_paths and not groups:
            groups[()] = []
        out: list[dict[str, Any]] = []
        for members in groups.values():
            result: dict[str, Any] = {"attributes": {"type": "AggregateResult"}}
            expressions: dict[str, Any] = {}
            unnamed = 0
            for kind, index in parsed.items:
                if kind == "field":
                    path = select[index]
                    result[path[-1]] = json_value(self._value(obj, members[0], path))
                elif kind == "aggregate":
                    spec, agg_path = aggregates[index]
                    value = _apply_aggregate(
                        spec.function,
                        [self._value(obj, r, agg_path) for r in members] if agg_path else members,
                    )
                    label = spec.alias or f"expr{unnamed}"
                    if spec.alias is None:
                        unnamed += 1
                    result[label] = value
                    dotted = ".".join(spec.path or ())
                    expressions[f"{spec.function}({dotted})".upper()] = value

            def measure(
                name: str,
                group: list[dict[str, Any]] = members,
                result: dict[str, Any] = result,
                expressions: dict[str, Any] = expressions,
            ) -> Any:
                found = re.fullmatch(r"([A-Z_]+)\((.*)\)", name.upper())
                if found is None:
                    return result.get(name)
                if name.upper() in expressions:
                    return expressions[name.upper()]
                inner = name[name.index("(") + 1 : -1]
                if not inner:
                    return len(group)
                path = self._resolve(obj, tuple(inner.split(".")))
                return _apply_aggregate(found[1], [self._value(obj, r, path) for r in group])

            if parsed.having is None or _having(parsed.having, measure):
                out.append(result)
        for order in reversed(parsed.order_by):
            name = order.path[-1]
            present = [r for r in out if r.get(name) is not None]
            absent = [r for r in out if r.get(name) is None]
            present.sort(key=lambda r: _sort_key("string", r.get(name)), reverse=order.descending)
            out = present + absent
        return out

    def _semi_join_values(self, cond: SemiJoin) -> set[str]:
        """The values the inner query selects: ids as 15 characters, text casefolded."""
        inner = cond.query
        target = self.object(inner.object_name)
        if target is None:
            raise ApiError(
                400, "INVALID_TYPE", f"sObject type '{inner.object_name}' is not supported."
            )
        path = self._resolve(target, inner.fields[0])
        self._check_condition(target, inner.where)
        rows = self._rows(target, inner.where, include_deleted=False)
        out: set[str] = set()
        for row in rows:
            value = self._value(target, row, path)
            if isinstance(value, str) and value:
                out.add(value[:15] if is_well_formed(value) else value.casefold())
        return out

    def _check_condition(self, obj: ObjectDef, cond: Condition | None) -> None:
        if cond is None:
            return
        if isinstance(cond, And | Or):
            for part in cond.parts:
                self._check_condition(obj, part)
            return
        if isinstance(cond, Not):
            self._check_condition(obj, cond.part)
            return
        if isinstance(cond, SemiJoin):
            self._semi_join_values(cond)
        self._resolve(obj, cond.path)
        f = self._field_def(obj, cond.path)
        if f is not None and not f.filterable:
            raise ApiError(
                400,
                "INVALID_FIELD",
                f"field '{f.name}' can not be filtered in a query call",
            )

    def _matches(self, obj: ObjectDef, record: Mapping[str, Any], cond: Condition) -> bool:
        if isinstance(cond, And):
            return all(self._matches(obj, record, p) for p in cond.parts)
        if isinstance(cond, Or):
            return any(self._matches(obj, record, p) for p in cond.parts)
        if isinstance(cond, Not):
            return not self._matches(obj, record, cond.part)
        value = self._value(obj, record, cond.path)
        if isinstance(cond, SemiJoin):
            values = self._semi_join_values(cond)
            key = value[:15] if isinstance(value, str) and is_well_formed(value) else value
            hit = isinstance(key, str) and (key in values or key.casefold() in values)
            return hit != cond.negated
        f = self._field_def(obj, cond.path)
        ftype = f.type if f else "string"
        if isinstance(cond, Like):
            if value is None:
                return cond.negated
            hit = cond.pattern.fullmatch(str(value).casefold()) is not None
            return hit != cond.negated
        if isinstance(cond, InList):
            folded = cond.folded
            if folded is not None and ftype not in _ID_TYPES:
                # Every literal a string, as _equal compares them: the text casefolded.
                if value is None or isinstance(value, bool):
                    hit = False
                else:
                    hit = str(value).casefold() in folded
            else:
                hit = any(_equal(ftype, value, lit.value) for lit in cond.values)
            return hit != cond.negated
        if isinstance(cond.value.value, DateLiteral):
            start, end = date_range(cond.value.value, self.now())
            return _in_range(value, start, end, cond.op)
        if cond.op == "=":
            return _equal(ftype, value, cond.value.value)
        if cond.op == "!=":
            return not _equal(ftype, value, cond.value.value)
        return _ordered(ftype, value, cond.value.value, cond.op)

    def _order(
        self, obj: ObjectDef, rows: list[dict[str, Any]], parsed: Query
    ) -> list[dict[str, Any]]:
        for order in reversed(parsed.order_by):
            self._resolve(obj, order.path)
            f = self._field_def(obj, order.path)
            ftype = f.type if f else "string"
            nulls_last = order.nulls_last if order.nulls_last is not None else order.descending
            present = [r for r in rows if self._value(obj, r, order.path) is not None]
            absent = [r for r in rows if self._value(obj, r, order.path) is None]
            present.sort(
                key=lambda r: _sort_key(ftype, self._value(obj, r, order.path)),
                reverse=order.descending,
            )
            rows = present + absent if nulls_last else absent + present
        return rows

    def resolve_field(self, obj: ObjectDef, dotted: str) -> tuple[str, ...]:
        """The canonical path of a (dotted) field name; ``INVALID_FIELD`` when unknown."""
        return self._resolve(obj, tuple(dotted.strip().split(".")))

    def render(
        self,
        obj: ObjectDef,
        record: Mapping[str, Any],
        select: Sequence[tuple[str, ...]],
        *,
        version: str = "61.0",
    ) -> dict[str, Any]:
        """A record with the selected paths, as query and Collections retrieve answer it."""
        del version
        return self._render(obj, record, select)

    def _render(
        self, obj: ObjectDef, record: Mapping[str, Any], select: Sequence[tuple[str, ...]]
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "attributes": {
                "type": obj.name,
                "url": f"/services/data/v61.0/sobjects/{obj.name}/{record['Id']}",
            }
        }
        for path in select:
            self._render_path(obj, record, path, out)
        return out

    def _render_path(
        self, obj: ObjectDef, record: Mapping[str, Any], path: tuple[str, ...], out: dict[str, Any]
    ) -> None:
        if len(path) == 1:
            f = obj.field(path[0])
            if f is None and path[0] == "Type":
                out["Type"] = obj.name
                return
            out[f.name if f else path[0]] = json_value(record.get(f.name) if f else None)
            return
        rel = obj.relationship(path[0])
        if rel is None:
            return
        name = rel.relationship_name or path[0]
        target_id = record.get(rel.name)
        found = self.find(target_id) if target_id else None
        if found is None:
            out.setdefault(name, None)
            return
        target_obj, target = found
        nested = out.get(name)
        if not isinstance(nested, dict):
            nested = {
                "attributes": {
                    "type": target_obj.name,
                    "url": f"/services/data/v61.0/sobjects/{target_obj.name}/{target['Id']}",
                }
            }
            out[name] = nested
        self._render_path(target_obj, target, path[1:], nested)

    def render_record(self, obj: ObjectDef, record: Mapping[str, Any]) -> dict[str, Any]:
        """A record as ``GET sobjects/X/{id}`` answers it (every field)."""
        out: dict[str, Any] = {
            "attributes": {
                "type": obj.name,
                "url": f"/services/data/v61.0/sobjects/{obj.name}/{record['Id']}",
            }
        }
        for f in obj.fields.values():
            out[f.name] = json_value(record.get(f.name))
        return out


def _equal(ftype: str, value: Any, literal: Any) -> bool:
    if literal is None:
        return value is None
    if value is None:
        return False
    if ftype in _ID_TYPES and isinstance(literal, str) and isinstance(value, str):
        return value[:15] == literal[:15]
    if isinstance(literal, bool) or isinstance(value, bool):
        return value is literal
    if isinstance(literal, datetime):
        return isinstance(value, datetime) and value == literal
    if isinstance(literal, int | float) and isinstance(value, int | float):
        return float(value) == float(literal)
    return str(value).casefold() == str(literal).casefold()


def _sort_key(ftype: str, value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    text = str(value)
    return text if ftype in _ID_TYPES else text.casefold()


def _ordered(ftype: str, value: Any, literal: Any, op: str) -> bool:
    if value is None or literal is None:
        return False
    if isinstance(literal, datetime) and isinstance(value, datetime):
        left: Any = value
        right: Any = literal
    elif isinstance(literal, int | float) and isinstance(value, int | float):
        left, right = value, literal
    else:
        left, right = _sort_key(ftype, value), _sort_key(ftype, literal)
    try:
        if op == "<":
            return bool(left < right)
        if op == "<=":
            return bool(left <= right)
        if op == ">":
            return bool(left > right)
        return bool(left >= right)
    except TypeError:
        return False


def _group_key(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _apply_aggregate(function: str, values: list[Any]) -> Any:
    if function == "COUNT":
        return sum(1 for v in values if v is not None)
    present = [v for v in values if v is not None]
    if function == "COUNT_DISTINCT":
        return len({_group_key(v) for v in present})
    if not present:
        return None
    if function == "SUM":
        return sum(present)
    if function == "AVG":
        return sum(present) / len(present)
    chosen = min(present) if function == "MIN" else max(present)
    return json_value(chosen)


def _having(cond: Condition, measure: Callable[[str], Any]) -> bool:
    if isinstance(cond, And):
        return all(_having(p, measure) for p in cond.parts)
    if isinstance(cond, Or):
        return any(_having(p, measure) for p in cond.parts)
    if isinstance(cond, Not):
        return not _having(cond.part, measure)
    if not isinstance(cond, Comparison):
        raise ApiError(400, "MALFORMED_QUERY", "HAVING takes comparisons of aggregates")
    value = measure(".".join(cond.path))
    literal = cond.value.value
    if cond.op == "=":
        return _equal("double", value, literal)
    if cond.op == "!=":
        return not _equal("double", value, literal)
    return _ordered("double", value, literal, cond.op)


def _start_of_day(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _add_months(moment: datetime, months: int) -> datetime:
    index = moment.year * 12 + moment.month - 1 + months
    return moment.replace(year=index // 12, month=index % 12 + 1, day=1)


def date_range(literal: DateLiteral, now: datetime) -> tuple[datetime, datetime]:
    """The [start, end) a relative date literal covers, in UTC (weeks start on Sunday)."""
    today = _start_of_day(now)
    day = timedelta(days=1)
    week = today - timedelta(days=(today.weekday() + 1) % 7)
    month = today.replace(day=1)
    quarter = month.replace(month=(month.month - 1) // 3 * 3 + 1)
    year = month.replace(month=1)
    n = literal.n or 0
    table: dict[str, tuple[datetime, datetime]] = {
        "YESTERDAY": (today - day, today),
        "TODAY": (today, today + day),
        "TOMORROW": (today + day, today + 2 * day),
        "LAST_WEEK": (week - 7 * day, week),
        "THIS_WEEK": (week, week + 7 * day),
        "NEXT_WEEK": (week + 7 * day, week + 14 * day),
        "LAST_MONTH": (_add_months(month, -1), month),
        "THIS_MONTH": (month, _add_months(month, 1)),
        "NEXT_MONTH": (_add_months(month, 1), _add_months(month, 2)),
        "LAST_90_DAYS": (today - 90 * day, today + day),
        "NEXT_90_DAYS": (today + day, today + 91 * day),
        "LAST_QUARTER": (_add_months(quarter, -3), quarter),
        "THIS_QUARTER": (quarter, _add_months(quarter, 3)),
        "NEXT_QUARTER": (_add_months(quarter, 3), _add_months(quarter, 6)),
        "LAST_YEAR": (_add_months(year, -12), year),
        "THIS_YEAR": (year, _add_months(year, 12)),
        "NEXT_YEAR": (_add_months(year, 12), _add_months(year, 24)),
        "LAST_N_DAYS": (today - n * day, today + day),
        "NEXT_N_DAYS": (today + day, today + (n + 1) * day),
        "N_DAYS_AGO": (today - n * day, today - (n - 1) * day),
        "LAST_N_WEEKS": (week - 7 * n * day, week),
        "NEXT_N_WEEKS": (week + 7 * day, week + 7 * (n + 1) * day),
        "LAST_N_MONTHS": (_add_months(month, -n), month),
        "NEXT_N_MONTHS": (_add_months(month, 1), _add_months(month, n + 1)),
        "LAST_N_YEARS": (_add_months(year, -12 * n), year),
        "NEXT_N_YEARS": (_add_months(year, 12), _add_months(year, 12 * (n + 1))),
    }
    return table[literal.name]


def _in_range(value: Any, start: datetime, end: datetime, op: str) -> bool:
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        moment: datetime | None = datetime.fromisoformat(value).replace(tzinfo=UTC)
    else:
        moment = value if isinstance(value, datetime) else None
    if moment is None:
        return op == "!="
    checks = {
        "=": start <= moment < end,
        "!=": not start <= moment < end,
        "<": moment < start,
        "<=": moment < end,
        ">": moment >= end,
        ">=": moment >= start,
    }
    return checks[op]
