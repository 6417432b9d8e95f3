"""Type-checked, never run: the public API used as a host application would use it.

``mypy --strict`` over this file fails when a public signature changes incompatibly.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from signals_crm import (
    AsyncCRMAdapter,
    AsyncIntegration,
    Company,
    Conversation,
    ConversationOutcome,
    Criteria,
    Explanation,
    Integration,
    IntegrationSettings,
    OutcomeKind,
    OwnershipResult,
    Plan,
    Planner,
    SettingsCatalog,
    SignalsUser,
    SyncConfig,
    SyncReport,
    Visitor,
    asettings_catalog,
    json_schema,
    parse_webhook,
    plan_sync,
    settings_catalog,
)
from signals_crm.core.plan import SyncMode
from signals_crm.ledger import MemoryLedger
from signals_crm.testing import InMemoryCRM
from signals_crm.testing.static import run_with_state


def host_flow(payload: bytes) -> None:
    settings = IntegrationSettings.from_dict(
        {"criteria": "two_stars", "synchronization_delay": "15m"}
    )
    config: SyncConfig = settings.to_config()
    assert config.criteria is Criteria.TWO_STARS
    crm = InMemoryCRM()
    integration = Integration(crm, settings, ledger=MemoryLedger())
    conversation: Conversation = parse_webhook(
        payload,
        conversation_id="c-1",
        lead_score=3,
        closed_at=datetime(2026, 11, 1, tzinfo=UTC),
    )
    integration.conversation_closed(conversation)
    report: SyncReport = integration.run_due(datetime.now(UTC) + timedelta(hours=1))
    outcome: ConversationOutcome = report.outcome("c-1")
    created: bool = outcome.kind is OutcomeKind.CREATED
    why: Explanation = integration.explain("c-1")
    text: str = why.as_text()
    manual = integration.manual_sync(
        Conversation(id="c-2", closed_at=datetime.now(UTC), visitor=Visitor(email="a@b.test"))
    )
    owner: OwnershipResult = integration.account_owner(Company(domain="acme.test"))
    dry = integration.dry_run([conversation], mode=SyncMode.MANUAL)
    print(created, text, manual.kind, owner.signals_user, dry.as_text())


def planning_without_an_engine(conversations: list[Conversation], config: SyncConfig) -> None:
    planner = Planner(config, InMemoryCRM().capabilities)
    for batch in (conversations[:100], conversations[100:]):
        plans: tuple[Plan, ...] = run_with_state(planner.plan(batch, now=datetime.now(UTC)))
        one_shot = run_with_state(
            plan_sync(batch, config, planner.capabilities, now=datetime.now(UTC))
        )
        assert plans == one_shot


async def async_host_flow(conversation: Conversation) -> None:
    """The async engine over the in-memory CRM's async side, awaited as a host would."""
    crm: AsyncCRMAdapter = InMemoryCRM()
    integration = AsyncIntegration(crm, SyncConfig(), ledger=MemoryLedger())
    integration.conversation_closed(conversation)
    report: SyncReport = await integration.arun_due(datetime.now(UTC))
    why: Explanation = await integration.aexplain(conversation.id)
    print(report.as_text(), why.as_text())


def settings_page_flow() -> None:
    """A settings page: the catalog, a proposal into settings, the JSON forms and their schemas."""
    crm = InMemoryCRM()
    catalog: SettingsCatalog = settings_catalog(crm, signals_users=[SignalsUser(email="a@b.test")])
    page: dict[str, Any] = catalog.as_dict()
    names: list[str] = [f.name for f in catalog.push_tab.targets_for("contact.first_name")]
    settings = IntegrationSettings.from_dict({})
    if catalog.user_mapping is not None:
        settings = settings.with_user_mapping_proposal(catalog.user_mapping)
    integration = Integration(crm, settings)
    report: dict[str, Any] = integration.run_due().as_dict()
    schema: dict[str, Any] = json_schema("sync_report")
    print(page, names, report, schema)


async def async_settings_page(crm: AsyncCRMAdapter) -> SettingsCatalog:
    return await asettings_catalog(crm)
