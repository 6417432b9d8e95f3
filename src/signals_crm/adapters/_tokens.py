"""Token refresh as an ``httpx.Auth``, written once for both CRMs and both kinds of client.

Theory of operation (the shape of httpx's ``_auth.py``):

1. :meth:`TokenAuth.steps` is one plain generator per request. It yields the requests to send
   and receives their responses: a token request first when no fresh token is held, then the
   request with its bearer token, and, when the answer says the session expired, one refresh
   and one replay. Whatever the replay answers goes back to the caller.
2. Between requests it yields *effects* that only a driver can perform: :data:`LOCK` and
   :data:`UNLOCK` around a refresh, and a :class:`TokenSet` when tokens change (the driver
   hands it to the host's :class:`TokenStore`). After taking the lock the flow looks again:
   a token another thread or task fetched meanwhile is reused, so concurrent failures cost
   exactly one token request.
3. ``sync_auth_flow`` (a ``threading.Lock``) and ``async_auth_flow`` (an ``anyio.Lock``; an
   async store is awaited, a blocking one runs in a worker thread) are the two drivers, and
   the only code that differs between ``httpx.Client`` and ``httpx.AsyncClient``.
4. A CRM's auth says only what is particular to it, all pure: :meth:`~TokenAuth.fresh_token`,
   :meth:`~TokenAuth.build_token_request`, :meth:`~TokenAuth.accept_token`,
   :meth:`~TokenAuth.authorize` and :meth:`~TokenAuth.is_expired`.
5. Secrets never reach a repr: :class:`TokenSet` hides both tokens.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Final, Protocol, runtime_checkable

import anyio
import anyio.to_thread
import attrs
import httpx

from signals_crm._drive import arelay, relay
from signals_crm.adapters._cache import MetadataCache

__all__ = [
    "LOCK",
    "UNLOCK",
    "AsyncTokenStore",
    "TokenAuth",
    "TokenSet",
    "TokenStore",
    "asave_tokens",
    "save_tokens",
]


@attrs.frozen
class TokenSet:
    """The tokens an auth holds after a change (what a :class:`TokenStore` persists).

    ``refresh_token`` is the one to use next time (the rotated one when the CRM rotated it);
    ``expires_in`` is the access token's lifetime in seconds when the CRM said it;
    ``instance_url`` is the Salesforce instance the token belongs to.
    """

    access_token: str = attrs.field(repr=False)
    refresh_token: str | None = attrs.field(default=None, repr=False)
    expires_in: float | None = None
    instance_url: str | None = None


@runtime_checkable
class TokenStore(Protocol):
    """Where the host keeps tokens: ``save`` is called whenever they change.

    It is called under the auth's refresh lock, so saves arrive in order. An async adapter
    runs it in a worker thread; give an :class:`AsyncTokenStore` to have it awaited instead.
    """

    def save(self, tokens: TokenSet) -> None: ...


@runtime_checkable
class AsyncTokenStore(Protocol):
    """A token store an async adapter awaits (a blocking adapter calls ``save``)."""

    async def asave(self, tokens: TokenSet) -> None: ...


class _Effect:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


LOCK: Final = _Effect("LOCK")
"""Effect: take the refresh lock (the driver releases it if the flow stops while holding it)."""
UNLOCK: Final = _Effect("UNLOCK")
"""Effect: release the refresh lock."""

Step = httpx.Request | _Effect | TokenSet
Steps = Generator[Step, httpx.Response | None, None]


def _answer(response: httpx.Response | None) -> httpx.Response:
    if response is None:  # pragma: no cover - a driver sends a response for every request
        msg = "the auth flow was sent no response for a request"
        raise RuntimeError(msg)
    return response


class _Hold:
    """Whether the flow holds the refresh lock, so a driver that stops early releases it."""

    def __init__(self, release: Callable[[], object]) -> None:
        self._release = release
        self._held = False

    def took(self) -> None:
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._release()


class TokenAuth(httpx.Auth):
    """A bearer-token ``httpx.Auth`` that refreshes once, under a lock, and tells the host."""

    requires_request_body = True
    requires_response_body = True
    can_refresh: bool = True
    """Whether this auth can fetch new tokens (a static token cannot)."""

    def __init__(self, *, token_store: TokenStore | AsyncTokenStore | None = None) -> None:
        self.token_store = token_store
        self.metadata_cache = MetadataCache()
        """The connection's metadata cache (adapters on this auth share it by default)."""
        self._thread_lock = threading.Lock()
        self._task_lock: anyio.Lock | None = None

    # -- what a CRM's auth says (pure) ---------------------------------------------------------

    def fresh_token(self) -> str | None:
        """The access token to use now, or ``None`` when one must be fetched first."""
        raise NotImplementedError

    def build_token_request(self) -> httpx.Request:
        """The token endpoint request (raise a typed error when this auth cannot refresh)."""
        raise NotImplementedError

    def accept_token(self, response: httpx.Response) -> TokenSet:
        """Take the token endpoint's answer (or raise the typed error it means)."""
        raise NotImplementedError

    def authorize(self, request: httpx.Request, token: str) -> httpx.Request:
        """``request`` as it is sent with ``token``."""
        raise NotImplementedError

    def is_expired(self, response: httpx.Response) -> bool:
        """Whether ``response`` says the token expired (refresh once and replay)."""
        raise NotImplementedError

    # -- the one flow ----------------------------------------------------------------------------

    def steps(self, request: httpx.Request) -> Steps:
        """Send ``request`` authorised, refreshing first or once after an expiry."""
        token = self.fresh_token()
        if token is None:
            token = yield from self._refreshed(request, failed=None)
        response = _answer((yield self.authorize(request, token)))
        if self.can_refresh and self.is_expired(response):
            token = yield from self._refreshed(request, failed=token)
            yield self.authorize(request, token)

    def _refreshed(
        self, request: httpx.Request, *, failed: str | None
    ) -> Generator[Step, httpx.Response | None, str]:
        yield LOCK
        token = self.fresh_token()
        if token is None or token == failed:
            token_request = self.build_token_request()
            if "timeout" in request.extensions:
                token_request.extensions.setdefault("timeout", request.extensions["timeout"])
            tokens = self.accept_token(_answer((yield token_request)))
            yield tokens
            token = tokens.access_token
        yield UNLOCK
        return token

    # -- the drivers ---------------------------------------------------------------------------

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """httpx's plain entry point: :meth:`sync_auth_flow` (locks are cheap when free)."""
        return self.sync_auth_flow(request)

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        hold = _Hold(self._thread_lock.release)

        def perform(step: Step) -> None:
            if step is LOCK:
                self._thread_lock.acquire()
                hold.took()
            elif step is UNLOCK:
                hold.release()
            elif isinstance(step, TokenSet):
                self._save(step)

        return relay(
            self.steps(request),
            perform,
            outward=httpx.Request,
            received=httpx.Response.read,
            cleanup=hold.release,
        )

    def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if self._task_lock is None:
            self._task_lock = anyio.Lock()
        lock = self._task_lock
        hold = _Hold(lock.release)

        async def perform(step: Step) -> None:
            if step is LOCK:
                await lock.acquire()
                hold.took()
            elif step is UNLOCK:
                hold.release()
            elif isinstance(step, TokenSet):
                await self._asave(step)

        return arelay(
            self.steps(request),
            perform,
            outward=httpx.Request,
            received=httpx.Response.aread,
            cleanup=hold.release,
        )

    def _save(self, tokens: TokenSet) -> None:
        save_tokens(self.token_store, tokens)

    async def _asave(self, tokens: TokenSet) -> None:
        await asave_tokens(self.token_store, tokens)


def save_tokens(store: TokenStore | AsyncTokenStore | None, tokens: TokenSet) -> None:
    """Hand ``tokens`` to a blocking ``store`` (an async-only store is not called here)."""
    if isinstance(store, TokenStore):
        store.save(tokens)


async def asave_tokens(store: TokenStore | AsyncTokenStore | None, tokens: TokenSet) -> None:
    """Hand ``tokens`` to ``store``: awaited when async, else in a worker thread."""
    if isinstance(store, AsyncTokenStore):
        await store.asave(tokens)
    elif isinstance(store, TokenStore):
        await anyio.to_thread.run_sync(store.save, tokens)
