"""``signals-crm``: the command line (also ``python -m signals_crm``); see ``docs/cli.md``.

One module per command group: :mod:`~signals_crm.cli.demo`, :mod:`~signals_crm.cli.check`
(validate, preflight), :mod:`~signals_crm.cli.ingest`, :mod:`~signals_crm.cli.delivery` (run,
backfill), :mod:`~signals_crm.cli.inspect` (explain, stats), :mod:`~signals_crm.cli.dead_letters`,
:mod:`~signals_crm.cli.connect`, :mod:`~signals_crm.cli.console`,
:mod:`~signals_crm.cli.sandbox` and :mod:`~signals_crm.cli.worker` (the fleet). Shared rules
(exit codes, ``--json``, read-only ledgers) are in :mod:`signals_crm.cli._common`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from signals_crm.cli import (
    check,
    connect,
    console,
    dead_letters,
    delivery,
    demo,
    ingest,
    inspect,
    sandbox,
    worker,
)
from signals_crm.cli._common import CommandError, ExitCode, Output, exit_code_for
from signals_crm.cli._credentials import environment_help
from signals_crm.exceptions import SignalsCRMError

__all__ = ["ExitCode", "main"]

_EXIT_CODES = "exit codes: " + ", ".join(f"{int(c)} {c.name.lower()}" for c in ExitCode)


def parser() -> argparse.ArgumentParser:
    """The whole command line's parser."""
    epilog = environment_help() + "\n\n" + _EXIT_CODES
    top = argparse.ArgumentParser(
        prog="signals-crm",
        description="Chat visitors to CRM leads, tasks and campaigns: run, inspect and "
        "operate the integration.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo.register(sub)
    check.register(sub, epilog)
    ingest.register(sub)
    delivery.register(sub, epilog)
    inspect.register(sub)
    dead_letters.register(sub)
    connect.register(sub)
    console.register(sub)
    sandbox.register(sub)
    worker.register(sub)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``signals-crm``; returns the exit status (``docs/cli.md``)."""
    args = parser().parse_args(argv)
    out = Output(json_mode=bool(getattr(args, "json", False)))
    try:
        return int(args.handler(args, out))
    except CommandError as error:
        out.error(error.message, error.code)
        return int(error.code)
    except SignalsCRMError as error:
        code = exit_code_for(error)
        out.error(str(error), code)
        return int(code)
    except KeyboardInterrupt:
        out.error("interrupted; what was done is kept", ExitCode.INTERRUPTED)
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:  # the reader went away (| head): nothing more to say
        sys.stderr.close()
        return int(ExitCode.OK)
