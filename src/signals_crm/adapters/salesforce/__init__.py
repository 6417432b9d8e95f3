"""The Salesforce adapter: Leads, Tasks and CampaignMembers over the REST API.

``SalesforceAdapter`` (blocking, over ``httpx.Client``) and ``AsyncSalesforceAdapter`` (over
``httpx.AsyncClient``) share every request builder and response parser; see ``docs/salesforce.md``.
"""

from signals_crm.adapters._tokens import AsyncTokenStore, TokenSet, TokenStore
from signals_crm.adapters.salesforce._auth import (
    AuthFlow,
    ClientCredentialsFlow,
    JWTBearerFlow,
    RefreshTokenFlow,
    SalesforceAuth,
    StaticToken,
)
from signals_crm.adapters.salesforce._flows import SalesforceFlows, SalesforceOptions
from signals_crm.adapters.salesforce._requests import DEFAULT_API_VERSION, TaskMarker
from signals_crm.adapters.salesforce._responses import ApiUsage, AppApiUsage, SalesforceToken
from signals_crm.adapters.salesforce.adapter import (
    SALESFORCE_CAPABILITIES,
    AsyncSalesforceAdapter,
    SalesforceAdapter,
)

__all__ = [
    "DEFAULT_API_VERSION",
    "SALESFORCE_CAPABILITIES",
    "ApiUsage",
    "AppApiUsage",
    "AsyncSalesforceAdapter",
    "AsyncTokenStore",
    "AuthFlow",
    "ClientCredentialsFlow",
    "JWTBearerFlow",
    "RefreshTokenFlow",
    "SalesforceAdapter",
    "SalesforceAuth",
    "SalesforceFlows",
    "SalesforceOptions",
    "SalesforceToken",
    "StaticToken",
    "TaskMarker",
    "TokenSet",
    "TokenStore",
]
