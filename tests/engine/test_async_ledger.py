"""The async engine awaits its ledger: ledger access is an effect the driver performs, so an
``AsyncLedger`` is awaited and a blocking one never runs on the event loop's thread."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from _services import import_or_unavailable
from signals_crm.core.config import FieldMapping, FieldMappings, SyncConfig
from signals_crm.core.model import Conversation, PersonKind, Visitor
from signals_crm.engine import AsyncIntegration
from signals_crm.exceptions import ConfigurationError
from signals_crm.ledger import CommandState, DueState, MemoryLedger, SQLiteLedger, ThreadedLedger
from signals_crm.reports import OutcomeKind
from signals_crm.testing.memory import InMemoryCRM

CLOSED = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
LATER = CLOSED + timedelta(hours=1)
CONFIG = SyncConfig(
    field_mappings=FieldMappings(lead=(FieldMapping("contact.last_name", "LastName"),)),
    placeholders={"LastName": "[not provided]", "Company": "[not provided]"},
)


def conv(cid: str = "c-1", email: str = "ada@acme.test") -> Conversation:
    return Conversation(
        id=cid, closed_at=CLOSED, lead_score=2, visitor=Visitor(email=email, last_name="Lovelace")
    )


def engine(ledger: Any) -> AsyncIntegration:
    crm = InMemoryCRM(person_kind=PersonKind.LEAD)
    return AsyncIntegration(crm, CONFIG, ledger=ledger, clock=lambda: LATER, settle=timedelta(0))


class ThreadNoting(SQLiteLedger):
    """A SQLite ledger that notes the thread each write and claim runs on."""

    threads: set[int]

    def record(self, commands: Any) -> None:
        self.threads.add(threading.get_ident())
        super().record(commands)

    def claim(self, *args: Any, **kwargs: Any) -> Any:
        self.threads.add(threading.get_ident())
        return super().claim(*args, **kwargs)


@pytest.mark.anyio
async def test_a_blocking_ledger_runs_off_the_event_loop(tmp_path: Path) -> None:
    """With SQLite, every ledger operation of an async run happens in a worker thread, never
    on the thread running the event loop (which would block on SQLite's locks and fsyncs)."""
    ledger = ThreadNoting(tmp_path / "ledger.db")
    ledger.threads = set()
    sync = engine(ledger)
    await sync.aconversation_closed(conv())
    report = await sync.arun_due(LATER)
    assert report.outcome("c-1").kind is OutcomeKind.CREATED
    assert ledger.threads
    assert threading.get_ident() not in ledger.threads
    ledger.close()


@pytest.mark.anyio
async def test_an_async_ledger_is_awaited() -> None:
    """An AsyncLedger (here ThreadedLedger over memory) is awaited by every async operation;
    the blocking conversation_closed refuses it, naming the ledger."""
    inner = MemoryLedger()
    sync = engine(ThreadedLedger(inner))
    with pytest.raises(ConfigurationError, match="ledger"):
        sync.conversation_closed(conv())
    assert (await sync.aconversation_closed(conv())) is not None
    report = await sync.arun_due(LATER)
    assert report.outcome("c-1").kind is OutcomeKind.CREATED
    manual = await sync.amanual_sync(conv("c-2", "bob@acme.test"))
    assert manual.kind is OutcomeKind.CREATED
    explanation = await sync.aexplain("c-1", now=LATER)
    assert explanation.ledger is not None
    assert inner.get_due("c-1").state is DueState.DONE
    assert {r.state for r in inner.commands_for("c-1")} == {CommandState.CONFIRMED}


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # psycopg's async driver is asyncio's
async def test_the_async_engine_runs_on_the_async_postgres_ledger(
    postgres_database: str,
) -> None:
    """AsyncIntegration over AsyncPostgresLedger: scheduled, claimed, written and completed,
    every ledger operation awaited on psycopg's async driver."""
    postgres = import_or_unavailable("signals_crm.ledger.postgres", "postgres")
    ledger = await postgres.AsyncPostgresLedger.open(postgres_database)
    async with ledger:
        sync = engine(ledger)
        await sync.aconversation_closed(conv())
        report = await sync.arun_due(LATER)
        assert report.outcome("c-1").kind is OutcomeKind.CREATED
        due = await ledger.get_due("c-1")
        assert due is not None
        assert due.state is DueState.DONE
        commands = await ledger.commands_for("c-1")
        assert {r.state for r in commands} == {CommandState.CONFIRMED}
