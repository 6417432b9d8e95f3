"""A mapped owner deactivated while a long-running worker runs (issue 10, item 9).

The owner is surfaced once (one ``admin_issues`` entry, one warning) and the owner rules pass
over it from then on: new Leads go to the next owner source (then the default owner, then the
CRM's default), tasks to the next user who did the activity or the record's owner; nothing
is dead-lettered and no attempt is counted (docs/engine.md, "An owner deactivated mid-run").
Against the local Salesforce, which refuses an inactive owner with ``INACTIVE_OWNER_OR_USER``
("operation performed with inactive user ... as owner of ..."); the user is deactivated
through the sandbox's admin hook in the middle of a run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from signals_crm.adapters.salesforce import SalesforceAdapter, StaticToken
from signals_crm.core.config import (
    Criteria,
    FieldMapping,
    FieldMappings,
    SyncConfig,
    UserMapEntry,
    UserMapping,
)
from signals_crm.core.model import Conversation, Meeting, Participants, SignalsUser, Visitor
from signals_crm.engine import Integration, RetryPolicy
from signals_crm.ledger import MemoryLedger
from signals_crm.reports import OutcomeKind
from signals_crm.testing.salesforce import LocalSalesforce, SalesforceBackdoor

CLOSED = datetime(2026, 11, 20, 12, tzinfo=UTC)
NOW = CLOSED + timedelta(hours=1)
SALLY = SignalsUser(id="u-sally")
BOB = SignalsUser(id="u-bob")


def conversation(i: int) -> Conversation:
    """Sally booked the meeting (she owns a new Lead first), Bob was last routed."""
    return Conversation(
        id=f"c-{i}",
        closed_at=CLOSED,
        lead_score=3,
        visitor=Visitor(email=f"v{i}@x.test", last_name=f"V{i}"),
        participants=Participants(meeting_scheduler=SALLY, last_routed=BOB),
        transcript=f"Visitor {i}: hello",
        meeting=Meeting(id=f"m-{i}", name="Demo"),
    )


def config(sally: str, bob: str) -> SyncConfig:
    return SyncConfig(
        criteria=Criteria.ONE_STAR,
        users=UserMapping(
            (
                UserMapEntry(sally, signals_user_id="u-sally"),
                UserMapEntry(bob, signals_user_id="u-bob"),
            )
        ),
        field_mappings=FieldMappings(lead=(FieldMapping("contact.last_name", "LastName"),)),
        placeholders={"LastName": "[not provided]", "Company": "[not provided]"},
    )


class DeactivateAfterFirstLeads(httpx.BaseTransport):
    """Serves the org; right after the first Lead create request, Sally is deactivated."""

    def __init__(self, org: LocalSalesforce, user_id: str) -> None:
        self.inner = org.transport()
        self.door = SalesforceBackdoor(org)
        self.user_id = user_id
        self.done = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        creates_leads = request.method == "POST" and b'"Lead"' in request.read()
        if creates_leads and request.url.path.endswith("/composite/sobjects") and not self.done:
            self.done = True
            self.door.set_user_active(self.user_id, active=False)
        return response


def owner_of(door: SalesforceBackdoor, email: str) -> str:
    (lead,) = door.people_with_email(email)
    record = door.record(lead)
    assert record is not None
    return str(record["OwnerId"])


def task_owners(door: SalesforceBackdoor, email: str) -> dict[str, str]:
    (lead,) = door.people_with_email(email)
    return {door.task_marker.read(task) or "": str(task["OwnerId"]) for task in door.tasks(lead)}


def test_an_owner_deactivated_mid_run_is_surfaced_once_and_the_next_source_owns() -> None:
    org = LocalSalesforce()
    door = SalesforceBackdoor(org)
    sally = door.seed_user(email="sally@vendor.test")
    bob = door.seed_user(email="bob@vendor.test")
    transport = DeactivateAfterFirstLeads(org, sally)
    with httpx.Client(transport=transport) as http:
        sync = Integration(
            # Kind by kind (Leads, then Tasks), so the deactivation falls between the two.
            SalesforceAdapter(
                http, StaticToken(org.issue_token(), org.instance_url), chain_writes=False
            ),
            config(sally, bob),
            ledger=MemoryLedger(),
            batch_size=2,
            sleep=lambda _: None,
            random=lambda: 0.0,
            retry=RetryPolicy(reschedule_after=60),
        )
        for i in range(4):
            sync.conversation_closed(conversation(i))
        first = sync.run_due(NOW)
        # c-0 and c-1: Leads made with Sally just before she was deactivated; their meeting
        # Tasks (hers) are refused: kept, retried, not dead-lettered, no attempt counted.
        assert first.outcome("c-0").kind is OutcomeKind.RETRY
        assert first.outcome("c-1").kind is OutcomeKind.RETRY
        assert owner_of(door, "v0@x.test") == sally
        # c-2 and c-3: planned after the refusal, so their Leads go to Bob at once.
        assert first.outcome("c-2").kind is OutcomeKind.CREATED
        assert owner_of(door, "v2@x.test") == bob
        assert task_owners(door, "v2@x.test") == {
            "signals:c-2:transcript": bob,
            "signals:c-2:meeting:m-2": bob,  # the meeting's host is inactive: the record's owner
        }
        codes = [r.code for r in first.outcome("c-2").reasons]
        assert "owner_source_inactive" in codes
        assert len(first.admin_issues) == 1  # surfaced once, not once per sync
        assert sally in first.admin_issues[0]
        assert "inactive" in first.admin_issues[0]
        assert first.count(OutcomeKind.FAILED) == 0
        assert {sync.ledger.get_due(f"c-{i}").attempts for i in range(2)} == {0}

        second = sync.run_due(NOW + timedelta(minutes=2))
    assert second.admin_issues == ()  # not again
    assert second.outcome("c-0").kind is OutcomeKind.CREATED
    owners = task_owners(door, "v0@x.test")
    # The meeting's host is inactive: the owner the rules now give the Lead (Bob), the
    # last routed user, who did the chat, too.
    assert owners == {"signals:c-0:transcript": bob, "signals:c-0:meeting:m-0": bob}
    assert all(sync.ledger.get_due(f"c-{i}").state.value == "done" for i in range(4))


def test_a_worker_started_after_the_deactivation_passes_over_the_owner_at_once() -> None:
    """Preflight reads the users: an owner inactive by then is reported there and skipped by
    the owner rules from the first sync (no refusal needed)."""
    org = LocalSalesforce()
    door = SalesforceBackdoor(org)
    sally = door.seed_user(email="sally@vendor.test", active=False)
    bob = door.seed_user(email="bob@vendor.test")
    with httpx.Client(transport=org.transport()) as http:
        sync = Integration(
            SalesforceAdapter(http, StaticToken(org.issue_token(), org.instance_url)),
            config(sally, bob),
            ledger=MemoryLedger(),
            sleep=lambda _: None,
        )
        assert any("is inactive" in p.message for p in sync.preflight())
        sync.conversation_closed(conversation(0))
        report = sync.run_due(NOW)
    assert report.outcome("c-0").kind is OutcomeKind.CREATED
    assert report.admin_issues == ()
    assert owner_of(door, "v0@x.test") == bob
