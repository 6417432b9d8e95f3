"""Who owns a new Lead.

The rule (new person records only; updates never touch the owner):

1. The candidates are the conversation's participants in the configured sources, always walked
   in the fixed priority *meeting scheduler > last routed > closer*, whatever order the sources
   were configured in.
2. A candidate absent from the conversation is passed over.
3. A present candidate that maps to no CRM user (user mapping, by Signals id then email) is
   skipped, with a reason in the trace; so is one that maps to a CRM user known to be
   inactive (``inactive``: the engine learns it from preflight and from the CRM refusing an
   inactive owner), which cannot own records.
4. The first present and mapped candidate wins.
5. None wins: the ``default_owner`` if one is configured (and not inactive), else no owner is
   sent and the CRM's own defaults (assignment rules, default lead owner) apply.

Example: a meeting on Sally's calendar, Bob last routed, Jill closed, all mapped → Sally.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter

import attrs

from signals_crm.core.config import UserMapping
from signals_crm.core.model import Participants, Role, SignalsUser
from signals_crm.core.trace import Reason, info

__all__ = ["OwnerDecision", "OwnerRule", "resolve_owner"]


@attrs.frozen
class OwnerDecision:
    """The chosen CRM owner (``None``: let the CRM decide), where it came from, and why."""

    owner_id: str | None
    source: Role | None
    used_default: bool
    trace: tuple[Reason, ...]


# The priority walk, with each role's label (its value, also its attribute on Participants).
_PRIORITY = tuple(
    (role, role.value) for role in (Role.MEETING_SCHEDULER, Role.LAST_ROUTED, Role.CLOSER)
)


def _who(user: SignalsUser) -> str:
    return user.email or f"user {user.id}"


# A step of the walk: role, label, getter of the participant, reason when absent, and the memo
# of what each user (by id and email) came to: CRM user, reason, decision when met first.
_Step = tuple[
    Role,
    str,
    Callable[[Participants], "SignalsUser | None"],
    Reason,
    dict[tuple[str | None, str | None], tuple["str | None", Reason, "OwnerDecision"]],
]


class OwnerRule:
    """The lead-owner rule compiled for one configuration, to decide many conversations.

    The roles to walk are fixed once. A team has few users and a batch many conversations, so
    each role remembers what each of its users came to (mapped CRM user and reason), and the
    decision when that user is the first one the walk meets. The memo only saves work: every
    decision equals the one a fresh rule would make.
    """

    __slots__ = ("_decided", "_default", "_fallback", "_inactive", "_steps", "_users")

    def __init__(
        self,
        sources: tuple[Role, ...] | frozenset[Role],
        users: UserMapping,
        default_owner: str | None = None,
        inactive: frozenset[str] = frozenset(),
    ) -> None:
        self._users = users
        self._inactive = inactive
        if default_owner is not None and default_owner in inactive:
            default_owner = None  # an inactive default cannot own records: the CRM decides
        self._steps: tuple[_Step, ...] = tuple(
            (role, label, attrgetter(label), _absent(label), {})
            for role, label in _PRIORITY
            if role in sources
        )
        self._default = default_owner
        self._fallback = (
            info("owner_default", f"no source gave a mapped user; default owner {default_owner}")
            if default_owner is not None
            else _CRM_DEFAULT
        )
        # The decision of each walk that met an absent or unmapped user first, by the users it
        # met (None: absent): few distinct walks, and each decision is frozen, so shared.
        self._decided: dict[tuple[tuple[str | None, str | None] | None, ...], OwnerDecision] = {}

    def resolve(self, participants: Participants) -> OwnerDecision:
        """Apply the lead-owner rule to one conversation's participants."""
        trace: list[Reason] = []
        met: list[tuple[str | None, str | None] | None] = []  # the walk's users (None: absent)
        for role, label, get, absent, memo in self._steps:
            user: SignalsUser | None = get(participants)
            if user is None:
                trace.append(absent)
                met.append(None)
                continue
            key = (user.id, user.email)
            step = memo.get(key)
            if step is None:
                step = memo[key] = self._step(role, label, user)
            crm_id, reason, alone = step
            if crm_id is None:
                trace.append(reason)
                met.append(key)
                continue
            if not trace:
                return alone  # the first candidate met wins: a decision made before
            met.append(key)
            walk = tuple(met)
            decided = self._decided.get(walk)
            if decided is None:
                trace.append(reason)
                decided = OwnerDecision(crm_id, role, used_default=False, trace=tuple(trace))
                self._remember(walk, decided)
            return decided
        walk = tuple(met)
        decided = self._decided.get(walk)
        if decided is None:
            trace.append(self._fallback)
            decided = OwnerDecision(
                self._default, None, used_default=self._default is not None, trace=tuple(trace)
            )
            self._remember(walk, decided)
        return decided

    def _remember(
        self, walk: tuple[tuple[str | None, str | None] | None, ...], decision: OwnerDecision
    ) -> None:
        if len(self._decided) >= _MAX_WALKS:
            self._decided.clear()  # memory stays flat, whatever the stream of users
        self._decided[walk] = decision

    def _step(
        self, role: Role, label: str, user: SignalsUser
    ) -> tuple[str | None, Reason, OwnerDecision]:
        crm_id = self._users.crm_user_for(user)
        if crm_id is None:
            reason = info(
                "owner_source_unmapped",
                f"{label} {_who(user)} is not mapped to a CRM user; skipped",
                role=label,
            )
        elif crm_id in self._inactive:
            reason = info(
                "owner_source_inactive",
                f"{label} {_who(user)} maps to CRM user {crm_id}, which is inactive; skipped",
                role=label,
                owner_id=crm_id,
            )
            crm_id = None
        else:
            reason = info(
                "owner_chosen",
                f"owner is the {label} {_who(user)} (CRM user {crm_id})",
                role=label,
                owner_id=crm_id,
            )
        return crm_id, reason, OwnerDecision(crm_id, role, used_default=False, trace=(reason,))


_MAX_WALKS = 4096


def _absent(label: str) -> Reason:
    return info("owner_source_absent", f"no {label} on this conversation")


def resolve_owner(
    participants: Participants,
    sources: tuple[Role, ...] | frozenset[Role],
    users: UserMapping,
    default_owner: str | None = None,
    inactive: frozenset[str] = frozenset(),
) -> OwnerDecision:
    """Apply the lead-owner rule (to decide many conversations, compile an
    :class:`OwnerRule` once)."""
    return OwnerRule(sources, users, default_owner, inactive).resolve(participants)


_CRM_DEFAULT = info(
    "owner_crm_default",
    "no source gave a mapped user and no default owner: the CRM assigns the owner",
)
