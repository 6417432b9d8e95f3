"""The client-side limiter: windows kept with a fake clock, and a 2,000-call burst without 429s."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import httpx
import pytest
from hubspot_support import FakeClock, limiters

from signals_crm.adapters.hubspot import (
    AsyncHubSpotAdapter,
    FileWindow,
    HubSpotAdapter,
    LocalWindow,
    RateLimiter,
    RateLimitUsage,
)
from signals_crm.core.crm import PersonUpdate
from signals_crm.core.model import PersonKind
from signals_crm.exceptions import RateLimitedError
from signals_crm.testing.hubspot import LocalHubSpot

TOKEN = "local-hubspot-token"


def fake_limiter(clock: FakeClock, **options: float) -> RateLimiter:
    return RateLimiter(clock=clock, sleep=clock.sleep, asleep=clock.asleep, **options)  # type: ignore[arg-type]


def test_never_more_than_the_share_in_any_window(clock: FakeClock) -> None:
    """At most floor(max * share) sends fall in any rolling window; the rest wait."""
    limiter = fake_limiter(clock, max_requests=100, interval=10.0, share=0.9)
    sent: list[float] = []
    for _ in range(300):
        limiter.acquire()
        sent.append(clock.now)
    assert limiter.limit == 90
    for i, start in enumerate(sent):
        assert sum(1 for t in sent[i:] if t < start + 10.0) <= 90
    assert clock.slept == pytest.approx(30.0)  # windows start at 0, 10, 20 and 30 s


def test_observe_adopts_the_reported_window_and_pauses_when_exhausted(clock: FakeClock) -> None:
    """HubSpot's Max/Interval headers replace the defaults; Remaining=0 pauses a window."""
    limiter = fake_limiter(clock)
    limiter.observe(RateLimitUsage(interval_ms=10_000, max=190, remaining=5))
    assert limiter.limit == 171
    limiter.observe(RateLimitUsage(interval_ms=10_000, max=190, remaining=0))
    limiter.acquire()
    assert clock.slept == pytest.approx(10.0)
    limiter.observe(None)
    assert limiter.limit == 171


def test_pause_delays_the_next_send(clock: FakeClock) -> None:
    """pause(seconds) holds sends back for that long."""
    limiter = fake_limiter(clock)
    limiter.pause(3.5)
    limiter.acquire()
    assert clock.slept == pytest.approx(3.5)


@pytest.mark.anyio
async def test_async_acquire_uses_the_async_sleep(clock: FakeClock) -> None:
    """aacquire waits with the injected async sleep, never the blocking one."""

    def forbidden(_: float) -> None:
        raise AssertionError("blocking sleep used")

    limiter = RateLimiter(
        max_requests=2, interval=1.0, share=1.0, clock=clock, sleep=forbidden, asleep=clock.asleep
    )
    for _ in range(5):
        await limiter.aacquire()
    assert clock.slept == pytest.approx(2.0)


def test_bad_settings_are_refused() -> None:
    """A limiter needs a positive window and a share in (0, 1]."""
    with pytest.raises(ValueError, match="share"):
        RateLimiter(share=0)


class NoLimit(RateLimiter):
    """A limiter that lets everything through and ignores HubSpot's headers."""

    def acquire(self) -> None:
        return None

    def observe(self, usage: RateLimitUsage | None) -> None:
        del usage


def _updates(person: str, count: int) -> list[PersonUpdate]:
    return [
        PersonUpdate(
            key=f"u{n}", record_id=person, kind=PersonKind.CONTACT, fields={"firstname": f"N{n}"}
        )
        for n in range(count)
    ]


def test_a_burst_of_2000_writes_sees_no_429(clock: FakeClock) -> None:
    """2,000 single-record writes through the adapter finish with zero 429s, in fake time."""
    portal = LocalHubSpot(clock=clock, sleep=clock.sleep)
    person = portal.backdoor.seed_person(kind=PersonKind.CONTACT, email="burst@example.com")
    with httpx.Client(transport=portal.transport()) as client:
        adapter = HubSpotAdapter(client, TOKEN, **limiters(clock))
        for update in _updates(person, 2000):
            (result,) = adapter.update_people([update])
            assert result.ok
    assert portal.rate_limited == 0
    assert (portal.backdoor.person_fields(person) or {})["firstname"] == "N1999"
    assert clock.slept >= 2000 / 90 * 10 - 10


def test_without_the_limiter_the_same_burst_hits_429(clock: FakeClock) -> None:
    """Control: with the limiter opened wide, the portal's window refuses the burst."""
    portal = LocalHubSpot(clock=clock, sleep=clock.sleep)
    person = portal.backdoor.seed_person(kind=PersonKind.CONTACT, email="burst@example.com")
    wide = NoLimit(clock=clock, sleep=clock.sleep)
    with httpx.Client(transport=portal.transport()) as client:
        adapter = HubSpotAdapter(client, TOKEN, limiter=wide)
        updates = iter(_updates(person, 2000))

        def burst() -> None:
            for update in updates:
                adapter.update_people([update])

        with pytest.raises(RateLimitedError):
            burst()
    assert portal.rate_limited == 1


@pytest.mark.anyio
async def test_async_burst_sees_no_429(clock: FakeClock) -> None:
    """The async adapter keeps under the window too (500 calls)."""
    portal = LocalHubSpot(clock=clock, sleep=clock.sleep)
    person = portal.backdoor.seed_person(kind=PersonKind.CONTACT, email="burst@example.com")
    async with httpx.AsyncClient(transport=portal.transport()) as client:
        adapter = AsyncHubSpotAdapter(client, TOKEN, **limiters(clock))
        for update in _updates(person, 500):
            await adapter.aupdate_people([update])
    assert portal.rate_limited == 0


def test_searches_keep_under_five_per_second(clock: FakeClock) -> None:
    """Reconciling many markers (one search per five) never trips the 5/s search bucket."""
    from signals_crm.core.crm import TaskByMarker

    portal = LocalHubSpot(clock=clock, sleep=clock.sleep)
    with httpx.Client(transport=portal.transport()) as client:
        adapter = HubSpotAdapter(client, TOKEN, **limiters(clock))
        answers = adapter.reconcile([TaskByMarker(f"m{n}") for n in range(100)])
    assert answers == [None] * 100
    assert portal.rate_limited == 0


# ------------------------------------------------------------------------------------------------
# One portal, one window: the limiters of several workers share it (issue 13 item 6)


def test_limiters_sharing_a_window_keep_the_portal_under_its_limit(clock: FakeClock) -> None:
    """Two limiters (two workers) given one window send at most the share together, in any
    rolling window; each alone would have allowed the full share."""
    window = LocalWindow()
    first = RateLimiter(clock=clock, sleep=clock.sleep, window=window)
    second = RateLimiter(clock=clock, sleep=clock.sleep, window=window)
    sent: list[float] = []
    for n in range(270):
        (first if n % 2 else second).acquire()
        sent.append(clock.now)
    for i, start in enumerate(sent):
        assert sum(1 for t in sent[i:] if t < start + 10.0) <= 90
    assert clock.slept == pytest.approx(20.0)  # 90 at 0 s, 90 at 10 s, 90 at 20 s
    assert first.waited + second.waited == pytest.approx(20.0)  # no wait beyond the window's


def test_a_limit_that_drops_waits_for_enough_sends_to_leave(clock: FakeClock) -> None:
    """When HubSpot reports a smaller window than the log holds, the next send waits until
    enough of the oldest sends have left it, not merely the oldest one."""
    limiter = RateLimiter(max_requests=100, share=1.0, clock=clock, sleep=clock.sleep)
    for _ in range(100):
        limiter.acquire()
        clock.now += 0.05  # sends at 0.00, 0.05, ... 4.95 s
    limiter.observe(RateLimitUsage(interval_ms=10_000, max=60, remaining=20))
    start = clock.now
    limiter.acquire()
    # 60 may be in the window: the 41st oldest send (at 2.00 s) must leave, at 12.00 s.
    assert clock.now == pytest.approx(start - 5.0 + 12.0)


def test_a_pause_one_limiter_learns_holds_back_the_others(clock: FakeClock) -> None:
    """A 429's Retry-After (or Remaining: 0) seen by one worker pauses every limiter of the
    window: the others would meet the same full window."""
    window = LocalWindow()
    first = RateLimiter(clock=clock, sleep=clock.sleep, window=window)
    second = RateLimiter(clock=clock, sleep=clock.sleep, window=window)
    first.pause(4.0)
    second.acquire()
    assert clock.slept == pytest.approx(4.0)
    second.observe(RateLimitUsage(interval_ms=10_000, max=110, remaining=0))
    first.acquire()
    assert clock.slept == pytest.approx(14.0)


def test_file_window_is_one_log_for_every_handle(tmp_path: Path, clock: FakeClock) -> None:
    """Two FileWindows on one path (two processes' handles) see each other's sends."""
    path = tmp_path / "portal.window"
    first = RateLimiter(
        max_requests=10, share=1.0, clock=clock, sleep=clock.sleep, window=FileWindow(path)
    )
    second = RateLimiter(
        max_requests=10, share=1.0, clock=clock, sleep=clock.sleep, window=FileWindow(path)
    )
    for _ in range(5):
        first.acquire()
        second.acquire()
    assert clock.slept == 0.0
    second.acquire()
    assert clock.slept == pytest.approx(10.0)
    path.write_text("not json")  # a damaged file starts a fresh log, never raises
    first.acquire()
    assert clock.slept == pytest.approx(10.0)


def _grab(path: str, attempts: int, out: Any) -> None:
    window = FileWindow(path)
    out.put(sum(window.reserve(0.0, 10.0, 100) == 0.0 for _ in range(attempts)))


def test_file_window_grants_no_more_than_the_limit_across_processes(tmp_path: Path) -> None:
    """Four processes racing for slots of one window at one instant are granted exactly the
    limit between them: the file lock makes each reservation atomic."""
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    path = str(tmp_path / "portal.window")
    workers = [context.Process(target=_grab, args=(path, 60, out)) for _ in range(4)]
    for worker in workers:
        worker.start()
    granted = [out.get(timeout=30) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    assert sum(granted) == 100


def test_two_workers_on_one_portal_see_no_429_only_with_a_shared_window(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Two adapters (two workers) writing to one portal of 110 requests per 10 s (an OAuth
    app's): with one shared window, 600 writes see no 429; with a window each (each keeps
    itself at 99 per 10 s), together they pass the portal's limit."""
    for shared in (True, False):
        portal = LocalHubSpot(clock=clock, sleep=clock.sleep, burst_limit=110)
        person = portal.backdoor.seed_person(kind=PersonKind.CONTACT, email="two@example.com")
        path = tmp_path / f"window-{shared}"
        with httpx.Client(transport=portal.transport()) as client:
            adapters = [
                HubSpotAdapter(
                    client,
                    TOKEN,
                    limiter=RateLimiter(
                        clock=clock,
                        sleep=clock.sleep,
                        window=FileWindow(path if shared else f"{path}-{n}"),
                    ),
                )
                for n in range(2)
            ]
            refused = 0
            for n, update in enumerate(_updates(person, 600)):
                try:
                    adapters[n % 2].update_people([update])
                except RateLimitedError:
                    refused += 1
        if shared:
            assert (refused, portal.rate_limited) == (0, 0)
            assert adapters[0].limiter.limit == 99  # the portal's reported 110, at 0.9
        else:
            assert refused > 0
