"""Activity kinds the host declares: templates, settings, the webhook path, the ledger, and
tasks chosen by the event settings like the built-in kinds."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signals_crm import (
    ConfigurationError,
    Conversation,
    Integration,
    IntegrationSettings,
    Participants,
    SignalsUser,
    Visitor,
    parse_webhook,
)
from signals_crm.core.activities import render, template_problems
from signals_crm.core.config import ActivityTemplate, Criteria, UserMapEntry, UserMapping
from signals_crm.core.model import ActivityKind, CustomActivity, Role
from signals_crm.core.plan import CommandKind, SyncMode, plan_sync
from signals_crm.ledger import MemoryLedger, SQLiteLedger
from signals_crm.ledger.codec import conversation_from_dict, conversation_to_dict
from signals_crm.testing import InMemoryCRM
from signals_crm.testing import strategies as sst
from signals_crm.testing.static import SALESFORCE_LIKE, run_with_state

CLOSED = datetime(2026, 11, 20, 12, tzinfo=UTC)
FORM = {
    "name": "form_submitted",
    "subject": "Form: {activity.form}",
    "body": (
        "{contact.first_name} sent {activity.form} on {activity.date} {{ref {conversation.id}}}"
    ),
}
PAYLOAD = {
    "event": "conversation-closed",
    "chat": {"transcript": "Visitor: hi"},
    "contact": {"first_name": "Ana", "email": "ana@acme.test"},
}


def test_templates_render_activity_data_and_signals_fields() -> None:
    """Placeholders take the activity's data and any Signals field; doubled braces are
    literal; a missing value is empty; dates are ISO."""
    values = {"activity.form": "Pricing", "contact.first_name": "Ana", "activity.date": None}
    assert render("{contact.first_name}: {activity.form} {{x}} [{activity.date}]", values) == (
        "Ana: Pricing {x} []"
    )
    assert render("{ activity.day }", {"activity.day": date(2026, 11, 2)}) == "2026-11-02"


def test_bad_templates_and_names_are_refused_with_their_paths() -> None:
    """A placeholder outside the known families, an unmatched brace, a built-in's name, a
    kind declared twice and an event nobody declared are reported, each with its path."""
    assert template_problems("{visitor.name}", "subject")[0].path == "subject"
    assert "unmatched" in template_problems("a } b", "body")[0].message
    with pytest.raises(ConfigurationError) as refused:
        IntegrationSettings.from_dict(
            {
                "task_events": ["chat_transcript", "demo_requested"],
                "activity_kinds": [
                    {**FORM, "name": "chat_transcript"},
                    {**FORM, "subject": "{secret}"},
                    FORM,
                ],
            }
        )
    paths = {p.path for p in refused.value.problems}
    assert {
        "activity_kinds[0].name",
        "activity_kinds[1].subject",
        "activity_kinds[2].name",
        "task_events[1]",
    } <= paths


def test_declared_kinds_are_chosen_in_the_event_settings() -> None:
    """Declared kinds join the events by default; listing task_events chooses among built-in
    and declared kinds alike, built-ins first."""
    every = IntegrationSettings.from_dict({"activity_kinds": [FORM]})
    assert every.task_events == ("chat_transcript", "meeting_booked", "form_submitted")
    chosen = IntegrationSettings.from_dict(
        {"task_events": ["form_submitted", "chat_transcript"], "activity_kinds": [FORM]}
    )
    assert chosen.task_events == ("chat_transcript", "form_submitted")
    assert chosen.to_config().task_events == frozenset(
        {ActivityKind.CHAT_TRANSCRIPT, "form_submitted"}
    )
    assert chosen.to_config().templates["form_submitted"].owner_roles == (
        Role.CLOSER,
        Role.LAST_ROUTED,
    )


def test_a_webhook_with_declared_activities_becomes_tasks_end_to_end(tmp_path) -> None:
    """Activities handed to parse_webhook survive the SQLite ledger and become tasks with
    their rendered subject and body, owned by the closer; an undeclared kind is skipped with a
    warning, and a redelivery makes no second task."""
    crm = InMemoryCRM()
    closer = crm.seed_user(email="jill@vendor.test")
    settings_ = IntegrationSettings.from_dict(
        {
            "activity_kinds": [FORM],
            "user_mapping": [{"crm_user_id": closer, "signals_email": "jill@vendor.test"}],
        }
    )
    conversation = parse_webhook(
        PAYLOAD,
        conversation_id="c-7",
        lead_score=3,
        closed_at=CLOSED,
        activities=[
            {"kind": "form_submitted", "id": "f-1", "occurred_on": "2026-11-19",
             "data": {"form": "Pricing"}},
            {"kind": "never_declared", "id": "x"},
        ],
    )  # fmt: skip
    conversation = attrs.evolve(
        conversation, participants=Participants(closer=SignalsUser(email="jill@vendor.test"))
    )
    with SQLiteLedger(tmp_path / "l.sqlite3") as ledger:
        integration = Integration(crm, settings_, ledger=ledger)
        integration.conversation_closed(conversation)
        integration.run_due(CLOSED + timedelta(hours=1))
        explanation = integration.explain("c-7", now=CLOSED + timedelta(hours=1))
        integration.conversation_closed(conversation)
        integration.run_due(CLOSED + timedelta(hours=2))
    forms = [t for t in crm.tasks() if t.activity_kind == "form_submitted"]
    assert len(forms) == 1
    assert forms[0].subject == "Form: Pricing"
    assert forms[0].body.startswith("Ana sent Pricing on 2026-11-19 {ref c-7}")
    assert forms[0].owner_id == closer
    assert len(crm.tasks()) == 2  # the transcript and the form; nothing for never_declared
    assert explanation is not None


def test_bad_activities_in_the_webhook_path_name_their_index() -> None:
    """An activity that is not an object, with an unknown key, a bad date or no id is
    refused with ``activities[i]``."""
    with pytest.raises(ConfigurationError) as refused:
        parse_webhook(
            PAYLOAD,
            conversation_id="c-1",
            lead_score=None,
            closed_at=CLOSED,
            activities=[
                "form",
                {"kind": "form_submitted", "id": "1", "extra": 1},
                {"kind": "form_submitted", "id": "2", "occurred_on": "yesterday"},
                {"kind": "form_submitted", "id": " "},
            ],
        )
    assert [p.path for p in refused.value.problems] == [
        "activities[0]",
        "activities[1]",
        "activities[2].occurred_on",
        "activities[3].id",
    ]


def test_the_ledger_codec_round_trips_declared_activities() -> None:
    """A conversation's declared-kind activities come back equal from the ledger's codec."""
    conversation = Conversation(
        "c-1",
        closed_at=CLOSED,
        custom_activities=(
            CustomActivity("file_shared", "a", date(2026, 11, 3), {"name": "deck.pdf", "pages": 3}),
        ),
    )
    encoded = json.loads(json.dumps(conversation_to_dict(conversation)))
    assert conversation_from_dict(encoded) == conversation


def test_a_manual_sync_makes_no_declared_activity_task() -> None:
    """A manual sync creates no tasks, declared kinds included."""
    crm = InMemoryCRM()
    integration = Integration(
        crm, IntegrationSettings.from_dict({"activity_kinds": [FORM]}), ledger=MemoryLedger()
    )
    conversation = Conversation(
        "c-1",
        closed_at=CLOSED,
        visitor=Visitor(email="a@b.test"),
        custom_activities=(CustomActivity("form_submitted", "1"),),
    )
    integration.manual_sync(conversation)
    assert crm.tasks() == ()


@given(
    st.lists(
        sst.conversations(closed=True, custom_kinds=(*sst.CUSTOM_KINDS, "never_declared")),
        max_size=4,
        unique_by=lambda c: c.id,
    ),
    sst.sync_configs(enabled=True, ownership=False, activity_kinds=True),
)
@settings(max_examples=80)
def test_each_chosen_declared_activity_makes_exactly_one_task(conversations, config) -> None:
    """Whatever the declarations and the events chosen: an automatic sync plans one task per
    activity of a declared kind the events choose, keyed by kind and id, with the subject its
    template renders, and none for the others."""
    config = attrs.evolve(
        config, criteria=Criteria.ALL, synchronization_delay=timedelta(0), users=UserMapping(())
    )
    now = sst.BASE_TIME + timedelta(days=3)
    plans = run_with_state(plan_sync(conversations, config, SALESFORCE_LIKE, now=now))
    for conversation, plan in zip(conversations, plans, strict=True):
        if plan.mode is not SyncMode.AUTOMATIC or not plan.commands:
            continue
        tasks = {
            c.activity.key: c.activity
            for c in plan.commands_of(CommandKind.CREATE_TASK)
            if c.activity is not None and isinstance(c.activity.kind, str)
        }
        expected = {
            f"{a.kind}:{a.id}"
            for a in conversation.custom_activities
            if a.kind in config.templates and a.kind in config.task_events
        }
        assert set(tasks) == expected
        for key, activity in tasks.items():
            kind = key.split(":", 1)[0]
            title = next(
                a.data.get("title") for a in conversation.custom_activities
                if f"{a.kind}:{a.id}" == key
            )  # fmt: skip
            assert activity.subject == (f"{kind}: {title or ''}".strip() or kind)


def test_a_declared_kind_s_roles_own_its_task() -> None:
    """The task of a declared kind is owned by the first of its roles mapped to a CRM user."""
    template = ActivityTemplate("call_logged", "Call", "{activity.note}", (Role.MEETING_SCHEDULER,))
    config = sst_config(template)
    conversation = Conversation(
        "c-1",
        closed_at=CLOSED,
        visitor=Visitor(email="a@b.test"),
        participants=Participants(
            meeting_scheduler=SignalsUser(id="u-1"), closer=SignalsUser(id="u-2")
        ),
        custom_activities=(CustomActivity("call_logged", "1", data={"note": "Booked"}),),
    )
    (plan,) = run_with_state(plan_sync([conversation], config, SALESFORCE_LIKE, now=CLOSED))
    (task,) = plan.commands_of(CommandKind.CREATE_TASK)
    assert task.owner_id == "005U1"


def sst_config(template: ActivityTemplate):
    from signals_crm.core.config import SyncConfig

    users = UserMapping(
        (UserMapEntry("005U1", signals_user_id="u-1"), UserMapEntry("005U2", signals_user_id="u-2"))
    )
    return SyncConfig(activity_kinds=(template,), users=users, task_events=("call_logged",))


def test_an_ingest_envelope_carries_declared_activities() -> None:
    """``signals-crm ingest`` reads an envelope's ``activities`` list; anything else is
    refused."""
    from signals_crm.cli._common import CommandError
    from signals_crm.cli._envelope import conversation_of

    envelope = {
        "conversation_id": "c-1",
        "closed_at": "2026-11-20T12:00:00+00:00",
        "payload": PAYLOAD,
        "activities": [{"kind": "form_submitted", "id": "f-1", "data": {"form": "Pricing"}}],
    }
    (activity,) = conversation_of(envelope).custom_activities
    assert (activity.kind, activity.data["form"]) == ("form_submitted", "Pricing")
    with pytest.raises(CommandError, match="activities"):
        conversation_of({**envelope, "activities": {"kind": "x"}})
