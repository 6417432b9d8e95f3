"""Plan a few conversations with the pure core and print why each is (or is not) synced.

No CRM, no network: the CRM's answers come from a fixed list of records.

    python examples/plan_and_explain.py
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from signals_crm import IntegrationSettings
from signals_crm.core.explain import explain_plan
from signals_crm.core.model import (
    Conversation,
    ConversationStatus,
    Participants,
    PersonKind,
    PersonRecord,
    SignalsUser,
    Visitor,
)
from signals_crm.core.plan import plan_sync
from signals_crm.testing.static import SALESFORCE_LIKE, run_with_state

settings = IntegrationSettings.from_dict(
    {
        "criteria": "two_stars",
        "synchronization_delay": "30m",
        "field_mappings": {
            "lead": [
                {"source": "contact.first_name", "target": "FirstName", "overwrite": True},
                {"source": "contact.last_name", "target": "LastName"},
            ]
        },
        "user_mapping": [{"signals_email": "sally@vendor.test", "crm_user_id": "005000000000001"}],
    }
)
closed = datetime(2026, 11, 20, 15, tzinfo=UTC)
sally = SignalsUser(email="sally@vendor.test")
conversations = [
    Conversation(
        id="c-1",
        closed_at=closed,
        lead_score=3,
        visitor=Visitor(email="ada@example.com", first_name="Ada", last_name="Lovelace"),
        participants=Participants(meeting_scheduler=sally),
        transcript="Hi!",
    ),
    Conversation(
        id="c-2",
        closed_at=closed,
        lead_score=3,
        visitor=Visitor(email="BOB@acme.test", first_name="Bob"),
        transcript="Hello",
    ),
    Conversation(id="c-3", closed_at=closed, lead_score=1, visitor=Visitor(email="x@y.test")),
    Conversation(id="c-4", status=ConversationStatus.OPEN, visitor=Visitor(email="nope")),
]
crm_records = [
    PersonRecord(
        id="00Q000000000001",
        kind=PersonKind.LEAD,
        email="bob@acme.test",
        fields={"FirstName": "Robert"},
    ),
]

plans = run_with_state(
    plan_sync(
        conversations, settings.to_config(), SALESFORCE_LIKE, now=closed + timedelta(hours=1)
    ),
    people=crm_records,
)
for plan in plans:
    print(explain_plan(plan).as_text())
    print()
