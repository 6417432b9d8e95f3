"""The error mapping table: HubSpot statuses and categories to the typed error tree."""

from __future__ import annotations

import httpx
import pytest

from signals_crm.adapters.hubspot._errors import (
    batch_error,
    error_from_response,
    parse_existing_id,
    transport_error,
)
from signals_crm.exceptions import (
    AuthenticationError,
    CRMAPIError,
    CRMServerError,
    DuplicateRecordError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
)


def answer(
    status: int, body: object = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    if body is None:
        return httpx.Response(status, headers=headers)
    return httpx.Response(status, json=body, headers=headers)


@pytest.mark.parametrize(
    ("status", "body", "kind", "code", "retryable"),
    [
        (
            400,
            {"category": "VALIDATION_ERROR", "message": "bad"},
            CRMAPIError,
            "VALIDATION_ERROR",
            False,
        ),
        (
            401,
            {"category": "INVALID_AUTHENTICATION", "message": "x"},
            AuthenticationError,
            "INVALID_AUTHENTICATION",
            False,
        ),
        (
            401,
            {"category": "EXPIRED_AUTHENTICATION", "message": "x"},
            AuthenticationError,
            "EXPIRED_AUTHENTICATION",
            False,
        ),
        (
            403,
            {"category": "MISSING_SCOPES", "message": "x"},
            PermissionDeniedError,
            "MISSING_SCOPES",
            False,
        ),
        (
            404,
            {"category": "OBJECT_NOT_FOUND", "message": "x"},
            NotFoundError,
            "OBJECT_NOT_FOUND",
            False,
        ),
        (404, {"message": "resource not found"}, NotFoundError, "OBJECT_NOT_FOUND", False),
        (
            409,
            {"category": "CONFLICT", "message": "Contact already exists. Existing ID: 5"},
            DuplicateRecordError,
            "CONFLICT",
            False,
        ),
        (423, {"message": "locked"}, CRMServerError, "LOCKED", True),
        (
            429,
            {"errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING", "message": "x"},
            RateLimitedError,
            "TEN_SECONDLY_ROLLING",
            True,
        ),
        (
            429,
            {"errorType": "RATE_LIMIT", "policyName": "SECONDLY", "message": "x"},
            RateLimitedError,
            "SECONDLY",
            True,
        ),
        (
            429,
            {"errorType": "RATE_LIMIT", "policyName": "DAILY", "message": "x"},
            RateLimitedError,
            "DAILY",
            False,
        ),
        (429, {"category": "RATE_LIMITS", "message": "x"}, RateLimitedError, "RATE_LIMIT", True),
        (477, {"message": "migrating"}, CRMServerError, "MIGRATION_IN_PROGRESS", True),
        (500, {"message": "boom"}, CRMServerError, None, True),
        (502, {"message": "x"}, CRMServerError, None, True),
        (503, {"message": "x"}, CRMServerError, None, True),
        (504, {"message": "x"}, CRMServerError, None, True),
        (521, {"message": "x"}, CRMServerError, None, True),
        (522, {"message": "x"}, CRMServerError, None, False),
        (525, {"message": "x"}, CRMServerError, None, False),
        (414, {"message": "too long"}, CRMAPIError, None, False),
    ],
)
def test_mapping_table(
    status: int, body: object, kind: type[CRMAPIError], code: str | None, retryable: bool
) -> None:
    """Each HubSpot status/category maps to one typed error with the right retryability."""
    err = error_from_response(answer(status, body))
    assert type(err) is kind
    assert err.status_code == status
    assert err.error_code == code
    assert err.retryable is retryable


def test_conflict_carries_the_existing_id() -> None:
    """A 409 names the existing contact, parsed out of the message text."""
    err = error_from_response(
        answer(
            409,
            {
                "status": "error",
                "message": "Contact already exists. Existing ID: 37765128953",
                "category": "CONFLICT",
            },
        )
    )
    assert isinstance(err, DuplicateRecordError)
    assert err.matched_ids == ("37765128953",)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Contact already exists. Existing ID: 123", "123"),
        ("Existing ID:456", "456"),
        ("Contact already exists.", None),
        (None, None),
    ],
)
def test_parse_existing_id(message: str | None, expected: str | None) -> None:
    """``Existing ID:\\s*(\\d+)`` is the only place the id lives."""
    assert parse_existing_id(message) == expected


def test_retry_after_header_wins_over_the_policy_default() -> None:
    """A Retry-After header sets retry_after; otherwise the policy's window is used."""
    body = {"errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING", "message": "x"}
    with_header = error_from_response(answer(429, body, {"Retry-After": "3"}))
    without = error_from_response(answer(429, body))
    assert isinstance(with_header, RateLimitedError)
    assert isinstance(without, RateLimitedError)
    assert with_header.retry_after == 3.0
    assert without.retry_after == 10.0


def test_html_gateway_page_becomes_a_short_message() -> None:
    """A Cloudflare HTML page is not parsed as JSON and not echoed into the error."""
    page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
    err = error_from_response(
        httpx.Response(502, content=page, headers={"content-type": "text/html"})
    )
    assert isinstance(err, CRMServerError)
    assert err.retryable is True
    assert "<html>" not in str(err)
    assert "502" in str(err)


def test_property_errors_name_their_fields() -> None:
    """A VALIDATION_ERROR listing property problems names those properties."""
    message = (
        'Property values were not valid: [{"isValid":false,"message":"Property \\"missing\\" '
        'does not exist","error":"PROPERTY_DOESNT_EXIST","name":"missing"}]'
    )
    err = error_from_response(answer(400, {"category": "VALIDATION_ERROR", "message": message}))
    assert err.fields == ("missing",)


def test_batch_errors_have_no_status() -> None:
    """A per-record error inside a 207 answer has no HTTP status of its own."""
    err = batch_error(
        {
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "message": "gone",
            "context": {"ids": ["9"]},
        }
    )
    assert isinstance(err, NotFoundError)
    assert err.status_code is None
    assert err.fields == ("9",)


def test_lenient_parsing_of_empty_bodies() -> None:
    """An error without a body still maps by status and carries a message."""
    err = error_from_response(answer(503))
    assert isinstance(err, CRMServerError)
    assert "503" in err.message


@pytest.mark.parametrize(
    ("exc", "maybe_sent"),
    [
        (httpx.ConnectError("refused"), False),
        (httpx.ConnectTimeout("slow"), False),
        (httpx.ReadTimeout("slow"), True),
        (httpx.RemoteProtocolError("dropped"), True),
    ],
)
def test_transport_errors_say_whether_the_request_may_have_landed(
    exc: httpx.RequestError, maybe_sent: bool
) -> None:
    """Connect failures never reached HubSpot; read failures may have."""
    err = transport_error(exc)
    assert err.retryable is True
    assert err.maybe_sent is maybe_sent
    assert err.__cause__ is exc
