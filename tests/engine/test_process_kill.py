"""Kill a syncing process at random points, restart it: no duplicates, nothing lost."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from signals_crm.testing.salesforce import LocalSalesforce, SalesforceBackdoor

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from _scenario import check_exactly_once  # noqa: E402


def run_worker(url, token, ledger, owner, campaign, kill_at=0, when="before", minutes=0):
    return subprocess.run(
        [
            sys.executable,
            str(HERE / "_kill_worker.py"),
            url,
            token,
            str(ledger),
            owner,
            campaign,
            str(kill_at),
            when,
            str(minutes),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("seed", range(4))
def test_killed_and_restarted_sync_is_exactly_once(tmp_path, seed):
    """A sync killed before or after a random request (twice), then rerun once the settle
    window has passed, leaves exactly one Lead per email, one Task per activity and one
    membership per new Lead."""
    rng = random.Random(seed)
    org = LocalSalesforce()
    door = SalesforceBackdoor(org)
    owner = door.seed_user(email="owner@vendor.test")
    campaign = door.seed_campaign(name="Chat")
    ledger = tmp_path / "ledger.sqlite3"
    with org.serve() as url:
        token = org.issue_token()
        killed = 0
        for _ in range(2):
            kill_at = rng.randint(1, 9)
            when = rng.choice(["before", "after"])
            done = run_worker(url, token, ledger, owner, campaign, kill_at, when)
            killed += done.returncode == 137
            assert done.returncode in (0, 137), done.stderr
        # Past the settle window: writes the kills left unsettled are read, then finished.
        final = run_worker(url, token, ledger, owner, campaign, minutes=60)
        assert final.returncode == 0, final.stderr
        check_exactly_once(door, campaign)
    assert killed >= 1
