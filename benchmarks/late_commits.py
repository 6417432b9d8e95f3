"""Late commits with and without the Salesforce sync key (issue 10, case 1): duplicates, calls.

Workload: N visitors (default 3,000), each a closed conversation with a chat transcript (one
Lead, one Task), one closing every 10 simulated seconds, synced by the real
``SalesforceAdapter`` against the in-process local Salesforce (so each 5-minute run writes
about 30 Leads in one Collections call and their 30 Tasks in another). A share of the write
requests (default 3%) "commit late": the client gets a timeout at once and Salesforce applies
the request ``--delay`` seconds later (default 1,200 s: longer than the engine's default
15-minute settle window, the case the window cannot cover), by an injected clock
(``signals_crm.testing.late.LateCommits``). The engine runs ``run_due`` every 5 simulated
minutes until nothing is due, then every late request is delivered and the org is audited:
Leads per visitor email, Tasks per activity.

It runs twice on fresh orgs and ledgers with the same seed: plain creates, then with
``sync_key_field`` (the org has ``Signals_Sync_Key__c`` on Lead and Task, and new Leads and
Tasks are Collections upserts by each write's key). Printed per run: duplicate Leads and
Tasks, visitors without a Lead, late requests, the org's API calls, simulated minutes until
done, and wall time split into the sandbox's (measured around every request it answers) and
the library's (the rest: engine, adapter, memory ledger).

    python benchmarks/late_commits.py [--visitors N] [--late 0.03] [--delay 1200] [--seed 0]
"""

from __future__ import annotations

import argparse
import collections
import time
from datetime import UTC, datetime, timedelta

import httpx

from signals_crm.adapters.salesforce import SalesforceAdapter, StaticToken
from signals_crm.core.config import Criteria, FieldMapping, FieldMappings, SyncConfig
from signals_crm.core.model import Conversation, Visitor
from signals_crm.engine import Integration
from signals_crm.ledger import DueState, MemoryLedger
from signals_crm.testing.late import LateCommits
from signals_crm.testing.salesforce import LocalSalesforce

KEY = "Signals_Sync_Key__c"
CLOSED = datetime(2026, 11, 20, 12, tzinfo=UTC)
STEP = timedelta(minutes=5)
ARRIVAL = timedelta(seconds=10)


class _Timed(httpx.BaseTransport):
    """The sandbox's transport, with the time spent answering summed up."""

    def __init__(self, org: LocalSalesforce) -> None:
        self.inner = org.transport()
        self.seconds = 0.0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        start = time.perf_counter()
        try:
            return self.inner.handle_request(request)
        finally:
            self.seconds += time.perf_counter() - start


def _conversations(n: int) -> list[Conversation]:
    return [
        Conversation(
            id=f"c-{i}",
            closed_at=CLOSED + i * ARRIVAL,
            lead_score=3,
            visitor=Visitor(email=f"visitor{i}@late.example.com", last_name=f"Visitor {i}"),
            transcript=f"Visitor {i}: hello",
        )
        for i in range(n)
    ]


def run(*, keyed: bool, visitors: int, late: float, delay: float, seed: int) -> dict[str, float]:
    org = LocalSalesforce(
        external_id_fields=(f"Lead.{KEY}", f"Task.{KEY}") if keyed else (),
        standard_rules=False,
        daily_limit=10_000_000,
        sleep=lambda _s: None,
    )
    clock = [0.0]
    timed = _Timed(org)
    faults = LateCommits(timed, rate=late, seed=seed, delay=delay, clock=lambda: clock[0])
    config = SyncConfig(
        criteria=Criteria.ALL,
        field_mappings=FieldMappings(lead=(FieldMapping("contact.last_name", "LastName"),)),
        placeholders={"LastName": "[not provided]", "Company": "[not provided]"},
    )
    start = time.perf_counter()
    with httpx.Client(transport=faults) as http:
        adapter = SalesforceAdapter(
            http,
            StaticToken(org.issue_token(), org.instance_url),
            sync_key_field=KEY if keyed else None,
        )
        now = CLOSED + timedelta(minutes=1)
        sync = Integration(
            adapter, config, ledger=MemoryLedger(), sleep=lambda _s: None, clock=lambda: now
        )
        for conversation in _conversations(visitors):
            sync.conversation_closed(conversation)
        steps = 0
        while steps < 2000:
            sync.run_due(now)
            if sync.ledger.stats().syncs[DueState.PENDING] == 0 and faults.pending == 0:
                break
            steps += 1
            now += STEP
            clock[0] += STEP.total_seconds()
        faults.deliver(everything=True)
    wall = time.perf_counter() - start
    leads = collections.Counter(str(r.get("Email")) for r in org.data.records["lead"].values())
    tasks = collections.Counter(str(r.get("Subject")) for r in org.data.records["task"].values())
    return {
        "duplicate_leads": sum(c - 1 for c in leads.values()),
        "duplicate_tasks": sum(c - 1 for c in tasks.values()),
        "visitors_without_lead": visitors - len(leads),
        "late_requests": faults.late,
        "api_calls": org.api_used,
        "simulated_minutes": steps * STEP.total_seconds() / 60,
        "sandbox_seconds": timed.seconds,
        "library_seconds": wall - timed.seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--visitors", type=int, default=3000)
    parser.add_argument("--late", type=float, default=0.03)
    parser.add_argument("--delay", type=float, default=1200.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(
        f"workload: {args.visitors} visitors (1 Lead + 1 Task each), {args.late:.0%} of writes "
        f"committing {args.delay:.0f} s late, default settle window, run_due every 5 minutes"
    )
    header = (
        f"{'mode':<14}{'dup Leads':>10}{'dup Tasks':>10}{'no Lead':>9}{'late':>6}"
        f"{'API calls':>11}{'minutes':>9}{'sandbox s':>11}{'library s':>11}"
    )
    print(header)
    for keyed in (False, True):
        r = run(
            keyed=keyed, visitors=args.visitors, late=args.late, delay=args.delay, seed=args.seed
        )
        mode = "sync key" if keyed else "plain create"
        print(
            f"{mode:<14}{r['duplicate_leads']:>10.0f}{r['duplicate_tasks']:>10.0f}"
            f"{r['visitors_without_lead']:>9.0f}{r['late_requests']:>6.0f}{r['api_calls']:>11.0f}"
            f"{r['simulated_minutes']:>9.0f}{r['sandbox_seconds']:>11.2f}{r['library_seconds']:>11.2f}"
        )


if __name__ == "__main__":
    main()
