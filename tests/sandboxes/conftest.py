"""Fixtures for driving the sandboxes with the vendors' own Python clients over HTTPS."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from _services import import_or_unavailable
from signals_crm.testing import LoopbackServer
from signals_crm.testing.hubspot import LocalHubSpot
from signals_crm.testing.salesforce import LocalSalesforce


@pytest.fixture
def tls_available() -> None:
    """HTTPS needs the ``sandbox`` extra (trustme): skipped only in the session without it."""
    import_or_unavailable("trustme", "sandbox")


@pytest.fixture
def org() -> LocalSalesforce:
    return LocalSalesforce()


@pytest.fixture
def sf_server(org: LocalSalesforce, tls_available: None) -> Iterator[LoopbackServer]:
    with LoopbackServer(org, tls=True) as server:
        yield server


@pytest.fixture
def sf_env(sf_server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> LoopbackServer:
    """The CA bundle and the HTTPS proxy the way ``requests`` reads them from the environment
    (``REQUESTS_CA_BUNDLE`` overrides a session's ``verify`` anyway): nothing else."""
    assert sf_server.ca_file is not None
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sf_server.ca_file)
    monkeypatch.setenv("HTTPS_PROXY", sf_server.proxy_url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    return sf_server


@pytest.fixture
def portal() -> LocalHubSpot:
    return LocalHubSpot(burst_limit=None, search_per_second=None)


@pytest.fixture
def hs_server(portal: LocalHubSpot, tls_available: None) -> Iterator[LoopbackServer]:
    with LoopbackServer(portal, tls=True) as server:
        yield server
