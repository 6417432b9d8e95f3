"""``sandbox``: serve a local Salesforce or HubSpot on loopback (the sandboxes' command; its
body belongs to them). ``--tls`` serves HTTPS from a local CA and prints where its bundle is;
``--ca-dir`` keeps the bundle (and the Salesforce JWT key) in a directory of your choice;
``--external-id Lead.Signals_Sync_Key__c`` (repeatable, Salesforce) gives the org a custom
External ID + Unique field, as an admin would create for the adapter's ``sync_key_field``."""

from __future__ import annotations

import argparse
from typing import Any

from signals_crm.cli._common import ExitCode, Output

__all__ = ["register"]


def _sandbox(args: argparse.Namespace, out: Output) -> ExitCode:  # noqa: ARG001  # prints itself
    if args.crm == "salesforce":
        from signals_crm.testing.salesforce import LocalSalesforce
        from signals_crm.testing.salesforce import serve as serve_salesforce

        org = LocalSalesforce(external_id_fields=args.external_id or ())
        serve_salesforce(
            args.port, host=args.host, org=org, announce=print, tls=args.tls, ca_dir=args.ca_dir
        )
    else:
        from signals_crm.testing.hubspot import serve as serve_hubspot

        serve_hubspot(args.port, host=args.host, announce=print, tls=args.tls, ca_dir=args.ca_dir)
    return ExitCode.OK


def register(sub: Any) -> None:
    sandbox = sub.add_parser("sandbox", help="serve a local CRM on loopback")
    sandbox.add_argument("crm", choices=["salesforce", "hubspot"])
    sandbox.add_argument("--port", type=int, default=8765)
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument(
        "--tls",
        action="store_true",
        help="serve HTTPS (and plain HTTP on the same port) from a local CA",
    )
    sandbox.add_argument(
        "--ca-dir", default=None, help="where to write the CA bundle (default: a temporary dir)"
    )
    sandbox.add_argument(
        "--external-id",
        action="append",
        metavar="OBJECT.FIELD__c",
        help="Salesforce: add a custom External ID + Unique text field (repeatable)",
    )
    sandbox.set_defaults(handler=_sandbox)
