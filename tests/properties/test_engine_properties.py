"""The engine's delivery guarantees as properties: random conversations, random faults."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from signals_crm._flows import OutcomeKind, RetryPolicy
from signals_crm.core.config import (
    Criteria,
    FieldMapping,
    FieldMappings,
    SyncConfig,
    UserMapEntry,
    UserMapping,
)
from signals_crm.core.model import Conversation, PersonKind, normalize_email
from signals_crm.engine import Integration
from signals_crm.exceptions import (
    AdapterError,
    CRMServerError,
    RateLimitedError,
    TransportError,
)
from signals_crm.ledger import MemoryLedger
from signals_crm.testing import strategies as sst
from signals_crm.testing.memory import InMemoryCRM

WRITES = (
    "create_people",
    "update_people",
    "create_tasks",
    "add_to_campaign",
    "write_chains",
    "reconcile",
)
# A fault strikes before the CRM did the work, or after it (the answer is lost). Only faults
# that can really come after the work may: a dropped connection and a 5xx; a 429 or a connect
# timeout always means nothing was done.
FAULTS = st.one_of(
    st.tuples(st.sampled_from(WRITES), st.sampled_from(["dropped", "5xx"]), st.booleans()),
    st.tuples(st.sampled_from(WRITES), st.sampled_from(["timeout-before", "429"]), st.just(False)),
)


class LateCRM(InMemoryCRM):
    """The in-memory CRM whose chosen write calls commit late: the caller gets a timeout at
    once, the work is done when the test says the CRM got round to it (before the settle
    window ends, as a CRM's request time limit guarantees)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.late_calls: list[str] = []
        self.pending: list[tuple[str, tuple]] = []

    def commit_late(self) -> None:
        """Apply every write that timed out earlier."""
        pending, self.pending = self.pending, []
        faults, self._faults = self._faults, {}  # the CRM's own work: no injected fault
        try:
            for method, args in pending:
                getattr(InMemoryCRM, method)(self, *args)
        finally:
            self._faults = faults

    def _late(self, method: str, args: tuple):
        if method in self.late_calls:
            self.late_calls.remove(method)
            self.pending.append((method, args))
            raise TransportError("read timeout", maybe_sent=True)
        return getattr(InMemoryCRM, method)(self, *args)

    def create_people(self, records):
        return self._late("create_people", (records,))

    def create_tasks(self, tasks):
        return self._late("create_tasks", (tasks,))

    def add_to_campaign(self, memberships):
        return self._late("add_to_campaign", (memberships,))

    def write_chains(self, chains):
        return self._late("write_chains", (chains,))


def error_for(kind: str):
    if kind == "dropped":
        return TransportError("connection dropped", maybe_sent=True)
    if kind == "timeout-before":
        return TransportError("connect timeout", maybe_sent=False)
    if kind == "5xx":
        return CRMServerError("unavailable", status_code=503)
    return RateLimitedError("slow down", retry_after=1.0, status_code=429)


@settings(max_examples=150, deadline=None)
@given(
    conversations=st.lists(
        sst.conversations(closed=True, visitor=sst.visitors(email=sst.emails())),
        min_size=1,
        max_size=8,
        unique_by=lambda c: c.id,
    ),
    existing=st.lists(sst.person_records(kinds=(PersonKind.LEAD,)), max_size=3),
    faults=st.lists(FAULTS, max_size=6),
    late=st.lists(
        st.sampled_from(["create_people", "create_tasks", "add_to_campaign", "write_chains"]),
        max_size=3,
    ),
    poison=st.lists(st.booleans(), max_size=8),
    kind=st.sampled_from([PersonKind.LEAD, PersonKind.CONTACT]),
    chains=st.booleans(),
)
def test_faults_never_duplicate_or_lose(
    conversations, existing, faults, late, poison, kind, chains
):
    """Whatever transient faults, late commits (a write applied after the client timed out)
    and poison text (a lone surrogate in a mapped field) strike, with writes chained or kind by
    kind, once the runs settle every
    qualifying visitor has exactly one person record, one task per activity, and each created
    record one membership."""
    crm = LateCRM(person_kind=kind, chains=chains)
    crm.late_calls.extend(late)
    conversations = [
        attrs.evolve(c, visitor=attrs.evolve(c.visitor, first_name="Ana\ud800"))
        if i < len(poison) and poison[i]
        else c
        for i, c in enumerate(conversations)
    ]
    owner = crm.seed_user(email="owner@vendor.test")
    campaign = crm.seed_campaign(name="Chat")
    if kind is PersonKind.LEAD:
        for record in existing:
            if not record.is_converted and record.email:
                crm.seed_person(kind=PersonKind.LEAD, email=record.email)
    for method, fault, after in faults:
        crm.fail_next(method, error_for(fault), after=after)
    text = "contact.first_name"
    target = "FirstName" if kind is PersonKind.LEAD else "firstname"
    config = SyncConfig(
        criteria=Criteria.ALL,
        campaign_id=campaign,
        users=UserMapping((UserMapEntry(owner, signals_user_id="u1"),)),
        field_mappings=FieldMappings(
            lead=(FieldMapping(text, "FirstName", overwrite=True),),
            contact=(FieldMapping(text, target, overwrite=True),),
        ),
        placeholders={"LastName": "[not provided]", "Company": "[not provided]"},
    )
    sync = Integration(
        crm,
        config,
        ledger=MemoryLedger(),
        sleep=lambda _: None,
        random=lambda: 0.5,
        retry=RetryPolicy(max_attempts=2, reschedule_after=60),
        clock=lambda: sst.BASE_TIME,
        settle=timedelta(minutes=5),
    )
    before = {
        normalize_email(e): crm.people_with_email(e) for e in {c.email for c in conversations}
    }
    for i, conversation in enumerate(conversations):
        if i % 2:
            sync.ledger.schedule(conversation, conversation.closed_at)  # stored unrepaired
        else:
            sync.conversation_closed(conversation)
    now = sst.BASE_TIME + timedelta(days=2)
    kinds: list[OutcomeKind] = []
    raised: list[AdapterError] = []
    for step in range(20):
        crm.commit_late()  # within the CRM's time limit: before any settle window ends
        try:
            report = sync.run_due(now + timedelta(minutes=3 * step))
        except AdapterError as error:  # a read failing past its retries: the host runs again
            raised.append(error)
            continue
        kinds.extend(o.kind for o in report.outcomes)
    assert all(error.retryable for error in raised)
    assert OutcomeKind.FAILED not in kinds
    assert sync.ledger.due(now + timedelta(days=30), 100) == []
    members = crm.campaign_members(campaign)
    for email in {normalize_email(c.email) for c in conversations}:
        people = crm.people_with_email(email)
        if before[email]:
            assert sorted(people) == sorted(before[email]), (email, people)  # nothing new
        else:
            assert len(people) == 1, (email, people)  # exactly one created
        markers = [m for person in people for m in crm.task_markers(person)]
        assert len(markers) == len(set(markers))
        expected = {
            f"signals:{c.id}:{a.key}"
            for c in conversations
            if normalize_email(c.email) == email
            for a in c.activities()
        }
        assert set(markers) == expected
        joined = [p for p in people if p in members]
        assert joined == ([] if before[email] else people)


class RedeliveringLedger(MemoryLedger):
    """A ledger on which webhooks arrive *during* runs: each ``(at, deliver)`` of ``pending``
    runs right after the ledger's ``at``-th claim, claimable read or perform returns, between
    the engine's reads and its writes."""

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[tuple[int, Callable[[], object]]] = []
        self.steps = 0

    def _step(self) -> None:
        self.steps += 1
        due = [deliver for at, deliver in self.pending if at <= self.steps]
        self.pending = [(at, d) for at, d in self.pending if at > self.steps]
        for deliver in due:
            deliver()

    def claim(self, *args: Any, **kwargs: Any) -> Any:
        found = super().claim(*args, **kwargs)
        self._step()
        return found

    def claimable(self, *args: Any, **kwargs: Any) -> Any:
        found = super().claimable(*args, **kwargs)
        self._step()
        return found

    def perform(self, *args: Any, **kwargs: Any) -> Any:
        done = super().perform(*args, **kwargs)
        self._step()
        return done


@settings(max_examples=100, deadline=None)
@given(
    conversations=st.lists(
        sst.conversations(closed=True, visitor=sst.visitors(email=sst.emails())),
        min_size=1,
        max_size=6,
        unique_by=lambda c: c.id,
    ),
    redeliveries=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=5),  # which conversation
            st.sampled_from([None, 0, 1, 2, 3]),  # its new lead score
            st.integers(min_value=1, max_value=12),  # after which ledger step
        ),
        max_size=6,
    ),
    faults=st.lists(FAULTS, max_size=4),
    late=st.lists(st.sampled_from(["create_people", "create_tasks", "write_chains"]), max_size=2),
    chains=st.booleans(),
)
def test_webhooks_delivered_during_runs_are_never_lost(
    conversations, redeliveries, faults, late, chains
):
    """Webhooks delivered again with a new lead score at any moment of the runs (between a
    claim or read and the writes), among transient faults and late commits: once the runs
    settle, a visitor whose latest conversation meets the criteria has exactly one record, no
    visitor has two, and no sync is left due."""
    crm = LateCRM(person_kind=PersonKind.LEAD, chains=chains)
    crm.late_calls.extend(late)
    for method, fault, after in faults:
        crm.fail_next(method, error_for(fault), after=after)
    owner = crm.seed_user(email="owner@vendor.test")
    config = SyncConfig(
        criteria=Criteria.TWO_STARS,
        users=UserMapping((UserMapEntry(owner, signals_user_id="u1"),)),
        field_mappings=FieldMappings(lead=(FieldMapping("contact.first_name", "FirstName"),)),
        placeholders={"LastName": "[not provided]", "Company": "[not provided]"},
    )
    ledger = RedeliveringLedger()
    sync = Integration(
        crm,
        config,
        ledger=ledger,
        sleep=lambda _: None,
        random=lambda: 0.5,
        retry=RetryPolicy(max_attempts=2, reschedule_after=60),
        clock=lambda: sst.BASE_TIME,
        settle=timedelta(minutes=5),
    )
    latest = {c.id: c for c in conversations}
    for conversation in conversations:
        sync.conversation_closed(conversation)

    def deliver(changed: Conversation) -> Callable[[], object]:
        def now() -> object:
            latest[changed.id] = changed
            return sync.conversation_closed(changed)

        return now

    for index, score, at in redeliveries:
        if index < len(conversations):
            changed = attrs.evolve(conversations[index], lead_score=score)
            ledger.pending.append((at, deliver(changed)))
    start = sst.BASE_TIME + timedelta(days=2)
    raised: list[AdapterError] = []

    def run(step: int) -> None:
        crm.commit_late()  # within the CRM's time limit: before any settle window ends
        try:
            sync.run_due(start + timedelta(minutes=7 * step))
        except AdapterError as error:  # a read failing past its retries: the host runs again
            raised.append(error)

    for step in range(12):
        run(step)
    for _, after_runs in ledger.pending:  # any the runs did not reach: delivered after them
        after_runs()
    for step in range(12, 20):
        run(step)
    assert all(error.retryable for error in raised)
    assert sync.ledger.due(start + timedelta(days=30), 100) == []
    for email in {normalize_email(c.email) for c in conversations}:
        people = crm.people_with_email(email)
        assert len(people) <= 1, (email, people)
        qualifies = any(
            normalize_email(c.email) == email and (c.lead_score or 0) >= 2 for c in latest.values()
        )
        if qualifies:
            assert len(people) == 1, (email, people)
