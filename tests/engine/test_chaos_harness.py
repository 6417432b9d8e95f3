"""The chaos harness itself (benchmarks/chaos.py), at a tiny size: the local Salesforce served
in its own process with faults and late commits, two worker processes on one SQLite ledger,
one of them killed with SIGKILL and restarted; the audit must find no duplicate, nothing lost,
and every permanent failure dead-lettered with its reason. Time is scaled down further than
the benchmark's (the settle window still longer than a late write's hold)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "chaos.py"


def harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chaos_harness", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_a_tiny_chaos_run_has_no_duplicate_and_loses_nothing(tmp_path: Path) -> None:
    chaos = harness()
    options = chaos.Options(
        crm="salesforce",
        visitors=60,
        faults=0.10,
        late=0.05,
        expiry=0.02,
        kills=1,
        workers=2,
        seed=3,
        time_limit=60.0,
        client_timeout=0.5,
        hold=0.8,
        settle=2.0,
        reschedule=0.2,
    )
    result = chaos.run_chaos(options, scale=1.5, keep=tmp_path)
    audit = result.audit
    assert result.kills == 1
    assert not result.timed_out
    assert audit["duplicates"] == 0, audit
    assert audit["lost"] == 0, audit
    assert audit["findings"] == {}, audit  # no stray record, stall or unexpected dead letter
    assert audit["dead_lettered"] == audit["permanent_failures"]
    assert result.escaped == []


def test_the_audit_counts_a_duplicate_and_a_loss() -> None:
    """The audit is not blind: a second Lead for one email and a missing Task are counted."""
    chaos = harness()
    options = chaos.Options(crm="salesforce", visitors=40, seed=3)
    specs = chaos.workload(options)
    new = next(s for s in specs if s.kind == "new" and s.meeting)
    people = {s.email: [] for s in specs if s.kind in ("skip", "poison")}
    markers = {s.email: set() for s in specs}
    for s in specs:
        markers[s.email] |= s.markers()
    for s in specs:
        if s.kind in ("skip", "poison"):
            continue
        kind = "contact" if s.kind == "contact" else "lead"
        people[s.email] = [
            {
                "id": f"id-{s.email}",
                "kind": kind,
                "converted": False,
                "markers": sorted(markers[s.email]),
            }
        ]
    members = [f"id-{s.email}" for s in specs if s.kind == "new"]
    # One duplicate Lead, one lost meeting Task:
    twin = {"id": "id-twin", "kind": "lead", "converted": False, "markers": []}
    people[new.email] = [
        {**people[new.email][0], "markers": [f"signals:{new.cid}:transcript"]},
        twin,
    ]

    class Ledger:
        def get_due(self, cid: str) -> object:
            spec = next(s for s in specs if s.cid == cid)
            state = chaos.DueState.DEAD if spec.kind == "poison" else chaos.DueState.DONE
            return type(
                "Due", (), {"state": state, "last_error": "INVALID_EMAIL_ADDRESS", "outcome": None}
            )()

    audit = chaos._audit(options, specs, {"people": people, "members": members}, Ledger())
    assert audit["duplicates"] == 1
    assert audit["lost"] == 1
    assert set(audit["findings"]) == {"duplicate people", "lost tasks"}
