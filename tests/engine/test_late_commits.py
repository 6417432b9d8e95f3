"""Writes the CRM commits after the client gave up: the settle window keeps them single.

Both sandboxes run in process behind :class:`signals_crm.testing.late.LateCommits`, which makes
the first task-create request time out at the client and reach the CRM a minute later (by an
injected clock). With the default settle window the engine reads the CRM only once the write
has committed, and finds it; with the window switched off the same fault makes a duplicate,
which shows the fault is real.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from signals_crm._flows import OutcomeKind
from signals_crm.adapters.hubspot import HubSpotAdapter, HubSpotAPI
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
from signals_crm.testing.hubspot import HubSpotBackdoor, LocalHubSpot
from signals_crm.testing.late import LateCommits
from signals_crm.testing.salesforce import LocalSalesforce, SalesforceBackdoor

CLOSED = datetime(2026, 11, 20, 12, tzinfo=UTC)
NOW = CLOSED + timedelta(hours=1)
EMAIL = "late@x.test"


def first_task_create() -> Callable[[httpx.Request], bool]:
    """A match for the first task-create request only."""
    armed = [True]

    def match(request: httpx.Request) -> bool:
        body = request.read()
        is_task = request.method == "POST" and (
            b'"Task"' in body or request.url.path.endswith("/tasks/batch/create")
        )
        if armed[0] and is_task:
            armed[0] = False
            return True
        return False

    return match


@contextmanager
def crm(kind: str, late: Callable[[httpx.BaseTransport], LateCommits]) -> Iterator[Any]:
    """An adapter over the sandbox of ``kind`` behind ``late``, and the sandbox's backdoor."""
    if kind == "salesforce":
        org = LocalSalesforce()
        door: Any = SalesforceBackdoor(org)
        owner = door.seed_user(email="owner@vendor.test")
        with httpx.Client(transport=late(org.transport())) as http:
            yield (
                # Kind by kind: the task's request alone commits late (a chained request
                # commits whole: tests/engine/test_chained_writes.py).
                SalesforceAdapter(
                    http, StaticToken(org.issue_token(), org.instance_url), chain_writes=False
                ),
                door,
                owner,
            )
        return
    hub = LocalHubSpot(burst_limit=None, search_per_second=None)
    door = HubSpotBackdoor(hub)
    owner = door.seed_user(email="owner@vendor.test")
    api = HubSpotAPI(base_url="https://api.hubapi.test")
    with httpx.Client(transport=late(hub.transport())) as http:
        yield HubSpotAdapter(http, "local-hubspot-token", api=api), door, owner


def config(owner: str) -> SyncConfig:
    return SyncConfig(
        criteria=Criteria.ALL,
        synchronization_delay=timedelta(minutes=5),
        users=UserMapping((UserMapEntry(owner, signals_user_id="u1"),)),
        field_mappings=FieldMappings(
            lead=(FieldMapping("contact.last_name", "LastName"),),
            contact=(FieldMapping("contact.last_name", "lastname"),),
        ),
        placeholders={"LastName": "[not provided]", "Company": "[not provided]"},
    )


def conversation() -> Conversation:
    return Conversation(
        id="c-1",
        closed_at=CLOSED,
        lead_score=3,
        visitor=Visitor(email=EMAIL, last_name="Late"),
        participants=Participants(closer=SignalsUser(id="u1")),
        transcript="Visitor: hello",
    )


def markers(door: Any) -> list[str]:
    return [m for person in door.people_with_email(EMAIL) for m in door.task_markers(person)]


@pytest.mark.parametrize("kind", ["salesforce", "hubspot"])
def test_a_task_committed_after_the_timeout_is_found_not_sent_again(kind: str) -> None:
    """The task times out at the client and commits a minute later; the engine waits out the
    settle window, reads the CRM, finds the task: exactly one task, the sync done."""
    minute = [0.0]
    faults: list[LateCommits] = []

    def late(inner: httpx.BaseTransport) -> LateCommits:
        faults.append(
            LateCommits(
                inner, rate=1.0, delay=60, clock=lambda: minute[0], match=first_task_create()
            )
        )
        return faults[0]

    with crm(kind, late) as (adapter, door, owner):
        sync = Integration(
            adapter, config(owner), ledger=MemoryLedger(), sleep=lambda _: None, clock=lambda: NOW
        )
        sync.conversation_closed(conversation())
        first = sync.run_due(NOW).outcome("c-1")
        assert first.kind is OutcomeKind.RETRY
        assert markers(door) == []  # nothing committed yet
        minute[0] = 120.0  # the CRM commits the slow request meanwhile
        done = sync.run_due(NOW + sync.settle + timedelta(minutes=1)).outcome("c-1")
    assert faults[0].late == 1
    assert faults[0].delivered == 1
    assert done.kind is OutcomeKind.CREATED
    assert markers(door) == ["signals:c-1:transcript"]
    assert sync.ledger.get_due("c-1").state.value == "done"


@pytest.mark.parametrize("kind", ["salesforce", "hubspot"])
def test_without_a_settle_window_the_late_commit_is_a_duplicate(kind: str) -> None:
    """The control: reconciling at once finds nothing, the task is sent again, and the late
    commit then makes a second task (what the settle window exists to prevent). HubSpot's
    task is read from its contact, where no search lag applies, so it has no other delay."""
    minute = [0.0]
    faults: list[LateCommits] = []

    def late(inner: httpx.BaseTransport) -> LateCommits:
        faults.append(
            LateCommits(
                inner, rate=1.0, delay=60, clock=lambda: minute[0], match=first_task_create()
            )
        )
        return faults[0]

    with crm(kind, late) as (adapter, door, owner):
        sync = Integration(
            adapter,
            config(owner),
            ledger=MemoryLedger(),
            sleep=lambda _: None,
            clock=lambda: NOW,
            settle=timedelta(0),
        )
        sync.conversation_closed(conversation())
        sync.run_due(NOW)
        minute[0] = 120.0
        assert faults[0].deliver() == 1
    assert markers(door) == ["signals:c-1:transcript", "signals:c-1:transcript"]


def test_hubspot_finds_the_late_task_through_its_contact_while_search_lags() -> None:
    """The late HubSpot task is found once the settle window passes, by the contact's task
    associations, though the search index has not seen it yet (a lag far longer than the
    adapter's 15 s): the read does not wait for, or depend on, search."""
    minute = [0.0]
    faults: list[LateCommits] = []

    def late(inner: httpx.BaseTransport) -> LateCommits:
        faults.append(
            LateCommits(
                inner, rate=1.0, delay=60, clock=lambda: minute[0], match=first_task_create()
            )
        )
        return faults[0]

    hub = LocalHubSpot(burst_limit=None, search_per_second=None, search_lag=10**9)
    door = HubSpotBackdoor(hub)
    owner = door.seed_user(email="owner@vendor.test")
    api = HubSpotAPI(base_url="https://api.hubapi.test")
    settle = timedelta(seconds=5)  # shorter than the adapter's 15 s marker-search lag
    with httpx.Client(transport=late(hub.transport())) as http:
        adapter = HubSpotAdapter(http, "local-hubspot-token", api=api)
        sync = Integration(
            adapter,
            config(owner),
            ledger=MemoryLedger(),
            sleep=lambda _: None,
            clock=lambda: NOW,
            settle=settle,
        )
        sync.conversation_closed(conversation())
        first = sync.run_due(NOW).outcome("c-1")
        assert first.kind is OutcomeKind.RETRY
        assert first.retry_at == NOW + settle  # the settle window, not the search lag
        minute[0] = 120.0  # the CRM commits the slow request meanwhile
        done = sync.run_due(NOW + settle).outcome("c-1")
    assert faults[0].delivered == 1
    assert done.kind is OutcomeKind.CREATED
    assert markers(door) == ["signals:c-1:transcript"]
    assert not any(path.endswith("/tasks/search") for _, path in hub.requests)
