"""Explain answers right: a synced conversation, HubSpot without lookups, the integration off."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from signals_crm.adapters.salesforce import SalesforceAdapter, StaticToken
from signals_crm.core.config import (
    Criteria,
    FieldMapping,
    FieldMappings,
    SyncConfig,
    UserMapEntry,
    UserMapping,
)
from signals_crm.core.explain import ExplainStatus
from signals_crm.core.model import (
    Conversation,
    Meeting,
    Participants,
    PersonKind,
    SignalsUser,
    Visitor,
)
from signals_crm.core.plan import CommandKind, PlanOutcome
from signals_crm.engine import Integration
from signals_crm.ledger import MemoryLedger
from signals_crm.testing.memory import InMemoryCRM
from signals_crm.testing.salesforce import LocalSalesforce, SalesforceBackdoor

CLOSED = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
LATER = CLOSED + timedelta(hours=1)
PLACEHOLDERS = {"LastName": "[not provided]", "Company": "[not provided]"}


def config(**changes: object) -> SyncConfig:
    base: dict[str, object] = {
        "criteria": Criteria.ONE_STAR,
        "synchronization_delay": timedelta(minutes=30),
        "field_mappings": FieldMappings(
            lead=(FieldMapping("contact.first_name", "FirstName", overwrite=True),),
            contact=(FieldMapping("contact.first_name", "firstname", overwrite=True),),
        ),
        "placeholders": PLACEHOLDERS,
    }
    base.update(changes)
    return SyncConfig(**base)  # type: ignore[arg-type]


def conv(first: str = "Lena", **changes: object) -> Conversation:
    values: dict[str, object] = {
        "id": "c-1",
        "closed_at": CLOSED,
        "lead_score": 2,
        "visitor": Visitor(email="lena@brightfield.test", first_name=first),
        "transcript": "Visitor: hello",
        "meeting": Meeting(id="m1", name="Demo"),
    }
    values.update(changes)
    return Conversation(**values)  # type: ignore[arg-type]


def synced_integration(kind: PersonKind = PersonKind.LEAD) -> tuple[Integration, InMemoryCRM]:
    crm = InMemoryCRM(person_kind=kind)
    sync = Integration(crm, config(), ledger=MemoryLedger(), clock=lambda: LATER)
    sync.conversation_closed(conv())
    report = sync.run_due(LATER)
    assert report.outcome("c-1").kind.value == "created"
    return sync, crm


def test_explain_of_a_synced_conversation_says_synced_when_and_ids():
    """After run_due, explain says synced, when, which CRM ids, and plans no new task."""
    sync, crm = synced_integration()
    (lead,) = crm.people()
    calls = dict(crm.calls)
    explanation = sync.explain("c-1", now=LATER + timedelta(days=2))
    assert explanation.status is ExplainStatus.SYNCED
    assert explanation.synced
    assert not explanation.would_sync
    assert explanation.writes == ()  # no second transcript task, no create
    facts = explanation.ledger
    assert facts is not None
    assert facts.outcome == "created"
    assert facts.synced_at == LATER
    assert facts.person_id == lead.id
    assert facts.crm_ids["c-1:person"] == lead.id
    assert set(facts.crm_ids) == {"c-1:person", "c-1:task:transcript", "c-1:task:meeting:m1"}
    # A manual sync now (looked up): the record is there and unchanged.
    manual = explanation.manual
    assert manual is not None
    assert manual.looked_up
    assert manual.outcome is PlanOutcome.UNCHANGED
    assert manual.writes == ()
    assert crm.calls["find_people"] == calls.get("find_people", 0) + 1
    assert crm.calls["create_people"] == calls["create_people"]  # nothing written
    text = explanation.as_text()
    assert "Conversation c-1: synced" in text
    assert f"synced (created) at {LATER.isoformat()}" in text
    assert "will sync" not in text
    assert "a manual sync would write nothing" in text


def test_explain_of_a_synced_conversation_previews_a_manual_update():
    """Given the conversation with a new first name, the manual preview shows old → new."""
    sync, _ = synced_integration()
    explanation = sync.explain(conv(first="Lenna"), now=LATER)
    assert explanation.status is ExplainStatus.SYNCED
    manual = explanation.manual
    assert manual is not None
    assert manual.outcome is PlanOutcome.UPDATE
    (write,) = manual.writes
    assert write.kind is CommandKind.UPDATE_PERSON
    assert [(c.field, c.old, c.new) for c in write.changes] == [("FirstName", "Lena", "Lenna")]
    assert "FirstName: 'Lena' → 'Lenna'" in explanation.as_text()


def test_explain_without_lookup_of_a_synced_conversation():
    """Without CRM reads a synced conversation still says synced and what a manual sync does."""
    sync, crm = synced_integration()
    before = sum(crm.calls.values())
    explanation = sync.explain("c-1", now=LATER, lookup=False)
    assert sum(crm.calls.values()) == before  # no CRM call at all
    assert explanation.status is ExplainStatus.SYNCED
    assert explanation.writes == ()
    assert explanation.manual is not None
    assert not explanation.manual.looked_up
    assert "FirstName" in explanation.manual.summary
    assert "no tasks" in explanation.manual.summary


def test_explain_without_lookup_on_hubspot_has_no_salesforce_placeholders():
    """HubSpot contacts never get Salesforce's Company / LastName placeholders."""
    crm = InMemoryCRM(person_kind=PersonKind.CONTACT)
    sync = Integration(crm, config(), ledger=MemoryLedger(), clock=lambda: LATER)
    sync.conversation_closed(conv())
    explanation = sync.explain("c-1", now=LATER, lookup=False)
    (create, *_) = explanation.writes
    assert create.kind is CommandKind.CREATE_PERSON
    assert {c.field for c in create.changes} == {"email", "firstname"}
    assert "placeholder_used" not in [s.code for s in explanation.steps]


def test_explain_without_lookup_on_salesforce_keeps_its_placeholders():
    """A Salesforce Lead planned without a schema still gets its required placeholders."""
    crm = InMemoryCRM(person_kind=PersonKind.LEAD)
    sync = Integration(crm, config(), ledger=MemoryLedger(), clock=lambda: LATER)
    sync.conversation_closed(conv())
    explanation = sync.explain("c-1", now=LATER, lookup=False)
    (create, *_) = explanation.writes
    assert {c.field for c in create.changes} == {"Email", "FirstName", "LastName", "Company"}


def test_explain_of_a_conversation_closed_while_off_answers_integration_off():
    """Closed while the integration was off: explain answers instead of raising."""
    crm = InMemoryCRM(person_kind=PersonKind.LEAD)
    ledger = MemoryLedger()
    off = Integration(crm, config(enabled=False), ledger=ledger, clock=lambda: LATER)
    assert off.conversation_closed(conv()) is None
    by_id = off.explain("c-1", now=LATER)
    assert by_id.status is ExplainStatus.INTEGRATION_OFF
    assert by_id.codes == ("integration_disabled",)
    assert "switched off" in by_id.as_text()
    given = off.explain(conv(), now=LATER)
    assert given.status is ExplainStatus.INTEGRATION_OFF
    assert "integration_disabled" in given.codes
    # Turned on later: the conversation was never scheduled, and explain says so.
    on = Integration(crm, config(), ledger=ledger, clock=lambda: LATER)
    later = on.explain("c-1", now=LATER)
    assert later.status is ExplainStatus.UNKNOWN
    assert later.codes == ("not_scheduled",)
    assert sum(crm.calls.values()) == 0


def test_explain_of_a_sync_skipped_while_off_says_integration_off():
    """A sync that was due when the integration went off reads "integration off"."""
    crm = InMemoryCRM(person_kind=PersonKind.LEAD)
    ledger = MemoryLedger()
    Integration(crm, config(), ledger=ledger).conversation_closed(conv())
    off = Integration(crm, config(enabled=False), ledger=ledger, clock=lambda: LATER)
    off.run_due(LATER)
    explanation = off.explain("c-1", now=LATER)
    assert explanation.status is ExplainStatus.INTEGRATION_OFF
    assert explanation.ledger is not None
    assert explanation.ledger.outcome == "skipped:integration_disabled"


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"lead_score": 0}, ExplainStatus.BLOCKED, "criteria_not_met"),
        ({"closed_at": LATER}, ExplainStatus.WAITING, "delay_pending"),
        ({}, ExplainStatus.DUE, None),
    ],
)
def test_explain_status_of_scheduled_conversations(change, status, code):
    """A scheduled conversation is due, waiting for its delay, or blocked, by its blockers."""
    crm = InMemoryCRM(person_kind=PersonKind.LEAD)
    sync = Integration(crm, config(), ledger=MemoryLedger(), clock=lambda: LATER)
    sync.conversation_closed(conv(**change))
    explanation = sync.explain("c-1", now=LATER, lookup=False)
    assert explanation.status is status
    assert explanation.would_sync is (code is None)
    if code is not None:
        assert code in explanation.codes


def test_salesforce_task_subjects_name_the_marker_once():
    """Task subjects read [signals:c-1:transcript], never [signals:signals:...]."""
    org = LocalSalesforce()
    door = SalesforceBackdoor(org)
    with httpx.Client(transport=org.transport()) as http:
        adapter = SalesforceAdapter(http, StaticToken(org.issue_token(), org.instance_url))
        sync = Integration(adapter, config(), ledger=MemoryLedger(), clock=lambda: LATER)
        sync.conversation_closed(conv())
        report = sync.run_due(LATER)
    person = report.outcome("c-1").person_id
    assert person is not None
    subjects = sorted(t["Subject"] for t in door.tasks(person))
    assert subjects == [
        "Meeting booked: Demo [signals:c-1:meeting:m1]",
        "Signals chat transcript [signals:c-1:transcript]",
    ]
    assert sorted(door.task_markers(person)) == ["signals:c-1:meeting:m1", "signals:c-1:transcript"]


def test_explain_keeps_the_user_mapping_owner_on_salesforce_lookups():
    """Explain with lookup plans the same owner as the sync (regression guard)."""
    crm = InMemoryCRM(person_kind=PersonKind.LEAD)
    owner = crm.seed_user(email="sally@vendor.test")
    users = UserMapping((UserMapEntry(owner, signals_email="sally@vendor.test"),))
    sync = Integration(crm, config(users=users), ledger=MemoryLedger(), clock=lambda: LATER)
    sally = SignalsUser(email="sally@vendor.test")
    sync.conversation_closed(conv(participants=Participants(closer=sally)))
    explanation = sync.explain("c-1", now=LATER)
    (create, *_) = explanation.writes
    assert create.owner_id == owner
