"""``worker``: run the fleet (``signals_crm.fleet.Fleet``) for many tenants from a config file.

Rules:

1. **The config file** (TOML or JSON) names the ledger, the fleet's options and the tenants:
   a ``[tenants.<id>]`` table per tenant (``settings``: its settings file; ``crm``;
   optional ``credentials``: its secret file, ``api_budget``, ``env_prefix``), and/or
   ``tenants_dir``: every ``*.toml``/``*.json`` settings file in that folder is a tenant named
   by the file's stem. ``[defaults]`` gives ``crm`` and ``api_budget`` to every tenant.
   Relative paths are relative to the config file. Unknown keys are refused, every problem
   is listed with its path, and nothing starts (exit 2).
2. **Credentials never come from the config.** A tenant's credentials are read exactly as the
   other commands read them (:mod:`signals_crm.cli._credentials`), from that tenant's own
   variables ``SIGNALS_CRM_<TENANT>_<CRM>_<KEY>`` (the tenant id upper-cased, every other
   character than A-Z and 0-9 an underscore; ``env_prefix`` overrides the
   ``SIGNALS_CRM_<TENANT>_`` part) and from its secret file (``credentials``, or
   ``<credentials_dir>/<tenant>.toml|.json``). The variables every tenant would share
   (``SIGNALS_CRM_CREDENTIALS``, ``SIGNALS_CRM_TOKEN``) are not read, so a tenant cannot get
   another's credentials. A credential-looking key in the config (``access_token``,
   ``client_secret``, ``password``...) is refused, and so is a ledger conninfo holding a
   password (give it in ``PGPASSWORD`` or a ``PGPASSFILE``, which libpq reads).
3. **The ledger** is PostgreSQL when ``ledger`` is a ``postgresql://``/``postgres://`` URL or a
   libpq ``key=value`` conninfo, else a SQLite file (created when missing; one machine only).
4. **Every tenant is checked before the first round**: its settings load and its credentials
   are complete, or the worker does not start. A tenant with due work in the ledger but not in
   the config is reported and rested (another worker may serve it).
5. **Clean shutdown.** SIGTERM or SIGINT lets the batches under way finish (each completes,
   reschedules or releases its leases), starts no new one, and exits 0. A worker killed
   outright loses nothing either: its leases expire and another worker reconciles.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import httpx

from signals_crm.cli._common import CommandError, ExitCode, Output, add_json_flag, positive_int
from signals_crm.cli._context import RotatedTokenStore
from signals_crm.cli._credentials import KEYS, build_adapter, load_credentials
from signals_crm.exceptions import ConfigurationError
from signals_crm.fleet import Fleet, RoundReport, Tenant
from signals_crm.ledger.base import FleetLedger, check_integration
from signals_crm.ledger.browse import is_conninfo
from signals_crm.settings import IntegrationSettings, load_settings

__all__ = ["WorkerConfig", "load_config", "register"]

_TOP = {
    "ledger",
    "concurrency",
    "per_tenant",
    "max_tenants",
    "poll_interval",
    "error_backoff",
    "timeout",
    "worker_id",
    "tenants",
    "tenants_dir",
    "credentials_dir",
    "defaults",
}
_TENANT = {"settings", "crm", "credentials", "api_budget", "env_prefix"}
_DEFAULTS = {"crm", "api_budget"}
_SECRET_WORDS = ("token", "secret", "password", "private_key", "api_key", "passphrase")
_SECRET_KEYS = {key for keys in KEYS.values() for key in keys} - {
    "auth",
    "instance_url",
    "login_url",
    "audience",
    "base_url",
    "client_id",
    "username",
}
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")


@attrs.frozen
class TenantConfig:
    """One tenant as the config names it (no credentials: only where to find them)."""

    tenant_id: str
    settings: Path
    crm: str
    credentials: Path | None
    api_budget: float
    env_prefix: str


@attrs.frozen
class WorkerConfig:
    """A worker's config file, checked (rule 1)."""

    ledger: str
    tenants: tuple[TenantConfig, ...]
    concurrency: int = 4
    per_tenant: int = 200
    max_tenants: int = 1000
    poll_interval: float = 5.0
    error_backoff: float = 60.0
    timeout: float = 30.0
    worker_id: str | None = None


def env_prefix(tenant_id: str) -> str:
    """The default start of ``tenant_id``'s credential variables (rule 2)."""
    return "SIGNALS_CRM_" + re.sub(r"[^A-Z0-9]", "_", tenant_id.upper()) + "_"


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CommandError(
            f"cannot read the worker config {os.fspath(path)!r}: {type(error).__name__}",
            ExitCode.USAGE,
        ) from None
    try:
        data: object = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (ValueError, RecursionError) as error:
        raise CommandError(
            f"{os.fspath(path)}: not valid config ({error})", ExitCode.USAGE
        ) from None
    if not isinstance(data, dict):
        raise CommandError(f"{os.fspath(path)}: must hold a table", ExitCode.USAGE)
    return data


class _Problems:
    def __init__(self, where: Path) -> None:
        self.where = os.fspath(where)
        self.found: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.found.append(f"{path}: {message}")

    def raise_any(self) -> None:
        if self.found:
            listed = "\n  ".join(self.found)
            raise CommandError(
                f"{self.where}: the worker config has problems:\n  {listed}", ExitCode.USAGE
            )


def _secretish(key: str) -> bool:
    lowered = key.lower()
    return lowered in _SECRET_KEYS or any(word in lowered for word in _SECRET_WORDS)


def _check_keys(
    table: Mapping[str, Any], allowed: set[str], path: str, problems: _Problems
) -> None:
    for key in table:
        where = f"{path}.{key}" if path else key
        if _secretish(key):
            problems.add(
                where,
                "credentials never go in the worker config: use the tenant's variables or "
                "its secret file (docs/cli.md, worker)",
            )
        elif key not in allowed:
            problems.add(where, f"unknown key; known: {', '.join(sorted(allowed))}")


def _number(
    data: Mapping[str, Any], key: str, default: float, problems: _Problems, *, whole: bool
) -> Any:
    value: object = data.get(key, default)
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and (not whole or isinstance(value, int)) and value > 0:  # type: ignore[operator]
        return value
    problems.add(key, "must be a positive " + ("integer" if whole else "number"))
    return default


def _path(base: Path, value: object, where: str, problems: _Problems) -> Path | None:
    if not isinstance(value, str) or not value.strip():
        problems.add(where, "must be a path (text)")
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _budget(value: object, where: str, problems: _Problems) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        problems.add(where, "must be a share of the API limit, above 0 and at most 1")
        return 0.9
    return float(value)


def _crm(value: object, where: str, problems: _Problems) -> str:
    if value not in KEYS:
        problems.add(where, f"must be one of {', '.join(KEYS)} (here or in [defaults])")
        return "salesforce"
    return str(value)


def _tenant(
    tenant_id: str,
    *,
    table: Mapping[str, Any],
    defaults: Mapping[str, Any],
    base: Path,
    credentials_dir: Path | None,
    problems: _Problems,
) -> TenantConfig | None:
    where = f"tenants.{tenant_id}"
    try:
        check_integration(tenant_id)
    except ConfigurationError:
        problems.add(where, "not a valid tenant (integration) id")
        return None
    settings = _path(base, table.get("settings"), f"{where}.settings", problems)
    crm = _crm(table.get("crm", defaults.get("crm")), f"{where}.crm", problems)
    budget = _budget(table.get("api_budget", defaults.get("api_budget", 0.9)), where, problems)
    credentials = None
    if "credentials" in table:
        credentials = _path(base, table["credentials"], f"{where}.credentials", problems)
    elif credentials_dir is not None:
        for suffix in (".toml", ".json"):
            candidate = credentials_dir / f"{tenant_id}{suffix}"
            if candidate.is_file():
                credentials = candidate
                break
    prefix = table.get("env_prefix", env_prefix(tenant_id))
    if not isinstance(prefix, str) or not _ENV_NAME.fullmatch(prefix):
        problems.add(f"{where}.env_prefix", "must be upper-case letters, digits and underscores")
    if settings is None:
        return None
    return TenantConfig(tenant_id, settings, crm, credentials, budget, str(prefix))


def _ledger(data: Mapping[str, Any], base: Path, override: str | None, problems: _Problems) -> str:
    value = override if override is not None else data.get("ledger")
    if not isinstance(value, str) or not value.strip():
        problems.add("ledger", "must name the ledger: a SQLite file or a PostgreSQL conninfo")
        return ""
    if is_postgres(value):
        if _has_password(value):
            problems.add(
                "ledger",
                "the conninfo holds a password: give it in PGPASSWORD or a PGPASSFILE (libpq "
                "reads both), never in the config or on the command line",
            )
        return value
    path = Path(value).expanduser()
    return os.fspath(path if path.is_absolute() else base / path)


def is_postgres(ledger: str) -> bool:
    """Whether ``ledger`` names a PostgreSQL database (rule 3)."""
    return is_conninfo(ledger)


def _has_password(conninfo: str) -> bool:
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:  # pragma: no cover - the ledger's own error names the extra
        return "password" in conninfo.lower() or bool(re.search(r"://[^/@]*:[^/@]*@", conninfo))
    try:
        return bool(conninfo_to_dict(conninfo).get("password"))
    except Exception:  # noqa: BLE001  # a conninfo psycopg cannot parse: the ledger says why
        return False


def load_config(
    path: Path, *, ledger: str | None = None, concurrency: int | None = None
) -> WorkerConfig:
    """The worker config at ``path``, checked; a CommandError (exit 2) lists every problem."""
    data = _read(path)
    base = path.resolve().parent
    problems = _Problems(path)
    _check_keys(data, _TOP, "", problems)
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        problems.add("defaults", "must be a table")
        defaults = {}
    _check_keys(defaults, _DEFAULTS, "defaults", problems)
    credentials_dir = None
    if "credentials_dir" in data:
        credentials_dir = _path(base, data["credentials_dir"], "credentials_dir", problems)
    tables = data.get("tenants", {})
    if not isinstance(tables, dict):
        problems.add("tenants", "must be a table of tenants")
        tables = {}
    entries: dict[str, Mapping[str, Any]] = {}
    for tenant_id, table in tables.items():
        if not isinstance(table, dict):
            problems.add(f"tenants.{tenant_id}", "must be a table")
            continue
        _check_keys(table, _TENANT, f"tenants.{tenant_id}", problems)
        entries[tenant_id] = table
    if "tenants_dir" in data:
        folder = _path(base, data["tenants_dir"], "tenants_dir", problems)
        if folder is not None and not folder.is_dir():
            problems.add("tenants_dir", f"no folder at {os.fspath(folder)!r}")
        elif folder is not None:
            for file in sorted(folder.iterdir()):
                if file.suffix.lower() in (".toml", ".json") and file.stem not in entries:
                    entries[file.stem] = {"settings": os.fspath(file)}
    tenants = [
        found
        for tenant_id, table in entries.items()
        if (
            found := _tenant(
                tenant_id,
                table=table,
                defaults=defaults,
                base=base,
                credentials_dir=credentials_dir,
                problems=problems,
            )
        )
    ]
    if not entries:
        problems.add("tenants", "no tenant: add [tenants.<id>] tables or a tenants_dir")
    prefixes: dict[str, str] = {}
    for tenant in tenants:
        other = prefixes.setdefault(tenant.env_prefix, tenant.tenant_id)
        if other != tenant.tenant_id:
            problems.add(
                f"tenants.{tenant.tenant_id}.env_prefix",
                f"{tenant.env_prefix}* is also {other!r}'s: give one of them its own env_prefix",
            )
    worker_id = data.get("worker_id")
    if worker_id is not None and (not isinstance(worker_id, str) or not worker_id.strip()):
        problems.add("worker_id", "must be text")
    config = WorkerConfig(
        ledger=_ledger(data, base, ledger, problems),
        tenants=tuple(tenants),
        concurrency=concurrency or _number(data, "concurrency", 4, problems, whole=True),
        per_tenant=_number(data, "per_tenant", 200, problems, whole=True),
        max_tenants=_number(data, "max_tenants", 1000, problems, whole=True),
        poll_interval=float(_number(data, "poll_interval", 5.0, problems, whole=False)),
        error_backoff=float(_number(data, "error_backoff", 60.0, problems, whole=False)),
        timeout=float(_number(data, "timeout", 30.0, problems, whole=False)),
        worker_id=worker_id,
    )
    problems.raise_any()
    return config


class _Tenants:
    """The resolver: every tenant's adapter and settings, built once before the first round."""

    def __init__(self, config: WorkerConfig, http: httpx.Client, out: Output) -> None:
        self._tenants: dict[str, Tenant] = {}
        failures: list[str] = []
        for tenant in config.tenants:
            try:
                self._tenants[tenant.tenant_id] = self._build(tenant, http, out)
            except CommandError as error:
                failures.append(f"tenants.{tenant.tenant_id}: {error.message}")
            except ConfigurationError as error:
                failures.append(f"tenants.{tenant.tenant_id}: {tenant.settings}: {error}")
        if failures:
            listed = "\n  ".join(failures)
            raise CommandError(f"cannot start the worker:\n  {listed}", ExitCode.USAGE)

    @staticmethod
    def _build(tenant: TenantConfig, http: httpx.Client, out: Output) -> Tenant:
        settings: IntegrationSettings = load_settings(tenant.settings)
        credentials = load_credentials(
            tenant.crm,
            file=tenant.credentials,
            warn=out.note,
            prefix=tenant.env_prefix,
            shared=False,
        )
        store = RotatedTokenStore(credentials, out.note)
        adapter = build_adapter(credentials, http, token_store=store)
        return Tenant(adapter, settings, api_budget=tenant.api_budget)

    def __len__(self) -> int:
        return len(self._tenants)

    def __call__(self, tenant_id: str) -> Tenant:
        found = self._tenants.get(tenant_id)
        if found is None:
            msg = f"tenant {tenant_id!r} has due work but is not in this worker's config"
            raise ConfigurationError(msg)
        return found


def _open_ledger(config: WorkerConfig) -> FleetLedger:
    if is_postgres(config.ledger):
        from signals_crm.ledger.postgres import PostgresLedger

        return PostgresLedger(config.ledger, max_connections=config.concurrency + 1)
    from signals_crm.ledger.sqlite import SQLiteLedger

    return SQLiteLedger(config.ledger)


def _where(ledger: str) -> str:
    """The ledger as it may be printed (a conninfo never holds a password here: rule 2)."""
    return "PostgreSQL" if is_postgres(ledger) else ledger


def _worker(args: argparse.Namespace, out: Output) -> ExitCode:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    config = load_config(args.config, ledger=args.ledger, concurrency=args.concurrency)
    timeout = httpx.Timeout(config.timeout, connect=min(10.0, config.timeout))
    limits = httpx.Limits(max_connections=config.concurrency * 4)
    rounds = 0
    synced = 0
    with httpx.Client(timeout=timeout, limits=limits) as http:
        resolver = _Tenants(config, http, out)
        with _open_ledger(config) as ledger:
            fleet = Fleet(
                ledger,
                resolver,
                concurrency=config.concurrency,
                per_tenant=config.per_tenant,
                max_tenants=config.max_tenants,
                poll_interval=config.poll_interval,
                error_backoff=config.error_backoff,
                worker_id=config.worker_id,
            )
            restore = fleet.install_signal_handlers()
            out.note(
                f"worker {fleet.worker_id}: {len(resolver)} tenant(s), {config.concurrency} "
                f"at once, ledger {_where(config.ledger)}; SIGTERM or Ctrl-C stops it cleanly"
            )

            def report(round_report: RoundReport) -> None:
                nonlocal rounds, synced
                rounds += 1
                synced += round_report.synced
                _print_round(out, rounds, round_report)

            try:
                fleet.run(rounds=args.max_rounds, on_round=report)
            finally:
                fleet.close()
                restore()
    out.note(f"worker stopped after {rounds} round(s), {synced} conversation(s) synced")
    return ExitCode.OK


def _print_round(out: Output, number: int, report: RoundReport) -> None:
    for tenant, error in report.errors.items():
        out.note(f"round {number}: tenant {tenant!r} failed and rests: {error}")
    if not report.tenants:
        return
    if out.json_mode:
        document = {
            "round": number,
            "tenants": list(report.tenants),
            "synced": report.synced,
            "counts": {t: dict(r.counts) for t, r in report.reports.items()},
            "errors": dict(report.errors),
        }
        out.document(document)
        return
    out.text(
        f"round {number}: {len(report.tenants)} tenant(s), {report.synced} synced"
        + (f", {len(report.errors)} failed" if report.errors else "")
    )


def register(sub: Any) -> None:
    worker = sub.add_parser(
        "worker",
        help="run the worker fleet for many tenants from a config file",
        description=__doc__ + "\nExit 0 after SIGTERM/Ctrl-C (or --max-rounds), 1 when the "
        "ledger cannot be opened, 2 on config or credential problems (nothing started).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    worker.add_argument("--config", type=Path, required=True, help="the worker config file")
    worker.add_argument(
        "--ledger", help="the ledger, overriding the config's (a SQLite file or a conninfo)"
    )
    worker.add_argument(
        "--concurrency", type=positive_int, help="syncs at once, overriding the config's"
    )
    worker.add_argument("--max-rounds", type=positive_int, help="stop after N rounds")
    add_json_flag(worker)
    worker.set_defaults(handler=_worker)
