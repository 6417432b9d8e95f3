"""How the adapter gets an access token. Building token requests is pure; the adapter sends them.

Four ways in (reference §7):

1. :class:`StaticToken` — an access token (and instance URL) the host already has. It cannot be
   refreshed: an expired one is an :class:`~signals_crm.exceptions.AuthenticationError`.
2. :class:`RefreshTokenFlow` — ``grant_type=refresh_token`` with the connected app's key (and
   secret unless the app disables "Require Secret"). With refresh-token rotation the answer
   carries a new refresh token; the adapter keeps using the newest one
   (``adapter.refresh_token`` exposes it for the host to persist).
3. :class:`JWTBearerFlow` — ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`` with an
   RS256 assertion signed by the app certificate's private key (claims ``iss`` = consumer key,
   ``sub`` = username, ``aud`` = login URL, ``exp`` a few minutes ahead). Needs PyJWT with its
   crypto extra (``pip install signals-crm[jwt]``), imported only when used.
4. :class:`ClientCredentialsFlow` — ``grant_type=client_credentials`` against the org's My
   Domain token endpoint (login/test hosts refuse it).

Rules the adapter follows with them:

- a token is fetched lazily, once, and reused (never log in per call);
- on a 401 ``INVALID_SESSION_ID`` it takes a lock; if the token is still the one that failed it
  fetches a new one, otherwise it reuses the one another thread/task already fetched — so
  concurrent failures cost exactly one token request; the request is then replayed **once**, and
  a second 401 (or an ``invalid_grant`` from the token endpoint) is terminal;
- "This session is not valid for use with the REST API" is an org policy: never refreshed;
- secrets (tokens, client secrets, private keys) are excluded from every repr and message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import attrs
import httpx

from signals_crm.adapters.salesforce._responses import SalesforceToken
from signals_crm.exceptions import ConfigurationError, Problem

__all__ = [
    "JWT_GRANT_TYPE",
    "LOGIN_URL",
    "SANDBOX_LOGIN_URL",
    "AuthFlow",
    "ClientCredentialsFlow",
    "JWTBearerFlow",
    "RefreshTokenFlow",
    "StaticToken",
]

LOGIN_URL = "https://login.salesforce.com"
SANDBOX_LOGIN_URL = "https://test.salesforce.com"
TOKEN_PATH = "/services/oauth2/token"  # noqa: S105  # a URL path, not a secret
JWT_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@runtime_checkable
class AuthFlow(Protocol):
    """A way to obtain Salesforce access tokens."""

    def initial_token(self) -> SalesforceToken | None:
        """A token known up front (a static token), or ``None`` to fetch one first."""
        ...

    def token_request(self, refresh_token: str | None = None) -> httpx.Request | None:
        """The token endpoint request, or ``None`` when this flow cannot fetch tokens.

        ``refresh_token`` is the newest rotated refresh token, if the endpoint sent one.
        """
        ...

    @property
    def instance_url(self) -> str | None:
        """The instance to use when the token answer names none."""
        ...


def _strip_slash(value: str) -> str:
    return str(value).rstrip("/")


def _token_url(base: str) -> str:
    base = base.rstrip("/")
    return base if base.endswith(TOKEN_PATH) else base + TOKEN_PATH


def _form(url: str, data: dict[str, str]) -> httpx.Request:
    return httpx.Request(
        "POST",
        _token_url(url),
        data=data,
        headers={"Accept": "application/json"},
    )


@attrs.frozen
class StaticToken:
    """A ready access token for ``instance_url``; it cannot be refreshed."""

    access_token: str = attrs.field(repr=False)
    instance_url: str = attrs.field(converter=_strip_slash)

    def initial_token(self) -> SalesforceToken | None:
        return SalesforceToken(access_token=self.access_token, instance_url=self.instance_url)

    def token_request(self, refresh_token: str | None = None) -> httpx.Request | None:  # noqa: ARG002  # the Protocol's signature
        return None


@attrs.frozen
class RefreshTokenFlow:
    """OAuth 2.0 refresh-token grant (``login_url`` may be a My Domain or the test host)."""

    client_id: str
    refresh_token: str = attrs.field(repr=False)
    client_secret: str | None = attrs.field(default=None, repr=False)
    login_url: str = LOGIN_URL
    instance_url: str | None = None

    def initial_token(self) -> SalesforceToken | None:
        return None

    def token_request(self, refresh_token: str | None = None) -> httpx.Request | None:
        data = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token or self.refresh_token,
            "client_id": self.client_id,
        }
        if self.client_secret:
            data["client_secret"] = self.client_secret
        return _form(self.login_url, data)


@attrs.frozen
class ClientCredentialsFlow:
    """OAuth 2.0 client-credentials grant; ``login_url`` must be the org's My Domain."""

    client_id: str
    client_secret: str = attrs.field(repr=False)
    login_url: str
    instance_url: str | None = None

    def initial_token(self) -> SalesforceToken | None:
        return None

    def token_request(self, refresh_token: str | None = None) -> httpx.Request | None:  # noqa: ARG002  # the Protocol's signature
        data = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
        }
        return _form(self.login_url, data)


@attrs.frozen
class JWTBearerFlow:
    """OAuth 2.0 JWT bearer grant: an RS256 assertion signed with ``private_key`` (PEM).

    ``audience`` is ``https://login.salesforce.com`` (production) or
    ``https://test.salesforce.com`` (sandboxes); ``clock`` returns epoch seconds.
    """

    client_id: str
    username: str
    private_key: str | bytes = attrs.field(repr=False)
    login_url: str = LOGIN_URL
    audience: str | None = None
    lifetime_seconds: int = 180
    instance_url: str | None = None
    clock: Callable[[], float] = attrs.field(default=time.time, repr=False, eq=False)

    def initial_token(self) -> SalesforceToken | None:
        return None

    def assertion(self) -> str:
        """The signed JWT (``iss``, ``sub``, ``aud``, ``exp``)."""
        try:
            import jwt
        except ImportError as exc:
            raise ConfigurationError(
                [
                    Problem(
                        "auth",
                        "the JWT bearer flow needs PyJWT with its crypto extra: "
                        "pip install 'signals-crm[jwt]'",
                    )
                ]
            ) from exc
        audience = self.audience or self.login_url.rstrip("/")
        claims = {
            "iss": self.client_id,
            "sub": self.username,
            "aud": audience,
            "exp": int(self.clock()) + self.lifetime_seconds,
        }
        try:
            token = jwt.encode(claims, self.private_key, algorithm="RS256")
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            # The cause may quote the key; keep only its type.
            msg = f"the JWT private key cannot sign RS256 ({type(exc).__name__})"
            raise ConfigurationError([Problem("auth.private_key", msg)]) from None
        return str(token)

    def token_request(self, refresh_token: str | None = None) -> httpx.Request | None:  # noqa: ARG002  # the Protocol's signature
        data = {"grant_type": JWT_GRANT_TYPE, "assertion": self.assertion()}
        return _form(self.login_url, data)
