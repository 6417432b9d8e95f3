"""simple-salesforce, unchanged, against the local Salesforce over HTTPS.

The client gets its normal arguments plus only the CA bundle and the sandbox as its HTTPS
proxy (it logs in at ``https://login.salesforce.com`` whatever we do; the proxy answers that
host locally). Each test follows the vendor page it cites.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce, SalesforceAuthenticationFailed
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceResourceNotFound

from signals_crm.testing import LoopbackServer
from signals_crm.testing.salesforce import LocalSalesforce

USER = "ada@local.example.com"
PASSWORD = "correct-horse"  # the sandbox's own test user
TOKEN = "TOKEN123"


@pytest.fixture
def session(sf_env: LoopbackServer) -> Iterator[requests.Session]:
    """A plain session: the CA bundle and the proxy come from the environment (``sf_env``)."""
    del sf_env
    with requests.Session() as http:
        yield http


@pytest.fixture
def sf(org: LocalSalesforce, session: requests.Session) -> Salesforce:
    """Logged in the default way: SOAP login with username, password and security token."""
    org.add_login(USER, PASSWORD, TOKEN)
    return Salesforce(username=USER, password=PASSWORD, security_token=TOKEN, session=session)


def _lead(email: str, **extra: Any) -> dict[str, Any]:
    return {"LastName": "Lovelace", "Company": "Analytical", "Email": email, **extra}


def test_soap_login_connects_to_the_instance(sf: Salesforce, sf_server: LoopbackServer) -> None:
    """SOAP ``login()`` with the password followed by the security token returns a session id
    and the server URL whose host the REST calls then use.

    https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_login.htm
    """
    assert sf.sf_instance == sf_server.url.removeprefix("https://")
    assert sf.session_id.startswith("00D")
    assert sf.limits()["DailyApiRequests"]["Max"] == 15_000


def test_wrong_security_token_is_invalid_login(
    org: LocalSalesforce, session: requests.Session
) -> None:
    """A wrong token is a SOAP fault ``INVALID_LOGIN``, which the client raises.

    https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_login.htm
    """
    org.add_login(USER, PASSWORD, TOKEN)
    with pytest.raises(SalesforceAuthenticationFailed, match="INVALID_LOGIN"):
        Salesforce(username=USER, password=PASSWORD, security_token="WRONG", session=session)


def test_username_password_flow_answers_a_token_or_invalid_grant(
    org: LocalSalesforce, session: requests.Session
) -> None:
    """``grant_type=password`` with consumer key and secret: a token, or ``invalid_grant``.

    https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_username_password_flow.htm
    """
    org.add_login(USER, PASSWORD, TOKEN)
    org.register_client("app", "app-secret")
    sf = Salesforce(
        username=USER,
        password=PASSWORD,
        security_token=TOKEN,
        consumer_key="app",
        consumer_secret="app-secret",
        session=session,
    )
    assert sf.query("SELECT Id FROM Lead")["totalSize"] == 0
    with pytest.raises(SalesforceAuthenticationFailed, match="invalid_grant"):
        Salesforce(
            username=USER,
            password="nope",
            consumer_key="app",
            consumer_secret="app-secret",
            session=session,
        )


def test_jwt_bearer_flow(org: LocalSalesforce, session: requests.Session) -> None:
    """An RS256 assertion signed with the connected app's key, ``aud`` the login host.

    https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_jwt_flow.htm
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    org.add_login(USER, PASSWORD)
    org.register_client("jwt-app", jwt_public_key=public, jwt_username=USER)
    sf = Salesforce(username=USER, consumer_key="jwt-app", privatekey=private, session=session)
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 0


def test_client_credentials_flow_on_my_domain(
    org: LocalSalesforce, session: requests.Session
) -> None:
    """Client credentials at the org's My Domain (``domain`` must not be login/test).

    https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_client_credentials_flow.htm
    """
    org.register_client("svc", "svc-secret", client_credentials=True)
    sf = Salesforce(
        consumer_key="svc", consumer_secret="svc-secret", domain="local.my", session=session
    )
    assert sf.Lead.create(_lead("cc@x.com"))["success"] is True


def test_create_query_update_get_delete(sf: Salesforce) -> None:
    """The everyday calls: create (201 with id), query, update (204), get, delete, and
    ``queryAll`` still seeing the deleted record.

    https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_sobject_create.htm
    https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_queryall.htm
    """
    created = sf.Lead.create(_lead("Ada@x.com"), headers={"Sforce-Auto-Assign": "FALSE"})
    lead_id = created["id"]
    found = sf.query("SELECT Id, Email FROM Lead WHERE Email = 'ada@x.com'")
    assert [r["Id"] for r in found["records"]] == [lead_id]
    assert sf.Lead.update(lead_id, {"Title": "Countess"}) == 204
    assert sf.Lead.get(lead_id)["Title"] == "Countess"
    assert sf.Lead.delete(lead_id) == 204
    with pytest.raises(SalesforceResourceNotFound):
        sf.Lead.get(lead_id)
    assert sf.query_all("SELECT Id FROM Lead")["totalSize"] == 0
    kept = sf.query_all("SELECT Id, IsDeleted FROM Lead", include_deleted=True)
    assert [(r["Id"], r["IsDeleted"]) for r in kept["records"]] == [(lead_id, True)]


def test_query_all_follows_next_records_url(org: LocalSalesforce, sf: Salesforce) -> None:
    """Pages of a large result are fetched with ``nextRecordsUrl`` until ``done``.

    https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_query.htm
    """
    org.page_size = 3
    for i in range(7):
        sf.Lead.create(_lead(f"p{i}@x.com"))
    first = sf.query("SELECT Email FROM Lead ORDER BY Email")
    assert (first["totalSize"], first["done"], len(first["records"])) == (7, False, 3)
    everything = sf.query_all("SELECT Email FROM Lead ORDER BY Email")
    assert [r["Email"] for r in everything["records"]] == [f"p{i}@x.com" for i in range(7)]


def test_validation_errors_reach_the_client(sf: Salesforce) -> None:
    """A missing required field is a 400 with ``REQUIRED_FIELD_MISSING`` naming the field.

    https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm
    """
    with pytest.raises(SalesforceMalformedRequest) as raised:
        sf.Lead.create({"Company": "No Name"})
    (error,) = raised.value.content
    assert error["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert error["fields"] == ["LastName"]


def test_composite_through_restful(org: LocalSalesforce, sf: Salesforce) -> None:
    """``restful('composite')``: a Lead and its Task in one round trip and one API call.

    https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_composite_post.htm
    """
    used = org.api_used
    version = sf.sf_version
    answer = sf.restful(
        "composite",
        method="POST",
        data=json.dumps(
            {
                "allOrNone": True,
                "compositeRequest": [
                    {
                        "method": "POST",
                        "url": f"/services/data/v{version}/sobjects/Lead",
                        "referenceId": "lead",
                        "body": _lead("comp@x.com"),
                    },
                    {
                        "method": "POST",
                        "url": f"/services/data/v{version}/sobjects/Task",
                        "referenceId": "task",
                        "body": {"Subject": "Chat", "WhoId": "@{lead.id}"},
                    },
                ],
            }
        ),
    )
    assert [r["httpStatusCode"] for r in answer["compositeResponse"]] == [201, 201]
    assert org.api_used == used + 1
