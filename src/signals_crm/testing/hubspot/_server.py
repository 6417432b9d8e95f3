"""The local HubSpot portal over real HTTP on loopback (a small threaded stdlib server).

:class:`LocalHubSpotServer` is a context manager that serves a
:class:`~signals_crm.testing.hubspot.LocalHubSpot` on ``127.0.0.1`` (port 0 picks a free
port; ``url`` says which). Each request becomes an ``httpx.Request`` answered by the portal;
a dropped connection (fault injection) closes the socket without an answer, so any HTTP
client sees what it would see from a real server. :func:`serve` runs one until interrupted
(the ``signals-crm sandbox hubspot --port N`` command).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import ClassVar, Self

import httpx

from signals_crm.testing.hubspot._portal import Drop, LocalHubSpot

__all__ = ["LocalHubSpotServer", "serve"]

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})


class _Handler(BaseHTTPRequestHandler):
    portal: ClassVar[LocalHubSpot]
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002  # stdlib name
        """Stay quiet (the stdlib logs every request to stderr)."""

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        host = self.headers.get("host") or "127.0.0.1"
        request = httpx.Request(
            self.command,
            f"http://{host}{self.path}",
            headers=[(k, v) for k, v in self.headers.items() if k.lower() != "host"],
            content=body,
        )
        answer = self.portal.dispatch(request)
        if isinstance(answer, Drop):
            self.close_connection = True
            return
        content = answer.content
        self.send_response(answer.status_code)
        for name, value in answer.headers.multi_items():
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        if content:
            self.wfile.write(content)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer  # noqa: N815  # stdlib names


class LocalHubSpotServer:
    """Serve a :class:`LocalHubSpot` on loopback HTTP while the ``with`` block runs."""

    def __init__(
        self, portal: LocalHubSpot | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.portal = portal if portal is not None else LocalHubSpot()
        handler = type("_BoundHandler", (_Handler,), {"portal": self.portal})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"LocalHubSpotServer(url={self.url!r})"

    @property
    def url(self) -> str:
        """The base URL to give the adapter (``http://127.0.0.1:<port>``)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        """Start serving in a background thread."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="local-hubspot",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def demo_portal() -> LocalHubSpot:
    """A portal seeded for trying things out: one token, two owners, one static list."""
    portal = LocalHubSpot(tokens=("local-hubspot-token",))
    door = portal.backdoor
    door.seed_user(email="sally@example.com", name="Sally Seller")
    door.seed_user(email="bob@example.com", name="Bob Router")
    door.seed_campaign(name="Signals chat leads")
    return portal


def serve(
    port: int = 8766,
    *,
    host: str = "127.0.0.1",
    portal: LocalHubSpot | None = None,
    announce: Callable[[str], None] = print,
) -> None:
    """Serve a local HubSpot on ``host:port`` until interrupted (Ctrl-C).

    Without ``portal``, a demo portal is served: bearer token ``local-hubspot-token``, two
    owners and one static list; ``announce`` receives the URL and the token.
    """
    server = LocalHubSpotServer(
        portal if portal is not None else demo_portal(), host=host, port=port
    )
    announce(f"Local HubSpot listening on {server.url} (bearer token: local-hubspot-token)")
    try:
        server._server.serve_forever()  # noqa: SLF001  # foreground serving
    except KeyboardInterrupt:
        announce("Local HubSpot stopped")
    finally:
        server._server.server_close()  # noqa: SLF001
