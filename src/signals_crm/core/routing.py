"""Routing pulls: who owns a returning visitor in the CRM, as a Signals user.

A chat with a visitor the CRM already knows should go to the person who owns them there. The
rule:

1. The visitor's person records are found by email (one lookup for many visitors): trimmed,
   compared case-insensitively, exactly as a sync matches.
2. The candidates, in order: the visitor's **Lead** (the best non-converted one: most recently
   modified, ties by the smallest id; Salesforce only), its **Contact** (the best one; on
   HubSpot the contact is the person record), then the Contact's **Account** (Salesforce's
   ``Contact.AccountId``; HubSpot's primary company, ``associatedcompanyid``), read by id when
   the adapter can (``Capabilities.reads_accounts``).
3. Each candidate's owner field (``Capabilities.owner_field``: ``OwnerId``,
   ``hubspot_owner_id``) names a CRM user. It yields a Signals user when the user mapping maps
   it to a **licensed** Signals user; otherwise the candidate is skipped with a reason.
4. The first candidate that yields one wins. The result names the Signals user and the path:
   which record (kind and id) and which field held the owner, and the CRM user it was.
5. No candidate yields one → no Signals user, path ``none``; the trace says why each
   candidate failed, and ``crm_owner_id`` keeps the first CRM owner seen, if any.
6. A visitor without a valid email has no records: path ``none``, reason ``no_email``.
"""

from __future__ import annotations

import enum
from collections.abc import Generator, Sequence
from typing import Any

import attrs

from signals_crm.core.config import UserMapping
from signals_crm.core.crm import FindPeople, ReadAccounts
from signals_crm.core.matching import best_record
from signals_crm.core.model import (
    AccountRecord,
    PersonKind,
    PersonRecord,
    is_valid_email,
    normalize_email,
)
from signals_crm.core.trace import Reason, info
from signals_crm.exceptions import PlanningError

__all__ = ["VisitorOwner", "VisitorOwnerPath", "decide_visitor_owner", "plan_visitor_owners"]


class VisitorOwnerPath(enum.Enum):
    """Which record's owner field gave the visitor's owner."""

    LEAD_OWNER = "lead_owner"
    CONTACT_OWNER = "contact_owner"
    ACCOUNT_OWNER = "account_owner"
    NONE = "none"


@attrs.frozen
class VisitorOwner:
    """The Signals user who owns a returning visitor in the CRM, and how that was found.

    ``record_kind``/``record_id``/``field`` name the record and field that held the owner
    (``None`` when none did); ``crm_owner_id`` is that CRM user (or, on path ``none``, the first
    CRM owner seen); ``lead_id``, ``contact_id`` and ``account_id`` are the records found.
    """

    email: str
    signals_user: str | None
    path: VisitorOwnerPath
    record_kind: str | None = None
    record_id: str | None = None
    field: str | None = None
    crm_owner_id: str | None = None
    lead_id: str | None = None
    contact_id: str | None = None
    account_id: str | None = None
    trace: tuple[Reason, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data (the trace as ``{code, message}`` items)."""
        return {
            "email": self.email,
            "signals_user": self.signals_user,
            "path": self.path.value,
            "record_kind": self.record_kind,
            "record_id": self.record_id,
            "field": self.field,
            "crm_owner_id": self.crm_owner_id,
            "lead_id": self.lead_id,
            "contact_id": self.contact_id,
            "account_id": self.account_id,
            "trace": [{"code": r.code, "message": r.message} for r in self.trace],
        }


def _best(records: Sequence[PersonRecord], kind: PersonKind) -> PersonRecord | None:
    live = [r for r in records if r.kind is kind and not r.is_converted]
    return best_record(live) if live else None


def _owner_of(
    label: str, crm_user: str | None, users: UserMapping, trace: list[Reason]
) -> str | None:
    """The licensed Signals user of ``crm_user`` (rule 3), with a reason either way."""
    if not crm_user:
        trace.append(info("owner_field_empty", f"{label} has no owner"))
        return None
    entry = users.signals_user_for(crm_user)
    if entry is None:
        trace.append(info("owner_not_signals_user", f"{label} owner {crm_user} is not mapped"))
        return None
    if not entry.licensed:
        msg = f"{label} owner {crm_user} is not a licensed Signals user"
        trace.append(info("owner_not_licensed", msg))
        return None
    who = entry.signals_user_id or entry.signals_email
    trace.append(info("owner_found", f"{label} owner {crm_user} is Signals user {who}"))
    return who


def decide_visitor_owner(
    email: str,
    records: Sequence[PersonRecord],
    account: AccountRecord | None,
    users: UserMapping,
    *,
    owner_field: str,
) -> VisitorOwner:
    """Apply rules 2-5 to the records found for ``email`` and the Contact's account."""
    trace: list[Reason] = []
    lead = _best(records, PersonKind.LEAD)
    contact = _best(records, PersonKind.CONTACT)
    ids = {
        "lead_id": lead.id if lead else None,
        "contact_id": contact.id if contact else None,
        "account_id": account.id if account else None,
    }
    first_owner: str | None = None
    candidates: list[tuple[VisitorOwnerPath, str, str, str | None]] = []
    if lead is not None:
        candidates.append((VisitorOwnerPath.LEAD_OWNER, "lead", lead.id, lead.owner_id))
    if contact is not None:
        candidates.append((VisitorOwnerPath.CONTACT_OWNER, "contact", contact.id, contact.owner_id))
        if account is not None:
            raw = {k.lower(): v for k, v in account.fields.items()}.get(owner_field.lower())
            owner = str(raw) if raw not in (None, "") else None
            candidates.append((VisitorOwnerPath.ACCOUNT_OWNER, "account", account.id, owner))
        elif contact.account_id:
            trace.append(info("account_not_read", f"account {contact.account_id} was not read"))
    if not candidates:
        trace.append(info("no_person_record", "the CRM has no Lead or Contact with this email"))
    for path, kind, record_id, crm_user in candidates:
        first_owner = first_owner or crm_user
        who = _owner_of(f"{kind} {record_id}", crm_user, users, trace)
        if who is not None:
            return VisitorOwner(
                email, who, path, kind, record_id, owner_field, crm_user, **ids, trace=tuple(trace)
            )
    trace.append(info("no_visitor_owner", "no record of this visitor has a Signals user owner"))
    return VisitorOwner(
        email, None, VisitorOwnerPath.NONE, crm_owner_id=first_owner, **ids, trace=tuple(trace)
    )


def plan_visitor_owners(
    emails: Sequence[str],
    users: UserMapping,
    *,
    owner_field: str,
    read_accounts: bool,
) -> Generator[FindPeople | ReadAccounts, Any, list[VisitorOwner]]:
    """Sans-IO: one :class:`FindPeople` for every email, then (when ``read_accounts``) one
    :class:`ReadAccounts` for the Contacts' accounts; the owner of each visitor, in order."""
    keys = [normalize_email(e) if is_valid_email(e) else "" for e in emails]
    unique = tuple(dict.fromkeys(k for k in keys if k))
    found: dict[str, tuple[PersonRecord, ...]] = {}
    if unique:
        answer = yield FindPeople(unique)
        if answer is None or len(answer) != len(unique):
            raise PlanningError("FindPeople must be answered with one result per email")
        found = dict(zip(unique, answer, strict=True))
    contacts = {k: _best(found.get(k, ()), PersonKind.CONTACT) for k in unique}
    account_ids = tuple(
        dict.fromkeys(c.account_id for c in contacts.values() if c and c.account_id)
    )
    accounts: dict[str, AccountRecord | None] = {}
    if read_accounts and account_ids:
        read = yield ReadAccounts(account_ids, (owner_field,))
        if read is None or len(read) != len(account_ids):
            raise PlanningError("ReadAccounts must be answered with one result per id")
        accounts = dict(zip(account_ids, read, strict=True))
    results: list[VisitorOwner] = []
    for email, key in zip(emails, keys, strict=True):
        if not key:
            reason = info("no_email", "the visitor has no valid email: no record can match")
            results.append(VisitorOwner(email, None, VisitorOwnerPath.NONE, trace=(reason,)))
            continue
        contact = contacts.get(key)
        account = accounts.get(contact.account_id) if contact and contact.account_id else None
        results.append(
            decide_visitor_owner(email, found.get(key, ()), account, users, owner_field=owner_field)
        )
    return results
