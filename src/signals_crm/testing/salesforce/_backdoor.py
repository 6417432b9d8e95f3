"""Direct access to a local org's data, bypassing HTTP: the conformance kit's ``Backdoor``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from signals_crm.adapters.salesforce._requests import TaskMarker
from signals_crm.core.model import FieldValue, PersonKind, normalize_email
from signals_crm.testing.salesforce._org import LocalSalesforce
from signals_crm.testing.salesforce._records import DuplicateRule

__all__ = ["SalesforceBackdoor"]


class SalesforceBackdoor:
    """Seeds and reads a :class:`LocalSalesforce` directly (no validation, no API calls).

    ``task_marker`` must match the adapter's, so :meth:`task_markers` reads markers where the
    adapter stores them.
    """

    def __init__(self, org: LocalSalesforce, *, task_marker: TaskMarker | None = None) -> None:
        self.org = org
        self.task_marker = task_marker or TaskMarker()

    def __repr__(self) -> str:
        return f"SalesforceBackdoor({self.org!r})"

    def _insert(
        self, object_name: str, values: Mapping[str, Any], when: datetime | None = None
    ) -> str:
        with self.org._lock:  # noqa: SLF001  # the backdoor is part of the org
            obj = self.org.data.object(object_name)
            if obj is None:  # pragma: no cover - only standard objects are seeded
                raise KeyError(object_name)
            return self.org.data.insert_raw(obj, values, when=when)

    def seed_person(
        self,
        *,
        kind: PersonKind,
        email: str,
        fields: Mapping[str, FieldValue] | None = None,
        is_converted: bool = False,
        converted_contact_id: str | None = None,
        last_modified: datetime | None = None,
    ) -> str:
        """Create a Lead or Contact directly (placeholder LastName/Company when missing)."""
        values: dict[str, Any] = {"LastName": "Seeded"}
        if kind is PersonKind.LEAD:
            values["Company"] = "Seeded Inc."
        values.update(fields or {})
        values["Email"] = email
        if kind is PersonKind.LEAD and is_converted:
            values["IsConverted"] = True
            values["ConvertedContactId"] = converted_contact_id
            values["Status"] = "Closed - Converted"
        object_name = "Lead" if kind is PersonKind.LEAD else "Contact"
        return self._insert(object_name, values, last_modified)

    def seed_account(
        self, *, domain: str, name: str, fields: Mapping[str, FieldValue] | None = None
    ) -> str:
        """Create an Account whose Website is ``https://www.<domain>/``."""
        values: dict[str, Any] = {"Name": name, "Website": f"https://www.{domain}/"}
        values.update(fields or {})
        return self._insert("Account", values)

    def seed_user(self, *, email: str, active: bool = True, name: str | None = None) -> str:
        """Create a User."""
        full_name = name or email.split("@", 1)[0]
        first, _, last = full_name.partition(" ")
        return self._insert(
            "User",
            {
                "Username": email,
                "Email": email,
                "FirstName": first if last else None,
                "LastName": last or first,
                "Name": full_name,
                "IsActive": active,
            },
        )

    def set_user_active(self, user_id: str, active: bool) -> None:
        """Activate or deactivate a User, as an administrator does in Setup (Salesforce then
        refuses it as a record's owner with ``INACTIVE_OWNER_OR_USER``)."""
        with self.org._lock:  # noqa: SLF001  # the backdoor is part of the org
            found = self.org.data.find(user_id)
            if found is None or found[0].name != "User":
                raise KeyError(user_id)
            found[1]["IsActive"] = active

    def seed_campaign(self, *, name: str) -> str:
        """Create an active Campaign."""
        return self._insert("Campaign", {"Name": name, "IsActive": True})

    def record(self, record_id: str) -> dict[str, Any] | None:
        """A copy of any live record by id (15 or 18 characters)."""
        with self.org._lock:  # noqa: SLF001  # the backdoor is part of the org
            found = self.org.data.find(record_id)
            return dict(found[1]) if found else None

    def person_fields(self, record_id: str) -> Mapping[str, FieldValue] | None:
        """Every stored field of a Lead or Contact, or ``None`` when there is none."""
        with self.org._lock:  # noqa: SLF001  # the backdoor is part of the org
            found = self.org.data.find(record_id)
            if found is None or found[0].name not in ("Lead", "Contact"):
                return None
            return dict(found[1])

    def people_with_email(self, email: str) -> list[str]:
        """Ids of Leads and Contacts with this email (case-insensitive), oldest first."""
        key = normalize_email(email)
        with self.org._lock:  # noqa: SLF001  # the backdoor is part of the org
            return [
                rid
                for name in ("lead", "contact")
                for rid, record in self.org.data.records[name].items()
                if normalize_email(str(record.get("Email") or "")) == key
            ]

    def tasks(self, person_id: str) -> list[dict[str, Any]]:
        """Copies of the Tasks whose WhoId is ``person_id``."""
        with self.org._lock:  # noqa: SLF001  # the backdoor is part of the org
            return [
                dict(task)
                for task in self.org.data.records["task"].values()
                if str(task.get("WhoId") or "")[:15] == person_id[:15]
            ]

    def task_markers(self, person_id: str) -> list[str]:
        """The markers of the Tasks on that person, read where the adapter writes them."""
        markers = [self.task_marker.read(task) for task in self.tasks(person_id)]
        return [m for m in markers if m is not None]

    def campaign_members(self, campaign_id: str) -> set[str]:
        """Lead/Contact ids of the campaign's members."""
        with self.org._lock:  # noqa: SLF001  # the backdoor is part of the org
            return {
                str(m.get("LeadId") or m.get("ContactId"))
                for m in self.org.data.records["campaignmember"].values()
                if str(m.get("CampaignId"))[:15] == campaign_id[:15]
            }

    def enable_duplicate_detection(self) -> bool:
        """Activate a blocking same-email duplicate rule on Leads."""
        with self.org._lock:  # noqa: SLF001  # the backdoor is part of the org
            if self.org.duplicate_rule is None:
                self.org.duplicate_rule = DuplicateRule()
        return True
