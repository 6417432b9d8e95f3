"""Settings and core use one vocabulary: SyncConfig's fields have the settings' names, and the
names it used before still work with a DeprecationWarning."""

from __future__ import annotations

from datetime import timedelta

import attrs
import pytest

from signals_crm.core.config import FieldMapping, FieldMappings, SyncConfig
from signals_crm.core.model import ActivityKind, Role
from signals_crm.settings import IntegrationSettings

MAPPINGS = FieldMappings(lead=(FieldMapping("contact.first_name", "FirstName"),))


def test_core_fields_carry_the_settings_names() -> None:
    """Every renamed SyncConfig field reads the settings key of the same name."""
    settings = IntegrationSettings.from_dict(
        {
            "synchronization_delay": "15m",
            "task_events": ["meeting_booked"],
            "lead_owner_sources": ["closer"],
            "field_mappings": {"lead": [{"source": "contact.first_name", "target": "FirstName"}]},
        }
    )
    config = settings.to_config()
    assert config.synchronization_delay == settings.synchronization_delay
    assert config.task_events == frozenset({ActivityKind.MEETING_BOOKED})
    assert config.lead_owner_sources == (Role.CLOSER,)
    assert config.field_mappings == MAPPINGS
    renamed = {"synchronization_delay", "task_events", "lead_owner_sources", "field_mappings"}
    assert renamed <= set(IntegrationSettings.model_fields) & {
        a.name for a in attrs.fields(SyncConfig)
    }


@pytest.mark.parametrize(
    ("old", "new", "value"),
    [
        ("delay", "synchronization_delay", timedelta(minutes=5)),
        ("task_kinds", "task_events", frozenset({ActivityKind.CHAT_TRANSCRIPT})),
        ("owner_sources", "lead_owner_sources", (Role.LAST_ROUTED,)),
        ("mappings", "field_mappings", MAPPINGS),
    ],
)
def test_old_names_still_work_with_a_warning(old: str, new: str, value: object) -> None:
    """The old keyword builds the same config as the new one, and the old attribute reads it;
    both warn, naming the new name."""
    with pytest.warns(DeprecationWarning, match=f"SyncConfig.{old} is deprecated: use {new}"):
        legacy = SyncConfig(**{old: value})  # type: ignore[arg-type]
    assert legacy == SyncConfig(**{new: value})  # type: ignore[arg-type]
    with pytest.warns(DeprecationWarning, match=f"use {new}"):
        assert getattr(legacy, old) == value


def test_new_names_do_not_warn_and_evolve_keeps_working(
    recwarn: pytest.WarningsRecorder,
) -> None:
    """Building, evolving and reading with the new names is silent."""
    config = SyncConfig(synchronization_delay=timedelta(minutes=1), field_mappings=MAPPINGS)
    later = attrs.evolve(config, synchronization_delay=timedelta(hours=1))
    assert later.synchronization_delay == timedelta(hours=1)
    assert later.field_mappings == MAPPINGS
    assert later.task_events == frozenset(ActivityKind)
    assert not recwarn.list
