"""hubspot-api-client, unchanged, against the local HubSpot over HTTPS.

The client keeps its default host (``https://api.hubapi.com``); it gets only the CA bundle
(``ssl_ca_cert``) and the sandbox as its HTTPS proxy (``proxy``), so the calls below are
exactly what runs against a real portal. Each test follows the vendor page it cites.
"""

from __future__ import annotations

import json

import httpx
import pytest
from hubspot import HubSpot
from hubspot.crm.associations.v4 import AssociationSpec
from hubspot.crm.contacts import (
    ApiException,
    BatchReadInputSimplePublicObjectId,
    Filter,
    FilterGroup,
    PublicGdprDeleteInput,
    PublicMergeInput,
    PublicObjectSearchRequest,
    SimplePublicObjectId,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.properties import PropertyCreate

from signals_crm.testing import LoopbackServer
from signals_crm.testing.hubspot import LocalHubSpot

TOKEN = "local-hubspot-token"  # the sandbox's published private-app token


@pytest.fixture
def client(hs_server: LoopbackServer) -> HubSpot:
    """A private-app token, the CA bundle and the proxy: nothing else."""
    return HubSpot(access_token=TOKEN, ssl_ca_cert=hs_server.ca_file, proxy=hs_server.proxy_url)


def _contact(client: HubSpot, email: str, **props: str) -> str:
    created = client.crm.contacts.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"email": email, **props})
    )
    return str(created.id)


def test_private_app_token_reads_owners(client: HubSpot, portal: LocalHubSpot) -> None:
    """A private app's token is a bearer token on every call; a wrong one is a 401.

    https://developers.hubspot.com/docs/api/private-apps
    """
    portal.backdoor.seed_user(email="sally@example.com", name="Sally Seller")
    owners = client.crm.owners.owners_api.get_page()
    assert [o.email for o in owners.results] == ["sally@example.com"]
    stranger = HubSpot(
        access_token="pat-na1-wrong",
        ssl_ca_cert=client.crm.owners.owners_api.api_client.configuration.ssl_ca_cert,
        proxy=client.crm.owners.owners_api.api_client.configuration.proxy,
    )
    with pytest.raises(Exception, match="401"):
        stranger.crm.owners.owners_api.get_page()


def test_repeated_properties_parameters_are_all_honoured(client: HubSpot) -> None:
    """The client sends ``properties=a&properties=b``; every one comes back.

    https://developers.hubspot.com/docs/api/crm/contacts
    """
    contact = _contact(client, "rep@x.com", firstname="Rep", lastname="Eated", jobtitle="CTO")
    read = client.crm.contacts.basic_api.get_by_id(
        contact, properties=["firstname", "lastname", "jobtitle"]
    )
    assert {k: read.properties[k] for k in ("firstname", "lastname", "jobtitle")} == {
        "firstname": "Rep",
        "lastname": "Eated",
        "jobtitle": "CTO",
    }


def test_archive_then_read_archived(client: HubSpot) -> None:
    """An archived contact is gone from reads and listings, and found with ``archived=true``.

    https://developers.hubspot.com/docs/api/crm/contacts
    """
    contact = _contact(client, "gone@x.com")
    client.crm.contacts.basic_api.archive(contact)
    with pytest.raises(ApiException) as raised:
        client.crm.contacts.basic_api.get_by_id(contact)
    assert raised.value.status == 404
    archived = client.crm.contacts.basic_api.get_by_id(contact, archived=True)
    assert archived.archived is True
    page = client.crm.contacts.basic_api.get_page(archived=True)
    assert [c.id for c in page.results] == [contact]
    assert client.crm.contacts.basic_api.get_page().results == []


def test_search_and_batch_read_by_email(client: HubSpot) -> None:
    """Search by an ``EQ`` email filter (case-insensitive) and batch read by ``idProperty``.

    https://developers.hubspot.com/docs/api/crm/search
    """
    contact = _contact(client, "find@x.com", firstname="Fi")
    search = PublicObjectSearchRequest(
        filter_groups=[
            FilterGroup(filters=[Filter(property_name="email", operator="EQ", value="FIND@x.com")])
        ],
        properties=["firstname"],
    )
    found = client.crm.contacts.search_api.do_search(public_object_search_request=search)
    assert (found.total, found.results[0].id) == (1, contact)
    batch = client.crm.contacts.batch_api.read(
        BatchReadInputSimplePublicObjectId(
            id_property="email",
            inputs=[SimplePublicObjectId(id="find@x.com")],
            properties=["firstname"],
            properties_with_history=[],
        )
    )
    assert [r.properties["firstname"] for r in batch.results] == ["Fi"]


def test_validation_error_carries_errors_with_codes(client: HubSpot) -> None:
    """A bad value is a 400 ``VALIDATION_ERROR`` whose ``errors[]`` name the code and property.

    https://developers.hubspot.com/docs/api/error-handling
    """
    with pytest.raises(ApiException) as raised:
        client.crm.contacts.basic_api.create(
            SimplePublicObjectInputForCreate(properties={"email": "x@x.com", "nope": "1"})
        )
    body = json.loads(raised.value.body)
    assert raised.value.status == 400
    assert body["category"] == "VALIDATION_ERROR"
    assert body["errors"] == [
        {
            "message": 'Property "nope" does not exist',
            "code": "PROPERTY_DOESNT_EXIST",
            "context": {"propertyName": ["nope"]},
        }
    ]


def test_companies_and_v4_associations(client: HubSpot) -> None:
    """A default v4 association between a contact and a company, read back through v4 and as
    v3 ``associations=companies`` with HubSpot's type names.

    https://developers.hubspot.com/docs/api/crm/associations
    """
    contact = _contact(client, "assoc@x.com")
    company = client.crm.companies.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"name": "Acme", "domain": "acme.com"})
    ).id
    client.crm.associations.v4.basic_api.create_default("contacts", contact, "companies", company)
    page = client.crm.associations.v4.basic_api.get_page("contacts", contact, "companies")
    assert [(r.to_object_id, [t.type_id for t in r.association_types]) for r in page.results] == [
        (company, [279])
    ]
    read = client.crm.contacts.basic_api.get_by_id(contact, associations=["companies"])
    assert [(a.id, a.type) for a in read.associations["companies"].results] == [
        (company, "contact_to_company_unlabeled")
    ]
    client.crm.associations.v4.basic_api.create(
        "contacts",
        contact,
        "companies",
        company,
        [AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=1)],
    )
    from_company = client.crm.companies.basic_api.get_by_id(company, associations=["contacts"])
    types = sorted(a.type for a in from_company.associations["contacts"].results)
    assert types == ["company_to_contact", "company_to_contact_unlabeled"]


def test_property_created_over_http_is_writable(client: HubSpot) -> None:
    """Create a custom property through the properties API, then write and read it.

    https://developers.hubspot.com/docs/api/crm/properties
    """
    made = client.crm.properties.core_api.create(
        "contacts",
        PropertyCreate(
            name="signals_score",
            label="Signals score",
            type="number",
            field_type="number",
            group_name="contactinformation",
        ),
    )
    assert made.name == "signals_score"
    contact = _contact(client, "score@x.com", signals_score="3")
    read = client.crm.contacts.basic_api.get_by_id(contact, properties=["signals_score"])
    assert read.properties["signals_score"] == "3"
    with pytest.raises(Exception, match="409"):
        client.crm.properties.core_api.create(
            "contacts",
            PropertyCreate(
                name="signals_score",
                label="again",
                type="number",
                field_type="number",
                group_name="contactinformation",
            ),
        )


def test_merge_and_gdpr_delete(client: HubSpot, portal: LocalHubSpot) -> None:
    """Merge folds one contact into another (its email becomes an additional one); a GDPR
    delete erases a contact for good.

    https://developers.hubspot.com/docs/api/crm/contacts
    """
    keep = _contact(client, "keep@x.com", firstname="Keep")
    fold = _contact(client, "fold@x.com", lastname="Fold")
    merged = client.crm.contacts.basic_api.merge(
        PublicMergeInput(primary_object_id=keep, object_id_to_merge=fold)
    )
    assert merged.id == keep
    by_old_email = client.crm.contacts.basic_api.get_by_id("fold@x.com", id_property="email")
    assert by_old_email.id == keep
    client.crm.contacts.basic_api.purge(PublicGdprDeleteInput(object_id=keep))
    assert keep not in portal.objects["contacts"]
    with pytest.raises(ApiException) as raised:
        _contact(client, "keep@x.com")
    assert raised.value.status == 400


def test_deals_and_calls_with_inline_associations(client: HubSpot) -> None:
    """A deal and a call created with inline associations to a contact.

    https://developers.hubspot.com/docs/api/crm/deals
    https://developers.hubspot.com/docs/api/crm/calls
    """
    contact = _contact(client, "buyer@x.com")
    link = [
        {
            "to": {"id": contact},
            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}],
        }
    ]
    deal = client.crm.deals.basic_api.create(
        SimplePublicObjectInputForCreate(
            properties={"dealname": "Big one", "amount": "1000", "dealstage": "qualifiedtobuy"},
            associations=link,
        )
    )
    call_link = [
        {
            "to": {"id": contact},
            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 194}],
        }
    ]
    call = client.crm.objects.calls.basic_api.create(
        SimplePublicObjectInputForCreate(
            properties={"hs_timestamp": "2026-01-05T10:00:00Z", "hs_call_title": "Intro"},
            associations=call_link,
        )
    )
    read = client.crm.contacts.basic_api.get_by_id(contact, associations=["deals", "calls"])
    assert [a.id for a in read.associations["deals"].results] == [deal.id]
    assert [(a.id, a.type) for a in read.associations["calls"].results] == [
        (call.id, "contact_to_call")
    ]


def test_oauth_install_exchange_refresh_and_revoke(
    hs_server: LoopbackServer, portal: LocalHubSpot
) -> None:
    """The OAuth install: authorize (code on the redirect), exchange the code, refresh, read
    the token's metadata, revoke the refresh token.

    https://developers.hubspot.com/docs/api/oauth-quickstart-guide
    https://developers.hubspot.com/docs/api/oauth/tokens
    """
    portal.add_oauth_client("app-id", "app-secret", redirect_uris=("https://host.example/cb",))
    assert hs_server.ca_file is not None
    with httpx.Client(verify=_context(hs_server.ca_file), proxy=hs_server.proxy_url) as browser:
        redirect = browser.get(
            "https://app.hubspot.com/oauth/authorize",
            params={
                "client_id": "app-id",
                "redirect_uri": "https://host.example/cb",
                "scope": "crm.objects.contacts.read",
                "state": "xyz",
            },
        )
    assert redirect.status_code == 302
    location = httpx.URL(redirect.headers["location"])
    assert location.params["state"] == "xyz"
    anon = HubSpot(ssl_ca_cert=hs_server.ca_file, proxy=hs_server.proxy_url)
    tokens = anon.oauth.tokens_api.create(
        grant_type="authorization_code",
        code=location.params["code"],
        redirect_uri="https://host.example/cb",
        client_id="app-id",
        client_secret="app-secret",
    )
    info = anon.oauth.access_tokens_api.get(tokens.access_token)
    assert info.scopes == ["crm.objects.contacts.read"]
    again = anon.oauth.tokens_api.create(
        grant_type="refresh_token",
        refresh_token=tokens.refresh_token,
        client_id="app-id",
        client_secret="app-secret",
    )
    authed = HubSpot(
        access_token=again.access_token, ssl_ca_cert=hs_server.ca_file, proxy=hs_server.proxy_url
    )
    assert authed.crm.contacts.basic_api.get_page().results == []
    anon.oauth.refresh_tokens_api.archive(tokens.refresh_token)
    with pytest.raises(Exception, match="400"):
        anon.oauth.tokens_api.create(
            grant_type="refresh_token",
            refresh_token=tokens.refresh_token,
            client_id="app-id",
            client_secret="app-secret",
        )


def _context(ca_file: str) -> object:
    import ssl

    return ssl.create_default_context(cafile=ca_file)


def test_date_based_paths_serve_the_same_objects(hs_server: LoopbackServer) -> None:
    """The date-based API family (``/crm/objects/2026-03/...``, ``/crm/associations/2026-03/...``)
    answers with the same schemas as ``v3``/``v4``.

    https://developers.hubspot.com/docs/api-reference/legacy/migration-guide
    """
    assert hs_server.ca_file is not None
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(
        base_url=hs_server.url, headers=headers, verify=_context(hs_server.ca_file)
    ) as http:
        contact = http.post(
            "/crm/objects/2026-03/contacts", json={"properties": {"email": "dated@x.com"}}
        ).json()["id"]
        company = http.post(
            "/crm/objects/2026-03/companies", json={"properties": {"name": "Dated"}}
        ).json()["id"]
        linked = http.post(
            "/crm/associations/2026-03/contacts/companies/batch/associate/default",
            json={"inputs": [{"from": {"id": contact}, "to": {"id": company}}]},
        )
        read = http.post(
            "/crm/associations/2026-03/contacts/companies/batch/read",
            json={"inputs": [{"id": contact}]},
        )
    assert linked.status_code == 201
    assert read.json()["results"][0]["to"][0]["toObjectId"] == int(company)


def test_batch_upsert_by_email_and_by_a_unique_property(client: HubSpot) -> None:
    """Batch upsert creates (``new: true``) or updates (``new: false``) by ``email`` or by a
    custom property with ``hasUniqueValue``; any other ``idProperty`` is refused.

    https://developers.hubspot.com/docs/api/crm/contacts
    https://developers.hubspot.com/docs/api/crm/properties
    """
    from hubspot.crm.contacts import BatchInputSimplePublicObjectBatchInputUpsert
    from hubspot.crm.contacts import SimplePublicObjectBatchInputUpsert as Upsert

    client.crm.properties.core_api.create(
        "contacts",
        PropertyCreate(
            name="visitor_key",
            label="Visitor key",
            type="string",
            field_type="text",
            group_name="contactinformation",
            has_unique_value=True,
        ),
    )
    existing = _contact(client, "up@x.com", firstname="Old")
    upserted = client.crm.contacts.batch_api.upsert(
        BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[
                Upsert(id="up@x.com", id_property="email", properties={"firstname": "New"}),
                Upsert(id="v-42", id_property="visitor_key", properties={"email": "v42@x.com"}),
            ]
        )
    )
    by_id = {r.id: r for r in upserted.results}
    assert by_id[existing].new is False
    assert by_id[existing].properties["firstname"] == "New"
    (created,) = [r for r in upserted.results if r.id != existing]
    assert created.new is True
    again = client.crm.contacts.batch_api.upsert(
        BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[Upsert(id="v-42", id_property="visitor_key", properties={"firstname": "V"})]
        )
    )
    assert [(r.id, r.new) for r in again.results] == [(created.id, False)]
    with pytest.raises(ApiException) as raised:
        client.crm.contacts.batch_api.upsert(
            BatchInputSimplePublicObjectBatchInputUpsert(
                inputs=[Upsert(id="Ada", id_property="firstname", properties={})]
            )
        )
    assert raised.value.status == 400
