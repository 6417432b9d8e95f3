"""One email key and one domain key for the whole package, and every CRM path uses them."""

from __future__ import annotations

import httpx
from hypothesis import given
from hypothesis import strategies as st

from signals_crm.adapters.hubspot import HubSpotAdapter, HubSpotAPI
from signals_crm.adapters.salesforce import SalesforceAdapter, StaticToken
from signals_crm.core.normalize import normalize_domain, normalize_email
from signals_crm.core.ownership import normalize_domain as ownership_normalize_domain
from signals_crm.testing import InMemoryCRM
from signals_crm.testing.hubspot import LocalHubSpot
from signals_crm.testing.salesforce import LocalSalesforce, SalesforceBackdoor
from signals_crm.testing.strategies import email_variants, emails

LABELS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=10)


@st.composite
def domains(draw: st.DrawFn) -> str:
    """A registrable domain such as ``acme.io`` or ``eu.acme.io``."""
    parts = draw(st.lists(LABELS, min_size=2, max_size=3))
    return ".".join(parts)


@st.composite
def websites(draw: st.DrawFn, domain: str) -> str:
    """``domain`` written as a CRM user might store it: scheme, case, www, port, path."""
    host = draw(st.sampled_from([domain, f"www.{domain}", domain.upper(), f"WWW.{domain}."]))
    scheme = draw(st.sampled_from(["", "http://", "https://", "HTTPS://"]))
    port = draw(st.sampled_from(["", ":443", ":8080"]))
    tail = draw(st.sampled_from(["", "/", "/about", "?utm=x", "#top", "/a/b?c=d#e"]))
    pad = draw(st.sampled_from(["", " ", "\t"]))
    return f"{pad}{scheme}{host}{port}{tail}{pad}"


@given(data=st.data(), domain=domains())
def test_every_way_of_writing_a_domain_gives_its_key(data: st.DataObject, domain: str) -> None:
    """Scheme, case, www, port, path, query, fragment and spaces never change the key."""
    website = data.draw(websites(domain))
    assert normalize_domain(website) == normalize_domain(domain) == domain.removeprefix("www.")


@given(text=st.text(max_size=40))
def test_domain_key_is_idempotent(text: str) -> None:
    """Normalising a key again gives the same key."""
    once = normalize_domain(text)
    assert normalize_domain(once) == once


@given(email=emails(), data=st.data())
def test_email_variants_share_one_key(email: str, data: st.DataObject) -> None:
    """Case and surrounding spaces never change an email's key; the key is idempotent."""
    variant = data.draw(email_variants(email))
    assert normalize_email(variant) == normalize_email(email)
    assert normalize_email(normalize_email(variant)) == normalize_email(email)


def test_subdomains_keep_their_own_key() -> None:
    """A subdomain is a different key (whether it matches is the adapter's rule)."""
    assert normalize_domain("https://eu.acme.com/x") == "eu.acme.com"
    assert normalize_domain("user@acme.com:8443") == "acme.com"


def test_the_ownership_rules_use_the_same_function() -> None:
    """The core's ownership module re-exports the one domain normaliser."""
    assert ownership_normalize_domain is normalize_domain


def test_salesforce_finds_an_account_by_any_form_of_its_website() -> None:
    """A Website stored with scheme, www and path is found by the bare domain and vice versa."""
    org = LocalSalesforce()
    door = SalesforceBackdoor(org)
    account = door.seed_account(
        domain="acme.io", name="Acme", fields={"Website": "HTTPS://WWW.Acme.io:443/about"}
    )
    with httpx.Client(transport=org.transport()) as http:
        adapter = SalesforceAdapter(http, StaticToken(org.issue_token(), org.instance_url))
        found = adapter.find_accounts(["ACME.io", "http://acme.io:443/x?y"])
    assert [[a.id for a in accounts] for accounts in found] == [[account], [account]]
    assert {a.domain for accounts in found for a in accounts} == {"acme.io"}


def test_hubspot_finds_a_company_by_any_form_of_its_domain() -> None:
    """A company domain is looked up by its key however the caller wrote it."""
    portal = LocalHubSpot()
    company = portal.backdoor.seed_account(domain="acme.io", name="Acme")
    with httpx.Client(transport=portal.transport()) as http:
        adapter = HubSpotAdapter(
            http, "local-hubspot-token", api=HubSpotAPI(base_url="https://api.hubapi.com")
        )
        found = adapter.find_accounts(["https://WWW.acme.io/", "acme.io."])
    assert [[a.id for a in accounts] for accounts in found] == [[company], [company]]


def test_memory_crm_matches_domains_like_the_adapters() -> None:
    """The in-memory CRM keys domains with the same function."""
    crm = InMemoryCRM()
    account = crm.backdoor().seed_account(domain="www.Acme.io", name="Acme")
    found = crm.find_accounts(["https://acme.io:8080/x"])
    assert [a.id for a in found[0]] == [account]
