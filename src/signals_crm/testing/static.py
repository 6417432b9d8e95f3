"""Drive a planning generator against a fixed CRM state, with no adapter at all.

Handy in unit tests of code built on the core::

    plans = run_with_state(plan_sync([conv], config, SALESFORCE_LIKE, now=now),
                           people=[existing_lead])
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Sequence
from typing import Any, TypeVar

from signals_crm._drive import drive
from signals_crm.core.crm import (
    Capabilities,
    DescribeObject,
    FindAccounts,
    FindPeople,
    ListUsers,
)
from signals_crm.core.model import (
    AccountRecord,
    CRMUser,
    ObjectSchema,
    PersonKind,
    PersonRecord,
    normalize_email,
)
from signals_crm.core.normalize import normalize_domain
from signals_crm.exceptions import PlanningError

__all__ = ["HUBSPOT_LIKE", "SALESFORCE_LIKE", "run_with_state"]

T = TypeVar("T")

SALESFORCE_LIKE = Capabilities(
    name="salesforce-like",
    person_kind=PersonKind.LEAD,
    person_object="Lead",
    email_field="Email",
    separate_contacts=True,
    max_task_body_length=32_000,
    supports_describe=False,
    required_on_create=("LastName", "Company"),
)
"""Capabilities shaped like Salesforce's (Leads, separate Contacts), without describe."""

HUBSPOT_LIKE = Capabilities(
    name="hubspot-like",
    person_kind=PersonKind.CONTACT,
    person_object="contacts",
    email_field="email",
    separate_contacts=False,
    lookup_batch_size=100,
    write_batch_size=100,
    campaign_kind="list",
    max_task_body_length=65_536,
    supports_describe=False,
    account_object="companies",
    required_on_create=(),
)
"""Capabilities shaped like HubSpot's (contacts are the person records), without describe."""


def run_with_state(
    flow: Generator[Any, Any, T],
    *,
    people: Iterable[PersonRecord] = (),
    accounts: Iterable[AccountRecord] = (),
    users: Sequence[CRMUser] = (),
    schemas: Iterable[ObjectSchema] = (),
) -> T:
    """Answer every lookup ``flow`` yields from the given records; return its result."""
    by_email: dict[str, list[PersonRecord]] = {}
    for person in people:
        if person.email is not None:
            by_email.setdefault(normalize_email(person.email), []).append(person)
    by_domain: dict[str, list[AccountRecord]] = {}
    for account in accounts:
        if account.domain is not None:
            by_domain.setdefault(normalize_domain(account.domain), []).append(account)
    by_name = {s.name.lower(): s for s in schemas}

    def answer(request: Any) -> Any:
        if isinstance(request, FindPeople):
            return [tuple(by_email.get(normalize_email(e), ())) for e in request.emails]
        if isinstance(request, FindAccounts):
            return [tuple(by_domain.get(normalize_domain(d), ())) for d in request.domains]
        if isinstance(request, DescribeObject):
            if request.object_name.lower() not in by_name:
                raise PlanningError(f"no schema given for {request.object_name}")
            return by_name[request.object_name.lower()]
        if isinstance(request, ListUsers):
            return list(users)
        raise PlanningError(f"unknown lookup {request!r}")

    return drive(flow, answer)
