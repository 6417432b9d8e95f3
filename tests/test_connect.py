"""Connect flows: authorize URL with state and PKCE, code exchange, refresh, revoke, and the
token-store hook, against both sandboxes (blocking and async)."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from signals_crm import (
    AsyncIntegration,
    AuthenticationError,
    ConfigurationError,
    Conversation,
    Integration,
    IntegrationSettings,
    OutcomeKind,
    Visitor,
)
from signals_crm.adapters import TokenSet
from signals_crm.adapters.hubspot import AsyncHubSpotAdapter, HubSpotAdapter, HubSpotAPI
from signals_crm.adapters.salesforce import AsyncSalesforceAdapter, SalesforceAdapter
from signals_crm.connect import Connection, HubSpotConnect, SalesforceConnect
from signals_crm.ledger import MemoryLedger
from signals_crm.testing.hubspot import LocalHubSpot
from signals_crm.testing.salesforce import LocalSalesforce

REDIRECT = "https://host.example/connect/callback"
CLOSED = datetime(2026, 11, 20, 12, tzinfo=UTC)


class Store:
    """A host's token store: every TokenSet the library hands over, in order."""

    def __init__(self) -> None:
        self.saved: list[TokenSet] = []

    def save(self, tokens: TokenSet) -> None:
        self.saved.append(tokens)


class AsyncStore:
    def __init__(self) -> None:
        self.saved: list[TokenSet] = []

    async def asave(self, tokens: TokenSet) -> None:
        self.saved.append(tokens)


def _conversation(cid: str) -> Conversation:
    return Conversation(id=cid, closed_at=CLOSED, visitor=Visitor(email=f"{cid}@visitor.test"))


def _salesforce(store: Any) -> tuple[LocalSalesforce, SalesforceConnect]:
    org = LocalSalesforce()
    org.register_client(
        "sf-app", "sf-secret", redirect_uris=(REDIRECT,), rotate_refresh_tokens=True
    )
    flow = SalesforceConnect(
        client_id="sf-app",
        client_secret="sf-secret",
        redirect_uri=REDIRECT,
        login_url="https://login.salesforce.com",
        token_store=store,
    )
    return org, flow


def _hubspot(store: Any) -> tuple[LocalHubSpot, HubSpotConnect]:
    portal = LocalHubSpot(burst_limit=None, search_per_second=None)
    portal.add_oauth_client("hs-app", "hs-secret", redirect_uris=(REDIRECT,))
    flow = HubSpotConnect(
        client_id="hs-app",
        client_secret="hs-secret",
        redirect_uri=REDIRECT,
        api=HubSpotAPI(base_url="https://api.hubapi.test"),
        token_store=store,
    )
    return portal, flow


def _approve(http: httpx.Client, url: str) -> str:
    """What the user's browser does: open the authorize page, land on the redirect."""
    answer = http.get(url)
    assert answer.status_code == 302
    location = answer.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return location


def _connect(http: httpx.Client, flow: SalesforceConnect | HubSpotConnect) -> Connection:
    """Start, approve in the "browser", finish: a connection."""
    auth = flow.start()
    callback = _approve(http, auth.url)
    return flow.finish(http, callback, state=auth.state, code_verifier=auth.code_verifier)


def test_the_authorize_urls_carry_state_and_an_s256_challenge() -> None:
    """Both authorize URLs carry the app, the redirect, the scopes, a fresh state and the
    S256 challenge of the verifier kept aside (RFC 7636 §4.2)."""
    _, sf = _salesforce(None)
    _, hs = _hubspot(None)
    first, second = sf.start(), sf.start()
    assert first.state != second.state
    assert first.code_verifier != second.code_verifier
    assert 43 <= len(first.code_verifier) <= 128
    for flow, page in ((sf, "/services/oauth2/authorize"), (hs, "/oauth/authorize")):
        auth = flow.start(state="tenant-7.nonce")
        url = httpx.URL(auth.url)
        assert url.path == page
        digest = hashlib.sha256(auth.code_verifier.encode()).digest()
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        assert url.params["code_challenge"] == challenge
        assert url.params["code_challenge_method"] == "S256"
        assert url.params["state"] == "tenant-7.nonce"
        assert url.params["redirect_uri"] == REDIRECT
        assert auth.code_verifier not in repr(auth)
    assert httpx.URL(sf.start().url).params["response_type"] == "code"
    assert httpx.URL(sf.start().url).params["scope"] == "api refresh_token"
    assert "crm.objects.contacts.write" in httpx.URL(hs.start().url).params["scope"].split()
    assert "%20" in hs.start().url  # scopes are space-separated, percent-encoded


def test_salesforce_connect_sync_refresh_and_revoke() -> None:
    """The whole life of a Salesforce connection: connect, sync with the connection, the
    access token expires and the adapter refreshes on its own (the rotated refresh token
    reaches the store), an explicit refresh, then revoke on disconnect ends every token."""
    store = Store()
    org, flow = _salesforce(store)
    with httpx.Client(transport=org.transport()) as http:
        connection = _connect(http, flow)
        assert connection.crm == "salesforce"
        assert connection.tokens.instance_url == org.instance_url
        assert connection.account_id == org.org_id
        assert store.saved == [connection.tokens]

        adapter = SalesforceAdapter(http, flow.auth(connection.tokens))
        integration = Integration(adapter, IntegrationSettings.from_dict({}), ledger=MemoryLedger())
        assert integration.manual_sync(_conversation("c-1")).kind is OutcomeKind.CREATED
        assert len(store.saved) == 1  # the connect's token was used: no refresh yet

        org.expire_tokens()
        assert integration.manual_sync(_conversation("c-2")).kind is OutcomeKind.CREATED
        assert len(store.saved) == 2
        rotated = store.saved[-1].refresh_token
        assert rotated not in (None, connection.tokens.refresh_token)

        assert rotated is not None
        fresh = flow.refresh(http, rotated)
        assert store.saved[-1] == fresh
        assert fresh.refresh_token not in (None, rotated)  # this app rotates
        assert fresh.refresh_token is not None

        assert flow.revoke(http, fresh.refresh_token) is True
        assert flow.revoke(http, fresh.refresh_token) is False  # already gone: not an error
        with pytest.raises(AuthenticationError):
            flow.refresh(http, fresh.refresh_token)


def test_hubspot_connect_sync_refresh_and_revoke() -> None:
    """The whole life of a HubSpot install: connect, sync, the access token goes stale and
    the auth refreshes before using it, an explicit refresh, then revoke on disconnect: the
    refresh token refreshes no more."""
    store = Store()
    portal, flow = _hubspot(store)
    with httpx.Client(transport=portal.transport()) as http:
        connection = _connect(http, flow)
        assert connection.crm == "hubspot"
        assert connection.account_id == str(portal.portal_id)
        assert connection.tokens.expires_in == portal.access_token_ttl
        assert store.saved == [connection.tokens]

        adapter = HubSpotAdapter(http, flow.auth(connection.tokens), api=flow.api)
        integration = Integration(adapter, IntegrationSettings.from_dict({}), ledger=MemoryLedger())
        assert integration.manual_sync(_conversation("c-1")).kind is OutcomeKind.CREATED
        assert portal.token_requests == 1  # the code exchange only

        portal.expire_access_tokens()
        assert integration.manual_sync(_conversation("c-2")).kind is OutcomeKind.CREATED
        assert portal.token_requests == 2
        assert len(store.saved) == 2
        assert store.saved[-1].refresh_token == connection.tokens.refresh_token

        refresh = connection.tokens.refresh_token
        assert refresh is not None
        fresh = flow.refresh(http, refresh)
        assert store.saved[-1] == fresh
        assert flow.revoke(http, refresh) is True
        assert flow.revoke(http, refresh) is False
        with pytest.raises(AuthenticationError) as refused:
            flow.refresh(http, refresh)
        assert refused.value.error_code == "BAD_REFRESH_TOKEN"


@pytest.mark.anyio
@pytest.mark.parametrize("crm", ["salesforce", "hubspot"])
async def test_the_async_twins_connect_sync_refresh_and_revoke(crm: str) -> None:
    """afinish, arefresh and arevoke do what their blocking twins do, and an async token
    store is awaited."""
    store = AsyncStore()
    sandbox: Any
    flow: SalesforceConnect | HubSpotConnect
    sandbox, flow = _salesforce(store) if crm == "salesforce" else _hubspot(store)
    with httpx.Client(transport=sandbox.transport()) as browser:
        auth = flow.start()
        callback = _approve(browser, auth.url)
    async with httpx.AsyncClient(transport=sandbox.transport()) as http:
        connection = await flow.afinish(
            http, callback, state=auth.state, code_verifier=auth.code_verifier
        )
        assert store.saved == [connection.tokens]
        adapter: Any
        if isinstance(flow, SalesforceConnect):
            adapter = AsyncSalesforceAdapter(http, flow.auth(connection.tokens))
        else:
            assert isinstance(flow, HubSpotConnect)
            adapter = AsyncHubSpotAdapter(http, flow.auth(connection.tokens), api=flow.api)
        integration = AsyncIntegration(
            adapter, IntegrationSettings.from_dict({}), ledger=MemoryLedger()
        )
        outcome = await integration.amanual_sync(_conversation("c-1"))
        assert outcome.kind is OutcomeKind.CREATED
        refresh = connection.tokens.refresh_token
        assert refresh is not None
        fresh = await flow.arefresh(http, refresh)
        assert store.saved[-1] == fresh
        assert fresh.refresh_token is not None
        assert await flow.arevoke(http, fresh.refresh_token) is True
        with pytest.raises(AuthenticationError):
            await flow.arefresh(http, fresh.refresh_token)


@pytest.mark.parametrize("crm", ["salesforce", "hubspot"])
def test_a_forged_denied_or_empty_redirect_is_refused(crm: str) -> None:
    """A redirect whose state is not this connect's is refused before any exchange; a
    denial is an AuthenticationError with the CRM's code; no code names callback.code."""
    store = Store()
    sandbox: Any
    sandbox, flow = _salesforce(store) if crm == "salesforce" else _hubspot(store)
    with httpx.Client(transport=sandbox.transport()) as http:
        auth = flow.start()
        callback = _approve(http, auth.url)
        forged = httpx.URL(callback).copy_set_param("state", "someone-else")
        with pytest.raises(ConfigurationError, match=r"callback\.state"):
            flow.finish(http, forged, state=auth.state, code_verifier=auth.code_verifier)
        denied = {"state": auth.state, "error": "access_denied", "error_description": "no"}
        with pytest.raises(AuthenticationError) as refused:
            flow.finish(http, denied, state=auth.state, code_verifier=auth.code_verifier)
        assert refused.value.error_code == "access_denied"
        with pytest.raises(ConfigurationError, match=r"callback\.code"):
            flow.finish(
                http, {"state": auth.state}, state=auth.state, code_verifier=auth.code_verifier
            )
        with pytest.raises(AuthenticationError):  # the verifier of another connect
            flow.finish(http, callback, state=auth.state, code_verifier=flow.start().code_verifier)
    assert store.saved == []


def test_secrets_stay_out_of_reprs_and_errors() -> None:
    """Client secrets, tokens and verifiers never show in a repr or a refusal."""
    store = Store()
    org, flow = _salesforce(store)
    with httpx.Client(transport=org.transport()) as http:
        auth = flow.start()
        connection = flow.finish(
            http, _approve(http, auth.url), state=auth.state, code_verifier=auth.code_verifier
        )
        refresh = connection.tokens.refresh_token
        assert refresh is not None
        flow.revoke(http, refresh)
        with pytest.raises(AuthenticationError) as refused:
            flow.refresh(http, refresh)
    shown = [repr(flow), repr(auth), repr(connection), repr(flow.auth(connection.tokens))]
    text = " ".join([*shown, str(refused.value), repr(refused.value)])
    for secret in ("sf-secret", auth.code_verifier, refresh, connection.tokens.access_token):
        assert secret not in text


def test_bad_app_settings_name_their_field() -> None:
    """A connector refuses an empty client id, a redirect that is not a URL, and a HubSpot
    app without its secret, naming the field."""
    with pytest.raises(ConfigurationError, match="client_id"):
        SalesforceConnect(client_id=" ", redirect_uri=REDIRECT)
    with pytest.raises(ConfigurationError, match="redirect_uri"):
        SalesforceConnect(client_id="a", redirect_uri="not a url")
    with pytest.raises(ConfigurationError, match="client_secret"):
        HubSpotConnect(client_id="a", client_secret="", redirect_uri=REDIRECT)
    with pytest.raises(ConfigurationError, match="refresh_token"):
        SalesforceConnect(client_id="a", redirect_uri=REDIRECT).auth("")


def test_a_dated_hubspot_api_uses_its_token_and_revoke_paths() -> None:
    """With a date-based API version the exchange, refresh and revoke go to
    /oauth/{date}/token(/revoke) (HubSpot's v1 migration guide)."""
    store = Store()
    portal = LocalHubSpot()
    portal.add_oauth_client("hs-app", "hs-secret", redirect_uris=(REDIRECT,))
    flow = HubSpotConnect(
        client_id="hs-app",
        client_secret="hs-secret",
        redirect_uri=REDIRECT,
        api=HubSpotAPI(base_url="https://api.hubapi.test", version="2026-03"),
        token_store=store,
    )
    with httpx.Client(transport=portal.transport()) as http:
        connection = _connect(http, flow)
        refresh = connection.tokens.refresh_token
        assert refresh is not None
        assert flow.revoke(http, refresh) is True
    assert ("POST", "/oauth/2026-03/token") in portal.requests
    assert ("POST", "/oauth/2026-03/token/revoke") in portal.requests


# -- the sandboxes answer these flows as the vendors document them ------------------------------


def _code(http: httpx.Client, url: str) -> str:
    return httpx.URL(_approve(http, url)).params["code"]


def test_salesforce_code_grant_checks_verifier_and_secret_as_documented() -> None:
    """A challenge without a verifier answers invalid_grant, a wrong verifier invalid_request,
    and the secret is required unless the app turns off "Require Secret for Web Server Flow".

    https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/intro_understanding_web_server_oauth_flow.htm
    https://help.salesforce.com/HTViewHelpDoc?id=remoteaccess_oauth_web_server_flow.htm
    """
    org, flow = _salesforce(None)
    org.register_client("public-app", "unused", redirect_uris=(REDIRECT,), require_secret=False)
    token_url = "https://login.salesforce.com/services/oauth2/token"
    with httpx.Client(transport=org.transport()) as http:
        auth = flow.start()
        base = {"grant_type": "authorization_code", "client_id": "sf-app", "redirect_uri": REDIRECT}
        no_verifier = http.post(
            token_url, data={**base, "code": _code(http, auth.url), "client_secret": "sf-secret"}
        )
        assert (no_verifier.status_code, no_verifier.json()["error"]) == (400, "invalid_grant")
        wrong = http.post(
            token_url,
            data={
                **base,
                "code": _code(http, auth.url),
                "client_secret": "sf-secret",
                "code_verifier": "x" * 43,
            },
        )
        assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_request")
        secretless = {**base, "code": _code(http, auth.url), "code_verifier": auth.code_verifier}
        assert http.post(token_url, data=secretless).json()["error"] == "invalid_client"
        public = SalesforceConnect(client_id="public-app", redirect_uri=REDIRECT)
        assert _connect(http, public).tokens.refresh_token


def test_hubspot_revoke_leaves_issued_access_tokens_and_errors_carry_both_forms() -> None:
    """Deleting a refresh token does not end the access tokens it issued; OAuth errors carry
    HubSpot's status/message and RFC 6749's error/error_description.

    https://developers.hubspot.com/docs/methods/oauth2/delete-refresh-token
    https://developers.hubspot.com/changelog/new-oauth-v3-api-endpoints-and-standardized-error-responses
    """
    portal, flow = _hubspot(None)
    with httpx.Client(transport=portal.transport(), base_url="https://api.hubapi.test") as http:
        connection = _connect(http, flow)
        refresh = connection.tokens.refresh_token
        assert refresh is not None
        assert http.delete(f"/oauth/v1/refresh-tokens/{refresh}").status_code == 204
        bearer = {"Authorization": f"Bearer {connection.tokens.access_token}"}
        assert http.get("/crm/v3/owners", headers=bearer).status_code == 200
        refused = http.post(
            "/oauth/v1/token",
            data={
                "grant_type": "refresh_token",
                "client_id": "hs-app",
                "client_secret": "hs-secret",
                "refresh_token": refresh,
            },
        )
        body = refused.json()
        assert refused.status_code == 400
        assert (body["status"], body["error"]) == ("BAD_REFRESH_TOKEN", "invalid_grant")
        assert body["error_description"] == body["message"]
        started = flow.start()
        wrong = http.post(
            "/oauth/v1/token",
            data={
                "grant_type": "authorization_code",
                "client_id": "hs-app",
                "client_secret": "hs-secret",
                "redirect_uri": REDIRECT,
                "code": _code(http, started.url),
                "code_verifier": "y" * 43,
            },
        )
        assert wrong.json()["status"] == "BAD_AUTH_CODE"
