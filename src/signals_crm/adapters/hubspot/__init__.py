"""The built-in HubSpot adapter (contacts, tasks/notes, static lists, companies, owners).

See :mod:`signals_crm.adapters.hubspot.adapter` for the rules it follows and ``docs/hubspot.md``
for setup.
"""

from signals_crm.adapters._tokens import AsyncTokenStore, TokenSet, TokenStore
from signals_crm.adapters.hubspot._auth import (
    HubSpotAuth,
    OAuthToken,
    RefreshTokenFlow,
    StaticToken,
    TokenSource,
)
from signals_crm.adapters.hubspot._flows import HubSpotFlows, HubSpotOptions
from signals_crm.adapters.hubspot._limiter import FileWindow, LocalWindow, RateLimiter, RateWindow
from signals_crm.adapters.hubspot._requests import (
    ASSOCIATION_TYPE_IDS,
    HubSpotAPI,
    marker_token,
    parse_marker,
)
from signals_crm.adapters.hubspot._responses import RateLimitUsage
from signals_crm.adapters.hubspot.adapter import (
    CAPABILITIES,
    HUBSPOT_CAPABILITIES,
    AsyncHubSpotAdapter,
    HubSpotAdapter,
    membership_id,
    normalize_domain,
)

__all__ = [
    "ASSOCIATION_TYPE_IDS",
    "CAPABILITIES",
    "HUBSPOT_CAPABILITIES",
    "AsyncHubSpotAdapter",
    "AsyncTokenStore",
    "FileWindow",
    "HubSpotAPI",
    "HubSpotAdapter",
    "HubSpotAuth",
    "HubSpotFlows",
    "HubSpotOptions",
    "LocalWindow",
    "OAuthToken",
    "RateLimitUsage",
    "RateLimiter",
    "RateWindow",
    "RefreshTokenFlow",
    "StaticToken",
    "TokenSet",
    "TokenSource",
    "TokenStore",
    "marker_token",
    "membership_id",
    "normalize_domain",
    "parse_marker",
]
