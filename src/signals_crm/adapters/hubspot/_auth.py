"""HubSpot credentials as ``httpx.Auth``: a static bearer token, or OAuth tokens refreshed in time.

Theory of operation (the shared flow of :mod:`signals_crm.adapters._tokens`):

1. Every request carries ``Authorization: Bearer <token>``. A :class:`StaticToken` (private
   app, service key) never expires and cannot be refreshed.
2. OAuth access tokens live ``expires_in`` seconds (30 minutes today). HubSpot says a 401 is
   not the signal to refresh, so :class:`RefreshTokenFlow` refreshes *proactively*: once the
   injected clock passes ``expires_in - refresh_margin`` the token counts as stale.
3. The refresh is the ``refresh_token`` grant against ``POST /oauth/v1/token`` of the
   adapter's :class:`~signals_crm.adapters.hubspot._requests.HubSpotAPI` (or the one given),
   sent under the auth's lock, so concurrent callers cause exactly one refresh.
4. A 401 anyway (clock skew, revocation) → refresh once, unless another caller already did,
   and replay once.
5. The token endpoint's answer: 200 → new tokens (handed to ``token_store``); 429 or 5xx →
   the transient, retryable error it is; anything else (``BAD_REFRESH_TOKEN``, a revoked
   grant) → :class:`~signals_crm.exceptions.AuthenticationError`.
6. Secrets (client secret, refresh and access tokens) are never in reprs or errors.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from signals_crm.adapters._tokens import AsyncTokenStore, TokenAuth, TokenSet, TokenStore
from signals_crm.adapters.hubspot._errors import error_from_response, json_body
from signals_crm.adapters.hubspot._requests import HubSpotAPI
from signals_crm.adapters.hubspot._responses import parse_token
from signals_crm.exceptions import AuthenticationError, ConfigurationError, Problem

__all__ = ["HubSpotAuth", "OAuthToken", "RefreshTokenFlow", "StaticToken", "TokenSource"]

Store = TokenStore | AsyncTokenStore | None


class HubSpotAuth(TokenAuth):
    """A bearer-token ``httpx.Auth`` for HubSpot; a 401 means the token is no longer good."""

    def authorize(self, request: httpx.Request, token: str) -> httpx.Request:
        request.headers["Authorization"] = f"Bearer {token}"
        return request

    def is_expired(self, response: httpx.Response) -> bool:
        return response.status_code == 401

    def use_api(self, api: HubSpotAPI) -> None:
        """Called by the adapter with its API (the token endpoint lives there)."""


TokenSource = HubSpotAuth
"""The former name of :class:`HubSpotAuth` (deprecated)."""


class StaticToken(HubSpotAuth):
    """A token that does not expire (private app, static-auth app, service key)."""

    can_refresh = False

    def __init__(self, access_token: str, *, token_store: Store = None) -> None:
        super().__init__(token_store=token_store)
        if not access_token or not access_token.strip():
            raise ConfigurationError([Problem("auth", "a HubSpot access token must not be empty")])
        self._token = access_token.strip()

    def __repr__(self) -> str:
        return "StaticToken(access_token=<hidden>)"

    def fresh_token(self) -> str:
        return self._token

    def build_token_request(self) -> httpx.Request:
        raise AuthenticationError(
            "a static HubSpot token cannot be refreshed", error_code="EXPIRED_AUTHENTICATION"
        )


_TRANSIENT_STATUS = 500


class RefreshTokenFlow(HubSpotAuth):
    """OAuth 2.0 access tokens refreshed from a refresh token before they expire.

    ``clock`` returns monotonic seconds (injected in tests); ``refresh_margin`` is how long
    before expiry a token counts as stale. ``access_token``/``expires_in`` seed a known token.
    ``api`` names the token endpoint's base (default: the adapter's).
    """

    def __init__(  # the grant's own parameters
        self,
        *,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        access_token: str | None = None,
        expires_in: float | None = None,
        refresh_margin: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        api: HubSpotAPI | None = None,
        token_store: Store = None,
    ) -> None:
        super().__init__(token_store=token_store)
        self.client_id = client_id
        self._client_secret = client_secret
        self._refresh_token = refresh_token
        self._clock = clock
        self._margin = refresh_margin
        self._api = api
        self._access: str | None = access_token
        self._expires_at: float | None = (
            clock() + expires_in if access_token and expires_in is not None else None
        )
        self.refreshes = 0
        """How many refreshes succeeded (observability; tests pin "exactly one")."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(client_id={self.client_id!r}, secrets=<hidden>)"

    def use_api(self, api: HubSpotAPI) -> None:
        if self._api is None:
            self._api = api

    def fresh_token(self) -> str | None:
        if self._access is None:
            return None
        if self._expires_at is not None and self._clock() >= self._expires_at - self._margin:
            return None
        return self._access

    def build_token_request(self) -> httpx.Request:
        return (self._api or HubSpotAPI()).refresh_token(
            client_id=self.client_id,
            client_secret=self._client_secret,
            refresh_token=self._refresh_token,
        )

    def accept_token(self, response: httpx.Response) -> TokenSet:
        """Take the token endpoint's answer; a refused grant is an AuthenticationError."""
        status = response.status_code
        if status != 200:  # the one success status
            err = error_from_response(response)
            if status == 429 or status >= _TRANSIENT_STATUS:  # HTTP's own
                raise err
            raise AuthenticationError(
                f"HubSpot refused to refresh the OAuth token: {err.message}",
                status_code=status,
                error_code=err.error_code or "BAD_REFRESH_TOKEN",
            )
        answer = parse_token(json_body(response))
        if answer is None:
            raise AuthenticationError(
                "HubSpot's token answer had no access token",
                status_code=status,
                error_code="BAD_TOKEN_RESPONSE",
            )
        self._access = answer.access_token
        self._expires_at = self._clock() + answer.expires_in
        if answer.refresh_token:
            self._refresh_token = answer.refresh_token
        self.refreshes += 1
        return TokenSet(
            access_token=answer.access_token,
            refresh_token=self._refresh_token,
            expires_in=answer.expires_in,
        )


OAuthToken = RefreshTokenFlow
"""The former name of :class:`RefreshTokenFlow` (deprecated)."""
