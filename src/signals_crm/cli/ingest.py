"""``ingest``: webhook deliveries (one JSON envelope per line) into the ledger as due syncs.

Each conversation-closed delivery is recorded exactly as the host's webhook receiver would
(``Integration.conversation_closed``): due at ``closed_at`` + the settings' delay; a redelivered
conversation replaces its pending sync; a finished one is never replayed. Deliveries of open
conversations and, while the integration is off, every delivery schedule nothing. Ingest is
idempotent: feeding the same file twice leaves the ledger as once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import IO, Any

from signals_crm.cli._common import CommandError, ExitCode, Output, add_json_flag
from signals_crm.cli._context import CRMS, add_settings_option, settings_of, writable_ledger
from signals_crm.cli._envelope import Rejected, read_envelopes
from signals_crm.cli.inspect import add_integration_option
from signals_crm.core.model import ConversationStatus, PersonKind
from signals_crm.engine import Integration

__all__ = ["register"]

_MAX_LISTED = 50  # rejected lines listed in full; the rest are counted


def open_input(path: str) -> IO[bytes]:
    if path == "-":
        return sys.stdin.buffer
    try:
        return Path(path).open("rb")
    except OSError as error:
        raise CommandError(f"cannot read {path!r}: {type(error).__name__}") from None


def _ingest(args: argparse.Namespace, out: Output) -> ExitCode:
    from signals_crm.testing.memory import InMemoryCRM

    settings = settings_of(args)
    kind = PersonKind.CONTACT if args.crm == "hubspot" else PersonKind.LEAD
    scheduled = open_conversations = 0
    rejected: list[Rejected] = []
    rejected_count = 0
    stream = open_input(args.input)
    try:
        with writable_ledger(args.ledger, args.integration, synchronous="NORMAL") as ledger:
            integration = Integration(InMemoryCRM(person_kind=kind), settings, ledger=ledger)
            enabled = integration.config.enabled
            for _, item in read_envelopes(stream):
                if isinstance(item, Rejected):
                    rejected_count += 1
                    if len(rejected) < _MAX_LISTED:
                        rejected.append(item)
                    continue
                if item.status is not ConversationStatus.CLOSED:
                    open_conversations += 1
                    continue
                if integration.conversation_closed(item) is not None:
                    scheduled += 1
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    out.text(f"{scheduled} due sync(s) recorded in {args.ledger}")
    if open_conversations:
        out.text(f"{open_conversations} open conversation(s): nothing to schedule")
    if not enabled:
        out.text("the integration is off: nothing was scheduled (turn it on, or backfill)")
    for item in rejected:
        out.note(f"line {item.line}: rejected: {item.reason}")
    if rejected_count > len(rejected):
        out.note(f"... and {rejected_count - len(rejected)} more rejected line(s)")
    out.document(
        {
            "scheduled": scheduled,
            "open": open_conversations,
            "enabled": enabled,
            "rejected": rejected_count,
            "rejections": [{"line": r.line, "reason": r.reason} for r in rejected],
        }
    )
    return ExitCode.INCOMPLETE if rejected_count else ExitCode.OK


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "ingest",
        help="record webhook deliveries (JSON lines) in the ledger as due syncs",
        description=__doc__ + "\nExit 0, 3 when some lines were rejected (each is listed on "
        "stderr with its line number), 1 on bad settings or ledger.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", nargs="?", default="-", help="a JSON-lines file, or - (stdin)")
    add_settings_option(parser)
    parser.add_argument(
        "--ledger", type=Path, required=True, help="the ledger file (created when missing)"
    )
    add_integration_option(parser)
    parser.add_argument("--crm", choices=CRMS, default="salesforce", help="the CRM's kind")
    add_json_flag(parser)
    parser.set_defaults(handler=_ingest)
