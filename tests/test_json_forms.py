"""Explanations, dry runs and run reports as data: their JSON forms validate against the
schemas the package ships, for real outputs of every status."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings

import signals_crm
from _jsonschema import assert_valid, unknown_keywords, validation_errors
from signals_crm import ConfigurationError
from signals_crm.core.config import Criteria, FieldMapping, FieldMappings, SyncConfig
from signals_crm.core.explain import ExplainStatus, explain_plan
from signals_crm.core.model import Conversation, ConversationStatus, PersonKind, Visitor
from signals_crm.core.plan import SyncMode, plan_sync
from signals_crm.engine import Integration
from signals_crm.exceptions import TransportError
from signals_crm.ledger import MemoryLedger
from signals_crm.schemas import SCHEMA_NAMES, json_schema
from signals_crm.testing import strategies as sst
from signals_crm.testing.memory import InMemoryCRM
from signals_crm.testing.static import SALESFORCE_LIKE, run_with_state

CLOSED = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
LATER = CLOSED + timedelta(hours=1)
EXPLANATION = json_schema("explanation")
DRY_RUN = json_schema("dry_run")
REPORT = json_schema("sync_report")


def config(**changes: Any) -> SyncConfig:
    base: dict[str, Any] = {
        "criteria": Criteria.ONE_STAR,
        "synchronization_delay": timedelta(minutes=30),
        "field_mappings": FieldMappings(
            lead=(
                FieldMapping("contact.first_name", "FirstName", overwrite=True),
                FieldMapping("contact.last_name", "LastName", overwrite=True),
                FieldMapping("contact.phone", "Phone", overwrite=True),
                FieldMapping("chat.traffic_source", "LeadSource"),
            )
        ),
        "placeholders": {"LastName": "[not provided]", "Company": "[not provided]"},
    }
    base.update(changes)
    return SyncConfig(**base)


def conv(cid: str = "c-1", **changes: Any) -> Conversation:
    values: dict[str, Any] = {
        "id": cid,
        "closed_at": CLOSED,
        "lead_score": 2,
        "visitor": Visitor(email=f"{cid}@brightfield.test", first_name="Lena", last_name="Ok"),
        "transcript": "Visitor: hello",
    }
    values.update(changes)
    return Conversation(**values)


def integration(crm: InMemoryCRM | None = None, **changes: Any) -> tuple[Integration, InMemoryCRM]:
    crm = crm or InMemoryCRM()
    return Integration(crm, config(**changes), ledger=MemoryLedger(), clock=lambda: LATER), crm


def checked(data: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """``data`` validates, and is plain JSON: it survives a round trip unchanged."""
    assert_valid(data, schema)
    assert json.loads(json.dumps(data)) == data
    return data


# -- the schemas themselves ----------------------------------------------------------------------


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_each_schema_is_self_contained_and_fully_checked(name):
    """Every shipped schema names itself, bundles what it refers to, and uses only keywords the
    test validator checks (so none is silently skipped)."""
    schema = json_schema(name)
    assert schema["$id"] == f"urn:signals-crm:schema:{name}"
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["properties"]["schema_version"] == {"const": 1}
    assert unknown_keywords(schema) == []
    text = json.dumps(schema)
    for other in SCHEMA_NAMES:
        if f'"$ref": "urn:signals-crm:schema:{other}' in text and other != name:
            assert f"bundled:{other}" in schema["$defs"]


def test_json_schema_returns_a_fresh_copy_and_refuses_unknown_names():
    """Changing the dict returned does not change the next one; a typo is a typed error."""
    first = json_schema("explanation")
    first["properties"].clear()
    assert json_schema("explanation")["properties"]
    with pytest.raises(ConfigurationError, match="no schema 'explain'"):
        json_schema("explain")  # type: ignore[arg-type]
    assert signals_crm.json_schema is json_schema


def test_the_validator_rejects_what_the_schema_forbids():
    """The test validator is not a rubber stamp: each kind of drift is caught."""
    sync, _ = integration()
    good = sync.explain(conv(), now=LATER).as_dict()
    assert validation_errors(good, EXPLANATION) == []
    mutations = {
        "a key removed": lambda d: d.pop("status"),
        "a key added": lambda d: d.update(surprise=1),
        "an unknown status": lambda d: d.update(status="maybe"),
        "a wrong type": lambda d: d.update(would_sync="yes"),
        "a time without offset": lambda d: d.update(passes_at="2026-11-20T15:00:00"),
        "a bad nested reason": lambda d: d["steps"][0].update(level="loud"),
        "a change without old": lambda d: d["writes"][0]["changes"][0].pop("old"),
        "a wrong version": lambda d: d.update(schema_version=2),
    }
    for what, mutate in mutations.items():
        bad = copy.deepcopy(good)
        mutate(bad)
        assert validation_errors(bad, EXPLANATION), f"{what} passed validation"


# -- explanations of every status ----------------------------------------------------------------


def test_explanations_of_every_status_validate():
    """Each status the engine answers has a JSON form that validates."""
    seen: dict[ExplainStatus, dict[str, Any]] = {}

    def keep(data: dict[str, Any]) -> None:
        seen[ExplainStatus(data["status"])] = checked(data, EXPLANATION)

    sync, _ = integration()
    keep(sync.explain(conv("due"), now=LATER).as_dict())
    keep(sync.explain(conv("waiting"), now=CLOSED).as_dict())
    keep(sync.explain(conv("blocked", lead_score=0), now=LATER).as_dict())
    keep(sync.explain("nobody", now=LATER).as_dict())
    sync.conversation_closed(conv("done"))
    sync.conversation_closed(conv("low", lead_score=0))
    sync.run_due(LATER)
    keep(sync.explain("low", now=LATER).as_dict())
    keep(sync.explain("done", now=LATER + timedelta(days=1)).as_dict())
    off, _ = integration(enabled=False)
    keep(off.explain(conv("off"), now=LATER).as_dict())
    # A dead letter: an owner the CRM refuses (preflight, which would refuse it first, is
    # taken as passed).
    dead, _ = integration(default_owner="005NOBODY00000")
    dead._preflight = []
    dead.conversation_closed(conv("dead"))
    assert dead.run_due(LATER).outcome("dead").kind.value == "failed"
    keep(dead.explain("dead", now=LATER).as_dict())
    assert set(seen) == set(ExplainStatus)
    synced = seen[ExplainStatus.SYNCED]
    assert synced["ledger"]["synced_at"] == LATER.isoformat()
    assert synced["ledger"]["outcome"] == "created"
    assert {c["state"] for c in synced["ledger"]["commands"]} == {"confirmed"}
    assert synced["manual"]["looked_up"] is True
    assert seen[ExplainStatus.WAITING]["passes_at"] == (CLOSED + timedelta(minutes=30)).isoformat()
    assert seen[ExplainStatus.FAILED]["ledger"]["last_error"]
    assert seen[ExplainStatus.UNKNOWN]["blockers"][0]["code"] == "not_scheduled"


# -- dry runs: old -> new ------------------------------------------------------------------------


def test_a_dry_run_shows_old_and_new_for_every_field_an_update_writes():
    """A dry run of an update lists each overwritten field with the CRM's value and ours."""
    crm = InMemoryCRM()
    lead = crm.seed_person(
        kind=PersonKind.LEAD,
        email="c-1@brightfield.test",
        fields={"FirstName": "Lenna", "LastName": "Ok", "Company": "Brightfield"},
    )
    sync, _ = integration(crm)
    visitor = Visitor(
        email="c-1@brightfield.test", first_name="Lena", last_name="Okafor", phone="+1 555"
    )
    dry = sync.dry_run([conv(visitor=visitor)], now=LATER)
    data = checked(dry.as_dict(), DRY_RUN)
    (explanation,) = data["explanations"]
    assert explanation["outcome"] == "update"
    (update,) = [w for w in explanation["writes"] if w["kind"] == "update_person"]
    assert update["person_id"] == lead
    assert update["changes"] == [
        {"field": "FirstName", "old": "Lenna", "new": "Lena"},
        {"field": "LastName", "old": "Ok", "new": "Okafor"},
        {"field": "Phone", "old": None, "new": "+1 555"},
    ]
    assert data["adapter_calls"] == dry.adapter_calls >= 1
    assert crm.person_fields(lead)["FirstName"] == "Lenna"  # nothing written


def test_a_dry_run_of_a_create_shows_every_field_with_no_old_value():
    """A create's changes are every field it sets, ``old`` null; the task and owner appear."""
    sync, _ = integration()
    dry = sync.dry_run([conv(), conv("c-2", lead_score=0)], now=LATER)
    data = checked(dry.as_dict(), DRY_RUN)
    created, skipped = data["explanations"]
    assert [e["conversation_id"] for e in data["explanations"]] == ["c-1", "c-2"]
    (create,) = [w for w in created["writes"] if w["kind"] == "create_person"]
    assert {c["field"] for c in create["changes"]} >= {"FirstName", "LastName", "Email"}
    assert all(c["old"] is None for c in create["changes"])
    (task,) = [w for w in created["writes"] if w["kind"] == "create_task"]
    assert task["pending"] == create["key"]
    assert task["activity"] == "transcript"
    assert skipped["writes"] == []
    assert [b["code"] for b in skipped["blockers"]] == ["criteria_not_met"]


def test_sync_reports_validate():
    """run_due's report in JSON: totals, outcomes with their person ids and skip codes."""
    sync, _ = integration()
    sync.conversation_closed(conv())
    sync.conversation_closed(conv("c-2", lead_score=0))
    data = checked(sync.run_due(LATER).as_dict(), REPORT)
    assert data["total"] == 2
    assert data["totals"] == {"created": 1, "skipped": 1}
    by_id = {o["conversation_id"]: o for o in data["outcomes"]}
    assert by_id["c-1"]["person_id"]
    assert by_id["c-2"]["blockers"] == ["criteria_not_met"]


def test_a_stopped_report_validates():
    """A run the CRM stopped in its preflight: ``stopped`` holds why, in valid JSON."""
    sync, crm = integration()
    sync.conversation_closed(conv())
    for _ in range(sync.retry.max_attempts):
        crm.fail_next("list_users", TransportError("connection dropped"))
    data = checked(sync.run_due(LATER).as_dict(), REPORT)
    assert data["total"] == 0
    assert "connection dropped" in data["stopped"]
    assert checked(sync.run_due(LATER).as_dict(), REPORT)["stopped"] is None


@given(
    sst.conversations(closed=True),
    sst.sync_configs(ownership=False),
    sst.crm_people(person_kind=PersonKind.LEAD, max_size=4),
)
@settings(max_examples=60, deadline=None)
def test_every_plan_explains_into_valid_json(conversation, config, records):
    """Whatever the conversation, settings and CRM state, the explanation validates."""
    now = sst.BASE_TIME + timedelta(days=3)
    for mode in SyncMode:
        (plan,) = run_with_state(
            plan_sync([conversation], config, SALESFORCE_LIKE, now=now, mode=mode),
            people=records,
        )
        data = explain_plan(plan).as_dict()
        assert validation_errors(data, EXPLANATION) == []
        assert json.loads(json.dumps(data)) == data


def test_an_open_conversation_explains_into_valid_json():
    """A conversation still open is blocked, and says so in JSON."""
    sync, _ = integration()
    data = sync.explain(conv(status=ConversationStatus.OPEN, closed_at=None)).as_dict()
    checked(data, EXPLANATION)
    assert data["status"] == "blocked"
