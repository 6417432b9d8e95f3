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

Each is an ``httpx.Auth`` over the shared flow of :mod:`signals_crm.adapters._tokens`:

- a token is fetched lazily, once, and reused (never log in per call); the auth object holds
  it, so adapters sharing one auth share one session;
- on a 401 ``INVALID_SESSION_ID`` it takes a lock; if the token is still the one that failed it
  fetches a new one, otherwise it reuses the one another thread/task already fetched — so
  concurrent failures cost exactly one token request; the request is then replayed **once**, and
  a second 401 (or an ``invalid_grant`` from the token endpoint) is terminal;
- "This session is not valid for use with the REST API" is an org policy: never refreshed;
- a 5xx or 429 from the token endpoint is transient (retryable), never bad credentials;
- every new token (and rotated refresh token) goes to the optional ``token_store``;
- secrets (tokens, client secrets, private keys) are excluded from every repr and message.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable

import httpx

from signals_crm.adapters._tokens import AsyncTokenStore, TokenAuth, TokenSet, TokenStore
from signals_crm.adapters.salesforce._errors import is_session_expired
from signals_crm.adapters.salesforce._responses import SalesforceToken, parse_token
from signals_crm.exceptions import AuthenticationError, ConfigurationError, Problem

__all__ = [
    "JWT_GRANT_TYPE",
    "LOGIN_URL",
    "SANDBOX_LOGIN_URL",
    "AuthFlow",
    "ClientCredentialsFlow",
    "JWTBearerFlow",
    "RefreshTokenFlow",
    "SalesforceAuth",
    "StaticToken",
]

LOGIN_URL = "https://login.salesforce.com"
SANDBOX_LOGIN_URL = "https://test.salesforce.com"
TOKEN_PATH = "/services/oauth2/token"  # noqa: S105  # a URL path, not a secret
JWT_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"


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


_PLACEHOLDER_HOST = "instance.invalid"

Store = TokenStore | AsyncTokenStore | None


class SalesforceAuth(TokenAuth, metaclass=abc.ABCMeta):
    """A way to obtain Salesforce access tokens, as an ``httpx.Auth`` that holds the session.

    Subclasses say how to ask for a token (:meth:`token_request`); this class keeps the
    current token and the newest rotated refresh token, points requests at the token's
    instance and adds the bearer header.
    """

    instance_url: str | None = None
    """The instance to use when the token answer names none."""

    def __init__(self, *, token_store: Store = None) -> None:
        super().__init__(token_store=token_store)
        self._token: SalesforceToken | None = None
        self._rotated: str | None = None

    @abc.abstractmethod
    def token_request(self, refresh_token: str | None = None) -> httpx.Request | None:
        """The token endpoint request, or ``None`` when this flow cannot fetch tokens.

        ``refresh_token`` is the newest rotated refresh token, if the endpoint sent one.
        """

    @property
    def token(self) -> SalesforceToken | None:
        """The session in use (``None`` before the first token request)."""
        return self._token

    @property
    def rotated_refresh_token(self) -> str | None:
        """The newest rotated refresh token, if the token endpoint sent one (persist it)."""
        return self._rotated

    @property
    def current_instance_url(self) -> str | None:
        """The current token's instance, else the configured one."""
        return (self._token.instance_url if self._token else None) or self.instance_url

    def fresh_token(self) -> str | None:
        return self._token.access_token if self._token else None

    def build_token_request(self) -> httpx.Request:
        request = self.token_request(self._rotated)
        if request is None:
            raise AuthenticationError(
                "the Salesforce access token expired and this auth flow cannot refresh it",
                error_code="INVALID_SESSION_ID",
                status_code=401,
            )
        return request

    def accept_token(self, response: httpx.Response) -> TokenSet:
        token = parse_token(response)
        if not token.instance_url:
            if not self.instance_url:
                raise AuthenticationError(
                    "the token answer names no instance_url", status_code=response.status_code
                )
            token = SalesforceToken(
                access_token=token.access_token,
                instance_url=self.instance_url.rstrip("/"),
                issued_at=token.issued_at,
                refresh_token=token.refresh_token,
            )
        if token.refresh_token:
            self._rotated = token.refresh_token
        self._token = token
        return TokenSet(
            access_token=token.access_token,
            refresh_token=self._rotated or self._configured_refresh_token(),
            instance_url=token.instance_url,
        )

    def _configured_refresh_token(self) -> str | None:
        return None

    def authorize(self, request: httpx.Request, token: str) -> httpx.Request:
        url = request.url
        instance = httpx.URL(self.current_instance_url or f"https://{_PLACEHOLDER_HOST}")
        if url.host == _PLACEHOLDER_HOST or (url.host, url.scheme, url.port) != (
            instance.host,
            instance.scheme,
            instance.port,
        ):
            url = url.copy_with(scheme=instance.scheme, host=instance.host, port=instance.port)
        headers = httpx.Headers(request.headers)
        headers.pop("Host", None)  # recomputed from the (possibly rebased) URL
        headers["Authorization"] = f"Bearer {token}"
        return httpx.Request(
            request.method,
            url,
            headers=headers,
            content=request.content,
            extensions=request.extensions,
        )

    def is_expired(self, response: httpx.Response) -> bool:
        return is_session_expired(response)


AuthFlow = SalesforceAuth
"""The former name of :class:`SalesforceAuth` (deprecated)."""


class StaticToken(SalesforceAuth):
    """A ready access token for ``instance_url``; it cannot be refreshed."""

    can_refresh = False

    def __init__(self, access_token: str, instance_url: str, *, token_store: Store = None) -> None:
        super().__init__(token_store=token_store)
        self.access_token = access_token
        self.instance_url = _strip_slash(instance_url)
        self._token = SalesforceToken(access_token=access_token, instance_url=self.instance_url)

    def __repr__(self) -> str:
        return f"StaticToken(instance_url={self.instance_url!r})"

    def token_request(self, refresh_token: str | None = None) -> httpx.Request | None:  # noqa: ARG002  # the base's signature
        return None


class RefreshTokenFlow(SalesforceAuth):
    """OAuth 2.0 refresh-token grant (``login_url`` may be a My Domain or the test host).

    ``access_token`` (with ``instance_url``) seeds a token the host already holds, such as
    the one a connect just returned; it is used until the org says it expired.
    """

    def __init__(  # the grant's own parameters
        self,
        client_id: str,
        refresh_token: str,
        client_secret: str | None = None,
        login_url: str = LOGIN_URL,
        instance_url: str | None = None,
        *,
        token_store: Store = None,
        access_token: str | None = None,
    ) -> None:
        super().__init__(token_store=token_store)
        self.client_id = client_id
        self.refresh_token = refresh_token
        self.client_secret = client_secret
        self.login_url = login_url
        self.instance_url = instance_url
        if access_token and instance_url:
            # A token the host already holds (just connected): used until it expires.
            self._token = SalesforceToken(
                access_token=access_token, instance_url=_strip_slash(instance_url)
            )

    def __repr__(self) -> str:
        return (
            f"RefreshTokenFlow(client_id={self.client_id!r}, login_url={self.login_url!r}, "
            f"instance_url={self.instance_url!r})"
        )

    def _configured_refresh_token(self) -> str | None:
        return self.refresh_token

    def token_request(self, refresh_token: str | None = None) -> httpx.Request | None:
        data = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token or self.refresh_token,
            "client_id": self.client_id,
        }
        if self.client_secret:
            data["client_secret"] = self.client_secret
        return _form(self.login_url, data)


class ClientCredentialsFlow(SalesforceAuth):
    """OAuth 2.0 client-credentials grant; ``login_url`` must be the org's My Domain."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        login_url: str,
        instance_url: str | None = None,
        *,
        token_store: Store = None,
    ) -> None:
        super().__init__(token_store=token_store)
        self.client_id = client_id
        self.client_secret = client_secret
        self.login_url = login_url
        self.instance_url = instance_url

    def __repr__(self) -> str:
        return f"ClientCredentialsFlow(client_id={self.client_id!r}, login_url={self.login_url!r})"

    def token_request(self, refresh_token: str | None = None) -> httpx.Request | None:  # noqa: ARG002  # the base's signature
        data = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
        }
        return _form(self.login_url, data)


class JWTBearerFlow(SalesforceAuth):
    """OAuth 2.0 JWT bearer grant: an RS256 assertion signed with ``private_key`` (PEM).

    ``audience`` is ``https://login.salesforce.com`` (production) or
    ``https://test.salesforce.com`` (sandboxes); ``clock`` returns epoch seconds.
    """

    def __init__(  # noqa: PLR0917  # the grant's parameters, positional as before
        self,
        client_id: str,
        username: str,
        private_key: str | bytes,
        login_url: str = LOGIN_URL,
        audience: str | None = None,
        lifetime_seconds: int = 180,
        instance_url: str | None = None,
        clock: Callable[[], float] = time.time,
        *,
        token_store: Store = None,
    ) -> None:
        super().__init__(token_store=token_store)
        self.client_id = client_id
        self.username = username
        self.private_key = private_key
        self.login_url = login_url
        self.audience = audience
        self.lifetime_seconds = lifetime_seconds
        self.instance_url = instance_url
        self.clock = clock

    def __repr__(self) -> str:
        return (
            f"JWTBearerFlow(client_id={self.client_id!r}, username={self.username!r}, "
            f"login_url={self.login_url!r})"
        )

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
