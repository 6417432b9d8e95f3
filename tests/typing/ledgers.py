"""Type-checked, never run: the built-in ledgers satisfy the ledger Protocols."""

from __future__ import annotations

from datetime import timedelta

from signals_crm.ledger import AsyncLedger, Ledger, MemoryLedger, SQLiteLedger, ThreadedLedger


async def both_protocols() -> None:
    """Each built-in ledger is a Ledger, and ThreadedLedger makes one an AsyncLedger."""
    memory: Ledger = MemoryLedger()
    disk: Ledger = SQLiteLedger(":memory:")
    awaited: AsyncLedger = ThreadedLedger(disk)
    claimed = await awaited.claim(limit=10, owner="worker", lease=timedelta(minutes=5))
    fences = {s.conversation_id: s.fence for s in claimed}
    await awaited.complete(fences, "created", fences=fences)
    memory.close()
    await awaited.close()
