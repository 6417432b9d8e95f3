"""The client-side limiter: windows kept with a fake clock, and a 2,000-call burst without 429s."""

from __future__ import annotations

import httpx
import pytest
from hubspot_support import FakeClock, limiters

from signals_crm.adapters.hubspot import (
    AsyncHubSpotAdapter,
    HubSpotAdapter,
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
