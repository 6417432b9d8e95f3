"""Creates the CRM refuses as duplicates: a match on the record it names, never a second create,
never a campaign join for a matched record.

Everything runs against the in-memory CRM (or the local Salesforce) with injected clocks and
sleeps; helpers in ``_hooked.py``."""

from __future__ import annotations

import sys as _sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from signals_crm._flows import OutcomeKind
from signals_crm.core.model import (
    PersonKind,
)
from signals_crm.exceptions import (
    DuplicateRecordError,
)

_sys.path.insert(0, str(Path(__file__).parent))

from _hooked import (
    EMAIL,
    LATER,
    HookedCRM,
    config,
    conv,
    duplicate_of_other_email,
    engine,
    make_crm,
    state_of,
)


def test_duplicate_named_record_gets_the_tasks_in_the_same_run() -> None:
    """When the lookup misses the record a duplicate rejection named, its tasks go there at once."""
    crm = make_crm()
    other = duplicate_of_other_email(crm)
    sync = engine(crm, config(crm))
    sync.conversation_closed(conv())
    outcome = sync.run_due(LATER).outcome("c-1")
    assert crm.task_markers(other) == ["signals:c-1:transcript"]
    assert outcome.kind is not OutcomeKind.RETRY
    assert state_of(sync, "c-1") == "done"


def test_duplicate_matched_record_never_joins_campaign_on_a_later_run() -> None:
    """A record named by a duplicate rejection was not created by the sync, so it never joins."""
    crm = make_crm()
    campaign = crm.seed_campaign(name="Chat")
    other = duplicate_of_other_email(crm)
    sync = engine(crm, config(crm, campaign))
    sync.conversation_closed(conv())
    for hours in range(3):
        sync.run_due(LATER + timedelta(hours=hours))
    assert crm.people_with_email(EMAIL) == []
    assert crm.task_markers(other) == ["signals:c-1:transcript"]
    assert crm.campaign_members(campaign) == set()


def test_unnamed_duplicate_is_dead_lettered_not_retried_forever() -> None:
    """A create refused as a duplicate of a record nobody can find ends as a dead letter."""
    crm = make_crm()
    for _ in range(20):
        crm.create_failures.append(DuplicateRecordError("duplicate value found", matched_ids=[]))
    sync = engine(crm, config(crm))
    sync.conversation_closed(conv())
    for hours in range(5):
        sync.run_due(LATER + timedelta(hours=hours))
    assert state_of(sync, "c-1") == "dead"
    assert crm.calls["create_people"] <= 2


def test_hubspot_like_conflict_becomes_a_match() -> None:
    """In the HubSpot-like flavour a 409 on create (lookup raced) matches the named contact."""

    class RacyCRM(HookedCRM):
        raced = True

        def find_people(self, emails: Sequence[str], fields: Sequence[str] = ()) -> Any:
            if self.raced:
                self.raced = False
                return [() for _ in emails]
            return super().find_people(emails, fields)

    crm = RacyCRM(person_kind=PersonKind.CONTACT)
    crm.seed_user(email="sally@vendor.test")
    existing = crm.seed_person(kind=PersonKind.CONTACT, email=EMAIL)
    sync = engine(crm, config(crm))
    sync.conversation_closed(conv())
    outcome = sync.run_due(LATER).outcome("c-1")
    assert outcome.person_id == existing
    assert crm.people_with_email(EMAIL) == [existing]
    assert crm.task_markers(existing) == ["signals:c-1:transcript"]
