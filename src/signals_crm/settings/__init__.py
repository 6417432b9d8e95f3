"""The integration's settings: user input, validated, converted into core values.

:class:`IntegrationSettings` is what a host reads from a file (TOML or JSON) or builds from a
dict. It is a pydantic model, so it never reaches the core: :meth:`IntegrationSettings.to_config`
converts it at the boundary into a frozen :class:`signals_crm.core.config.SyncConfig`.

The rules:

1. **Unknown keys are errors** (``extra="forbid"`` everywhere): a typo fails loudly, with a
   suggestion when a known key is close.
2. **Every problem at once.** :meth:`~IntegrationSettings.from_dict`,
   :meth:`~IntegrationSettings.from_json`, :meth:`~IntegrationSettings.from_toml` and
   :func:`load_settings` raise one :class:`~signals_crm.exceptions.ConfigurationError` (also a
   ``ValueError``) listing every problem with its path, such as
   ``ownership_rules[1].owner_fields: at most 2 fields``. Pydantic's own checks (types, unknown
   keys, missing keys) and the checks across fields (duplicate mapping targets, duplicate
   lead-owner sources, a rule naming an unknown segment, ...) are reported together. Building
   the model directly (``IntegrationSettings(...)``, ``model_validate``) raises pydantic's
   ``ValidationError`` (also a ``ValueError``) whose one error lists the same problems.
3. **Strict scalars.** Booleans are ``true``/``false`` only; texts are texts. Ids may be written
   as integers (HubSpot and Signals ids are numbers) and are kept as text.
4. **The synchronization delay** is seconds (an integer) or text: ``"15m"``, ``"1h30m"``,
   ``"2d"``, ``"90s"`` (units ``d``, ``h``, ``m``, ``s`` in that order), a bare number of
   seconds (``"900"``) or an ISO-8601 duration (``"PT15M"``, ``"P1DT2H"``, ``"P2W"``; no years
   or months, which have no fixed length). Whole seconds only; never negative; at most 30 days.
   It is written back as the compact form (``"1h30m"``, ``"0s"``).
5. **CRM ids** (``campaign_id``, ``default_owner``, ``user_mapping[].crm_user_id``) are
   opaque text: 1 to 255 characters, no spaces or control characters (empty, spaced or
   multi-line ids are malformed). Their *shape* (a Salesforce id has 15 or 18 letters and
   digits, a HubSpot id is digits, a custom CRM's may be ``usr_9f3a``) is the adapter's to
   check: preflight reports an id the configured CRM cannot have
   (:meth:`signals_crm.core.crm.Capabilities.is_id`).
6. **Signals user ids** (``signals_user_id``, ``fallback_user``, ``default_account_owner``) are
   1 to 64 ASCII letters, digits, ``_`` or ``-``, starting with a letter or digit.
7. **CRM field names** (mapping targets, owner fields, placeholder keys) are an ASCII letter
   followed by letters, digits and ``_`` (Salesforce API names such as ``Region__c`` and
   HubSpot internal names such as ``hs_lead_status``).
8. **Mapping sources** are dotted Signals paths: ``contact.<any>`` (unknown contact keys from
   the webhook are kept), ``company.<any>``, and the fixed ``chat.*`` and ``conversation.*``
   fields that :meth:`signals_crm.core.model.Conversation.field_values` produces. The ``account``
   set is pulled into company attributes, so its sources are ``company.*``. Targets are unique
   within a set (compared case-insensitively, as both CRMs do).
9. **Order.** ``lead_owner_sources`` and ``task_events`` are sets: duplicates are errors and the
   order written is irrelevant. The lead-owner priority is fixed (meeting scheduler > last
   routed > closer); the settings keep the chosen sources in that order. ``ownership_rules`` is
   ordered (the first rule whose segment contains the company applies); a second rule on the
   same segment could never apply and is an error.
10. **Round trip.** ``from_dict(s.to_dict()) == s``, and the same through JSON and TOML.
    ``None`` values are left out of a dump (TOML has no null); absent keys load as ``None``.

Settings hold no secrets: CRM credentials belong to the adapters.

The package: ``_models`` (the models, loading and dumping; TOML is written with ``tomli-w``),
``_values`` (the scalar types and list checks of rules 3 and 5 to 9), ``_delay`` (rule 4) and
``_problems`` (pydantic errors → paths, rule 2; the webhook reader reports its problems with the
same paths and words).
"""

from __future__ import annotations

from signals_crm.settings._delay import MAX_DELAY, format_delay, parse_delay
from signals_crm.settings._models import (
    DEFAULT_PLACEHOLDERS,
    ConditionGroupSettings,
    ConditionSettings,
    ContactPolicyName,
    CriteriaName,
    DomainListSettings,
    FallbackCriteriaSettings,
    FieldMappingSettings,
    FieldMappingsSettings,
    IntegrationSettings,
    MappingTab,
    MatchName,
    OperatorName,
    OwnershipRuleSettings,
    OwnerSource,
    SegmentSettings,
    TaskEvent,
    UserMapEntrySettings,
    load_settings,
)
from signals_crm.settings._values import is_crm_id

__all__ = [
    "DEFAULT_PLACEHOLDERS",
    "MAX_DELAY",
    "ConditionGroupSettings",
    "ConditionSettings",
    "ContactPolicyName",
    "CriteriaName",
    "DomainListSettings",
    "FallbackCriteriaSettings",
    "FieldMappingSettings",
    "FieldMappingsSettings",
    "IntegrationSettings",
    "MappingTab",
    "MatchName",
    "OperatorName",
    "OwnerSource",
    "OwnershipRuleSettings",
    "SegmentSettings",
    "TaskEvent",
    "UserMapEntrySettings",
    "format_delay",
    "is_crm_id",
    "load_settings",
    "parse_delay",
]
