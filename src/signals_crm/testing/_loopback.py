"""One loopback server for both sandboxes: HTTP and HTTPS on one port, and a CONNECT proxy.

Theory of operation:

1. :class:`LoopbackServer` serves any :class:`LoopbackApp` (``LocalSalesforce``,
   ``LocalHubSpot``) on ``127.0.0.1`` with the standard library's threaded ``http.server``.
   Each request becomes an ``httpx.Request`` handed to ``app.answer``; the ``httpx.Response``
   goes back on the socket in one write. Every accepted socket has ``TCP_NODELAY`` set, so a
   small answer is never held back by Nagle's algorithm waiting for a delayed ACK (~40 ms a
   request on Linux loopback without it).
2. With ``tls=True`` the server holds a locally generated certificate authority (``trustme``,
   the ``sandbox`` extra) and a certificate for ``127.0.0.1``, ``localhost`` and the vendors'
   host names (``*.salesforce.com``, ``*.my.salesforce.com``, ``api.hubapi.com``, ...). The
   first byte of each connection says what it speaks: a TLS handshake is answered with TLS,
   anything else as plain HTTP, so plain HTTP stays available on the same port.
   :attr:`LoopbackServer.ca_file` is the CA bundle (PEM) to give clients (``verify=...`` in
   httpx and requests, ``ssl_ca_cert`` in hubspot-api-client, ``REQUESTS_CA_BUNDLE``).
3. ``CONNECT host:port`` (what a client configured with this server as its HTTPS proxy sends)
   is answered ``200 Connection Established`` and the tunnel is then served by the sandbox
   itself, whatever host was named. Clients that build vendor URLs themselves (simple-salesforce
   logs in at ``https://login.salesforce.com``) reach the sandbox with ``proxies=`` /
   ``HTTPS_PROXY`` and the CA bundle, and nothing else changed. Nothing leaves the machine.
4. An app raises :class:`ConnectionDropped` to hang up without answering (fault injection):
   the socket is shut down, so any client sees a real network error.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

import httpx

__all__ = ["VENDOR_HOSTS", "ConnectionDropped", "LoopbackApp", "LoopbackServer"]

VENDOR_HOSTS = (
    "localhost",
    "127.0.0.1",
    "login.salesforce.com",
    "test.salesforce.com",
    "*.salesforce.com",
    "*.my.salesforce.com",
    "*.sandbox.my.salesforce.com",
    "api.hubapi.com",
    "app.hubspot.com",
    "*.hubapi.com",
)
"""The names the sandbox certificate covers (loopback and the vendors' API hosts)."""

_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}
)


class ConnectionDropped(Exception):  # noqa: N818  # named for what happens, as httpx names its errors
    """The server hangs up without answering (a write, if any, already landed)."""


class LoopbackApp(Protocol):
    """What a sandbox offers the server: one request in, one response out."""

    def answer(self, request: httpx.Request) -> httpx.Response:
        """Answer ``request``; raise :class:`ConnectionDropped` to hang up instead."""
        ...

    def served_at(self, url: str) -> None:
        """Told the server's base URL once it listens (the org's instance URL follows it)."""
        ...


class _Authority:
    """A throw-away CA and one server certificate for the loopback and vendor names."""

    def __init__(self, directory: Path | None) -> None:
        try:
            import trustme
        except ImportError as exc:  # pragma: no cover - trustme is in the sandbox/tests extras
            msg = "HTTPS on loopback needs trustme: pip install 'signals-crm[sandbox]'"
            raise RuntimeError(msg) from exc
        self._ca = trustme.CA(organization_name="signals-crm local sandbox")
        cert = self._ca.issue_cert(*VENDOR_HOSTS)
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(self.context)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if directory is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="signals-crm-ca-")
            directory = Path(self._tmp.name)
        directory.mkdir(parents=True, exist_ok=True)
        self.ca_file = directory / "signals-crm-sandbox-ca.pem"
        self._ca.cert_pem.write_to_path(str(self.ca_file))

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    app: LoopbackApp
    authority: _Authority | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with contextlib.suppress(OSError, ssl.SSLError):
            wrapped = _maybe_tls(request, self.authority)
            super().finish_request(wrapped, client_address)


def _maybe_tls(sock: socket.socket, authority: _Authority | None) -> socket.socket:
    """``sock``, wrapped in TLS when the peer opens with a handshake and TLS is on."""
    if authority is None:
        return sock
    first = sock.recv(1, socket.MSG_PEEK)
    if first != b"\x16":
        return sock
    wrapped = authority.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
    try:
        wrapped.do_handshake()
    except (OSError, ssl.SSLError):
        wrapped.close()
        raise
    return wrapped


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "signals-crm-sandbox/1.0"
    server: _Server
    _tunnelled = False

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002  # the base class's name
        """Stay quiet: tests and the CLI do their own reporting."""

    def finish(self) -> None:
        """Close a TLS layer too: the server only knows the plain socket beneath it."""
        try:
            super().finish()
        finally:
            if isinstance(self.connection, ssl.SSLSocket):
                with contextlib.suppress(OSError):
                    self.connection.close()

    def do_CONNECT(self) -> None:  # http.server's naming
        """Open a tunnel that the sandbox itself serves (the proxy mode)."""
        if self._tunnelled or self.server.authority is None:
            self.send_error(405, "CONNECT needs the server's TLS mode")
            return
        self.send_response(200, "Connection Established")
        self.end_headers()
        self.wfile.flush()
        self.connection = _maybe_tls(self.connection, self.server.authority)
        self.rfile = self.connection.makefile("rb", self.rbufsize)
        self.wfile = self.connection.makefile("wb", 0)
        self._tunnelled = True
        self.close_connection = False  # http.client tunnels with an HTTP/1.0 CONNECT

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        scheme = "https" if isinstance(self.connection, ssl.SSLSocket) else "http"
        host = self.headers.get("host") or "127.0.0.1"
        path = self.path if self.path.startswith("/") else httpx.URL(self.path).raw_path.decode()
        request = httpx.Request(
            self.command,
            f"{scheme}://{host}{path}",
            headers=[(k, v) for k, v in self.headers.items() if k.lower() != "host"],
            content=body,
        )
        try:
            response = self.server.app.answer(request)
        except ConnectionDropped:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        except Exception as exc:  # noqa: BLE001  # a sandbox bug answers 500, never a hang-up
            response = httpx.Response(500, text=f"sandbox error: {type(exc).__name__}: {exc}")
        content = response.content
        lines = [f"{self.protocol_version} {response.status_code} {response.reason_phrase}"]
        lines.extend(
            f"{name}: {value}"
            for name, value in response.headers.multi_items()
            if name.lower() not in _HOP_BY_HOP
        )
        lines.append(f"Content-Length: {len(content)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head + content)
        self.wfile.flush()

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = do_HEAD = _answer  # noqa: N815  # http.server's names


class LoopbackServer:
    """Serve a sandbox on loopback while the ``with`` block runs (port 0 picks a free port).

    ``tls=True`` serves HTTPS (and plain HTTP, and the CONNECT proxy) from a local CA whose
    bundle is :attr:`ca_file`; ``ca_dir`` keeps that file in a directory of your choice instead
    of a temporary one (the CLI writes it where it says).
    """

    def __init__(
        self,
        app: LoopbackApp,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool = False,
        ca_dir: str | Path | None = None,
    ) -> None:
        self.app = app
        self._authority = _Authority(Path(ca_dir) if ca_dir else None) if tls else None
        self._server = _Server((host, port), _Handler)
        self._server.app = app
        self._server.authority = self._authority
        self._thread: threading.Thread | None = None
        app.served_at(self.url)

    def __repr__(self) -> str:
        return f"LoopbackServer(url={self.url!r})"

    @property
    def portal(self) -> LoopbackApp:
        """The sandbox served (the name the HubSpot server used)."""
        return self.app

    @property
    def url(self) -> str:
        """The base URL: ``https://127.0.0.1:<port>`` with TLS, else ``http://...``."""
        host, port = self._server.server_address[:2]
        scheme = "https" if self._authority is not None else "http"
        return f"{scheme}://{host!s}:{port}"

    @property
    def plain_url(self) -> str:
        """The same port spoken as plain HTTP (always available)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def proxy_url(self) -> str:
        """The URL to give clients as their HTTPS proxy (TLS mode): ``http://127.0.0.1:<port>``."""
        return self.plain_url

    @property
    def ca_file(self) -> str | None:
        """The CA bundle (PEM) clients must trust in TLS mode; ``None`` without TLS."""
        return str(self._authority.ca_file) if self._authority is not None else None

    def start(self) -> Self:
        """Serve in a background thread."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="signals-crm-sandbox",
                daemon=True,
            )
            self._thread.start()
        return self

    def serve_forever(self, stop: threading.Event | None = None) -> None:
        """Serve in this thread until ``KeyboardInterrupt`` or until ``stop`` is set."""
        try:
            if stop is None:
                self._server.serve_forever(poll_interval=0.2)
            else:
                self.start()
                stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop serving, close the socket and remove a temporary CA bundle."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()
        if self._authority is not None:
            self._authority.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
