"""``signals-crm demo``: the whole integration against a local Salesforce, in-process, with a
SQLite ledger in a temporary folder: no credentials, no network, no extra installed."""

from __future__ import annotations

import argparse
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from signals_crm.cli._common import ExitCode, Output, add_json_flag
from signals_crm.core.model import Company, Conversation, PersonKind
from signals_crm.engine import Integration
from signals_crm.ledger.sqlite import SQLiteLedger
from signals_crm.settings import IntegrationSettings
from signals_crm.webhook import parse_webhook

__all__ = ["demo", "register"]


# ------------------------------------------------------------------------------------------------
# demo

_NOW = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)


def _payload(email: str, first: str, last: str, *, meeting: bool, routed: str) -> dict[str, Any]:
    chat: dict[str, Any] = {
        "transcript": f"Visitor: Hi, I'm {first}. Do you integrate with Salesforce?\n"
        "Ava (bot): Yes! Want a demo?\nVisitor: Sure.",
        "user_emails": {
            "last_routed": routed,
            "last_routed_user_id": 5512,
            "closed_conversation": "marco.bell@vendor.test",
            "closed_conversation_user_id": 5520,
        },
        "referrer": "https://www.bing.com/",
        "source_type": "Organic Search",
        "traffic_source": "bing",
        "traffic_campaign": "fall-webinar-2026",
    }
    if meeting:
        chat["meeting_event"] = {
            "id": 48213,
            "name": "Product demo (30 min)",
            "agent_name": "Priya Nair",
            "date": "2026-11-24",
            "duration_minutes": 30,
            "lead_time_minutes": 60,
        }
        chat["user_emails"]["meeting_scheduled"] = "priya.nair@vendor.test"
        chat["user_emails"]["meeting_scheduled_user_id"] = 5512
    return {
        "event": "conversation-closed",
        "chat": chat,
        "contact": {"first_name": first, "last_name": last, "email": email, "phone": "+1 555 0100"},
    }


def _demo_settings(priya: str, marco: str, campaign: str) -> IntegrationSettings:
    return IntegrationSettings.from_dict(
        {
            "enabled": True,
            "criteria": "two_stars",
            "synchronization_delay": "30m",
            "task_events": ["chat_transcript", "meeting_booked"],
            "campaign_id": campaign,
            "lead_owner_sources": ["meeting_scheduler", "last_routed", "closer"],
            "field_mappings": {
                "lead": [
                    {"source": "contact.first_name", "target": "FirstName", "overwrite": True},
                    {"source": "contact.last_name", "target": "LastName"},
                    {"source": "contact.phone", "target": "Phone", "overwrite": True},
                    {"source": "company.name", "target": "Company"},
                ]
            },
            "user_mapping": [
                {"signals_email": "priya.nair@vendor.test", "crm_user_id": priya},
                {"signals_email": "marco.bell@vendor.test", "crm_user_id": marco},
            ],
        }
    )


def demo(out: Any = None) -> dict[str, Any]:
    """Run the integration end to end against a local Salesforce and print what happened.

    Returns a summary (outcome per conversation, the manual sync, the API usage) for ``--json``.
    """
    from signals_crm.adapters.salesforce import SalesforceAdapter, StaticToken
    from signals_crm.testing.salesforce import LocalSalesforce, SalesforceBackdoor

    write = out or print
    org = LocalSalesforce()
    door = SalesforceBackdoor(org)
    priya = door.seed_user(email="priya.nair@vendor.test", name="Priya Nair")
    marco = door.seed_user(email="marco.bell@vendor.test", name="Marco Bell")
    campaign = door.seed_campaign(name="Signals chat leads")
    lead = door.seed_person(
        kind=PersonKind.LEAD,
        email="sam.lee@globex.test",
        fields={"FirstName": "Sammy", "LastName": "Lee", "Company": "Globex"},
    )
    contact = door.seed_person(
        kind=PersonKind.CONTACT,
        email="ana.ruiz@initech.test",
        fields={"FirstName": "Ana", "LastName": "Ruiz"},
    )
    closed = _NOW - timedelta(hours=2)
    samples = [
        (
            "c-1001",
            _payload(
                "lena.okafor@brightfield.test",
                "Lena",
                "Okafor",
                meeting=True,
                routed="priya.nair@vendor.test",
            ),
            3,
            closed,
            "Brightfield Labs",
        ),
        (
            "c-1002",
            _payload(
                "Sam.Lee@globex.test ", "Sam", "Lee", meeting=False, routed="marco.bell@vendor.test"
            ),
            2,
            closed,
            "Globex",
        ),
        (
            "c-1003",
            _payload(
                "ana.ruiz@initech.test",
                "Ana",
                "Ruiz",
                meeting=True,
                routed="marco.bell@vendor.test",
            ),
            3,
            closed,
            "Initech",
        ),
        (
            "c-1004",
            _payload(
                "kim@umbrella.test", "Kim", "Park", meeting=False, routed="marco.bell@vendor.test"
            ),
            1,
            closed,
            "Umbrella",
        ),
        (
            "c-1005",
            _payload(
                "raj@hooli.test", "Raj", "Patel", meeting=False, routed="priya.nair@vendor.test"
            ),
            3,
            _NOW - timedelta(minutes=5),
            "Hooli",
        ),
    ]
    conversations: list[Conversation] = [
        parse_webhook(
            payload,
            conversation_id=cid,
            lead_score=score,
            closed_at=at,
            company=Company(name=company),
        )
        for cid, payload, score, at, company in samples
    ]
    with tempfile.TemporaryDirectory() as folder, httpx.Client(transport=org.transport()) as http:
        adapter = SalesforceAdapter(http, StaticToken(org.issue_token(), org.instance_url))
        ledger = SQLiteLedger(Path(folder) / "ledger.sqlite3")
        integration = Integration(
            adapter, _demo_settings(priya, marco, campaign), ledger=ledger, clock=lambda: _NOW
        )
        write("signals_crm demo: a local Salesforce, a SQLite ledger, five closed chats")
        write(
            f"  existing Lead {lead} (sam.lee@globex.test), existing Contact {contact} "
            "(ana.ruiz@initech.test)\n"
        )
        for conversation in conversations:
            integration.conversation_closed(conversation)
        report = integration.run_due(_NOW)
        write("Due syncs:")
        write(report.as_text())
        manual = parse_webhook(
            _payload(
                "kim@umbrella.test", "Kim", "Park", meeting=False, routed="marco.bell@vendor.test"
            ),
            conversation_id="c-1004",
            lead_score=1,
            closed_at=closed,
        )
        outcome = integration.manual_sync(manual)
        write(
            f"\nManual sync of c-1004 (below the criteria): {outcome.kind.value} "
            f"({outcome.person_id}), no tasks"
        )
        write("\nWhy was c-1005 not synced yet?")
        write(integration.explain("c-1005").as_text())
        write(f"\nLocal Salesforce API usage: {adapter.api_usage}")
        ledger.close()
    return {
        "outcomes": {o.conversation_id: o.kind.value for o in report.outcomes},
        "manual_sync": {"c-1004": outcome.kind.value, "person_id": outcome.person_id},
        "api_usage": str(adapter.api_usage),
    }


def _run(args: argparse.Namespace, out: Output) -> ExitCode:  # noqa: ARG001  # no options
    summary = demo(out.text)
    out.document(summary)
    return ExitCode.OK


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "demo",
        help="run the integration against a local Salesforce (no credentials, no network)",
        description=__doc__,
    )
    add_json_flag(parser)
    parser.set_defaults(handler=_run)
