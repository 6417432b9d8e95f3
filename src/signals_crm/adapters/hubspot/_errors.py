"""HubSpot error bodies → the typed error tree of :mod:`signals_crm.exceptions` (pure).

The table (status / ``category`` → error, retryable):

==========================================  ==================================  =========
HubSpot says                                raised as                           retryable
==========================================  ==================================  =========
400 ``VALIDATION_ERROR`` (and other 4xx)    ``CRMAPIError``                     no
401 ``INVALID_AUTHENTICATION``/``EXPIRED_`` ``AuthenticationError``             no
403 ``MISSING_SCOPES`` (any 403)            ``PermissionDeniedError``           no
404, ``OBJECT_NOT_FOUND``                   ``NotFoundError``                   no
409 ``CONFLICT``                            ``DuplicateRecordError`` (+ ids)    no
423 Locked                                  ``CRMServerError``                  yes
429 ``TEN_SECONDLY_ROLLING``/``SECONDLY``    ``RateLimitedError`` (retry_after)  yes
429 ``DAILY``                               ``RateLimitedError``                no
477 Migration in progress                   ``CRMServerError`` (Retry-After)    yes
500, 502, 503, 504, 521, 523, 524           ``CRMServerError``                  yes
522, 525, 526 (contact support)             ``CRMServerError``                  no
==========================================  ==================================  =========

Bodies are parsed leniently (every field optional; HTML gateway pages become a short message).
A 409's existing record id lives only inside the message text: ``Existing ID:\\s*(\\d+)``.
Messages are HubSpot's own, never a header or a token.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

import httpx

from signals_crm.exceptions import (
    AuthenticationError,
    CRMAPIError,
    CRMServerError,
    DuplicateRecordError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    TransportError,
)

__all__ = [
    "batch_error",
    "error_from_body",
    "error_from_response",
    "json_body",
    "parse_existing_id",
    "transport_error",
]

_EXISTING_ID = re.compile(r"Existing ID:\s*(\d+)")
_PROPERTY_ERRORS = re.compile(r"Property values were not valid: (\[.*\])", re.DOTALL)
_RETRYABLE_5XX: Final = frozenset({500, 502, 503, 504, 521, 523, 524})
_POLICY_WAIT: Final[Mapping[str, float]] = {"TEN_SECONDLY_ROLLING": 10.0, "SECONDLY": 1.0}


def parse_existing_id(message: str | None) -> str | None:
    """The id in a ``CONFLICT`` message (``"Contact already exists. Existing ID: 123"``)."""
    if not message:
        return None
    found = _EXISTING_ID.search(message)
    return found.group(1) if found else None


def json_body(response: httpx.Response) -> Any:
    """The JSON body of ``response``, or ``None`` when it is not JSON."""
    try:
        return json.loads(response.content) if response.content else None
    except ValueError:
        return None


def _retry_after(headers: httpx.Headers) -> float | None:
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        return None


def _property_fields(message: str) -> tuple[str, ...]:
    found = _PROPERTY_ERRORS.search(message)
    if not found:
        return ()
    try:
        items = json.loads(found.group(1))
    except ValueError:
        return ()
    if not isinstance(items, list):
        return ()
    return tuple(str(i["name"]) for i in items if isinstance(i, dict) and "name" in i)


def error_from_body(
    status: int | None, body: Any, *, retry_after: float | None = None
) -> CRMAPIError:
    """The typed error for a HubSpot error ``body`` answered with ``status``.

    ``status`` is ``None`` for a per-record error inside a multi-status batch answer.
    """
    data: Mapping[str, Any] = body if isinstance(body, Mapping) else {}
    category = data.get("category")
    category = str(category) if category else None
    message = str(data.get("message") or "") or _default_message(status)
    policy = data.get("policyName")

    if status == 429 or category in {"RATE_LIMITS", "RATE_LIMIT"}:
        policy_name = str(policy) if policy else None
        daily = policy_name == "DAILY"
        wait = retry_after
        if wait is None and policy_name is not None:
            wait = _POLICY_WAIT.get(policy_name)
        return RateLimitedError(
            message,
            retry_after=wait,
            status_code=status,
            error_code=policy_name or "RATE_LIMIT",
            retryable=not daily,
        )
    if status == 409 or category == "CONFLICT":
        existing = parse_existing_id(message)
        return DuplicateRecordError(
            message,
            matched_ids=(existing,) if existing else (),
            status_code=status,
            error_code=category or "CONFLICT",
        )
    if status == 401 or category in {"INVALID_AUTHENTICATION", "EXPIRED_AUTHENTICATION"}:
        return AuthenticationError(
            message, status_code=status, error_code=category or "INVALID_AUTHENTICATION"
        )
    if status == 403 or category == "MISSING_SCOPES":
        return PermissionDeniedError(message, status_code=status, error_code=category)
    if status == 404 or category == "OBJECT_NOT_FOUND":
        return NotFoundError(
            message,
            status_code=status,
            error_code=category or "OBJECT_NOT_FOUND",
            fields=_context_ids(data),
        )
    if status == 423:
        return CRMServerError(message, status_code=status, error_code=category or "LOCKED")
    if status == 477:
        return CRMServerError(
            message, status_code=status, error_code=category or "MIGRATION_IN_PROGRESS"
        )
    if status is not None and status >= 500:
        return CRMServerError(
            message,
            status_code=status,
            error_code=category,
            retryable=status in _RETRYABLE_5XX,
        )
    return CRMAPIError(
        message,
        status_code=status,
        error_code=category,
        retryable=False,
        fields=_property_fields(message),
    )


def _context_ids(data: Mapping[str, Any]) -> tuple[str, ...]:
    context = data.get("context")
    if isinstance(context, Mapping):
        ids = context.get("ids")
        if isinstance(ids, list):
            return tuple(str(i) for i in ids)
    return ()


def _default_message(status: int | None) -> str:
    if status is None:
        return "HubSpot reported an error for this record"
    phrase = httpx.codes.get_reason_phrase(status) or "error"
    return f"HubSpot answered HTTP {status} {phrase}"


def error_from_response(response: httpx.Response) -> CRMAPIError:
    """The typed error for a non-2xx ``response`` (JSON or not)."""
    body = json_body(response)
    err = error_from_body(response.status_code, body, retry_after=_retry_after(response.headers))
    if body is None and response.content:
        err.message = f"{_default_message(response.status_code)} (non-JSON body)"
        err.args = (err.message,)
    return err


def batch_error(entry: Mapping[str, Any]) -> CRMAPIError:
    """The typed error for one ``StandardError`` of a multi-status (207) batch answer."""
    return error_from_body(None, entry)


def transport_error(exc: httpx.RequestError) -> TransportError:
    """A network failure as a :class:`TransportError`; ``maybe_sent`` unless it never left."""
    never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    kind = type(exc).__name__
    err = TransportError(f"HubSpot request failed: {kind}", maybe_sent=not never_sent)
    err.__cause__ = exc
    return err
