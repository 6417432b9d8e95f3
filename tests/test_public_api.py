"""The public API exports what users catch or receive, and the manual-sync pair has clear names
(the old ones still work, with a DeprecationWarning)."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio
import pytest

import signals_crm
from signals_crm import (
    AsyncIntegration,
    Conversation,
    Integration,
    IntegrationSettings,
    OutcomeKind,
    Visitor,
)
from signals_crm.adapters import TokenSet, TokenStore
from signals_crm.connect import Connection, HubSpotConnect, SalesforceConnect
from signals_crm.core.users import UserMappingProposal
from signals_crm.exceptions import (
    InvalidTransitionError,
    LeaseLostError,
    LedgerError,
    WebhookError,
)
from signals_crm.ledger import MemoryLedger
from signals_crm.ledger.base import DueSync
from signals_crm.testing import InMemoryCRM
from signals_crm.webhook import WebhookEvent, parse_webhook_event

CLOSED = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
CONFIG = IntegrationSettings.from_dict({}).to_config()  # with the placeholders a Lead needs


def test_what_users_catch_or_receive_is_exported() -> None:
    """Errors a host catches and values it receives are importable from signals_crm itself."""
    exported = {
        "LedgerError": LedgerError,
        "InvalidTransitionError": InvalidTransitionError,
        "LeaseLostError": LeaseLostError,
        "WebhookError": WebhookError,
        "DueSync": DueSync,
        "UserMappingProposal": UserMappingProposal,
        "WebhookEvent": WebhookEvent,
        "parse_webhook_event": parse_webhook_event,
        "SalesforceConnect": SalesforceConnect,
        "HubSpotConnect": HubSpotConnect,
        "Connection": Connection,
        "TokenSet": TokenSet,
        "TokenStore": TokenStore,
    }
    for name, value in exported.items():
        assert getattr(signals_crm, name) is value
        assert name in signals_crm.__all__
    assert signals_crm.__all__ == sorted(signals_crm.__all__)


def conversation() -> Conversation:
    return Conversation(id="c-1", closed_at=CLOSED, visitor=Visitor(email="ana@x.test"))


def test_manual_sync_and_its_deprecated_old_name() -> None:
    """manual_sync syncs one visitor; sync_manually does the same and warns."""
    crm = InMemoryCRM()
    sync = Integration(crm, CONFIG, ledger=MemoryLedger(), sleep=lambda _: None)
    first = sync.manual_sync(conversation())
    assert first.kind is OutcomeKind.CREATED
    with pytest.warns(DeprecationWarning, match="sync_manually is deprecated: use manual_sync"):
        again = sync.sync_manually(conversation())
    assert again.person_id == first.person_id  # the same visitor: no second Lead
    assert len(crm.people()) == 1


@pytest.mark.anyio
async def test_amanual_sync_and_its_deprecated_old_name() -> None:
    """AsyncIntegration.amanual_sync follows the a-prefix rule; async_manually warns."""
    crm = InMemoryCRM()

    async def no_sleep(_: float) -> None:
        await anyio.lowlevel.checkpoint()

    sync = AsyncIntegration(crm, CONFIG, ledger=MemoryLedger(), sleep=no_sleep)
    first = await sync.amanual_sync(conversation())
    assert first.kind is OutcomeKind.CREATED
    with pytest.warns(DeprecationWarning, match="async_manually is deprecated: use amanual_sync"):
        again = await sync.async_manually(conversation())
    assert again.person_id == first.person_id
    assert len(crm.people()) == 1
