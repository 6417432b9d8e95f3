"""signals_crm: chat visitors to CRM leads, tasks and campaigns, decided by a pure core.

The public API, in one place::

    from signals_crm import Integration, IntegrationSettings, parse_webhook

    settings = IntegrationSettings.from_toml(open("signals.toml").read())
    with httpx.Client(timeout=10) as http:
        crm = SalesforceAdapter(http, ...)            # signals_crm.adapters.salesforce
        integration = Integration(crm, settings, ledger="signals-ledger.sqlite3")
        integration.conversation_closed(parse_webhook(payload, conversation_id=..., ...))
        report = integration.run_due()

Everything here is stable; names starting with an underscore, and modules not re-exported
here, are internal.
"""

from signals_crm._flows import ConversationOutcome, OutcomeKind
from signals_crm.adapters._tokens import AsyncTokenStore, TokenSet, TokenStore
from signals_crm.adapters.base import AsyncCRMAdapter, CRMAdapter
from signals_crm.catalogs import SettingsCatalog, asettings_catalog, settings_catalog
from signals_crm.connect import Authorization, Connection, HubSpotConnect, SalesforceConnect
from signals_crm.core.config import ActivityTemplate, ContactPolicy, Criteria, SyncConfig
from signals_crm.core.crm import Capabilities
from signals_crm.core.explain import Explanation
from signals_crm.core.model import (
    ActivityKind,
    Company,
    Conversation,
    ConversationStatus,
    CustomActivity,
    Meeting,
    Participants,
    PersonKind,
    Role,
    SignalsUser,
    Traffic,
    Visitor,
)
from signals_crm.core.ownership import OwnershipPath, OwnershipResult
from signals_crm.core.plan import Plan, Planner, PlanOutcome, SyncMode, plan_sync
from signals_crm.core.retry import RetryPolicy
from signals_crm.core.routing import VisitorOwner, VisitorOwnerPath
from signals_crm.core.users import UserMappingProposal
from signals_crm.engine import AsyncIntegration, DryRun, Integration, SyncReport
from signals_crm.exceptions import (
    AdapterError,
    AuthenticationError,
    ClaimRefusedError,
    ConfigurationError,
    CRMAPIError,
    CRMServerError,
    DuplicateRecordError,
    IntegrationDisabledError,
    InvalidTransitionError,
    LeaseLostError,
    LedgerError,
    NotFoundError,
    PermissionDeniedError,
    PlanningError,
    Problem,
    RateLimitedError,
    SignalsCRMError,
    TransportError,
    WebhookError,
)
from signals_crm.ledger.base import DueSync
from signals_crm.schemas import json_schema
from signals_crm.settings import IntegrationSettings, load_settings
from signals_crm.webhook import WebhookEvent, parse_webhook, parse_webhook_event

__version__ = "0.1.0.dev0"

__all__ = [
    "ActivityKind",
    "ActivityTemplate",
    "AdapterError",
    "AsyncCRMAdapter",
    "AsyncIntegration",
    "AsyncTokenStore",
    "AuthenticationError",
    "Authorization",
    "CRMAPIError",
    "CRMAdapter",
    "CRMServerError",
    "Capabilities",
    "ClaimRefusedError",
    "Company",
    "ConfigurationError",
    "Connection",
    "ContactPolicy",
    "Conversation",
    "ConversationOutcome",
    "ConversationStatus",
    "Criteria",
    "CustomActivity",
    "DryRun",
    "DueSync",
    "DuplicateRecordError",
    "Explanation",
    "HubSpotConnect",
    "Integration",
    "IntegrationDisabledError",
    "IntegrationSettings",
    "InvalidTransitionError",
    "LeaseLostError",
    "LedgerError",
    "Meeting",
    "NotFoundError",
    "OutcomeKind",
    "OwnershipPath",
    "OwnershipResult",
    "Participants",
    "PermissionDeniedError",
    "PersonKind",
    "Plan",
    "PlanOutcome",
    "Planner",
    "PlanningError",
    "Problem",
    "RateLimitedError",
    "RetryPolicy",
    "Role",
    "SalesforceConnect",
    "SettingsCatalog",
    "SignalsCRMError",
    "SignalsUser",
    "SyncConfig",
    "SyncMode",
    "SyncReport",
    "TokenSet",
    "TokenStore",
    "Traffic",
    "TransportError",
    "UserMappingProposal",
    "Visitor",
    "VisitorOwner",
    "VisitorOwnerPath",
    "WebhookError",
    "WebhookEvent",
    "__version__",
    "asettings_catalog",
    "json_schema",
    "load_settings",
    "parse_webhook",
    "parse_webhook_event",
    "plan_sync",
    "settings_catalog",
]
