"""Ledger fixtures: every contract test runs against each ledger, on a clock the test moves."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from ledger_clock import FakeClock

from signals_crm.ledger import Ledger, MemoryLedger, SQLiteLedger


@pytest.fixture
def clock() -> FakeClock:
    """The clock the ``ledger`` fixture's ledger judges leases by."""
    return FakeClock()


@pytest.fixture(scope="session")
def empty_ledger_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly created, closed ledger file, copied for each test (creating one costs fsyncs)."""
    path = tmp_path_factory.mktemp("template") / "ledger.db"
    SQLiteLedger(path).close()
    return path


@pytest.fixture(params=["memory", "sqlite"])
def ledger(
    request: pytest.FixtureRequest, tmp_path: Path, empty_ledger_file: Path, clock: FakeClock
) -> Iterator[Ledger]:
    """Each contract test runs against every ledger, all on the test's ``clock``."""
    store: Ledger
    if request.param == "memory":
        store = MemoryLedger(clock=clock)
    else:
        path = tmp_path / "ledger.db"
        shutil.copyfile(empty_ledger_file, path)
        store = SQLiteLedger(path, synchronous="NORMAL", clock=clock)
    with store:
        yield store
