"""``signals-crm worker``: the fleet from a config file (rules in ``signals_crm.cli.worker``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from signals_crm.cli import main
from signals_crm.cli.worker import env_prefix, load_config
from signals_crm.core.model import Conversation, Visitor
from signals_crm.ledger import DueState
from signals_crm.testing.salesforce import Faults, LocalSalesforce, SalesforceBackdoor

SETTINGS = {
    "criteria": "all",
    "synchronization_delay": "0s",
    "field_mappings": {"lead": [{"source": "contact.last_name", "target": "LastName"}]},
}


def _config(tmp_path: Path, text: str) -> Path:
    (tmp_path / "acme.json").write_text(json.dumps(SETTINGS))
    (tmp_path / "globex.json").write_text(json.dumps(SETTINGS))
    path = tmp_path / "worker.toml"
    path.write_text(text)
    return path


def test_a_config_is_read_with_defaults_paths_and_prefixes(tmp_path: Path) -> None:
    """Tenants come from tables and a folder; relative paths are the config's; each tenant's
    credential variables start with its own prefix."""
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "initech.toml").write_text('criteria = "all"\n')
    path = _config(
        tmp_path,
        'ledger = "ledger.db"\nconcurrency = 3\ntenants_dir = "more"\n'
        '[defaults]\ncrm = "salesforce"\n'
        '[tenants.acme]\nsettings = "acme.json"\n'
        '[tenants.globex-eu]\nsettings = "globex.json"\ncrm = "hubspot"\napi_budget = 0.5\n',
    )
    config = load_config(path)
    assert config.ledger == str(tmp_path / "ledger.db")
    assert config.concurrency == 3
    by_id = {t.tenant_id: t for t in config.tenants}
    assert sorted(by_id) == ["acme", "globex-eu", "initech"]
    assert by_id["globex-eu"].crm == "hubspot"
    assert by_id["globex-eu"].api_budget == 0.5
    assert by_id["globex-eu"].env_prefix == "SIGNALS_CRM_GLOBEX_EU_"
    assert by_id["initech"].settings == tmp_path / "more" / "initech.toml"
    assert env_prefix("acme") == "SIGNALS_CRM_ACME_"


@pytest.mark.parametrize(
    ("text", "messages"),
    [
        (
            (
                'ledger = "l.db"\n[tenants.acme]\nsettings = "acme.json"\ncrm = "salesforce"\n'
                'access_token = "00Dxx!secret"\n'
            ),
            ["tenants.acme.access_token: credentials never go in the worker config"],
        ),
        (
            (
                'ledger = "host=db dbname=signals password=hunter2"\n'
                '[tenants.acme]\nsettings = "acme.json"\ncrm = "salesforce"\n'
            ),
            ["ledger: the conninfo holds a password"],
        ),
        (
            'ledger = "l.db"\nconcurency = 3\n[tenants.acme]\nsettings = "acme.json"\n',
            ["concurency: unknown key", "tenants.acme.crm: must be one of salesforce, hubspot"],
        ),
        (
            (
                'ledger = "l.db"\n[defaults]\ncrm = "salesforce"\n'
                '[tenants.a-b]\nsettings = "acme.json"\n[tenants.a_b]\nsettings = "acme.json"\n'
            ),
            ["SIGNALS_CRM_A_B_* is also 'a-b''s: give one of them its own env_prefix"],
        ),
        ('ledger = "l.db"\n', ["tenants: no tenant"]),
    ],
)
def test_config_problems_are_listed_and_nothing_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, messages: list[str]
) -> None:
    """Every problem of the config is named with its path; secrets are refused (and never
    echoed); the exit code is 2 and no ledger is created."""
    path = _config(tmp_path, text)
    assert main(["worker", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    for message in messages:
        assert message in err
    assert "hunter2" not in err
    assert "00Dxx!secret" not in err
    assert not (tmp_path / "l.db").exists()


def test_missing_credentials_name_the_tenants_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tenant without credentials stops the start, naming its own variable; the variables
    every tenant would share are never used for a tenant."""
    monkeypatch.setenv("SIGNALS_CRM_TOKEN", "shared-token")
    monkeypatch.setenv("SIGNALS_CRM_SALESFORCE_ACCESS_TOKEN", "shared-token")
    path = _config(
        tmp_path,
        'ledger = "l.db"\n[tenants.acme]\nsettings = "acme.json"\ncrm = "salesforce"\n',
    )
    assert main(["worker", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert (
        "tenants.acme: no salesforce credentials: set SIGNALS_CRM_ACME_SALESFORCE_ACCESS_TOKEN"
        in (err)
    )
    assert not (tmp_path / "l.db").exists()


def _conversations(tenant: str, count: int) -> Iterator[tuple[Conversation, datetime]]:
    closed = datetime(2026, 11, 20, 12, tzinfo=UTC)
    for i in range(count):
        visitor = Visitor(email=f"v{i}@{tenant}.test", last_name=f"V{i}")
        yield Conversation(f"{tenant}-{i}", closed_at=closed, lead_score=1, visitor=visitor), closed


def _start(config: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "signals_crm", "worker", "--config", str(config), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )


def _wait_for(predicate: Any, seconds: float, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if process.poll() is not None:
            _, err = process.communicate()
            pytest.fail(f"the worker exited early ({process.returncode}): {err}")
        if time.monotonic() > deadline:
            process.kill()
            _, err = process.communicate()
            pytest.fail(f"timed out waiting for the worker: {err}")
        time.sleep(0.1)


def _leases(conninfo: str) -> int:
    import psycopg

    with psycopg.connect(conninfo) as connection:
        row = connection.execute(
            "SELECT count(*) FROM signals_crm.due_syncs WHERE lease_owner IS NOT NULL"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_the_worker_syncs_tenants_from_postgres_and_stops_cleanly_on_sigterm(
    tmp_path: Path, postgres_database: str
) -> None:
    """A worker process serves two tenants (two local Salesforce orgs over HTTP, credentials
    from each tenant's variables) from a PostgreSQL ledger: visitors ingested while it runs
    are synced once each into their own org; SIGTERM in the middle of a backlog lets the
    batches under way finish, exits 0 and leaves no lease held."""
    from signals_crm.ledger.postgres import PostgresLedger

    orgs = {"acme": LocalSalesforce(daily_limit=10**6), "globex": LocalSalesforce()}
    orgs["acme"].faults = Faults(latency=0.05)  # a backlog that takes a while
    path = _config(
        tmp_path,
        f"ledger = {json.dumps(postgres_database)}\nconcurrency = 2\nper_tenant = 25\n"
        'poll_interval = 0.2\n[defaults]\ncrm = "salesforce"\n'
        '[tenants.acme]\nsettings = "acme.json"\n[tenants.globex]\nsettings = "globex.json"\n',
    )
    with (
        orgs["acme"].serve() as acme_url,
        orgs["globex"].serve() as globex_url,
        PostgresLedger(postgres_database) as ledger,
    ):
        env = {
            "SIGNALS_CRM_ACME_SALESFORCE_ACCESS_TOKEN": orgs["acme"].issue_token(),
            "SIGNALS_CRM_ACME_SALESFORCE_INSTANCE_URL": acme_url,
            "SIGNALS_CRM_GLOBEX_SALESFORCE_ACCESS_TOKEN": orgs["globex"].issue_token(),
            "SIGNALS_CRM_GLOBEX_SALESFORCE_INSTANCE_URL": globex_url,
        }
        process = _start(path, env)
        try:
            ledger.for_integration("globex").schedule_many(_conversations("globex", 5))
            done = ledger.for_integration("globex")
            _wait_for(lambda: done.stats().syncs[DueState.DONE] == 5, 60, process)
            ledger.for_integration("acme").schedule_many(_conversations("acme", 400))
            acme = ledger.for_integration("acme")
            _wait_for(lambda: acme.stats().syncs[DueState.DONE] >= 25, 60, process)
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        assert process.returncode == 0, err
        assert "worker stopped after" in err
        rounds = [json.loads(line) for line in out.splitlines()]
        assert rounds
        assert {t for r in rounds for t in r["tenants"]} == {"acme", "globex"}
        stats = acme.stats().syncs
        assert stats[DueState.DONE] + stats[DueState.PENDING] == 400
        assert 25 <= stats[DueState.DONE] < 400  # stopped part way, after whole batches
        assert stats[DueState.DONE] % 25 == 0
        assert _leases(postgres_database) == 0
    for tenant, count, synced in (("globex", 5, 5), ("acme", 400, stats[DueState.DONE])):
        backdoor = SalesforceBackdoor(orgs[tenant])
        found = [len(backdoor.people_with_email(f"v{i}@{tenant}.test")) for i in range(count)]
        assert sum(found) == synced
        assert max(found) == 1
    assert SalesforceBackdoor(orgs["globex"]).people_with_email("v0@acme.test") == []


def test_the_worker_runs_on_a_sqlite_file_for_max_rounds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On one machine the ledger is a SQLite file; --max-rounds stops after N rounds (exit 0)
    and the text output says what each round did."""
    from signals_crm.ledger import SQLiteLedger

    org = LocalSalesforce()
    path = _config(
        tmp_path,
        'ledger = "l.db"\npoll_interval = 0.1\n[tenants.acme]\nsettings = "acme.json"\n'
        'crm = "salesforce"\n',
    )
    with SQLiteLedger(tmp_path / "l.db") as ledger:
        ledger.for_integration("acme").schedule_many(_conversations("acme", 3))
    with org.serve() as url:
        monkeypatch.setenv("SIGNALS_CRM_ACME_SALESFORCE_ACCESS_TOKEN", org.issue_token())
        monkeypatch.setenv("SIGNALS_CRM_ACME_SALESFORCE_INSTANCE_URL", url)
        assert main(["worker", "--config", str(path), "--max-rounds", "2"]) == 0
    captured = capsys.readouterr()
    assert "round 1: 1 tenant(s), 3 synced" in captured.out
    assert "worker stopped after 2 round(s), 3 conversation(s) synced" in captured.err
    assert len(SalesforceBackdoor(org).people_with_email("v2@acme.test")) == 1
