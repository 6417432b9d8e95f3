"""What a backfill costs: API calls per visitor against the local Salesforce, and memory.

1. Calls: a backfill of N visitors (default 10,000; a fifth of them existing Leads to update,
   every one with a chat transcript, a new Lead joining the campaign) through the real
   Salesforce adapter and the local Salesforce, counting HTTP requests. The minimum that batch
   sizes allow is one request per 200 of each kind: Lead lookups, Contact lookups, creates,
   updates, tasks and memberships, plus the three preflight reads (the campaign check, the
   Lead describe and the CRM users). Lookup queries travel up to five in one composite
   request, so the count can go below that minimum; the requests are listed by kind.
2. Memory: the peak traced memory of the engine backfilling 10,000 and then 100,000 visitors
   into a CRM that stores nothing, with the SQLite ledger on disk; the ratio should stay near 1.

    python benchmarks/backfill_cost.py [--visitors N] [--skip-memory]
"""

from __future__ import annotations

import argparse
import collections
import itertools
import math
import tempfile
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from signals_crm.adapters.salesforce import SalesforceAdapter, StaticToken
from signals_crm.core.config import (
    Criteria,
    FieldMapping,
    FieldMappings,
    SyncConfig,
    UserMapEntry,
    UserMapping,
)
from signals_crm.core.crm import (
    CampaignMembershipWrite,
    PersonUpdate,
    PersonWrite,
    ReconcileQuery,
    TaskWrite,
    WriteResult,
)
from signals_crm.core.model import (
    AccountRecord,
    Conversation,
    CRMUser,
    ObjectSchema,
    Participants,
    PersonKind,
    PersonRecord,
    SignalsUser,
    Visitor,
)
from signals_crm.engine import Integration
from signals_crm.ledger import SQLiteLedger
from signals_crm.testing.salesforce import LocalSalesforce, SalesforceBackdoor
from signals_crm.testing.static import SALESFORCE_LIKE

CLOSED = datetime(2026, 11, 1, 12, tzinfo=UTC)
NOW = CLOSED + timedelta(days=1)
BATCH = 200


def config(owner: str, campaign: str) -> SyncConfig:
    return SyncConfig(
        criteria=Criteria.ALL,
        campaign_id=campaign,
        users=UserMapping((UserMapEntry(owner, signals_user_id="u1"),)),
        field_mappings=FieldMappings(
            lead=(
                FieldMapping("contact.first_name", "FirstName", overwrite=True),
                FieldMapping("contact.last_name", "LastName"),
                FieldMapping("contact.phone", "Phone", overwrite=True),
            )
        ),
        placeholders={"LastName": "[not provided]", "Company": "[not provided]"},
    )


def visitors(count: int) -> Iterator[Conversation]:
    for i in range(count):
        yield Conversation(
            id=f"c-{i}",
            closed_at=CLOSED,
            lead_score=2,
            visitor=Visitor(
                email=f"visitor{i}@bench.test",
                first_name=f"F{i}",
                last_name="L",
                phone="+1 555 0100",
            ),
            participants=Participants(last_routed=SignalsUser(id="u1")),
            transcript=f"Visitor {i}: hello",
        )


class Counting(httpx.BaseTransport):
    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.requests = 0
        self.kinds: collections.Counter[str] = collections.Counter()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        path = request.url.path.split("/services/data/", 1)[-1].split("/", 1)[-1]
        kind = "query" if path.startswith("query") else path.split("/0", 1)[0]
        self.kinds[f"{request.method} {kind}"] += 1
        return self.inner.handle_request(request)


def measure_calls(count: int) -> None:
    org = LocalSalesforce(daily_limit=10_000_000)
    door = SalesforceBackdoor(org)
    owner = door.seed_user(email="owner@vendor.test")
    campaign = door.seed_campaign(name="Backfill")
    existing = count // 5
    for i in range(existing):
        door.seed_person(
            kind=PersonKind.LEAD,
            email=f"visitor{i * 5}@bench.test",
            fields={"FirstName": "Old", "LastName": "L", "Company": "C"},
        )
    transport = Counting(org.transport())
    with tempfile.TemporaryDirectory() as folder, httpx.Client(transport=transport) as http:
        adapter = SalesforceAdapter(http, StaticToken(org.issue_token(), org.instance_url))
        ledger = SQLiteLedger(Path(folder) / "ledger.sqlite3")
        integration = Integration(
            adapter, config(owner, campaign), ledger=ledger, clock=lambda: NOW
        )
        start = time.perf_counter()
        report = integration.backfill(visitors(count), now=NOW)
        elapsed = time.perf_counter() - start
        ledger.close()
    created, updated = report.counts.get("created", 0), report.counts.get("updated", 0)
    per_kind = [count, count, created, updated, count, created]  # lookups x2, writes
    minimum = (
        sum(math.ceil(n / BATCH) for n in per_kind) + 3
    )  # + preflight: campaign, describe, users
    # Lookups share composite requests (up to five queries each), so they can go below it.
    print(f"visitors                     : {count:,} ({created:,} created, {updated:,} updated)")
    print(f"HTTP requests                : {transport.requests:,}")
    print(f"minimum the batch sizes allow: {minimum:,}")
    print(f"ratio to the minimum         : {transport.requests / minimum:.3f}  (target <= 1.1)")
    print(f"requests per visitor         : {transport.requests / count:.4f}")
    for kind, n in sorted(transport.kinds.items()):
        print(f"  {kind:<27}: {n:,}")
    print(f"wall time                    : {elapsed:.1f} s ({count / elapsed:,.0f} visitors/s)")


class NullCRM:
    """A Salesforce-shaped CRM that answers everything and keeps nothing (memory baseline)."""

    capabilities = SALESFORCE_LIKE

    def __init__(self) -> None:
        self._ids = itertools.count(1)

    def _ok(self, items: Sequence[object]) -> list[WriteResult]:
        return [WriteResult.success(f"00Q{next(self._ids):012d}") for _ in items]

    def find_people(
        self, emails: Sequence[str], fields: Sequence[str] = ()
    ) -> list[tuple[PersonRecord, ...]]:
        return [() for _ in emails]

    def find_accounts(
        self, domains: Sequence[str], fields: Sequence[str] = ()
    ) -> list[tuple[AccountRecord, ...]]:
        return [() for _ in domains]

    def list_users(self) -> list[CRMUser]:
        return [CRMUser(id="005OWNER")]

    def describe(self, object_name: str) -> ObjectSchema:
        return ObjectSchema(object_name, [])

    def create_people(self, records: Sequence[PersonWrite]) -> list[WriteResult]:
        return self._ok(records)

    def update_people(self, records: Sequence[PersonUpdate]) -> list[WriteResult]:
        return self._ok(records)

    def create_tasks(self, tasks: Sequence[TaskWrite]) -> list[WriteResult]:
        return self._ok(tasks)

    def add_to_campaign(self, memberships: Sequence[CampaignMembershipWrite]) -> list[WriteResult]:
        return self._ok(memberships)

    def reconcile(self, queries: Sequence[ReconcileQuery]) -> list[str | None]:
        return [None for _ in queries]


def peak_memory(count: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        ledger = SQLiteLedger(Path(folder) / "ledger.sqlite3")
        integration = Integration(
            NullCRM(), config("005OWNER", "701CAMPAIGN"), ledger=ledger, clock=lambda: NOW
        )
        tracemalloc.start()
        integration.backfill(visitors(count), now=NOW)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        ledger.close()
    return peak / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--visitors", type=int, default=10_000)
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    measure_calls(args.visitors)
    if not args.skip_memory:
        small = peak_memory(10_000)
        large = peak_memory(100_000)
        print(f"peak memory, 10,000 visitors : {small:.1f} MB")
        print(f"peak memory, 100,000 visitors: {large:.1f} MB")
        print(f"ratio                        : {large / small:.2f}  (target <= 1.2)")


if __name__ == "__main__":
    main()
