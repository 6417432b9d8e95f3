"""``explain`` and ``stats``: read-only looks at a ledger (never created, never changed)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from signals_crm.cli._common import ExitCode, Output, add_json_flag, aware_time
from signals_crm.cli._context import (
    CRMS,
    add_ledger_option,
    add_settings_option,
    browse,
    explain_offline,
    explanation_document,
    settings_of,
)
from signals_crm.ledger.browse import View

__all__ = ["add_integration_option", "register"]


def add_integration_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--integration",
        default="default",
        help="the integration (tenant) id within the ledger (default: 'default')",
    )


def _explain(args: argparse.Namespace, out: Output) -> ExitCode:
    settings = settings_of(args)
    with browse(args.ledger, args.integration) as browser:
        explanation = explain_offline(
            browser, settings, args.conversation_id, crm=args.crm, now=args.now
        )
    out.text(explanation.as_text())
    out.document(explanation_document(explanation))
    return ExitCode.OK


def _stats(args: argparse.Namespace, out: Output) -> ExitCode:
    now = args.now or datetime.now(UTC)
    with browse(args.ledger, args.integration) as browser:
        counts = browser.counts(now)
        commands = browser.command_counts()
        integrations = browser.integrations()
    out.table(
        f"Syncs of integration {args.integration!r} at {now.isoformat(timespec='seconds')}",
        ["view", "syncs"],
        [[view.value, counts[view]] for view in View],
    )
    out.table("Commands", ["state", "commands"], [[s.value, n] for s, n in commands.items()])
    if len(integrations) > 1:
        out.text("integrations in this ledger: " + ", ".join(integrations))
    out.document(
        {
            "integration": args.integration,
            "now": now,
            "syncs": {view.value: counts[view] for view in View},
            "commands": {s.value: n for s, n in commands.items()},
            "integrations": integrations,
        }
    )
    return ExitCode.OK


def register(sub: Any) -> None:
    explain = sub.add_parser(
        "explain",
        help="why a conversation was or was not synced (offline, read-only)",
        description="Why a conversation in the ledger was or was not synced: every blocker, "
        "the ledger's facts and CRM ids. Reads the ledger (read-only), never the CRM. "
        "Exit 0, 1 on a bad ledger or settings, 5 when the conversation is not in the ledger.",
    )
    explain.add_argument("conversation_id")
    add_settings_option(explain)
    add_ledger_option(explain, read_only=True)
    add_integration_option(explain)
    explain.add_argument("--crm", choices=CRMS, default="salesforce", help="the CRM's kind")
    explain.add_argument("--now", type=aware_time, help="ISO-8601 time to evaluate at")
    add_json_flag(explain)
    explain.set_defaults(handler=_explain)
    stats = sub.add_parser(
        "stats",
        help="counts of syncs per view and commands per state (read-only)",
        description="Counts of due, in-flight, scheduled, done and dead syncs and of commands "
        "per state, from the ledger's indexes (read-only). Exit 0, or 1 on a bad ledger.",
    )
    add_ledger_option(stats, read_only=True)
    add_integration_option(stats)
    stats.add_argument("--now", type=aware_time, help="ISO-8601 time the views are judged at")
    add_json_flag(stats)
    stats.set_defaults(handler=_stats)
