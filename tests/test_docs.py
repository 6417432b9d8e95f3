"""The tutorial's code runs as written (against the local Salesforce)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

DOCS = Path(__file__).parent.parent / "docs"

PAYLOAD = {
    "event": "conversation-closed",
    "chat": {
        "transcript": "Visitor: Hi\nPriya: Booked you for Tuesday.",
        "meeting_event": {"id": 48213, "name": "Demo", "date": "2026-11-24"},
        "user_emails": {"meeting_scheduled": "priya@vendor.test"},
    },
    "contact": {"first_name": "Lena", "last_name": "Okafor", "email": "lena@brightfield.test"},
}


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_tutorial_runs(tmp_path, monkeypatch):
    """Sections 1 to 6 of the tutorial run in order and sync the visitor."""
    monkeypatch.chdir(tmp_path)
    blocks = [b for b in python_blocks((DOCS / "tutorial.md").read_text()) if ">>>" not in b]
    runnable = [b for b in blocks if "..." not in b]
    namespace: dict[str, object] = {"request_body": json.dumps(PAYLOAD).encode()}
    for block in runnable:
        exec(compile(block, "tutorial.md", "exec"), namespace)  # noqa: S102  # our own docs
    report = namespace["report"]
    assert report.total == 0  # run right after closing: the 30-minute delay has not passed
    outcome = namespace["outcome"]  # the manual sync of section 6 created the Lead, no tasks
    door = namespace["door"]
    assert door.people_with_email("lena@brightfield.test") == [outcome.person_id]
    assert door.task_markers(outcome.person_id) == []
    integration = namespace["integration"]
    later = integration.run_due(datetime.now(UTC) + timedelta(minutes=31))
    assert later.counts == {"created": 1}  # the automatic sync finishes the same Lead
    assert door.people_with_email("lena@brightfield.test") == [outcome.person_id]
    assert len(door.task_markers(outcome.person_id)) == 2
    fields = door.org.data.records["lead"][outcome.person_id]
    assert fields["OwnerId"] == namespace["priya"]
    namespace["http"].close()
    integration.ledger.close()
