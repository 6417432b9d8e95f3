"""The console and its browser on PostgreSQL and with many tenants: one integration's pages
never show another's rows; in-flight pages follow the lease ends."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from _console_helpers import HEADER, OPERATOR, operator_from_header, serving

from signals_crm.console import create_console
from signals_crm.core.model import Conversation, Visitor
from signals_crm.exceptions import LedgerError
from signals_crm.ledger import DueState
from signals_crm.ledger.browse import LedgerBrowser, View

AUTH = {HEADER: OPERATOR}


def _conversation(cid: str, closed: datetime) -> Conversation:
    return Conversation(
        id=cid, closed_at=closed, lead_score=3, visitor=Visitor(email=f"{cid}@g.test")
    )


def _add_globex(ledger: object) -> None:
    """A second integration in the same ledger: two due syncs and a dead letter."""
    past = datetime.now(UTC) - timedelta(days=1)
    globex = ledger.for_integration("globex")  # type: ignore[attr-defined]
    globex.schedule_many((_conversation(f"globex-{i}", past), past) for i in range(3))
    globex.dead_letter("globex-2", "INVALID_FIELD: globex only")


def test_pages_of_one_integration_never_show_anothers_rows(console_store):
    """Two integrations in one ledger (SQLite and PostgreSQL): the start page counts each;
    every view, filter, conversation page and retry of one is blind to the other's rows."""
    with console_store.open() as ledger:
        _add_globex(ledger)
    app = create_console(console_store.source, authenticate=operator_from_header)
    with serving(app) as base, httpx.Client(base_url=base, timeout=30) as client:
        home = client.get("/", headers=AUTH).text
        rows = dict(re.findall(r"<tr><td><a[^>]*>(\w+)</a></td>(.*?)</tr>", home))
        assert sorted(rows) == ["default", "globex"]
        assert re.findall(r">([\d,]+)</a>", rows["globex"]) == ["2", "0", "0", "0", "1"]
        assert re.findall(r">([\d,]+)</a>", rows["default"]) == ["60", "4", "10", "20", "3"]
        for view in View:
            mine = client.get(f"/i/default/syncs?view={view.value}&limit=500", headers=AUTH)
            assert mine.status_code == 200
            assert "globex" not in mine.text.replace("/i/globex", "")
            theirs = client.get(f"/i/globex/syncs?view={view.value}&limit=500", headers=AUTH).text
            assert not re.search(r"conversations/(due|fly|later|done|dead)-", theirs)
        due = client.get("/i/globex/syncs?view=due", headers=AUTH).text
        assert re.findall(r'conversations/(globex-\d)"', due) == ["globex-0", "globex-1"]
        email = client.get("/i/default/syncs?view=due&email=globex-0@g.test", headers=AUTH).text
        assert "conversations/globex-0" not in email
        assert "No sync matches." in email
        assert client.get("/i/default/conversations/globex-0", headers=AUTH).status_code == 404
        assert client.get("/i/globex/conversations/due-001", headers=AUTH).status_code == 404
        assert (
            client.get("/i/default/conversations/globex-2/retry", headers=AUTH).status_code == 404
        )
        confirm = client.get("/i/globex/conversations/globex-2/retry", headers=AUTH)
        token = re.search(r'name="csrf" value="([^"]+)"', confirm.text).group(1)
        path = "/i/globex/conversations/globex-2/retry"
        done = client.post(path, headers=AUTH, data={"csrf": token}, follow_redirects=False)
        assert done.status_code == 303
    with console_store.open() as ledger:
        assert ledger.for_integration("globex").get_due("globex-2").state is DueState.PENDING
        assert ledger.get_due("dead-0").state is DueState.DEAD  # the other tenant's: untouched
        assert ledger.get_due("globex-2") is None


def test_in_flight_pages_follow_the_lease_ends(console_store):
    """In flight lists the leases nearest their end first (then by id); its cursors walk every
    leased sync once, on both stores."""
    past = datetime.now(UTC) - timedelta(days=2)
    with console_store.open() as ledger:
        ledger.schedule_many(
            (_conversation(f"soon-{i}", past), past - timedelta(minutes=90)) for i in range(3)
        )
        claimed = ledger.claim(None, 3, owner="worker-b:7", lease=timedelta(minutes=30))
        assert sorted(s.conversation_id for s in claimed) == ["soon-0", "soon-1", "soon-2"]
    now = datetime.now(UTC)
    with LedgerBrowser(console_store.source) as browser:
        seen, cursor = [], None
        while True:
            page = browser.page(View.IN_FLIGHT, now, after=cursor, limit=2)
            seen.extend(page.rows)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert [r.conversation_id for r in seen] == [
            "soon-0",
            "soon-1",
            "soon-2",
            "fly-0",
            "fly-1",
            "fly-2",
            "fly-3",
        ]
        keys = [(r.lease_until, r.conversation_id) for r in seen]
        assert keys == sorted(keys)
        assert browser.counts(now)[View.IN_FLIGHT] == 7


def test_the_postgres_browser_only_reads_and_never_creates(postgres_database):
    """On PostgreSQL the browser's transactions are read-only, and a database without a ledger
    is refused without creating its schema."""
    import psycopg

    from signals_crm.ledger.postgres import PostgresLedger

    with pytest.raises(LedgerError, match="no signals_crm ledger"):
        LedgerBrowser(postgres_database)
    with psycopg.connect(postgres_database) as conn:
        found = conn.execute(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'signals_crm'"
        ).fetchone()
    assert found == (0,)
    with PostgresLedger(postgres_database) as ledger:
        _add_globex(ledger)
        with LedgerBrowser(ledger, integration="globex") as browser:  # the host's own pool
            assert browser.page(View.DEAD, datetime.now(UTC)).rows[0].conversation_id == "globex-2"
            with pytest.raises(LedgerError, match="read-only"):
                browser._store.query("DELETE FROM signals_crm.due_syncs", ())
        assert ledger.for_integration("globex").stats().syncs[DueState.PENDING] == 2  # pool open
