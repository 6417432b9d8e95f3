"""A fixed scenario shared by the fault and process-kill tests (imported by path)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from signals_crm.core.config import (
    Criteria,
    FieldMapping,
    FieldMappings,
    SyncConfig,
    UserMapEntry,
    UserMapping,
)
from signals_crm.core.model import Conversation, Meeting, Participants, SignalsUser, Visitor

CLOSED = datetime(2026, 11, 20, 12, tzinfo=UTC)
NOW = CLOSED + timedelta(hours=1)
COUNT = 12


def conversations() -> list[Conversation]:
    """Twelve qualifying visitors; c-10 and c-11 share an email (one Lead between them)."""
    out = []
    for i in range(COUNT):
        email = f"visitor{min(i, 10)}@kill.test"
        out.append(
            Conversation(
                id=f"c-{i}",
                closed_at=CLOSED,
                lead_score=3,
                visitor=Visitor(email=email, first_name=f"V{i}", last_name="Test"),
                participants=Participants(last_routed=SignalsUser(id="u1")),
                transcript=f"Visitor {i}: hello",
                meeting=Meeting(id=f"m{i}", name="Demo") if i % 2 == 0 else None,
            )
        )
    return out


def expected_tasks(conversation: Conversation) -> set[str]:
    keys = {f"signals:{conversation.id}:transcript"}
    if conversation.meeting is not None:
        keys.add(f"signals:{conversation.id}:meeting:{conversation.meeting.id}")
    return keys


def config(owner_id: str, campaign_id: str) -> SyncConfig:
    return SyncConfig(
        criteria=Criteria.ONE_STAR,
        synchronization_delay=timedelta(minutes=5),
        campaign_id=campaign_id,
        users=UserMapping((UserMapEntry(owner_id, signals_user_id="u1"),)),
        field_mappings=FieldMappings(
            lead=(
                FieldMapping("contact.first_name", "FirstName", overwrite=True),
                FieldMapping("contact.last_name", "LastName"),
            )
        ),
        placeholders={"LastName": "[not provided]", "Company": "[not provided]"},
    )


def check_exactly_once(door, campaign_id: str) -> None:
    """One Lead per email, one Task per activity, one membership per new Lead."""
    convs = conversations()
    members = door.campaign_members(campaign_id)
    by_email: dict[str, list[Conversation]] = {}
    for conv in convs:
        by_email.setdefault(conv.email or "", []).append(conv)
    for email, group in by_email.items():
        people = door.people_with_email(email)
        assert len(people) == 1, (email, people)
        (person,) = people
        markers = door.task_markers(person)
        assert len(markers) == len(set(markers)), markers
        wanted = set().union(*(expected_tasks(c) for c in group))
        assert set(markers) == wanted, (email, markers)
        assert person in members
    assert len(members) == len(by_email)
