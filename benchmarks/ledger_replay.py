"""The SQLite ledger's CPU in a backfill, replayed: its Python apart from SQLite's own work.

A backfill of N visitors (default 10,000; ``round_trips.py``'s realistic mix, through the real
``SalesforceAdapter`` and the in-process local Salesforce) is run once with its ledger calls
recorded (each public call of ``SQLiteLedger`` the engine makes, with its arguments, pickled;
the calls a call makes itself, such as the operations of ``perform``, are not recorded apart).
The calls are then replayed on a fresh ledger file R times (default 3), without the engine,
the adapter or the sandbox, with the garbage collector off, timing thread CPU per method, and
how much of it was spent inside the connection's ``execute``/``executemany`` (SQLite, and the
sqlite3 module binding values and building rows). The rest is the ledger's Python.

To compare two trees on the very same calls, save them once and replay them on each tree:

    PYTHONPATH=src python benchmarks/ledger_replay.py --save /tmp/calls.pickle
    PYTHONPATH=/other/tree/src python benchmarks/ledger_replay.py --load /tmp/calls.pickle

(pickles are this tool's own files: load only those you saved.)
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import gc
import pickle
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ledger_cost  # the sibling benchmark's engine set-up, reused as it is
import round_trips  # the sibling benchmark's workload, reused as it is

from signals_crm.ledger import SQLiteLedger

Call = tuple[str, bytes]  # a method's name and its pickled (args, kwargs)


@contextlib.contextmanager
def recorded(calls: list[Call]) -> Iterator[None]:
    """Record the outermost public ``SQLiteLedger`` calls made meanwhile (patched in)."""
    depth = [0]
    originals: dict[str, Callable[..., Any]] = {}
    for name in dir(SQLiteLedger):
        method = getattr(SQLiteLedger, name)
        if name.startswith("_") or not callable(method):
            continue
        originals[name] = method

        def wrapper(self: Any, *args: Any, _name: str = name, **kwargs: Any) -> Any:
            if depth[0] == 0:
                calls.append((_name, pickle.dumps((args, kwargs))))
            depth[0] += 1
            try:
                return originals[_name](self, *args, **kwargs)
            finally:
                depth[0] -= 1

        setattr(SQLiteLedger, name, wrapper)
    try:
        yield
    finally:
        for name, method in originals.items():
            setattr(SQLiteLedger, name, method)


def record_backfill(count: int) -> list[Call]:
    org, owner, campaign = round_trips.seeded_org(count)
    calls: list[Call] = []
    with tempfile.TemporaryDirectory() as folder, httpx.Client(transport=org.transport()) as http:
        ledger = SQLiteLedger(Path(folder) / "ledger.sqlite3")
        try:
            engine = ledger_cost.integration(org, owner, campaign, http, ledger)
            with recorded(calls):
                report = engine.backfill(
                    list(round_trips.conversations(count)), now=round_trips.NOW
                )
        finally:
            ledger.close()
    print(f"recorded a backfill of {count:,} visitors: {dict(sorted(report.counts.items()))}")
    print(f"  ledger calls: {dict(collections.Counter(name for name, _ in calls))}")
    return calls


class TimedConnection:
    """A connection whose ``execute`` and ``executemany`` are timed (thread CPU)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.spent = 0.0

    def execute(self, *args: Any) -> sqlite3.Cursor:
        start = time.thread_time()
        try:
            return self.conn.execute(*args)
        finally:
            self.spent += time.thread_time() - start

    def executemany(self, *args: Any) -> sqlite3.Cursor:
        start = time.thread_time()
        try:
            return self.conn.executemany(*args)
        finally:
            self.spent += time.thread_time() - start

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


def replay(calls: list[Call], count: int, repeats: int) -> None:
    decoded = [(name, pickle.loads(data)) for name, data in calls]  # noqa: S301  # our own
    per = 1e3 / count
    totals: list[tuple[float, float]] = []
    by_method: collections.Counter[str] = collections.Counter()
    in_sqlite: collections.Counter[str] = collections.Counter()
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as folder:
            ledger = SQLiteLedger(Path(folder) / "ledger.sqlite3")
            shared = ledger._shared  # noqa: SLF001  # measuring, not using
            timed = TimedConnection(round_trips.ledger_connection(ledger))
            shared.conn = timed  # type: ignore[assignment]
            gc.collect()
            gc.disable()
            try:
                start = time.thread_time()
                for name, (args, kwargs) in decoded:
                    began, before = time.thread_time(), timed.spent
                    getattr(ledger, name)(*args, **kwargs)
                    by_method[name] += time.thread_time() - began
                    in_sqlite[name] += timed.spent - before
                totals.append((time.thread_time() - start, timed.spent))
            finally:
                gc.enable()
                shared.conn = timed.conn
                ledger.close()
    print(f"replayed {repeats} times on fresh files (ms a visitor, thread CPU, GC off):")
    for total, spent in totals:
        print(
            f"  all {total * per:.4f}: sqlite3 execute {spent * per:.4f}, "
            f"the ledger's Python {(total - spent) * per:.4f}"
        )
    print("  by method (mean): all / sqlite3 execute / Python")
    for name, spent in by_method.items():
        mean, sql = spent / repeats, in_sqlite[name] / repeats
        print(f"    {name:<18}: {mean * per:.4f} / {sql * per:.4f} / {(mean - sql) * per:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--save", type=Path, help="write the recorded calls here")
    parser.add_argument("--load", type=Path, help="replay calls saved with --save")
    options = parser.parse_args()
    if options.load:
        count, calls = pickle.loads(options.load.read_bytes())  # noqa: S301  # our own file
    else:
        count, calls = options.visitors, record_backfill(options.visitors)
    if options.save:
        options.save.write_bytes(pickle.dumps((count, calls)))
    replay(calls, count, options.repeats)


if __name__ == "__main__":
    main()
