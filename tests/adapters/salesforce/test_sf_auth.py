"""OAuth flows against the local org: refresh, JWT, client credentials, refresh-and-replay."""

from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import anyio
import httpx
import pytest

from _services import import_or_unavailable
from signals_crm.adapters.salesforce import (
    AsyncSalesforceAdapter,
    ClientCredentialsFlow,
    JWTBearerFlow,
    RefreshTokenFlow,
    SalesforceAdapter,
    StaticToken,
    TokenSet,
)
from signals_crm.exceptions import AuthenticationError, ConfigurationError, CRMAPIError
from signals_crm.testing.salesforce import LocalSalesforce

SECRET = "s3cr3t-client-value"


def _pem_pair() -> tuple[bytes, bytes]:
    # The JWT flow is the `jwt` extra's: absent only from the session without extras.
    serialization = import_or_unavailable("cryptography.hazmat.primitives.serialization", "jwt")
    rsa = import_or_unavailable("cryptography.hazmat.primitives.asymmetric.rsa", "jwt")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


@pytest.fixture(scope="module")
def keys() -> tuple[bytes, bytes]:
    """One RSA key pair for the module (generation is the slow part)."""
    return _pem_pair()


def _refresh_flow(org: LocalSalesforce, *, rotate: bool = False) -> RefreshTokenFlow:
    org.register_client("app", SECRET, rotate_refresh_tokens=rotate)
    return RefreshTokenFlow(
        client_id="app", client_secret=SECRET, refresh_token=org.issue_refresh_token("app")
    )


def test_refresh_flow_fetches_one_token_and_reuses_it(
    org: LocalSalesforce, client: httpx.Client
) -> None:
    """A token is fetched lazily, once, and the instance URL comes from the answer."""
    adapter = SalesforceAdapter(client, _refresh_flow(org))
    assert adapter.find_people(["a@x.com"]) == [()]
    assert adapter.list_users()
    assert org.token_requests == 1
    assert adapter.endpoint.instance_url == org.instance_url


def test_expired_session_is_refreshed_once_and_replayed(
    org: LocalSalesforce, client: httpx.Client
) -> None:
    """On INVALID_SESSION_ID the adapter refreshes once and replays the request."""
    adapter = SalesforceAdapter(client, _refresh_flow(org))
    adapter.find_people(["probe@example.com"])
    org.expire_tokens()
    assert adapter.find_people(["probe@example.com"]) == [()]
    assert org.token_requests == 2


def test_rotated_refresh_token_is_used_next_time(
    org: LocalSalesforce, client: httpx.Client
) -> None:
    """With rotation, the newest refresh token is kept, used, and exposed for persisting."""
    flow = _refresh_flow(org, rotate=True)
    adapter = SalesforceAdapter(client, flow)
    adapter.find_people(["probe@example.com"])
    first = adapter.refresh_token
    assert first is not None
    assert first != flow.refresh_token
    org.expire_tokens()
    adapter.find_people(
        ["probe@example.com"]
    )  # the original refresh token is now invalid; the rotated one works
    assert adapter.refresh_token not in (None, first)
    assert org.token_requests == 2


def test_second_401_after_refresh_is_terminal(org: LocalSalesforce) -> None:
    """If the replay is refused again the adapter raises, refreshing only once."""
    flow = _refresh_flow(org)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/services/oauth2"):
            return org.handle(request)
        return httpx.Response(
            401, json=[{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
        )

    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        adapter = SalesforceAdapter(http, flow)
        with pytest.raises(AuthenticationError) as raised:
            adapter.find_people(["probe@example.com"])
    assert raised.value.error_code == "INVALID_SESSION_ID"
    assert org.token_requests == 2  # the first token, then exactly one refresh


def test_static_token_cannot_be_refreshed(org: LocalSalesforce, client: httpx.Client) -> None:
    """An expired static token is an AuthenticationError, with no token request."""
    adapter = SalesforceAdapter(client, StaticToken(org.issue_token(), org.instance_url))
    org.expire_tokens()
    with pytest.raises(AuthenticationError):
        adapter.find_people(["probe@example.com"])
    assert org.token_requests == 0


def test_rest_policy_401_is_not_refreshed(org: LocalSalesforce) -> None:
    """'Not valid for use with the REST API' is surfaced, never refreshed."""
    flow = _refresh_flow(org)
    calls = {"api": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/services/oauth2"):
            return org.handle(request)
        calls["api"] += 1
        return httpx.Response(
            401,
            json=[
                {
                    "message": "This session is not valid for use with the REST API",
                    "errorCode": "INVALID_SESSION_ID",
                }
            ],
        )

    with (
        httpx.Client(transport=httpx.MockTransport(handler)) as http,
        pytest.raises(AuthenticationError, match="not valid for use"),
    ):
        SalesforceAdapter(http, flow).find_people(["probe@example.com"])
    assert calls["api"] == 1
    assert org.token_requests == 1


def test_invalid_refresh_token_is_an_authentication_error(
    org: LocalSalesforce, client: httpx.Client
) -> None:
    """invalid_grant from the token endpoint is terminal and carries no secret."""
    org.register_client("app", SECRET)
    flow = RefreshTokenFlow(client_id="app", client_secret=SECRET, refresh_token="5Aep-revoked")
    with pytest.raises(AuthenticationError) as raised:
        SalesforceAdapter(client, flow).find_people(["probe@example.com"])
    assert raised.value.error_code == "invalid_grant"
    assert "5Aep-revoked" not in str(raised.value)
    assert SECRET not in repr(raised.value)


def test_client_credentials_flow(org: LocalSalesforce, client: httpx.Client) -> None:
    """Client credentials yield a token; a wrong secret is an AuthenticationError."""
    org.register_client("svc", SECRET, client_credentials=True)
    good = ClientCredentialsFlow(
        client_id="svc", client_secret=SECRET, login_url="https://acme.my.salesforce.com"
    )
    assert SalesforceAdapter(client, good).list_users()
    bad = ClientCredentialsFlow(
        client_id="svc", client_secret="wrong", login_url="https://acme.my.salesforce.com"
    )
    with pytest.raises(AuthenticationError) as raised:
        SalesforceAdapter(client, bad).find_people(["probe@example.com"])
    assert raised.value.error_code == "invalid_client"


def test_client_credentials_request_golden() -> None:
    """The client-credentials request is a form POST to the My Domain token endpoint."""
    request = ClientCredentialsFlow(
        client_id="svc", client_secret="x", login_url="https://acme.my.salesforce.com/"
    ).token_request()
    assert request is not None
    assert request.method == "POST"
    assert str(request.url) == "https://acme.my.salesforce.com/services/oauth2/token"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.content == b"grant_type=client_credentials&client_id=svc&client_secret=x"


def test_jwt_bearer_flow(
    org: LocalSalesforce, client: httpx.Client, keys: tuple[bytes, bytes]
) -> None:
    """A JWT signed with the app's private key yields a token; claims are checked."""
    private, public = keys
    org.register_client("jwt-app", jwt_public_key=public, jwt_username="int@acme.com")
    flow = JWTBearerFlow(
        client_id="jwt-app", username="int@acme.com", private_key=private, clock=lambda: 10**10
    )
    assert SalesforceAdapter(client, flow).list_users()
    wrong_user = JWTBearerFlow(
        client_id="jwt-app", username="other@acme.com", private_key=private, clock=lambda: 10**10
    )
    with pytest.raises(AuthenticationError, match="approved"):
        SalesforceAdapter(client, wrong_user).find_people(["probe@example.com"])


def test_jwt_assertion_claims(keys: tuple[bytes, bytes]) -> None:
    """The assertion is RS256 with iss, sub, aud and a short exp from the injected clock."""
    jwt = import_or_unavailable("jwt", "jwt")
    private, public = keys
    flow = JWTBearerFlow(
        client_id="key",
        username="u@x.com",
        private_key=private,
        login_url="https://test.salesforce.com",
        clock=lambda: 1_000,
    )
    claims = jwt.decode(
        flow.assertion(),
        public,
        algorithms=["RS256"],
        audience="https://test.salesforce.com",
        options={"verify_exp": False},
    )
    assert claims == {
        "iss": "key",
        "sub": "u@x.com",
        "aud": "https://test.salesforce.com",
        "exp": 1180,
    }


def test_jwt_expired_assertion_is_refused(
    org: LocalSalesforce, client: httpx.Client, keys: tuple[bytes, bytes]
) -> None:
    """An assertion whose exp is past is refused with invalid_grant."""
    private, public = keys
    org.register_client("jwt-app", jwt_public_key=public)
    flow = JWTBearerFlow(client_id="jwt-app", username="u", private_key=private, clock=lambda: 0)
    with pytest.raises(AuthenticationError, match="expired"):
        SalesforceAdapter(client, flow).find_people(["probe@example.com"])


def test_jwt_without_pyjwt_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, keys: tuple[bytes, bytes]
) -> None:
    """Without PyJWT the JWT flow says which extra to install."""
    monkeypatch.setitem(sys.modules, "jwt", None)
    flow = JWTBearerFlow(client_id="k", username="u", private_key=keys[0])
    with pytest.raises(ConfigurationError, match=r"signals-crm\[jwt\]"):
        flow.token_request()


def test_jwt_bad_key_does_not_leak_it() -> None:
    """A key that cannot sign is a ConfigurationError that does not quote the key."""
    import_or_unavailable("jwt", "jwt")  # without PyJWT the error is about the missing extra
    flow = JWTBearerFlow(client_id="k", username="u", private_key="-----NOT A KEY secret-bits")
    with pytest.raises(ConfigurationError) as raised:
        flow.assertion()
    assert "secret-bits" not in str(raised.value)
    assert raised.value.__cause__ is None


def test_secrets_never_in_reprs(
    org: LocalSalesforce, client: httpx.Client, keys: tuple[bytes, bytes]
) -> None:
    """Tokens, client secrets, refresh tokens and private keys stay out of every repr."""
    refresh = RefreshTokenFlow(client_id="a", client_secret=SECRET, refresh_token="5Aep-refresh")
    jwt_flow = JWTBearerFlow(client_id="a", username="u", private_key=keys[0])
    static = StaticToken("00D!access-token", "https://x.my.salesforce.com")
    adapter = SalesforceAdapter(client, refresh)
    text = " ".join(repr(x) for x in (refresh, jwt_flow, static, adapter))
    for secret in (SECRET, "5Aep-refresh", "00D!access-token", "PRIVATE KEY"):
        assert secret not in text


def test_refresh_under_thread_concurrency_makes_one_token_request(org: LocalSalesforce) -> None:
    """Eight threads hitting an expired session cause exactly one token request."""
    flow = _refresh_flow(org)
    barrier = threading.Barrier(8, timeout=10)

    def handler(request: httpx.Request) -> httpx.Response:
        response = org.handle(request)
        if response.status_code == 401:
            barrier.wait()  # every thread holds the dead token before anyone refreshes
        return response

    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        adapter = SalesforceAdapter(http, flow)
        adapter.find_people(["probe@example.com"])
        before = org.token_requests
        org.expire_tokens()
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(lambda _: adapter.find_people(["p@example.com"]), range(8)))
    assert results == [[()]] * 8
    assert org.token_requests - before == 1


@pytest.mark.anyio
async def test_refresh_under_task_concurrency_makes_one_token_request(org: LocalSalesforce) -> None:
    """Eight async tasks hitting an expired session cause exactly one token request."""
    flow = _refresh_flow(org)
    waiting = {"count": 0}
    everyone = anyio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        response = org.handle(request)
        if response.status_code == 401:
            waiting["count"] += 1
            if waiting["count"] == 8:
                everyone.set()
            await everyone.wait()
        return response

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        adapter = AsyncSalesforceAdapter(http, flow)
        await adapter.afind_people(["probe@example.com"])
        before = org.token_requests
        org.expire_tokens()
        results: list[list[object]] = []

        async def ask() -> None:
            results.append(await adapter.afind_people(["probe@example.com"]))

        async with anyio.create_task_group() as tasks:
            for _ in range(8):
                tasks.start_soon(ask)
    assert results == [[()]] * 8
    assert org.token_requests - before == 1


def test_requests_go_to_the_token_instance_with_its_host(org: LocalSalesforce) -> None:
    """Requests built before the first token are sent to the token's instance, Host included."""
    org.register_client("app", SECRET)
    flow = RefreshTokenFlow(
        client_id="app", client_secret=SECRET, refresh_token=org.issue_refresh_token("app")
    )
    seen: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.host, request.headers["Host"]))
        return org.handle(request)

    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        SalesforceAdapter(http, flow).find_people(["probe@example.com"])
    assert seen == [
        ("login.salesforce.com", "login.salesforce.com"),
        ("local.my.salesforce.com", "local.my.salesforce.com"),
    ]


class Saved:
    """A token store that keeps what it was given."""

    def __init__(self) -> None:
        self.tokens: list[TokenSet] = []

    def save(self, tokens: TokenSet) -> None:
        self.tokens.append(tokens)


def test_token_store_gets_rotated_refresh_tokens(
    org: LocalSalesforce, client: httpx.Client
) -> None:
    """Every token answer reaches the store: the access token, the rotated refresh token."""
    org.register_client("app", SECRET, rotate_refresh_tokens=True)
    store = Saved()
    original = org.issue_refresh_token("app")
    flow = RefreshTokenFlow(
        client_id="app", client_secret=SECRET, refresh_token=original, token_store=store
    )
    adapter = SalesforceAdapter(client, flow)
    adapter.find_people(["probe@example.com"])
    org.expire_tokens()
    adapter.find_people(["probe@example.com"])
    first, second = (t.refresh_token for t in store.tokens)
    assert second == adapter.refresh_token
    assert len({original, first, second}) == 3  # each answer rotated it
    assert all(t.instance_url == org.instance_url for t in store.tokens)


def test_token_store_without_rotation_keeps_the_configured_refresh_token(
    org: LocalSalesforce, client: httpx.Client
) -> None:
    """Without rotation the store is told the refresh token to keep using."""
    store = Saved()
    flow = _refresh_flow(org)
    flow.token_store = store
    SalesforceAdapter(client, flow).find_people(["probe@example.com"])
    assert [t.refresh_token for t in store.tokens] == [flow.refresh_token]


@pytest.mark.parametrize("status", [429, 502, 503])
def test_a_failing_token_endpoint_is_transient(org: LocalSalesforce, status: int) -> None:
    """A 429 or 5xx from the token endpoint is retryable, never bad credentials."""
    flow = _refresh_flow(org)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/services/oauth2"):
            return httpx.Response(status, text="<html>unavailable</html>")
        return org.handle(request)

    with (
        httpx.Client(transport=httpx.MockTransport(handler)) as http,
        pytest.raises(CRMAPIError) as raised,
    ):
        SalesforceAdapter(http, flow).find_people(["probe@example.com"])
    assert not isinstance(raised.value, AuthenticationError)
    assert raised.value.retryable


def test_a_flow_must_say_how_it_asks_for_a_token() -> None:
    """SalesforceAuth is abstract: a subclass without token_request cannot be built."""
    from signals_crm.adapters.salesforce._auth import SalesforceAuth

    class Incomplete(SalesforceAuth):
        pass

    with pytest.raises(TypeError, match="token_request"):
        Incomplete()  # type: ignore[abstract]
