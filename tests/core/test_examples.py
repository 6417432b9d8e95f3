"""The worked examples of DESIGN.md section 2, one test each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs

from signals_crm.core.config import (
    ContactPolicy,
    Criteria,
    FieldMapping,
    FieldMappings,
    SyncConfig,
    UserMapEntry,
    UserMapping,
)
from signals_crm.core.criteria import check_eligibility
from signals_crm.core.model import (
    Conversation,
    ConversationStatus,
    Meeting,
    Participants,
    PersonKind,
    PersonRecord,
    Role,
    SignalsUser,
    Visitor,
)
from signals_crm.core.owner import resolve_owner
from signals_crm.core.plan import CommandKind, PlanOutcome, SyncMode, plan_sync
from signals_crm.testing.static import SALESFORCE_LIKE, run_with_state

CLOSED = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
NOW = CLOSED + timedelta(hours=2)

SALLY = SignalsUser(id="u-sally", email="sally@vendor.test")
BOB = SignalsUser(id="u-bob", email="bob@vendor.test")
JILL = SignalsUser(id="u-jill", email="jill@vendor.test")
USERS = UserMapping(
    (
        UserMapEntry("005SALLY", signals_user_id="u-sally"),
        UserMapEntry("005BOB", signals_email="BOB@vendor.test"),
        UserMapEntry("005JILL", signals_user_id="u-jill"),
    )
)
LEAD_MAP = (
    FieldMapping("contact.first_name", "FirstName", overwrite=True),
    FieldMapping("contact.last_name", "LastName", overwrite=False),
    FieldMapping("contact.phone", "Phone", overwrite=True),
)
CONFIG = SyncConfig(
    criteria=Criteria.TWO_STARS,
    synchronization_delay=timedelta(minutes=30),
    campaign_id="701CAMPAIGN",
    users=USERS,
    field_mappings=FieldMappings(lead=LEAD_MAP),
    placeholders={"LastName": "[not provided]", "Company": "[not provided]"},
)


def conversation(
    cid: str = "c-1",
    *,
    email: str | None = "john.doe@acme.test",
    first: str = "John",
    last: str = "Doe",
    score: int | None = 3,
    status: ConversationStatus = ConversationStatus.CLOSED,
    meeting: bool = True,
) -> Conversation:
    return Conversation(
        id=cid,
        status=status,
        closed_at=CLOSED if status is ConversationStatus.CLOSED else None,
        lead_score=score,
        visitor=Visitor(email=email, first_name=first, last_name=last, phone="+1 555 0100"),
        participants=Participants(meeting_scheduler=SALLY, last_routed=BOB, closer=JILL),
        transcript="Visitor: hi\nAgent: hello",
        meeting=Meeting(id="m-9", name="Demo") if meeting else None,
    )


def plan(conv: Conversation, *, people=(), config=CONFIG, mode=SyncMode.AUTOMATIC, now=NOW):
    flow = plan_sync([conv], config, SALESFORCE_LIKE, now=now, mode=mode)
    (result,) = run_with_state(flow, people=people)
    return result


def test_sally_bob_jill_owner_is_the_meeting_scheduler():
    """Meeting on Sally's calendar, Bob last routed, Jill closed: Sally owns the new Lead."""
    decision = resolve_owner(
        Participants(meeting_scheduler=SALLY, last_routed=BOB, closer=JILL),
        (Role.CLOSER, Role.LAST_ROUTED, Role.MEETING_SCHEDULER),
        USERS,
    )
    assert decision.owner_id == "005SALLY"
    assert decision.source is Role.MEETING_SCHEDULER
    created = plan(conversation()).commands_of(CommandKind.CREATE_PERSON)
    assert created[0].owner_id == "005SALLY"


def test_unmapped_scheduler_is_skipped_for_last_routed():
    """A present but unmapped meeting scheduler is skipped, with the reason, for Bob."""
    users = UserMapping((UserMapEntry("005BOB", signals_user_id="u-bob"),))
    decision = resolve_owner(
        Participants(meeting_scheduler=SALLY, last_routed=BOB, closer=JILL),
        (Role.MEETING_SCHEDULER, Role.LAST_ROUTED, Role.CLOSER),
        users,
    )
    assert decision.owner_id == "005BOB"
    assert "owner_source_unmapped" in [r.code for r in decision.trace]


def test_two_john_does_with_different_emails_are_two_leads():
    """'John Doe' with another email is a new Lead: names never match."""
    existing = PersonRecord(
        id="00QJOHN1",
        kind=PersonKind.LEAD,
        email="john.doe@other.test",
        fields={"FirstName": "John", "LastName": "Doe"},
    )
    result = plan(conversation(email="john.doe@acme.test"), people=[existing])
    assert result.outcome is PlanOutcome.CREATE
    assert result.commands_of(CommandKind.CREATE_PERSON)[0].fields["Email"] == "john.doe@acme.test"


def test_same_email_updates_only_overwrite_fields_that_changed():
    """An existing Lead with the email is updated with changed overwrite fields only."""
    existing = PersonRecord(
        id="00QJOHN1",
        kind=PersonKind.LEAD,
        email="JOHN.DOE@acme.test ",
        fields={"FirstName": "Jon", "LastName": "Smith", "Phone": "+1 555 0100"},
    )
    result = plan(conversation(), people=[existing])
    assert result.outcome is PlanOutcome.UPDATE
    (update,) = result.commands_of(CommandKind.UPDATE_PERSON)
    assert dict(update.fields) == {"FirstName": "John"}
    assert update.person.id == "00QJOHN1"
    assert update.owner_id is None
    assert not result.commands_of(CommandKind.ADD_TO_CAMPAIGN)


def test_contact_is_never_updated_and_activities_attach_to_it():
    """A Contact with the email is never updated; by default activities attach to it."""
    contact = PersonRecord(
        id="003CONTACT",
        kind=PersonKind.CONTACT,
        email="john.doe@acme.test",
        fields={"FirstName": "Old"},
    )
    result = plan(conversation(), people=[contact])
    assert result.outcome is PlanOutcome.ATTACH_CONTACT
    kinds = [c.kind for c in result.commands]
    assert CommandKind.UPDATE_PERSON not in kinds
    assert CommandKind.CREATE_PERSON not in kinds
    assert CommandKind.ADD_TO_CAMPAIGN not in kinds
    assert {c.person.id for c in result.commands} == {"003CONTACT"}
    assert kinds.count(CommandKind.CREATE_TASK) == 2


def test_contact_with_create_lead_policy_creates_a_lead_anyway():
    """Policy create_lead makes a new Lead even though a Contact has the email."""
    contact = PersonRecord(id="003CONTACT", kind=PersonKind.CONTACT, email="john.doe@acme.test")
    config = SyncConfig(**{**_fields(CONFIG), "existing_contact": ContactPolicy.CREATE_LEAD})
    result = plan(conversation(), people=[contact], config=config)
    assert result.outcome is PlanOutcome.CREATE
    assert result.commands_of(CommandKind.ADD_TO_CAMPAIGN)


def test_campaign_only_for_a_new_lead():
    """Only a created Lead joins the campaign; an updated one never does."""
    created = plan(conversation())
    (membership,) = created.commands_of(CommandKind.ADD_TO_CAMPAIGN)
    assert membership.campaign_id == "701CAMPAIGN"
    assert membership.person.pending == created.commands_of(CommandKind.CREATE_PERSON)[0].key
    existing = PersonRecord(id="00Q1", kind=PersonKind.LEAD, email="john.doe@acme.test")
    updated = plan(conversation(), people=[existing])
    assert not updated.commands_of(CommandKind.ADD_TO_CAMPAIGN)


def test_manual_sync_ignores_criteria_and_creates_no_task():
    """A manual sync of an unscored, just-closed visitor creates the Lead but no task."""
    conv = conversation(score=None)
    result = plan(conv, mode=SyncMode.MANUAL, now=CLOSED)
    assert result.outcome is PlanOutcome.CREATE
    assert not result.commands_of(CommandKind.CREATE_TASK)
    assert result.commands_of(CommandKind.ADD_TO_CAMPAIGN)
    automatic = plan(conv, now=CLOSED)
    assert automatic.outcome is PlanOutcome.SKIPPED


def test_each_troubleshooting_reason_alone():
    """Each failing condition alone yields exactly its own blocker code."""
    ok = conversation()
    assert check_eligibility(ok, CONFIG, NOW).codes == ()
    off = SyncConfig(**{**_fields(CONFIG), "enabled": False})
    assert check_eligibility(ok, off, NOW).codes == ("integration_disabled",)
    opened = conversation(status=ConversationStatus.OPEN)
    assert check_eligibility(opened, CONFIG, NOW).codes == ("conversation_open",)
    low = conversation(score=1)
    verdict = check_eligibility(low, CONFIG, NOW)
    assert verdict.codes == ("criteria_not_met",)
    assert "1 star" in verdict.blockers[0].message
    early = check_eligibility(ok, CONFIG, CLOSED + timedelta(minutes=10))
    assert early.codes == ("delay_pending",)
    assert early.passes_at == CLOSED + timedelta(minutes=30)
    bad = conversation(email="john at acme")
    assert check_eligibility(bad, CONFIG, NOW).codes == ("invalid_email",)
    missing = conversation(email=None)
    assert check_eligibility(missing, CONFIG, NOW).codes == ("no_email",)


def test_all_troubleshooting_reasons_together():
    """Every failing condition is reported at once, in a stable order."""
    off = SyncConfig(**{**_fields(CONFIG), "enabled": False})
    conv = Conversation(
        id="c-2",
        status=ConversationStatus.OPEN,
        lead_score=None,
        visitor=Visitor(email="nope"),
    )
    assert check_eligibility(conv, off, NOW).codes == (
        "integration_disabled",
        "conversation_open",
        "criteria_not_met",
        "invalid_email",
    )
    late = conversation(score=0, email="bad@")
    codes = check_eligibility(late, off, CLOSED).codes
    assert codes == ("integration_disabled", "criteria_not_met", "delay_pending", "invalid_email")


def _fields(config: SyncConfig) -> dict[str, object]:
    return attrs.asdict(config, recurse=False)
