"""A clock the tests move by hand, given to ledgers as their own clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


class FakeClock:
    """The ledger's own clock, moved by hand: it starts at ``T0`` and only ``advance`` moves it."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock forward by ``delta``; returns the new time."""
        self.now += delta
        return self.now
