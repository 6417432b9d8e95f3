"""``dead-letters``: list, show and retry the syncs the engine gave up on.

``list`` and ``show`` are read-only. ``retry`` sends dead letters round again: each becomes
pending, due now, with zero attempts, and its failed writes planned again (writes the CRM
already confirmed are never repeated); the next ``run`` syncs it. ``retry --all`` needs
``--yes`` (or a typed "yes" at a terminal).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from signals_crm.cli._common import (
    CommandError,
    ExitCode,
    Output,
    add_json_flag,
    existing_ledger_path,
    positive_int,
)
from signals_crm.cli._context import add_ledger_option, browse, writable_ledger
from signals_crm.cli.inspect import add_integration_option
from signals_crm.ledger.browse import MAX_PAGE, Cursor, SyncFilter, SyncRow, View
from signals_crm.ledger.requeue import requeue_dead

__all__ = ["register"]


def _row_document(row: SyncRow) -> dict[str, Any]:
    return {
        "conversation_id": row.conversation_id,
        "due_at": row.due_at,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "email": row.email,
    }


def _list(args: argparse.Namespace, out: Output) -> ExitCode:
    after = Cursor.parse(args.after) if args.after else None
    with browse(args.ledger, args.integration) as browser:
        page = browser.page(
            View.DEAD,
            datetime.now(UTC),
            after=after,
            limit=args.limit,
            filters=SyncFilter(error_contains=args.error),
        )
        total = browser.counts(datetime.now(UTC))[View.DEAD]
    out.table(
        f"Dead letters of {args.integration!r}: {total} in all, {len(page.rows)} shown",
        ["conversation", "due at", "attempts", "last error"],
        [
            [r.conversation_id, r.due_at.isoformat(timespec="seconds"), r.attempts, r.last_error]
            for r in page.rows
        ],
    )
    if page.next_cursor is not None:
        out.text(f"more: --after {page.next_cursor.token()}")
    out.document(
        {
            "total": total,
            "dead_letters": [_row_document(r) for r in page.rows],
            "next": page.next_cursor.token() if page.next_cursor else None,
        }
    )
    return ExitCode.OK


def _show(args: argparse.Namespace, out: Output) -> ExitCode:
    with browse(args.ledger, args.integration) as browser:
        found = browser.sync(args.conversation_id)
        if found is None:
            raise CommandError(
                f"conversation {args.conversation_id!r} is not in the ledger", ExitCode.NOT_FOUND
            )
        row, conversation = found
        commands = browser.commands_for(args.conversation_id)
    out.text(f"Conversation {row.conversation_id}: {row.state.value}")
    out.text(f"  visitor: {conversation.email or '-'}")
    out.text(f"  due at: {row.due_at.isoformat()}  attempts: {row.attempts}")
    out.text(f"  last error: {row.last_error or '-'}")
    out.table(
        "Commands",
        ["key", "state", "CRM id", "reason"],
        [[c.key, c.state.value, c.crm_id, c.reason] for c in commands],
    )
    out.document(
        {
            **_row_document(row),
            "state": row.state.value,
            "commands": [
                {"key": c.key, "state": c.state.value, "crm_id": c.crm_id, "reason": c.reason}
                for c in commands
            ],
        }
    )
    return ExitCode.OK if row.state.value == "dead" else ExitCode.NOT_FOUND


def _all_dead(args: argparse.Namespace) -> list[str]:
    ids: list[str] = []
    now = datetime.now(UTC)
    with browse(args.ledger, args.integration) as browser:
        cursor = None
        while True:
            page = browser.page(View.DEAD, now, after=cursor, limit=MAX_PAGE)
            ids.extend(r.conversation_id for r in page.rows)
            if page.next_cursor is None:
                return ids
            cursor = page.next_cursor


def _retry(args: argparse.Namespace, out: Output) -> ExitCode:
    existing_ledger_path(args.ledger)
    if args.all == bool(args.conversation_ids):
        raise CommandError("name the conversations to retry, or pass --all", ExitCode.USAGE)
    ids = _all_dead(args) if args.all else list(args.conversation_ids)
    if args.all and not args.yes:
        if not sys.stdin.isatty():
            raise CommandError(
                f"--all would retry {len(ids)} dead letter(s): add --yes", ExitCode.USAGE
            )
        answer = input(f"Retry {len(ids)} dead letter(s)? Type yes: ")
        if answer.strip().lower() != "yes":
            out.text("nothing retried")
            out.document({"retried": [], "not_dead": []})
            return ExitCode.OK
    with writable_ledger(args.ledger, args.integration) as ledger:
        retried = requeue_dead(ledger, ids, datetime.now(UTC))
    missed = sorted(set(ids) - set(retried))
    out.text(f"{len(retried)} dead letter(s) sent round again; the next run syncs them")
    for cid in missed:
        out.note(f"{cid}: not a dead letter (not in the ledger, pending or done): left alone")
    out.document({"retried": retried, "not_dead": missed})
    return ExitCode.NOT_FOUND if missed and not args.all else ExitCode.OK


def register(sub: Any) -> None:
    group = sub.add_parser(
        "dead-letters",
        help="list, show and retry dead-lettered syncs",
        description=__doc__ + "\nExit 0; 5 when a named conversation is not a dead letter; "
        "1 on a bad ledger; 2 for --all without --yes when not at a terminal.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = group.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="the dead letters, newest first (read-only)")
    add_ledger_option(listing, read_only=True)
    add_integration_option(listing)
    listing.add_argument("--limit", type=positive_int, default=50, help=f"at most {MAX_PAGE}")
    listing.add_argument("--after", help="the cursor a previous page printed")
    listing.add_argument("--error", help="only those whose last error contains this text")
    add_json_flag(listing)
    listing.set_defaults(handler=_list)
    show = actions.add_parser("show", help="one dead letter and its writes (read-only)")
    show.add_argument("conversation_id")
    add_ledger_option(show, read_only=True)
    add_integration_option(show)
    add_json_flag(show)
    show.set_defaults(handler=_show)
    retry = actions.add_parser("retry", help="send dead letters round again")
    retry.add_argument("conversation_ids", nargs="*", metavar="ID")
    retry.add_argument("--all", action="store_true", help="every dead letter")
    retry.add_argument("--yes", action="store_true", help="with --all: do not ask")
    retry.add_argument("--ledger", type=Path, required=True, help="an existing ledger file")
    add_integration_option(retry)
    add_json_flag(retry)
    retry.set_defaults(handler=_retry)
