"""A small JSON Schema (draft 2020-12) validator: the subset the shipped schemas use.

The project adds no dependency to check its own schemas, so this validator knows exactly the
keywords below and refuses a schema using any other (:func:`unknown_keywords`): a keyword it
would silently skip can never make a test pass.

Assertions: ``type``, ``enum``, ``const``, ``properties``, ``required``,
``additionalProperties``, ``propertyNames``, ``items``, ``minimum``, ``minItems``,
``minLength``, ``anyOf``, ``oneOf``, ``$ref`` (a JSON pointer in the current resource, or an
embedded resource by its ``$id``, with an optional pointer) and ``format: date-time`` (ISO 8601
with a UTC offset). Annotations, ignored: ``$schema``, ``$id``, ``$defs``, ``title``,
``description``, ``$comment``, ``examples``, ``default``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

ASSERTIONS = frozenset(
    {
        "type",
        "enum",
        "const",
        "properties",
        "required",
        "additionalProperties",
        "propertyNames",
        "items",
        "minimum",
        "minItems",
        "minLength",
        "anyOf",
        "oneOf",
        "$ref",
        "format",
    }
)
ANNOTATIONS = frozenset(
    {"$schema", "$id", "$defs", "title", "description", "$comment", "examples", "default"}
)
_SUBSCHEMA_MAPS = ("properties", "$defs")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf")
_SUBSCHEMA_ONE = ("additionalProperties", "items", "propertyNames")


def _subschemas(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for key in _SUBSCHEMA_MAPS:
        for name, sub in schema.get(key, {}).items():
            yield f"{key}/{name}", sub
    for key in _SUBSCHEMA_LISTS:
        for index, sub in enumerate(schema.get(key, [])):
            yield f"{key}/{index}", sub
    for key in _SUBSCHEMA_ONE:
        sub = schema.get(key)
        if isinstance(sub, dict):
            yield key, sub


def unknown_keywords(schema: dict[str, Any], where: str = "#") -> list[str]:
    """Every keyword of ``schema`` (and its subschemas) this validator does not know."""
    found = [f"{where}/{k}" for k in schema if k not in ASSERTIONS | ANNOTATIONS]
    if schema.get("format", "date-time") != "date-time":
        found.append(f"{where}/format={schema['format']}")
    for path, sub in _subschemas(schema):
        found.extend(unknown_keywords(sub, f"{where}/{path}"))
    return found


def _resources(schema: dict[str, Any], base: str, out: dict[str, dict[str, Any]]) -> None:
    base = schema.get("$id", base)
    if "$id" in schema:
        out[schema["$id"]] = schema
    for _, sub in _subschemas(schema):
        _resources(sub, base, out)


def _pointer(document: dict[str, Any], pointer: str) -> dict[str, Any]:
    node: Any = document
    for part in filter(None, pointer.split("/")):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    assert isinstance(node, dict), f"$ref to a non-schema {pointer!r}"
    return node


_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


class _Validator:
    def __init__(self, root: dict[str, Any]) -> None:
        self.resources: dict[str, dict[str, Any]] = {"": root}
        _resources(root, "", self.resources)

    def resolve(self, ref: str, resource: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        uri, _, pointer = ref.partition("#")
        target = resource if not uri else self.resources[uri]
        return _pointer(target, pointer), target

    def errors(self, value: Any, schema: dict[str, Any], path: str, resource: dict[str, Any]):
        if "$id" in schema:
            resource = schema
        if "$ref" in schema:
            target, where = self.resolve(schema["$ref"], resource)
            yield from self.errors(value, target, path, where)
        kinds = schema.get("type")
        if kinds is not None:
            names = [kinds] if isinstance(kinds, str) else kinds
            if not any(_TYPES[name](value) for name in names):
                yield f"{path}: {value!r} is not of type {kinds}"
                return
        if "enum" in schema and not any(_same(value, e) for e in schema["enum"]):
            yield f"{path}: {value!r} is not one of {schema['enum']}"
        if "const" in schema and not _same(value, schema["const"]):
            yield f"{path}: {value!r} is not {schema['const']!r}"
        if isinstance(value, str):
            if schema.get("format") == "date-time" and not _is_time(value):
                yield f"{path}: {value!r} is not an ISO 8601 date-time with an offset"
            if len(value) < schema.get("minLength", 0):
                yield f"{path}: {value!r} is too short"
        if _TYPES["number"](value) and "minimum" in schema and value < schema["minimum"]:
            yield f"{path}: {value!r} is below {schema['minimum']}"
        if isinstance(value, dict):
            yield from self.object_errors(value, schema, path, resource)
        if isinstance(value, list):
            if len(value) < schema.get("minItems", 0):
                yield f"{path}: fewer than {schema['minItems']} items"
            if "items" in schema:
                for index, item in enumerate(value):
                    yield from self.errors(item, schema["items"], f"{path}[{index}]", resource)
        if "anyOf" in schema:
            options = [list(self.errors(value, s, path, resource)) for s in schema["anyOf"]]
            if all(options):
                yield f"{path}: matches none of anyOf: " + "; ".join(o[0] for o in options)
        if "oneOf" in schema:
            matched = sum(not list(self.errors(value, s, path, resource)) for s in schema["oneOf"])
            if matched != 1:
                yield f"{path}: matches {matched} of oneOf, not exactly one"

    def object_errors(
        self, value: dict[str, Any], schema: dict[str, Any], path: str, resource: dict[str, Any]
    ) -> Iterator[str]:
        for name in schema.get("required", ()):
            if name not in value:
                yield f"{path}: missing key {name!r}"
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if "propertyNames" in schema:
                yield from self.errors(key, schema["propertyNames"], f"{path} key", resource)
            if key in properties:
                yield from self.errors(item, properties[key], f"{path}.{key}", resource)
            elif extra is False:
                yield f"{path}: unexpected key {key!r}"
            elif isinstance(extra, dict):
                yield from self.errors(item, extra, f"{path}.{key}", resource)


def _same(a: Any, b: Any) -> bool:
    return (type(a) is type(b) and a == b) or (
        _TYPES["number"](a) and _TYPES["number"](b) and a == b
    )


def _is_time(text: str) -> bool:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return False
    return parsed.utcoffset() is not None


def validation_errors(value: Any, schema: dict[str, Any]) -> list[str]:
    """Every way ``value`` breaks ``schema`` (empty: it validates)."""
    unknown = unknown_keywords(schema)
    assert not unknown, f"the schema uses keywords this validator does not know: {unknown}"
    return list(_Validator(schema).errors(value, schema, "$", schema))


def assert_valid(value: Any, schema: dict[str, Any]) -> None:
    errors = validation_errors(value, schema)
    assert not errors, "\n".join(errors[:20])
