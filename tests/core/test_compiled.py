"""The per-batch compiled rules decide exactly what the one-off functions decide.

The planner compiles the eligibility rule, the lead-owner rule and the field maps once per
batch, and remembers some answers within it; these tests pin that the compiled forms, memo
included, never differ from a fresh evaluation.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signals_crm.core.config import FieldMapping, FieldMappings, SyncConfig
from signals_crm.core.criteria import EligibilityRule, check_eligibility, meets_criteria
from signals_crm.core.mapping import CompiledFields, build_update_fields
from signals_crm.core.model import (
    Conversation,
    ConversationStatus,
    FieldSchema,
    FieldType,
    ObjectSchema,
    Role,
    Visitor,
    field_getter,
    fields_reader,
    is_valid_email,
)
from signals_crm.core.owner import OwnerRule, resolve_owner
from signals_crm.core.plan import CommandKind, Planner, SyncMode, plan_sync, task_marker
from signals_crm.testing import strategies as sst
from signals_crm.testing.static import HUBSPOT_LIKE, SALESFORCE_LIKE, run_with_state

PATHS = (
    *sst.SOURCE_FIELDS,
    "chat.meeting.name",
    "chat.meeting.date",
    "chat.meeting.agent_name",
    "chat.meeting.duration_minutes",
    "conversation.id",
    "conversation.lead_score",
    "contact.email",
    "company.domain",
    "company.name",
    "company.employees",
    "contact.nope",
    "weird.path",
)


@given(sst.conversations(), st.lists(st.sampled_from(PATHS), max_size=8))
def test_fields_reader_reads_what_each_getter_reads(conversation, paths):
    """All at once (or path by path when a part is missing), the values are the getters'."""
    expected = [field_getter(path)(conversation) for path in paths]
    assert list(fields_reader(paths)(conversation)) == expected


def test_fields_reader_survives_missing_parts():
    """A conversation without company or meeting reads ``None`` for their fields."""
    bare = Conversation(id="c-1", closed_at=sst.BASE_TIME)
    paths = ["contact.first_name", "company.name", "chat.meeting.name", "conversation.id"]
    assert list(fields_reader(paths)(bare)) == [None, None, None, "c-1"]


_PRIORITY = (Role.MEETING_SCHEDULER, Role.LAST_ROUTED, Role.CLOSER)


def _expected_owner_codes(people, users, sources) -> list[str]:
    """The owner trace's codes, worked out by hand from the rule."""
    codes = []
    for role in _PRIORITY:
        if role not in sources:
            continue
        user = people.get(role)
        if user is None:
            codes.append("owner_source_absent")
        elif users.crm_user_for(user) is None:
            codes.append("owner_source_unmapped")
        else:
            return [*codes, "owner_chosen"]
    return [*codes, "owner_default"]


@given(
    st.lists(sst.participants(), min_size=1, max_size=6),
    sst.user_mappings(),
    st.lists(st.sampled_from(list(Role)), unique=True),
)
def test_owner_rule_remembers_nothing_a_fresh_rule_would_not_decide(crowd, users, sources):
    """One rule resolving many conversations (memo warm) gives each the full trace of its
    own walk, as a fresh rule does."""
    rule = OwnerRule(tuple(sources), users, "005DEFAULT")
    for people in crowd * 2:  # the second pass answers from the memo
        decision = rule.resolve(people)
        assert [r.code for r in decision.trace] == _expected_owner_codes(people, users, sources)
        assert decision == resolve_owner(people, tuple(sources), users, "005DEFAULT")


@given(st.lists(sst.conversations(), min_size=1, max_size=6), sst.sync_configs(ownership=False))
def test_eligibility_rule_equals_check_eligibility(conversations, config):
    """One rule checking many conversations reports, for each, exactly its failing conditions
    (worked out here by hand), as a one-off check does."""
    rule = EligibilityRule(config)
    for conversation in conversations:
        now = sst.BASE_TIME
        verdict = rule.check(conversation, now)
        assert verdict == check_eligibility(conversation, config, now)
        assert verdict.codes == _expected_blockers(conversation, config, now)


def _expected_blockers(conversation, config, now) -> tuple[str, ...]:
    codes = []
    if not config.enabled:
        codes.append("integration_disabled")
    closed_at = conversation.closed_at
    if closed_at is None or conversation.status is not ConversationStatus.CLOSED:
        codes.append("conversation_open")
    if not meets_criteria(conversation.lead_score, config.criteria):
        codes.append("criteria_not_met")
    if closed_at is not None and now < closed_at + config.synchronization_delay:
        codes.append("delay_pending")
    email = conversation.email
    if email is None or not email.strip():
        codes.append("no_email")
    elif not is_valid_email(email):
        codes.append("invalid_email")
    return tuple(codes)


@given(
    st.lists(
        st.fixed_dictionaries(
            {}, optional={s: st.one_of(st.none(), st.text(max_size=4)) for s in ("a", "b", "c")}
        ),
        min_size=1,
        max_size=5,
    ),
    st.fixed_dictionaries({}, optional={t: st.text(max_size=4) for t in ("A", "b", "C")}),
)
def test_compiled_update_memo_matches_fresh_payloads(rows, current):
    """The reason of each changed set is made once per batch, and equals a fresh one."""
    mappings = [FieldMapping("a", "A", True), FieldMapping("b", "B", True), FieldMapping("c", "C")]
    compiled = CompiledFields.compile(
        mappings, lambda sources: lambda row: [row.get(s) for s in sources], for_update=True
    )
    for row in rows:
        assert compiled.update(row, current) == build_update_fields(row, mappings, current)


@pytest.mark.parametrize(
    ("email", "valid"),
    [
        (f"{'a' * 64}@x.co", True),
        (f"{'a' * 65}@x.co", False),  # the local part is at most 64 characters
        (f"a@{'b' * 63}.{'c' * 63}.{'d' * 63}.{'e' * 56}.com", True),  # 254 characters
        (f"a@{'b' * 63}.{'c' * 63}.{'d' * 63}.{'e' * 57}.com", False),  # 255
        ("  sally@example.com \n", True),  # trimmed first
        ("sally@example.com\nbob@example.com", False),
        ("sally@example", False),
        (".sally@example.com", False),
        ("sally..x@example.com", False),
        ("", False),
        (None, False),
    ],
)
def test_email_validity_limits(email, valid):
    assert is_valid_email(email) is valid


def test_task_marker_is_derived_from_the_activity():
    """A task command's marker names its conversation and activity; other commands have none."""
    conversation = Conversation(
        id="c-9",
        closed_at=sst.BASE_TIME,
        lead_score=3,
        visitor=Visitor(email="sally@example.com", last_name="Sparrow"),
        transcript="Visitor: hi",
    )
    config = SyncConfig(campaign_id="701000000000001")
    plans = run_with_state(plan_sync([conversation], config, SALESFORCE_LIKE, now=sst.BASE_TIME))
    (plan,) = plans
    (task,) = plan.commands_of(CommandKind.CREATE_TASK)
    assert task.marker == task_marker("c-9", "transcript") == "signals:c-9:transcript"
    assert task.to_task_write("00Q1").marker == task.marker
    assert all(c.marker is None for c in plan.commands if c.kind is not CommandKind.CREATE_TASK)


@given(
    st.lists(st.lists(sst.conversations(), max_size=4), min_size=1, max_size=3),
    sst.sync_configs(ownership=False),
    st.sampled_from([SALESFORCE_LIKE, HUBSPOT_LIKE]).flatmap(
        lambda crm: st.tuples(st.just(crm), sst.crm_people(person_kind=crm.person_kind, max_size=4))
    ),
    st.sampled_from(list(SyncMode)),
)
def test_a_kept_planner_plans_each_batch_as_plan_sync(batches, config, crm_state, mode):
    """What a planner keeps from batch to batch never changes a plan."""
    crm, people = crm_state
    planner = Planner(config, crm)
    for batch in batches:
        now = sst.BASE_TIME
        kept = run_with_state(planner.plan(batch, now=now, mode=mode), people=people)
        fresh = run_with_state(plan_sync(batch, config, crm, now=now, mode=mode), people=people)
        assert kept == fresh


def test_a_planner_compiles_again_for_another_schema():
    """A field the new schema makes shorter is truncated: nothing of the old schema is kept."""
    config = SyncConfig(
        field_mappings=FieldMappings(lead=(FieldMapping("contact.first_name", "FirstName"),))
    )
    conversation = Conversation(
        id="c-1",
        closed_at=sst.BASE_TIME,
        visitor=Visitor(email="sally@example.com", first_name="Sally-Anne"),
    )

    def schema(length: int) -> ObjectSchema:
        return ObjectSchema("Lead", (FieldSchema("FirstName", FieldType.STRING, length=length),))

    planner = Planner(config, SALESFORCE_LIKE)
    for length, expected in ((80, "Sally-Anne"), (5, "Sally"), (80, "Sally-Anne")):
        (plan,) = run_with_state(
            planner.plan([conversation], now=sst.BASE_TIME, schema=schema(length))
        )
        (create,) = plan.commands_of(CommandKind.CREATE_PERSON)
        assert create.fields["FirstName"] == expected
