"""Drive the fleet's claims from a job system of your own (Celery, Dramatiq, arq, RQ...).

A host that already runs a job system lets it schedule the syncs instead of running a
``signals_crm.fleet.Fleet``. It needs two task functions, both below, and nothing else:

- :func:`beat` is the periodic task (Celery beat, a Dramatiq periodic enqueuer, an arq
  ``cron``): it asks the ledger which tenants have due work (``due_tenants``, oldest due first)
  and enqueues one ``sync_tenant`` job per tenant.
- :func:`sync_tenant` is the job: one batch of one tenant's due syncs (``run_tenant``, which
  claims them with leases in the ledger). A batch that came back full means the tenant has
  more due, so the job enqueues itself again, at the *back* of the queue: a tenant with a
  backlog takes one batch per turn and cannot hold back another tenant's single due sync.

Nothing here has to be exactly-once. Two beats at once, a job delivered twice, a job retried
after a crash, two jobs of one tenant running at the same time: the ledger's leases keep two
jobs off one sync, and a job that dies mid-batch loses nothing (its leases expire and the
next job reconciles what it had sent).

Run it to see it work with a tiny in-process job system (a queue and worker threads) and an
in-memory CRM per tenant; no CRM, no network::

    python examples/job_system.py
"""

from __future__ import annotations

import argparse
import queue
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from signals_crm.core.model import Conversation, PersonKind, Visitor
from signals_crm.fleet import Resolver, Tenant, due_tenants, run_tenant
from signals_crm.ledger import DueState, SQLiteLedger
from signals_crm.ledger.base import FleetLedger
from signals_crm.settings import IntegrationSettings
from signals_crm.testing.memory import InMemoryCRM

Enqueue = Callable[..., None]
"""The job system's "send this job": ``enqueue("sync_tenant", tenant_id)``."""

BATCH = 50
"""How many due syncs one job takes (``run_tenant(limit=...)``)."""


# -- the two task functions a host registers with its job system -----------------------------


def beat(ledger: FleetLedger, enqueue: Enqueue, *, now: datetime | None = None) -> int:
    """The periodic task: one ``sync_tenant`` job per tenant with due work."""
    tenants = due_tenants(ledger, now=now)
    for tenant_id in tenants:
        enqueue("sync_tenant", tenant_id)
    return len(tenants)


def sync_tenant(
    ledger: FleetLedger,
    resolve: Resolver,
    enqueue: Enqueue,
    tenant_id: str,
    *,
    worker_id: str,
) -> int:
    """The job: one batch of ``tenant_id``'s due syncs; re-enqueued while batches come back
    full. Returns how many conversations the batch covered."""
    report = run_tenant(ledger, resolve, tenant_id, limit=BATCH, worker_id=worker_id)
    if report.total >= BATCH:
        enqueue("sync_tenant", tenant_id)  # more is due: back of the queue, after the others
    return report.total


# -- a tiny in-process job system, to run the recipe -------------------------------------------


class ThreadJobs:
    """A job queue served by worker threads: the part Celery/Dramatiq/arq provide."""

    def __init__(self, handlers: Mapping[str, Callable[..., object]], workers: int) -> None:
        self._handlers = handlers
        self._queue: queue.Queue[tuple[str, tuple[Any, ...]] | None] = queue.Queue()
        self._threads = [
            threading.Thread(target=self._work, args=(f"job-worker-{n}",), daemon=True)
            for n in range(workers)
        ]
        self.errors: list[BaseException] = []
        self.ran = 0
        self._lock = threading.Lock()

    def enqueue(self, name: str, *args: Any) -> None:
        self._queue.put((name, args))

    def _work(self, worker_id: str) -> None:
        while (job := self._queue.get()) is not None:
            name, args = job
            try:
                self._handlers[name](*args, worker_id=worker_id)
                with self._lock:
                    self.ran += 1
            except Exception as error:  # noqa: BLE001  # a job system records and goes on
                with self._lock:
                    self.errors.append(error)
            finally:
                self._queue.task_done()

    @contextmanager
    def running(self) -> Iterator[ThreadJobs]:
        for thread in self._threads:
            thread.start()
        try:
            yield self
        finally:
            for _ in self._threads:
                self._queue.put(None)
            for thread in self._threads:
                thread.join(timeout=60)

    def drain(self) -> None:
        """Wait until every job enqueued so far (and those they enqueued) has run."""
        self._queue.join()


SETTINGS = IntegrationSettings.from_dict(
    {
        "criteria": "all",
        "synchronization_delay": "0m",
        "field_mappings": {"lead": [{"source": "contact.last_name", "target": "LastName"}]},
    }
)
CLOSED = datetime(2026, 11, 20, 12, tzinfo=UTC)


def demo(
    folder: Path, *, tenants: Mapping[str, int], workers: int = 4, beats: int = 3
) -> dict[str, Any]:
    """Sync ``tenants`` (id -> visitors) through ``beats`` scheduler ticks (all at once, as
    two overlapping beats would) and the job threads; returns what each CRM holds."""
    crms = {name: InMemoryCRM(person_kind=PersonKind.LEAD) for name in tenants}

    def resolve(tenant_id: str) -> Tenant:  # the host's: tenant id -> its CRM and settings
        return Tenant(crms[tenant_id], SETTINGS)

    with SQLiteLedger(folder / "ledger.db", synchronous="NORMAL") as ledger:
        for name, count in tenants.items():
            ledger.for_integration(name).schedule_many(
                (
                    Conversation(
                        f"{name}-{i}",
                        closed_at=CLOSED,
                        lead_score=1,
                        visitor=Visitor(email=f"v{i}@{name}.test", last_name=f"V{i}"),
                    ),
                    CLOSED,
                )
                for i in range(count)
            )
        jobs: ThreadJobs

        def job(tenant_id: str, *, worker_id: str) -> int:
            return sync_tenant(ledger, resolve, jobs.enqueue, tenant_id, worker_id=worker_id)

        jobs = ThreadJobs({"sync_tenant": job}, workers)
        with jobs.running():
            enqueued = sum(beat(ledger, jobs.enqueue) for _ in range(beats))
            jobs.drain()
            enqueued += beat(ledger, jobs.enqueue)  # a later tick: nothing is due any more
            jobs.drain()
        done = {name: ledger.for_integration(name).stats().syncs[DueState.DONE] for name in tenants}
    people = {
        name: [len(crm.people_with_email(f"v{i}@{name}.test")) for i in range(tenants[name])]
        for name, crm in crms.items()
    }
    return {
        "enqueued_by_beats": enqueued,
        "jobs_run": jobs.ran,
        "errors": [repr(e) for e in jobs.errors],
        "done": done,
        "duplicates": sum(max(n - 1, 0) for counts in people.values() for n in counts),
        "lost": sum(1 for counts in people.values() for n in counts if n == 0),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args(argv)
    tenants = {"acme": 1, "globex": 230, "initech": 12}
    with tempfile.TemporaryDirectory() as folder:
        result = demo(Path(folder), tenants=tenants, workers=args.workers)
    for name, count in tenants.items():
        print(f"{name}: {result['done'][name]} of {count} synced")
    print(f"jobs run: {result['jobs_run']} (beats enqueued {result['enqueued_by_beats']})")
    print(f"duplicates: {result['duplicates']}, lost: {result['lost']}")
    return 1 if result["errors"] or result["duplicates"] or result["lost"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
