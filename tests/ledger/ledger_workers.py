"""Subprocess bodies for the multi-process and crash tests (run as a script, never imported).

Usage: ``python ledger_workers.py MODE PATH [ARGS...]``; each mode prints progress lines that
the test reads, so no test ever sleeps.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from signals_crm.core.model import Conversation, PersonKind, Visitor
from signals_crm.exceptions import InvalidTransitionError
from signals_crm.ledger import CommandRecord, CommandState, SQLiteLedger

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def _say(line: object) -> None:
    sys.stdout.write(f"{line}\n")
    sys.stdout.flush()


def _conv(cid: str) -> Conversation:
    return Conversation(cid, closed_at=T0, visitor=Visitor(email=f"{cid}@example.com"))


def _cmd(key: str, state: CommandState) -> CommandRecord:
    return CommandRecord(key, key.split(":", maxsplit=1)[0], "create_person", state, T0)


def concurrent(path: str, worker: str, count: str) -> None:
    """Interleave schedules, command claims and links with another worker on one file."""
    wins = 0
    with SQLiteLedger(path, synchronous="NORMAL") as ledger:
        _say("ready")
        sys.stdin.readline()  # the test starts both workers at once
        for i in range(int(count)):
            ledger.schedule(_conv(f"shared-{i}"), T0 + timedelta(seconds=i))
            ledger.schedule(_conv(f"w{worker}-{i}"), T0)
            try:  # the first SENT wins; the other worker's SENT -> SENT is refused
                ledger.record([_cmd(f"shared-{i}:person", CommandState.SENT)])
                wins += 1
            except InvalidTransitionError:
                pass
            ledger.record([_cmd(f"w{worker}-{i}:person", CommandState.PLANNED)])
            ledger.link(f"shared-{i}@example.com", f"{worker}-{i}", PersonKind.LEAD)
    _say(f"wins {wins}")


def drain(path: str, worker: str) -> None:
    """Claim, send and complete due syncs in small leases until none is left."""
    taken: list[str] = []
    with SQLiteLedger(path, synchronous="NORMAL") as ledger:
        _say("ready")
        sys.stdin.readline()
        while claimed := ledger.claim(T0, 5, owner=worker, until=T0 + timedelta(hours=1)):
            ids = [s.conversation_id for s in claimed]
            ledger.record([_cmd(f"{cid}:person", CommandState.SENT) for cid in ids])
            ledger.complete(ids, "created")
            taken.extend(ids)
    _say(" ".join(taken))


def batches(path: str) -> None:
    """Write batches of 200 commands, one transaction each, until killed."""
    with SQLiteLedger(path) as ledger:
        for batch in range(10_000):
            ledger.record([_cmd(f"b{batch}:{i:03}", CommandState.PLANNED) for i in range(200)])
            _say(batch)


class _KillAtCommit:
    """Wraps the ledger's connection: the process dies the instant it asks to COMMIT."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, *args: Any) -> Any:
        if sql == "COMMIT":
            os.kill(os.getpid(), signal.SIGKILL)
        return self._conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def kill_at_commit(path: str, what: str) -> None:
    """Commit one write, then die inside the transaction of a second, larger one."""
    ledger = SQLiteLedger(path)
    ledger.record([_cmd(f"safe:{i}", CommandState.PLANNED) for i in range(50)])
    ledger.schedule(_conv("safe"), T0)
    _say("committed")
    ledger._shared.conn = _KillAtCommit(ledger._shared.conn)  # type: ignore[assignment]
    if what == "record":
        ledger.record(
            [_cmd(f"safe:{i}", CommandState.SENT) for i in range(50)]
            + [_cmd(f"doomed:{i}", CommandState.PLANNED) for i in range(300)]
        )
    else:
        ledger.schedule_many([(_conv(f"doomed-{i}"), T0) for i in range(300)])
    _say("not killed")


if __name__ == "__main__":
    modes: dict[str, Callable[..., None]] = {
        "concurrent": concurrent,
        "drain": drain,
        "batches": batches,
        "kill_at_commit": kill_at_commit,
    }
    modes[sys.argv[1]](*sys.argv[2:])
