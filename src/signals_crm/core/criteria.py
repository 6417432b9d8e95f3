"""Who may be synced automatically, and why not.

The rule:

1. Criteria: ``ALL`` passes everyone, unscored visitors included. ``ONE_STAR``, ``TWO_STARS`` and
   ``THREE_STARS`` pass a score of at least 1, 2 or 3 stars; an unscored visitor passes none of
   them. The score is the one known *at sync time*, not at close.
2. Automatic sync needs all of: the integration on; the conversation closed; the criteria met;
   ``now >= closed_at + delay``; a syntactically valid visitor email.
3. Every failing condition is reported, each with a stable code; a condition that passes with
   time (the delay) says when.

Blocker codes: ``integration_disabled``, ``conversation_open``, ``criteria_not_met``,
``delay_pending``, ``invalid_email`` (``no_email`` when there is none at all).
"""

from __future__ import annotations

from datetime import datetime

import attrs

from signals_crm.core._build import builder
from signals_crm.core.config import Criteria, SyncConfig
from signals_crm.core.model import Conversation, ConversationStatus, is_valid_email
from signals_crm.core.trace import Reason, blocker

__all__ = ["Eligibility", "EligibilityRule", "check_eligibility", "check_manual", "meets_criteria"]

BLOCKER_CODES = (
    "integration_disabled",
    "conversation_open",
    "criteria_not_met",
    "delay_pending",
    "no_email",
    "invalid_email",
)


def meets_criteria(score: int | None, criteria: Criteria) -> bool:
    """Whether a lead score (``None`` = unscored) passes ``criteria``."""
    needed = criteria.min_stars
    if needed is None:
        return True
    return score is not None and score >= needed


def _stars(score: int | None) -> str:
    if score is None:
        return "unscored"
    return f"{score} star{'s' if score != 1 else ''}"


@attrs.frozen(weakref_slot=False)  # no __weakref__ slot: _build.builder's quick builder
class Eligibility:
    """Whether a conversation may be synced now, and every reason it may not."""

    blockers: tuple[Reason, ...] = ()
    due_at: datetime | None = None

    @property
    def eligible(self) -> bool:
        return not self.blockers

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(b.code for b in self.blockers)

    @property
    def passes_at(self) -> datetime | None:
        """When the only blockers left are time-bound, the time they all pass; else ``None``."""
        if not self.blockers or any(b.passes_at is None for b in self.blockers):
            return None
        return max(b.passes_at for b in self.blockers if b.passes_at is not None)


_eligibility = builder(Eligibility)  # positional, every field: built per conversation checked
_SCORES = (0, 1, 2, 3)  # the lead scores a conversation can have; None is unscored


def _criteria_blocker(score: int | None, criteria: Criteria) -> Reason:
    return blocker(
        "criteria_not_met",
        f"lead score {_stars(score)} does not meet the criteria {criteria.value!r}",
        score=score,
        criteria=criteria.value,
    )


def _email_problem(email: str | None) -> Reason:
    """Why ``email`` cannot be synced (it is missing or not a valid address)."""
    if email is None or not email.strip():
        return _NO_EMAIL
    return blocker("invalid_email", f"the visitor's email {email.strip()!r} is not a valid address")


_DISABLED = blocker("integration_disabled", "the integration is switched off")
_OPEN = blocker("conversation_open", "the conversation is not closed yet")
_NO_EMAIL = blocker("no_email", "the visitor has no email address")
_CLOSED = ConversationStatus.CLOSED


class EligibilityRule:
    """The automatic-sync rule compiled for one configuration, to check many conversations:
    the delay is read once, and the criteria's verdict on each possible score is made once."""

    __slots__ = ("_delay", "_enabled", "_short")

    def __init__(self, config: SyncConfig) -> None:
        self._enabled = config.enabled
        self._delay = config.synchronization_delay
        # Lead score → the criteria blocker, for the scores that fall short.
        self._short = {
            score: _criteria_blocker(score, config.criteria)
            for score in (None, *_SCORES)
            if not meets_criteria(score, config.criteria)
        }

    def check(self, conversation: Conversation, now: datetime) -> Eligibility:
        """Evaluate every automatic-sync condition at ``now``; report all that fail."""
        found: list[Reason] = []
        if not self._enabled:
            found.append(_DISABLED)
        closed_at = conversation.closed_at
        if closed_at is None or conversation.status is not _CLOSED:
            found.append(_OPEN)
        short = self._short.get(conversation.lead_score)
        if short is not None:
            found.append(short)
        due_at = None
        if closed_at is not None:
            due_at = closed_at + self._delay
            if now < due_at:
                found.append(
                    blocker(
                        "delay_pending",
                        "the synchronization delay has not passed; it passes at "
                        + due_at.isoformat(),
                        passes_at=due_at,
                    )
                )
        visitor = conversation.visitor
        email = visitor.email if visitor is not None else None
        if not is_valid_email(email):
            found.append(_email_problem(email))
        return _eligibility(tuple(found) if found else (), due_at)


def check_eligibility(conversation: Conversation, config: SyncConfig, now: datetime) -> Eligibility:
    """Evaluate every automatic-sync condition at ``now``; report all that fail (to check many
    conversations, compile an :class:`EligibilityRule` once)."""
    return EligibilityRule(config).check(conversation, now)


def check_manual(conversation: Conversation, config: SyncConfig) -> Eligibility:
    """A manual sync ignores criteria, delay and status; it needs the integration on and an
    email."""
    found: list[Reason] = []
    if not config.enabled:
        found.append(_DISABLED)
    email = conversation.email
    if not is_valid_email(email):
        found.append(_email_problem(email))
    return _eligibility(tuple(found), None)
