"""A sync process that may die at a chosen HTTP request (run by test_process_kill.py).

usage: python _kill_worker.py URL TOKEN LEDGER OWNER CAMPAIGN KILL_AT WHEN [MINUTES]
KILL_AT: the 1-based number of the HTTP request to die at (0: never); WHEN: before | after;
MINUTES: how long after the scenario's NOW this run happens (default 0).
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from _scenario import NOW, config, conversations

from signals_crm.adapters.salesforce import SalesforceAdapter, StaticToken
from signals_crm.engine import Integration
from signals_crm.ledger import SQLiteLedger


class Dying(httpx.BaseTransport):
    """Counts requests; ends the process abruptly at request ``kill_at``."""

    def __init__(self, kill_at: int, when: str) -> None:
        self.inner = httpx.HTTPTransport()
        self.kill_at = kill_at
        self.when = when
        self.count = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.count += 1
        if self.count == self.kill_at and self.when == "before":
            os._exit(137)
        response = self.inner.handle_request(request)
        if self.count == self.kill_at:
            response.read()
            os._exit(137)  # the request landed; the answer is lost with the process
        return response


def main() -> None:
    url, token, ledger_path, owner, campaign, kill_at, when = sys.argv[1:8]
    now = NOW + timedelta(minutes=int(sys.argv[8]) if len(sys.argv) > 8 else 0)
    transport = Dying(int(kill_at), when)
    with httpx.Client(transport=transport, timeout=10) as http, SQLiteLedger(ledger_path) as led:
        adapter = SalesforceAdapter(http, StaticToken(token, url))
        integration = Integration(
            adapter,
            config(owner, campaign),
            ledger=led,
            sleep=lambda _: None,
            random=lambda: 0.5,
            clock=lambda: now,
            worker_id="worker-1",  # a restarted worker resumes its own leases at once
        )
        for conversation in conversations():
            integration.conversation_closed(conversation)
        report = integration.run_due(now)
    print(report.counts)


if __name__ == "__main__":
    main()
