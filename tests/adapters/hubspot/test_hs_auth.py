"""OAuth refresh: proactive from expires_in, once under concurrency, secrets hidden."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator

import anyio
import anyio.lowlevel
import httpx
import pytest
from hubspot_support import FakeClock, limiters

from signals_crm.adapters.hubspot import (
    AsyncHubSpotAdapter,
    HubSpotAdapter,
    OAuthToken,
    RefreshTokenFlow,
    StaticToken,
    TokenSet,
)
from signals_crm.exceptions import AuthenticationError, ConfigurationError, CRMAPIError
from signals_crm.testing.hubspot import LocalHubSpot

CLIENT_ID, SECRET, REFRESH = "client-1", "shh-client-secret", "refresh-abc"


@pytest.fixture
def oauth_portal(portal: LocalHubSpot) -> LocalHubSpot:
    portal.add_oauth_client(CLIENT_ID, SECRET, REFRESH)
    return portal


def oauth(clock: FakeClock, refresh: str = REFRESH) -> OAuthToken:
    return OAuthToken(client_id=CLIENT_ID, client_secret=SECRET, refresh_token=refresh, clock=clock)


@pytest.fixture
def statuses(oauth_portal: LocalHubSpot) -> list[int]:
    return []


@pytest.fixture
def recording_client(oauth_portal: LocalHubSpot, statuses: list[int]) -> Iterator[httpx.Client]:
    def handler(request: httpx.Request) -> httpx.Response:
        response = oauth_portal.handle(request)
        statuses.append(response.status_code)
        return response

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        yield client


def test_first_call_fetches_a_token_and_reuses_it(
    recording_client: httpx.Client, oauth_portal: LocalHubSpot, clock: FakeClock
) -> None:
    """No token yet → one refresh; later calls within the lifetime reuse it."""
    auth = oauth(clock)
    adapter = HubSpotAdapter(recording_client, auth=auth, **limiters(clock))
    adapter.find_people(["a@example.com"])
    adapter.find_people(["b@example.com"])
    assert oauth_portal.token_requests == 1
    assert auth.refreshes == 1


def test_refresh_is_proactive_before_expiry(
    recording_client: httpx.Client,
    oauth_portal: LocalHubSpot,
    clock: FakeClock,
    statuses: list[int],
) -> None:
    """Past expires_in minus the margin the token is refreshed before any 401 is seen."""
    adapter = HubSpotAdapter(recording_client, auth=oauth(clock), **limiters(clock))
    adapter.find_people(["a@example.com"])
    clock.sleep(1800 - 299)  # inside the 300 s margin, still valid at HubSpot
    adapter.find_people(["a@example.com"])
    assert oauth_portal.token_requests == 2
    assert 401 not in statuses


def test_expired_token_is_refreshed_once_and_replayed(
    recording_client: httpx.Client,
    oauth_portal: LocalHubSpot,
    clock: FakeClock,
    statuses: list[int],
) -> None:
    """A 401 EXPIRED_AUTHENTICATION causes one refresh and one replay, then success."""
    adapter = HubSpotAdapter(recording_client, auth=oauth(clock), **limiters(clock))
    adapter.find_people(["a@example.com"])
    oauth_portal.expire_access_tokens()
    assert adapter.find_people(["a@example.com"]) == [()]
    assert oauth_portal.token_requests == 2
    assert statuses.count(401) == 1


def test_token_expiry_after_n_calls_fault(
    recording_client: httpx.Client, oauth_portal: LocalHubSpot, clock: FakeClock
) -> None:
    """The portal's expire-after-N fault is survived with a single extra refresh."""
    oauth_portal.faults.expire_tokens_after = 2
    adapter = HubSpotAdapter(recording_client, auth=oauth(clock), **limiters(clock))
    for n in range(5):
        adapter.find_people([f"p{n}@example.com"])
    assert oauth_portal.token_requests == 2


def test_a_refused_refresh_raises_without_secrets(
    recording_client: httpx.Client, clock: FakeClock
) -> None:
    """A bad refresh token is an AuthenticationError; neither secret appears anywhere."""
    auth = oauth(clock, refresh="wrong-refresh-token")
    adapter = HubSpotAdapter(recording_client, auth=auth, **limiters(clock))
    with pytest.raises(AuthenticationError) as raised:
        adapter.find_people(["a@example.com"])
    text = f"{raised.value} {raised.value!r} {auth!r} {adapter!r}"
    assert raised.value.error_code == "BAD_REFRESH_TOKEN"
    for secret in (SECRET, "wrong-refresh-token"):
        assert secret not in text


def test_static_tokens_are_hidden_and_cannot_refresh() -> None:
    """A static token never shows in its repr and refuses to be refreshed."""
    token = StaticToken("pat-na1-0000")
    assert "pat-na1-0000" not in repr(token)
    assert token.can_refresh is False
    with pytest.raises(AuthenticationError):
        token.build_token_request()
    with pytest.raises(ConfigurationError, match="token"):
        StaticToken("  ")


def test_threads_share_one_refresh(oauth_portal: LocalHubSpot, clock: FakeClock) -> None:
    """Eight threads starting together with no token cause exactly one token request."""
    gate = threading.Event()
    refreshing = threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/oauth"):
            refreshing.set()
            gate.wait(timeout=5)  # hold the refresh while the other threads queue up
        return oauth_portal.handle(request)

    auth = oauth(clock)
    errors: list[BaseException] = []
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        adapter = HubSpotAdapter(client, auth=auth, **limiters(clock))

        def work(n: int) -> None:
            try:
                adapter.find_people([f"t{n}@example.com"])
            except BaseException as exc:  # noqa: BLE001  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        assert refreshing.wait(timeout=5)
        gate.set()
        for t in threads:
            t.join()
    assert errors == []
    assert oauth_portal.token_requests == 1


@pytest.mark.anyio
async def test_tasks_share_one_refresh(oauth_portal: LocalHubSpot, clock: FakeClock) -> None:
    """Ten concurrent async calls with no token cause exactly one token request."""

    class SlowTokenTransport(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path.startswith("/oauth"):
                for _ in range(5):
                    await anyio.lowlevel.checkpoint()  # let the others pile up on the lock
            response = oauth_portal.handle(request)
            return httpx.Response(
                response.status_code, headers=response.headers, content=response.content
            )

    async with httpx.AsyncClient(transport=SlowTokenTransport()) as client:
        adapter = AsyncHubSpotAdapter(client, auth=oauth(clock), **limiters(clock))
        answers: list[object] = []

        async def ask(n: int) -> None:
            answers.append(await adapter.afind_people([f"a{n}@example.com"]))

        async with anyio.create_task_group() as tasks:
            for n in range(10):
                tasks.start_soon(ask, n)
    assert answers == [[()]] * 10
    assert oauth_portal.token_requests == 1


class Saved:
    """A token store that keeps what it was given."""

    def __init__(self) -> None:
        self.tokens: list[TokenSet] = []

    def save(self, tokens: TokenSet) -> None:
        self.tokens.append(tokens)


def test_token_store_gets_every_new_token(
    recording_client: httpx.Client, oauth_portal: LocalHubSpot, clock: FakeClock
) -> None:
    """Each refresh hands the new access token and the refresh token to the store, hidden."""
    store = Saved()
    auth = OAuthToken(
        client_id=CLIENT_ID,
        client_secret=SECRET,
        refresh_token=REFRESH,
        clock=clock,
        token_store=store,
    )
    adapter = HubSpotAdapter(recording_client, auth, **limiters(clock))
    adapter.find_people(["a@example.com"])
    oauth_portal.expire_access_tokens()
    adapter.find_people(["a@example.com"])
    assert len(store.tokens) == 2
    assert store.tokens[0].access_token != store.tokens[1].access_token
    assert all(t.refresh_token == REFRESH and t.expires_in for t in store.tokens)
    assert REFRESH not in repr(store.tokens[0])


@pytest.mark.anyio
async def test_async_token_store_is_awaited(oauth_portal: LocalHubSpot, clock: FakeClock) -> None:
    """An async adapter awaits ``asave`` of an async store."""
    saved: list[TokenSet] = []

    class AsyncSaved:
        async def asave(self, tokens: TokenSet) -> None:
            saved.append(tokens)

    auth = RefreshTokenFlow(
        client_id=CLIENT_ID,
        client_secret=SECRET,
        refresh_token=REFRESH,
        clock=clock,
        token_store=AsyncSaved(),
    )
    async with httpx.AsyncClient(transport=oauth_portal.transport()) as client:
        await AsyncHubSpotAdapter(client, auth, **limiters(clock)).afind_people(["a@x.com"])
    assert [t.refresh_token for t in saved] == [REFRESH]


@pytest.mark.parametrize("status", [429, 502, 503])
def test_a_failing_token_endpoint_is_transient(
    oauth_portal: LocalHubSpot, clock: FakeClock, status: int
) -> None:
    """A 429 or 5xx from the token endpoint is retryable, never bad credentials."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/oauth"):
            return httpx.Response(status, json={"status": "error", "message": "try later"})
        return oauth_portal.handle(request)

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        adapter = HubSpotAdapter(client, oauth(clock), **limiters(clock))
        with pytest.raises(CRMAPIError) as raised:
            adapter.find_people(["a@example.com"])
    assert not isinstance(raised.value, AuthenticationError)
    assert raised.value.retryable
    assert raised.value.status_code == status


def test_deprecated_token_keyword_still_works(client: httpx.Client, clock: FakeClock) -> None:
    """``token=`` is accepted with a DeprecationWarning and means a static token."""
    with pytest.warns(DeprecationWarning, match="auth"):
        adapter = HubSpotAdapter(client, token="pat-na1-0000", **limiters(clock))
    assert isinstance(adapter.auth, StaticToken)


@pytest.mark.anyio
async def test_a_blocking_store_is_called_off_the_event_loop(
    oauth_portal: LocalHubSpot, clock: FakeClock
) -> None:
    """An async adapter runs a blocking store's save in a worker thread, not on the loop."""
    loop_thread = threading.get_ident()
    threads: list[int] = []

    class Blocking:
        def save(self, tokens: TokenSet) -> None:
            if tokens.access_token:
                threads.append(threading.get_ident())

    auth = RefreshTokenFlow(
        client_id=CLIENT_ID,
        client_secret=SECRET,
        refresh_token=REFRESH,
        clock=clock,
        token_store=Blocking(),
    )
    async with httpx.AsyncClient(transport=oauth_portal.transport()) as client:
        await AsyncHubSpotAdapter(client, auth, **limiters(clock)).afind_people(["a@x.com"])
    assert len(threads) == 1
    assert threads[0] != loop_thread


class _Draws(random.Random):
    """A generator whose ``random()`` gives the scripted draws first (ids stay random)."""

    def __init__(self, draws: list[float]) -> None:
        super().__init__(0)
        self.draws = draws

    def random(self) -> float:
        return self.draws.pop(0) if self.draws else 0.99


def test_random_token_expiry_fault_is_survived_with_a_refresh(
    recording_client: httpx.Client,
    oauth_portal: LocalHubSpot,
    clock: FakeClock,
    statuses: list[int],
) -> None:
    """``expire_rate``: a call that draws under the rate finds its access token expired
    (401 EXPIRED_AUTHENTICATION); the adapter refreshes once and replays."""
    adapter = HubSpotAdapter(recording_client, auth=oauth(clock), **limiters(clock))
    adapter.find_people(["a@example.com"])
    oauth_portal.faults.expire_rate = 0.1
    oauth_portal.rng = _Draws([0.05])  # the next authenticated call: expired
    statuses.clear()
    assert adapter.find_people(["a@example.com"]) == [()]
    assert statuses.count(401) == 1
    assert oauth_portal.token_requests == 2
