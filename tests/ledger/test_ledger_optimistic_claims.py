"""Optimistic claims (rule 1m of ``signals_crm.ledger.base``) and atomic ``perform`` (rule 6),
the same from every ledger: ``claimable`` reads what ``claim`` would take without a write;
``claim_unchanged`` leases exactly those syncs only if none changed since, and a refusal
leaves nothing of its transaction written."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import attrs
import pytest
from ledger_clock import T0, FakeClock

from signals_crm.core.model import Conversation, PersonKind, Visitor
from signals_crm.exceptions import (
    ClaimRefusedError,
    ConfigurationError,
    InvalidTransitionError,
    LeaseLostError,
)
from signals_crm.ledger import (
    AsyncLedger,
    CommandRecord,
    CommandState,
    DueState,
    Ledger,
    Operation,
    PersonLink,
    ThreadedLedger,
)

S = CommandState
LEASE = timedelta(minutes=10)
DUE = T0 - timedelta(hours=1)


def conv(cid: str, email: str | None = None) -> Conversation:
    visitor = Visitor(email=email or f"{cid}@x.io")
    return Conversation(cid, closed_at=T0 - timedelta(hours=2), lead_score=2, visitor=visitor)


def sent(cid: str, fence: int | None) -> CommandRecord:
    return CommandRecord(f"{cid}:person", cid, "create_person", S.SENT, T0, owner="a", fence=fence)


def ids(syncs: Any) -> list[str]:
    return [s.conversation_id for s in syncs]


def seen_of(syncs: Any) -> dict[str, int]:
    return {s.conversation_id: s.fence for s in syncs}


def unchanged(seen: dict[str, int], owner: str = "a") -> Operation:
    return Operation("claim_unchanged", (seen,), {"owner": owner, "lease": LEASE})


class TestClaimable:
    def test_it_lists_what_claim_would_take_and_writes_nothing(
        self, ledger: Ledger, clock: FakeClock
    ) -> None:
        """The same rules as claim (due, pending, no other owner's live lease on the sync or
        its email), in claim's order; nothing is leased and no fence moves."""
        ledger.schedule_many(
            [
                (conv("c1"), DUE),
                (conv("c2"), DUE + timedelta(minutes=1)),
                (conv("c3", "ann@x.io"), DUE + timedelta(minutes=2)),
                (conv("c4", "ANN@x.io"), DUE + timedelta(minutes=3)),
                (conv("later"), T0 + timedelta(hours=1)),
                (conv("c5"), DUE + timedelta(minutes=4)),
            ]
        )
        ledger.claim(DUE + timedelta(minutes=2), 3, owner="b", lease=LEASE)  # c1-c3, ann's email
        ledger.complete(["c5"], "created")
        found = ledger.claimable(limit=10, owner="a")
        assert found == []
        assert ids(ledger.claimable(limit=10, owner="b")) == ["c1", "c2", "c3", "c4"]
        assert ids(ledger.claimable(limit=2, owner="b")) == ["c1", "c2"]
        assert ledger.claimable(limit=0, owner="b") == []
        stored = ledger.get_due("c4")
        assert stored is not None
        assert (stored.lease_owner, stored.fence) == (None, 0)
        clock.advance(LEASE)  # b's leases end by the ledger's clock
        found = ledger.claimable(limit=10, owner="a")
        assert ids(found) == ["c1", "c2", "c3", "c4"]
        assert [s.fence for s in found] == [1, 1, 1, 0]
        assert ids(ledger.claimable(T0 + timedelta(hours=1), 10, owner="a"))[-1] == "later"

    def test_bad_arguments_are_refused(self, ledger: Ledger) -> None:
        with pytest.raises(ConfigurationError) as info:
            ledger.claimable(limit=-1, owner="a")
        assert "limit" in info.value.paths
        with pytest.raises(ConfigurationError) as info:
            ledger.claimable(limit=1, owner="")
        assert "owner" in info.value.paths


class TestClaimUnchanged:
    def test_it_leases_exactly_what_was_read_with_the_next_fences(
        self, ledger: Ledger, clock: FakeClock
    ) -> None:
        """Those syncs and no other, in the order given, leased by the ledger's clock."""
        ledger.schedule_many([(conv(c), DUE) for c in ("c1", "c2", "c3")])
        ledger.claim(limit=1, owner="a", lease=LEASE)  # c1: fence 1, leased to a itself
        seen = {"c2": 0, "c1": 1}
        claimed = ledger.claim_unchanged(seen, owner="a", lease=LEASE)
        assert ids(claimed) == ["c2", "c1"]
        assert [(s.fence, s.lease_owner, s.lease_until) for s in claimed] == [
            (1, "a", clock.now + LEASE),
            (2, "a", clock.now + LEASE),
        ]
        assert ids(ledger.claim(limit=10, owner="b", lease=LEASE)) == ["c3"]
        ledger.record([sent("c1", 2), sent("c2", 1)])  # the claim's fences are current
        assert ledger.claim_unchanged({}, owner="a", lease=LEASE) == []

    def test_another_owner_claimed_meanwhile(self, ledger: Ledger) -> None:
        ledger.schedule_many([(conv("c1"), DUE), (conv("c2"), DUE)])
        seen = seen_of(ledger.claimable(limit=10, owner="a"))
        ledger.claim(limit=1, owner="b", lease=LEASE)
        with pytest.raises(ClaimRefusedError) as info:
            ledger.claim_unchanged(seen, owner="a", lease=LEASE)
        assert isinstance(info.value, LeaseLostError)
        assert info.value.conversation_ids == ("c1",)
        untouched = ledger.get_due("c2")
        assert untouched is not None
        assert (untouched.lease_owner, untouched.fence) == (None, 0)  # all or nothing

    def test_the_fence_moved_though_the_lease_was_given_back(self, ledger: Ledger) -> None:
        """A claim and release in between leave no lease, but the fence tells."""
        ledger.schedule(conv("c1"), DUE)
        seen = seen_of(ledger.claimable(limit=10, owner="a"))
        (other,) = ledger.claim(limit=1, owner="b", lease=LEASE)
        ledger.release(["c1"], "b")
        with pytest.raises(ClaimRefusedError):
            ledger.claim_unchanged(seen, owner="a", lease=LEASE)
        stored = ledger.get_due("c1")
        assert stored is not None
        assert (stored.lease_owner, stored.fence) == (None, other.fence)

    def test_a_webhook_with_a_changed_conversation_came_in_between(self, ledger: Ledger) -> None:
        """The conversation read was replaced by a newer one (rule 1b moved the fence): the
        claim is refused, so the run plans again with the newer conversation."""
        ledger.schedule(conv("c1"), DUE)
        seen = seen_of(ledger.claimable(limit=10, owner="a"))
        ledger.schedule(conv("c1"), DUE)  # the same conversation again: nothing moves
        ledger.claim_unchanged(seen, owner="a", lease=LEASE)
        ledger.release(["c1"], "a")
        seen = seen_of(ledger.claimable(limit=10, owner="a"))
        newer = attrs.evolve(conv("c1"), lead_score=3)
        ledger.schedule(newer, DUE)
        with pytest.raises(ClaimRefusedError):
            ledger.claim_unchanged(seen, owner="a", lease=LEASE)
        (claimed,) = ledger.claim(limit=10, owner="a", lease=LEASE)
        assert claimed.conversation == newer

    def test_only_the_email_is_leased_by_another_owner(self, ledger: Ledger) -> None:
        """The sync itself is as read, but another conversation of its email is b's now."""
        ledger.schedule_many([(conv("c1", "ann@x.io"), DUE), (conv("c2", "bob@x.io"), DUE)])
        seen = seen_of(ledger.claimable(limit=10, owner="a"))
        ledger.schedule(conv("c0", "ANN@x.io"), DUE - timedelta(minutes=1))
        assert ids(ledger.claim(limit=1, owner="b", lease=LEASE)) == ["c0"]
        with pytest.raises(ClaimRefusedError) as info:
            ledger.claim_unchanged(seen, owner="a", lease=LEASE)
        assert info.value.conversation_ids == ("c1",)
        stored = ledger.get_due("c2")
        assert stored is not None
        assert (stored.lease_owner, stored.fence) == (None, 0)

    @pytest.mark.parametrize("change", ["complete", "reschedule", "dead_letter", "missing"])
    def test_a_sync_no_longer_pending_and_due_is_refused(self, ledger: Ledger, change: str) -> None:
        """Completed (a manual sync), rescheduled past the cut-off or dead meanwhile; or never
        stored at all."""
        ledger.schedule_many([(conv("c1"), DUE), (conv("c2"), DUE)])
        seen = seen_of(ledger.claimable(limit=10, owner="a"))
        if change == "complete":
            ledger.complete(["c1"], "created")
        elif change == "reschedule":
            ledger.reschedule("c1", T0 + timedelta(hours=1), "later")
        elif change == "dead_letter":
            ledger.dead_letter("c1", "refused")
        else:
            seen = {**seen, "nope": 0}
        with pytest.raises(ClaimRefusedError) as info:
            ledger.claim_unchanged(seen, owner="a", lease=LEASE)
        assert info.value.conversation_ids == ("nope",) if change == "missing" else ("c1",)
        stored = ledger.get_due("c2")
        assert stored is not None
        assert (stored.lease_owner, stored.fence) == (None, 0)

    def test_bad_arguments_are_refused(self, ledger: Ledger) -> None:
        for kwargs, path in (
            ({"owner": "", "lease": LEASE}, "owner"),
            ({"owner": "a", "lease": timedelta(0)}, "lease"),
        ):
            with pytest.raises(ConfigurationError) as info:
                ledger.claim_unchanged({"c1": 0}, **kwargs)
            assert path in info.value.paths
        with pytest.raises(ConfigurationError):
            ledger.claim_unchanged({"c1": -1}, owner="a", lease=LEASE)


class TestAtomicPerform:
    def test_a_refused_claim_leaves_nothing_of_the_commit_written(self, ledger: Ledger) -> None:
        """The claim first, then the SENT records carrying the new fences and a link: when the
        claim is refused none of it is written, even though another claim in between made the
        new fence the current one (the reason the claim must fence the whole commit)."""
        ledger.schedule_many([(conv("c1"), DUE), (conv("c2"), DUE)])
        seen = seen_of(ledger.claimable(limit=10, owner="a"))
        ledger.claim(limit=1, owner="b", lease=LEASE)  # c1 now has the fence a expects
        link = PersonLink("c2@x.io", "00Q2", PersonKind.LEAD)
        with pytest.raises(ClaimRefusedError):
            ledger.perform(
                [
                    unchanged(seen),
                    Operation("record", ([sent("c1", 1), sent("c2", 1)],)),
                    Operation("link_many", ([link],)),
                ],
                atomic=True,
            )
        assert ledger.get_commands(["c1:person", "c2:person"]) == {}
        assert ledger.links_for(["c2@x.io"]) == {}
        stored = ledger.get_due("c2")
        assert stored is not None
        assert (stored.lease_owner, stored.fence) == (None, 0)

    def test_a_later_failure_undoes_the_claim_too(self, ledger: Ledger) -> None:
        """All or nothing: a record refused after the claim takes the claim back with it."""
        ledger.schedule_many([(conv("c1"), DUE)])
        ledger.record([sent("c9", None)])
        seen = seen_of(ledger.claimable(limit=10, owner="a"))
        with pytest.raises(InvalidTransitionError) as info:
            ledger.perform(
                [
                    unchanged(seen),
                    Operation("record", ([sent("c1", 1)],)),
                    Operation("record", ([sent("c9", None)],)),  # SENT again: refused
                ],
                atomic=True,
            )
        assert info.value.keys == ("c9:person",)
        stored = ledger.get_due("c1")
        assert stored is not None
        assert (stored.lease_owner, stored.fence) == (None, 0)
        assert ledger.get_command("c1:person") is None
        assert ledger.get_command("c9:person") is not None

    def test_it_commits_everything_when_nothing_fails(self, ledger: Ledger) -> None:
        """The claim, the SENT with its new fences, and a nested non-atomic perform whose
        failing operation is still undone alone."""
        ledger.schedule_many([(conv("c1"), DUE)])
        ledger.record([sent("c9", None)])
        seen = seen_of(ledger.claimable(limit=10, owner="a"))
        nested = Operation(
            "perform",
            (
                [
                    Operation("record", ([sent("c9", None)],)),  # refused alone
                    Operation("complete", (["c1"], "created"), {"fences": {"c1": 1}}),
                ],
            ),
        )
        results = ledger.perform(
            [unchanged(seen), Operation("record", ([sent("c1", 1)],)), nested], atomic=True
        )
        assert [error for _, error in results] == [None, None, None]
        assert ids(results[0][0]) == ["c1"]
        inner = results[2][0]
        assert isinstance(inner[0][1], InvalidTransitionError)
        assert inner[1] == (1, None)
        stored = ledger.get_due("c1")
        assert stored is not None
        assert (stored.state, stored.fence) == (DueState.DONE, 1)
        assert ledger.get_command("c1:person").state is S.SENT  # type: ignore[union-attr]

    def test_an_atomic_perform_nested_in_another_is_undone_as_a_whole(self, ledger: Ledger) -> None:
        """Inside a non-atomic perform, a failing atomic one is one operation's error: its
        own writes are undone, the outer operations kept."""
        ledger.schedule_many([(conv("c1"), DUE), (conv("c2"), DUE)])
        seen = seen_of(ledger.claimable(limit=10, owner="a"))
        ledger.claim(limit=1, owner="b", lease=LEASE)
        writes = [unchanged(seen), Operation("record", ([sent("c2", 1)],))]
        inner = Operation("perform", (writes,), {"atomic": True})
        results = ledger.perform([Operation("record", ([sent("c8", None)],)), inner])
        assert results[0][1] is None
        assert isinstance(results[1][1], ClaimRefusedError)
        assert ledger.get_command("c8:person") is not None
        assert ledger.get_command("c2:person") is None


@pytest.mark.anyio
async def test_a_threaded_ledger_claims_optimistically_too(ledger: Ledger) -> None:
    """The awaited twins: claimable, claim_unchanged and perform(atomic=True) pass through."""
    threaded = ThreadedLedger(ledger)
    assert isinstance(threaded, AsyncLedger)
    await threaded.schedule_many([(conv("c1"), DUE), (conv("c2"), DUE)])
    seen = seen_of(await threaded.claimable(limit=10, owner="a"))
    assert seen == {"c1": 0, "c2": 0}
    await threaded.claim(limit=1, owner="b", lease=LEASE)
    with pytest.raises(ClaimRefusedError):
        await threaded.perform(
            [unchanged(seen), Operation("record", ([sent("c2", 1)],))], atomic=True
        )
    assert await threaded.get_command("c2:person") is None
    claimed = await threaded.claim_unchanged({"c2": 0}, owner="a", lease=LEASE)
    assert [(s.conversation_id, s.fence) for s in claimed] == [("c2", 1)]
