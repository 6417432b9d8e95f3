"""Settings catalogs: what a settings page can offer, worked out from the CRM's own metadata.

The rules (``docs/settings-page.md`` shows them at work):

1. **Signals fields** (:data:`SIGNALS_FIELDS`) are every dotted path a mapping may name, each
   with its value type. ``contact.<field>`` (fields Signals adds to a contact) and
   ``company.<attribute>`` (company attributes, pulled account fields included) are patterns
   whose values may be of any type.
2. **Type compatibility** (:data:`RECEIVES`): a CRM field receives a Signals field when the
   sync writes the value as the CRM expects it (``core/mapping.py`` rule 5), without a drop:

   ===================  ============================================================
   Signals type          CRM field types that receive it
   ===================  ============================================================
   string                string, textarea, picklist, multipicklist
   textarea              textarea, string (too-long text is truncated, with a warning)
   email / phone / url   the same type, string, textarea
   integer               integer, number, string, textarea
   date                  date, string, textarea
   datetime              datetime, date (its day), string, textarea
   any (a pattern)       every type but id, reference and other
   ===================  ============================================================

   A value that is not one of a restricted picklist's values is dropped at sync time with a
   warning: the catalog lists the picklist's values so the page can say so.
3. **Push tab** (``lead`` on Salesforce, ``contact`` on HubSpot): the person object's fields
   that can be set on create, that receive at least one Signals field, except the email field
   (the sync always writes the visitor's email), the adapter's ``sync_key_field`` (the sync
   writes its idempotency key there) and fields holding a user id (the owner rules set the
   owner). ``updateable`` says whether ``overwrite`` can be offered.
4. **The tab that never applies** on this CRM is listed with ``applies`` false and the reason
   (``core/mapping.py`` rule 6), and no fields.
5. **Account tab** (pulled): every field of the account object but its ids, each with a
   suggested source ``company.<attribute>`` (the field's name in snake case, ``__c`` dropped).
6. **Owner fields**, for ownership rules: the account fields holding a CRM user's id
   (``FieldSchema.names_user``) that people set — audit fields (created by, last modified by)
   name who touched the record, not who owns it, and are left out.
7. **Users**: every CRM user the adapter lists (inactive ones flagged), and, given the Signals
   users, the proposed user mapping (:mod:`signals_crm.core.users`), which converts straight
   into settings.
8. **Campaigns**: those a sync may join, when the adapter lists them (Salesforce: active
   Campaigns; HubSpot: static lists); ``None`` when it cannot.
9. Without a schema (an adapter that cannot describe), tabs list no fields and say so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import attrs

from signals_crm.core.crm import CampaignInfo, Capabilities
from signals_crm.core.explain import SCHEMA_VERSION
from signals_crm.core.mapping import tab_meaning
from signals_crm.core.model import (
    VISITOR_FIELDS,
    CRMUser,
    FieldSchema,
    FieldType,
    ObjectSchema,
)
from signals_crm.core.users import UserMappingProposal

__all__ = [
    "RECEIVES",
    "SIGNALS_FIELDS",
    "CRMFieldOption",
    "MappingTabCatalog",
    "SettingsCatalog",
    "SignalsField",
    "build_catalog",
    "receives",
    "suggested_attribute",
]

F = FieldType
_TEXTS = frozenset({F.STRING, F.TEXTAREA})
RECEIVES: Final[Mapping[FieldType | None, frozenset[FieldType]]] = {
    F.STRING: _TEXTS | {F.PICKLIST, F.MULTIPICKLIST},
    F.TEXTAREA: _TEXTS,
    F.EMAIL: _TEXTS | {F.EMAIL},
    F.PHONE: _TEXTS | {F.PHONE},
    F.URL: _TEXTS | {F.URL},
    F.INTEGER: _TEXTS | {F.INTEGER, F.NUMBER},
    F.DATE: _TEXTS | {F.DATE},
    F.DATETIME: _TEXTS | {F.DATETIME, F.DATE},
    None: frozenset(FieldType) - {F.ID, F.REFERENCE, F.OTHER},
}
"""Rule 2: a Signals value type (``None``: any) → the CRM field types that receive it."""


def receives(crm_type: FieldType, signals_type: FieldType | None) -> bool:
    """Whether a CRM field of ``crm_type`` receives a Signals field of ``signals_type``."""
    return crm_type in RECEIVES[signals_type]


@attrs.frozen
class SignalsField:
    """One Signals field a mapping can name: its dotted path, value type (``None``: any) and
    label. A ``pattern`` stands for many (``company.<attribute>``)."""

    path: str
    type: FieldType | None
    label: str
    pattern: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "type": self.type.value if self.type is not None else "any",
            "label": self.label,
            "pattern": self.pattern,
        }


_VISITOR_TYPES = {
    "email": F.EMAIL,
    "other_email": F.EMAIL,
    "phone": F.PHONE,
    "home_phone": F.PHONE,
    "mobile_phone": F.PHONE,
    "other_phone": F.PHONE,
    "birthdate": F.DATETIME,
    "description": F.TEXTAREA,
}


def _label(path: str) -> str:
    group, _, name = path.rpartition(".")
    where = {"chat.meeting": "Meeting"}.get(group, group.capitalize())
    return f"{where}: {name.replace('_', ' ')}"


def _signals_fields() -> tuple[SignalsField, ...]:
    typed: list[tuple[str, FieldType | None]] = [
        (f"contact.{name}", _VISITOR_TYPES.get(name, F.STRING)) for name in VISITOR_FIELDS
    ]
    typed += [
        ("chat.transcript", F.TEXTAREA),
        ("chat.referrer", F.URL),
        ("chat.source_type", F.STRING),
        ("chat.traffic_source", F.STRING),
        ("chat.traffic_campaign", F.STRING),
        ("chat.meeting.name", F.STRING),
        ("chat.meeting.date", F.DATE),
        ("chat.meeting.agent_name", F.STRING),
        ("chat.meeting.duration_minutes", F.INTEGER),
        ("company.domain", F.STRING),
        ("company.name", F.STRING),
        ("conversation.id", F.STRING),
        ("conversation.lead_score", F.INTEGER),
        ("conversation.closed_at", F.DATETIME),
    ]
    fields = [SignalsField(path, kind, _label(path)) for path, kind in typed]
    fields += [
        SignalsField("contact.<field>", None, "Contact: a field Signals adds", pattern=True),
        SignalsField(
            "company.<attribute>", None, "Company: an attribute (pulled ones too)", pattern=True
        ),
    ]
    return tuple(fields)


SIGNALS_FIELDS: Final[tuple[SignalsField, ...]] = _signals_fields()
"""Rule 1: every Signals field a mapping can name."""


@attrs.frozen
class CRMFieldOption:
    """One CRM field a settings page can offer, from the CRM's describe/properties.

    ``accepts`` lists the Signals fields it can receive (push tab), ``suggested_source`` the
    company attribute a pulled field would become (account tab).
    """

    name: str
    label: str | None
    type: FieldType
    length: int | None = None
    required: bool = False
    createable: bool = True
    updateable: bool = True
    picklist_values: tuple[str, ...] | None = None
    restricted_picklist: bool = False
    accepts: tuple[str, ...] = ()
    suggested_source: str | None = None

    @classmethod
    def of(
        cls,
        field: FieldSchema,
        *,
        accepts: tuple[str, ...] = (),
        suggested_source: str | None = None,
    ) -> CRMFieldOption:
        return cls(
            name=field.name,
            label=field.label,
            type=field.type,
            length=field.length,
            required=field.required,
            createable=field.createable,
            updateable=field.updateable,
            picklist_values=field.picklist_values,
            restricted_picklist=field.restricted_picklist,
            accepts=accepts,
            suggested_source=suggested_source,
        )

    def as_dict(self) -> dict[str, Any]:
        values = self.picklist_values
        return {
            "name": self.name,
            "label": self.label,
            "type": self.type.value,
            "length": self.length,
            "required": self.required,
            "createable": self.createable,
            "updateable": self.updateable,
            "picklist_values": list(values) if values is not None else None,
            "restricted_picklist": self.restricted_picklist,
            "accepts": list(self.accepts),
            "suggested_source": self.suggested_source,
        }


@attrs.frozen
class MappingTabCatalog:
    """One mapping tab on this CRM (rules 3 to 5, 9): what it means and the fields it offers."""

    tab: str
    applies: bool
    direction: str | None
    object_name: str | None
    note: str
    described: bool
    fields: tuple[CRMFieldOption, ...] = ()

    def targets_for(self, source: str) -> tuple[CRMFieldOption, ...]:
        """The fields of this tab that can receive the Signals field ``source`` (a path of
        :data:`SIGNALS_FIELDS`; any ``contact.*`` / ``company.*`` path counts as its
        pattern)."""
        known = {f.path for f in SIGNALS_FIELDS}
        if source not in known:
            prefix = source.partition(".")[0]
            source = {"contact": "contact.<field>", "company": "company.<attribute>"}.get(
                prefix, source
            )
        return tuple(f for f in self.fields if source in f.accepts)

    def field(self, name: str) -> CRMFieldOption | None:
        """The offered field called ``name`` (any case), or ``None``."""
        lowered = name.lower()
        return next((f for f in self.fields if f.name.lower() == lowered), None)

    def as_dict(self) -> dict[str, Any]:
        targets: dict[str, list[str]] = {}
        if self.direction == "push":
            for signals in SIGNALS_FIELDS:
                names = [f.name for f in self.fields if signals.path in f.accepts]
                if names:
                    targets[signals.path] = names
        return {
            "tab": self.tab,
            "applies": self.applies,
            "direction": self.direction,
            "object": self.object_name,
            "note": self.note,
            "described": self.described,
            "fields": [f.as_dict() for f in self.fields],
            "targets": targets,
        }


def _user_dict(user: CRMUser) -> dict[str, Any]:
    return {"id": user.id, "name": user.name, "email": user.email, "active": user.active}


def _campaign_dict(campaign: CampaignInfo) -> dict[str, Any]:
    return {"id": campaign.id, "name": campaign.name, "active": campaign.active}


@attrs.frozen
class SettingsCatalog:
    """Everything a settings page offers for one CRM connection, as plain data (``as_dict``;
    schema ``settings_catalog``). See the module docstring for the rules."""

    capabilities: Capabilities
    signals_fields: tuple[SignalsField, ...]
    tabs: Mapping[str, MappingTabCatalog]
    owner_fields: tuple[CRMFieldOption, ...]
    users: tuple[CRMUser, ...]
    user_mapping: UserMappingProposal | None = None
    campaigns: tuple[CampaignInfo, ...] | None = None

    def tab(self, name: str) -> MappingTabCatalog:
        """The catalog of one mapping tab (``lead``, ``contact`` or ``account``)."""
        return self.tabs[name]

    @property
    def push_tab(self) -> MappingTabCatalog:
        """The tab whose mappings are written to the person record on this CRM."""
        return self.tabs[self.capabilities.person_kind.value]

    def as_dict(self) -> dict[str, Any]:
        caps = self.capabilities
        return {
            "schema_version": SCHEMA_VERSION,
            "crm": {
                "name": caps.name,
                "person_object": caps.person_object,
                "account_object": caps.account_object,
                "campaign_kind": caps.campaign_kind if caps.supports_campaigns else None,
            },
            "signals_fields": [f.as_dict() for f in self.signals_fields],
            "tabs": {name: tab.as_dict() for name, tab in self.tabs.items()},
            "owner_fields": [f.as_dict() for f in self.owner_fields],
            "users": [_user_dict(u) for u in self.users],
            "user_mapping": self.user_mapping.as_dict() if self.user_mapping else None,
            "campaigns": (
                [_campaign_dict(c) for c in self.campaigns] if self.campaigns is not None else None
            ),
        }


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def suggested_attribute(field_name: str) -> str:
    """The company attribute a pulled account field suggests: ``NumberOfEmployees`` →
    ``number_of_employees``, ``SDR_Owner__c`` → ``sdr_owner``, ``industry`` → ``industry``."""
    name = field_name.removesuffix("__c")
    snake = _CAMEL.sub("_", name).lower()
    snake = re.sub(r"[^a-z0-9_]+", "_", snake)
    return re.sub(r"_+", "_", snake).strip("_") or "field"


def _push_fields(schema: ObjectSchema, caps: Capabilities) -> tuple[CRMFieldOption, ...]:
    written = {caps.email_field.lower(), (caps.sync_key_field or "").lower()}
    offered = []
    for field in sorted(schema.fields.values(), key=lambda f: f.name.lower()):
        if not field.createable or field.names_user or field.name.lower() in written:
            continue
        accepts = tuple(s.path for s in SIGNALS_FIELDS if receives(field.type, s.type))
        if accepts:
            offered.append(CRMFieldOption.of(field, accepts=accepts))
    return tuple(offered)


def _pull_fields(schema: ObjectSchema) -> tuple[CRMFieldOption, ...]:
    return tuple(
        CRMFieldOption.of(
            field,
            accepts=("company.<attribute>",),
            suggested_source=f"company.{suggested_attribute(field.name)}",
        )
        for field in sorted(schema.fields.values(), key=lambda f: f.name.lower())
        if field.type is not FieldType.ID
    )


def _owner_fields(schema: ObjectSchema | None) -> tuple[CRMFieldOption, ...]:
    if schema is None:
        return ()
    return tuple(
        CRMFieldOption.of(field)
        for field in sorted(schema.fields.values(), key=lambda f: f.name.lower())
        if field.names_user and field.updateable
    )


def _tab(tab: str, caps: Capabilities, schema: ObjectSchema | None) -> MappingTabCatalog:
    meaning = tab_meaning(tab, caps)
    note = meaning.note
    if meaning.applies and schema is None:
        note += "; the CRM did not describe its fields, so they are not listed"
    fields: tuple[CRMFieldOption, ...] = ()
    if meaning.applies and schema is not None:
        fields = _pull_fields(schema) if meaning.direction == "pull" else _push_fields(schema, caps)
    return MappingTabCatalog(
        tab=tab,
        applies=meaning.applies,
        direction=meaning.direction,
        object_name=meaning.object_name,
        note=note,
        described=schema is not None,
        fields=fields,
    )


def build_catalog(
    capabilities: Capabilities,
    *,
    person_schema: ObjectSchema | None,
    account_schema: ObjectSchema | None,
    users: Sequence[CRMUser],
    campaigns: Iterable[CampaignInfo] | None = None,
    user_mapping: UserMappingProposal | None = None,
) -> SettingsCatalog:
    """The catalog from what the adapter answered (rules 1 to 9); pure."""
    tabs = {
        "lead": _tab("lead", capabilities, person_schema),
        "contact": _tab("contact", capabilities, person_schema),
        "account": _tab("account", capabilities, account_schema),
    }
    return SettingsCatalog(
        capabilities=capabilities,
        signals_fields=SIGNALS_FIELDS,
        tabs=tabs,
        owner_fields=_owner_fields(account_schema),
        users=tuple(users),
        user_mapping=user_mapping,
        campaigns=tuple(campaigns) if campaigns is not None else None,
    )
