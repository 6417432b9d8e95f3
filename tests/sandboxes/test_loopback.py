"""The shared loopback server: HTTPS from a local CA, plain HTTP on the same port, a CONNECT
proxy that serves the sandbox itself, and hang-ups as real network errors."""

from __future__ import annotations

import socket
import ssl
import threading

import httpx
import pytest

from signals_crm.testing import ConnectionDropped, LoopbackServer
from signals_crm.testing.hubspot import LocalHubSpot
from signals_crm.testing.salesforce import LocalSalesforce


def _trust(server: LoopbackServer) -> ssl.SSLContext:
    assert server.ca_file is not None
    return ssl.create_default_context(cafile=server.ca_file)


def test_https_and_plain_http_on_one_port(tls_available: None) -> None:
    """A TLS client and a plain one reach the same org; the instance URL is the HTTPS one."""
    org = LocalSalesforce()
    token = org.issue_token()
    headers = {"Authorization": f"Bearer {token}"}
    with LoopbackServer(org, tls=True) as server:
        assert server.url.startswith("https://127.0.0.1:")
        assert org.instance_url == server.url
        with httpx.Client(verify=_trust(server), headers=headers) as tls:
            secure = tls.get(f"{server.url}/services/data/v61.0/limits")
        with httpx.Client(headers=headers) as plain:
            clear = plain.get(f"{server.plain_url}/services/data/v61.0/limits")
    assert secure.status_code == clear.status_code == 200
    assert secure.json()["DailyApiRequests"]["Remaining"] == 15_000 - 1
    assert clear.json()["DailyApiRequests"]["Remaining"] == 15_000 - 2


def test_untrusted_certificate_is_refused(tls_available: None) -> None:
    """Without the CA bundle the handshake fails: the certificate really comes from a local CA."""
    with (
        LoopbackServer(LocalHubSpot(), tls=True) as server,
        httpx.Client() as client,
        pytest.raises(httpx.ConnectError),
    ):
        client.get(f"{server.url}/crm/v3/owners")


def test_connect_proxy_serves_vendor_host_names_locally(tls_available: None) -> None:
    """A client whose HTTPS proxy is the sandbox reaches it under the vendor's own host name
    (the certificate covers it), so code that hard-codes vendor URLs runs unchanged."""
    portal = LocalHubSpot()
    with (
        LoopbackServer(portal, tls=True) as server,
        httpx.Client(proxy=server.proxy_url, verify=_trust(server)) as client,
    ):
        answer = client.get(
            "https://api.hubapi.com/crm/v3/owners",
            headers={"Authorization": "Bearer local-hubspot-token"},
        )
    assert answer.status_code == 200
    assert answer.json() == {"results": []}
    assert portal.requests == [("GET", "/crm/v3/owners")]


def test_connect_without_tls_mode_is_refused() -> None:
    """Plain mode has no certificate to offer a tunnel: CONNECT is answered 405."""
    server = LoopbackServer(LocalHubSpot())
    port = int(server.url.rsplit(":", 1)[1])
    with server, socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"CONNECT api.hubapi.com:443 HTTP/1.1\r\nHost: api.hubapi.com\r\n\r\n")
        status_line = sock.recv(200).split(b"\r\n", 1)[0]
    assert b" 405 " in status_line


class _HangsUp:
    def __init__(self) -> None:
        self.seen = 0

    def answer(self, request: httpx.Request) -> httpx.Response:
        del request
        self.seen += 1
        raise ConnectionDropped

    def served_at(self, url: str) -> None:
        del url


def test_a_hang_up_is_a_network_error_for_any_client() -> None:
    """An app raising ConnectionDropped makes the server close the socket unanswered."""
    app = _HangsUp()
    with (
        LoopbackServer(app) as server,
        httpx.Client() as client,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        client.get(f"{server.url}/anything")
    assert app.seen == 1


def test_accepted_sockets_disable_nagle() -> None:
    """Every accepted socket has TCP_NODELAY, so small answers are not held ~40 ms."""
    seen: list[int] = []

    class Probe(_HangsUp):
        def answer(self, request: httpx.Request) -> httpx.Response:
            del request
            return httpx.Response(200, text="ok")

    server = LoopbackServer(Probe())
    original = server._server.finish_request

    finished = threading.Event()

    def spy(sock: socket.socket, address: object) -> None:
        original(sock, address)
        seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        finished.set()

    server._server.finish_request = spy  # type: ignore[method-assign]
    with server, httpx.Client() as client:
        assert client.get(f"{server.url}/").text == "ok"
        client.close()  # the server's handler returns once the client hangs up
        # The client has its answer before the server's thread leaves finish_request.
        assert finished.wait(10)
    assert seen == [1]
