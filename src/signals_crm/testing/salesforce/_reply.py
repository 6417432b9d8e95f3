"""The local org's answers: the reply value and the helpers that build error replies."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import Any, Self

import attrs

from signals_crm.testing.salesforce._records import ApiError, RecordError

__all__ = [
    "ROLLED_BACK",
    "ParsedJson",
    "Reply",
    "allow_save",
    "basic_auth",
    "batch_size",
    "error_reply",
    "json_body",
    "locked_rows",
    "oauth_error",
    "rolled_back",
    "status_for",
]


@attrs.define
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = attrs.field(factory=dict)
    html: str | None = None
    drop: bool = False
    xml: str | None = None
    csv: str | None = None

    def content(self) -> bytes:
        if self.html is not None:
            return self.html.encode()
        if self.xml is not None:
            return self.xml.encode()
        if self.csv is not None:
            return self.csv.encode()
        if self.body is None:
            return b""
        return json.dumps(self.body).encode()

    def all_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.html is not None:
            headers["Content-Type"] = "text/html; charset=utf-8"
        elif self.xml is not None:
            headers["Content-Type"] = "text/xml; charset=utf-8"
        elif self.csv is not None:
            headers["Content-Type"] = "text/csv"
        elif self.body is not None:
            headers["Content-Type"] = "application/json;charset=UTF-8"
        return headers


ROLLED_BACK = RecordError(
    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "Record rolled back because not all records were valid and the request was using "
    "AllOrNone header",
)


def locked_rows(count: int) -> Reply:
    """The ``lock_row`` fault inside Collections: every record ``UNABLE_TO_LOCK_ROW``."""
    error = RecordError(
        "UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record or 1 records"
    )
    entry = {"success": False, "errors": [error.as_collection(with_extra=False)]}
    return Reply(200, [dict(entry) for _ in range(count)])


def rolled_back(errors: list[RecordError | None], *, with_extra: bool) -> Reply:
    """An ``allOrNone`` Collections answer after a failure: each failed record keeps its error,
    the others are ``ALL_OR_NONE_OPERATION_ROLLED_BACK``."""
    return Reply(
        200,
        [
            {"success": False, "errors": [(e or ROLLED_BACK).as_collection(with_extra=with_extra)]}
            for e in errors
        ],
    )


class ParsedJson(bytes):
    """A composite subrequest's body: the JSON bytes of ``value``, which :func:`json_body`
    returns as it is instead of parsing the bytes it was just encoded to (``value`` holds only
    what ``json.loads`` makes, so parsing the bytes would give an equal value)."""

    value: Any

    def __new__(cls, value: Any) -> Self:
        made = super().__new__(cls, json.dumps(value).encode())
        made.value = value
        return made


def json_body(body: bytes) -> Any:
    if isinstance(body, ParsedJson):
        return body.value
    try:
        return json.loads(body or b"null")
    except ValueError:
        raise ApiError(400, "JSON_PARSER_ERROR", "The request body is not valid JSON") from None


def batch_size(options: str) -> int | None:
    """``Sforce-Query-Options: batchSize=N``: 200 to 2,000 records a page (REST API guide,
    "Query Options Header")."""
    found = re.search(r"batchsize\s*=\s*(\d+)", options.lower())
    return min(max(int(found[1]), 200), 2000) if found else None


def allow_save(headers: Mapping[str, str]) -> bool:
    value = headers.get("sforce-duplicate-rule-header", "")
    return "allowsave=true" in value.replace(" ", "").lower()


def status_for(error: RecordError) -> int:
    return 404 if error.code in ("NOT_FOUND", "ENTITY_IS_DELETED") else 400


def error_reply(status: int, code: str, message: str) -> Reply:
    return Reply(status, [{"message": message, "errorCode": code}])


def oauth_error(code: str, description: str) -> Reply:
    return Reply(400, {"error": code, "error_description": description})


def basic_auth(header: str) -> tuple[str | None, str | None]:
    if not header.lower().startswith("basic "):
        return None, None
    try:
        decoded = base64.b64decode(header[6:]).decode()
    except ValueError:
        return None, None
    client_id, _, secret = decoded.partition(":")
    return client_id, secret
