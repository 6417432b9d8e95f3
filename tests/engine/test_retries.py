"""Retries, limits and budgets: what is retried, waited out, rescheduled or dead-lettered, and that
nothing spins.

Everything runs against the in-memory CRM (or the local Salesforce) with injected clocks and
sleeps; helpers in ``_hooked.py``."""

from __future__ import annotations

import contextlib
import sys as _sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from signals_crm._flows import OutcomeKind, RetryPolicy
from signals_crm.core.model import (
    PersonKind,
)
from signals_crm.exceptions import (
    ConfigurationError,
    CRMAPIError,
    CRMServerError,
    RateLimitedError,
)
from signals_crm.ledger.base import CommandState, DueState

_sys.path.insert(0, str(Path(__file__).parent))

from _hooked import (
    EMAIL,
    LATER,
    HookedCRM,
    config,
    conv,
    engine,
    make_crm,
    state_of,
)


def test_daily_api_limit_on_a_write_does_not_dead_letter_the_batch() -> None:
    """A daily API limit hit by a write call leaves the syncs due for after the reset."""
    crm = make_crm()
    sync = engine(crm, config(crm))
    for cid, email in (("c-1", "one@x.test"), ("c-2", "two@x.test")):
        sync.conversation_closed(conv(cid, email))
    limit = RateLimitedError("TotalRequests Limit exceeded.", status_code=403, retryable=False)
    crm.fail_next("create_people", limit)
    with contextlib.suppress(RateLimitedError):  # stopping the run and raising is fine too
        sync.run_due(LATER)
    assert state_of(sync, "c-1") == "pending"
    assert state_of(sync, "c-2") == "pending"
    assert sync.ledger.stats().commands[CommandState.FAILED] == 0


def test_zero_reschedule_delay_cannot_spin_run_due() -> None:
    """A non-positive reschedule delay is refused or at least cannot make run_due spin."""
    crm = make_crm()
    crm.task_failures.extend(CRMServerError("busy", retryable=True) for _ in range(10_000))
    crm.call_limit = 200
    try:
        retry = RetryPolicy(max_attempts=1, reschedule_after=0.0)
    except ConfigurationError:
        return
    sync = engine(crm, config(crm), retry=retry)
    sync.conversation_closed(conv())
    report = sync.run_due(LATER)
    assert report.outcome("c-1").kind is OutcomeKind.RETRY


def test_backfill_transient_failure_is_retried_by_run_due() -> None:
    """A backfilled conversation whose task hit a transient error is finished by a later run."""
    crm = make_crm()
    sync = engine(crm, config(crm), retry=RetryPolicy(max_attempts=1))
    crm.task_failures.append(CRMServerError("busy", retryable=True))
    report = sync.backfill([conv()], now=LATER)
    assert report.count(OutcomeKind.RETRY) == 1
    sync.run_due(LATER + timedelta(hours=1))
    (lead,) = crm.people_with_email(EMAIL)
    assert crm.task_markers(lead) == ["signals:c-1:transcript"]


def test_transient_membership_failure_survives_a_failed_task() -> None:
    """A new Lead's membership that failed transiently is still written although a task failed."""
    crm = make_crm()
    campaign = crm.seed_campaign(name="Chat")
    sync = engine(crm, config(crm, campaign), retry=RetryPolicy(max_attempts=1))
    crm.task_failures.append(CRMAPIError("bad task", error_code="FIELD_CUSTOM_VALIDATION"))
    crm.membership_failures.append(CRMServerError("UNABLE_TO_LOCK_ROW", retryable=True))
    sync.conversation_closed(conv())
    assert sync.run_due(LATER).outcome("c-1").kind is OutcomeKind.RETRY  # membership pending
    for hours in range(1, 3):
        sync.run_due(LATER + timedelta(hours=hours))
    (lead,) = crm.people_with_email(EMAIL)
    assert crm.campaign_members(campaign) == {lead}


def test_rate_limit_waits_retry_after_and_is_not_unknown() -> None:
    """A 429 on a write waits the CRM's Retry-After and re-sends; nothing is recorded UNKNOWN."""
    crm = make_crm()
    naps: list[float] = []
    sync = engine(crm, config(crm), sleep=naps.append)
    crm.fail_next("create_people", RateLimitedError("slow down", retry_after=7.0))
    sync.conversation_closed(conv())
    assert sync.run_due(LATER).outcome("c-1").kind is OutcomeKind.CREATED
    assert naps == [7.0]
    assert sync.ledger.stats().commands[CommandState.UNKNOWN] == 0
    assert len(crm.people_with_email(EMAIL)) == 1


def test_exhausted_transient_retries_reschedule_not_dead_letter() -> None:
    """Transient errors past the retry budget reschedule the sync; it completes on a later run."""
    crm = make_crm()
    sync = engine(crm, config(crm), retry=RetryPolicy(max_attempts=2, reschedule_after=60))
    crm.task_failures.extend([CRMServerError("busy", retryable=True)] * 2)
    sync.conversation_closed(conv())
    assert sync.run_due(LATER).outcome("c-1").kind is OutcomeKind.RETRY
    due = sync.ledger.get_due("c-1")
    assert due is not None
    assert due.state is DueState.PENDING
    assert due.due_at == LATER + timedelta(seconds=60)
    assert sync.run_due(LATER + timedelta(seconds=60)).outcome("c-1").kind is OutcomeKind.CREATED
    (lead,) = crm.people_with_email(EMAIL)
    assert crm.task_markers(lead) == ["signals:c-1:transcript"]


def test_budget_is_checked_between_batches() -> None:
    """Once usage passes the budget after a batch, the next batch is not started and stays due."""

    class Usage:
        fraction_used = 0.0

    class MeteredCRM(HookedCRM):
        api_usage = Usage()

        def find_people(self, emails: Sequence[str], fields: Sequence[str] = ()) -> Any:
            self.api_usage.fraction_used = 0.95
            return super().find_people(emails, fields)

    crm = MeteredCRM(person_kind=PersonKind.LEAD)
    crm.seed_user(email="sally@vendor.test")
    sync = engine(crm, config(crm), batch_size=1, api_budget=0.9)
    sync.conversation_closed(conv("c-1", "one@x.test"))
    sync.conversation_closed(conv("c-2", "two@x.test"))
    report = sync.run_due(LATER)
    assert report.budget_exhausted
    assert [o.conversation_id for o in report.outcomes] == ["c-1"]
    assert state_of(sync, "c-2") == "pending"


def test_permanently_failed_create_writes_no_task_and_is_not_retried() -> None:
    """A create refused for good dead-letters the sync; its tasks are never sent to anyone."""
    crm = make_crm()
    crm.create_failures.append(CRMAPIError("bad value", error_code="INVALID_EMAIL_ADDRESS"))
    sync = engine(crm, config(crm))
    sync.conversation_closed(conv(meeting=True))
    outcome = sync.run_due(LATER).outcome("c-1")
    assert outcome.kind is OutcomeKind.FAILED
    assert state_of(sync, "c-1") == "dead"
    assert crm.calls["create_tasks"] == 0
    sync.conversation_closed(conv(meeting=True))
    assert sync.run_due(LATER + timedelta(hours=1)).outcomes == ()
    assert crm.calls["create_people"] == 1
    assert crm.tasks() == ()
