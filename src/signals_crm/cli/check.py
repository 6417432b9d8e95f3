"""``validate`` (the settings file alone) and ``preflight`` (the settings against the CRM)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from signals_crm.cli._common import ExitCode, Output, add_json_flag
from signals_crm.cli._context import (
    add_crm_options,
    add_settings_option,
    online_integration,
    settings_of,
)
from signals_crm.exceptions import ConfigurationError

__all__ = ["register"]


def _validate(args: argparse.Namespace, out: Output) -> ExitCode:
    try:
        config = settings_of(args).to_config()
    except ConfigurationError as error:
        out.error(str(error), ExitCode.ERROR)
        return ExitCode.ERROR
    out.text(f"{args.settings}: valid")
    out.text(
        f"  enabled={config.enabled} criteria={config.criteria.value} "
        f"delay={config.synchronization_delay}"
    )
    out.document(
        {
            "valid": True,
            "settings": str(args.settings),
            "enabled": config.enabled,
            "criteria": config.criteria.value,
            "delay_seconds": config.synchronization_delay.total_seconds(),
        }
    )
    return ExitCode.OK


def _preflight(args: argparse.Namespace, out: Output) -> ExitCode:
    with online_integration(args, ledger=None, warn=out.note) as integration:
        problems = integration.preflight()
    crm = args.crm
    if problems:
        out.text(f"{args.settings} against {crm}: {len(problems)} problem(s)")
        for problem in problems:
            out.text(f"  {problem}")
    else:
        out.text(f"{args.settings} against {crm}: ready (every mapping, user and campaign found)")
    out.document(
        {
            "ready": not problems,
            "crm": crm,
            "problems": [{"path": p.path, "message": p.message} for p in problems],
        }
    )
    return ExitCode.INCOMPLETE if problems else ExitCode.OK


def register(sub: Any, epilog: str) -> None:
    validate = sub.add_parser(
        "validate",
        help="check a settings file (offline)",
        description="Load a settings file (TOML or JSON) and list every problem. "
        "Exit 0 when valid, 1 when not.",
    )
    validate.add_argument("settings", type=Path, help="a .toml or .json settings file")
    add_json_flag(validate)
    validate.set_defaults(handler=_validate)
    preflight = sub.add_parser(
        "preflight",
        help="check the settings against the CRM itself (fields, users, campaign)",
        description="Read the CRM's schema, users and campaign and report every setting it "
        "cannot honour. Exit 0 when ready, 3 with problems, 4 when the CRM refuses the "
        "credentials.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_settings_option(preflight)
    add_crm_options(preflight)
    add_json_flag(preflight)
    preflight.set_defaults(handler=_preflight)
