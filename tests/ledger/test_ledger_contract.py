"""The ledger contract: the same behaviour from every ledger (fixtures in ``conftest.py``)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from ledger_clock import FakeClock

from signals_crm.core.model import Conversation, PersonKind, Visitor
from signals_crm.exceptions import ConfigurationError, InvalidTransitionError, LedgerError
from signals_crm.ledger import (
    CommandRecord,
    CommandState,
    DueState,
    DueSync,
    Ledger,
    Operation,
    PersonLink,
)

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
S = CommandState


def conv(cid: str, email: str | None = None, *, score: int | None = 2) -> Conversation:
    """A closed conversation with an optional visitor email."""
    return Conversation(
        cid,
        closed_at=T0 - timedelta(hours=1),
        lead_score=score,
        visitor=Visitor(email=email) if email else None,
    )


def cmd(
    key: str,
    state: CommandState,
    *,
    at: datetime = T0,
    crm_id: str | None = None,
    conversation_id: str | None = None,
    kind: str = "create_person",
    reason: str | None = None,
    attempts: int = 0,
) -> CommandRecord:
    """A command record for key ``conv:rest`` (the conversation id is the part before ':')."""
    if state is S.CONFIRMED and crm_id is None:
        crm_id = "00Q1"
    return CommandRecord(
        key=key,
        conversation_id=conversation_id or key.split(":", maxsplit=1)[0],
        kind=kind,
        state=state,
        updated_at=at,
        crm_id=crm_id,
        reason=reason,
        attempts=attempts,
    )


# ------------------------------------------------------------------------------------------------
# Due syncs


class TestSchedule:
    def test_new_conversation_is_pending(self, ledger: Ledger) -> None:
        """Scheduling an unknown conversation stores a pending sync with zero attempts."""
        stored = ledger.schedule(conv("c1", "a@x.io"), T0)
        assert stored == DueSync("c1", T0, conv("c1", "a@x.io"))
        assert ledger.get_due("c1") == stored
        assert ledger.get_due("nope") is None

    def test_redelivery_replaces_a_pending_sync(self, ledger: Ledger) -> None:
        """Re-scheduling a pending sync replaces conversation and due time but keeps attempts."""
        ledger.schedule(conv("c1", "old@x.io"), T0)
        ledger.reschedule("c1", T0 + timedelta(minutes=5), "503 busy")
        stored = ledger.schedule(conv("c1", "new@x.io"), T0 + timedelta(hours=1))
        assert stored.conversation.email == "new@x.io"
        assert stored.due_at == T0 + timedelta(hours=1)
        assert (stored.attempts, stored.last_error) == (1, "503 busy")
        assert ledger.get_due("c1") == stored
        assert ledger.stats().syncs[DueState.PENDING] == 1

    @pytest.mark.parametrize("finish", ["complete", "dead_letter"])
    def test_redelivery_leaves_a_finished_sync_alone(self, ledger: Ledger, finish: Any) -> None:
        """A done or dead sync is not replayed or changed by a re-delivered conversation."""
        ledger.schedule(conv("c1", "old@x.io"), T0)
        if finish == "complete":
            ledger.complete(["c1"], "created")
        else:
            ledger.dead_letter("c1", "INVALID_EMAIL_ADDRESS")
        before = ledger.get_due("c1")
        assert before is not None
        assert ledger.schedule(conv("c1", "new@x.io"), T0 - timedelta(days=1)) == before
        assert ledger.get_due("c1") == before
        assert ledger.due(T0 + timedelta(days=1), 10) == []

    def test_schedule_many_never_duplicates(self, ledger: Ledger) -> None:
        """Many entries, some for the same id, give one sync per id; the last entry wins."""
        results = ledger.schedule_many(
            [
                (conv("c1", "a@x.io"), T0),
                (conv("c2"), T0),
                (conv("c1", "b@x.io"), T0 + timedelta(seconds=1)),
            ]
        )
        assert [r.conversation_id for r in results] == ["c1", "c2", "c1"]
        assert results[2].conversation.email == "b@x.io"
        assert ledger.stats().syncs[DueState.PENDING] == 2
        stored = ledger.get_due("c1")
        assert stored is not None
        assert stored.conversation.email == "b@x.io"
        assert stored.due_at == T0 + timedelta(seconds=1)
        assert ledger.schedule_many([]) == []

    def test_times_come_back_in_utc_as_the_same_instant(self, ledger: Ledger) -> None:
        """A due time given in another zone is stored and returned as the same instant in UTC."""
        plus2 = timezone(timedelta(hours=2))
        stored = ledger.schedule(conv("c1"), datetime(2026, 11, 29, 14, 0, tzinfo=plus2))
        assert stored.due_at == T0
        assert stored.due_at.utcoffset() == timedelta(0)
        fetched = ledger.get_due("c1")
        assert fetched is not None
        assert fetched.due_at.utcoffset() == timedelta(0)

    def test_unstorable_conversations_are_refused(self, ledger: Ledger) -> None:
        """A conversation holding a non-FieldValue raises LedgerError and nothing is stored."""
        bad = Conversation("c2", closed_at=T0, visitor=Visitor(extra={"n": 1}))
        assert bad.visitor is not None
        bad.visitor.extra["n"] = Decimal(1)  # type: ignore[index]
        with pytest.raises(LedgerError, match="extra"):
            ledger.schedule_many([(conv("c1"), T0), (bad, T0)])
        assert ledger.get_due("c1") is None
        assert ledger.get_due("c2") is None

    def test_naive_times_are_refused(self, ledger: Ledger) -> None:
        """Naive due times and ``now`` raise ConfigurationError; nothing is stored."""
        naive = datetime(2026, 1, 1)  # noqa: DTZ001  # the point of the test
        with pytest.raises(ConfigurationError, match="due_at"):
            ledger.schedule(conv("c1"), naive)
        with pytest.raises(ConfigurationError, match="now"):
            ledger.due(naive, 10)
        assert ledger.get_due("c1") is None


class TestDue:
    def test_order_is_due_time_then_id_and_limit_bounds_it(self, ledger: Ledger) -> None:
        """due() lists pending syncs due at now by (due_at, id), at most ``limit``."""
        ledger.schedule_many(
            [
                (conv("b"), T0),
                (conv("a"), T0),
                (conv("early"), T0 - timedelta(minutes=1)),
                (conv("later"), T0 + timedelta(seconds=1)),
                (conv("c"), T0),
            ]
        )
        assert [s.conversation_id for s in ledger.due(T0, 10)] == ["early", "a", "b", "c"]
        assert [s.conversation_id for s in ledger.due(T0, 2)] == ["early", "a"]
        assert ledger.due(T0, 0) == []
        assert [s.conversation_id for s in ledger.due(T0 + timedelta(seconds=1), 10)][-1] == "later"

    def test_due_is_inclusive_and_excludes_finished(self, ledger: Ledger) -> None:
        """A sync due exactly at now is listed; done and dead ones never are."""
        ledger.schedule_many([(conv("p"), T0), (conv("d"), T0), (conv("x"), T0)])
        ledger.complete(["d"], "updated")
        ledger.dead_letter("x", "bad field")
        assert [s.conversation_id for s in ledger.due(T0, 10)] == ["p"]
        assert ledger.due(T0 - timedelta(microseconds=1), 10) == []

    def test_streaming_by_limit_visits_everything_once(self, ledger: Ledger) -> None:
        """Completing each page and asking again walks every due sync exactly once."""
        ledger.schedule_many((conv(f"c{i:03}"), T0 + timedelta(seconds=i % 7)) for i in range(50))
        seen: list[str] = []
        while page := ledger.due(T0 + timedelta(minutes=1), 8):
            seen.extend(s.conversation_id for s in page)
            ledger.complete([s.conversation_id for s in page], "created")
        assert sorted(seen) == [f"c{i:03}" for i in range(50)]
        assert len(seen) == len(set(seen))

    @pytest.mark.parametrize("limit", [-1, 1.5, True])
    def test_bad_limit_is_refused(self, ledger: Ledger, limit: Any) -> None:
        """A negative or non-integer limit raises ConfigurationError."""
        with pytest.raises(ConfigurationError, match="limit"):
            ledger.due(T0, limit)


class TestFinishing:
    def test_complete_marks_pending_and_dead_done(self, ledger: Ledger) -> None:
        """complete() marks pending and dead syncs done with the outcome; returns how many."""
        ledger.schedule_many([(conv("a"), T0), (conv("b"), T0), (conv("c"), T0)])
        ledger.dead_letter("b", "bad")
        assert ledger.complete(["a", "b", "unknown", "a"], "created") == 2
        assert ledger.complete(["a"], "again") == 0
        a = ledger.get_due("a")
        assert a is not None
        assert (a.state, a.outcome) == (DueState.DONE, "created")
        assert a.state == "done"
        assert ledger.stats().syncs == {DueState.PENDING: 1, DueState.DONE: 2, DueState.DEAD: 0}

    def test_reschedule_counts_the_attempt(self, ledger: Ledger) -> None:
        """reschedule() moves the due time and records the attempt and its error."""
        ledger.schedule(conv("a"), T0)
        later = T0 + timedelta(minutes=2)
        stored = ledger.reschedule("a", later, "UNABLE_TO_LOCK_ROW")
        assert stored is not None
        assert (stored.due_at, stored.attempts, stored.last_error) == (
            later,
            1,
            "UNABLE_TO_LOCK_ROW",
        )
        assert ledger.get_due("a") == stored
        assert ledger.due(T0, 10) == []
        assert [s.conversation_id for s in ledger.due(later, 10)] == ["a"]

    def test_reschedule_and_dead_letter_leave_finished_syncs(self, ledger: Ledger) -> None:
        """On done syncs both change nothing and return what is stored; unknown ids give None."""
        ledger.schedule(conv("a"), T0)
        ledger.complete(["a"], "created")
        done = ledger.get_due("a")
        assert ledger.reschedule("a", T0 + timedelta(hours=1), "late") == done
        assert ledger.dead_letter("a", "late") == done
        assert ledger.reschedule("zz", T0, "x") is None
        assert ledger.dead_letter("zz", "x") is None

    def test_dead_letter_keeps_the_reason(self, ledger: Ledger) -> None:
        """A dead-lettered sync keeps the CRM's reason and is listed among dead syncs."""
        ledger.schedule_many([(conv("a"), T0), (conv("b"), T0 - timedelta(hours=1))])
        ledger.reschedule("a", T0, "timeout")
        dead = ledger.dead_letter("a", "FIELD_INTEGRITY_EXCEPTION: Email")
        ledger.dead_letter("b", "INVALID_EMAIL_ADDRESS")
        assert dead is not None
        assert (dead.state, dead.attempts) == (DueState.DEAD, 2)
        assert dead.last_error == "FIELD_INTEGRITY_EXCEPTION: Email"
        listed = ledger.syncs_in_state(DueState.DEAD, 10)
        assert [s.conversation_id for s in listed] == ["b", "a"]
        assert ledger.syncs_in_state(DueState.DEAD, 1) == listed[:1]
        assert ledger.syncs_in_state(DueState.PENDING, 10) == []


class TestLeases:
    def test_two_owners_never_share_a_sync(self, ledger: Ledger) -> None:
        """While leases run, a second owner claims only what the first did not take."""
        ledger.schedule_many((conv(f"c{i}"), T0) for i in range(5))
        until = T0 + timedelta(minutes=5)
        first = ledger.claim(T0, 3, owner="a", until=until)
        second = ledger.claim(T0, 10, owner="b", until=until)
        assert [s.conversation_id for s in first] == ["c0", "c1", "c2"]
        assert [s.conversation_id for s in second] == ["c3", "c4"]
        assert all((s.lease_owner, s.lease_until) == ("a", until) for s in first)
        assert ledger.claim(T0 + timedelta(minutes=1), 10, owner="c", until=until) == []
        stored = ledger.get_due("c0")
        assert stored is not None
        assert stored.lease_owner == "a"
        assert len(ledger.due(T0, 10)) == 5  # due() ignores leases

    def test_an_owner_reclaims_its_own_and_expired_leases(self, ledger: Ledger) -> None:
        """The same owner may claim again; anyone may claim once a lease has expired."""
        ledger.schedule(conv("c1"), T0)
        ledger.claim(T0, 10, owner="a", until=T0 + timedelta(minutes=5))
        again = ledger.claim(T0, 10, owner="a", until=T0 + timedelta(minutes=9))
        assert [s.lease_until for s in again] == [T0 + timedelta(minutes=9)]
        assert (
            ledger.claim(T0 + timedelta(minutes=8), 10, owner="b", until=T0 + timedelta(hours=1))
            == []
        )
        taken = ledger.claim(
            T0 + timedelta(minutes=9), 10, owner="b", until=T0 + timedelta(hours=1)
        )
        assert [s.lease_owner for s in taken] == ["b"]

    def test_finishing_ends_the_lease(self, ledger: Ledger) -> None:
        """complete, reschedule and dead_letter clear the lease; release gives it back."""
        ledger.schedule_many((conv(c), T0) for c in ("a", "b", "c", "d"))
        until = T0 + timedelta(minutes=5)
        ledger.claim(T0, 10, owner="x", until=until)
        ledger.complete(["a"], "created")
        rescheduled = ledger.reschedule("b", T0, "timeout")
        dead = ledger.dead_letter("c", "bad")
        assert ledger.release(["d", "a"], owner="someone-else") == 0
        assert ledger.release(["d"], owner="x") == 1
        for cid in "abcd":
            stored = ledger.get_due(cid)
            assert stored is not None
            assert (stored.lease_owner, stored.lease_until) == (None, None), cid
        assert rescheduled is not None
        assert rescheduled.lease_owner is None
        assert dead is not None
        assert dead.lease_owner is None
        assert [s.conversation_id for s in ledger.claim(T0, 10, owner="y", until=until)] == [
            "b",
            "d",
        ]

    def test_a_redelivery_keeps_the_lease(self, ledger: Ledger) -> None:
        """Re-scheduling a leased pending sync does not hand it to another owner."""
        ledger.schedule(conv("c1", "a@x.io"), T0)
        ledger.claim(T0, 10, owner="a", until=T0 + timedelta(minutes=5))
        stored = ledger.schedule(conv("c1", "b@x.io"), T0)
        assert stored.lease_owner == "a"
        assert ledger.claim(T0, 10, owner="b", until=T0 + timedelta(minutes=5)) == []

    def test_bad_leases_are_refused(self, ledger: Ledger) -> None:
        """A lease must end after now and name an owner."""
        with pytest.raises(ConfigurationError) as info:
            ledger.claim(T0, 10, owner="", until=T0)
        assert set(info.value.paths) == {"owner", "until"}


# ------------------------------------------------------------------------------------------------
# Commands

_ALLOWED = {
    None: {S.PLANNED, S.SENT, S.CONFIRMED, S.FAILED, S.UNKNOWN},
    S.PLANNED: {S.PLANNED, S.SENT, S.CONFIRMED, S.FAILED, S.UNKNOWN},
    S.SENT: {S.PLANNED, S.CONFIRMED, S.FAILED, S.UNKNOWN},
    S.UNKNOWN: {S.PLANNED, S.CONFIRMED, S.FAILED, S.UNKNOWN},
    S.CONFIRMED: {S.CONFIRMED},
    S.FAILED: {S.FAILED},
}


class TestCommands:
    @pytest.mark.parametrize(
        ("old", "new"), list(itertools.product([None, *CommandState], CommandState))
    )
    def test_transition_table(
        self, ledger: Ledger, old: CommandState | None, new: CommandState
    ) -> None:
        """Every (stored state, new state) pair is accepted or refused as the table says."""
        if old is not None:
            ledger.record([cmd("c1:person", old)])
        before = ledger.get_command("c1:person")
        later = cmd("c1:person", new, at=T0 + timedelta(seconds=1), attempts=1)
        if new in _ALLOWED[old]:
            ledger.record([later])
            assert ledger.get_command("c1:person") == later
        else:
            with pytest.raises(InvalidTransitionError) as info:
                ledger.record([later])
            assert info.value.keys == ("c1:person",)
            assert ledger.get_command("c1:person") == before

    def test_confirmed_only_again_with_the_same_id(self, ledger: Ledger) -> None:
        """A confirmed command may be replayed with its CRM id, never with another."""
        ledger.record([cmd("c1:person", S.CONFIRMED, crm_id="00Q1")])
        ledger.record([cmd("c1:person", S.CONFIRMED, crm_id="00Q1")])
        with pytest.raises(InvalidTransitionError, match="00Q1"):
            ledger.record([cmd("c1:person", S.CONFIRMED, crm_id="00Q2")])
        stored = ledger.get_command("c1:person")
        assert stored is not None
        assert stored.crm_id == "00Q1"

    def test_unknown_must_be_reconciled_before_resend(self, ledger: Ledger) -> None:
        """UNKNOWN -> SENT is refused; UNKNOWN -> PLANNED (reconciled: absent) -> SENT works."""
        ledger.record([cmd("c1:person", S.SENT), cmd("c1:person", S.UNKNOWN, reason="timeout")])
        with pytest.raises(InvalidTransitionError, match="reconcile"):
            ledger.record([cmd("c1:person", S.SENT)])
        ledger.record([cmd("c1:person", S.PLANNED), cmd("c1:person", S.SENT, attempts=2)])
        stored = ledger.get_command("c1:person")
        assert stored is not None
        assert (stored.state, stored.attempts) == (S.SENT, 2)

    def test_a_batch_is_all_or_nothing(self, ledger: Ledger) -> None:
        """One illegal command in a batch writes nothing and names every offending key."""
        ledger.record([cmd("c1:person", S.FAILED, reason="bad"), cmd("c2:person", S.SENT)])
        batch = [
            cmd("c3:person", S.PLANNED),
            cmd("c1:person", S.SENT),
            cmd("c2:person", S.SENT),
            cmd("c4:person", S.CONFIRMED),
        ]
        with pytest.raises(InvalidTransitionError) as info:
            ledger.record(batch)
        assert info.value.keys == ("c1:person", "c2:person")
        assert "2 invalid command transitions" in str(info.value)
        assert ledger.get_commands(["c3:person", "c4:person"]) == {}

    def test_a_batch_applies_in_order(self, ledger: Ledger) -> None:
        """Several records of one key in one batch apply in order (planned, then sent)."""
        ledger.record([cmd("c1:person", S.PLANNED), cmd("c1:person", S.SENT)])
        stored = ledger.get_command("c1:person")
        assert stored is not None
        assert stored.state is S.SENT
        with pytest.raises(InvalidTransitionError):
            ledger.record([cmd("c2:person", S.SENT), cmd("c2:person", S.SENT)])
        assert ledger.get_command("c2:person") is None

    def test_a_key_keeps_its_conversation_and_kind(self, ledger: Ledger) -> None:
        """Recording a key under another conversation or kind is refused."""
        ledger.record([cmd("c1:person", S.PLANNED)])
        with pytest.raises(InvalidTransitionError, match="belongs to"):
            ledger.record([cmd("c1:person", S.SENT, conversation_id="c9")])
        with pytest.raises(InvalidTransitionError, match="belongs to"):
            ledger.record([cmd("c1:person", S.SENT, kind="create_task")])

    def test_retry_failed_resets_only_failed(self, ledger: Ledger) -> None:
        """retry_failed puts FAILED back to PLANNED (attempts kept, reason cleared) and no other."""
        ledger.record(
            [
                cmd("c1:person", S.FAILED, reason="REQUIRED_FIELD_MISSING", attempts=3),
                cmd("c2:person", S.CONFIRMED),
                cmd("c3:person", S.SENT),
            ]
        )
        later = T0 + timedelta(hours=1)
        reset = ledger.retry_failed(["c1:person", "c2:person", "c3:person", "zz"], later)
        assert reset == ["c1:person"]
        stored = ledger.get_command("c1:person")
        assert stored == cmd("c1:person", S.PLANNED, at=later, attempts=3)
        assert ledger.get_commands(["c2:person", "c3:person"]) == {
            "c2:person": cmd("c2:person", S.CONFIRMED),
            "c3:person": cmd("c3:person", S.SENT),
        }
        ledger.record([cmd("c1:person", S.SENT)])

    def test_lookups(self, ledger: Ledger) -> None:
        """get_commands skips unknown keys; commands_for lists one conversation's by key."""
        ledger.record(
            [
                cmd("c1:task:transcript", S.PLANNED, kind="create_task"),
                cmd("c1:person", S.CONFIRMED, crm_id="00Q9"),
                cmd("c1:campaign", S.PLANNED, kind="add_to_campaign"),
                cmd("c2:person", S.PLANNED),
            ]
        )
        got = ledger.get_commands(["c1:person", "nope", "c2:person"])
        assert set(got) == {"c1:person", "c2:person"}
        assert got["c1:person"].crm_id == "00Q9"
        assert [c.key for c in ledger.commands_for("c1")] == [
            "c1:campaign",
            "c1:person",
            "c1:task:transcript",
        ]
        assert ledger.commands_for("zz") == []
        assert ledger.get_command("nope") is None

    def test_commands_in_state_oldest_first(self, ledger: Ledger) -> None:
        """commands_in_state lists by updated_at then key, bounded by limit."""
        ledger.record(
            [
                cmd("c3:person", S.UNKNOWN, at=T0),
                cmd("c1:person", S.UNKNOWN, at=T0 + timedelta(seconds=5)),
                cmd("c2:person", S.UNKNOWN, at=T0),
                cmd("c4:person", S.SENT, at=T0 - timedelta(days=1)),
            ]
        )
        found = ledger.commands_in_state(S.UNKNOWN, 10)
        assert [c.key for c in found] == ["c2:person", "c3:person", "c1:person"]
        assert [c.key for c in ledger.commands_in_state(S.UNKNOWN, 2)] == [
            "c2:person",
            "c3:person",
        ]
        assert ledger.commands_in_state(S.CONFIRMED, 10) == []

    def test_stored_fields_round_trip(self, ledger: Ledger) -> None:
        """Every field of a command comes back; updated_at as the same instant in UTC."""
        plus5 = timezone(timedelta(hours=5, minutes=30))
        record = CommandRecord(
            key="c1:task:meeting:48213",
            conversation_id="c1",
            kind="create_task",
            state=S.UNKNOWN,
            updated_at=datetime(2026, 11, 29, 17, 30, 0, 123456, tzinfo=plus5),
            reason="read timeout",
            attempts=4,
            payload_digest="sha256:ab12",
        )
        ledger.record([record])
        stored = ledger.get_command(record.key)
        assert stored == record
        assert stored is not None
        assert stored.updated_at.utcoffset() == timedelta(0)
        assert stored.updated_at == datetime(2026, 11, 29, 12, 0, 0, 123456, tzinfo=UTC)


class TestCreatesInFlight:
    def test_unsettled_creates_by_their_syncs_email(self, ledger: Ledger) -> None:
        """Rule 2h: SENT and UNKNOWN person creates whose sync has one of the emails (any
        case), SENT first, each oldest first; not tasks, not settled creates, not commands
        without a due sync, not other emails."""
        due = T0 - timedelta(hours=1)
        ledger.schedule_many(
            [
                (conv("c1", "ann@x.io"), due),
                (conv("c2", "ANN@x.io"), due),
                (conv("c3", "bob@x.io"), due),
                (conv("c4", "ann@x.io"), due),
                (conv("c5", "zed@x.io"), due),
            ]
        )
        ledger.record(
            [
                cmd("c1:person", S.SENT, at=T0 + timedelta(minutes=1)),
                cmd("c2:person", S.UNKNOWN, at=T0 - timedelta(minutes=5)),
                cmd("c3:person", S.SENT, at=T0),
                cmd("c3:task:transcript", S.SENT, kind="create_task"),
                cmd("c4:person", S.CONFIRMED),
                cmd("c5:person", S.SENT),
                cmd("ghost:person", S.SENT),
            ]
        )
        found = ledger.creates_in_flight(["Ann@X.io", "bob@x.io", "nobody@x.io"])
        assert [(f.email, f.conversation_id) for f in found] == [
            ("bob@x.io", "c3"),
            ("ann@x.io", "c1"),
            ("ann@x.io", "c2"),
        ]
        assert found[1].updated_at == T0 + timedelta(minutes=1)
        assert ledger.creates_in_flight([]) == []
        ledger.record([cmd("c1:person", S.CONFIRMED, at=T0 + timedelta(minutes=2))])
        assert [f.conversation_id for f in ledger.creates_in_flight(["ann@x.io"])] == ["c2"]


class TestCommandRecordValues:
    def test_confirmed_needs_a_crm_id(self) -> None:
        """A CONFIRMED command without a CRM id cannot be built."""
        with pytest.raises(ConfigurationError, match="crm_id"):
            CommandRecord("k", "c", "create_person", S.CONFIRMED, T0)

    def test_invalid_fields_are_all_named(self) -> None:
        """Empty key, naive time and negative attempts are all reported at once."""
        with pytest.raises(ConfigurationError) as info:
            CommandRecord(
                " ",
                "c",
                "create_person",
                S.PLANNED,
                datetime(2026, 1, 1),  # noqa: DTZ001  # the point of the test
                attempts=-1,
            )
        assert set(info.value.paths) == {"key", "updated_at", "attempts"}


# ------------------------------------------------------------------------------------------------
# Links, stats, lifecycle


class TestLinks:
    def test_emails_are_normalised(self, ledger: Ledger) -> None:
        """Links are keyed by trimmed, lower-cased email; lookups normalise too."""
        ledger.link("  Ann@Example.COM ", "00Q1", PersonKind.LEAD)
        found = ledger.links_for(["ann@example.com", "ANN@EXAMPLE.COM", "bob@example.com"])
        assert found == {"ann@example.com": PersonLink("ann@example.com", "00Q1", PersonKind.LEAD)}

    def test_latest_link_wins(self, ledger: Ledger) -> None:
        """Linking an email again replaces its CRM id and kind (a Lead converted to a Contact)."""
        ledger.link("ann@example.com", "00Q1", PersonKind.LEAD)
        ledger.link_many(
            [
                PersonLink("ann@example.com", "003X", PersonKind.CONTACT),
                PersonLink("bob@example.com", "00Q2", PersonKind.LEAD),
            ]
        )
        found = ledger.links_for(["ann@example.com", "bob@example.com"])
        assert found["ann@example.com"].crm_id == "003X"
        assert found["ann@example.com"].kind is PersonKind.CONTACT
        assert ledger.stats().links == 2

    def test_invalid_links_are_refused(self, ledger: Ledger) -> None:
        """An empty email or CRM id cannot be linked."""
        with pytest.raises(ConfigurationError):
            ledger.link("  ", "00Q1", PersonKind.LEAD)
        with pytest.raises(ConfigurationError):
            ledger.link("a@x.io", "", PersonKind.LEAD)
        assert ledger.stats().links == 0


class TestLifecycle:
    def test_is_a_ledger(self, ledger: Ledger) -> None:
        """Both implementations satisfy the runtime-checkable Ledger Protocol."""
        assert isinstance(ledger, Ledger)

    def test_stats_list_every_state(self, ledger: Ledger) -> None:
        """stats() reports every sync and command state, zeros included."""
        stats = ledger.stats()
        assert stats.syncs == dict.fromkeys(DueState, 0)
        assert stats.commands == dict.fromkeys(CommandState, 0)
        ledger.record([cmd("c1:person", S.UNKNOWN), cmd("c2:person", S.UNKNOWN)])
        assert ledger.stats().commands[S.UNKNOWN] == 2

    def test_closed_ledger_refuses_calls(self, ledger: Ledger) -> None:
        """After close() every call raises LedgerError; closing again is harmless."""
        ledger.close()
        ledger.close()
        with pytest.raises(LedgerError, match="closed"):
            ledger.due(T0, 1)
        with pytest.raises(LedgerError, match="closed"):
            ledger.record([cmd("c1:person", S.PLANNED)])
        with pytest.raises(LedgerError, match="closed"), ledger:
            pass


# ------------------------------------------------------------------------------------------------
# Re-arming skipped syncs, requeueing dead letters


class TestRearmAndRequeue:
    def test_rearm_revives_only_a_skipped_done_sync(self, ledger: Ledger) -> None:
        """A done sync whose outcome is "skipped:..." becomes pending with the new conversation;
        a sync that wrote, a dead one, a pending one and an unknown id are left alone."""
        ledger.schedule_many((conv(c, "a@x.io"), T0) for c in ("skip", "made", "dead", "wait"))
        ledger.reschedule("skip", T0, "503")
        ledger.complete(["skip"], "skipped: criteria_not_met")
        ledger.complete(["made"], "created")
        ledger.dead_letter("dead", "bad")
        later = T0 + timedelta(hours=1)
        rearmed = ledger.rearm(conv("skip", "new@x.io", score=3), later)
        assert rearmed is not None
        assert (rearmed.state, rearmed.due_at, rearmed.attempts) == (DueState.PENDING, later, 0)
        assert (rearmed.last_error, rearmed.outcome) == (None, None)
        assert rearmed.conversation == conv("skip", "new@x.io", score=3)
        assert ledger.get_due("skip") == rearmed
        for cid in ("made", "dead", "wait", "ghost"):
            before = ledger.get_due(cid)
            assert ledger.rearm(conv(cid, "new@x.io"), later) is None
            assert ledger.get_due(cid) == before
        assert [s.conversation_id for s in ledger.due(later, 10)] == ["wait", "skip"]

    def test_requeue_dead_brings_back_dead_letters_and_their_failed_writes(
        self, ledger: Ledger
    ) -> None:
        """requeue_dead makes dead syncs pending (attempts 0, no lease) and their FAILED
        commands PLANNED, ignoring syncs in other states; it returns the ids it requeued."""
        ledger.schedule_many((conv(c), T0) for c in ("d1", "d2", "ok"))
        ledger.reschedule("d1", T0, "503")
        ledger.dead_letter("d1", "INVALID_FIELD")
        ledger.dead_letter("d2", "bad")
        ledger.complete(["ok"], "created")
        ledger.record(
            [
                cmd("d1:person", S.FAILED, reason="INVALID_FIELD"),
                cmd("d1:task", S.CONFIRMED, kind="create_task"),
                cmd("ok:person", S.FAILED, reason="kept"),
            ]
        )
        later = T0 + timedelta(minutes=5)
        assert ledger.requeue_dead(["ok", "d2", "ghost", "d1", "d2"], later) == ["d2", "d1"]
        for cid in ("d1", "d2"):
            stored = ledger.get_due(cid)
            assert stored is not None
            assert (stored.state, stored.due_at, stored.attempts) == (DueState.PENDING, later, 0)
        person = ledger.get_command("d1:person")
        assert person is not None
        assert (person.state, person.reason) == (S.PLANNED, None)
        assert ledger.get_command("d1:task") == cmd("d1:task", S.CONFIRMED, kind="create_task")
        kept = ledger.get_command("ok:person")
        assert kept is not None
        assert kept.state is S.FAILED
        assert ledger.requeue_dead([], later) == []


# ------------------------------------------------------------------------------------------------
# Text a store cannot hold


class TestText:
    LONE = "\ud800"

    def test_ids_with_a_lone_surrogate_are_refused_naming_the_field(self, ledger: Ledger) -> None:
        """A conversation id, key, owner or email that is not valid Unicode is refused with a
        ConfigurationError naming it, before anything is written."""
        bad = f"c{self.LONE}"
        calls: list[tuple[str, Any]] = [
            ("conversation.id", lambda: ledger.schedule(conv(bad), T0)),
            ("conversation_id", lambda: ledger.get_due(bad)),
            ("conversation_ids", lambda: ledger.complete([bad], "created")),
            ("conversation_id", lambda: ledger.dead_letter(bad, "x")),
            ("keys", lambda: ledger.get_commands([bad])),
            ("conversation_id", lambda: ledger.commands_for(bad)),
            ("key", lambda: cmd(f"{bad}:person", S.SENT, conversation_id="c1")),
            ("owner", lambda: ledger.claim(limit=1, owner=bad, lease=timedelta(minutes=1))),
            ("email", lambda: PersonLink(f"a{self.LONE}@x.io", "00Q1", PersonKind.LEAD)),
            ("emails", lambda: ledger.links_for([f"a{self.LONE}@x.io"])),
        ]
        for path, call in calls:
            with pytest.raises(ConfigurationError) as info:
                call()
            assert path in info.value.paths, path
        assert ledger.stats().syncs[DueState.PENDING] == 0

    def test_free_text_is_made_valid_not_refused(self, ledger: Ledger) -> None:
        """Errors, reasons and outcomes keep their text with each lone surrogate as U+FFFD; a
        conversation's own text round-trips exactly."""
        odd = conv("c1", "a@x.io")
        odd = Conversation(
            "c1", closed_at=odd.closed_at, lead_score=2, transcript=f"cut {self.LONE}"
        )
        ledger.schedule_many([(odd, T0), (conv("c2"), T0), (conv("c3"), T0)])
        stored = ledger.get_due("c1")
        assert stored is not None
        assert stored.conversation.transcript == f"cut {self.LONE}"
        dead = ledger.dead_letter("c1", f"bad {self.LONE}")
        assert dead is not None
        assert dead.last_error == "bad \ufffd"
        ledger.complete(["c2"], f"created {self.LONE}")
        done = ledger.get_due("c2")
        assert done is not None
        assert done.outcome == "created \ufffd"
        ledger.record([cmd("c3:person", S.FAILED, reason=f"FIELD {self.LONE}")])
        failed = ledger.get_command("c3:person")
        assert failed is not None
        assert failed.reason == "FIELD \ufffd"


# ------------------------------------------------------------------------------------------------
# Run reports


class TestRuns:
    def test_runs_come_back_newest_first_stamped_by_the_ledger(
        self, ledger: Ledger, clock: FakeClock
    ) -> None:
        """record_run keeps a JSON summary with a growing id and the ledger's time."""
        first = ledger.record_run({"counts": {"created": 2}, "adapter_calls": 3})
        clock.advance(timedelta(minutes=1))
        second = ledger.record_run({"counts": {}, "exhausted": True, "error": None})
        assert second.id > first.id
        assert (first.recorded_at, second.recorded_at) == (T0, T0 + timedelta(minutes=1))
        assert ledger.recent_runs(10) == [second, first]
        assert ledger.recent_runs(1) == [second]
        assert first.summary == {"adapter_calls": 3, "counts": {"created": 2}}

    def test_only_the_latest_runs_are_kept(self, ledger: Ledger) -> None:
        """A ledger keeps its latest keep_runs reports (default 1,000) and drops older ones."""
        small = ledger.for_integration("small-history")  # type: ignore[attr-defined]
        for i in range(1005):
            small.record_run({"i": i})
        kept = small.recent_runs(2000)
        assert len(kept) == 1000
        assert (kept[0].summary, kept[-1].summary) == ({"i": 1004}, {"i": 5})

    @pytest.mark.parametrize(
        "summary",
        [["not", "a", "mapping"], {"when": T0}, {"ratio": float("nan")}, {"big": "x" * 20_000}],
    )
    def test_summaries_must_be_small_json(self, ledger: Ledger, summary: Any) -> None:
        """A summary is a JSON object of at most 16 KiB; anything else names the field."""
        with pytest.raises(ConfigurationError) as info:
            ledger.record_run(summary)
        assert info.value.paths == ("summary",)
        assert ledger.recent_runs(10) == []


# ------------------------------------------------------------------------------------------------
# Batches of operations (rule 6)


class TestBatches:
    def test_commands_of_reads_many_conversations_at_once(self, ledger: Ledger) -> None:
        """commands_of gives each asked id its commands by key, and an empty list for an id
        without commands; another integration's commands are not seen."""
        ledger.record([cmd("c1:task:b", S.PLANNED, kind="create_task"), cmd("c1:person", S.SENT)])
        ledger.record([cmd("c2:person", S.PLANNED)])
        found = ledger.commands_of(["c1", "c2", "c3"])
        assert {cid: [r.key for r in rs] for cid, rs in found.items()} == {
            "c1": ["c1:person", "c1:task:b"],
            "c2": ["c2:person"],
            "c3": [],
        }
        assert found["c1"] == ledger.commands_for("c1")
        other = getattr(ledger, "for_integration", None)
        if other is not None:
            assert other("acme").commands_of(["c1"]) == {"c1": []}

    def test_perform_runs_operations_in_order_and_returns_each_result(self, ledger: Ledger) -> None:
        """perform applies its operations in order, returning each one's result."""
        results = ledger.perform(
            [
                Operation("schedule", (conv("c1", "a@x.io"), T0)),
                Operation("record", ([cmd("c1:person", S.SENT)],)),
                Operation("record", ([cmd("c1:person", S.CONFIRMED)],)),
                Operation("complete", (["c1"], "created")),
                Operation("get_due", ("c1",)),
            ]
        )
        assert [error for _, error in results] == [None] * 5
        assert results[3][0] == 1
        assert results[4][0].state is DueState.DONE
        assert ledger.get_command("c1:person").state is S.CONFIRMED

    def test_a_failed_operation_is_undone_alone(self, ledger: Ledger) -> None:
        """An operation of perform that breaks a rule returns its error and writes nothing;
        the operations before and after it are kept."""
        ledger.record([cmd("c1:person", S.SENT)])
        results = ledger.perform(
            [
                Operation("record", ([cmd("c2:person", S.SENT)],)),
                Operation("record", ([cmd("c3:person", S.PLANNED), cmd("c1:person", S.SENT)],)),
                Operation("link_many", ([PersonLink("a@x.io", "00Q1", PersonKind.LEAD)],)),
            ]
        )
        assert results[0][1] is None
        assert isinstance(results[1][1], InvalidTransitionError)
        assert results[2][1] is None
        assert ledger.get_command("c2:person").state is S.SENT
        assert ledger.get_command("c3:person") is None
        assert ledger.links_for(["a@x.io"])["a@x.io"].crm_id == "00Q1"

    def test_an_operation_names_a_ledger_method(self) -> None:
        """An Operation of a method the Ledger Protocol lacks is refused, naming the field."""
        with pytest.raises(ConfigurationError, match="method"):
            Operation("drop_everything")
        with pytest.raises(ConfigurationError, match="method"):
            Operation("close")
