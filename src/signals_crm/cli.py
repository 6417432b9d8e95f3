"""``signals-crm``: the command line (also ``python -m signals_crm``).

Commands:

- ``demo``: the whole integration against a local Salesforce, in-process, with a SQLite ledger
  in a temporary folder: no credentials, no network.
- ``validate SETTINGS``: load a settings file (TOML or JSON) and list every problem.
- ``explain --settings S --ledger L ID``: why a conversation in the ledger was or was not
  synced (offline: reads the ledger, not the CRM).
- ``sync --settings S --ledger L --crm salesforce|hubspot ...``: run the due syncs once
  (the access token comes from ``SIGNALS_CRM_TOKEN``, never from the command line).
- ``sandbox salesforce|hubspot --port N``: serve a local CRM over HTTP on loopback.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from signals_crm.core.model import Company, Conversation, PersonKind
from signals_crm.engine import Integration
from signals_crm.exceptions import SignalsCRMError
from signals_crm.ledger.sqlite import SQLiteLedger
from signals_crm.settings import IntegrationSettings, load_settings
from signals_crm.webhook import parse_webhook

__all__ = ["main"]


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


def demo(out: Any = None) -> int:
    """Run the integration end to end against a local Salesforce and print what happened."""
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
        outcome = integration.sync_manually(manual)
        write(
            f"\nManual sync of c-1004 (below the criteria): {outcome.kind.value} "
            f"({outcome.person_id}), no tasks"
        )
        write("\nWhy was c-1005 not synced yet?")
        write(integration.explain("c-1005").as_text())
        write(f"\nLocal Salesforce API usage: {adapter.api_usage}")
        ledger.close()
    return 0


# ------------------------------------------------------------------------------------------------
# other commands


def _validate(args: argparse.Namespace) -> int:
    settings = load_settings(args.settings)
    config = settings.to_config()
    print(f"{args.settings}: valid")
    print(f"  enabled={config.enabled} criteria={config.criteria.value} delay={config.delay}")
    return 0


def _offline_integration(args: argparse.Namespace) -> Integration:
    from signals_crm.testing.memory import InMemoryCRM

    kind = PersonKind.CONTACT if args.crm == "hubspot" else PersonKind.LEAD
    return Integration(
        InMemoryCRM(person_kind=kind),
        load_settings(args.settings),
        ledger=SQLiteLedger(args.ledger),
    )


def _explain(args: argparse.Namespace) -> int:
    integration = _offline_integration(args)
    now = datetime.fromisoformat(args.now) if args.now else None
    print(integration.explain(args.conversation_id, now=now, lookup=False).as_text())
    return 0


def _sync(args: argparse.Namespace) -> int:
    token = os.environ.get("SIGNALS_CRM_TOKEN")
    if not token:
        print("set SIGNALS_CRM_TOKEN to the CRM access token", file=sys.stderr)
        return 2
    settings = load_settings(args.settings)
    with httpx.Client(timeout=httpx.Timeout(30.0, connect=10.0)) as http:
        adapter: Any
        if args.crm == "salesforce":
            from signals_crm.adapters.salesforce import SalesforceAdapter, StaticToken

            if not args.url:
                print("--url (the instance URL) is required for Salesforce", file=sys.stderr)
                return 2
            adapter = SalesforceAdapter(http, StaticToken(token, args.url))
        else:
            from signals_crm.adapters.hubspot import HubSpotAdapter, HubSpotAPI

            api = HubSpotAPI(base_url=args.url) if args.url else HubSpotAPI()
            adapter = HubSpotAdapter(http, token, api=api)
        with SQLiteLedger(args.ledger) as ledger:
            report = Integration(adapter, settings, ledger=ledger).run_due()
    print(report.as_text())
    return 0


def _sandbox(args: argparse.Namespace) -> int:
    if args.crm == "salesforce":
        from signals_crm.testing.salesforce import serve as serve_salesforce

        serve_salesforce(args.port, host=args.host, announce=print)
    else:
        from signals_crm.testing.hubspot import serve as serve_hubspot

        serve_hubspot(args.port, host=args.host, announce=print)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="signals-crm", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="run the integration against a local Salesforce")
    validate = sub.add_parser("validate", help="check a settings file")
    validate.add_argument("settings", type=Path)
    explain = sub.add_parser("explain", help="why a conversation was or was not synced")
    explain.add_argument("conversation_id")
    explain.add_argument("--settings", type=Path, required=True)
    explain.add_argument("--ledger", type=Path, required=True)
    explain.add_argument("--crm", choices=["salesforce", "hubspot"], default="salesforce")
    explain.add_argument("--now", help="ISO-8601 time to evaluate at (default: now)")
    sync = sub.add_parser("sync", help="run the due syncs once (token in SIGNALS_CRM_TOKEN)")
    sync.add_argument("--settings", type=Path, required=True)
    sync.add_argument("--ledger", type=Path, required=True)
    sync.add_argument("--crm", choices=["salesforce", "hubspot"], required=True)
    sync.add_argument("--url", help="Salesforce instance URL, or a HubSpot base URL")
    sandbox = sub.add_parser("sandbox", help="serve a local CRM on loopback")
    sandbox.add_argument("crm", choices=["salesforce", "hubspot"])
    sandbox.add_argument("--port", type=int, default=8765)
    sandbox.add_argument("--host", default="127.0.0.1")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``signals-crm``; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            return demo()
        if args.command == "validate":
            return _validate(args)
        if args.command == "explain":
            return _explain(args)
        if args.command == "sync":
            return _sync(args)
        return _sandbox(args)
    except SignalsCRMError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
