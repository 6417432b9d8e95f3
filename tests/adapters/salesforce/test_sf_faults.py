"""Fault injection in the local Salesforce, and how each fault reaches the adapter's caller."""

from __future__ import annotations

import httpx
import pytest

from signals_crm.adapters.salesforce import (
    AsyncSalesforceAdapter,
    RefreshTokenFlow,
    SalesforceAdapter,
    StaticToken,
)
from signals_crm.core.crm import PersonByEmail, PersonWrite
from signals_crm.core.model import PersonKind
from signals_crm.exceptions import (
    CRMServerError,
    RateLimitedError,
    TransportError,
)
from signals_crm.testing.salesforce import Faults, LocalSalesforce, SalesforceBackdoor


def _write(email: str) -> PersonWrite:
    return PersonWrite(
        key=email, kind=PersonKind.LEAD, email=email, fields={"LastName": "L", "Company": "C"}
    )


def test_server_unavailable_is_a_retryable_server_error(
    org: LocalSalesforce, sf: SalesforceAdapter
) -> None:
    """503 SERVER_UNAVAILABLE raises a retryable CRMServerError."""
    org.schedule_fault("server_unavailable")
    with pytest.raises(CRMServerError) as raised:
        sf.find_people(["a@x.com"])
    assert raised.value.status_code == 503
    assert raised.value.error_code == "SERVER_UNAVAILABLE"
    assert raised.value.retryable is True
    assert sf.find_people(["a@x.com"]) == [()]  # one-shot: the next call works


def test_html_gateway_error_is_a_retryable_server_error(
    org: LocalSalesforce, sf: SalesforceAdapter
) -> None:
    """A 502 HTML page raises a retryable CRMServerError named by the page."""
    org.schedule_fault("gateway_html")
    with pytest.raises(CRMServerError, match="502 Bad Gateway") as raised:
        sf.find_people(["probe@example.com"])
    assert raised.value.status_code == 502
    assert raised.value.retryable is True


def test_lock_row_on_a_query_raises_retryable(org: LocalSalesforce, sf: SalesforceAdapter) -> None:
    """UNABLE_TO_LOCK_ROW on a single resource raises a retryable CRMServerError."""
    org.schedule_fault("lock_row")
    with pytest.raises(CRMServerError) as raised:
        sf.find_people(["probe@example.com"])
    assert raised.value.error_code == "UNABLE_TO_LOCK_ROW"
    assert raised.value.retryable is True


def test_lock_row_in_collections_fails_each_record_retryably(
    org: LocalSalesforce, sf: SalesforceAdapter, backdoor: SalesforceBackdoor
) -> None:
    """Inside Collections UNABLE_TO_LOCK_ROW is a per-record, retryable failure."""
    org.schedule_fault("lock_row")
    results = sf.create_people([_write("a@x.com"), _write("b@x.com")])
    assert [r.ok for r in results] == [False, False]
    for result in results:
        assert isinstance(result.error, CRMServerError)
        assert result.error.retryable is True
    assert backdoor.people_with_email("a@x.com") == []


def test_concurrent_request_limit_is_retryable(org: LocalSalesforce, sf: SalesforceAdapter) -> None:
    """403 REQUEST_LIMIT_EXCEEDED (concurrent) raises a retryable RateLimitedError."""
    org.schedule_fault("request_limit")
    with pytest.raises(RateLimitedError) as raised:
        sf.find_people(["probe@example.com"])
    assert raised.value.status_code == 403
    assert raised.value.retryable is True


def test_daily_limit_exhaustion_is_not_retryable(
    org: LocalSalesforce, sf: SalesforceAdapter
) -> None:
    """When the daily allocation is spent the adapter raises a non-retryable RateLimitedError."""
    org.daily_limit = 2
    sf.find_people(["probe@example.com"])
    sf.find_people(["probe@example.com"])
    with pytest.raises(RateLimitedError) as raised:
        sf.find_people(["probe@example.com"])
    assert raised.value.retryable is False
    assert sf.api_usage is not None
    assert (sf.api_usage.used, sf.api_usage.limit) == (2, 2)


def test_429_carries_retry_after(org: LocalSalesforce, sf: SalesforceAdapter) -> None:
    """A 429 raises a retryable RateLimitedError with Retry-After."""
    org.schedule_fault("too_many_requests")
    with pytest.raises(RateLimitedError) as raised:
        sf.find_people(["probe@example.com"])
    assert raised.value.retry_after == 2.0


def test_one_shot_session_expiry_is_refreshed_transparently(
    org: LocalSalesforce, client: httpx.Client
) -> None:
    """A one-shot 401 is absorbed by one refresh and one replay."""
    org.register_client("app", "sec")
    flow = RefreshTokenFlow(
        client_id="app", client_secret="sec", refresh_token=org.issue_refresh_token("app")
    )
    adapter = SalesforceAdapter(client, flow)
    adapter.find_people(["probe@example.com"])
    org.schedule_fault("expire_session")
    assert adapter.find_people(["probe@example.com"]) == [()]
    assert org.token_requests == 2


def test_session_expiry_after_n_calls(client: httpx.Client) -> None:
    """expire_session_after=N ends each token after N calls; the adapter refreshes."""
    org = LocalSalesforce(faults=Faults(expire_session_after=2))
    org.register_client("app", "sec")
    flow = RefreshTokenFlow(
        client_id="app", client_secret="sec", refresh_token=org.issue_refresh_token("app")
    )
    with httpx.Client(transport=org.transport()) as http:
        adapter = SalesforceAdapter(http, flow)
        for _ in range(5):
            adapter.find_people(["probe@example.com"])
    assert org.token_requests == 3


def test_commit_then_drop_lands_the_write_but_raises_transport_error(
    org: LocalSalesforce, sf: SalesforceAdapter, backdoor: SalesforceBackdoor
) -> None:
    """The write lands, the client sees a TransportError that may have been sent; reconcile
    finds the record."""
    org.schedule_fault("drop_after_commit")
    with pytest.raises(TransportError) as raised:
        sf.create_people([_write("landed@x.com")])
    assert raised.value.maybe_sent is True
    assert raised.value.retryable is True
    assert isinstance(raised.value.__cause__, httpx.RemoteProtocolError)
    (lead_id,) = backdoor.people_with_email("landed@x.com")
    assert sf.reconcile([PersonByEmail(email="landed@x.com", kind=PersonKind.LEAD)]) == [lead_id]


def test_connect_error_was_not_sent() -> None:
    """A connection that never opened is a TransportError with maybe_sent=False."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with httpx.Client(transport=httpx.MockTransport(refuse)) as http:
        adapter = SalesforceAdapter(http, StaticToken("t", "https://x.my.salesforce.com"))
        with pytest.raises(TransportError) as raised:
            adapter.find_people(["probe@example.com"])
    assert raised.value.maybe_sent is False


def test_latency_uses_the_injected_sleep(client: httpx.Client) -> None:
    """Latency is injected sleep, never a real one."""
    slept: list[float] = []
    org = LocalSalesforce(faults=Faults(latency=0.25), sleep=slept.append)
    with httpx.Client(transport=org.transport()) as http:
        SalesforceAdapter(http, StaticToken(org.issue_token(), org.instance_url)).find_people(
            ["probe@example.com"]
        )
    assert slept == [0.25]


def _outcomes(seed: int) -> list[str]:
    org = LocalSalesforce(faults=Faults(seed=seed, server_unavailable=0.3, gateway_html=0.3))
    outcomes = []
    with httpx.Client(transport=org.transport()) as http:
        adapter = SalesforceAdapter(http, StaticToken(org.issue_token(), org.instance_url))
        for _ in range(20):
            try:
                adapter.find_people(["probe@example.com"])
                outcomes.append("ok")
            except CRMServerError as exc:
                outcomes.append(str(exc.status_code))
    return outcomes


def test_random_faults_are_seeded_and_reproducible() -> None:
    """The same seed gives the same fault sequence; faults of both kinds occur."""
    first = _outcomes(7)
    assert first == _outcomes(7)
    assert {"ok", "503", "502"} <= set(first)


def test_unknown_fault_kind_is_refused(org: LocalSalesforce) -> None:
    """Scheduling a fault that does not exist is an immediate error."""
    with pytest.raises(ValueError, match="unknown fault"):
        org.schedule_fault("meteor")


@pytest.mark.anyio
async def test_async_faults_map_the_same_way(
    org: LocalSalesforce, async_sf: AsyncSalesforceAdapter
) -> None:
    """The async adapter maps faults to the same typed errors."""
    org.schedule_fault("gateway_html")
    with pytest.raises(CRMServerError):
        await async_sf.afind_people(["probe@example.com"])
    org.schedule_fault("drop_after_commit")
    with pytest.raises(TransportError):
        await async_sf.acreate_people([_write("async@x.com")])
    assert SalesforceBackdoor(org).people_with_email("async@x.com") != []
