"""``LedgerBrowser``: read-only, keyset-paged, indexed queries over a SQLite or PostgreSQL ledger
(the tests taking ``console_store`` run on both)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signals_crm.exceptions import ConfigurationError, LedgerError
from signals_crm.ledger import SQLiteLedger
from signals_crm.ledger.browse import MAX_PAGE, Cursor, LedgerBrowser, SyncFilter, View
from signals_crm.ledger.requeue import requeue_dead


def test_a_missing_or_foreign_file_is_refused_and_never_created(tmp_path):
    """No file appears for a typo; a SQLite file that is not a ledger is refused."""
    with pytest.raises(LedgerError, match="no ledger"):
        LedgerBrowser(tmp_path / "typo.sqlite3")
    assert list(tmp_path.iterdir()) == []
    other = tmp_path / "other.sqlite3"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(LedgerError, match="not a signals_crm ledger"):
        LedgerBrowser(other)


def test_counts_put_each_sync_in_one_view(console_store):
    """Due, in flight, scheduled, done and dead add up to every sync, each counted once."""
    with LedgerBrowser(console_store.source) as browser:
        counts = browser.counts(datetime.now(UTC))
        assert {v.value: counts[v] for v in View} == {
            "due": 60,
            "in_flight": 4,
            "scheduled": 10,
            "done": 20,
            "dead": 3,
        }
        assert counts.total == 97
        assert browser.integrations() == ["default"]


def test_the_browser_cannot_write(console_ledger):
    """The connection is read-only: SQLite itself refuses a write through it."""
    with (
        LedgerBrowser(console_ledger) as browser,
        browser._read() as conn,
        pytest.raises(sqlite3.OperationalError, match="readonly"),
    ):
        conn.execute("DELETE FROM due_syncs")


def test_pages_are_ordered_and_dead_letters_newest_first(console_store):
    """Pending views go oldest first; done and dead newest first; cursors continue exactly."""
    now = datetime.now(UTC)
    with LedgerBrowser(console_store.source) as browser:
        first = browser.page(View.DUE, now, limit=7)
        assert [r.conversation_id for r in first.rows] == [f"due-{i:03}" for i in range(7)]
        rest = browser.page(View.DUE, now, after=first.next_cursor, limit=MAX_PAGE)
        assert rest.rows[0].conversation_id == "due-007"
        assert rest.next_cursor is None
        dead = browser.page(View.DEAD, now)
        keys = [(r.due_at, r.conversation_id) for r in dead.rows]
        assert keys == sorted(keys, reverse=True)
        flying = browser.page(View.IN_FLIGHT, now)
        assert {r.lease_owner for r in flying.rows} == {"worker-a:4242"}
        assert all(r.view(now) is View.IN_FLIGHT for r in flying.rows)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=25)
@given(limit=st.integers(1, 40))
def test_walking_any_page_size_lists_each_sync_once(console_store, limit):
    """Whatever the page size, following cursors yields every sync of a view exactly once
    (the ledger is only read, so sharing the fixture between examples is sound)."""
    now = datetime.now(UTC)
    with LedgerBrowser(console_store.source) as browser:
        for view in View:
            seen, cursor = [], None
            while True:
                page = browser.page(view, now, after=cursor, limit=limit)
                seen.extend(r.conversation_id for r in page.rows)
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
            assert len(seen) == len(set(seen)) == browser.counts(now)[view]


def test_filters_narrow_and_bad_input_is_named(console_store):
    """Email, id, window and error filters use what is stored; bad values name the field."""
    now = datetime.now(UTC)
    with LedgerBrowser(console_store.source) as browser:
        by_email = browser.page(View.DUE, now, filters=SyncFilter(email="  Due3@X.test "))
        assert [r.conversation_id for r in by_email.rows] == ["due-003"]
        by_id = browser.page(View.DONE, now, filters=SyncFilter(conversation_id="done-05"))
        assert [r.outcome for r in by_id.rows] == ["created"]
        first = browser.page(View.DUE, now, limit=3).rows
        window = SyncFilter(due_from=first[1].due_at, due_until=first[2].due_at)
        assert [r.conversation_id for r in browser.page(View.DUE, now, filters=window).rows] == [
            "due-001",
            "due-002",
        ]
        errors = browser.page(View.DEAD, now, filters=SyncFilter(error_contains="LOCK_ROW"))
        assert [r.conversation_id for r in errors.rows] == ["dead-1"]
    problems = [
        (lambda: SyncFilter(email="x" * 400), "email"),
        (lambda: SyncFilter(conversation_id="\ud800"), "conversation"),
        (
            lambda: SyncFilter(
                due_from=datetime(2026, 1, 2, tzinfo=UTC),
                due_until=datetime(2026, 1, 1, tzinfo=UTC),
            ),
            "due_until",
        ),
        (lambda: SyncFilter(due_from=datetime(2026, 1, 2)), "due_from"),  # noqa: DTZ001
        (lambda: Cursor.parse("12x.abc"), "after"),
        (lambda: Cursor.parse("99999999999999999999.a"), "after"),
    ]
    for build, path in problems:
        with pytest.raises(ConfigurationError) as caught:
            build()
        assert caught.value.paths == (path,)
    with LedgerBrowser(console_store.source) as browser:
        for limit in (0, MAX_PAGE + 1, True):
            with pytest.raises(ConfigurationError, match="limit"):
                browser.page(View.DUE, now, limit=limit)
        with pytest.raises(ConfigurationError, match="view"):
            browser.page("stuck", now)


def test_a_cursor_survives_its_text_form():
    """A page cursor's token parses back to the same cursor, ids with dots included."""
    cursor = Cursor(datetime(2026, 11, 20, 12, 0, 0, 123456, tzinfo=UTC), "c.1/2 é")
    assert Cursor.parse(cursor.token()) == cursor


def test_requeue_moves_only_dead_letters_and_replans_their_failed_writes(console_ledger):
    """Dead → pending (attempts 0, due then, failed writes planned); others untouched."""
    due = datetime.now(UTC) + timedelta(seconds=1)
    with SQLiteLedger(console_ledger) as ledger:
        assert sorted(requeue_dead(ledger, ["dead-0", "due-001", "done-01", "nope"], due)) == [
            "dead-0"
        ]
        sync = ledger.get_due("dead-0")
        assert (sync.state, sync.attempts, sync.due_at) == ("pending", 0, due)
        assert sync.last_error.startswith("FIELD_CUSTOM_VALIDATION_EXCEPTION")
        command = ledger.get_command("dead-0:person")
        assert (command.state, command.reason) == ("planned", None)
        assert ledger.get_due("done-01").state == "done"
        assert requeue_dead(ledger, ["dead-0"], due) == []
        assert requeue_dead(ledger, [], due) == []


def test_counts_up_to_a_limit_say_at_least(console_ledger):
    """A limited count stops at the limit and marks the view; under it counts are exact."""
    now = datetime.now(UTC)
    with LedgerBrowser(console_ledger) as browser:
        limited = browser.counts(now, limit=15)
        assert limited[View.DONE] == 15
        assert limited.shown(View.DONE) == "15+"
        assert limited.shown(View.DEAD) == "3"
        assert limited.at_least == frozenset({View.DUE, View.DONE})
        assert limited[View.IN_FLIGHT] == 4
        exact = browser.counts(now)
        assert exact.at_least == frozenset()
        assert exact.shown(View.DUE) == "60"
        with pytest.raises(ConfigurationError, match="limit"):
            browser.counts(now, limit=0)
