"""Fixtures of the engine tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from _hooked import RacedMemory, RacedSQLite  # beside this file


@pytest.fixture(params=["memory", "sqlite"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A raced ledger (``_hooked.Raced``: a hook after its first claimable read or claim),
    in memory and on a SQLite file."""
    store: Any = (
        RacedMemory()
        if request.param == "memory"
        else RacedSQLite(tmp_path / "ledger.db", synchronous="NORMAL")
    )
    with store:
        yield store
