"""Chained writes (``Capabilities.chains_writes``): a small batch's person write, its Tasks and
its campaign membership in one round trip, with every exactly-once rule of the kind-by-kind
path kept (docs/engine.md, "Write in dependency order")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio
import pytest

from signals_crm._flows import OutcomeKind
from signals_crm.core.config import (
    Criteria,
    FieldMapping,
    FieldMappings,
    SyncConfig,
    UserMapEntry,
    UserMapping,
)
from signals_crm.core.crm import PersonWrite, WriteResult
from signals_crm.core.model import (
    Conversation,
    Meeting,
    Participants,
    PersonKind,
    SignalsUser,
    Visitor,
)
from signals_crm.engine import AsyncIntegration, Integration
from signals_crm.exceptions import CRMAPIError, TransportError
from signals_crm.ledger import CommandState, MemoryLedger
from signals_crm.testing.memory import InMemoryCRM

CLOSED = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
DUE = CLOSED + timedelta(hours=1)
SALLY = SignalsUser(id="u-sally", email="sally@vendor.test")
WRITES = ("create_people", "update_people", "create_tasks", "add_to_campaign")


class Clock:
    """A clock the test moves."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def conv(cid: str, email: str, *, first: str = "Lena", meeting: bool = True) -> Conversation:
    return Conversation(
        id=cid,
        closed_at=CLOSED,
        lead_score=2,
        visitor=Visitor(email=email, first_name=first, last_name="Okafor"),
        participants=Participants(meeting_scheduler=SALLY),
        transcript="Visitor: hello",
        meeting=Meeting(id=f"m-{cid}", name="Demo") if meeting else None,
    )


@pytest.fixture
def crm() -> InMemoryCRM:
    crm = InMemoryCRM(person_kind=PersonKind.LEAD, chains=True)
    crm.seed_user(email="sally@vendor.test")
    return crm


def settings_for(crm: InMemoryCRM, campaign: str | None) -> SyncConfig:
    return SyncConfig(
        criteria=Criteria.ONE_STAR,
        synchronization_delay=timedelta(minutes=30),
        campaign_id=campaign,
        users=UserMapping((UserMapEntry(crm.list_users()[0].id, signals_user_id="u-sally"),)),
        field_mappings=FieldMappings(
            lead=(
                FieldMapping("contact.first_name", "FirstName", overwrite=True),
                FieldMapping("contact.last_name", "LastName"),
            )
        ),
        placeholders={"LastName": "[not provided]", "Company": "[not provided]"},
    )


def integration(crm: InMemoryCRM, campaign: str | None, clock: Clock, **kw: object) -> Integration:
    return Integration(
        crm,
        settings_for(crm, campaign),
        ledger=MemoryLedger(),
        sleep=lambda _seconds: None,
        random=lambda: 0.5,
        clock=clock,
        **kw,  # type: ignore[arg-type]
    )


def states(sync: Integration, cid: str) -> dict[str, CommandState]:
    return {r.key.removeprefix(f"{cid}:"): r.state for r in sync.ledger.commands_for(cid)}


def test_one_new_visitor_is_written_in_one_chained_call(crm: InMemoryCRM) -> None:
    """The Lead, both Tasks and the campaign membership go in one write call; the Tasks and
    the membership are on the new Lead."""
    campaign = crm.seed_campaign(name="Chat leads")
    sync = integration(crm, campaign, Clock(DUE))
    sync.conversation_closed(conv("c-1", "lena@brightfield.test"))
    report = sync.run_due(DUE)
    assert report.outcome("c-1").kind is OutcomeKind.CREATED
    assert crm.calls["write_chains"] == 1
    assert all(crm.calls[name] == 0 for name in WRITES)
    (lead,) = crm.people_with_email("lena@brightfield.test")
    assert sorted(crm.task_markers(lead)) == ["signals:c-1:meeting:m-c-1", "signals:c-1:transcript"]
    assert crm.campaign_members(campaign) == {lead}
    assert set(states(sync, "c-1").values()) == {CommandState.CONFIRMED}
    assert sync.ledger.get_due("c-1").state.value == "done"


def test_an_existing_lead_is_updated_and_given_its_tasks_in_one_call(crm: InMemoryCRM) -> None:
    """An update and the Tasks on the updated Lead chain too (no membership: not created)."""
    existing = crm.seed_person(
        kind=PersonKind.LEAD, email="olga@acme.test", fields={"FirstName": "O"}
    )
    campaign = crm.seed_campaign(name="Chat leads")
    sync = integration(crm, campaign, Clock(DUE))
    sync.conversation_closed(conv("c-1", "olga@acme.test", first="Olga"))
    assert sync.run_due(DUE).outcome("c-1").kind is OutcomeKind.UPDATED
    assert crm.calls["write_chains"] == 1
    assert all(crm.calls[name] == 0 for name in WRITES)
    assert crm.person_fields(existing)["FirstName"] == "Olga"
    assert len(crm.task_markers(existing)) == 2
    assert crm.campaign_members(campaign) == set()


def test_a_chain_whose_answer_was_lost_is_read_back_never_sent_again(crm: InMemoryCRM) -> None:
    """The chained call lands but its answer is lost (a timeout): the create is read back at
    once, and its Tasks with it (on the record the read found); the membership, which the CRM
    keeps one of, is simply sent again in the same run. Nothing is written twice."""
    campaign = crm.seed_campaign(name="Chat leads")
    sync = integration(crm, campaign, Clock(DUE))
    sync.conversation_closed(conv("c-1", "lena@brightfield.test"))
    crm.fail_next("write_chains", TransportError("read timed out"), after=True)
    report = sync.run_due(DUE)
    assert report.outcome("c-1").kind is OutcomeKind.CREATED
    assert set(states(sync, "c-1").values()) == {CommandState.CONFIRMED}
    assert crm.calls["write_chains"] == 1
    assert crm.calls["reconcile"] == 1
    assert crm.calls["add_to_campaign"] == 1  # answered created=False: it was there
    assert crm.calls["create_people"] == crm.calls["create_tasks"] == 0
    (lead,) = crm.people_with_email("lena@brightfield.test")
    assert report.outcome("c-1").person_id == lead
    assert sorted(crm.task_markers(lead)) == ["signals:c-1:meeting:m-c-1", "signals:c-1:transcript"]
    assert crm.campaign_members(campaign) == {lead}
    assert len(crm.memberships()) == 1


def test_a_chain_lost_before_it_landed_waits_out_the_window_then_is_sent(
    crm: InMemoryCRM,
) -> None:
    """The chained call times out without landing: the read at once finds nothing, so every
    write waits for the settle window (a late commit may still come); after it, the create
    is read again, not found, and the chain is sent once."""
    campaign = crm.seed_campaign(name="Chat leads")
    clock = Clock(DUE)
    sync = integration(crm, campaign, clock)
    sync.conversation_closed(conv("c-1", "lena@brightfield.test"))
    crm.fail_next("write_chains", TransportError("read timed out"))
    first = sync.run_due(DUE)
    assert first.outcome("c-1").kind is OutcomeKind.RETRY
    assert first.outcome("c-1").retry_at == DUE + sync.settle
    assert states(sync, "c-1")["person"] is CommandState.UNKNOWN
    assert crm.people_with_email("lena@brightfield.test") == []
    early = sync.run_due(DUE + sync.settle / 2)
    assert early.outcomes == ()  # not due again inside the window
    clock.now = DUE + sync.settle + timedelta(minutes=1)
    second = sync.run_due(clock.now)
    assert second.outcome("c-1").kind is OutcomeKind.CREATED
    assert crm.calls["write_chains"] == 2
    (lead,) = crm.people_with_email("lena@brightfield.test")
    assert len(crm.task_markers(lead)) == 2
    assert crm.campaign_members(campaign) == {lead}


def test_a_chain_that_never_reached_the_crm_is_sent_again_at_once(crm: InMemoryCRM) -> None:
    """A connect error (certainly not sent) puts the chain back and the run sends it again."""
    sync = integration(crm, None, Clock(DUE))
    sync.conversation_closed(conv("c-1", "lena@brightfield.test"))
    crm.fail_next("write_chains", TransportError("connection refused", maybe_sent=False))
    assert sync.run_due(DUE).outcome("c-1").kind is OutcomeKind.CREATED
    assert crm.calls["write_chains"] == 2
    (lead,) = crm.people_with_email("lena@brightfield.test")
    assert len(crm.task_markers(lead)) == 2


class ValidationRuleCRM(InMemoryCRM):
    """An org with a validation rule that refuses Leads of one domain."""

    def _create_person(self, write: PersonWrite) -> WriteResult:
        if write.email.endswith("@refused.test"):
            return WriteResult.failure(
                CRMAPIError(
                    "FIELD_CUSTOM_VALIDATION_EXCEPTION: no Leads from refused.test",
                    error_code="FIELD_CUSTOM_VALIDATION_EXCEPTION",
                    retryable=False,
                )
            )
        return super()._create_person(write)


def test_the_dependents_of_a_refused_create_are_not_sent() -> None:
    """A Lead the CRM refuses (a validation rule) fails alone: its Tasks and membership,
    chained to it, were not executed and stay PLANNED (never FAILED: they did nothing wrong),
    the conversation is dead-lettered with the CRM's reason, and a batch-mate's chain in the
    same call is written."""
    crm = ValidationRuleCRM(person_kind=PersonKind.LEAD, chains=True)
    crm.seed_user(email="sally@vendor.test")
    campaign = crm.seed_campaign(name="Chat leads")
    sync = integration(crm, campaign, Clock(DUE))
    sync.conversation_closed(conv("c-bad", "lena@refused.test"))
    sync.conversation_closed(conv("c-ok", "lena@brightfield.test"))
    report = sync.run_due(DUE)
    assert crm.calls["write_chains"] == 1
    assert report.outcome("c-bad").kind is OutcomeKind.FAILED
    assert report.outcome("c-ok").kind is OutcomeKind.CREATED
    bad = states(sync, "c-bad")
    assert bad.pop("person") is CommandState.FAILED
    assert set(bad.values()) == {CommandState.PLANNED}  # tasks and membership: not run
    assert crm.people_with_email("lena@refused.test") == []
    dead = sync.ledger.get_due("c-bad")
    assert dead is not None
    assert dead.state.value == "dead"
    assert "FIELD_CUSTOM_VALIDATION_EXCEPTION" in (dead.last_error or "")
    (lead,) = crm.people_with_email("lena@brightfield.test")
    assert crm.campaign_members(campaign) == {lead}
    assert len(crm.tasks()) == 2


def test_a_full_batch_is_written_kind_by_kind(crm: InMemoryCRM) -> None:
    """Chains only when they cost fewer calls: 40 new visitors (160 writes, 7 chained calls of
    25) go as one call per kind (3 calls)."""
    campaign = crm.seed_campaign(name="Chat leads")
    sync = integration(crm, campaign, Clock(DUE), batch_size=40)
    for n in range(40):
        sync.conversation_closed(conv(f"c-{n}", f"visitor{n}@acme.test"))
    report = sync.run_due(DUE)
    assert {o.kind for o in report.outcomes} == {OutcomeKind.CREATED}
    assert crm.calls["write_chains"] == 0
    assert crm.calls["create_people"] == 1
    assert crm.calls["create_tasks"] == 1
    assert crm.calls["add_to_campaign"] == 1
    assert len(crm.campaign_members(campaign)) == 40


def test_two_conversations_of_one_new_visitor_share_its_chain(crm: InMemoryCRM) -> None:
    """Two conversations of one email make one Lead; both conversations' Tasks are on it."""
    sync = integration(crm, None, Clock(DUE))
    sync.conversation_closed(conv("c-1", "lena@brightfield.test"))
    sync.conversation_closed(conv("c-2", "Lena@Brightfield.test", meeting=False))
    report = sync.run_due(DUE)
    assert report.outcome("c-1").kind is OutcomeKind.CREATED
    assert report.outcome("c-2").kind is OutcomeKind.UNCHANGED  # its values are the Lead's
    (lead,) = crm.people_with_email("lena@brightfield.test")
    assert sorted(crm.task_markers(lead)) == [
        "signals:c-1:meeting:m-c-1",
        "signals:c-1:transcript",
        "signals:c-2:transcript",
    ]


def test_the_async_engine_chains_the_same_way(crm: InMemoryCRM) -> None:
    """AsyncIntegration sends the same chain through awrite_chains."""
    campaign = crm.seed_campaign(name="Chat leads")

    async def main() -> None:
        async def nap(_seconds: float) -> None:
            return None

        sync = AsyncIntegration(
            crm,
            settings_for(crm, campaign),
            ledger=MemoryLedger(),
            sleep=nap,
            random=lambda: 0.5,
            clock=Clock(DUE),
        )
        await sync.aconversation_closed(conv("c-1", "lena@brightfield.test"))
        report = await sync.arun_due(DUE)
        assert report.outcome("c-1").kind is OutcomeKind.CREATED

    anyio.run(main)
    assert crm.calls["write_chains"] == 1
    assert all(crm.calls[name] == 0 for name in WRITES)
    (lead,) = crm.people_with_email("lena@brightfield.test")
    assert len(crm.task_markers(lead)) == 2
    assert crm.campaign_members(campaign) == {lead}
