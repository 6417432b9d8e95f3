"""Partial batches carried across the rounds of a backfill (signals_crm._flows.carry)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from signals_crm._flows.carry import carried
from signals_crm.core.config import (
    Criteria,
    FieldMapping,
    FieldMappings,
    SyncConfig,
    UserMapEntry,
    UserMapping,
)
from signals_crm.core.crm import FindPeople
from signals_crm.core.model import Conversation, Meeting, PersonKind, Visitor
from signals_crm.core.plan import Command, CommandKind, Plan, Planner, SyncMode
from signals_crm.engine import Integration
from signals_crm.ledger import MemoryLedger
from signals_crm.ledger.base import DueState
from signals_crm.reports import OutcomeKind
from signals_crm.testing.memory import InMemoryCRM

CLOSED = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
LATER = CLOSED + timedelta(hours=1)
WRITE_BATCH = 20
WRITES = ("create_people", "update_people", "create_tasks", "add_to_campaign")


def conv(i: int, email: str | None = None, first: str | None = None) -> Conversation:
    return Conversation(
        id=f"c-{i}",
        closed_at=CLOSED,
        lead_score=2,
        visitor=Visitor(email=email or f"v{i}@x.test", first_name=first or f"F{i}", last_name="L"),
        transcript=f"Visitor {i}: hello",
        meeting=Meeting(id=f"m-{i}", name="Demo"),
    )


def mixed_crm(count: int) -> tuple[InMemoryCRM, SyncConfig]:
    """Of every ten visitors seven are new, two existing Leads and one an existing Contact."""
    crm = InMemoryCRM(person_kind=PersonKind.LEAD, write_batch_size=WRITE_BATCH)
    owner = crm.seed_user(email="owner@vendor.test")
    campaign = crm.seed_campaign(name="Backfill")
    for i in range(count):
        if i % 10 in (7, 8):
            crm.seed_person(
                kind=PersonKind.LEAD,
                email=f"v{i}@x.test",
                fields={"FirstName": "Old", "LastName": "L", "Company": "C"},
            )
        elif i % 10 == 9:
            crm.seed_person(kind=PersonKind.CONTACT, email=f"v{i}@x.test")
    cfg = SyncConfig(
        criteria=Criteria.ALL,
        campaign_id=campaign,
        users=UserMapping((UserMapEntry(owner, signals_user_id="u1"),)),
        field_mappings=FieldMappings(
            lead=(
                FieldMapping("contact.first_name", "FirstName", overwrite=True),
                FieldMapping("contact.last_name", "LastName"),
            )
        ),
        placeholders={"LastName": "[not provided]", "Company": "[not provided]"},
    )
    return crm, cfg


def integration(crm: InMemoryCRM, cfg: SyncConfig, **kw: Any) -> Integration:
    kw.setdefault("ledger", MemoryLedger())
    return Integration(
        crm, cfg, sleep=lambda _: None, random=lambda: 0.5, clock=lambda: LATER, **kw
    )


def test_a_backfill_sends_full_calls_and_the_remainders_at_the_end() -> None:
    """2,000 visitors of the mixed workload in rounds of 100 (70 new Leads, 20 updates, 200
    tasks and 70 memberships a round, at 20 records a call) cost exactly the calls of the
    totals (70 + 20 + 200 + 70), not 4 + 1 + 10 + 4 per round (380): the part-filled calls'
    conversations wait for the next round. One lookup a round still, one outcome each."""
    count = 2_000
    crm, cfg = mixed_crm(count)
    sync = integration(crm, cfg, batch_size=100)
    seen: list[str] = []
    report = sync.backfill(
        (conv(i) for i in range(count)),
        now=LATER,
        on_outcome=lambda o: seen.append(o.conversation_id),
    )
    assert dict(report.counts) == {"created": 1_400, "updated": 400, "attached_to_contact": 200}
    assert sorted(seen) == sorted(f"c-{i}" for i in range(count))
    floor = {
        "create_people": math.ceil(1_400 / WRITE_BATCH),
        "update_people": math.ceil(400 / WRITE_BATCH),
        "create_tasks": math.ceil(4_000 / WRITE_BATCH),
        "add_to_campaign": math.ceil(1_400 / WRITE_BATCH),
    }
    assert {k: crm.calls[k] for k in WRITES} == floor
    assert crm.calls["find_people"] == count // 100
    assert all(len(crm.people_with_email(f"v{i}@x.test")) == 1 for i in range(count))


def test_without_a_next_round_nothing_is_carried() -> None:
    """A backfill that fits in one round writes everything in it, part-filled calls included."""
    crm, cfg = mixed_crm(30)
    report = integration(crm, cfg, batch_size=100).backfill((conv(i) for i in range(30)), now=LATER)
    assert report.count(OutcomeKind.CREATED) == 21
    assert crm.calls["find_people"] == 1
    assert crm.calls["create_people"] == 2  # 21 new Leads: 20 + 1


def test_one_visitors_conversations_keep_their_order() -> None:
    """A visitor's conversation carried into the next round meets there a later conversation
    of the same visitor: one Lead, ending with the later conversation's values."""
    crm, cfg = mixed_crm(0)
    convs = [conv(i) for i in range(25)]
    convs[24] = conv(24, email="v23@x.test", first="Later")  # the same visitor as c-23
    kinds: dict[str, OutcomeKind] = {}
    integration(crm, cfg, batch_size=24).backfill(
        iter(convs), now=LATER, on_outcome=lambda o: kinds.setdefault(o.conversation_id, o.kind)
    )
    assert kinds["c-23"] is OutcomeKind.CREATED
    assert kinds["c-24"] is OutcomeKind.UPDATED
    (lead,) = crm.people_with_email("v23@x.test")
    assert crm.person_fields(lead)["FirstName"] == "Later"


def test_conversations_carried_past_a_stop_are_scheduled() -> None:
    """A backfill stopped by the API budget reports its carried conversations RETRY and
    schedules them, so run_due finishes them like any automatic sync."""

    class Usage:
        fraction_used = 0.0

    class MeteredCRM(InMemoryCRM):
        api_usage = Usage()

        def create_tasks(self, tasks: Sequence[Any]) -> Any:
            self.api_usage.fraction_used = 0.95
            return super().create_tasks(tasks)

    crm = MeteredCRM(person_kind=PersonKind.LEAD, write_batch_size=WRITE_BATCH)
    _, cfg = mixed_crm(0)
    cfg = SyncConfig(
        criteria=cfg.criteria,
        field_mappings=cfg.field_mappings,
        placeholders=cfg.placeholders,
    )
    ledger = MemoryLedger()
    sync = integration(crm, cfg, batch_size=30, api_budget=0.9, ledger=ledger)
    report = sync.backfill((conv(i) for i in range(100)), now=LATER)
    assert report.budget_exhausted
    done = report.count(OutcomeKind.CREATED)
    retry = [o for o in report.outcomes if o.kind is OutcomeKind.RETRY]
    assert done == 20  # 30 new Leads a round: the 20 of one full call; 10 carried
    assert len(retry) == 10
    for outcome in retry:
        assert outcome.retry_at == LATER + timedelta(seconds=sync.retry.reschedule_after)
        due = ledger.get_due(outcome.conversation_id)
        assert due is not None
        assert due.state is DueState.PENDING
    assert len(crm.people()) == 20


# -- the rule, pure -----------------------------------------------------------------------------


def plans_of(
    conversations: Sequence[Conversation], crm: InMemoryCRM, cfg: SyncConfig
) -> list[Plan]:
    planner = Planner(cfg, crm.capabilities)
    schema = crm.describe("Lead")
    flow = planner.plan(conversations, now=LATER, mode=SyncMode.AUTOMATIC, schema=schema)
    try:
        request = next(flow)
        while True:
            assert isinstance(request, FindPeople)
            request = flow.send(crm.find_people(request.emails, request.fields))
    except StopIteration as done:
        return list(done.value)


def always(_: Command) -> bool:
    return True


def test_the_rule_carries_the_least_that_leaves_no_part_filled_call() -> None:
    """75 new visitors (a create, a membership, two tasks each) at 20 a call: the last 15 are
    carried (60 creates fill three calls, 120 tasks six); nothing else is."""
    crm, cfg = mixed_crm(0)
    plans = plans_of([conv(i) for i in range(75)], crm, cfg)
    assert carried(plans, size=20, pending=always) == {f"c-{i}" for i in range(60, 75)}


def test_the_rule_carries_a_rare_kind_whole() -> None:
    """Five updates among 40 creates: the five updating conversations wait (with their tasks:
    80 + 10 tasks less 10 leaves 80), the creates go."""
    crm, cfg = mixed_crm(50)
    convs = [conv(i) for i in range(50) if i % 10 not in (8, 9)][:40] + [
        conv(7 + 10 * k) for k in range(5, 10)
    ]
    plans = plans_of(convs, crm, cfg)
    updates = {p.conversation_id for p in plans if p.commands_of(CommandKind.UPDATE_PERSON)}
    assert len(updates) == 5
    assert carried(plans, size=20, pending=always) >= updates


def test_the_rule_carries_at_most_the_limit_and_ignores_sent_commands() -> None:
    """The cap holds; commands already sent (not pending) do not count."""
    crm, cfg = mixed_crm(0)
    plans = plans_of([conv(i) for i in range(75)], crm, cfg)
    assert len(carried(plans, size=20, pending=always, limit=4)) <= 4
    assert carried(plans, size=20, pending=lambda _: False) == set()


def test_the_rule_holds_back_the_later_conversations_of_a_carried_visitor() -> None:
    """A later conversation of a visitor whose earlier conversation is carried is carried too
    (rule 3), whatever it writes: its tasks would refer to the create that now waits."""
    crm, cfg = mixed_crm(0)
    convs = [conv(i) for i in range(21)] + [conv(21, email="v20@x.test", first="F20")]
    plans = plans_of(convs, crm, cfg)
    follower = plans[-1]
    assert {c.kind for c in follower.commands} == {CommandKind.CREATE_TASK}
    # c-21's own writes not counted: carrying c-20 alone leaves 20 creates and 40 tasks.
    out = carried(plans, size=20, pending=lambda c: c.conversation_id != "c-21")
    assert out == {"c-20", "c-21"}


def test_progress_counts_only_the_first_conversations_all_done() -> None:
    """progress(n) means the stream's first n conversations are all done, so a resume after n
    (the CLI's checkpoint) never skips a carried conversation; it ends at the total."""
    count = 430
    crm, cfg = mixed_crm(count)
    done: set[str] = set()
    seen: list[int] = []

    def progress(n: int) -> None:
        assert all(f"c-{i}" in done for i in range(n))
        seen.append(n)

    integration(crm, cfg, batch_size=100).backfill(
        (conv(i) for i in range(count)),
        now=LATER,
        progress=progress,
        on_outcome=lambda o: done.add(o.conversation_id),
    )
    assert seen[-1] == count
    assert seen == sorted(seen)
    assert any(n % 100 for n in seen[:-1])  # some round carried conversations: it held back
