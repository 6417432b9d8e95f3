"""Shared test configuration and the service fixtures (PostgreSQL, Chromium).

Fixtures every test module may request (rules in ``tests/_services.py``):

- ``postgres_conninfo`` (session): a libpq conninfo for the ``postgres`` database of a
  throwaway cluster.
- ``postgres_database`` (function): a conninfo for a new, empty database on that server,
  dropped after the test.
- ``chromium_browser`` (module): a Playwright (sync API) ``Browser`` on Debian's Chromium
  (async tests cannot run while it is up: keep browser tests in modules of their own).
- ``chromium_page`` (function): a ``Page`` in a new browser context, closed after the test.

A test needing a service fails in CI when the service cannot start, and is skipped with the
reason elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from _services import (
    ServiceUnavailableError,
    drop_database,
    fresh_database,
    import_or_unavailable,
    launch_options,
    postgres_server,
    unavailable,
)

# CI machines are small and shared: judge properties by their examples, not their speed.
settings.register_profile("signals", deadline=None, suppress_health_check=[HealthCheck.too_slow])
# The runs on the other Pythons and without extras look for what differs there (the
# interpreter, a missing extra), not for new examples: nox gives them fewer of each
# (SIGNALS_CRM_HYPOTHESIS=quick); the main run keeps hypothesis's full count.
settings.register_profile("quick", parent=settings.get_profile("signals"), max_examples=15)
settings.load_profile("quick" if os.environ.get("SIGNALS_CRM_HYPOTHESIS") == "quick" else "signals")


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every async test runs twice, on asyncio and on trio (the anyio plugin reads this)."""
    if request.param == "trio":
        import_or_unavailable("trio", "tests")
    return str(request.param)


@pytest.fixture(scope="session")
def _postgres_server() -> Iterator[Any]:
    import_or_unavailable("psycopg", "postgres")
    try:
        with postgres_server() as server:
            yield server
    except ServiceUnavailableError as exc:
        unavailable("PostgreSQL", str(exc))


@pytest.fixture(scope="session")
def postgres_conninfo(_postgres_server: Any) -> str:
    """A conninfo for the ``postgres`` database of this session's PostgreSQL server."""
    server = _postgres_server
    return server if isinstance(server, str) else str(server.conninfo)


@pytest.fixture
def postgres_database(_postgres_server: Any) -> Iterator[str]:
    """A conninfo for a new, empty database, dropped (connections and all) after the test."""
    psycopg = import_or_unavailable("psycopg", "postgres")
    name, conninfo = fresh_database(_postgres_server, psycopg)
    yield conninfo
    drop_database(_postgres_server, name, psycopg)


@pytest.fixture(scope="module")
def chromium_browser() -> Iterator[Any]:
    """A headless Chromium driven by Playwright's sync API, shared by one test module.

    Module scope, not session: while Playwright's sync API is started, its event loop counts
    as running in this thread, so async tests (anyio) in other modules could not run.
    """
    sync_api = import_or_unavailable("playwright.sync_api", "tests")
    try:
        options = launch_options()
    except ServiceUnavailableError as exc:
        unavailable("Chromium", str(exc))
    manager = sync_api.sync_playwright().start()
    try:
        try:
            browser = manager.chromium.launch(**options)
        except sync_api.Error as exc:
            unavailable("Chromium", f"launch failed: {exc}")
        yield browser
        browser.close()
    finally:
        manager.stop()


@pytest.fixture
def chromium_page(chromium_browser: Any) -> Iterator[Any]:
    """A page in a fresh browser context (no cookies or storage from other tests)."""
    context = chromium_browser.new_context()
    page = context.new_page()
    yield page
    context.close()
