"""The shape of a CRM id is the adapter's to check: settings accept any well-formed id, and
preflight reports the ids the configured CRM cannot have."""

from __future__ import annotations

import attrs
import pytest

from signals_crm import Integration
from signals_crm.core.config import SyncConfig, UserMapEntry, UserMapping
from signals_crm.core.crm import Capabilities, id_problems
from signals_crm.core.model import PersonKind
from signals_crm.ledger import MemoryLedger
from signals_crm.settings import IntegrationSettings
from signals_crm.testing import InMemoryCRM

DIGITS = Capabilities(
    name="Digits CRM",
    person_kind=PersonKind.CONTACT,
    person_object="contacts",
    email_field="email",
    id_pattern="[0-9]{1,20}",
    id_description="digits",
)


class DigitsCRM(InMemoryCRM):
    """An in-memory CRM whose capabilities declare that its ids are digits."""

    @property
    def capabilities(self) -> Capabilities:
        """The HubSpot-like capabilities, with an id shape."""
        return attrs.evolve(super().capabilities, id_pattern="[0-9]+", id_description="digits")


def test_is_id_follows_the_declared_pattern() -> None:
    """A pattern must match the whole id; without one, every id has the right shape."""
    assert DIGITS.is_id("12345")
    assert not DIGITS.is_id("12345a")
    assert not DIGITS.is_id("usr_9f3a")
    custom = attrs.evolve(DIGITS, id_pattern=None)
    assert custom.is_id("usr_9f3a")


def test_id_problems_name_every_configured_id_by_its_settings_path() -> None:
    """Campaign, default owner and each mapped CRM user are checked, named as in settings."""
    config = SyncConfig(
        campaign_id="cmp-1",
        default_owner="42",
        users=UserMapping(
            (
                UserMapEntry("usr_9f3a", signals_user_id="u1"),
                UserMapEntry("7", signals_user_id="u2"),
            )
        ),
    )
    problems = id_problems(config, DIGITS)
    assert [(p.path, p.message) for p in problems] == [
        ("campaign_id", "malformed Digits CRM id 'cmp-1': expected digits"),
        ("user_mapping[0].crm_user_id", "malformed Digits CRM id 'usr_9f3a': expected digits"),
    ]
    assert id_problems(config, attrs.evolve(DIGITS, id_pattern=None)) == []


def test_custom_crm_ids_load_from_settings() -> None:
    """The issue's ids, refused before, are settings now (a custom CRM can use settings files)."""
    settings = IntegrationSettings.from_dict(
        {
            "campaign_id": "cmp-1",
            "user_mapping": [{"signals_user_id": "u1", "crm_user_id": "usr_9f3a"}],
        }
    )
    config = settings.to_config()
    assert config.campaign_id == "cmp-1"
    assert config.users.entries[0].crm_user_id == "usr_9f3a"


def make_integration(crm: InMemoryCRM, config: SyncConfig) -> Integration:
    return Integration(crm, config, ledger=MemoryLedger(), sleep=lambda _: None)


def test_preflight_reports_ids_of_the_wrong_shape_once() -> None:
    """A malformed id is reported as such and not looked up again ("no CRM user")."""
    crm = DigitsCRM(person_kind=PersonKind.CONTACT)
    good = crm.seed_user(email="sally@vendor.test")
    config = SyncConfig(
        default_owner="owner-1",
        users=UserMapping(
            (
                UserMapEntry("usr_9f3a", signals_user_id="u1"),
                UserMapEntry("999999", signals_user_id="u2"),
                UserMapEntry(good, signals_user_id="u3"),
            )
        ),
    )
    problems = {p.path: p.message for p in make_integration(crm, config).preflight()}
    assert good.isdigit()
    assert problems == {
        "default_owner": "malformed in-memory (HubSpot-like) id 'owner-1': expected digits",
        "user_mapping[0].crm_user_id": (
            "malformed in-memory (HubSpot-like) id 'usr_9f3a': expected digits"
        ),
        "user_mapping[1].crm_user_id": "no CRM user 999999",
    }


@pytest.mark.parametrize("person_kind", [PersonKind.LEAD, PersonKind.CONTACT])
def test_a_crm_without_a_pattern_checks_existence_only(person_kind: PersonKind) -> None:
    """Without an id shape, preflight only says whether the CRM has the user."""
    crm = InMemoryCRM(person_kind=person_kind)
    config = SyncConfig(users=UserMapping((UserMapEntry("usr_9f3a", signals_user_id="u1"),)))
    problems = make_integration(crm, config).preflight()
    assert [(p.path, p.message) for p in problems] == [
        ("user_mapping[0].crm_user_id", "no CRM user usr_9f3a")
    ]


def test_the_built_in_adapters_declare_their_id_shapes() -> None:
    """Salesforce ids are 15 or 18 letters and digits, HubSpot ids digits; preflight of either
    CRM names the issue's custom-CRM ids as malformed, before any lookup."""
    from signals_crm.adapters.hubspot._flows import HUBSPOT_CAPABILITIES
    from signals_crm.adapters.salesforce._flows import SALESFORCE_CAPABILITIES

    assert SALESFORCE_CAPABILITIES.is_id("0055g00000AbCdE")
    assert SALESFORCE_CAPABILITIES.is_id("0055g00000AbCdEAAZ")
    assert not SALESFORCE_CAPABILITIES.is_id("0055g00000AbCdEA")  # 16 characters
    assert HUBSPOT_CAPABILITIES.is_id("12345")
    assert not HUBSPOT_CAPABILITIES.is_id("0055g00000AbCdE")
    config = SyncConfig(
        campaign_id="cmp-1",
        users=UserMapping((UserMapEntry("usr_9f3a", signals_user_id="u1"),)),
    )
    for caps, shape in (
        (SALESFORCE_CAPABILITIES, "a Salesforce id (15 or 18 letters and digits)"),
        (HUBSPOT_CAPABILITIES, "a HubSpot id (digits)"),
    ):
        assert [(p.path, p.message) for p in id_problems(config, caps)] == [
            ("campaign_id", f"malformed {caps.name} id 'cmp-1': expected {shape}"),
            (
                "user_mapping[0].crm_user_id",
                f"malformed {caps.name} id 'usr_9f3a': expected {shape}",
            ),
        ]
