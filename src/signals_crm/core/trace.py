"""Reasons: every decision of the core carries them, so ``explain`` and dry runs are free.

A :class:`Reason` has a stable ``code`` (machine-readable, documented in ``docs/concepts.md``),
a human ``message``, a ``level`` and, for blockers that pass with time, ``passes_at``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime

import attrs

__all__ = ["Level", "Reason"]


class Level(enum.Enum):
    INFO = "info"
    WARNING = "warning"
    BLOCKER = "blocker"


@attrs.frozen
class Reason:
    """One step of a decision's trace."""

    code: str
    message: str
    level: Level = Level.INFO
    passes_at: datetime | None = None
    data: Mapping[str, object] = attrs.field(factory=dict, eq=False)

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


def info(code: str, message: str, **data: object) -> Reason:
    return Reason(code, message, Level.INFO, data=data)


def warning(code: str, message: str, **data: object) -> Reason:
    return Reason(code, message, Level.WARNING, data=data)


def blocker(
    code: str, message: str, *, passes_at: datetime | None = None, **data: object
) -> Reason:
    return Reason(code, message, Level.BLOCKER, passes_at=passes_at, data=data)
