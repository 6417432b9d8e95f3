"""Building what commands run on: settings, ledgers, adapters, integrations; and turning the
library's results (reports, explanations) into JSON-ready documents."""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import httpx

from signals_crm.cli._common import CommandError, ExitCode, existing_ledger_path
from signals_crm.cli._credentials import (
    CREDENTIAL_FILE_VARIABLE,
    Credentials,
    build_adapter,
    load_credentials,
)
from signals_crm.core.explain import Explanation
from signals_crm.core.model import PersonKind
from signals_crm.engine import Integration, SyncReport
from signals_crm.ledger.base import Ledger
from signals_crm.ledger.browse import LedgerBrowser, ReadOnlyLedger
from signals_crm.ledger.memory import MemoryLedger
from signals_crm.ledger.sqlite import SQLiteLedger
from signals_crm.settings import IntegrationSettings, load_settings

__all__ = [
    "add_crm_options",
    "add_ledger_option",
    "add_settings_option",
    "browse",
    "explain_offline",
    "explanation_document",
    "online_integration",
    "report_document",
]

CRMS = ("salesforce", "hubspot")


def add_settings_option(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    parser.add_argument(
        "--settings", type=Path, required=required, help="the settings file (.toml or .json)"
    )


def add_ledger_option(parser: argparse.ArgumentParser, *, read_only: bool) -> None:
    what = "an existing ledger file (opened read-only)" if read_only else "the ledger file"
    parser.add_argument("--ledger", type=Path, required=True, help=what)


def add_crm_options(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    parser.add_argument("--crm", choices=CRMS, required=required, help="which CRM to talk to")
    parser.add_argument(
        "--credentials",
        type=Path,
        help=f"a credentials file (default: ${CREDENTIAL_FILE_VARIABLE}); see the list below",
    )
    parser.add_argument(
        "--url", help="the Salesforce instance URL or HubSpot base URL (overrides credentials)"
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds per CRM request (default 30)"
    )


def settings_of(args: argparse.Namespace) -> IntegrationSettings:
    return load_settings(args.settings)


@contextmanager
def online_integration(
    args: argparse.Namespace,
    *,
    ledger: SQLiteLedger | MemoryLedger | None,
    warn: Any,
) -> Iterator[Integration]:
    """An :class:`Integration` talking to the CRM named by ``--crm`` with the operator's
    credentials, over a client the command owns."""
    settings = settings_of(args)
    credentials = load_credentials(args.crm, file=args.credentials, url=args.url, warn=warn)
    if not args.timeout > 0:
        raise CommandError("--timeout must be a positive number of seconds", ExitCode.USAGE)
    timeout = httpx.Timeout(args.timeout, connect=min(10.0, args.timeout))
    store = RotatedTokenStore(credentials, warn)
    with httpx.Client(timeout=timeout) as http:
        adapter = build_adapter(credentials, http, token_store=store)
        batch_size = getattr(args, "batch_size", None)
        if batch_size is not None and batch_size < 1:
            raise CommandError("--batch-size must be a positive number", ExitCode.USAGE)
        yield Integration(adapter, settings, ledger=ledger, batch_size=batch_size)


class RotatedTokenStore:
    """Keeps a refresh token the CRM rotated: written back to the credentials file it came
    from, or (when it came from a variable) a warning to update that variable. Never prints
    a token."""

    def __init__(self, credentials: Credentials, warn: Any) -> None:
        self._credentials = credentials
        self._current = credentials.get("refresh_token")
        self._warn = warn
        self._warned = False

    def __repr__(self) -> str:
        return "RotatedTokenStore(<hidden>)"

    def save(self, tokens: Any) -> None:
        new = getattr(tokens, "refresh_token", None)
        if not new or new == self._current:
            return
        self._current = new
        creds = self._credentials
        if creds.file is not None and creds.from_file("refresh_token"):
            from signals_crm.cli.connect import save_credentials

            save_credentials(creds.file, creds.crm, {"refresh_token": new})
            self._warn(f"the CRM rotated the refresh token; saved it to {creds.file}")
        elif not self._warned:
            self._warned = True
            where = creds.sources.get("refresh_token", "the refresh token's variable")
            self._warn(
                f"warning: the CRM rotated the refresh token; {where} now holds a spent one. "
                "Keep credentials in a file (see connect) to have it saved."
            )


def writable_ledger(path: Path, integration: str = "default", **options: Any) -> SQLiteLedger:
    """The ledger at ``path`` for a command that writes (created when missing), bound to
    ``integration``."""
    if integration == "default":
        return SQLiteLedger(path, **options)
    if "integration" not in inspect.signature(SQLiteLedger).parameters:
        raise CommandError("this ledger version has one integration only", ExitCode.USAGE)
    options["integration"] = integration
    return SQLiteLedger(path, **options)


@contextmanager
def browse(path: Path, integration: str = "default") -> Iterator[LedgerBrowser]:
    """A read-only browser of the existing ledger at ``path``."""
    with LedgerBrowser(existing_ledger_path(path), integration=integration) as browser:
        yield browser


def explain_offline(
    browser: LedgerBrowser,
    settings: IntegrationSettings,
    conversation_id: str,
    *,
    crm: str,
    now: datetime | None,
) -> Explanation:
    """Why a conversation was or was not synced, from the ledger only (no CRM is read).

    The engine explains it against an empty in-memory CRM of the right kind, reading the
    ledger through a :class:`ReadOnlyLedger` (so nothing can be written).
    """
    from signals_crm.testing.memory import InMemoryCRM

    if browser.sync(conversation_id) is None:
        raise CommandError(
            f"conversation {conversation_id!r} is not in the ledger", ExitCode.NOT_FOUND
        )
    kind = PersonKind.CONTACT if crm == "hubspot" else PersonKind.LEAD
    ledger = cast("Ledger", ReadOnlyLedger(browser))
    integration = Integration(InMemoryCRM(person_kind=kind), settings, ledger=ledger)
    return integration.explain(conversation_id, now=now, lookup=False)


def explanation_document(explanation: Explanation) -> dict[str, Any]:
    """An explanation as JSON-ready data (its own stable form)."""
    return explanation.as_dict()


def report_document(report: SyncReport) -> dict[str, Any]:
    """A run's report as JSON-ready data."""
    return {
        "total": report.total,
        "counts": dict(report.counts),
        "adapter_calls": report.adapter_calls,
        "budget_exhausted": report.budget_exhausted,
        "admin_issues": list(report.admin_issues),
        "stopped": report.stopped,
        "outcomes": [
            {
                "conversation_id": o.conversation_id,
                "kind": o.kind.value,
                "person_id": o.person_id,
                "error": o.error,
                "blockers": list(o.blockers),
            }
            for o in report.outcomes
        ],
    }


def report_failed(report: SyncReport) -> bool:
    """Whether a run left something for a person: a failure, an admin issue, or a run the CRM
    stopped before it synced anything (``SyncReport.stopped``)."""
    counts: Mapping[str, int] = report.totals
    return bool(counts.get("failed", 0) or report.admin_issues or report.stopped)
