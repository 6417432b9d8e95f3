"""What the engine costs its ledger, counted on a SQLite file: commits per run, statements per
visitor of a backfill, and the durability the batching keeps (SENT committed before its
request goes out). Counts are deterministic: these are not timed tests."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from signals_crm.core.config import (
    Criteria,
    FieldMapping,
    FieldMappings,
    SyncConfig,
    UserMapEntry,
    UserMapping,
)
from signals_crm.core.model import (
    Conversation,
    Meeting,
    Participants,
    PersonKind,
    SignalsUser,
    Visitor,
)
from signals_crm.engine import Integration
from signals_crm.ledger import SQLiteLedger
from signals_crm.reports import OutcomeKind
from signals_crm.testing.memory import InMemoryCRM

CLOSED = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
LATER = CLOSED + timedelta(hours=1)
SALLY = SignalsUser(id="u-sally", email="sally@vendor.test")
WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


class Commits:
    """Writing commits and statements on a ledger's connection (``set_trace_callback``)."""

    def __init__(self, ledger: SQLiteLedger) -> None:
        conn = ledger._shared.conn  # counting what it does
        assert conn is not None
        self.conn = conn
        self.writing = 0
        self.commits = 0
        self.statements: list[str] = []
        self._wrote = False
        conn.set_trace_callback(self._trace)

    def _trace(self, statement: str) -> None:
        self.statements.append(statement)
        head = statement.lstrip().split(None, 1)[0].upper()
        if head in WRITES:
            self._wrote = True
        elif head == "COMMIT":
            self.commits += 1
            self.writing += int(self._wrote)
            self._wrote = False


def conv(cid: str, email: str) -> Conversation:
    return Conversation(
        id=cid,
        closed_at=CLOSED,
        lead_score=2,
        visitor=Visitor(email=email, first_name="Lena", last_name="Okafor"),
        participants=Participants(meeting_scheduler=SALLY),
        transcript="Visitor: hello",
        meeting=Meeting(id="m1", name="Demo"),
    )


@pytest.fixture
def crm() -> InMemoryCRM:
    crm = InMemoryCRM(person_kind=PersonKind.LEAD)
    crm.seed_user(email="sally@vendor.test")
    return crm


def engine(crm: InMemoryCRM, path: Path, **kw: Any) -> Integration:
    users = crm.list_users()
    config = SyncConfig(
        criteria=Criteria.ONE_STAR,
        campaign_id=crm.seed_campaign(name="Chat"),
        users=UserMapping((UserMapEntry(users[0].id, signals_user_id="u-sally"),)),
        field_mappings=FieldMappings(
            lead=(FieldMapping("contact.first_name", "FirstName", overwrite=True),)
        ),
        placeholders={"LastName": "[not provided]", "Company": "[not provided]"},
    )
    sync = Integration(crm, config, ledger=SQLiteLedger(path), clock=lambda: LATER, **kw)
    sync.preflight()
    return sync


@pytest.fixture
def sync(crm: InMemoryCRM, tmp_path: Path) -> Iterator[Integration]:
    engine_ = engine(crm, tmp_path / "ledger.db")
    yield engine_
    engine_.ledger.close()


def test_a_new_visitors_run_makes_three_writing_commits(sync: Integration) -> None:
    """A new Lead with two Tasks and a campaign membership, written kind by kind:
    conversation_closed commits once; run_due three times: the claim with the create's SENT,
    the create's outcome with every dependent write's SENT, and the rest (outcomes, link,
    release, completion) together. No commit writes nothing (no empty final claim)."""
    assert isinstance(sync.ledger, SQLiteLedger)
    counter = Commits(sync.ledger)
    sync.conversation_closed(conv("c-1", "lena@brightfield.test"))
    assert counter.writing == 1
    report = sync.run_due(LATER)
    assert report.outcome("c-1").kind is OutcomeKind.CREATED
    assert counter.writing == 1 + 3
    assert counter.commits == counter.writing


def test_a_chained_new_visitors_sync_makes_three_commits_in_all(tmp_path: Path) -> None:
    """The same visitor on a CRM that chains writes (one request for the Lead, its Tasks and
    its campaign membership): conversation_closed, then the claim with every SENT, then the
    rest: three commits in all, and each write was SENT before its request."""
    crm = InMemoryCRM(person_kind=PersonKind.LEAD, chains=True)
    crm.seed_user(email="sally@vendor.test")
    sync = engine(crm, tmp_path / "ledger.db")
    assert isinstance(sync.ledger, SQLiteLedger)
    try:
        counter = Commits(sync.ledger)
        sync.conversation_closed(conv("c-1", "lena@brightfield.test"))
        report = sync.run_due(LATER)
        assert report.outcome("c-1").kind is OutcomeKind.CREATED
        assert (counter.commits, counter.writing) == (3, 3)
        assert crm.calls["write_chains"] == 1
        stored = sync.ledger.get_due("c-1")
        assert stored is not None
        assert (stored.state.value, stored.fence, stored.lease_owner) == ("done", 1, None)
        records = sync.ledger.commands_for("c-1")
        assert {r.state.value for r in records} == {"confirmed"}
        assert {r.fence for r in records} == {1}
    finally:
        sync.ledger.close()


def test_an_existing_leads_run_makes_two_writing_commits(
    crm: InMemoryCRM, sync: Integration
) -> None:
    """An existing Lead (an update and two Tasks, all independent of each other): run_due
    commits twice: the claim with every write's SENT, and the rest together."""
    assert isinstance(sync.ledger, SQLiteLedger)
    crm.seed_person(
        kind=PersonKind.LEAD, email="lena@brightfield.test", fields={"FirstName": "Old"}
    )
    counter = Commits(sync.ledger)
    sync.conversation_closed(conv("c-1", "lena@brightfield.test"))
    report = sync.run_due(LATER)
    assert report.outcome("c-1").kind is OutcomeKind.UPDATED
    assert counter.writing == 1 + 2
    assert counter.commits == counter.writing


def test_a_backfill_reads_the_commands_once_per_batch(sync: Integration) -> None:
    """A backfill asks the ledger for its commands once per batch (not once per visitor) and
    spends well under two statements per visitor."""
    assert isinstance(sync.ledger, SQLiteLedger)
    sync.batch_size = 50
    counter = Commits(sync.ledger)
    visitors = [conv(f"c-{i}", f"v{i}@x.test") for i in range(200)]
    report = sync.backfill(visitors, now=LATER)
    assert report.counts == {"created": 200}
    reads = [s for s in counter.statements if "FROM commands" in s and "conversation_id IN" in s]
    assert len(reads) == 200 // 50
    assert len(counter.statements) / 200 <= 2


class Checking(InMemoryCRM):
    """An in-memory CRM that, before every write, reads the ledger file through a second
    connection: each command about to go out must already be committed SENT."""

    path: Path
    seen: list[tuple[str, str]]

    def _committed(self, prefix: str) -> None:
        with contextlib.closing(sqlite3.connect(self.path)) as conn:
            rows = conn.execute(
                "SELECT key, state FROM commands WHERE key LIKE ?", (f"%{prefix}%",)
            ).fetchall()
        assert rows
        self.seen.extend(rows)
        assert {state for _, state in rows} == {"sent"}

    def create_people(self, people: Any) -> Any:
        self._committed(":person")
        return super().create_people(people)

    def create_tasks(self, tasks: Any) -> Any:
        self._committed(":task:")
        return super().create_tasks(tasks)

    def add_to_campaign(self, members: Any) -> Any:
        self._committed(":campaign")
        return super().add_to_campaign(members)


def test_every_write_is_committed_sent_before_its_request(tmp_path: Path) -> None:
    """Batching keeps durability: when the CRM receives a write, another process reading the
    ledger file already sees each of its commands SENT (so a kill at that instant is
    reconciled, never blindly re-sent)."""
    crm = Checking(person_kind=PersonKind.LEAD)
    crm.path = tmp_path / "ledger.db"
    crm.seen = []
    crm.seed_user(email="sally@vendor.test")
    sync = engine(crm, crm.path)
    sync.conversation_closed(conv("c-1", "lena@brightfield.test"))
    assert sync.run_due(LATER).outcome("c-1").kind is OutcomeKind.CREATED
    assert {key for key, _ in crm.seen} == {
        "c-1:person",
        "c-1:task:transcript",
        "c-1:task:meeting:m1",
        "c-1:campaign",
    }
    assert isinstance(sync.ledger, SQLiteLedger)
    sync.ledger.close()
