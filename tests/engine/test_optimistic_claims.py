"""run_due's optimistic claim: a small run reads its due syncs and claims them with the batch's
first commit; when another worker claims between the read and that commit, the claim is
refused with nothing written, and the run falls back to an explicit claim and plans again.
Never a duplicate, and the sync completes once."""

from __future__ import annotations

import sys as _sys
from pathlib import Path
from typing import Any

import pytest

from signals_crm.ledger import CommandState, DueSync
from signals_crm.reports import OutcomeKind

_sys.path.insert(0, str(Path(__file__).parent))

from _hooked import (
    EMAIL,
    LATER,
    RacedMemory,
    async_engine,
    config,
    conv,
    engine,
    make_crm,
)


def test_another_worker_finishing_the_sync_between_read_and_commit(ledger: Any) -> None:
    """Worker b runs the whole sync while a has only read it: a's first commit (its claim
    and SENT) is refused, nothing of it written; a claims explicitly, gets nothing, and
    stops. One Lead, created by b; the sync completed once."""
    crm = make_crm()
    cfg = config(crm)
    a = engine(crm, cfg, ledger=ledger, worker_id="a")
    b = engine(crm, cfg, ledger=ledger, worker_id="b")
    a.conversation_closed(conv())
    a.preflight()  # warm, as a running worker is
    reports = []
    ledger.race = lambda: reports.append(b.run_due(LATER))
    report = a.run_due(LATER)
    assert report.outcomes == ()
    assert [o.kind for o in reports[0].outcomes] == [OutcomeKind.CREATED]
    assert len(crm.people_with_email(EMAIL)) == 1
    assert crm.calls["create_people"] + crm.calls.get("write_chains", 0) == 1
    stored = ledger.get_due("c-1")
    assert (stored.state.value, stored.fence, stored.outcome) == ("done", 1, "created")
    assert {r.owner for r in ledger.commands_for("c-1")} == {"b"}


def test_another_worker_claiming_and_giving_back_between_read_and_commit(ledger: Any) -> None:
    """Worker b claims the sync and gives it back (its fence moved, no lease left) while a
    holds its read: a's optimistic claim is refused (the fence tells), a claims explicitly,
    plans again and completes the sync with the fence of its own claim."""
    crm = make_crm()
    cfg = config(crm)
    a = engine(crm, cfg, ledger=ledger, worker_id="a")
    a.conversation_closed(conv())
    a.preflight()

    def claim_and_release() -> None:
        (taken,) = ledger.claim(limit=10, owner="b", lease=a.lease)
        assert taken.fence == 1
        ledger.release(["c-1"], "b")

    ledger.race = claim_and_release
    lookups = crm.calls["find_people"]
    report = a.run_due(LATER)
    assert [o.kind for o in report.outcomes] == [OutcomeKind.CREATED]
    assert crm.calls["find_people"] - lookups == 2  # planned twice: before and after the claim
    assert len(crm.people_with_email(EMAIL)) == 1
    stored = ledger.get_due("c-1")
    assert (stored.state.value, stored.fence, stored.lease_owner) == ("done", 2, None)
    records = ledger.commands_for("c-1")
    assert records
    assert {(r.state, r.fence, r.owner) for r in records} == {(CommandState.CONFIRMED, 2, "a")}


def test_a_quiet_run_claims_with_its_first_commit(ledger: Any) -> None:
    """No race: one read, no claim of its own; the sync is leased with the first SENT
    (fence 1) and completed."""
    crm = make_crm()
    a = engine(crm, config(crm), ledger=ledger, worker_id="a")
    a.conversation_closed(conv())
    report = a.run_due(LATER)
    assert [o.kind for o in report.outcomes] == [OutcomeKind.CREATED]
    assert ledger.reads == 1
    stored = ledger.get_due("c-1")
    assert (stored.state.value, stored.fence) == ("done", 1)
    assert {r.fence for r in ledger.commands_for("c-1")} == {1}


def test_a_skipped_sync_claims_with_the_settle_commit(ledger: Any) -> None:
    """Nothing to send (the score misses the criteria): the claim rides on the settle
    commit; refused there when another worker claimed meanwhile, then claimed explicitly."""
    crm = make_crm()
    a = engine(crm, config(crm), ledger=ledger, worker_id="a")
    a.conversation_closed(conv(score=None))

    def claim_and_release() -> None:
        ledger.claim(limit=10, owner="b", lease=a.lease)
        ledger.release(["c-1"], "b")

    ledger.race = claim_and_release
    report = a.run_due(LATER)
    assert [o.kind for o in report.outcomes] == [OutcomeKind.SKIPPED]
    stored = ledger.get_due("c-1")
    assert (stored.state.value, stored.fence) == ("done", 2)
    assert crm.people_with_email(EMAIL) == []


def test_a_full_batch_is_claimed_explicitly(ledger: Any) -> None:
    """A run whose read fills a batch claims it (SKIP LOCKED on PostgreSQL) before planning,
    and so do its later batches; the run ends at the first short batch."""
    crm = make_crm()
    a = engine(crm, config(crm), ledger=ledger, worker_id="a", batch_size=2)
    for n in range(5):
        a.conversation_closed(conv(f"c-{n}", f"v{n}@x.test"))
    claims: list[int] = []
    original = ledger.claim

    def counting(*args: Any, **kwargs: Any) -> list[DueSync]:
        found = original(*args, **kwargs)
        claims.append(len(found))
        return found

    ledger.claim = counting
    report = a.run_due(LATER)
    assert len(report.outcomes) == 5
    assert {o.kind for o in report.outcomes} == {OutcomeKind.CREATED}
    assert ledger.reads == 1
    assert claims == [2, 2, 1]


def test_after_a_refusal_the_worker_claims_explicitly_for_a_lease(ledger: Any) -> None:
    """A refused optimistic claim means other workers take the same syncs: for a lease's time
    the worker claims before planning (no CRM reads spent on others' work), then reads again."""
    crm = make_crm()
    now = [LATER]
    a = engine(crm, config(crm), ledger=ledger, worker_id="a", clock=lambda: now[0])
    a.conversation_closed(conv())

    def claim_and_release() -> None:
        ledger.claim(limit=10, owner="b", lease=a.lease)
        ledger.release(["c-1"], "b")

    ledger.race = claim_and_release
    a.run_due(LATER)
    assert ledger.reads == 1
    a.conversation_closed(conv("c-2", "other@x.test"))
    assert [o.kind for o in a.run_due(LATER).outcomes] == [OutcomeKind.CREATED]
    assert ledger.reads == 1  # claimed explicitly
    now[0] = LATER + a.lease
    a.conversation_closed(conv("c-3", "third@x.test"))
    assert [o.kind for o in a.run_due(LATER).outcomes] == [OutcomeKind.CREATED]
    assert ledger.reads == 2  # optimistic again


def test_optimistic_claims_can_be_switched_off(ledger: Any) -> None:
    """optimistic_claims=False: every batch is claimed before it is planned."""
    crm = make_crm()
    a = engine(crm, config(crm), ledger=ledger, worker_id="a", optimistic_claims=False)
    a.conversation_closed(conv())
    assert [o.kind for o in a.run_due(LATER).outcomes] == [OutcomeKind.CREATED]
    assert ledger.reads == 0


@pytest.mark.anyio
async def test_the_async_engine_falls_back_the_same_way() -> None:
    """AsyncIntegration runs the same flow: b finishes the sync between a's read and a's
    first commit; a writes nothing, claims, gets nothing. One Lead."""
    ledger = RacedMemory()
    crm = make_crm()
    cfg = config(crm)
    a = async_engine(crm, cfg, ledger=ledger, worker_id="a")
    b = engine(crm, cfg, ledger=ledger, worker_id="b")
    await a.aconversation_closed(conv())
    finished = []
    ledger.race = lambda: finished.append(b.run_due(LATER))
    report = await a.arun_due(LATER)
    assert report.outcomes == ()
    assert [o.kind for o in finished[0].outcomes] == [OutcomeKind.CREATED]
    assert len(crm.people_with_email(EMAIL)) == 1
    assert {r.owner for r in ledger.commands_for("c-1")} == {"b"}
    stored = ledger.get_due("c-1")
    assert stored is not None
    assert (stored.state.value, stored.fence) == ("done", 1)
