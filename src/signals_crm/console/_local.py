"""``signals-crm console``: the console for one person on this machine.

1. It listens on 127.0.0.1 only (never on another interface: there is no option for it).
2. Its authentication is a **one-time token** printed on the terminal: opening
   ``/login?token=...`` once exchanges it for a session cookie (``HttpOnly``,
   ``SameSite=Strict``, random, held in memory) and the token is spent. Every other request
   needs that cookie. Restarting the command issues a new token and forgets every session.
3. A host application mounts :func:`~signals_crm.console.create_console` with its own
   authentication instead; this runner is for a first look or a laptop.
"""

from __future__ import annotations

import hmac
import secrets
import socket
import threading
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route

__all__ = ["COOKIE", "LocalTokenAuth", "local_app", "serve_local"]

COOKIE = "signals_console"


class LocalTokenAuth:
    """A one-time login token exchanged for in-memory session cookies (rules: module doc)."""

    def __init__(self, token: str | None = None) -> None:
        self._token: str | None = token or secrets.token_urlsafe(24)
        self._sessions: set[str] = set()
        self._lock = threading.Lock()
        self.login_token = self._token

    def __repr__(self) -> str:
        return f"LocalTokenAuth(sessions={len(self._sessions)}, token=<hidden>)"

    def __call__(self, request: Request) -> str | None:
        session = request.cookies.get(COOKIE)
        if session is None:
            return None
        with self._lock:
            known = any(hmac.compare_digest(session, s) for s in self._sessions)
        return "local operator" if known else None

    def exchange(self, offered: str | None) -> str | None:
        """A new session id for the one-time token, or ``None`` (wrong or already spent)."""
        with self._lock:
            if self._token is None or offered is None:
                return None
            if not hmac.compare_digest(offered.encode(), self._token.encode()):
                return None
            self._token = None
            session = secrets.token_urlsafe(32)
            self._sessions.add(session)
            return session


def local_app(console: Starlette, auth: LocalTokenAuth) -> Starlette:
    """The console behind a ``/login`` route that spends the one-time token."""

    async def login(request: Request) -> Response:
        session = auth.exchange(request.query_params.get("token"))
        if session is None:
            return PlainTextResponse(
                "This login link was already used or is wrong. Restart `signals-crm console` "
                "for a new one.",
                status_code=403,
            )
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, session, httponly=True, samesite="strict", path="/")
        response.headers["cache-control"] = "no-store"
        response.headers["referrer-policy"] = "no-referrer"
        return response

    return Starlette(routes=[Route("/login", login), Mount("/", app=console)])


def serve_local(
    app: Starlette,
    *,
    port: int = 0,
    announce: Callable[[str], None] = print,
    ready: Callable[[Any], None] | None = None,
) -> None:
    """Serve ``app`` on 127.0.0.1:``port`` with uvicorn until Ctrl-C.

    ``announce`` receives the address; ``ready`` receives the uvicorn server once it is
    created (tests stop it by setting ``should_exit``).
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by each connection
    sock.bind(("127.0.0.1", port))
    # Listening before the address is announced: a client that follows the link at once is
    # queued until uvicorn accepts, never refused (it listens on this socket again, harmless).
    sock.listen(2048)
    config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    announce(f"http://127.0.0.1:{sock.getsockname()[1]}")
    if ready is not None:
        ready(server)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
