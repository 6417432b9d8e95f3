"""``composite/graph`` in the local Salesforce, with requests as the vendor's pages show them.

- "Composite Graph" (request and response body),
  https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_graph.htm
- "Using Composite Graphs" (the example of two graphs),
  https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/using_resources_composite_graph.htm
- "Composite Graph Limits",
  https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_graph_limits.htm
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
from simple_salesforce import Salesforce

from signals_crm.testing import LoopbackServer
from signals_crm.testing.salesforce import LocalSalesforce

V = "/services/data/v61.0"


@pytest.fixture
def http(org: LocalSalesforce) -> Iterator[httpx.Client]:
    with httpx.Client(
        transport=org.transport(),
        base_url=org.instance_url,
        headers={"Authorization": f"Bearer {org.issue_token()}"},
    ) as client:
        yield client


def _account_and_contact(graph_id: str, name: str, last_name: Any = "Cashman") -> dict[str, Any]:
    """The guide's example graph: an Account, then a Contact on it through a reference."""
    return {
        "graphId": graph_id,
        "compositeRequest": [
            {
                "url": f"{V}/sobjects/Account/",
                "body": {"name": name},
                "method": "POST",
                "referenceId": f"reference_id_account_{graph_id}",
            },
            {
                "url": f"{V}/sobjects/Contact/",
                "body": {
                    "FirstName": "Nellie",
                    "LastName": last_name,
                    "AccountId": f"@{{reference_id_account_{graph_id}.id}}",
                },
                "method": "POST",
                "referenceId": f"reference_id_contact_{graph_id}",
            },
        ],
    }


def _records(org: LocalSalesforce, name: str) -> list[dict[str, Any]]:
    return list(org.data.records[name.lower()].values())


def test_two_graphs_as_the_guide_shows_them(org: LocalSalesforce, http: httpx.Client) -> None:
    """Two graphs in one call (one API call): each answers ``graphId``, ``graphResponse.
    compositeResponse`` (201 with the new ids) and ``isSuccessful: true``; the Contact points
    at its graph's Account."""
    used = org.api_used
    answer = http.post(
        f"{V}/composite/graph",
        json={
            "graphs": [
                _account_and_contact("1", "Cloudy Consulting"),
                _account_and_contact("2", "Easy Spaces"),
            ]
        },
    )
    assert answer.status_code == 200
    assert org.api_used == used + 1
    graphs = answer.json()["graphs"]
    assert [g["graphId"] for g in graphs] == ["1", "2"]
    assert all(g["isSuccessful"] for g in graphs)
    for graph in graphs:
        account, contact = graph["graphResponse"]["compositeResponse"]
        assert account["httpStatusCode"] == 201
        assert account["referenceId"].startswith("reference_id_account_")
        assert contact["httpStatusCode"] == 201
        stored = org.data.find(contact["body"]["id"])
        assert stored is not None
        assert stored[1]["AccountId"] == account["body"]["id"]
    assert len(_records(org, "Account")) == 2


def test_a_failed_graph_rolls_back_alone(org: LocalSalesforce, http: httpx.Client) -> None:
    """A graph is all or nothing: a failing node (a Contact without its required LastName)
    rolls its Account back and answers ``isSuccessful: false``; the other graph is saved."""
    answer = http.post(
        f"{V}/composite/graph",
        json={
            "graphs": [
                _account_and_contact("good", "Kept"),
                _account_and_contact("bad", "Rolled Back", last_name=None),
            ]
        },
    ).json()
    good, bad = answer["graphs"]
    assert good["isSuccessful"] is True
    assert bad["isSuccessful"] is False
    account, contact = bad["graphResponse"]["compositeResponse"]
    assert contact["httpStatusCode"] == 400
    assert contact["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert account["httpStatusCode"] == 400
    assert account["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert [a["Name"] for a in _records(org, "Account")] == ["Kept"]


def test_after_fourteen_failed_graphs_the_rest_are_halted(
    org: LocalSalesforce, http: httpx.Client
) -> None:
    """More than 14 failed graphs halts the remaining graphs: they are not run and answer
    ``PROCESSING_HALTED``."""
    graphs = [_account_and_contact(f"g{n}", f"A{n}", last_name=None) for n in range(15)]
    graphs.append(_account_and_contact("late", "Never Saved"))
    answer = http.post(f"{V}/composite/graph", json={"graphs": graphs}).json()["graphs"]
    assert [g["isSuccessful"] for g in answer] == [False] * 16
    halted = answer[-1]["graphResponse"]["compositeResponse"]
    assert {n["body"][0]["errorCode"] for n in halted} == {"PROCESSING_HALTED"}
    assert _records(org, "Account") == []


def _node(n: int, object_name: str = "Account", version: str = "61.0") -> dict[str, Any]:
    return {
        "url": f"/services/data/v{version}/sobjects/{object_name}/",
        "body": {"name": f"A{n}"},
        "method": "POST",
        "referenceId": f"r{n}",
    }


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (
            {"graphs": [{"graphId": str(n), "compositeRequest": [_node(n)]} for n in range(76)]},
            "75",
        ),
        ({"graphs": [{"graphId": "g", "compositeRequest": [_node(n) for n in range(501)]}]}, "500"),
        (
            {
                "graphs": [
                    {
                        "graphId": f"g{g}",
                        "compositeRequest": [_node(g * 100 + n) for n in range(100)],
                    }
                    for g in range(6)
                ]
            },
            "500 nodes",
        ),
        (
            {
                "graphs": [
                    {
                        "graphId": "g",
                        "compositeRequest": [_node(n, version=f"{50 + n}.0") for n in range(16)],
                    }
                ]
            },
            "15 different nodes",
        ),
        ({"graphs": [{"graphId": "_x", "compositeRequest": [_node(1)]}]}, "graphId"),
        ({"graphs": [{"graphId": "x" * 40, "compositeRequest": [_node(1)]}]}, "graphId"),
        (
            {
                "graphs": [
                    {"graphId": "same", "compositeRequest": [_node(1)]},
                    {"graphId": "same", "compositeRequest": [_node(2)]},
                ]
            },
            "graphId",
        ),
        (
            {
                "graphs": [
                    {
                        "graphId": "q",
                        "compositeRequest": [
                            {
                                "url": f"{V}/query?q=SELECT+Id+FROM+Lead",
                                "method": "GET",
                                "referenceId": "q",
                            }
                        ],
                    }
                ]
            },
            "only sObject resources",
        ),
        (
            {"graphs": [{"graphId": "p", "compositeRequest": [{**_node(1), "method": "PATCH"}]}]},
            "PATCH",
        ),
    ],
    ids=[
        "76-graphs",
        "501-nodes-in-a-graph",
        "600-nodes-in-the-payload",
        "16-node-kinds",
        "graphId-not-alphanumeric",
        "graphId-too-long",
        "graphId-twice",
        "a-query-node",
        "patch-without-an-id",
    ],
)
def test_requests_over_the_documented_limits_are_refused(
    org: LocalSalesforce, http: httpx.Client, payload: dict[str, Any], fragment: str
) -> None:
    """Over a documented limit (75 graphs; 500 nodes per graph and per payload; 15 different
    nodes) or with a node the graph resource does not take: 400 and nothing runs."""
    answer = http.post(f"{V}/composite/graph", json=payload)
    assert answer.status_code == 400
    assert fragment in answer.json()[0]["message"]
    assert _records(org, "Account") == []


def test_a_graph_deeper_than_fifteen_is_refused(org: LocalSalesforce, http: httpx.Client) -> None:
    """A chain of 16 nodes each referring to the one before is deeper than 15: 400."""
    chain = [_node(0)]
    chain.extend(
        {
            "url": f"{V}/sobjects/Account/",
            "body": {"name": f"A{n}", "ParentId": f"@{{r{n - 1}.id}}"},
            "method": "POST",
            "referenceId": f"r{n}",
        }
        for n in range(1, 16)
    )
    answer = http.post(
        f"{V}/composite/graph", json={"graphs": [{"graphId": "d", "compositeRequest": chain}]}
    )
    assert answer.status_code == 400
    assert "deeper than 15" in answer.json()[0]["message"]


def test_graph_needs_api_version_50(http: httpx.Client) -> None:
    """The resource exists from API version 50.0."""
    payload = {"graphs": [_account_and_contact("1", "Old")]}
    assert http.post("/services/data/v49.0/composite/graph", json=payload).status_code == 404


def test_composite_resources_list_the_graph(http: httpx.Client) -> None:
    """``GET composite`` names the graph resource beside tree, batch and sobjects."""
    assert http.get(f"{V}/composite").json()["graph"] == f"{V}/composite/graph"


def test_upserts_by_external_id_are_graph_nodes(http: httpx.Client) -> None:
    """Nodes may be sObject Rows by External ID (``PATCH sobjects/X/{Field}/{value}``)."""
    org = LocalSalesforce(external_id_fields=("Lead.Signals_Sync_Key__c",))
    with httpx.Client(
        transport=org.transport(),
        base_url=org.instance_url,
        headers={"Authorization": f"Bearer {org.issue_token()}"},
    ) as client:
        node = {
            "url": f"{V}/sobjects/Lead/Signals_Sync_Key__c/c-1:person",
            "body": {"LastName": "Doe", "Company": "Acme"},
            "method": "PATCH",
            "referenceId": "lead",
        }
        for created in (True, False):
            answer = client.post(
                f"{V}/composite/graph",
                json={"graphs": [{"graphId": "u", "compositeRequest": [node]}]},
            ).json()
            result = answer["graphs"][0]["graphResponse"]["compositeResponse"][0]
            assert result["body"]["created"] is created
    assert len(_records(org, "Lead")) == 1
    del http


@pytest.fixture
def sf(org: LocalSalesforce, sf_env: LoopbackServer) -> Iterator[Salesforce]:
    """simple-salesforce logged in its default way (SOAP) over HTTPS."""
    del sf_env
    org.add_login("ada@local.example.com", "correct-horse", "TOKEN123")
    with requests.Session() as session:
        yield Salesforce(
            username="ada@local.example.com",
            password="correct-horse",
            security_token="TOKEN123",
            session=session,
        )


def test_simple_salesforce_sends_a_graph_through_restful(
    org: LocalSalesforce, sf: Salesforce
) -> None:
    """``sf.restful("composite/graph", method="POST", json=...)`` over HTTPS answers the
    graphs as the guide shows them."""
    answer = sf.restful(
        "composite/graph",
        method="POST",
        json={"graphs": [_account_and_contact("1", "Cloudy Consulting")]},
    )
    assert answer["graphs"][0]["isSuccessful"] is True
    assert [
        r["httpStatusCode"] for r in answer["graphs"][0]["graphResponse"]["compositeResponse"]
    ] == [
        201,
        201,
    ]
    assert len(_records(org, "Contact")) == 1
