"""Late and replayed writes with Salesforce upserts by the sync key: never a second record.

The local Salesforce has the admin's ``Signals_Sync_Key__c`` on Lead and Task and runs behind
:class:`signals_crm.testing.late.LateCommits` (writes that commit after the client timed out,
by an injected clock). Each control runs the same faults without the sync key and shows the
duplicate that the upserts prevent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signals_crm._flows import OutcomeKind
from signals_crm.adapters.salesforce import SalesforceAdapter, StaticToken
from signals_crm.core.config import (
    Criteria,
    FieldMapping,
    FieldMappings,
    SyncConfig,
    UserMapEntry,
    UserMapping,
)
from signals_crm.core.model import Conversation, Participants, SignalsUser, Visitor
from signals_crm.engine import Integration
from signals_crm.ledger import MemoryLedger
from signals_crm.testing.late import LateCommits
from signals_crm.testing.salesforce import FieldDef, LocalSalesforce, SalesforceBackdoor

KEY = "Signals_Sync_Key__c"
CLOSED = datetime(2026, 11, 20, 12, tzinfo=UTC)
NOW = CLOSED + timedelta(hours=1)


def _writes_to(object_name: str, *, times: int = 1) -> Callable[[httpx.Request], bool]:
    """A match for the first ``times`` write requests of ``object_name`` records."""
    left = [times]

    def match(request: httpx.Request) -> bool:
        if request.method not in ("POST", "PATCH") or left[0] <= 0:
            return False
        body = request.read()
        if f'"{object_name}"'.encode() in body or request.url.path.endswith(
            f"/{object_name}/{KEY}"
        ):
            left[0] -= 1
            return True
        return False

    return match


@contextmanager
def crm(
    *, keyed: bool, match: Callable[[httpx.Request], bool], delay: float, clock: list[float]
) -> Iterator[tuple[SalesforceAdapter, SalesforceBackdoor, str, LateCommits]]:
    fields = (f"Lead.{KEY}", f"Task.{KEY}") if keyed else ()
    org = LocalSalesforce(external_id_fields=fields, standard_rules=False)
    door = SalesforceBackdoor(org)
    owner = door.seed_user(email="owner@vendor.test")
    late = LateCommits(org.transport(), rate=1.0, delay=delay, clock=lambda: clock[0], match=match)
    with httpx.Client(transport=late) as http:
        token = StaticToken(org.issue_token(), org.instance_url)
        # Kind by kind: these scenarios make one kind's request commit late (a chained
        # request commits whole: tests/engine/test_chained_writes.py).
        adapter = SalesforceAdapter(
            http, token, sync_key_field=KEY if keyed else None, chain_writes=False
        )
        yield adapter, door, owner, late


def config(owner: str) -> SyncConfig:
    return SyncConfig(
        criteria=Criteria.ALL,
        synchronization_delay=timedelta(minutes=5),
        users=UserMapping((UserMapEntry(owner, signals_user_id="u1"),)),
        field_mappings=FieldMappings(lead=(FieldMapping("contact.last_name", "LastName"),)),
        placeholders={"LastName": "[not provided]", "Company": "[not provided]"},
    )


def conversation(cid: str = "c-1", email: str = "late@x.test") -> Conversation:
    return Conversation(
        id=cid,
        closed_at=CLOSED,
        lead_score=3,
        visitor=Visitor(email=email, last_name="Late"),
        participants=Participants(closer=SignalsUser(id="u1")),
        transcript="Visitor: hello",
    )


def _integration(adapter: SalesforceAdapter, owner: str, **options: object) -> Integration:
    return Integration(
        adapter,
        config(owner),
        ledger=MemoryLedger(),
        sleep=lambda _: None,
        clock=lambda: NOW,
        **options,  # type: ignore[arg-type]
    )


def _tasks(door: SalesforceBackdoor, email: str = "late@x.test") -> list[str]:
    return [m for p in door.people_with_email(email) for m in door.task_markers(p)]


@pytest.mark.parametrize("keyed", [True, False])
def test_a_task_committed_late_is_sent_again_at_once_and_stays_single(keyed: bool) -> None:
    """No settle window at all: the task times out, is sent again at once, and the late
    request commits afterwards. With the sync key the late upsert updates the task the resend
    made (one task, the sync done in the first run); without it, two tasks (the control)."""
    clock = [0.0]
    with crm(keyed=keyed, match=_writes_to("Task"), delay=60, clock=clock) as (
        adapter,
        door,
        owner,
        late,
    ):
        sync = _integration(adapter, owner, settle=timedelta(0))
        sync.conversation_closed(conversation())
        outcome = sync.run_due(NOW).outcome("c-1")
        clock[0] = 120.0
        assert late.deliver() == 1
    assert late.late == 1
    expected = ["signals:c-1:transcript"] * (1 if keyed else 2)
    assert _tasks(door) == expected
    if keyed:
        assert outcome.kind is OutcomeKind.CREATED


def test_an_upserted_task_does_not_wait_for_the_settle_window() -> None:
    """With the default settle window a timed-out task upsert is still sent again in the same
    run (an upsert by its key cannot duplicate), so the sync finishes at once."""
    clock = [0.0]
    with crm(keyed=True, match=_writes_to("Task"), delay=60, clock=clock) as (
        adapter,
        door,
        owner,
        late,
    ):
        sync = _integration(adapter, owner)
        assert sync.settle > timedelta(0)
        sync.conversation_closed(conversation())
        assert sync.run_due(NOW).outcome("c-1").kind is OutcomeKind.CREATED
        clock[0] = 120.0
        late.deliver(everything=True)
    assert _tasks(door) == ["signals:c-1:transcript"]
    assert sync.ledger.get_due("c-1").state.value == "done"


@pytest.mark.parametrize("keyed", [True, False])
def test_a_lead_committed_after_the_settle_window_stays_single(keyed: bool) -> None:
    """The Lead create commits only after the settle window has passed: the reconcile read
    finds nothing and the Lead is sent again. With the sync key the resend and the late
    request are one upsert key, so one Lead; without it, two Leads (the control)."""
    clock = [0.0]
    with crm(keyed=keyed, match=_writes_to("Lead"), delay=3600, clock=clock) as (
        adapter,
        door,
        owner,
        late,
    ):
        sync = _integration(adapter, owner)
        sync.conversation_closed(conversation())
        assert sync.run_due(NOW).outcome("c-1").kind is OutcomeKind.RETRY
        later = NOW + sync.settle + timedelta(minutes=1)
        sync.run_due(later)
        clock[0] = 7200.0  # only now does Salesforce commit the first request
        assert late.deliver() == 1
    leads = door.people_with_email("late@x.test")
    assert len(leads) == (1 if keyed else 2)
    if keyed:
        assert _tasks(door) == ["signals:c-1:transcript"]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    late_writes=st.lists(st.sampled_from(["Lead", "Task"]), min_size=1, max_size=4),
    delays=st.lists(st.sampled_from([0.0, 30.0, 600.0, 5000.0]), min_size=4, max_size=4),
    settle_minutes=st.sampled_from([0, 1, 15]),
)
def test_late_commits_never_duplicate_with_upserts(
    late_writes: list[str], delays: list[float], settle_minutes: int
) -> None:
    """Any mix of late Lead and Task writes, committing at any time, under any settle window,
    with runs in between: one Lead per visitor and one Task per activity."""
    clock = [0.0]
    counts = {name: late_writes.count(name) for name in ("Lead", "Task")}
    lead_match, task_match = (
        _writes_to("Lead", times=counts["Lead"]),
        _writes_to("Task", times=counts["Task"]),
    )

    def match(request: httpx.Request) -> bool:
        return lead_match(request) or task_match(request)

    with crm(keyed=True, match=match, delay=delays[0] + 1, clock=clock) as (
        adapter,
        door,
        owner,
        late,
    ):
        sync = _integration(adapter, owner, settle=timedelta(minutes=settle_minutes))
        for n in range(3):
            sync.conversation_closed(conversation(f"c-{n}", f"v{n}@x.test"))
        when = NOW
        for step, delay in enumerate(delays):
            sync.run_due(when)
            clock[0] += delay
            late.deliver()
            when += timedelta(minutes=20 * (step + 1))
        late.deliver(everything=True)
        sync.run_due(when + timedelta(hours=2))
    for n in range(3):
        email = f"v{n}@x.test"
        assert len(door.people_with_email(email)) == 1
        assert _tasks(door, email) == [f"signals:c-{n}:transcript"]


def _problems(org: LocalSalesforce) -> list[str]:
    owner = SalesforceBackdoor(org).seed_user(email="owner@vendor.test")
    with httpx.Client(transport=org.transport()) as http:
        adapter = SalesforceAdapter(
            http, StaticToken(org.issue_token(), org.instance_url), sync_key_field=KEY
        )
        problems = _integration(adapter, owner).preflight()
    return [f"{p.path}: {p.message}" for p in problems if p.path == "sync_key_field"]


def test_preflight_accepts_the_field_on_lead_and_task() -> None:
    """Both objects have the field, External ID and Unique: no problem."""
    assert _problems(LocalSalesforce(external_id_fields=(f"Lead.{KEY}", f"Task.{KEY}"))) == []


def test_preflight_names_a_missing_field_per_object() -> None:
    """The field named but missing (here on Task) is a clear problem naming the object."""
    (problem,) = _problems(LocalSalesforce(external_id_fields=(f"Lead.{KEY}",)))
    assert problem.startswith("sync_key_field: Task has no such field")
    assert "External ID" in problem


def test_preflight_names_a_field_that_is_not_external_id_or_unique() -> None:
    """A field without the External ID box, or without Unique, is a problem: a replay could
    then make a second record."""
    org = LocalSalesforce()
    org.add_field("Lead", FieldDef(KEY, "string", 255, custom=True, unique=True))
    org.add_field("Task", FieldDef(KEY, "string", 255, custom=True, external_id=True))
    advice = (
        f"{KEY} must be a custom text field marked External ID and Unique on it (see "
        "'Setting up the external ID field' in the CRM's docs)"
    )
    assert _problems(org) == [
        f"sync_key_field: Lead has it, but not marked External ID: {advice}",
        f"sync_key_field: Task has it, but not marked Unique: {advice}",
    ]
