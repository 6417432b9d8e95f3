"""What every request passes before its endpoint: faults, authentication, rate limits."""

from __future__ import annotations

import httpx

from signals_crm.testing._loopback import ConnectionDropped
from signals_crm.testing.hubspot._core import PortalCore, Problem
from signals_crm.testing.hubspot._faults import HTML_GATEWAY, FaultPlan

__all__ = ["Gate"]


class Gate(PortalCore):
    """Faults, bearer-token authentication, the burst/daily/search windows."""

    def _fault_answer(self, fault: FaultPlan) -> httpx.Response:
        if fault.kind == "drop_before":
            raise ConnectionDropped
        if fault.kind == "html":
            page = HTML_GATEWAY.format(status=fault.status)
            return httpx.Response(
                fault.status, content=page.encode(), headers={"content-type": "text/html"}
            )
        if fault.kind == "rate_limit":
            return self._rate_limited(fault.policy)
        if fault.status == 423:
            return self._error(423, "LOCKED", "Resource is locked; retry after 2 seconds")
        return self._error(fault.status, None, "internal error")

    def _rate_limited(self, policy: str) -> httpx.Response:
        self.rate_limited += 1
        messages = {
            "DAILY": "You have reached your daily limit.",
            "SECONDLY": "You have reached your secondly limit.",
            "TEN_SECONDLY_ROLLING": "You have reached your ten_secondly_rolling limit.",
        }
        body = {
            "status": "error",
            "message": messages.get(policy, "You have reached your limit."),
            "errorType": "RATE_LIMIT",
            "correlationId": self._correlation(),
            "policyName": policy,
            "groupName": "publicapi:local",
        }
        headers: dict[str, str] = {}
        if self.send_retry_after:
            headers["Retry-After"] = "1" if policy == "SECONDLY" else "10"
        return self._json(429, body, headers)

    def _authenticate(self, request: httpx.Request) -> bool:
        """Check the bearer token; returns whether it is static (raises a 401 otherwise)."""
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if token in self.static_tokens:
            self.authenticated_calls += 1
            return True
        expiry = self.access_tokens.get(token)
        if expiry is None:
            raise Problem(
                self._error(
                    401,
                    "INVALID_AUTHENTICATION",
                    "Authentication credentials not found. This API supports OAuth 2.0 "
                    "authentication and you can find more details at "
                    "https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                )
            )
        now = self.clock()
        if now >= expiry:
            ago = int(now - expiry) + 1
            raise Problem(
                self._error(
                    401,
                    "EXPIRED_AUTHENTICATION",
                    f"The OAuth token used to make this call expired {ago} second(s) ago.",
                )
            )
        self.authenticated_calls += 1
        if self.faults.expire_rate and self.rng.random() < self.faults.expire_rate:
            self.expire_access_tokens()
            raise Problem(
                self._error(
                    401,
                    "EXPIRED_AUTHENTICATION",
                    "The OAuth token used to make this call expired 1 second(s) ago.",
                )
            )
        limit = self.faults.expire_tokens_after
        if limit is not None and self.authenticated_calls >= limit:
            self.faults.expire_tokens_after = None
            self.expire_access_tokens()
        return False

    def _limit_headers(self, static: bool) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.burst_limit is not None:
            headers["X-HubSpot-RateLimit-Interval-Milliseconds"] = str(
                int(self.burst_interval * 1000)
            )
            headers["X-HubSpot-RateLimit-Max"] = str(self.burst_limit)
            headers["X-HubSpot-RateLimit-Remaining"] = str(
                max(self.burst_limit - len(self._burst), 0)
            )
            headers["X-HubSpot-RateLimit-Secondly"] = str(max(self.burst_limit // 10, 1))
            headers["X-HubSpot-RateLimit-Secondly-Remaining"] = headers[
                "X-HubSpot-RateLimit-Secondly"
            ]
        if static and self.daily_limit is not None:
            headers["X-HubSpot-RateLimit-Daily"] = str(self.daily_limit)
            headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(
                max(self.daily_limit - self.daily_used, 0)
            )
        return headers

    def _count(self, search: bool) -> None:
        """Count one call against the windows; raise a 429 when a window is full."""
        now = self.clock()
        if search:
            if self.search_per_second is None:
                return
            while self._search and self._search[0] <= now - 1.0:
                self._search.popleft()
            if len(self._search) >= self.search_per_second:
                raise Problem(self._rate_limited("SECONDLY"))
            self._search.append(now)
            return
        if self.daily_limit is not None and self.daily_used >= self.daily_limit:
            raise Problem(self._rate_limited("DAILY"))
        if self.burst_limit is not None:
            while self._burst and self._burst[0] <= now - self.burst_interval:
                self._burst.popleft()
            if len(self._burst) >= self.burst_limit:
                raise Problem(self._rate_limited("TEN_SECONDLY_ROLLING"))
            self._burst.append(now)
        self.daily_used += 1

    def _missing_scopes(self, kind: str, method: str) -> httpx.Response:
        scope = f"crm.objects.{kind}.{'read' if method == 'GET' else 'write'}"
        return self._error(
            403,
            "MISSING_SCOPES",
            "This app hasn't been granted all required scopes to make this call. Read more "
            "about required scopes here: https://developers.hubspot.com/scopes.",
            errors=[
                {
                    "message": "One or more of the following scopes are required.",
                    "context": {"requiredScopes": [scope]},
                }
            ],
            links={"scopes": "https://developers.hubspot.com/scopes"},
        )
