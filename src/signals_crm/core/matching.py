"""Overwrite by email: which existing person record a visitor is, if any.

The rule:

1. Records match by email only: trimmed, compared case-insensitively. Names never match.
2. Candidates are the records of the CRM's person kind (Salesforce Leads, HubSpot contacts) that
   are not converted. One or more → **update** the best: the most recently modified, ties broken
   by the smallest id; when there were several, the trace says the match was ambiguous.
3. Otherwise, where the CRM keeps Contacts apart from its person records (Salesforce), a Contact
   with the email is **never updated**. Policy ``attach`` (the default): create no Lead and
   attach the activities to the Contact (the best one, by rule 2's order). Policy
   ``create_lead``: create a new Lead anyway.
4. A converted Lead whose converted Contact was not itself found counts as that Contact under
   ``attach`` (its activities go to the Contact it became).
5. Nothing matches → **create** a new record.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import attrs

from signals_crm.core._build import builder
from signals_crm.core.config import ContactPolicy
from signals_crm.core.model import PersonKind, PersonRecord, normalize_email
from signals_crm.core.trace import Reason, info

__all__ = ["MatchDecision", "MatchOutcome", "best_record", "decide_match", "recency"]


class MatchOutcome(enum.Enum):
    CREATE = "create"
    UPDATE = "update"
    ATTACH_CONTACT = "attach_contact"


@attrs.frozen(weakref_slot=False)  # no __weakref__ slot: _build.builder's quick builder
class MatchDecision:
    """What to do with the visitor's person record, on which record, and why."""

    outcome: MatchOutcome
    record: PersonRecord | None
    ambiguous: bool
    trace: tuple[Reason, ...]


_OLDEST = datetime.min.replace(tzinfo=UTC)


def recency(modified: datetime | None) -> datetime:
    """A sort key for "most recently modified": unknown is oldest; naive means UTC."""
    if modified is None:
        return _OLDEST
    if modified.utcoffset() is None:
        return modified.replace(tzinfo=UTC)
    return modified


def best_record(records: Iterable[PersonRecord]) -> PersonRecord:
    """The most recently modified record; ties broken by the smallest id."""
    ordered = sorted(records, key=lambda r: r.id)
    return max(ordered, key=lambda r: recency(r.last_modified))


# Members read per decision, as module globals (an Enum member read off its class is a slow
# lookup; a member's ``value`` slower still).
_CONTACT = PersonKind.CONTACT
_CREATE, _UPDATE, _ATTACH = MatchOutcome.CREATE, MatchOutcome.UPDATE, MatchOutcome.ATTACH_CONTACT
_LABELS = {kind: kind.value for kind in PersonKind}
_ATTACH_POLICY = ContactPolicy.ATTACH
_decision = builder(MatchDecision)  # positional, every field: built per match
_NOTHING_FOUND = MatchDecision(
    _CREATE,
    None,
    ambiguous=False,
    trace=(info("match_none", "no record has this email; a new one is created"),),
)


def decide_match(
    email: str,
    records: Sequence[PersonRecord],
    *,
    person_kind: PersonKind,
    separate_contacts: bool,
    policy: ContactPolicy,
) -> MatchDecision:
    """Apply the matching rule to the records a lookup found for ``email``."""
    if not records:
        return _NOTHING_FOUND
    key = normalize_email(email)
    people: list[PersonRecord] = []  # rule 2's candidates
    converted: list[PersonRecord] = []
    contacts: list[PersonRecord] = []
    for record in records:
        theirs = record.email
        if theirs is None or (theirs != email and normalize_email(theirs) != key):
            continue
        kind = record.kind
        if kind is person_kind:
            (converted if record.is_converted else people).append(record)
        if kind is _CONTACT:
            contacts.append(record)
    label = _LABELS[person_kind]
    trace: list[Reason] = []
    if converted:
        trace.append(
            info(
                "converted_ignored",
                f"{len(converted)} converted {label}(s) with this email ignored",
            )
        )
    if people:
        ambiguous = len(people) > 1
        best = best_record(people) if ambiguous else people[0]
        if ambiguous:
            trace.append(
                info(
                    "match_ambiguous",
                    f"{len(people)} {label}s share this email; updating the most "
                    f"recently modified, {best.id}",
                    candidates=sorted(r.id for r in people),
                )
            )
        trace.append(Reason("match_update", f"existing {label} {best.id} matched"))
        return _decision(_UPDATE, best, ambiguous, tuple(trace))

    if separate_contacts:
        if not contacts and policy is _ATTACH_POLICY:
            contacts = [
                PersonRecord(
                    id=r.converted_contact_id,
                    kind=PersonKind.CONTACT,
                    email=r.email,
                    last_modified=r.last_modified,
                )
                for r in converted
                if r.converted_contact_id
            ]
            if contacts:
                trace.append(
                    info("converted_contact", "the converted lead's contact stands for the visitor")
                )
        if contacts:
            best = best_record(contacts) if len(contacts) > 1 else contacts[0]
            ambiguous = len(contacts) > 1
            if policy is _ATTACH_POLICY:
                trace.append(
                    info(
                        "match_contact_attach",
                        f"contact {best.id} has this email; it is never updated, activities "
                        "are attached to it",
                    )
                )
                return _decision(_ATTACH, best, ambiguous, tuple(trace))
            trace.append(
                info(
                    "match_contact_create_lead",
                    f"contact {best.id} has this email; policy create_lead makes a new lead",
                )
            )
            return _decision(_CREATE, None, False, tuple(trace))  # noqa: FBT003  # positional

    trace.append(info("match_none", "no record has this email; a new one is created"))
    return _decision(_CREATE, None, False, tuple(trace))  # noqa: FBT003  # positional
