"""The JSON Schemas (draft 2020-12) of the library's data forms, shipped with the package.

=====================  ===============================================  ====================
name                   what it describes                                the value's method
=====================  ===============================================  ====================
``explanation``        why a visitor was, or wasn't, synced             ``Explanation.as_dict``
``dry_run``            the exact writes a sync would make (old → new)   ``DryRun.as_dict``
``sync_report``        a run's outcomes, totals and cost                ``SyncReport.as_dict``
``settings_catalog``   what a settings page offers (fields, users...)   ``SettingsCatalog.as_dict``
=====================  ===============================================  ====================

Rules:

1. Each form carries ``schema_version`` (1); it changes only on a breaking change (a key
   removed, or its meaning changed). Within a version new keys may appear: readers ignore keys
   they do not know. The schema shipped with a release describes that release's output
   exactly (``additionalProperties: false``), so a test validating real outputs against it
   fails the day the two differ.
2. :func:`json_schema` returns one self-contained document: a schema that refers to another by
   its ``$id`` (``urn:signals-crm:schema:<name>``) gets that one embedded under ``$defs``
   (JSON Schema's bundling), so any draft 2020-12 validator takes it as it is.
3. Times are ISO 8601 text with their UTC offset; every value is a plain JSON value.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any, Final, Literal, get_args

from signals_crm.exceptions import ConfigurationError, Problem

__all__ = ["SCHEMA_NAMES", "SchemaName", "json_schema"]

SchemaName = Literal["dry_run", "explanation", "settings_catalog", "sync_report"]
SCHEMA_NAMES: Final[tuple[SchemaName, ...]] = get_args(SchemaName)
_PREFIX: Final = "urn:signals-crm:schema:"


@cache
def _load(name: str) -> dict[str, Any]:
    text = resources.files(__name__).joinpath(f"{name}.schema.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _refs(node: Any) -> set[str]:
    """The other schemas ``node`` refers to, by name."""
    if isinstance(node, list):
        return set().union(*(_refs(item) for item in node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found = set().union(*(_refs(value) for value in node.values())) if node else set()
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(_PREFIX):
        found.add(ref.removeprefix(_PREFIX).partition("#")[0])
    return found


def json_schema(name: SchemaName) -> dict[str, Any]:
    """The JSON Schema of one data form (see the module docstring), as a fresh dict."""
    if name not in SCHEMA_NAMES:
        known = ", ".join(SCHEMA_NAMES)
        raise ConfigurationError([Problem("name", f"no schema {name!r}; one of {known}")])
    schema = copy.deepcopy(_load(name))
    wanted = sorted(_refs(schema) - {name})
    bundled: set[str] = {name}
    while wanted:
        other = wanted.pop()
        if other in bundled:
            continue
        bundled.add(other)
        embedded = copy.deepcopy(_load(other))
        embedded.pop("$schema", None)
        schema.setdefault("$defs", {})[f"bundled:{other}"] = embedded
        wanted.extend(sorted(_refs(embedded) - bundled))
    return schema
