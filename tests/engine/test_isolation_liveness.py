"""One record's failure touches only that record; one batch's failure stalls nothing else.

Each test pins one case of "isolation" and "liveness" (docs/engine.md): poison text, a whole
call the CRM refuses, a failing batch read, a failing reconcile read, an inactive owner, a
damaged ledger row, and a create that never landed next to an old converted Lead.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import httpx
import pytest

from signals_crm._flows import OutcomeKind, RetryPolicy
from signals_crm._flows import batch as batch_flows
from signals_crm.adapters.salesforce import SalesforceAdapter, StaticToken
from signals_crm.core.config import (
    Criteria,
    FieldMapping,
    FieldMappings,
    SyncConfig,
    UserMapEntry,
    UserMapping,
)
from signals_crm.core.crm import PersonWrite, ReconcileQuery, TaskByMarker, WriteResult
from signals_crm.core.model import (
    Conversation,
    Participants,
    PersonKind,
    PersonRecord,
    SignalsUser,
    Visitor,
)
from signals_crm.engine import Integration
from signals_crm.exceptions import (
    AuthenticationError,
    CRMAPIError,
    LedgerError,
    TransportError,
)
from signals_crm.ledger import MemoryLedger
from signals_crm.ledger.base import CommandRecord
from signals_crm.testing.memory import InMemoryCRM
from signals_crm.testing.salesforce import LocalSalesforce, SalesforceBackdoor

CLOSED = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
LATER = CLOSED + timedelta(hours=1)
SALLY = SignalsUser(id="u-sally", email="sally@vendor.test")


def conv(cid: str, email: str, first: str = "Lena") -> Conversation:
    return Conversation(
        id=cid,
        closed_at=CLOSED,
        lead_score=2,
        visitor=Visitor(email=email, first_name=first, last_name="Okafor"),
        participants=Participants(meeting_scheduler=SALLY),
        transcript="Visitor: hello",
    )


def config(owner: str, **changes: Any) -> SyncConfig:
    base: dict[str, Any] = {
        "criteria": Criteria.ONE_STAR,
        "synchronization_delay": timedelta(minutes=30),
        "users": UserMapping((UserMapEntry(owner, signals_user_id="u-sally"),)),
        "field_mappings": FieldMappings(
            lead=(
                FieldMapping("contact.first_name", "FirstName", overwrite=True),
                FieldMapping("contact.last_name", "LastName"),
            )
        ),
        "placeholders": {"LastName": "[not provided]", "Company": "[not provided]"},
    }
    base.update(changes)
    return SyncConfig(**base)


def engine(crm: Any, cfg: SyncConfig, **kw: Any) -> Integration:
    kw.setdefault("ledger", MemoryLedger())
    kw.setdefault("sleep", lambda _seconds: None)
    kw.setdefault("random", lambda: 0.0)
    kw.setdefault("clock", lambda: LATER)
    return Integration(crm, cfg, **kw)


def memory_crm(cls: type[InMemoryCRM] = InMemoryCRM) -> tuple[InMemoryCRM, str]:
    crm = cls(person_kind=PersonKind.LEAD)
    return crm, crm.seed_user(email="sally@vendor.test")


# ------------------------------------------------------------------------------------------------
# Isolation


def test_lone_surrogate_is_replaced_before_planning_and_batch_mates_sync() -> None:
    """A lone surrogate in a stored conversation becomes U+FFFD with a trace warning; it and
    its batch-mates are created (the text never reaches the wire invalid)."""
    crm, owner = memory_crm()
    sync = engine(crm, config(owner))
    poisoned = conv("c-1", "ana@x.test", first="Ana\ud800")
    sync.ledger.schedule(poisoned, CLOSED)  # stored before this release repaired text
    sync.conversation_closed(conv("c-2", "bo@x.test"))
    report = sync.run_due(LATER)
    assert report.count(OutcomeKind.CREATED) == 2
    (lead,) = crm.people_with_email("ana@x.test")
    assert crm.person_fields(lead)["FirstName"] == "Ana\ufffd"
    codes = [r.code for r in report.outcome("c-1").reasons]
    assert "text_repaired" in codes
    assert "text_repaired" not in [r.code for r in report.outcome("c-2").reasons]


def test_closing_a_conversation_stores_valid_text() -> None:
    """conversation_closed repairs invalid text before the ledger stores it; a pair of
    surrogates that makes a real character is joined, not replaced."""
    crm, owner = memory_crm()
    sync = engine(crm, config(owner))
    sync.conversation_closed(conv("c-1", "ana@x.test", first="A\ud83d\ude00\udc00"))
    stored = sync.ledger.get_due("c-1")
    assert stored is not None
    assert stored.conversation.visitor is not None
    assert stored.conversation.visitor.first_name == "A\U0001f600\ufffd"


class RefusingCRM(InMemoryCRM):
    """Refuses a whole create call (HTTP 400) whenever it holds a record named "Bad"."""

    def create_people(self, records: Sequence[PersonWrite]) -> list[WriteResult]:
        """Refuse the call as a whole if one record is bad, as an all-or-nothing batch does."""
        if any(r.fields.get("FirstName") == "Bad" for r in records):
            self.calls["create_people"] += 1
            raise CRMAPIError("Property values were not valid", status_code=400)
        return super().create_people(records)


def test_a_whole_call_refused_for_one_record_is_split_until_that_record_fails_alone() -> None:
    """A 400 for the whole call is split in halves: the bad record is dead-lettered with the
    CRM's reason, its batch-mates are created."""
    crm, owner = memory_crm(RefusingCRM)
    sync = engine(crm, config(owner))
    for i in range(6):
        sync.conversation_closed(conv(f"c-{i}", f"v{i}@x.test", first="Bad" if i == 4 else "Ok"))
    report = sync.run_due(LATER)
    assert report.count(OutcomeKind.CREATED) == 5
    failed = report.outcome("c-4")
    assert failed.kind is OutcomeKind.FAILED
    assert "not valid" in (failed.error or "")
    assert sync.ledger.get_due("c-4").state.value == "dead"
    assert crm.people_with_email("v4@x.test") == []


class BrokenEncoderCRM(InMemoryCRM):
    """Raises a plain ValueError (as a JSON encoder does) for a call holding a record "Bad"."""

    def create_people(self, records: Sequence[PersonWrite]) -> list[WriteResult]:
        """Fail like an encoder would, before anything is sent."""
        if any(r.fields.get("FirstName") == "Bad" for r in records):
            self.calls["create_people"] += 1
            msg = "Out of range float values are not JSON compliant"
            raise ValueError(msg)
        return super().create_people(records)


def test_an_unexpected_error_of_a_call_isolates_its_records_after_the_window() -> None:
    """A call that breaks with a non-library error may have gone out in part: its records wait
    the settle window, are reconciled, and are then sent one per call; only the bad one fails."""
    crm, owner = memory_crm(BrokenEncoderCRM)
    sync = engine(crm, config(owner), settle=timedelta(minutes=15))
    for i in range(3):
        sync.conversation_closed(conv(f"c-{i}", f"v{i}@x.test", first="Bad" if i == 1 else "Ok"))
    first = sync.run_due(LATER)
    assert first.count(OutcomeKind.RETRY) == 3
    second = sync.run_due(LATER + timedelta(minutes=15))
    assert second.count(OutcomeKind.CREATED) == 2
    assert second.outcome("c-1").kind is OutcomeKind.FAILED
    assert "JSON" in (second.outcome("c-1").error or "")
    assert [len(crm.people_with_email(f"v{i}@x.test")) for i in range(3)] == [1, 0, 1]


class DamagedLedger(MemoryLedger):
    """A ledger whose rows of one conversation cannot be read (an unknown state string)."""

    def commands_for(self, conversation_id: str) -> list[CommandRecord]:
        """Fail for the damaged conversation only."""
        if conversation_id == "c-1":
            msg = "stored command c-1:person has an unknown state 'sent?'"
            raise LedgerError(msg)
        return super().commands_for(conversation_id)


def test_a_damaged_ledger_row_dead_letters_only_its_conversation() -> None:
    """The conversation whose rows cannot be read is dead-lettered with that reason; its
    batch-mates sync."""
    crm, owner = memory_crm()
    sync = engine(crm, config(owner), ledger=DamagedLedger())
    sync.conversation_closed(conv("c-1", "one@x.test"))
    sync.conversation_closed(conv("c-2", "two@x.test"))
    report = sync.run_due(LATER)
    assert report.outcome("c-2").kind is OutcomeKind.CREATED
    damaged = report.outcome("c-1")
    assert damaged.kind is OutcomeKind.FAILED
    assert "damaged ledger row" in (damaged.error or "")
    assert sync.ledger.get_due("c-1").state.value == "dead"
    assert crm.people_with_email("one@x.test") == []


def test_an_owner_deactivated_after_preflight_is_surfaced_once_and_syncs_are_kept() -> None:
    """Every create refused for an inactive owner is one admin issue, not a dead letter each;
    once the owner is active again the syncs finish."""
    crm, owner = memory_crm()
    sync = engine(crm, config(owner))
    sync.preflight()
    user = crm._users[owner]
    crm._users[owner] = attrs.evolve(user, active=False)
    for i in range(4):
        sync.conversation_closed(conv(f"c-{i}", f"v{i}@x.test"))
    report = sync.run_due(LATER)
    assert len(report.admin_issues) == 1
    assert "inactive" in report.admin_issues[0]
    assert report.count(OutcomeKind.FAILED) == 0
    assert {sync.ledger.get_due(f"c-{i}").state.value for i in range(4)} == {"pending"}
    assert {sync.ledger.get_due(f"c-{i}").attempts for i in range(4)} == {0}
    crm._users[owner] = user
    later = sync.run_due(LATER + timedelta(hours=1))
    assert later.count(OutcomeKind.CREATED) == 4


# ------------------------------------------------------------------------------------------------
# Liveness


class FailingReadCRM(InMemoryCRM):
    """The person lookup fails for good whenever it asks about one email."""

    poisoned = "stuck@x.test"

    def find_people(
        self, emails: Sequence[str], fields: Sequence[str] = ()
    ) -> list[tuple[PersonRecord, ...]]:
        """Fail the whole read if it holds the poisoned email."""
        if self.poisoned in emails:
            self.calls["find_people"] += 1
            raise TransportError("connection reset", maybe_sent=False)
        return super().find_people(emails, fields)


def test_a_failing_batch_read_reschedules_that_batch_and_other_work_goes_on() -> None:
    """run_due returns its report; the failed batch is rescheduled with backoff, counting the
    attempt, and the other due syncs of the same run are written."""
    crm, owner = memory_crm(FailingReadCRM)
    retry = RetryPolicy(max_attempts=2, reschedule_after=60, max_reschedules=3, jitter=0.0)
    sync = engine(crm, config(owner), batch_size=1, retry=retry)
    sync.conversation_closed(conv("c-0", "stuck@x.test"))
    for i in range(1, 4):
        sync.conversation_closed(conv(f"c-{i}", f"v{i}@x.test"))
    report = sync.run_due(LATER)
    assert report.count(OutcomeKind.CREATED) == 3
    stuck = report.outcome("c-0")
    assert stuck.kind is OutcomeKind.RETRY
    assert "connection reset" in (stuck.error or "")
    due = sync.ledger.get_due("c-0")
    assert (due.attempts, due.due_at) == (1, LATER + timedelta(seconds=60))
    second = sync.run_due(LATER + timedelta(seconds=60))
    assert sync.ledger.get_due("c-0").due_at == LATER + timedelta(seconds=60 + 120)
    assert second.outcome("c-0").kind is OutcomeKind.RETRY
    last = sync.run_due(LATER + timedelta(hours=1)).outcome("c-0")
    assert last.kind is OutcomeKind.FAILED
    dead = sync.ledger.get_due("c-0")
    assert dead.state.value == "dead"
    assert "connection reset" in (dead.last_error or "")


class ReconcileFailsFor(InMemoryCRM):
    """The reconcile read fails whenever it asks about one conversation's tasks."""

    def reconcile(self, queries: Sequence[ReconcileQuery]) -> list[str | None]:
        """Fail for queries about c-0."""
        if any(isinstance(q, TaskByMarker) and ":c-0:" in f":{q.marker}" for q in queries):
            self.calls["reconcile"] += 1
            raise CRMAPIError("search failed", status_code=500, retryable=True)
        return super().reconcile(queries)


def test_a_failing_reconcile_chunk_holds_back_only_its_conversations(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The reconcile read goes out in chunks; the chunk that fails keeps its conversation
    waiting, the others settle and finish in the same run."""
    monkeypatch.setattr(batch_flows, "_RECONCILE_CHUNK", 1)
    crm, owner = memory_crm(ReconcileFailsFor)
    sync = engine(crm, config(owner), settle=timedelta(minutes=15))
    for i in range(3):
        sync.conversation_closed(conv(f"c-{i}", f"v{i}@x.test"))
    crm.fail_next("create_tasks", TransportError("read timeout", maybe_sent=True), after=True)
    assert sync.run_due(LATER).count(OutcomeKind.RETRY) == 3
    report = sync.run_due(LATER + timedelta(minutes=15))
    assert report.outcome("c-1").kind is OutcomeKind.CREATED
    assert report.outcome("c-2").kind is OutcomeKind.CREATED
    held = report.outcome("c-0")
    assert held.kind is OutcomeKind.RETRY
    assert "search failed" in (held.error or "")
    (lead,) = crm.people_with_email("v0@x.test")
    assert len(crm.task_markers(lead)) == 1  # landed once, never re-sent


class ManyRequestsCRM(InMemoryCRM):
    """A read of more than four items takes several requests, one of which always fails (a
    CRM failing a share of its requests, at its worst)."""

    def find_people(
        self, emails: Sequence[str], fields: Sequence[str] = ()
    ) -> list[tuple[PersonRecord, ...]]:
        """Fail a lookup of more than four emails (transient)."""
        if len(emails) > 4:
            self.calls["find_people"] += 1
            raise TransportError("one of the lookup's requests failed", maybe_sent=False)
        return super().find_people(emails, fields)

    def reconcile(self, queries: Sequence[ReconcileQuery]) -> list[str | None]:
        """Fail a reconcile read of more than four queries (transient)."""
        if len(queries) > 4:
            self.calls["reconcile"] += 1
            raise CRMAPIError("one of the searches failed", status_code=503, retryable=True)
        return super().reconcile(queries)


def test_a_read_of_many_requests_that_keeps_failing_is_read_in_halves() -> None:
    """A lookup or reconcile read that fails as a whole however often it is retried (found by
    benchmarks/chaos.py: a HubSpot reconcile chunk is dozens of requests) is read again in
    halves, so the batch plans and settles in the same run instead of stalling."""
    crm, owner = memory_crm(ManyRequestsCRM)
    sync = engine(crm, config(owner), settle=timedelta(minutes=15))
    for i in range(12):
        sync.conversation_closed(conv(f"c-{i}", f"v{i}@x.test"))
    crm.fail_next("create_tasks", TransportError("read timeout", maybe_sent=True), after=True)
    first = sync.run_due(LATER)
    assert first.count(OutcomeKind.RETRY) == 12  # the tasks' outcome settles later
    assert all(len(crm.people_with_email(f"v{i}@x.test")) == 1 for i in range(12))
    second = sync.run_due(LATER + timedelta(minutes=15))
    assert second.count(OutcomeKind.CREATED) == 12
    for i in range(12):
        (lead,) = crm.people_with_email(f"v{i}@x.test")
        assert crm.task_markers(lead) == [f"signals:c-{i}:transcript"]  # found, not re-sent
    assert {sync.ledger.get_due(f"c-{i}").attempts for i in range(12)} == {0}


class SizedLookupsCRM(InMemoryCRM):
    """Notes the number of emails of every person lookup it is asked."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.lookup_sizes: list[int] = []

    def find_people(
        self, emails: Sequence[str], fields: Sequence[str] = ()
    ) -> list[tuple[PersonRecord, ...]]:
        """Note the lookup's size, then answer (or fail, as queued)."""
        self.lookup_sizes.append(len(emails))
        return super().find_people(emails, fields)


def test_a_failed_lookup_is_read_again_in_pieces_of_one_request() -> None:
    """A lookup of 250 emails (three requests of 100) that fails once is read again as 100,
    100 and 50: each piece one request, so a failure costs only that request again. Halves
    (125 each, two requests apiece) would each be as likely to fail as a whole."""
    crm = SizedLookupsCRM(person_kind=PersonKind.LEAD, lookup_batch_size=100)
    owner = crm.seed_user(email="sally@vendor.test")
    sync = engine(crm, config(owner))
    for i in range(250):
        sync.conversation_closed(conv(f"c-{i}", f"v{i}@x.test"))
    crm.fail_next("find_people", TransportError("one request failed", maybe_sent=False))
    report = sync.run_due(LATER)
    assert report.count(OutcomeKind.CREATED) == 250
    assert crm.lookup_sizes == [250, 100, 100, 50]


class SizedReconcileCRM(InMemoryCRM):
    """Notes the number of queries of every reconcile read it is asked."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.reconcile_sizes: list[int] = []

    def reconcile(self, queries: Sequence[ReconcileQuery]) -> list[str | None]:
        """Note the read's size, then answer."""
        self.reconcile_sizes.append(len(queries))
        return super().reconcile(queries)


def test_settled_task_reads_go_in_chunks_of_one_lookup_request() -> None:
    """150 ambiguous task writes (a timeout: not found at once, but they might still land) are
    read back once their window has passed in chunks of the adapter's lookup size (100 and
    50), not of 50: fewer, fuller requests; then sent once more, each exactly once."""
    crm = SizedReconcileCRM(person_kind=PersonKind.LEAD, lookup_batch_size=100)
    owner = crm.seed_user(email="sally@vendor.test")
    sync = engine(crm, config(owner), settle=timedelta(minutes=15))
    for i in range(150):
        sync.conversation_closed(conv(f"c-{i}", f"v{i}@x.test"))
    crm.fail_next("create_tasks", TransportError("read timeout", maybe_sent=True))
    assert sync.run_due(LATER).count(OutcomeKind.RETRY) == 150
    crm.reconcile_sizes.clear()
    assert sync.run_due(LATER + timedelta(minutes=15)).count(OutcomeKind.CREATED) == 150
    assert crm.reconcile_sizes == [100, 50]
    (lead,) = crm.people_with_email("v7@x.test")
    assert crm.task_markers(lead) == ["signals:c-7:transcript"]  # absent, so sent once more


def test_a_failed_read_of_one_request_is_tried_again_before_its_halves() -> None:
    """A reconcile read of one chunk that fails once is tried again whole, not split: each
    half of a HubSpot task read costs as many requests as the whole (contacts, associations,
    tasks), so halves would only double them."""
    crm = SizedReconcileCRM(person_kind=PersonKind.LEAD, lookup_batch_size=100)
    owner = crm.seed_user(email="sally@vendor.test")
    sync = engine(crm, config(owner), settle=timedelta(minutes=15))
    for i in range(150):
        sync.conversation_closed(conv(f"c-{i}", f"v{i}@x.test"))
    crm.fail_next("create_tasks", TransportError("read timeout", maybe_sent=True))
    sync.run_due(LATER)
    crm.reconcile_sizes.clear()
    crm.fail_next("reconcile", CRMAPIError("one request failed", status_code=503, retryable=True))
    assert sync.run_due(LATER + timedelta(minutes=15)).count(OutcomeKind.CREATED) == 150
    assert crm.reconcile_sizes == [100, 100, 50]


class ExpiredCRM(InMemoryCRM):
    """Every lookup is refused: the credentials are bad."""

    def find_people(
        self, emails: Sequence[str], fields: Sequence[str] = ()
    ) -> list[tuple[PersonRecord, ...]]:
        """Refuse, as a revoked grant does."""
        del emails, fields
        raise AuthenticationError("invalid_grant: expired access/refresh token")


def test_authentication_failure_stops_the_run_typed() -> None:
    """Only authentication (or permission) stops a run: it is raised, and nothing is
    rescheduled or dead-lettered because of it."""
    crm, owner = memory_crm(ExpiredCRM)
    sync = engine(crm, config(owner))
    sync.conversation_closed(conv("c-1", "one@x.test"))
    with pytest.raises(AuthenticationError):
        sync.run_due(LATER)
    due = sync.ledger.get_due("c-1")
    assert (due.state.value, due.attempts) == ("pending", 0)


# ------------------------------------------------------------------------------------------------
# Item 5: a create that never landed next to an old converted Lead


class Gateway502(httpx.BaseTransport):
    """Answers the first Lead create with a 502 (the request never reached the org)."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.armed = True

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Fail the first composite create once, forward everything else."""
        body = request.read()
        # Collections or a chain (not preflight's describe of the Lead)
        creates = b'"Lead"' in body or (b"/sobjects/Lead" in body and b"/describe" not in body)
        if self.armed and request.method == "POST" and creates:
            self.armed = False
            return httpx.Response(502, text="<html>Bad Gateway</html>")
        return self.inner.handle_request(request)


def test_create_lead_policy_never_reconciles_onto_an_old_converted_lead() -> None:
    """With existing_contact="create_lead", a create that got a 502 is read by email after the
    window: the converted Lead does not count, so the new Lead is created."""
    org = LocalSalesforce()
    org.duplicate_rule = None  # no duplicate rule: only the engine can keep the create single
    door = SalesforceBackdoor(org)
    owner = door.seed_user(email="sally@vendor.test")
    email = "old@x.test"
    contact = door.seed_person(kind=PersonKind.CONTACT, email=email)
    converted = door.seed_person(
        kind=PersonKind.LEAD, email=email, is_converted=True, converted_contact_id=contact
    )
    with httpx.Client(transport=Gateway502(org.transport())) as http:
        adapter = SalesforceAdapter(http, StaticToken(org.issue_token(), org.instance_url))
        sync = engine(adapter, config(owner, existing_contact="create_lead"))
        sync.conversation_closed(conv("c-1", email))
        assert sync.run_due(LATER).outcome("c-1").kind is OutcomeKind.RETRY
        outcome = sync.run_due(LATER + sync.settle).outcome("c-1")
    assert outcome.kind is OutcomeKind.CREATED
    leads = set(door.people_with_email(email)) - {contact, converted}
    assert len(leads) == 1
    assert outcome.person_id in leads


def test_a_preflight_read_failing_past_its_retries_returns_a_report_not_an_error() -> None:
    """run_due's preflight reads (owners, schema, campaign) failing on every retry stop that
    run with a report saying why (``stopped``), nothing claimed: the sync stays due with no
    attempt counted, and the next run preflights again and syncs it."""
    crm = InMemoryCRM(person_kind=PersonKind.LEAD)
    owner = crm.seed_user(email="sally@vendor.test")
    sync = Integration(
        crm,
        SyncConfig(
            criteria=Criteria.ONE_STAR,
            synchronization_delay=timedelta(minutes=30),
            users=UserMapping((UserMapEntry(owner, signals_user_id="u-sally"),)),
            field_mappings=FieldMappings(lead=(FieldMapping("contact.first_name", "FirstName"),)),
            placeholders={"LastName": "[not provided]", "Company": "[not provided]"},
        ),
        ledger=MemoryLedger(),
        sleep=lambda _seconds: None,
        random=lambda: 0.5,
        clock=lambda: LATER,
        retry=RetryPolicy(max_attempts=2),
    )
    sync.conversation_closed(conv("c-1", "lena@brightfield.test"))
    for _ in range(2):
        crm.fail_next("list_users", TransportError("connection dropped"))
    report = sync.run_due(LATER)
    assert report.outcomes == ()
    assert report.stopped is not None
    assert "preflight failed" in report.stopped
    assert "connection dropped" in report.stopped
    assert "stopped before syncing" in report.as_text()
    assert report.as_dict()["stopped"] == report.stopped
    due = sync.ledger.get_due("c-1")
    assert due is not None
    assert due.state.value == "pending"
    assert due.attempts == 0
    assert due.lease_owner is None
    again = sync.run_due(LATER)
    assert again.stopped is None
    assert again.outcome("c-1").kind is OutcomeKind.CREATED
    assert len(crm.people_with_email("lena@brightfield.test")) == 1


def test_an_authentication_failure_in_preflight_still_stops_the_run() -> None:
    """Bad credentials are not a transient failure: they raise, typed, from run_due."""
    crm = InMemoryCRM(person_kind=PersonKind.LEAD)
    owner = crm.seed_user(email="sally@vendor.test")
    sync = Integration(
        crm,
        SyncConfig(
            criteria=Criteria.ONE_STAR,
            users=UserMapping((UserMapEntry(owner, signals_user_id="u-sally"),)),
            placeholders={"LastName": "[not provided]", "Company": "[not provided]"},
        ),
        ledger=MemoryLedger(),
        sleep=lambda _seconds: None,
        clock=lambda: LATER,
    )
    sync.conversation_closed(conv("c-1", "lena@brightfield.test"))
    crm.fail_next("list_users", AuthenticationError("invalid_grant"))
    with pytest.raises(AuthenticationError):
        sync.run_due(LATER)
    due = sync.ledger.get_due("c-1")
    assert due is not None
    assert due.state.value == "pending"
