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


async def postgres_protocols() -> None:
    """Both PostgreSQL ledgers satisfy the fleet's Protocols: their methods are made once,
    from the shared operations, and still carry the Protocols' signatures."""
    from signals_crm.ledger.base import FleetLedger
    from signals_crm.ledger.postgres import AsyncPostgresLedger, PostgresLedger

    blocking: FleetLedger = PostgresLedger("dbname=signals")
    claimed = blocking.claim(limit=10, owner="worker", lease=timedelta(minutes=5))
    blocking.complete([s.conversation_id for s in claimed], "created")
    awaited: AsyncLedger = await AsyncPostgresLedger.open("dbname=signals")
    taken = await awaited.claim(limit=10, owner="worker", lease=timedelta(minutes=5))
    await awaited.release([s.conversation_id for s in taken], "worker")
    blocking.close()
    await awaited.close()
