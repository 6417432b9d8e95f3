"""Account ownership: segments, owner fields, fallbacks, the path taken."""

from __future__ import annotations

from signals_crm.core.config import (
    Condition,
    ConditionGroup,
    DomainList,
    FallbackCriteria,
    Operator,
    OwnershipConfig,
    OwnershipRule,
    Segment,
    UserMapEntry,
    UserMapping,
)
from signals_crm.core.model import AccountRecord, Company
from signals_crm.core.ownership import (
    OwnershipPath,
    decide_account_owner,
    plan_account_owners,
    segment_contains,
)
from signals_crm.testing.static import run_with_state

USERS = UserMapping(
    (
        UserMapEntry("005A", signals_user_id="alice"),
        UserMapEntry("005B", signals_user_id="bob"),
        UserMapEntry("005C", signals_user_id="carol", licensed=False),
    )
)
ENTERPRISE = Segment(
    "enterprise",
    ConditionGroup(
        (
            Condition("employees", Operator.GTE, 1000),
            ConditionGroup(
                (
                    Condition("country", Operator.IN, ("US", "CA")),
                    Condition("industry", Operator.EQ, "banking"),
                ),
                match="any",
            ),
        )
    ),
)
NAMED = Segment("named", DomainList({"www.Acme.test", "globex.test"}))
CONFIG = OwnershipConfig(
    rules=(
        OwnershipRule("named", ("OwnerId", "SDR_Owner__c"), fallback_user="bob"),
        OwnershipRule("enterprise", ("OwnerId",), fallback_user=None),
    ),
    segments={"named": NAMED, "enterprise": ENTERPRISE},
    fallback=FallbackCriteria(("OwnerId",), fallback_user="bob"),
    default_account_owner="alice",
)


def account(**fields) -> AccountRecord:
    return AccountRecord(id="001X", domain="acme.test", fields=fields)


def test_segments_conditions_and_domain_lists():
    """Condition groups nest all/any; domain lists ignore case and www."""
    big_us = Company(domain="x.test", attributes={"employees": "5000", "country": "US"})
    big_fr_bank = Company(attributes={"employees": 2000, "country": "FR", "industry": "Banking"})
    small = Company(attributes={"employees": 10, "country": "US"})
    assert segment_contains(ENTERPRISE, big_us)
    assert segment_contains(ENTERPRISE, big_fr_bank)
    assert not segment_contains(ENTERPRISE, small)
    assert segment_contains(NAMED, Company(domain="https://ACME.test/about"))
    assert not segment_contains(NAMED, Company(domain=None))


def test_owner_field_one_then_two_then_rule_fallback():
    """Field 1 when it is a Signals user, else field 2, else the rule's fallback user."""
    company = Company(domain="acme.test")
    first = decide_account_owner(
        company, account(OwnerId="005A", SDR_Owner__c="005B"), CONFIG, USERS
    )
    assert (first.signals_user, first.path) == ("alice", OwnershipPath.OWNER_FIELD_1)
    second = decide_account_owner(
        company, account(OwnerId="005Z", SDR_Owner__c="005B"), CONFIG, USERS
    )
    assert (second.signals_user, second.path) == ("bob", OwnershipPath.OWNER_FIELD_2)
    unlicensed = decide_account_owner(company, account(OwnerId="005C"), CONFIG, USERS)
    assert (unlicensed.signals_user, unlicensed.path) == ("bob", OwnershipPath.RULE_FALLBACK_USER)
    assert "owner_not_licensed" in [r.code for r in unlicensed.trace]
    assert unlicensed.rule_index == 0


def test_rule_without_fallback_goes_to_default_owner():
    """A matching rule with no fallback user ends at the default account owner."""
    company = Company(domain="big.test", attributes={"employees": 5000, "country": "US"})
    result = decide_account_owner(company, None, CONFIG, USERS)
    assert result.rule_index == 1
    assert (result.signals_user, result.path) == ("alice", OwnershipPath.DEFAULT_ACCOUNT_OWNER)


def test_company_in_no_segment_uses_fallback_criteria():
    """A company in no segment goes through the fallback criteria."""
    company = Company(domain="tiny.test", attributes={"employees": 3})
    result = decide_account_owner(company, account(OwnerId="005B"), CONFIG, USERS)
    assert (result.signals_user, result.path) == ("bob", OwnershipPath.FALLBACK_OWNER_FIELD_1)
    assert result.rule_index is None


def test_plan_pulls_account_fields_before_segmenting():
    """Pulled account fields become attributes that segments test, with one lookup."""
    accounts = [
        AccountRecord(
            id="001A",
            domain="big.test",
            fields={"NumberOfEmployees": 9000, "BillingCountry": "US", "OwnerId": "005B"},
        ),
    ]
    flow = plan_account_owners(
        [Company(domain="big.test"), Company(domain="none.test")],
        CONFIG,
        USERS,
        pulled=[("employees", "NumberOfEmployees"), ("country", "BillingCountry")],
    )
    big, none = run_with_state(flow, accounts=accounts)
    assert (big.signals_user, big.path, big.rule_index) == ("bob", OwnershipPath.OWNER_FIELD_1, 1)
    assert none.account_id is None
    assert none.path is OwnershipPath.FALLBACK_USER
