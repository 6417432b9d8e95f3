"""A faithful local HubSpot: in-process (``httpx.MockTransport``) or over loopback HTTP.

>>> import httpx
>>> from signals_crm.adapters.hubspot import HubSpotAdapter, HubSpotAPI
>>> portal = LocalHubSpot()
>>> client = httpx.Client(transport=portal.transport())
>>> adapter = HubSpotAdapter(client, "local-hubspot-token",
...                          api=HubSpotAPI(base_url="https://api.hubapi.com"))
>>> adapter.find_people(["nobody@example.com"])
[()]
>>> client.close()
"""

from signals_crm.testing._loopback import ConnectionDropped, LoopbackServer
from signals_crm.testing.hubspot._portal import Faults, HubSpotBackdoor, LocalHubSpot
from signals_crm.testing.hubspot._schema import OBJECT_TYPE_IDS, make_property
from signals_crm.testing.hubspot._server import LocalHubSpotServer, demo_portal, serve

__all__ = [
    "OBJECT_TYPE_IDS",
    "ConnectionDropped",
    "Faults",
    "HubSpotBackdoor",
    "LocalHubSpot",
    "LocalHubSpotServer",
    "LoopbackServer",
    "demo_portal",
    "make_property",
    "serve",
]
