"""OAuth for the local portal: authorize, code exchange, refresh, token metadata, revoke.

Rules (HubSpot "Working with OAuth", "Manage OAuth tokens" (legacy v1), the v3 / 2026-03 token
API and its migration guide):

1. ``GET /oauth/authorize?client_id&redirect_uri&scope[&optional_scope][&state]
   [&code_challenge&code_challenge_method=S256]`` (the install URL; served on any host, e.g.
   ``app.hubspot.com`` through the proxy) approves at once (nobody is there to click) and
   redirects (302) to ``redirect_uri`` with ``code`` (and ``state``). An unknown app or a
   redirect URI it did not register is refused on the page (400).
2. ``POST /oauth/v1/token`` (also ``/oauth/v3/token`` and ``/oauth/YYYY-MM/token``),
   form-encoded: ``authorization_code`` (``code``, ``redirect_uri``, ``client_id``,
   ``client_secret``, and ``code_verifier`` when the authorize carried a challenge; the code
   works once, within 30 minutes) and ``refresh_token`` answer ``{token_type, access_token,
   refresh_token, expires_in, token_use, hub_id}``. Errors are 400 with ``status``
   ``BAD_GRANT_TYPE``, ``BAD_CLIENT_ID``, ``BAD_AUTH_CODE``, ``BAD_REDIRECT_URI`` or
   ``BAD_REFRESH_TOKEN`` and ``message``, plus RFC 6749's ``error`` and
   ``error_description`` (HubSpot's changelog "New OAuth v3 API endpoints and standardized
   error responses": both forms in every OAuth error).
3. ``GET /oauth/v1/access-tokens/{token}`` and ``GET /oauth/v1/refresh-tokens/{token}`` tell
   what a token is (hub, app, scopes, and the seconds left of an access token);
   ``DELETE /oauth/v1/refresh-tokens/{token}`` (or ``POST /oauth/{v3|YYYY-MM}/token/revoke``)
   deletes a refresh token: 204, and it refreshes no more. "This will only delete the refresh
   token. Access tokens generated with the refresh token will not be affected" (Delete OAuth
   2.0 Refresh Token): they live out their lifetime. Unknown tokens answer 404.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import parse_qs

import httpx

from signals_crm.testing.hubspot._core import PortalCore
from signals_crm.testing.salesforce._login import pkce_matches

__all__ = ["OAuth"]

_CODE_TTL = 30 * 60
_RFC_ERROR: Final = {
    "BAD_GRANT_TYPE": "unsupported_grant_type",
    "BAD_CLIENT_ID": "invalid_client",
    "BAD_AUTH_CODE": "invalid_grant",
    "BAD_REDIRECT_URI": "invalid_grant",
    "BAD_REFRESH_TOKEN": "invalid_grant",
}


class OAuth(PortalCore):
    """The OAuth endpoints (see the module docstring)."""

    def _oauth(self, request: httpx.Request, parts: list[str]) -> httpx.Response:
        """Route ``/oauth/...`` (``parts`` after ``oauth``)."""
        method = request.method
        if parts == ["authorize"] and method == "GET":
            return self._authorize(request.url.params)
        if len(parts) == 2 and parts[1] == "token" and method == "POST":
            return self._oauth_token(request)
        if parts[-2:] == ["token", "revoke"] and method == "POST":
            form = _form(request)
            return self._revoke(form.get("token", ""))
        if len(parts) == 3 and parts[1] == "access-tokens" and method == "GET":
            return self._access_token_info(parts[2])
        if len(parts) == 3 and parts[1] == "refresh-tokens":
            if method == "DELETE":
                return self._revoke(parts[2])
            if method == "GET":
                return self._refresh_token_info(parts[2])
        return self._error(405, None, "Method not allowed")

    def _authorize(self, params: httpx.QueryParams) -> httpx.Response:
        client_id = params.get("client_id", "")
        redirect = params.get("redirect_uri", "")
        if client_id not in self.oauth_clients:
            return httpx.Response(400, text="Authorization failed because this app is unknown")
        if redirect not in self.oauth_redirects.get(client_id, ()):
            return httpx.Response(
                400, text="Authorization failed because the redirect URI does not match the app"
            )
        code = f"na1-{self.rng.getrandbits(96):024x}"
        scopes = tuple(s for s in params.get("scope", "").replace(",", " ").split() if s)
        challenge = params.get("code_challenge") or None
        self.auth_codes[code] = (client_id, redirect, scopes, self.clock() + _CODE_TTL, challenge)
        query = {"code": code}
        if "state" in params:
            query["state"] = params["state"]
        return httpx.Response(
            302, headers={"Location": str(httpx.URL(redirect).copy_merge_params(query))}
        )

    def _bad(self, status: str, message: str) -> httpx.Response:
        body = {
            "status": status,
            "message": message,
            "error": _RFC_ERROR.get(status, "invalid_request"),
            "error_description": message,
            "correlationId": self._correlation(),
        }
        return self._json(400, body)

    def _oauth_token(self, request: httpx.Request) -> httpx.Response:
        self.token_requests += 1
        form = _form(request)
        grant = form.get("grant_type")
        if grant not in ("refresh_token", "authorization_code"):
            return self._bad("BAD_GRANT_TYPE", "unsupported grant_type")
        client = self.oauth_clients.get(form.get("client_id", ""))
        if client is None or client[0] != form.get("client_secret"):
            return self._bad("BAD_CLIENT_ID", "missing or unknown client id")
        client_id = form["client_id"]
        if grant == "authorization_code":
            found = self.auth_codes.pop(form.get("code", ""), None)
            if found is None or found[0] != client_id or found[3] <= self.clock():
                return self._bad("BAD_AUTH_CODE", "missing or unknown auth code")
            if form.get("redirect_uri") != found[1]:
                return self._bad(
                    "BAD_REDIRECT_URI", "redirect URI does not match initial auth code URI"
                )
            if found[4] is not None and not pkce_matches(found[4], form.get("code_verifier", "")):
                return self._bad("BAD_AUTH_CODE", "code_verifier does not match code_challenge")
            refresh = f"na1-{self.rng.getrandbits(128):032x}"
            client[1].add(refresh)
            self.token_scopes[refresh] = found[2]
        else:
            refresh = form.get("refresh_token", "")
            if refresh not in client[1]:
                return self._bad("BAD_REFRESH_TOKEN", "missing or unknown refresh token")
        token = self.issue_access_token()
        self.token_owner[token] = (client_id, refresh)
        return self._json(
            200,
            {
                "token_type": "bearer",
                "refresh_token": refresh,
                "access_token": token,
                "expires_in": self.access_token_ttl,
                "token_use": "access_token",
                "hub_id": self.portal_id,
            },
        )

    def _app_of_refresh(self, refresh: str) -> str | None:
        return next(
            (cid for cid, (_, tokens) in self.oauth_clients.items() if refresh in tokens), None
        )

    def _revoke(self, refresh: str) -> httpx.Response:
        client_id = self._app_of_refresh(refresh)
        if client_id is None:
            return self._error(404, "OBJECT_NOT_FOUND", "refresh token not found")
        self.oauth_clients[client_id][1].discard(refresh)  # its access tokens live on
        return httpx.Response(204)

    def _info(self, client_id: str, refresh: str, kind: str) -> dict[str, Any]:
        return {
            "token_type": kind,
            "hub_id": self.portal_id,
            "hub_domain": f"local-{self.portal_id}.hubspot.example",
            "app_id": abs(hash(client_id)) % 10_000_000,
            "client_id": client_id,
            "scopes": list(self.token_scopes.get(refresh, ("oauth",))),
            "user": "integration@local.example.com",
            "user_id": 9_000_000,
        }

    def _access_token_info(self, token: str) -> httpx.Response:
        expiry = self.access_tokens.get(token)
        owner = self.token_owner.get(token)
        if expiry is None or owner is None or expiry <= self.clock():
            return self._error(404, "OBJECT_NOT_FOUND", "access token not found or expired")
        body = self._info(owner[0], owner[1], "access")
        body.update(token=token, expires_in=int(expiry - self.clock()))
        return self._json(200, body)

    def _refresh_token_info(self, refresh: str) -> httpx.Response:
        client_id = self._app_of_refresh(refresh)
        if client_id is None:
            return self._error(404, "OBJECT_NOT_FOUND", "refresh token not found")
        body = self._info(client_id, refresh, "refresh")
        body["token"] = refresh
        return self._json(200, body)


def _form(request: httpx.Request) -> Mapping[str, str]:
    return {k: v[-1] for k, v in parse_qs(request.content.decode("utf-8")).items()}
