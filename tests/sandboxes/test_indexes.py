"""Lookups go through indexes that follow every write: what a scan would find, and no more.

The figures (flat time per visitor from 1,000 to 100,000 records) come from
``benchmarks/sandbox_lookups.py``; these tests pin that the indexes never answer differently
from the records themselves.
"""

from __future__ import annotations

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from signals_crm.core.crm import PersonUpdate, PersonWrite
from signals_crm.core.model import PersonKind
from signals_crm.testing import InMemoryCRM
from signals_crm.testing.hubspot import LocalHubSpot
from signals_crm.testing.salesforce import LocalSalesforce, SalesforceBackdoor

API = "https://local.my.salesforce.com/services/data/v61.0"


def _sf() -> tuple[LocalSalesforce, httpx.Client]:
    org = LocalSalesforce()
    client = httpx.Client(
        transport=org.transport(), headers={"Authorization": f"Bearer {org.issue_token()}"}
    )
    return org, client


def _emails(client: httpx.Client, soql: str, *, all_rows: bool = False) -> list[str]:
    route = "queryAll" if all_rows else "query"
    answer = client.get(f"{API}/{route}", params={"q": soql})
    assert answer.status_code == 200, answer.text
    return [r["Email"] for r in answer.json()["records"]]


def test_salesforce_index_follows_updates_deletes_and_rollbacks() -> None:
    """An updated Email is found under its new value only; a deleted Lead leaves ``query`` but
    stays in ``queryAll``; an allOrNone rollback leaves the index as it was."""
    org, client = _sf()
    door = SalesforceBackdoor(org)
    first = door.seed_person(kind=PersonKind.LEAD, email="old@x.com")
    door.seed_person(kind=PersonKind.LEAD, email="other@x.com")
    assert (
        client.patch(f"{API}/sobjects/Lead/{first}", json={"Email": "New@X.com"}).status_code == 204
    )
    where = "SELECT Email FROM Lead WHERE Email IN ('old@x.com', 'new@x.com')"
    assert _emails(client, where) == ["New@X.com"]
    assert client.delete(f"{API}/sobjects/Lead/{first}").status_code == 204
    assert _emails(client, where) == []
    assert _emails(client, where, all_rows=True) == ["New@X.com"]
    body = {
        "allOrNone": True,
        "records": [
            {"attributes": {"type": "Lead"}, "LastName": "A", "Company": "C", "Email": "r@x.com"},
            {"attributes": {"type": "Lead"}, "Company": "C", "Email": "s@x.com"},
        ],
    }
    results = client.post(f"{API}/composite/sobjects", json=body).json()
    assert [r["success"] for r in results] == [False, False]
    assert _emails(client, "SELECT Email FROM Lead WHERE Email = 'r@x.com'") == []


_WORDS = st.sampled_from(["a@x.com", "B@x.com", "c@y.com", "A@X.COM"])


@settings(max_examples=30, deadline=None)
@given(
    seeded=st.lists(_WORDS, max_size=8),
    wanted=st.lists(_WORDS, min_size=1, max_size=3),
    extra=st.sampled_from(["", " AND LastName = 'Seeded'", " OR LastName = 'Nobody'"]),
)
def test_salesforce_index_answers_as_a_scan_would(
    seeded: list[str], wanted: list[str], extra: str
) -> None:
    """Indexed ``IN``/``=`` lookups (alone, under AND, under OR) return exactly the rows a
    case-insensitive scan returns, in creation order."""
    org, client = _sf()
    door = SalesforceBackdoor(org)
    for email in seeded:
        door.seed_person(kind=PersonKind.LEAD, email=email)
    listed = ", ".join(f"'{w}'" for w in wanted)
    soql = f"SELECT Email FROM Lead WHERE Email IN ({listed}){extra}"  # noqa: S608  # test's own literals
    found = _emails(client, soql)
    keys = {w.casefold() for w in wanted}
    assert found == [e for e in seeded if e.casefold() in keys]


def test_salesforce_text_in_list_matches_case_insensitively_and_not_in_keeps_the_rest() -> None:
    """A text ``IN`` that no index narrows (``LastName``, and ``NOT IN``) matches the value
    casefolded (``Straße`` is ``STRASSE``), as comparing one literal at a time would."""
    org, client = _sf()
    door = SalesforceBackdoor(org)
    for email, last in (("a@x.com", "Straße"), ("b@x.com", "SMITH"), ("c@x.com", "Jones")):
        door.seed_person(kind=PersonKind.LEAD, email=email, fields={"LastName": last})
    query = "SELECT Email FROM Lead WHERE LastName {} ('STRASSE', 'smith', 'Nobody')"
    assert _emails(client, query.format("IN")) == ["a@x.com", "b@x.com"]
    assert _emails(client, query.format("NOT IN")) == ["c@x.com"]


def test_hubspot_email_index_follows_patch_archive_and_additional_emails() -> None:
    """A contact is found by its new email after a PATCH, not by the old one; an archived one
    is not found; an additional email finds its contact."""
    portal = LocalHubSpot()
    client = httpx.Client(
        transport=portal.transport(),
        base_url="https://api.hubapi.com",
        headers={"Authorization": "Bearer local-hubspot-token"},
    )
    made = client.post("/crm/v3/objects/contacts", json={"properties": {"email": "a@x.com"}})
    contact = made.json()["id"]
    assert client.patch(
        f"/crm/v3/objects/contacts/{contact}", json={"properties": {"email": "b@x.com"}}
    ).is_success
    by_email = "/crm/v3/objects/contacts/{}?idProperty=email"
    assert client.get(by_email.format("a@x.com")).status_code == 404
    assert client.get(by_email.format("B@X.com")).json()["id"] == contact
    with portal.lock:
        record = portal.objects["contacts"][contact]
        portal._reindex("contacts", record, add=False)
        record.props["hs_additional_emails"] = "alias@x.com"
        portal._reindex("contacts", record, add=True)
    assert client.get(by_email.format("alias@x.com")).json()["id"] == contact
    assert client.delete(f"/crm/v3/objects/contacts/{contact}").status_code == 204
    assert client.get(by_email.format("b@x.com")).status_code == 404
    search = {
        "filterGroups": [
            {"filters": [{"propertyName": "email", "operator": "EQ", "value": "b@x.com"}]}
        ]
    }
    assert client.post("/crm/v3/objects/contacts/search", json=search).json()["total"] == 0


def test_memory_crm_index_follows_email_changes() -> None:
    """The in-memory CRM finds a person under a changed email only."""
    crm = InMemoryCRM(person_kind=PersonKind.CONTACT)
    (made,) = crm.create_people(
        [PersonWrite(key="k", kind=PersonKind.CONTACT, email="one@x.com", fields={})]
    )
    assert made.id is not None
    crm.update_people(
        [
            PersonUpdate(
                key="k", record_id=made.id, kind=PersonKind.CONTACT, fields={"email": "two@x.com"}
            )
        ]
    )
    old, new = crm.find_people(["one@x.com", "TWO@x.com"])
    assert old == ()
    assert [p.id for p in new] == [made.id]
    assert crm.people_with_email("two@x.com") == [made.id]
