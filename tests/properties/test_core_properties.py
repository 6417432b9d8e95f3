"""Invariants of every core rule, checked with the strategies the library ships."""

from __future__ import annotations

from datetime import timedelta

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from signals_crm.core.config import ContactPolicy, Criteria, SyncConfig
from signals_crm.core.criteria import check_eligibility, meets_criteria
from signals_crm.core.mapping import build_update_fields, is_empty, same_value
from signals_crm.core.matching import MatchOutcome, decide_match
from signals_crm.core.model import (
    ConversationStatus,
    PersonKind,
    Role,
    is_valid_email,
    normalize_email,
)
from signals_crm.core.owner import resolve_owner
from signals_crm.core.ownership import decide_account_owner, segment_contains
from signals_crm.core.plan import CommandKind, PlanOutcome, SyncMode, plan_sync
from signals_crm.testing import strategies as sst
from signals_crm.testing.static import HUBSPOT_LIKE, SALESFORCE_LIKE, run_with_state

CRITERIA_ORDER = [Criteria.ALL, Criteria.ONE_STAR, Criteria.TWO_STARS, Criteria.THREE_STARS]


@given(sst.lead_scores(), st.integers(0, 3), st.integers(0, 3))
def test_criteria_monotonic(score, a, b):
    """A stricter criteria never passes what a looser one refuses; higher scores pass more."""
    loose, strict = sorted((a, b))
    if meets_criteria(score, CRITERIA_ORDER[strict]):
        assert meets_criteria(score, CRITERIA_ORDER[loose])
    if score is not None and score < 3 and meets_criteria(score, CRITERIA_ORDER[strict]):
        assert meets_criteria(score + 1, CRITERIA_ORDER[strict])


@given(sst.lead_scores())
def test_unscored_passes_only_all(score):
    """An unscored visitor passes ALL and nothing else."""
    passing = [c for c in Criteria if meets_criteria(score, c)]
    if score is None:
        assert passing == [Criteria.ALL]
    else:
        assert Criteria.ALL in passing


@given(sst.participants(), st.lists(st.sampled_from(list(Role)), unique=True), sst.user_mappings())
def test_owner_never_a_lower_priority_candidate(people, sources, users):
    """No present and mapped higher-priority candidate is ever passed over for a lower one."""
    decision = resolve_owner(people, tuple(sources), users)
    eligible = [
        r
        for r in sorted(sources, key=lambda r: r.priority)
        if people.get(r) is not None and users.crm_user_for(people.get(r)) is not None
    ]
    if eligible:
        assert decision.source is eligible[0]
        assert decision.owner_id == users.crm_user_for(people.get(eligible[0]))
    else:
        assert decision.source is None
        assert decision.owner_id is None


@given(
    sst.conversations(closed=True),
    sst.sync_configs(enabled=True, ownership=False),
    st.booleans().flatmap(
        lambda hubspot: st.tuples(
            st.just(hubspot),
            sst.crm_people(
                person_kind=PersonKind.CONTACT if hubspot else PersonKind.LEAD, max_size=4
            ),
        )
    ),
)
@settings(max_examples=150)
def test_update_never_touches_what_it_must_not(conversation, config, crm_state):
    """An update only writes changed overwrite fields of a non-converted person record, never
    a Contact (Salesforce), the owner or the campaign."""
    hubspot, records = crm_state
    caps = HUBSPOT_LIKE if hubspot else SALESFORCE_LIKE
    flow = plan_sync([conversation], config, caps, mode=SyncMode.MANUAL)
    (result,) = run_with_state(flow, people=records)
    by_id = {r.id: r for r in records}
    overwrite = {
        m.target
        for m in (config.field_mappings.contact if hubspot else config.field_mappings.lead)
        if m.overwrite
    }
    for command in result.commands_of(CommandKind.UPDATE_PERSON):
        target = by_id[command.person.id]
        assert target.kind is caps.person_kind
        assert not target.is_converted
        assert set(command.fields) <= overwrite
        assert command.fields
        for name, value in command.fields.items():
            assert not same_value(value, target.fields.get(name))
        assert command.owner_id is None
    if result.outcome in (PlanOutcome.UPDATE, PlanOutcome.UNCHANGED, PlanOutcome.ATTACH_CONTACT):
        assert not result.commands_of(CommandKind.ADD_TO_CAMPAIGN)
        assert not result.commands_of(CommandKind.CREATE_PERSON)


@given(sst.conversations(closed=True), sst.sync_configs(enabled=True))
def test_no_update_when_nothing_changes(conversation, config):
    """When the CRM already holds every overwrite value, no update is planned."""
    values = conversation.field_values()
    current = {m.target: values.get(m.source) for m in config.field_mappings.lead}
    payload = build_update_fields(values, config.field_mappings.lead, current)
    assert dict(payload.fields) == {}


@given(
    st.sampled_from(sst.EMAIL_POOL).flatmap(
        lambda e: st.tuples(sst.email_variants(e), sst.email_variants(e))
    )
)
def test_email_variants_match_the_same_record(pair):
    """Emails differing only in case or surrounding spaces match the same record."""
    stored, visitor = pair
    from signals_crm.core.model import PersonRecord

    record = PersonRecord(id="00Q1", kind=PersonKind.LEAD, email=stored)
    decision = decide_match(
        visitor,
        [record],
        person_kind=PersonKind.LEAD,
        separate_contacts=True,
        policy=ContactPolicy.ATTACH,
    )
    assert decision.outcome is MatchOutcome.UPDATE
    assert decision.record == record
    assert is_valid_email(visitor)


@given(sst.crm_people(person_kind=PersonKind.LEAD), sst.emails(), st.booleans())
def test_contacts_never_updated_on_salesforce(records, email, attach):
    """With separate Contacts, a Contact is never the target of an update."""
    policy = ContactPolicy.ATTACH if attach else ContactPolicy.CREATE_LEAD
    decision = decide_match(
        email, records, person_kind=PersonKind.LEAD, separate_contacts=True, policy=policy
    )
    if decision.outcome is MatchOutcome.UPDATE:
        assert decision.record is not None
        assert decision.record.kind is PersonKind.LEAD
        assert not decision.record.is_converted
        assert normalize_email(decision.record.email or "") == normalize_email(email)
    if decision.outcome is MatchOutcome.ATTACH_CONTACT:
        assert attach


@given(sst.conversations(), sst.sync_configs(), st.integers(-600, 3000))
def test_explain_blockers_are_exactly_the_failing_conditions(conversation, config, minutes):
    """The blockers are exactly the conditions that fail, each once."""
    base = conversation.closed_at or sst.BASE_TIME
    now = base + timedelta(minutes=minutes)
    codes = set(check_eligibility(conversation, config, now).codes)
    expected = set()
    if not config.enabled:
        expected.add("integration_disabled")
    if conversation.status is not ConversationStatus.CLOSED:
        expected.add("conversation_open")
    if not meets_criteria(conversation.lead_score, config.criteria):
        expected.add("criteria_not_met")
    if (
        conversation.closed_at is not None
        and now < conversation.closed_at + config.synchronization_delay
    ):
        expected.add("delay_pending")
    email = conversation.email
    if email is None or not email.strip():
        expected.add("no_email")
    elif not is_valid_email(email):
        expected.add("invalid_email")
    assert codes == expected


@given(sst.companies(), sst.ownership_configs(), sst.user_mappings(), st.data())
def test_first_matching_rule_wins_and_fallbacks_apply_in_order(company, config, users, data):
    """The first rule whose segment holds the company decides; owner field 1, then 2, then the
    rule's fallback user, then the default account owner."""
    account = data.draw(st.one_of(st.none(), sst.account_records(domain=company.domain or "x")))
    result = decide_account_owner(company, account, config, users)
    matching = [
        i
        for i, rule in enumerate(config.rules)
        if segment_contains(config.segments[rule.segment], company)
    ]
    if matching:
        assert result.rule_index == matching[0]
        rule = config.rules[matching[0]]
        owner_fields, fallback_user = rule.owner_fields, rule.fallback_user
    else:
        assert result.rule_index is None
        fb = config.fallback
        owner_fields = fb.owner_fields if fb else ()
        fallback_user = fb.fallback_user if fb else None
    expected = None
    if account is not None:
        for field in owner_fields[:2]:
            crm = account.fields.get(field)
            entry = users.signals_user_for(crm) if crm else None
            if entry is not None and entry.licensed:
                expected = entry.signals_user_id or entry.signals_email
                break
    if expected is None and (matching or config.fallback):
        expected = fallback_user
    if expected is None:
        expected = config.default_account_owner
    assert result.signals_user == expected


@given(
    st.lists(sst.conversations(closed=True), max_size=6, unique_by=lambda c: c.id),
    sst.sync_configs(ownership=False),
    sst.crm_people(person_kind=PersonKind.LEAD, max_size=5),
)
@settings(max_examples=100)
def test_plans_are_deterministic(conversations, config, records):
    """The same input gives the same plans, keys included."""
    now = sst.BASE_TIME + timedelta(days=3)
    first = run_with_state(
        plan_sync(conversations, config, SALESFORCE_LIKE, now=now), people=records
    )
    second = run_with_state(
        plan_sync(conversations, config, SALESFORCE_LIKE, now=now), people=records
    )
    assert first == second
    keys = [c.key for p in first for c in p.commands]
    assert len(keys) == len(set(keys))


@given(
    st.lists(sst.conversations(closed=True), min_size=2, max_size=6, unique_by=lambda c: c.id),
    sst.sync_configs(enabled=True, ownership=False),
)
@settings(max_examples=100)
def test_one_create_per_email_in_a_batch(conversations, config):
    """However many conversations of a batch share an email, one person record is created."""
    config = attrs.evolve(config, criteria=Criteria.ALL)
    now = sst.BASE_TIME + timedelta(days=3)
    plans = run_with_state(plan_sync(conversations, config, SALESFORCE_LIKE, now=now))
    creates = [
        normalize_email(c.email) for p in plans for c in p.commands_of(CommandKind.CREATE_PERSON)
    ]
    assert len(creates) == len(set(creates))
    memberships = [c for p in plans for c in p.commands_of(CommandKind.ADD_TO_CAMPAIGN)]
    assert len(memberships) == (len(creates) if config.campaign_id else 0)


@given(
    sst.conversations(closed=True, visitor=sst.visitors(email=sst.emails())),
    sst.sync_configs(enabled=True, ownership=False),
)
def test_create_sends_no_empty_value(conversation, config):
    """A create never sends an empty value."""
    (result,) = run_with_state(
        plan_sync([conversation], config, SALESFORCE_LIKE, mode=SyncMode.MANUAL)
    )
    for command in result.commands_of(CommandKind.CREATE_PERSON):
        assert all(not is_empty(v) for v in command.fields.values())
        assert command.fields["Email"] == conversation.email.strip()


def test_sync_config_is_hashable_by_value():
    """Equal configurations compare equal (plans are compared in the determinism test)."""
    assert SyncConfig() == SyncConfig()
