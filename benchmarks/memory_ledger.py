"""What the in-memory ledger costs per visitor as it grows: the time per visitor must stay flat.

Workload, per size N (default 1,000, 10,000 and 30,000 visitors), all in one MemoryLedger:
schedule N conversations, then drain them the way the engine does, in batches of 200: claim a
batch, record each visitor's person command PLANNED → SENT → CONFIRMED and a task command
SENT → CONFIRMED, read its commands back, link its email, and complete the batch; a stats() call
closes each batch. No CRM is involved: the figures are the ledger's own time.

    python benchmarks/memory_ledger.py [--sizes 1000,10000,30000]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

from signals_crm.core.model import Conversation, PersonKind, Visitor
from signals_crm.ledger import CommandRecord, CommandState, MemoryLedger, PersonLink

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
BATCH = 200
S = CommandState


def _conversation(i: int) -> Conversation:
    return Conversation(
        f"conv-{i:06d}",
        closed_at=T0 - timedelta(hours=1),
        lead_score=2,
        visitor=Visitor(email=f"visitor-{i}@example.test"),
        transcript="Visitor: hello",
    )


def _commands(cid: str, state: CommandState, crm: str | None = None) -> list[CommandRecord]:
    return [
        CommandRecord(f"{cid}:person", cid, "create_person", state, T0, crm_id=crm, owner="w"),
        CommandRecord(f"{cid}:task:t", cid, "create_task", state, T0, crm_id=crm, owner="w"),
    ]


def run(size: int) -> tuple[float, float]:
    """Seconds to schedule ``size`` visitors, and to drain them, in one fresh ledger."""
    clock = [T0]
    ledger = MemoryLedger(clock=lambda: clock[0])
    conversations = [_conversation(i) for i in range(size)]
    start = time.perf_counter()
    ledger.schedule_many((c, T0 - timedelta(minutes=1)) for c in conversations)
    scheduled = time.perf_counter()
    drained = 0
    while batch := ledger.claim(limit=BATCH, owner="w", lease=timedelta(minutes=10)):
        ids = [d.conversation_id for d in batch]
        fences = {d.conversation_id: d.fence for d in batch}
        planned = [c for cid in ids for c in _commands(cid, S.PLANNED)[:1]]
        ledger.record(planned)
        ledger.record([c for cid in ids for c in _commands(cid, S.SENT)])
        ledger.record([c for cid in ids for c in _commands(cid, S.CONFIRMED, "00Q1")])
        for cid in ids:
            ledger.commands_for(cid)
        ledger.link_many(PersonLink(f"{cid}@example.test", "00Q1", PersonKind.LEAD) for cid in ids)
        ledger.complete(ids, "created", fences=fences)
        ledger.stats()
        drained += len(ids)
    finished = time.perf_counter()
    if drained != size:
        msg = f"drained {drained} of {size}"
        raise SystemExit(msg)
    return scheduled - start, finished - scheduled


def main() -> None:
    """Print milliseconds per visitor for each size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,30000")
    sizes = [int(s) for s in parser.parse_args().sizes.split(",")]
    print(f"{'visitors':>9} {'schedule ms/visitor':>20} {'drain ms/visitor':>17}")
    for size in sizes:
        schedule, drain = run(size)
        print(f"{size:>9} {schedule / size * 1000:>20.3f} {drain / size * 1000:>17.3f}")


if __name__ == "__main__":
    main()
