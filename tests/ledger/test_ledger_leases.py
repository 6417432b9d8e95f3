"""Leases judged by the ledger's clock, and fencing tokens: the same from every ledger.

A worker's clock never decides whether a lease runs (rule 1h of ``signals_crm.ledger.base``),
and a worker whose lease was taken over cannot record a send or settle anything (rule 1i).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import attrs
import pytest
from ledger_clock import T0, FakeClock

from signals_crm.core.model import Conversation, Visitor
from signals_crm.exceptions import (
    ConfigurationError,
    InvalidTransitionError,
    LeaseLostError,
    LedgerError,
)
from signals_crm.ledger import CommandRecord, CommandState, DueState, Ledger

S = CommandState
LEASE = timedelta(minutes=10)


def conv(cid: str, email: str | None = None) -> Conversation:
    """A closed conversation, due long before the tests' clock."""
    visitor = Visitor(email=email) if email else None
    return Conversation(cid, closed_at=T0 - timedelta(hours=2), lead_score=2, visitor=visitor)


def cmd(key: str, state: CommandState, *, fence: int | None, owner: str = "a") -> CommandRecord:
    """A person-create command of the conversation named before the ':' of ``key``."""
    crm_id = "00Q1" if state is S.CONFIRMED else None
    cid = key.split(":", maxsplit=1)[0]
    return CommandRecord(
        key, cid, "create_person", state, T0, crm_id=crm_id, owner=owner, fence=fence
    )


def ids(syncs: Any) -> list[str]:
    """The conversation ids of claimed syncs, in order."""
    return [s.conversation_id for s in syncs]


class TestTheLedgersClock:
    def test_a_lease_runs_by_the_ledgers_clock_whatever_the_worker_says(
        self, ledger: Ledger, clock: FakeClock
    ) -> None:
        """A worker whose clock is far ahead cannot take a running lease; expiry needs the
        ledger's clock to pass the lease end."""
        ledger.schedule(conv("c1"), T0 - timedelta(hours=1))
        (first,) = ledger.claim(limit=10, owner="a", lease=LEASE)
        assert (first.lease_owner, first.lease_until, first.fence) == ("a", T0 + LEASE, 1)
        ahead = T0 + timedelta(hours=3)  # worker b's clock, three hours fast
        assert ledger.claim(ahead, 10, owner="b", lease=LEASE) == []
        clock.advance(LEASE - timedelta(seconds=1))
        assert ledger.claim(limit=10, owner="b", lease=LEASE) == []
        clock.advance(timedelta(seconds=1))
        (taken,) = ledger.claim(limit=10, owner="b", lease=LEASE)
        assert (taken.lease_owner, taken.lease_until, taken.fence) == ("b", clock.now + LEASE, 2)

    def test_a_worker_behind_cannot_stretch_its_lease(
        self, ledger: Ledger, clock: FakeClock
    ) -> None:
        """A claim by a worker 15 minutes behind still ends its lease by the ledger's clock."""
        ledger.schedule(conv("c1"), T0 - timedelta(hours=1))
        behind = T0 - timedelta(minutes=15)
        (claimed,) = ledger.claim(behind, 10, owner="slow", lease=LEASE)
        assert claimed.lease_until == T0 + LEASE  # from the ledger's clock, not the worker's
        clock.advance(LEASE)
        assert ids(ledger.claim(limit=10, owner="b", lease=LEASE)) == ["c1"]

    def test_now_is_only_the_due_cutoff(self, ledger: Ledger, clock: FakeClock) -> None:
        """Without ``now`` the ledger's clock decides what is due; with it, ``now`` does."""
        ledger.schedule(conv("soon"), T0 + timedelta(minutes=5))
        assert ledger.claim(limit=10, owner="a", lease=LEASE) == []
        assert ids(ledger.claim(T0 + timedelta(minutes=5), 10, owner="a", lease=LEASE)) == ["soon"]
        clock.advance(timedelta(minutes=5))
        assert ids(ledger.claim(limit=10, owner="a", lease=LEASE)) == ["soon"]

    def test_an_email_leased_elsewhere_is_judged_by_the_ledgers_clock(
        self, ledger: Ledger, clock: FakeClock
    ) -> None:
        """Another conversation of a leased email waits until that lease ends on the ledger."""
        ledger.schedule(conv("c1", "ann@x.io"), T0 - timedelta(hours=1))
        ledger.schedule(conv("c2", "ANN@x.io"), T0 - timedelta(hours=1))
        assert ids(ledger.claim(limit=1, owner="a", lease=LEASE)) == ["c1"]
        assert ledger.claim(T0 + timedelta(days=1), 10, owner="b", lease=LEASE) == []
        clock.advance(LEASE)
        assert ids(ledger.claim(limit=10, owner="b", lease=LEASE)) == ["c1", "c2"]

    def test_extend_renews_from_the_ledgers_clock(self, ledger: Ledger, clock: FakeClock) -> None:
        """extend renews only the owner's pending leases, for the lease from the ledger's clock."""
        ledger.schedule_many((conv(c), T0 - timedelta(hours=1)) for c in ("c1", "c2", "c3"))
        claimed = ledger.claim(limit=2, owner="a", lease=LEASE)
        ledger.claim(limit=1, owner="b", lease=LEASE)
        ledger.complete(["c2"], "created")
        clock.advance(timedelta(minutes=9))
        assert ledger.extend(["c3", "c1", "c2", "nope"], owner="a", lease=LEASE) == ["c1"]
        stored = ledger.get_due("c1")
        assert stored is not None
        assert (stored.lease_until, stored.fence) == (clock.now + LEASE, claimed[0].fence)
        clock.advance(timedelta(minutes=5))  # past the first lease, within the renewed one
        assert ids(ledger.claim(limit=10, owner="b", lease=LEASE)) == ["c3"]

    @pytest.mark.parametrize(
        ("kwargs", "path"),
        [
            ({"owner": "a"}, "lease"),
            ({"owner": "a", "lease": LEASE, "until": T0 + LEASE}, "lease"),
            ({"owner": "a", "until": T0 + LEASE}, "now"),
            ({"owner": "a", "lease": timedelta(0)}, "lease"),
            ({"owner": "a", "lease": 600}, "lease"),
            ({"owner": "", "lease": LEASE}, "owner"),
            ({"owner": "a", "lease": LEASE, "limit": -1}, "limit"),
        ],
    )
    def test_bad_claims_are_refused(self, ledger: Ledger, kwargs: Any, path: str) -> None:
        """A claim names its owner and exactly one of a positive lease or the older until."""
        with pytest.raises(ConfigurationError) as info:
            ledger.claim(**kwargs)
        assert path in info.value.paths

    def test_the_older_call_still_works(self, ledger: Ledger) -> None:
        """claim(now, limit, owner=, until=) leases until ``until``, judged at ``now``."""
        ledger.schedule(conv("c1"), T0)
        until = T0 + timedelta(minutes=5)
        (claimed,) = ledger.claim(T0, 10, owner="a", until=until)
        assert (claimed.lease_until, claimed.fence) == (until, 1)
        assert ledger.claim(T0 + timedelta(minutes=4), 10, owner="b", until=until + LEASE) == []
        assert [s.fence for s in ledger.claim(until, 10, owner="b", until=until + LEASE)] == [2]


class TestFencing:
    def test_every_claim_hands_out_a_greater_fence(self, ledger: Ledger) -> None:
        """Fences start at 0, grow by one per claim (same owner too), and survive a release."""
        ledger.schedule(conv("c1"), T0 - timedelta(hours=1))
        stored = ledger.get_due("c1")
        assert stored is not None
        assert stored.fence == 0
        fences = [ledger.claim(limit=1, owner="a", lease=LEASE)[0].fence for _ in range(3)]
        assert fences == [1, 2, 3]
        assert ledger.release(["c1"], "a") == 1
        stored = ledger.get_due("c1")
        assert stored is not None
        assert (stored.fence, stored.lease_owner) == (3, None)
        assert ledger.claim(limit=1, owner="b", lease=LEASE)[0].fence == 4

    def test_a_changed_conversation_for_a_held_sync_moves_its_fence(self, ledger: Ledger) -> None:
        """A webhook delivered again with changes while a worker holds the sync (rule 1b): the
        fence moves, so the holder can neither record a send nor settle the sync with what it
        read; the lease stays (its email too), and the holder's next claim takes the newer
        conversation. The same conversation delivered again moves nothing."""
        ledger.schedule(conv("c1", "ann@x.io"), T0 - timedelta(hours=1))
        (held,) = ledger.claim(limit=10, owner="a", lease=LEASE)
        assert ledger.schedule(conv("c1", "ann@x.io"), T0 - timedelta(hours=1)).fence == held.fence
        newer = attrs.evolve(conv("c1", "ann@x.io"), lead_score=3)
        moved = ledger.schedule(newer, T0 - timedelta(hours=1))
        assert (moved.fence, moved.lease_owner) == (held.fence + 1, "a")
        stored = ledger.get_due("c1")
        assert stored is not None
        assert (stored.fence, stored.conversation) == (held.fence + 1, newer)
        with pytest.raises(LeaseLostError):
            ledger.record([cmd("c1:person", S.SENT, fence=held.fence)])
        with pytest.raises(LeaseLostError):
            ledger.complete(["c1"], "skipped:criteria_not_met", fences={"c1": held.fence})
        ledger.schedule(conv("c2", "ANN@x.io"), T0 - timedelta(hours=1))
        assert ledger.claim(limit=10, owner="b", lease=LEASE) == []  # a's lease, a's email
        (again,) = ledger.claim(limit=1, owner="a", lease=LEASE)
        assert (again.conversation_id, again.conversation, again.fence) == (
            "c1",
            newer,
            held.fence + 2,
        )

    def test_one_call_compares_with_the_sync_as_it_was_stored(self, ledger: Ledger) -> None:
        """``schedule_many`` with a change and then the stored conversation again ends where
        it began: the fence it returns last is the one stored."""
        ledger.schedule(conv("c1"), T0 - timedelta(hours=1))
        (held,) = ledger.claim(limit=10, owner="a", lease=LEASE)
        newer = attrs.evolve(conv("c1"), lead_score=3)
        due = T0 - timedelta(hours=1)
        results = ledger.schedule_many([(newer, due), (conv("c1"), due)])
        assert [r.fence for r in results] == [held.fence + 1, held.fence]
        stored = ledger.get_due("c1")
        assert stored is not None
        assert stored.fence == held.fence
        results = ledger.schedule_many([(conv("c1"), due), (newer, due)])
        assert [r.fence for r in results] == [held.fence, held.fence + 1]
        stored = ledger.get_due("c1")
        assert stored is not None
        assert stored.fence == held.fence + 1

    def test_a_taken_over_worker_cannot_record_a_send(
        self, ledger: Ledger, clock: FakeClock
    ) -> None:
        """The paused worker's SENT is refused once another claimed the sync; the new owner's
        goes through: one send, never two."""
        ledger.schedule(conv("c1", "ann@x.io"), T0 - timedelta(hours=1))
        (old,) = ledger.claim(limit=10, owner="a", lease=LEASE)
        ledger.record([cmd("c1:person", S.PLANNED, fence=old.fence)])
        clock.advance(LEASE + timedelta(minutes=5))  # a was paused past its lease
        (new,) = ledger.claim(limit=10, owner="b", lease=LEASE)
        with pytest.raises(LeaseLostError) as info:
            ledger.record([cmd("c1:person", S.SENT, fence=old.fence)])
        assert info.value.conversation_ids == ("c1",)
        assert info.value.keys == ("c1:person",)
        assert isinstance(info.value, InvalidTransitionError)
        assert isinstance(info.value, LedgerError)
        stored = ledger.get_command("c1:person")
        assert stored is not None
        assert stored.state is S.PLANNED
        ledger.record([cmd("c1:person", S.SENT, fence=new.fence, owner="b")])
        stored = ledger.get_command("c1:person")
        assert stored is not None
        assert (stored.state, stored.fence, stored.owner) == (S.SENT, new.fence, "b")

    def test_an_expired_lease_nobody_took_still_writes(
        self, ledger: Ledger, clock: FakeClock
    ) -> None:
        """Fencing refuses only a lease taken over: a late worker whose fence is still current
        records its settle (no other worker can have sent meanwhile)."""
        ledger.schedule(conv("c1"), T0 - timedelta(hours=1))
        (claimed,) = ledger.claim(limit=10, owner="a", lease=LEASE)
        ledger.record([cmd("c1:person", S.SENT, fence=claimed.fence)])
        clock.advance(LEASE * 3)
        ledger.record([cmd("c1:person", S.CONFIRMED, fence=claimed.fence)])
        stored = ledger.get_command("c1:person")
        assert stored is not None
        assert stored.state is S.CONFIRMED

    def test_one_stale_fence_refuses_the_whole_batch(
        self, ledger: Ledger, clock: FakeClock
    ) -> None:
        """A batch over several syncs with one lost lease writes nothing and names that sync."""
        ledger.schedule_many((conv(c), T0 - timedelta(hours=1)) for c in ("c1", "c2"))
        claimed = {s.conversation_id: s for s in ledger.claim(limit=10, owner="a", lease=LEASE)}
        clock.advance(LEASE)
        ledger.release(["c1"], "a")
        (retaken,) = ledger.claim(limit=1, owner="b", lease=LEASE)
        assert retaken.conversation_id == "c1"
        batch = [
            cmd("c2:person", S.SENT, fence=claimed["c2"].fence),
            cmd("c1:person", S.SENT, fence=claimed["c1"].fence),
            cmd("c1:task:chat", S.SENT, fence=claimed["c1"].fence),
        ]
        with pytest.raises(LeaseLostError) as info:
            ledger.record(batch)
        assert info.value.conversation_ids == ("c1",)
        assert set(info.value.keys) == {"c1:person", "c1:task:chat"}
        assert ledger.get_commands(["c1:person", "c2:person", "c1:task:chat"]) == {}
        ledger.record(batch[:1])
        assert set(ledger.get_commands(["c2:person"])) == {"c2:person"}

    def test_a_batch_with_two_fences_for_one_sync_is_refused(self, ledger: Ledger) -> None:
        """Two fences for one conversation in one batch cannot both be current: refused."""
        ledger.schedule(conv("c1"), T0 - timedelta(hours=1))
        ledger.claim(limit=1, owner="a", lease=LEASE)
        ledger.claim(limit=1, owner="a", lease=LEASE)
        with pytest.raises(LeaseLostError):
            ledger.record([cmd("c1:person", S.SENT, fence=2), cmd("c1:task", S.SENT, fence=1)])
        assert ledger.commands_for("c1") == []

    def test_a_fence_for_a_sync_never_claimed_is_refused(self, ledger: Ledger) -> None:
        """A fenced write needs its sync's claim; unfenced writes (manual syncs) are free."""
        with pytest.raises(LeaseLostError):
            ledger.record([cmd("ghost:person", S.SENT, fence=1)])
        ledger.schedule(conv("c1"), T0 - timedelta(hours=1))
        with pytest.raises(LeaseLostError):
            ledger.record([cmd("c1:person", S.SENT, fence=1)])
        ledger.record([cmd("ghost:person", S.SENT, fence=None)])
        ledger.record([cmd("c1:person", S.SENT, fence=None)])
        assert len(ledger.get_commands(["ghost:person", "c1:person"])) == 2

    def test_sync_writes_with_a_stale_fence_change_nothing(
        self, ledger: Ledger, clock: FakeClock
    ) -> None:
        """complete, reschedule, dead_letter, release and extend refuse a stale fence whole."""
        ledger.schedule_many((conv(c), T0 - timedelta(hours=1)) for c in ("c1", "c2"))
        old = {s.conversation_id: s.fence for s in ledger.claim(limit=10, owner="a", lease=LEASE)}
        clock.advance(LEASE)
        new = {s.conversation_id: s.fence for s in ledger.claim(limit=10, owner="a", lease=LEASE)}
        before = {c: ledger.get_due(c) for c in ("c1", "c2")}
        later = T0 + timedelta(hours=1)
        attempts: list[Any] = [
            lambda: ledger.complete(["c1", "c2"], "created", fences={"c1": new["c1"], **old}),
            lambda: ledger.reschedule("c1", later, "timeout", fence=old["c1"]),
            lambda: ledger.dead_letter("c2", "bad", fence=old["c2"]),
            lambda: ledger.release(["c1"], "a", fences={"c1": old["c1"]}),
            lambda: ledger.extend(["c1"], owner="a", lease=LEASE, fences={"c1": old["c1"]}),
        ]
        for attempt in attempts:
            with pytest.raises(LeaseLostError):
                attempt()
        assert {c: ledger.get_due(c) for c in ("c1", "c2")} == before
        assert ledger.extend(["c1"], owner="a", lease=LEASE, fences={"c1": new["c1"]}) == ["c1"]
        assert ledger.complete(["c1"], "created", fences={"c1": new["c1"]}) == 1
        rescheduled = ledger.reschedule("c2", later, "timeout", fence=new["c2"])
        assert rescheduled is not None
        assert (rescheduled.attempts, rescheduled.lease_owner) == (1, None)
        stats = ledger.stats().syncs
        assert (stats[DueState.DONE], stats[DueState.PENDING]) == (1, 1)

    @pytest.mark.parametrize("fence", [-1, True, "1", 1.0])
    def test_bad_fences_are_refused(self, ledger: Ledger, fence: Any) -> None:
        """A fence is a non-negative integer, on a command and in a fences mapping."""
        with pytest.raises(ConfigurationError) as info:
            cmd("c1:person", S.SENT, fence=fence)
        assert info.value.paths == ("fence",)
        ledger.schedule(conv("c1"), T0)
        with pytest.raises(ConfigurationError):
            ledger.complete(["c1"], "created", fences={"c1": fence})
