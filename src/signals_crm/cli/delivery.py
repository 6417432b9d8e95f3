"""``run`` (the due syncs, once or ``--every``) and ``backfill`` (past conversations, with
progress, resumable after a kill).

``backfill`` resumes through a checkpoint file beside the input (``INPUT.checkpoint.json``,
or ``--checkpoint``): after every batch it records how many input lines are finished. A
backfill killed at any instant and run again skips those lines and redoes at most the batch
that was in flight; that batch cannot write twice, because every write goes through the ledger's
idempotency keys (a write whose outcome is unknown is reconciled with the CRM before any
resend). Delete the checkpoint, or pass ``--restart``, to go through the whole input again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any, Self

from signals_crm.cli._common import (
    CommandError,
    ExitCode,
    Output,
    add_json_flag,
    positive_float,
    positive_int,
    to_json,
)
from signals_crm.cli._context import (
    add_crm_options,
    add_settings_option,
    online_integration,
    report_document,
    report_failed,
    writable_ledger,
)
from signals_crm.cli._envelope import Rejected, count_lines, read_envelopes
from signals_crm.cli._progress import make_progress
from signals_crm.cli.inspect import add_integration_option
from signals_crm.core.model import Conversation

__all__ = ["register"]


class _Stopper:
    """SIGINT/SIGTERM ask a ``run --every`` loop to stop after the current run."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._old: dict[int, Any] = {}

    def __enter__(self) -> Self:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:  # noqa: ARG002
        self.event.set()

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _run(args: argparse.Namespace, out: Output) -> ExitCode:
    worst = ExitCode.OK
    runs = 0
    with (
        writable_ledger(args.ledger, args.integration) as ledger,
        online_integration(args, ledger=ledger, warn=out.note) as integration,
        _Stopper() as stopper,
    ):
        while True:
            report = integration.run_due(limit=args.limit)
            runs += 1
            if out.json_mode:
                print(to_json(report_document(report)), file=out.stdout, flush=True)
            else:
                out.text(report.as_text())
            if report_failed(report):
                worst = ExitCode.INCOMPLETE
            if args.every is None or (args.max_runs is not None and runs >= args.max_runs):
                break
            if stopper.event.wait(args.every):
                out.note(f"stopped after {runs} run(s)")
                break
    return worst


# ------------------------------------------------------------------------------------------------
# backfill


def _checkpoint_path(args: argparse.Namespace) -> Path:
    if args.checkpoint is not None:
        return Path(args.checkpoint)
    return Path(f"{args.input}.checkpoint.json")


def _fingerprint(path: Path) -> str:
    """Identifies the input: its size-independent head (so an appended file still matches)."""
    with path.open("rb") as stream:
        head = stream.read(1 << 16)
    return hashlib.sha256(head).hexdigest()


def _read_checkpoint(path: Path, fingerprint: str) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        raise CommandError(
            f"the checkpoint {os.fspath(path)!r} is unreadable; delete it or pass --restart"
        ) from None
    if not isinstance(data, dict) or data.get("input") != fingerprint:
        raise CommandError(
            f"the checkpoint {os.fspath(path)!r} belongs to another input; "
            "delete it or pass --restart"
        )
    lines = data.get("lines_done")
    if isinstance(lines, bool) or not isinstance(lines, int) or lines < 0:
        raise CommandError(f"the checkpoint {os.fspath(path)!r} is damaged; pass --restart")
    return data


def _write_checkpoint(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as stream:
        json.dump(data, stream)
        stream.flush()
        os.fsync(stream.fileno())
    tmp.replace(path)


def _backfill(args: argparse.Namespace, out: Output) -> ExitCode:
    source = Path(args.input)
    if not source.is_file():
        raise CommandError(f"no input file at {args.input!r}")
    checkpoint_path = _checkpoint_path(args)
    fingerprint = _fingerprint(source)
    state = None if args.restart else _read_checkpoint(checkpoint_path, fingerprint)
    if state is not None and state.get("finished"):
        out.text(f"{args.input}: already backfilled ({checkpoint_path}); --restart to redo it")
        out.document({"already_done": True, "counts": state.get("counts", {})})
        return ExitCode.OK
    skip = state["lines_done"] if state else 0
    counts: dict[str, int] = dict(state.get("counts", {})) if state else {}
    rejected = int(state.get("rejected", 0)) if state else 0
    line_of: list[int] = []  # the input line of the n-th conversation handed to the engine
    with source.open("rb") as stream:
        total = count_lines(stream)
        if skip:
            out.note(f"resuming {args.input} after line {skip:,} (checkpoint {checkpoint_path})")

        def conversations() -> Iterator[Conversation]:
            nonlocal rejected
            for number, item in read_envelopes(stream, skip=skip):
                if isinstance(item, Rejected):
                    rejected += 1
                    out.note(f"line {item.line}: rejected: {item.reason}")
                    continue
                line_of.append(number)
                yield item

        def save(done: int, *, finished: bool = False) -> None:
            lines_done = total if finished else (line_of[done - 1] if done else skip)
            _write_checkpoint(
                checkpoint_path,
                {
                    "input": fingerprint,
                    "lines_done": max(lines_done, skip),
                    "counts": counts,
                    "rejected": rejected,
                    "finished": finished,
                },
            )
            bar.update(max(lines_done, skip))

        def on_outcome(outcome: Any) -> None:
            counts[outcome.kind.value] = counts.get(outcome.kind.value, 0) + 1

        with (
            writable_ledger(args.ledger, args.integration) as ledger,
            online_integration(args, ledger=ledger, warn=out.note) as integration,
            make_progress(
                "backfill",
                total,
                out.stderr,
                rich=out.rich and not args.no_progress,
                initial=skip,
            ) as bar,
        ):
            report = integration.backfill(conversations(), progress=save, on_outcome=on_outcome)
            finished = not report.budget_exhausted
            save(len(line_of), finished=finished)
    summary = {
        "counts": counts,
        "rejected": rejected,
        "finished": finished,
        "adapter_calls": report.adapter_calls,
        "budget_exhausted": report.budget_exhausted,
        "admin_issues": list(report.admin_issues),
        "checkpoint": str(checkpoint_path),
    }
    out.text(
        "backfill: "
        + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "nothing to do")
        + f"; {rejected} rejected line(s); {report.adapter_calls} adapter call(s) this run"
    )
    if report.budget_exhausted:
        out.text("stopped early: the API budget share is used up; run again to go on")
    out.document(summary)
    failed = counts.get("failed", 0) or rejected or report.admin_issues or not finished
    return ExitCode.INCOMPLETE if failed else ExitCode.OK


def _run_options(run: argparse.ArgumentParser) -> None:
    add_settings_option(run)
    run.add_argument("--ledger", type=Path, required=True, help="the ledger file")
    add_integration_option(run)
    add_crm_options(run)
    run.add_argument("--every", type=positive_float, help="seconds between runs (loop)")
    run.add_argument("--max-runs", type=positive_int, help="with --every: stop after N runs")
    run.add_argument("--limit", type=positive_int, help="sync at most N conversations per run")
    add_json_flag(run)
    run.set_defaults(handler=_run)


def register(sub: Any, epilog: str) -> None:
    run = sub.add_parser(
        "run",
        help="run the due syncs once, or --every N seconds",
        description="Sync what is due in the ledger, once or every N seconds until Ctrl-C or "
        "SIGTERM (the current run finishes first). Exit 0, 3 when a run dead-lettered a sync "
        "or needs an administrator, 4 when the CRM refuses the credentials.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _run_options(run)
    # The older name of ``run`` (the same options and behaviour).
    sync = sub.add_parser("sync", help="the older name of 'run'", epilog=epilog)
    _run_options(sync)

    backfill = sub.add_parser(
        "backfill",
        help="sync past conversations from a JSON-lines file, with progress; resumable",
        description=__doc__ + "\nExit 0, 3 when some lines were rejected or syncs failed (or "
        "the API budget stopped it), 4 when the CRM refuses the credentials, 130 on Ctrl-C "
        "(run it again to resume).",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    backfill.add_argument("input", help="a JSON-lines file of webhook envelopes (see ingest)")
    add_settings_option(backfill)
    backfill.add_argument("--ledger", type=Path, required=True, help="the ledger file")
    add_integration_option(backfill)
    add_crm_options(backfill)
    backfill.add_argument("--checkpoint", type=Path, help="default: INPUT.checkpoint.json")
    backfill.add_argument(
        "--batch-size",
        type=int,
        help="conversations per round (default: five of the CRM's write calls; 5,000 on "
        "Salesforce, 500 on HubSpot); the checkpoint is written after each",
    )
    backfill.add_argument(
        "--restart", action="store_true", help="ignore the checkpoint and start over"
    )
    backfill.add_argument(
        "--no-progress", action="store_true", help="plain progress lines instead of a bar"
    )
    add_json_flag(backfill)
    backfill.set_defaults(handler=_backfill)
