"""The Salesforce adapter's own CPU in a backfill, apart from httpx, TLS and the sandbox.

``record`` runs ``round_trips.py``'s backfill workload (the realistic mix) against the local
Salesforce in process and keeps every adapter call of the backfill: its method, its arguments,
each request it sent (method, URL, headers, body) and each answer (status, headers, body), and
its result. ``replay`` then drives the adapter flows of the tree on ``PYTHONPATH`` with those
answers, no IO at all: it checks that every request is the recorded one, byte for byte, and
every result the recorded result, and prints the flows' thread CPU per visitor (the best of
``--repeat`` passes, the garbage collector off). Recorded once, replayed with each tree in
turn, interleaved, it compares two trees' adapters on the same answers, and shows that a change
sends the same requests.

    python benchmarks/adapter_flows.py record --visitors 10000 --out /tmp/flows.pickle
    PYTHONPATH=<tree>/src python benchmarks/adapter_flows.py replay /tmp/flows.pickle
"""

from __future__ import annotations

import argparse
import gc
import pickle
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from signals_crm.adapters.salesforce import SalesforceAdapter, StaticToken

METHODS = ("find_people", "create_people", "update_people", "create_tasks", "add_to_campaign")
"""The calls a backfill makes (``write_chains`` and ``reconcile`` do not occur in one)."""

Wire = tuple[
    tuple[str, str, list[tuple[str, str]], bytes], tuple[int, list[tuple[str, str]], bytes]
]


class Recording(SalesforceAdapter):
    """A ``SalesforceAdapter`` that keeps each backfill call and its traffic."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[dict[str, Any]] = []
        self._wire: list[Wire] | None = None

    def _send(self, request: httpx.Request) -> httpx.Response:
        response = super()._send(request)
        response.read()
        if self._wire is not None:
            sent = (request.method, str(request.url), request.headers.multi_items(), request.read())
            answer = (response.status_code, response.headers.multi_items(), response.content)
            self._wire.append((sent, answer))
        return response

    def _call(self, name: str, *args: Any) -> Any:
        self._wire = []
        try:
            result = getattr(super(), name)(*args)
        finally:
            wire, self._wire = self._wire, None
        self.calls.append({"name": name, "args": args, "wire": wire, "result": result})
        return result

    def find_people(self, *args: Any) -> Any:
        return self._call("find_people", *args)

    def create_people(self, *args: Any) -> Any:
        return self._call("create_people", *args)

    def update_people(self, *args: Any) -> Any:
        return self._call("update_people", *args)

    def create_tasks(self, *args: Any) -> Any:
        return self._call("create_tasks", *args)

    def add_to_campaign(self, *args: Any) -> Any:
        return self._call("add_to_campaign", *args)


def record(visitors: int, out: Path) -> None:
    # Imported here: a replay needs only the adapter, so it runs against older trees too.
    import round_trips  # the sibling benchmark's workload, reused as it is

    from signals_crm.engine import Integration

    org, owner, campaign = round_trips.seeded_org(visitors)
    with httpx.Client(transport=org.transport()) as http:
        adapter = Recording(http, StaticToken(org.issue_token(), org.instance_url))
        integration = Integration(
            adapter, round_trips.config(owner, campaign), clock=lambda: round_trips.NOW
        )
        integration.preflight()
        adapter.calls.clear()
        report = integration.backfill(
            list(round_trips.conversations(visitors)), now=round_trips.NOW
        )
    calls = [c for c in adapter.calls if c["name"] in METHODS]
    payload = {"visitors": visitors, "instance_url": org.instance_url, "calls": calls}
    out.write_bytes(pickle.dumps(payload))
    requests = sum(len(c["wire"]) for c in calls)
    print(f"recorded {len(calls)} calls, {requests} requests: {dict(report.counts)} -> {out}")


def _drive(adapter: SalesforceAdapter, call: dict[str, Any], check: bool) -> Any:
    flow = getattr(adapter, call["name"] + "_flow")(*call["args"])
    wire = iter(call["wire"])
    try:
        request = next(flow)
        while True:
            sent, (status, headers, body) = next(wire)
            if check:
                adapter.prepare(request)
                got = (request.method, str(request.url), request.headers.multi_items())
                if got != sent[:3] or request.read() != sent[3]:
                    sys.exit(f"{call['name']}: a request differs from the recorded one")
            request = flow.send(httpx.Response(status, headers=headers, content=body))
    except StopIteration as stop:
        return stop.value


def replay(path: Path, repeat: int) -> None:
    payload = pickle.loads(path.read_bytes())  # noqa: S301  # a file this script wrote
    calls: Sequence[dict[str, Any]] = payload["calls"]
    best = float("inf")
    with httpx.Client() as http:
        for n in range(repeat):
            adapter = SalesforceAdapter(http, StaticToken("replayed", payload["instance_url"]))
            gc.collect()
            gc.disable()
            try:
                spent = 0.0
                for call in calls:
                    start = time.thread_time()
                    result = _drive(adapter, call, check=n == 0)
                    spent += time.thread_time() - start
                    if n == 0 and result != call["result"]:
                        sys.exit(f"{call['name']}: a result differs from the recorded one")
            finally:
                gc.enable()
            best = min(best, spent)
    per = best / payload["visitors"] * 1e3
    print(
        f"adapter flows: {per:.4f} ms a visitor (best of {repeat}, collector off; "
        f"{len(calls)} calls, every request and result the recorded one)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    rec = commands.add_parser("record")
    rec.add_argument("--visitors", type=int, default=10_000)
    rec.add_argument("--out", type=Path, required=True)
    rep = commands.add_parser("replay")
    rep.add_argument("path", type=Path)
    rep.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if args.command == "record":
        record(args.visitors, args.out)
    else:
        replay(args.path, args.repeat)


if __name__ == "__main__":
    main()
