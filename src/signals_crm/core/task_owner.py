"""Who owns a task.

The rule (automatic syncs only; a manual sync creates no tasks):

1. A task belongs to the Signals user who did its activity: the **meeting's host** (the meeting
   scheduler, on whose calendar it was booked) for a booked meeting; the **closer, else the
   last routed** user for a chat transcript; the roles an activity kind declares, in their
   order, for a kind the host added.
2. Those users are walked in that order; one absent from the conversation is passed over, one
   present but mapped to no CRM user (user mapping, by Signals id then email), or mapped to a
   CRM user known to be inactive, is skipped with a reason. The first present and mapped one
   owns the task.
3. None does: the task belongs to the **owner of the person record** it is attached to (the
   owner chosen for a new record, or the owner the CRM reports for an existing Lead or
   Contact) — when that owner is a CRM user the integration knows (one the user mapping
   names, or the ``default_owner``). A record owned by a queue or by a user the mapping does
   not know (perhaps inactive) would make the CRM refuse the task, so rule 4 applies instead.
4. No usable record owner either: no owner is sent and the CRM's default applies (on
   Salesforce the API user, on HubSpot no owner).

The lead-owner settings (``owner_sources``, ``default_owner``) do not apply to tasks: the
record's owner, rule 3, already reflects them for a new record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from operator import attrgetter

import attrs

from signals_crm.core.config import UserMapping
from signals_crm.core.model import ActivityKind, Participants, Role, SignalsUser
from signals_crm.core.trace import Reason, info

__all__ = ["TASK_ROLES", "TaskOwner", "TaskOwnerRule", "resolve_task_owner"]

TASK_ROLES: Mapping[str, tuple[Role, ...]] = {
    ActivityKind.MEETING_BOOKED.value: (Role.MEETING_SCHEDULER,),
    ActivityKind.CHAT_TRANSCRIPT.value: (Role.CLOSER, Role.LAST_ROUTED),
}
"""Rule 1 for the built-in kinds: who did the activity, in the order they are tried."""


@attrs.frozen
class TaskOwner:
    """The CRM owner of a task (``None``: the CRM's default), the role that gave it (``None``
    when it is the record's owner or the CRM's default), and why."""

    owner_id: str | None
    role: Role | None
    trace: tuple[Reason, ...]


def _who(user: SignalsUser) -> str:
    return user.email or f"user {user.id}"


_Getter = Callable[[Participants], "SignalsUser | None"]
# What one user in one role comes to for one task: the owner when it owns the task (and the
# reason saying so), else None and the reason it is skipped.
_Step = tuple[TaskOwner | None, Reason]


class TaskOwnerRule:
    """The task-owner rule compiled for one user mapping, to decide many tasks.

    What each (task, role, user) comes to is remembered: a team has few users and a batch many
    tasks. The memo only saves work; every answer equals the one a fresh rule would give.
    """

    __slots__ = ("_default", "_inactive", "_record", "_steps", "_users", "_walks")

    def __init__(
        self,
        users: UserMapping,
        default_owner: str | None = None,
        inactive: frozenset[str] = frozenset(),
    ) -> None:
        self._users = users
        self._inactive = inactive
        self._default = default_owner if default_owner not in inactive else None
        # Per tuple of roles: each role with the getter of its participant (its attribute).
        self._walks: dict[tuple[Role, ...], tuple[tuple[Role, _Getter], ...]] = {}
        # Per (label, role, user id, user email): the task owner when that user owns the task
        # alone, else None and the reason the user is skipped.
        self._steps: dict[tuple[str, Role, str | None, str | None], _Step] = {}
        self._record: dict[tuple[str, str | None], TaskOwner] = {}

    def resolve(
        self,
        roles: tuple[Role, ...],
        participants: Participants,
        record_owner: str | None,
        activity: str = "the task",
    ) -> TaskOwner:
        """Apply the rule to one task: ``roles`` who did it (rule 1), in order. ``activity``
        labels the task in the reasons (a few distinct labels: answers are remembered by it;
        positional or by name)."""
        walk = self._walks.get(roles)
        if walk is None:
            walk = self._walks[roles] = tuple((role, attrgetter(role.value)) for role in roles)
        skipped: list[Reason] | None = None
        for role, get in walk:
            user: SignalsUser | None = get(participants)
            if user is None:
                continue
            key = (activity, role, user.id, user.email)
            step = self._steps.get(key)
            if step is None:
                step = self._steps[key] = self._step(activity, role, user)
            alone, reason = step
            if alone is None:
                if skipped is None:
                    skipped = [reason]
                else:
                    skipped.append(reason)
                continue
            if skipped is None:
                return alone
            return TaskOwner(alone.owner_id, role, (*skipped, *alone.trace))
        fallback = self._record.get((activity, record_owner))
        if fallback is None:
            known = (
                record_owner is not None
                and record_owner not in self._inactive
                and (record_owner == self._default or self._users.signals_user_for(record_owner))
            )
            fallback = _fallback(activity, record_owner, known=bool(known))
            self._record[activity, record_owner] = fallback
        if skipped is None:
            return fallback
        return TaskOwner(fallback.owner_id, None, (*skipped, *fallback.trace))

    def _step(self, activity: str, role: Role, user: SignalsUser) -> _Step:
        crm_id = self._users.crm_user_for(user)
        if crm_id is None:
            return None, info(
                "task_owner_unmapped",
                f"the {role.value} {_who(user)} is not mapped to a CRM user; skipped",
                role=role.value,
            )
        if crm_id in self._inactive:
            return None, info(
                "task_owner_inactive",
                f"the {role.value} {_who(user)} maps to CRM user {crm_id}, which is inactive; "
                "skipped",
                role=role.value,
            )
        chosen = info(
            "task_owner",
            f"{activity}: owned by the {role.value} {_who(user)} (CRM user {crm_id})",
            role=role.value,
            owner_id=crm_id,
        )
        return TaskOwner(crm_id, role, (chosen,)), chosen


def _fallback(activity: str, record_owner: str | None, *, known: bool) -> TaskOwner:
    """Rules 3 and 4: the record's owner (a user the integration knows), else the CRM's
    default."""
    if record_owner is not None and not known:
        reason = info(
            "task_owner_crm_default",
            f"{activity}: the record's owner {record_owner} is not a CRM user this integration "
            "knows (a queue, or unmapped); the CRM's default",
        )
        return TaskOwner(None, None, (reason,))
    if record_owner is not None:
        reason = info(
            "task_owner_record",
            f"{activity}: owned by the record's owner {record_owner}",
            owner_id=record_owner,
        )
        return TaskOwner(record_owner, None, (reason,))
    reason = info("task_owner_crm_default", f"{activity}: no owner known; the CRM's default")
    return TaskOwner(None, None, (reason,))


def resolve_task_owner(
    roles: tuple[Role, ...],
    participants: Participants,
    users: UserMapping,
    record_owner: str | None,
    *,
    default_owner: str | None = None,
) -> TaskOwner:
    """Apply the task-owner rule once (to decide many tasks, keep a :class:`TaskOwnerRule`)."""
    return TaskOwnerRule(users, default_owner).resolve(roles, participants, record_owner)
