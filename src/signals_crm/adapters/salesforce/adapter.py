"""The Salesforce adapters: :class:`SalesforceAdapter` (over ``httpx.Client``) and
:class:`AsyncSalesforceAdapter` (over ``httpx.AsyncClient``).

Both are :class:`~signals_crm.adapters.salesforce._flows.SalesforceFlows` (every request built,
every answer parsed, once) driven by a shell of :mod:`signals_crm.adapters._shell` (the IO);
the session is the ``httpx.Auth`` given as ``auth`` (:mod:`._auth`). Options are those of
:class:`~signals_crm.adapters.salesforce._flows.SalesforceOptions`.
"""

from __future__ import annotations

from typing import Unpack

import httpx

from signals_crm.adapters._shell import AsyncAdapter, BlockingAdapter
from signals_crm.adapters.salesforce._auth import SalesforceAuth
from signals_crm.adapters.salesforce._flows import (
    SALESFORCE_CAPABILITIES,
    SalesforceFlows,
    SalesforceOptions,
)

__all__ = ["SALESFORCE_CAPABILITIES", "AsyncSalesforceAdapter", "SalesforceAdapter"]


class SalesforceAdapter(SalesforceFlows, BlockingAdapter):
    """A blocking Salesforce adapter over an injected ``httpx.Client``.

    ``auth`` is a :class:`StaticToken`, :class:`RefreshTokenFlow`, :class:`JWTBearerFlow` or
    :class:`ClientCredentialsFlow`. A client without a timeout gets
    :data:`~signals_crm.adapters._shell.DEFAULT_TIMEOUT`.
    """

    def __init__(
        self, client: httpx.Client, auth: SalesforceAuth, **options: Unpack[SalesforceOptions]
    ) -> None:
        super().__init__(auth, **options)
        self._client = client


class AsyncSalesforceAdapter(SalesforceFlows, AsyncAdapter):
    """:class:`SalesforceAdapter` over an injected ``httpx.AsyncClient``."""

    def __init__(
        self, client: httpx.AsyncClient, auth: SalesforceAuth, **options: Unpack[SalesforceOptions]
    ) -> None:
        super().__init__(auth, **options)
        self._client = client
