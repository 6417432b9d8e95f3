"""Tenancy: one store holds many integrations, and no operation of one sees another's rows."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from ledger_clock import T0, FakeClock

from signals_crm.core.config import FieldMapping, FieldMappings, SyncConfig
from signals_crm.core.model import Conversation, PersonKind, Visitor
from signals_crm.engine import Integration
from signals_crm.exceptions import ConfigurationError, LeaseLostError
from signals_crm.ledger import (
    CommandRecord,
    CommandState,
    DueState,
    FleetLedger,
    Ledger,
    MemoryLedger,
    SQLiteLedger,
)
from signals_crm.testing.memory import InMemoryCRM

S = CommandState
LEASE = timedelta(minutes=10)
EARLY = T0 - timedelta(hours=1)


def conv(cid: str, email: str = "ann@x.io") -> Conversation:
    """A closed conversation of a visitor with an email."""
    return Conversation(cid, closed_at=EARLY, lead_score=2, visitor=Visitor(email=email))


def cmd(key: str, state: CommandState, *, fence: int | None = None) -> CommandRecord:
    """A person-create command of the conversation before the ':' of ``key``."""
    crm_id = "00Q1" if state is S.CONFIRMED else None
    cid = key.split(":", maxsplit=1)[0]
    return CommandRecord(key, cid, "create_person", state, T0, crm_id=crm_id, fence=fence)


@pytest.fixture
def other(ledger: Ledger) -> FleetLedger:
    """A ledger of another integration on the same store as ``ledger``."""
    assert isinstance(ledger, FleetLedger)
    return ledger.for_integration("acme")


def test_each_ledger_names_its_integration(ledger: Ledger, other: FleetLedger) -> None:
    """A ledger is bound to "default" unless told; its sibling to the integration it names."""
    assert (ledger.integration, other.integration) == ("default", "acme")
    with pytest.raises(ConfigurationError) as info:
        other.for_integration("")
    assert info.value.paths == ("integration",)


def test_the_same_ids_never_meet(ledger: Ledger, other: FleetLedger) -> None:
    """Two integrations with the same conversation ids, keys and emails keep apart: what one
    schedules, records, links, finishes or dead-letters the other never sees."""
    ledger.schedule(conv("c1"), EARLY)
    other.schedule(conv("c1", "bo@x.io"), EARLY)
    other.schedule(conv("c2"), EARLY)
    ledger.record([cmd("c1:person", S.CONFIRMED)])
    other.record([cmd("c1:person", S.FAILED)])
    ledger.link("ann@x.io", "00Q-default", PersonKind.LEAD)
    other.link("ann@x.io", "00Q-acme", PersonKind.CONTACT)
    other.dead_letter("c2", "INVALID_EMAIL")
    ledger.complete(["c1"], "created")

    mine, theirs = ledger.get_due("c1"), other.get_due("c1")
    assert mine is not None
    assert theirs is not None
    assert (mine.state, mine.conversation.email) == (DueState.DONE, "ann@x.io")
    assert (theirs.state, theirs.conversation.email) == (DueState.PENDING, "bo@x.io")
    assert ledger.get_due("c2") is None
    assert [s.conversation_id for s in ledger.syncs_in_state(DueState.DEAD, 10)] == []
    assert [s.conversation_id for s in other.syncs_in_state(DueState.DEAD, 10)] == ["c2"]
    assert [c.state for c in ledger.commands_for("c1")] == [S.CONFIRMED]
    assert [c.state for c in other.commands_for("c1")] == [S.FAILED]
    assert [c.key for c in other.commands_in_state(S.CONFIRMED, 10)] == []
    assert ledger.links_for(["ann@x.io"])["ann@x.io"].crm_id == "00Q-default"
    assert other.links_for(["ann@x.io"])["ann@x.io"].crm_id == "00Q-acme"
    assert ledger.stats().syncs[DueState.DONE] == 1
    assert ledger.stats().syncs[DueState.PENDING] == 0
    theirs_stats = other.stats()
    assert (theirs_stats.syncs[DueState.PENDING], theirs_stats.syncs[DueState.DEAD]) == (1, 1)
    assert ledger.requeue_dead(["c2"], T0) == []
    assert other.retry_failed(["c1:person"], T0) == ["c1:person"]
    assert [c.state for c in ledger.commands_for("c1")] == [S.CONFIRMED]
    other.record([cmd("c1:person", S.SENT)])
    assert [f.conversation_id for f in other.creates_in_flight(["bo@x.io"])] == ["c1"]
    assert ledger.creates_in_flight(["bo@x.io", "ann@x.io"]) == []


def test_claims_and_fences_stay_within_an_integration(
    ledger: Ledger, other: FleetLedger, clock: FakeClock
) -> None:
    """A claim takes its own integration's syncs only; the email rule and the fences are per
    integration too (the same email leased in one does not hold back the other)."""
    ledger.schedule(conv("c1"), EARLY)
    other.schedule(conv("c1"), EARLY)
    other.schedule(conv("c9"), EARLY)  # same email as c1: held back while acme's c1 is leased
    (mine,) = ledger.claim(limit=10, owner="w", lease=LEASE)
    assert mine.conversation_id == "c1"
    theirs = other.claim(limit=1, owner="w2", lease=LEASE)
    assert [s.conversation_id for s in theirs] == ["c1"]
    assert other.claim(limit=10, owner="w3", lease=LEASE) == []
    clock.advance(LEASE)
    retaken = other.claim(limit=10, owner="w3", lease=LEASE)
    assert [s.conversation_id for s in retaken] == ["c1", "c9"]
    with pytest.raises(LeaseLostError):
        other.record([cmd("c1:person", S.SENT, fence=theirs[0].fence)])
    ledger.record([cmd("c1:person", S.SENT, fence=mine.fence)])  # default's c1 is untouched
    assert other.get_command("c1:person") is None


def test_run_reports_are_per_integration(ledger: Ledger, other: FleetLedger) -> None:
    """Each integration reads back only its own run reports."""
    ledger.record_run({"counts": {"created": 1}})
    other.record_run({"counts": {"failed": 2}})
    assert [r.summary for r in ledger.recent_runs(10)] == [{"counts": {"created": 1}}]
    assert [r.integration for r in other.recent_runs(10)] == ["acme"]


def test_the_fleet_lists_integrations_with_due_work(
    ledger: Ledger, other: FleetLedger, clock: FakeClock
) -> None:
    """integrations_due names each integration with pending syncs due, oldest first, without
    reading their rows; a finished or future-only integration is not listed."""
    assert isinstance(ledger, FleetLedger)
    zeta = ledger.for_integration("zeta")
    later = ledger.for_integration("later")
    ledger.schedule(conv("c1"), EARLY - timedelta(minutes=5))
    other.schedule_many((conv(f"a{i}"), EARLY) for i in range(50))
    zeta.schedule(conv("z1"), EARLY - timedelta(minutes=10))
    later.schedule(conv("l1"), T0 + timedelta(hours=2))
    done = ledger.for_integration("done")
    done.schedule(conv("d1"), EARLY)
    done.complete(["d1"], "created")
    expected = [
        ("zeta", EARLY - timedelta(minutes=10)),
        ("default", EARLY - timedelta(minutes=5)),
        ("acme", EARLY),
    ]
    assert ledger.integrations_due() == expected
    assert ledger.integrations_due(limit=2) == expected[:2]
    clock.advance(timedelta(hours=3))
    assert [name for name, _ in ledger.integrations_due()] == ["zeta", "default", "acme", "later"]


def test_an_integration_is_due_from_its_earliest_pending_sync(
    ledger: Ledger, other: FleetLedger
) -> None:
    """An integration's first due time is its earliest *pending* sync, whichever conversation
    it is and whatever is leased or done before it; the integrations come in that order."""
    assert isinstance(ledger, FleetLedger)
    ledger.schedule_many((conv(f"c{i}"), EARLY + timedelta(minutes=i)) for i in range(5))
    ledger.schedule(conv("z9"), EARLY - timedelta(minutes=30))  # the last id, the earliest due
    ledger.complete(["z9"], "created")  # done: no longer counts
    other.schedule_many((conv(f"a{i}"), EARLY - timedelta(minutes=i)) for i in range(3))
    (leased,) = other.claim(limit=1, owner="w", lease=LEASE)  # leased, still pending
    assert leased.conversation_id == "a2"
    assert ledger.integrations_due() == [
        ("acme", EARLY - timedelta(minutes=2)),
        ("default", EARLY),
    ]
    other.complete(["a2"], "created", fences={"a2": leased.fence})
    ledger.complete(["c0", "c1"], "created")
    assert ledger.integrations_due() == [
        ("acme", EARLY - timedelta(minutes=1)),
        ("default", EARLY + timedelta(minutes=2)),
    ]


def test_a_file_serves_integrations_to_separate_engines(tmp_path: Path) -> None:
    """Two engines on one SQLite file, bound to two integrations, each sync and explain only
    their own visitors; their stats and dead letters never mix."""
    path = tmp_path / "ledger.db"
    cfg = SyncConfig(
        synchronization_delay=timedelta(0),
        campaign_id=None,
        field_mappings=FieldMappings(lead=(FieldMapping("contact.last_name", "LastName"),)),
        placeholders={"LastName": "[none]", "Company": "[none]"},
    )
    crms = {name: InMemoryCRM(person_kind=PersonKind.LEAD) for name in ("north", "south")}
    ledgers = {name: SQLiteLedger(path, integration=name) for name in crms}
    engines = {
        name: Integration(crms[name], cfg, ledger=ledgers[name], clock=lambda: T0) for name in crms
    }
    try:
        engines["north"].conversation_closed(conv("c1", "north@x.io"))
        engines["south"].conversation_closed(conv("c1", "south@x.io"))
        engines["south"].conversation_closed(conv("c2", "south2@x.io"))
        north = engines["north"].run_due(T0)
        assert [o.conversation_id for o in north.outcomes] == ["c1"]
        assert crms["north"].people_with_email("north@x.io") != []
        assert crms["north"].people_with_email("south@x.io") == []
        assert ledgers["south"].stats().syncs[DueState.PENDING] == 2
        assert engines["south"].explain("c1", lookup=False).status.value == "due"
        assert engines["north"].explain("c1", lookup=False).status.value == "synced"
        assert engines["north"].explain("c2", lookup=False).status.value == "unknown"
    finally:
        for ledger in ledgers.values():
            ledger.close()


def test_a_memory_ledger_can_serve_integrations_too() -> None:
    """MemoryLedger(integration=...) binds like the SQLite ledger; closing the last sibling
    drops the memory."""
    first = MemoryLedger(integration="one")
    second = first.for_integration("two")
    second.schedule(conv("c1"), EARLY)
    assert first.get_due("c1") is None
    first.close()
    assert second.get_due("c1") is not None
    second.close()
