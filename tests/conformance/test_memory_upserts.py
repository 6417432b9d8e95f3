"""The conformance kit against ``InMemoryCRM(upserts=True)``: the whole kit still holds, and
its upsert scenarios (a create sent twice makes one record) run instead of being skipped."""

from __future__ import annotations

from typing import ClassVar

import pytest

from signals_crm.core.model import FieldValue, PersonKind
from signals_crm.testing import InMemoryCRM
from signals_crm.testing.conformance import AdapterConformance, AsyncAdapterConformance, Backdoor
from signals_crm.testing.memory import SYNC_KEY_FIELD

LEAD_CREATE_FIELDS: dict[str, FieldValue] = {"LastName": "Kit", "Company": "Kit Inc"}


@pytest.fixture
def crm() -> InMemoryCRM:
    return InMemoryCRM(person_kind=PersonKind.LEAD, upserts=True)


class TestUpsertingLeadFlavour(AdapterConformance):
    """The blocking kit, Salesforce-like, with upserts by the sync key."""

    create_fields: ClassVar[dict[str, FieldValue]] = LEAD_CREATE_FIELDS
    text_field = "FirstName"

    @pytest.fixture
    def adapter(self, crm: InMemoryCRM) -> InMemoryCRM:
        return crm

    @pytest.fixture
    def backdoor(self, crm: InMemoryCRM) -> Backdoor:
        return crm.backdoor()


class TestAsyncUpsertingLeadFlavour(AsyncAdapterConformance):
    """The async kit, Salesforce-like, with upserts by the sync key."""

    create_fields: ClassVar[dict[str, FieldValue]] = LEAD_CREATE_FIELDS
    text_field = "FirstName"

    @pytest.fixture
    def adapter(self, crm: InMemoryCRM) -> InMemoryCRM:
        return crm

    @pytest.fixture
    def backdoor(self, crm: InMemoryCRM) -> Backdoor:
        return crm.backdoor()


@pytest.mark.parametrize("kind", [PersonKind.LEAD, PersonKind.CONTACT])
def test_upserting_schemas_carry_the_key_field(kind: PersonKind) -> None:
    """Both flavours' person and task schemas have the external-ID, unique key field."""
    crm = InMemoryCRM(person_kind=kind, upserts=True)
    caps = crm.capabilities
    assert (caps.sync_key_field, caps.upserts_people, caps.upserts_tasks) == (
        SYNC_KEY_FIELD,
        True,
        True,
    )
    for name in (caps.person_object, caps.task_object or ""):
        field = crm.describe(name).get(SYNC_KEY_FIELD)
        assert field is not None
        assert (field.external_id, field.unique) == (True, True)
    plain = InMemoryCRM(person_kind=kind)
    assert plain.capabilities.upserts_people is False
    assert plain.describe(caps.person_object).get(SYNC_KEY_FIELD) is None
