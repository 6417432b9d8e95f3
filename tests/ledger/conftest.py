"""Ledger fixtures: every contract test runs against each ledger, on a clock the test moves."""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from ledger_clock import FakeClock

from _services import import_or_unavailable
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


_schemas = itertools.count()


@pytest.fixture
def postgres_schema(postgres_conninfo: str) -> Iterator[tuple[str, str]]:
    """A fresh PostgreSQL schema name on the session's server (dropped after): (conninfo, name)."""
    psycopg = import_or_unavailable("psycopg", "postgres")
    name = f"ledger_{os.getpid()}_{next(_schemas)}"
    yield postgres_conninfo, name
    with psycopg.connect(postgres_conninfo, autocommit=True) as connection:
        connection.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def ledger(
    request: pytest.FixtureRequest, tmp_path: Path, empty_ledger_file: Path, clock: FakeClock
) -> Iterator[Ledger]:
    """Each contract test runs against every ledger, all on the test's ``clock`` (PostgreSQL:
    a fresh schema on the session's throwaway server)."""
    store: Ledger
    if request.param == "memory":
        store = MemoryLedger(clock=clock)
    elif request.param == "postgres":
        from signals_crm.ledger.postgres import PostgresLedger  # optional extra

        conninfo, schema = request.getfixturevalue("postgres_schema")
        store = PostgresLedger(conninfo, schema=schema, clock=clock, max_connections=2)
    else:
        path = tmp_path / "ledger.db"
        shutil.copyfile(empty_ledger_file, path)
        store = SQLiteLedger(path, synchronous="NORMAL", clock=clock)
    with store:
        yield store
