"""What only the SQLite ledger promises: a file that persists, several processes, crash safety."""

from __future__ import annotations

import gc
import signal
import sqlite3
import subprocess
import sys
import threading
from contextlib import closing
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ledger_strategies import assert_identical

from signals_crm.core.model import Company, Conversation, Meeting, PersonKind, Visitor
from signals_crm.exceptions import ConfigurationError, InvalidTransitionError, LedgerError
from signals_crm.ledger import CommandRecord, CommandState, DueState, MemoryLedger, SQLiteLedger
from signals_crm.ledger import sqlite as sqlite_ledger
from signals_crm.ledger.base import apply_transitions, trusted_command
from signals_crm.ledger.sqlite import APPLICATION_ID, SCHEMA_VERSION

WORKERS = Path(__file__).with_name("ledger_workers.py")
T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
TIMEOUT = 30  # seconds; a hung worker fails the test instead of hanging the suite


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(  # our own script, fixed arguments
        [sys.executable, str(WORKERS), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _raw(path: Path) -> closing[sqlite3.Connection]:
    return closing(sqlite3.connect(path))


def _rich_conversation() -> Conversation:
    return Conversation(
        "conv-rich",
        closed_at=datetime(2026, 3, 29, 3, 30, tzinfo=ZoneInfo("Europe/Paris")),
        lead_score=3,
        visitor=Visitor(
            email="Ann@Example.com",
            first_name="Ann",
            extra={"seats": 12, "ratio": 0.25, "vip": True, "since": date(2020, 5, 1)},
        ),
        company=Company(domain="example.com", attributes={"arr": 1.5e6, "tier": None}),
        transcript="Hi! ünïcödé \u2603",
        meeting=Meeting(id="48213", name="Demo", date=date(2026, 4, 1)),
    )


def _cmd(key: str, state: CommandState, **kw: object) -> CommandRecord:
    return CommandRecord(key, key.split(":", maxsplit=1)[0], "create_person", state, T0, **kw)  # type: ignore[arg-type]


def test_fresh_file_gets_the_schema(tmp_path: Path) -> None:
    """A new file is created with WAL, the schema version, the ledger id, tables and indexes."""
    path = tmp_path / "fresh.db"
    with SQLiteLedger(path) as ledger:
        assert ledger.path == str(path)
        assert path.exists()
        with _raw(path) as raw:
            assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
            assert raw.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
            assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            names = {r[0] for r in raw.execute("SELECT name FROM sqlite_master")}
    assert {"due_syncs", "commands", "links", "due_syncs_by_state", "commands_by_state"} <= names


def test_opening_twice_keeps_the_data(tmp_path: Path) -> None:
    """Everything written is there, equal, after closing and reopening the file."""
    path = tmp_path / "ledger.db"
    rich = _rich_conversation()
    with SQLiteLedger(path) as ledger:
        ledger.schedule_many([(rich, T0), (Conversation("done", closed_at=T0), T0)])
        ledger.complete(["done"], "updated")
        ledger.record([_cmd("conv-rich:person", CommandState.CONFIRMED, crm_id="00Q1")])
        ledger.link("ann@example.com", "00Q1", PersonKind.LEAD)
        before = (
            ledger.get_due("conv-rich"),
            ledger.get_due("done"),
            ledger.commands_for("conv-rich"),
            ledger.links_for(["ann@example.com"]),
            ledger.stats(),
        )
    with SQLiteLedger(path) as reopened:
        after = (
            reopened.get_due("conv-rich"),
            reopened.get_due("done"),
            reopened.commands_for("conv-rich"),
            reopened.links_for(["ann@example.com"]),
            reopened.stats(),
        )
        assert after == before
        stored = reopened.get_due("conv-rich")
        assert stored is not None
        assert_identical(stored.conversation, rich)
        assert stored.state == DueState.PENDING


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A file written by a newer schema version is refused, not misread."""
    path = tmp_path / "ledger.db"
    SQLiteLedger(path).close()
    with _raw(path) as raw:
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        raw.commit()
    with pytest.raises(LedgerError, match="upgrade signals_crm"):
        SQLiteLedger(path)


def test_other_databases_are_refused(tmp_path: Path) -> None:
    """A SQLite file holding someone else's tables is not turned into a ledger."""
    path = tmp_path / "app.db"
    with _raw(path) as raw:
        raw.execute("CREATE TABLE users (id INTEGER)")
        raw.commit()
    with pytest.raises(LedgerError, match="not a signals_crm ledger"):
        SQLiteLedger(path)
    with _raw(path) as raw:
        assert [r[0] for r in raw.execute("SELECT name FROM sqlite_master")] == ["users"]


def test_unusable_paths_raise_ledger_errors(tmp_path: Path) -> None:
    """A non-database file and a missing directory raise LedgerError, never sqlite3 errors."""
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"definitely not a database" * 100)
    with pytest.raises(LedgerError):
        SQLiteLedger(garbage)
    with pytest.raises(LedgerError):
        SQLiteLedger(tmp_path / "missing" / "ledger.db")


def test_invalid_options_are_refused(tmp_path: Path) -> None:
    """An unknown synchronous mode or a negative busy timeout is a ConfigurationError."""
    with pytest.raises(ConfigurationError) as info:
        SQLiteLedger(tmp_path / "l.db", synchronous="OFF", busy_timeout=-1)  # type: ignore[arg-type]
    assert set(info.value.paths) == {"synchronous", "busy_timeout"}


def test_a_locked_file_fails_with_ledger_error(tmp_path: Path) -> None:
    """When another writer holds the file past busy_timeout, the write raises LedgerError."""
    path = tmp_path / "ledger.db"
    with SQLiteLedger(path, busy_timeout=0) as ledger, _raw(path) as other:
        other.isolation_level = None
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(LedgerError, match="locked"):
            ledger.record([_cmd("c1:person", CommandState.PLANNED)])
        assert ledger.get_command("c1:person") is None  # reads still work
        other.execute("ROLLBACK")
        ledger.record([_cmd("c1:person", CommandState.PLANNED)])
        assert ledger.get_command("c1:person") is not None


@pytest.mark.parametrize(
    ("query", "index"),
    [
        (
            (
                "SELECT conversation_id FROM due_syncs WHERE integration = 'a' "
                "AND state = 'pending' AND due_at <= 0 ORDER BY due_at, conversation_id LIMIT 5"
            ),
            "due_syncs_pending|due_syncs_by_state",
        ),
        (
            (
                "SELECT conversation_id FROM due_syncs WHERE integration = 'a' AND state = 'dead' "
                "ORDER BY due_at, conversation_id LIMIT 5"
            ),
            "due_syncs_by_state",
        ),
        (
            (
                "SELECT key FROM commands WHERE integration = 'a' AND state = 'sent' "
                "AND state != 'confirmed' ORDER BY updated_at, key LIMIT 5"
            ),
            "commands_by_state",
        ),
        (
            (
                "SELECT key FROM commands WHERE integration = 'a' AND conversation_id = 'c' "
                "AND (key < conversation_id || ':' OR key >= conversation_id || ';') ORDER BY key"
            ),
            "commands_by_conversation",
        ),
    ],
)
def test_queries_use_their_index(tmp_path: Path, query: str, index: str) -> None:
    """The queues' queries are served by an index in order, never a scan and a sort."""
    path = tmp_path / "ledger.db"
    SQLiteLedger(path).close()
    with _raw(path) as raw:
        plan = raw.execute(f"EXPLAIN QUERY PLAN {query}").fetchall()
    details = " ".join(str(row[-1]) for row in plan)
    assert any(name in details for name in index.split("|")), details
    assert "TEMP B-TREE" not in details


def test_two_connections_see_each_other(tmp_path: Path) -> None:
    """Two ledger objects on one file (as two processes would) see each other's writes."""
    path = tmp_path / "ledger.db"
    with SQLiteLedger(path) as first, SQLiteLedger(path) as second:
        first.schedule(Conversation("c1", closed_at=T0), T0)
        assert second.get_due("c1") is not None
        second.complete(["c1"], "created")
        done = first.get_due("c1")
        assert done is not None
        assert done.state == DueState.DONE


def test_a_command_changed_since_this_ledger_wrote_it_is_judged_as_stored(
    tmp_path: Path,
) -> None:
    """A row another writer changed since this ledger wrote it (or damaged) is judged on what
    it holds now."""
    path = tmp_path / "ledger.db"
    with SQLiteLedger(path) as ledger, SQLiteLedger(path) as other:
        ledger.record([_cmd("c1:person", CommandState.SENT), _cmd("c2:person", CommandState.SENT)])
        other.record([_cmd("c1:person", CommandState.CONFIRMED, crm_id="00Q1")])
        with _raw(path) as raw, raw:
            raw.execute("UPDATE commands SET updated_at = 'noon' WHERE key = 'c2:person'")
        with pytest.raises(InvalidTransitionError) as caught:
            ledger.record(
                [
                    _cmd("c1:person", CommandState.CONFIRMED, crm_id="00Q2"),
                    _cmd("c2:person", CommandState.SENT),
                ]
            )
        assert caught.value.keys == ("c1:person", "c2:person")  # unknown: reconcile first
        damaged = ledger.get_command("c2:person")
        assert damaged is not None
        assert damaged.state is CommandState.UNKNOWN
        ledger.record([_cmd("c3:person", CommandState.SENT)])
        ledger.record([_cmd("c3:person", CommandState.CONFIRMED, crm_id="00Q3")])
        assert other.get_command("c3:person") == _cmd(
            "c3:person", CommandState.CONFIRMED, crm_id="00Q3"
        )


def test_usable_from_another_thread(tmp_path: Path) -> None:
    """One ledger object may be called from a worker thread (as an async host would)."""
    errors: list[BaseException] = []
    with SQLiteLedger(tmp_path / "ledger.db") as ledger:

        def work() -> None:
            try:
                ledger.record([_cmd("c1:person", CommandState.PLANNED)])
            except BaseException as error:  # noqa: BLE001  # reported to the main thread
                errors.append(error)

        thread = threading.Thread(target=work)
        thread.start()
        thread.join(TIMEOUT)
        assert errors == []
        assert ledger.get_command("c1:person") is not None


def test_two_processes_writing_at_once(tmp_path: Path) -> None:
    """Two processes creating and writing one file at once lose nothing and send once."""
    path = tmp_path / "ledger.db"
    # no file yet: the workers also race to create the schema
    count = 40
    outputs = _run_together([_spawn("concurrent", str(path), n, str(count)) for n in "ab"])
    wins = sum(int(out.split()[-1]) for out in outputs)
    assert wins == count  # each shared command went PLANNED/absent -> SENT exactly once
    with SQLiteLedger(path) as ledger:
        stats = ledger.stats()
        assert stats.syncs[DueState.PENDING] == 3 * count
        assert stats.commands[CommandState.SENT] == count
        assert stats.commands[CommandState.PLANNED] == 2 * count
        assert stats.links == count
        shared = ledger.due(T0 + timedelta(days=1), 10 * count)
        ids = [s.conversation_id for s in shared]
        assert len(ids) == len(set(ids)) == 3 * count
    with _raw(path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _run_together(workers: list[subprocess.Popen[str]]) -> list[str]:
    """Wait for every worker's "ready", start them at once, and return their outputs."""
    outputs: list[str] = []
    try:
        for proc in workers:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        for proc in workers:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in workers:
            out, err = proc.communicate(timeout=TIMEOUT)
            assert proc.returncode == 0, err
            outputs.append(out)
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return outputs


def test_processes_claiming_share_the_work_exactly(tmp_path: Path) -> None:
    """Three processes claiming leases take every due sync exactly once between them."""
    path = tmp_path / "ledger.db"
    with SQLiteLedger(path) as ledger:
        ledger.schedule_many((Conversation(f"c{i:03}", closed_at=T0), T0) for i in range(90))
    outputs = _run_together([_spawn("drain", str(path), name) for name in ("a", "b", "c")])
    taken = [out.split() for out in outputs]
    every = [cid for ids in taken for cid in ids]
    assert sorted(every) == [f"c{i:03}" for i in range(90)]  # none lost, none twice
    with SQLiteLedger(path) as ledger:
        stats = ledger.stats()
        assert stats.syncs[DueState.DONE] == 90
        assert stats.commands[CommandState.SENT] == 90


@pytest.mark.parametrize("what", ["record", "schedule"])
def test_killed_inside_a_transaction_writes_nothing(tmp_path: Path, what: str) -> None:
    """A process killed at COMMIT leaves the earlier write whole and none of the killed one."""
    path = tmp_path / "ledger.db"
    proc = _spawn("kill_at_commit", str(path), what)
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == -signal.SIGKILL, err
    assert out.split() == ["committed"]
    with SQLiteLedger(path) as ledger:
        stats = ledger.stats()
        assert stats.commands[CommandState.PLANNED] == 50
        assert stats.commands[CommandState.SENT] == 0
        assert stats.syncs[DueState.PENDING] == 1
        assert ledger.get_due("safe") is not None
        assert ledger.commands_for("doomed") == []
        assert ledger.get_due("doomed-0") is None
    with _raw(path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_killed_at_a_random_instant_keeps_batches_whole(tmp_path: Path) -> None:
    """A writer killed at an arbitrary moment leaves every batch either complete or absent."""
    path = tmp_path / "ledger.db"
    proc = _spawn("batches", str(path))
    try:
        assert proc.stdout is not None
        committed = [proc.stdout.readline().strip() for _ in range(5)]
        assert committed == ["0", "1", "2", "3", "4"]
    finally:
        proc.kill()
        proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == -signal.SIGKILL
    with _raw(path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        sizes = dict(
            raw.execute("SELECT conversation_id, count(*) FROM commands GROUP BY conversation_id")
        )
    assert {f"b{i}" for i in range(5)} <= set(sizes)
    assert set(sizes.values()) == {200}
    landed = sorted(int(name[1:]) for name in sizes)
    assert landed == list(range(len(landed)))  # batches land in order, none missing


def test_read_only_reads_and_refuses_every_write(tmp_path: Path) -> None:
    """read_only=True reads a current file while another process writes it, and every write
    through it raises LedgerError; nothing is created for a missing path."""
    path = tmp_path / "ledger.db"
    with SQLiteLedger(path) as writer:
        writer.schedule(Conversation("c1", closed_at=T0), T0)
        with SQLiteLedger(path, read_only=True) as reader:
            assert reader.get_due("c1") is not None
            writer.schedule(Conversation("c2", closed_at=T0), T0)
            assert reader.stats().syncs[DueState.PENDING] == 2
            writes = [
                lambda: reader.schedule(Conversation("c3", closed_at=T0), T0),
                lambda: reader.complete(["c1"], "created"),
                lambda: reader.record([_cmd("c1:person", CommandState.SENT)]),
                lambda: reader.link("a@x.io", "00Q1", PersonKind.LEAD),
                lambda: reader.record_run({"counts": {}}),
            ]
            for write in writes:
                with pytest.raises(LedgerError, match="read-only"):
                    write()
            assert "read-only" in repr(reader)
    missing = tmp_path / "missing.db"
    with pytest.raises(LedgerError):
        SQLiteLedger(missing, read_only=True)
    assert not missing.exists()


def test_read_only_refuses_a_file_that_needs_upgrading(tmp_path: Path) -> None:
    """A read-only open never migrates: an older file is refused, and left as it was."""
    path = tmp_path / "ledger.db"
    SQLiteLedger(path).close()
    with _raw(path) as raw:
        raw.execute("PRAGMA user_version = 1")
        raw.commit()
    with pytest.raises(LedgerError, match="open it writable once"):
        SQLiteLedger(path, read_only=True)
    with _raw(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == 1


def test_siblings_share_one_connection_until_the_last_closes(tmp_path: Path) -> None:
    """for_integration reuses the connection; it closes with the last ledger using it."""
    first = SQLiteLedger(tmp_path / "ledger.db")
    second = first.for_integration("acme")
    first.close()
    with pytest.raises(LedgerError, match="closed"):
        first.stats()
    second.schedule(Conversation("c1", closed_at=T0), T0)
    assert second.stats().syncs[DueState.PENDING] == 1
    second.close()
    with pytest.raises(LedgerError, match="closed"):
        second.stats()


def test_a_sibling_never_closed_does_not_keep_the_file_open(tmp_path: Path) -> None:
    """A sibling dropped without close() releases its use when it is collected, so closing
    the ledger that opened the file closes the connection (no leaked sqlite3 handle)."""
    first = SQLiteLedger(tmp_path / "ledger.db")
    first.for_integration("acme").schedule(Conversation("c1", closed_at=T0), T0)
    kept = first.for_integration("kept")
    first.close()
    assert first._shared.conn is not None  # "kept" still uses it
    assert kept.stats().syncs[DueState.PENDING] == 0
    del kept
    gc.collect()
    assert first._shared.conn is None


def test_perform_commits_once_for_all_its_operations(tmp_path: Path) -> None:
    """perform runs its writes in one BEGIN IMMEDIATE ... COMMIT (each a savepoint): one
    commit however many operations, and a failed one rolled back to its savepoint alone."""
    from signals_crm.ledger import Operation

    with SQLiteLedger(tmp_path / "ledger.db") as ledger:
        conn = ledger._shared.conn  # counting the commits it makes
        assert conn is not None
        statements: list[str] = []
        conn.set_trace_callback(statements.append)
        sent = CommandRecord("c1:person", "c1", "create_person", CommandState.SENT, T0)
        results = ledger.perform(
            [
                Operation("schedule", (Conversation("c1", closed_at=T0), T0)),
                Operation("record", ([sent],)),
                Operation("record", ([sent],)),  # SENT again: refused, undone alone
                Operation("complete", (["c1"], "created")),
            ]
        )
        conn.set_trace_callback(None)
        assert [error is None for _, error in results] == [True, True, False, True]
        assert [s for s in statements if s.split()[0] in {"BEGIN", "COMMIT"}] == [
            "BEGIN IMMEDIATE",
            "COMMIT",
        ]
        assert ledger.get_due("c1").state is DueState.DONE
        assert ledger.get_command("c1:person").state is CommandState.SENT


def test_commands_of_probes_each_conversation(tmp_path: Path) -> None:
    """``commands_of`` probes each conversation twice, by a range of the primary key (its
    keys starting with its id and ':') and in ``commands_by_conversation`` (any other key):
    it never walks every command of the integration (an ``ORDER BY key`` in the statement
    made SQLite walk the primary key instead; the rows are sorted in Python)."""
    path = tmp_path / "ledger.db"
    statements: list[str] = []
    with SQLiteLedger(path) as ledger:
        ledger.record([_cmd("c2:b", CommandState.SENT), _cmd("c1:a", CommandState.SENT)])
        conn = ledger._shared.conn  # the statement it runs, explained
        assert conn is not None
        conn.set_trace_callback(statements.append)
        found = ledger.commands_of(["c2", "c1", "c3"])
        conn.set_trace_callback(None)
        assert {cid: [c.key for c in cs] for cid, cs in found.items()} == {
            "c2": ["c2:b"],
            "c1": ["c1:a"],
            "c3": [],
        }
        (query,) = [s for s in statements if s.lstrip().startswith("SELECT")]
        plan = conn.execute(f"EXPLAIN QUERY PLAN {query}").fetchall()
    details = " ".join(str(row[-1]) for row in plan)
    assert "commands_by_conversation (integration=? AND conversation_id=?)" in details, details
    assert "sqlite_autoindex_commands_1 (integration=? AND key>? AND key<?)" in details, details
    assert "SCAN c" not in details, details


_STORED_ROWS: dict[str, tuple[str | None, bool]] = {
    # A stored row of c1:person, as SQL assignments over a sound SENT row (None: no row), and
    # whether the write judges an outcome (not SENT) over it itself, without reading it.
    "absent": (None, True),
    **{
        state.value: (
            f"state = '{state.value}', crm_id = '00Q1'",
            state in {CommandState.PLANNED, CommandState.SENT, CommandState.UNKNOWN},
        )
        for state in CommandState
    },
    "sent, time as text": ("updated_at = 'noon'", True),
    "planned, time as text": ("state = 'planned', updated_at = 'noon'", True),
    "unknown, attempts negative": ("state = 'unknown', attempts = -1", True),
    "confirmed without crm id": ("state = 'confirmed', crm_id = NULL", False),
    "failed, time as text": ("state = 'failed', updated_at = 'noon'", False),
    "sent, other conversation": ("conversation_id = 'c9'", False),
    "planned, other kind": ("state = 'planned', kind = 'create_task'", False),
    "unknown, other conversation by a space": ("state = 'unknown', conversation_id = 'c1 '", False),
}


@pytest.mark.parametrize("new", list(CommandState))
@pytest.mark.parametrize("stored", list(_STORED_ROWS))
def test_a_write_judges_as_a_read_and_apply_transitions_would(
    tmp_path: Path, stored: str, new: CommandState
) -> None:
    """``record`` writes new keys and outcomes without reading their rows first (the upsert
    itself judges them; anything else is read and judged as before): for every stored row,
    sound or damaged, and every new state, the result is what reading the row and
    ``apply_transitions`` decide: the same records written, or the same refusal and nothing
    of the batch written."""
    path = tmp_path / "ledger.db"
    change, judged = _STORED_ROWS[stored]
    later = T0 + timedelta(seconds=1)
    with SQLiteLedger(path) as ledger:
        if change is not None:
            ledger.record([_cmd("c1:person", CommandState.SENT)])
            with _raw(path) as raw, raw:
                raw.execute(f"UPDATE commands SET {change} WHERE key = 'c1:person'")  # noqa: S608
        before = ledger.get_commands(["c1:person"])
        batch = [
            CommandRecord("c2:person", "c2", "create_person", CommandState.SENT, later),
            CommandRecord(
                "c1:person",
                "c1",
                "create_person",
                new,
                later,
                "00Q1" if new is CommandState.CONFIRMED else None,
                attempts=2,
            ),
        ]
        try:
            expected: dict[str, CommandRecord] | InvalidTransitionError = apply_transitions(
                before, batch
            )
        except InvalidTransitionError as refused:
            expected = refused
        statements: list[str] = []
        conn = ledger._shared.conn  # the statements it runs
        assert conn is not None
        conn.set_trace_callback(statements.append)
        if isinstance(expected, InvalidTransitionError):
            with pytest.raises(InvalidTransitionError) as caught:
                ledger.record(batch)
            conn.set_trace_callback(None)
            assert str(caught.value) == str(expected)
            assert caught.value.keys == expected.keys
            assert ledger.get_commands(["c1:person"]) == before
            assert ledger.get_command("c2:person") is None
        else:
            ledger.record(batch)
            conn.set_trace_callback(None)
            assert ledger.get_commands(["c1:person", "c2:person"]) == expected
        read = any("SELECT key" in s and "FROM commands" in s for s in statements)
        assert read is not (judged and (change is None or new is not CommandState.SENT))


def test_the_state_index_serves_the_unsettled_and_confirmed_ones_are_listed_still(
    tmp_path: Path,
) -> None:
    """``commands_by_state`` leaves confirmed commands out (an outcome CONFIRMED only takes its
    SENT entry out, schema 5): the statements that list unsettled or failed commands search
    it, and confirmed ones are still listed, oldest first then by key, up to the limit."""
    path = tmp_path / "ledger.db"
    statements: list[str] = []
    later = T0 + timedelta(minutes=1)
    with SQLiteLedger(path) as ledger:
        ledger.schedule(Conversation("c1", closed_at=T0, visitor=Visitor(email="a@x.io")), T0)
        ledger.record(
            [
                _cmd("c1:person", CommandState.SENT),
                _cmd("c2:person", CommandState.FAILED, reason="no"),
                CommandRecord(
                    "c3:person", "c3", "create_person", CommandState.CONFIRMED, later, "3"
                ),
                _cmd("c4:person", CommandState.CONFIRMED, crm_id="4"),
                _cmd("c5:person", CommandState.CONFIRMED, crm_id="5"),
            ]
        )
        conn = ledger._shared.conn  # the statements it runs, explained
        assert conn is not None
        conn.set_trace_callback(statements.append)
        assert [c.key for c in ledger.commands_in_state(CommandState.SENT, 5)] == ["c1:person"]
        assert [c.key for c in ledger.commands_in_state(CommandState.FAILED, 5)] == ["c2:person"]
        assert [c.conversation_id for c in ledger.creates_in_flight(["a@x.io"])] == ["c1"]
        conn.set_trace_callback(None)
        confirmed = ledger.commands_in_state(CommandState.CONFIRMED, 2)
        assert [c.key for c in confirmed] == ["c4:person", "c5:person"]
        assert [c.key for c in ledger.commands_in_state(CommandState.CONFIRMED, 5)] == [
            "c4:person",
            "c5:person",
            "c3:person",
        ]
        selects = [s for s in statements if s.lstrip().startswith("SELECT")]
        assert len(selects) == 3
        for query in selects:
            plan = conn.execute(f"EXPLAIN QUERY PLAN {query}").fetchall()
            details = " ".join(str(row[-1]) for row in plan)
            assert "commands_by_state" in details, details


def test_a_new_file_has_16_kib_pages_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    """A file the ledger creates is made of 16 KiB pages; a file made with other pages keeps
    them (SQLite cannot change them in WAL mode) and works as ever."""
    fresh = tmp_path / "fresh.db"
    SQLiteLedger(fresh).close()
    old = tmp_path / "old.db"
    with _raw(old) as raw:
        raw.execute("PRAGMA page_size = 4096")
        raw.execute("PRAGMA journal_mode = WAL")
    with SQLiteLedger(old) as ledger:
        ledger.record([_cmd("c1:person", CommandState.SENT)])
        assert ledger.get_command("c1:person") == _cmd("c1:person", CommandState.SENT)
    with _raw(fresh) as raw, _raw(old) as other:
        assert raw.execute("PRAGMA page_size").fetchone()[0] == 16384
        assert other.execute("PRAGMA page_size").fetchone()[0] == 4096


# Conversation ids and keys where a key's prefix is another conversation's id, an id holds ':'
# or a NUL, a key is its id bare or with ':' only, or does not start with its id at all.
_PREFIX_CASES = [
    ("a", "a:person"),
    ("a", "a:task:m1"),
    ("a", "a"),
    ("a", "a:"),
    ("a", "a;"),
    ("a", "zz-of-a"),
    ("a:b", "a:b:person"),
    ("a:b", "a:b"),
    ("b", "a:x"),
    ("b", "b:person"),
    ("a\x00", "a\x00:person"),
    ("a\x00", "a:nul"),
    ("é", "é:person"),
    ("é", "e:person"),
    ("", ":person"),
]


def test_commands_of_any_ids_and_keys_equal_the_memory_ledgers(tmp_path: Path) -> None:
    """``commands_for``, ``commands_of`` and ``requeue_dead`` find a conversation's commands
    whatever its id and their keys (schema 7: a key starting with its conversation's id and
    ':' is found by a range of keys, any other in the partial conversation index), as the
    in-memory ledger does; and the index holds only the commands of other keys."""
    ids = sorted({cid for cid, _ in _PREFIX_CASES if cid})
    records = [
        CommandRecord(key, cid or "-", "create_person", CommandState.FAILED, T0, reason="no")
        for cid, key in _PREFIX_CASES
    ]
    memory = MemoryLedger()
    with SQLiteLedger(tmp_path / "ledger.db") as ledger:
        for one in (ledger, memory):
            one.schedule_many((Conversation(cid, closed_at=T0), T0) for cid in ids)
            one.record(records)
        wanted = [*ids, "-", "c", "a:b:person", "a;"]
        assert ledger.commands_of(wanted) == memory.commands_of(wanted)
        for cid in wanted:
            assert ledger.commands_for(cid) == memory.commands_for(cid), cid
        for one in (ledger, memory):
            for cid in ("a", "a:b", "a\x00"):
                one.dead_letter(cid, "gave up")
        later = T0 + timedelta(hours=1)
        assert ledger.requeue_dead(["a:b", "a", "a\x00"], later) == memory.requeue_dead(
            ["a:b", "a", "a\x00"], later
        )
        assert ledger.commands_of(wanted) == memory.commands_of(wanted)
        conn = ledger._shared.conn
        assert conn is not None
        listed = ", ".join("?" * (len(ids) + 1))
        indexed = conn.execute(
            "SELECT key FROM commands INDEXED BY commands_by_conversation "  # noqa: S608
            f"WHERE integration = ? AND conversation_id IN ({listed}) "
            "AND (key < conversation_id || ':' OR key >= conversation_id || ';') ORDER BY key",
            (ledger.integration, *ids, "-"),
        ).fetchall()
    assert [key for (key,) in indexed] == sorted(
        key for cid, key in _PREFIX_CASES if not key.startswith(f"{cid or '-'}:")
    )


_ZONES = (UTC, timezone(timedelta(hours=2)), ZoneInfo("America/New_York"))


@st.composite
def _command_batches(draw: st.DrawFn) -> list[CommandRecord]:
    """Batches of distinct keys whose columns are shared by every row or not, whose times are
    one instant or a few, given in one zone or several (equal instants in different zones)."""
    size = draw(st.integers(min_value=1, max_value=6))
    instants = draw(st.lists(st.integers(min_value=0, max_value=2), min_size=size, max_size=size))
    zones = draw(st.lists(st.sampled_from(_ZONES), min_size=size, max_size=size))
    states = draw(st.lists(st.sampled_from(list(CommandState)), min_size=size, max_size=size))
    kinds = draw(
        st.lists(st.sampled_from(["create_task", "add_to_campaign"]), min_size=size, max_size=size)
    )
    owners = draw(st.lists(st.sampled_from([None, "w1", "w2"]), min_size=size, max_size=size))
    fences = draw(st.lists(st.sampled_from([None, 0, 3]), min_size=size, max_size=size))
    return [
        CommandRecord(
            f"c{i % 3}:k{i}",
            f"c{i % 3}",
            kinds[i],
            state,
            (T0 + timedelta(minutes=instants[i])).astimezone(zones[i]),
            crm_id=f"00Q{i}" if state is CommandState.CONFIRMED else None,
            reason="no" if state is CommandState.FAILED else None,
            attempts=i % 2,
            owner=owners[i],
            fence=fences[i],
        )
        for i, state in enumerate(states)
    ]


@given(records=_command_batches(), judged=st.booleans())
def test_an_upsert_binds_each_row_as_the_record_holds_it(
    records: list[CommandRecord], judged: bool
) -> None:
    """The multi-row upsert (columns every row shares bound once, their state or time
    converted once) writes exactly the row of each record, converted one by one."""
    with closing(sqlite3.connect(":memory:")) as conn:
        for step in sqlite_ledger.MIGRATIONS:
            for statement in step:
                conn.execute(statement)
        micros: dict[datetime, int] = {}
        sql, values = sqlite_ledger._upsert_statement("tenant", records, micros, judged)
        assert conn.execute(sql, values).rowcount == len(records)
        stored = conn.execute(
            "SELECT integration, key, conversation_id, kind, state, crm_id, reason, attempts, "
            "updated_at, payload_digest, owner, fence FROM commands ORDER BY rowid"
        ).fetchall()
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert stored == [
        (
            "tenant", r.key, r.conversation_id, r.kind, r.state.value, r.crm_id, r.reason,
            r.attempts, (r.updated_at - epoch) // timedelta(microseconds=1),
            r.payload_digest, r.owner, r.fence,
        )
        for r in records
    ]  # fmt: skip


def test_a_naive_time_in_a_batch_is_refused_as_ever(tmp_path: Path) -> None:
    """A record whose time lost its zone (built past the validating constructor) is refused
    with a ConfigurationError naming updated_at, and nothing of its batch is written."""
    naive = trusted_command(
        "c2:person", "c2", "create_person", CommandState.SENT, T0.replace(tzinfo=None)
    )
    with SQLiteLedger(tmp_path / "ledger.db") as ledger:
        with pytest.raises(ConfigurationError, match="updated_at"):
            ledger.record([_cmd("c1:person", CommandState.SENT), naive])
        assert ledger.get_commands(["c1:person", "c2:person"]) == {}
