"""The local HubSpot on loopback (the shared :class:`~signals_crm.testing.LoopbackServer`).

``LocalHubSpotServer`` is the older name of :class:`LoopbackServer` (``with
LoopbackServer(portal) as server: server.url``). :func:`serve` runs one until interrupted (the
``signals-crm sandbox hubspot --port N`` command).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from signals_crm.testing._loopback import LoopbackServer
from signals_crm.testing.hubspot._portal import LocalHubSpot

__all__ = ["LocalHubSpotServer", "demo_portal", "serve"]

LocalHubSpotServer = LoopbackServer
"""The older name of :class:`~signals_crm.testing.LoopbackServer`."""


def demo_portal() -> LocalHubSpot:
    """A portal seeded for trying things out: one token, two owners, one static list."""
    portal = LocalHubSpot(tokens=("local-hubspot-token",))
    door = portal.backdoor
    door.seed_user(email="sally@example.com", name="Sally Seller")
    door.seed_user(email="bob@example.com", name="Bob Router")
    door.seed_campaign(name="Signals chat leads")
    return portal


def serve(
    port: int = 8766,
    *,
    host: str = "127.0.0.1",
    portal: LocalHubSpot | None = None,
    announce: Callable[[str], None] = print,
    stop: threading.Event | None = None,
    tls: bool = False,
    ca_dir: str | Path | None = None,
) -> None:
    """Serve a local HubSpot on ``host:port`` until interrupted (Ctrl-C) or ``stop`` is set.

    Without ``portal``, a demo portal is served: bearer token ``local-hubspot-token``, two
    owners and one static list; ``announce`` receives the URL, the token and, with
    ``tls=True``, where the CA bundle is.
    """
    server = LoopbackServer(
        portal if portal is not None else demo_portal(),
        host=host,
        port=port,
        tls=tls,
        ca_dir=ca_dir,
    )
    announce(f"Local HubSpot listening on {server.url} (bearer token: local-hubspot-token)")
    if server.ca_file is not None:
        announce(f"  CA bundle: {server.ca_file}")
    server.serve_forever(stop)
    announce("Local HubSpot stopped")
