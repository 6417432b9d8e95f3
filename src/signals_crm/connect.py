"""Connecting a CRM account: OAuth 2.0 authorization code with PKCE, behind a "connect" button.

Theory of operation (each step one pure flow, driven blocking or async like every flow of the
package, :mod:`signals_crm._drive`):

1. :meth:`~Connector.start` draws a random ``state`` and a PKCE ``code_verifier`` (RFC 7636:
   64 URL-safe characters) and builds the CRM's authorize URL with the ``S256`` challenge:
   Salesforce's web server flow (``{login_url}/services/oauth2/authorize``,
   ``response_type=code``) or HubSpot's app install (``https://app.hubspot.com/oauth/authorize``
   with ``scope`` and ``optional_scope``). The host keeps ``state`` and ``code_verifier`` on
   its side (the user's server-side session, never the browser) and redirects to ``url``.
2. :meth:`~Connector.finish` (``afinish``) takes the redirect the CRM sent back (its URL or
   query parameters). A ``state`` other than the kept one is refused
   (:class:`~signals_crm.exceptions.ConfigurationError` naming ``callback.state``, compared in
   constant time); an ``error`` answer (the user denied access) is an
   :class:`~signals_crm.exceptions.AuthenticationError` carrying the CRM's code; a missing code
   names ``callback.code``. The code is exchanged once at the token endpoint with the verifier
   (and the client secret): the answer is a :class:`Connection`.
3. :meth:`~Connector.refresh` (``arefresh``) trades a refresh token for a new access token, and
   for a new refresh token when the CRM rotates it.
4. :meth:`~Connector.revoke` (``arevoke``) on disconnect. Salesforce revokes the refresh token
   and every access token issued from it; HubSpot deletes the refresh token, and access tokens
   it already issued live out their lifetime (at most 30 minutes), as HubSpot documents. A
   token the CRM no longer knows answers ``False``: disconnecting twice is not an error.
5. The token store: every step that yields new tokens hands a
   :class:`~signals_crm.adapters.TokenSet` to the connector's ``token_store``: the exchange,
   each :meth:`~Connector.refresh`, and afterwards every refresh the adapter's auth makes on its
   own (:meth:`~Connector.auth` passes the same store). Blocking calls call ``save``; async
   calls await ``asave`` (or run ``save`` in a worker thread).
6. :meth:`~Connector.auth` turns stored tokens (a ``TokenSet``, or just the refresh token) into
   the adapter's ``httpx.Auth``.
7. Secrets (client secret, tokens, code verifier) are never in a repr or an error message.

Pages: Salesforce "OAuth 2.0 Web Server Flow for Web App Integration" (help.salesforce.com,
``remoteaccess_oauth_web_server_flow.htm``) and "Revoke OAuth Tokens"; HubSpot "Working with
OAuth" and "Manage OAuth tokens" (developers.hubspot.com/docs/api/oauth/tokens).
"""

from __future__ import annotations

import abc
import base64
import hashlib
import secrets
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeAlias
from urllib.parse import quote, urlencode

import attrs
import httpx

from signals_crm._drive import adrive, drive
from signals_crm.adapters._shell import _network_error, request_timeout
from signals_crm.adapters._tokens import (
    AsyncTokenStore,
    TokenSet,
    TokenStore,
    asave_tokens,
    save_tokens,
)
from signals_crm.exceptions import AuthenticationError, ConfigurationError, Problem

if TYPE_CHECKING:
    from signals_crm.adapters import hubspot, salesforce

__all__ = [
    "HUBSPOT_AUTHORIZE_URL",
    "HUBSPOT_SCOPES",
    "SALESFORCE_SCOPES",
    "Authorization",
    "Connection",
    "Connector",
    "HubSpotConnect",
    "SalesforceConnect",
]

SALESFORCE_SCOPES: Final = ("api", "refresh_token")
"""What the Salesforce adapter needs: the REST API, and a refresh token to keep syncing."""

HUBSPOT_SCOPES: Final = (
    "oauth",
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
    "crm.objects.companies.read",
    "crm.objects.owners.read",
    "crm.lists.read",
    "crm.lists.write",
)
"""What the HubSpot adapter uses: contacts (and their tasks and notes), companies for account
ownership, owners for the user mapping, static lists for the campaign."""

HUBSPOT_AUTHORIZE_URL: Final = "https://app.hubspot.com/oauth/authorize"

Store: TypeAlias = TokenStore | AsyncTokenStore | None
Step: TypeAlias = httpx.Request | TokenSet
StepFlow: TypeAlias = Generator[Step, httpx.Response | None, Any]
Callback: TypeAlias = str | httpx.URL | Mapping[str, str]
"""The redirect the CRM sent the browser back with: its URL, or its query parameters."""


@attrs.frozen
class Authorization:
    """Where to send the user, and what to keep until the CRM redirects back.

    Keep ``state`` and ``code_verifier`` on the server (the user's session) and hand both to
    :meth:`Connector.finish`; ``code_verifier`` is a secret and never shows in the repr.
    """

    url: str
    state: str
    code_verifier: str = attrs.field(repr=False)


@attrs.frozen
class Connection:
    """A connected CRM account: its tokens and who it is.

    ``account_id`` is the Salesforce org id or the HubSpot hub id; ``user_id`` the Salesforce
    user who approved (HubSpot's answer names none); ``scopes`` what the CRM granted.
    """

    crm: str
    tokens: TokenSet
    account_id: str | None = None
    user_id: str | None = None
    scopes: tuple[str, ...] = ()


def _pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _require_url(value: str, path: str) -> str:
    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise ConfigurationError([Problem(path, "not a valid URL")]) from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError([Problem(path, "must be an http(s) URL with a host")])
    return str(value)


def _require_text(value: str | None, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError([Problem(path, "must be a non-empty string")])
    return value.strip()


def _callback_params(callback: Callback) -> Mapping[str, str]:
    if isinstance(callback, Mapping):
        return {str(k): str(v) for k, v in callback.items()}
    try:
        params = httpx.URL(str(callback)).params
    except (httpx.InvalidURL, TypeError, ValueError):
        raise ConfigurationError([Problem("callback", "not a URL or query parameters")]) from None
    return dict(params.items())


def _code_of(callback: Callback, state: str) -> str:
    """The authorization code of ``callback`` once its ``state`` is the expected one."""
    params = _callback_params(callback)
    given = params.get("state", "")
    if not state or not secrets.compare_digest(given.encode(), state.encode()):
        msg = "does not match the state of this connect (a forged or stale redirect)"
        raise ConfigurationError([Problem("callback.state", msg)])
    if params.get("error"):
        code = params["error"][:100]
        detail = params.get("error_description", "") or "the user or the CRM refused access"
        raise AuthenticationError(
            f"the CRM refused the connection: {detail[:300]}", error_code=code
        )
    code = params.get("code", "")
    if not code:
        raise ConfigurationError([Problem("callback.code", "the redirect carries no code")])
    return code


def _answer(response: httpx.Response | None) -> httpx.Response:
    if response is None:  # pragma: no cover - the driver answers every request
        msg = "the connect flow was sent no response for a request"
        raise RuntimeError(msg)
    return response


def _json(response: httpx.Response) -> Mapping[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, Mapping) else {}


def _held(tokens: TokenSet | str) -> tuple[TokenSet, str]:
    """Stored tokens as a ``TokenSet`` (an empty access token when only the refresh token
    was given) and the refresh token, which is required."""
    held = (
        tokens if isinstance(tokens, TokenSet) else TokenSet(access_token="", refresh_token=tokens)
    )
    refresh = held.refresh_token
    if not isinstance(refresh, str) or not refresh.strip():
        raise ConfigurationError([Problem("tokens.refresh_token", "a refresh token is needed")])
    return held, refresh


class Connector(abc.ABC):
    """The connect steps of one CRM app (see the module docstring).

    Subclasses say only what is particular to their CRM, all pure: the authorize URL, the
    token, refresh and revoke requests, and how to read the answers.
    """

    crm: str = "crm"

    def __init__(
        self,
        *,
        client_id: str,
        redirect_uri: str,
        client_secret: str | None,
        scopes: Sequence[str],
        token_store: Store,
    ) -> None:
        self.client_id = _require_text(client_id, "client_id")
        self.redirect_uri = _require_url(redirect_uri, "redirect_uri")
        self._client_secret = client_secret or None
        self.scopes = tuple(scopes)
        self.token_store = token_store

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(client_id={self.client_id!r}, "
            f"redirect_uri={self.redirect_uri!r}, secrets=<hidden>)"
        )

    # -- what a CRM says (pure) -----------------------------------------------------------------

    @abc.abstractmethod
    def authorize_url(self, query: dict[str, str]) -> str:
        """The authorize page with ``query`` (state, PKCE challenge) and the CRM's own keys."""

    @abc.abstractmethod
    def code_request(self, code: str, code_verifier: str) -> httpx.Request:
        """The token endpoint request exchanging ``code``."""

    @abc.abstractmethod
    def refresh_request(self, refresh_token: str) -> httpx.Request:
        """The token endpoint request trading ``refresh_token`` for a new access token."""

    @abc.abstractmethod
    def revoke_request(self, token: str) -> httpx.Request:
        """The request revoking ``token``."""

    @abc.abstractmethod
    def accept(self, response: httpx.Response, *, refresh_token: str | None) -> Connection:
        """Read a token answer (raise the typed error it means); ``refresh_token`` is the one
        traded, kept when the CRM does not rotate it."""

    @abc.abstractmethod
    def revoked(self, response: httpx.Response) -> bool:
        """Whether the revoke answer revoked the token (``False``: the CRM did not know it)."""

    @abc.abstractmethod
    def auth(self, tokens: TokenSet | str) -> httpx.Auth:
        """The adapter's ``httpx.Auth`` for stored ``tokens`` (or just the refresh token),
        refreshing on its own and telling this connector's ``token_store``."""

    # -- the steps ------------------------------------------------------------------------------

    def start(self, *, state: str | None = None) -> Authorization:
        """A new authorization: the URL to send the user to, its state and verifier.

        ``state`` defaults to 32 random bytes; pass your own (unguessable) to carry context.
        """
        chosen = secrets.token_urlsafe(32) if state is None else _require_text(state, "state")
        verifier, challenge = _pkce_pair()
        query = {
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "state": chosen,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        return Authorization(url=self.authorize_url(query), state=chosen, code_verifier=verifier)

    def _finish_flow(self, callback: Callback, state: str, code_verifier: str) -> StepFlow:
        code = _code_of(callback, state)
        _require_text(code_verifier, "code_verifier")
        response = _answer((yield self.code_request(code, code_verifier)))
        connection = self.accept(response, refresh_token=None)
        if not connection.tokens.refresh_token:
            raise AuthenticationError(
                f"{self.crm} answered the code without a refresh token: give the app the "
                f"scopes {' '.join(self.scopes)!r}",
                error_code="NO_REFRESH_TOKEN",
            )
        yield connection.tokens
        return connection

    def _refresh_flow(self, refresh_token: str) -> StepFlow:
        _require_text(refresh_token, "refresh_token")
        response = _answer((yield self.refresh_request(refresh_token)))
        tokens = self.accept(response, refresh_token=refresh_token).tokens
        yield tokens
        return tokens

    def _revoke_flow(self, token: str) -> StepFlow:
        _require_text(token, "token")
        return self.revoked(_answer((yield self.revoke_request(token))))

    # -- the drivers ----------------------------------------------------------------------------

    def _perform(self, http: httpx.Client) -> Callable[[Step], httpx.Response | None]:
        timeout = request_timeout(http).as_dict()

        def perform(step: Step) -> httpx.Response | None:
            if isinstance(step, TokenSet):
                save_tokens(self.token_store, step)
                return None
            step.extensions.setdefault("timeout", timeout)
            try:
                return http.send(step)
            except httpx.HTTPError as exc:
                raise _network_error(exc, self.crm) from exc

        return perform

    def _aperform(self, http: httpx.AsyncClient) -> Callable[[Step], Any]:
        timeout = request_timeout(http).as_dict()

        async def perform(step: Step) -> httpx.Response | None:
            if isinstance(step, TokenSet):
                await asave_tokens(self.token_store, step)
                return None
            step.extensions.setdefault("timeout", timeout)
            try:
                return await http.send(step)
            except httpx.HTTPError as exc:
                raise _network_error(exc, self.crm) from exc

        return perform

    def finish(
        self, http: httpx.Client, callback: Callback, *, state: str, code_verifier: str
    ) -> Connection:
        """Exchange the code of ``callback`` (checked against ``state``) for tokens; the
        token store receives them."""
        result: Connection = drive(
            self._finish_flow(callback, state, code_verifier), self._perform(http)
        )
        return result

    async def afinish(
        self, http: httpx.AsyncClient, callback: Callback, *, state: str, code_verifier: str
    ) -> Connection:
        """:meth:`finish` over an ``httpx.AsyncClient``."""
        result: Connection = await adrive(
            self._finish_flow(callback, state, code_verifier), self._aperform(http)
        )
        return result

    def refresh(self, http: httpx.Client, refresh_token: str) -> TokenSet:
        """New tokens for ``refresh_token`` (the rotated refresh token when the CRM rotates
        it); the token store receives them."""
        result: TokenSet = drive(self._refresh_flow(refresh_token), self._perform(http))
        return result

    async def arefresh(self, http: httpx.AsyncClient, refresh_token: str) -> TokenSet:
        """:meth:`refresh` over an ``httpx.AsyncClient``."""
        result: TokenSet = await adrive(self._refresh_flow(refresh_token), self._aperform(http))
        return result

    def revoke(self, http: httpx.Client, token: str) -> bool:
        """Revoke ``token`` (disconnect): ``True`` when revoked now, ``False`` when the CRM
        no longer knew it. Delete your stored tokens either way."""
        result: bool = drive(self._revoke_flow(token), self._perform(http))
        return result

    async def arevoke(self, http: httpx.AsyncClient, token: str) -> bool:
        """:meth:`revoke` over an ``httpx.AsyncClient``."""
        result: bool = await adrive(self._revoke_flow(token), self._aperform(http))
        return result


def _form(url: str, data: Mapping[str, str | None]) -> httpx.Request:
    form = {k: v for k, v in data.items() if v is not None}
    return httpx.Request("POST", url, data=form, headers={"Accept": "application/json"})


class SalesforceConnect(Connector):
    """Salesforce's OAuth 2.0 web server flow with PKCE, for a connected app.

    ``login_url`` is ``https://login.salesforce.com``, ``https://test.salesforce.com`` for
    sandboxes, or the org's My Domain. ``client_secret`` is required unless the app turns off
    "Require Secret for Web Server Flow". ``prompt`` (``login``, ``consent``,
    ``select_account``) asks Salesforce to log in or ask again.
    """

    crm = "salesforce"

    def __init__(  # the app's registration
        self,
        *,
        client_id: str,
        redirect_uri: str,
        client_secret: str | None = None,
        login_url: str = "https://login.salesforce.com",
        scopes: Sequence[str] = SALESFORCE_SCOPES,
        prompt: str | None = None,
        token_store: Store = None,
    ) -> None:
        super().__init__(
            client_id=client_id,
            redirect_uri=redirect_uri,
            client_secret=client_secret,
            scopes=scopes,
            token_store=token_store,
        )
        self.login_url = _require_url(login_url, "login_url").rstrip("/")
        self.prompt = prompt

    def authorize_url(self, query: dict[str, str]) -> str:
        query = {"response_type": "code", **query, "scope": " ".join(self.scopes)}
        if self.prompt:
            query["prompt"] = self.prompt
        return f"{self.login_url}/services/oauth2/authorize?{urlencode(query, quote_via=quote)}"

    def code_request(self, code: str, code_verifier: str) -> httpx.Request:
        return _form(
            f"{self.login_url}/services/oauth2/token",
            {
                "grant_type": "authorization_code",
                "code": code,
                "client_id": self.client_id,
                "client_secret": self._client_secret,
                "redirect_uri": self.redirect_uri,
                "code_verifier": code_verifier,
            },
        )

    def refresh_request(self, refresh_token: str) -> httpx.Request:
        return _form(
            f"{self.login_url}/services/oauth2/token",
            {
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": self.client_id,
                "client_secret": self._client_secret,
            },
        )

    def revoke_request(self, token: str) -> httpx.Request:
        return _form(f"{self.login_url}/services/oauth2/revoke", {"token": token})

    def accept(self, response: httpx.Response, *, refresh_token: str | None) -> Connection:
        from signals_crm.adapters.salesforce._responses import parse_token

        token = parse_token(response)  # a refusal raises the typed error
        body = _json(response)
        identity = str(body.get("id") or "").rstrip("/").split("/")
        org, user = (
            (identity[-2], identity[-1]) if len(identity) >= 2 else (None, None)
        )  # .../id/{org}/{user}
        tokens = TokenSet(
            access_token=token.access_token,
            refresh_token=token.refresh_token or refresh_token,
            instance_url=token.instance_url or None,
        )
        scope = str(body.get("scope") or "")
        return Connection(self.crm, tokens, org, user, tuple(scope.split()))

    def revoked(self, response: httpx.Response) -> bool:
        if response.status_code == 200:  # Salesforce's one success
            return True
        if response.status_code == 400 and _json(response).get("error") in (
            "unsupported_token_type",
            "invalid_token",
        ):
            return False
        from signals_crm.adapters.salesforce._responses import raise_for_error

        raise_for_error(response)
        return True  # pragma: no cover - raise_for_error raises for every non-2xx

    def auth(self, tokens: TokenSet | str) -> salesforce.RefreshTokenFlow:
        from signals_crm.adapters.salesforce import RefreshTokenFlow

        held, refresh = _held(tokens)
        return RefreshTokenFlow(
            client_id=self.client_id,
            refresh_token=refresh,
            client_secret=self._client_secret,
            login_url=self.login_url,
            instance_url=held.instance_url,
            access_token=held.access_token or None,
            token_store=self.token_store,
        )


class HubSpotConnect(Connector):
    """HubSpot's app install: OAuth 2.0 authorization code (with PKCE) for a public app.

    ``api`` is where the token endpoints are (``HubSpotAPI()``: ``https://api.hubapi.com``,
    ``/oauth/v1/...``; a dated version such as ``"2026-03"`` uses ``/oauth/2026-03/token``);
    ``authorize_url`` is the install page. ``optional_scopes`` are granted when the account's
    tier allows them.
    """

    crm = "hubspot"

    def __init__(  # the app's registration
        self,
        *,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        scopes: Sequence[str] = HUBSPOT_SCOPES,
        optional_scopes: Sequence[str] = (),
        api: hubspot.HubSpotAPI | None = None,
        authorize_url: str = HUBSPOT_AUTHORIZE_URL,
        token_store: Store = None,
    ) -> None:
        from signals_crm.adapters.hubspot import HubSpotAPI

        super().__init__(
            client_id=client_id,
            redirect_uri=redirect_uri,
            client_secret=_require_text(client_secret, "client_secret"),
            scopes=scopes,
            token_store=token_store,
        )
        self.optional_scopes = tuple(optional_scopes)
        self.api: hubspot.HubSpotAPI = api if api is not None else HubSpotAPI()
        self.install_url = _require_url(authorize_url, "authorize_url")

    def authorize_url(self, query: dict[str, str]) -> str:
        query = {**query, "scope": " ".join(self.scopes)}
        if self.optional_scopes:
            query["optional_scope"] = " ".join(self.optional_scopes)
        return f"{self.install_url}?{urlencode(query, quote_via=quote)}"

    def _token_url(self) -> str:
        return str(self.api.url(self.api.oauth_token_path()))

    def code_request(self, code: str, code_verifier: str) -> httpx.Request:
        return _form(
            self._token_url(),
            {
                "grant_type": "authorization_code",
                "client_id": self.client_id,
                "client_secret": self._client_secret,
                "redirect_uri": self.redirect_uri,
                "code": code,
                "code_verifier": code_verifier,
            },
        )

    def refresh_request(self, refresh_token: str) -> httpx.Request:
        return _form(
            self._token_url(),
            {
                "grant_type": "refresh_token",
                "client_id": self.client_id,
                "client_secret": self._client_secret,
                "refresh_token": refresh_token,
            },
        )

    def revoke_request(self, token: str) -> httpx.Request:
        if self.api.dated:
            return _form(
                f"{self._token_url()}/revoke",
                {"token": token, "client_id": self.client_id, "client_secret": self._client_secret},
            )
        return httpx.Request(
            "DELETE", self.api.url(f"/oauth/v1/refresh-tokens/{quote(token, safe='')}")
        )

    def accept(self, response: httpx.Response, *, refresh_token: str | None) -> Connection:
        from signals_crm.adapters.hubspot._errors import error_from_response
        from signals_crm.adapters.hubspot._responses import parse_token

        status = response.status_code
        body = _json(response)
        if status != 200:  # the one success status
            err = error_from_response(response)
            if status == 429 or status >= 500:  # HTTP's own transient ones
                raise err
            code = body.get("status") or body.get("error") or err.error_code
            raise AuthenticationError(
                f"HubSpot refused the token request: {err.message}",
                status_code=status,
                error_code=str(code) if code else None,
            )
        answer = parse_token(body)
        if answer is None:
            raise AuthenticationError(
                "HubSpot's token answer had no access token",
                status_code=status,
                error_code="BAD_TOKEN_RESPONSE",
            )
        tokens = TokenSet(
            access_token=answer.access_token,
            refresh_token=answer.refresh_token or refresh_token,
            expires_in=answer.expires_in,
        )
        hub = body.get("hub_id")
        scopes = body.get("scopes")
        return Connection(
            self.crm,
            tokens,
            str(hub) if hub is not None else None,
            None,
            tuple(str(s) for s in scopes) if isinstance(scopes, list) else (),
        )

    def revoked(self, response: httpx.Response) -> bool:
        if response.status_code in (200, 204):
            return True
        if response.status_code in (400, 404):
            return False
        from signals_crm.adapters.hubspot._errors import error_from_response

        raise error_from_response(response)

    def auth(self, tokens: TokenSet | str) -> hubspot.RefreshTokenFlow:
        from signals_crm.adapters.hubspot import RefreshTokenFlow

        held, refresh = _held(tokens)
        return RefreshTokenFlow(
            client_id=self.client_id,
            client_secret=self._client_secret or "",
            refresh_token=refresh,
            access_token=held.access_token or None,
            expires_in=held.expires_in,
            api=self.api,
            token_store=self.token_store,
        )
