"""Task owners: the user who did the activity, else the record's owner, else the CRM's default."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from hypothesis import given
from hypothesis import strategies as st

from signals_crm.adapters.hubspot import HubSpotAdapter, HubSpotAPI
from signals_crm.core.config import SyncConfig, UserMapEntry, UserMapping
from signals_crm.core.model import (
    ActivityKind,
    Conversation,
    Meeting,
    Participants,
    PersonKind,
    PersonRecord,
    Role,
    SignalsUser,
    Visitor,
)
from signals_crm.core.plan import CommandKind, SyncMode, plan_sync
from signals_crm.core.task_owner import TASK_ROLES, TaskOwnerRule, resolve_task_owner
from signals_crm.engine import Integration
from signals_crm.ledger import MemoryLedger
from signals_crm.testing import strategies as sst
from signals_crm.testing.hubspot import HubSpotBackdoor, LocalHubSpot
from signals_crm.testing.static import HUBSPOT_LIKE, SALESFORCE_LIKE, run_with_state

CLOSED = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
NOW = CLOSED + timedelta(hours=1)
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
MEETING = TASK_ROLES[ActivityKind.MEETING_BOOKED.value]
TRANSCRIPT = TASK_ROLES[ActivityKind.CHAT_TRANSCRIPT.value]


def conv(participants: Participants, **changes: object) -> Conversation:
    values: dict[str, object] = {
        "id": "c-1",
        "closed_at": CLOSED,
        "lead_score": 3,
        "visitor": Visitor(email="lena@brightfield.test", first_name="Lena"),
        "participants": participants,
        "transcript": "Visitor: hello",
        "meeting": Meeting(id="m1", name="Demo"),
    }
    values.update(changes)
    return Conversation(**values)  # type: ignore[arg-type]


def task_owners(plan_commands: object) -> dict[str, str | None]:
    return {
        c.activity.key: c.owner_id  # type: ignore[union-attr]
        for c in plan_commands  # type: ignore[attr-defined]
        if c.kind is CommandKind.CREATE_TASK
    }


def test_seed_example_meeting_to_sally_transcript_to_jill():
    """Sally's meeting, Bob routed, Jill closed: the meeting is Sally's, the transcript Jill's,
    and both task writes carry those owners."""
    everyone = Participants(meeting_scheduler=SALLY, last_routed=BOB, closer=JILL)
    (plan,) = run_with_state(
        plan_sync([conv(everyone)], SyncConfig(users=USERS), SALESFORCE_LIKE, now=NOW)
    )
    assert task_owners(plan.commands) == {"meeting:m1": "005SALLY", "transcript": "005JILL"}
    tasks = [c.to_task_write("00Q1") for c in plan.commands_of(CommandKind.CREATE_TASK)]
    assert {t.owner_id for t in tasks} == {"005SALLY", "005JILL"}
    assert "task_owner" in [r.code for r in plan.trace]


def test_transcript_falls_back_to_the_last_routed_then_the_record_owner():
    """No closer (or an unmapped one): the last routed; neither: the new record's owner."""
    stranger = SignalsUser(email="temp@vendor.test")
    config = SyncConfig(users=USERS, default_owner="005DEFAULT")
    (routed,) = run_with_state(
        plan_sync(
            [conv(Participants(last_routed=BOB, closer=stranger))], config, HUBSPOT_LIKE, now=NOW
        )
    )
    assert task_owners(routed.commands)["transcript"] == "005BOB"
    assert "task_owner_unmapped" in [r.code for r in routed.trace]
    (alone,) = run_with_state(plan_sync([conv(Participants())], config, HUBSPOT_LIKE, now=NOW))
    assert task_owners(alone.commands) == {"meeting:m1": "005DEFAULT", "transcript": "005DEFAULT"}


def test_tasks_on_an_existing_record_go_to_its_owner_when_known():
    """An existing Lead's mapped owner owns the tasks no mapped actor claims; a queue does not."""
    record = PersonRecord(
        id="00Q9", kind=PersonKind.LEAD, email="lena@brightfield.test", owner_id="005BOB"
    )
    queue = PersonRecord(
        id="00Q9", kind=PersonKind.LEAD, email="lena@brightfield.test", owner_id="00GQUEUE"
    )
    config = SyncConfig(users=USERS)
    for found, expected in ((record, "005BOB"), (queue, None)):
        flow = plan_sync([conv(Participants())], config, SALESFORCE_LIKE, now=NOW)
        (plan,) = run_with_state(flow, people=[found])
        assert plan.match is not None
        assert plan.match.record == found
        assert task_owners(plan.commands) == {"meeting:m1": expected, "transcript": expected}


def test_no_owner_known_leaves_the_crm_default():
    """Nobody mapped, no default, a new record: no owner is sent on the tasks."""
    (plan,) = run_with_state(
        plan_sync([conv(Participants(closer=JILL))], SyncConfig(), SALESFORCE_LIKE, now=NOW)
    )
    assert set(task_owners(plan.commands).values()) == {None}
    assert "task_owner_crm_default" in [r.code for r in plan.trace]


def test_manual_sync_has_no_tasks_to_own():
    """A manual sync plans no task, so no task owner either."""
    everyone = Participants(meeting_scheduler=SALLY, closer=JILL)
    (plan,) = run_with_state(
        plan_sync([conv(everyone)], SyncConfig(users=USERS), SALESFORCE_LIKE, mode=SyncMode.MANUAL)
    )
    assert plan.commands_of(CommandKind.CREATE_TASK) == ()


def test_hubspot_tasks_carry_hubspot_owner_id():
    """Through the HubSpot adapter and the local HubSpot, each task gets hubspot_owner_id."""
    hub = LocalHubSpot(burst_limit=None, search_per_second=None)
    door = HubSpotBackdoor(hub)
    sally = door.seed_user(email="sally@vendor.test")
    jill = door.seed_user(email="jill@vendor.test")
    users = UserMapping(
        (
            UserMapEntry(sally, signals_user_id="u-sally"),
            UserMapEntry(jill, signals_user_id="u-jill"),
        )
    )
    with httpx.Client(transport=hub.transport()) as http:
        adapter = HubSpotAdapter(
            http, "local-hubspot-token", api=HubSpotAPI(base_url="https://api.hubapi.test")
        )
        sync = Integration(
            adapter,
            SyncConfig(users=users, placeholders={}),
            ledger=MemoryLedger(),
            sleep=lambda _: None,
            clock=lambda: NOW,
        )
        sync.conversation_closed(conv(Participants(meeting_scheduler=SALLY, closer=JILL)))
        report = sync.run_due(NOW)
    person = report.outcome("c-1").person_id
    assert person is not None
    owners = {t["hs_task_subject"]: t.get("hubspot_owner_id") for t in door.tasks_of(person)}
    assert owners == {"Meeting booked: Demo": sally, "Signals chat transcript": jill}


# ------------------------------------------------------------------------------------------------
# The rule's invariants, over the shipped strategies


@given(
    participants=sst.participants(),
    users=sst.user_mappings(),
    record_owner=st.one_of(st.none(), st.sampled_from(["005DEFAULT", "005OTHER", "00GQUEUE"])),
    kind=st.sampled_from(list(ActivityKind)),
)
def test_task_owner_is_the_first_mapped_actor_else_a_known_record_owner(
    participants, users, record_owner, kind
):
    """Rules 1-4: the first present, mapped actor of the activity's roles; else the record's
    owner when the integration knows it; else none."""
    roles = TASK_ROLES[kind.value]
    got = resolve_task_owner(roles, participants, users, record_owner, default_owner="005DEFAULT")
    actors = [participants.get(role) for role in roles]
    mapped = [users.crm_user_for(a) for a in actors if a is not None]
    first = next((m for m in mapped if m is not None), None)
    if first is not None:
        assert got.owner_id == first
        assert got.role in roles
    else:
        known = record_owner == "005DEFAULT" or (
            record_owner is not None and users.signals_user_for(record_owner) is not None
        )
        assert got.owner_id == (record_owner if known else None)
        assert got.role is None
    assert got.trace  # always says why


@given(participants=sst.participants(), users=sst.user_mappings())
def test_a_meeting_task_is_never_given_to_the_closer_or_last_routed(participants, users):
    """A meeting's task never goes to another participant than its host (rule 1)."""
    got = resolve_task_owner(MEETING, participants, users, None)
    host = participants.meeting_scheduler
    assert got.owner_id == (users.crm_user_for(host) if host is not None else None)
    assert got.role in (None, Role.MEETING_SCHEDULER)


@given(
    participants=sst.participants(),
    users=sst.user_mappings(),
    record_owner=st.one_of(st.none(), st.just("005OTHER")),
)
def test_a_kept_rule_answers_as_a_fresh_one(participants, users, record_owner):
    """The memo only saves work: a rule used before answers as a fresh rule does."""
    kept = TaskOwnerRule(users)
    for _ in range(2):
        for roles in (MEETING, TRANSCRIPT):
            assert kept.resolve(roles, participants, record_owner) == resolve_task_owner(
                roles, participants, users, record_owner
            )


@given(conversation=sst.conversations(closed=True), config=sst.sync_configs(enabled=True))
def test_planned_tasks_are_owned_by_mapped_users_or_the_record_owner(conversation, config):
    """Every planned task's owner is a mapped CRM user, the default owner, or none."""
    flow = plan_sync([conversation], config, SALESFORCE_LIKE, now=NOW + timedelta(days=2))
    (plan,) = run_with_state(flow)
    allowed = {e.crm_user_id for e in config.users.entries} | {config.default_owner, None}
    for command in plan.commands_of(CommandKind.CREATE_TASK):
        assert command.owner_id in allowed


def _walked(roles, participants, users, record_owner, default_owner, inactive):
    """Rules 1 to 4 walked plainly, with no memo: (owner, role, the reasons' codes)."""
    codes: list[str] = []
    for role in roles:
        user = participants.get(role)
        if user is None:
            continue
        crm_id = users.crm_user_for(user)
        if crm_id is None:
            codes.append("task_owner_unmapped")
        elif crm_id in inactive:
            codes.append("task_owner_inactive")
        else:
            return crm_id, role, [*codes, "task_owner"]
    default = default_owner if default_owner not in inactive else None
    known = record_owner is not None and record_owner not in inactive
    known = known and (record_owner == default or bool(users.signals_user_for(record_owner)))
    if known:
        return record_owner, None, [*codes, "task_owner_record"]
    return None, None, [*codes, "task_owner_crm_default"]


@given(
    users=sst.user_mappings(),
    inactive=st.frozensets(st.sampled_from(sst.CRM_USER_IDS)),
    default_owner=st.one_of(st.none(), st.sampled_from(sst.CRM_USER_IDS)),
    tasks=st.lists(
        st.tuples(
            st.sampled_from([MEETING, TRANSCRIPT, (Role.LAST_ROUTED,), ()]),
            sst.participants(),
            st.one_of(st.none(), st.just("005OTHER"), st.sampled_from(sst.CRM_USER_IDS)),
            st.sampled_from(["the meeting task", "the transcript task"]),
        ),
        max_size=12,
    ),
)
def test_a_rule_kept_across_tasks_walks_as_the_rule_says(users, inactive, default_owner, tasks):
    """One rule deciding a stream of tasks (its memo shared by users, labels and walks)
    answers each as a fresh rule does, and as rules 1 to 4 walked plainly do."""
    kept = TaskOwnerRule(users, default_owner, inactive)
    for roles, participants, record_owner, label in tasks:
        got = kept.resolve(roles, participants, record_owner, activity=label)
        fresh = TaskOwnerRule(users, default_owner, inactive)
        assert got == fresh.resolve(roles, participants, record_owner, activity=label)
        owner, role, codes = _walked(
            roles, participants, users, record_owner, default_owner, inactive
        )
        assert (got.owner_id, got.role, [r.code for r in got.trace]) == (owner, role, codes)
