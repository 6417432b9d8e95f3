"""What only the PostgreSQL ledgers promise: the database's clock, concurrent claimers that
never share a sync, racing first writes of which one wins, and the async twin."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ledger_clock import T0

from _services import import_or_unavailable
from signals_crm.core.model import Conversation, Visitor
from signals_crm.exceptions import InvalidTransitionError, LedgerError
from signals_crm.ledger import CommandRecord, CommandState, DueState

postgres = import_or_unavailable("signals_crm.ledger.postgres", "postgres")
LEASE = timedelta(minutes=10)


def conv(cid: str, email: str | None = None) -> Conversation:
    """A closed conversation, due long ago."""
    visitor = Visitor(email=email or f"{cid}@x.io")
    return Conversation(cid, closed_at=T0, lead_score=2, visitor=visitor)


def test_leases_run_on_the_databases_clock(postgres_schema: tuple[str, str]) -> None:
    """Without an injected clock, lease ends come from the database's now(), not the caller."""
    conninfo, schema = postgres_schema
    with postgres.PostgresLedger(conninfo, schema=schema) as ledger:
        ledger.schedule(conv("c1"), T0)
        before = datetime.now(UTC)
        skewed = datetime.now(UTC) - timedelta(days=3)  # a caller far behind
        (claimed,) = ledger.claim(skewed + timedelta(days=3), 10, owner="w", lease=LEASE)
        after = datetime.now(UTC)
        assert claimed.lease_until is not None
        slack = timedelta(seconds=5)  # the server and this process share the machine's clock
        assert before + LEASE - slack <= claimed.lease_until <= after + LEASE + slack
        assert ledger.claim(limit=10, owner="other", lease=LEASE) == []


def test_concurrent_claimers_share_the_work_exactly(postgres_schema: tuple[str, str]) -> None:
    """Four threads, each with its own pool, claim in small batches until nothing is left:
    every sync is claimed exactly once (FOR UPDATE SKIP LOCKED)."""
    conninfo, schema = postgres_schema
    with postgres.PostgresLedger(conninfo, schema=schema) as setup:
        setup.schedule_many((conv(f"c{i:03}"), T0) for i in range(300))
    taken: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def work(name: str) -> None:
        try:
            with postgres.PostgresLedger(conninfo, schema=schema, max_connections=1) as mine:
                got = taken.setdefault(name, [])
                while batch := mine.claim(limit=7, owner=name, lease=LEASE):
                    got.extend(s.conversation_id for s in batch)
                    mine.complete([s.conversation_id for s in batch], "created")
        except BaseException as exc:  # noqa: BLE001  # re-raised by the test below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    every = [cid for got in taken.values() for cid in got]
    assert sorted(every) == [f"c{i:03}" for i in range(300)]
    with postgres.PostgresLedger(conninfo, schema=schema) as check:
        assert check.stats().syncs[DueState.DONE] == 300


def test_a_claim_under_way_locks_only_what_it_takes(postgres_schema: tuple[str, str]) -> None:
    """While one worker's claim of 2 from a backlog of 40 is still in its transaction, another
    worker claims the other 38: the first one read and locked (rows and email locks) only the
    syncs it took, in claim order, not the tenant's whole backlog."""
    conninfo, schema = postgres_schema
    psycopg = import_or_unavailable("psycopg", "postgres")
    with postgres.PostgresLedger(conninfo, schema=schema) as ledger:
        ledger.schedule_many((conv(f"c{i:02}"), T0) for i in range(40))
        with psycopg.connect(conninfo, autocommit=True) as admin:  # planner statistics
            admin.execute(f"ANALYZE {schema}.due_syncs")
        with psycopg.connect(conninfo) as first:  # a transaction left open after the claim
            mine = postgres._drive_sync(first, ledger._ops.claim(limit=2, owner="a", lease=LEASE))
            assert [s.conversation_id for s in mine] == ["c00", "c01"]
            others = ledger.claim(limit=100, owner="b", lease=LEASE)
            assert [s.conversation_id for s in others] == [f"c{i:02}" for i in range(2, 40)]
            first.commit()
        assert ledger.claim(limit=100, owner="c", lease=LEASE) == []


def test_racing_first_sends_of_one_key_have_one_winner(postgres_schema: tuple[str, str]) -> None:
    """Threads recording SENT for a key nobody has yet: exactly one succeeds, every other is
    refused as an invalid transition (the compare-and-set holds for new keys too)."""
    conninfo, schema = postgres_schema
    with postgres.PostgresLedger(conninfo, schema=schema) as setup:
        setup.schedule(conv("c1"), T0)
    outcomes: list[str] = []
    start = threading.Barrier(4)

    def send(name: str) -> None:
        with postgres.PostgresLedger(conninfo, schema=schema, max_connections=1) as mine:
            record = CommandRecord(
                "c1:person", "c1", "create_person", CommandState.SENT, T0, owner=name
            )
            start.wait(timeout=30)
            try:
                mine.record([record])
                outcomes.append("won")
            except InvalidTransitionError:
                outcomes.append("refused")

    threads = [threading.Thread(target=send, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["refused", "refused", "refused", "won"]


def test_a_newer_schema_is_refused(postgres_schema: tuple[str, str]) -> None:
    """A schema written by a newer version of signals_crm is refused, not misread."""
    conninfo, schema = postgres_schema
    postgres.PostgresLedger(conninfo, schema=schema).close()
    psycopg = import_or_unavailable("psycopg", "postgres")
    with psycopg.connect(conninfo, autocommit=True) as raw:
        raw.execute(f"UPDATE {schema}.ledger_schema SET version = version + 1")  # noqa: S608
    with pytest.raises(LedgerError, match="upgrade signals_crm"):
        postgres.PostgresLedger(conninfo, schema=schema)


@pytest.mark.parametrize("version", range(1, postgres.SCHEMA_VERSION))
def test_an_older_schema_is_migrated_forward(
    postgres_schema: tuple[str, str], version: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A schema an older version wrote (every earlier step of the ladder) is brought to this
    version on open, its rows kept, the newer indexes built."""
    conninfo, schema = postgres_schema
    with monkeypatch.context() as older:
        older.setattr(postgres, "MIGRATIONS", postgres.MIGRATIONS[:version])
        older.setattr(postgres, "SCHEMA_VERSION", version)
        with postgres.PostgresLedger(conninfo, schema=schema) as ledger:
            ledger.schedule_many([(conv("c1"), T0), (conv("c2"), T0)])
    with postgres.PostgresLedger(conninfo, schema=schema) as ledger:
        claimed = ledger.claim(limit=10, owner="w", lease=LEASE)
        assert [s.conversation_id for s in claimed] == ["c1", "c2"]
    psycopg = import_or_unavailable("psycopg", "postgres")
    with psycopg.connect(conninfo) as raw:
        (stored,) = raw.execute(f"SELECT version FROM {schema}.ledger_schema").fetchall()  # noqa: S608
        indexes = raw.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = %s", (schema,)
        ).fetchall()
    assert stored == (postgres.SCHEMA_VERSION,)
    assert ("due_syncs_leased_email",) in indexes


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # psycopg's async driver is asyncio's
async def test_the_async_ledger_runs_the_same_operations(
    postgres_schema: tuple[str, str],
) -> None:
    """AsyncPostgresLedger schedules, claims with fences, records and counts as the blocking
    one does, on psycopg's async driver."""
    conninfo, schema = postgres_schema
    ledger = await postgres.AsyncPostgresLedger.open(conninfo, schema=schema)
    async with ledger:
        await ledger.schedule_many([(conv("c1"), T0), (conv("c2"), T0)])
        claimed = await ledger.claim(limit=10, owner="w", lease=LEASE)
        assert [s.fence for s in claimed] == [1, 1]
        await ledger.record(
            [CommandRecord("c1:person", "c1", "create_person", CommandState.SENT, T0, fence=1)]
        )
        fences = {s.conversation_id: s.fence for s in claimed}
        assert await ledger.complete(fences, "created", fences=fences) == 2
        other = ledger.for_integration("acme")
        assert await other.get_due("c1") is None
        stats = await ledger.stats()
        assert (stats.syncs[DueState.DONE], stats.commands[CommandState.SENT]) == (2, 1)
        run = await ledger.record_run({"counts": {"created": 2}})
        assert [r.id for r in await ledger.recent_runs(5)] == [run.id]


def test_a_sqlite_ledger_moves_to_postgres(
    postgres_schema: tuple[str, str], tmp_path: Path
) -> None:
    """copy_from_sqlite moves every integration's syncs, commands, links and runs unchanged;
    the moved ledger claims on with the next fence, and a second copy changes nothing."""
    from signals_crm.core.model import PersonKind
    from signals_crm.ledger import SQLiteLedger

    path = tmp_path / "ledger.db"
    with SQLiteLedger(path) as source:
        acme = source.for_integration("acme")
        source.schedule_many([(conv("c1"), T0), (conv("c2"), T0)])
        acme.schedule(conv("c1", "acme@x.io"), T0)
        (claimed,) = acme.claim(T0, 1, owner="w", until=T0 + LEASE)
        source.record([CommandRecord("c1:person", "c1", "create_person", CommandState.SENT, T0)])
        source.complete(["c2"], "created")
        acme.link("acme@x.io", "00Q1", PersonKind.LEAD)
        source.record_run({"counts": {"created": 1}})
    conninfo, schema = postgres_schema
    with postgres.PostgresLedger(conninfo, schema=schema) as target:
        copied = postgres.copy_from_sqlite(path, target)
        assert copied == {"due_syncs": 3, "commands": 1, "links": 1, "runs": 1}
        assert postgres.copy_from_sqlite(path, target) == copied  # idempotent
        stats = target.stats()
        assert (stats.syncs[DueState.PENDING], stats.syncs[DueState.DONE]) == (1, 1)
        assert stats.commands[CommandState.SENT] == 1
        moved = target.for_integration("acme")
        assert moved.links_for(["acme@x.io"])["acme@x.io"].crm_id == "00Q1"
        (again,) = moved.claim(limit=5, owner="w2", lease=LEASE)
        assert again.fence == claimed.fence + 1
        assert [r.summary for r in target.recent_runs(5)] == [{"counts": {"created": 1}}]
        later = target.record_run({"counts": {}})
        assert later.id > target.recent_runs(5)[1].id


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # psycopg's async driver is asyncio's
async def test_the_async_ledger_claims_optimistically(postgres_schema: tuple[str, str]) -> None:
    """AsyncPostgresLedger's claimable / claim_unchanged / perform(atomic=True), on the
    database's clock: a claim by another worker between the read and the commit refuses the
    whole commit; an unchanged read is claimed with the next fences."""
    from signals_crm.exceptions import ClaimRefusedError
    from signals_crm.ledger import Operation

    conninfo, schema = postgres_schema
    ledger = await postgres.AsyncPostgresLedger.open(conninfo, schema=schema)
    async with ledger:
        await ledger.schedule_many([(conv("c1"), T0), (conv("c2"), T0)])
        seen = {s.conversation_id: s.fence for s in await ledger.claimable(limit=10, owner="a")}
        assert seen == {"c1": 0, "c2": 0}
        await ledger.claim(limit=1, owner="b", lease=LEASE)
        record = CommandRecord("c2:person", "c2", "create_person", CommandState.SENT, T0, fence=1)
        claim = Operation("claim_unchanged", (seen,), {"owner": "a", "lease": LEASE})
        with pytest.raises(ClaimRefusedError):
            await ledger.perform([claim, Operation("record", ([record],))], atomic=True)
        assert await ledger.get_command("c2:person") is None
        (claimed,) = await ledger.claim_unchanged({"c2": 0}, owner="a", lease=LEASE)
        assert (claimed.fence, claimed.lease_owner) == (1, "a")
        assert claimed.lease_until is not None
        assert claimed.lease_until > datetime.now(UTC) + LEASE - timedelta(seconds=5)


def test_an_optimistic_claim_meets_a_claim_under_way_of_the_same_email(
    postgres_schema: tuple[str, str],
) -> None:
    """Another worker's claim of another conversation of the same visitor, still in its
    transaction (its lease not visible yet), holds the email's advisory lock: the optimistic
    claim is refused, nothing written; a sync of another email is claimed meanwhile."""
    from signals_crm.exceptions import ClaimRefusedError

    conninfo, schema = postgres_schema
    psycopg = import_or_unavailable("psycopg", "postgres")
    with postgres.PostgresLedger(conninfo, schema=schema) as ledger:
        ledger.schedule_many(
            [(conv("c0", "ann@x.io"), T0), (conv("c1", "ann@x.io"), T0), (conv("c2"), T0)]
        )
        ledger.claim(limit=1, owner="z", lease=LEASE)  # c0 leased and given back: fence 1
        ledger.release(["c0"], "z")
        seen = {s.conversation_id: s.fence for s in ledger.claimable(limit=10, owner="a")}
        assert seen == {"c0": 1, "c1": 0, "c2": 0}
        with psycopg.connect(conninfo) as first:  # b's claim of c0, not committed yet
            taken = postgres._drive_sync(first, ledger._ops.claim(limit=1, owner="b", lease=LEASE))
            assert [s.conversation_id for s in taken] == ["c0"]
            with pytest.raises(ClaimRefusedError) as info:
                ledger.claim_unchanged({"c1": 0}, owner="a", lease=LEASE)
            assert info.value.conversation_ids == ("c1",)
            (other,) = ledger.claim_unchanged({"c2": 0}, owner="a", lease=LEASE)
            assert other.fence == 1
            first.commit()
        stored = ledger.get_due("c1")
        assert stored is not None
        assert (stored.lease_owner, stored.fence) == (None, 0)


def test_an_optimistic_claim_never_waits_for_a_row_under_claim(
    postgres_schema: tuple[str, str],
) -> None:
    """A row another transaction holds (a claim under way) is contention: the optimistic
    claim is refused at once (SKIP LOCKED), not left waiting, so two optimistic claimers
    cannot deadlock; once the other commits it is refused by the fence as well."""
    from signals_crm.exceptions import ClaimRefusedError

    conninfo, schema = postgres_schema
    psycopg = import_or_unavailable("psycopg", "postgres")
    with postgres.PostgresLedger(conninfo, schema=schema) as ledger:
        no_email = [Conversation(cid, closed_at=T0, lead_score=2) for cid in ("c1", "c2")]
        ledger.schedule_many([(c, T0) for c in no_email])  # no email lock: the rows alone
        seen = {s.conversation_id: s.fence for s in ledger.claimable(limit=10, owner="a")}
        outcome: list[BaseException | None] = []

        def optimistic() -> None:
            try:
                ledger.claim_unchanged(seen, owner="a", lease=LEASE)
            except BaseException as error:  # noqa: BLE001  # handed to the test's thread
                outcome.append(error)
            else:
                outcome.append(None)

        with psycopg.connect(conninfo) as first:  # b's claim of c1, not committed yet
            postgres._drive_sync(first, ledger._ops.claim(limit=1, owner="b", lease=LEASE))
            worker = threading.Thread(target=optimistic)
            worker.start()
            worker.join(timeout=10)
            waited = worker.is_alive()
            first.commit()
        worker.join()
        assert not waited
        assert isinstance(outcome[0], ClaimRefusedError)
        assert outcome[0].conversation_ids == ("c1",)
        stored = ledger.get_due("c2")
        assert stored is not None
        assert (stored.lease_owner, stored.fence) == (None, 0)
        with pytest.raises(ClaimRefusedError):
            ledger.claim_unchanged(seen, owner="a", lease=LEASE)


@pytest.mark.parametrize("optimistic", [False, True], ids=["claim", "claim_unchanged"])
def test_a_lease_on_the_email_committed_during_a_claim_is_seen(
    postgres_schema: tuple[str, str], optimistic: bool
) -> None:
    """Another worker's lease on the same visitor email, committed after this claim read its
    candidates but before it leased them (the candidates' snapshot cannot see it), still keeps
    the other conversation of that email out of this claim: two workers never hold two
    conversations of one visitor. A sync of another email is claimed as usual."""
    from signals_crm._drive import drive

    conninfo, schema = postgres_schema
    psycopg = import_or_unavailable("psycopg", "postgres")
    with postgres.PostgresLedger(conninfo, schema=schema) as ledger:
        later = T0 + timedelta(hours=1)  # c0 is not due for b's claim: never its candidate
        ledger.schedule_many(
            [(conv("c0", "ann@x.io"), later), (conv("c1", "ann@x.io"), T0), (conv("c2"), T0)]
        )
        # Worker a leases c0 (ann), committed between b's two statements.
        until = int((datetime.now(UTC) + timedelta(hours=1)).timestamp() * 1_000_000)
        steal = (
            f"UPDATE {schema}.due_syncs SET lease_owner = 'a', "  # noqa: S608  # test schema
            f"lease_until = {until}, fence = fence + 1 WHERE conversation_id = 'c0'"
        )
        if optimistic:
            op = ledger._ops.claim_unchanged({"c1": 0, "c2": 0}, owner="b", lease=LEASE, now=T0)
        else:
            op = ledger._ops.claim(T0, limit=2, owner="b", lease=LEASE)
        statements: list[str] = []
        with psycopg.connect(conninfo) as mine, mine.cursor() as cursor:

            def execute(statement: Any) -> list[tuple[Any, ...]]:
                if statements:  # after the candidates' statement: a's claim commits
                    with psycopg.connect(conninfo, autocommit=True) as other:
                        other.execute(steal)
                statements.append(statement.sql)
                cursor.execute(statement.sql, statement.params)
                return cursor.fetchall() if cursor.description is not None else []

            if optimistic:
                from signals_crm.exceptions import ClaimRefusedError

                with pytest.raises(ClaimRefusedError) as info:
                    drive(op, execute)
                assert info.value.conversation_ids == ("c1",)
                mine.rollback()
            else:
                taken = drive(op, execute)
                mine.commit()
                assert [s.conversation_id for s in taken] == ["c2"]
        assert len(statements) >= 2
        c1 = ledger.get_due("c1")
        assert c1 is not None
        assert (c1.lease_owner, c1.fence) == (None, 0)
        c0 = ledger.get_due("c0")
        assert c0 is not None
        assert c0.lease_owner == "a"
