"""The local Salesforce over real HTTP on loopback (standard library ``http.server``, threaded).

Any HTTP client can talk to it. A dropped connection (the ``drop_after_commit`` fault) closes
the socket without an answer, so clients see a real network error.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from signals_crm.testing.salesforce._org import LocalSalesforce

__all__ = ["LOCAL_CLIENT_ID", "LOCAL_CLIENT_SECRET", "running_server", "serve"]

LOCAL_CLIENT_ID = "signals-crm-local"
LOCAL_CLIENT_SECRET = "local-secret"  # noqa: S105  # a published, sandbox-only credential


def _handler_class(org: LocalSalesforce) -> type[BaseHTTPRequestHandler]:
    from signals_crm.testing.salesforce._org import ConnectionDropped

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "LocalSalesforce/1.0"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002  # the base class's name
            """Stay quiet: tests and the CLI do their own reporting."""

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            host = self.headers.get("Host") or "127.0.0.1"
            url = f"http://{host}{self.path}"
            try:
                reply = org.dispatch(self.command, url, dict(self.headers.items()), body)
            except ConnectionDropped:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            content = reply.content()
            self.send_response(reply.status)
            for name, value in reply.all_headers().items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _answer  # noqa: N815  # http.server's names

    return Handler


@contextmanager
def running_server(
    org: LocalSalesforce, *, port: int = 0, host: str = "127.0.0.1"
) -> Iterator[str]:
    """Serve ``org`` in a background thread; yields ``http://127.0.0.1:<port>``; stops on exit.

    The org's ``instance_url`` becomes that URL, so tokens it issues point clients here.
    """
    server = ThreadingHTTPServer((host, port), _handler_class(org))
    server.daemon_threads = True
    url = f"http://{host}:{server.server_address[1]}"
    org.instance_url = url
    thread = threading.Thread(target=server.serve_forever, name="local-salesforce", daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def serve(
    port: int = 8000,
    *,
    host: str = "127.0.0.1",
    org: LocalSalesforce | None = None,
    announce: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Serve a local Salesforce on ``host:port`` until interrupted (``signals-crm sandbox
    salesforce --port N``).

    The org's instance URL becomes the server's URL; a connected app ``signals-crm-local`` /
    ``local-secret`` may use the client-credentials flow, and a ready access token is issued.
    ``announce`` receives a few lines saying how to connect (the CLI prints them). Serving
    ends on ``KeyboardInterrupt``, or when ``stop`` (if given) is set.
    """
    from signals_crm.testing.salesforce._org import LocalSalesforce

    org = org or LocalSalesforce()
    server = ThreadingHTTPServer((host, port), _handler_class(org))
    server.daemon_threads = True
    url = f"http://{host}:{server.server_address[1]}"
    org.instance_url = url
    org.register_client(LOCAL_CLIENT_ID, LOCAL_CLIENT_SECRET, client_credentials=True)
    if announce is not None:
        announce(f"Local Salesforce listening on {url}")
        announce(f"  token endpoint: {url}/services/oauth2/token")
        announce(f"  client credentials: {LOCAL_CLIENT_ID} / {LOCAL_CLIENT_SECRET}")
        announce(f"  access token: {org.issue_token()}")
    try:
        if stop is None:
            server.serve_forever()
        else:
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            stop.wait()
            server.shutdown()
            thread.join()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
