"""HubSpot credentials: a static bearer token, or OAuth access tokens refreshed in time.

Theory of operation:

1. Every request carries ``Authorization: Bearer <token>``. Static tokens (private apps,
   service keys) never expire and cannot be refreshed.
2. OAuth access tokens live ``expires_in`` seconds (30 minutes today). HubSpot says a 401 is
   not the signal to refresh, so :class:`OAuthToken` refreshes *proactively*: once the injected
   clock passes ``expires_in - refresh_margin`` the token counts as stale.
3. The refresh itself is sans-IO: :meth:`OAuthToken.refresh_request` builds the form-encoded
   ``refresh_token`` grant, :meth:`OAuthToken.accept` takes the answer. The adapter sends it
   under :attr:`~OAuthToken.lock` (threads) or :meth:`~OAuthToken.alock` (asyncio) and checks
   again after taking the lock, so concurrent callers cause exactly one refresh.
4. A 401 ``EXPIRED_AUTHENTICATION`` anyway (clock skew, revocation) → :meth:`expire` the token
   that was used (only if it is still the current one) and replay once.
5. Secrets (client secret, refresh and access tokens) are never in reprs or errors.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Protocol

import httpx

from signals_crm.adapters.hubspot._errors import error_from_response, json_body
from signals_crm.adapters.hubspot._requests import HubSpotAPI
from signals_crm.adapters.hubspot._responses import parse_token
from signals_crm.exceptions import AuthenticationError, ConfigurationError, Problem

__all__ = ["OAuthToken", "StaticToken", "TokenSource"]


class TokenSource(Protocol):
    """Where the adapter gets its bearer token from."""

    lock: threading.Lock

    @property
    def can_refresh(self) -> bool: ...

    def token(self) -> str | None:
        """The current token, or ``None`` when it must be refreshed first."""
        ...

    def refresh_request(self, api: HubSpotAPI) -> httpx.Request: ...

    def accept(self, response: httpx.Response) -> None: ...

    def expire(self, used: str) -> None: ...

    def alock(self) -> asyncio.Lock: ...


class _Locks:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._alock: asyncio.Lock | None = None

    def alock(self) -> asyncio.Lock:
        """The asyncio lock serialising refreshes (created on first use)."""
        if self._alock is None:
            self._alock = asyncio.Lock()
        return self._alock


class StaticToken(_Locks):
    """A token that does not expire (private app, static-auth app, service key)."""

    def __init__(self, token: str) -> None:
        super().__init__()
        if not token or not token.strip():
            raise ConfigurationError([Problem("token", "a HubSpot access token must not be empty")])
        self._token = token.strip()

    def __repr__(self) -> str:
        return "StaticToken(token=<hidden>)"

    @property
    def can_refresh(self) -> bool:
        return False

    def token(self) -> str:
        return self._token

    def refresh_request(self, api: HubSpotAPI) -> httpx.Request:  # noqa: ARG002  # protocol
        raise AuthenticationError(
            "a static HubSpot token cannot be refreshed", error_code="EXPIRED_AUTHENTICATION"
        )

    def accept(self, response: httpx.Response) -> None:  # noqa: ARG002  # protocol
        return None

    def expire(self, used: str) -> None:  # noqa: ARG002  # protocol
        return None


class OAuthToken(_Locks):
    """OAuth 2.0 access tokens refreshed from a refresh token before they expire.

    ``clock`` returns monotonic seconds (injected in tests); ``refresh_margin`` is how long
    before expiry a token counts as stale. ``access_token``/``expires_in`` seed a known token.
    """

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        access_token: str | None = None,
        expires_in: float | None = None,
        refresh_margin: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.client_id = client_id
        self._client_secret = client_secret
        self._refresh_token = refresh_token
        self._clock = clock
        self._margin = refresh_margin
        self._access: str | None = access_token
        self._expires_at: float | None = (
            clock() + expires_in if access_token and expires_in is not None else None
        )
        self.refreshes = 0
        """How many refreshes succeeded (observability; tests pin "exactly one")."""

    def __repr__(self) -> str:
        return f"OAuthToken(client_id={self.client_id!r}, secrets=<hidden>)"

    @property
    def can_refresh(self) -> bool:
        return True

    def token(self) -> str | None:
        if self._access is None:
            return None
        if self._expires_at is not None and self._clock() >= self._expires_at - self._margin:
            return None
        return self._access

    def refresh_request(self, api: HubSpotAPI) -> httpx.Request:
        return api.refresh_token(
            client_id=self.client_id,
            client_secret=self._client_secret,
            refresh_token=self._refresh_token,
        )

    def accept(self, response: httpx.Response) -> None:
        """Take the token endpoint's answer; raise :class:`AuthenticationError` on refusal."""
        if response.status_code != 200:
            err = error_from_response(response)
            raise AuthenticationError(
                f"HubSpot refused to refresh the OAuth token: {err.message}",
                status_code=response.status_code,
                error_code=err.error_code or "BAD_REFRESH_TOKEN",
            )
        answer = parse_token(json_body(response))
        if answer is None:
            raise AuthenticationError(
                "HubSpot's token answer had no access token",
                status_code=response.status_code,
                error_code="BAD_TOKEN_RESPONSE",
            )
        self._access = answer.access_token
        self._expires_at = self._clock() + answer.expires_in
        if answer.refresh_token:
            self._refresh_token = answer.refresh_token
        self.refreshes += 1

    def expire(self, used: str) -> None:
        if self._access == used:
            self._access = None
