"""Fault injection for the local portal: scheduled faults for matching requests, random ones.

To add a fault kind: give :class:`FaultPlan` a new ``kind``, a scheduling method on
:class:`Faults`, and its answer in ``_Gate._fault_answer`` (``_gate.py``).
"""

from __future__ import annotations

from typing import Literal

import attrs

__all__ = ["HTML_GATEWAY", "FaultPlan", "Faults"]

HTML_GATEWAY = (
    "<html><head><title>{status} Bad Gateway</title></head><body><center><h1>{status} Bad "
    "Gateway</h1></center><hr><center>cloudflare</center></body></html>"
)


@attrs.define
class FaultPlan:
    kind: Literal["status", "html", "rate_limit", "drop", "drop_before"]
    status: int = 503
    path: str | None = None
    count: int = 1
    policy: str = "TEN_SECONDLY_ROLLING"


class Faults:
    """Fault injection: faults scheduled for the next matching requests, and random ones.

    ``latency`` (seconds, through the portal's injected ``sleep``) applies to every request;
    ``error_rate`` and ``drop_rate`` are probabilities drawn from the portal's seeded random
    generator; ``expire_tokens_after`` expires every OAuth access token after that many
    authenticated calls; ``expire_rate`` is the chance that an authenticated call finds every
    OAuth access token expired (a token that ran out early).

    ``late_commit_rate`` (for the served portal) holds a write request ``late_commit_hold``
    seconds before the portal processes it, so a client whose read timeout is shorter gives up
    and the write commits after it. HubSpot publishes no server-side request time limit (its
    *Error handling* page, https://developers.hubspot.com/docs/api-reference/error-handling,
    lists the error answers only), so a request the client abandoned may still be processed.
    Reads (GET, search, batch read) are never held.
    """

    def __init__(self) -> None:
        self._scheduled: list[FaultPlan] = []
        self.latency = 0.0
        self.error_rate = 0.0
        self.drop_rate = 0.0
        self.expire_tokens_after: int | None = None
        self.expire_rate = 0.0
        self.late_commit_rate = 0.0
        self.late_commit_hold = 30.0

    def fail_next(self, status: int = 503, *, count: int = 1, path: str | None = None) -> None:
        """Answer the next ``count`` requests (whose path contains ``path``) with ``status``."""
        self._scheduled.append(FaultPlan("status", status=status, path=path, count=count))

    def gateway_error_next(
        self, status: int = 502, *, count: int = 1, path: str | None = None
    ) -> None:
        """Answer with an HTML gateway page (as Cloudflare does), not JSON."""
        self._scheduled.append(FaultPlan("html", status=status, path=path, count=count))

    def lock_next(self, *, count: int = 1, path: str | None = None) -> None:
        """Answer ``423 Locked`` (high-volume upserts)."""
        self._scheduled.append(FaultPlan("status", status=423, path=path, count=count))

    def rate_limit_next(
        self,
        policy: str = "TEN_SECONDLY_ROLLING",
        *,
        count: int = 1,
        path: str | None = None,
    ) -> None:
        """Answer 429 with ``policyName`` (``TEN_SECONDLY_ROLLING``, ``SECONDLY``, ``DAILY``)."""
        self._scheduled.append(
            FaultPlan("rate_limit", status=429, path=path, count=count, policy=policy)
        )

    def drop_next(
        self, *, count: int = 1, path: str | None = None, after_commit: bool = True
    ) -> None:
        """Close the connection without answering; ``after_commit``: the request took effect."""
        kind: Literal["drop", "drop_before"] = "drop" if after_commit else "drop_before"
        self._scheduled.append(FaultPlan(kind, path=path, count=count))

    def take(self, path: str) -> FaultPlan | None:
        """The scheduled fault for a request to ``path``, if any (consumes one use)."""
        for fault in self._scheduled:
            if fault.path is None or fault.path in path:
                fault.count -= 1
                if fault.count <= 0:
                    self._scheduled.remove(fault)
                return fault
        return None
