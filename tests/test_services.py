"""The service fixtures themselves: PostgreSQL and Chromium start, serve and stop."""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from _services import PostgresCluster, ServiceUnavailableError, import_or_unavailable, unavailable


def test_postgres_conninfo_serves_queries(postgres_conninfo):
    """The session's server answers SQL on the conninfo the fixture hands out."""
    psycopg = import_or_unavailable("psycopg", "postgres")
    with psycopg.connect(postgres_conninfo) as connection:
        row = connection.execute("SELECT current_user, current_database(), 40 + 2").fetchone()
    assert row == ("postgres", "postgres", 42)


def test_postgres_database_is_fresh_and_dropped(postgres_conninfo, postgres_database):
    """Each test gets an empty database of its own, which is gone afterwards."""
    psycopg = import_or_unavailable("psycopg", "postgres")
    with psycopg.connect(postgres_database, autocommit=True) as connection:
        name = connection.execute("SELECT current_database()").fetchone()[0]
        tables = connection.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone()[0]
        connection.execute("CREATE TABLE probe (n int)")
    assert name != "postgres"
    assert tables == 0
    with psycopg.connect(postgres_conninfo) as connection:
        listed = connection.execute(
            "SELECT count(*) FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()[0]
    assert listed == 1  # dropped only when the test is over; see the next test


def test_postgres_cluster_starts_connects_and_stops():
    """A cluster made by hand serves only on its socket and leaves nothing behind."""
    psycopg = import_or_unavailable("psycopg", "postgres")
    if os.environ.get("SIGNALS_CRM_POSTGRES"):
        pytest.skip("an existing server was named; this test makes its own cluster")
    try:
        cluster = PostgresCluster()
    except ServiceUnavailableError as exc:
        unavailable("PostgreSQL", str(exc))
    with cluster:
        with psycopg.connect(cluster.conninfo) as connection:
            listen = connection.execute("SHOW listen_addresses").fetchone()[0]
            fsync = connection.execute("SHOW fsync").fetchone()[0]
        assert listen == ""  # no TCP port: only the Unix socket in the cluster's folder
        assert fsync == "off"
        assert (cluster.data / "postmaster.pid").exists()
        folder = cluster.folder
    assert not folder.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(cluster.conninfo, connect_timeout=2)


def test_postgres_cluster_reports_a_missing_server_binary(monkeypatch, tmp_path):
    """A bindir without PostgreSQL gives a ServiceUnavailableError naming the package."""
    monkeypatch.setenv("SIGNALS_CRM_PG_BINDIR", str(tmp_path))
    cluster = PostgresCluster()
    with pytest.raises(ServiceUnavailableError, match="initdb"), cluster:
        pass
    assert not cluster.folder.exists()


def test_unavailable_fails_in_ci_and_skips_elsewhere(monkeypatch):
    """A missing service is a failure under CI, a skip with the reason on a developer's box."""
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="PostgreSQL unavailable: gone"):
        unavailable("PostgreSQL", "gone")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="PostgreSQL unavailable: gone"):
        unavailable("PostgreSQL", "gone")


def test_missing_extra_skips_only_in_the_session_without_extras(monkeypatch):
    """An absent optional package is a skip only where nox runs without extras."""
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("SIGNALS_CRM_TESTS_WITHOUT_EXTRAS", "1")
    with pytest.raises(pytest.skip.Exception, match="without the 'postgres' extra"):
        import_or_unavailable("signals_crm_no_such_module", "postgres")
    monkeypatch.delenv("SIGNALS_CRM_TESTS_WITHOUT_EXTRAS")
    with pytest.raises(pytest.fail.Exception, match="signals-crm\\[postgres\\]"):
        import_or_unavailable("signals_crm_no_such_module", "postgres")


@pytest.fixture
def local_page_url(tmp_path: Path) -> Iterator[str]:
    """A one-page site on loopback, served for the duration of the test."""
    (tmp_path / "index.html").write_text(
        "<title>probe</title><button onclick=\"this.textContent='clicked'\">press</button>"
    )

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, format, *args):  # noqa: A002  # the stdlib's parameter name
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def test_chromium_page_loads_and_clicks(chromium_page, local_page_url):
    """Headless Chromium loads a loopback page, runs its script on a click, and screenshots."""
    chromium_page.goto(local_page_url)
    assert chromium_page.title() == "probe"
    chromium_page.click("button")
    assert chromium_page.text_content("button") == "clicked"
    assert chromium_page.screenshot()[:8] == b"\x89PNG\r\n\x1a\n"


def test_chromium_pages_do_not_share_storage(chromium_browser, local_page_url):
    """Two contexts of the session's browser keep their cookies apart."""
    first = chromium_browser.new_context()
    second = chromium_browser.new_context()
    try:
        page = first.new_page()
        page.goto(local_page_url)
        page.evaluate("document.cookie = 'seen=1'")
        other = second.new_page()
        other.goto(local_page_url)
        assert page.evaluate("document.cookie") == "seen=1"
        assert other.evaluate("document.cookie") == ""
    finally:
        first.close()
        second.close()
