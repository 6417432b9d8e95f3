"""Conversations to JSON-ready dicts and back, exactly.

The ledger stores each due conversation as JSON. The format (``"v": 1``) is an object per
domain value, named by its ``attrs`` fields:

1. ``str``, ``int``, ``bool``, finite ``float`` and ``None`` are written as they are (JSON keeps
   ``true``, ``1`` and ``1.0`` apart).
2. Every other value is a *tagged* object with one ``$`` key, so its type survives:
   ``{"$date": "2026-11-29"}``, ``{"$datetime": "2026-11-29T10:00:00+01:00"}`` and
   ``{"$float": "nan" | "inf" | "-inf"}``. A ``zoneinfo.ZoneInfo`` time zone adds
   ``"$zone": "Europe/Paris"``, so the datetime comes back with the same zone; other time zones
   come back as fixed offsets (same offset, same instant). ``"$fold": 1`` keeps the fold (the
   second of two equal wall times). Naive datetimes stay naive.
3. No field value is ever a JSON object, so an object where a value belongs is always a tag.
   ``Visitor.extra`` and ``Company.attributes`` are objects of values (string keys only).
4. Decoding is strict: an unknown version, field or tag raises
   :class:`~signals_crm.exceptions.LedgerError`, as does encoding a value that is not a
   :data:`~signals_crm.core.model.FieldValue`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import attrs
from attrs import AttrsInstance

from signals_crm.core.model import (
    Company,
    Conversation,
    ConversationStatus,
    CustomActivity,
    FieldValue,
    Meeting,
    Participants,
    SignalsUser,
    Traffic,
    Visitor,
)
from signals_crm.exceptions import LedgerError, SignalsCRMError

__all__ = ["CODEC_VERSION", "conversation_from_dict", "conversation_to_dict"]

CODEC_VERSION = 1
"""The version written into (and required of) every encoded conversation."""

_T = TypeVar("_T", bound=AttrsInstance)
_MAPPING_FIELDS = frozenset({"extra", "attributes"})
_ROLES = ("meeting_scheduler", "last_routed", "closer")


# ------------------------------------------------------------------------------------------------
# Values


def _encode_value(value: object, path: str) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return {"$float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if isinstance(value, datetime):  # before date: a datetime is a date
        tagged: dict[str, Any] = {"$datetime": value.isoformat()}
        if isinstance(value.tzinfo, ZoneInfo) and value.tzinfo.key:
            tagged["$zone"] = value.tzinfo.key
        if value.fold:
            tagged["$fold"] = 1
        return tagged
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    raise LedgerError(f"cannot store {path}: {type(value).__name__} is not a field value")


def _decode_value(value: Any, path: str) -> FieldValue:
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, dict):
        if "$datetime" in value and set(value) <= {"$datetime", "$zone", "$fold"}:
            parsed = datetime.fromisoformat(value["$datetime"])
            fold = 1 if value.get("$fold") == 1 else 0
            zone = value.get("$zone")
            if zone is not None:
                parsed = parsed.replace(tzinfo=ZoneInfo(zone))
            return parsed.replace(fold=fold)
        if set(value) == {"$date"}:
            return date.fromisoformat(value["$date"])
        if set(value) == {"$float"} and value["$float"] in ("nan", "inf", "-inf"):
            return float(value["$float"])
    raise LedgerError(f"cannot decode {path}: unexpected {value!r:.80}")


def _encode_mapping(values: Mapping[str, FieldValue], path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if not isinstance(key, str):
            raise LedgerError(f"cannot store {path}: keys must be strings, not {key!r:.40}")
        out[key] = _encode_value(value, f"{path}.{key}")
    return out


def _decode_mapping(values: Any, path: str) -> dict[str, FieldValue]:
    if not isinstance(values, dict):
        raise LedgerError(f"cannot decode {path}: expected an object")
    return {str(k): _decode_value(v, f"{path}.{k}") for k, v in values.items()}


# ------------------------------------------------------------------------------------------------
# Flat domain values (every field a FieldValue, or a mapping of them)


def _encode_flat(obj: AttrsInstance, path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in attrs.fields(type(obj)):
        value = getattr(obj, field.name)
        where = f"{path}.{field.name}"
        if field.name in _MAPPING_FIELDS:
            out[field.name] = _encode_mapping(value, where)
        else:
            out[field.name] = _encode_value(value, where)
    return out


def _decode_flat(cls: type[_T], data: Any, path: str) -> _T:
    if not isinstance(data, dict):
        raise LedgerError(f"cannot decode {path}: expected an object")
    known = {f.name for f in attrs.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise LedgerError(f"cannot decode {path}: unknown fields {unknown}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        where = f"{path}.{name}"
        if name in _MAPPING_FIELDS:
            kwargs[name] = _decode_mapping(value, where)
        else:
            kwargs[name] = _decode_value(value, where)
    return cls(**kwargs)


def _optional(obj: AttrsInstance | None, path: str) -> dict[str, Any] | None:
    return None if obj is None else _encode_flat(obj, path)


def _decode_optional(cls: type[_T], data: Any, path: str) -> _T | None:
    return None if data is None else _decode_flat(cls, data, path)


# ------------------------------------------------------------------------------------------------
# Conversations


def conversation_to_dict(conversation: Conversation) -> dict[str, Any]:
    """A JSON-ready dict that :func:`conversation_from_dict` turns back into an equal value."""
    c = conversation
    return {
        "v": CODEC_VERSION,
        "id": c.id,
        "status": c.status.value,
        "closed_at": _encode_value(c.closed_at, "closed_at"),
        "lead_score": c.lead_score,
        "visitor": _optional(c.visitor, "visitor"),
        "company": _optional(c.company, "company"),
        "participants": {
            role: _optional(getattr(c.participants, role), f"participants.{role}")
            for role in _ROLES
        },
        "transcript": c.transcript,
        "meeting": _optional(c.meeting, "meeting"),
        "traffic": _encode_flat(c.traffic, "traffic"),
        "custom_activities": [_encode_activity(a) for a in c.custom_activities],
    }


def _encode_activity(activity: CustomActivity) -> dict[str, Any]:
    where = f"custom_activities.{activity.kind}:{activity.id}"
    return {
        "kind": activity.kind,
        "id": activity.id,
        "occurred_on": _encode_value(activity.occurred_on, f"{where}.occurred_on"),
        "data": _encode_mapping(activity.data, f"{where}.data"),
    }


def _decode_activity(data: Any, index: int) -> CustomActivity:
    where = f"custom_activities[{index}]"
    if not isinstance(data, dict) or set(data) != {"kind", "id", "occurred_on", "data"}:
        raise LedgerError(f"cannot decode {where}: unexpected fields")
    occurred = _decode_value(data["occurred_on"], f"{where}.occurred_on")
    return CustomActivity(
        kind=data["kind"],
        id=data["id"],
        occurred_on=occurred if isinstance(occurred, date) else None,
        data=_decode_mapping(data["data"], f"{where}.data"),
    )


_CONVERSATION_KEYS = frozenset(
    {
        "v",
        "id",
        "status",
        "closed_at",
        "lead_score",
        "visitor",
        "company",
        "participants",
        "transcript",
        "meeting",
        "traffic",
        "custom_activities",
    }
)


def conversation_from_dict(data: Mapping[str, Any]) -> Conversation:
    """The conversation that :func:`conversation_to_dict` encoded.

    Raises :class:`~signals_crm.exceptions.LedgerError` for anything it did not write.
    """
    try:
        return _decode_conversation(data)
    except LedgerError:
        raise
    except (SignalsCRMError, KeyError, TypeError, ValueError) as error:
        raise LedgerError(f"cannot decode conversation: {error}") from error


def _decode_conversation(data: Mapping[str, Any]) -> Conversation:
    checked: object = data
    if not isinstance(checked, Mapping) or data.get("v") != CODEC_VERSION:
        raise LedgerError(f"cannot decode conversation: version must be {CODEC_VERSION}")
    unknown = sorted(set(data) - _CONVERSATION_KEYS)
    if unknown:
        raise LedgerError(f"cannot decode conversation: unknown fields {unknown}")
    participants = data.get("participants") or {}
    if not isinstance(participants, dict) or not set(participants) <= set(_ROLES):
        raise LedgerError("cannot decode participants: unexpected roles")
    closed_at = _decode_value(data.get("closed_at"), "closed_at")
    if closed_at is not None and not isinstance(closed_at, datetime):
        raise LedgerError("cannot decode closed_at: expected a datetime")
    return Conversation(
        id=data["id"],
        status=ConversationStatus(data.get("status", ConversationStatus.CLOSED.value)),
        closed_at=closed_at,
        lead_score=data.get("lead_score"),
        visitor=_decode_optional(Visitor, data.get("visitor"), "visitor"),
        company=_decode_optional(Company, data.get("company"), "company"),
        participants=Participants(
            **{role: _decode_optional(SignalsUser, participants.get(role), role) for role in _ROLES}
        ),
        transcript=data.get("transcript"),
        meeting=_decode_optional(Meeting, data.get("meeting"), "meeting"),
        traffic=_decode_flat(Traffic, data.get("traffic") or {}, "traffic"),
        custom_activities=[
            _decode_activity(item, i) for i, item in enumerate(data.get("custom_activities") or [])
        ],
    )
