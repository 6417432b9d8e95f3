"""Proposing a user mapping: Signals users → CRM users, by email.

The rule:

1. Only active CRM users are candidates.
2. A Signals user matches the CRM user with the same email, trimmed and compared
   case-insensitively.
3. A Signals user without an email, or whose email no active CRM user has, is left unmatched.
4. Several active CRM users with the same email make the match ambiguous: nothing is
   proposed for that Signals user (a person must choose).
5. The result is a proposal: a :class:`~signals_crm.core.config.UserMapping` to review, the
   unmatched and ambiguous users, and the reasons.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from signals_crm.core.config import UserMapEntry, UserMapping
from signals_crm.core.explain import reason_dict
from signals_crm.core.model import CRMUser, SignalsUser, normalize_email
from signals_crm.core.trace import Reason, info, warning

__all__ = ["UserMappingProposal", "propose_user_mapping"]


@attrs.frozen
class UserMappingProposal:
    """A proposed user mapping and what it could not decide.

    :meth:`as_settings` gives the proposal as the settings' ``user_mapping`` entries (for
    ``IntegrationSettings.with_user_mapping_proposal``, or to save as they are);
    :meth:`as_dict` is its JSON form for a settings page.
    """

    mapping: UserMapping
    unmatched: tuple[SignalsUser, ...]
    ambiguous: tuple[SignalsUser, ...]
    trace: tuple[Reason, ...]

    def as_settings(self) -> list[dict[str, Any]]:
        """The proposed entries as the settings' ``user_mapping`` list (``None`` left out)."""
        out: list[dict[str, Any]] = []
        for entry in self.mapping.entries:
            item: dict[str, Any] = {"crm_user_id": entry.crm_user_id}
            if entry.signals_user_id is not None:
                item["signals_user_id"] = entry.signals_user_id
            if entry.signals_email is not None:
                item["signals_email"] = entry.signals_email
            item["licensed"] = entry.licensed
            out.append(item)
        return out

    def as_dict(self) -> dict[str, Any]:
        """The JSON form: the entries, who is unmatched or ambiguous, and why."""

        def user(u: SignalsUser) -> dict[str, Any]:
            return {"id": u.id, "email": u.email}

        return {
            "user_mapping": self.as_settings(),
            "unmatched": [user(u) for u in self.unmatched],
            "ambiguous": [user(u) for u in self.ambiguous],
            "reasons": [reason_dict(r) for r in self.trace],
        }


def propose_user_mapping(
    signals_users: Iterable[SignalsUser], crm_users: Iterable[CRMUser]
) -> UserMappingProposal:
    """Match Signals users to active CRM users by email (see the module docstring)."""
    by_email: dict[str, list[CRMUser]] = {}
    for user in crm_users:
        if user.active and user.email:
            by_email.setdefault(normalize_email(user.email), []).append(user)
    entries: list[UserMapEntry] = []
    unmatched: list[SignalsUser] = []
    ambiguous: list[SignalsUser] = []
    trace: list[Reason] = []
    for person in signals_users:
        who = person.email or person.id
        if not person.email:
            unmatched.append(person)
            trace.append(info("user_no_email", f"Signals user {who} has no email"))
            continue
        found = by_email.get(normalize_email(person.email), [])
        if not found:
            unmatched.append(person)
            trace.append(info("user_unmatched", f"no active CRM user has the email {who}"))
            continue
        if len(found) > 1:
            ambiguous.append(person)
            ids = ", ".join(sorted(u.id for u in found))
            trace.append(warning("user_ambiguous", f"{who} matches several CRM users: {ids}"))
            continue
        entries.append(
            UserMapEntry(
                crm_user_id=found[0].id,
                signals_user_id=person.id,
                signals_email=person.email.strip(),
            )
        )
        trace.append(info("user_matched", f"{who} is CRM user {found[0].id}"))
    return UserMappingProposal(
        UserMapping(tuple(entries)), tuple(unmatched), tuple(ambiguous), tuple(trace)
    )
