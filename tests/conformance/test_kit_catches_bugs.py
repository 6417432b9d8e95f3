"""The kit is not vacuous: adapters with typical bugs fail it, and missing capabilities skip."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import attrs
import pytest
from hypothesis import Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from signals_crm.core.crm import (
    CampaignMembershipWrite,
    Capabilities,
    PersonUpdate,
    PersonWrite,
    WriteChain,
    WriteChainResult,
    WriteResult,
)
from signals_crm.core.model import FieldValue, ObjectSchema, PersonKind, PersonRecord
from signals_crm.exceptions import AdapterError, CRMAPIError, DuplicateRecordError
from signals_crm.testing import InMemoryCRM
from signals_crm.testing.conformance import (
    AdapterConformance,
    AsyncAdapterConformance,
    adapter_state_machine,
)


class Kit(AdapterConformance):
    """The kit configured for the Lead flavour (never collected: no fixtures here)."""

    create_fields: ClassVar[dict[str, FieldValue]] = {"LastName": "Kit", "Company": "Kit Inc"}
    text_field = "FirstName"
    account_owner_field = "OwnerId"


class CaseSensitiveCRM(InMemoryCRM):
    """Matches emails exactly, as a naive SQL ``=`` would."""

    def find_people(
        self, emails: Sequence[str], fields: Sequence[str] = ()
    ) -> list[tuple[PersonRecord, ...]]:
        found = super().find_people(emails, fields)
        return [
            tuple(r for r in records if r.email == email)
            for email, records in zip(emails, found, strict=True)
        ]


class ReorderingCRM(InMemoryCRM):
    """Answers lookups for unique emails in sorted order, losing the input order."""

    def find_people(
        self, emails: Sequence[str], fields: Sequence[str] = ()
    ) -> list[tuple[PersonRecord, ...]]:
        return super().find_people(sorted(set(emails)), fields)


class AllOrNothingCRM(InMemoryCRM):
    """Fails the whole batch when one record is bad."""

    def create_people(self, records: Sequence[PersonWrite]) -> list[WriteResult]:
        results = super().create_people(records)
        for result in results:
            if result.error is not None:
                raise result.error
        return results


class ForgetfulMembershipCRM(InMemoryCRM):
    """Reports every membership as newly created."""

    def add_to_campaign(self, memberships: Sequence[CampaignMembershipWrite]) -> list[WriteResult]:
        return [attrs.evolve(r, created=r.ok) for r in super().add_to_campaign(memberships)]


class AnonymousDuplicatesCRM(InMemoryCRM):
    """Refuses duplicates without saying which record matched."""

    def create_people(self, records: Sequence[PersonWrite]) -> list[WriteResult]:
        return [
            WriteResult.failure(DuplicateRecordError("duplicate"))
            if isinstance(r.error, DuplicateRecordError)
            else r
            for r in super().create_people(records)
        ]


class NoTasksCRM(InMemoryCRM):
    """Declares that it cannot create tasks."""

    @property
    def capabilities(self) -> Capabilities:
        return attrs.evolve(super().capabilities, supports_tasks=False)


class OwnerBlindCRM(InMemoryCRM):
    """Describes its objects without saying which fields hold a user's id."""

    def describe(self, object_name: str) -> ObjectSchema:
        schema = super().describe(object_name)
        fields = [attrs.evolve(f, names_user=False) for f in schema.fields.values()]
        return ObjectSchema(name=schema.name, fields=fields)


class LostUpdateCRM(InMemoryCRM):
    """Answers updates with success without writing anything."""

    def update_people(self, records: Sequence[PersonUpdate]) -> list[WriteResult]:
        return [WriteResult.success(r.record_id, created=False) for r in records]


class _ChainingCRM(InMemoryCRM):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(chains=True, **kwargs)


class UnreferencedChainCRM(_ChainingCRM):
    """Sends a chain's dependents with the ``person_id`` they carry, not the create's id."""

    def write_chains(self, chains: Sequence[WriteChain]) -> list[WriteChainResult]:
        out: list[WriteChainResult] = []
        for chain in chains:
            person: WriteResult | None = None
            if isinstance(chain.person, PersonWrite):
                (person,) = self.create_people([chain.person])
            elif isinstance(chain.person, PersonUpdate):
                (person,) = self.update_people([chain.person])
            tasks = tuple(self.create_tasks(list(chain.tasks))) if chain.tasks else ()
            member = self.add_to_campaign([chain.membership])[0] if chain.membership else None
            out.append(WriteChainResult(person, tasks, member))
        return out


class UnsplitChainCRM(_ChainingCRM):
    """Refuses a call of more writes than one request takes instead of splitting it."""

    def write_chains(self, chains: Sequence[WriteChain]) -> list[WriteChainResult]:
        if sum(c.size for c in chains) > self.capabilities.max_chain_writes:
            raise CRMAPIError("EXCEEDED_MAX_SUBREQUESTS", retryable=False)
        return super().write_chains(chains)


class ShortChainAnswerCRM(_ChainingCRM):
    """Answers a chain without its membership's result."""

    def write_chains(self, chains: Sequence[WriteChain]) -> list[WriteChainResult]:
        return [attrs.evolve(r, membership=None) for r in super().write_chains(chains)]


@pytest.mark.parametrize(
    ("crm_class", "test_name"),
    [
        (CaseSensitiveCRM, "test_find_people_ignores_case_and_spaces"),
        (ReorderingCRM, "test_find_people_in_input_order"),
        (AllOrNothingCRM, "test_create_people_bad_email_fails_alone"),
        (ForgetfulMembershipCRM, "test_campaign_membership_is_idempotent"),
        (AnonymousDuplicatesCRM, "test_duplicate_create_names_existing_record"),
        (LostUpdateCRM, "test_update_people_changes_values"),
        (OwnerBlindCRM, "test_describe_account_names_its_owner_field"),
        (UnreferencedChainCRM, "test_chain_creates_a_person_then_its_dependents"),
        (UnsplitChainCRM, "test_chains_beyond_one_call_are_split_in_order"),
        (ShortChainAnswerCRM, "test_chain_creates_a_person_then_its_dependents"),
    ],
)
def test_kit_fails_buggy_adapters(crm_class: type[InMemoryCRM], test_name: str) -> None:
    """Each typical adapter bug makes the kit test that pins the rule fail."""
    crm = crm_class()
    with pytest.raises((AssertionError, AdapterError)):
        getattr(Kit(), test_name)(crm, crm.backdoor())


def test_kit_passes_the_honest_adapter_on_the_same_tests() -> None:
    """The same kit tests pass on the unmodified in-memory CRM (the bugs above are the cause)."""
    for name in (
        "test_find_people_ignores_case_and_spaces",
        "test_find_people_in_input_order",
        "test_create_people_bad_email_fails_alone",
        "test_campaign_membership_is_idempotent",
        "test_duplicate_create_names_existing_record",
        "test_update_people_changes_values",
        "test_describe_account_names_its_owner_field",
        "test_chain_creates_a_person_then_its_dependents",
        "test_chains_beyond_one_call_are_split_in_order",
    ):
        crm = InMemoryCRM(chains=True)
        getattr(Kit(), name)(crm, crm.backdoor())


def test_kit_skips_undeclared_capabilities() -> None:
    """A test needing tasks is skipped, with the reason, for an adapter without tasks."""
    crm = NoTasksCRM()
    with pytest.raises(pytest.skip.Exception, match="supports_tasks"):
        Kit().test_create_tasks_with_markers(crm, crm.backdoor())  # type: ignore[attr-defined]


def test_kit_raises_typed_errors_through_to_the_scenario() -> None:
    """An error a scenario does not expect escapes the kit test unchanged."""
    crm = InMemoryCRM()
    crm.fail_next("list_users", CRMAPIError("down", retryable=True))
    with pytest.raises(CRMAPIError, match="down"):
        Kit().test_list_users_flags_inactive(crm, crm.backdoor())  # type: ignore[attr-defined]


def test_state_machine_catches_lost_updates() -> None:
    """The state machine finds an adapter whose updates do not land."""
    machine = adapter_state_machine(
        lambda: LostUpdateCRM(person_kind=PersonKind.LEAD),
        InMemoryCRM.backdoor,
        text_field="FirstName",
        create_fields=Kit.create_fields,
    )
    with pytest.raises(AssertionError):
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=50,
                database=None,
                deadline=None,
                derandomize=True,
                phases=[Phase.generate],
                report_multiple_bugs=False,
            ),
        )


def test_sync_and_async_kits_are_documented_twins() -> None:
    """Both kits carry the same tests, each with a one-sentence docstring, the async ones anyio."""
    sync_names = {n for n in dir(AdapterConformance) if n.startswith("test_")}
    async_names = {n for n in dir(AsyncAdapterConformance) if n.startswith("test_")}
    assert sync_names == async_names
    assert len(sync_names) >= 25
    for name in sync_names:
        doc = getattr(AdapterConformance, name).__doc__
        assert doc
        assert doc.endswith(".")
        marks = getattr(getattr(AsyncAdapterConformance, name), "pytestmark", [])
        assert any(m.name == "anyio" for m in marks)
