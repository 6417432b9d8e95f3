"""Read-only queries over a ledger for people: the console and the command line.

The engine's :class:`~signals_crm.ledger.Ledger` Protocol serves delivery; operators need other
questions answered ("what is dead, page 3", "how many are in flight") on a ledger of millions
of syncs without slowing the workers down. :class:`LedgerBrowser` answers them:

1. **Read-only, never creating.** A SQLite file is opened with SQLite's ``mode=ro``; a missing
   path raises :class:`~signals_crm.exceptions.LedgerError` and nothing is created, migrated or
   changed. Readers never block the writers (WAL). On PostgreSQL (a conninfo, or an open
   :class:`~signals_crm.ledger.PostgresLedger` whose pool it shares) every query runs in a
   ``READ ONLY`` transaction, and a database without the ledger's schema is refused the same
   way. The queries are the same on both stores.
2. **Views.** A sync is in exactly one view at ``now``:
   ``due`` (pending, due, not leased), ``in_flight`` (pending with a lease that has not
   expired), ``scheduled`` (pending, due later, not leased), ``done`` and ``dead``.
3. **Keyset pages, no offsets.** A page is ordered by (due time, conversation id), ascending for
   ``due``/``scheduled``, newest first for ``done``/``dead``; ``in_flight`` is ordered by
   (lease end, conversation id), the leases nearest their end first, along the in-flight index.
   The next page starts strictly after the last row's key (a :class:`Cursor`), so page 1,000
   costs what page 1 costs and rows inserted meanwhile are neither skipped twice nor repeated.
4. **Indexed filters only**: a conversation id (primary key), a visitor email (the email index),
   a due-time window (the state index). ``error_contains`` scans the dead letters only, and
   at most :data:`MAX_SCAN` of them per page.
5. **Counts come from indexes** (``count(*)`` over the state index's ranges), read in one
   snapshot, exactly or up to a limit (past it a view reads "100,000+"); nothing decodes a
   stored conversation except :meth:`LedgerBrowser.sync`. The in-flight count and page read
   the in-flight index (leased rows only; a file older than schema 4 lacks it and is scanned).
6. **Tenancy.** When the ledger has an ``integration`` column (every PostgreSQL ledger does)
   every query is bound to the browser's integration and :meth:`LedgerBrowser.integrations`
   lists them by a loose index scan; an older single-tenant file has the one integration
   ``"default"``.
7. Every argument is validated (a :class:`~signals_crm.exceptions.ConfigurationError` names it);
   no value is ever formatted into SQL.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import re
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import attrs

from signals_crm.core.model import Conversation, PersonKind, normalize_email
from signals_crm.exceptions import ConfigurationError, LedgerError, Problem
from signals_crm.ledger.base import (
    CommandRecord,
    CommandState,
    DueState,
    DueSync,
    PersonLink,
    to_utc,
)
from signals_crm.ledger.codec import conversation_from_dict
from signals_crm.ledger.postgres import PostgresLedger, _check_schema, _import_psycopg

__all__ = [
    "MAX_PAGE",
    "MAX_SCAN",
    "Cursor",
    "LedgerBrowser",
    "Page",
    "ReadOnlyLedger",
    "SyncFilter",
    "SyncRow",
    "View",
    "ViewCounts",
    "is_conninfo",
]

MAX_PAGE = 500
"""The largest page a browser hands out."""

MAX_SCAN = 20_000
"""How many dead letters one page may read when filtering by error text."""

_APPLICATION_ID = 0x5343524D
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_MAX_TEXT = 320  # longest filter text accepted (an email is at most 254)


class View(enum.StrEnum):
    """Which syncs a page shows (each sync is in exactly one view at a given time)."""

    DUE = "due"
    IN_FLIGHT = "in_flight"
    SCHEDULED = "scheduled"
    DONE = "done"
    DEAD = "dead"


def _micros(value: datetime) -> int:
    return (value - _EPOCH) // _MICROSECOND


def _from_micros(value: int) -> datetime:
    return _EPOCH + value * _MICROSECOND


def _fail(path: str, message: str) -> ConfigurationError:
    return ConfigurationError([Problem(path, message)])


def _text(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    checked: object = value
    if not isinstance(checked, str):
        raise _fail(name, "must be text")
    value = value.strip()
    if len(value) > _MAX_TEXT:
        raise _fail(name, f"must be at most {_MAX_TEXT} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _fail(name, "must be valid text (no lone surrogates)") from None
    return value or None


@attrs.frozen
class Cursor:
    """Where a page ends: the last row's (due time, conversation id)."""

    due_at: datetime
    conversation_id: str

    def token(self) -> str:
        """The cursor as URL-safe text (``<microseconds>.<id>``)."""
        return f"{_micros(self.due_at)}.{self.conversation_id}"

    @classmethod
    def parse(cls, token: str) -> Cursor:
        """A cursor from :meth:`token`'s text; a ConfigurationError names ``after`` if bad."""
        checked: object = token
        if not isinstance(checked, str) or "." not in token or len(token) > 1024:
            raise _fail("after", "not a page cursor")
        micros, _, conversation_id = token.partition(".")
        if not micros.lstrip("-").isdigit() or len(micros) > 19 or not conversation_id:
            raise _fail("after", "not a page cursor")
        try:
            due_at = _from_micros(int(micros))
            conversation_id.encode("utf-8")
        except (OverflowError, UnicodeEncodeError):
            raise _fail("after", "not a page cursor") from None
        return cls(due_at, conversation_id)


@attrs.frozen
class SyncFilter:
    """Filters of a page; every one is optional and validated when built."""

    conversation_id: str | None = attrs.field(default=None)
    email: str | None = attrs.field(default=None)
    due_from: datetime | None = None
    due_until: datetime | None = None
    error_contains: str | None = attrs.field(default=None)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "conversation_id", _text(self.conversation_id, "conversation"))
        email = _text(self.email, "email")
        object.__setattr__(self, "email", normalize_email(email) if email else None)
        object.__setattr__(self, "error_contains", _text(self.error_contains, "error"))
        for name in ("due_from", "due_until"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, to_utc(value, name))
        if self.due_from and self.due_until and self.due_from > self.due_until:
            raise _fail("due_until", "must not be before due_from")

    @property
    def active(self) -> bool:
        return any(attrs.astuple(self))


@attrs.frozen
class SyncRow:
    """One sync as a page lists it (the stored conversation is not decoded)."""

    conversation_id: str
    due_at: datetime
    state: DueState
    attempts: int
    last_error: str | None
    outcome: str | None
    lease_owner: str | None
    lease_until: datetime | None
    email: str | None

    def view(self, now: datetime) -> View:
        """Which view this sync is in at ``now``."""
        if self.state is DueState.DONE:
            return View.DONE
        if self.state is DueState.DEAD:
            return View.DEAD
        if self.lease_owner is not None and self.lease_until is not None and self.lease_until > now:
            return View.IN_FLIGHT
        return View.DUE if self.due_at <= now else View.SCHEDULED


@attrs.frozen
class Page:
    """One page of syncs, and the cursor of the next one (``None`` on the last page)."""

    view: View
    rows: tuple[SyncRow, ...]
    next_cursor: Cursor | None
    scanned_out: bool = False
    """True when an ``error_contains`` filter stopped at :data:`MAX_SCAN` rows."""


@attrs.frozen
class ViewCounts:
    """How many syncs each view holds at ``now``."""

    now: datetime
    counts: Mapping[View, int]
    at_least: frozenset[View] = frozenset()
    """Views counted up to a limit and found to hold at least that many (``counts`` is then a
    lower bound)."""

    def __getitem__(self, view: View) -> int:
        return self.counts[view]

    def shown(self, view: View) -> str:
        """The count as people read it: ``"1,234"``, or ``"100,000+"`` past the limit."""
        return f"{self.counts[view]:,}" + ("+" if view in self.at_least else "")

    @property
    def total(self) -> int:
        return sum(self.counts.values())


_ROW_COLUMNS = (
    "conversation_id, due_at, state, attempts, last_error, outcome, lease_owner, lease_until, email"
)
_COMMAND_COLUMNS = (
    "key, conversation_id, kind, state, crm_id, reason, attempts, updated_at, payload_digest, owner"
)


def _row(row: Sequence[Any]) -> SyncRow:
    cid, due_at, state, attempts, last_error, outcome, owner, until, email = row
    return SyncRow(
        conversation_id=cid,
        due_at=_from_micros(due_at),
        state=DueState(state),
        attempts=attempts,
        last_error=last_error,
        outcome=outcome,
        lease_owner=owner,
        lease_until=None if until is None else _from_micros(until),
        email=email,
    )


def is_conninfo(ledger: object) -> bool:
    """Whether ``ledger`` names a PostgreSQL database rather than a SQLite file: a
    ``postgresql://``/``postgres://`` URL or a libpq ``key=value`` conninfo."""
    if not isinstance(ledger, str):
        return False
    text = ledger.strip()
    return text.startswith(("postgresql://", "postgres://")) or bool(
        re.match(r"^[a-z_]+\s*=", text)
    )


Query = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]
"""Runs one statement (``?`` placeholders, table names as ``{t}name``) and returns its rows."""


class _SQLiteStore:
    """One read-only SQLite connection (``mode=ro``), serialised by a lock."""

    prefix = ""

    def __init__(self, path: str) -> None:
        self.where = path
        if not Path(path).is_file():
            raise LedgerError(f"no ledger at {path!r} (nothing was created)")
        uri = "file:" + Path(path).resolve().as_posix().replace("?", "%3f") + "?mode=ro"
        try:
            self.conn: sqlite3.Connection | None = sqlite3.connect(
                uri, uri=True, isolation_level=None, check_same_thread=False, timeout=5.0
            )
        except sqlite3.Error as error:
            raise LedgerError(f"cannot open the ledger {path!r}: {error}") from error
        # A browser dropped without close() (a console app never shut down) still closes its
        # connection when collected.
        self._closer = weakref.finalize(self, self.conn.close)
        self.lock = threading.Lock()
        try:
            with self.read() as conn:
                app = conn.execute("PRAGMA application_id").fetchone()[0]
                tables = {
                    r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
                }
                self.columns = {
                    table: {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
                    for table in tables & {"due_syncs", "commands", "links", "runs"}
                }
        except BaseException:
            self.close()
            raise
        if app != _APPLICATION_ID:
            self.close()
            raise LedgerError(f"{path!r} is not a signals_crm ledger")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            if self.conn is None:
                raise LedgerError("the ledger browser is closed")
            try:
                yield self.conn
            except sqlite3.Error as error:
                raise LedgerError(f"ledger read failed on {self.where!r}: {error}") from error

    @contextmanager
    def snapshot(self) -> Iterator[Query]:
        with self.read() as conn:
            conn.execute("BEGIN")  # one snapshot for every statement
            try:
                yield lambda sql, params: conn.execute(sql, params).fetchall()
            finally:
                conn.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self.read() as conn:
            return conn.execute(sql, params).fetchall()

    def named(self, sql: str, params: Sequence[Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
        with self.read() as conn:
            cursor = conn.execute(sql, params)
            return [d[0] for d in cursor.description], cursor.fetchall()

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            self._closer()


class _PostgresStore:
    """Read-only transactions on a PostgreSQL pool (its own, or a PostgresLedger's)."""

    def __init__(self, source: Any, schema: str) -> None:
        self._psycopg, pool_module = _import_psycopg()
        if isinstance(source, PostgresLedger):
            self.pool, self.owns, schema = source._pool, False, source.schema  # noqa: SLF001
            self.where = f"PostgreSQL schema {schema!r}"
        else:
            _check_schema(schema)
            self.where = f"PostgreSQL schema {schema!r}"
            self.pool = pool_module.ConnectionPool(source, min_size=1, max_size=4, open=False)
            self.owns = True
            try:
                self.pool.open(wait=True, timeout=30)
            except (self._psycopg.Error, pool_module.PoolTimeout) as error:
                self.pool.close()
                raise LedgerError(f"cannot connect to PostgreSQL: {error}") from error
        self.prefix = schema + "."
        self.closed = False
        try:
            with self.snapshot() as run:
                found = run(
                    "SELECT table_name, column_name FROM information_schema.columns "
                    "WHERE table_schema = ?",
                    (schema,),
                )
        except BaseException:
            self.close()
            raise
        self.columns: dict[str, set[str]] = {}
        for table, column in found:
            self.columns.setdefault(table, set()).add(column)
        if "ledger_schema" not in self.columns or "due_syncs" not in self.columns:
            self.close()
            raise LedgerError(f"no signals_crm ledger in {self.where} (nothing was created)")

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        if self.closed:
            raise LedgerError("the ledger browser is closed")
        try:
            with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                yield cursor
        except self._psycopg.Error as error:
            raise LedgerError(f"ledger read failed on {self.where}: {error}") from error

    @contextmanager
    def snapshot(self) -> Iterator[Query]:
        with self._cursor() as cursor:

            def run(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
                cursor.execute(sql.replace("?", "%s"), params)
                return list(cursor.fetchall()) if cursor.description is not None else []

            yield run

    def query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self.snapshot() as run:
            return run(sql, params)

    def named(self, sql: str, params: Sequence[Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
        with self._cursor() as cursor:
            cursor.execute(sql.replace("?", "%s"), params)
            return [c.name for c in cursor.description], list(cursor.fetchall())

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.owns:
                self.pool.close()


class LedgerBrowser:
    """Read-only, paged, indexed queries over one ledger (rules: module doc).

    ``source`` is a SQLite file's path, a PostgreSQL conninfo (``postgresql://...`` or
    ``host=... dbname=...``; ``schema`` names the ledger's PostgreSQL schema), or an open
    :class:`~signals_crm.ledger.PostgresLedger` (its pool is shared, never closed here).
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | Any,
        *,
        integration: str = "default",
        schema: str = "signals_crm",
    ) -> None:
        checked: object = integration
        if not isinstance(checked, str) or not integration.strip():
            raise _fail("integration", "must be a non-empty string")
        self.integration = integration
        self._root: LedgerBrowser | None = None
        self._store: _SQLiteStore | _PostgresStore
        if is_conninfo(source) or isinstance(source, PostgresLedger):
            self._store = _PostgresStore(source, schema)
            self._path = self._store.where
        else:
            self._path = os.fspath(source)
            self._store = _SQLiteStore(self._path)
        columns = self._store.columns
        self._tenant = "integration" in columns.get("due_syncs", set())
        self._command_tenant = "integration" in columns.get("commands", set())
        self._links_tenant = "integration" in columns.get("links", set())
        self._tables = frozenset(columns)
        self._t = self._store.prefix

    def __repr__(self) -> str:
        return f"<LedgerBrowser {self._path!r} integration={self.integration!r}>"

    @property
    def path(self) -> str:
        """The SQLite file, or which PostgreSQL schema is read."""
        return self._path

    # Plumbing --------------------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """The SQLite connection itself (tests check that it refuses writes)."""
        if not isinstance(self._store, _SQLiteStore):
            raise LedgerError("a PostgreSQL browser has no SQLite connection")
        with self._store.read() as conn:
            yield conn

    def _where_tenant(self) -> tuple[str, tuple[Any, ...]]:
        if self._tenant:
            return "integration = ? AND ", (self.integration,)
        return "", ()

    def with_integration(self, integration: str) -> LedgerBrowser:
        """A browser of the same ledger bound to another integration (sharing its connection;
        closing it leaves this one open)."""
        checked: object = integration
        if not isinstance(checked, str) or not integration.strip():
            raise _fail("integration", "must be a non-empty string")
        other = object.__new__(type(self))
        other.__dict__.update(self.__dict__)
        other.integration = integration
        other._root = self._root or self
        return other

    # Integrations ----------------------------------------------------------------------------

    def integrations(self, limit: int = 200) -> list[str]:
        """The integration ids that have syncs (``["default"]`` on a single-tenant file)."""
        if not self._tenant:
            return ["default"]
        t = self._t
        rows = self._store.query(
            f"""
            WITH RECURSIVE t(i, n) AS (
                SELECT min(integration), 1 FROM {t}due_syncs
                UNION ALL
                SELECT (SELECT min(integration) FROM {t}due_syncs WHERE integration > t.i), n + 1
                FROM t WHERE t.i IS NOT NULL AND n < ?
            )
            SELECT i FROM t WHERE i IS NOT NULL
            """,  # noqa: S608  # constant names
            (limit,),
        )
        return [r[0] for r in rows]

    # Counts ----------------------------------------------------------------------------------

    def counts(self, now: datetime, *, limit: int | None = None) -> ViewCounts:
        """How many syncs each view holds at ``now``, from the indexes, in one snapshot.

        With ``limit``, the done, dead, due and scheduled counts stop after ``limit`` index
        entries (those views land in ``at_least``), so a count costs at most that many steps
        however large the ledger; ``None`` counts exactly.
        """
        cutoff = _micros(to_utc(now, "now"))
        if limit is not None:
            checked: object = limit
            if isinstance(checked, bool) or not isinstance(checked, int) or limit < 1:
                raise _fail("limit", "must be a positive integer or None")
        tenant, args = self._where_tenant()
        t = self._t

        def count(run: Query, where: str, values: tuple[Any, ...]) -> int:
            inner = f"SELECT 1 FROM {t}due_syncs WHERE {tenant}{where}"  # noqa: S608  # constant
            if limit is None:
                sql = f"SELECT count(*) FROM ({inner}) AS v"  # noqa: S608  # constant text
                return int(run(sql, (*args, *values))[0][0])
            sql = f"SELECT count(*) FROM ({inner} LIMIT ?) AS v"  # noqa: S608  # constant text
            return int(run(sql, (*args, *values, limit))[0][0])

        with self._store.snapshot() as run:
            done = count(run, "state = 'done'", ())
            dead = count(run, "state = 'dead'", ())
            due_all = count(run, "state = 'pending' AND due_at <= ?", (cutoff,))
            later_all = count(run, "state = 'pending' AND due_at > ?", (cutoff,))
            leased = run(
                f"SELECT due_at <= ?, count(*) FROM {t}due_syncs WHERE {tenant}"  # noqa: S608
                "state = 'pending' AND lease_owner IS NOT NULL AND lease_until > ? "
                "GROUP BY 1",
                (cutoff, *args, cutoff),
            )
        # A leased sync is in flight, whether or not it was due: it leaves its own view.
        leased_due = sum(n for is_due, n in leased if is_due)
        leased_later = sum(n for is_due, n in leased if not is_due)
        counts = {
            View.DUE: max(due_all - leased_due, 0),
            View.IN_FLIGHT: leased_due + leased_later,
            View.SCHEDULED: max(later_all - leased_later, 0),
            View.DONE: done,
            View.DEAD: dead,
        }
        raw = {View.DUE: due_all, View.SCHEDULED: later_all, View.DONE: done, View.DEAD: dead}
        at_least = frozenset(view for view, n in raw.items() if limit is not None and n >= limit)
        return ViewCounts(now=to_utc(now, "now"), counts=counts, at_least=at_least)

    # Pages -----------------------------------------------------------------------------------

    def page(
        self,
        view: View | str,
        now: datetime,
        *,
        after: Cursor | None = None,
        limit: int = 50,
        filters: SyncFilter | None = None,
    ) -> Page:
        """One page of ``view`` at ``now`` (rules 3 and 4 of the module doc)."""
        try:
            view = View(view)
        except ValueError:
            raise _fail("view", f"must be one of {', '.join(v.value for v in View)}") from None
        checked: object = limit
        if isinstance(checked, bool) or not isinstance(checked, int) or not 1 <= limit <= MAX_PAGE:
            raise _fail("limit", f"must be an integer from 1 to {MAX_PAGE}")
        if after is not None and not isinstance(after, Cursor):
            raise _fail("after", "must be a Cursor")
        filters = filters or SyncFilter()
        cutoff = _micros(to_utc(now, "now"))
        tenant, args = self._where_tenant()
        where: list[str] = []
        params: list[Any] = list(args)
        descending = view in (View.DONE, View.DEAD)
        key = "lease_until" if view is View.IN_FLIGHT else "due_at"
        if view is View.DONE:
            where.append("state = 'done'")
        elif view is View.DEAD:
            where.append("state = 'dead'")
        else:
            where.append("state = 'pending'")
            leased = "(lease_owner IS NOT NULL AND lease_until > ?)"
            if view is View.IN_FLIGHT:
                where.append("lease_owner IS NOT NULL AND lease_until > ?")  # the index's range
                params.append(cutoff)
            else:
                where.append("NOT " + leased)
                where.append("due_at <= ?" if view is View.DUE else "due_at > ?")
                params.extend([cutoff, cutoff])
        if filters.conversation_id is not None:
            where.append("conversation_id = ?")
            params.append(filters.conversation_id)
        if filters.email is not None:
            where.append("email = ?")
            params.append(filters.email)
        if filters.due_from is not None:
            where.append("due_at >= ?")
            params.append(_micros(filters.due_from))
        if filters.due_until is not None:
            where.append("due_at <= ?")
            params.append(_micros(filters.due_until))
        if after is not None:
            where.append(f"({key}, conversation_id) " + ("< (?, ?)" if descending else "> (?, ?)"))
            params.extend([_micros(after.due_at), after.conversation_id])
        order = "DESC" if descending else "ASC"
        sql = (
            f"SELECT {_ROW_COLUMNS} FROM {self._t}due_syncs WHERE {tenant}"  # noqa: S608
            + " AND ".join(where)
            + f" ORDER BY {key} {order}, conversation_id {order}"
        )
        needle = filters.error_contains
        if needle is None or view is not View.DEAD:
            rows = self._store.query(sql + " LIMIT ?", (*params, limit + 1))
            scanned_out = False
            if needle is not None:  # only dead letters carry errors worth searching
                rows = [r for r in rows if r[4] and needle.lower() in r[4].lower()]
        else:
            rows, scanned_out = self._scan_errors(sql, params, needle, limit)
        more = len(rows) > limit
        rows = rows[:limit]
        page_rows = tuple(_row(r) for r in rows)
        cursor = None
        if page_rows and (more or scanned_out):
            last = page_rows[-1]
            at = last.lease_until if view is View.IN_FLIGHT and last.lease_until else last.due_at
            cursor = Cursor(at, last.conversation_id)
        return Page(view=view, rows=page_rows, next_cursor=cursor, scanned_out=scanned_out)

    def _scan_errors(
        self, sql: str, params: Sequence[Any], needle: str, limit: int
    ) -> tuple[list[tuple[Any, ...]], bool]:
        lowered = needle.lower()
        found: list[tuple[Any, ...]] = []
        scanned = 0
        chunk = 1000
        after: tuple[Any, ...] | None = None
        # Read the dead letters newest first in chunks (keyset, like pages), up to MAX_SCAN.
        while scanned < MAX_SCAN:
            extra = ""
            values: tuple[Any, ...] = tuple(params)
            if after is not None:
                extra = " AND (due_at, conversation_id) < (?, ?)"
                values = (*values, after[1], after[0])
            head, _, tail = sql.partition(" ORDER BY ")
            rows = self._store.query(
                f"{head}{extra} ORDER BY {tail} LIMIT ?", (*values, min(chunk, MAX_SCAN - scanned))
            )
            for row in rows:
                scanned += 1
                if row[4] and lowered in row[4].lower():
                    found.append(row)
                    if len(found) > limit:
                        return found, False
            if len(rows) < chunk:
                return found, False
            after = (rows[-1][0], rows[-1][1])
        return found, scanned >= MAX_SCAN

    # One conversation ------------------------------------------------------------------------

    def sync(self, conversation_id: str) -> tuple[SyncRow, Conversation] | None:
        """One sync and its stored conversation, or ``None`` when the ledger has no such id."""
        cid = _text(conversation_id, "conversation")
        if cid is None:
            raise _fail("conversation", "must not be empty")
        tenant, args = self._where_tenant()
        rows = self._store.query(
            f"SELECT {_ROW_COLUMNS}, conversation FROM {self._t}due_syncs "  # noqa: S608
            f"WHERE {tenant}conversation_id = ?",
            (*args, cid),
        )
        if not rows:
            return None
        row = rows[0]
        try:
            data = json.loads(row[-1])
        except ValueError as error:
            raise LedgerError(f"cannot decode the stored conversation {cid!r}") from error
        return _row(row[:-1]), conversation_from_dict(data)

    def commands_for(self, conversation_id: str) -> list[CommandRecord]:
        """The commands of one conversation, by key."""
        if "commands" not in self._tables:
            return []
        tenant = "integration = ? AND " if self._command_tenant else ""
        args: tuple[Any, ...] = (self.integration,) if self._command_tenant else ()
        rows = self._store.query(
            f"SELECT {_COMMAND_COLUMNS} FROM {self._t}commands "  # noqa: S608
            f"WHERE {tenant}conversation_id = ? ORDER BY key",
            (*args, conversation_id),
        )
        records = []
        for key, cid, kind, state, crm_id, reason, attempts, updated, digest, owner in rows:
            records.append(
                CommandRecord(
                    key=key,
                    conversation_id=cid,
                    kind=kind,
                    state=CommandState(state),
                    updated_at=_from_micros(updated),
                    crm_id=crm_id,
                    reason=reason,
                    attempts=attempts,
                    payload_digest=digest,
                    owner=owner,
                )
            )
        return records

    def links_for(self, emails: Iterable[str]) -> dict[str, PersonLink]:
        """The CRM person links of ``emails``, keyed by normalised email."""
        if "links" not in self._tables:
            return {}
        keys = list(dict.fromkeys(normalize_email(e) for e in emails))[:MAX_PAGE]
        if not keys:
            return {}
        marks = ", ".join("?" * len(keys))
        tenant = " AND integration = ?" if self._links_tenant else ""
        args: tuple[Any, ...] = (self.integration,) if tenant else ()
        rows = self._store.query(
            f"SELECT email, crm_id, kind FROM {self._t}links "  # noqa: S608
            f"WHERE email IN ({marks}){tenant}",
            (*keys, *args),
        )
        return {e: PersonLink(e, crm_id, PersonKind(kind)) for e, crm_id, kind in rows}

    def recent_runs(self, limit: int = 20) -> list[dict[str, Any]]:
        """The last runs' reports, newest first, as stored by a ledger that records them
        (a table named ``runs``): ``id``, ``recorded_at`` and the keys of the run's summary.
        ``[]`` when none are kept."""
        checked: object = limit
        if isinstance(checked, bool) or not isinstance(checked, int) or not 1 <= limit <= MAX_PAGE:
            raise _fail("limit", f"must be an integer from 1 to {MAX_PAGE}")
        if "runs" not in self._tables:
            return []
        tenant = "WHERE integration = ? " if "integration" in self._store.columns["runs"] else ""
        args: tuple[Any, ...] = (self.integration,) if tenant else ()
        names, rows = self._store.named(
            f"SELECT * FROM {self._t}runs {tenant}ORDER BY id DESC LIMIT ?",  # noqa: S608
            (*args, limit),
        )
        runs = []
        for row in rows:
            run: dict[str, Any] = {}
            for name, value in zip(names, row, strict=True):
                if name == "integration":
                    continue
                run[name] = value
                if name.endswith("_at") and isinstance(value, int):
                    run[name] = _from_micros(value)
                if isinstance(value, str) and value[:1] in "{[":
                    with contextlib.suppress(ValueError):
                        run[name] = json.loads(value)
            summary = run.pop("summary", None)
            if isinstance(summary, dict):  # the engine's summary: its keys are the columns
                run.update(summary)
            elif summary is not None:
                run["summary"] = summary
            runs.append(run)
        return runs

    def command_counts(self) -> dict[CommandState, int]:
        """Commands per state (every state present)."""
        counts = dict.fromkeys(CommandState, 0)
        if "commands" not in self._tables:
            return counts
        tenant = "WHERE integration = ? " if self._command_tenant else ""
        args: tuple[Any, ...] = (self.integration,) if self._command_tenant else ()
        for state, count in self._store.query(
            f"SELECT state, count(*) FROM {self._t}commands {tenant}GROUP BY state",  # noqa: S608
            args,
        ):
            counts[CommandState(state)] = count
        return counts

    # Housekeeping ----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the read-only connection (twice is harmless); a browser made by
        :meth:`with_integration` leaves its parent's open."""
        if self._root is None:
            self._store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class ReadOnlyLedger:
    """The reads an :class:`~signals_crm.Integration` makes to explain, from a browser.

    ``get_due``, ``commands_for`` and ``links_for`` answer from the file; every other ledger
    method raises :class:`~signals_crm.exceptions.LedgerError` ("read-only"), so a command that
    only explains can never write, whatever the engine would otherwise do.
    """

    def __init__(self, browser: LedgerBrowser) -> None:
        self._browser = browser

    def __repr__(self) -> str:
        return f"<ReadOnlyLedger {self._browser.path!r}>"

    def get_due(self, conversation_id: str) -> DueSync | None:
        found = self._browser.sync(conversation_id)
        if found is None:
            return None
        row, conversation = found
        return DueSync(
            conversation_id=row.conversation_id,
            due_at=row.due_at,
            conversation=conversation,
            attempts=row.attempts,
            last_error=row.last_error,
            state=row.state,
            outcome=row.outcome,
            lease_owner=row.lease_owner,
            lease_until=row.lease_until,
        )

    def commands_for(self, conversation_id: str) -> list[CommandRecord]:
        return self._browser.commands_for(conversation_id)

    def links_for(self, emails: Iterable[str]) -> dict[str, PersonLink]:
        return self._browser.links_for(emails)

    def close(self) -> None:
        """Nothing to release: the browser belongs to the caller."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)

        def refuse(*_: object, **__: object) -> Any:
            raise LedgerError(f"{name}: the ledger is open read-only")

        return refuse
