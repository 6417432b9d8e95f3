"""Fixtures for driving the sandboxes with the vendors' own Python clients over HTTPS."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from signals_crm.testing import LoopbackServer
from signals_crm.testing.hubspot import LocalHubSpot
from signals_crm.testing.salesforce import LocalSalesforce


@pytest.fixture
def org() -> LocalSalesforce:
    return LocalSalesforce()


@pytest.fixture
def sf_server(org: LocalSalesforce) -> Iterator[LoopbackServer]:
    with LoopbackServer(org, tls=True) as server:
        yield server


@pytest.fixture
def portal() -> LocalHubSpot:
    return LocalHubSpot(burst_limit=None, search_per_second=None)


@pytest.fixture
def hs_server(portal: LocalHubSpot) -> Iterator[LoopbackServer]:
    with LoopbackServer(portal, tls=True) as server:
        yield server
