"""How long the console's pages take on a large SQLite ledger.

Workload: a ledger of N syncs (default 1,000,000) for one integration — 70% done, 20% due,
5% scheduled, 4% dead letters (each with a CRM error), 1% in flight (leased) — and 100,000
confirmed commands. The ledger is built once by a bulk insert (one transaction per 50,000 rows,
``synchronous=OFF`` while building: a benchmark file, not a production one) and reused when
it already exists with the same N.

For each page it prints the median and 95th percentile of ``--repeat`` requests, twice:
``query`` is the read-only browser's queries alone (what the page costs the ledger), ``page``
is the whole HTTP round trip to the console served by uvicorn on loopback (queries, rendering,
the server). Run::

    python benchmarks/console_pages.py                 # 1,000,000 syncs
    python benchmarks/console_pages.py --syncs 100000  # quicker
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
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from signals_crm.console import create_console, salesforce_links
from signals_crm.core.model import Conversation, Visitor
from signals_crm.ledger import SQLiteLedger
from signals_crm.ledger.browse import Cursor, LedgerBrowser, SyncFilter, View
from signals_crm.ledger.codec import conversation_to_dict
from signals_crm.settings import IntegrationSettings

CHUNK = 50_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(value: datetime) -> int:
    return (value - EPOCH) // timedelta(microseconds=1)


def build(path: Path, count: int, now: datetime) -> float:
    """Create the ledger's schema through the library, then bulk-insert ``count`` syncs."""
    started = time.perf_counter()
    SQLiteLedger(path).close()
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
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    columns = {r[1] for r in conn.execute("PRAGMA table_info(due_syncs)")}
    tenant = "integration" in columns
    names = [
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
    ] + (["integration"] if tenant else [])
    sql = (
        f"INSERT INTO due_syncs ({', '.join(names)}) "  # noqa: S608  # constant names
        f"VALUES ({', '.join('?' * len(names))})"
    )
    base = micros(now - timedelta(days=30))
    lease_until = micros(now + timedelta(days=365))
    errors = (
        "FIELD_CUSTOM_VALIDATION_EXCEPTION: Phone must have 10 digits",
        "gave up after 8 runs: UNABLE_TO_LOCK_ROW",
        "INVALID_EMAIL_ADDRESS: bad address",
        "STRING_TOO_LONG: Company",
    )

    def row(i: int) -> tuple[object, ...]:
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
        values: tuple[object, ...] = (
            cid,
            due,
            state,
            attempts,
            error,
            outcome,
            conversation,
            owner,
            until,
            email,
        )
        return (*values, "default") if tenant else values

    for start in range(0, count, CHUNK):
        conn.execute("BEGIN")
        conn.executemany(sql, (row(i) for i in range(start, min(start + CHUNK, count))))
        conn.execute("COMMIT")
    command_columns = {r[1] for r in conn.execute("PRAGMA table_info(commands)")}
    extra = ", integration" if "integration" in command_columns else ""
    marks = ", ?" if extra else ""
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO commands (key, conversation_id, kind, state, crm_id, attempts, "  # noqa: S608
        f"updated_at{extra}) VALUES (?, ?, 'create_person', 'confirmed', ?, 1, ?{marks})",
        (
            (f"c-{i:07}:person", f"c-{i:07}", f"00Q{i:015}", base, *(("default",) if extra else ()))
            for i in range(0, count, max(1, count // 100_000))
        ),
    )
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--syncs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--ledger", type=Path, help="where to keep the ledger (default: temp)")
    args = parser.parse_args()
    now = datetime.now(UTC)
    folder = Path(tempfile.gettempdir()) / "signals-crm-bench"
    folder.mkdir(exist_ok=True)
    path = args.ledger or folder / f"console-{args.syncs}.sqlite3"
    if not path.exists():
        seconds = build(path, args.syncs, now)
        size = path.stat().st_size / 2**20
        print(f"built {args.syncs:,} syncs in {seconds:.1f} s ({size:,.0f} MiB): {path}")
    else:
        print(f"reusing {path}")

    browser = LedgerBrowser(path)
    deep = browser.page(View.DONE, now, limit=1, filters=SyncFilter(conversation_id="c-0500001"))
    deep_cursor = deep.rows[0] if deep.rows else browser.page(View.DONE, now, limit=500).rows[-1]
    cursor = Cursor(deep_cursor.due_at, deep_cursor.conversation_id)
    queries: dict[str, Callable[[], object]] = {
        "counts, exact (every view)": lambda: browser.counts(now),
        "counts, up to 10,000 (the console)": lambda: browser.counts(now, limit=10_000),
        "due, first page": lambda: browser.page(View.DUE, now),
        "done, a page half way down": lambda: browser.page(View.DONE, now, after=cursor),
        "dead letters, first page": lambda: browser.page(View.DEAD, now),
        "in flight, first page": lambda: browser.page(View.IN_FLIGHT, now),
        "due, filtered by email": lambda: browser.page(
            View.DUE, now, filters=SyncFilter(email="visitor700071@bench.test")
        ),
        "dead, filtered by error text": lambda: browser.page(
            View.DEAD, now, filters=SyncFilter(error_contains="STRING_TOO_LONG")
        ),
        "one conversation + its writes": lambda: (
            browser.sync(f"c-{args.syncs // 2:07}"),
            browser.commands_for(f"c-{args.syncs // 2:07}"),
        ),
    }
    print(f"\nledger queries alone ({args.repeat} runs each), ms: median / p95")
    for name, action in queries.items():
        median, p95 = timed(action, args.repeat)
        print(f"  {name:<38} {median:8.2f} / {p95:8.2f}")

    app = create_console(
        path,
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
        "conversation + explanation": f"/i/default/conversations/c-{args.syncs // 2:07}",
        "retry confirmation": "/i/default/conversations/c-0000095/retry",
    }
    print(f"\nwhole pages over HTTP on loopback ({args.repeat} runs each), ms: median / p95")
    try:
        with httpx.Client(base_url=base, timeout=60) as client:
            for name, page in pages.items():
                status = client.get(page).status_code
                if status != 200:
                    print(f"  {name}: HTTP {status}", file=sys.stderr)
                    return 1
                median, p95 = timed(lambda page=page: client.get(page), args.repeat)
                print(f"  {name:<38} {median:8.2f} / {p95:8.2f}")
    finally:
        stop()
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
