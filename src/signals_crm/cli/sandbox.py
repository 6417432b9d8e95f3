"""``sandbox``: serve a local Salesforce or HubSpot over HTTP on loopback (the sandboxes'
command; its body belongs to them)."""

from __future__ import annotations

import argparse
from typing import Any

from signals_crm.cli._common import ExitCode, Output

__all__ = ["register"]


def _sandbox(args: argparse.Namespace, out: Output) -> ExitCode:  # noqa: ARG001  # prints itself
    if args.crm == "salesforce":
        from signals_crm.testing.salesforce import serve as serve_salesforce

        serve_salesforce(args.port, host=args.host, announce=print)
    else:
        from signals_crm.testing.hubspot import serve as serve_hubspot

        serve_hubspot(args.port, host=args.host, announce=print)
    return ExitCode.OK


def register(sub: Any) -> None:
    sandbox = sub.add_parser("sandbox", help="serve a local CRM on loopback")
    sandbox.add_argument("crm", choices=["salesforce", "hubspot"])
    sandbox.add_argument("--port", type=int, default=8765)
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.set_defaults(handler=_sandbox)
