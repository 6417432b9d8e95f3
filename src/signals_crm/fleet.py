"""A worker fleet: many tenants' due syncs from one shared ledger, fairly, N at a time.

A host serving many customer orgs runs one :class:`Fleet` (threads, the blocking engine) or
:class:`AsyncFleet` (tasks, the async engine) per worker process, on any number of machines,
all on one :class:`~signals_crm.ledger.FleetLedger` (PostgreSQL for many machines; SQLite for
one). The fleet stays a thin loop; the ledger does the distribution. Rules:

1. **The host resolves tenants.** ``resolver(tenant_id)`` returns a :class:`Tenant`: that
   tenant's adapter (its CRM connection, with its credentials) and settings. The fleet builds
   one engine per tenant on the ledger bound to that tenant, and keeps it while it serves it.
2. **Fair rounds.** A round asks the ledger which tenants have due work
   (``integrations_due``, oldest due first) and gives each at most one batch
   (``run_due(limit=per_tenant)``). A tenant with a backlog of 100,000 therefore takes one batch
   per round like everyone else: another tenant's single due sync waits at most one round.
3. **Concurrency.** Up to ``concurrency`` tenants are synced at once (threads, or tasks under a
   capacity limiter); one tenant is never synced twice at once by one fleet. Several fleets
   never take one sync twice: claims are leases in the ledger.
4. **Budgets.** Each tenant's engine keeps under its own share of its CRM's API limit
   (``Tenant.api_budget``), reading the CRM's usage headers; a tenant that hits its limit
   stops for the round while the others go on.
5. **Isolation.** A tenant whose resolver or sync raises (bad credentials, a permission
   missing) is reported in the round's ``errors`` and rested for ``error_backoff`` seconds;
   the other tenants are not affected.
6. **Clean shutdown.** ``stop()`` (wired to SIGTERM and SIGINT by ``install_signal_handlers``)
   lets the batches under way finish — each ends by completing, rescheduling or releasing its
   leases — and starts no new one. A fleet killed outright loses nothing either: its leases
   expire and another worker reconciles what it had sent.
7. **Job systems.** Hosts that already run Celery, Dramatiq or arq call :func:`due_tenants`
   from a periodic task and :func:`run_tenant` (:func:`arun_tenant` for an async job system)
   from a job per tenant id (``docs/deployment.md``, ``examples/job_system.py``); the claims
   are the same.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Generator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from types import FrameType
from typing import Any, ClassVar, Final, Literal

import anyio
import anyio.to_thread
import attrs

from signals_crm._drive import adrive, drive
from signals_crm.core.config import SyncConfig
from signals_crm.engine import AsyncIntegration, Integration, SyncReport
from signals_crm.exceptions import ConfigurationError, Problem, SignalsCRMError
from signals_crm.ledger.base import FleetLedger
from signals_crm.settings import IntegrationSettings

__all__ = [
    "AsyncFleet",
    "Fleet",
    "Resolver",
    "RoundReport",
    "Tenant",
    "arun_tenant",
    "due_tenants",
    "run_tenant",
]

_log = logging.getLogger("signals_crm.fleet")


@attrs.frozen
class Tenant:
    """What the host's resolver gives for one tenant: its CRM adapter and its settings.

    ``api_budget`` is the share of the CRM's API limit this tenant's syncs may use;
    ``options`` are further keyword arguments for its engine (``Integration``).
    """

    adapter: Any
    settings: IntegrationSettings | SyncConfig
    api_budget: float = 0.9
    options: Mapping[str, Any] = attrs.field(factory=dict)


Resolver = Callable[[str], Tenant]
"""The host's function from a tenant (integration) id to its :class:`Tenant`."""


@attrs.frozen
class RoundReport:
    """What one round did: the tenants it served, in order, with their reports or errors."""

    tenants: tuple[str, ...]
    reports: Mapping[str, SyncReport]
    errors: Mapping[str, str]

    @property
    def synced(self) -> int:
        """How many conversations the round's reports cover."""
        return sum(report.total for report in self.reports.values())


def _check(concurrency: int, per_tenant: int, max_tenants: int) -> None:
    values: dict[str, object] = {
        "concurrency": concurrency,
        "per_tenant": per_tenant,
        "max_tenants": max_tenants,
    }
    problems = [
        Problem(name, "must be a positive integer")
        for name, value in values.items()
        if isinstance(value, bool) or not isinstance(value, int) or value < 1
    ]
    if problems:
        raise ConfigurationError(problems)


def _default_worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def due_tenants(
    ledger: FleetLedger, *, now: datetime | None = None, limit: int = 1000
) -> list[str]:
    """The tenants with due work, oldest due first: what a periodic job enqueues (rule 7)."""
    return [name for name, _ in ledger.integrations_due(now, limit)]


def _engine_arguments(
    ledger: FleetLedger, resolver: Resolver, tenant_id: str, worker_id: str
) -> tuple[tuple[Any, Any], dict[str, Any]]:
    """The positional and keyword arguments of ``tenant_id``'s engine (either twin)."""
    tenant = resolver(tenant_id)
    options: dict[str, Any] = {
        "ledger": ledger.for_integration(tenant_id),
        "api_budget": tenant.api_budget,
        "worker_id": worker_id,
        # Every worker serves every due tenant each round: a tenant's short batch is contended,
        # so it is claimed before it is planned (SKIP LOCKED), never read by all and planned twice.
        "optimistic_claims": False,
        **dict(tenant.options),
    }
    return (tenant.adapter, tenant.settings), options


def run_tenant(
    ledger: FleetLedger,
    resolver: Resolver,
    tenant_id: str,
    *,
    limit: int = 200,
    worker_id: str | None = None,
) -> SyncReport:
    """One batch of one tenant's due syncs, as a job calls it (rule 7)."""
    args, options = _engine_arguments(ledger, resolver, tenant_id, worker_id or _default_worker())
    return Integration(*args, **options).run_due(limit=limit)


async def arun_tenant(
    ledger: FleetLedger,
    resolver: Resolver,
    tenant_id: str,
    *,
    limit: int = 200,
    worker_id: str | None = None,
) -> SyncReport:
    """:func:`run_tenant` for an async job system (arq): the resolver gives async adapters."""
    args, options = _engine_arguments(ledger, resolver, tenant_id, worker_id or _default_worker())
    return await AsyncIntegration(*args, **options).arun_due(limit=limit)


_ROUND: Final = "round"
_IDLE: Final = "idle"
_Step = Literal["round", "idle"]


class _Rounds:
    """What both fleets share: options, stopping, backoff of failing tenants, the round loop.

    ``per_tenant`` is the batch one tenant gets per round; ``max_tenants`` bounds a round;
    ``poll_interval`` is how long an idle fleet waits before asking again; ``concurrency``
    defaults to the class's ``default_concurrency``.
    """

    default_concurrency: ClassVar[int]

    def __init__(
        self,
        ledger: FleetLedger,
        resolver: Resolver,
        *,
        concurrency: int | None = None,
        per_tenant: int = 200,
        max_tenants: int = 1000,
        poll_interval: float = 5.0,
        error_backoff: float = 60.0,
        worker_id: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if concurrency is None:
            concurrency = self.default_concurrency
        _check(concurrency, per_tenant, max_tenants)
        self.ledger = ledger
        self.resolver = resolver
        self.concurrency = concurrency
        self.per_tenant = per_tenant
        self.max_tenants = max_tenants
        self.poll_interval = poll_interval
        self.error_backoff = error_backoff
        self.worker_id = worker_id or _default_worker()
        self._monotonic = monotonic
        self._resting: dict[str, float] = {}
        self._stopping = threading.Event()
        self._setup()

    def _setup(self) -> None:
        """The twin's own state (its engines, its threads)."""

    @property
    def stopping(self) -> bool:
        """Whether ``stop()`` was called."""
        return self._stopping.is_set()

    def stop(self) -> None:
        """Finish the batches under way and start no new one (rule 6)."""
        self._stopping.set()

    def install_signal_handlers(self) -> Callable[[], None]:
        """Make SIGTERM and SIGINT call ``stop()``; returns a function restoring the old ones.

        Call it from the main thread (Python delivers signals there).
        """
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

        def handler(signum: int, _frame: FrameType | None) -> None:
            _log.info("signal %d: stopping after the batches under way", signum)
            self.stop()

        for sig in previous:
            signal.signal(sig, handler)

        def restore() -> None:
            for sig, old in previous.items():
                signal.signal(sig, old)

        return restore

    def pick(self, found: list[tuple[str, datetime]]) -> list[str]:
        now = self._monotonic()
        self._resting = {t: until for t, until in self._resting.items() if until > now}
        return [name for name, _ in found if name not in self._resting]

    def failed(self, tenant: str, error: BaseException) -> str:
        self._resting[tenant] = self._monotonic() + self.error_backoff
        _log.warning("tenant %r failed; resting it %.0fs: %s", tenant, self.error_backoff, error)
        return f"{type(error).__name__}: {error}"

    def _report(
        self, tenants: list[str], outcomes: Mapping[str, SyncReport | SignalsCRMError]
    ) -> RoundReport:
        """The round's report from each tenant's report or error (a failed one is rested)."""
        reports: dict[str, SyncReport] = {}
        errors: dict[str, str] = {}
        for tenant in tenants:
            outcome = outcomes[tenant]
            if isinstance(outcome, SignalsCRMError):
                errors[tenant] = self.failed(tenant, outcome)
                self._forget(tenant)  # resolve it afresh next time
            else:
                reports[tenant] = outcome
        return RoundReport(tuple(tenants), reports, errors)

    def _forget(self, tenant: str) -> None:
        """Drop the engine of ``tenant``."""

    def _loop(
        self, rounds: int | None, on_round: Callable[[RoundReport], object] | None
    ) -> Generator[_Step, RoundReport | None, int]:
        """The run loop as a flow: yields ``"round"`` (answered with its report) and ``"idle"``
        (wait ``poll_interval``, waking at once on stop); returns how many rounds ran."""
        done = 0
        while not self.stopping and (rounds is None or done < rounds):
            report = yield _ROUND
            assert report is not None  # noqa: S101  # the drivers answer a round with its report
            done += 1
            if on_round is not None:
                on_round(report)
            if not report.tenants or not report.synced:
                yield _IDLE
        return done


class Fleet(_Rounds):
    """Syncs many tenants' due work from one ledger with ``concurrency`` threads (default 4;
    module doc). The options are :class:`_Rounds`'s."""

    default_concurrency = 4

    def _setup(self) -> None:
        self._engines: dict[str, Integration] = {}
        self._engines_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="signals-fleet")

    def _forget(self, tenant: str) -> None:
        with self._engines_lock:
            self._engines.pop(tenant, None)

    def _engine(self, tenant_id: str) -> Integration:
        with self._engines_lock:
            engine = self._engines.get(tenant_id)
        if engine is None:
            args, options = _engine_arguments(self.ledger, self.resolver, tenant_id, self.worker_id)
            engine = Integration(*args, **options)
            with self._engines_lock:
                self._engines[tenant_id] = engine
        return engine

    def _serve(self, tenant_id: str, now: datetime | None) -> SyncReport:
        return self._engine(tenant_id).run_due(now, limit=self.per_tenant)

    def run_round(self, now: datetime | None = None) -> RoundReport:
        """One fair round: one batch for each tenant with due work (rules 2 to 5)."""
        tenants = self.pick(self.ledger.integrations_due(now, self.max_tenants))
        futures = {t: self._pool.submit(self._serve, t, now) for t in tenants}
        outcomes: dict[str, SyncReport | SignalsCRMError] = {}
        for tenant, future in futures.items():
            try:
                outcomes[tenant] = future.result()
            except SignalsCRMError as error:
                outcomes[tenant] = error
        return self._report(tenants, outcomes)

    def run(
        self,
        *,
        rounds: int | None = None,
        now: datetime | None = None,
        on_round: Callable[[RoundReport], object] | None = None,
    ) -> int:
        """Run rounds until ``stop()`` (or ``rounds`` of them); returns how many ran.

        An idle round (nothing due) waits ``poll_interval`` seconds, waking at once on stop.
        ``on_round`` receives each round's report (the ``worker`` command prints them).
        """

        def step(what: _Step) -> RoundReport | None:
            if what == _ROUND:
                return self.run_round(now)
            self._stopping.wait(self.poll_interval)
            return None

        return drive(self._loop(rounds, on_round), step)

    def close(self) -> None:
        """Stop, wait for the batches under way, and release the threads."""
        self.stop()
        self._pool.shutdown(wait=True)


class AsyncFleet(_Rounds):
    """:class:`Fleet` for the async engine: tenants are tasks under a capacity limiter.

    The resolver returns tenants whose adapter is an async adapter. The ledger's own calls
    (``integrations_due``) run in a worker thread when the ledger is a blocking one.
    ``concurrency`` defaults to 16.
    """

    default_concurrency = 16

    def _setup(self) -> None:
        self._engines: dict[str, AsyncIntegration] = {}

    def _forget(self, tenant: str) -> None:
        self._engines.pop(tenant, None)

    def _engine(self, tenant_id: str) -> AsyncIntegration:
        engine = self._engines.get(tenant_id)
        if engine is None:
            args, options = _engine_arguments(self.ledger, self.resolver, tenant_id, self.worker_id)
            engine = AsyncIntegration(*args, **options)
            self._engines[tenant_id] = engine
        return engine

    async def run_round(self, now: datetime | None = None) -> RoundReport:
        """One fair round, its tenants as concurrent tasks (rules 2 to 5)."""
        found = await anyio.to_thread.run_sync(
            lambda: self.ledger.integrations_due(now, self.max_tenants)
        )
        tenants = self.pick(found)
        outcomes: dict[str, SyncReport | SignalsCRMError] = {}
        limiter = anyio.CapacityLimiter(self.concurrency)

        async def serve(tenant: str) -> None:
            async with limiter:
                try:
                    outcomes[tenant] = await self._engine(tenant).arun_due(
                        now, limit=self.per_tenant
                    )
                except SignalsCRMError as error:
                    outcomes[tenant] = error

        async with anyio.create_task_group() as group:
            for tenant in tenants:
                group.start_soon(serve, tenant)
        return self._report(tenants, outcomes)

    async def run(
        self,
        *,
        rounds: int | None = None,
        now: datetime | None = None,
        on_round: Callable[[RoundReport], object] | None = None,
    ) -> int:
        """Run rounds until ``stop()`` (or ``rounds`` of them); returns how many ran."""

        async def step(what: _Step) -> RoundReport | None:
            if what == _ROUND:
                return await self.run_round(now)
            await anyio.to_thread.run_sync(self._stopping.wait, self.poll_interval)
            return None

        return await adrive(self._loop(rounds, on_round), step)
