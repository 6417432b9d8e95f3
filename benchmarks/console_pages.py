"""How long the console's pages take on a large ledger, on SQLite and on PostgreSQL.

Workload: a ledger of N syncs (default 1,000,000) for one integration — 70% done, 20% due,
5% scheduled, 4% dead letters (each with a CRM error), 1% in flight (leased) — and 100,000
confirmed commands. The schema is created through the library, then the rows are bulk-loaded:
SQLite by inserts (one transaction per 50,000 rows, ``synchronous=OFF`` while building: a
benchmark file, not a production one; reused when it already exists with the same N),
PostgreSQL by ``COPY`` into a throwaway cluster (``initdb`` into a temporary folder, on a Unix
socket, as ``tests/_services.py`` does), then ``VACUUM ANALYZE``.

For each store and each page it prints the median and 95th percentile of ``--repeat``
requests, twice: ``query`` is the read-only browser's queries alone (what the page costs the
ledger), ``page`` is the whole HTTP round trip to the console served by uvicorn on loopback
(queries, rendering, the server). Run::

    python benchmarks/console_pages.py                      # 1,000,000 syncs, both stores
    python benchmarks/console_pages.py --syncs 100000       # quicker
    python benchmarks/console_pages.py --store sqlite       # or postgres
"""

from __future__ import annotations

import argparse
import json
import socket
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from signals_crm.console import create_console, salesforce_links
from signals_crm.core.model import Conversation, Visitor
from signals_crm.ledger import SQLiteLedger
from signals_crm.ledger.browse import Cursor, LedgerBrowser, SyncFilter, View
from signals_crm.ledger.codec import conversation_to_dict
from signals_crm.settings import IntegrationSettings

CHUNK = 50_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TESTS = Path(__file__).resolve().parent.parent / "tests"
SYNC_COLUMNS = (
    "conversation_id",
    "due_at",
    "state",
    "attempts",
    "last_error",
    "outcome",
    "conversation",
    "lease_owner",
    "lease_until",
    "email",
)


def micros(value: datetime) -> int:
    return (value - EPOCH) // timedelta(microseconds=1)


def sync_rows(count: int, now: datetime) -> Iterator[tuple[object, ...]]:
    """The workload's syncs, as the columns of :data:`SYNC_COLUMNS`."""
    template = json.dumps(
        conversation_to_dict(
            Conversation(
                id="CID",
                closed_at=now - timedelta(days=3),
                lead_score=3,
                visitor=Visitor(email="EMAIL", first_name="Visitor", last_name="Bench"),
            )
        ),
        separators=(",", ":"),
    )
    base = micros(now - timedelta(days=30))
    lease_until = micros(now + timedelta(days=365))
    errors = (
        "FIELD_CUSTOM_VALIDATION_EXCEPTION: Phone must have 10 digits",
        "gave up after 8 runs: UNABLE_TO_LOCK_ROW",
        "INVALID_EMAIL_ADDRESS: bad address",
        "STRING_TOO_LONG: Company",
    )
    for i in range(count):
        cid = f"c-{i:07}"
        email = f"visitor{i}@bench.test"
        slot = i % 100
        attempts, error, outcome, owner, until = 0, None, None, None, None
        if slot < 70:
            state, due = "done", base + i * 1_000_000
            outcome = "created" if slot % 3 else "updated"
        elif slot < 90:
            state, due = "pending", base + i * 1_000_000
        elif slot < 95:
            state, due = "pending", micros(now) + i * 1_000_000
        elif slot < 99:
            state, due = "dead", base + i * 1_000_000
            attempts, error = 1 + slot % 8, errors[i % len(errors)]
        else:
            state, due = "pending", base + i * 1_000_000
            owner, until = f"worker-{i % 4}", lease_until
        conversation = template.replace("CID", cid).replace("EMAIL", email)
        yield (cid, due, state, attempts, error, outcome, conversation, owner, until, email)


def command_rows(count: int, now: datetime) -> Iterator[tuple[object, ...]]:
    """(key, conversation id, CRM id, updated at) of the confirmed commands."""
    base = micros(now - timedelta(days=30))
    for i in range(0, count, max(1, count // 100_000)):
        yield (f"c-{i:07}:person", f"c-{i:07}", f"00Q{i:015}", base)


def build_sqlite(path: Path, count: int, now: datetime) -> float:
    """Create the ledger's schema through the library, then bulk-insert ``count`` syncs."""
    started = time.perf_counter()
    SQLiteLedger(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    names = [*SYNC_COLUMNS, "integration"]
    sql = (
        f"INSERT INTO due_syncs ({', '.join(names)}) "  # noqa: S608  # constant names
        f"VALUES ({', '.join('?' * len(names))})"
    )
    rows = sync_rows(count, now)
    for start in range(0, count, CHUNK):
        conn.execute("BEGIN")
        conn.executemany(sql, ((*next(rows), "default") for _ in range(min(CHUNK, count - start))))
        conn.execute("COMMIT")
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO commands (key, conversation_id, kind, state, crm_id, attempts, updated_at, "
        "integration) VALUES (?, ?, 'create_person', 'confirmed', ?, 1, ?, 'default')",
        command_rows(count, now),
    )
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return time.perf_counter() - started


def build_postgres(conninfo: str, count: int, now: datetime) -> float:
    """The same rows on PostgreSQL: the schema through the library, then COPY."""
    import psycopg

    from signals_crm.ledger.postgres import PostgresLedger

    started = time.perf_counter()
    PostgresLedger(conninfo).close()
    with psycopg.connect(conninfo) as conn:
        columns = ", ".join([*SYNC_COLUMNS, "integration"])
        with (
            conn.cursor() as cursor,
            cursor.copy(f"COPY signals_crm.due_syncs ({columns}) FROM STDIN") as copy,
        ):
            for row in sync_rows(count, now):
                copy.write_row((*row, "default"))
        with (
            conn.cursor() as cursor,
            cursor.copy(
                "COPY signals_crm.commands (key, conversation_id, crm_id, updated_at, kind, state, "
                "attempts, integration) FROM STDIN"
            ) as copy,
        ):
            for row in command_rows(count, now):
                copy.write_row((*row, "create_person", "confirmed", 1, "default"))
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - started


def timed(action: Callable[[], object], repeat: int) -> tuple[float, float]:
    action()  # warm the page cache and the code paths
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.95))]


def serve(app: object) -> tuple[str, Callable[[], None]]:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no delayed-ACK stalls
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()

    return f"http://127.0.0.1:{sock.getsockname()[1]}", stop


def measure(source: Any, syncs: int, repeat: int, now: datetime) -> int:
    """Print the queries' and the pages' times over ``source`` (a path or a conninfo)."""
    browser = LedgerBrowser(source)
    deep = browser.page(View.DONE, now, limit=1, filters=SyncFilter(conversation_id="c-0500001"))
    deep_cursor = deep.rows[0] if deep.rows else browser.page(View.DONE, now, limit=500).rows[-1]
    cursor = Cursor(deep_cursor.due_at, deep_cursor.conversation_id)
    flying = browser.page(View.IN_FLIGHT, now, limit=50)
    flying_cursor = flying.next_cursor
    queries: dict[str, Callable[[], object]] = {
        "counts, exact (every view)": lambda: browser.counts(now),
        "counts, up to 10,000 (the console)": lambda: browser.counts(now, limit=10_000),
        "due, first page": lambda: browser.page(View.DUE, now),
        "done, a page half way down": lambda: browser.page(View.DONE, now, after=cursor),
        "dead letters, first page": lambda: browser.page(View.DEAD, now),
        "in flight, first page": lambda: browser.page(View.IN_FLIGHT, now),
        "in flight, second page": lambda: browser.page(View.IN_FLIGHT, now, after=flying_cursor),
        "due, filtered by email": lambda: browser.page(
            View.DUE, now, filters=SyncFilter(email="visitor700071@bench.test")
        ),
        "dead, filtered by error text": lambda: browser.page(
            View.DEAD, now, filters=SyncFilter(error_contains="STRING_TOO_LONG")
        ),
        "one conversation + its writes": lambda: (
            browser.sync(f"c-{syncs // 2:07}"),
            browser.commands_for(f"c-{syncs // 2:07}"),
        ),
    }
    print(f"\n  ledger queries alone ({repeat} runs each), ms: median / p95")
    for name, action in queries.items():
        median, p95 = timed(action, repeat)
        print(f"    {name:<38} {median:8.2f} / {p95:8.2f}")

    app = create_console(
        source,
        authenticate=lambda _request: "bench",  # a benchmark on loopback; never in a host
        settings=IntegrationSettings.from_dict({"criteria": "two_stars"}),
        crm_links=salesforce_links("https://bench.my.salesforce.test"),
    )
    base, stop = serve(app)
    token = cursor.token()
    pages = {
        "start page (all integrations)": "/",
        "integration overview": "/i/default/",
        "due syncs, first page": "/i/default/syncs?view=due",
        "done syncs, half way down": f"/i/default/syncs?view=done&after={token}",
        "dead letters, first page": "/i/default/syncs?view=dead",
        "in flight": "/i/default/syncs?view=in_flight",
        "filter by email": "/i/default/syncs?view=due&email=visitor700071@bench.test",
        "filter dead by error": "/i/default/syncs?view=dead&error=STRING_TOO_LONG",
        "conversation + explanation": f"/i/default/conversations/c-{syncs // 2:07}",
        "retry confirmation": "/i/default/conversations/c-0000095/retry",
    }
    print(f"\n  whole pages over HTTP on loopback ({repeat} runs each), ms: median / p95")
    try:
        with httpx.Client(base_url=base, timeout=60) as client:
            for name, page in pages.items():
                status = client.get(page).status_code
                if status != 200:
                    print(f"    {name}: HTTP {status}", file=sys.stderr)
                    return 1
                median, p95 = timed(lambda page=page: client.get(page), repeat)
                print(f"    {name:<38} {median:8.2f} / {p95:8.2f}")
    finally:
        stop()
        browser.close()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--syncs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--store", choices=["both", "sqlite", "postgres"], default="both")
    parser.add_argument("--ledger", type=Path, help="where to keep the SQLite ledger")
    args = parser.parse_args()
    now = datetime.now(UTC)
    failed = 0
    if args.store in ("both", "sqlite"):
        folder = Path(tempfile.gettempdir()) / "signals-crm-bench"
        folder.mkdir(exist_ok=True)
        path = args.ledger or folder / f"console-v4-{args.syncs}.sqlite3"
        print(f"SQLite, {args.syncs:,} syncs")
        if not path.exists():
            seconds = build_sqlite(path, args.syncs, now)
            size = path.stat().st_size / 2**20
            print(f"  built in {seconds:.1f} s ({size:,.0f} MiB): {path}")
        else:
            print(f"  reusing {path}")
        failed |= measure(path, args.syncs, args.repeat, now)
    if args.store in ("both", "postgres"):
        sys.path.insert(0, str(TESTS))
        from _services import PostgresCluster  # the tests' throwaway cluster

        print(f"\nPostgreSQL, {args.syncs:,} syncs")
        with PostgresCluster() as cluster:
            import psycopg

            with psycopg.connect(cluster.conninfo, autocommit=True) as conn:
                conn.execute("CREATE DATABASE console_bench")
            conninfo = cluster.database("console_bench")
            seconds = build_postgres(conninfo, args.syncs, now)
            print(f"  built in {seconds:.1f} s (COPY, then VACUUM ANALYZE)")
            failed |= measure(conninfo, args.syncs, args.repeat, now)
    return failed


if __name__ == "__main__":
    sys.exit(main())
