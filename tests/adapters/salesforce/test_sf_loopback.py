"""The local Salesforce over a real loopback socket: our adapter, a plain client, the CLI entry."""

from __future__ import annotations

import json
import threading
import urllib.parse
import urllib.request

import httpx
import pytest

from signals_crm.adapters.salesforce import ClientCredentialsFlow, SalesforceAdapter, StaticToken
from signals_crm.core.crm import PersonByEmail, PersonWrite
from signals_crm.core.model import PersonKind
from signals_crm.exceptions import TransportError
from signals_crm.testing.salesforce import (
    LOCAL_CLIENT_ID,
    LOCAL_CLIENT_SECRET,
    LocalSalesforce,
    SalesforceBackdoor,
    serve,
)


def _write(email: str) -> PersonWrite:
    return PersonWrite(
        key=email, kind=PersonKind.LEAD, email=email, fields={"LastName": "L", "Company": "C"}
    )


def test_adapter_over_loopback_with_client_credentials() -> None:
    """The adapter logs in and syncs over real HTTP on 127.0.0.1."""
    org = LocalSalesforce()
    org.register_client("svc", "sec", client_credentials=True)
    with org.serve() as url, httpx.Client(timeout=5) as http:
        assert url.startswith("http://127.0.0.1:")
        adapter = SalesforceAdapter(
            http, ClientCredentialsFlow(client_id="svc", client_secret="sec", login_url=url)
        )
        (created,) = adapter.create_people([_write("Loop+Back@x.com")])
        assert created.ok
        (found,) = adapter.find_people(["loop+back@X.com"])
        assert [r.id for r in found] == [created.id]
        assert adapter.api_usage is not None
        assert adapter.api_usage.used == 2  # one create, one composite of both lookups


def test_dropped_connection_over_loopback() -> None:
    """commit-then-drop closes the socket: the write lands, the client sees a TransportError."""
    org = LocalSalesforce()
    org.register_client("svc", "sec", client_credentials=True)
    with org.serve() as url, httpx.Client(timeout=5) as http:
        adapter = SalesforceAdapter(
            http, ClientCredentialsFlow(client_id="svc", client_secret="sec", login_url=url)
        )
        adapter.list_users()
        org.schedule_fault("drop_after_commit")
        with pytest.raises(TransportError) as raised:
            adapter.create_people([_write("dropped@x.com")])
        assert raised.value.maybe_sent is True
        lead_ids = SalesforceBackdoor(org).people_with_email("dropped@x.com")
        assert len(lead_ids) == 1
        reconciled = adapter.reconcile([PersonByEmail(email="dropped@x.com", kind=PersonKind.LEAD)])
        assert reconciled == lead_ids


def test_serve_entry_point_speaks_to_any_http_client() -> None:
    """serve() (behind `signals-crm sandbox salesforce`) announces how to connect, and a plain
    urllib client can get a token and query."""
    lines: list[str] = []
    ready = threading.Event()
    stop = threading.Event()

    def announce(line: str) -> None:
        lines.append(line)
        if line.strip().startswith("access token"):
            ready.set()

    thread = threading.Thread(
        target=serve, kwargs={"port": 0, "announce": announce, "stop": stop}, daemon=True
    )
    thread.start()
    try:
        assert ready.wait(5)
        base = lines[0].rsplit(" ", 1)[1]
        assert base.startswith("http://127.0.0.1:")
        form = urllib.parse.urlencode(
            {
                "grant_type": "client_credentials",
                "client_id": LOCAL_CLIENT_ID,
                "client_secret": LOCAL_CLIENT_SECRET,
            }
        ).encode()
        with urllib.request.urlopen(f"{base}/services/oauth2/token", data=form, timeout=5) as r:  # noqa: S310  # loopback only
            token = json.load(r)
        assert token["instance_url"] == base
        query = urllib.parse.quote_plus("SELECT Id, Name FROM User")
        request = urllib.request.Request(  # noqa: S310  # loopback only
            f"{base}/services/data/v61.0/query?q={query}",
            headers={"Authorization": f"Bearer {token['access_token']}"},
        )
        with urllib.request.urlopen(request, timeout=5) as r:  # noqa: S310  # loopback only
            body = json.load(r)
            assert r.headers["Sforce-Limit-Info"] == "api-usage=1/15000"
        assert body["totalSize"] == 1
        assert body["records"][0]["Name"] == "Integration User"
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


def test_late_commit_fault_commits_after_the_client_gave_up() -> None:
    """A held write times out at the client and commits once the hold ends; reads are never
    held (Salesforce keeps processing a request up to its 10-minute API timeout)."""
    release = threading.Event()
    org = LocalSalesforce(sleep=lambda _: release.wait(10))
    org.faults.late_commit = 1.0
    door = SalesforceBackdoor(org)
    with org.serve() as url, httpx.Client(timeout=0.3) as http:
        adapter = SalesforceAdapter(http, StaticToken(org.issue_token(), url))
        assert adapter.find_people(["late@x.com"]) == [()]  # a read: answered at once
        with pytest.raises(TransportError) as raised:
            adapter.create_people([_write("late@x.com")])
        assert raised.value.maybe_sent is True
        assert door.people_with_email("late@x.com") == []  # not committed yet
        release.set()
        for _ in range(200):  # the held request commits (bounded wait)
            if door.people_with_email("late@x.com"):
                break
            threading.Event().wait(0.02)
    assert len(door.people_with_email("late@x.com")) == 1
    assert org.late_commits == 1
