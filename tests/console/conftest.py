"""Fixtures of the console tests: a ledger with syncs in every view."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from _services import without_extras
from signals_crm.core.model import Conversation, Visitor
from signals_crm.ledger import CommandRecord, CommandState, SQLiteLedger


def _conversation(cid: str, email: str, closed: datetime, score: int = 3) -> Conversation:
    return Conversation(id=cid, closed_at=closed, lead_score=score, visitor=Visitor(email=email))


@pytest.fixture
def console_ledger(tmp_path):
    """A ledger holding 60 due, 4 in-flight, 10 scheduled, 20 done and 3 dead syncs."""
    path = tmp_path / "ledger.sqlite3"
    now = datetime.now(UTC)
    past = now - timedelta(days=2)
    with SQLiteLedger(path) as ledger:
        ledger.schedule_many(
            (_conversation(f"fly-{i}", f"fly{i}@x.test", past), past - timedelta(hours=1))
            for i in range(4)
        )
        ledger.claim(None, 4, owner="worker-a:4242", lease=timedelta(hours=1))
        entries = [
            (_conversation(f"due-{i:03}", f"due{i}@x.test", past), past + timedelta(minutes=i))
            for i in range(60)
        ]
        entries += [
            (_conversation(f"later-{i}", f"later{i}@x.test", past), now + timedelta(hours=i + 1))
            for i in range(10)
        ]
        entries += [
            (_conversation(f"done-{i:02}", f"done{i}@x.test", past), past - timedelta(hours=2))
            for i in range(20)
        ]
        dead_reasons = {
            "dead-0": "FIELD_CUSTOM_VALIDATION_EXCEPTION: Phone must have 10 digits",
            "dead-1": "gave up after 8 runs: UNABLE_TO_LOCK_ROW",
            "dead-2": "INVALID_EMAIL_ADDRESS: <script>alert(1)</script>",
        }
        entries += [
            (_conversation(cid, f"{cid}@x.test", past, 2), past - timedelta(hours=3))
            for cid in dead_reasons
        ]
        ledger.schedule_many(entries)
        ledger.complete([f"done-{i:02}" for i in range(20)], "created")
        ledger.record(
            [
                CommandRecord(
                    key="done-00:person",
                    conversation_id="done-00",
                    kind="create_person",
                    state=CommandState.CONFIRMED,
                    updated_at=past,
                    crm_id="00Q000000000001AAA",
                ),
                CommandRecord(
                    key="dead-0:person",
                    conversation_id="dead-0",
                    kind="create_person",
                    state=CommandState.FAILED,
                    updated_at=past,
                    reason=dead_reasons["dead-0"],
                    attempts=1,
                ),
            ]
        )
        for cid, reason in dead_reasons.items():
            ledger.dead_letter(cid, reason)
    return path


def pytest_ignore_collect(collection_path: Path) -> bool | None:
    """Without the ``console`` extra (the nox session without extras, and only there), the
    console's modules are left out and named; anywhere else a missing Starlette fails loudly."""
    if collection_path.name.startswith("test_console_") and without_extras():
        try:
            import starlette  # noqa: F401
        except ImportError:
            print(f"\nnot collected without the 'console' extra: {collection_path.name}")
            return True
    return None
