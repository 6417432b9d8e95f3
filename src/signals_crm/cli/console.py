"""``console``: the web console on 127.0.0.1 for one person, with a one-time login token.

The ledger is read through a read-only connection; the only write is the retry of a dead
letter, confirmed on its own page. Needs ``pip install 'signals-crm[console]'``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from signals_crm.cli._common import CommandError, ExitCode, Output, existing_ledger_path
from signals_crm.cli._context import CRMS, settings_of

__all__ = ["register"]


def _console(args: argparse.Namespace, out: Output) -> ExitCode:
    from signals_crm.ledger.browse import is_conninfo

    ledger: str | Path = args.ledger
    where = "PostgreSQL" if is_conninfo(args.ledger) else args.ledger
    if not is_conninfo(args.ledger):
        ledger = existing_ledger_path(Path(args.ledger))
    try:
        from signals_crm.console import create_console, hubspot_links, salesforce_links
        from signals_crm.console._local import LocalTokenAuth, local_app, serve_local
    except ImportError:
        raise CommandError(
            "the console needs its extra: pip install 'signals-crm[console]'", ExitCode.USAGE
        ) from None
    settings = settings_of(args) if args.settings else None
    links = None
    if args.instance_url:
        links = salesforce_links(args.instance_url)
    elif args.hubspot_portal:
        links = hubspot_links(args.hubspot_portal)
    auth = LocalTokenAuth()
    console = create_console(
        ledger, authenticate=auth, settings=settings, crm=args.crm, crm_links=links
    )

    def announce(address: str) -> None:
        out.note(f"signals_crm console for {where} on {address} (this machine only)")
        out.note(f"open this link once to sign in: {address}/login?token={auth.login_token}")
        out.note("the link works once; Ctrl-C stops the console")

    serve_local(local_app(console, auth), port=args.port, announce=announce)
    return ExitCode.OK


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "console",
        help="the web console on 127.0.0.1, signed in with a printed one-time link",
        description=__doc__ + "\nExit 0 after Ctrl-C; 1 on a missing ledger; 2 without the "
        "console extra.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--ledger",
        required=True,
        help="an existing ledger file, or a PostgreSQL conninfo (postgresql://... or "
        "'host=... dbname=...'; the password in PGPASSWORD or a PGPASSFILE)",
    )
    parser.add_argument("--settings", type=Path, help="settings, to explain eligibility")
    parser.add_argument("--crm", choices=CRMS, default="salesforce", help="the CRM's kind")
    parser.add_argument("--instance-url", help="link CRM ids into this Salesforce org")
    parser.add_argument("--hubspot-portal", help="link CRM ids into this HubSpot portal id")
    parser.add_argument("--port", type=int, default=8787, help="port on 127.0.0.1 (0: any)")
    parser.set_defaults(handler=_console)
