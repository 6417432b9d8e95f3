"""Proposing a user mapping by email."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from signals_crm.core.model import CRMUser, SignalsUser
from signals_crm.core.users import propose_user_mapping
from signals_crm.testing import strategies as sst


def test_matches_active_users_by_email_any_case():
    """Emails match trimmed and case-insensitively; inactive users are never proposed."""
    proposal = propose_user_mapping(
        [
            SignalsUser(id="1", email=" Sally@Vendor.test"),
            SignalsUser(id="2", email="bob@vendor.test"),
            SignalsUser(id="3"),
            SignalsUser(id="4", email="dup@vendor.test"),
        ],
        [
            CRMUser(id="005S", email="sally@vendor.test"),
            CRMUser(id="005B", email="bob@vendor.test", active=False),
            CRMUser(id="005D1", email="dup@vendor.test"),
            CRMUser(id="005D2", email="DUP@vendor.test"),
        ],
    )
    assert [(e.signals_user_id, e.crm_user_id) for e in proposal.mapping.entries] == [("1", "005S")]
    assert [u.id for u in proposal.unmatched] == ["2", "3"]
    assert [u.id for u in proposal.ambiguous] == ["4"]
    assert proposal.mapping.crm_user_for(SignalsUser(email="SALLY@vendor.test")) == "005S"


@given(
    st.lists(sst.signals_users(), unique_by=lambda u: u.id),
    st.lists(
        st.builds(
            CRMUser,
            id=st.sampled_from(["a", "b", "c", "d"]),
            email=st.one_of(st.none(), sst.emails(pool=[u.email for u in sst.SIGNALS_USERS])),
            active=st.booleans(),
        ),
        unique_by=lambda u: u.id,
    ),
)
def test_every_user_is_matched_unmatched_or_ambiguous_once(people, crm_users):
    """Each Signals user lands in exactly one bucket; proposed CRM users are active."""
    proposal = propose_user_mapping(people, crm_users)
    matched = {e.signals_user_id for e in proposal.mapping.entries}
    others = [u.id for u in (*proposal.unmatched, *proposal.ambiguous)]
    assert sorted([*matched, *others]) == sorted(u.id for u in people)
    active = {u.id for u in crm_users if u.active}
    assert {e.crm_user_id for e in proposal.mapping.entries} <= active
