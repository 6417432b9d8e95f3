"""Golden tests of the pure request builders and value encoders."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone

import httpx
import pytest

from signals_crm.adapters.hubspot import HubSpotAPI, marker_token, parse_marker
from signals_crm.adapters.hubspot._requests import (
    activity_body,
    has_marker_token,
    marker_line,
    property_value,
    timestamp_value,
)
from signals_crm.exceptions import ConfigurationError

V3 = HubSpotAPI()
DATED = HubSpotAPI(version="2026-03")


def body(request: httpx.Request) -> object:
    return json.loads(request.content)


def test_batch_read_by_email_golden() -> None:
    """A lookup by email is a batch read with idProperty=email and the requested properties."""
    request = V3.batch_read("contacts", ["a@b.com"], ["email", "firstname"], id_property="email")
    assert request.method == "POST"
    assert str(request.url) == "https://api.hubapi.com/crm/v3/objects/contacts/batch/read"
    assert body(request) == {
        "inputs": [{"id": "a@b.com"}],
        "properties": ["email", "firstname"],
        "propertiesWithHistory": [],
        "idProperty": "email",
    }
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers


@pytest.mark.parametrize(
    ("api", "expected"),
    [
        (V3, "/crm/v3/objects/tasks/batch/create"),
        (DATED, "/crm/objects/2026-03/tasks/batch/create"),
    ],
)
def test_object_paths_follow_the_version_family(api: HubSpotAPI, expected: str) -> None:
    """Numeric versions put the version before the API name, dated versions after it."""
    assert api.batch_create("tasks", []).url.path == expected


@pytest.mark.parametrize(
    ("build", "v3", "dated"),
    [
        (lambda a: a.list_owners(), "/crm/v3/owners", "/crm/owners/2026-03"),
        (
            lambda a: a.get_properties("contacts"),
            "/crm/v3/properties/contacts",
            "/crm/properties/2026-03/contacts",
        ),
        (
            lambda a: a.add_to_list("42", ["1"]),
            "/crm/v3/lists/42/memberships/add",
            "/crm/lists/2026-03/42/memberships/add",
        ),
        (
            lambda a: a.record_memberships("7"),
            "/crm/v3/lists/records/0-1/7/memberships",
            "/crm/lists/2026-03/records/0-1/7/memberships",
        ),
        (
            lambda a: a.refresh_token(client_id="c", client_secret="s", refresh_token="r"),
            "/oauth/v1/token",
            "/oauth/2026-03/token",
        ),
    ],
)
def test_every_endpoint_has_both_path_forms(
    build: Callable[[HubSpotAPI], httpx.Request], v3: str, dated: str
) -> None:
    """Owners, properties, lists and OAuth paths exist in the v3 and date-based families."""
    assert build(V3).url.path == v3
    assert build(DATED).url.path == dated


def test_list_membership_add_sends_a_json_array_of_strings() -> None:
    """Adding to a static list PUTs a bare JSON array of record ids as strings."""
    request = V3.add_to_list("42", ["101", "102"])
    assert request.method == "PUT"
    assert body(request) == ["101", "102"]


def test_refresh_request_is_form_encoded() -> None:
    """The refresh grant is form-encoded with the four documented fields."""
    request = V3.refresh_token(client_id="cid", client_secret="sec", refresh_token="ref")
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.content == (
        b"grant_type=refresh_token&client_id=cid&client_secret=sec&refresh_token=ref"
    )


def test_owner_page_and_path_encoding() -> None:
    """Owner pages carry limit, archived and after; path parts are percent-encoded."""
    request = V3.list_owners(after="100", archived=True)
    assert dict(request.url.params) == {"limit": "100", "archived": "true", "after": "100"}
    assert V3.get_object("contacts", "a/b", ["email"]).url.raw_path == (
        b"/crm/v3/objects/contacts/a%2Fb?properties=email"
    )


def test_batches_over_one_hundred_are_refused() -> None:
    """A builder never emits a batch HubSpot would refuse (more than 100 inputs)."""
    with pytest.raises(ValueError, match="at most 100"):
        V3.batch_update("contacts", [{"id": str(i)} for i in range(101)])


@pytest.mark.parametrize("version", ["3", "v3.1", "2026-3", "latest"])
def test_bad_versions_are_configuration_errors(version: str) -> None:
    """Only ``vN`` and ``YYYY-MM`` versions are accepted."""
    with pytest.raises(ConfigurationError, match="version"):
        HubSpotAPI(version=version)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ""),
        (True, "true"),
        (False, "false"),
        (42, "42"),
        (1.5, "1.5"),
        (1e20, "100000000000000000000"),
        (date(2026, 3, 1), "2026-03-01"),
        (datetime(2026, 3, 1, 12, 30, tzinfo=UTC), "2026-03-01T12:30:00.000Z"),
        (
            datetime(2026, 3, 1, 12, 30, tzinfo=timezone(timedelta(hours=2))),
            "2026-03-01T10:30:00.000Z",
        ),
        ("plain", "plain"),
    ],
)
def test_property_values_are_strings(value: object, expected: str) -> None:
    """Every value goes to HubSpot as the string form it documents."""
    assert property_value(value) == expected  # type: ignore[arg-type]


def test_a_date_timestamp_is_midnight_utc() -> None:
    """A date becomes an hs_timestamp at midnight UTC."""
    assert timestamp_value(date(2024, 5, 17)) == "2024-05-17T00:00:00.000Z"


def test_marker_round_trips_through_the_body() -> None:
    """The marker line is parsed back out of a body, and the token is one searchable word."""
    marker = "conv-1/meeting:48213 | odd"
    text = activity_body("Hello", marker, None)
    assert text.startswith("Hello\n\n[signals-marker: ")
    assert parse_marker(text) == marker
    assert marker_token(marker).isalnum()
    assert has_marker_token(text, marker)
    assert not has_marker_token(text, "other")
    assert parse_marker("no marker here") is None


def test_the_last_marker_line_is_the_activity_s_own() -> None:
    """A marker line quoted earlier in the body (even HTML-encoded) never wins over the last."""
    quoted = marker_line("signals:c-b:transcript")
    body = activity_body(f"pasted: {quoted}", "signals:c-a:transcript", None)
    assert parse_marker(body) == "signals:c-a:transcript"
    html_body = body.replace("\n", "<br>").replace("[", "&#91;")
    assert parse_marker(html_body) == "signals:c-a:transcript"
    unclosed = activity_body("[signals-marker: x", "m & n", None).replace("\n", "<br>")
    assert parse_marker(unclosed) == "m & n"


def test_forged_marker_lines_are_ignored() -> None:
    """A marker line whose token does not hash its marker is not a marker."""
    forged = f"[signals-marker: evil | {marker_token('good')}]"
    assert parse_marker(forged) is None


def test_long_bodies_are_cut_to_leave_room_for_the_marker() -> None:
    """A body too long for the task is cut so that the marker line always survives."""
    text = activity_body("x" * 70_000, "m", 65_536)
    assert len(text) <= 65_536
    assert parse_marker(text) == "m"
