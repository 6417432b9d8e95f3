"""The console over real HTTP: authentication, pages, filters, keyset pages, the retry action."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx
import pytest
from _console_helpers import HEADER, OPERATOR, operator_from_header, serving

from signals_crm.console import create_console, salesforce_links
from signals_crm.exceptions import ConfigurationError, LedgerError
from signals_crm.settings import IntegrationSettings

SETTINGS = IntegrationSettings.from_dict({"criteria": "two_stars"})
AUTH = {HEADER: OPERATOR}


@pytest.fixture
def console(console_store):
    """The console over the filled ledger, on SQLite and on PostgreSQL."""
    app = create_console(
        console_store.source,
        authenticate=operator_from_header,
        settings=SETTINGS,
        crm_links=salesforce_links("https://acme.my.salesforce.test"),
    )
    with serving(app) as base, httpx.Client(base_url=base, timeout=30) as client:
        yield client


def test_there_is_no_console_without_an_authentication_hook(console_ledger):
    """The hook is required; something that is not callable is refused."""
    with pytest.raises(TypeError):
        create_console(console_ledger)  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError, match="authenticate"):
        create_console(console_ledger, authenticate="yes")  # type: ignore[arg-type]
    with pytest.raises(LedgerError, match="no ledger"):
        create_console(console_ledger.with_name("typo.sqlite3"), authenticate=operator_from_header)
    assert not console_ledger.with_name("typo.sqlite3").exists()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/static/console.css"),
        ("GET", "/i/default/syncs?view=dead"),
        ("GET", "/i/default/conversations/dead-0"),
        ("POST", "/i/default/conversations/dead-0/retry"),
    ],
)
def test_every_request_needs_the_hook_to_name_an_operator(console, method, path):
    """Pages, the stylesheet and the action are refused when the hook returns None."""
    response = console.request(method, path, headers={HEADER: "mallory"})
    assert response.status_code == 403
    assert "dead-0" not in response.text


def test_the_start_page_warns_and_counts_each_view(console):
    """The start page says access is the host's to guard and counts syncs per view."""
    page = console.get("/", headers=AUTH)
    assert page.status_code == 200
    assert "only as safe as its authentication hook" in page.text
    assert "no open mode" in page.text
    row = re.search(r"<tr><td><a[^>]*>default</a></td>(.*?)</tr>", page.text).group(1)
    assert re.findall(r">([\d,]+)</a>", row) == ["60", "4", "10", "20", "3"]
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert page.headers["x-frame-options"] == "DENY"


def test_keyset_pages_walk_every_due_sync_once_in_order(console):
    """Following "Next page" from the first page lists the 60 due syncs once each, in order."""
    seen: list[str] = []
    path = "/i/default/syncs?view=due&limit=25"
    for _ in range(10):
        page = console.get(path, headers=AUTH)
        assert page.status_code == 200
        seen.extend(re.findall(r'conversations/(due-\d+)"', page.text))
        following = re.search(r'href="([^"]+)" id="next-page"', page.text)
        if following is None:
            break
        path = following.group(1).replace("&amp;", "&")
    assert seen == [f"due-{i:03}" for i in range(60)]


def test_views_filters_and_validation(console):
    """Each view lists its own syncs; filters narrow them; bad filters are named (400)."""
    flying = console.get("/i/default/syncs?view=in_flight", headers=AUTH).text
    assert sorted(set(re.findall(r'conversations/(fly-\d)"', flying))) == [
        f"fly-{i}" for i in range(4)
    ]
    assert "worker-a:4242" in flying
    one = console.get("/i/default/syncs?view=due&email=DUE7@x.test", headers=AUTH).text
    assert re.findall(r'conversations/(due-\d+)"', one) == ["due-007"]
    dead = console.get("/i/default/syncs?view=dead&error=lock_row", headers=AUTH).text
    assert re.findall(r'conversations/(dead-\d)"', dead) == ["dead-1"]
    bad = console.get("/i/default/syncs?view=due&due_from=yesterday", headers=AUTH)
    assert bad.status_code == 400
    assert "due_from: not an ISO-8601 time" in bad.text
    assert console.get("/i/default/syncs?view=nope", headers=AUTH).status_code == 400
    assert console.get("/i/default/syncs?limit=9999", headers=AUTH).status_code == 400
    long_id = console.get("/i/default/syncs?conversation=" + "x" * 400, headers=AUTH)
    assert long_id.status_code == 400
    assert console.get("/i/default/syncs?after=garbage", headers=AUTH).status_code == 400
    assert console.get("/i/elsewhere/", headers=AUTH).status_code == 404


def test_ledger_text_is_escaped_on_every_page(console):
    """A CRM error message holding markup is shown as text, never as markup."""
    dead = console.get("/i/default/syncs?view=dead", headers=AUTH).text
    assert "<script>" not in dead
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dead
    assert "<script>" not in console.get("/i/default/conversations/dead-2", headers=AUTH).text


def test_a_conversation_page_explains_and_links_into_the_crm(console):
    """The explanation lists the blockers; a confirmed write links to its CRM record."""
    done = console.get("/i/default/conversations/done-00", headers=AUTH).text
    assert (
        'href="https://acme.my.salesforce.test/lightning/r/00Q000000000001AAA/view" '
        'target="_blank" rel="noopener noreferrer"'
    ) in done
    assert 'id="explain-status">synced<' in done
    waiting = console.get("/i/default/conversations/later-3", headers=AUTH).text
    assert "Scheduled" in waiting
    dead = console.get("/i/default/conversations/dead-0", headers=AUTH).text
    assert 'id="retry-link"' in dead
    assert "FIELD_CUSTOM_VALIDATION_EXCEPTION" in dead
    assert console.get("/i/default/conversations/nope", headers=AUTH).status_code == 404


def _token(console, cid):
    confirm = console.get(f"/i/default/conversations/{cid}/retry", headers=AUTH)
    assert confirm.status_code == 200
    return re.search(r'name="csrf" value="([^"]+)"', confirm.text).group(1)


def test_retry_needs_a_fresh_token_from_the_same_operator_and_origin(console, console_store):
    """Forged, cross-site or missing tokens change nothing; a good one requeues the sync."""
    token = _token(console, "dead-0")
    path = "/i/default/conversations/dead-0/retry"
    assert console.post(path, headers=AUTH, data={}).status_code == 403
    assert console.post(path, headers=AUTH, data={"csrf": token + "0"}).status_code == 403
    cross = {**AUTH, "sec-fetch-site": "cross-site"}
    assert console.post(path, headers=cross, data={"csrf": token}).status_code == 403
    evil = {**AUTH, "origin": "https://evil.test"}
    assert console.post(path, headers=evil, data={"csrf": token}).status_code == 403
    with console_store.open() as ledger:
        assert ledger.get_due("dead-0").state == "dead"
    done = console.post(path, headers=AUTH, data={"csrf": token}, follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"] == "/i/default/conversations/dead-0?done=retried"
    with console_store.open() as ledger:
        sync = ledger.get_due("dead-0")
        assert (sync.state, sync.attempts) == ("pending", 0)
        assert sync.due_at <= datetime.now(UTC)
        assert ledger.get_command("dead-0:person").state == "planned"
    again = console.post(path, headers=AUTH, data={"csrf": token})
    assert again.status_code == 400
    assert "no longer a dead letter" in again.text
    assert console.get(path, headers=AUTH).status_code == 400  # nothing to confirm now


def test_a_token_is_bound_to_its_operator(console_ledger):
    """A token issued to one operator is refused for another."""
    names = {"a": "ann@ops.test", "b": "bob@ops.test"}
    app = create_console(
        console_ledger, authenticate=lambda request: names.get(request.headers.get("x-who", ""))
    )
    with serving(app) as base, httpx.Client(base_url=base, timeout=30) as client:
        page = client.get("/i/default/conversations/dead-1/retry", headers={"x-who": "a"})
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        path = "/i/default/conversations/dead-1/retry"
        refused = client.post(path, headers={"x-who": "b"}, data={"csrf": token})
        assert refused.status_code == 403
        accepted = client.post(
            path, headers={"x-who": "a"}, data={"csrf": token}, follow_redirects=True
        )
        assert accepted.status_code == 200  # the redirect, followed to the notice
        assert 'id="notice"' in accepted.text


def test_mounted_under_a_prefix_every_link_keeps_it(console_ledger):
    """A host mounting the console at /ops gets links and forms under /ops."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    inner = create_console(console_ledger, authenticate=operator_from_header)
    host = Starlette(routes=[Mount("/ops", app=inner)])
    with serving(host) as base, httpx.Client(base_url=base, timeout=30) as client:
        page = client.get("/ops/i/default/syncs?view=dead", headers=AUTH).text
        hrefs = re.findall(r'href="([^"]+)"', page)
        assert hrefs
        assert all(h.startswith("/ops/") for h in hrefs)
        assert 'action="/ops/i/default/syncs"' in page


def test_the_local_runner_spends_its_login_token_once(console_ledger):
    """``signals-crm console``'s one-time link signs in once; the cookie then suffices."""
    from signals_crm.console._local import COOKIE, LocalTokenAuth, local_app

    auth = LocalTokenAuth()
    app = local_app(create_console(console_ledger, authenticate=auth), auth)
    with serving(app) as base, httpx.Client(base_url=base, timeout=30) as client:
        assert client.get("/").status_code == 403
        assert client.get("/login?token=wrong").status_code == 403
        signed_in = client.get(f"/login?token={auth.login_token}", follow_redirects=True)
        assert signed_in.status_code == 200
        assert "Integrations" in signed_in.text
        assert COOKIE in client.cookies
        with httpx.Client(base_url=base, timeout=30) as other:
            assert other.get(f"/login?token={auth.login_token}").status_code == 403
        assert client.get("/i/default/syncs?view=done").status_code == 200


def test_the_integration_page_shows_the_last_runs_and_their_api_use(console_store):
    """Runs the engine recorded appear newest first, with the API budget use of the last."""
    with console_store.open() as ledger:
        ledger.record_run({"counts": {"created": 2}, "adapter_calls": 5})
        ledger.record_run(
            {
                "counts": {"created": 7},
                "adapter_calls": 9,
                "api_usage": {"used": 130, "limit": 15000},
            }
        )
    app = create_console(console_store.source, authenticate=operator_from_header)
    with serving(app) as base, httpx.Client(base_url=base, timeout=30) as client:
        page = client.get("/i/default/", headers=AUTH).text
    runs = re.search(r'<div id="runs">(.*?)</div>', page, flags=re.DOTALL).group(1)
    assert runs.index("created 7") < runs.index("created 2")
    budget = re.search(r'<dl class="facts" id="budget">(.*?)</dl>', page, flags=re.DOTALL).group(1)
    assert "used 130" in budget
    assert "limit 15000" in budget


def test_the_local_runner_accepts_connections_once_it_announces_its_address(console_ledger):
    """``signals-crm console`` prints its link only once its socket listens: a client that
    connects at once (inside the announcement, before the server runs) is queued, not refused,
    and its request is answered once the server runs."""
    import socket
    import threading

    from signals_crm.console._local import LocalTokenAuth, local_app, serve_local

    auth = LocalTokenAuth()
    app = local_app(create_console(console_ledger, authenticate=auth), auth)
    early: list[socket.socket] = []
    servers: list[object] = []
    announced = threading.Event()

    def announce(address: str) -> None:
        port = int(address.rsplit(":", 1)[1])
        try:
            early.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        finally:
            announced.set()

    def ready(server: object) -> None:
        servers.append(server)

    thread = threading.Thread(
        target=serve_local, kwargs={"app": app, "announce": announce, "ready": ready}
    )
    thread.start()
    try:
        assert announced.wait(timeout=30)
        (conn,) = early  # the connection made inside the announcement was not refused
        with conn:
            conn.sendall(b"GET /login?token=wrong HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = conn.recv(64)
        assert answer.startswith(b"HTTP/1.1 403")
    finally:
        for server in servers:
            server.should_exit = True  # type: ignore[attr-defined]
        thread.join(timeout=30)
    assert not thread.is_alive()
