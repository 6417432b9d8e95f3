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
from signals_crm.ledger import CommandRecord, CommandState, DueState, SQLiteLedger
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


def _v5_file(path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A file at schema 5 (the ladder cut there), holding sound commands and, written past
    the CHECK as a foreign writer would, one whose state no version knows."""
    with monkeypatch.context() as patch:
        patch.setattr(sqlite_module, "MIGRATIONS", MIGRATIONS[:5])
        patch.setattr(sqlite_module, "SCHEMA_VERSION", 5)
        with SQLiteLedger(path) as ledger:
            ledger.record(
                [
                    CommandRecord("c1:person", "c1", "create_person", S.SENT, T0, owner="w"),
                    CommandRecord("c2:person", "c2", "create_person", S.CONFIRMED, T0, "00Q1"),
                    CommandRecord("c3:person", "c3", "create_person", S.FAILED, T0, reason="x"),
                    CommandRecord("c4:task:m", "c4", "create_task", S.SENT, T0, attempts=2),
                    CommandRecord("other-key", "c1", "create_task", S.SENT, T0),
                ]
            )
    with closing(sqlite3.connect(path)) as raw:
        raw.execute("PRAGMA ignore_check_constraints = ON")
        raw.execute("UPDATE commands SET state = 'paused' WHERE key = 'c4:task:m'")
        raw.commit()
    assert _header(path)[0] == 5
    return path


def _command_rows(path: Path) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as raw:
        return raw.execute(
            "SELECT integration, key, conversation_id, kind, state, crm_id, reason, attempts, "
            "updated_at, payload_digest, owner, fence FROM commands ORDER BY key"
        ).fetchall()


def test_schema_six_copies_every_command_as_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Step 6 rebuilds the commands table (its state CHECK as equalities): every row is copied
    as stored, the damaged one too (it still reads as damaged), the CHECK is on again after
    the copy, the indexes serve as before, and the file equals a fresh one in schema."""
    path = _v5_file(tmp_path / "ledger.db", monkeypatch)
    before = _command_rows(path)
    with SQLiteLedger(path) as ledger:
        assert _header(path)[0] == SCHEMA_VERSION == 7
        conn = ledger._shared.conn
        assert conn is not None
        assert conn.execute("PRAGMA ignore_check_constraints").fetchone()[0] == 0
        damaged = ledger.get_command("c4:task:m")
        assert damaged is not None
        assert damaged.state is S.UNKNOWN
        assert damaged.reason is not None
        assert "paused" in damaged.reason
        assert [c.key for c in ledger.commands_in_state(S.SENT, 5)] == ["c1:person", "other-key"]
        assert [c.key for c in ledger.commands_in_state(S.CONFIRMED, 5)] == ["c2:person"]
        assert [c.key for c in ledger.commands_for("c4")] == ["c4:task:m"]
        # Schema 7: the conversation index keeps only the key not prefixed by its id.
        assert [c.key for c in ledger.commands_for("c1")] == ["c1:person", "other-key"]
        indexed = conn.execute(
            "SELECT key FROM commands INDEXED BY commands_by_conversation "
            "WHERE integration = 'default' AND conversation_id IN ('c1', 'c2', 'c3', 'c4') "
            "AND (key < conversation_id || ':' OR key >= conversation_id || ';')"
        ).fetchall()
        assert indexed == [("other-key",)]
        ledger.record([CommandRecord("c1:person", "c1", "create_person", S.CONFIRMED, T0, "9")])
    assert _command_rows(path)[1:] == before[1:]  # (c1:person, confirmed since, sorts first)
    with closing(sqlite3.connect(path)) as raw, pytest.raises(sqlite3.IntegrityError):
        raw.execute("UPDATE commands SET state = 'paused' WHERE key = 'c1:person'")
    fresh = tmp_path / "fresh.db"
    SQLiteLedger(fresh).close()
    assert _schema(path) == _schema(fresh)


def test_a_failed_copy_leaves_no_check_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A climb that fails between step 6's PRAGMAs is rolled back, and the connection's
    CHECKs are on again (the ledger never writes with them off)."""
    path = _v5_file(tmp_path / "ledger.db", monkeypatch)
    step = list(MIGRATIONS[5])
    step.insert(step.index("PRAGMA ignore_check_constraints = OFF"), "THIS IS NOT SQL")
    monkeypatch.setattr(sqlite_module, "MIGRATIONS", (*MIGRATIONS[:5], tuple(step)))
    seen: list[int] = []
    original = SQLiteLedger.close

    def close(ledger: SQLiteLedger) -> None:  # (the failed open closes its connection)
        conn = ledger._shared.conn
        assert conn is not None
        seen.append(conn.execute("PRAGMA ignore_check_constraints").fetchone()[0])
        original(ledger)

    monkeypatch.setattr(SQLiteLedger, "close", close)
    with pytest.raises(LedgerError):
        SQLiteLedger(path)
    assert seen == [0]
    assert _header(path)[0] == 5
    monkeypatch.undo()
    with SQLiteLedger(path) as ledger:
        assert ledger.get_command("c2:person") is not None


@pytest.mark.parametrize(
    "state",
    ["planned", "sent", "confirmed", "failed", "unknown", "SENT", "sent ", " sent", "",
     "paused", "sent\x00", 1, 2.5, b"sent", "pl", "plannedx"],
)  # fmt: skip
def test_the_state_check_refuses_what_an_in_list_refused(tmp_path: Path, state: object) -> None:
    """The commands' CHECK of schema 6 (equalities joined by OR) refuses exactly the states
    the CHECK of schema 5 (``state IN (...)``) refused."""
    path = tmp_path / "ledger.db"
    SQLiteLedger(path).close()
    with closing(sqlite3.connect(path)) as raw:
        raw.execute(
            "CREATE TEMP TABLE old (state TEXT NOT NULL "
            "CHECK (state IN ('planned', 'sent', 'confirmed', 'failed', 'unknown')))"
        )
        outcomes = []
        for sql in (
            "INSERT INTO old (state) VALUES (?)",
            (
                "INSERT INTO commands (integration, key, conversation_id, kind, state, "
                "updated_at) VALUES ('i', 'k', 'c', 'create_person', ?, 0)"
            ),
        ):
            try:
                raw.execute(sql, (state,))
            except sqlite3.IntegrityError:
                outcomes.append(False)
            else:
                outcomes.append(True)
        assert outcomes[0] == outcomes[1]
