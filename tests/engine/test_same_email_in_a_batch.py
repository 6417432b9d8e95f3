"""Two conversations of one visitor in one batch: the later one is planned against the record
the earlier one creates. With nothing of its own to write it is done only once that create
is; until then it goes again, so a create that never lands (or whose conversation stops
qualifying) never leaves the visitor without a record."""

from __future__ import annotations

import sys as _sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from signals_crm.core.model import Conversation, Participants, Visitor
from signals_crm.exceptions import CRMAPIError, TransportError
from signals_crm.reports import OutcomeKind

_sys.path.insert(0, str(Path(__file__).parent))

from _hooked import CLOSED, EMAIL, LATER, SALLY, config, engine, make_crm


def quiet(cid: str, score: int | None = 2) -> Conversation:
    """A conversation with no transcript or meeting: no tasks, and the same mapped fields as
    every other conversation of the visitor (nothing to overwrite)."""
    return Conversation(
        id=cid,
        closed_at=CLOSED,
        lead_score=score,
        visitor=Visitor(email=EMAIL, first_name="Lena", last_name="Okafor"),
        participants=Participants(meeting_scheduler=SALLY),
    )


def kinds(report: Any) -> dict[str, OutcomeKind]:
    return {o.conversation_id: o.kind for o in report.outcomes}


def test_the_later_conversation_is_unchanged_on_the_record_just_created(ledger: Any) -> None:
    crm = make_crm()
    sync = engine(crm, config(crm), ledger=ledger)
    sync.conversation_closed(quiet("c-1"))
    sync.conversation_closed(quiet("c-2"))
    report = sync.run_due(LATER)
    assert kinds(report) == {"c-1": OutcomeKind.CREATED, "c-2": OutcomeKind.UNCHANGED}
    (lead,) = crm.people_with_email(EMAIL)
    later = next(o for o in report.outcomes if o.conversation_id == "c-2")
    assert later.person_id == lead  # the record it was planned against


def test_an_ambiguous_create_keeps_the_later_conversation_due(ledger: Any) -> None:
    """The create is dropped (it may have landed: it did not) and the webhook then says the
    first conversation no longer qualifies: the second creates the Lead itself."""
    crm = make_crm()
    sync = engine(crm, config(crm), ledger=ledger, settle=timedelta(minutes=5))
    sync.conversation_closed(quiet("c-1"))
    sync.conversation_closed(quiet("c-2"))
    crm.fail_next("create_people", TransportError("connection dropped", maybe_sent=True))
    first = sync.run_due(LATER)
    assert kinds(first) == {"c-1": OutcomeKind.RETRY, "c-2": OutcomeKind.RETRY}
    assert crm.people_with_email(EMAIL) == []
    sync.conversation_closed(quiet("c-1", score=0))  # below the criteria now
    for minutes in range(0, 60, 7):
        sync.run_due(LATER + timedelta(minutes=minutes))
    assert len(crm.people_with_email(EMAIL)) == 1
    assert sync.ledger.get_due("c-1").outcome == "skipped:criteria_not_met"
    assert sync.ledger.get_due("c-2").outcome == "created"
    assert sync.ledger.due(LATER + timedelta(days=30), 10) == []


def test_a_create_refused_for_good_leaves_the_later_conversation_to_create(ledger: Any) -> None:
    crm = make_crm()
    sync = engine(crm, config(crm), ledger=ledger)
    sync.conversation_closed(quiet("c-1"))
    sync.conversation_closed(quiet("c-2"))
    crm.create_failures.append(CRMAPIError("a poison value", status_code=400))
    first = sync.run_due(LATER)
    assert kinds(first) == {"c-1": OutcomeKind.FAILED, "c-2": OutcomeKind.RETRY}
    for minutes in range(0, 60, 7):
        sync.run_due(LATER + timedelta(minutes=minutes))
    assert len(crm.people_with_email(EMAIL)) == 1
    assert sync.ledger.get_due("c-2").outcome == "created"
