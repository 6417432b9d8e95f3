"""The HubSpot adapters: :class:`HubSpotAdapter` (``httpx.Client``) and
:class:`AsyncHubSpotAdapter` (``httpx.AsyncClient``).

Both are :class:`~signals_crm.adapters.hubspot._flows.HubSpotFlows` (the rules, every request
built and every answer parsed, once) driven by a shell of :mod:`signals_crm.adapters._shell`
(the IO). ``auth`` is a :class:`~signals_crm.adapters.hubspot._auth.StaticToken`, a
:class:`~signals_crm.adapters.hubspot._auth.RefreshTokenFlow`, or a plain access token string;
options are those of :class:`~signals_crm.adapters.hubspot._flows.HubSpotOptions`.
"""

from __future__ import annotations

from typing import Unpack

import httpx

from signals_crm.adapters._shell import AsyncAdapter, BlockingAdapter
from signals_crm.adapters.hubspot._auth import HubSpotAuth
from signals_crm.adapters.hubspot._flows import (
    CAPABILITIES,
    HUBSPOT_CAPABILITIES,
    HubSpotFlows,
    HubSpotOptions,
    membership_id,
    normalize_domain,
)

__all__ = [
    "CAPABILITIES",
    "HUBSPOT_CAPABILITIES",
    "AsyncHubSpotAdapter",
    "HubSpotAdapter",
    "membership_id",
    "normalize_domain",
]

Credential = HubSpotAuth | str | None
"""What ``auth`` takes: a HubSpot auth, or an access token string (a static token)."""


class HubSpotAdapter(HubSpotFlows, BlockingAdapter):
    """A blocking HubSpot adapter over an injected ``httpx.Client``.

    A client without a timeout gets :data:`~signals_crm.adapters._shell.DEFAULT_TIMEOUT`.
    """

    def __init__(
        self, client: httpx.Client, auth: Credential = None, **options: Unpack[HubSpotOptions]
    ) -> None:
        super().__init__(auth, **options)
        self._client = client


class AsyncHubSpotAdapter(HubSpotFlows, AsyncAdapter):
    """:class:`HubSpotAdapter` over an injected ``httpx.AsyncClient``."""

    def __init__(
        self, client: httpx.AsyncClient, auth: Credential = None, **options: Unpack[HubSpotOptions]
    ) -> None:
        super().__init__(auth, **options)
        self._client = client
