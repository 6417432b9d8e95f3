"""Late commits at any time, with creates that are upserts by their key: never a duplicate.

The in-memory CRM (``upserts=True``, as the Salesforce adapter with ``sync_key_field``) makes
chosen write calls time out at the client and applies them at a random later run, possibly
long after the settle window, which plain creates cannot survive (a second record). With
upserts the late write meets the record its resend made.
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from signals_crm.core.config import Criteria, FieldMapping, FieldMappings, SyncConfig
from signals_crm.core.crm import PersonWrite, TaskWrite, WriteResult
from signals_crm.core.model import PersonKind, normalize_email
from signals_crm.engine import Integration
from signals_crm.exceptions import TransportError
from signals_crm.ledger import MemoryLedger
from signals_crm.testing import strategies as sst
from signals_crm.testing.memory import InMemoryCRM


class LateUpsertCRM(InMemoryCRM):
    """Chosen create calls time out at the client; the test applies them when it likes."""

    def __init__(self, late: list[str]) -> None:
        super().__init__(person_kind=PersonKind.LEAD, upserts=True)
        self.late_calls = list(late)
        self.pending: list[tuple[str, tuple[object, ...]]] = []

    def commit_one(self) -> None:
        if self.pending:
            method, args = self.pending.pop(0)
            getattr(InMemoryCRM, method)(self, *args)

    def _late(self, method: str, args: tuple[object, ...]) -> list[WriteResult]:
        if method in self.late_calls:
            self.late_calls.remove(method)
            self.pending.append((method, args))
            raise TransportError("read timeout", maybe_sent=True)
        result: list[WriteResult] = getattr(InMemoryCRM, method)(self, *args)
        return result

    def create_people(self, records: list[PersonWrite]) -> list[WriteResult]:  # type: ignore[override]
        return self._late("create_people", (records,))

    def create_tasks(self, tasks: list[TaskWrite]) -> list[WriteResult]:  # type: ignore[override]
        return self._late("create_tasks", (tasks,))


@settings(max_examples=60, deadline=None)
@given(
    conversations=st.lists(
        sst.conversations(closed=True, visitor=sst.visitors(email=sst.emails())),
        min_size=1,
        max_size=6,
        unique_by=lambda c: c.id,
    ),
    late=st.lists(st.sampled_from(["create_people", "create_tasks"]), max_size=4),
    commits=st.lists(st.booleans(), min_size=12, max_size=12),
    settle_minutes=st.sampled_from([0, 5, 15]),
)
def test_late_upserts_never_duplicate(conversations, late, commits, settle_minutes):
    """Whenever each late write is applied (before, inside or long after the settle window),
    every visitor ends with exactly one Lead and one task per activity."""
    crm = LateUpsertCRM(late)
    config = SyncConfig(
        criteria=Criteria.ALL,
        field_mappings=FieldMappings(lead=(FieldMapping("contact.first_name", "FirstName"),)),
        placeholders={"LastName": "[not provided]", "Company": "[not provided]"},
    )
    sync = Integration(
        crm,
        config,
        ledger=MemoryLedger(),
        sleep=lambda _: None,
        random=lambda: 0.5,
        clock=lambda: sst.BASE_TIME,
        settle=timedelta(minutes=settle_minutes),
    )
    for conversation in conversations:
        sync.conversation_closed(conversation)
    now = sst.BASE_TIME + timedelta(days=2)
    for step, commit in enumerate(commits):
        if commit:
            crm.commit_one()
        sync.run_due(now + timedelta(minutes=10 * step))
    while crm.pending:
        crm.commit_one()
    sync.run_due(now + timedelta(days=1))
    assert sync.ledger.due(now + timedelta(days=30), 100) == []
    for email in {normalize_email(c.email) for c in conversations}:
        people = crm.people_with_email(email)
        assert len(people) == 1, (email, people)
        markers = [m for person in people for m in crm.task_markers(person)]
        expected = {
            f"signals:{c.id}:{a.key}"
            for c in conversations
            if normalize_email(c.email) == email
            for a in c.activities()
        }
        assert sorted(markers) == sorted(expected)
