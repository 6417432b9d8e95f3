"""Chaos: exactly once while workers are killed and the CRM is slow, wrong and hostile.

The sandbox (the local Salesforce or the local HubSpot, ``signals_crm.testing``) is served
over loopback HTTP in its own process, with faults drawn at random: about ``--faults`` of all
API calls fail (Salesforce: 503 JSON, 502 HTML, ``UNABLE_TO_LOCK_ROW`` per record, 429 with
``Retry-After``, a write that lands and then drops the connection; HubSpot: 503, a write that
lands and then drops the connection), ``--late`` of all write requests commit after the
client's timeout (the sandboxes' late-commit fault), and ``--expiry`` of all calls find the
access token expired (the clients refresh it over OAuth and replay).

``--workers`` worker processes each run ``Integration.run_due`` in a loop against one SQLite
ledger on disk (``synchronous=FULL``), until nothing is left to sync; ``--kills`` times, at a
random moment, a random worker is killed with SIGKILL and started again (same worker id).
Then the CRM's final state is audited against what the workload must give:

- every qualifying visitor is exactly one Lead (HubSpot: contact); an existing Lead or
  Contact gets no second record; a visitor under the criteria gets nothing;
- exactly one Task per activity (a chat transcript, and a booked meeting for half of them),
  on the right record, and no Task that no activity asked for;
- every new Lead is in the campaign (HubSpot: the static list) once; no other record is;
- every permanent failure (Salesforce refuses the Lead's ``Other_Email__c``; HubSpot refuses
  an email erased by a GDPR delete) is dead-lettered with the CRM's reason, and nothing else
  is dead-lettered or left pending.

The same invocation first does a fault-free run (no faults, no late commits, no expiry, no
kills, the same workers and workload) and prints the ratio of the two wall times.

The workload, per ``--seed``: of every hundred visitors about 70 are new, 15 have an existing
Lead (HubSpot: contact) whose first name is updated, 8 an existing Contact (Salesforce; the
activities are attached to it), 5 are scored under the criteria, 1 is a permanent failure, and
1 is a second conversation of a new visitor (one record, both conversations' Tasks). One new
visitor in a hundred sends a name with a lone surrogate (half an emoji), which the library
repairs. Every visitor has a chat transcript; half booked a meeting.

Time is scaled down, faithfully: a held (late) write is held ``--hold`` seconds (3), longer
than the client's read timeout (``--client-timeout``, 2), and the engine's settle window
(``--settle``, 8) is longer than the hold plus any request's processing, as the default
settle window (15 minutes) is longer than Salesforce's 10-minute request limit. Retries
reschedule after ``--reschedule`` seconds (1) instead of 5 minutes. HubSpot's marker-search
lag (15 s, the adapter's) is not scaled. The local Salesforce has the recommended external-ID
sync key field (``Signals_Sync_Key__c`` on Lead and Task: creates are upserts);
``--no-sync-key`` runs it without. The wall time counts from the workers' start to the last
worker's end (loading the ledger is shown apart); the sandbox's CPU time is measured in its
process and printed apart from the workers'. The exit status is 0 only when the audit is
clean.

    python benchmarks/chaos.py [--crm salesforce|hubspot|both] [--visitors N]
        [--faults 0.10] [--late 0.03] [--expiry 0.01] [--kills 5] [--workers 2] [--seed 1]
        [--time-limit SECONDS] [--no-baseline] [--no-sync-key] [--keep DIR]

``--visitors`` defaults to 10,000 on Salesforce and 2,000 on HubSpot.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import httpx

from signals_crm.adapters.hubspot import (
    FileWindow,
    HubSpotAdapter,
    HubSpotAPI,
    RateLimiter,
    RefreshTokenFlow,
)
from signals_crm.adapters.salesforce import ClientCredentialsFlow, SalesforceAdapter
from signals_crm.core.config import (
    Criteria,
    FieldMapping,
    FieldMappings,
    SyncConfig,
    UserMapEntry,
    UserMapping,
)
from signals_crm.core.model import (
    Conversation,
    Meeting,
    Participants,
    PersonKind,
    SignalsUser,
    Visitor,
    normalize_email,
)
from signals_crm.engine import Integration, RetryPolicy
from signals_crm.ledger import SQLiteLedger
from signals_crm.ledger.base import DueState

__all__ = ["Options", "Spec", "main", "run_chaos", "workload"]

CLIENT_ID = "chaos-app"
CLIENT_SECRET = "chaos-secret"  # noqa: S105  # a sandbox-only credential
REFRESH_TOKEN = "chaos-refresh"  # noqa: S105  # a sandbox-only credential
USERS = ("u1", "u2", "u3")
SYNC_KEY = "Signals_Sync_Key__c"
HERE = Path(__file__).resolve()


# ------------------------------------------------------------------------------------------------
# Options and workload


@attrs.frozen
class Options:
    """One run's parameters (the command line's, plus what the harness derives)."""

    crm: str = "salesforce"
    visitors: int = 10_000
    faults: float = 0.10
    late: float = 0.03
    expiry: float = 0.01
    kills: int = 5
    workers: int = 2
    seed: int = 1
    time_limit: float = 1800.0
    client_timeout: float = 1.0
    hold: float = 1.5
    settle: float = 2.5
    reschedule: float = 1.0
    sync_key: bool = True
    search_lag: float = 5.0
    portal_limit: int = 110  # HubSpot: requests per 10 s of the portal's window (0: none)
    shared_window: bool = True  # HubSpot: the workers draw from one window (a FileWindow)

    def __attrs_post_init__(self) -> None:
        if self.settle <= self.hold or self.hold <= self.client_timeout:
            msg = "need client timeout < hold < settle (a late write must outlast the client)"
            raise ValueError(msg)

    def fault_free(self) -> Options:
        """The same run without faults; a generous client timeout keeps it free of any."""
        return attrs.evolve(
            self,
            faults=0.0,
            late=0.0,
            expiry=0.0,
            kills=0,
            client_timeout=FAULT_FREE_TIMEOUT,
            hold=FAULT_FREE_TIMEOUT + 1,
            settle=FAULT_FREE_TIMEOUT + 2,
        )


FAULT_FREE_TIMEOUT = 30.0
DEFAULTS = Options()


def time_scale(slowest: float) -> tuple[float, float, float]:
    """The chaos run's client timeout, late-commit hold and settle window, from the slowest
    request of the fault-free run (the sandbox's own processing time on this machine now).

    In the order of the real defaults (a 15-minute settle window over Salesforce's 10-minute
    request limit): no ordinary request times out (the timeout is twice the slowest, at least
    1 s), a late write outlasts the client (held half a second longer), and it commits within
    the window, which adds three times the slowest request (at least 1 s): under chaos the
    sandbox is busier and a held request's processing was measured at up to twice the
    fault-free run's slowest. The run reports how late the late commits really committed, and
    counts one after the window as a finding.
    """
    client = max(1.0, round(2 * slowest, 1))
    hold = client + 0.5
    return client, hold, round(hold + max(1.0, 3 * slowest), 1)


@attrs.frozen
class Spec:
    """One conversation of the workload and what the CRM must end with for it."""

    cid: str
    email: str
    kind: str  # new | lead | contact | skip | poison | repeat
    meeting: bool
    surrogate: bool = False

    def markers(self) -> set[str]:
        if self.kind in ("skip", "poison"):
            return set()
        found = {f"signals:{self.cid}:transcript"}
        if self.meeting:
            found.add(f"signals:{self.cid}:meeting:m-{self.cid}")
        return found


def workload(options: Options) -> list[Spec]:
    """The visitors of a run (the same in every process for the same options)."""
    rng = random.Random(options.seed)
    specs: list[Spec] = []
    new: list[str] = []
    for i in range(options.visitors):
        draw = rng.random()
        meeting = rng.random() < 0.5
        email = f"visitor{i}.s{options.seed}@chaos.test"
        cid = f"c{i}"
        if draw < 0.05:
            kind = "skip"
        elif draw < 0.06:
            kind = "poison"
        elif draw < 0.21:
            kind = "lead"
        elif draw < 0.29:
            kind = "contact" if options.crm == "salesforce" else "lead"
        elif draw < 0.30 and new:
            kind = "repeat"
            email = new[rng.randrange(len(new))]
        else:
            kind = "new"
            new.append(email)
        surrogate = kind == "new" and rng.random() < 0.01
        specs.append(Spec(cid, email, kind, meeting, surrogate))
    return specs


def conversation(spec: Spec, closed_at: datetime, crm: str) -> Conversation:
    first = f"V{spec.cid}\ud83d" if spec.surrogate else f"V{spec.cid}"  # half an emoji
    other = "not an address" if spec.kind == "poison" and crm == "salesforce" else None
    index = int(spec.cid[1:])
    return Conversation(
        id=spec.cid,
        closed_at=closed_at,
        lead_score=0 if spec.kind == "skip" else 1 + index % 3,
        visitor=Visitor(email=spec.email, first_name=first, last_name="Chaos", other_email=other),
        participants=Participants(
            closer=SignalsUser(id=USERS[index % 3]),
            meeting_scheduler=SignalsUser(id=USERS[(index + 1) % 3]) if spec.meeting else None,
        ),
        transcript=f"Visitor {spec.cid}: hello, is this thing on?",
        meeting=Meeting(id=f"m-{spec.cid}", name="Demo") if spec.meeting else None,
    )


def sync_config(crm: str, owners: Sequence[str], campaign: str) -> SyncConfig:
    return SyncConfig(
        criteria=Criteria.ONE_STAR,
        synchronization_delay=timedelta(minutes=5),
        campaign_id=campaign,
        users=UserMapping(
            tuple(UserMapEntry(o, signals_user_id=u) for u, o in zip(USERS, owners, strict=True))
        ),
        field_mappings=FieldMappings(
            lead=(
                FieldMapping("contact.first_name", "FirstName", overwrite=True),
                FieldMapping("contact.last_name", "LastName"),
                FieldMapping("contact.other_email", "Other_Email__c"),
            ),
        )
        if crm == "salesforce"
        else FieldMappings(
            contact=(
                FieldMapping("contact.first_name", "firstname", overwrite=True),
                FieldMapping("contact.last_name", "lastname"),
            )
        ),
        placeholders={"LastName": "[not provided]", "Company": "[not provided]"},
    )


# ------------------------------------------------------------------------------------------------
# The sandbox's process


def _salesforce(options: Options, specs: Sequence[Spec]) -> tuple[Any, Any, list[str], str]:
    from signals_crm.testing.salesforce import (
        Faults,
        FieldDef,
        LocalSalesforce,
        SalesforceBackdoor,
    )

    f = options.faults
    org = LocalSalesforce(
        external_id_fields=(f"Lead.{SYNC_KEY}", f"Task.{SYNC_KEY}") if options.sync_key else (),
        daily_limit=10**9,
        faults=Faults(
            seed=options.seed,
            server_unavailable=0.3 * f,
            gateway_html=0.2 * f,
            lock_row=0.2 * f,
            too_many_requests=0.1 * f,
            drop_after_commit=0.2 * f,
            expire_session=options.expiry,
            late_commit=options.late,
            late_commit_hold=options.hold,
        ),
    )
    org.register_client(CLIENT_ID, CLIENT_SECRET, client_credentials=True)
    org.add_field(
        "Lead",
        FieldDef("Other_Email__c", type="email", length=80, label="Other Email", custom=True),
    )
    door = SalesforceBackdoor(org)
    owners = [door.seed_user(email=f"{u}@vendor.test") for u in USERS]
    campaign = door.seed_campaign(name="Chat leads")
    for spec in specs:
        if spec.kind == "lead":
            door.seed_person(kind=PersonKind.LEAD, email=spec.email, fields={"FirstName": "Old"})
        elif spec.kind == "contact":
            door.seed_person(kind=PersonKind.CONTACT, email=spec.email)
    return org, door, owners, campaign


def _hubspot(options: Options, specs: Sequence[Spec]) -> tuple[Any, Any, list[str], str]:
    from signals_crm.testing.hubspot import LocalHubSpot

    # HubSpot's search index trails writes ("a few moments"): emulated for search only.
    portal = LocalHubSpot(
        seed=options.seed,
        burst_limit=options.portal_limit or None,
        search_per_second=None,
        search_lag=options.search_lag,
    )
    portal.faults.error_rate = 0.6 * options.faults
    portal.faults.drop_rate = 0.4 * options.faults
    portal.faults.expire_rate = options.expiry
    portal.faults.late_commit_rate = options.late
    portal.faults.late_commit_hold = options.hold
    portal.add_oauth_client(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN)
    door = portal.backdoor
    owners = [door.seed_user(email=f"{u}@vendor.test") for u in USERS]
    campaign = door.seed_campaign(name="Chat leads")
    for spec in specs:
        if spec.kind == "lead":
            door.seed_person(email=spec.email, fields={"firstname": "Old"})
        elif spec.kind == "poison":
            portal.gdpr_blocked.add(normalize_email(spec.email))
    return portal, door, owners, campaign


def _people(crm: str, app: Any, door: Any) -> dict[str, list[dict[str, Any]]]:
    """Every Lead and Contact (HubSpot: contact) by email, with its Tasks' markers."""
    out: dict[str, list[dict[str, Any]]] = {}
    if crm == "salesforce":
        with app._lock:  # noqa: SLF001  # the audit reads the org's own rows, in one pass
            markers: dict[str, list[str]] = {}
            for task in app.data.records["task"].values():
                marker = door.task_marker.read(task)
                if marker is not None:
                    markers.setdefault(str(task.get("WhoId") or "")[:15], []).append(marker)
            for name in ("lead", "contact"):
                for pid, record in app.data.records[name].items():
                    email = normalize_email(str(record.get("Email") or ""))
                    out.setdefault(email, []).append(
                        {
                            "id": pid,
                            "kind": name,
                            "converted": bool(record.get("IsConverted")),
                            "markers": markers.get(pid[:15], []),
                        }
                    )
        return out
    with app.lock:
        contacts = [
            (r.id, r.props.get("email", ""))
            for r in app.objects["contacts"].values()
            if not r.archived
        ]
    for pid, email in contacts:
        out.setdefault(normalize_email(email), []).append(
            {"id": pid, "kind": "contact", "converted": False, "markers": door.task_markers(pid)}
        )
    return out


def _campaign_rows(crm: str, app: Any, campaign: str) -> list[str]:
    """Every membership row of the campaign (a duplicate row would show twice)."""
    if crm == "salesforce":
        with app._lock:  # noqa: SLF001  # the audit reads the org's own rows
            return [
                str(m.get("LeadId") or m.get("ContactId"))
                for m in app.data.records["campaignmember"].values()
                if str(m.get("CampaignId"))[:15] == campaign[:15]
            ]
    return sorted(app.backdoor.campaign_members(campaign))


def _paths(crm: str, app: Any) -> dict[str, int]:
    """API calls by kind (HubSpot: method and path with ids left out)."""
    if crm != "hubspot":
        return {}
    with app.lock:
        seen = list(app.requests)
    return dict(Counter(f"{m} {re.sub(r'/[0-9][0-9-]*', '/N', p)}" for m, p in seen).most_common())


def _dump(crm: str, app: Any, door: Any, campaign: str, specs: Sequence[Spec]) -> dict[str, Any]:
    cpu = time.process_time()  # before the audit's own reads
    people = _people(crm, app, door)
    return {
        "people": {s.email: people.get(normalize_email(s.email), []) for s in specs},
        "members": _campaign_rows(crm, app, campaign),
        "late_commits": app.late_commits,
        "api_calls": app.api_used if crm == "salesforce" else app.calls,
        "token_requests": app.token_requests,
        "rate_limited": app.rate_limited if crm == "hubspot" else 0,
        "paths": _paths(crm, app),
        "cpu": cpu,
    }


class _Timed:
    """The sandbox app, timed: how long each request took from arrival to answer (a held
    late write: the hold plus its processing, i.e. when it committed)."""

    def __init__(self, app: Any, hold: float) -> None:
        self.app = app
        self.hold = hold
        self.lock = threading.Lock()
        self.slowest = 0.0  # of every request that was not held
        self.slowest_late = 0.0  # of the held ones: arrival to commit

    def served_at(self, url: str) -> None:
        self.app.served_at(url)

    def answer(self, request: httpx.Request) -> Any:
        began = time.monotonic()
        try:
            return self.app.answer(request)
        finally:
            took = time.monotonic() - began
            with self.lock:
                if took >= self.hold:
                    self.slowest_late = max(self.slowest_late, took)
                else:
                    self.slowest = max(self.slowest, took)


def serve(options: Options) -> None:
    """The sandbox's process: seed, serve, then answer ``dump PATH`` and ``quit`` on stdin."""
    from signals_crm.testing import LoopbackServer

    specs = workload(options)
    make = _salesforce if options.crm == "salesforce" else _hubspot
    app, door, owners, campaign = make(options, specs)
    timed = _Timed(app, options.hold)
    with LoopbackServer(timed) as server:
        ready = {"url": server.url, "owners": owners, "campaign": campaign}
        print(json.dumps({**ready, "cpu": time.process_time()}), flush=True)
        for line in sys.stdin:
            command, _, arg = line.strip().partition(" ")
            if command == "dump":
                dump = _dump(options.crm, app, door, campaign, specs)
                dump.update(slowest=timed.slowest, slowest_late=timed.slowest_late)
                Path(arg).write_text(json.dumps(dump))
                print("dumped", flush=True)
            elif command == "quit":
                print(json.dumps({"cpu": time.process_time()}), flush=True)
                break


# ------------------------------------------------------------------------------------------------
# A worker's process


def _integration(
    options: Options,
    site: Mapping[str, Any],
    http: httpx.Client,
    ledger: Any,
    *,
    worker_id: str,
    rng: random.Random,
    window: str | None = None,
) -> Integration:
    url = site["url"]
    adapter: Any
    if options.crm == "salesforce":
        auth = ClientCredentialsFlow(
            client_id=CLIENT_ID, client_secret=CLIENT_SECRET, login_url=url
        )
        adapter = SalesforceAdapter(
            http, auth, sync_key_field=SYNC_KEY if options.sync_key else None
        )
    else:
        api = HubSpotAPI(base_url=url)
        auth = RefreshTokenFlow(
            client_id=CLIENT_ID, client_secret=CLIENT_SECRET, refresh_token=REFRESH_TOKEN, api=api
        )
        shared = FileWindow(window) if window is not None and options.shared_window else None
        adapter = HubSpotAdapter(http, auth, api=api, limiter=RateLimiter(window=shared))
    return Integration(
        adapter,
        sync_config(options.crm, site["owners"], site["campaign"]),
        ledger=ledger,
        worker_id=worker_id,
        sleep=_slept,
        settle=timedelta(seconds=options.settle),
        retry=RetryPolicy(base_delay=0.05, max_delay=1.0, reschedule_after=options.reschedule),
        random=rng.random,
    )


_SLEPT: Counter[str] = Counter()
_SLOW: list[tuple[str, float, str]] = []
_PATHS: Counter[str] = Counter()
_ITEMS: Counter[str] = Counter()  # items asked for, by adapter method
_DOING: list[str] = []  # the adapter method under way (its requests are counted under it)
_METHODS = (
    "find_people",
    "reconcile",
    "create_people",
    "update_people",
    "create_tasks",
    "add_to_campaign",
    "list_users",
    "describe",
    "campaign_exists",
)


def _counted(adapter: Any) -> None:
    """Count each request under the adapter method that sent it (for the log)."""
    for name in _METHODS:
        method = getattr(adapter, name, None)
        if method is None:
            continue

        def wrapped(*args: Any, _method: Any = method, _name: str = name, **kw: Any) -> Any:
            if _name == "find_people" and not (args[1:] and args[1]):
                _name = "find_people (reconcile)"  # the engine's reads of its own creates
            _ITEMS[_name] += len(args[0]) if args else 0
            _DOING.insert(0, _name)
            try:
                return _method(*args, **kw)
            finally:
                _DOING.pop(0)

        setattr(adapter, name, wrapped)


class _TimedTransport(httpx.BaseTransport):
    """The workers' transport, noting requests slower than half a second (for the log)."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        began = time.monotonic()
        outcome = "answered"
        try:
            response = self.inner.handle_request(request)
        except httpx.HTTPError as error:
            outcome = type(error).__name__
            raise
        else:
            outcome = str(response.status_code)
            return response
        finally:
            took = time.monotonic() - began
            path = re.sub(r"/[0-9][0-9-]*", "/N", request.url.path)[-34:]
            _PATHS[f"{_DOING[0]} {path}" if _DOING else path] += 1
            if took > 0.5:
                _SLOW.append((request.url.path[-40:], round(took, 2), outcome))

    def close(self) -> None:
        self.inner.close()


def _slept(seconds: float) -> None:
    """The engine's sleeps (backoffs, ``Retry-After``), slept and counted for the log."""
    _SLEPT["seconds"] += seconds  # type: ignore[assignment]  # a float tally
    _SLEPT["count"] += 1
    time.sleep(seconds)


def work(
    options: Options, site: Mapping[str, Any], ledger_path: str, worker_id: str, log_path: str
) -> None:
    """A worker's process: ``run_due`` until nothing is pending (or the time limit)."""
    rng = random.Random(f"{options.seed}:{worker_id}:{os.getpid()}")
    deadline = time.monotonic() + options.time_limit
    with (
        Path(log_path).open("a", encoding="utf-8") as log,
        httpx.Client(
            timeout=options.client_timeout, transport=_TimedTransport(httpx.HTTPTransport())
        ) as http,
        SQLiteLedger(ledger_path) as ledger,
    ):
        sync = _integration(
            options,
            site,
            http,
            ledger,
            worker_id=worker_id,
            rng=rng,
            window=f"{ledger_path}.hubspot-window",  # one portal: one window for all workers
        )
        _counted(sync.adapter)
        limiter = getattr(sync.adapter, "limiter", None)  # HubSpot's client-side burst limiter
        while time.monotonic() < deadline:
            began = time.time()
            waited = limiter.waited if limiter is not None else 0.0
            _SLEPT.clear()
            _SLOW.clear()
            _PATHS.clear()
            _ITEMS.clear()
            log.write(json.dumps({"run": began, "pid": os.getpid()}) + "\n")
            log.flush()
            try:
                report = sync.run_due()
            except Exception as error:  # noqa: BLE001  # an escape is a finding: logged, counted
                log.write(
                    json.dumps(
                        {
                            "escaped": f"{type(error).__name__}: {error}",
                            "trace": traceback.format_exc(limit=4),
                        }
                    )
                    + "\n"
                )
                log.flush()
                time.sleep(0.5)
                continue
            if report.outcomes:
                waits = Counter(
                    (o.error or "").split(" 20")[0][:60]
                    for o in report.outcomes
                    if o.kind.value == "retry"
                )
                entry = {
                    "began": began,
                    "at": time.time(),
                    "counts": dict(report.counts),
                    "slept": [round(_SLEPT["seconds"], 2), _SLEPT["count"]],
                    "slow": _SLOW[:6],
                    "calls": dict(_PATHS),
                    "items": dict(_ITEMS),
                    "limiter": round((limiter.waited if limiter else 0.0) - waited, 2),
                    "waits": dict(waits),
                    "retry_in": sorted(
                        {
                            round((o.retry_at.timestamp() - began), 1)
                            for o in report.outcomes
                            if o.retry_at is not None
                        }
                    )[:5],
                }
                log.write(json.dumps(entry) + "\n")
                log.flush()
            if ledger.stats().syncs.get(DueState.PENDING, 0) == 0:
                return
            if not report.outcomes:
                time.sleep(_until_next_due(ledger))


def _until_next_due(ledger: Any) -> float:
    """Seconds until the earliest pending sync is due (a settle window's end, a retry): the
    worker sleeps until then, not on a fixed poll. Bounded below (a due sync another worker
    holds) and above (syncs another worker reschedules meanwhile)."""
    first = ledger.syncs_in_state(DueState.PENDING, 1)
    if not first:
        return _IDLE_MAX
    wait = float((first[0].due_at - datetime.now(UTC)).total_seconds())
    return min(max(wait, _IDLE_MIN), _IDLE_MAX)


_IDLE_MIN = 0.05
_IDLE_MAX = 1.0


# ------------------------------------------------------------------------------------------------
# The orchestrator


@attrs.define
class RunResult:
    options: Options
    seconds: float
    load_seconds: float
    sandbox_cpu: float
    workers_cpu: float
    kills: int
    restarts: int
    audit: dict[str, Any]
    dump: dict[str, Any]
    escaped: list[str]
    timed_out: bool
    limited: float = 0.0  # seconds the workers' client-side rate limiters waited (HubSpot)
    finished_calls: int = 0  # requests (tokens included) of the runs that finished


def _child(role: str, options: Options, *extra: str) -> list[str]:
    return [sys.executable, str(HERE), role, json.dumps(attrs.asdict(options)), *extra]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _load(
    options: Options, site: Mapping[str, Any], ledger_path: str, specs: Sequence[Spec]
) -> None:
    closed_at = datetime.now(UTC) - timedelta(hours=1)
    with httpx.Client() as http, SQLiteLedger(ledger_path, synchronous="NORMAL") as ledger:
        sync = _integration(options, site, http, ledger, worker_id="loader", rng=random.Random(0))
        for spec in specs:
            sync.conversation_closed(conversation(spec, closed_at, options.crm))


def run_chaos(
    options: Options, *, scale: float | None = None, keep: Path | None = None
) -> RunResult:
    """One run: serve, load, work (with kills), audit. ``scale`` spreads the kills over that
    many seconds (default: an estimate from the visitor count)."""
    rng = random.Random(options.seed * 7919 + 1)
    specs = workload(options)
    with tempfile.TemporaryDirectory(prefix="signals-crm-chaos-") as scratch:
        folder = keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        ledger_path = str(folder / "ledger.sqlite3")
        cpu_before = _children_cpu()
        server = subprocess.Popen(  # noqa: S603  # this script, by path
            _child("_serve", options), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        workers: dict[str, subprocess.Popen[bytes]] = {}
        try:
            assert server.stdout is not None  # noqa: S101  # piped above
            assert server.stdin is not None  # noqa: S101  # piped above
            site = json.loads(server.stdout.readline())
            started = time.monotonic()
            _load(options, site, ledger_path, specs)
            load_seconds = time.monotonic() - started
            span = scale if scale is not None else max(10.0, options.visitors / 150)
            kill_at = sorted(rng.uniform(0.05, 0.8) * span for _ in range(options.kills))
            logs = {f"w{n}": str(folder / f"w{n}.jsonl") for n in range(options.workers)}

            events: list[dict[str, Any]] = []

            def start(name: str) -> None:
                events.append({"at": time.time(), "start": name})
                workers[name] = subprocess.Popen(  # noqa: S603  # this script, by path
                    _child("_work", options, json.dumps(site), ledger_path, name, logs[name])
                )

            began = time.monotonic()
            for name in logs:
                start(name)
            kills = restarts = 0
            done: set[str] = set()
            timed_out = False
            while len(done) < len(workers):
                elapsed = time.monotonic() - began
                if elapsed > options.time_limit + 30:
                    timed_out = True
                    break
                if kill_at and elapsed >= kill_at[0]:
                    kill_at.pop(0)
                    alive = [n for n, p in workers.items() if n not in done and p.poll() is None]
                    if alive:
                        victim = rng.choice(alive)
                        events.append({"at": time.time(), "kill": victim})
                        workers[victim].send_signal(signal.SIGKILL)
                        workers[victim].wait()
                        kills += 1
                        start(victim)
                for name, proc in workers.items():
                    if name in done or proc.poll() is None:
                        continue
                    if proc.returncode == 0:
                        done.add(name)
                    else:  # died on its own: a finding; started again
                        restarts += 1
                        start(name)
                time.sleep(0.05)
            seconds = time.monotonic() - began
            events.append({"at": time.time(), "end": seconds})
            (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
            for proc in workers.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            # Nothing held can still be on its way: every write was settled (the settle
            # window is longer than the hold) before the workers found nothing left to do.
            dump_path = folder / "crm.json"
            server.stdin.write(f"dump {dump_path}\n")
            server.stdin.flush()
            server.stdout.readline()
            dump = json.loads(dump_path.read_text())
            server.stdin.write("quit\n")
            server.stdin.flush()
            server_cpu = json.loads(server.stdout.readline())["cpu"]
            server.wait(timeout=30)
        finally:
            for proc in [server, *workers.values()]:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            for stream in (server.stdin, server.stdout):
                if stream is not None:
                    stream.close()
        children = _children_cpu() - cpu_before
        escaped = []
        limited = 0.0
        finished = 0  # requests of the runs that finished (a killed run's are never logged)
        for path in logs.values():
            for line in Path(path).read_text().splitlines() if Path(path).exists() else []:
                entry = json.loads(line)
                if "escaped" in entry:
                    escaped.append(entry["escaped"])
                limited += entry.get("limiter", 0.0)
                finished += sum(entry.get("calls", {}).values())
        with SQLiteLedger(ledger_path) as ledger:
            audit = _audit(options, specs, dump, ledger)
    return RunResult(
        options,
        seconds,
        load_seconds,
        dump["cpu"] - site["cpu"],
        children - server_cpu,
        kills,
        restarts,
        audit,
        dump,
        escaped,
        timed_out,
        limited,
        finished,
    )


_REASONS = {"salesforce": "INVALID_EMAIL_ADDRESS", "hubspot": "GDPR"}


def _audit(
    options: Options, specs: Sequence[Spec], dump: Mapping[str, Any], ledger: Any
) -> dict[str, Any]:
    """Compare the CRM's and the ledger's final state with what the workload must give."""
    found: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}

    def note(what: str, count: int, example: str) -> None:
        if count > 0:
            found[what] += count
            examples.setdefault(what, [])
            if len(examples[what]) < 3:
                examples[what].append(example)

    person_kind = "lead" if options.crm == "salesforce" else "contact"
    members = Counter(dump["members"])
    by_email: dict[str, list[Spec]] = {}
    for spec in specs:
        by_email.setdefault(spec.email, []).append(spec)
    for email, group in by_email.items():
        people = dump["people"][email]
        kinds = {s.kind for s in group} - {"repeat"}
        (kind,) = kinds
        wanted = set().union(*(s.markers() for s in group))
        markers = Counter(m for p in people for m in p["markers"])
        note("duplicate tasks", sum(c - 1 for c in markers.values()), email)
        note("lost tasks", len(wanted - set(markers)), email)
        note("tasks nobody asked for", len(set(markers) - wanted), email)
        live = [p for p in people if p["kind"] == person_kind and not p["converted"]]
        if kind == "new":
            note("duplicate people", max(0, len(people) - 1), email)
            note("lost people", int(not people), email)
            in_campaign = sum(members[p["id"]] for p in live)
            note("duplicate memberships", max(0, in_campaign - 1), email)
            note("lost memberships", int(bool(live) and in_campaign == 0), email)
        elif kind in ("lead", "contact"):
            note("duplicate people", max(0, len(people) - 1), email)
            note("lost people", int(not people), email)
            note("memberships nobody asked for", sum(members[p["id"]] for p in people), email)
        else:  # skip, poison: nothing in the CRM
            note("people nobody asked for", len(people), email)
    dead_ok = 0
    for spec in specs:
        due = ledger.get_due(spec.cid)
        state = due.state if due is not None else None
        if spec.kind == "poison":
            reason = (due.last_error or due.outcome or "") if due is not None else ""
            good = state is DueState.DEAD and _REASONS[options.crm].lower() in reason.lower()
            dead_ok += good
            note(
                "permanent failures not dead-lettered with their reason",
                int(not good),
                f"{spec.cid}: {state} {reason[:120]}",
            )
        elif state is DueState.DEAD:
            note("dead letters nobody expected", 1, f"{spec.cid}: {due.last_error}")
        elif state is not DueState.DONE:
            note("stalled (not done)", 1, f"{spec.cid}: {state}")
    duplicates = sum(v for k, v in found.items() if k.startswith("duplicate"))
    lost = sum(v for k, v in found.items() if k.startswith("lost"))
    return {
        "duplicates": duplicates,
        "lost": lost,
        "dead_lettered": dead_ok,
        "permanent_failures": sum(s.kind == "poison" for s in specs),
        "findings": dict(found),
        "examples": examples,
        "qualifying": sum(s.kind not in ("skip", "poison") for s in specs),
    }


def _describe(result: RunResult) -> str:
    a = result.audit
    lines = [
        (
            f"  wall {result.seconds:.1f} s (loading the ledger {result.load_seconds:.1f} s, "
            f"apart); sandbox CPU {result.sandbox_cpu:.1f} s, workers CPU "
            f"{result.workers_cpu:.1f} s"
        ),
        (
            f"  API calls {result.dump['api_calls']}, token requests "
            f"{result.dump['token_requests']}, late commits {result.dump['late_commits']}, "
            f"kills {result.kills}"
            + (
                f" (runs killed before finishing sent "
                f"{result.dump['api_calls'] - result.finished_calls} of the requests)"
                if result.options.crm == "hubspot" and result.kills
                else ""
            )
            + (f", workers that died on their own {result.restarts}" if result.restarts else "")
            + (
                f"; portal window {result.options.portal_limit or 'none'} per 10 s, "
                f"{'one shared by the workers' if result.options.shared_window else 'one each'}"
                f", 429s {result.dump['rate_limited']}; the workers' rate limiters waited "
                f"{result.limited:.1f} s in all"
                if result.options.crm == "hubspot"
                else ""
            )
        ),
        (
            f"  slowest request {result.dump['slowest']:.2f} s (client timeout "
            f"{result.options.client_timeout:g} s); late commits committed at most "
            f"{result.dump['slowest_late']:.2f} s after they arrived (settle window "
            f"{result.options.settle:g} s"
            + (
                ": LATER THAN THE WINDOW, the time scale is off"
                if result.dump["slowest_late"] >= result.options.settle
                else ""
            )
            + ")"
        ),
        (
            f"  duplicates {a['duplicates']}, lost {a['lost']}, dead-lettered with reason "
            f"{a['dead_lettered']}/{a['permanent_failures']}"
            + (", TIMED OUT" if result.timed_out else "")
        ),
    ]
    for what, count in sorted(a["findings"].items()):
        lines.append(f"    {what}: {count}  e.g. {a['examples'][what]}")
    if result.escaped:
        common = Counter(result.escaped).most_common(3)
        lines.append(f"    errors that escaped run_due: {len(result.escaped)}: {common}")
    return "\n".join(lines)


def _paths_table(base: RunResult | None, chaos: RunResult) -> str:
    """HubSpot's requests by method and path, fault-free and chaos side by side (the token
    endpoint is not counted in the portal's window)."""
    before = base.dump["paths"] if base else {}
    after = chaos.dump["paths"]
    lines = ["  requests by path (fault-free -> chaos):"]
    lines.extend(
        f"    {before.get(path, 0):4d} -> {after.get(path, 0):4d}  {path}"
        for path in sorted(set(before) | set(after), key=lambda p: -after.get(p, 0))
    )
    tokens = (base.dump["token_requests"] if base else 0, chaos.dump["token_requests"])
    counted = (
        base.dump["api_calls"] - tokens[0] if base else 0,
        chaos.dump["api_calls"] - tokens[1],
    )
    lines.append(f"    {counted[0]:4d} -> {counted[1]:4d}  in the portal's window (all but tokens)")
    return "\n".join(lines)


def _row(chaos: RunResult, base: RunResult | None) -> str:
    o, a = chaos.options, chaos.audit
    base_s = f"{base.seconds:.1f}" if base else "-"
    ratio = f"{chaos.seconds / base.seconds:.2f}" if base else "-"
    return (
        f"| {o.crm} | {o.visitors:,} | {o.faults:.0%} | {o.late:.0%} | {chaos.kills} | "
        f"{o.workers} | {a['duplicates']} | {a['lost']} | {a['dead_lettered']}/"
        f"{a['permanent_failures']} | {base_s} s | {chaos.seconds:.1f} s | {ratio} |"
    )


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--crm", choices=["salesforce", "hubspot", "both"], default="both")
    parser.add_argument("--visitors", type=int, default=None)
    parser.add_argument("--faults", type=float, default=0.10, help="share of API calls that fail")
    parser.add_argument("--late", type=float, default=0.03, help="share of writes that commit late")
    parser.add_argument("--expiry", type=float, default=0.01, help="share of calls: token expired")
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--time-limit", type=float, default=1800.0, help="seconds per run")
    scaled = "default: from the fault-free run's slowest request"
    parser.add_argument(
        "--client-timeout", type=float, default=None, help=f"read timeout; {scaled}"
    )
    parser.add_argument("--hold", type=float, default=None, help=f"late write held; {scaled}")
    parser.add_argument("--settle", type=float, default=None, help=f"settle window; {scaled}")
    parser.add_argument(
        "--no-sync-key",
        action="store_true",
        help="Salesforce without the external-ID sync key field (no upserts)",
    )
    parser.add_argument("--reschedule", type=float, default=1.0)
    parser.add_argument(
        "--search-lag",
        type=float,
        default=5.0,
        help="seconds the local HubSpot's search index trails writes (search only)",
    )
    parser.add_argument(
        "--portal-limit",
        type=int,
        default=110,
        help="HubSpot: the portal's requests per 10 s (110: an OAuth app's; 0: unlimited)",
    )
    parser.add_argument(
        "--window-per-worker",
        action="store_true",
        help="HubSpot: each worker keeps its own rate window (not shared: they may pass the "
        "portal's limit together)",
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the fault-free run")
    parser.add_argument("--keep", type=Path, default=None, help="keep ledgers and logs here")
    return parser.parse_args(argv)


def _kept(folder: Path | None, crm: str, run: str) -> Path | None:
    return folder / f"{crm}-{run}" if folder is not None else None


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    crms = ["salesforce", "hubspot"] if args.crm == "both" else [args.crm]
    print(f"chaos: {' '.join(sys.argv)}")
    rows = []
    clean = True
    for crm in crms:
        options = Options(
            crm=crm,
            visitors=args.visitors or (10_000 if crm == "salesforce" else 2_000),
            faults=args.faults,
            late=args.late,
            expiry=args.expiry,
            kills=args.kills,
            workers=args.workers,
            seed=args.seed,
            time_limit=args.time_limit,
            client_timeout=args.client_timeout or DEFAULTS.client_timeout,
            hold=args.hold or DEFAULTS.hold,
            settle=args.settle or DEFAULTS.settle,
            reschedule=args.reschedule,
            sync_key=not args.no_sync_key,
            search_lag=args.search_lag,
            portal_limit=args.portal_limit,
            shared_window=not args.window_per_worker,
        )
        base = None
        if not args.no_baseline:
            base = run_chaos(options.fault_free(), keep=_kept(args.keep, crm, "fault-free"))
            print(
                f"{crm}, {options.visitors:,} visitors, fault-free:\n{_describe(base)}", flush=True
            )
            client, hold, settle = time_scale(base.dump["slowest"])
            options = attrs.evolve(
                options,
                client_timeout=args.client_timeout or client,
                hold=args.hold or hold,
                settle=args.settle or settle,
            )
            print(
                f"  time scale from its slowest request ({base.dump['slowest']:.2f} s): client "
                f"timeout {options.client_timeout:g} s, late writes held {options.hold:g} s, "
                f"settle window {options.settle:g} s",
                flush=True,
            )
        chaos = run_chaos(
            options, scale=base.seconds if base else None, keep=_kept(args.keep, crm, "chaos")
        )
        print(
            f"{crm}, {options.visitors:,} visitors, {options.faults:.0%} faults, "
            f"{options.late:.0%} late, {options.expiry:.0%} expiry, {options.kills} kills, "
            f"{options.workers} workers:\n{_describe(chaos)}",
            flush=True,
        )
        if crm == "hubspot":
            print(_paths_table(base, chaos), flush=True)
        rows.append(_row(chaos, base))
        clean = clean and chaos.audit["duplicates"] == 0 and chaos.audit["lost"] == 0
        clean = clean and not chaos.audit["findings"] and not chaos.timed_out
        clean = clean and not chaos.escaped and not chaos.restarts
        clean = clean and chaos.dump["slowest_late"] < options.settle
    print()
    print(
        "| CRM | visitors | faults | late | kills | workers | duplicates | lost | "
        "dead-lettered | fault-free | chaos | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(row)
    return 0 if clean else 1


def _entry() -> int:
    logging.getLogger("signals_crm").setLevel(logging.ERROR)  # the audit reports, not the log
    if len(sys.argv) > 1 and sys.argv[1] in ("_serve", "_work"):
        options = Options(**json.loads(sys.argv[2]))
        if sys.argv[1] == "_serve":
            serve(options)
        else:
            site = json.loads(sys.argv[3])
            work(options, site, sys.argv[4], sys.argv[5], sys.argv[6])
        return 0
    return main()


if __name__ == "__main__":
    sys.exit(_entry())
