"""Reasons: every decision of the core carries them, so ``explain`` and dry runs are free.

A :class:`Reason` has a stable ``code`` (machine-readable, documented in ``docs/concepts.md``),
a human ``message``, a ``level`` and, for blockers that pass with time, ``passes_at``.

Reasons are the most numerous values the core builds (several per conversation), so they are
immutable named tuples: as frozen as an attrs value, and several times cheaper to make.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import NamedTuple

__all__ = ["Level", "Reason"]


class Level(enum.Enum):
    INFO = "info"
    WARNING = "warning"
    BLOCKER = "blocker"


_NO_DATA: Mapping[str, object] = MappingProxyType({})


class Reason(NamedTuple):
    """One step of a decision's trace. ``data`` carries machine-readable details."""

    code: str
    message: str
    level: Level = Level.INFO
    passes_at: datetime | None = None
    data: Mapping[str, object] = _NO_DATA

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


_INFO = Level.INFO
_WARNING = Level.WARNING
_BLOCKER = Level.BLOCKER


def info(code: str, message: str, **data: object) -> Reason:
    return Reason(code, message, _INFO, None, data or _NO_DATA)


def warning(code: str, message: str, **data: object) -> Reason:
    return Reason(code, message, _WARNING, None, data or _NO_DATA)


def blocker(
    code: str, message: str, *, passes_at: datetime | None = None, **data: object
) -> Reason:
    return Reason(code, message, _BLOCKER, passes_at, data or _NO_DATA)
