"""Who owns a new Lead.

The rule (new person records only; updates never touch the owner):

1. The candidates are the conversation's participants in the configured sources, always walked
   in the fixed priority *meeting scheduler > last routed > closer*, whatever order the sources
   were configured in.
2. A candidate absent from the conversation is passed over.
3. A present candidate that maps to no CRM user (user mapping, by Signals id then email) is
   skipped, with a reason in the trace.
4. The first present and mapped candidate wins.
5. None wins: the ``default_owner`` if one is configured, else no owner is sent and the CRM's
   own defaults (assignment rules, default lead owner) apply.

Example: a meeting on Sally's calendar, Bob last routed, Jill closed, all mapped → Sally.
"""

from __future__ import annotations

import attrs

from signals_crm.core.config import UserMapping
from signals_crm.core.model import Participants, Role, SignalsUser
from signals_crm.core.trace import Reason, info

__all__ = ["OwnerDecision", "resolve_owner"]


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


def resolve_owner(
    participants: Participants,
    sources: tuple[Role, ...] | frozenset[Role],
    users: UserMapping,
    default_owner: str | None = None,
) -> OwnerDecision:
    """Apply the lead-owner rule."""
    trace: list[Reason] = []
    for role, label in _PRIORITY:
        if role not in sources:
            continue
        user = participants.get(role)
        if user is None:
            trace.append(Reason("owner_source_absent", f"no {label} on this conversation"))
            continue
        crm_id = users.crm_user_for(user)
        if crm_id is None:
            trace.append(
                info(
                    "owner_source_unmapped",
                    f"{label} {_who(user)} is not mapped to a CRM user; skipped",
                    role=label,
                )
            )
            continue
        trace.append(
            info(
                "owner_chosen",
                f"owner is the {label} {_who(user)} (CRM user {crm_id})",
                role=label,
                owner_id=crm_id,
            )
        )
        return OwnerDecision(crm_id, role, used_default=False, trace=tuple(trace))
    if default_owner is not None:
        trace.append(
            info("owner_default", f"no source gave a mapped user; default owner {default_owner}")
        )
        return OwnerDecision(default_owner, None, used_default=True, trace=tuple(trace))
    trace.append(_CRM_DEFAULT)
    return OwnerDecision(None, None, used_default=False, trace=tuple(trace))


_CRM_DEFAULT = info(
    "owner_crm_default",
    "no source gave a mapped user and no default owner: the CRM assigns the owner",
)
