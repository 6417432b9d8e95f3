"""A backfill pauses Python's garbage collector for each round, and always resumes it."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest
from _hooked import async_engine, engine
from test_backfill_carry import conv, mixed_crm

from signals_crm import _collector
from signals_crm.core.plan import Plan
from signals_crm.exceptions import AuthenticationError
from signals_crm.testing.memory import InMemoryCRM


@pytest.fixture(autouse=True)
def collector_on() -> Iterator[None]:
    """Each test starts with the collector on and no pause held, and leaves it so."""
    was = gc.isenabled()
    gc.enable()
    yield
    assert _collector.holds() == 0
    if not was:  # pragma: no cover - the suite runs with the collector on
        gc.disable()


def spied(crm: InMemoryCRM, seen: list[tuple[str, bool]], fail: str | None = None) -> None:
    """Note whether the collector ran during each of ``crm``'s writes and lookups; ``fail``
    names a method that raises (a revoked token) instead."""
    for name in ("find_people", "create_people", "create_tasks", "add_to_campaign"):
        method: Callable[..., Any] = getattr(crm, name)

        def noted(*args: Any, _name: str = name, _method: Callable[..., Any] = method) -> Any:
            seen.append((_name, gc.isenabled()))
            if _name == fail:
                raise AuthenticationError("token revoked")
            return _method(*args)

        setattr(crm, name, noted)


def test_each_round_runs_with_the_collector_paused_and_it_runs_between_rounds() -> None:
    crm, cfg = mixed_crm(60)
    seen: list[tuple[str, bool]] = []
    spied(crm, seen)
    rounds: list[bool] = []
    sync = engine(crm, cfg, batch_size=20)
    report = sync.backfill(
        [conv(i) for i in range(60)], progress=lambda _done: rounds.append(gc.isenabled())
    )
    assert sum(report.counts.values()) == 60
    assert seen, "the CRM was called"
    assert not any(enabled for _, enabled in seen)  # every CRM call ran inside a round
    assert len(rounds) >= 3
    assert all(rounds)
    assert gc.isenabled()


def test_pause_gc_false_leaves_the_collector_alone() -> None:
    crm, cfg = mixed_crm(20)
    seen: list[tuple[str, bool]] = []
    spied(crm, seen)
    engine(crm, cfg, pause_gc=False).backfill([conv(i) for i in range(20)])
    assert seen
    assert all(enabled for _, enabled in seen)


def test_a_run_that_raises_mid_round_resumes_the_collector() -> None:
    crm, cfg = mixed_crm(20)
    seen: list[tuple[str, bool]] = []
    spied(crm, seen, fail="create_people")
    with pytest.raises(AuthenticationError):
        engine(crm, cfg).backfill([conv(i) for i in range(20)])
    assert ("create_people", False) in seen
    assert gc.isenabled()


def test_a_collector_the_host_switched_off_stays_off() -> None:
    crm, cfg = mixed_crm(20)
    gc.disable()
    try:
        engine(crm, cfg).backfill([conv(i) for i in range(20)])
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_async_engine_pauses_and_resumes_too() -> None:
    crm, cfg = mixed_crm(40)
    seen: list[tuple[str, bool]] = []
    spied(crm, seen, fail=None)

    async def main() -> None:
        sync = async_engine(crm, cfg, batch_size=20)
        await sync.abackfill([conv(i) for i in range(40)])

    # The async engine calls the adapter's a-methods: spy those instead.
    for name in ("afind_people", "acreate_people"):
        method: Callable[..., Any] = getattr(crm, name)

        async def noted(*args: Any, _name: str = name, _method: Callable[..., Any] = method) -> Any:
            seen.append((_name, gc.isenabled()))
            return await _method(*args)

        setattr(crm, name, noted)
    anyio.run(main)
    assert any(name == "acreate_people" for name, _ in seen)
    assert not any(enabled for name, enabled in seen if name.startswith("a"))
    assert gc.isenabled()


def test_holds_of_several_threads_resume_the_collector_once_the_last_ends() -> None:
    first, second = _collector.Pause(), _collector.Pause()
    first.set(True)
    first.set(True)  # idempotent: still one hold
    assert _collector.holds() == 1
    assert not gc.isenabled()
    worker = threading.Thread(target=second.set, args=(True,))
    worker.start()
    worker.join()
    assert _collector.holds() == 2
    first.end()
    assert not gc.isenabled()  # the other hold still pauses it
    second.end()
    second.end()  # idempotent
    assert _collector.holds() == 0
    assert gc.isenabled()


def test_the_collector_resumes_after_the_rounds_plans_are_freed() -> None:
    # Its first young collection after a round walks what is alive then: not the round's.
    crm, cfg = mixed_crm(60)
    gc.collect()  # (what earlier tests left)
    alive: list[int] = []

    def progress(_done: int) -> None:
        alive.append(sum(1 for o in gc.get_objects() if type(o) is Plan))

    engine(crm, cfg, batch_size=20).backfill([conv(i) for i in range(60)], progress=progress)
    assert len(alive) >= 3
    assert alive == [0] * len(alive)
