"""The refresh lock is let go however a token request ends, on both kinds of client."""

from __future__ import annotations

import httpx
import pytest

from signals_crm.adapters._tokens import TokenAuth, TokenSet


class FlakyTokenAuth(TokenAuth):
    """Fetches a token from ``/token``; the bearer goes in a header."""

    def __init__(self) -> None:
        super().__init__()
        self.token: str | None = None

    def fresh_token(self) -> str | None:
        return self.token

    def build_token_request(self) -> httpx.Request:
        return httpx.Request("POST", "https://crm.test/token")

    def accept_token(self, response: httpx.Response) -> TokenSet:
        self.token = response.json()["access_token"]
        return TokenSet(access_token=self.token)

    def authorize(self, request: httpx.Request, token: str) -> httpx.Request:
        request.headers["Authorization"] = f"Bearer {token}"
        return request

    def is_expired(self, response: httpx.Response) -> bool:
        return response.status_code == 401


def endpoint(drops: list[int]) -> httpx.MockTransport:
    """A CRM whose token endpoint drops the connection the first time."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            drops.append(1)
            if len(drops) == 1:
                raise httpx.ConnectError("dropped", request=request)
            return httpx.Response(200, json={"access_token": "t1"})
        assert request.headers["Authorization"] == "Bearer t1"
        return httpx.Response(200, json={"ok": True})

    return httpx.MockTransport(handle)


def test_a_dropped_token_request_releases_the_lock_for_the_next_request() -> None:
    """The first call fails in transport while holding the lock; the second refreshes."""
    auth, drops = FlakyTokenAuth(), list[int]()
    with httpx.Client(transport=endpoint(drops), auth=auth) as client:
        with pytest.raises(httpx.ConnectError):
            client.get("https://crm.test/data")
        assert not auth._thread_lock.locked()
        assert client.get("https://crm.test/data").json() == {"ok": True}
    assert len(drops) == 2


@pytest.mark.anyio
async def test_the_async_client_releases_the_lock_the_same_way() -> None:
    auth, drops = FlakyTokenAuth(), list[int]()
    async with httpx.AsyncClient(transport=endpoint(drops), auth=auth) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("https://crm.test/data")
        assert auth._task_lock is not None
        assert not auth._task_lock.locked()
        assert (await client.get("https://crm.test/data")).json() == {"ok": True}
    assert len(drops) == 2
