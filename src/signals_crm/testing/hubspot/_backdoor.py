"""Direct access to a local portal, bypassing HTTP: the conformance kit's ``Backdoor``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from signals_crm.adapters.hubspot._requests import parse_marker, property_value
from signals_crm.core.model import FieldValue, PersonKind, normalize_email
from signals_crm.core.normalize import normalize_domain
from signals_crm.testing.hubspot._core import Owner

if TYPE_CHECKING:
    from signals_crm.testing.hubspot._portal import LocalHubSpot

__all__ = ["HubSpotBackdoor"]


def _text(value: FieldValue) -> str:
    return property_value(value)


class HubSpotBackdoor:
    """Reads and writes a :class:`LocalHubSpot` directly (the conformance kit's Backdoor)."""

    def __init__(self, portal: LocalHubSpot) -> None:
        self.portal = portal

    def __repr__(self) -> str:
        return f"HubSpotBackdoor({self.portal!r})"

    def seed_person(
        self,
        *,
        kind: PersonKind = PersonKind.CONTACT,
        email: str,
        fields: Mapping[str, FieldValue] | None = None,
        is_converted: bool = False,
        converted_contact_id: str | None = None,
        last_modified: datetime | None = None,
    ) -> str:
        """Create a contact (HubSpot has no other person kind); returns its id.

        ``associatedcompanyid`` in ``fields`` makes that company the contact's primary one
        (an association, as HubSpot sets that property)."""
        del kind, is_converted, converted_contact_id
        portal = self.portal
        with portal.lock:
            props = {k: _text(v) for k, v in (fields or {}).items() if v is not None}
            company = props.pop("associatedcompanyid", None)
            props["email"] = email.strip()
            record = portal._insert("contacts", props)  # noqa: SLF001  # the backdoor is the portal's
            if company is not None:
                portal._associate("contacts", record, "companies", company, 1)  # noqa: SLF001
            if last_modified is not None:
                stamp = last_modified.timestamp()
                record.updated = stamp
                record.props["lastmodifieddate"] = portal._now_iso(stamp)  # noqa: SLF001
            return record.id

    def seed_account(
        self, *, domain: str, name: str, fields: Mapping[str, FieldValue] | None = None
    ) -> str:
        """Create a company with this domain and name; returns its id."""
        with self.portal.lock:
            props = {k: _text(v) for k, v in (fields or {}).items() if v is not None}
            props.update(domain=normalize_domain(domain), name=name)
            return self.portal._insert("companies", props).id  # noqa: SLF001

    def seed_user(self, *, email: str, active: bool = True, name: str | None = None) -> str:
        """Create an owner (archived when not active); returns its owner id."""
        portal = self.portal
        with portal.lock:
            first, _, last = (name or "").partition(" ")
            owner_id = str(next(portal._ids))  # noqa: SLF001
            portal.owners[owner_id] = Owner(
                id=owner_id,
                email=email.strip(),
                first_name=first or None,
                last_name=last or None,
                user_id=next(portal._user_ids),  # noqa: SLF001
                archived=not active,
                created=portal.clock(),
            )
            return owner_id

    def seed_campaign(self, *, name: str) -> str:
        """Create a static (``MANUAL``) contact list; returns its id."""
        return self.portal.create_list(name)

    def person_fields(self, record_id: str) -> Mapping[str, FieldValue] | None:
        """The stored properties of a contact, or ``None``."""
        with self.portal.lock:
            record = self.portal.objects["contacts"].get(record_id)
            if record is None or record.archived:
                return None
            return dict(record.props)

    def people_with_email(self, email: str) -> list[str]:
        """Ids of the contacts with this email (case-insensitive)."""
        key = normalize_email(email)
        with self.portal.lock:
            return sorted(
                (
                    r.id
                    for r in self.portal.objects["contacts"].values()
                    if not r.archived and normalize_email(r.props.get("email", "")) == key
                ),
                key=int,
            )

    def task_markers(self, person_id: str) -> list[str]:
        """The markers of the tasks and notes associated with the contact."""
        markers: list[str] = []
        with self.portal.lock:
            for kind, body in (("tasks", "hs_task_body"), ("notes", "hs_note_body")):
                for record in self.portal.objects[kind].values():
                    if record.archived or person_id not in record.assoc.get("contacts", {}):
                        continue
                    marker = parse_marker(record.props.get(body))
                    if marker is not None:
                        markers.append(marker)
        return markers

    def campaign_members(self, campaign_id: str) -> set[str]:
        """The record ids in the list."""
        with self.portal.lock:
            found = self.portal.lists.get(campaign_id)
            return set(found.members) if found else set()

    def enable_duplicate_detection(self) -> bool:
        """Contact emails are always unique in HubSpot: nothing to switch on."""
        return True

    def tasks_of(self, person_id: str) -> list[dict[str, str]]:
        """The properties of the tasks associated with the contact."""
        with self.portal.lock:
            return [
                dict(r.props)
                for r in self.portal.objects["tasks"].values()
                if not r.archived and person_id in r.assoc.get("contacts", {})
            ]

    def company_fields(self, record_id: str) -> Mapping[str, str] | None:
        """The stored properties of a company, or ``None``."""
        with self.portal.lock:
            record = self.portal.objects["companies"].get(record_id)
            return dict(record.props) if record is not None and not record.archived else None
