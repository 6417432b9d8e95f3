"""The adapter conformance kit, run against the Salesforce adapters and the local Salesforce."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from types import MappingProxyType

import httpx
import pytest
from hypothesis import HealthCheck, settings

from signals_crm.adapters.salesforce import AsyncSalesforceAdapter, SalesforceAdapter, StaticToken
from signals_crm.testing.conformance import (
    AdapterConformance,
    AsyncAdapterConformance,
    adapter_state_machine,
)
from signals_crm.testing.salesforce import LocalSalesforce, SalesforceBackdoor, to_18

CREATE_FIELDS = MappingProxyType({"LastName": "Kit", "Company": "Kit Inc."})
MISSING_LEAD = to_18("00Q000000000000")
MISSING_CAMPAIGN = to_18("701000000000000")


class TestSalesforceConformance(AdapterConformance):
    """The blocking adapter over an in-process local org."""

    create_fields = CREATE_FIELDS
    text_field = "FirstName"
    account_field = "Industry"
    account_owner_field = "OwnerId"
    missing_person_id = MISSING_LEAD
    missing_campaign_id = MISSING_CAMPAIGN

    @pytest.fixture
    def adapter(self, org: LocalSalesforce) -> Iterator[SalesforceAdapter]:
        with httpx.Client(transport=org.transport()) as client:
            yield SalesforceAdapter(client, StaticToken(org.issue_token(), org.instance_url))


class TestAsyncSalesforceConformance(AsyncAdapterConformance):
    """The async adapter over an in-process local org."""

    create_fields = CREATE_FIELDS
    text_field = "FirstName"
    account_field = "Industry"
    account_owner_field = "OwnerId"
    missing_person_id = MISSING_LEAD
    missing_campaign_id = MISSING_CAMPAIGN

    @pytest.fixture
    async def adapter(self, org: LocalSalesforce) -> AsyncIterator[AsyncSalesforceAdapter]:
        async with httpx.AsyncClient(transport=org.transport()) as client:
            yield AsyncSalesforceAdapter(client, StaticToken(org.issue_token(), org.instance_url))


_orgs: dict[int, tuple[LocalSalesforce, httpx.Client]] = {}


def _new_adapter() -> SalesforceAdapter:
    org = LocalSalesforce(sleep=lambda _seconds: None)
    client = httpx.Client(transport=org.transport())
    adapter = SalesforceAdapter(client, StaticToken(org.issue_token(), org.instance_url))
    _orgs[id(adapter)] = (org, client)
    return adapter


def _backdoor_for(adapter: SalesforceAdapter) -> SalesforceBackdoor:
    return SalesforceBackdoor(_orgs[id(adapter)][0])


def _close(adapter: SalesforceAdapter) -> None:
    _, client = _orgs.pop(id(adapter))
    client.close()


_Machine = adapter_state_machine(
    _new_adapter,
    _backdoor_for,
    text_field="FirstName",
    create_fields=CREATE_FIELDS,
    missing_person_id=MISSING_LEAD,
    close=_close,
)
TestSalesforceStateMachine = _Machine.TestCase
TestSalesforceStateMachine.settings = settings(
    max_examples=15,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
