"""Fixtures of the console tests: a ledger with syncs in every view, on SQLite or PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from _services import without_extras
from signals_crm.core.model import Conversation, Visitor
from signals_crm.ledger import CommandRecord, CommandState, SQLiteLedger


def _conversation(cid: str, email: str, closed: datetime, score: int = 3) -> Conversation:
    return Conversation(id=cid, closed_at=closed, lead_score=score, visitor=Visitor(email=email))


def fill(ledger: Any) -> None:
    """60 due, 4 in-flight, 10 scheduled, 20 done and 3 dead syncs in ``ledger``."""
    now = datetime.now(UTC)
    past = now - timedelta(days=2)
    ledger.schedule_many(
        (_conversation(f"fly-{i}", f"fly{i}@x.test", past), past - timedelta(hours=1))
        for i in range(4)
    )
    ledger.claim(None, 4, owner="worker-a:4242", lease=timedelta(hours=1))
    entries = [
        (_conversation(f"due-{i:03}", f"due{i}@x.test", past), past + timedelta(minutes=i))
        for i in range(60)
    ]
    entries += [
        (_conversation(f"later-{i}", f"later{i}@x.test", past), now + timedelta(hours=i + 1))
        for i in range(10)
    ]
    entries += [
        (_conversation(f"done-{i:02}", f"done{i}@x.test", past), past - timedelta(hours=2))
        for i in range(20)
    ]
    dead_reasons = {
        "dead-0": "FIELD_CUSTOM_VALIDATION_EXCEPTION: Phone must have 10 digits",
        "dead-1": "gave up after 8 runs: UNABLE_TO_LOCK_ROW",
        "dead-2": "INVALID_EMAIL_ADDRESS: <script>alert(1)</script>",
    }
    entries += [
        (_conversation(cid, f"{cid}@x.test", past, 2), past - timedelta(hours=3))
        for cid in dead_reasons
    ]
    ledger.schedule_many(entries)
    ledger.complete([f"done-{i:02}" for i in range(20)], "created")
    ledger.record(
        [
            CommandRecord(
                key="done-00:person",
                conversation_id="done-00",
                kind="create_person",
                state=CommandState.CONFIRMED,
                updated_at=past,
                crm_id="00Q000000000001AAA",
            ),
            CommandRecord(
                key="dead-0:person",
                conversation_id="dead-0",
                kind="create_person",
                state=CommandState.FAILED,
                updated_at=past,
                reason=dead_reasons["dead-0"],
                attempts=1,
            ),
        ]
    )
    for cid, reason in dead_reasons.items():
        ledger.dead_letter(cid, reason)


@pytest.fixture
def console_ledger(tmp_path: Path) -> Path:
    """A SQLite ledger file holding the syncs of :func:`fill`."""
    path = tmp_path / "ledger.sqlite3"
    with SQLiteLedger(path) as ledger:
        fill(ledger)
    return path


def pytest_ignore_collect(collection_path: Path) -> bool | None:
    """Without the ``console`` extra (the nox session without extras, and only there), the
    console's modules are left out and named; anywhere else a missing Starlette fails loudly."""
    if collection_path.name.startswith("test_console_") and without_extras():
        try:
            import starlette  # noqa: F401
        except ImportError:
            print(f"\nnot collected without the 'console' extra: {collection_path.name}")
            return True
    return None


@attrs.frozen
class Store:
    """A filled ledger on one of the stores: what the console is given, and a writable
    ledger on it for the tests' own checks."""

    kind: str
    source: Any
    """A SQLite path or a PostgreSQL conninfo."""

    def open(self) -> AbstractContextManager[Any]:
        if self.kind == "sqlite":
            return SQLiteLedger(self.source)
        from signals_crm.ledger.postgres import PostgresLedger

        return PostgresLedger(self.source)


@pytest.fixture(params=["sqlite", "postgres"])
def console_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The ledger of :func:`fill` on SQLite, then on PostgreSQL (the tests' throwaway server)."""
    if request.param == "sqlite":
        path = tmp_path / "ledger.sqlite3"
        with SQLiteLedger(path) as ledger:
            fill(ledger)
        yield Store("sqlite", path)
        return
    from signals_crm.ledger.postgres import PostgresLedger

    conninfo = request.getfixturevalue("postgres_database")
    with PostgresLedger(conninfo) as ledger:
        fill(ledger)
    yield Store("postgres", conninfo)
