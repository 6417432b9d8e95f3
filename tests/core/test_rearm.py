"""A sync skipped for its lead score is re-armed by a changed webhook; one that wrote is final."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from signals_crm.core.config import Criteria, SyncConfig
from signals_crm.core.explain import ExplainStatus
from signals_crm.core.model import Conversation, PersonKind, Visitor
from signals_crm.engine import Integration
from signals_crm.ledger import MemoryLedger, SQLiteLedger
from signals_crm.ledger.base import DueState
from signals_crm.testing import strategies as sst
from signals_crm.testing.memory import InMemoryCRM

CLOSED = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
LATER = CLOSED + timedelta(hours=1)
PLACEHOLDERS = {"LastName": "[not provided]", "Company": "[not provided]"}


def conv(score: int | None, email: str = "lena@brightfield.test") -> Conversation:
    return Conversation(
        id="c-1",
        closed_at=CLOSED,
        lead_score=score,
        visitor=Visitor(email=email, first_name="Lena"),
        transcript="Visitor: hello",
    )


def integration(ledger=None) -> tuple[Integration, InMemoryCRM]:
    crm = InMemoryCRM(person_kind=PersonKind.LEAD)
    config = SyncConfig(
        criteria=Criteria.TWO_STARS,
        synchronization_delay=timedelta(minutes=30),
        placeholders=PLACEHOLDERS,
    )
    return Integration(crm, config, ledger=ledger or MemoryLedger(), clock=lambda: LATER), crm


def test_a_higher_score_redelivered_after_the_skip_syncs(tmp_path):
    """Skipped at one star; the webhook comes again with three: re-armed, synced, and explain
    shows the new score (on the SQLite ledger too)."""
    for ledger in (MemoryLedger(), SQLiteLedger(tmp_path / "l.sqlite3")):
        sync, crm = integration(ledger)
        sync.conversation_closed(conv(1))
        first = sync.run_due(LATER)
        assert first.outcome("c-1").kind.value == "skipped"
        skipped = sync.explain("c-1", now=LATER, lookup=False)
        assert skipped.status is ExplainStatus.SKIPPED
        assert "1 star" in skipped.as_text()

        due = sync.conversation_closed(conv(3))
        assert due is not None
        assert due.state is DueState.PENDING
        assert due.conversation.lead_score == 3
        assert sync.explain("c-1", now=LATER, lookup=False).status is ExplainStatus.DUE
        second = sync.run_due(LATER)
        assert second.outcome("c-1").kind.value == "created"
        assert len(crm.people()) == 1
        ledger.close()


def test_an_unchanged_redelivery_is_not_rearmed():
    """The same webhook again (same score) leaves the skip as it was: nothing to evaluate."""
    sync, _ = integration()
    sync.conversation_closed(conv(1))
    sync.run_due(LATER)
    again = sync.conversation_closed(conv(1))
    assert again is not None
    assert again.state is DueState.DONE


def test_a_sync_that_wrote_is_final():
    """A synced conversation delivered again, changed, is never synced a second time."""
    sync, crm = integration()
    sync.conversation_closed(conv(3))
    assert sync.run_due(LATER).outcome("c-1").kind.value == "created"
    again = sync.conversation_closed(attrs.evolve(conv(3), transcript="Visitor: hi again"))
    assert again is not None
    assert again.state is DueState.DONE
    assert sync.run_due(LATER + timedelta(hours=1)).total == 0
    assert len(crm.tasks()) == 1


def test_a_skip_because_the_integration_was_off_is_not_rearmed():
    """Turning the integration on does not replay what was skipped while it was off."""
    ledger = MemoryLedger()
    sync, _ = integration(ledger)
    sync.conversation_closed(conv(1))
    off = Integration(
        InMemoryCRM(), SyncConfig(enabled=False, criteria=Criteria.TWO_STARS), ledger=ledger
    )
    off.run_due(LATER)
    again = sync.conversation_closed(conv(3))
    assert again is not None
    assert again.state is DueState.DONE
    assert again.outcome == "skipped:integration_disabled"


@settings(max_examples=30, deadline=None)
@given(first=sst.lead_scores(), second=sst.lead_scores(), criteria=st.sampled_from(list(Criteria)))
def test_the_score_that_counts_is_the_one_known_at_sync_time(first, second, criteria):
    """Whatever the two scores: after the second delivery and a run, the visitor is synced
    exactly when either delivery's score (at its sync) met the criteria, and never twice."""
    crm = InMemoryCRM(person_kind=PersonKind.LEAD)
    config = SyncConfig(criteria=criteria, placeholders=PLACEHOLDERS)
    sync = Integration(crm, config, ledger=MemoryLedger(), clock=lambda: LATER)
    sync.conversation_closed(conv(first))
    sync.run_due(LATER)
    sync.conversation_closed(conv(second))
    sync.run_due(LATER)
    passes = {
        s: criteria.min_stars is None or (s is not None and s >= criteria.min_stars)
        for s in (first, second)
    }
    assert len(crm.people()) == (1 if passes[first] or passes[second] else 0)
