"""The AsyncLedger Protocol, and ThreadedLedger running a blocking ledger off the event loop."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import anyio
import pytest
from ledger_clock import T0, FakeClock

from signals_crm.core.model import Conversation, Visitor
from signals_crm.exceptions import LeaseLostError
from signals_crm.ledger import (
    AsyncLedger,
    CommandRecord,
    CommandState,
    Ledger,
    MemoryLedger,
    SQLiteLedger,
    ThreadedLedger,
)

pytestmark = pytest.mark.anyio
LEASE = timedelta(minutes=10)


def conv(cid: str) -> Conversation:
    """A closed conversation due before the tests' clock."""
    return Conversation(cid, closed_at=T0, lead_score=2, visitor=Visitor(email=f"{cid}@x.io"))


async def test_a_threaded_ledger_is_an_async_ledger(ledger: Ledger, clock: FakeClock) -> None:
    """Awaited calls behave as the blocking ones: claims, fences and their refusal included."""
    threaded = ThreadedLedger(ledger)
    assert isinstance(threaded, AsyncLedger)
    await threaded.schedule_many([(conv("c1"), T0), (conv("c2"), T0)])
    first = await threaded.claim(limit=1, owner="a", lease=LEASE)
    clock.advance(LEASE)
    second = await threaded.claim(limit=2, owner="b", lease=LEASE)
    assert [s.conversation_id for s in second] == ["c1", "c2"]
    stale = CommandRecord(
        "c1:person", "c1", "create_person", CommandState.SENT, T0, fence=first[0].fence
    )
    with pytest.raises(LeaseLostError):
        await threaded.record([stale])
    fences = {s.conversation_id: s.fence for s in second}
    assert await threaded.complete(fences, "created", fences=fences) == 2
    assert (await threaded.stats()).syncs["done"] == 2  # type: ignore[index]
    assert await threaded.get_due("nope") is None


async def test_the_event_loop_runs_while_a_call_waits_for_the_file(tmp_path: Path) -> None:
    """While another process holds the SQLite write lock, an awaited write waits in its thread
    and other tasks keep running; the write lands once the lock is released."""
    path = tmp_path / "ledger.db"
    SQLiteLedger(path).close()
    ticks = 0
    ticked = anyio.Event()

    async def tick() -> None:
        nonlocal ticks
        while ticks < 5:
            await anyio.sleep(0.01)
            ticks += 1
        ticked.set()

    with closing(sqlite3.connect(path, isolation_level=None)) as holder:
        holder.execute("BEGIN IMMEDIATE")  # the write lock, as another process would hold it
        async with ThreadedLedger(SQLiteLedger(path, busy_timeout=30)) as threaded:
            async with anyio.create_task_group() as group:
                group.start_soon(threaded.schedule, conv("c1"), T0)
                group.start_soon(tick)
                await ticked.wait()  # the loop ran on while the write waited for the lock
                holder.execute("COMMIT")
            stored = await threaded.get_due("c1")
            assert stored is not None
            assert ticks == 5


async def test_closing_through_the_async_context_closes_the_ledger() -> None:
    """Leaving ``async with`` closes the wrapped ledger."""
    memory = MemoryLedger()
    async with ThreadedLedger(memory) as threaded:
        await threaded.schedule(conv("c1"), T0)
    with pytest.raises(Exception, match="closed"):
        memory.get_due("c1")
