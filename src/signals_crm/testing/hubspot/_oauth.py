"""The OAuth token endpoint of the local portal."""

from __future__ import annotations

from urllib.parse import parse_qs

import httpx

from signals_crm.testing.hubspot._core import PortalCore

__all__ = ["OAuth"]


class OAuth(PortalCore):
    """``POST /oauth/v1/token`` (and the v3 / date-based spellings)."""

    def _oauth_token(self, request: httpx.Request) -> httpx.Response:
        self.token_requests += 1
        form = {k: v[-1] for k, v in parse_qs(request.content.decode("utf-8")).items()}
        if form.get("grant_type") != "refresh_token":
            return self._json(
                400,
                {
                    "status": "BAD_GRANT_TYPE",
                    "message": "unsupported grant_type",
                    "correlationId": self._correlation(),
                },
            )
        client = self.oauth_clients.get(form.get("client_id", ""))
        if client is None or client[0] != form.get("client_secret"):
            return self._json(
                400,
                {
                    "status": "BAD_CLIENT_ID",
                    "message": "missing or unknown client id",
                    "correlationId": self._correlation(),
                },
            )
        if form.get("refresh_token") not in client[1]:
            return self._json(
                400,
                {
                    "status": "BAD_REFRESH_TOKEN",
                    "message": "missing or unknown refresh token",
                    "correlationId": self._correlation(),
                },
            )
        token = self.issue_access_token()
        return self._json(
            200,
            {
                "token_type": "bearer",
                "refresh_token": form["refresh_token"],
                "access_token": token,
                "expires_in": self.access_token_ttl,
                "token_use": "access_token",
                "hub_id": self.portal_id,
            },
        )
