"""Pausing Python's cyclic garbage collector around a backfill's rounds.

A round of a backfill builds hundreds of thousands of short-lived objects (plans, commands,
ledger rows, request bodies) that reference counting frees when the round ends; none of them
form cycles. While they are alive the collector's full collections walk all of them, again
and again as the heap grows, and find nothing to free: on a 10,000-visitor backfill that was
a quarter of the library's CPU. So the engine pauses the collector for each round
(``pause_gc``, ``docs/engine.md``) and lets it run again between rounds, where the first
young collection frees whatever cycles the round (or another thread meanwhile) made.

The pause is process-wide, as the collector is: holds are counted under a lock, the first
hold switches the collector off if it was on, and the last release switches it back on only
if the first hold switched it off. A host that turns the collector off itself keeps it off.
"""

from __future__ import annotations

import gc
import threading

__all__ = ["Pause", "holds"]

_lock = threading.Lock()
_holds = 0
_switched_off = False  # the first hold turned the collector off, so the last turns it on


def _hold() -> None:
    global _holds, _switched_off  # noqa: PLW0603  # one collector per process
    with _lock:
        if _holds == 0:
            _switched_off = gc.isenabled()
            gc.disable()
        _holds += 1


def _release() -> None:
    global _holds, _switched_off  # noqa: PLW0603
    with _lock:
        _holds -= 1
        if _holds == 0 and _switched_off:
            _switched_off = False
            gc.enable()


def holds() -> int:
    """How many pauses are held in this process now (for tests)."""
    return _holds


class Pause:
    """One driver's hold on the collector: :meth:`set` pauses or resumes, idempotently, and
    :meth:`end` releases a hold still held (a driver calls it however its flow ends)."""

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held = False

    def set(self, paused: bool) -> None:  # the effect's one field
        if paused and not self._held:
            _hold()
            self._held = True
        elif not paused and self._held:
            self._held = False
            _release()

    def end(self) -> None:
        self.set(False)
