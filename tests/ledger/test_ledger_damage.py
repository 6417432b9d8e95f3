"""One damaged ledger row never stops the queue: it is read as damaged, dead-lettered with its
reason, and everything else proceeds (rules in ``signals_crm.ledger._rows``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest
from ledger_clock import T0, FakeClock

from signals_crm.core.config import FieldMapping, FieldMappings, SyncConfig
from signals_crm.core.model import Conversation, PersonKind, Visitor
from signals_crm.engine import Integration
from signals_crm.ledger import CommandRecord, CommandState, DueState, SQLiteLedger
from signals_crm.testing.memory import InMemoryCRM

DAMAGED = "damaged ledger row: "
EARLY = T0 - timedelta(hours=1)


def conv(cid: str) -> Conversation:
    """A closed conversation of a visitor with a valid email."""
    return Conversation(
        cid, closed_at=EARLY, lead_score=2, visitor=Visitor(email=f"{cid}@x.test", last_name="L")
    )


def corrupt(path: Path, sql: str, *args: object) -> None:
    """Write past the ledger, as a hand edit or a foreign writer would (CHECKs off)."""
    with closing(sqlite3.connect(path)) as raw:
        raw.execute("PRAGMA ignore_check_constraints = ON")
        raw.execute(sql, args)
        raw.commit()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """A ledger file holding good syncs g1..g3 and the damaged ones named by each test."""
    file = tmp_path / "ledger.db"
    with SQLiteLedger(file, synchronous="NORMAL") as ledger:
        ledger.schedule_many((conv(c), EARLY) for c in ("g1", "g2", "g3", "d1", "d2", "d3", "d4"))
        ledger.record(
            [
                CommandRecord("g1:person", "g1", "create_person", CommandState.SENT, T0),
                CommandRecord("d1:person", "d1", "create_person", CommandState.SENT, T0),
                CommandRecord("d2:person", "d2", "create_person", CommandState.SENT, T0),
            ]
        )
    return file


@pytest.fixture
def damaged(path: Path) -> Path:
    """d1: unknown state; d2: due time stored as text; d3: due time out of range; d4: a
    conversation that does not decode; commands d1 (unknown state) and d2 (text time)."""
    corrupt(path, "UPDATE due_syncs SET state = 'paused' WHERE conversation_id = 'd1'")
    corrupt(path, "UPDATE due_syncs SET due_at = '2026-11-29 11:00' WHERE conversation_id = 'd2'")
    corrupt(path, "UPDATE due_syncs SET due_at = ? WHERE conversation_id = 'd3'", -(10**18))
    corrupt(path, "UPDATE due_syncs SET conversation = '{\"v\": 9}' WHERE conversation_id = 'd4'")
    corrupt(path, "UPDATE commands SET state = 'sending' WHERE key = 'd1:person'")
    corrupt(path, "UPDATE commands SET updated_at = 'noon' WHERE key = 'd2:person'")
    return path


@pytest.fixture
def ledger(damaged: Path) -> Iterator[SQLiteLedger]:
    """The damaged file, opened on a fixed clock."""
    with SQLiteLedger(damaged, synchronous="NORMAL", clock=FakeClock()) as opened:
        yield opened


def test_stats_count_damaged_rows_instead_of_raising(ledger: SQLiteLedger) -> None:
    """Rows with an unknown state or an unreadable time are counted as damaged, once each."""
    stats = ledger.stats()
    assert stats.damaged == 5  # syncs d1, d2, d3; commands d1, d2 (d4's time and state read)
    assert stats.syncs[DueState.PENDING] == 4  # g1, g2, g3 and d4
    assert stats.commands[CommandState.SENT] == 1


@pytest.mark.parametrize(
    ("cid", "named"),
    [("d1", "state 'paused'"), ("d2", "due_at is str"), ("d3", "out of range"), ("d4", "decode")],
)
def test_a_damaged_sync_reads_as_dead_with_its_reason(
    ledger: SQLiteLedger, cid: str, named: str
) -> None:
    """get_due returns a damaged row as a dead sync whose last error names the problem."""
    stored = ledger.get_due(cid)
    assert stored is not None
    assert stored.state is DueState.DEAD
    assert stored.last_error is not None
    assert stored.last_error.startswith(DAMAGED)
    assert named in stored.last_error
    assert (stored.lease_owner, stored.conversation.id) == (None, cid)


def test_claims_dead_letter_damaged_rows_and_take_the_rest(ledger: SQLiteLedger) -> None:
    """A claim skips every damaged row, stores it as dead with its reason, and still fills its
    batch from the good rows behind them."""
    assert ledger.due(T0, 10) == ledger.due(T0, 10)  # reading never raises
    claimed = ledger.claim(limit=3, owner="w", lease=timedelta(minutes=5))
    assert [s.conversation_id for s in claimed] == ["g1", "g2", "g3"]
    assert ledger.claim(limit=10, owner="w2", lease=timedelta(minutes=5)) == []
    dead = {s.conversation_id: s.last_error for s in ledger.syncs_in_state(DueState.DEAD, 10)}
    assert set(dead) == {"d1", "d2", "d3", "d4"}
    assert all(error is not None and error.startswith(DAMAGED) for error in dead.values())
    assert ledger.stats().syncs[DueState.DEAD] == 1  # d4: dead now, and readable as such


def test_a_claimable_read_dead_letters_damaged_rows_as_a_claim_does(
    ledger: SQLiteLedger,
) -> None:
    """The optimistic read of run_due meets the damaged rows a claim would: it dead-letters
    them with their reason (so a run that only reads never leaves them pending unseen), leases
    nothing, and lists the good rows."""
    found = ledger.claimable(limit=10, owner="w")
    assert {s.conversation_id for s in found} == {"g1", "g2", "g3"}
    assert all(s.lease_owner is None and s.fence == 0 for s in found)
    dead = {s.conversation_id for s in ledger.syncs_in_state(DueState.DEAD, 10)}
    assert dead == {"d1", "d2", "d3", "d4"}
    assert ledger.claim_unchanged(
        {s.conversation_id: s.fence for s in found}, owner="w", lease=timedelta(minutes=5)
    )


def test_a_damaged_command_reads_as_unknown_until_rewritten(ledger: SQLiteLedger) -> None:
    """A command that cannot be read is UNKNOWN (reconcile before any resend); the next
    record of its key replaces it."""
    first = ledger.get_command("d1:person")
    second = ledger.get_command("d2:person")
    assert first is not None
    assert second is not None
    assert (first.state, second.state) == (CommandState.UNKNOWN, CommandState.UNKNOWN)
    assert first.reason is not None
    assert "state 'sending'" in first.reason
    assert second.reason is not None
    assert "updated_at is str" in second.reason
    assert [c.key for c in ledger.commands_for("d1")] == ["d1:person"]
    ledger.record(
        [CommandRecord("d1:person", "d1", "create_person", CommandState.CONFIRMED, T0, "00Q9")]
    )
    repaired = ledger.get_command("d1:person")
    assert repaired is not None
    assert (repaired.state, repaired.crm_id, repaired.reason) == (
        CommandState.CONFIRMED,
        "00Q9",
        None,
    )


def test_a_damaged_dead_letter_can_be_requeued(ledger: SQLiteLedger) -> None:
    """requeue_dead gives a dead-lettered row with a text due time a fresh, readable one."""
    ledger.claim(limit=10, owner="w", lease=timedelta(minutes=5))
    assert ledger.requeue_dead(["d2"], T0) == ["d2"]
    stored = ledger.get_due("d2")
    assert stored is not None
    assert (stored.state, stored.due_at) == (DueState.PENDING, T0)


def test_run_due_syncs_the_rest_and_dead_letters_the_damaged(damaged: Path) -> None:
    """An engine run over a ledger with damaged rows syncs every good visitor and returns its
    report; the damaged syncs are dead letters with their reason."""
    crm = InMemoryCRM(person_kind=PersonKind.LEAD)
    cfg = SyncConfig(
        synchronization_delay=timedelta(0),
        campaign_id=None,
        field_mappings=FieldMappings(lead=(FieldMapping("contact.last_name", "LastName"),)),
        placeholders={"LastName": "[none]", "Company": "[none]"},
    )
    with SQLiteLedger(damaged, synchronous="NORMAL") as ledger:
        sync = Integration(
            crm, cfg, ledger=ledger, clock=lambda: T0, sleep=lambda _: None, settle=timedelta(0)
        )
        report = sync.run_due(T0)
        assert {o.conversation_id for o in report.outcomes} == {"g1", "g2", "g3"}
        for cid in ("g1", "g2", "g3"):
            assert len(crm.people_with_email(f"{cid}@x.test")) == 1
        dead = ledger.syncs_in_state(DueState.DEAD, 10)
        assert {s.conversation_id for s in dead} == {"d1", "d2", "d3", "d4"}
        assert ledger.stats().syncs[DueState.DONE] == 3
