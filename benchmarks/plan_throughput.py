"""How fast the pure core plans: conversations per second and peak memory.

Plans 100,000 synthetic conversations (10 mapped fields, 2 activities each, CRM states mixed:
a third new, a third existing Leads with changes, some Contacts, some ineligible) in batches of
200 as the engine does, on one core, and prints the figures: with one ``Planner`` kept across
the batches (what the engine does; the target applies to it), and with ``plan_sync``, which
compiles the rules again for each batch.

    python benchmarks/plan_throughput.py [--count N] [--batch N]
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
import tracemalloc
from collections.abc import Callable, Generator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from signals_crm.core.config import (
    Criteria,
    FieldMapping,
    FieldMappings,
    SyncConfig,
    UserMapEntry,
    UserMapping,
)
from signals_crm.core.model import (
    Company,
    Conversation,
    Meeting,
    Participants,
    PersonKind,
    PersonRecord,
    SignalsUser,
    Traffic,
    Visitor,
)
from signals_crm.core.plan import Plan, Planner, plan_sync
from signals_crm.testing.static import SALESFORCE_LIKE, run_with_state

CLOSED = datetime(2026, 11, 1, 12, tzinfo=UTC)
NOW = CLOSED + timedelta(days=1)

MAPPINGS = FieldMappings(
    lead=(
        FieldMapping("contact.first_name", "FirstName", overwrite=True),
        FieldMapping("contact.last_name", "LastName", overwrite=True),
        FieldMapping("contact.phone", "Phone", overwrite=True),
        FieldMapping("contact.mobile_phone", "MobilePhone"),
        FieldMapping("contact.description", "Description"),
        FieldMapping("contact.honorific", "Salutation"),
        FieldMapping("chat.traffic_source", "LeadSource", overwrite=True),
        FieldMapping("chat.referrer", "Referrer__c"),
        FieldMapping("chat.traffic_campaign", "Campaign__c"),
        FieldMapping("company.name", "Company"),
    )
)
USERS = UserMapping(tuple(UserMapEntry(f"005U{i:03d}", signals_user_id=f"u{i}") for i in range(50)))
CONFIG = SyncConfig(
    criteria=Criteria.ONE_STAR,
    synchronization_delay=timedelta(minutes=30),
    campaign_id="701CAMPAIGN",
    field_mappings=MAPPINGS,
    users=USERS,
    placeholders={"LastName": "[not provided]", "Company": "[not provided]"},
)


def conversation(i: int) -> Conversation:
    return Conversation(
        id=f"c-{i}",
        closed_at=CLOSED,
        lead_score=i % 4,
        visitor=Visitor(
            email=f"visitor{i}@company{i % 997}.test",
            first_name=f"First{i}",
            last_name=f"Last{i}",
            phone="+1 (555) 123-4567",
            mobile_phone="+44 7700 900412",
            description="Evaluating chat-to-CRM routing.",
            honorific="Dr.",
        ),
        company=Company(domain=f"company{i % 997}.test", name=f"Company {i % 997}"),
        participants=Participants(
            meeting_scheduler=SignalsUser(id=f"u{i % 60}"),
            last_routed=SignalsUser(id=f"u{(i + 1) % 50}"),
            closer=SignalsUser(id="u2"),
        ),
        transcript=f"Visitor: hello {i}\nAgent: hi there",
        meeting=Meeting(id=str(i), name="Demo"),
        traffic=Traffic(traffic_source="bing", referrer="Direct", traffic_campaign="fall"),
    )


def crm_state(batch: list[Conversation]) -> list[PersonRecord]:
    records = []
    for conv in batch:
        n = int(conv.id[2:])
        email = conv.email or ""
        if n % 3 == 1:
            records.append(
                PersonRecord(
                    id=f"00Q{n}",
                    kind=PersonKind.LEAD,
                    email=email.upper(),
                    fields={"FirstName": f"First{n}", "LastName": "Old", "Phone": "1"},
                )
            )
        elif n % 7 == 2:
            records.append(PersonRecord(id=f"003{n}", kind=PersonKind.CONTACT, email=email))
    return records


def batches(count: int, size: int) -> Iterator[tuple[list[Conversation], list[PersonRecord]]]:
    for start in range(0, count, size):
        batch = [conversation(i) for i in range(start, min(count, start + size))]
        yield batch, crm_state(batch)


def timed(
    count: int,
    size: int,
    plan: Callable[[list[Conversation]], Generator[Any, Any, tuple[Plan, ...]]],
) -> tuple[float, int]:
    """Seconds spent planning ``count`` conversations, and the commands planned.

    Batches are built one at a time, as the engine streams them, and only the planning is
    timed: the figure is the core's rate, with one batch alive at a time. The time is the
    process's CPU time (``time.process_time``): other processes on shared cores do not count.
    """
    commands = 0
    elapsed = 0.0
    for batch, people in batches(count, size):
        start = time.process_time()
        plans = run_with_state(plan(batch), people=people)
        elapsed += time.process_time() - start
        commands += sum(len(p.commands) for p in plans)
        del plans  # the engine writes a batch's plans, then drops them before the next batch
    return elapsed, commands


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()

    # One planner for the whole stream, as the engine keeps one per configuration (building it
    # takes microseconds; its field maps are compiled in the timed region, at the first batch)
    planner = Planner(CONFIG, SALESFORCE_LIKE)
    elapsed, commands = timed(args.count, args.batch, lambda b: planner.plan(b, now=NOW))
    # ... and plan_sync, which compiles the rules again for every batch.
    one_shot, _ = timed(
        args.count, args.batch, lambda b: plan_sync(b, CONFIG, SALESFORCE_LIKE, now=NOW)
    )

    tracemalloc.start()
    planner = Planner(CONFIG, SALESFORCE_LIKE)
    for batch, people in itertools.islice(batches(args.count, args.batch), 50):
        run_with_state(planner.plan(batch, now=NOW), people=people)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    print(f"load average          : {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
    print(f"conversations planned : {args.count:,}")
    print(f"commands planned      : {commands:,}")
    print(f"CPU time              : {elapsed:.2f} s (process CPU)")
    print(f"conversations/second  : {args.count / elapsed:,.0f}  (target >= 50,000; a Planner)")
    print(f"  with plan_sync      : {args.count / one_shot:,.0f}  (rules compiled per batch)")
    print(f"peak planning memory  : {peak / 1e6:.1f} MB per stream of {args.batch}-batches")


if __name__ == "__main__":
    main()
