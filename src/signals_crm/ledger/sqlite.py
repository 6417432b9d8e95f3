"""The embedded default ledger: one SQLite file, safe for several processes on one machine.

How it keeps the rules of :mod:`signals_crm.ledger.base`:

1. **One file, WAL journal.** Readers never block the writer and the writer never blocks
   readers. The file (plus its ``-wal`` and ``-shm`` companions while open) is the whole store.
2. **Short write transactions.** Every write method is one ``BEGIN IMMEDIATE`` ... ``COMMIT``:
   the write lock is taken up front, the current rows are read, the rules are checked and the
   new rows written, all under that lock. (``record`` lets its upsert judge the common
   transitions itself, new keys and outcomes, without reading the rows first; when the
   statement's count says a row was not one of those, the write is undone to a savepoint and
   every row read and judged.) Two processes can therefore never both move one
   command from PLANNED to SENT, and a batch lands whole or not at all (a process killed at any
   instant leaves either the old rows or the new ones). A busy file is waited for up to
   ``busy_timeout`` seconds, then :class:`~signals_crm.exceptions.LedgerError` is raised.
3. **Durability.** ``synchronous=FULL`` (the default) makes every committed write survive a
   power loss; ``"NORMAL"`` survives a crashed or killed process but may lose the last writes
   on power loss, in exchange for fewer fsyncs.
4. **One connection per object, per process.** Open a ``SQLiteLedger`` in each process (never
   share one across ``fork``). One object may be used from several threads; calls are
   serialised by a lock.
5. **Schema, migrated forward.** The schema is a ladder of numbered steps (``MIGRATIONS``;
   step *n* takes a file from version *n* to *n + 1*; step 0 creates the tables). The
   version lives in ``PRAGMA user_version`` (``PRAGMA application_id`` marks the file as a
   ledger). Opening a file climbs the steps it lacks, all in one transaction, so a file is
   either at its old version or the new one, never between. Steps are never edited or
   removed once released, only appended; there is no way down (an older signals_crm refuses
   a newer file). A file that holds other tables, or was written by a newer schema, is
   refused with a LedgerError; ``migrate=False`` refuses an old file instead of upgrading.
6. **Storage.** Times are integers (microseconds since 1970-01-01 UTC), so they sort as
   instants; conversations are JSON (:mod:`signals_crm.ledger.codec`). Indexes serve claims
   (a partial index of pending rows: integration, due time, id), ``syncs_in_state``
   (integration, state, due time, id), the email rule of claims (integration, email, lease
   end), in-flight listings (a partial index of leased rows), ``commands_in_state`` (a
   partial index of the commands not confirmed: an outcome CONFIRMED only takes its SENT entry
   out; confirmed ones are listed from the table) and ``commands_for`` (a command whose key
   starts with its conversation's id and ``:``, as the engine's all do, by a range of the
   primary key; any other in a partial index by conversation). Batches are written as
   multi-row statements (a few hundred rows each).
7. **The ledger's clock** (``clock``, default the wall clock of this process, UTC) judges
   leases: it is read inside the ledger at each claim, never taken from a worker.
8. **Tenancy.** Every table's primary key starts with ``integration``; every statement of a
   ledger names its own integration, so one file serves any number of them apart.
   ``for_integration`` gives a ledger bound to another integration on the same connection.
9. **Read-only.** ``read_only=True`` opens an existing file at the current schema with
   SQLite's ``mode=ro``: nothing is created or migrated, and every write raises LedgerError.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import logging
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

import attrs

from signals_crm.core.model import Conversation, PersonKind, normalize_email
from signals_crm.exceptions import ConfigurationError, LedgerError, Problem
from signals_crm.ledger._rows import (
    DAMAGED,
    EPOCH,
    MAX_MICROS,
    MIN_MICROS,
    Damage,
    micros_time,
    read_command,
    read_sync,
)
from signals_crm.ledger.base import (
    DEFAULT_INTEGRATION,
    Clock,
    CommandRecord,
    CommandState,
    CreateInFlight,
    DueState,
    DueSync,
    LedgerStats,
    Operation,
    Performed,
    PersonLink,
    RunRecord,
    apply_transitions,
    check_fence,
    check_fences,
    check_ids,
    check_integration,
    check_keep,
    check_limit,
    check_seen,
    check_text,
    claim_refused,
    claim_window,
    clean_text,
    fences_of,
    perform_all,
    perform_each,
    retried,
    summary_json,
    to_utc,
    wall_clock,
)
from signals_crm.ledger.codec import conversation_from_dict, conversation_to_dict

__all__ = ["APPLICATION_ID", "MIGRATIONS", "SCHEMA_VERSION", "SQLiteLedger"]

APPLICATION_ID = 0x5343524D
"""``PRAGMA application_id`` of a ledger file (``"SCRM"``)."""

_log = logging.getLogger("signals_crm.ledger")
_T = TypeVar("_T")

_CHUNK = 500  # bound parameters per IN (...) query; well under SQLite's limit

_V1 = (
    """
    CREATE TABLE due_syncs (
        conversation_id TEXT PRIMARY KEY,
        due_at INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'dead')),
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        outcome TEXT,
        conversation TEXT NOT NULL,
        lease_owner TEXT,
        lease_until INTEGER,
        email TEXT
    )
    """,
    "CREATE INDEX due_syncs_by_state ON due_syncs (state, due_at, conversation_id)",
    "CREATE INDEX due_syncs_by_email ON due_syncs (email, lease_until)",
    """
    CREATE TABLE commands (
        key TEXT PRIMARY KEY,
        conversation_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        state TEXT NOT NULL
            CHECK (state IN ('planned', 'sent', 'confirmed', 'failed', 'unknown')),
        crm_id TEXT,
        reason TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        updated_at INTEGER NOT NULL,
        payload_digest TEXT,
        owner TEXT
    )
    """,
    "CREATE INDEX commands_by_conversation ON commands (conversation_id, key)",
    "CREATE INDEX commands_by_state ON commands (state, updated_at, key)",
    """
    CREATE TABLE links (
        email TEXT PRIMARY KEY,
        crm_id TEXT NOT NULL,
        kind TEXT NOT NULL
    )
    """,
)

_V2_FENCES = (
    # Fencing tokens: every claim bumps the sync's fence; a command remembers the one it was
    # written under.
    "ALTER TABLE due_syncs ADD COLUMN fence INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE commands ADD COLUMN fence INTEGER",
)

_V3_TENANTS = (
    # Tenancy: every row belongs to an integration; rows written before belong to "default".
    # SQLite cannot change a primary key in place, so each table is rebuilt.
    """
    CREATE TABLE due_syncs_v3 (
        integration TEXT NOT NULL,
        conversation_id TEXT NOT NULL,
        due_at INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'dead')),
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        outcome TEXT,
        conversation TEXT NOT NULL,
        lease_owner TEXT,
        lease_until INTEGER,
        email TEXT,
        fence INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (integration, conversation_id)
    )
    """,
    """
    INSERT INTO due_syncs_v3 (integration, conversation_id, due_at, state, attempts, last_error,
        outcome, conversation, lease_owner, lease_until, email, fence)
    SELECT 'default', conversation_id, due_at, state, attempts, last_error, outcome,
        conversation, lease_owner, lease_until, email, fence FROM due_syncs
    """,
    "DROP TABLE due_syncs",
    "ALTER TABLE due_syncs_v3 RENAME TO due_syncs",
    # Claims and the fleet's list of tenants with due work: pending rows only.
    (
        "CREATE INDEX due_syncs_pending ON due_syncs (integration, due_at, conversation_id) "
        "WHERE state = 'pending'"
    ),
    "CREATE INDEX due_syncs_by_state ON due_syncs (integration, state, due_at, conversation_id)",
    "CREATE INDEX due_syncs_by_email ON due_syncs (integration, email, lease_until)",
    (
        "CREATE INDEX due_syncs_in_flight ON due_syncs (integration, lease_until) "
        "WHERE lease_owner IS NOT NULL"
    ),
    """
    CREATE TABLE commands_v3 (
        integration TEXT NOT NULL,
        key TEXT NOT NULL,
        conversation_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        state TEXT NOT NULL
            CHECK (state IN ('planned', 'sent', 'confirmed', 'failed', 'unknown')),
        crm_id TEXT,
        reason TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        updated_at INTEGER NOT NULL,
        payload_digest TEXT,
        owner TEXT,
        fence INTEGER,
        PRIMARY KEY (integration, key)
    )
    """,
    """
    INSERT INTO commands_v3 (integration, key, conversation_id, kind, state, crm_id, reason,
        attempts, updated_at, payload_digest, owner, fence)
    SELECT 'default', key, conversation_id, kind, state, crm_id, reason, attempts, updated_at,
        payload_digest, owner, fence FROM commands
    """,
    "DROP TABLE commands",
    "ALTER TABLE commands_v3 RENAME TO commands",
    "CREATE INDEX commands_by_conversation ON commands (integration, conversation_id, key)",
    "CREATE INDEX commands_by_state ON commands (integration, state, updated_at, key)",
    """
    CREATE TABLE links_v3 (
        integration TEXT NOT NULL,
        email TEXT NOT NULL,
        crm_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        PRIMARY KEY (integration, email)
    ) WITHOUT ROWID
    """,
    (
        "INSERT INTO links_v3 (integration, email, crm_id, kind) "
        "SELECT 'default', email, crm_id, kind FROM links"
    ),
    "DROP TABLE links",
    "ALTER TABLE links_v3 RENAME TO links",
    # Run reports: one short JSON summary per engine run, newest last.
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        integration TEXT NOT NULL,
        recorded_at INTEGER NOT NULL,
        summary TEXT NOT NULL
    )
    """,
    "CREATE INDEX runs_by_integration ON runs (integration, id)",
)

_V4_IN_FLIGHT = (
    # The console's in-flight page walks leases in order of their end (then id), from the index.
    "DROP INDEX IF EXISTS due_syncs_in_flight",
    (
        "CREATE INDEX due_syncs_in_flight ON due_syncs (integration, lease_until, conversation_id) "
        "WHERE lease_owner IS NOT NULL"
    ),
)

_V5_UNSETTLED = (
    # The state index leaves confirmed commands out: an outcome CONFIRMED (nearly every command
    # ends so) only removes its SENT entry instead of also inserting one, and the index stays
    # the size of the unsettled and failed commands. Its queries say ``state != 'confirmed'``
    # so SQLite may use it; confirmed commands are listed from the table.
    "DROP INDEX commands_by_state",
    (
        "CREATE INDEX commands_by_state ON commands (integration, state, updated_at, key) "
        "WHERE state != 'confirmed'"
    ),
)

_COMMAND_STATES = " OR ".join(
    f"state = '{state}'" for state in ("planned", "sent", "confirmed", "failed", "unknown")
)
_V6_CHECK_BY_EQUALITIES = (
    # The commands' state CHECK as equalities joined by OR: it refuses exactly what
    # ``state IN (...)`` refused, but SQLite evaluates an IN list of a CHECK at a cost of about
    # half a microsecond a row written (a fifth of a backfill's ledger CPU), the equalities at
    # next to nothing. SQLite cannot change a CHECK in place, so the table is rebuilt; its rows
    # are copied as stored, damaged ones too (written past the CHECK by a foreign writer: they
    # still read as damaged), so the copy alone runs with the CHECKs off.
    f"""
    CREATE TABLE commands_v6 (
        integration TEXT NOT NULL,
        key TEXT NOT NULL,
        conversation_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        state TEXT NOT NULL CHECK ({_COMMAND_STATES}),
        crm_id TEXT,
        reason TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        updated_at INTEGER NOT NULL,
        payload_digest TEXT,
        owner TEXT,
        fence INTEGER,
        PRIMARY KEY (integration, key)
    )
    """,
    "PRAGMA ignore_check_constraints = ON",
    """
    INSERT INTO commands_v6 (integration, key, conversation_id, kind, state, crm_id, reason,
        attempts, updated_at, payload_digest, owner, fence)
    SELECT integration, key, conversation_id, kind, state, crm_id, reason, attempts,
        updated_at, payload_digest, owner, fence FROM commands
    """,
    "PRAGMA ignore_check_constraints = OFF",
    "DROP TABLE commands",
    "ALTER TABLE commands_v6 RENAME TO commands",
    "CREATE INDEX commands_by_conversation ON commands (integration, conversation_id, key)",
    (
        "CREATE INDEX commands_by_state ON commands (integration, state, updated_at, key) "
        "WHERE state != 'confirmed'"
    ),
)

_UNPREFIXED = "(key < conversation_id || ':' OR key >= conversation_id || ';')"
_V7_PREFIXED_KEYS = (
    # The conversation index holds only the commands whose key does not start with their
    # conversation's id and ':' (the engine's keys all do): the others are found by their key,
    # a range of the primary key from ``id:`` to ``id;``, then their conversation_id compared.
    # A command written no longer goes into a third b-tree. (An id may itself hold ':': the
    # range of ``a`` then also holds the keys of ``a:b``, which the comparison leaves out.)
    "DROP INDEX commands_by_conversation",
    (
        "CREATE INDEX commands_by_conversation ON commands (integration, conversation_id, key) "
        f"WHERE {_UNPREFIXED}"
    ),
)

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    _V1,
    _V2_FENCES,
    _V3_TENANTS,
    _V4_IN_FLIGHT,
    _V5_UNSETTLED,
    _V6_CHECK_BY_EQUALITIES,
    _V7_PREFIXED_KEYS,
)
"""The forward-only ladder: ``MIGRATIONS[n]`` takes a file from version ``n`` to ``n + 1``."""

SCHEMA_VERSION = len(MIGRATIONS)
"""The schema this code writes, stored in ``PRAGMA user_version``."""

_SYNC_COLUMNS = (
    "conversation_id, due_at, state, attempts, last_error, outcome, conversation, "
    "lease_owner, lease_until, fence"
)
_COMMAND_COLUMNS = (
    "key, conversation_id, kind, state, crm_id, reason, attempts, updated_at, payload_digest, "
    "owner, fence"
)
_UPSERT_COMMANDS = f"""
    INSERT INTO commands (integration, {_COMMAND_COLUMNS}) SELECT {{}} FROM (VALUES {{}}) WHERE true
    ON CONFLICT (integration, key) DO UPDATE SET
        state = excluded.state, crm_id = excluded.crm_id, reason = excluded.reason,
        attempts = excluded.attempts, updated_at = excluded.updated_at,
        payload_digest = excluded.payload_digest, owner = excluded.owner,
        fence = excluded.fence
"""  # noqa: S608  # constant column names, values bound
# The transitions a write judges itself (rule: a stored row changed by anyone is judged as it
# is): a key nobody has is inserted whatever its state; a stored key is updated only to a
# state other than SENT, from a stored PLANNED, SENT or UNKNOWN with the same conversation
# and kind. Each of these is allowed by the rules whether the row is sound or damaged (a
# damaged row reads as UNKNOWN, which allows the same), and the upsert leaves the row exactly
# as the record. Anything else is not written, and the statement's count says so.
_JUDGED = """
    WHERE excluded.state != 'sent' AND commands.state IN ('planned', 'sent', 'unknown')
    AND commands.conversation_id = excluded.conversation_id AND commands.kind = excluded.kind
"""
_STATE_COLUMN, _TIME_COLUMN = 4, 8  # in a command row: integration first


@functools.lru_cache(maxsize=8)
def _by_conversation(columns: str, ids: int) -> str:
    """A query of ``columns`` of the commands of ``ids`` conversations (bound twice: the ids,
    the integration, the integration, the ids; rule 6): those whose key starts with their
    conversation's id and ':' by a range of the primary key, the others from the (partial)
    conversation index. No ORDER BY: callers sort by key in Python."""
    listed = _placeholders(ids)
    return (
        f"SELECT {columns} FROM (VALUES {_values(ids, 1)}) AS ids "  # noqa: S608
        "JOIN commands AS c ON c.integration = ? AND c.conversation_id = ids.column1 "
        "AND c.key >= ids.column1 || ':' AND c.key < ids.column1 || ';' "
        f"UNION ALL SELECT {columns} FROM commands AS c INDEXED BY commands_by_conversation "
        f"WHERE integration = ? AND conversation_id IN ({listed}) AND {_UNPREFIXED}"
    )


_UPSERT_LINKS = """
    INSERT INTO links (integration, email, crm_id, kind) VALUES {}
    ON CONFLICT (integration, email) DO UPDATE SET crm_id = excluded.crm_id, kind = excluded.kind
"""
_UPSERT_SYNCS = """
    INSERT INTO due_syncs (integration, conversation_id, due_at, state, conversation, email)
    VALUES {}
    ON CONFLICT (integration, conversation_id) DO UPDATE SET
        due_at = excluded.due_at, conversation = excluded.conversation, email = excluded.email,
        fence = due_syncs.fence + (due_syncs.conversation IS NOT excluded.conversation)
    WHERE due_syncs.state = 'pending'
"""
_PAGE_BYTES = 16384  # pages of a new file (SQLite's default is 4 KiB; a file keeps its own)
_CACHE_KIB = -16384  # page cache per connection: up to 16 MiB (SQLite's default is 2 MiB)
_ROWS_PER_STATEMENT = 400  # rows per multi-row INSERT: 400 x 12 values, under SQLite's limit

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _micros(value: datetime, name: str = "time") -> int:
    micros = (value - _EPOCH) // _MICROSECOND
    if not MIN_MICROS <= micros <= MAX_MICROS:
        raise ConfigurationError([Problem(name, "must be between the years 1 and 9999")])
    return micros


def _chunks(values: Sequence[_T], size: int = _CHUNK) -> Iterator[Sequence[_T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _placeholders(count: int) -> str:
    return ", ".join("?" * count)


def _values(rows: int, width: int) -> str:
    """``(?, ?), (?, ?)`` for a multi-row VALUES clause."""
    one = f"({_placeholders(width)})"
    return ", ".join([one] * rows)


def _dump(conversation: Conversation) -> str:
    return json.dumps(conversation_to_dict(conversation), separators=(",", ":"), allow_nan=False)


def _load(text: object) -> Conversation:
    if not isinstance(text, str):
        raise LedgerError(f"cannot decode a stored conversation: {type(text).__name__}, not text")
    try:
        data = json.loads(text)
    except ValueError as error:
        raise LedgerError(f"cannot decode a stored conversation: {error}") from error
    return conversation_from_dict(data)


def _sync_from_row(row: Sequence[Any], conversation: Conversation | None = None) -> DueSync:
    """The sync a row means (a damaged row reads as a dead sync, see ``_rows``)."""
    cid, due_at, state, attempts, last_error, outcome, text, owner, until, fence = row

    def stored() -> Conversation:
        return _load(text) if conversation is None else conversation

    return read_sync(
        cid,
        due_at,
        state,
        attempts,
        last_error,
        outcome,
        stored,
        owner,
        until,
        fence,
        time=micros_time,
    )


def _command_from_row(row: Sequence[Any]) -> CommandRecord:
    """The command a row means (a damaged row reads as UNKNOWN, see ``_rows``)."""
    return read_command(*row, time=micros_time)


def _checked_entries(
    entries: Iterable[tuple[Conversation, datetime]],
) -> Iterator[tuple[Conversation, datetime]]:
    for conversation, due_at in entries:
        check_text("conversation.id", conversation.id)
        yield conversation, due_at


def _command_columns(integration: str, records: Sequence[CommandRecord]) -> list[list[Any]]:
    """The columns of ``records``' rows as the records hold them (the integration first)."""
    return [
        [integration] * len(records),
        [r.key for r in records],
        [r.conversation_id for r in records],
        [r.kind for r in records],
        [r.state for r in records],
        [r.crm_id for r in records],
        [r.reason for r in records],
        [r.attempts for r in records],
        [r.updated_at for r in records],
        [r.payload_digest for r in records],
        [r.owner for r in records],
        [r.fence for r in records],
    ]


@functools.lru_cache(maxsize=64)
def _upsert_sql(shared: tuple[bool, ...], rows: int, judged: bool) -> str:
    """The upsert of ``rows`` command rows: a column ``shared`` by every row is bound once,
    the others once per row in a VALUES list (fewer values to bind: most columns of a batch
    hold one value, its integration, owner, time, attempts...)."""
    picks, width = [], 0
    for one in shared:
        if one:
            picks.append("?")
        else:
            width += 1
            picks.append(f"column{width}")
    sql = _UPSERT_COMMANDS.format(", ".join(picks), _values(rows, width))
    return sql + _JUDGED if judged else sql


def _upsert_statement(
    integration: str, records: Sequence[CommandRecord], micros: dict[datetime, int], judged: bool
) -> tuple[str, list[Any]]:
    """The SQL and values of one upsert of ``records`` (see ``_upsert_sql``). A state or time
    is converted once per column shared (else once per row); ``micros`` remembers the times
    converted so far (the records of one batch share a few), each checked by ``to_utc``."""
    columns = _command_columns(integration, records)
    rows = len(records)
    shared = tuple(
        rows > 1 and at != 1 and column.count(column[0]) == rows  # (keys differ: at 1)
        for at, column in enumerate(columns)
    )
    states = columns[_STATE_COLUMN][: 1 if shared[_STATE_COLUMN] else rows]
    columns[_STATE_COLUMN] = [state._value_ for state in states]
    times = columns[_TIME_COLUMN][: 1 if shared[_TIME_COLUMN] else rows]
    for when in set(times).difference(micros):
        micros[when] = _micros(to_utc(when, "updated_at"), "updated_at")
    columns[_TIME_COLUMN] = list(map(micros.__getitem__, times))
    values = [column[0] for column, one in zip(columns, shared, strict=True) if one]
    own = [column for column, one in zip(columns, shared, strict=True) if not one]
    values.extend(itertools.chain.from_iterable(zip(*own, strict=True)))
    return _upsert_sql(shared, rows, judged), values


class _Connection:
    """One SQLite connection and its lock, shared by the ledgers of every integration opened
    from it (``for_integration``); closed when the last of them closes."""

    def __init__(self, conn: sqlite3.Connection, path: str, *, read_only: bool) -> None:
        self.conn: sqlite3.Connection | None = conn
        self.path = path
        self.read_only = read_only
        self.lock = threading.RLock()
        self.users = 0
        self.batched = False  # inside perform(): each write is a savepoint of its transaction

    def use(self, ledger: SQLiteLedger) -> weakref.finalize[[], SQLiteLedger]:
        """Count ``ledger`` as a user until it closes or is garbage-collected, whichever comes
        first (a sibling a caller never closed must not keep the file open); the returned
        finalizer releases the use, once."""
        with self.lock:
            self.users += 1
        return weakref.finalize(ledger, self.release)

    def release(self) -> None:
        with self.lock:
            self.users -= 1
            conn = self.conn
            if self.users <= 0 and conn is not None:
                self.conn = None
                conn.close()


class SQLiteLedger:
    """A :class:`~signals_crm.ledger.Ledger` in one SQLite file (WAL; multi-process safe).

    ``integration`` is the tenant this ledger is bound to (rule 8). ``busy_timeout`` is how
    many seconds a call waits for another process's write before failing; ``synchronous`` is
    ``"FULL"`` (survives power loss) or ``"NORMAL"``. ``clock`` is the ledger's own clock, which
    judges leases (default: this process's wall clock, UTC). ``migrate`` upgrades a file
    written by an older schema on open (rule 5); with ``False`` such a file is refused.
    ``read_only`` opens an existing, current file for reading only (rule 9). ``keep_runs``
    run reports are kept per integration.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        integration: str = DEFAULT_INTEGRATION,
        busy_timeout: float = 10.0,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        clock: Clock | None = None,
        migrate: bool = True,
        read_only: bool = False,
        keep_runs: int = 1000,
    ) -> None:
        problems: list[Problem] = []
        if synchronous not in ("FULL", "NORMAL"):
            problems.append(Problem("synchronous", 'must be "FULL" or "NORMAL"'))
        if not busy_timeout >= 0:
            problems.append(Problem("busy_timeout", "must be a non-negative number of seconds"))
        if problems:
            raise ConfigurationError(problems)
        self._integration = check_integration(integration)
        self._keep_runs = check_keep(keep_runs)
        self._path = os.fspath(path)
        self._clock: Clock = clock or wall_clock
        self._closed = False
        try:
            if read_only:
                uri = f"{Path(self._path).absolute().as_uri()}?mode=ro"
                connection = sqlite3.connect(
                    uri,
                    timeout=busy_timeout,
                    isolation_level=None,
                    check_same_thread=False,
                    uri=True,
                )
            else:
                connection = sqlite3.connect(
                    self._path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
                )
        except sqlite3.Error as error:
            raise LedgerError(f"cannot open the ledger {self._path!r}: {error}") from error
        self._shared = _Connection(connection, self._path, read_only=read_only)
        self._release = self._shared.use(self)
        try:
            self._configure(connection, busy_timeout, synchronous)
            self._migrate(allowed=migrate)
        except BaseException:
            self.close()
            raise

    def for_integration(self, integration: str) -> SQLiteLedger:
        """A ledger bound to ``integration`` on the same file and connection (and clock)."""
        check_integration(integration)
        with self._shared.lock:
            self._connection()
            other = object.__new__(SQLiteLedger)
            other.__dict__.update(self.__dict__)
            other._integration = integration  # a sibling of this class
            other._closed = False
            other._release = self._shared.use(other)
        return other

    @property
    def integration(self) -> str:
        """The integration (tenant) this ledger is bound to."""
        return self._integration

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        mode = " read-only" if self._shared.read_only else ""
        return f"<SQLiteLedger {self._path!r} {self._integration!r}{mode}{state}>"

    @property
    def path(self) -> str:
        """The file this ledger lives in."""
        return self._path

    # Plumbing --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as error:
            raise LedgerError(f"ledger {action} failed on {self._path!r}: {error}") from error

    def _connection(self) -> sqlite3.Connection:
        conn = self._shared.conn
        if self._closed or conn is None:
            raise LedgerError("the ledger is closed")
        return conn

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._shared.lock, self._guard("read"):
            yield self._connection()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: committed if the body returns, else rolled back."""
        with self._shared.lock:
            conn = self._connection()
            if self._shared.read_only:
                raise LedgerError(f"the ledger {self._path!r} was opened read-only")
            if self._shared.batched:
                with self._savepoint(conn) as inner:
                    yield inner
                return
            with self._guard("write"):
                conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as error:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                if isinstance(error, sqlite3.Error):
                    message = f"ledger write failed on {self._path!r}: {error}"
                    raise LedgerError(message) from error
                raise

    @contextlib.contextmanager
    def _savepoint(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        """One write inside :meth:`perform`'s transaction: undone alone if it fails."""
        with self._guard("write"):
            conn.execute("SAVEPOINT operation")
        try:
            yield conn
        except BaseException as error:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK TO operation")
                conn.execute("RELEASE operation")
            if isinstance(error, sqlite3.Error):
                raise LedgerError(f"ledger write failed on {self._path!r}: {error}") from error
            raise
        with self._guard("write"):
            conn.execute("RELEASE operation")

    def perform(self, operations: Sequence[Operation], *, atomic: bool = False) -> list[Performed]:
        """Perform ``operations`` in one ``BEGIN IMMEDIATE`` transaction, one commit for all;
        each one's result or error (a failed one is rolled back alone, to its savepoint).
        ``atomic``: all or nothing, the first error rolls the whole call back and is raised."""
        operations = list(operations)
        each = perform_all if atomic else perform_each
        with self._shared.lock:
            if self._shared.batched and atomic and operations:
                with self._savepoint(self._connection()):  # nested: undone as a whole
                    return perform_all(self, operations)
            if self._shared.read_only or self._shared.batched or not operations:
                return each(self, operations)  # (writes refuse; nested: already one)
            conn = self._connection()
            with self._guard("write"):
                conn.execute("BEGIN IMMEDIATE")
            self._shared.batched = True
            try:
                results = each(self, operations)
                self._shared.batched = False
                with self._guard("write"):
                    conn.execute("COMMIT")
            except BaseException:
                self._shared.batched = False
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
            return results

    def _configure(self, conn: sqlite3.Connection, busy_timeout: float, synchronous: str) -> None:
        with self._guard("open"):
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            conn.execute(f"PRAGMA cache_size = {_CACHE_KIB}")
            if self._shared.read_only:
                return
            conn.execute(f"PRAGMA page_size = {_PAGE_BYTES}")  # a new file only (before WAL)
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            conn.execute(f"PRAGMA synchronous = {synchronous}")
        if str(mode).lower() != "wal" and self._path != ":memory:":
            raise LedgerError(f"cannot switch {self._path!r} to WAL (got {mode!r})")

    def _migrate(self, *, allowed: bool) -> None:
        def header(conn: sqlite3.Connection) -> tuple[int, int]:
            app = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            return int(app), int(version)

        with self._read() as conn:
            app, version = header(conn)
        if app == APPLICATION_ID and version == SCHEMA_VERSION:
            return
        if self._shared.read_only:
            state = "not a signals_crm ledger" if app != APPLICATION_ID else f"schema {version}"
            raise LedgerError(
                f"cannot read {self._path!r} read-only: it is {state}; this version of "
                f"signals_crm reads schema {SCHEMA_VERSION} (open it writable once to upgrade)"
            )
        with self._write() as conn:
            app, version = header(conn)  # another process may have migrated it meanwhile
            if app not in (0, APPLICATION_ID):
                raise LedgerError(f"{self._path!r} is not a signals_crm ledger")
            if version > SCHEMA_VERSION:
                raise LedgerError(
                    f"{self._path!r} has ledger schema {version}; this version of signals_crm "
                    f"reads schema {SCHEMA_VERSION} (upgrade signals_crm)"
                )
            if version == SCHEMA_VERSION:
                return
            if version == 0:
                tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
                if tables:
                    raise LedgerError(f"{self._path!r} holds other data; not a signals_crm ledger")
            elif not allowed:
                raise LedgerError(
                    f"{self._path!r} has ledger schema {version}; this version of signals_crm "
                    f"needs schema {SCHEMA_VERSION} (open it with migrate=True to upgrade)"
                )
            try:
                for step in MIGRATIONS[version:]:
                    for statement in step:
                        conn.execute(statement)
            finally:  # (a step that failed between its two PRAGMAs leaves no CHECK off)
                conn.execute("PRAGMA ignore_check_constraints = OFF")
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _select_in(
        self, conn: sqlite3.Connection, sql: str, values: Sequence[str], *before: object
    ) -> list[tuple[Any, ...]]:
        """``sql`` (with ``integration = ?`` first, then ``{}`` for an IN list) over chunks."""
        rows: list[tuple[Any, ...]] = []
        for chunk in _chunks(values):
            query = sql.format(_placeholders(len(chunk)))
            rows.extend(conn.execute(query, (self._integration, *before, *chunk)).fetchall())
        return rows

    def _update_in(
        self, conn: sqlite3.Connection, sql: str, values: Sequence[str], *before: object
    ) -> list[tuple[Any, ...]]:
        """An UPDATE ... RETURNING over chunks: ``before`` values, integration, then the ids."""
        rows: list[tuple[Any, ...]] = []
        for chunk in _chunks(values):
            query = sql.format(_placeholders(len(chunk)))
            rows.extend(conn.execute(query, (*before, self._integration, *chunk)).fetchall())
        return rows

    def _twice(self, ids: Sequence[str]) -> list[str]:
        """The values of a ``_by_conversation`` query of ``ids``."""
        return [*ids, self._integration, self._integration, *ids]

    def _of_conversations(
        self, conn: sqlite3.Connection, columns: str, ids: Sequence[str]
    ) -> list[tuple[Any, ...]]:
        """``columns`` of the commands of the conversations ``ids`` (``_by_conversation``)."""
        rows: list[tuple[Any, ...]] = []
        for chunk in _chunks(ids):
            query = _by_conversation(columns, len(chunk))
            rows.extend(conn.execute(query, self._twice(chunk)).fetchall())
        return rows

    def _stored_fences(self, conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, int]:
        sql = (
            "SELECT conversation_id, fence FROM due_syncs "
            "WHERE integration = ? AND conversation_id IN ({})"
        )
        return {row[0]: row[1] for row in self._select_in(conn, sql, ids)}

    def _check_fences(self, conn: sqlite3.Connection, fences: Mapping[str, int] | None) -> None:
        if fences:
            wanted = {
                check_text("fences", cid): check_fence(f"fences[{cid!r}]", f)
                for cid, f in fences.items()
            }
            check_fences(wanted, self._stored_fences(conn, list(wanted)))

    def _commands_by_key(
        self, conn: sqlite3.Connection, keys: Sequence[str]
    ) -> dict[str, CommandRecord]:
        sql = (
            f"SELECT {_COMMAND_COLUMNS} FROM commands "  # noqa: S608
            "WHERE integration = ? AND key IN ({})"
        )
        return {row[0]: _command_from_row(row) for row in self._select_in(conn, sql, keys)}

    def _upsert_commands(
        self, conn: sqlite3.Connection, records: Iterable[CommandRecord], *, judged: bool = False
    ) -> int:
        """Write ``records`` (of distinct keys); ``judged``: only the rows whose transition the
        statement judges allowed (``_JUDGED``). Returns how many rows were written."""
        records = list(records)
        micros: dict[datetime, int] = {}
        written = 0
        for chunk in _chunks(records, _ROWS_PER_STATEMENT):
            statement = _upsert_statement(self._integration, chunk, micros, judged)
            written += conn.execute(*statement).rowcount
        return written

    def _record_judged(self, conn: sqlite3.Connection, commands: Sequence[CommandRecord]) -> bool:
        """Write ``commands`` (of distinct keys) without reading their rows first, if the write
        itself finds every transition allowed (``_JUDGED``: new keys, and outcomes of stored
        PLANNED, SENT or UNKNOWN commands); otherwise write nothing and return False, for the
        caller to read the rows and judge them all (``apply_transitions``)."""
        # (``fences_of`` checked them all records; distinct keys: no rule between them)
        conn.execute("SAVEPOINT judged")
        try:
            complete = self._upsert_commands(conn, commands, judged=True) == len(commands)
        except (ConfigurationError, sqlite3.Error):
            complete = False  # the caller's path raises it, after judging, as it always did
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK TO judged")
                conn.execute("RELEASE judged")
            raise
        if not complete:
            conn.execute("ROLLBACK TO judged")
        conn.execute("RELEASE judged")
        return complete

    def _sync_rows(self, conn: sqlite3.Connection, sql: str, *args: object) -> list[DueSync]:
        return [_sync_from_row(row) for row in conn.execute(sql, (self._integration, *args))]

    # Due syncs -------------------------------------------------------------------------------

    def schedule(self, conversation: Conversation, due_at: datetime) -> DueSync:
        """Record that ``conversation`` is due at ``due_at``; returns what is now stored."""
        return self.schedule_many([(conversation, due_at)])[0]

    def schedule_many(self, entries: Iterable[tuple[Conversation, datetime]]) -> list[DueSync]:
        """``schedule`` for many conversations in one transaction; one result per entry."""
        prepared = [
            (c, to_utc(due_at, "due_at"), _dump(c)) for c, due_at in _checked_entries(entries)
        ]
        if not prepared:
            return []
        ids = list(dict.fromkeys(c.id for c, _, _ in prepared))
        sql = (
            f"SELECT {_SYNC_COLUMNS} FROM due_syncs "  # noqa: S608
            "WHERE integration = ? AND conversation_id IN ({})"
        )
        with self._write() as conn:
            rows = {row[0]: row for row in self._select_in(conn, sql, ids)}
            current: dict[str, DueSync] = {}
            texts = {cid: row[6] for cid, row in rows.items()}  # as stored
            fences = {cid: row[9] for cid, row in rows.items()}
            results: list[DueSync] = []
            writes: dict[str, tuple[Any, ...]] = {}
            for conversation, due_at, dumped in prepared:
                cid = conversation.id
                old = current.get(cid)
                if old is None and cid in rows:
                    row = rows[cid]
                    if row[2] != DueState.PENDING:
                        old = _sync_from_row(row)
                    else:  # pending: keep its counters, skip decoding the stored conversation
                        old = _sync_from_row(row, conversation)
                if old is None:
                    new = DueSync(cid, due_at, conversation)
                elif old.state is DueState.PENDING:
                    # Rule 1b: a different conversation moves the fence (compared with the row as
                    # stored before this call, as the statement does).
                    fence = fences[cid] + (texts[cid] != dumped) if cid in texts else old.fence
                    new = attrs.evolve(old, due_at=due_at, conversation=conversation, fence=fence)
                else:
                    new = old
                if new is not old or old.state is DueState.PENDING:
                    email = None if new.email is None else clean_text(new.email)
                    at = _micros(due_at, "due_at")
                    writes[cid] = (self._integration, cid, at, "pending", dumped, email)
                current[cid] = new
                results.append(new)
            for chunk in _chunks(list(writes.values()), _ROWS_PER_STATEMENT):
                flat = [value for row in chunk for value in row]
                conn.execute(_UPSERT_SYNCS.format(_values(len(chunk), 6)), flat)
        return results

    def rearm(self, conversation: Conversation, due_at: datetime) -> DueSync | None:
        """Make a done sync that was skipped (outcome ``"skipped:..."``) pending again.

        The new conversation and due time replace the stored ones, attempts and last error are
        cleared. Anything else is left as it is and ``None`` returned.
        """
        due_at = to_utc(due_at, "due_at")
        check_text("conversation.id", conversation.id)
        dumped = _dump(conversation)
        email = DueSync(conversation.id, due_at, conversation).email
        with self._write() as conn:
            row = conn.execute(
                "UPDATE due_syncs SET state = 'pending', due_at = ?, conversation = ?, "  # noqa: S608
                "email = ?, attempts = 0, last_error = NULL, outcome = NULL, "
                "lease_owner = NULL, lease_until = NULL "
                "WHERE integration = ? AND conversation_id = ? AND state = 'done' "
                f"AND outcome LIKE 'skipped:%' RETURNING {_SYNC_COLUMNS}",
                (
                    _micros(due_at, "due_at"),
                    dumped,
                    None if email is None else clean_text(email),
                    self._integration,
                    conversation.id,
                ),
            ).fetchone()
        return None if row is None else _sync_from_row(row, conversation)

    def requeue_dead(self, conversation_ids: Iterable[str], due_at: datetime) -> list[str]:
        """Put dead syncs back to pending at ``due_at`` (attempts 0, lease cleared), and their
        FAILED commands back to PLANNED, in one transaction; returns the ids requeued."""
        ids = check_ids("conversation_ids", conversation_ids)
        at = _micros(to_utc(due_at, "due_at"), "due_at")
        with self._write() as conn:
            requeued = [
                row[0]
                for row in self._update_in(
                    conn,
                    "UPDATE due_syncs SET state = 'pending', due_at = ?, attempts = 0, "
                    "lease_owner = NULL, lease_until = NULL WHERE state = 'dead' "
                    "AND integration = ? AND conversation_id IN ({}) RETURNING conversation_id",
                    ids,
                    at,
                )
            ]
            for chunk in _chunks(requeued):
                rows = _by_conversation("c.rowid", len(chunk))
                conn.execute(
                    "UPDATE commands SET state = 'planned', reason = NULL, updated_at = ? "  # noqa: S608
                    f"WHERE state = 'failed' AND rowid IN ({rows})",
                    (at, *self._twice(chunk)),
                )
        order = {cid: i for i, cid in enumerate(ids)}
        return sorted(requeued, key=order.__getitem__)

    def due(self, now: datetime, limit: int) -> list[DueSync]:
        """Pending syncs due at ``now``, by due time then id, at most ``limit``.

        Damaged rows are left out (``claim`` dead-letters them; ``stats`` counts them).
        """
        cutoff = _micros(to_utc(now, "now"), "now")
        check_limit(limit)
        with self._read() as conn:
            read = self._sync_rows(
                conn,
                f"SELECT {_SYNC_COLUMNS} FROM due_syncs "  # noqa: S608
                "WHERE integration = ? AND state = 'pending' AND due_at <= ? "
                "ORDER BY due_at, conversation_id LIMIT ?",
                cutoff,
                limit,
            )
        return [s for s in read if s.state is DueState.PENDING]

    def get_due(self, conversation_id: str) -> DueSync | None:
        """The stored sync of ``conversation_id``, in any state, or ``None``."""
        check_text("conversation_id", conversation_id)
        with self._read() as conn:
            found = self._sync_rows(
                conn,
                f"SELECT {_SYNC_COLUMNS} FROM due_syncs "  # noqa: S608
                "WHERE integration = ? AND conversation_id = ?",
                conversation_id,
            )
        return found[0] if found else None

    def syncs_in_state(self, state: DueState, limit: int) -> list[DueSync]:
        """Syncs stored in ``state``, by due time then id, at most ``limit``.

        The dead letters include rows whose stored state is not known (damaged rows).
        """
        state = DueState(state)
        check_limit(limit)
        args: tuple[str, ...] = ()
        if state is DueState.DEAD:
            where = "state NOT IN ('pending', 'done')"
        else:
            where, args = "state = ?", (state.value,)
        with self._read() as conn:
            return self._sync_rows(
                conn,
                f"SELECT {_SYNC_COLUMNS} FROM due_syncs "  # noqa: S608
                f"WHERE integration = ? AND {where} ORDER BY due_at, conversation_id LIMIT ?",
                *args,
                limit,
            )

    def claim(
        self,
        now: datetime | None = None,
        limit: int = 100,
        *,
        owner: str,
        lease: timedelta | None = None,
        until: datetime | None = None,
    ) -> list[DueSync]:
        """Lease to ``owner`` the due syncs no other owner holds (at most ``limit``)."""
        with self._write() as conn:
            window = claim_window(self._clock, now, limit, owner, lease, until)
            cutoff, at = _micros(window.cutoff, "now"), _micros(window.judged_at, "now")
            # Pending rows whose due time is not a storable instant (text sorts after every
            # number) are damaged: dead-letter them so they are seen, never silently skipped.
            self._quarantine(
                conn,
                self._sync_rows(
                    conn,
                    f"SELECT {_SYNC_COLUMNS} FROM due_syncs "  # noqa: S608
                    "WHERE integration = ? AND state = 'pending' AND due_at > ?",
                    MAX_MICROS,
                ),
            )
            claimed: list[DueSync] = []
            after: tuple[object, object] = (-(2**63), "")  # keyset: past what was read
            while len(claimed) < limit:
                rows = conn.execute(
                    f"SELECT {_SYNC_COLUMNS} FROM due_syncs AS d "  # noqa: S608
                    "WHERE integration = ? AND state = 'pending' AND due_at <= ? "
                    "AND (due_at, conversation_id) > (?, ?) AND (lease_owner IS NULL "
                    "OR lease_owner = ? OR lease_until IS NULL OR lease_until <= ?) "
                    "AND (email IS NULL OR NOT EXISTS (SELECT 1 FROM due_syncs AS o "
                    "WHERE o.integration = d.integration AND o.email = d.email "
                    "AND o.lease_until > ? AND o.state = 'pending' AND o.lease_owner != ?)) "
                    "ORDER BY due_at, conversation_id LIMIT ?",
                    (self._integration, cutoff, *after, owner, at, at, owner, limit - len(claimed)),
                ).fetchall()
                if rows:
                    after = (rows[-1][1], rows[-1][0])
                read = [_sync_from_row(row) for row in rows]
                good = [s for s in read if s.state is DueState.PENDING]
                self._quarantine(conn, [s for s in read if s.state is not DueState.PENDING])
                self._update_in(
                    conn,
                    "UPDATE due_syncs SET lease_owner = ?, lease_until = ?, fence = fence + 1 "
                    "WHERE integration = ? AND conversation_id IN ({})",
                    [s.conversation_id for s in good],
                    owner,
                    _micros(window.until),
                )
                claimed.extend(
                    attrs.evolve(s, lease_owner=owner, lease_until=window.until, fence=s.fence + 1)
                    for s in good
                )
                if len(good) == len(rows):  # nothing damaged: the query found all there is
                    break
        return claimed

    def claimable(
        self, now: datetime | None = None, limit: int = 100, *, owner: str
    ) -> list[DueSync]:
        """What ``claim(now, limit, owner=owner)`` would take, leasing nothing (a read).

        Damaged pending rows it meets are dead-lettered as ``claim`` does (the one write it may
        make, never on a healthy ledger), so they are seen, never silently skipped."""
        window = claim_window(self._clock, now, limit, owner, timedelta(seconds=1), None)
        if not limit:
            return []
        cutoff, at = _micros(window.cutoff, "now"), _micros(window.judged_at, "now")
        with self._read() as conn:
            damaged = self._sync_rows(
                conn,
                f"SELECT {_SYNC_COLUMNS} FROM due_syncs "  # noqa: S608
                "WHERE integration = ? AND state = 'pending' AND due_at > ?",
                MAX_MICROS,
            )
            read = self._sync_rows(
                conn,
                f"SELECT {_SYNC_COLUMNS} FROM due_syncs AS d "  # noqa: S608
                "WHERE integration = ? AND state = 'pending' AND due_at <= ? "
                "AND (lease_owner IS NULL OR lease_owner = ? OR lease_until IS NULL "
                "OR lease_until <= ?) AND (email IS NULL OR NOT EXISTS (SELECT 1 FROM "
                "due_syncs AS o WHERE o.integration = d.integration AND o.email = d.email "
                "AND o.lease_until > ? AND o.state = 'pending' AND o.lease_owner != ?)) "
                "ORDER BY due_at, conversation_id LIMIT ?",
                cutoff,
                owner,
                at,
                at,
                owner,
                limit,
            )
        damaged.extend(s for s in read if s.state is not DueState.PENDING)
        if damaged:
            with self._write() as conn:
                self._quarantine(conn, damaged)
        return [s for s in read if s.state is DueState.PENDING]

    def claim_unchanged(
        self,
        seen: Mapping[str, int],
        *,
        owner: str,
        lease: timedelta,
        now: datetime | None = None,
    ) -> list[DueSync]:
        """Lease to ``owner`` exactly the syncs of ``seen`` (id → the fence read) if none
        changed since the read, else raise ``ClaimRefusedError`` writing nothing (rule 1m).

        One ``UPDATE ... RETURNING`` (per 500 syncs) takes those still as read; if one is
        missing, raising rolls the transaction back."""
        wanted = check_seen(seen)
        with self._write() as conn:
            window = claim_window(self._clock, now, 0, owner, lease, None)
            cutoff, at = _micros(window.cutoff, "now"), _micros(window.judged_at, "now")
            rows: list[Any] = []
            for chunk in _chunks(list(wanted.items())):
                pairs = ", ".join(["(?, ?)"] * len(chunk))
                rows.extend(
                    conn.execute(
                        "UPDATE due_syncs SET lease_owner = ?, lease_until = ?, "  # noqa: S608
                        "fence = fence + 1 WHERE integration = ? "
                        f"AND (conversation_id, fence) IN (VALUES {pairs}) "
                        "AND state = 'pending' AND due_at <= ? AND (lease_owner IS NULL "
                        "OR lease_owner = ? OR lease_until IS NULL OR lease_until <= ?) "
                        "AND (email IS NULL OR NOT EXISTS (SELECT 1 FROM due_syncs AS o "
                        "WHERE o.integration = due_syncs.integration "
                        "AND o.email = due_syncs.email AND o.lease_until > ? "
                        "AND o.state = 'pending' AND o.lease_owner != ?)) "
                        f"RETURNING {_SYNC_COLUMNS}",
                        (
                            owner,
                            _micros(window.until),
                            self._integration,
                            *(v for pair in chunk for v in pair),
                            cutoff,
                            owner,
                            at,
                            at,
                            owner,
                        ),
                    ).fetchall()
                )
            claimed = {row[0]: _sync_from_row(row) for row in rows}
            changed = [cid for cid in wanted if cid not in claimed]
            if changed:
                raise claim_refused(changed)  # the transaction is rolled back
        return [claimed[cid] for cid in wanted]

    def _quarantine(self, conn: sqlite3.Connection, damaged: Sequence[DueSync]) -> None:
        """Dead-letter damaged pending rows with their reason (they read as dead already)."""
        if not damaged:
            return
        _log.warning("dead-lettering %d damaged ledger row(s)", len(damaged))
        conn.executemany(
            "UPDATE due_syncs SET state = 'dead', last_error = ?, lease_owner = NULL, "
            "lease_until = NULL WHERE integration = ? AND conversation_id = ? "
            "AND state = 'pending'",
            [(s.last_error, self._integration, s.conversation_id) for s in damaged],
        )

    def extend(
        self,
        conversation_ids: Iterable[str],
        *,
        owner: str,
        lease: timedelta,
        fences: Mapping[str, int] | None = None,
    ) -> list[str]:
        """Renew ``owner``'s pending leases for ``lease`` from the ledger's clock; ids renewed."""
        ids = check_ids("conversation_ids", conversation_ids)
        with self._write() as conn:
            window = claim_window(self._clock, None, 0, owner, lease, None)
            self._check_fences(conn, fences)
            renewed = [
                row[0]
                for row in self._update_in(
                    conn,
                    "UPDATE due_syncs SET lease_until = ? WHERE state = 'pending' "
                    "AND lease_owner = ? AND integration = ? AND conversation_id IN ({}) "
                    "RETURNING conversation_id",
                    ids,
                    _micros(window.until),
                    owner,
                )
            ]
        order = {cid: i for i, cid in enumerate(ids)}
        return sorted(renewed, key=order.__getitem__)

    def release(
        self,
        conversation_ids: Iterable[str],
        owner: str,
        *,
        fences: Mapping[str, int] | None = None,
    ) -> int:
        """End ``owner``'s leases on these syncs without other change; returns how many."""
        ids = check_ids("conversation_ids", conversation_ids)
        check_text("owner", owner)
        with self._write() as conn:
            self._check_fences(conn, fences)
            return len(
                self._update_in(
                    conn,
                    "UPDATE due_syncs SET lease_owner = NULL, lease_until = NULL "
                    "WHERE lease_owner = ? AND integration = ? AND conversation_id IN ({}) "
                    "RETURNING conversation_id",
                    ids,
                    owner,
                )
            )

    def complete(
        self,
        conversation_ids: Iterable[str],
        outcome: str,
        *,
        fences: Mapping[str, int] | None = None,
    ) -> int:
        """Mark pending or dead syncs done with ``outcome``; returns how many changed."""
        ids = check_ids("conversation_ids", conversation_ids)
        outcome = clean_text(outcome)
        with self._write() as conn:
            self._check_fences(conn, fences)
            return len(self._complete(conn, ids, outcome))

    def _complete(self, conn: sqlite3.Connection, ids: Sequence[str], outcome: str) -> list[Any]:
        return self._update_in(
            conn,
            "UPDATE due_syncs SET state = 'done', outcome = ?, lease_owner = NULL, "
            "lease_until = NULL WHERE state != 'done' AND integration = ? "
            "AND conversation_id IN ({}) RETURNING conversation_id",
            ids,
            outcome,
        )

    def _finish_attempt(
        self, conversation_id: str, error: str, *, due_at: datetime | None, fence: int | None
    ) -> DueSync | None:
        check_text("conversation_id", conversation_id)
        error = clean_text(error)
        with self._write() as conn:
            self._check_fences(conn, None if fence is None else {conversation_id: fence})
            found = self._sync_rows(
                conn,
                f"SELECT {_SYNC_COLUMNS} FROM due_syncs "  # noqa: S608
                "WHERE integration = ? AND conversation_id = ?",
                conversation_id,
            )
            if not found:
                return None
            old = found[0]
            if old.state is not DueState.PENDING:
                return old
            new = attrs.evolve(
                old,
                state=DueState.DEAD if due_at is None else DueState.PENDING,
                due_at=old.due_at if due_at is None else due_at,
                attempts=old.attempts + 1,
                last_error=error,
                lease_owner=None,
                lease_until=None,
            )
            conn.execute(
                "UPDATE due_syncs SET state = ?, due_at = ?, attempts = ?, last_error = ?, "
                "lease_owner = NULL, lease_until = NULL "
                "WHERE integration = ? AND conversation_id = ?",
                (
                    new.state.value,
                    _micros(new.due_at, "due_at"),
                    new.attempts,
                    error,
                    self._integration,
                    conversation_id,
                ),
            )
            return new

    def reschedule(
        self, conversation_id: str, due_at: datetime, error: str, *, fence: int | None = None
    ) -> DueSync | None:
        """Move a pending sync to ``due_at`` after a failed attempt (attempts + 1)."""
        return self._finish_attempt(
            conversation_id, error, due_at=to_utc(due_at, "due_at"), fence=fence
        )

    def dead_letter(
        self, conversation_id: str, reason: str, *, fence: int | None = None
    ) -> DueSync | None:
        """Give up on a pending sync with the CRM's ``reason`` (attempts + 1)."""
        return self._finish_attempt(conversation_id, reason, due_at=None, fence=fence)

    # Commands --------------------------------------------------------------------------------

    def get_command(self, key: str) -> CommandRecord | None:
        """The command stored under ``key``, or ``None``."""
        return self.get_commands([key]).get(key)

    def get_commands(self, keys: Iterable[str]) -> dict[str, CommandRecord]:
        """The stored commands among ``keys`` (unknown keys are absent from the result)."""
        unique = check_ids("keys", keys)
        with self._read() as conn:
            return self._commands_by_key(conn, unique)

    def commands_for(self, conversation_id: str) -> list[CommandRecord]:
        """Every command of one conversation, by key."""
        check_text("conversation_id", conversation_id)
        with self._read() as conn:
            rows = self._of_conversations(conn, _COMMAND_COLUMNS, [conversation_id])
        return [_command_from_row(row) for row in sorted(rows, key=lambda row: row[0])]

    def commands_of(self, conversation_ids: Iterable[str]) -> dict[str, list[CommandRecord]]:
        """``commands_for`` of many conversations in one read (per few hundred ids)."""
        ids = check_ids("conversation_ids", conversation_ids)
        with self._read() as conn:
            rows = self._of_conversations(conn, _COMMAND_COLUMNS, ids)
        found: dict[str, list[CommandRecord]] = {cid: [] for cid in ids}
        for row in sorted(rows, key=lambda row: row[0]):
            found[row[1]].append(_command_from_row(row))
        return found

    def record(self, commands: Sequence[CommandRecord]) -> None:
        """Insert or update ``commands`` in one transaction, enforcing the transition rules."""
        commands = list(commands)
        if not commands:
            return
        wanted, fenced_keys = fences_of(commands)
        keys = [command.key for command in commands]
        distinct = len(set(keys)) == len(keys)
        with self._write() as conn:
            if wanted:
                check_fences(wanted, self._stored_fences(conn, list(wanted)), fenced_keys)
            if distinct and self._record_judged(conn, commands):
                return
            stored = self._commands_by_key(conn, list(dict.fromkeys(keys)))
            final = apply_transitions(stored, commands)
            self._upsert_commands(conn, final.values())

    def retry_failed(self, keys: Iterable[str], now: datetime) -> list[str]:
        """Put FAILED commands among ``keys`` back to PLANNED; returns the keys reset."""
        to_utc(now, "now")
        unique = check_ids("keys", keys)
        with self._write() as conn:
            stored = self._commands_by_key(conn, unique)
            reset = [
                retried(stored[k], now)
                for k in unique
                if k in stored and stored[k].state is CommandState.FAILED
            ]
            self._upsert_commands(conn, reset)
        return [r.key for r in reset]

    def commands_in_state(self, state: CommandState, limit: int) -> list[CommandRecord]:
        """Commands in ``state``, oldest ``updated_at`` first (then by key), at most ``limit``."""
        state = CommandState(state)
        check_limit(limit)
        # (Through commands_by_state, which holds every state but CONFIRMED: rule 6.)
        indexed = "" if state is CommandState.CONFIRMED else "AND state != 'confirmed' "
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_COMMAND_COLUMNS} FROM commands "  # noqa: S608
                f"WHERE integration = ? AND state = ? {indexed}ORDER BY updated_at, key LIMIT ?",
                (self._integration, state.value, limit),
            ).fetchall()
        return [_command_from_row(row) for row in rows]

    def creates_in_flight(self, emails: Iterable[str]) -> list[CreateInFlight]:
        """The unsettled person creates of the syncs of ``emails`` (rule 2h), one statement
        a chunk of emails (through the commands' state index, each sync by its key)."""
        wanted = sorted(set(map(normalize_email, emails)))
        if not wanted:
            return []
        sql = (
            "SELECT s.email, c.conversation_id, c.updated_at, c.state, c.key FROM commands c "
            "JOIN due_syncs s ON s.integration = c.integration "
            "AND s.conversation_id = c.conversation_id "
            "WHERE c.integration = ? AND c.state IN ('sent', 'unknown') "
            "AND c.state != 'confirmed' "  # (commands_by_state holds no confirmed command)
            "AND c.kind = 'create_person' AND s.email IN ({})"
        )
        with self._read() as conn:
            rows = self._select_in(conn, sql, wanted)
        rows.sort(key=lambda r: (r[3] != "sent", r[2], r[4]))
        return [CreateInFlight(r[0], r[1], micros_time(r[2])) for r in rows]

    # Links -----------------------------------------------------------------------------------

    def link(self, email: str, crm_id: str, kind: PersonKind) -> None:
        """Remember that ``email`` was synced to the CRM person ``crm_id``."""
        self.link_many([PersonLink(email, crm_id, kind)])

    def link_many(self, links: Iterable[PersonLink]) -> None:
        """``link`` for many emails in one transaction (later entries win)."""
        latest = {link.email: link for link in links}  # later entries win, one row per email
        if not latest:
            return
        with self._write() as conn:
            self._upsert_links(conn, latest.values())

    def _upsert_links(self, conn: sqlite3.Connection, links: Iterable[PersonLink]) -> None:
        rows = [(self._integration, link.email, link.crm_id, link.kind._value_) for link in links]
        for chunk in _chunks(rows, _ROWS_PER_STATEMENT):
            flat = list(itertools.chain.from_iterable(chunk))
            conn.execute(_UPSERT_LINKS.format(_values(len(chunk), 4)), flat)

    def links_for(self, emails: Iterable[str]) -> dict[str, PersonLink]:
        """The links of ``emails``, keyed by normalised email (unknown emails absent)."""
        keys = check_ids("emails", (normalize_email(e) for e in emails))
        sql = "SELECT email, crm_id, kind FROM links WHERE integration = ? AND email IN ({})"
        with self._read() as conn:
            rows = self._select_in(conn, sql, keys)
        return {email: PersonLink(email, crm_id, PersonKind(kind)) for email, crm_id, kind in rows}

    # Run reports -----------------------------------------------------------------------------

    def record_run(self, summary: Mapping[str, Any]) -> RunRecord:
        """Keep one run's summary, stamped by the ledger's clock; returns what was kept."""
        text = summary_json(summary)
        at = to_utc(self._clock(), "clock()")
        with self._write() as conn:
            (run_id,) = conn.execute(
                "INSERT INTO runs (integration, recorded_at, summary) VALUES (?, ?, ?) "
                "RETURNING id",
                (self._integration, _micros(at), text),
            ).fetchone()
            conn.execute(
                "DELETE FROM runs WHERE integration = ? AND id <= ?",
                (self._integration, run_id - self._keep_runs),
            )
        return RunRecord(run_id, self._integration, at, json.loads(text))

    def recent_runs(self, limit: int) -> list[RunRecord]:
        """The latest ``limit`` run reports, newest first."""
        check_limit(limit)
        with self._read() as conn:
            rows = conn.execute(
                "SELECT id, recorded_at, summary FROM runs WHERE integration = ? "
                "ORDER BY id DESC LIMIT ?",
                (self._integration, limit),
            ).fetchall()
        out: list[RunRecord] = []
        for run_id, recorded_at, text in rows:
            try:
                summary = json.loads(text)
                when = micros_time(recorded_at)
            except (ValueError, TypeError, Damage) as error:
                summary, when = {"damaged": f"{DAMAGED}{error}"}, EPOCH
            out.append(RunRecord(run_id, self._integration, when, summary))
        return out

    # The fleet -------------------------------------------------------------------------------

    def integrations_due(
        self, now: datetime | None = None, limit: int = 1000
    ) -> list[tuple[str, datetime]]:
        """Integrations with pending syncs due at ``now`` (default: the ledger's clock), each
        with its oldest due time, oldest first (then by id), at most ``limit``.

        One index probe per integration with pending syncs (a loose scan of the pending
        index), whatever their backlogs.
        """
        check_limit(limit)
        cutoff = _micros(to_utc(self._clock() if now is None else now, "now"), "now")
        with self._read() as conn:
            rows = conn.execute(
                """
                WITH RECURSIVE tenants(name) AS (
                    SELECT min(integration) FROM due_syncs INDEXED BY due_syncs_pending
                    WHERE state = 'pending'
                    UNION ALL
                    SELECT (SELECT min(integration) FROM due_syncs INDEXED BY due_syncs_pending
                            WHERE state = 'pending' AND integration > tenants.name)
                    FROM tenants WHERE tenants.name IS NOT NULL
                )
                SELECT name, (SELECT min(due_at) FROM due_syncs INDEXED BY due_syncs_pending
                              WHERE state = 'pending' AND integration = tenants.name) AS first
                FROM tenants WHERE name IS NOT NULL
                """
            ).fetchall()
        found = sorted(
            (first, name)
            for name, first in rows
            if type(first) is int and MIN_MICROS <= first <= cutoff
        )
        return [(name, micros_time(first)) for first, name in found[:limit]]

    # Housekeeping ----------------------------------------------------------------------------

    def stats(self) -> LedgerStats:
        """Counts per sync state and command state (every state present), links, damaged rows."""
        syncs = dict.fromkeys(DueState, 0)
        commands = dict.fromkeys(CommandState, 0)
        damaged = 0
        readable = "typeof({0}) = 'integer' AND {0} BETWEEN ? AND ?"
        with self._read() as conn:
            conn.execute("BEGIN")  # one snapshot for the three counts
            try:
                for table, column, counts, kind in (
                    ("due_syncs", "due_at", syncs, DueState),
                    ("commands", "updated_at", commands, CommandState),
                ):
                    query = (
                        f"SELECT state, {readable.format(column)}, count(*) "  # noqa: S608
                        f"FROM {table} WHERE integration = ? GROUP BY 1, 2"
                    )
                    for state, ok, count in conn.execute(
                        query, (MIN_MICROS, MAX_MICROS, self._integration)
                    ):
                        if ok and state in kind._value2member_map_:
                            counts[kind(state)] += count  # type: ignore[index]
                        else:
                            damaged += count
                links = conn.execute(
                    "SELECT count(*) FROM links WHERE integration = ?", (self._integration,)
                ).fetchone()[0]
            finally:
                conn.execute("COMMIT")
        return LedgerStats(syncs=syncs, commands=commands, links=links, damaged=damaged)

    def close(self) -> None:
        """Close this ledger; later calls raise LedgerError. Closing twice is harmless. The
        connection closes with the last ledger of its file (see ``for_integration``)."""
        with self._shared.lock:
            if self._closed:
                return
            self._closed = True
            with self._guard("close"):
                self._release()

    def __enter__(self) -> Self:
        self._connection()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
