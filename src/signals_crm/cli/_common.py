"""What every command shares: exit codes, typed command errors, output (text, rich or JSON),
argument types, and opening a ledger read-only or for writing.

Rules every command follows:

1. With ``--json``, standard output carries exactly one JSON document (``run --every``: one per
   line), errors included (``{"error": ..., "exit_code": N}``); people-facing text and progress
   go to standard error.
2. Without ``--json``, results are text on standard output; tables use ``rich`` when it is
   installed (``pip install 'signals-crm[cli]'``) and plain aligned columns when it is not.
3. A read-only command never creates, migrates or changes a ledger: a missing path is an error
   (exit 1) and the file is opened read-only.
4. Secrets never reach the output: credentials are read, used and never printed.
"""

from __future__ import annotations

import argparse
import enum
import json
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from signals_crm.exceptions import (
    AuthenticationError,
    ConfigurationError,
    PermissionDeniedError,
    SignalsCRMError,
)

__all__ = [
    "CommandError",
    "ExitCode",
    "Output",
    "add_json_flag",
    "aware_time",
    "existing_ledger_path",
    "exit_code_for",
    "positive_float",
    "positive_int",
]


class ExitCode(enum.IntEnum):
    """The exit statuses of ``signals-crm`` (documented in ``docs/cli.md``)."""

    OK = 0
    """Done, and everything asked for succeeded."""
    ERROR = 1
    """A ``signals_crm`` error: invalid settings, an unusable ledger, a CRM or network error."""
    USAGE = 2
    """Bad arguments or missing credentials (nothing was done)."""
    INCOMPLETE = 3
    """Done, but not everything succeeded: dead letters, rejected lines, preflight problems."""
    AUTH = 4
    """The CRM refused the credentials or the permissions (a person must act)."""
    NOT_FOUND = 5
    """The conversation (or dead letter) asked about is not in the ledger."""
    INTERRUPTED = 130
    """Stopped by Ctrl-C or SIGTERM; what was done is kept (a backfill resumes from it)."""


class CommandError(Exception):
    """A failure a command reports with a message and an exit code (never a traceback)."""

    def __init__(self, message: str, code: ExitCode = ExitCode.ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def exit_code_for(error: SignalsCRMError) -> ExitCode:
    """The exit code of a library error."""
    if isinstance(error, AuthenticationError | PermissionDeniedError):
        return ExitCode.AUTH
    return ExitCode.ERROR


def _plain_cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def to_json(document: object) -> str:
    """``document`` as one line of JSON (datetimes as ISO-8601, enums as their values)."""
    return json.dumps(document, default=_json_default, ensure_ascii=False, sort_keys=False)


class Output:
    """Where a command writes: JSON on stdout, or text (and rich tables when available)."""

    def __init__(
        self,
        *,
        json_mode: bool,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
        use_rich: bool | None = None,
    ) -> None:
        self.json_mode = json_mode
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self._rich = _rich_available() if use_rich is None else use_rich

    @property
    def rich(self) -> bool:
        """Whether tables and progress bars are drawn with ``rich``."""
        return self._rich

    def text(self, line: str = "") -> None:
        """A line for people: stdout in text mode, stderr in JSON mode."""
        print(line, file=self.stderr if self.json_mode else self.stdout)

    def note(self, line: str) -> None:
        """A remark for people, always on stderr (never mixed into results)."""
        print(line, file=self.stderr)

    def document(self, document: object) -> None:
        """The command's JSON result (only in JSON mode)."""
        if self.json_mode:
            print(to_json(document), file=self.stdout, flush=True)

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        """A table for people (text mode only)."""
        if self.json_mode:
            return
        if self._rich:
            from rich.console import Console
            from rich.table import Table

            table = Table(title=title, title_justify="left")
            for column in columns:
                table.add_column(column)
            for row in rows:
                table.add_row(*(_plain_cell(c) for c in row))
            Console(file=self.stdout, soft_wrap=True).print(table)
            return
        cells = [[_plain_cell(c) for c in row] for row in rows]
        widths = [
            max([len(column), *(len(row[i]) for row in cells)]) for i, column in enumerate(columns)
        ]
        print(title, file=self.stdout)
        print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)), file=self.stdout)
        for row in cells:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)), file=self.stdout)

    def error(self, message: str, code: ExitCode) -> None:
        """Report a failure: on stderr, and as the JSON result in JSON mode."""
        print(f"error: {message}", file=self.stderr)
        if self.json_mode:
            self.document({"error": message, "exit_code": int(code)})


def _rich_available() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document on stdout (errors included) instead of text",
    )


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < float("inf"):  # refuses NaN too
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


def aware_time(text: str) -> datetime:
    """An ISO-8601 time; one without an offset is taken as UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time: {text!r}") from None
    return value if value.utcoffset() is not None else value.replace(tzinfo=UTC)


def existing_ledger_path(path: Path) -> Path:
    """``path`` if a ledger file is there; a :class:`CommandError` (exit 1) otherwise."""
    if not path.exists():
        raise CommandError(f"no ledger at {os.fspath(path)!r} (nothing was created)")
    if not path.is_file():
        raise CommandError(f"{os.fspath(path)!r} is not a ledger file")
    return path


def problems_document(error: ConfigurationError) -> list[Mapping[str, str]]:
    """A ConfigurationError's problems as ``[{"path": ..., "message": ...}]``."""
    return [{"path": p.path, "message": p.message} for p in error.problems]


def read_json_object(text: str, what: str) -> dict[str, Any]:
    """Parse ``text`` as a JSON object, or raise CommandError naming ``what``."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise CommandError(f"{what}: not valid JSON ({type(error).__name__})") from None
    if not isinstance(value, dict):
        raise CommandError(f"{what}: must be a JSON object")
    return value
