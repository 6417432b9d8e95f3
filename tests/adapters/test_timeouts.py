"""Every adapter request carries a timeout: the client's, or a default when it has none."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator

import httpx
import pytest

from signals_crm.adapters._shell import DEFAULT_TIMEOUT
from signals_crm.adapters.hubspot import AsyncHubSpotAdapter, HubSpotAdapter, HubSpotAPI
from signals_crm.adapters.salesforce import (
    AsyncSalesforceAdapter,
    RefreshTokenFlow,
    SalesforceAdapter,
    StaticToken,
)
from signals_crm.exceptions import TransportError

SF_INSTANCE = "https://x.my.salesforce.com"


def _answer(request: httpx.Request) -> httpx.Response:
    if request.url.path.endswith("/oauth2/token"):
        return httpx.Response(200, json={"access_token": "t", "instance_url": SF_INSTANCE})
    if "salesforce" in request.url.host:
        if request.url.path.endswith("/composite"):  # preflight's metadata, read together
            subs = json.loads(request.content)["compositeRequest"]
            return httpx.Response(200, json={"compositeResponse": [_sub(s) for s in subs]})
        return httpx.Response(200, json={"totalSize": 0, "done": True, "records": []})
    return httpx.Response(200, json={"results": [], "paging": None})


def _sub(subrequest: dict[str, str]) -> dict[str, object]:
    body = (
        {"name": "Lead", "fields": []}
        if subrequest["url"].endswith("/describe")
        else {"totalSize": 0, "done": True, "records": []}
    )
    return {
        "body": body,
        "httpHeaders": {},
        "httpStatusCode": 200,
        "referenceId": subrequest["referenceId"],
    }


def _recording(seen: list[dict[str, float | None]]) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return _answer(request)

    return handler


def _sync_adapters(http: httpx.Client) -> list[SalesforceAdapter | HubSpotAdapter]:
    refresh = RefreshTokenFlow(client_id="app", refresh_token="r", login_url=SF_INSTANCE)
    return [
        SalesforceAdapter(http, refresh),
        HubSpotAdapter(http, "pat", api=HubSpotAPI(base_url="https://api.hubapi.com")),
    ]


@pytest.mark.parametrize(
    ("client_timeout", "expected"),
    [
        (None, DEFAULT_TIMEOUT.as_dict()),
        (httpx.Timeout(3.0), httpx.Timeout(3.0).as_dict()),
        (httpx.USE_CLIENT_DEFAULT, httpx.Timeout(5.0).as_dict()),
    ],
)
def test_every_request_and_token_request_has_a_timeout(
    client_timeout: object, expected: dict[str, float | None]
) -> None:
    """No timeout on the client → the adapter's default; otherwise the client's own, always."""
    seen: list[dict[str, float | None]] = []
    options = {} if client_timeout is httpx.USE_CLIENT_DEFAULT else {"timeout": client_timeout}
    transport = httpx.MockTransport(_recording(seen))
    with httpx.Client(transport=transport, **options) as http:  # type: ignore[arg-type]
        for adapter in _sync_adapters(http):
            adapter.list_users()
    assert len(seen) >= 3  # a token request, the metadata composite, the owners
    assert all(timeout == expected for timeout in seen)


@pytest.mark.anyio
async def test_async_adapters_apply_the_default_timeout_too() -> None:
    """The async shells give a timeout-less client's requests the default timeout."""
    seen: list[dict[str, float | None]] = []
    transport = httpx.MockTransport(_recording(seen))
    no_timeout = httpx.Timeout(None)
    async with httpx.AsyncClient(transport=transport, timeout=no_timeout) as http:
        await AsyncSalesforceAdapter(http, StaticToken("t", SF_INSTANCE)).alist_users()
        await AsyncHubSpotAdapter(http, "pat").alist_users()
    assert seen
    assert all(timeout == DEFAULT_TIMEOUT.as_dict() for timeout in seen)


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A loopback server that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        listener.close()


def test_a_crm_that_never_answers_is_a_transport_error_not_a_hang(silent_server: str) -> None:
    """With the client's short timeout, a silent CRM gives a maybe-sent TransportError."""
    with httpx.Client(timeout=0.2) as http:
        adapters = [
            SalesforceAdapter(http, StaticToken("t", silent_server)),
            HubSpotAdapter(http, "pat", api=HubSpotAPI(base_url=silent_server)),
        ]
        for adapter in adapters:
            with pytest.raises(TransportError) as raised:
                adapter.list_users()
            assert raised.value.maybe_sent is True
            assert isinstance(raised.value.__cause__, httpx.ReadTimeout)
