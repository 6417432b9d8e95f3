"""The Salesforce error-mapping table: every code to the typed tree, with the right retryable."""

from __future__ import annotations

import httpx
import pytest

from signals_crm.adapters.salesforce._errors import (
    ERROR_CODES,
    duplicate_ids,
    error_from_record,
    error_from_response,
    is_already_member,
    is_session_expired,
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

TABLE = [
    ("INVALID_SESSION_ID", 401, AuthenticationError, False),
    ("INVALID_AUTH_HEADER", 401, AuthenticationError, False),
    ("DUPLICATES_DETECTED", 400, DuplicateRecordError, False),
    ("DUPLICATE_VALUE", 400, DuplicateRecordError, False),
    ("REQUIRED_FIELD_MISSING", 400, CRMAPIError, False),
    ("STRING_TOO_LONG", 400, CRMAPIError, False),
    ("INVALID_EMAIL_ADDRESS", 400, CRMAPIError, False),
    ("INVALID_FIELD", 400, CRMAPIError, False),
    ("INVALID_FIELD_FOR_INSERT_UPDATE", 400, CRMAPIError, False),
    ("MALFORMED_QUERY", 400, CRMAPIError, False),
    ("MALFORMED_ID", 400, CRMAPIError, False),
    ("INVALID_CROSS_REFERENCE_KEY", 400, CRMAPIError, False),
    ("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", 400, CRMAPIError, False),
    ("FIELD_CUSTOM_VALIDATION_EXCEPTION", 400, CRMAPIError, False),
    ("FIELD_INTEGRITY_EXCEPTION", 400, CRMAPIError, False),
    ("INACTIVE_OWNER_OR_USER", 400, PermissionDeniedError, False),
    ("CANNOT_UPDATE_CONVERTED_LEAD", 400, CRMAPIError, False),
    ("NOT_FOUND", 404, NotFoundError, False),
    ("ENTITY_IS_DELETED", 404, NotFoundError, False),
    ("UNABLE_TO_LOCK_ROW", 400, CRMServerError, True),
    ("INVALID_QUERY_LOCATOR", 400, CRMAPIError, True),
    ("QUERY_TIMEOUT", 400, CRMServerError, True),
    ("SERVER_UNAVAILABLE", 503, CRMServerError, True),
    ("ALL_OR_NONE_OPERATION_ROLLED_BACK", 400, CRMAPIError, True),
    ("PROCESSING_HALTED", 400, CRMAPIError, True),
]


@pytest.mark.parametrize(("code", "status", "cls", "retryable"), TABLE)
def test_single_resource_error_mapping(
    code: str, status: int, cls: type[CRMAPIError], retryable: bool
) -> None:
    """A single-resource error array maps its errorCode to the class and retryability."""
    response = httpx.Response(
        status, json=[{"message": f"msg {code}", "errorCode": code, "fields": ["Email"]}]
    )
    error = error_from_response(response)
    assert type(error) is cls
    assert error.retryable is retryable
    assert error.error_code == code
    assert error.status_code == status
    assert error.message == f"msg {code}"
    assert error.fields == ("Email",)


@pytest.mark.parametrize(("code", "status", "cls", "retryable"), TABLE)
def test_collection_error_mapping(
    code: str, status: int, cls: type[CRMAPIError], retryable: bool
) -> None:
    """A Collections item (statusCode key, no HTTP status) maps the same way."""
    error = error_from_record(
        {"success": False, "errors": [{"statusCode": code, "message": "m", "fields": []}]}
    )
    assert type(error) is cls
    assert error.retryable is retryable
    assert error.status_code is None


def test_every_reference_code_is_in_the_table() -> None:
    """The mapping table covers every code of reference §5.4."""
    assert {code for code, *_ in TABLE} <= set(ERROR_CODES) | {"REQUEST_LIMIT_EXCEEDED"}
    assert "REQUEST_LIMIT_EXCEEDED" in ERROR_CODES


def test_daily_request_limit_is_not_retryable() -> None:
    """The daily TotalRequests limit is a RateLimitedError that must not be retried."""
    response = httpx.Response(
        403,
        json=[{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}],
    )
    error = error_from_response(response)
    assert isinstance(error, RateLimitedError)
    assert error.retryable is False


def test_concurrent_request_limit_is_retryable() -> None:
    """The concurrent long-running limit (same code) backs off and retries."""
    response = httpx.Response(
        403,
        json=[
            {
                "message": "ConcurrentPerOrgLongTxn Limit exceeded.",
                "errorCode": "REQUEST_LIMIT_EXCEEDED",
            }
        ],
    )
    error = error_from_response(response)
    assert isinstance(error, RateLimitedError)
    assert error.retryable is True


def test_429_honours_retry_after() -> None:
    """A 429 is a retryable RateLimitedError carrying Retry-After seconds."""
    response = httpx.Response(429, text="slow down", headers={"Retry-After": "7"})
    error = error_from_response(response)
    assert isinstance(error, RateLimitedError)
    assert error.retry_after == 7.0
    assert error.retryable is True


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_html_gateway_pages_are_retryable_server_errors(status: int) -> None:
    """An HTML 5xx page becomes a retryable CRMServerError named by the page title."""
    page = "<html><head><title>502 Bad Gateway</title></head><body>upstream</body></html>"
    error = error_from_response(
        httpx.Response(status, text=page, headers={"Content-Type": "text/html"})
    )
    assert isinstance(error, CRMServerError)
    assert error.retryable is True
    assert error.message == "502 Bad Gateway"
    assert error.status_code == status


def test_empty_and_plain_text_bodies() -> None:
    """Bodies without JSON still map by status, with a readable message."""
    empty = error_from_response(httpx.Response(503))
    assert isinstance(empty, CRMServerError)
    assert empty.message == "Service Unavailable"
    text = error_from_response(httpx.Response(400, text="bad things"))
    assert type(text) is CRMAPIError
    assert text.message == "bad things"


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        (401, AuthenticationError, False),
        (403, PermissionDeniedError, False),
        (404, NotFoundError, False),
        (410, NotFoundError, False),
        (414, CRMAPIError, False),
        (431, CRMAPIError, False),
        (500, CRMServerError, True),
    ],
)
def test_unknown_codes_map_by_status(status: int, cls: type[CRMAPIError], retryable: bool) -> None:
    """An unknown errorCode falls back to the HTTP status."""
    error = error_from_response(
        httpx.Response(status, json=[{"message": "m", "errorCode": "SOMETHING_NEW"}])
    )
    assert type(error) is cls
    assert error.retryable is retryable


def test_duplicates_detected_carries_matched_ids() -> None:
    """DUPLICATES_DETECTED yields the ids of duplicateResult's match records."""
    payload = [
        {
            "duplicateResult": {
                "allowSave": True,
                "duplicateRule": "Standard_Contact_Duplicate_Rule",
                "matchResults": [
                    {
                        "entityType": "Contact",
                        "matchRecords": [
                            {"record": {"attributes": {"type": "Contact"}, "Id": "003A"}},
                            {"record": {"attributes": {"type": "Contact"}, "Id": "003B"}},
                        ],
                    },
                    {
                        "entityType": "Lead",
                        "matchRecords": [{"record": {"Id": "00QC"}}, {"record": {"Id": "003A"}}],
                    },
                ],
            },
            "errorCode": "DUPLICATES_DETECTED",
            "message": "Use one of these records?",
        }
    ]
    error = error_from_response(httpx.Response(400, json=payload))
    assert isinstance(error, DuplicateRecordError)
    assert error.matched_ids == ("003A", "003B", "00QC")
    assert error.retryable is False


def test_duplicate_value_names_the_record_in_its_message() -> None:
    """DUPLICATE_VALUE's 'duplicates value on record with id: X' gives the matched id."""
    item = {
        "message": "duplicate value found: Ext__c duplicates value on record with id: "
        "00Q5g0000000VMdEAM",
        "statusCode": "DUPLICATE_VALUE",
    }
    assert duplicate_ids(item) == ("00Q5g0000000VMdEAM",)


def test_already_a_member_is_recognised() -> None:
    """CampaignMember's DUPLICATE_VALUE 'Already a campaign member.' is success material."""
    member = error_from_record(
        {"errors": [{"statusCode": "DUPLICATE_VALUE", "message": "Already a campaign member."}]}
    )
    assert is_already_member(member)
    other = error_from_record(
        {"errors": [{"statusCode": "DUPLICATE_VALUE", "message": "duplicate value found: X"}]}
    )
    assert not is_already_member(other)


def test_session_expiry_detection() -> None:
    """Only a 401 INVALID_SESSION_ID that is not the REST-policy message triggers a refresh."""
    expired = httpx.Response(
        401, json=[{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    )
    policy = httpx.Response(
        401,
        json=[
            {
                "message": "This session is not valid for use with the REST API",
                "errorCode": "INVALID_SESSION_ID",
            }
        ],
    )
    header = httpx.Response(401, json=[{"message": "bad", "errorCode": "INVALID_AUTH_HEADER"}])
    assert is_session_expired(expired)
    assert not is_session_expired(policy)
    assert not is_session_expired(header)
    assert not is_session_expired(httpx.Response(401, text="<html/>"))


def test_oauth_error_object_maps_to_authentication_error() -> None:
    """The token endpoint's {error, error_description} is an AuthenticationError."""
    error = error_from_response(
        httpx.Response(400, json={"error": "invalid_client_id", "error_description": "bad id"})
    )
    assert isinstance(error, AuthenticationError)
    assert error.message == "bad id"
    assert error.error_code == "invalid_client_id"
