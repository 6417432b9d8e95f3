"""Property values and inline associations checked as HubSpot checks them."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from signals_crm.core.model import is_valid_email, normalize_email
from signals_crm.testing.hubspot._core import (
    DATE,
    NUMBER,
    PortalCore,
    Record,
)
from signals_crm.testing.hubspot._schema import (
    ASSOCIATION_TYPES,
    LIFECYCLE_STAGES,
)

__all__ = ["Validation", "epoch_ms"]


class Validation(PortalCore):
    """Validation of property values and create inputs."""

    def _check_props(
        self, kind: str, values: Any, current: Record | None
    ) -> tuple[dict[str, str], list[dict[str, Any]]]:
        """Validate a ``properties`` object; returns the values to store and the problems."""
        if not isinstance(values, Mapping):
            return {}, [
                self._invalid("properties", "properties must be an object", "INVALID_INPUT")
            ]
        schema = self.properties[kind]
        out: dict[str, str] = {}
        problems: list[dict[str, Any]] = []
        for name, raw in values.items():
            prop = schema.get(name)
            if prop is None:
                problems.append(
                    self._invalid(
                        name, f'Property "{name}" does not exist', "PROPERTY_DOESNT_EXIST"
                    )
                )
                continue
            if prop["modificationMetadata"]["readOnlyValue"]:
                problems.append(
                    self._invalid(
                        name, f'Property "{name}" is a read only property', "READ_ONLY_VALUE"
                    )
                )
                continue
            value = "" if raw is None else raw if isinstance(raw, str) else json.dumps(raw)
            if isinstance(raw, bool):
                value = "true" if raw else "false"
            elif isinstance(raw, int | float) and not isinstance(raw, bool):
                value = str(raw)
            problem = self._check_value(kind, name, prop, value)
            if problem is not None:
                problems.append(problem)
                continue
            out[name] = value
        if kind == "contacts" and "lifecyclestage" in out and current is not None:
            old = current.props.get("lifecyclestage", "")
            new = out["lifecyclestage"]
            if old and new and _stage_rank(new) < _stage_rank(old):
                if self.backward_lifecycle == "reject":
                    problems.append(
                        self._invalid(
                            "lifecyclestage",
                            f"{new} is before the current lifecycle stage {old}; clear it first",
                            "INVALID_LIFECYCLE_STAGE",
                        )
                    )
                else:
                    del out["lifecyclestage"]
        return out, problems

    def _check_value(
        self, kind: str, name: str, prop: Mapping[str, Any], value: str
    ) -> dict[str, Any] | None:
        if value == "":
            return None
        ptype = prop["type"]
        if prop.get("referencedObjectType") == "OWNER":
            if value not in self.owners:
                return self._invalid(name, f"{value} is not a valid owner id", "INVALID_OWNER_ID")
            return None
        if ptype == "enumeration":
            options = {o["value"] for o in prop["options"]}
            if not options:
                return None
            chosen = (
                [v for v in value.split(";") if v] if prop["fieldType"] == "checkbox" else [value]
            )
            for v in chosen:
                if v not in options:
                    allowed = ", ".join(sorted(options))
                    return self._invalid(
                        name,
                        f"{v} was not one of the allowed options: [{allowed}]",
                        "INVALID_OPTION",
                    )
            return None
        if ptype == "number" and not NUMBER.match(value):
            return self._invalid(name, f"{value} is not a valid number", "INVALID_INTEGER")
        if ptype == "bool" and value not in {"true", "false"}:
            return self._invalid(name, f"{value} is not a valid boolean", "INVALID_BOOLEAN")
        if ptype == "date" and not (DATE.match(value) or _midnight_ms(value)):
            return self._invalid(name, f"{value} is not a valid date", "INVALID_DATE")
        if ptype == "datetime" and epoch_ms(value) is None:
            return self._invalid(name, f"{value} is not a valid datetime", "INVALID_DATETIME")
        if kind == "contacts" and name == "email" and not is_valid_email(value):
            return self._invalid(name, f"Email address {value} is invalid", "INVALID_EMAIL")
        if len(value) > 65536:
            return self._invalid(name, f"{name} is longer than 65536 characters", "INVALID_LENGTH")
        return None

    def _invalid(self, name: str, message: str, code: str) -> dict[str, Any]:
        return {
            "isValid": False,
            "message": message,
            "error": code,
            "name": name,
            "localizedErrorMessage": message,
            "portalId": self.portal_id,
        }

    def _validation_body(
        self, problems: Sequence[Mapping[str, Any]], trace: str | None
    ) -> dict[str, Any]:
        message = "Property values were not valid: " + json.dumps(list(problems))
        context = {"objectWriteTraceId": [trace]} if trace is not None else None
        errors = [
            {
                "message": p["message"],
                "code": p["error"],
                "context": {"propertyName": [p["name"]]},
            }
            for p in problems
        ]
        return self._error_body("VALIDATION_ERROR", message, context=context, errors=errors)

    def _check_associations(
        self, kind: str, associations: Any
    ) -> tuple[list[tuple[str, str, int]], str | None]:
        if associations in (None, []):
            return [], None
        if not isinstance(associations, list):
            return [], "associations must be a list"
        links: list[tuple[str, str, int]] = []
        for item in associations:
            to_id = str(((item or {}).get("to") or {}).get("id", ""))
            for t in (item or {}).get("types") or []:
                try:
                    type_id = int(t.get("associationTypeId"))
                except (TypeError, ValueError):
                    return [], "associationTypeId must be a number"
                spec = ASSOCIATION_TYPES.get((kind, type_id))
                target = spec.to_type if spec is not None else None
                if target is None:
                    return [], f"{type_id} is not a valid association type id from {kind}"
                if self._find(target, to_id, None) is None:
                    return [], (
                        f"One or more associations are invalid: {target} {to_id} does not exist"
                    )
                links.append((target, to_id, type_id))
        return links, None

    def _prepare_create(
        self, kind: str, item: Any
    ) -> tuple[dict[str, str], list[tuple[str, str, int]], dict[str, Any] | None]:
        """Validate one create input; returns (props, links, error body or None)."""
        trace = (item or {}).get("objectWriteTraceId") if isinstance(item, Mapping) else None
        trace = str(trace) if trace is not None else None
        if not isinstance(item, Mapping):
            return {}, [], self._error_body("VALIDATION_ERROR", "Invalid input")
        props, problems = self._check_props(kind, item.get("properties") or {}, None)
        if problems:
            return {}, [], self._validation_body(problems, trace)
        if kind == "contacts" and not any(props.get(p) for p in ("email", "firstname", "lastname")):
            return (
                {},
                [],
                self._error_body(
                    "VALIDATION_ERROR",
                    "A contact needs at least one of email, firstname or lastname",
                    context={"objectWriteTraceId": [trace]} if trace else None,
                ),
            )
        if kind == "contacts" and normalize_email(props.get("email", "")) in self.gdpr_blocked:
            problem = self._invalid(
                "email",
                f"{props['email']} was erased by a GDPR delete and may not be added again",
                "BLOCKED_EMAIL",
            )
            return {}, [], self._validation_body([problem], trace)
        if kind in {"tasks", "notes", "meetings", "calls"} and not props.get("hs_timestamp"):
            problem = self._invalid("hs_timestamp", "hs_timestamp is required", "REQUIRED_PROPERTY")
            return {}, [], self._validation_body([problem], trace)
        links, bad = self._check_associations(kind, item.get("associations"))
        if bad is not None:
            return (
                {},
                [],
                self._error_body(
                    "VALIDATION_ERROR",
                    bad,
                    subCategory="crm.associations.INVALID_OBJECT_IDS",
                    context={"objectWriteTraceId": [trace]} if trace else None,
                ),
            )
        return props, links, None


def _stage_rank(value: str) -> int:
    try:
        return LIFECYCLE_STAGES.index(value)
    except ValueError:
        return len(LIFECYCLE_STAGES)


def epoch_ms(value: str) -> int | None:
    if value.isdigit():
        return int(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _midnight_ms(value: str) -> bool:
    return value.isdigit() and int(value) % 86_400_000 == 0
