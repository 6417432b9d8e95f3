"""The shipped strategies generate only states that can exist.

A property test is only as good as its inputs: a CRM state no CRM can be in (two records with
one id, a Lead in HubSpot) makes a correct rule look wrong, now and then. These properties
pin the rules stated in ``signals_crm.testing.strategies``.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from signals_crm.core.model import ConversationStatus, PersonKind, normalize_email
from signals_crm.testing import strategies as sst


def assert_id_shape(record, person_kind):
    if person_kind is PersonKind.CONTACT:
        assert record.id.isdigit()
        assert not record.id.startswith("0")
    else:
        prefix = "00Q" if record.kind is PersonKind.LEAD else "003"
        assert record.id.startswith(prefix)
        assert len(record.id) == 7


@given(st.sampled_from(list(PersonKind)), st.data())
def test_crm_people_have_unique_ids_shaped_for_their_kind(person_kind, data):
    """Rule 1: no two records of a state share an id, and ids carry their kind's shape."""
    people = data.draw(sst.crm_people(person_kind=person_kind))
    ids = [r.id for r in people]
    assert len(ids) == len(set(ids))
    for record in people:
        assert_id_shape(record, person_kind)


@given(sst.crm_people(person_kind=PersonKind.CONTACT, max_size=8))
def test_hubspot_like_state_holds_unique_unconverted_contacts(people):
    """Rule 2: HubSpot-like: contacts only, never converted, one per email."""
    assert all(r.kind is PersonKind.CONTACT for r in people)
    assert not any(r.is_converted or r.converted_contact_id for r in people)
    keys = [normalize_email(r.email or "") for r in people]
    assert len(keys) == len(set(keys))


@given(sst.crm_people(person_kind=PersonKind.LEAD, max_size=8))
def test_salesforce_like_conversions_point_at_contacts_of_the_state(people):
    """Rule 3: only Leads are converted; a converted Lead's contact is a Contact of the state."""
    contacts = {r.id for r in people if r.kind is PersonKind.CONTACT}
    for record in people:
        if record.kind is PersonKind.CONTACT:
            assert not record.is_converted
        if record.converted_contact_id is not None:
            assert record.is_converted
            assert record.converted_contact_id in contacts


@given(sst.person_records(person_kind=PersonKind.CONTACT))
def test_a_hubspot_like_record_is_an_unconverted_contact(record):
    """A single record drawn for a HubSpot-like CRM is a contact, numbered, never converted."""
    assert record.kind is PersonKind.CONTACT
    assert not record.is_converted
    assert_id_shape(record, PersonKind.CONTACT)


def test_a_lead_in_a_hubspot_like_crm_is_refused():
    """Asking for Leads of a CRM that has none is a mistake in the test, said at once."""
    for strategy in (
        sst.person_records(person_kind=PersonKind.CONTACT, kinds=(PersonKind.LEAD,)),
        sst.crm_people(person_kind=PersonKind.CONTACT, kinds=(), min_size=1),
    ):

        @given(strategy)
        def draw(_):
            pass

        with pytest.raises(InvalidArgument, match="holds only"):
            draw()


@given(sst.conversations())
def test_conversations_are_closed_exactly_when_they_have_a_close_time(conversation):
    """A conversation is closed with a close time, or open without one."""
    closed = conversation.status is ConversationStatus.CLOSED
    assert closed == (conversation.closed_at is not None)


@given(sst.account_records(domain="acme.test"))
def test_account_records_belong_to_their_domain(account):
    """An account drawn for a domain has that domain and an account-shaped id."""
    assert account.domain == "acme.test"
    assert account.id.startswith("001")
