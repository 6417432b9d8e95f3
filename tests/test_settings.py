"""User-facing settings: validation with every problem at once, round trips, core values."""

from __future__ import annotations

import json
import re
import typing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from pydantic import ValidationError

from signals_crm.core.config import (
    Condition,
    ConditionGroup,
    ContactPolicy,
    Criteria,
    DomainList,
    FallbackCriteria,
    FieldMapping,
    Operator,
    OwnershipRule,
    Segment,
    SyncConfig,
    UserMapEntry,
)
from signals_crm.core.model import ActivityKind, Role, SignalsUser
from signals_crm.exceptions import ConfigurationError
from signals_crm.settings import (
    DEFAULT_PLACEHOLDERS,
    ConditionGroupSettings,
    CriteriaName,
    DomainListSettings,
    FieldMappingSettings,
    FieldMappingsSettings,
    IntegrationSettings,
    OperatorName,
    OwnershipRuleSettings,
    OwnerSource,
    TaskEvent,
    format_delay,
    is_crm_id,
    load_settings,
    parse_delay,
)
from signals_crm.testing.strategies_settings import delays, settings

DOCS = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"

SF_USER = "0055g00000AbCdEAAZ"
SF_CAMPAIGN = "7015g000000AbCdAAK"


def problems_of(data: dict[str, Any]) -> dict[str, str]:
    """Every problem of ``data`` as path → message (asserting exactly one per path)."""
    with pytest.raises(ConfigurationError) as exc:
        IntegrationSettings.from_dict(data)
    found = [(p.path, p.message) for p in exc.value.problems]
    assert len({p for p, _ in found}) == len(found), found
    return dict(found)


def full_settings() -> dict[str, Any]:
    """A settings document using every key."""
    return {
        "enabled": True,
        "criteria": "two_stars",
        "synchronization_delay": "15m",
        "task_events": ["meeting_booked", "chat_transcript"],
        "campaign_id": SF_CAMPAIGN,
        "lead_owner_sources": ["closer", "meeting_scheduler"],
        "default_owner": SF_USER,
        "field_mappings": {
            "lead": [
                {"source": "contact.first_name", "target": "FirstName", "overwrite": True},
                {"source": "contact.last_name", "target": "LastName"},
                {"source": "chat.traffic_source", "target": "LeadSource"},
            ],
            "contact": [{"source": "contact.email", "target": "email"}],
            "account": [{"source": "company.tier", "target": "Tier__c"}],
        },
        "user_mapping": [
            {"signals_user_id": 5512, "signals_email": "Priya@X.test", "crm_user_id": SF_USER},
            {"signals_email": "marco@x.test", "crm_user_id": "12345", "licensed": False},
        ],
        "existing_contact": "create_lead",
        "placeholders": {"LastName": "Unknown"},
        "ownership_rules": [
            {"segment": "enterprise", "owner_fields": ["OwnerId", "Backup__c"]},
            {"segment": "named accounts", "owner_fields": ["OwnerId"], "fallback_user": "5520"},
        ],
        "segments": {
            "enterprise": {
                "match": "all",
                "conditions": [
                    {"attribute": "employees", "operator": "gte", "value": 1000},
                    {
                        "match": "any",
                        "conditions": [
                            {"attribute": "company.tier", "operator": "in", "value": ["A", "B"]},
                            {"attribute": "region", "operator": "is_set"},
                        ],
                    },
                ],
            },
            "named accounts": {"domains": ["acme.test", "www.globex.test"]},
        },
        "fallback_criteria": {"owner_fields": ["OwnerId"], "fallback_user": "5512"},
        "default_account_owner": 5512,
    }


# ------------------------------------------------------------------------------------------------
# Defaults and conversion


def test_empty_settings_take_the_documented_defaults() -> None:
    """An empty document gives the defaults, and converts to the core's defaults."""
    s = IntegrationSettings.from_dict({})
    assert s.enabled is True
    assert s.criteria == "all"
    assert s.synchronization_delay == timedelta(0)
    assert s.task_events == ("chat_transcript", "meeting_booked")
    assert s.lead_owner_sources == ("meeting_scheduler", "last_routed", "closer")
    assert s.campaign_id is None
    assert s.default_owner is None
    assert s.existing_contact == "attach"
    assert s.placeholders == {"LastName": "[not provided]", "Company": "[not provided]"}
    assert s.placeholders == dict(DEFAULT_PLACEHOLDERS)
    config = s.to_config()
    assert config == SyncConfig(placeholders=DEFAULT_PLACEHOLDERS)


def test_to_config_converts_every_setting() -> None:
    """Every setting lands in the matching core value of SyncConfig."""
    config = IntegrationSettings.from_dict(full_settings()).to_config()
    assert config.enabled is True
    assert config.criteria is Criteria.TWO_STARS
    assert config.synchronization_delay == timedelta(minutes=15)
    assert config.task_events == frozenset(ActivityKind)
    assert config.campaign_id == SF_CAMPAIGN
    assert config.lead_owner_sources == (Role.MEETING_SCHEDULER, Role.CLOSER)
    assert config.default_owner == SF_USER
    assert config.field_mappings.lead == (
        FieldMapping("contact.first_name", "FirstName", overwrite=True),
        FieldMapping("contact.last_name", "LastName"),
        FieldMapping("chat.traffic_source", "LeadSource"),
    )
    assert config.field_mappings.contact == (FieldMapping("contact.email", "email"),)
    assert config.field_mappings.account == (FieldMapping("company.tier", "Tier__c"),)
    assert config.users.entries == (
        UserMapEntry(SF_USER, signals_user_id="5512", signals_email="Priya@X.test"),
        UserMapEntry("12345", signals_email="marco@x.test", licensed=False),
    )
    assert config.users.crm_user_for(SignalsUser(email="priya@x.test")) == SF_USER
    assert config.existing_contact is ContactPolicy.CREATE_LEAD
    assert config.placeholders == {"LastName": "Unknown"}
    ownership = config.ownership
    assert ownership.rules == (
        OwnershipRule("enterprise", ("OwnerId", "Backup__c")),
        OwnershipRule("named accounts", ("OwnerId",), "5520"),
    )
    assert ownership.segments["enterprise"] == Segment(
        "enterprise",
        ConditionGroup(
            (
                Condition("employees", Operator.GTE, 1000),
                ConditionGroup(
                    (
                        Condition("company.tier", Operator.IN, ("A", "B")),
                        Condition("region", Operator.IS_SET),
                    ),
                    match="any",
                ),
            ),
            match="all",
        ),
    )
    domains: Any = {"acme.test", "www.globex.test"}  # (attrs' frozenset converter defeats mypy)
    assert ownership.segments["named accounts"] == Segment("named accounts", DomainList(domains))
    assert ownership.fallback == FallbackCriteria(("OwnerId",), "5512")
    assert ownership.default_account_owner == "5512"


def test_literal_names_match_the_core_enums() -> None:
    """The settings' allowed words are exactly the values of the core enums."""
    assert set(typing.get_args(CriteriaName)) == {c.value for c in Criteria}
    assert set(typing.get_args(TaskEvent)) == {k.value for k in ActivityKind}
    assert set(typing.get_args(OwnerSource)) == {r.value for r in Role}
    assert set(typing.get_args(OperatorName)) == {o.value for o in Operator}
    assert [r.value for r in sorted(Role, key=lambda r: r.priority)] == list(
        typing.get_args(OwnerSource)
    )


def test_owner_sources_and_task_events_are_sets_in_fixed_order() -> None:
    """The order the user writes is irrelevant: sources are kept in the fixed priority order."""
    a = IntegrationSettings.from_dict({"lead_owner_sources": ["closer", "last_routed"]})
    b = IntegrationSettings.from_dict({"lead_owner_sources": ["last_routed", "closer"]})
    assert a == b
    assert a.lead_owner_sources == ("last_routed", "closer")
    events = IntegrationSettings.from_dict({"task_events": ["meeting_booked", "chat_transcript"]})
    assert events.task_events == ("chat_transcript", "meeting_booked")
    none = IntegrationSettings.from_dict({"lead_owner_sources": [], "task_events": []})
    assert none.to_config().lead_owner_sources == ()
    assert none.to_config().task_events == frozenset()


def test_ids_written_as_integers_are_kept_as_text() -> None:
    """HubSpot and Signals ids may be written as numbers; they are stored as text."""
    s = IntegrationSettings.from_dict(
        {
            "default_owner": 123456,
            "campaign_id": 987,
            "user_mapping": [{"signals_user_id": 42, "crm_user_id": 7}],
        }
    )
    assert s.default_owner == "123456"
    assert s.campaign_id == "987"
    assert s.user_mapping[0].signals_user_id == "42"
    assert s.user_mapping[0].crm_user_id == "7"


# ------------------------------------------------------------------------------------------------
# Errors: every kind, all at once, with paths


def test_every_problem_is_reported_at_once_with_its_path() -> None:
    """One ConfigurationError lists every problem of every kind, each with its path."""
    data = full_settings()
    data["critera"] = "all"  # unknown key (typo)
    data["synchronization_delay"] = -5
    data["lead_owner_sources"] = ["closer", "meeting_scheduler", "closer"]
    data["campaign_id"] = "7015g 000000AbCd"
    data["field_mappings"]["lead"].append({"source": "contact.email", "target": "firstname"})
    data["ownership_rules"].append(
        {"segment": "enterprise", "owner_fields": ["OwnerId", "Backup__c", "Third__c"]}
    )
    data["ownership_rules"].append({"segment": "midmarket", "owner_fields": ["OwnerId"]})
    data["user_mapping"][1]["crm_user_id"] = "not an id!"
    found = problems_of(data)
    assert found == {
        "critera": "unknown key; did you mean 'criteria'?",
        "synchronization_delay": "must not be negative",
        "lead_owner_sources[2]": "duplicate source 'closer'",
        "campaign_id": (
            "malformed CRM id '7015g 000000AbCd': expected 1 to 255 characters without spaces "
            "or control characters"
        ),
        "field_mappings.lead[3].target": "duplicate target 'firstname' (also [0])",
        "ownership_rules[2].owner_fields": "at most 2 fields",
        "ownership_rules[2].segment": (
            "segment 'enterprise' already has rule ownership_rules[0]; this rule would never apply"
        ),
        "ownership_rules[3].segment": "unknown segment 'midmarket'",
        "user_mapping[1].crm_user_id": (
            "malformed CRM id 'not an id!': expected 1 to 255 characters without spaces or "
            "control characters"
        ),
    }


def test_the_issue_example_message() -> None:
    """Three owner fields read exactly ``ownership_rules[1].owner_fields: at most 2 fields``."""
    data = {
        "segments": {"a": {"domains": ["a.test"]}, "b": {"domains": ["b.test"]}},
        "ownership_rules": [
            {"segment": "a", "owner_fields": ["OwnerId"]},
            {"segment": "b", "owner_fields": ["F1", "F2", "F3"]},
        ],
    }
    with pytest.raises(ConfigurationError) as exc:
        IntegrationSettings.from_dict(data)
    assert str(exc.value) == (
        "1 configuration problem:\n  ownership_rules[1].owner_fields: at most 2 fields"
    )
    assert isinstance(exc.value, ValueError)


def test_cross_checks_run_even_when_fields_fail() -> None:
    """A rule naming an unknown segment is reported alongside type errors elsewhere."""
    found = problems_of(
        {
            "enabled": "yes",
            "segments": {"real": {"domains": ["ok.test", "not a domain"]}},
            "ownership_rules": [{"segment": "ghost", "owner_fields": []}],
        }
    )
    assert found == {
        "enabled": "Input should be a valid boolean",
        "segments.real.domains[1]": "not a bare domain such as example.com: 'not a domain'",
        "ownership_rules[0].owner_fields": "at least 1 field",
        "ownership_rules[0].segment": "unknown segment 'ghost'",
    }


def test_rules_without_any_segments_name_unknown_segments() -> None:
    """With no segments at all, every rule's segment is unknown."""
    found = problems_of({"ownership_rules": [{"segment": "x", "owner_fields": ["OwnerId"]}]})
    assert found == {"ownership_rules[0].segment": "unknown segment 'x'"}


@pytest.mark.parametrize(
    ("data", "path", "message"),
    [
        ({"Enabled": True}, "Enabled", "unknown key; did you mean 'enabled'?"),
        ({"colour": "red"}, "colour", "unknown key"),
        ({"delay": "15m"}, "delay", "unknown key; did you mean 'synchronization_delay'?"),
        (
            {"field_mappings": {"lead": [{"source": "contact.x", "target": "X", "overwite": 1}]}},
            "field_mappings.lead[0].overwite",
            "unknown key; did you mean 'overwrite'?",
        ),
        (
            {"field_mappings": {"leads": []}},
            "field_mappings.leads",
            "unknown key; did you mean 'lead'?",
        ),
        (
            {"user_mapping": [{"crm_user_id": "1", "signals_user_id": 1, "signals_mail": "a@b"}]},
            "user_mapping[0].signals_mail",
            "unknown key; did you mean 'signals_email'?",
        ),
        (
            {"fallback_criteria": {"fallback_users": "1"}},
            "fallback_criteria.fallback_users",
            "unknown key; did you mean 'fallback_user'?",
        ),
        (
            {
                "segments": {
                    "s": {
                        "match": "all",
                        "conditions": [{"atribute": "x", "operator": "is_set", "attribute": "y"}],
                    }
                }
            },
            "segments.s.conditions[0].atribute",
            "unknown key; did you mean 'attribute'?",
        ),
        (
            {"segments": {"Big deals": {"domains": ["a.test"], "match": "all"}}},
            'segments["Big deals"].match',
            "unknown key",
        ),
    ],
)
def test_unknown_keys_are_errors_with_hints(data: dict[str, Any], path: str, message: str) -> None:
    """Unknown keys at any depth are reported by path, with a close known key as a hint."""
    assert problems_of(data) == {path: message}


@pytest.mark.parametrize(
    ("mappings", "path", "fragment"),
    [
        (
            {"lead": [{"source": "contact.a", "target": "Email"}] * 2},
            "field_mappings.lead[1].target",
            "duplicate target 'Email' (also [0])",
        ),
        (
            {
                "contact": [
                    {"source": "contact.a", "target": "email"},
                    {"source": "contact.b", "target": "EMAIL"},
                ]
            },
            "field_mappings.contact[1].target",
            "duplicate target 'EMAIL'",
        ),
        (
            {"lead": [{"source": "visitor.email", "target": "Email"}]},
            "field_mappings.lead[0].source",
            "unknown Signals field 'visitor.email'",
        ),
        (
            {"lead": [{"source": "chat.trafic_source", "target": "LeadSource"}]},
            "field_mappings.lead[0].source",
            "unknown Signals field 'chat.trafic_source': chat.* is one of",
        ),
        (
            {"lead": [{"source": "contact", "target": "Email"}]},
            "field_mappings.lead[0].source",
            "must start with one of contact., chat., company., conversation.",
        ),
        (
            {"lead": [{"source": "contact.first name", "target": "Email"}]},
            "field_mappings.lead[0].source",
            "malformed Signals field",
        ),
        (
            {"lead": [{"source": "contact.email", "target": "Email Address"}]},
            "field_mappings.lead[0].target",
            "malformed CRM field name 'Email Address'",
        ),
        (
            {"lead": [{"source": "contact.email", "target": "Email", "overwrite": "yes"}]},
            "field_mappings.lead[0].overwrite",
            "valid boolean",
        ),
        (
            {"account": [{"source": "contact.email", "target": "Email"}]},
            "field_mappings.account[0].source",
            "must start with company.",
        ),
        (
            {"lead": [{"target": "Email"}]},
            "field_mappings.lead[0].source",
            "required",
        ),
    ],
)
def test_mapping_problems(mappings: dict[str, Any], path: str, fragment: str) -> None:
    """Mapping sources, targets and duplicates are validated per set, by path."""
    found = problems_of({"field_mappings": mappings})
    assert list(found) == [path]
    assert fragment in found[path]


def test_same_target_in_different_sets_is_fine() -> None:
    """Targets must be unique within a set only."""
    s = IntegrationSettings.from_dict(
        {
            "field_mappings": {
                "lead": [{"source": "contact.email", "target": "Email"}],
                "contact": [{"source": "contact.email", "target": "Email"}],
            }
        }
    )
    assert s.field_mappings.lead[0].target == s.field_mappings.contact[0].target


@pytest.mark.parametrize(
    "good",
    [
        "12345",
        "0",
        "1" * 21,
        "00Q5g00000AbCdE",
        "0055g00000AbCdEAAZ",
        98765,
        "usr_9f3a",  # a custom CRM's ids: the shape is the adapter's to check
        "cmp-1",
        "0055g00000AbCdEA",
        "owner@example.test",
        "7c9e6679-7425-40de-944b-e07fc1f90ae7",
        "x" * 255,
    ],
)
def test_crm_ids_accepted(good: str | int) -> None:
    """Any well-formed id is accepted, whatever its CRM: Salesforce, HubSpot or a custom one."""
    s = IntegrationSettings.from_dict(
        {
            "default_owner": good,
            "campaign_id": good,
            "user_mapping": [{"signals_user_id": "1", "crm_user_id": good}],
        }
    )
    assert s.default_owner == s.campaign_id == s.user_mapping[0].crm_user_id == str(good)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "005 5g00000AbCdE",
        "0055g00000AbCdEAAZ ",
        "12345\n",
        "ab\tc",
        "id\x00",
        "id\u200b",  # a zero-width space is not printable
        "x" * 256,
    ],
)
def test_malformed_crm_ids_rejected(bad: str) -> None:
    """Empty, spaced, multi-line, control-character or over-long ids are malformed, for every
    CRM id setting."""
    found = problems_of(
        {
            "campaign_id": bad,
            "default_owner": bad,
            "user_mapping": [{"signals_user_id": "1", "crm_user_id": bad}],
        }
    )
    assert set(found) == {"campaign_id", "default_owner", "user_mapping[0].crm_user_id"}


def test_is_crm_id_is_deprecated_and_unchanged() -> None:
    """is_crm_id still tells Salesforce- and HubSpot-shaped ids, and warns that the shape is the
    adapter's to check now."""
    with pytest.warns(DeprecationWarning, match="adapter"):
        assert is_crm_id("0055g00000AbCdEAAZ")
    with pytest.warns(DeprecationWarning, match="is_crm_id"):
        assert not is_crm_id("usr_9f3a")


@pytest.mark.parametrize("bad", [-1, True, 1.5, None])
def test_crm_ids_of_wrong_type(bad: object) -> None:
    """A negative number, a boolean or a float is not an id; null is only fine where optional."""
    found = problems_of({"user_mapping": [{"signals_user_id": "1", "crm_user_id": bad}]})
    assert list(found) == ["user_mapping[0].crm_user_id"]


def test_at_most_one_campaign() -> None:
    """A list of campaigns is refused: the integration joins at most one campaign."""
    found = problems_of({"campaign_id": [SF_CAMPAIGN, "7015g000000AbCeAAK"]})
    assert found == {"campaign_id": "at most one campaign: give a single campaign id, not a list"}


def test_lead_owner_source_problems() -> None:
    """Unknown and duplicate lead-owner sources are each named by index."""
    found = problems_of({"lead_owner_sources": ["closer", "sales_rep", "closer", "closer"]})
    assert found == {
        "lead_owner_sources[1]": "Input should be 'meeting_scheduler', 'last_routed' or 'closer'",
        "lead_owner_sources[2]": "duplicate source 'closer'",
        "lead_owner_sources[3]": "duplicate source 'closer'",
    }


def test_task_event_problems() -> None:
    """Unknown and duplicate task events are errors."""
    found = problems_of({"task_events": ["chat_transcript", "email", "chat_transcript"]})
    assert found == {
        "task_events[1]": "unknown event 'email': chat_transcript, meeting_booked or a kind "
        "declared in activity_kinds",
        "task_events[2]": "duplicate event 'chat_transcript'",
    }


def test_user_mapping_problems() -> None:
    """A user entry needs an id or an email; ids and emails may not repeat; emails are valid."""
    found = problems_of(
        {
            "user_mapping": [
                {"crm_user_id": "1"},
                {"signals_user_id": "7", "crm_user_id": "2"},
                {"signals_user_id": 7, "crm_user_id": "3"},
                {"signals_email": "Ann@X.test", "crm_user_id": "4"},
                {"signals_email": "ann@x.TEST", "crm_user_id": "5"},
                {"signals_email": "not-an-email", "crm_user_id": "6"},
                {"signals_user_id": "bad id", "crm_user_id": "7"},
                {"signals_user_id": "8", "crm_user_id": "8", "licensed": "no"},
            ]
        }
    )
    assert found == {
        "user_mapping[0]": "needs signals_user_id or signals_email",
        "user_mapping[2].signals_user_id": "Signals user '7' is mapped twice (also [1])",
        "user_mapping[4].signals_email": "Signals user 'ann@x.TEST' is mapped twice (also [3])",
        "user_mapping[5].signals_email": "not a valid email address: 'not-an-email'",
        "user_mapping[6].signals_user_id": (
            "malformed Signals user id 'bad id': expected letters, digits, '_' or '-' (at most 64)"
        ),
        "user_mapping[7].licensed": "Input should be a valid boolean",
    }


def test_ownership_problems() -> None:
    """Owner fields: one or two, valid names, no repeat; fallback users are Signals ids."""
    found = problems_of(
        {
            "segments": {"a": {"domains": ["a.test"]}, "b": {"domains": ["b.test"]}},
            "ownership_rules": [
                {"segment": "a", "owner_fields": ["OwnerId", "ownerid"]},
                {"segment": "b", "owner_fields": ["Owner Id"], "fallback_user": ""},
                {"segment": "", "owner_fields": ["OwnerId"]},
            ],
            "fallback_criteria": {"owner_fields": ["A", "B", "C"], "fallback_user": "x y"},
            "default_account_owner": "",
        }
    )
    assert set(found) == {
        "ownership_rules[0].owner_fields[1]",
        "ownership_rules[1].owner_fields[0]",
        "ownership_rules[1].fallback_user",
        "ownership_rules[2].segment",
        "fallback_criteria.owner_fields",
        "fallback_criteria.fallback_user",
        "default_account_owner",
    }
    assert found["ownership_rules[0].owner_fields[1]"] == "duplicate field 'ownerid'"
    assert found["fallback_criteria.owner_fields"] == "at most 2 fields"
    assert found["ownership_rules[2].segment"] == "must not be empty"


def test_fallback_criteria_may_have_no_owner_fields() -> None:
    """Fallback criteria with only a fallback user are valid."""
    s = IntegrationSettings.from_dict({"fallback_criteria": {"fallback_user": "9"}})
    assert s.to_config().ownership.fallback == FallbackCriteria((), "9")


@pytest.mark.parametrize(
    ("segment", "path", "fragment"),
    [
        ({"domains": []}, "segments.s.domains", "at least one domain"),
        ({"domains": ["https://a.test/x"]}, "segments.s.domains[0]", "not a bare domain"),
        ({"conditions": []}, "segments.s.conditions", "at least one condition"),
        ({"match": "all"}, "segments.s.conditions", "required"),
        (
            {"match": "most", "conditions": [{"attribute": "a", "operator": "is_set"}]},
            "segments.s.match",
            "'all' or 'any'",
        ),
        ("acme.test", "segments.s", "either `domains` or `match` and `conditions`"),
        ({"conditions": [5]}, "segments.s.conditions[0]", "must be a condition"),
        (
            {"conditions": [{"attribute": "a", "operator": "like", "value": "x"}]},
            "segments.s.conditions[0].operator",
            "Input should be",
        ),
        (
            {"conditions": [{"attribute": "a b", "operator": "is_set"}]},
            "segments.s.conditions[0].attribute",
            "malformed company attribute",
        ),
        (
            {"conditions": [{"attribute": "a", "operator": "in", "value": "x"}]},
            "segments.s.conditions[0].value",
            "in needs a non-empty list",
        ),
        (
            {"conditions": [{"attribute": "a", "operator": "not_in", "value": []}]},
            "segments.s.conditions[0].value",
            "not_in needs a non-empty list",
        ),
        (
            {"conditions": [{"attribute": "a", "operator": "is_set", "value": 1}]},
            "segments.s.conditions[0].value",
            "is_set takes no value",
        ),
        (
            {"conditions": [{"attribute": "a", "operator": "eq"}]},
            "segments.s.conditions[0].value",
            "eq needs a value",
        ),
        (
            {"conditions": [{"attribute": "a", "operator": "eq", "value": [1]}]},
            "segments.s.conditions[0].value",
            "single value",
        ),
        (
            {"conditions": [{"attribute": "a", "operator": "contains", "value": 3}]},
            "segments.s.conditions[0].value",
            "contains needs text",
        ),
        (
            {"conditions": [{"attribute": "a", "operator": "gt", "value": True}]},
            "segments.s.conditions[0].value",
            "number or an ISO date",
        ),
        (
            {"conditions": [{"attribute": "a", "operator": "eq", "value": {"x": 1}}]},
            "segments.s.conditions[0].value",
            "must be text, a",
        ),
        (
            {"conditions": [{"attribute": "a", "operator": "eq", "value": 2**64}]},
            "segments.s.conditions[0].value",
            "64-bit",
        ),
        (
            {"conditions": [{"attribute": "a", "operator": "eq", "value": float("nan")}]},
            "segments.s.conditions[0].value",
            "finite",
        ),
        (
            {
                "conditions": [
                    {"match": "any", "conditions": [{"attribute": "a", "operator": "in"}]}
                ]
            },
            "segments.s.conditions[0].conditions[0].value",
            "in needs",
        ),
    ],
)
def test_segment_problems(segment: Any, path: str, fragment: str) -> None:
    """Segments are a domain list or a (nested) condition group; each problem is named."""
    found = problems_of({"segments": {"s": segment}})
    assert list(found) == [path], found
    assert fragment in found[path]


@pytest.mark.parametrize("name", ["", " padded ", "   "])
def test_segment_names_are_trimmed_and_non_empty(name: str) -> None:
    """Segment names are non-empty and carry no surrounding spaces."""
    found = problems_of({"segments": {name: {"domains": ["a.test"]}}})
    assert len(found) == 1
    assert next(iter(found.values())).startswith("key: must not")


def test_placeholder_problems() -> None:
    """Placeholder keys are CRM field names and placeholder texts are not blank."""
    found = problems_of({"placeholders": {"Last Name": "x", "Company": " ", "Title": 3}})
    assert found == {
        'placeholders["Last Name"]': (
            "key: malformed CRM field name 'Last Name': expected a letter, then letters, digits "
            "or '_'"
        ),
        "placeholders.Company": "must not be empty",
        "placeholders.Title": "Input should be a valid string",
    }


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("yes", "Input should be 'all', 'one_star', 'two_stars' or 'three_stars'"),
        ("ONE_STAR", "Input should be"),
    ],
)
def test_criteria_values(value: str, fragment: str) -> None:
    """Criteria are one of four words, in lower case."""
    assert fragment in problems_of({"criteria": value})["criteria"]


def test_existing_contact_policy_values() -> None:
    """The existing-contact policy is attach or create_lead."""
    found = problems_of({"existing_contact": "update"})
    assert found == {"existing_contact": "Input should be 'attach' or 'create_lead'"}


def test_wrong_container_types() -> None:
    """Lists and tables of the wrong shape are reported at their path."""
    found = problems_of(
        {"field_mappings": [], "user_mapping": {}, "segments": [], "ownership_rules": 3}
    )
    assert set(found) == {"field_mappings", "user_mapping", "segments", "ownership_rules"}


# ------------------------------------------------------------------------------------------------
# The delay


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, timedelta(0)),
        (900, timedelta(minutes=15)),
        (900.0, timedelta(minutes=15)),
        ("900", timedelta(minutes=15)),
        ("15m", timedelta(minutes=15)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1h 30m", timedelta(hours=1, minutes=30)),
        ("2d", timedelta(days=2)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("90s", timedelta(seconds=90)),
        ("0s", timedelta(0)),
        ("PT15M", timedelta(minutes=15)),
        ("pt15m", timedelta(minutes=15)),
        ("P1DT2H", timedelta(days=1, hours=2)),
        ("P2W", timedelta(weeks=2)),
        ("PT45S", timedelta(seconds=45)),
        ("P30D", timedelta(days=30)),
        ("30d", timedelta(days=30)),
        (timedelta(hours=3), timedelta(hours=3)),
    ],
)
def test_delay_forms(value: object, expected: timedelta) -> None:
    """Seconds, compact text and ISO-8601 durations all give the same delay."""
    s = IntegrationSettings.from_dict({"synchronization_delay": value})
    assert s.synchronization_delay == expected
    assert parse_delay(value) == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (-1, "must not be negative"),
        ("-15m", "must not be negative"),
        ("-PT1M", "must not be negative"),
        (timedelta(seconds=-1), "must not be negative"),
        (30 * 86400 + 1, "at most 30 days"),
        ("31d", "at most 30 days"),
        ("P5W", "at most 30 days"),
        ("720h1s", "at most 30 days"),
        ("P1M", "years and months have no fixed length"),
        ("P1Y", "years and months have no fixed length"),
        (1.5, "whole number of seconds"),
        (float("inf"), "whole number of seconds"),
        (timedelta(milliseconds=5), "whole number of seconds"),
        ("15 minutes", "not a delay"),
        ("15M", "not a delay"),
        ("m", "not a delay"),
        ("", "not a delay"),
        ("1h 30m 5", "not a delay"),
        ("\u00b2", "not a delay"),
        ("\u0661m", "not a delay"),
        ("P1Y2M", "years and months"),
        ("p1m", "years and months"),
        ("PT", "not a delay"),
        ("P", "not a delay"),
        (True, "not a delay"),
        ([15], "not a delay"),
    ],
)
def test_bad_delays(value: object, fragment: str) -> None:
    """Negative, absurd (over 30 days), fractional or unreadable delays are refused by path."""
    found = problems_of({"synchronization_delay": value})
    assert list(found) == ["synchronization_delay"]
    assert fragment in found["synchronization_delay"]


@given(delays())
def test_delay_text_round_trips(delay: timedelta) -> None:
    """format_delay writes a compact form that parse_delay reads back to the same delay."""
    text = format_delay(delay)
    assert re.fullmatch(r"(\d+d)?(\d+h)?(\d+m)?(\d+s)?", text)
    assert parse_delay(text) == delay


# ------------------------------------------------------------------------------------------------
# Loading and dumping


def test_json_and_toml_syntax_errors_are_configuration_errors() -> None:
    """Unparseable text raises ConfigurationError, not a JSON or TOML library error."""
    with pytest.raises(ConfigurationError, match="not valid JSON"):
        IntegrationSettings.from_json("{criteria: all}")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        IntegrationSettings.from_toml("criteria = all")
    with pytest.raises(ConfigurationError, match="must be a table"):
        IntegrationSettings.from_json("[1, 2]")
    with pytest.raises(ConfigurationError, match="must be a table"):
        IntegrationSettings.from_dict([("criteria", "all")])  # type: ignore[arg-type]


def test_toml_duplicate_keys_are_refused() -> None:
    """TOML itself refuses a key given twice, reported as a configuration error."""
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        IntegrationSettings.from_toml('criteria = "all"\ncriteria = "one_star"\n')


def test_load_settings_by_extension(tmp_path: Path) -> None:
    """load_settings reads .toml and .json files (any case) and refuses other files."""
    s = IntegrationSettings.from_dict(full_settings())
    (tmp_path / "a.toml").write_text(s.to_toml(), encoding="utf-8")
    (tmp_path / "b.JSON").write_text(s.to_json(), encoding="utf-8")
    (tmp_path / "c.yaml").write_text("criteria: all\n", encoding="utf-8")
    assert load_settings(tmp_path / "a.toml") == s
    assert load_settings(str(tmp_path / "b.JSON")) == s
    with pytest.raises(ConfigurationError, match=r"use a \.toml or \.json file"):
        load_settings(tmp_path / "c.yaml")
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_settings(tmp_path / "missing.toml")


def test_load_settings_reports_problems_of_the_file(tmp_path: Path) -> None:
    """Problems in a settings file carry their paths too."""
    path = tmp_path / "settings.toml"
    path.write_text('criteria = "all"\n[[ownership_rules]]\nsegment = "x"\n', encoding="utf-8")
    with pytest.raises(ConfigurationError) as exc:
        load_settings(path)
    assert exc.value.paths == ("ownership_rules[0].owner_fields", "ownership_rules[0].segment")


def test_full_settings_round_trip() -> None:
    """A document using every key survives dict, JSON and TOML round trips exactly."""
    s = IntegrationSettings.from_dict(full_settings())
    assert IntegrationSettings.from_dict(s.to_dict()) == s
    assert IntegrationSettings.from_json(s.to_json()) == s
    assert IntegrationSettings.from_toml(s.to_toml()) == s
    assert IntegrationSettings.from_dict(s.to_dict()).to_dict() == s.to_dict()
    assert s.to_dict()["synchronization_delay"] == "15m"
    assert "default_owner" in s.to_dict()
    assert "campaign_id" not in IntegrationSettings.from_dict({}).to_dict()


def test_toml_dump_is_readable() -> None:
    """The TOML dump uses tables and arrays of tables (short entries inline, as tomli-w writes
    them), quoting keys only when needed."""
    text = IntegrationSettings.from_dict(full_settings()).to_toml()
    assert 'synchronization_delay = "15m"\n' in text
    assert "[field_mappings]\n" in text
    assert '{ source = "contact.first_name", target = "FirstName", overwrite = true },\n' in text
    assert "[[user_mapping]]\n" in text
    assert "[[ownership_rules]]\n" in text
    assert '[segments."named accounts"]\n' in text
    assert "[[segments.enterprise.conditions]]\n" in text
    assert "[[segments.enterprise.conditions.conditions]]\n" in text


def test_texts_needing_escapes_round_trip_through_toml() -> None:
    """Quotes, backslashes, control characters and non-ASCII survive the TOML writer."""
    tricky = 'a "quoted" \\ back\tslash\nnew\x7f\x01 é 中 😀'
    s = IntegrationSettings.from_dict(
        {
            "placeholders": {"LastName": tricky},
            "segments": {
                tricky.strip(): {
                    "conditions": [{"attribute": "a", "operator": "eq", "value": tricky}]
                }
            },
        }
    )
    assert IntegrationSettings.from_toml(s.to_toml()) == s
    assert IntegrationSettings.from_json(s.to_json()) == s


def test_direct_construction_raises_a_value_error_with_paths() -> None:
    """Building the model directly raises pydantic's ValidationError, a ValueError naming paths."""
    with pytest.raises(ValidationError) as exc:
        IntegrationSettings(default_owner="x y", ownership_rules=({"segment": "nope"},))  # type: ignore[arg-type]
    assert isinstance(exc.value, ValueError)
    text = str(exc.value)
    assert "default_owner: malformed CRM id 'x y'" in text
    assert "ownership_rules[0].segment: unknown segment 'nope'" in text


def test_settings_built_from_python_values() -> None:
    """Settings built from nested settings objects validate, cross-check and convert alike."""
    rule = OwnershipRuleSettings(segment="s", owner_fields=("OwnerId",))
    with pytest.raises(ValidationError, match=r"ownership_rules\[0\]\.segment: unknown segment"):
        IntegrationSettings(ownership_rules=(rule,))
    s = IntegrationSettings(
        field_mappings=FieldMappingsSettings(
            lead=(FieldMappingSettings(source="contact.email", target="Email"),)
        ),
        segments={"s": DomainListSettings(domains=("a.test",))},
        ownership_rules=(rule,),
    )
    assert s == IntegrationSettings.from_dict(s.to_dict())
    assert s.to_config().ownership.rules == (OwnershipRule("s", ("OwnerId",)),)


def test_json_schema_describes_the_settings() -> None:
    """The JSON schema (for editors) lists every key and the accepted delay forms."""
    schema = IntegrationSettings.model_json_schema()
    assert set(schema["properties"]) == set(IntegrationSettings.model_fields)
    assert schema["additionalProperties"] is False
    delay = schema["properties"]["synchronization_delay"]
    assert {t["type"] for t in delay["anyOf"]} == {"integer", "string"}


def test_settings_are_frozen() -> None:
    """Settings cannot be changed after validation (build new ones instead)."""
    s = IntegrationSettings.from_dict({})
    with pytest.raises(ValidationError):
        s.criteria = "one_star"


def test_documented_example_is_valid_and_round_trips() -> None:
    """The full TOML example of docs/configuration.md loads, converts and round-trips."""
    text = DOCS.read_text(encoding="utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", text, flags=re.DOTALL)
    assert blocks, "docs/configuration.md has no TOML example"
    s = IntegrationSettings.from_toml(blocks[0])
    assert IntegrationSettings.from_toml(s.to_toml()) == s
    config = s.to_config()
    assert config.ownership.rules
    assert config.field_mappings.lead
    assert config.users.entries


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(s=settings())
def test_generated_settings_round_trip(s: IntegrationSettings) -> None:
    """Any valid settings dump and load back equal through dict, JSON and TOML."""
    data = s.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert IntegrationSettings.from_dict(data) == s
    assert IntegrationSettings.from_json(s.to_json()) == s
    assert IntegrationSettings.from_toml(s.to_toml()) == s


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(s=settings())
def test_generated_settings_convert_consistently(s: IntegrationSettings) -> None:
    """Conversion keeps counts and names: every rule's segment exists in the core config."""
    config = s.to_config()
    assert config.criteria.value == s.criteria
    assert config.synchronization_delay == s.synchronization_delay
    assert len(config.users.entries) == len(s.user_mapping)
    assert len(config.field_mappings.lead) == len(s.field_mappings.lead)
    assert [r.priority for r in config.lead_owner_sources] == sorted(
        r.priority for r in config.lead_owner_sources
    )
    for rule in config.ownership.rules:
        assert rule.segment in config.ownership.segments
        assert 1 <= len(rule.owner_fields) <= 2
    for name, segment in config.ownership.segments.items():
        assert segment.name == name
        source = s.segments[name]
        if isinstance(source, ConditionGroupSettings):
            assert isinstance(segment.definition, ConditionGroup)
        else:
            assert isinstance(segment.definition, DomainList)


@given(s=settings(criteria=st.just("three_stars"), lead_owner_sources=st.just(["closer"])))
@hsettings(max_examples=10, deadline=None)
def test_settings_strategy_options_pin_parts(s: IntegrationSettings) -> None:
    """The strategy's keyword options replace the strategy of the part they name."""
    assert s.criteria == "three_stars"
    assert s.lead_owner_sources == ("closer",)


# ------------------------------------------------------------------------------------------------
# Hostile input: only ConfigurationError, naming the field


def test_toml_nested_too_deeply_is_a_configuration_error() -> None:
    """TOML arrays or inline tables nested 500 levels deep (the parser recurses) are refused
    with a ConfigurationError, not a RecursionError."""
    for text in ("a = " + "[" * 500 + "]" * 500, "a = " + "{b = " * 500 + "1" + "}" * 500):
        with pytest.raises(ConfigurationError) as exc:
            IntegrationSettings.from_toml(text)
        assert exc.value.problems[0].message == "not valid TOML: arrays or tables nested too deeply"


def test_json_nested_too_deeply_is_a_configuration_error() -> None:
    """JSON nested deeper than the decoder recurses is refused the same way."""
    with pytest.raises(ConfigurationError) as exc:
        IntegrationSettings.from_json("[" * 5000 + "]" * 5000)
    assert exc.value.problems[0].message == "not valid JSON: arrays or objects nested too deeply"


def test_from_toml_accepts_utf8_bytes_and_refuses_other_types() -> None:
    """TOML bytes are read as UTF-8 (TOML's encoding); undecodable bytes and non-text values
    are configuration errors."""
    text = 'criteria = "two_stars"\n[placeholders]\nLastName = "Sans nom é"\n'
    assert IntegrationSettings.from_toml(text.encode()) == IntegrationSettings.from_toml(text)
    assert IntegrationSettings.from_toml(bytearray(text.encode())).criteria == "two_stars"
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        IntegrationSettings.from_toml(b"criteria = '\xff'")
    for value in (5, None, ["a"]):
        with pytest.raises(ConfigurationError, match="TOML settings must be text or bytes"):
            IntegrationSettings.from_toml(value)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="JSON settings must be text or bytes"):
        IntegrationSettings.from_json(5)  # type: ignore[arg-type]


def nested_groups(depth: int) -> dict[str, Any]:
    """A segment of ``depth`` nested groups around one condition."""
    group: dict[str, Any] = {"conditions": [{"attribute": "tier", "operator": "is_set"}]}
    for _ in range(depth - 1):
        group = {"match": "any", "conditions": [group]}
    return group


def test_condition_groups_nest_at_most_16_levels() -> None:
    """Sixteen nested groups are settings; a seventeenth, or 600, are one problem at the
    segment instead of pydantic's recursion error with a path hundreds of levels long."""
    ok = IntegrationSettings.from_dict({"segments": {"deep": nested_groups(16)}})
    assert ok.to_config().ownership.segments["deep"].name == "deep"
    for depth in (17, 600):
        assert problems_of({"segments": {"deep": nested_groups(depth)}}) == {
            "segments.deep": "condition groups nest at most 16 levels deep"
        }


HUGE = 10**5000  # 5,001 digits: str() of it raises ValueError in Python


@pytest.mark.parametrize(
    ("data", "path", "fragment"),
    [
        ({"campaign_id": HUGE}, "campaign_id", "must fit in 64 bits"),
        (
            {"user_mapping": [{"signals_user_id": HUGE, "crm_user_id": 5}]},
            "user_mapping[0].signals_user_id",
            "must fit in 64 bits",
        ),
        ({"synchronization_delay": HUGE}, "synchronization_delay", "at most 30 days"),
        ({"synchronization_delay": -HUGE}, "synchronization_delay", "must not be negative"),
        ({"synchronization_delay": 1e300}, "synchronization_delay", "at most 30 days"),
        ({"synchronization_delay": "9" * 5000}, "synchronization_delay", "at most 30 days"),
        ({"synchronization_delay": "9" * 5000 + "d"}, "synchronization_delay", "at most 30 days"),
        ({"synchronization_delay": "P" + "9" * 5000 + "D"}, "synchronization_delay", "30 days"),
    ],
)
def test_huge_numbers_are_named_problems(data: dict[str, Any], path: str, fragment: str) -> None:
    """Numbers far too large for an id or a delay are problems at their path, never an
    OverflowError or a digit-limit ValueError."""
    found = problems_of(data)
    [message] = [m for p, m in found.items() if p.startswith(path)]
    assert fragment in message


def test_parse_delay_bounds_huge_numbers() -> None:
    """parse_delay itself refuses huge numbers with its documented ValueError."""
    for value in (HUGE, 10**12, 1e300, "9" * 5000):
        with pytest.raises(ValueError, match="at most 30 days"):
            parse_delay(value)


_KEYS = st.text(max_size=12) | st.integers()
_EXTREMES = st.sampled_from(
    [2**63, -(2**63) - 1, 10**30, 1e300, float("inf"), float("nan"), "9" * 40, "P99999999999D"]
)
_JSON_LIKE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**70)
    | _EXTREMES
    | st.floats()
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=25,
)
_KNOWN = tuple(IntegrationSettings.model_fields)
_ENTRY = st.fixed_dictionaries(
    {},
    optional=dict.fromkeys(
        ("source", "target", "overwrite", "signals_user_id", "crm_user_id", "segment"), _JSON_LIKE
    ),
)
_DOCUMENTS = st.fixed_dictionaries(
    {},
    optional={
        **dict.fromkeys(_KNOWN, _EXTREMES | _JSON_LIKE),
        "field_mappings": st.fixed_dictionaries(
            {}, optional=dict.fromkeys(("lead", "contact", "account"), st.lists(_ENTRY))
        ),
        "user_mapping": st.lists(_ENTRY, max_size=3),
        "ownership_rules": st.lists(_ENTRY, max_size=3),
        "segments": st.dictionaries(
            st.text(max_size=6),
            _JSON_LIKE
            | st.fixed_dictionaries(
                {}, optional={"conditions": st.lists(_JSON_LIKE), "domains": _JSON_LIKE}
            ),
            max_size=2,
        ),
    },
)


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_DOCUMENTS | st.dictionaries(_KEYS, _JSON_LIKE, max_size=4))
def test_arbitrary_json_like_input_raises_only_configuration_errors(data: Any) -> None:
    """Whatever JSON-like mapping a host passes, from_dict returns settings or raises a
    ConfigurationError, and valid settings convert to a core value."""
    try:
        s = IntegrationSettings.from_dict(data)
    except ConfigurationError:
        return
    assert isinstance(s.to_config(), SyncConfig)


# ------------------------------------------------------------------------------------------------
# Editing settings in code: methods that return validated new settings


def base_settings() -> IntegrationSettings:
    """Settings with one mapping, one user and one rule, for the editing examples."""
    return IntegrationSettings.from_dict(
        {
            "field_mappings": {"lead": [{"source": "contact.first_name", "target": "FirstName"}]},
            "user_mapping": [{"signals_user_id": "5512", "crm_user_id": SF_USER}],
            "segments": {
                "enterprise": {"domains": ["acme.test"]},
                "smb": {"domains": ["small.test"]},
            },
            "ownership_rules": [{"segment": "enterprise", "owner_fields": ["OwnerId"]}],
        }
    )


def test_add_and_remove_a_field_mapping() -> None:
    """A mapping is appended, replaced by target (any case) and removed; the original is
    untouched and every result converts to core values."""
    s = base_settings()
    added = s.with_field_mapping("lead", "chat.traffic_source", "LeadSource", overwrite=True)
    assert [m.target for m in added.field_mappings.lead] == ["FirstName", "LeadSource"]
    assert added.field_mappings.lead[1].overwrite
    replaced = added.with_field_mapping("lead", "contact.preferred_name", "firstname")
    assert [(m.source, m.target) for m in replaced.field_mappings.lead] == [
        ("contact.preferred_name", "firstname"),
        ("chat.traffic_source", "LeadSource"),
    ]
    removed = replaced.without_field_mapping("lead", "LEADSOURCE")
    assert [m.target for m in removed.field_mappings.lead] == ["firstname"]
    assert [m.target for m in s.field_mappings.lead] == ["FirstName"]
    assert removed.to_config().field_mappings.lead[0].source == "contact.preferred_name"


def test_field_mapping_edits_are_validated() -> None:
    """An invalid mapping, a pulled mapping outside company.*, an unknown tab or a missing
    target raises ConfigurationError with the loading paths."""
    s = base_settings()
    with pytest.raises(ConfigurationError) as exc:
        s.with_field_mapping("lead", "chat.trafic_source", "Bad Name")
    assert set(exc.value.paths) == {
        "field_mappings.lead[1].source",
        "field_mappings.lead[1].target",
    }
    with pytest.raises(ConfigurationError) as exc:
        s.with_field_mapping("account", "contact.email", "Website")
    assert exc.value.paths == ("field_mappings.account[0].source",)
    with pytest.raises(ConfigurationError, match="unknown tab 'deal'"):
        s.with_field_mapping("deal", "contact.email", "Email")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="no mapping to 'Phone' to remove"):
        s.without_field_mapping("lead", "Phone")


def test_add_replace_and_remove_a_user_mapping() -> None:
    """A Signals user is mapped once: a new mapping of the same id or email replaces it."""
    s = base_settings()
    added = s.with_user_mapping("12345", signals_email="Marco@X.test", licensed=False)
    assert [u.crm_user_id for u in added.user_mapping] == [SF_USER, "12345"]
    moved = added.with_user_mapping("67890", signals_email="marco@x.test")
    assert [(u.signals_email, u.crm_user_id) for u in moved.user_mapping] == [
        (None, SF_USER),
        ("marco@x.test", "67890"),
    ]
    both = moved.with_user_mapping("11111", signals_user_id="5512", signals_email="marco@x.test")
    assert [(u.signals_user_id, u.crm_user_id) for u in both.user_mapping] == [("5512", "11111")]
    removed = moved.without_user_mapping(signals_user_id="5512")
    assert [u.crm_user_id for u in removed.user_mapping] == ["67890"]
    assert removed.to_config().users.entries[0].signals_email == "marco@x.test"


def test_user_mapping_edits_are_validated() -> None:
    """A malformed id, no Signals user named, or nothing to remove is a ConfigurationError."""
    s = base_settings()
    with pytest.raises(ConfigurationError) as exc:
        s.with_user_mapping("12 34", signals_user_id="u-1")
    assert exc.value.paths == ("user_mapping[1].crm_user_id",)
    with pytest.raises(ConfigurationError, match="name the Signals user"):
        s.with_user_mapping("12345")
    with pytest.raises(ConfigurationError, match=r"no mapping of Signals user 'nobody@x\.test'"):
        s.without_user_mapping(signals_email="nobody@x.test")


def test_add_replace_and_remove_an_ownership_rule() -> None:
    """A rule is replaced for its segment in place, inserted at a position, or removed."""
    s = base_settings()
    first = s.with_ownership_rule("smb", ["OwnerId"], fallback_user="5520", position=0)
    assert [r.segment for r in first.ownership_rules] == ["smb", "enterprise"]
    changed = first.with_ownership_rule("enterprise", ["OwnerId", "Backup__c"])
    assert [(r.segment, r.owner_fields) for r in changed.ownership_rules] == [
        ("smb", ("OwnerId",)),
        ("enterprise", ("OwnerId", "Backup__c")),
    ]
    removed = changed.without_ownership_rule("smb")
    assert [r.segment for r in removed.ownership_rules] == ["enterprise"]
    assert removed.to_config().ownership.rules[0].owner_fields == ("OwnerId", "Backup__c")


def test_ownership_rule_edits_are_validated() -> None:
    """A rule on an unknown segment or with three owner fields, or nothing to remove, is a
    ConfigurationError naming the place."""
    s = base_settings()
    with pytest.raises(ConfigurationError) as exc:
        s.with_ownership_rule("midmarket", ["OwnerId", "A__c", "B__c"])
    assert set(exc.value.paths) == {
        "ownership_rules[1].segment",
        "ownership_rules[1].owner_fields",
    }
    with pytest.raises(ConfigurationError, match="no rule for segment 'smb' to remove"):
        s.without_ownership_rule("smb")


@hsettings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(s=settings())
def test_editing_round_trips_through_every_format(s: IntegrationSettings) -> None:
    """Adding then removing a mapping gives back equal settings, and edited settings load back
    equal from TOML."""
    target = "Signals_Edit__c"
    edited = s.with_field_mapping("lead", "conversation.lead_score", target)
    assert IntegrationSettings.from_toml(edited.to_toml()) == edited
    assert edited.without_field_mapping("lead", target) == s


def test_settings_nesting_limit_is_the_same_on_every_python() -> None:
    """A document nested deeper than MAX_DECODED_DEPTH is refused for its depth whatever the
    decoder's own recursion allows on this Python; one level less is judged as settings."""
    from signals_crm._nesting import MAX_DECODED_DEPTH

    def toml_at(depth: int) -> str:  # the root table is the first level
        return "a = " + "[" * (depth - 1) + "]" * (depth - 1)

    def json_at(depth: int) -> str:
        return '{"a": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"

    too_deep = {
        "not valid TOML: arrays or tables nested too deeply",
        "not valid JSON: arrays or objects nested too deeply",
    }
    for read, text in (
        (IntegrationSettings.from_toml, toml_at),
        (IntegrationSettings.from_json, json_at),
    ):
        with pytest.raises(ConfigurationError) as exc:
            read(text(MAX_DECODED_DEPTH + 1))
        assert exc.value.problems[0].message in too_deep
        with pytest.raises(ConfigurationError) as exc:
            read(text(MAX_DECODED_DEPTH))
        assert {p.message for p in exc.value.problems}.isdisjoint(too_deep)
