"""Type-checked, never run: a host's token stores plug into both CRMs' refresh flows.

A change to the token-store Protocols or to ``token_store=`` that breaks a host's own store
fails ``mypy`` here.
"""

from __future__ import annotations

import httpx

from signals_crm.adapters import hubspot, salesforce


class FileTokenStore:
    """A blocking store, as a host would write it: keeps the newest refresh token."""

    def __init__(self) -> None:
        self.refresh_token: str | None = None

    def save(self, tokens: salesforce.TokenSet) -> None:
        self.refresh_token = tokens.refresh_token or self.refresh_token


class AwaitedTokenStore:
    """An async store (structurally an ``AsyncTokenStore``): awaited by async adapters."""

    def __init__(self) -> None:
        self.saved: list[hubspot.TokenSet] = []

    async def asave(self, tokens: hubspot.TokenSet) -> None:
        self.saved.append(tokens)


def both_crms(client: httpx.Client, aclient: httpx.AsyncClient) -> None:
    store: salesforce.TokenStore = FileTokenStore()
    sf_flow = salesforce.RefreshTokenFlow(
        client_id="id", refresh_token="rt", client_secret="cs", token_store=store
    )
    sf = salesforce.SalesforceAdapter(client, sf_flow)
    hs_flow = hubspot.RefreshTokenFlow(
        client_id="id", client_secret="cs", refresh_token="rt", token_store=AwaitedTokenStore()
    )
    hs = hubspot.AsyncHubSpotAdapter(aclient, hs_flow)
    same: type[salesforce.TokenSet] = hubspot.TokenSet
    print(sf.capabilities.name, hs.capabilities.name, same)


def connect_flows(client: httpx.Client) -> None:
    """Both connectors take either kind of store and give adapters their auth."""
    from signals_crm.connect import Connection, HubSpotConnect, SalesforceConnect

    sf = SalesforceConnect(
        client_id="id", redirect_uri="https://h.test/cb", token_store=FileTokenStore()
    )
    hs = HubSpotConnect(
        client_id="id",
        client_secret="cs",
        redirect_uri="https://h.test/cb",
        token_store=AwaitedTokenStore(),
    )
    started = sf.start()
    connection: Connection = sf.finish(
        client, started.url, state=started.state, code_verifier=started.code_verifier
    )
    salesforce.SalesforceAdapter(client, sf.auth(connection.tokens))
    hubspot.HubSpotAdapter(client, hs.auth("refresh-token"), api=hs.api)
    revoked: bool = hs.revoke(client, "refresh-token")
    del revoked
