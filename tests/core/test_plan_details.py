"""Plan details: keys, markers, batch sharing, truncation, explanation text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from signals_crm.core.config import FieldMapping, FieldMappings, SyncConfig
from signals_crm.core.explain import LedgerFacts, explain_plan
from signals_crm.core.model import Conversation, Visitor, field_getter
from signals_crm.core.plan import CommandKind, PlanOutcome, SyncMode, command_key, plan_sync
from signals_crm.testing import strategies as sst
from signals_crm.testing.static import HUBSPOT_LIKE, SALESFORCE_LIKE, run_with_state

CLOSED = datetime(2026, 11, 20, tzinfo=UTC)


def test_keys_follow_command_key():
    """Every planned key is what command_key() says for its command."""
    conv = Conversation(
        id="c-7", closed_at=CLOSED, visitor=Visitor(email="a@b.test"), transcript="hi"
    )
    (plan,) = run_with_state(
        plan_sync([conv], SyncConfig(campaign_id="701X"), SALESFORCE_LIKE, now=CLOSED)
    )
    keys = {c.kind: c.key for c in plan.commands}
    assert keys[CommandKind.CREATE_PERSON] == command_key("c-7", CommandKind.CREATE_PERSON)
    assert keys[CommandKind.ADD_TO_CAMPAIGN] == command_key("c-7", CommandKind.ADD_TO_CAMPAIGN)
    assert keys[CommandKind.CREATE_TASK] == command_key(
        "c-7", CommandKind.CREATE_TASK, "transcript"
    )


def test_same_email_in_one_batch_shares_the_created_record():
    """A later conversation of the batch with the same email refers to the first's create."""
    a = Conversation(
        id="a", closed_at=CLOSED, visitor=Visitor(email="x@y.test", first_name="A"), transcript="1"
    )
    b = Conversation(
        id="b", closed_at=CLOSED, visitor=Visitor(email=" X@Y.test", first_name="B"), transcript="2"
    )
    config = SyncConfig(
        field_mappings=FieldMappings(lead=(FieldMapping("contact.first_name", "FirstName", True),))
    )
    first, second = run_with_state(plan_sync([a, b], config, SALESFORCE_LIKE, now=CLOSED))
    assert first.outcome is PlanOutcome.CREATE
    assert second.outcome is PlanOutcome.UPDATE
    (update,) = second.commands_of(CommandKind.UPDATE_PERSON)
    assert update.person.pending == "a:person"
    assert dict(update.fields) == {"FirstName": "B"}
    assert {c.person.pending for c in second.commands_of(CommandKind.CREATE_TASK)} == {"a:person"}


def test_long_transcript_truncated_to_the_crm_limit():
    """A transcript longer than the CRM's task body limit is truncated with a warning."""
    conv = Conversation(
        id="c", closed_at=CLOSED, visitor=Visitor(email="a@b.test"), transcript="x" * 70_000
    )
    (plan,) = run_with_state(plan_sync([conv], SyncConfig(), HUBSPOT_LIKE, now=CLOSED))
    (task,) = plan.commands_of(CommandKind.CREATE_TASK)
    assert task.activity is not None
    assert len(task.activity.body) == 65_536
    assert "value_truncated" in [r.code for r in plan.trace]
    assert [w.code for w in explain_plan(plan).warnings] == ["value_truncated"]


def test_explanation_text_lists_blockers_and_ledger():
    """The text names each blocker with its code, when it passes, and the ledger's facts."""
    conv = Conversation(
        id="c-1", closed_at=CLOSED, lead_score=None, visitor=Visitor(email="a@b.test")
    )
    config = SyncConfig(synchronization_delay=timedelta(hours=1))
    (plan,) = run_with_state(plan_sync([conv], config, SALESFORCE_LIKE, now=CLOSED))
    facts = LedgerFacts(
        scheduled_for=CLOSED + timedelta(hours=1),
        schedule_state="pending",
        attempts=1,
        last_error="UNABLE_TO_LOCK_ROW: busy",
        command_states={"c-1:person": "planned"},
    )
    text = explain_plan(plan, facts).as_text()
    assert "[delay_pending]" in text
    assert "becomes eligible at 2026-11-20T01:00:00+00:00" in text
    assert "last error: UNABLE_TO_LOCK_ROW: busy" in text
    assert "c-1:person: planned" in text


def test_manual_plan_has_no_tasks_but_same_person_key():
    """Manual and automatic plans share the person key, so they never both create."""
    conv = Conversation(
        id="c-1", closed_at=CLOSED, visitor=Visitor(email="a@b.test"), transcript="t"
    )
    (auto,) = run_with_state(plan_sync([conv], SyncConfig(), SALESFORCE_LIKE, now=CLOSED))
    (manual,) = run_with_state(
        plan_sync([conv], SyncConfig(), SALESFORCE_LIKE, mode=SyncMode.MANUAL)
    )
    assert auto.commands[0].key == manual.commands[0].key
    assert not manual.commands_of(CommandKind.CREATE_TASK)


@given(
    sst.conversations(),
    st.sampled_from(
        (
            *sst.SOURCE_FIELDS,
            "chat.meeting.name",
            "chat.meeting.date",
            "conversation.id",
            "contact.email",
            "company.domain",
            "company.employees",
            "contact.nope",
            "weird.path",
        )
    ),
)
def test_field_getter_matches_field_values(conversation, path):
    """The compiled getter reads exactly what field_values() holds for the path."""
    assert field_getter(path)(conversation) == conversation.field_values().get(path)


def test_resumed_creates_are_not_looked_up_again():
    """A conversation whose create an earlier run already made (``created``) is planned from
    that record: its email is not looked up (the answer would be ignored), while an email that
    another, fresh conversation of the batch shares still is."""
    from signals_crm.core.crm import FindPeople

    def conversation(cid: str, email: str) -> Conversation:
        return Conversation(id=cid, closed_at=CLOSED, visitor=Visitor(email=email), transcript="t")

    batch = [
        conversation("done", "done@x.test"),
        conversation("fresh", "fresh@x.test"),
        conversation("done-2", "shared@x.test"),
        conversation("fresh-2", "Shared@x.test"),
    ]
    flow = plan_sync(
        batch,
        SyncConfig(),
        HUBSPOT_LIKE,
        now=CLOSED,
        created={"done": "101", "done-2": "102"},
    )
    asked = []
    request = next(flow)
    while True:
        assert isinstance(request, FindPeople)  # HUBSPOT_LIKE describes nothing
        asked.append(request.emails)
        try:
            request = flow.send([() for _ in request.emails])
        except StopIteration as stop:
            plans = stop.value
            break
    assert asked == [("fresh@x.test", "shared@x.test")]
    assert [p.outcome for p in plans] == [PlanOutcome.CREATE] * 3 + [PlanOutcome.UNCHANGED]
    assert "resumed_create" in {r.code for r in plans[0].trace}
    assert "resumed_create" not in {r.code for r in plans[1].trace}
