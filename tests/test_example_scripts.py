"""The example scripts run and say what they promise."""

from __future__ import annotations

import runpy
from collections import deque
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from signals_crm.core.model import Conversation, Visitor

EXAMPLES = Path(__file__).parent.parent / "examples"


def test_plan_and_explain_example(capsys):
    """The core example plans four conversations and explains each."""
    runpy.run_path(str(EXAMPLES / "plan_and_explain.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "Conversation c-1: due\n  will sync (create)" in out
    assert "update_person [c-2:update] FirstName: 'Robert' → 'Bob'" in out
    assert "[criteria_not_met]" in out
    assert "[conversation_open]" in out
    assert "[invalid_email]" in out


def _job_system() -> dict[str, Any]:
    return runpy.run_path(str(EXAMPLES / "job_system.py"))


def test_job_system_example_syncs_every_visitor_once_from_threads(tmp_path: Path) -> None:
    """The job-system recipe on a queue served by four threads, with three overlapping beats
    enqueuing every tenant three times: every visitor is synced, none twice, no job fails."""
    example = _job_system()
    tenants = {"acme": 1, "globex": 230, "initech": 12}
    result = example["demo"](tmp_path, tenants=tenants, workers=4, beats=3)
    assert result["errors"] == []
    assert result["done"] == tenants
    assert (result["duplicates"], result["lost"]) == (0, 0)
    assert result["jobs_run"] >= 9  # the duplicated jobs ran too, and found nothing to take


def test_job_system_example_lets_a_single_visitor_pass_a_backlog(tmp_path: Path) -> None:
    """A backlogged tenant's job re-enqueues itself at the back of the queue, so a tenant with
    one due visitor is served after at most one of the backlog's batches."""
    example = _job_system()
    ledger_type = example["SQLiteLedger"]
    crms = {name: example["InMemoryCRM"]() for name in ("big", "small")}
    jobs: deque[tuple[str, tuple[Any, ...]]] = deque()
    ran: list[tuple[str, int]] = []
    with ledger_type(tmp_path / "l.db") as ledger:
        for name, count in (("big", 200), ("small", 1)):
            ledger.for_integration(name).schedule_many(
                (
                    Conversation(
                        f"{name}-{i}",
                        closed_at=example["CLOSED"],
                        lead_score=1,
                        visitor=Visitor(email=f"v{i}@{name}.test", last_name="V"),
                    ),
                    example["CLOSED"] - timedelta(minutes=1 if name == "big" else 0),
                )
                for i in range(count)
            )

        def resolve(tenant_id: str) -> Any:
            return example["Tenant"](crms[tenant_id], example["SETTINGS"])

        assert example["beat"](ledger, lambda *job: jobs.append((job[0], job[1:]))) == 2
        while jobs:
            _, (tenant,) = jobs.popleft()
            total = example["sync_tenant"](
                ledger, resolve, lambda *job: jobs.append((job[0], job[1:])), tenant, worker_id="w"
            )
            ran.append((tenant, total))
    batch = example["BATCH"]
    assert ran[:2] == [("big", batch), ("small", 1)]
    assert sum(n for t, n in ran if t == "big") == 200
    assert ran[-1] == ("big", 0)  # the last full batch's follow-up found nothing more


def test_job_system_example_main_reports_success(capsys: pytest.CaptureFixture[str]) -> None:
    """Run as a script it prints every tenant synced and no duplicates, and exits 0."""
    assert _job_system()["main"]([]) == 0
    out = capsys.readouterr().out
    assert "globex: 230 of 230 synced" in out
    assert "duplicates: 0, lost: 0" in out
