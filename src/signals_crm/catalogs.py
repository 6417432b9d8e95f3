"""Settings catalogs for a host's settings page, read through any adapter.

::

    from signals_crm.catalogs import settings_catalog

    catalog = settings_catalog(adapter, signals_users=[SignalsUser(email="priya@vendor.test")])
    page_data = catalog.as_dict()            # JSON-ready (schema ``settings_catalog``)
    catalog.push_tab.targets_for("contact.first_name")   # the CRM fields that can receive it
    settings = settings.with_user_mapping_proposal(catalog.user_mapping)

:func:`settings_catalog` (blocking) and :func:`asettings_catalog` (``async``) make the same
adapter calls, the metadata preflight reads too: ``describe`` of the person and account objects,
``list_users``, and ``list_campaigns`` when the adapter declares ``lists_campaigns``. The
built-in adapters keep those answers in their metadata cache (``adapters/_cache.py``), so a
catalog then a preflight cost one round of requests. The rules of what is offered are those of
:mod:`signals_crm.core.catalog`. An adapter error (network, authentication) propagates; an
adapter whose CRM has no account object (describe answers ``NotFoundError``) gets an account
tab and owner fields without fields.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from typing import Any

from signals_crm._drive import adrive, drive
from signals_crm._flows import Call
from signals_crm.adapters.base import AsyncCRMAdapter, CRMAdapter
from signals_crm.core.catalog import (
    SIGNALS_FIELDS,
    CRMFieldOption,
    MappingTabCatalog,
    SettingsCatalog,
    SignalsField,
    build_catalog,
)
from signals_crm.core.crm import CampaignInfo, Capabilities
from signals_crm.core.model import CRMUser, ObjectSchema, SignalsUser
from signals_crm.core.users import propose_user_mapping
from signals_crm.exceptions import NotFoundError

__all__ = [
    "SIGNALS_FIELDS",
    "CRMFieldOption",
    "MappingTabCatalog",
    "SettingsCatalog",
    "SignalsField",
    "asettings_catalog",
    "settings_catalog",
]

_Flow = Generator[Call, Any, SettingsCatalog]


def _account_schema(caps: Capabilities) -> Generator[Call, Any, ObjectSchema | None]:
    try:
        schema: ObjectSchema = yield Call("describe", (caps.account_object,))
    except NotFoundError:
        return None  # a CRM without an account object
    return schema


def _catalog_flow(caps: Capabilities, signals_users: Iterable[SignalsUser] | None) -> _Flow:
    person: ObjectSchema | None = None
    account: ObjectSchema | None = None
    if caps.supports_describe:
        person = yield Call("describe", (caps.person_object,))
        account = yield from _account_schema(caps)
    users: list[CRMUser] = yield Call("list_users", ())
    campaigns: list[CampaignInfo] | None = None
    if caps.lists_campaigns and caps.supports_campaigns:
        campaigns = yield Call("list_campaigns", ())
    proposal = propose_user_mapping(signals_users, users) if signals_users is not None else None
    return build_catalog(
        caps,
        person_schema=person,
        account_schema=account,
        users=users,
        campaigns=campaigns,
        user_mapping=proposal,
    )


def settings_catalog(
    adapter: CRMAdapter, *, signals_users: Iterable[SignalsUser] | None = None
) -> SettingsCatalog:
    """Everything a settings page offers for this CRM connection (see the module docstring).

    ``signals_users`` (the host's Signals users) adds a proposed user mapping, matched by email
    with the CRM's active users.
    """

    def perform(call: Call) -> Any:
        return getattr(adapter, call.method)(*call.args)

    flow = _catalog_flow(adapter.capabilities, signals_users)
    return drive(flow, perform, catch=(NotFoundError,))


async def asettings_catalog(
    adapter: AsyncCRMAdapter, *, signals_users: Iterable[SignalsUser] | None = None
) -> SettingsCatalog:
    """:func:`settings_catalog` through an ``async`` adapter."""

    async def perform(call: Call) -> Any:
        return await getattr(adapter, f"a{call.method}")(*call.args)

    flow = _catalog_flow(adapter.capabilities, signals_users)
    return await adrive(flow, perform, catch=(NotFoundError,))
