"""Salesforce errors → the :mod:`signals_crm.exceptions` tree. Pure.

Where errors come from (reference §5):

- a single-resource call answers 4xx/5xx with a JSON *array* ``[{"message", "errorCode",
  "fields"}]`` (read the first entry; ``DUPLICATES_DETECTED`` adds a ``duplicateResult``);
- an sObject Collections call answers 200 and puts per-record ``errors: [{"statusCode",
  "message", "fields"}]`` in each result — note ``statusCode``, not ``errorCode``;
- the OAuth token endpoint answers a JSON *object* ``{"error", "error_description"}``;
- Edge and gateway failures (502, some 503) answer an HTML page.

The table :data:`ERROR_CODES` gives, for every code the integration meets, the exception class
and whether retrying may help:

=====================================  ======================  =========
errorCode                              class                   retryable
=====================================  ======================  =========
INVALID_SESSION_ID, INVALID_AUTH_HEADER AuthenticationError    no (refreshed once first)
REQUEST_LIMIT_EXCEEDED                 RateLimitedError        daily: no; concurrent: yes
DUPLICATES_DETECTED, DUPLICATE_VALUE   DuplicateRecordError    no (carries the matched ids)
NOT_FOUND, ENTITY_IS_DELETED           NotFoundError           no
INACTIVE_OWNER_OR_USER, INSUFFICIENT_* PermissionDeniedError   no (needs an admin)
UNABLE_TO_LOCK_ROW, SERVER_UNAVAILABLE CRMServerError          yes
QUERY_TIMEOUT                          CRMServerError          yes
INVALID_QUERY_LOCATOR                  CRMAPIError             yes (re-run the query)
ALL_OR_NONE_..._ROLLED_BACK,           CRMAPIError             yes (collateral of another failure)
PROCESSING_HALTED
validation codes (REQUIRED_FIELD_MISSING, STRING_TOO_LONG, INVALID_EMAIL_ADDRESS, INVALID_FIELD,
INVALID_FIELD_FOR_INSERT_UPDATE, MALFORMED_QUERY, MALFORMED_ID, INVALID_CROSS_REFERENCE_KEY,
INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST, FIELD_CUSTOM_VALIDATION_EXCEPTION,
FIELD_INTEGRITY_EXCEPTION, CANNOT_UPDATE_CONVERTED_LEAD)
                                       CRMAPIError             no
=====================================  ======================  =========

Without a known code the HTTP status decides: 401 → authentication, 403 → permission, 404 → not
found, 429 → rate limited (``Retry-After`` honoured), 5xx → server error (retryable), other 4xx →
a permanent :class:`~signals_crm.exceptions.CRMAPIError`. Messages are Salesforce's own; request
headers (and so tokens) are never read here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from signals_crm.adapters.salesforce._bodies import json_body
from signals_crm.exceptions import (
    AuthenticationError,
    CRMAPIError,
    CRMServerError,
    DuplicateRecordError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
)

__all__ = [
    "ERROR_CODES",
    "duplicate_ids",
    "error_for_code",
    "error_from_record",
    "error_from_response",
    "is_already_member",
    "is_session_expired",
]

_VALIDATION_CODES = (
    "REQUIRED_FIELD_MISSING",
    "STRING_TOO_LONG",
    "INVALID_EMAIL_ADDRESS",
    "INVALID_FIELD",
    "INVALID_FIELD_FOR_INSERT_UPDATE",
    "MALFORMED_QUERY",
    "MALFORMED_ID",
    "INVALID_CROSS_REFERENCE_KEY",
    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
    "FIELD_CUSTOM_VALIDATION_EXCEPTION",
    "FIELD_INTEGRITY_EXCEPTION",
    "CANNOT_UPDATE_CONVERTED_LEAD",
    "INVALID_TYPE",
    "JSON_PARSER_ERROR",
    "INVALID_ID_FIELD",
    "EXCEEDED_ID_LIMIT",
)

ERROR_CODES: Mapping[str, tuple[type[CRMAPIError], bool]] = {
    "INVALID_SESSION_ID": (AuthenticationError, False),
    "INVALID_AUTH_HEADER": (AuthenticationError, False),
    "REQUEST_LIMIT_EXCEEDED": (RateLimitedError, True),
    "DUPLICATES_DETECTED": (DuplicateRecordError, False),
    "DUPLICATE_VALUE": (DuplicateRecordError, False),
    "NOT_FOUND": (NotFoundError, False),
    "ENTITY_IS_DELETED": (NotFoundError, False),
    "INACTIVE_OWNER_OR_USER": (PermissionDeniedError, False),
    "INSUFFICIENT_ACCESS_OR_READONLY": (PermissionDeniedError, False),
    "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY": (PermissionDeniedError, False),
    "API_DISABLED_FOR_ORG": (PermissionDeniedError, False),
    "API_CURRENTLY_DISABLED": (PermissionDeniedError, False),
    "UNABLE_TO_LOCK_ROW": (CRMServerError, True),
    "SERVER_UNAVAILABLE": (CRMServerError, True),
    "QUERY_TIMEOUT": (CRMServerError, True),
    "INVALID_QUERY_LOCATOR": (CRMAPIError, True),
    "ALL_OR_NONE_OPERATION_ROLLED_BACK": (CRMAPIError, True),
    "PROCESSING_HALTED": (CRMAPIError, True),
    **dict.fromkeys(_VALIDATION_CODES, (CRMAPIError, False)),
}
"""errorCode → (exception class, retryable)."""

_DAILY_LIMIT_MARKER = "totalrequests"
_REST_POLICY_MARKER = "not valid for use with the rest api"
_ALREADY_MEMBER = "already a campaign member"
_ID_IN_MESSAGE = re.compile(r"\bid:\s*([A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?)\b")


def duplicate_ids(item: Mapping[str, Any]) -> tuple[str, ...]:
    """The record ids a ``DUPLICATES_DETECTED`` (``duplicateResult``) or ``DUPLICATE_VALUE``
    (``... on record with id: 00Q...``) error names, in order, without repeats."""
    found: list[str] = []
    result = item.get("duplicateResult")
    if isinstance(result, Mapping):
        for match in result.get("matchResults") or ():
            if not isinstance(match, Mapping):
                continue
            for entry in match.get("matchRecords") or ():
                record = entry.get("record") if isinstance(entry, Mapping) else None
                if isinstance(record, Mapping):
                    record_id = record.get("Id") or record.get("id")
                    if isinstance(record_id, str) and record_id not in found:
                        found.append(record_id)
    message = item.get("message")
    if isinstance(message, str):
        for record_id in _ID_IN_MESSAGE.findall(message):
            if record_id not in found:
                found.append(record_id)
    return tuple(found)


def error_for_code(
    code: str | None,
    message: str,
    *,
    status_code: int | None,
    fields: Sequence[str] = (),
    matched_ids: Sequence[str] = (),
    retry_after: float | None = None,
) -> CRMAPIError:
    """The typed error for one Salesforce error entry (or a bare HTTP status)."""
    known = ERROR_CODES.get(code) if code else None
    if known is None:
        cls, retryable = _by_status(status_code)
    else:
        cls, retryable = known
    if cls is RateLimitedError:
        daily = _DAILY_LIMIT_MARKER in message.lower()
        return RateLimitedError(
            message,
            retry_after=retry_after,
            status_code=status_code,
            error_code=code,
            retryable=not daily,
        )
    if cls is DuplicateRecordError:
        return DuplicateRecordError(
            message,
            matched_ids=matched_ids,
            status_code=status_code,
            error_code=code,
            fields=fields,
        )
    if cls is CRMServerError:
        return CRMServerError(
            message, status_code=status_code, error_code=code, retryable=retryable, fields=fields
        )
    return cls(
        message, status_code=status_code, error_code=code, retryable=retryable, fields=fields
    )


def _by_status(status: int | None) -> tuple[type[CRMAPIError], bool]:
    if status is None:
        return CRMAPIError, False
    if status == 401:
        return AuthenticationError, False
    if status == 403:
        return PermissionDeniedError, False
    if status in (404, 410):
        return NotFoundError, False
    if status == 429:
        return RateLimitedError, True
    if status >= 500:
        return CRMServerError, True
    return CRMAPIError, False


def _fields(item: Mapping[str, Any]) -> tuple[str, ...]:
    raw = item.get("fields")
    if isinstance(raw, list):
        return tuple(str(f) for f in raw)
    return ()


def error_from_record(item: Mapping[str, Any]) -> CRMAPIError:
    """The typed error of one failed Collections result (its first ``errors`` entry)."""
    errors = item.get("errors")
    first: Mapping[str, Any] = {}
    if isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
        first = errors[0]
    code = first.get("statusCode") or first.get("errorCode")
    message = str(first.get("message") or "the record was not saved")
    return error_for_code(
        str(code) if code else None,
        message,
        status_code=None,
        fields=_fields(first),
        matched_ids=duplicate_ids(first),
    )


def _body(response: httpx.Response) -> Any:
    try:
        return json_body(response)
    except (ValueError, UnicodeDecodeError):
        return None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _html_title(text: str) -> str | None:
    match = re.search(r"<title>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    return " ".join(match.group(1).split()) if match else None


def error_from_response(response: httpx.Response) -> CRMAPIError:
    """The typed error of a failed HTTP response, whatever its body (JSON array or object,
    HTML page, empty)."""
    status = response.status_code
    body = _body(response)
    retry_after = _retry_after(response)
    if isinstance(body, list) and body and isinstance(body[0], Mapping):
        first = body[0]
        code = first.get("errorCode") or first.get("statusCode")
        message = str(first.get("message") or f"HTTP {status}")
        return error_for_code(
            str(code) if code else None,
            message,
            status_code=status,
            fields=_fields(first),
            matched_ids=duplicate_ids(first),
            retry_after=retry_after,
        )
    if isinstance(body, Mapping) and "error" in body:
        code = str(body["error"])
        message = str(body.get("error_description") or code)
        cls = AuthenticationError if status < 500 else CRMServerError
        return cls(message, status_code=status, error_code=code, retryable=status >= 500)
    text = response.content[:4000].decode("utf-8", errors="replace").strip()
    title = _html_title(text) if "<" in text else None
    if title:
        message = title
    elif text and "<" not in text:
        message = text[:200]
    else:
        message = response.reason_phrase or f"HTTP {status}"
    return error_for_code(None, message, status_code=status, retry_after=retry_after)


def is_session_expired(response: httpx.Response) -> bool:
    """Whether ``response`` says the access token expired (refresh once and replay).

    A 401 ``INVALID_SESSION_ID`` — except "not valid for use with the REST API", an org policy
    that no refresh fixes.
    """
    if response.status_code != 401:
        return False
    body = _body(response)
    if not (isinstance(body, list) and body and isinstance(body[0], Mapping)):
        return False
    first = body[0]
    message = str(first.get("message") or "").lower()
    return first.get("errorCode") == "INVALID_SESSION_ID" and _REST_POLICY_MARKER not in message


def is_already_member(error: CRMAPIError) -> bool:
    """Whether a CampaignMember create failed only because the person is already a member."""
    return error.error_code == "DUPLICATE_VALUE" and (
        _ALREADY_MEMBER in error.message.lower() or "campaignmember" in error.message.lower()
    )
