"""Account ownership: which Signals user owns a company, pulled from the CRM by segment rules.

The rule:

1. The CRM account is found by the company's domain (one lookup, which also reads every owner
   field and every pulled ``account`` mapping). Several accounts → the most recently modified,
   ties by the smallest id.
2. Pulled ``account`` mappings (CRM field → ``company.<attribute>``) enrich the company's
   attributes before segments are evaluated.
3. The rules are tried in order; the **first** rule whose segment contains the company applies.
   A segment is a condition group (``all``/``any``, nested) over the company's attributes, or a
   static list of domains.
4. Within that rule: read owner field 1 of the account; the CRM user there yields a Signals user
   when the user mapping maps it to a licensed Signals user. If not, read owner field 2. If
   neither yields one, use the rule's fallback routing user.
5. A company in no rule's segment goes through the *fallback criteria* the same way (its owner
   fields, then its fallback user).
6. No Signals user at all → the default account owner (or none).
7. The result names the Signals user and the path that produced it.

Conditions compare text case-insensitively; ``gt``/``gte``/``lt``/``lte`` compare numbers (and
ISO dates); a missing attribute fails every operator except ``ne``, ``not_in`` and
``is_not_set``. Domains compare lower-case without a leading ``www.``.
"""

from __future__ import annotations

import enum
from collections.abc import Generator, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import attrs

from signals_crm.core.config import (
    Condition,
    ConditionGroup,
    DomainList,
    FallbackCriteria,
    Operator,
    OwnershipConfig,
    OwnershipRule,
    Segment,
    UserMapping,
)
from signals_crm.core.crm import FindAccounts
from signals_crm.core.mapping import is_empty
from signals_crm.core.matching import recency
from signals_crm.core.model import AccountRecord, Company, FieldValue, ObjectSchema
from signals_crm.core.normalize import normalize_domain
from signals_crm.core.trace import Reason, info
from signals_crm.exceptions import PlanningError, Problem

__all__ = [
    "OwnershipPath",
    "OwnershipResult",
    "decide_account_owner",
    "normalize_domain",
    "owner_field_paths",
    "owner_field_problems",
    "plan_account_owners",
    "pull_account_fields",
    "segment_contains",
]


class OwnershipPath(enum.Enum):
    """How the owner was found."""

    OWNER_FIELD_1 = "owner_field_1"
    OWNER_FIELD_2 = "owner_field_2"
    RULE_FALLBACK_USER = "rule_fallback_user"
    FALLBACK_OWNER_FIELD_1 = "fallback_owner_field_1"
    FALLBACK_OWNER_FIELD_2 = "fallback_owner_field_2"
    FALLBACK_USER = "fallback_user"
    DEFAULT_ACCOUNT_OWNER = "default_account_owner"
    NONE = "none"


@attrs.frozen
class OwnershipResult:
    """The Signals user owning the company (or ``None``), the path, the rule, and why."""

    signals_user: str | None
    path: OwnershipPath
    rule_index: int | None
    segment: str | None
    account_id: str | None
    trace: tuple[Reason, ...]


# ------------------------------------------------------------------------------------------------
# Segments


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def _comparable(value: Any) -> Any:
    number = _number(value)
    if number is not None:
        return number
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value).strip().lower()


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    number = _number(value)
    if number is not None and number.is_integer() and not isinstance(value, str):
        return str(int(number))
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value).strip().lower()


def _attribute(company: Company, name: str) -> FieldValue:
    key = name.removeprefix("company.")
    if key == "domain":
        return company.domain
    if key == "name":
        return company.name
    return company.attributes.get(key)


def _condition_holds(condition: Condition, company: Company) -> bool:
    value = _attribute(company, condition.attribute)
    op = condition.operator
    if op is Operator.IS_SET:
        return not is_empty(value)
    if op is Operator.IS_NOT_SET:
        return is_empty(value)
    wanted = condition.value
    if is_empty(value):
        return op in (Operator.NE, Operator.NOT_IN)
    if op in (Operator.IN, Operator.NOT_IN):
        options = wanted if isinstance(wanted, tuple) else (wanted,)
        inside = _text(value) in {_text(o) for o in options}
        return inside if op is Operator.IN else not inside
    if op is Operator.EQ:
        return _text(value) == _text(wanted)
    if op is Operator.NE:
        return _text(value) != _text(wanted)
    if op is Operator.CONTAINS:
        return _text(wanted) in _text(value)
    if op is Operator.STARTS_WITH:
        return _text(value).startswith(_text(wanted))
    left, right = _comparable(value), _comparable(wanted)
    if type(left) is not type(right):
        return False
    if op is Operator.GT:
        return bool(left > right)
    if op is Operator.GTE:
        return bool(left >= right)
    if op is Operator.LT:
        return bool(left < right)
    return bool(left <= right)


def _group_holds(group: ConditionGroup, company: Company) -> bool:
    results = (
        _group_holds(c, company) if isinstance(c, ConditionGroup) else _condition_holds(c, company)
        for c in group.conditions
    )
    return any(results) if group.match == "any" else all(results)


def segment_contains(segment: Segment, company: Company) -> bool:
    """Whether ``company`` is in ``segment``."""
    definition = segment.definition
    if isinstance(definition, DomainList):
        if not company.domain:
            return False
        domains = {normalize_domain(d) for d in definition.domains}
        return normalize_domain(company.domain) in domains
    return _group_holds(definition, company)


# ------------------------------------------------------------------------------------------------
# Owners


def pull_account_fields(
    account: AccountRecord | None, pulled: Sequence[tuple[str, str]]
) -> dict[str, FieldValue]:
    """Company attributes from the account's fields: ``(company attribute, CRM field)`` pairs."""
    if account is None:
        return {}
    lowered = {k.lower(): v for k, v in account.fields.items()}
    out: dict[str, FieldValue] = {}
    for attribute, crm_field in pulled:
        value = lowered.get(crm_field.lower())
        if not is_empty(value):
            out[attribute] = value
    return out


def _walk(
    account: AccountRecord | None,
    owner_fields: Sequence[str],
    users: UserMapping,
    trace: list[Reason],
) -> tuple[str | None, int | None]:
    """Read the owner fields in order; the Signals user and which field (0/1) gave it."""
    if account is None:
        trace.append(info("account_not_found", "no CRM account has this domain"))
        return None, None
    lowered = {k.lower(): v for k, v in account.fields.items()}
    for index, field in enumerate(owner_fields[:2]):
        crm_user = lowered.get(field.lower())
        if is_empty(crm_user):
            trace.append(info("owner_field_empty", f"{field} is empty on account {account.id}"))
            continue
        entry = users.signals_user_for(str(crm_user))
        if entry is None:
            trace.append(
                info("owner_not_signals_user", f"{field} = {crm_user} is not a Signals user")
            )
            continue
        if not entry.licensed:
            trace.append(
                info("owner_not_licensed", f"{field} = {crm_user} is not a licensed Signals user")
            )
            continue
        who = entry.signals_user_id or entry.signals_email
        trace.append(info("owner_field_used", f"{field} = {crm_user} is Signals user {who}"))
        return who, index
    return None, None


def _apply(
    account: AccountRecord | None,
    owner_fields: Sequence[str],
    fallback_user: str | None,
    users: UserMapping,
    trace: list[Reason],
    *,
    in_rule: bool,
) -> tuple[str | None, OwnershipPath | None]:
    who, index = _walk(account, owner_fields, users, trace)
    if who is not None and index is not None:
        if in_rule:
            path = OwnershipPath.OWNER_FIELD_1 if index == 0 else OwnershipPath.OWNER_FIELD_2
        else:
            path = (
                OwnershipPath.FALLBACK_OWNER_FIELD_1
                if index == 0
                else OwnershipPath.FALLBACK_OWNER_FIELD_2
            )
        return who, path
    if fallback_user is not None:
        trace.append(info("fallback_user_used", f"fallback routing user {fallback_user}"))
        return fallback_user, (
            OwnershipPath.RULE_FALLBACK_USER if in_rule else OwnershipPath.FALLBACK_USER
        )
    return None, None


def decide_account_owner(
    company: Company,
    account: AccountRecord | None,
    config: OwnershipConfig,
    users: UserMapping,
) -> OwnershipResult:
    """Apply the ownership rule to a company and the CRM account found for it (rules 3-7)."""
    trace: list[Reason] = []
    account_id = account.id if account is not None else None
    rule: OwnershipRule | None = None
    rule_index: int | None = None
    for index, candidate in enumerate(config.rules):
        segment = config.segments.get(candidate.segment)
        if segment is None:
            raise PlanningError(
                f"ownership rule {index} names unknown segment {candidate.segment!r}"
            )
        if segment_contains(segment, company):
            rule, rule_index = candidate, index
            trace.append(info("segment_matched", f"rule {index}: company is in {segment.name!r}"))
            break
        trace.append(info("segment_not_matched", f"rule {index}: not in {segment.name!r}"))
    who: str | None = None
    path: OwnershipPath | None = None
    if rule is not None:
        who, path = _apply(
            account, rule.owner_fields, rule.fallback_user, users, trace, in_rule=True
        )
    else:
        fallback: FallbackCriteria | None = config.fallback
        if fallback is not None:
            trace.append(info("fallback_criteria", "company in no segment: fallback criteria"))
            who, path = _apply(
                account, fallback.owner_fields, fallback.fallback_user, users, trace, in_rule=False
            )
        else:
            trace.append(info("no_segment", "company in no segment and no fallback criteria"))
    if who is None or path is None:
        if config.default_account_owner is not None:
            trace.append(
                info(
                    "default_account_owner", f"default account owner {config.default_account_owner}"
                )
            )
            return OwnershipResult(
                config.default_account_owner,
                OwnershipPath.DEFAULT_ACCOUNT_OWNER,
                rule_index,
                rule.segment if rule else None,
                account_id,
                tuple(trace),
            )
        trace.append(info("no_account_owner", "no Signals user owns this company"))
        return OwnershipResult(
            None,
            OwnershipPath.NONE,
            rule_index,
            rule.segment if rule else None,
            account_id,
            tuple(trace),
        )
    return OwnershipResult(
        who, path, rule_index, rule.segment if rule else None, account_id, tuple(trace)
    )


def _needed_fields(config: OwnershipConfig, pulled: Sequence[tuple[str, str]]) -> tuple[str, ...]:
    names: dict[str, None] = {}
    for rule in config.rules:
        for f in rule.owner_fields:
            names.setdefault(f, None)
    if config.fallback is not None:
        for f in config.fallback.owner_fields:
            names.setdefault(f, None)
    for _, crm_field in pulled:
        names.setdefault(crm_field, None)
    return tuple(names)


def plan_account_owners(
    companies: Sequence[Company],
    config: OwnershipConfig,
    users: UserMapping,
    *,
    pulled: Sequence[tuple[str, str]] = (),
) -> Generator[FindAccounts, Any, list[OwnershipResult]]:
    """Sans-IO: yield one :class:`FindAccounts` for all the companies' domains, then decide.

    ``pulled`` lists ``(company attribute, CRM account field)`` pairs from the ``account``
    mapping set.
    """
    domains: dict[str, None] = {}
    for company in companies:
        if company.domain:
            domains.setdefault(normalize_domain(company.domain), None)
    found: Mapping[str, tuple[AccountRecord, ...]] = {}
    if domains:
        request = FindAccounts(tuple(domains), _needed_fields(config, pulled))
        answer = yield request
        if answer is None or len(answer) != len(request.domains):
            raise PlanningError("FindAccounts must be answered with one result per domain")
        found = dict(zip(request.domains, answer, strict=True))
    results: list[OwnershipResult] = []
    for company in companies:
        accounts = found.get(normalize_domain(company.domain), ()) if company.domain else ()
        account = (
            max(sorted(accounts, key=lambda a: a.id), key=lambda a: recency(a.last_modified))
            if accounts
            else None
        )
        enriched = company.with_attributes(pull_account_fields(account, pulled))
        results.append(decide_account_owner(enriched, account, config, users))
    return results


def owner_field_paths(config: OwnershipConfig) -> list[tuple[str, str]]:
    """Every owner field the rules and the fallback criteria read, with its settings path."""
    named = [
        (f"ownership_rules[{i}].owner_fields[{j}]", field)
        for i, rule in enumerate(config.rules)
        for j, field in enumerate(rule.owner_fields)
    ]
    if config.fallback is not None:
        named.extend(
            (f"fallback_criteria.owner_fields[{j}]", field)
            for j, field in enumerate(config.fallback.owner_fields)
        )
    return named


def owner_field_problems(config: OwnershipConfig, account: ObjectSchema) -> list[Problem]:
    """Preflight: each owner field the account object lacks, or that holds no user id.

    The second check applies when the schema says which fields hold a user id at all
    (``FieldSchema.names_user`` on some field, as the built-in adapters describe): a custom
    adapter that never marks one is not second-guessed.
    """
    marks_users = any(f.names_user for f in account.fields.values())
    problems: list[Problem] = []
    for path, name in owner_field_paths(config):
        field = account.get(name)
        if field is None:
            problems.append(Problem(path, f"{account.name} has no field {name!r}"))
        elif marks_users and not field.names_user:
            problems.append(
                Problem(
                    path,
                    f"{field.name} does not hold a CRM user, so it cannot name an owner (the "
                    "settings catalog's owner_fields lists those that can)",
                )
            )
    return problems
