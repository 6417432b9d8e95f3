"""The example adapter of docs/adapters.md passes the conformance kit, as the docs claim."""

from __future__ import annotations

import importlib.util
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from signals_crm.adapters import CRMAdapter
from signals_crm.testing.conformance import AdapterConformance, Backdoor, adapter_state_machine

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "tests" / "typing" / "custom_adapter.py"
DOCS = ROOT / "docs" / "adapters.md"


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("signals_crm_custom_adapter_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


example = _load_example()


@pytest.fixture
def db() -> Iterator[sqlite3.Connection]:
    """A fresh in-memory SQLite "CRM" with the example's tables."""
    connection = sqlite3.connect(":memory:")
    example.create_tables(connection)
    yield connection
    connection.close()


class TestSQLiteExample(AdapterConformance):
    """The kit against the docs' SQLite example adapter."""

    text_field = "first_name"
    account_field = "industry"

    @pytest.fixture
    def adapter(self, db: sqlite3.Connection) -> Any:
        return example.SQLiteCRMAdapter(db)

    @pytest.fixture
    def backdoor(self, db: sqlite3.Connection) -> Backdoor:
        backdoor: Backdoor = example.SQLiteBackdoor(db)
        return backdoor


def _fresh_adapter() -> Any:
    connection = sqlite3.connect(":memory:")
    example.create_tables(connection)
    return example.SQLiteCRMAdapter(connection)


def _backdoor_for(adapter: Any) -> Backdoor:
    backdoor: Backdoor = example.SQLiteBackdoor(adapter._db)
    return backdoor


def _close(adapter: Any) -> None:
    adapter._db.close()


TestSQLiteExampleMachine = adapter_state_machine(
    _fresh_adapter, _backdoor_for, text_field="first_name", close=_close
).TestCase
TestSQLiteExampleMachine.settings = settings(
    max_examples=20,
    stateful_step_count=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_example_is_a_crm_adapter(db: sqlite3.Connection) -> None:
    """The example satisfies the runtime-checkable CRMAdapter Protocol."""
    assert isinstance(example.SQLiteCRMAdapter(db), CRMAdapter)


def test_docs_show_the_tested_code() -> None:
    """docs/adapters.md contains the example file verbatim, so the docs show what is tested."""
    code = EXAMPLE.read_text(encoding="utf-8")
    docs = DOCS.read_text(encoding="utf-8")
    assert f"```python\n{code}```" in docs
