"""Throwaway services for the tests: a PostgreSQL cluster and a headless Chromium.

The fixtures in ``tests/conftest.py`` are thin wrappers over this module; scripts (worker
subprocesses, benchmarks) may import it too (``sys.path`` must hold ``tests/``).

Rules (what a test that needs a service can rely on):

1. A service that cannot start is a failure when the environment variable ``CI`` is set
   (CI installs both services: ``.ci/run``), and a skip with the reason otherwise (a
   developer's machine may lack them). A test never passes without the service it asked for.
2. A Python package a service needs (``psycopg``, ``playwright``) that is not installed is
   treated the same way, except in the session that deliberately runs without optional
   extras (``SIGNALS_CRM_TESTS_WITHOUT_EXTRAS=1``, set by nox): there it is a skip.
3. PostgreSQL: one cluster per test session (per xdist worker), created by ``initdb`` in a
   fresh temporary folder, served only on a Unix socket in that folder (no TCP port, so
   parallel sessions never collide), trust authentication for the ``postgres`` role, and
   ``fsync`` off (the server is never killed by a test; workers are). As root the server
   runs as the ``postgres`` system user. The cluster is stopped and its folder removed at
   the end. ``SIGNALS_CRM_POSTGRES`` names an existing server (a conninfo) to use instead.
4. Chromium: Debian's ``/usr/bin/chromium`` (``SIGNALS_CRM_CHROMIUM`` overrides), driven by
   Playwright, headless, with the flags that keep it off the network; every launch gets a
   fresh profile (Playwright creates a new user-data folder per launch).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn, Self

import pytest

CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)


class ServiceUnavailableError(RuntimeError):
    """A service a test asked for cannot be started here."""


def in_ci() -> bool:
    """True when running under CI (the ``CI`` variable set and not false)."""
    return os.environ.get("CI", "").lower() not in {"", "0", "false", "no"}


def without_extras() -> bool:
    """True in the nox session that runs the suite without optional extras."""
    return os.environ.get("SIGNALS_CRM_TESTS_WITHOUT_EXTRAS", "") == "1"


def unavailable(what: str, why: str) -> NoReturn:
    """Fail in CI, skip elsewhere: a test never passes without the service it needs."""
    message = f"{what} unavailable: {why}"
    if in_ci():
        pytest.fail(f"{message} (CI must provide it; see .ci/run)", pytrace=False)
    pytest.skip(message)


def import_or_unavailable(module: str, extra: str) -> Any:
    """Import an optional package, skipping only where extras are deliberately absent."""
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as exc:
        if without_extras():
            pytest.skip(
                f"{module} is not installed (session without the {extra!r} extra)",
                allow_module_level=True,
            )
        unavailable(module, f"not installed ({exc}); install signals-crm[{extra}]")


# ---------------------------------------------------------------------------- PostgreSQL


def postgres_bindir() -> Path:
    """Where ``initdb`` and ``pg_ctl`` live: the newest Debian cluster version, or PATH."""
    if override := os.environ.get("SIGNALS_CRM_PG_BINDIR"):
        return Path(override)
    candidates = list(Path("/usr/lib/postgresql").glob("*/bin/initdb"))

    def major(path: Path) -> int:
        version = path.parent.parent.name
        return int(version) if version.isdigit() else 0

    if candidates:
        return max(candidates, key=major).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise ServiceUnavailableError(
        "no initdb in /usr/lib/postgresql/*/bin or on PATH (Debian package 'postgresql')"
    )


class PostgresCluster:
    """A throwaway PostgreSQL cluster in a temporary folder, reachable on a Unix socket.

    Use as a context manager; ``conninfo`` is a libpq connection string for the ``postgres``
    database, ``database(name)`` one for another database on the same server.
    """

    def __init__(self, settings: dict[str, str] | None = None) -> None:
        self.settings = dict(settings or {})  # further server settings (``-c name=value``)
        self.bindir = postgres_bindir()
        self.folder = Path(tempfile.mkdtemp(prefix="signals-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self.port = 5432  # names the socket file only: the server listens on no TCP port
        self._user: str | None = None
        self._started = False

    @property
    def conninfo(self) -> str:
        return self.database("postgres")

    def database(self, name: str) -> str:
        return f"host={self.folder} port={self.port} user=postgres dbname={name}"

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self, *args: str | Path, timeout: float = 120) -> None:
        try:
            subprocess.run(
                [str(arg) for arg in args],
                check=True,
                capture_output=True,
                timeout=timeout,
                user=self._user,
                cwd=self.folder,
            )
        except subprocess.CalledProcessError as exc:
            output = (exc.stdout + exc.stderr).decode(errors="replace")
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise ServiceUnavailableError(
                f"{Path(str(args[0])).name} failed ({exc.returncode}): {output}{log}"
            ) from exc
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ServiceUnavailableError(f"{Path(str(args[0])).name}: {exc}") from exc

    def start(self) -> None:
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root: the cluster belongs to the postgres user.
            try:
                account = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise ServiceUnavailableError("running as root but no 'postgres' user") from exc
            os.chown(self.folder, account.pw_uid, account.pw_gid)
            self._user = "postgres"
        self._run(
            self.bindir / "initdb",
            "--pgdata",
            self.data,
            "--username=postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        options = " ".join(
            (
                "-c listen_addresses=''",
                f"-c unix_socket_directories='{self.folder}'",
                f"-c port={self.port}",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=120",
                "-c shared_buffers=32MB",
                *(f"-c {name}={value}" for name, value in self.settings.items()),
            )
        )
        self._started = True
        self._run(
            self.bindir / "pg_ctl",
            "--pgdata",
            self.data,
            "--log",
            self.log,
            "--options",
            options,
            "--wait",
            "--timeout=60",
            "start",
        )

    def stop(self) -> None:
        if self._started:
            self._started = False
            with contextlib.suppress(ServiceUnavailableError):
                self._run(
                    self.bindir / "pg_ctl",
                    "--pgdata",
                    self.data,
                    "--mode=fast",
                    "--wait",
                    "--timeout=60",
                    "stop",
                )
        shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresCluster | str]:
    """The server for this session: ``SIGNALS_CRM_POSTGRES`` if set, else a new cluster."""
    if existing := os.environ.get("SIGNALS_CRM_POSTGRES"):
        yield existing
        return
    with PostgresCluster() as cluster:
        yield cluster


_database_numbers = itertools.count(1)


def fresh_database(server: PostgresCluster | str, psycopg: Any) -> tuple[str, str]:
    """Create an empty database on the server; return (its name, its conninfo)."""
    name = f"signals_test_{os.getpid()}_{next(_database_numbers)}"
    admin = server.conninfo if isinstance(server, PostgresCluster) else server
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    if isinstance(server, PostgresCluster):
        return name, server.database(name)
    return name, psycopg.conninfo.make_conninfo(admin, dbname=name)


def drop_database(server: PostgresCluster | str, name: str, psycopg: Any) -> None:
    """Drop a database made by ``fresh_database``, even if a test left connections open."""
    admin = server.conninfo if isinstance(server, PostgresCluster) else server
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---------------------------------------------------------------------------- Chromium


@functools.cache
def chromium_path() -> str:
    """Debian's Chromium, or ``SIGNALS_CRM_CHROMIUM``."""
    path = os.environ.get("SIGNALS_CRM_CHROMIUM", "/usr/bin/chromium")
    if not os.access(path, os.X_OK):
        raise ServiceUnavailableError(f"no Chromium at {path} (Debian package 'chromium')")
    return path


def launch_options() -> dict[str, Any]:
    """Keyword arguments for Playwright's ``chromium.launch`` (sync or async API)."""
    return {
        "executable_path": chromium_path(),
        "headless": True,
        "args": list(CHROMIUM_ARGS),
        "timeout": 60_000,
    }
