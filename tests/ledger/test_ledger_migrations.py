"""The SQLite ledger's forward-only migration ladder, proven on a real version-1 file.

``fixtures/ledger-v1.db`` was written by signals_crm at commit 746daa2 (schema version 1, the
first released schema) through its public API: four syncs (pending with an attempt, done, dead,
leased to ``worker-1``), four commands (confirmed, failed, unknown, sent) and one link.
"""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ledger_clock import FakeClock

import signals_crm.ledger.sqlite as sqlite_module
from signals_crm.core.model import PersonKind
from signals_crm.exceptions import LedgerError
from signals_crm.ledger import CommandState, DueState, SQLiteLedger
from signals_crm.ledger.sqlite import MIGRATIONS, SCHEMA_VERSION

V1 = Path(__file__).with_name("fixtures") / "ledger-v1.db"
T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
S = CommandState


def _header(path: Path) -> tuple[int, int]:
    with closing(sqlite3.connect(path)) as raw:
        return (
            raw.execute("PRAGMA user_version").fetchone()[0],
            raw.execute("PRAGMA application_id").fetchone()[0],
        )


def _schema(path: Path) -> list[tuple[str, str]]:
    with closing(sqlite3.connect(path)) as raw:
        return sorted(raw.execute("SELECT type, name FROM sqlite_master WHERE sql IS NOT NULL"))


@pytest.fixture
def v1_file(tmp_path: Path) -> Path:
    """A copy of the version-1 fixture (the committed file is never opened for writing)."""
    path = tmp_path / "ledger.db"
    shutil.copyfile(V1, path)
    return path


def test_the_fixture_is_version_one(v1_file: Path) -> None:
    """The fixture really is a schema-1 file, so the ladder below starts where users are."""
    assert _header(v1_file)[0] == 1
    assert SCHEMA_VERSION == len(MIGRATIONS) > 1


def test_a_version_one_file_is_upgraded_keeping_everything(v1_file: Path) -> None:
    """Opening a v1 file climbs to the current schema; every sync, command and link survives."""
    with SQLiteLedger(v1_file, clock=FakeClock(T0 + timedelta(hours=2))) as ledger:
        assert _header(v1_file)[0] == SCHEMA_VERSION
        stats = ledger.stats()
        assert dict(stats.syncs) == {DueState.PENDING: 2, DueState.DONE: 1, DueState.DEAD: 1}
        assert stats.commands[S.CONFIRMED] == stats.commands[S.FAILED] == 1
        assert stats.commands[S.UNKNOWN] == stats.commands[S.SENT] == 1
        assert stats.links == 1
        rich = ledger.get_due("conv-rich")
        assert rich is not None
        assert (rich.attempts, rich.last_error, rich.fence) == (1, "503 busy", 0)
        assert rich.conversation.visitor is not None
        assert rich.conversation.visitor.extra["seats"] == 12
        assert rich.conversation.transcript == "Hi! ünïcödé \u2603"
        leased = ledger.get_due("c-leased")
        assert leased is not None
        assert (leased.lease_owner, leased.fence) == ("worker-1", 0)
        dead = ledger.get_due("c-dead")
        assert dead is not None
        assert dead.last_error == "INVALID_EMAIL_ADDRESS: bad"
        confirmed = ledger.get_command("c-done:person")
        assert confirmed is not None
        assert (confirmed.crm_id, confirmed.payload_digest, confirmed.fence) == (
            "00Q000000000001",
            "sha256:ab",
            None,
        )
        assert ledger.links_for(["BO@x.io"])["bo@x.io"].kind is PersonKind.LEAD
        # Rows written before tenancy belong to the default integration, and only to it.
        assert ledger.integration == "default"
        acme = ledger.for_integration("acme")
        assert (acme.get_due("conv-rich"), acme.stats().links) == (None, 0)
        assert ledger.recent_runs(5) == []
        # The migrated file works under the new rules: claims hand out fences from 1.
        claimed = ledger.claim(limit=10, owner="worker-2", lease=timedelta(minutes=10))
        assert {s.conversation_id: s.fence for s in claimed} == {"conv-rich": 1, "c-leased": 1}


def test_an_upgraded_file_has_the_fresh_schema(v1_file: Path, tmp_path: Path) -> None:
    """A migrated v1 file ends with the same tables and indexes as a file created today."""
    SQLiteLedger(v1_file).close()
    fresh = tmp_path / "fresh.db"
    SQLiteLedger(fresh).close()
    assert _schema(v1_file) == _schema(fresh)


def test_upgrading_twice_is_harmless(v1_file: Path) -> None:
    """A second open of an upgraded file changes nothing (the ladder is climbed once)."""
    SQLiteLedger(v1_file).close()
    before = v1_file.read_bytes()
    SQLiteLedger(v1_file).close()
    assert _header(v1_file)[0] == SCHEMA_VERSION
    assert v1_file.read_bytes() == before


def test_migrate_false_refuses_an_old_file_untouched(v1_file: Path) -> None:
    """With migrate=False an old file is refused with a LedgerError and left at version 1."""
    with pytest.raises(LedgerError, match="migrate=True"):
        SQLiteLedger(v1_file, migrate=False)
    assert _header(v1_file)[0] == 1


def test_a_failed_step_leaves_the_old_version(
    v1_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step that fails rolls the whole climb back: the file stays a readable v1 file."""
    broken = (*MIGRATIONS[:1], (*MIGRATIONS[1], "THIS IS NOT SQL"), *MIGRATIONS[2:])
    monkeypatch.setattr(sqlite_module, "MIGRATIONS", broken)
    with pytest.raises(LedgerError):
        SQLiteLedger(v1_file)
    assert _header(v1_file)[0] == 1
    with closing(sqlite3.connect(v1_file)) as raw:
        columns = [r[1] for r in raw.execute("PRAGMA table_info(due_syncs)")]
    assert "fence" not in columns
    monkeypatch.undo()
    with SQLiteLedger(v1_file) as ledger:
        assert ledger.stats().links == 1
