"""The ledger on PostgreSQL, for many workers on many machines (extra ``postgres``).

``PostgresLedger`` (blocking) and ``AsyncPostgresLedger`` (awaited) keep every rule of
:mod:`signals_crm.ledger.base` on psycopg 3 with a psycopg-pool connection pool. How:

1. **One logic, two drivers.** Each operation is a generator in :class:`_Ops` that yields the
   statements it needs and receives their rows (as psycopg's own protocol generators do);
   the blocking and the async ledger only drive it, on one pooled connection inside one
   transaction per call. Nothing else differs between them. (A read of one statement needs no
   transaction: on the ledger's own pool, whose connections are in autocommit mode, it is sent
   alone, without a BEGIN and a COMMIT round trip around it.)
2. **The database's clock.** Due cut-offs (when ``now`` is not given), lease ends and lease
   expiry are computed from ``now()`` of the database inside the statement, never from a
   worker's clock. (A ``clock`` may be injected for tests; it then replaces ``now()``.)
3. **Claims with ``FOR UPDATE SKIP LOCKED``.** Concurrent claimers never wait for each other
   and never take one row twice; the email rule takes a transaction-scoped advisory lock per
   (integration, email), so two workers cannot claim two conversations of one visitor at once.
   A claim walks the pending index in claim order and stops at ``limit`` candidates; only those
   take email locks (a sync whose email another claimer holds is left out of this batch), so
   its cost and its locks follow the batch, not the tenant's backlog. The leases are then
   written by a second statement that checks the email rule again: the first one's snapshot
   may predate another claimer's commit of a lease on the same email (that claimer let the
   email's lock go by committing), and a statement begun once this transaction holds the lock
   sees every such lease.
   Every claim bumps the fencing token; fenced writes lock their syncs' rows (``FOR SHARE``)
   before checking the token, so no claim can slip between the check and the write.
4. **Transitions under row locks.** ``record`` reads the current commands with ``FOR
   UPDATE`` before applying the rules; a key seen for the first time is inserted with ``ON
   CONFLICT DO NOTHING`` semantics checked afterwards, so of two racing first writes one wins
   and the other is refused as an invalid transition.
5. **Storage.** The tables live in one PostgreSQL schema (``schema``, default
   ``signals_crm``). Times are ``bigint`` microseconds since 1970-01-01 UTC, exactly as in the
   SQLite ledger, so rows read the same (and damaged rows are read the same way, see
   :mod:`signals_crm.ledger._rows`). Conversations are JSON text.
6. **Migrations.** A forward-only ladder (``MIGRATIONS``), applied on first use under an
   advisory lock in one transaction; the version is kept in ``<schema>.ledger_schema``. A
   database with a newer version is refused.
7. **Tenancy.** Every primary key starts with ``integration``; a ledger names its own in every
   statement. ``for_integration`` shares the pool.
"""

from __future__ import annotations

import contextvars
import functools
import json
import os
import re
import types
from collections.abc import Callable, Coroutine, Generator, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Concatenate, Generic, ParamSpec, Self, TypeAlias, TypeVar, overload

import attrs

from signals_crm._drive import adrive, drive
from signals_crm.core.model import Conversation, PersonKind, normalize_email
from signals_crm.exceptions import (
    ConfigurationError,
    InvalidTransitionError,
    LedgerError,
    Problem,
)
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
    aperform_all,
    aperform_each,
    apply_transitions,
    check_fence,
    check_fences,
    check_ids,
    check_integration,
    check_keep,
    check_lease,
    check_limit,
    check_seen,
    check_text,
    claim_refused,
    clean_text,
    fences_of,
    perform_all,
    perform_each,
    retried,
    summary_json,
    to_utc,
)
from signals_crm.ledger.codec import conversation_from_dict, conversation_to_dict
from signals_crm.ledger.sqlite import SQLiteLedger

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "AsyncPostgresLedger",
    "PostgresLedger",
    "copy_from_sqlite",
]

P = ParamSpec("P")
R = TypeVar("R")
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_LOCK_ID = 0x5343524D  # advisory lock of the migration ("SCRM")
_MICROSECOND = timedelta(microseconds=1)
_DB_NOW = "(extract(epoch from now()) * 1000000)::bigint"
_CLAIM_CLOCK = "coalesce(%(at)s::bigint, {now})"


def _email_free(row: str) -> str:
    """SQL: the sync ``row`` has no email, or no other owner holds a live lease on a pending
    sync of that email (the one-visitor-one-worker rule)."""
    return (
        f"({row}.email IS NULL OR NOT EXISTS (SELECT 1 FROM {{s}}.due_syncs AS o "  # noqa: S608  # a constant alias
        f"WHERE o.integration = {row}.integration AND o.email = {row}.email "
        "AND o.state = 'pending' AND o.lease_owner <> %(owner)s "
        f"AND o.lease_until > {_CLAIM_CLOCK}))"
    )


_CLAIMABLE = (
    "d.integration = %(i)s AND d.state = 'pending' "
    f"AND d.due_at <= coalesce(%(cutoff)s::bigint, {_CLAIM_CLOCK}) "
    "AND (d.lease_owner IS NULL OR d.lease_owner = %(owner)s "
    f"OR d.lease_until IS NULL OR d.lease_until <= {_CLAIM_CLOCK}) AND {_email_free('d')}"
)
"""SQL: the sync ``d`` is one ``claim`` may take (pending, due, no other owner's live lease on
it or on its email)."""

_PICK = (
    "SELECT conversation_id FROM candidates WHERE email IS NULL OR "
    "pg_try_advisory_xact_lock(hashtextextended(%(i)s || chr(1) || email, 1))"
)
"""SQL: the candidates whose email's advisory lock this transaction takes (or has)."""
"""A claim's clock: the injected one, else the database's (now(): one value per transaction).
An expression, not a joined one-row CTE: joined, it kept the planner from walking the pending
index in claim order, so a claim read and filtered a tenant's whole backlog before sorting it
and keeping ``limit`` rows."""

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE {s}.due_syncs (
            integration text NOT NULL,
            conversation_id text NOT NULL,
            due_at bigint NOT NULL,
            state text NOT NULL CHECK (state IN ('pending', 'done', 'dead')),
            attempts integer NOT NULL DEFAULT 0,
            last_error text,
            outcome text,
            conversation text NOT NULL,
            lease_owner text,
            lease_until bigint,
            email text,
            fence bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (integration, conversation_id)
        )
        """,
        (
            "CREATE INDEX due_syncs_pending ON {s}.due_syncs "
            "(integration, due_at, conversation_id) WHERE state = 'pending'"
        ),
        (
            "CREATE INDEX due_syncs_by_state ON {s}.due_syncs "
            "(integration, state, due_at, conversation_id)"
        ),
        "CREATE INDEX due_syncs_by_email ON {s}.due_syncs (integration, email, lease_until)",
        """
        CREATE TABLE {s}.commands (
            integration text NOT NULL,
            key text NOT NULL,
            conversation_id text NOT NULL,
            kind text NOT NULL,
            state text NOT NULL
                CHECK (state IN ('planned', 'sent', 'confirmed', 'failed', 'unknown')),
            crm_id text,
            reason text,
            attempts integer NOT NULL DEFAULT 0,
            updated_at bigint NOT NULL,
            payload_digest text,
            owner text,
            fence bigint,
            PRIMARY KEY (integration, key)
        )
        """,
        "CREATE INDEX commands_by_conversation ON {s}.commands (integration, conversation_id, key)",
        "CREATE INDEX commands_by_state ON {s}.commands (integration, state, updated_at, key)",
        """
        CREATE TABLE {s}.links (
            integration text NOT NULL,
            email text NOT NULL,
            crm_id text NOT NULL,
            kind text NOT NULL,
            PRIMARY KEY (integration, email)
        )
        """,
        """
        CREATE TABLE {s}.runs (
            id bigserial PRIMARY KEY,
            integration text NOT NULL,
            recorded_at bigint NOT NULL,
            summary text NOT NULL
        )
        """,
        "CREATE INDEX runs_by_integration ON {s}.runs (integration, id)",
    ),
    (
        # The console's in-flight page walks leases in order of their end (then id).
        (
            "CREATE INDEX due_syncs_in_flight ON {s}.due_syncs "
            "(integration, lease_until, conversation_id) WHERE lease_owner IS NOT NULL"
        ),
    ),
    (
        # The email rule of a claim asks, for each candidate, whether another conversation of
        # that visitor is leased: here, a lookup among the leased syncs only. (Without it, on
        # young statistics the planner answered it by walking the tenant's pending index, once
        # per candidate: a claim from a backlog of n cost n times its batch.)
        (
            "CREATE INDEX due_syncs_leased_email ON {s}.due_syncs (integration, email) "
            "WHERE state = 'pending' AND lease_owner IS NOT NULL"
        ),
    ),
)
"""The forward-only ladder: ``MIGRATIONS[n]`` takes a schema from version ``n`` to ``n + 1``."""

SCHEMA_VERSION = len(MIGRATIONS)
"""The schema version this code writes."""

_SYNC_COLUMNS = (
    "conversation_id, due_at, state, attempts, last_error, outcome, conversation, "
    "lease_owner, lease_until, fence"
)
_COMMAND_COLUMNS = (
    "key, conversation_id, kind, state, crm_id, reason, attempts, updated_at, payload_digest, "
    "owner, fence"
)


@attrs.frozen
class _Statement:
    sql: str
    params: Sequence[Any] | Mapping[str, Any] = ()


_Op: TypeAlias = Generator[_Statement, list[tuple[Any, ...]], R]
"""One ledger operation: yields statements, receives their rows, returns its result."""


def _micros(value: datetime, name: str) -> int:
    micros = (to_utc(value, name) - EPOCH) // _MICROSECOND
    if not MIN_MICROS <= micros <= MAX_MICROS:
        raise ConfigurationError([Problem(name, "must be between the years 1 and 9999")])
    return micros


def _lease_micros(lease: timedelta) -> int:
    checked: object = lease
    if not isinstance(checked, timedelta) or checked <= timedelta(0):
        raise ConfigurationError([Problem("lease", "must be a positive timedelta")])
    return lease // _MICROSECOND


def _dump(conversation: Conversation) -> str:
    return json.dumps(conversation_to_dict(conversation), separators=(",", ":"), allow_nan=False)


def _load(text: object) -> Conversation:
    if not isinstance(text, str):
        raise LedgerError("cannot decode a stored conversation: not text")
    try:
        return conversation_from_dict(json.loads(text))
    except ValueError as error:
        raise LedgerError(f"cannot decode a stored conversation: {error}") from error


def _sync(row: Sequence[Any], conversation: Conversation | None = None) -> DueSync:
    cid, due_at, state, attempts, last_error, outcome, text, owner, until, fence = row
    return read_sync(
        cid,
        due_at,
        state,
        attempts,
        last_error,
        outcome,
        lambda: _load(text) if conversation is None else conversation,
        owner,
        until,
        fence,
        time=micros_time,
    )


def _command(row: Sequence[Any]) -> CommandRecord:
    return read_command(*row, time=micros_time)


def _ordered(found: Iterable[str], ids: Sequence[str]) -> list[str]:
    order = {cid: i for i, cid in enumerate(ids)}
    return sorted(found, key=order.__getitem__)


class _Ops:
    """Every ledger operation as a generator of statements (rule 1), for one integration."""

    def __init__(self, schema: str, integration: str, clock: Clock | None, keep_runs: int) -> None:
        self.s = schema
        self.i = integration
        self.clock = clock
        self.keep_runs = keep_runs

    def bound(self, integration: str) -> _Ops:
        return _Ops(self.s, check_integration(integration), self.clock, self.keep_runs)

    def _now(self) -> int | None:
        """The injected clock in microseconds, or None for the database's now() (rule 2)."""
        return None if self.clock is None else _micros(self.clock(), "clock()")

    def q(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> _Statement:
        return _Statement(sql.replace("{s}", self.s).replace("{now}", _DB_NOW), params)

    # -- migration -----------------------------------------------------------------------------

    def migrate(self) -> _Op[None]:
        yield self.q("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        yield self.q("CREATE SCHEMA IF NOT EXISTS {s}")
        yield self.q("CREATE TABLE IF NOT EXISTS {s}.ledger_schema (version integer NOT NULL)")
        rows = yield self.q("SELECT version FROM {s}.ledger_schema")
        version = rows[0][0] if rows else 0
        if version > SCHEMA_VERSION:
            msg = (
                f"the PostgreSQL ledger schema {self.s!r} is version {version}; this version of "
                f"signals_crm reads {SCHEMA_VERSION} (upgrade signals_crm)"
            )
            raise LedgerError(msg)
        for step in MIGRATIONS[version:]:
            for statement in step:
                yield self.q(statement)
        if not rows:
            yield self.q("INSERT INTO {s}.ledger_schema (version) VALUES (%s)", (SCHEMA_VERSION,))
        elif version != SCHEMA_VERSION:
            yield self.q("UPDATE {s}.ledger_schema SET version = %s", (SCHEMA_VERSION,))

    # -- fences --------------------------------------------------------------------------------

    def _fences(self, ids: Sequence[str]) -> Generator[_Statement, Any, dict[str, int]]:
        if not ids:
            return {}
        rows = yield self.q(
            "SELECT conversation_id, fence FROM {s}.due_syncs WHERE integration = %s "
            "AND conversation_id = ANY(%s) FOR SHARE",
            (self.i, list(ids)),
        )
        return {r[0]: r[1] for r in rows}

    def _check(self, fences: Mapping[str, int] | None) -> Generator[_Statement, Any, None]:
        if fences:
            wanted = {
                check_text("fences", cid): check_fence(f"fences[{cid!r}]", f)
                for cid, f in fences.items()
            }
            check_fences(wanted, (yield from self._fences(list(wanted))))

    # -- due syncs -----------------------------------------------------------------------------

    def schedule(self, conversation: Conversation, due_at: datetime) -> _Op[DueSync]:
        """Record that ``conversation`` is due at ``due_at``; returns what is now stored."""
        return (yield from self.schedule_many([(conversation, due_at)]))[0]

    def schedule_many(self, entries: Iterable[tuple[Conversation, datetime]]) -> _Op[list[DueSync]]:
        """``schedule`` for many conversations in one transaction; one result per entry."""
        prepared = []
        for conversation, due_at in entries:
            check_text("conversation.id", conversation.id)
            prepared.append((conversation, _micros(due_at, "due_at"), _dump(conversation)))
        if not prepared:
            return []
        ids = list(dict.fromkeys(c.id for c, _, _ in prepared))
        rows = yield self.q(
            f"SELECT {_SYNC_COLUMNS} FROM {{s}}.due_syncs WHERE integration = %s "  # noqa: S608
            "AND conversation_id = ANY(%s) FOR UPDATE",
            (self.i, ids),
        )
        stored = {r[0]: r for r in rows}
        texts = {cid: row[6] for cid, row in stored.items()}  # as stored
        fences = {cid: row[9] for cid, row in stored.items()}
        current: dict[str, DueSync] = {}
        results: list[DueSync] = []
        writes: dict[str, tuple[Any, ...]] = {}
        for conversation, at, dumped in prepared:
            cid = conversation.id
            old = current.get(cid)
            if old is None and cid in stored:
                row = stored[cid]
                old = _sync(row, conversation if row[2] == "pending" else None)
            when = micros_time(at)
            if old is None:
                new = DueSync(cid, when, conversation)
            elif old.state is DueState.PENDING:
                # Rule 1b: a different conversation moves the fence (compared with the row as
                # stored before this call, as the statement does).
                fence = fences[cid] + (texts[cid] != dumped) if cid in texts else old.fence
                new = attrs.evolve(old, due_at=when, conversation=conversation, fence=fence)
            else:
                new = old
            if new is not old or old.state is DueState.PENDING:
                email = None if new.email is None else clean_text(new.email)
                writes[cid] = (self.i, cid, at, dumped, email)
            current[cid] = new
            results.append(new)
        if writes:
            columns = list(zip(*writes.values(), strict=True))
            yield self.q(
                "INSERT INTO {s}.due_syncs (integration, conversation_id, due_at, state, "
                "conversation, email) SELECT i, c, d, 'pending', v, e FROM unnest("
                "%s::text[], %s::text[], %s::bigint[], %s::text[], %s::text[]) "
                "AS u(i, c, d, v, e) ON CONFLICT (integration, conversation_id) DO UPDATE "
                "SET due_at = excluded.due_at, conversation = excluded.conversation, "
                "email = excluded.email, fence = due_syncs.fence + CASE WHEN "
                "due_syncs.conversation IS DISTINCT FROM excluded.conversation THEN 1 ELSE 0 END "
                "WHERE due_syncs.state = 'pending'",
                [list(col) for col in columns],
            )
        return results

    def rearm(self, conversation: Conversation, due_at: datetime) -> _Op[DueSync | None]:
        """Make a done sync that was skipped (outcome ``"skipped:..."``) pending again."""
        at = _micros(due_at, "due_at")
        check_text("conversation.id", conversation.id)
        email = DueSync(conversation.id, EPOCH, conversation).email
        rows = yield self.q(
            "UPDATE {s}.due_syncs SET state = 'pending', due_at = %s, conversation = %s, "  # noqa: S608
            "email = %s, attempts = 0, last_error = NULL, outcome = NULL, lease_owner = NULL, "
            "lease_until = NULL WHERE integration = %s AND conversation_id = %s "
            f"AND state = 'done' AND outcome LIKE 'skipped:%%' RETURNING {_SYNC_COLUMNS}",
            (
                at,
                _dump(conversation),
                None if email is None else clean_text(email),
                self.i,
                conversation.id,
            ),
        )
        return _sync(rows[0], conversation) if rows else None

    def requeue_dead(self, conversation_ids: Iterable[str], due_at: datetime) -> _Op[list[str]]:
        """Dead syncs back to pending at ``due_at`` with their FAILED commands."""
        ids = check_ids("conversation_ids", conversation_ids)
        at = _micros(due_at, "due_at")
        rows = yield self.q(
            "UPDATE {s}.due_syncs SET state = 'pending', due_at = %s, attempts = 0, "
            "lease_owner = NULL, lease_until = NULL WHERE integration = %s AND state = 'dead' "
            "AND conversation_id = ANY(%s) RETURNING conversation_id",
            (at, self.i, ids),
        )
        requeued = [r[0] for r in rows]
        if requeued:
            yield self.q(
                "UPDATE {s}.commands SET state = 'planned', reason = NULL, updated_at = %s "
                "WHERE integration = %s AND state = 'failed' AND conversation_id = ANY(%s)",
                (at, self.i, requeued),
            )
        return _ordered(requeued, ids)

    def due(self, now: datetime, limit: int) -> _Op[list[DueSync]]:
        """Pending syncs due at ``now``, by due time then id, at most ``limit``."""
        cutoff = _micros(now, "now")
        check_limit(limit)
        rows = yield self.q(
            f"SELECT {_SYNC_COLUMNS} FROM {{s}}.due_syncs WHERE integration = %s "  # noqa: S608
            "AND state = 'pending' AND due_at <= %s ORDER BY due_at, conversation_id LIMIT %s",
            (self.i, cutoff, limit),
        )
        return [s for s in map(_sync, rows) if s.state is DueState.PENDING]

    def get_due(self, conversation_id: str) -> _Op[DueSync | None]:
        """The stored sync of ``conversation_id``, in any state, or ``None``."""
        check_text("conversation_id", conversation_id)
        rows = yield self.q(
            f"SELECT {_SYNC_COLUMNS} FROM {{s}}.due_syncs "  # noqa: S608
            "WHERE integration = %s AND conversation_id = %s",
            (self.i, conversation_id),
        )
        return _sync(rows[0]) if rows else None

    def syncs_in_state(self, state: DueState, limit: int) -> _Op[list[DueSync]]:
        """Syncs in ``state``, by due time then id, at most ``limit``."""
        state = DueState(state)
        check_limit(limit)
        rows = yield self.q(
            f"SELECT {_SYNC_COLUMNS} FROM {{s}}.due_syncs WHERE integration = %s "  # noqa: S608
            "AND state = %s ORDER BY due_at, conversation_id LIMIT %s",
            (self.i, state.value, limit),
        )
        return [_sync(r) for r in rows]

    def _bury(self, damaged: Sequence[DueSync]) -> _Statement:
        """Dead-letter the damaged rows a claim met, each with the reason it was read with."""
        return self.q(
            "UPDATE {s}.due_syncs AS u SET state = 'dead', last_error = v.e, "
            "lease_owner = NULL, lease_until = NULL FROM unnest(%s::text[], %s::text[]) "
            "AS v(c, e) WHERE u.integration = %s AND u.conversation_id = v.c",
            ([s.conversation_id for s in damaged], [s.last_error for s in damaged], self.i),
        )

    def _lease_picked(
        self, ids: Sequence[str], owner: str, length: int, at: int | None
    ) -> _Op[list[tuple[Any, ...]]]:
        """Lease ``ids`` (rows this transaction has locked, their emails' advisory locks held)
        to ``owner``, but for a sync whose email another owner holds a live lease on: checked
        again here, in a statement of its own. The candidates' statement judged the email rule
        by its snapshot, which may predate another claimer's commit of a lease on the same
        email: that claimer let go of the email's advisory lock only by committing, so a
        statement begun after this transaction took the lock sees the lease."""
        if not ids:
            return []
        rows: list[tuple[Any, ...]] = yield self.q(
            f"""
            UPDATE {{s}}.due_syncs AS u
            SET lease_owner = %(owner)s, lease_until = {_CLAIM_CLOCK} + %(length)s,
                fence = u.fence + 1
            FROM unnest(%(ids)s::text[]) AS p(c)
            WHERE u.integration = %(i)s AND u.conversation_id = p.c
              AND {_email_free("u")}
            RETURNING {", ".join("u." + c.strip() for c in _SYNC_COLUMNS.split(","))}
            """,  # noqa: S608  # constant names; values bound
            {"at": at, "i": self.i, "owner": owner, "length": length, "ids": list(ids)},
        )
        return rows

    def claim(
        self,
        now: datetime | None = None,
        limit: int = 100,
        *,
        owner: str,
        lease: timedelta | None = None,
        until: datetime | None = None,
    ) -> _Op[list[DueSync]]:
        """Lease to ``owner`` the due syncs no other owner holds (``FOR UPDATE SKIP LOCKED``)."""
        check_limit(limit)
        if (lease is None) == (until is None):
            raise ConfigurationError(
                [
                    Problem(
                        "lease",
                        "give the lease duration (lease=...), or the older now and until",
                    )
                ]
            )
        if until is not None:  # the older shape: judged by the caller's now
            if now is None:
                raise ConfigurationError([Problem("now", "claim(..., until=...) needs now")])
            start, end = check_lease(now, owner, until)
            at: int | None = _micros(start, "now")
            length = _micros(end, "until") - _micros(start, "now")
            cutoff: int | None = at
        else:
            assert lease is not None  # noqa: S101  # checked just above
            length = _lease_micros(lease)
            named: object = owner
            if not isinstance(named, str) or not named:
                raise ConfigurationError([Problem("owner", "must be a non-empty string")])
            check_text("owner", owner)
            at = self._now()
            cutoff = None if now is None else _micros(now, "now")
        if not limit:
            return []
        picked = yield self.q(
            f"""
            WITH candidates AS (
                SELECT d.conversation_id, d.email FROM {{s}}.due_syncs AS d
                WHERE {_CLAIMABLE}
                ORDER BY d.due_at, d.conversation_id
                LIMIT %(limit)s
                FOR UPDATE OF d SKIP LOCKED
            )
            {_PICK}
            """,  # noqa: S608  # constant names; values bound
            {"at": at, "cutoff": cutoff, "i": self.i, "owner": owner, "limit": limit},
        )
        rows = yield from self._lease_picked([r[0] for r in picked], owner, length, at)
        read = sorted(map(_sync, rows), key=lambda s: (s.due_at, s.conversation_id))
        damaged = [s for s in read if s.state is not DueState.PENDING]
        if damaged:
            yield self._bury(damaged)
        return [s for s in read if s.state is DueState.PENDING]

    def claimable(
        self, now: datetime | None = None, limit: int = 100, *, owner: str
    ) -> _Op[list[DueSync]]:
        """What ``claim(now, limit, owner=owner)`` would take, leasing nothing (a read; damaged
        rows it meets are dead-lettered, as ``claim`` does)."""
        check_limit(limit)
        named: object = owner
        if not isinstance(named, str) or not named:
            raise ConfigurationError([Problem("owner", "must be a non-empty string")])
        check_text("owner", owner)
        if not limit:
            return []
        rows = yield self.q(
            f"""
            SELECT {", ".join("d." + c.strip() for c in _SYNC_COLUMNS.split(","))}
            FROM {{s}}.due_syncs AS d
            WHERE {_CLAIMABLE}
            ORDER BY d.due_at, d.conversation_id
            LIMIT %(limit)s
            """,  # noqa: S608  # constant names; values bound
            {
                "at": self._now(),
                "cutoff": None if now is None else _micros(now, "now"),
                "i": self.i,
                "owner": owner,
                "limit": limit,
            },
        )
        read = list(map(_sync, rows))
        damaged = [s for s in read if s.state is not DueState.PENDING]
        if damaged:  # dead-lettered as claim does: seen, never silently skipped
            yield self._bury(damaged)
        return [s for s in read if s.state is DueState.PENDING]

    def claim_unchanged(
        self,
        seen: Mapping[str, int],
        *,
        owner: str,
        lease: timedelta,
        now: datetime | None = None,
    ) -> _Op[list[DueSync]]:
        """Lease to ``owner`` exactly the syncs of ``seen`` (id → the fence read) if none
        changed since the read, else raise ``ClaimRefusedError`` writing nothing (rule 1m).

        As ``claim``: the rows still as read are locked ``FOR UPDATE SKIP LOCKED`` (a row
        another transaction holds is contention: refused at once, never waited for, so two
        optimistic claimers cannot deadlock) and their emails' advisory locks taken, then
        leased by a statement that checks the email rule again; if one is missing, raising
        rolls the transaction back."""
        wanted = check_seen(seen)
        length = _lease_micros(lease)
        named: object = owner
        if not isinstance(named, str) or not named:
            raise ConfigurationError([Problem("owner", "must be a non-empty string")])
        check_text("owner", owner)
        if not wanted:
            return []
        at = self._now()
        picked = yield self.q(
            f"""
            WITH candidates AS (
                SELECT d.conversation_id, d.email FROM {{s}}.due_syncs AS d
                JOIN unnest(%(ids)s::text[], %(fences)s::bigint[]) AS seen(c, f)
                  ON d.conversation_id = seen.c AND d.fence = seen.f
                WHERE {_CLAIMABLE}
                ORDER BY d.conversation_id
                FOR UPDATE OF d SKIP LOCKED
            )
            {_PICK}
            """,  # noqa: S608  # constant names; values bound
            {
                "at": at,
                "cutoff": None if now is None else _micros(now, "now"),
                "i": self.i,
                "owner": owner,
                "ids": list(wanted),
                "fences": list(wanted.values()),
            },
        )
        rows = yield from self._lease_picked([r[0] for r in picked], owner, length, at)
        claimed = {s.conversation_id: s for s in map(_sync, rows)}
        changed = [cid for cid in wanted if cid not in claimed]
        if changed:
            raise claim_refused(changed)  # the transaction (or its savepoint) is rolled back
        return [claimed[cid] for cid in wanted]

    def extend(
        self,
        conversation_ids: Iterable[str],
        *,
        owner: str,
        lease: timedelta,
        fences: Mapping[str, int] | None = None,
    ) -> _Op[list[str]]:
        """Renew ``owner``'s pending leases for ``lease`` from the database's clock."""
        ids = check_ids("conversation_ids", conversation_ids)
        length = _lease_micros(lease)
        named: object = owner
        if not isinstance(named, str) or not named:
            raise ConfigurationError([Problem("owner", "must be a non-empty string")])
        yield from self._check(fences)
        rows = yield self.q(
            "UPDATE {s}.due_syncs SET lease_until = coalesce(%s::bigint, {now}) + %s "
            "WHERE integration = %s AND state = 'pending' AND lease_owner = %s "
            "AND conversation_id = ANY(%s) RETURNING conversation_id",
            (self._now(), length, self.i, owner, ids),
        )
        return _ordered([r[0] for r in rows], ids)

    def release(
        self,
        conversation_ids: Iterable[str],
        owner: str,
        *,
        fences: Mapping[str, int] | None = None,
    ) -> _Op[int]:
        """End ``owner``'s leases on these syncs without other change; returns how many."""
        ids = check_ids("conversation_ids", conversation_ids)
        check_text("owner", owner)
        yield from self._check(fences)
        rows = yield self.q(
            "UPDATE {s}.due_syncs SET lease_owner = NULL, lease_until = NULL "
            "WHERE integration = %s AND lease_owner = %s AND conversation_id = ANY(%s) "
            "RETURNING conversation_id",
            (self.i, owner, ids),
        )
        return len(rows)

    def complete(
        self,
        conversation_ids: Iterable[str],
        outcome: str,
        *,
        fences: Mapping[str, int] | None = None,
    ) -> _Op[int]:
        """Mark pending or dead syncs done with ``outcome``; returns how many changed."""
        ids = check_ids("conversation_ids", conversation_ids)
        outcome = clean_text(outcome)
        yield from self._check(fences)
        rows = yield self.q(
            "UPDATE {s}.due_syncs SET state = 'done', outcome = %s, lease_owner = NULL, "
            "lease_until = NULL WHERE integration = %s AND state <> 'done' "
            "AND conversation_id = ANY(%s) RETURNING conversation_id",
            (outcome, self.i, ids),
        )
        return len(rows)

    def reschedule(
        self,
        conversation_id: str,
        due_at: datetime,
        error: str,
        *,
        fence: int | None = None,
    ) -> _Op[DueSync | None]:
        """Move a pending sync to ``due_at`` after a failed attempt (attempts + 1)."""
        to_utc(due_at, "due_at")
        return (yield from self._finish_attempt(conversation_id, error, due_at, fence))

    def dead_letter(
        self, conversation_id: str, reason: str, *, fence: int | None = None
    ) -> _Op[DueSync | None]:
        """Give up on a pending sync with the CRM's ``reason`` (attempts + 1)."""
        return (yield from self._finish_attempt(conversation_id, reason, None, fence))

    def _finish_attempt(
        self,
        conversation_id: str,
        error: str,
        due_at: datetime | None,
        fence: int | None,
    ) -> _Op[DueSync | None]:
        check_text("conversation_id", conversation_id)
        error = clean_text(error)
        at = None if due_at is None else _micros(due_at, "due_at")
        yield from self._check(None if fence is None else {conversation_id: fence})
        rows = yield self.q(
            f"SELECT {_SYNC_COLUMNS} FROM {{s}}.due_syncs "  # noqa: S608
            "WHERE integration = %s AND conversation_id = %s FOR UPDATE",
            (self.i, conversation_id),
        )
        if not rows:
            return None
        old = _sync(rows[0])
        if old.state is not DueState.PENDING:
            return old
        new = attrs.evolve(
            old,
            state=DueState.DEAD if at is None else DueState.PENDING,
            due_at=old.due_at if at is None else micros_time(at),
            attempts=old.attempts + 1,
            last_error=error,
            lease_owner=None,
            lease_until=None,
        )
        yield self.q(
            "UPDATE {s}.due_syncs SET state = %s, due_at = %s, attempts = %s, last_error = %s, "
            "lease_owner = NULL, lease_until = NULL WHERE integration = %s "
            "AND conversation_id = %s",
            (
                new.state.value,
                _micros(new.due_at, "due_at"),
                new.attempts,
                error,
                self.i,
                conversation_id,
            ),
        )
        return new

    # -- commands ------------------------------------------------------------------------------

    def _commands(
        self, keys: Sequence[str], *, lock: bool
    ) -> Generator[_Statement, Any, dict[str, CommandRecord]]:
        if not keys:
            return {}
        rows = yield self.q(
            f"SELECT {_COMMAND_COLUMNS} FROM {{s}}.commands WHERE integration = %s "  # noqa: S608
            "AND key = ANY(%s)" + (" FOR UPDATE" if lock else ""),
            (self.i, list(keys)),
        )
        return {r[0]: _command(r) for r in rows}

    def get_command(self, key: str) -> _Op[CommandRecord | None]:
        """The command stored under ``key``, or ``None``."""
        return (yield from self.get_commands([key])).get(key)

    def get_commands(self, keys: Iterable[str]) -> _Op[dict[str, CommandRecord]]:
        """The stored commands among ``keys`` (unknown keys are absent from the result)."""
        return (yield from self._commands(check_ids("keys", keys), lock=False))

    def commands_for(self, conversation_id: str) -> _Op[list[CommandRecord]]:
        """Every command of one conversation, by key."""
        check_text("conversation_id", conversation_id)
        rows = yield self.q(
            f"SELECT {_COMMAND_COLUMNS} FROM {{s}}.commands WHERE integration = %s "  # noqa: S608
            "AND conversation_id = %s ORDER BY key",
            (self.i, conversation_id),
        )
        return [_command(r) for r in rows]

    def commands_of(self, conversation_ids: Iterable[str]) -> _Op[dict[str, list[CommandRecord]]]:
        """``commands_for`` of many conversations in one query."""
        ids = check_ids("conversation_ids", conversation_ids)
        rows = yield self.q(
            f"SELECT {_COMMAND_COLUMNS} FROM {{s}}.commands WHERE integration = %s "  # noqa: S608
            "AND conversation_id = ANY(%s) ORDER BY key",
            (self.i, ids),
        )
        found: dict[str, list[CommandRecord]] = {cid: [] for cid in ids}
        for row in rows:
            found[row[1]].append(_command(row))
        return found

    def _upsert(
        self, records: Iterable[CommandRecord], *, only_new: bool = False
    ) -> Generator[_Statement, Any, list[str]]:
        """Write ``records``; with ``only_new``, insert those whose key is not stored yet
        (waiting for a racing insert to commit) and leave the others: returns the keys written
        (every key, without ``only_new``)."""
        rows = [
            (
                r.key,
                r.conversation_id,
                r.kind,
                r.state.value,
                r.crm_id,
                r.reason,
                r.attempts,
                _micros(r.updated_at, "updated_at"),
                r.payload_digest,
                r.owner,
                r.fence,
            )
            for r in records
        ]
        if not rows:
            return []
        columns = [list(c) for c in zip(*rows, strict=True)]
        conflict = (
            "DO NOTHING RETURNING key"
            if only_new
            else "DO UPDATE SET state = excluded.state, crm_id = excluded.crm_id, "
            "reason = excluded.reason, attempts = excluded.attempts, "
            "updated_at = excluded.updated_at, payload_digest = excluded.payload_digest, "
            "owner = excluded.owner, fence = excluded.fence"
        )
        written = yield self.q(
            f"INSERT INTO {{s}}.commands (integration, {_COMMAND_COLUMNS}) "  # noqa: S608
            "SELECT %s, * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], "
            "%s::text[], %s::text[], %s::integer[], %s::bigint[], %s::text[], %s::text[], "
            f"%s::bigint[]) ON CONFLICT (integration, key) {conflict}",
            [self.i, *columns],
        )
        return [r[0] for r in written] if only_new else [r[0] for r in rows]

    def record(self, commands: Sequence[CommandRecord]) -> _Op[None]:
        """Insert or update ``commands`` in one transaction, enforcing the transition rules."""
        commands = list(commands)
        if not commands:
            return None
        wanted, fenced_keys = fences_of(commands)
        if wanted:
            check_fences(wanted, (yield from self._fences(list(wanted))), fenced_keys)
        firsts = {c.key: c for c in reversed(commands)}  # each key's first command
        keys = list(firsts)
        # Lock the keys' rows (rule 4). A key nobody has yet is written by inserting its record
        # with ON CONFLICT DO NOTHING, which waits for a racing insert of that key to commit; a
        # key another transaction inserted meanwhile is then read, locked, as it was stored,
        # and every transition judged again. Where the rules refuse a new key, placeholders
        # take the missing keys first, so that the refusal is judged on what is stored.
        stored = yield from self._commands(keys, lock=True)
        missing = [k for k in keys if k not in stored]
        final: dict[str, CommandRecord] | None
        try:
            final = apply_transitions(stored, commands)
        except InvalidTransitionError:
            if not missing:
                raise
            final = None
        inserted: set[str] = set()
        if missing:
            if final is None:
                rows = yield self.q(
                    "INSERT INTO {s}.commands (integration, key, conversation_id, kind, state, "
                    "updated_at) SELECT %s, k, c, t, 'planned', 0 FROM unnest(%s::text[], "
                    "%s::text[], %s::text[]) AS u(k, c, t) ON CONFLICT (integration, key) "
                    "DO NOTHING RETURNING key",
                    (
                        self.i,
                        missing,
                        [firsts[k].conversation_id for k in missing],
                        [firsts[k].kind for k in missing],
                    ),
                )
                taken = {r[0] for r in rows}
            else:
                new = [final[k] for k in missing]
                inserted = set((yield from self._upsert(new, only_new=True)))
                taken = inserted
            raced = sorted(set(missing) - taken)
            if raced or final is None:
                stored.update((yield from self._commands(raced, lock=True)))
                final = None  # judged again on what is stored now
        if final is None:
            final = apply_transitions(stored, commands)
        yield from self._upsert(r for k, r in final.items() if k not in inserted)
        return None

    def retry_failed(self, keys: Iterable[str], now: datetime) -> _Op[list[str]]:
        """Put FAILED commands among ``keys`` back to PLANNED; returns the keys reset."""
        to_utc(now, "now")
        unique = check_ids("keys", keys)
        stored = yield from self._commands(unique, lock=True)
        reset = [
            retried(stored[k], now)
            for k in unique
            if k in stored and stored[k].state is CommandState.FAILED
        ]
        yield from self._upsert(reset)
        return [r.key for r in reset]

    def commands_in_state(self, state: CommandState, limit: int) -> _Op[list[CommandRecord]]:
        """Commands in ``state``, oldest ``updated_at`` first (then by key), at most ``limit``."""
        state = CommandState(state)
        check_limit(limit)
        rows = yield self.q(
            f"SELECT {_COMMAND_COLUMNS} FROM {{s}}.commands WHERE integration = %s "  # noqa: S608
            "AND state = %s ORDER BY updated_at, key LIMIT %s",
            (self.i, state.value, limit),
        )
        return [_command(r) for r in rows]

    def creates_in_flight(self, emails: Iterable[str]) -> _Op[list[CreateInFlight]]:
        """The unsettled person creates of the syncs of ``emails`` (rule 2h), one statement."""
        wanted = sorted({normalize_email(e) for e in emails})
        if not wanted:
            return []
        rows = yield self.q(
            "SELECT s.email, c.conversation_id, c.updated_at FROM {s}.commands c "
            "JOIN {s}.due_syncs s ON s.integration = c.integration "
            "AND s.conversation_id = c.conversation_id "
            "WHERE c.integration = %s AND c.state IN ('sent', 'unknown') "
            "AND c.kind = 'create_person' AND s.email = ANY(%s) "
            "ORDER BY c.state <> 'sent', c.updated_at, c.key",
            (self.i, wanted),
        )
        return [CreateInFlight(r[0], r[1], micros_time(r[2])) for r in rows]

    # -- links ---------------------------------------------------------------------------------

    def link(self, email: str, crm_id: str, kind: PersonKind) -> _Op[None]:
        """Remember that ``email`` was synced to the CRM person ``crm_id``."""
        yield from self.link_many([PersonLink(email, crm_id, kind)])

    def link_many(self, links: Iterable[PersonLink]) -> _Op[None]:
        """``link`` for many emails in one transaction (later entries win)."""
        latest = {link.email: link for link in links}
        if latest:
            values = list(latest.values())
            yield self.q(
                "INSERT INTO {s}.links (integration, email, crm_id, kind) "
                "SELECT %s, * FROM unnest(%s::text[], %s::text[], %s::text[]) "
                "ON CONFLICT (integration, email) DO UPDATE SET crm_id = excluded.crm_id, "
                "kind = excluded.kind",
                (
                    self.i,
                    [v.email for v in values],
                    [v.crm_id for v in values],
                    [v.kind.value for v in values],
                ),
            )

    def links_for(self, emails: Iterable[str]) -> _Op[dict[str, PersonLink]]:
        """The links of ``emails``, keyed by normalised email (unknown emails absent)."""
        keys = check_ids("emails", (normalize_email(e) for e in emails))
        if not keys:
            return {}
        rows = yield self.q(
            "SELECT email, crm_id, kind FROM {s}.links WHERE integration = %s AND email = ANY(%s)",
            (self.i, keys),
        )
        return {e: PersonLink(e, c, PersonKind(k)) for e, c, k in rows}

    # -- runs, the fleet, stats ----------------------------------------------------------------

    def record_run(self, summary: Mapping[str, Any]) -> _Op[RunRecord]:
        """Keep one run's summary, stamped by the database's clock."""
        text = summary_json(summary)
        rows = yield self.q(
            "INSERT INTO {s}.runs (integration, recorded_at, summary) "
            "VALUES (%s, coalesce(%s::bigint, {now}), %s) RETURNING id, recorded_at",
            (self.i, self._now(), text),
        )
        run_id, at = rows[0]
        yield self.q(
            "DELETE FROM {s}.runs WHERE integration = %s AND id <= %s",
            (self.i, run_id - self.keep_runs),
        )
        return RunRecord(run_id, self.i, micros_time(at), json.loads(text))

    def recent_runs(self, limit: int) -> _Op[list[RunRecord]]:
        """The latest ``limit`` run reports, newest first."""
        check_limit(limit)
        rows = yield self.q(
            "SELECT id, recorded_at, summary FROM {s}.runs WHERE integration = %s "
            "ORDER BY id DESC LIMIT %s",
            (self.i, limit),
        )
        out = []
        for run_id, at, text in rows:
            try:
                out.append(RunRecord(run_id, self.i, micros_time(at), json.loads(text)))
            except (ValueError, Damage) as error:
                out.append(RunRecord(run_id, self.i, EPOCH, {"damaged": f"{DAMAGED}{error}"}))
        return out

    def integrations_due(
        self, now: datetime | None = None, limit: int = 1000
    ) -> _Op[list[tuple[str, datetime]]]:
        """Integrations with pending syncs due at ``now`` (default: the database's clock)."""
        check_limit(limit)
        cutoff = self._now() if now is None else _micros(now, "now")
        # A loose scan of the pending index, one descent per tenant: the first entry past the
        # previous tenant is the next tenant's earliest pending sync (the index is ordered by
        # integration, then due_at), so its name and its first due time come from one lookup.
        rows = yield self.q(
            """
            WITH RECURSIVE tenants(name, first) AS (
                (SELECT integration, due_at FROM {s}.due_syncs WHERE state = 'pending'
                 ORDER BY integration, due_at LIMIT 1)
                UNION ALL
                SELECT later.integration, later.due_at FROM tenants, LATERAL (
                    SELECT integration, due_at FROM {s}.due_syncs
                    WHERE state = 'pending' AND integration > tenants.name
                    ORDER BY integration, due_at LIMIT 1
                ) AS later
            )
            SELECT name, first FROM tenants
            WHERE first <= coalesce(%s::bigint, {now}) AND first >= %s
            ORDER BY first, name LIMIT %s
            """,
            (cutoff, MIN_MICROS, limit),
        )
        return [(name, micros_time(first)) for name, first in rows]

    def stats(self) -> _Op[LedgerStats]:
        """Counts per sync state and command state (every state present), links, damaged rows."""
        syncs = dict.fromkeys(DueState, 0)
        commands = dict.fromkeys(CommandState, 0)
        damaged = 0
        for table, column, counts, kind in (
            ("due_syncs", "due_at", syncs, DueState),
            ("commands", "updated_at", commands, CommandState),
        ):
            rows = yield self.q(
                f"SELECT state, {column} BETWEEN %s AND %s, count(*) FROM {{s}}.{table} "  # noqa: S608
                "WHERE integration = %s GROUP BY 1, 2",
                (MIN_MICROS, MAX_MICROS, self.i),
            )
            for state, ok, count in rows:
                if ok and state in kind._value2member_map_:
                    counts[kind(state)] += count  # type: ignore[index]
                else:
                    damaged += count
        rows = yield self.q("SELECT count(*) FROM {s}.links WHERE integration = %s", (self.i,))
        return LedgerStats(syncs=syncs, commands=commands, links=rows[0][0], damaged=damaged)


def _check_schema(schema: str) -> str:
    checked: object = schema
    if not isinstance(checked, str) or not _NAME.fullmatch(schema):
        raise ConfigurationError(
            [
                Problem(
                    "schema",
                    "must be a lower-case SQL name (letters, digits, underscores)",
                )
            ]
        )
    return schema


def _import_psycopg() -> Any:
    try:
        import psycopg  # the optional extra, imported when used
        import psycopg_pool
    except ImportError as error:  # pragma: no cover - depends on the installed extras
        msg = "the PostgreSQL ledger needs the postgres extra: pip install 'signals-crm[postgres]'"
        raise ConfigurationError([Problem("postgres", msg)]) from error
    return psycopg, psycopg_pool


class _Method(Generic[P, R]):
    """A ledger method running one operation of :class:`_Ops` (rule 1): read on a
    :class:`PostgresLedger` it is a blocking method, on an :class:`AsyncPostgresLedger` a
    coroutine method; both take the operation's own arguments and docstring."""

    def __init__(self, op: Callable[Concatenate[_Ops, P], _Op[R]], *, read: bool = False) -> None:
        # ``read``: the operation runs at most one statement and writes nothing (rule 1).
        @functools.wraps(op)
        def blocking(ledger: PostgresLedger, /, *args: P.args, **kwargs: P.kwargs) -> R:
            return ledger._run(op(ledger._ops, *args, **kwargs), read=read)  # noqa: SLF001  # its own class

        @functools.wraps(op)
        async def awaited(ledger: AsyncPostgresLedger, /, *args: P.args, **kwargs: P.kwargs) -> R:
            return await ledger._run(op(ledger._ops, *args, **kwargs), read=read)  # noqa: SLF001  # its own class

        awaited.__doc__ = f"Awaitable :meth:`PostgresLedger.{op.__name__}`."
        self._blocking = blocking
        self._awaited = awaited

    @overload
    def __get__(self, ledger: PostgresLedger, owner: type[Any]) -> Callable[P, R]: ...

    @overload
    def __get__(
        self, ledger: AsyncPostgresLedger, owner: type[Any]
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...

    @overload
    def __get__(self, ledger: None, owner: type[Any]) -> Callable[..., Any]: ...

    def __get__(self, ledger: object, owner: type[Any]) -> Callable[..., Any]:
        function: Callable[..., Any] = (
            self._awaited if issubclass(owner, AsyncPostgresLedger) else self._blocking
        )
        return function if ledger is None else types.MethodType(function, ledger)


class _Base:
    """What both PostgreSQL ledgers share: options, binding, and error mapping."""

    _ops: _Ops
    _owns_pool: bool
    _closed: bool
    _psycopg: Any

    # Every Ledger method, once for both ledgers: an operation of _Ops (rule 1).
    schedule = _Method(_Ops.schedule)
    schedule_many = _Method(_Ops.schedule_many)
    rearm = _Method(_Ops.rearm)
    requeue_dead = _Method(_Ops.requeue_dead)
    due = _Method(_Ops.due, read=True)
    get_due = _Method(_Ops.get_due, read=True)
    syncs_in_state = _Method(_Ops.syncs_in_state, read=True)
    claim = _Method(_Ops.claim)
    claimable = _Method(_Ops.claimable, read=True)  # its rare quarantine: autocommitted
    claim_unchanged = _Method(_Ops.claim_unchanged)
    extend = _Method(_Ops.extend)
    release = _Method(_Ops.release)
    complete = _Method(_Ops.complete)
    reschedule = _Method(_Ops.reschedule)
    dead_letter = _Method(_Ops.dead_letter)
    get_command = _Method(_Ops.get_command, read=True)
    get_commands = _Method(_Ops.get_commands, read=True)
    commands_of = _Method(_Ops.commands_of, read=True)
    commands_for = _Method(_Ops.commands_for, read=True)
    record = _Method(_Ops.record)
    retry_failed = _Method(_Ops.retry_failed)
    commands_in_state = _Method(_Ops.commands_in_state, read=True)
    creates_in_flight = _Method(_Ops.creates_in_flight, read=True)
    link = _Method(_Ops.link)
    link_many = _Method(_Ops.link_many)
    links_for = _Method(_Ops.links_for, read=True)
    record_run = _Method(_Ops.record_run)
    recent_runs = _Method(_Ops.recent_runs, read=True)
    integrations_due = _Method(_Ops.integrations_due, read=True)
    stats = _Method(_Ops.stats)

    def _setup(self, schema: str, integration: str, clock: Clock | None, keep_runs: int) -> None:
        self._ops = _Ops(
            _check_schema(schema),
            check_integration(integration),
            clock,
            check_keep(keep_runs),
        )
        self._closed = False

    @property
    def integration(self) -> str:
        """The integration (tenant) this ledger is bound to."""
        return self._ops.i

    @property
    def schema(self) -> str:
        """The PostgreSQL schema holding the tables."""
        return self._ops.s

    def _sibling(self, integration: str) -> Self:
        other = object.__new__(type(self))
        other.__dict__.update(self.__dict__)
        other._ops = self._ops.bound(integration)  # a sibling of this class
        other._owns_pool = False
        other._closed = False
        return other

    def _ensure_open(self) -> None:
        if self._closed:
            raise LedgerError("the ledger is closed")


_BATCH: contextvars.ContextVar[Any] = contextvars.ContextVar("signals_crm_pg_batch", default=None)
_ABATCH: contextvars.ContextVar[Any] = contextvars.ContextVar("signals_crm_apg_batch", default=None)
"""The connection of the ``perform`` under way in this thread or task (its transaction)."""


def _has_rows(cursor: Any) -> bool:
    """Whether the cursor's last statement returned a result set (rows, maybe none): read from
    its result's column count, as ``cursor.description`` is without building a column list for
    each statement (every statement of the ledger is a SELECT, a DML statement or DDL)."""
    result = cursor.pgresult
    return result is not None and result.nfields > 0


def _drive_sync(conn: Any, op: _Op[R]) -> R:
    with conn.cursor() as cursor:

        def execute(statement: _Statement) -> list[tuple[Any, ...]]:
            cursor.execute(statement.sql, statement.params)
            return cursor.fetchall() if _has_rows(cursor) else []

        return drive(op, execute)


async def _drive_async(conn: Any, op: _Op[R]) -> R:
    async with conn.cursor() as cursor:

        async def execute(statement: _Statement) -> list[tuple[Any, ...]]:
            await cursor.execute(statement.sql, statement.params)
            return await cursor.fetchall() if _has_rows(cursor) else []

        return await adrive(op, execute)


class PostgresLedger(_Base):
    """A :class:`~signals_crm.ledger.Ledger` on PostgreSQL (blocking; thread-safe).

    ``conninfo`` is a libpq connection string (or URL), or an open
    ``psycopg_pool.ConnectionPool`` the host owns (typed ``Any`` so that importing this module
    never needs the extra). ``integration`` is the tenant this ledger is
    bound to; ``schema`` the PostgreSQL schema of its tables (created and migrated on open).
    ``max_connections`` sizes the pool the ledger opens itself. ``clock`` replaces the
    database's clock (tests only).
    """

    def __init__(  # each is a documented option
        self,
        conninfo: Any,
        *,
        integration: str = DEFAULT_INTEGRATION,
        schema: str = "signals_crm",
        max_connections: int = 4,
        clock: Clock | None = None,
        keep_runs: int = 1000,
    ) -> None:
        self._setup(schema, integration, clock, keep_runs)
        self._psycopg, pool_module = _import_psycopg()
        if isinstance(conninfo, str):
            self._pool = pool_module.ConnectionPool(
                conninfo,
                min_size=1,
                max_size=max_connections,
                open=False,
                kwargs={"autocommit": True},  # transactions are explicit (rule 1)
            )
            self._owns_pool = True
            try:
                self._pool.open(wait=True, timeout=30)
            except self._psycopg.Error as error:
                raise LedgerError(f"cannot open the PostgreSQL ledger: {error}") from error
            except pool_module.PoolTimeout as error:
                raise LedgerError(f"cannot connect to PostgreSQL: {error}") from error
        else:
            self._pool = conninfo
            self._owns_pool = False
        try:
            self._run(self._ops.migrate())
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<PostgresLedger {self._ops.s!r} {self._ops.i!r}{state}>"

    def for_integration(self, integration: str) -> PostgresLedger:
        """A ledger bound to ``integration`` on the same pool and schema."""
        self._ensure_open()
        return self._sibling(integration)

    def _run(self, op: _Op[R], *, read: bool = False) -> R:
        self._ensure_open()
        try:
            batch = _BATCH.get()
            if batch is not None:  # inside perform(): a savepoint of its transaction
                with batch.transaction():
                    return _drive_sync(batch, op)
            with self._pool.connection() as conn:
                if read and conn.autocommit:  # one statement: no BEGIN and COMMIT around it
                    return _drive_sync(conn, op)
                with conn.transaction():
                    return _drive_sync(conn, op)
        except self._psycopg.Error as error:
            raise LedgerError(f"PostgreSQL ledger failed: {error}") from error

    def perform(self, operations: Sequence[Operation], *, atomic: bool = False) -> list[Performed]:
        """Perform ``operations`` in one transaction on one connection, one commit for all;
        each one's result or error (a failed one is rolled back alone, to its savepoint).
        ``atomic``: all or nothing, the first error rolls the whole call back and is raised."""
        self._ensure_open()
        operations = list(operations)
        each = perform_all if atomic else perform_each
        batch = _BATCH.get()
        if batch is not None and atomic and operations:
            try:
                with batch.transaction():  # nested: one savepoint for all of them
                    return perform_all(self, operations)
            except self._psycopg.Error as error:
                raise LedgerError(f"PostgreSQL ledger failed: {error}") from error
        if batch is not None or not operations:
            return each(self, operations)
        try:
            with self._pool.connection() as conn, conn.transaction():
                token = _BATCH.set(conn)
                try:
                    return each(self, operations)
                finally:
                    _BATCH.reset(token)
        except self._psycopg.Error as error:
            raise LedgerError(f"PostgreSQL ledger failed: {error}") from error

    def close(self) -> None:
        """Close the ledger (and its pool, if it opened one); closing twice is harmless."""
        if not self._closed:
            self._closed = True
            if self._owns_pool:
                self._pool.close()

    def __enter__(self) -> Self:
        self._ensure_open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncPostgresLedger(_Base):
    """An :class:`~signals_crm.ledger.AsyncLedger` on PostgreSQL (psycopg's async driver).

    Build it with ``await AsyncPostgresLedger.open(conninfo_or_pool, ...)`` (same options as
    :class:`PostgresLedger`); it runs the very same operations.
    """

    _pool: Any

    @classmethod
    async def open(  # each is a documented option
        cls,
        conninfo: Any,
        *,
        integration: str = DEFAULT_INTEGRATION,
        schema: str = "signals_crm",
        max_connections: int = 4,
        clock: Clock | None = None,
        keep_runs: int = 1000,
    ) -> AsyncPostgresLedger:
        """Open the pool (unless given one), migrate the schema, and return the ledger."""
        self = object.__new__(cls)
        self._setup(schema, integration, clock, keep_runs)
        self._psycopg, pool_module = _import_psycopg()
        if isinstance(conninfo, str):
            self._pool = pool_module.AsyncConnectionPool(
                conninfo,
                min_size=1,
                max_size=max_connections,
                open=False,
                kwargs={"autocommit": True},  # transactions are explicit (rule 1)
            )
            self._owns_pool = True
            try:
                await self._pool.open(wait=True, timeout=30)
            except (self._psycopg.Error, pool_module.PoolTimeout) as error:
                raise LedgerError(f"cannot connect to PostgreSQL: {error}") from error
        else:
            self._pool = conninfo
            self._owns_pool = False
        try:
            await self._run(self._ops.migrate())
        except BaseException:
            await self.close()
            raise
        return self

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<AsyncPostgresLedger {self._ops.s!r} {self._ops.i!r}{state}>"

    def for_integration(self, integration: str) -> AsyncPostgresLedger:
        """A ledger bound to ``integration`` on the same pool and schema."""
        self._ensure_open()
        return self._sibling(integration)

    async def _run(self, op: _Op[R], *, read: bool = False) -> R:
        self._ensure_open()
        try:
            batch = _ABATCH.get()
            if batch is not None:  # inside perform(): a savepoint of its transaction
                async with batch.transaction():
                    return await _drive_async(batch, op)
            async with self._pool.connection() as conn:
                if read and conn.autocommit:  # one statement: no BEGIN and COMMIT around it
                    return await _drive_async(conn, op)
                async with conn.transaction():
                    return await _drive_async(conn, op)
        except self._psycopg.Error as error:
            raise LedgerError(f"PostgreSQL ledger failed: {error}") from error

    async def perform(
        self, operations: Sequence[Operation], *, atomic: bool = False
    ) -> list[Performed]:
        """Awaitable :meth:`PostgresLedger.perform`."""
        self._ensure_open()
        operations = list(operations)
        each = aperform_all if atomic else aperform_each
        batch = _ABATCH.get()
        if batch is not None and atomic and operations:
            try:
                async with batch.transaction():  # nested: one savepoint for all of them
                    return await aperform_all(self, operations)
            except self._psycopg.Error as error:
                raise LedgerError(f"PostgreSQL ledger failed: {error}") from error
        if batch is not None or not operations:
            return await each(self, operations)
        try:
            async with self._pool.connection() as conn, conn.transaction():
                token = _ABATCH.set(conn)
                try:
                    return await each(self, operations)
                finally:
                    _ABATCH.reset(token)
        except self._psycopg.Error as error:
            raise LedgerError(f"PostgreSQL ledger failed: {error}") from error

    async def close(self) -> None:
        """Close the ledger (and its pool, if it opened one); closing twice is harmless."""
        if not self._closed:
            self._closed = True
            if self._owns_pool:
                await self._pool.close()

    async def __aenter__(self) -> Self:
        self._ensure_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


# ------------------------------------------------------------------------------------------------
# Moving a SQLite ledger to PostgreSQL

_COPY_TABLES = {
    "due_syncs": (
        (
            "integration, conversation_id, due_at, state, attempts, last_error, outcome, "
            "conversation, lease_owner, lease_until, email, fence"
        ),
        "integration, conversation_id",
    ),
    "commands": (
        (
            "integration, key, conversation_id, kind, state, crm_id, reason, attempts, updated_at, "
            "payload_digest, owner, fence"
        ),
        "integration, key",
    ),
    "links": ("integration, email, crm_id, kind", "integration, email"),
    "runs": ("id, integration, recorded_at, summary", "id"),
}


def copy_from_sqlite(path: str | os.PathLike[str], target: PostgresLedger) -> dict[str, int]:
    """Copy every row of the SQLite ledger file at ``path`` (every integration) into the
    PostgreSQL ledger ``target``'s schema; returns the rows copied per table.

    Stop every worker first. The file is opened read-only (at the current schema: open it once
    with ``SQLiteLedger`` to upgrade it). Both stores share the column layout, so rows move
    unchanged, fencing tokens and all. Rows already present are left as they are, so running
    it again after a failure is safe. Each table is copied in one transaction.
    """
    with SQLiteLedger(path, read_only=True) as source:
        conn = source._connection()  # noqa: SLF001  # this package's own store
        copied: dict[str, int] = {}
        for table, (columns, key) in _COPY_TABLES.items():
            rows = conn.execute(f"SELECT {columns} FROM {table}").fetchall()  # noqa: S608
            width = len(columns.split(","))
            placeholders = ", ".join(["%s"] * width)
            statement = (
                f"INSERT INTO {target.schema}.{table} ({columns}) VALUES ({placeholders}) "  # noqa: S608
                f"ON CONFLICT ({key}) DO NOTHING"
            )
            try:
                pool = target._pool  # noqa: SLF001  # this module's own class
                with pool.connection() as pg, pg.transaction(), pg.cursor() as cursor:
                    cursor.executemany(statement, rows)
                    if table == "runs":
                        cursor.execute(
                            f"SELECT setval(pg_get_serial_sequence('{target.schema}.runs', 'id'), "  # noqa: S608
                            f"greatest((SELECT max(id) FROM {target.schema}.runs), 1))"
                        )
            except target._psycopg.Error as error:  # noqa: SLF001  # this module's own class
                raise LedgerError(f"copying {table} to PostgreSQL failed: {error}") from error
            copied[table] = len(rows)
    return copied
