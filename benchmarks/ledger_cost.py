"""What the ledger costs a sync: SQL statements and commits, on SQLite and on PostgreSQL.

Workload: ``round_trips.py``'s realistic mix (of every ten visitors seven are new Leads that
join a campaign, two are existing Leads updated, one an existing Contact; every visitor has a
chat transcript and a booked meeting, so two Tasks), through the real ``SalesforceAdapter``
and the in-process local Salesforce (``signals_crm.testing.salesforce``).

1. Backfill of N visitors (default 2,000): every statement the ledger runs, counted and
   divided by N (target: at most 2 per visitor), by kind; and its commits.
2. One visitor's automatic sync, warm (preflight done): ``conversation_closed`` then
   ``run_due``, for a new visitor (a Lead created, two Tasks, a campaign membership: three
   dependent writes) and for an existing Lead (an update and two Tasks). Commits are counted
   two ways: COMMIT statements (and writes outside a transaction), and *writing* commits,
   those of a transaction that changed a row (the ones SQLite fsyncs: with
   ``synchronous=FULL`` a transaction that wrote nothing writes no WAL frame). Target: at most
   3 for a run.
3. The same on PostgreSQL when psycopg is installed and a throwaway cluster can be started
   (``tests/_services.py``: initdb into a temporary folder, a loopback port), counting the
   statements the ledger sends and its transactions (a transaction that ran an INSERT,
   UPDATE or DELETE counts as writing).

Counts are deterministic; the wall times printed beside them are the whole run's (sandbox
included), for orientation only. Run it on two trees to compare, for instance:

    PYTHONPATH=src python benchmarks/ledger_cost.py [--visitors N] [--skip-postgres]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import round_trips  # the sibling benchmark's workload, reused as it is

from signals_crm.adapters.salesforce import SalesforceAdapter, StaticToken
from signals_crm.engine import Integration
from signals_crm.ledger import SQLiteLedger

WRITES = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE"})


def head(statement: str) -> str:
    return statement.lstrip().split(None, 1)[0].upper() if statement.strip() else ""


class SQLiteCounter:
    """Statements and commits on one SQLite connection (``set_trace_callback``)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.kinds: collections.Counter[str] = collections.Counter()
        self.commits = 0
        self.writing_commits = 0
        self._wrote = False
        conn.set_trace_callback(self._trace)

    @property
    def statements(self) -> int:
        return sum(self.kinds.values())

    def _trace(self, statement: str) -> None:
        kind = head(statement)
        self.kinds[kind] += 1
        if kind in WRITES:
            if not self.conn.in_transaction:  # autocommitted
                self.commits += 1
                self.writing_commits += 1
            else:
                self._wrote = True
        elif kind in {"COMMIT", "END"}:
            self.commits += 1
            self.writing_commits += int(self._wrote)
            self._wrote = False
        elif kind == "ROLLBACK" and "TO" not in statement.upper():
            self._wrote = False

    def snapshot(self) -> tuple[int, int, int]:
        return self.statements, self.commits, self.writing_commits

    def close(self) -> None:
        self.conn.set_trace_callback(None)


def sqlite_ledger(folder: str) -> tuple[SQLiteLedger, SQLiteCounter]:
    ledger = SQLiteLedger(Path(folder) / "ledger.sqlite3")
    return ledger, SQLiteCounter(round_trips.ledger_connection(ledger))


def integration(org: Any, owner: str, campaign: str, http: httpx.Client, ledger: Any) -> Any:
    adapter = SalesforceAdapter(http, StaticToken(org.issue_token(), org.instance_url))
    engine = Integration(
        adapter, round_trips.config(owner, campaign), ledger=ledger, clock=lambda: round_trips.NOW
    )
    engine.preflight()
    return engine


def backfill(count: int, open_ledger: Callable[[], Any]) -> None:
    org, owner, campaign = round_trips.seeded_org(count)
    with contextlib.ExitStack() as stack:
        http = stack.enter_context(httpx.Client(transport=org.transport()))
        ledger, counter = open_ledger()
        stack.callback(ledger.close)
        engine = integration(org, owner, campaign, http, ledger)
        before = counter.snapshot()
        kinds = collections.Counter(counter.kinds)
        start = time.perf_counter()
        report = engine.backfill(list(round_trips.conversations(count)), now=round_trips.NOW)
        wall = time.perf_counter() - start
        statements, commits, writing = (
            a - b for a, b in zip(counter.snapshot(), before, strict=True)
        )
    print(f"   backfill of {count:,} visitors: {dict(sorted(report.counts.items()))}")
    print(
        f"     statements per visitor   : {statements / count:.3f}  (target <= 2; "
        f"{statements:,} in all)"
    )
    print(f"     by kind                  : {dict(sorted((counter.kinds - kinds).items()))}")
    print(f"     commits (writing)        : {commits} ({writing})  wall {wall:.1f} s")


def one_visitor(kind: str, open_ledger: Callable[[], Any]) -> None:
    start_at = {"new": 1_000_000, "lead": 7}[kind]  # round_trips.kind_of(7) is an existing Lead
    seeded = 0 if kind == "new" else 10
    org, owner, campaign = round_trips.seeded_org(seeded)
    with contextlib.ExitStack() as stack:
        http = stack.enter_context(httpx.Client(transport=org.transport()))
        ledger, counter = open_ledger()
        stack.callback(ledger.close)
        engine = integration(org, owner, campaign, http, ledger)
        (conv,) = round_trips.conversations(1, start=start_at)
        s0, c0, w0 = counter.snapshot()
        engine.conversation_closed(conv)
        _, c1, w1 = counter.snapshot()
        report = engine.run_due(now=round_trips.NOW)
        s2, c2, w2 = counter.snapshot()
    label = "new visitor (Lead, 2 Tasks, membership)" if kind == "new" else "existing Lead"
    print(f"   one {label}: {dict(report.counts)}")
    print(
        f"     commits (writing)        : {c2 - c0} ({w2 - w0})  (target <= 3; "
        f"conversation_closed {c1 - c0} ({w1 - w0}), run_due {c2 - c1} ({w2 - w1}))"
    )
    print(f"     statements               : {s2 - s0}")


# -- PostgreSQL --------------------------------------------------------------------------------


class PostgresCounter:
    """Statements the PostgreSQL ledger sends, and its transactions (patched in, measuring)."""

    def __init__(self) -> None:
        self.kinds: collections.Counter[str] = collections.Counter()
        self.commits = 0
        self.writing_commits = 0
        self._depth = 0
        self._wrote = False

    @property
    def statements(self) -> int:
        return sum(self.kinds.values())

    def snapshot(self) -> tuple[int, int, int]:
        return self.statements, self.commits, self.writing_commits

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                self.commits += 1
                self.writing_commits += int(self._wrote)
                self._wrote = False

    def statement(self, sql: str) -> None:
        self.kinds[head(sql)] += 1
        if any(word in sql.upper() for word in ("INSERT ", "UPDATE ", "DELETE ")):
            self._wrote = True


def patch_postgres(counter: PostgresCounter) -> Callable[[], None]:
    from signals_crm.ledger import postgres

    drive_sync = postgres._drive_sync  # noqa: SLF001  # measuring, not using
    run = postgres.PostgresLedger._run  # noqa: SLF001
    perform = getattr(postgres.PostgresLedger, "perform", None)

    def counted_drive(conn: Any, op: Any) -> Any:
        def statements() -> Any:
            answer = None
            try:
                statement = op.send(None)
                while True:
                    counter.statement(statement.sql)
                    answer = yield statement
                    statement = op.send(answer)
            except StopIteration as done:
                return done.value

        return drive_sync(conn, statements())

    def counted_run(self: Any, op: Any, **options: Any) -> Any:
        if options.get("read"):  # a read on the ledger's autocommit pool: no transaction
            return run(self, op, **options)
        with counter.transaction():
            return run(self, op, **options)

    postgres._drive_sync = counted_drive  # noqa: SLF001
    postgres.PostgresLedger._run = counted_run  # type: ignore[method-assign]  # noqa: SLF001
    if perform is not None:

        def counted_perform(self: Any, operations: Any, **options: Any) -> Any:
            with counter.transaction():
                return perform(self, operations, **options)

        postgres.PostgresLedger.perform = counted_perform  # type: ignore[method-assign]

    def undo() -> None:
        postgres._drive_sync = drive_sync  # noqa: SLF001
        postgres.PostgresLedger._run = run  # type: ignore[method-assign]  # noqa: SLF001
        if perform is not None:
            postgres.PostgresLedger.perform = perform  # type: ignore[method-assign]

    return undo


def postgres_runs(count: int) -> None:
    try:
        import psycopg

        from _services import PostgresCluster, drop_database, fresh_database
        from signals_crm.ledger.postgres import PostgresLedger
    except ImportError as error:
        print(f"3. PostgreSQL: skipped ({error})")
        return
    try:
        cluster = PostgresCluster()
        cluster.__enter__()
    except Exception as error:  # noqa: BLE001  # a figure we cannot take is said, not faked
        print(f"3. PostgreSQL: skipped (no throwaway cluster: {error})")
        return
    counter = PostgresCounter()
    undo = patch_postgres(counter)
    try:

        def open_ledger() -> tuple[Any, PostgresCounter]:
            name, conninfo = fresh_database(cluster, psycopg)
            names.append(name)
            return PostgresLedger(conninfo), counter

        names: list[str] = []
        print("3. PostgreSQL (throwaway cluster on loopback)")
        backfill(count, open_ledger)
        one_visitor("new", open_ledger)
        one_visitor("lead", open_ledger)
        for name in names:
            drop_database(cluster, name, psycopg)
    finally:
        undo()
        cluster.__exit__(None, None, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, default=2_000)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        folders = iter(range(1_000))

        def open_sqlite() -> tuple[SQLiteLedger, SQLiteCounter]:
            path = Path(folder) / str(next(folders))
            path.mkdir()
            return sqlite_ledger(str(path))

        print("1-2. SQLite (a file on disk, synchronous=FULL)")
        backfill(args.visitors, open_sqlite)
        one_visitor("new", open_sqlite)
        one_visitor("lead", open_sqlite)
    if not args.skip_postgres:
        postgres_runs(args.visitors)


if __name__ == "__main__":
    main()
