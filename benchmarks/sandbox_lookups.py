"""Sandbox time per visitor as the sandboxes grow: flat from 1,000 to 100,000 records.

Workload, per size N (default 1,000, 10,000 and 100,000 records seeded first, half Leads and
half Contacts on the local Salesforce; contacts on the local HubSpot), then V visitors (default
1,000) synced the way the adapters do it at their batch sizes, half of them already in the
CRM:

- local Salesforce: a Lead lookup and a Contact lookup per 200 emails (``WHERE Email IN``), a
  Collections create of the new Leads, a Collections create of one Task each, and of one
  CampaignMember each (``SELECT ... WHERE CampaignId = ... AND LeadId IN`` first);
- local HubSpot: a ``batch/read`` by email per 100 emails, a ``batch/create`` of the new
  contacts, a ``batch/create`` of one task each with its association.

Each is run in process (``httpx.MockTransport``: only the sandbox's time) and over loopback
HTTP (the same requests through a real socket). The figure is wall time per visitor; the
requests are built up front, so the client's own time is only httpx's.

Then the loopback round trip itself: the mean time of 200 small sequential POSTs on one
keep-alive connection to each sandbox over HTTP, and over HTTPS (the ~40 ms a request that
Nagle's algorithm cost before the server set ``TCP_NODELAY`` shows up here).

    python benchmarks/sandbox_lookups.py [--sizes 1000 10000 100000] [--visitors 1000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from signals_crm.core.model import PersonKind
from signals_crm.testing import LoopbackServer
from signals_crm.testing.hubspot import LocalHubSpot
from signals_crm.testing.salesforce import LocalSalesforce, SalesforceBackdoor

_API = "/services/data/v61.0"


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _quoted(emails: list[str]) -> str:
    return ",".join(f"'{e}'" for e in emails)


def _check(response: httpx.Response) -> Any:
    if response.status_code >= 300:
        msg = f"{response.request.url.path}: {response.status_code} {response.text[:200]}"
        raise RuntimeError(msg)
    return response.json() if response.content else None


def salesforce_visitors(client: httpx.Client, emails: list[str], campaign: str) -> None:
    """What syncing ``emails`` costs the local Salesforce (at batch size 200)."""
    for batch in _chunks(emails, 200):
        found: set[str] = set()
        for sobject in ("Lead", "Contact"):
            soql = f"SELECT Id, Email FROM {sobject} WHERE Email IN ({_quoted(batch)})"  # noqa: S608  # SOQL, not SQL
            page = _check(client.get(f"{_API}/query", params={"q": soql}))
            found |= {r["Email"] for r in page["records"]}
        new = [e for e in batch if e not in found]
        leads = [
            {"attributes": {"type": "Lead"}, "LastName": "V", "Company": "C", "Email": e}
            for e in new
        ]
        created = _check(client.post(f"{_API}/composite/sobjects", json={"records": leads}))
        ids = [r["id"] for r in created]
        tasks = [{"attributes": {"type": "Task"}, "Subject": "Chat", "WhoId": i} for i in ids]
        _check(client.post(f"{_API}/composite/sobjects", json={"records": tasks}))
        soql = (
            f"SELECT Id, LeadId FROM CampaignMember WHERE CampaignId = '{campaign}' "  # noqa: S608  # SOQL
            f"AND LeadId IN ({_quoted(ids)})"
        )
        _check(client.get(f"{_API}/query", params={"q": soql}))
        members = [
            {"attributes": {"type": "CampaignMember"}, "CampaignId": campaign, "LeadId": i}
            for i in ids
        ]
        _check(client.post(f"{_API}/composite/sobjects", json={"records": members}))


def hubspot_visitors(client: httpx.Client, emails: list[str]) -> None:
    """What syncing ``emails`` costs the local HubSpot (at batch size 100)."""
    for batch in _chunks(emails, 100):
        body = {"idProperty": "email", "inputs": [{"id": e} for e in batch]}
        found = _check(client.post("/crm/v3/objects/contacts/batch/read", json=body))
        known = {r["properties"]["email"] for r in found["results"]}
        new = [e for e in batch if e not in known]
        inputs = [{"properties": {"email": e, "firstname": "V"}} for e in new]
        created = _check(
            client.post("/crm/v3/objects/contacts/batch/create", json={"inputs": inputs})
        )
        tasks = [
            {
                "properties": {"hs_timestamp": "2026-01-01T00:00:00Z", "hs_task_subject": "Chat"},
                "associations": [
                    {
                        "to": {"id": r["id"]},
                        "types": [
                            {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 204}
                        ],
                    }
                ],
            }
            for r in created["results"]
        ]
        _check(client.post("/crm/v3/objects/tasks/batch/create", json={"inputs": tasks}))


@contextmanager
def _client(
    app: LocalSalesforce | LocalHubSpot, over_http: bool, headers: dict[str, str]
) -> Iterator[httpx.Client]:
    if not over_http:
        with httpx.Client(
            transport=app.transport(), base_url="https://sandbox", headers=headers
        ) as client:
            yield client
        return
    with (
        LoopbackServer(app) as server,
        httpx.Client(base_url=server.url, headers=headers, timeout=30) as client,
    ):
        yield client


def _seeded_salesforce(size: int) -> tuple[LocalSalesforce, str]:
    org = LocalSalesforce(daily_limit=10**9)
    door = SalesforceBackdoor(org)
    for i in range(size):
        kind = PersonKind.LEAD if i % 2 == 0 else PersonKind.CONTACT
        door.seed_person(kind=kind, email=f"seed{i}@example.com")
    return org, door.seed_campaign(name="Chat")


def _seeded_hubspot(size: int) -> LocalHubSpot:
    portal = LocalHubSpot(burst_limit=None, daily_limit=None, search_per_second=None)
    door = portal.backdoor
    for i in range(size):
        door.seed_person(email=f"seed{i}@example.com")
    return portal


def _visitors(count: int) -> list[str]:
    # half of them already in the CRM (seeded), half new
    return [f"seed{i}@example.com" if i % 2 == 0 else f"new{i}@example.com" for i in range(count)]


def _measure(run: Callable[[], None], visitors: int) -> float:
    started = time.perf_counter()
    run()
    return (time.perf_counter() - started) / visitors * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--visitors", type=int, default=1_000)
    args = parser.parse_args()
    visitors = _visitors(args.visitors)
    print(f"{args.visitors} visitors (half existing) per size; ms per visitor")
    columns = ("SF in-process", "SF over HTTP", "HS in-process", "HS over HTTP")
    print(f"{'records':>8}" + "".join(f"  {c:>14}" for c in columns))
    for size in args.sizes:
        figures = []
        for over_http in (False, True):
            org, campaign = _seeded_salesforce(size)
            token = org.issue_token()
            with _client(org, over_http, {"Authorization": f"Bearer {token}"}) as client:
                figures.append(
                    _measure(
                        lambda c=client, o=campaign: salesforce_visitors(c, visitors, o),
                        len(visitors),
                    )
                )
        for over_http in (False, True):
            portal = _seeded_hubspot(size)
            with _client(
                portal, over_http, {"Authorization": "Bearer local-hubspot-token"}
            ) as client:
                figures.append(
                    _measure(lambda c=client: hubspot_visitors(c, visitors), len(visitors))
                )
        print(f"{size:>8}" + "".join(f"  {f:>14.3f}" for f in figures))
    round_trips()


def round_trips(count: int = 200) -> None:
    """Mean milliseconds of one small POST over loopback, per sandbox and scheme."""
    print(f"loopback round trip, mean of {count} small POSTs (ms)")
    for tls in (False, True):
        org = LocalSalesforce(daily_limit=10**9)
        portal = LocalHubSpot(burst_limit=None, daily_limit=None)
        cases: list[tuple[str, LocalSalesforce | LocalHubSpot, str, dict[str, Any], str]] = [
            ("local Salesforce", org, f"{_API}/sobjects/Account", {"Name": "A"}, org.issue_token()),
            (
                "local HubSpot",
                portal,
                "/crm/v3/objects/companies",
                {"properties": {"name": "A"}},
                "local-hubspot-token",
            ),
        ]
        for label, app, path, body, token in cases:
            with LoopbackServer(app, tls=tls) as server:
                verify: Any = True
                if server.ca_file is not None:
                    import ssl

                    verify = ssl.create_default_context(cafile=server.ca_file)
                headers = {"Authorization": f"Bearer {token}"}
                with httpx.Client(
                    base_url=server.url, headers=headers, verify=verify, timeout=30
                ) as client:
                    _check(client.post(path, json=body))
                    started = time.perf_counter()
                    for _ in range(count):
                        _check(client.post(path, json=body))
                    mean = (time.perf_counter() - started) / count * 1000
            print(f"  {label:<17} {'HTTPS' if tls else 'HTTP ':<5}  {mean:.2f}")


if __name__ == "__main__":
    main()
