"""A webhook delivered again, with changes, while a worker holds its sync (ledger rule 1b: the
sync's fence moves). The worker's fenced writes and settle are refused, so what it read cannot
close the sync: the newer conversation is planned, by this run or the holder's next one, and
never a duplicate."""

from __future__ import annotations

import sys as _sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from signals_crm.core.crm import PersonWrite, WriteResult
from signals_crm.core.model import PersonKind
from signals_crm.exceptions import TransportError
from signals_crm.reports import OutcomeKind

_sys.path.insert(0, str(Path(__file__).parent))

from _hooked import (
    EMAIL,
    LATER,
    HookedCRM,
    config,
    conv,
    engine,
    make_crm,
)


@pytest.mark.parametrize("batch_size", [None, 1], ids=["optimistic", "explicit"])
def test_a_higher_score_delivered_during_the_run_is_synced(
    ledger: Any, batch_size: int | None
) -> None:
    """The run read a conversation below the criteria; the webhook brings a higher score
    before it settles. The skip is refused and the newer conversation creates the Lead, in
    the same run (optimistic: its claim is refused and it claims again; a full explicit batch:
    its settle is refused and its next batch claims the sync again)."""
    crm = make_crm()
    kw: dict[str, Any] = {} if batch_size is None else {"batch_size": batch_size}
    sync = engine(crm, config(crm), ledger=ledger, worker_id="a", **kw)
    sync.conversation_closed(conv(score=0))
    sync.preflight()
    ledger.race_on = "claimable" if batch_size is None else "claim"
    ledger.race = lambda: sync.conversation_closed(conv(score=3))
    sync.run_due(LATER)
    assert ledger.race is None  # it ran
    stored = ledger.get_due("c-1")
    assert (stored.state.value, stored.outcome) == ("done", "created")
    assert stored.conversation.lead_score == 3
    assert len(crm.people_with_email(EMAIL)) == 1


def test_the_same_conversation_delivered_again_changes_nothing(ledger: Any) -> None:
    """An unchanged re-delivery during the run moves no fence: the run settles as usual."""
    crm = make_crm()
    sync = engine(crm, config(crm), ledger=ledger, worker_id="a")
    sync.conversation_closed(conv(score=0))
    sync.preflight()
    ledger.race = lambda: sync.conversation_closed(conv(score=0))
    report = sync.run_due(LATER)
    assert [o.kind for o in report.outcomes] == [OutcomeKind.SKIPPED]
    stored = ledger.get_due("c-1")
    assert (stored.state.value, stored.outcome) == ("done", "skipped:criteria_not_met")


class RedeliverDuringCreate(HookedCRM):
    """Delivers the newer webhook while the Lead create is in flight (after it landed)."""

    deliver: Callable[[], object] | None = None

    def create_people(self, records: Sequence[PersonWrite]) -> list[WriteResult]:
        results = super().create_people(records)
        deliver, self.deliver = self.deliver, None
        if deliver is not None:
            deliver()
        return results


def test_a_change_delivered_while_the_create_is_in_flight_makes_no_duplicate(
    ledger: Any,
) -> None:
    """The create landed, but its outcome can no longer be recorded (the fence moved): the
    command stays SENT, the sync stays the worker's, and it is read back after the settle
    window: one Lead, the sync done."""
    crm = RedeliverDuringCreate(person_kind=PersonKind.LEAD)
    crm.seed_user(email="sally@vendor.test")
    sync = engine(crm, config(crm), ledger=ledger, worker_id="a")
    sync.conversation_closed(conv(score=2))
    sync.preflight()
    crm.deliver = lambda: sync.conversation_closed(conv(score=3, first="Lina"))
    now = LATER
    for _ in range(4):
        sync.run_due(now)
        if ledger.get_due("c-1").state.value == "done":
            break
        now += sync.settle + timedelta(minutes=1)
    stored = ledger.get_due("c-1")
    assert stored.state.value == "done"
    assert stored.outcome in ("created", "updated", "unchanged")
    assert len(crm.people_with_email(EMAIL)) == 1


class RedeliverThenTimeOut(RedeliverDuringCreate):
    """The newer webhook comes while the create is in flight, and the create times out: it
    commits later (``commit_late``), so the sync waits out the settle window."""

    late: list[Sequence[PersonWrite]] | None = None

    def create_people(self, records: Sequence[PersonWrite]) -> list[WriteResult]:
        if self.late is None:
            self.late = [records]
            deliver, self.deliver = self.deliver, None
            if deliver is not None:
                deliver()
            raise TransportError("read timeout", maybe_sent=True)
        return super().create_people(records)

    def commit_late(self) -> None:
        for records in self.late or ():
            HookedCRM.create_people(self, records)
        self.late = []


def test_an_ambiguous_create_whose_conversation_changed_waits_without_error(ledger: Any) -> None:
    """The run cannot keep the lease of a sync whose fence moved (its extend is refused): it
    goes on without it, raising nothing; the holder reads the late create back after the
    window. One Lead, the sync done."""
    crm = RedeliverThenTimeOut(person_kind=PersonKind.LEAD)
    crm.seed_user(email="sally@vendor.test")
    sync = engine(crm, config(crm), ledger=ledger, worker_id="a")
    sync.conversation_closed(conv(score=2))
    sync.preflight()
    crm.deliver = lambda: sync.conversation_closed(conv(score=3, first="Lina"))
    report = sync.run_due(LATER)
    assert [o.kind for o in report.outcomes] == [OutcomeKind.RETRY]
    crm.commit_late()
    now = LATER
    for _ in range(4):
        now += sync.settle + timedelta(minutes=1)
        sync.run_due(now)
        if ledger.get_due("c-1").state.value == "done":
            break
    assert ledger.get_due("c-1").state.value == "done"
    assert len(crm.people_with_email(EMAIL)) == 1
