"""CRM adapters: the Protocols every adapter implements, and the built-in ones."""

from signals_crm.adapters._cache import MetadataCache
from signals_crm.adapters._tokens import AsyncTokenStore, TokenSet, TokenStore
from signals_crm.adapters.base import AsyncCRMAdapter, CRMAdapter
from signals_crm.core.crm import Capabilities

__all__ = [
    "AsyncCRMAdapter",
    "AsyncTokenStore",
    "CRMAdapter",
    "Capabilities",
    "MetadataCache",
    "TokenSet",
    "TokenStore",
]
