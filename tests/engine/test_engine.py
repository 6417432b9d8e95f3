"""The engine against the in-memory CRM: scheduling, syncing, retries, exactly-once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs
import pytest

from signals_crm._flows import OutcomeKind, RetryPolicy
from signals_crm.core.config import (
    Criteria,
    FieldMapping,
    FieldMappings,
    SyncConfig,
    UserMapEntry,
    UserMapping,
)
from signals_crm.core.model import (
    Conversation,
    Meeting,
    Participants,
    PersonKind,
    SignalsUser,
    Visitor,
)
from signals_crm.engine import AsyncIntegration, Integration
from signals_crm.exceptions import (
    AuthenticationError,
    ConfigurationError,
    CRMServerError,
    IntegrationDisabledError,
    TransportError,
)
from signals_crm.ledger import MemoryLedger, SQLiteLedger
from signals_crm.testing.memory import InMemoryCRM

CLOSED = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
LATER = CLOSED + timedelta(hours=1)
SALLY = SignalsUser(id="u-sally", email="sally@vendor.test")


def config(**changes) -> SyncConfig:
    base = {
        "criteria": Criteria.ONE_STAR,
        "synchronization_delay": timedelta(minutes=30),
        "campaign_id": None,
        "users": UserMapping((UserMapEntry("005SALLY", signals_user_id="u-sally"),)),
        "field_mappings": FieldMappings(
            lead=(
                FieldMapping("contact.first_name", "FirstName", overwrite=True),
                FieldMapping("contact.last_name", "LastName"),
                FieldMapping("company.name", "Company"),
            )
        ),
        "placeholders": {"LastName": "[not provided]", "Company": "[not provided]"},
    }
    base.update(changes)
    return SyncConfig(**base)


def conv(cid: str = "c-1", email: str = "lena@brightfield.test", score: int | None = 2, **kw):
    return Conversation(
        id=cid,
        closed_at=CLOSED,
        lead_score=score,
        visitor=Visitor(email=email, first_name=kw.get("first", "Lena"), last_name="Okafor"),
        participants=Participants(meeting_scheduler=SALLY),
        transcript="Visitor: hello",
        meeting=Meeting(id="m1", name="Demo") if kw.get("meeting", True) else None,
    )


@pytest.fixture
def crm() -> InMemoryCRM:
    crm = InMemoryCRM(person_kind=PersonKind.LEAD)
    crm.seed_user(email="sally@vendor.test")  # id is generated; mapping uses 005SALLY below
    return crm


def integration(crm: InMemoryCRM, cfg: SyncConfig | None = None, **kw) -> Integration:
    sleeps: list[float] = []
    kw.setdefault("ledger", MemoryLedger())
    kw.setdefault("sleep", sleeps.append)
    kw.setdefault("random", lambda: 0.5)
    kw.setdefault("clock", lambda: LATER)
    users = crm.list_users()
    cfg = cfg or config(users=UserMapping((UserMapEntry(users[0].id, signals_user_id="u-sally"),)))
    return Integration(crm, cfg, **kw)


def lead_ids(crm: InMemoryCRM, email: str) -> list[str]:
    return crm.people_with_email(email)


def test_closed_conversation_is_scheduled_not_slept(crm):
    """Closing records the sync due at close + delay; run_due before it writes nothing."""
    sync = integration(crm)
    due = sync.conversation_closed(conv())
    assert due is not None
    assert due.due_at == CLOSED + timedelta(minutes=30)
    early = sync.run_due(CLOSED + timedelta(minutes=10))
    assert early.outcomes == ()
    assert lead_ids(crm, "lena@brightfield.test") == []


def test_run_due_creates_lead_tasks_and_owner(crm):
    """A due sync creates the Lead with the owner, one task per activity, and completes."""
    sync = integration(crm)
    sync.conversation_closed(conv())
    report = sync.run_due(LATER)
    outcome = report.outcome("c-1")
    assert outcome.kind is OutcomeKind.CREATED
    (lead,) = lead_ids(crm, "lena@brightfield.test")
    assert outcome.person_id == lead
    fields = crm.person_fields(lead)
    assert fields["FirstName"] == "Lena"
    assert fields["Company"] == "[not provided]"
    assert sorted(crm.task_markers(lead)) == ["signals:c-1:meeting:m1", "signals:c-1:transcript"]
    assert sync.ledger.get_due("c-1").state.value == "done"
    assert sync.run_due(LATER + timedelta(hours=1)).outcomes == ()


def test_owner_is_set_on_create(crm):
    """The resolved lead owner is sent on create."""
    sync = integration(crm)
    sync.conversation_closed(conv())
    sync.run_due(LATER)
    (lead,) = lead_ids(crm, "lena@brightfield.test")
    assert crm.person_fields(lead)["OwnerId"] == crm.list_users()[0].id


def test_criteria_evaluated_at_sync_time(crm):
    """A visitor below the criteria at run time is skipped and completed with the reason."""
    sync = integration(crm)
    sync.conversation_closed(conv(score=0))
    report = sync.run_due(LATER)
    outcome = report.outcome("c-1")
    assert outcome.kind is OutcomeKind.SKIPPED
    assert outcome.blockers == ("criteria_not_met",)
    assert lead_ids(crm, "lena@brightfield.test") == []
    assert sync.ledger.get_due("c-1").outcome == "skipped:criteria_not_met"


def test_campaign_only_for_created_lead(crm):
    """A created Lead joins the campaign once; an updated Lead never does."""
    campaign = crm.seed_campaign(name="Chat leads")
    existing = crm.seed_person(
        kind=PersonKind.LEAD, email="OLD@acme.test", fields={"FirstName": "O"}
    )
    users = crm.list_users()
    cfg = config(
        campaign_id=campaign,
        users=UserMapping((UserMapEntry(users[0].id, signals_user_id="u-sally"),)),
    )
    sync = integration(crm, cfg)
    sync.conversation_closed(conv("c-new"))
    sync.conversation_closed(conv("c-old", email="old@acme.test", first="Olga"))
    report = sync.run_due(LATER)
    assert report.outcome("c-new").kind is OutcomeKind.CREATED
    assert report.outcome("c-old").kind is OutcomeKind.UPDATED
    (new,) = lead_ids(crm, "lena@brightfield.test")
    assert crm.campaign_members(campaign) == {new}
    assert crm.person_fields(existing)["FirstName"] == "Olga"


def test_contact_is_never_updated_activities_attach(crm):
    """A Contact with the email is left untouched and gets the tasks."""
    contact = crm.seed_person(
        kind=PersonKind.CONTACT, email="lena@brightfield.test", fields={"FirstName": "Old"}
    )
    sync = integration(crm)
    sync.conversation_closed(conv())
    outcome = sync.run_due(LATER).outcome("c-1")
    assert outcome.kind is OutcomeKind.ATTACHED_TO_CONTACT
    assert crm.person_fields(contact)["FirstName"] == "Old"
    assert len(crm.task_markers(contact)) == 2
    assert lead_ids(crm, "lena@brightfield.test") == [contact]


def test_manual_sync_ignores_criteria_and_creates_no_task(crm):
    """Manual sync of an unscored visitor creates the Lead without tasks."""
    sync = integration(crm)
    outcome = sync.manual_sync(conv(score=None))
    assert outcome.kind is OutcomeKind.CREATED
    assert crm.task_markers(outcome.person_id) == []


def test_disabled_integration_writes_nothing(crm):
    """Off: nothing is scheduled, run_due writes nothing, manual sync and backfill refuse."""
    sync = integration(crm, config(enabled=False))
    assert sync.conversation_closed(conv()) is None
    assert sync.run_due(LATER).outcomes == ()
    with pytest.raises(IntegrationDisabledError):
        sync.manual_sync(conv())
    with pytest.raises(IntegrationDisabledError):
        sync.backfill([conv()])
    assert crm.calls["create_people"] == 0


def test_ambiguous_create_is_reconciled_not_resent(crm):
    """A create that landed but whose answer was lost is read back at once and found: one
    Lead, never a second create, and its tasks go in the same run (a write found cannot
    un-land, so the settle window matters only for one not found yet)."""
    sync = integration(crm)
    crm.fail_next(
        "create_people", TransportError("connection dropped", maybe_sent=True), after=True
    )
    sync.conversation_closed(conv())
    outcome = sync.run_due(LATER).outcome("c-1")
    assert outcome.kind is OutcomeKind.CREATED
    (lead,) = lead_ids(crm, "lena@brightfield.test")
    assert crm.calls["create_people"] == 1
    assert len(crm.task_markers(lead)) == 2
    assert sync.ledger.get_due("c-1").attempts == 0


def test_ambiguous_create_not_found_waits_out_the_window_before_any_resend(crm):
    """A create whose answer was lost and that is not found at once (it may still commit)
    is not sent again before the settle window passes: the sync waits (no failed attempt),
    is read again at the window's end, and only then sent again."""
    sync = integration(crm)
    crm.fail_next("create_people", TransportError("timed out", maybe_sent=True))
    sync.conversation_closed(conv())
    first = sync.run_due(LATER).outcome("c-1")
    assert first.kind is OutcomeKind.RETRY
    assert first.retry_at == LATER + sync.settle
    assert sync.ledger.get_due("c-1").due_at == LATER + sync.settle
    assert sync.ledger.get_due("c-1").attempts == 0  # waiting is not a failed attempt
    assert crm.calls["create_people"] == 1
    assert lead_ids(crm, "lena@brightfield.test") == []
    reads = crm.calls["find_people"]
    outcome = sync.run_due(LATER + sync.settle).outcome("c-1")
    assert outcome.kind is OutcomeKind.CREATED
    assert len(lead_ids(crm, "lena@brightfield.test")) == 1
    assert crm.calls["create_people"] == 2
    assert crm.calls["find_people"] > reads


def test_ambiguous_membership_is_sent_again_at_once_when_the_crm_keeps_one(crm):
    """With ``idempotent_memberships`` (the CRM keeps one membership per person), an
    ambiguous campaign add is sent again in the same run instead of waiting the window, and
    one membership remains even though both adds landed."""
    assert crm.capabilities.idempotent_memberships
    campaign = crm.seed_campaign(name="Chat leads")
    users = crm.list_users()
    mapping = UserMapping((UserMapEntry(users[0].id, signals_user_id="u-sally"),))
    sync = integration(crm, config(campaign_id=campaign, users=mapping))
    crm.fail_next(
        "add_to_campaign", TransportError("connection dropped", maybe_sent=True), after=True
    )
    sync.conversation_closed(conv())
    outcome = sync.run_due(LATER).outcome("c-1")
    assert outcome.kind is OutcomeKind.CREATED
    assert crm.calls["add_to_campaign"] == 2
    (lead,) = lead_ids(crm, "lena@brightfield.test")
    assert crm.campaign_members(campaign) == {lead}


def test_transient_task_failure_retried_with_backoff(crm):
    """A 5xx on the task call is reconciled, then retried after a jittered backoff."""
    sleeps: list[float] = []
    sync = integration(
        crm,
        sleep=sleeps.append,
        retry=RetryPolicy(base_delay=1.0, jitter=0.5),
        settle=timedelta(0),  # the CRM commits nothing late: reconcile at once
    )
    crm.fail_next("create_tasks", CRMServerError("unavailable", status_code=503))
    sync.conversation_closed(conv())
    outcome = sync.run_due(LATER).outcome("c-1")
    assert outcome.kind is OutcomeKind.CREATED
    (lead,) = lead_ids(crm, "lena@brightfield.test")
    assert len(crm.task_markers(lead)) == 2
    assert sleeps == [0.75]


def test_permanent_failure_is_dead_lettered_once(crm):
    """A record the CRM rejects for good is dead-lettered with its reason and not retried."""
    cfg = config(
        field_mappings=FieldMappings(lead=(FieldMapping("contact.first_name", "FirstName"),)),
        default_owner="005NOBODY00000",
    )
    sync = integration(crm, cfg)
    sync._preflight = []  # the owner check of preflight would stop it before writing
    sync.conversation_closed(conv())
    outcome = sync.run_due(LATER).outcome("c-1")
    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.error
    assert sync.ledger.get_due("c-1").state.value == "dead"
    before = crm.calls["create_people"]
    assert sync.run_due(LATER + timedelta(days=1)).outcomes == ()
    assert crm.calls["create_people"] == before


def test_auth_failure_stops_the_run_and_keeps_the_sync(crm):
    """An authentication failure of a whole call is raised; the sync stays due."""
    sync = integration(crm)
    crm.fail_next("create_people", AuthenticationError("expired", status_code=401))
    sync.conversation_closed(conv())
    with pytest.raises(AuthenticationError):
        sync.run_due(LATER)
    assert sync.ledger.get_due("c-1").state.value == "pending"
    assert sync.run_due(LATER).outcome("c-1").kind is OutcomeKind.CREATED
    assert len(lead_ids(crm, "lena@brightfield.test")) == 1


class Crash(BaseException):
    """Stands for the process dying mid-request."""


def test_crash_after_create_then_restart_is_exactly_once(crm, tmp_path):
    """Killed after the create landed: a restart yields one Lead, one task each, one membership."""
    campaign = crm.seed_campaign(name="Chat")
    users = crm.list_users()
    cfg = config(
        campaign_id=campaign,
        users=UserMapping((UserMapEntry(users[0].id, signals_user_id="u-sally"),)),
    )
    path = tmp_path / "ledger.sqlite3"
    first = integration(crm, cfg, ledger=SQLiteLedger(path), worker_id="worker-1")
    first.conversation_closed(conv())
    original = crm.create_tasks

    def dying(*args, **kwargs):
        raise Crash

    crm.create_tasks = dying  # the process dies when it reaches the tasks
    with pytest.raises(Crash):
        first.run_due(LATER)
    first.ledger.close()
    crm.create_tasks = original
    second = integration(crm, cfg, ledger=SQLiteLedger(path), worker_id="worker-1")
    assert second.run_due(LATER).outcome("c-1").kind is OutcomeKind.RETRY  # tasks settling
    outcome = second.run_due(LATER + second.settle).outcome("c-1")
    assert outcome.kind is OutcomeKind.CREATED
    (lead,) = lead_ids(crm, "lena@brightfield.test")
    assert sorted(crm.task_markers(lead)) == ["signals:c-1:meeting:m1", "signals:c-1:transcript"]
    assert crm.campaign_members(campaign) == {lead}
    second.ledger.close()


def test_duplicate_rejection_becomes_a_match(crm):
    """A create the CRM refuses as a duplicate attaches to the named record: no second Lead."""
    crm.enable_duplicate_detection()
    existing = crm.seed_person(kind=PersonKind.LEAD, email="lena@brightfield.test")
    real_find = crm.find_people
    misses = iter([True])

    def stale_find(emails, fields=()):
        if next(misses, False):
            return [() for _ in emails]  # the lookup raced the other writer
        return real_find(emails, fields)

    crm.find_people = stale_find
    sync = integration(crm)
    sync.conversation_closed(conv())
    outcome = sync.run_due(LATER).outcome("c-1")
    assert outcome.kind is OutcomeKind.UPDATED
    assert outcome.person_id == existing
    assert lead_ids(crm, "lena@brightfield.test") == [existing]
    assert len(crm.task_markers(existing)) == 2


def test_preflight_rejects_bad_mapping_and_run_due_refuses(crm):
    """A mapping to a missing field is reported by preflight and blocks writing."""
    cfg = config(
        field_mappings=FieldMappings(lead=(FieldMapping("contact.first_name", "Nope__c"),))
    )
    sync = integration(crm, cfg)
    problems = sync.preflight()
    assert problems[0].path == "field_mappings.lead[0].target"
    sync.conversation_closed(conv())
    with pytest.raises(ConfigurationError, match="Nope__c"):
        sync.run_due(LATER)
    assert crm.calls["create_people"] == 0


def test_explain_combines_reasons_and_ledger(crm):
    """Explain names every blocker and what the ledger holds."""
    sync = integration(crm)
    sync.conversation_closed(conv(score=0, email="not-an-email"))
    explanation = sync.explain("c-1", now=CLOSED)
    assert set(explanation.codes) == {"criteria_not_met", "delay_pending", "invalid_email"}
    text = explanation.as_text()
    assert "not synced" in text
    assert "scheduled for" in text


def test_dry_run_writes_nothing(crm):
    """A dry run returns the planned writes field by field and writes nothing."""
    sync = integration(crm)
    dry = sync.dry_run([conv()], now=LATER)
    (plan,) = dry.plans
    assert plan.commands[0].fields["FirstName"] == "Lena"
    assert "create_person" in dry.as_text()
    assert crm.calls["create_people"] == 0


def test_a_replaced_config_plans_with_the_new_rules(crm):
    """The engine keeps its planner across batches, but never past a change of ``config``."""
    sync = integration(crm)
    (before,) = sync.dry_run([conv()], now=LATER).plans
    sync.config = attrs.evolve(sync.config, field_mappings=FieldMappings())
    (after,) = sync.dry_run([conv()], now=LATER).plans
    assert before.commands[0].fields["FirstName"] == "Lena"
    assert "FirstName" not in after.commands[0].fields


def test_backfill_batches_calls(crm):
    """A backfill of 450 visitors costs one call per batch of 200 per kind of write."""
    sync = integration(crm, batch_size=200)
    seen: list[int] = []
    report = sync.backfill(
        (conv(f"c-{i}", email=f"v{i}@x.test", meeting=False) for i in range(450)),
        now=LATER,
        progress=seen.append,
    )
    assert report.count(OutcomeKind.CREATED) == 450
    assert seen == [200, 400, 450]
    assert crm.calls["create_people"] == 3
    assert crm.calls["create_tasks"] == 3
    assert crm.calls["find_people"] == 3


def test_budget_stops_the_run(crm):
    """When the CRM reports usage past the budget share, the run stops and the rest stays due."""

    class Usage:
        fraction_used = 0.95

    crm.api_usage = Usage()
    sync = integration(crm, api_budget=0.9)
    sync.conversation_closed(conv())
    report = sync.run_due(LATER)
    assert report.budget_exhausted
    assert sync.ledger.get_due("c-1").state.value == "pending"


@pytest.mark.anyio
async def test_async_twin_same_behaviour(crm):
    """The async integration creates, attaches tasks and completes exactly as the blocking one."""
    users = crm.list_users()
    cfg = config(users=UserMapping((UserMapEntry(users[0].id, signals_user_id="u-sally"),)))
    naps: list[float] = []

    async def nap(seconds: float) -> None:
        naps.append(seconds)

    sync = AsyncIntegration(
        crm,
        cfg,
        ledger=MemoryLedger(),
        sleep=nap,
        random=lambda: 0.0,
        clock=lambda: LATER,
        settle=timedelta(0),
    )
    crm.fail_next("acreate_tasks", CRMServerError("busy", status_code=503))
    sync.conversation_closed(conv())
    report = await sync.arun_due(LATER)
    assert report.outcome("c-1").kind is OutcomeKind.CREATED
    (lead,) = lead_ids(crm, "lena@brightfield.test")
    assert len(crm.task_markers(lead)) == 2
    assert naps == [0.5]
    manual = await sync.amanual_sync(conv("c-2", email="two@x.test", score=None))
    assert manual.kind is OutcomeKind.CREATED
    explanation = await sync.aexplain("c-1", now=LATER)
    assert explanation.ledger is not None


class LaggyCRM(InMemoryCRM):
    """An in-memory CRM whose marker search trails writes, as HubSpot's does."""

    @property
    def capabilities(self):
        import attrs

        return attrs.evolve(super().capabilities, marker_search_lag=15.0)


def test_marker_search_lag_defers_task_reconciliation():
    """With a lagging marker search, an ambiguous task write is settled by a later run, never
    re-sent blindly: still one task per activity."""
    crm = LaggyCRM(person_kind=PersonKind.LEAD)
    crm.seed_user(email="sally@vendor.test")
    sync = integration(crm, settle=timedelta(0))  # the lag alone defers the read
    crm.fail_next("create_tasks", TransportError("read timeout", maybe_sent=True), after=True)
    sync.conversation_closed(conv())
    first = sync.run_due(LATER).outcome("c-1")
    assert first.kind is OutcomeKind.RETRY
    (lead,) = lead_ids(crm, "lena@brightfield.test")
    assert len(crm.task_markers(lead)) == 2
    assert crm.calls["reconcile"] == 0
    second = sync.run_due(LATER + timedelta(minutes=6)).outcome("c-1")
    assert second.kind is OutcomeKind.CREATED
    assert len(crm.task_markers(lead)) == 2
    assert crm.calls["create_tasks"] == 1


def test_another_workers_lease_is_respected(crm):
    """A sync leased by another worker is left alone until its lease ends by the ledger's
    clock."""
    wall = [LATER]
    sync = integration(crm, worker_id="worker-b", ledger=MemoryLedger(clock=lambda: wall[0]))
    sync.conversation_closed(conv())
    taken = sync.ledger.claim(LATER, 10, owner="worker-a", lease=timedelta(minutes=5))
    assert [d.conversation_id for d in taken] == ["c-1"]
    assert sync.run_due(LATER).outcomes == ()
    assert lead_ids(crm, "lena@brightfield.test") == []
    wall[0] += timedelta(minutes=6)
    after = sync.run_due(LATER + timedelta(minutes=6))
    assert after.outcome("c-1").kind is OutcomeKind.CREATED


def test_account_owner_end_to_end_with_cache():
    """Account ownership reads the CRM account once, applies the rules, and caches the answer."""
    from signals_crm.core.config import DomainList, OwnershipConfig, OwnershipRule, Segment

    crm = InMemoryCRM(person_kind=PersonKind.LEAD)
    rep = crm.seed_user(email="rep@vendor.test")
    crm.seed_account(domain="acme.test", name="Acme", fields={"OwnerId": rep})
    now = [LATER]
    cfg = config(
        users=UserMapping((UserMapEntry(rep, signals_user_id="u-rep"),)),
        ownership=OwnershipConfig(
            rules=(OwnershipRule("named", ("OwnerId",), fallback_user="u-fallback"),),
            segments={"named": Segment("named", DomainList({"acme.test"}))},
            default_account_owner="u-default",
        ),
    )
    sync = Integration(
        crm, cfg, ledger=MemoryLedger(), clock=lambda: now[0], owner_cache_ttl=timedelta(minutes=10)
    )
    from signals_crm.core.model import Company
    from signals_crm.core.ownership import OwnershipPath

    result = sync.account_owner(Company(domain="www.ACME.test"))
    assert (result.signals_user, result.path) == ("u-rep", OwnershipPath.OWNER_FIELD_1)
    assert sync.account_owner(Company(domain="acme.test")) == result
    assert crm.calls["find_accounts"] == 1
    now[0] = LATER + timedelta(minutes=11)
    other = sync.account_owner(Company(domain="unknown.test"))
    assert (other.signals_user, other.path) == ("u-default", OwnershipPath.DEFAULT_ACCOUNT_OWNER)
    sync.account_owner(Company(domain="acme.test"))
    assert crm.calls["find_accounts"] == 3


def test_preflight_flags_inactive_and_missing_owners(crm):
    """Preflight names mapped CRM users that are missing or inactive."""
    inactive = crm.seed_user(email="gone@vendor.test", active=False)
    cfg = config(
        users=UserMapping(
            (
                UserMapEntry(inactive, signals_user_id="u-gone"),
                UserMapEntry("005MISSING0000", signals_user_id="u-x"),
            )
        ),
        default_owner="005MISSING0001",
    )
    problems = integration(crm, cfg).preflight()
    assert [p.path for p in problems] == [
        "user_mapping[0].crm_user_id",
        "user_mapping[1].crm_user_id",
        "default_owner",
    ]


def test_propose_user_mapping_reads_crm_users(crm):
    """The engine proposes a mapping from the CRM's active users."""
    crm.seed_user(email="bob@vendor.test")
    proposal = integration(crm).propose_user_mapping(
        [SignalsUser(id="u-bob", email="BOB@vendor.test"), SignalsUser(id="u-x", email="x@y.z")]
    )
    assert [e.signals_user_id for e in proposal.mapping.entries] == ["u-bob"]
    assert [u.id for u in proposal.unmatched] == ["u-x"]


def test_another_workers_unfinished_send_is_adopted_and_settles_a_full_window(crm):
    """SENT commands of another worker may be in flight: they are adopted (UNKNOWN from this
    worker's clock); read at once and not found, they are taken as absent only a full settle
    window later, then finished."""
    ledger = MemoryLedger()
    first = integration(crm, ledger=ledger, worker_id="worker-a")
    first.conversation_closed(conv())
    original = crm.create_tasks

    def dying(*args, **kwargs):
        raise Crash

    crm.create_tasks = dying
    with pytest.raises(Crash):
        first.run_due(LATER)
    crm.create_tasks = original
    second = integration(crm, ledger=ledger, worker_id="worker-b")
    waiting = second.run_due(LATER).outcome("c-1")
    assert waiting.kind is OutcomeKind.RETRY  # worker-a's tasks may still be on the wire
    (lead,) = lead_ids(crm, "lena@brightfield.test")
    assert crm.task_markers(lead) == []
    assert crm.calls["reconcile"] == 1  # read at once: not found, so not taken as absent
    assert crm.calls["create_tasks"] == 0  # never sent again before the window
    adopted = [r for r in ledger.commands_for("c-1") if r.kind == "create_task"]
    assert {r.state.value for r in adopted} == {"unknown"}
    assert {r.owner for r in adopted} == {"worker-b"}
    assert ledger.get_due("c-1").due_at == LATER + second.settle  # rescheduled to the window
    assert second.run_due(LATER + timedelta(minutes=11)).outcomes == ()
    assert crm.calls["reconcile"] == 1
    later = second.run_due(LATER + second.settle).outcome("c-1")
    assert later.kind is OutcomeKind.CREATED
    assert len(crm.task_markers(lead)) == 2


def test_engine_options_are_validated(crm):
    """Bad engine options raise a ConfigurationError naming the option."""
    for options, path in (
        ({"api_budget": 0}, "api_budget"),
        ({"batch_size": 0}, "batch_size"),
        ({"lease": timedelta(0)}, "lease"),
    ):
        with pytest.raises(ConfigurationError) as caught:
            integration(crm, **options)
        assert caught.value.paths == (path,)
    with pytest.raises(ConfigurationError) as caught:
        RetryPolicy(reschedule_after=0)
    assert caught.value.paths == ("retry.reschedule_after",)


def test_a_sync_waiting_for_its_window_stays_with_the_worker_that_sent_the_write(crm):
    """A sync waiting for a settle window keeps its lease: at the window's end the worker
    that sent the write reads it back, while another worker cannot take it over (it would
    have to adopt the write and wait a full window more by its own clock)."""
    ledger = MemoryLedger()
    first = integration(crm, ledger=ledger, worker_id="worker-a")
    other = integration(crm, ledger=ledger, worker_id="worker-b")
    crm.fail_next("create_people", TransportError("timed out", maybe_sent=True))
    first.conversation_closed(conv())
    assert first.run_due(LATER).outcome("c-1").kind is OutcomeKind.RETRY
    assert ledger.get_due("c-1").lease_owner == "worker-a"
    assert other.run_due(LATER + first.settle).outcomes == ()
    done = first.run_due(LATER + first.settle).outcome("c-1")
    assert done.kind is OutcomeKind.CREATED
    assert crm.calls["create_people"] == 2
    assert len(lead_ids(crm, "lena@brightfield.test")) == 1
    assert ledger.get_due("c-1").lease_owner is None


def test_a_5xx_answer_is_not_read_back_before_the_window(crm):
    """A 5xx answer seldom means the write landed, so it is not read back at once (that read
    would mostly spend the CRM's rate limit): the sync waits the settle window, then finds
    the create that did land — one Lead, no second create."""
    sync = integration(crm)
    crm.fail_next("create_people", CRMServerError("unavailable", status_code=503), after=True)
    sync.conversation_closed(conv())
    reads = crm.calls["find_people"]
    first = sync.run_due(LATER).outcome("c-1")
    assert first.kind is OutcomeKind.RETRY
    assert first.retry_at == LATER + sync.settle
    assert crm.calls["find_people"] == reads + 1  # the planning lookup only
    done = sync.run_due(LATER + sync.settle).outcome("c-1")
    assert done.kind is OutcomeKind.CREATED
    assert crm.calls["create_people"] == 1
    assert len(lead_ids(crm, "lena@brightfield.test")) == 1
