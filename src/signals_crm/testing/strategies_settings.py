"""Hypothesis strategies for :class:`signals_crm.settings.IntegrationSettings`.

Every strategy is keyword-only and composable (in the manner of ``xarray.testing.strategies``):
options that shape a part take a strategy for that part, so ``settings(criteria=st.just("all"))``
pins one field and leaves the rest free. Everything generated is *valid*: ``settings()`` only
draws settings that :meth:`IntegrationSettings.from_dict` accepts, with unique mapping targets,
rules that name existing segments, unique Signals users, and texts that stress the TOML and
JSON writers (quotes, backslashes, control characters, non-ASCII).
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from hypothesis import strategies as st

from signals_crm.settings import MAX_DELAY, IntegrationSettings, format_delay

__all__ = [
    "condition_group_settings",
    "condition_settings",
    "crm_ids",
    "delays",
    "field_mapping_settings",
    "field_names",
    "segment_settings",
    "settings",
    "signals_emails",
    "signals_fields",
    "signals_user_ids",
    "user_mapping_settings",
]

_ALNUM = string.ascii_letters + string.digits
_FIXED_SOURCES = (
    "chat.transcript",
    "chat.referrer",
    "chat.source_type",
    "chat.traffic_source",
    "chat.traffic_campaign",
    "chat.meeting.name",
    "chat.meeting.date",
    "conversation.id",
    "conversation.lead_score",
    "conversation.closed_at",
)
_OPERATORS = (
    "eq", "ne", "in", "not_in", "contains", "starts_with", "gt", "gte", "lt", "lte", "is_set",
    "is_not_set",
)  # fmt: skip

# Text that exercises quoting: spaces, quotes, backslashes, control characters, non-ASCII.
_TRICKY = st.text(
    alphabet=st.one_of(
        st.sampled_from(" \"\\\t\n\x7f\u00e9\u4e2d\U0001f600'#=[]{}.,"),
        st.characters(codec="utf-8"),
    ),
    max_size=12,
)


def crm_ids() -> st.SearchStrategy[str]:
    """Valid CRM ids: HubSpot (1-20 digits) or Salesforce (15 or 18 letters and digits)."""
    hubspot = st.text(alphabet=string.digits, min_size=1, max_size=20)
    salesforce = st.sampled_from((15, 18)).flatmap(
        lambda n: st.text(alphabet=_ALNUM, min_size=n, max_size=n)
    )
    return st.one_of(hubspot, salesforce)


def signals_user_ids() -> st.SearchStrategy[str]:
    """Valid Signals user ids (numbers as sent by the webhook, or short tokens)."""
    numeric = st.integers(min_value=1, max_value=10**9).map(str)
    token = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_-]{0,15}\Z")
    return st.one_of(numeric, token)


def field_names() -> st.SearchStrategy[str]:
    """Valid CRM field names (``FirstName``, ``Region__c``, ``hs_lead_status``)."""
    return st.from_regex(r"\A[A-Za-z][A-Za-z0-9_]{0,20}\Z")


def signals_emails() -> st.SearchStrategy[str]:
    """Valid emails, with ``+`` tags and mixed case."""
    local = st.from_regex(r"\A[A-Za-z0-9]{1,8}(\+[A-Za-z0-9]{1,5})?\Z")
    domain = st.from_regex(r"\A[A-Za-z]{1,8}\.(test|com|ORG)\Z")
    return st.builds(lambda a, b: f"{a}@{b}", local, domain)


def signals_fields(
    *, prefixes: Sequence[str] = ("contact", "chat", "company", "conversation")
) -> st.SearchStrategy[str]:
    """Valid mapping sources whose first part is one of ``prefixes``."""
    options: list[st.SearchStrategy[str]] = []
    attribute = st.from_regex(r"\A[a-z][a-z0-9_]{0,12}\Z")
    for prefix in prefixes:
        if prefix in ("contact", "company"):
            options.append(attribute.map(f"{prefix}.{{}}".format))
        else:
            fixed = [s for s in _FIXED_SOURCES if s.startswith(f"{prefix}.")]
            options.append(st.sampled_from(fixed))
    return st.one_of(options)


def delays(*, max_delay: timedelta = MAX_DELAY) -> st.SearchStrategy[timedelta]:
    """Valid synchronization delays: whole seconds from zero to ``max_delay``."""
    return st.integers(0, int(max_delay.total_seconds())).map(lambda s: timedelta(seconds=s))


def _delay_forms(delay: timedelta) -> st.SearchStrategy[int | str]:
    """The ways a user may write ``delay``: seconds, compact text, ISO-8601."""
    seconds = int(delay.total_seconds())
    return st.sampled_from((seconds, format_delay(delay), f"PT{seconds}S", str(seconds)))


@st.composite
def field_mapping_settings(
    draw: st.DrawFn,
    *,
    sources: st.SearchStrategy[str] | None = None,
    max_size: int = 4,
) -> list[dict[str, Any]]:
    """A mapping set as data: entries with unique targets (case-insensitively)."""
    source = sources if sources is not None else signals_fields()
    targets = draw(st.lists(field_names(), max_size=max_size, unique_by=str.lower))
    return [
        {"source": draw(source), "target": target, "overwrite": draw(st.booleans())}
        for target in targets
    ]


@st.composite
def user_mapping_settings(draw: st.DrawFn, *, max_size: int = 4) -> list[dict[str, Any]]:
    """User-mapping entries as data: each with a Signals id and/or email, none repeated."""
    count = draw(st.integers(0, max_size))
    ids = draw(st.lists(signals_user_ids(), min_size=count, max_size=count, unique=True))
    emails = draw(st.lists(signals_emails(), min_size=count, max_size=count, unique_by=str.lower))
    entries: list[dict[str, Any]] = []
    for user_id, email in zip(ids, emails, strict=True):
        entry: dict[str, Any] = {"crm_user_id": draw(crm_ids())}
        which = draw(st.sampled_from(("id", "email", "both")))
        if which in ("id", "both"):
            entry["signals_user_id"] = user_id
        if which in ("email", "both"):
            entry["signals_email"] = email
        entry["licensed"] = draw(st.booleans())
        entries.append(entry)
    return entries


_INT64 = st.integers(-(2**63), 2**63 - 1)
_NUMBERS = st.one_of(_INT64, st.floats(allow_nan=False, allow_infinity=False))
_SCALARS = st.one_of(_TRICKY, _NUMBERS, st.booleans())


@st.composite
def condition_settings(draw: st.DrawFn) -> dict[str, Any]:
    """One condition as data, with a value that fits its operator."""
    operator = draw(st.sampled_from(_OPERATORS))
    condition: dict[str, Any] = {
        "attribute": draw(st.from_regex(r"\A(company\.)?[A-Za-z][A-Za-z0-9_]{0,12}\Z")),
        "operator": operator,
    }
    if operator in ("in", "not_in"):
        condition["value"] = draw(st.lists(_SCALARS, min_size=1, max_size=3))
    elif operator in ("contains", "starts_with"):
        condition["value"] = draw(_TRICKY)
    elif operator in ("gt", "gte", "lt", "lte"):
        condition["value"] = draw(st.one_of(_NUMBERS, st.dates().map(str)))
    elif operator in ("eq", "ne"):
        condition["value"] = draw(_SCALARS)
    return condition


def condition_group_settings(
    *, max_depth: int = 2, max_size: int = 3
) -> st.SearchStrategy[dict[str, Any]]:
    """A condition group as data, nesting groups up to ``max_depth`` levels."""
    items: st.SearchStrategy[dict[str, Any]] = condition_settings()
    if max_depth > 1:
        items = st.one_of(
            condition_settings(),
            condition_group_settings(max_depth=max_depth - 1, max_size=max_size),
        )
    return st.fixed_dictionaries(
        {"conditions": st.lists(items, min_size=1, max_size=max_size)},
        optional={"match": st.sampled_from(("all", "any"))},
    )


def segment_settings(*, max_size: int = 3) -> st.SearchStrategy[dict[str, dict[str, Any]]]:
    """Named segments as data: condition groups or static domain lists."""
    name = _TRICKY.map(str.strip).filter(bool)
    domain = st.from_regex(r"\A(www\.)?[a-z][a-z0-9-]{0,10}\.(test|com)\Z")
    domain_list = st.fixed_dictionaries({"domains": st.lists(domain, min_size=1, max_size=4)})
    return st.dictionaries(
        name, st.one_of(condition_group_settings(), domain_list), max_size=max_size
    )


def _owner_fields(least: int) -> st.SearchStrategy[list[str]]:
    return st.lists(field_names(), min_size=least, max_size=2, unique_by=str.lower)


@st.composite
def settings(
    draw: st.DrawFn,
    *,
    enabled: st.SearchStrategy[bool] | None = None,
    criteria: st.SearchStrategy[str] | None = None,
    delay: st.SearchStrategy[timedelta] | None = None,
    campaign_id: st.SearchStrategy[str | None] | None = None,
    lead_owner_sources: st.SearchStrategy[list[str]] | None = None,
    existing_contact: st.SearchStrategy[str] | None = None,
    max_mappings: int = 3,
    max_users: int = 3,
    max_segments: int = 3,
) -> IntegrationSettings:
    """Valid :class:`IntegrationSettings`; each option replaces the strategy for one part."""
    data: dict[str, Any] = {
        "enabled": draw(enabled if enabled is not None else st.booleans()),
        "criteria": draw(
            criteria
            if criteria is not None
            else st.sampled_from(("all", "one_star", "two_stars", "three_stars"))
        ),
        "synchronization_delay": draw(
            (delay if delay is not None else delays()).flatmap(_delay_forms)
        ),
        "task_events": draw(
            st.lists(st.sampled_from(("chat_transcript", "meeting_booked")), unique=True)
        ),
        "lead_owner_sources": draw(
            lead_owner_sources
            if lead_owner_sources is not None
            else st.lists(
                st.sampled_from(("meeting_scheduler", "last_routed", "closer")), unique=True
            )
        ),
        "existing_contact": draw(
            existing_contact
            if existing_contact is not None
            else st.sampled_from(("attach", "create_lead"))
        ),
        "field_mappings": {
            "lead": draw(field_mapping_settings(max_size=max_mappings)),
            "contact": draw(field_mapping_settings(max_size=max_mappings)),
            "account": draw(
                field_mapping_settings(sources=signals_fields(prefixes=("company",)), max_size=2)
            ),
        },
        "user_mapping": draw(user_mapping_settings(max_size=max_users)),
        "placeholders": draw(st.dictionaries(field_names(), _TRICKY.filter(str.strip), max_size=3)),
    }
    campaign = draw(campaign_id if campaign_id is not None else st.none() | crm_ids())
    if campaign is not None:
        data["campaign_id"] = campaign
    owner = draw(st.none() | crm_ids())
    if owner is not None:
        data["default_owner"] = owner
    named = draw(segment_settings(max_size=max_segments))
    data["segments"] = named
    order = draw(st.permutations(sorted(named)))
    ruled = order[: draw(st.integers(0, len(order)))]
    data["ownership_rules"] = [
        {
            "segment": name,
            "owner_fields": draw(_owner_fields(1)),
            **({"fallback_user": u} if (u := draw(st.none() | signals_user_ids())) else {}),
        }
        for name in ruled
    ]
    if draw(st.booleans()):
        fallback: dict[str, Any] = {"owner_fields": draw(_owner_fields(0))}
        user = draw(st.none() | signals_user_ids())
        if user is not None:
            fallback["fallback_user"] = user
        data["fallback_criteria"] = fallback
    account_owner = draw(st.none() | signals_user_ids())
    if account_owner is not None:
        data["default_account_owner"] = account_owner
    return IntegrationSettings.from_dict(data)
