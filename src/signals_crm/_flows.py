"""The engine's work, written once as sans-IO generators for the blocking and ``async`` engines.

A flow yields :class:`Call` (an adapter method and its arguments) and :class:`Sleep` (a backoff),
receives the call's result through ``send`` — or its :class:`~signals_crm.exceptions.AdapterError`
through ``throw`` — and returns its result. :class:`signals_crm.Integration` and
:class:`signals_crm.AsyncIntegration` each drive flows with a ten-line loop; nothing else in
them differs. The ledger is used directly (it is local storage, not the CRM).

How one batch of conversations is synced (:func:`sync_batch`):

1. **Reconcile first.** Commands the ledger holds as SENT (a crash mid-request) or UNKNOWN (an
   ambiguous answer) are looked up in the CRM — person by email, task by marker, membership by
   campaign and person — before anything else: found → CONFIRMED with its id, absent →
   PLANNED. Nothing of unknown outcome is ever sent again without this read.
2. **Plan** with the core (a :class:`~signals_crm.core.plan.Planner`), telling it which person
   records this very sync already created, so an interrupted sync is finished, not re-decided.
3. **Write in dependency order**, each kind in one adapter call (adapters batch by their
   largest size): person creates, then updates, then tasks and campaign memberships (which need
   the new ids). Every command is recorded SENT before its request and CONFIRMED / FAILED /
   UNKNOWN after; commands already CONFIRMED or FAILED are skipped.
4. **Errors are classified once**: a per-record retryable error (lock contention) is retried
   with backoff and jitter; a whole call that may have landed (timeout, dropped connection,
   5xx) is reconciled, then the rest retried; a 429 waits ``Retry-After``; a permanent
   per-record error is FAILED with the CRM's reason (a dead letter, never retried); an
   authentication or permission failure of a whole call stops the run and is surfaced.
5. A create refused as a **duplicate** becomes a match on the record the CRM names: its
   conversation is planned again (the lookup now finds the record), and its activities go to
   that record; never a second create.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs

from signals_crm.core.config import SyncConfig
from signals_crm.core.crm import (
    Capabilities,
    DescribeObject,
    FindAccounts,
    FindPeople,
    ListUsers,
    MembershipByPerson,
    PersonByEmail,
    ReconcileQuery,
    TaskByMarker,
    WriteResult,
    id_problems,
)
from signals_crm.core.mapping import inapplicable_mappings, mapping_set_for, validate_mappings
from signals_crm.core.model import Company, Conversation, ObjectSchema
from signals_crm.core.ownership import OwnershipResult, plan_account_owners
from signals_crm.core.plan import (
    Command,
    CommandKind,
    Plan,
    Planner,
    PlanOutcome,
    SyncMode,
    task_marker,
)
from signals_crm.core.trace import Reason, info, warning
from signals_crm.exceptions import (
    AdapterError,
    AuthenticationError,
    ConfigurationError,
    CRMAPIError,
    DuplicateRecordError,
    InvalidTransitionError,
    PermissionDeniedError,
    Problem,
    RateLimitedError,
    TransportError,
)
from signals_crm.ledger.base import CommandRecord, CommandState, Ledger, PersonLink

__all__ = [
    "BatchResult",
    "Call",
    "ConversationOutcome",
    "OutcomeKind",
    "Reader",
    "RetryPolicy",
    "Sleep",
    "account_owners",
    "plan_batch",
    "preflight",
    "sync_batch",
]


@attrs.frozen
class Call:
    """Call ``method`` of the adapter with ``args`` (the async engine adds the ``a`` prefix)."""

    method: str
    args: tuple[Any, ...] = ()


@attrs.frozen
class Sleep:
    """Wait ``seconds`` before going on (a backoff); drivers use their injected sleep."""

    seconds: float


Flow = Generator[Call | Sleep, Any, Any]


def _positive(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise ConfigurationError([Problem(f"retry.{attribute.name}", "must be positive")])


def _non_negative(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value < 0:
        raise ConfigurationError([Problem(f"retry.{attribute.name}", "must not be negative")])


def _share(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not 0 <= value <= 1:
        raise ConfigurationError([Problem(f"retry.{attribute.name}", "must be within [0, 1]")])


@attrs.frozen
class RetryPolicy:
    """How transient failures are retried.

    Within a run, the n-th retry waits ``min(max_delay, base_delay * 2**n)`` seconds scaled by
    a jitter factor drawn in ``[1 - jitter, 1]``, or exactly the CRM's ``Retry-After`` when it
    gave one. After ``max_attempts`` tries the commands stay PLANNED and the conversation is
    rescheduled ``reschedule_after`` seconds later; after ``max_reschedules`` such runs it is
    dead-lettered with the last error, so nothing is retried forever.
    """

    max_attempts: int = attrs.field(default=4, validator=_positive)
    base_delay: float = attrs.field(default=0.5, validator=_non_negative)
    max_delay: float = attrs.field(default=30.0, validator=_non_negative)
    jitter: float = attrs.field(default=0.5, validator=_share)
    reschedule_after: float = attrs.field(default=300.0, validator=_positive)
    max_reschedules: int = attrs.field(default=24, validator=_positive)

    def delay(self, attempt: int, random: Callable[[], float], hint: float | None = None) -> float:
        if hint is not None:
            return max(0.0, hint)
        raw = min(self.max_delay, self.base_delay * (2.0**attempt))
        return raw * (1.0 - self.jitter * random())


class OutcomeKind(enum.Enum):
    """What became of one conversation in a run."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    ATTACHED_TO_CONTACT = "attached_to_contact"
    SKIPPED = "skipped"
    FAILED = "failed"
    RETRY = "retry"


_FROM_PLAN = {
    PlanOutcome.CREATE: OutcomeKind.CREATED,
    PlanOutcome.UPDATE: OutcomeKind.UPDATED,
    PlanOutcome.UNCHANGED: OutcomeKind.UNCHANGED,
    PlanOutcome.ATTACH_CONTACT: OutcomeKind.ATTACHED_TO_CONTACT,
    PlanOutcome.SKIPPED: OutcomeKind.SKIPPED,
}


@attrs.frozen
class ConversationOutcome:
    """One conversation's result: what happened, the person record, the reasons, the error."""

    conversation_id: str
    kind: OutcomeKind
    person_id: str | None = None
    reasons: tuple[Reason, ...] = ()
    error: str | None = None
    needs_admin: bool = False
    plan: Plan | None = None

    @property
    def blockers(self) -> tuple[str, ...]:
        return self.plan.eligibility.codes if self.plan is not None else ()


# ------------------------------------------------------------------------------------------------
# Helpers


def _answer(request: Any) -> Call:
    """Translate a core lookup into an adapter call."""
    if isinstance(request, FindPeople):
        return Call("find_people", (list(request.emails), list(request.fields)))
    if isinstance(request, FindAccounts):
        return Call("find_accounts", (list(request.domains), list(request.fields)))
    if isinstance(request, DescribeObject):
        return Call("describe", (request.object_name,))
    if isinstance(request, ListUsers):
        return Call("list_users", ())
    msg = f"unknown lookup {request!r}"
    raise TypeError(msg)


@attrs.frozen
class Reader:
    """Reads from the CRM, retried on transient errors (reads are always safe to repeat)."""

    retry: RetryPolicy = attrs.field(factory=RetryPolicy)
    random: Callable[[], float] = attrs.field(default=lambda: 1.0)

    def read(self, call: Call) -> Flow:
        """Yield ``call``; on a retryable error back off and try again, up to the policy."""
        attempt = 0
        while True:
            try:
                result = yield call
            except AdapterError as error:
                if not error.retryable or attempt + 1 >= self.retry.max_attempts:
                    raise
                hint = error.retry_after if isinstance(error, RateLimitedError) else None
                yield Sleep(self.retry.delay(attempt, self.random, hint))
                attempt += 1
                continue
            return result

    def lookups(self, flow: Generator[Any, Any, Any]) -> Flow:
        """Drive a core generator, turning each lookup it yields into a (retried) call."""
        try:
            request = next(flow)
            while True:
                result = yield from self.read(_answer(request))
                request = flow.send(result)
        except StopIteration as done:
            return done.value


def _reason_of(error: BaseException) -> str:
    if isinstance(error, CRMAPIError):
        return str(error)
    return f"{type(error).__name__}: {error}"


@attrs.define
class _Batch:
    """Mutable bookkeeping of one batch run."""

    ledger: Ledger
    now: datetime
    retry: RetryPolicy
    random: Callable[[], float]
    reader: Reader
    owner: str
    lease: timedelta
    records: dict[str, CommandRecord] = attrs.field(factory=dict)
    created: dict[str, str] = attrs.field(factory=dict)  # create key → CRM id
    matched: dict[str, str] = attrs.field(factory=dict)  # cid → record the CRM named
    errors: dict[str, tuple[str, bool]] = attrs.field(factory=dict)  # cid → (reason, admin)
    rate_limited: bool = False

    def save(self, updates: Sequence[CommandRecord]) -> list[CommandRecord]:
        """Record ``updates``; those another process raced us to are dropped and returned."""
        lost: list[CommandRecord] = []
        pending = list(updates)
        while pending:
            try:
                self.ledger.record(pending)
            except InvalidTransitionError as exc:
                bad = set(exc.keys)
                lost.extend(r for r in pending if r.key in bad)
                pending = [r for r in pending if r.key not in bad]
                continue
            for record in pending:
                self.records[record.key] = record
            break
        return lost

    def state(self, key: str) -> CommandState | None:
        record = self.records.get(key)
        return record.state if record is not None else None

    def mark(
        self,
        command: Command,
        state: CommandState,
        *,
        crm_id: str | None = None,
        reason: str | None = None,
        attempt: bool = False,
    ) -> CommandRecord:
        old = self.records.get(command.key)
        return CommandRecord(
            key=command.key,
            conversation_id=command.conversation_id,
            kind=command.kind.value,
            state=state,
            updated_at=self.now,
            crm_id=crm_id if crm_id is not None else (old.crm_id if old else None),
            reason=reason,
            attempts=(old.attempts if old else 0) + (1 if attempt else 0),
            owner=self.owner,
        )

    def settle(self, record: CommandRecord, state: CommandState, crm_id: str | None) -> None:
        """Record what reconciling ``record`` found."""
        self.save(
            [
                attrs.evolve(
                    record,
                    state=state,
                    crm_id=crm_id if crm_id is not None else record.crm_id,
                    reason=None if state is CommandState.CONFIRMED else record.reason,
                    updated_at=self.now,
                    owner=self.owner,
                )
            ]
        )

    def in_flight(self, record: CommandRecord) -> bool:
        """A SENT command of another worker whose request may still be under way."""
        return (
            record.state is CommandState.SENT
            and record.owner is not None
            and record.owner != self.owner
            and self.now < record.updated_at + self.lease
        )

    def load(self, conversations: Sequence[Conversation]) -> None:
        """What the ledger knows of these conversations' commands (rule 1 needs the ids)."""
        for conversation in conversations:
            for record in self.ledger.commands_for(conversation.id):
                self.records[record.key] = record
        for record in self.records.values():
            if (
                record.kind == _CREATE
                and record.state is CommandState.CONFIRMED
                and record.crm_id is not None
            ):
                if (record.reason or "").startswith(_DUPLICATE):
                    self.matched[record.conversation_id] = record.crm_id
                else:
                    self.created[record.key] = record.crm_id


_CREATE = CommandKind.CREATE_PERSON.value
_DUPLICATE = "duplicate of "


def _answers(found: Any, asked: Sequence[object]) -> list[str | None]:
    answers = list(found)
    if len(answers) != len(asked):
        msg = f"reconcile returned {len(answers)} answers for {len(asked)} queries"
        raise CRMAPIError(msg)
    return answers


def _reconcile_query(
    record: CommandRecord,
    conversation: Conversation,
    batch: _Batch,
    caps: Capabilities,
    campaign: str | None,
) -> ReconcileQuery | None:
    kind = record.kind
    cid = conversation.id
    if kind == _CREATE:
        if conversation.email is None:
            return None
        return PersonByEmail(conversation.email.strip(), caps.person_kind)
    if kind == CommandKind.CREATE_TASK.value:
        prefix = f"{cid}:task:"
        return TaskByMarker(task_marker(cid, record.key.removeprefix(prefix)))
    if kind == CommandKind.ADD_TO_CAMPAIGN.value:
        person = batch.created.get(f"{cid}:person")
        if person is None or campaign is None:
            return None
        return MembershipByPerson(campaign, person)
    return None


def reconcile(
    conversations: Sequence[Conversation],
    batch: _Batch,
    caps: Capabilities,
    campaign: str | None,
) -> Flow:
    """Rule 1: settle every SENT / UNKNOWN command of these conversations by reading the CRM.

    A SENT command of another worker that may still be in flight is left alone (its
    conversation is retried later); so is a task too recent for a lagging marker search.
    """
    by_id = {c.id: c for c in conversations}
    unsettled = [
        r
        for r in batch.records.values()
        if r.state in (CommandState.SENT, CommandState.UNKNOWN)
        and r.conversation_id in by_id
        and not batch.in_flight(r)
    ]
    # Person creates first: memberships need their ids.
    for creates in (True, False):
        group = [r for r in unsettled if (r.kind == _CREATE) is creates]
        queries: list[ReconcileQuery] = []
        asked: list[CommandRecord] = []
        for record in group:
            if record.kind == CommandKind.UPDATE_PERSON.value:
                batch.settle(record, CommandState.PLANNED, None)  # idempotent: send again
                continue
            if record.kind == CommandKind.CREATE_TASK.value and (
                (batch.now - record.updated_at).total_seconds() < caps.marker_search_lag
            ):
                continue  # too recent for the marker search to see it: a later run settles it
            query = _reconcile_query(record, by_id[record.conversation_id], batch, caps, campaign)
            if query is None or not caps.supports_reconcile:
                continue  # stays unknown; reported, never blindly re-sent
            queries.append(query)
            asked.append(record)
        if not queries:
            continue
        found = _answers((yield from batch.reader.read(Call("reconcile", (queries,)))), queries)
        for record, crm_id in zip(asked, found, strict=True):
            if crm_id is None:
                batch.settle(record, CommandState.PLANNED, None)
                continue
            batch.settle(record, CommandState.CONFIRMED, crm_id)
            if record.kind == _CREATE:
                batch.created[record.key] = crm_id


# ------------------------------------------------------------------------------------------------
# Writing


_METHODS = {
    CommandKind.CREATE_PERSON: "create_people",
    CommandKind.UPDATE_PERSON: "update_people",
    CommandKind.CREATE_TASK: "create_tasks",
    CommandKind.ADD_TO_CAMPAIGN: "add_to_campaign",
}


def _payload(command: Command, batch: _Batch) -> Any:
    if command.kind is CommandKind.CREATE_PERSON:
        return command.to_person_write()
    person_id = command.person.resolve(batch.created)
    if person_id is None:
        return None
    if command.kind is CommandKind.UPDATE_PERSON:
        return command.to_person_update(person_id)
    if command.kind is CommandKind.CREATE_TASK:
        return command.to_task_write(person_id)
    return command.to_membership_write(person_id)


def _reconcile_sent(
    commands: Sequence[Command], payloads: Sequence[Any], batch: _Batch, caps: Capabilities
) -> Flow:
    """After an ambiguous failure of a write call: which of ``commands`` landed?"""
    queries: list[ReconcileQuery | None] = []
    for command, payload in zip(commands, payloads, strict=True):
        if command.kind is CommandKind.CREATE_PERSON:
            queries.append(PersonByEmail(command.email, command.person.kind))
        elif command.kind is CommandKind.CREATE_TASK and command.marker is not None:
            # A marker search may trail the write: settle it in a later run instead.
            queries.append(None if caps.marker_search_lag > 0 else TaskByMarker(command.marker))
        elif command.kind is CommandKind.ADD_TO_CAMPAIGN and command.campaign_id is not None:
            queries.append(MembershipByPerson(command.campaign_id, payload.person_id))
        else:
            queries.append(None)  # updates: idempotent, simply sent again
    asked = [q for q in queries if q is not None]
    found: list[str | None] = []
    if asked and caps.supports_reconcile:
        found = _answers((yield from batch.reader.read(Call("reconcile", (asked,)))), asked)
    answers = iter(found)
    landed: dict[str, str] = {}
    unknown: list[str] = []
    for command, query in zip(commands, queries, strict=True):
        if query is None:
            if command.kind is CommandKind.CREATE_TASK:
                unknown.append(command.key)
            continue
        if not caps.supports_reconcile:
            unknown.append(command.key)
            continue
        crm_id = next(answers)
        if crm_id is not None:
            landed[command.key] = crm_id
    return landed, unknown


def write_phase(commands: Sequence[Command], batch: _Batch, caps: Capabilities) -> Flow:
    """Send one kind of command, with the retry and reconcile rules (module doc, rule 4)."""
    todo: list[tuple[Command, Any]] = []
    for command in commands:
        if batch.state(command.key) in (CommandState.CONFIRMED, CommandState.FAILED):
            if batch.state(command.key) is CommandState.CONFIRMED and (
                command.kind is CommandKind.CREATE_PERSON
            ):
                crm_id = batch.records[command.key].crm_id
                if crm_id is not None:
                    batch.created[command.key] = crm_id
            continue
        if batch.state(command.key) is CommandState.UNKNOWN:
            continue  # could not be reconciled: never re-sent blindly
        payload = _payload(command, batch)
        if payload is None:
            continue  # its person record does not exist (yet): the conversation is retried
        todo.append((command, payload))
    if not todo:
        return
    method = _METHODS[todo[0][0].kind]
    attempt = 0
    while todo:
        sent = [batch.mark(c, CommandState.SENT, attempt=True) for c, _ in todo]
        lost = {r.key for r in batch.save(sent)}
        todo = [(c, p) for c, p in todo if c.key not in lost]
        if not todo:
            return
        commands_now = [c for c, _ in todo]
        payloads = [p for _, p in todo]
        hint: float | None = None
        try:
            results: list[WriteResult] = list((yield Call(method, (payloads,))))
        except (AuthenticationError, PermissionDeniedError):
            batch.save([batch.mark(c, CommandState.PLANNED) for c in commands_now])
            raise
        except AdapterError as error:
            maybe_sent = not isinstance(error, RateLimitedError) and not (
                isinstance(error, TransportError) and not error.maybe_sent
            )
            if isinstance(error, RateLimitedError):
                hint = error.retry_after
                if not error.retryable:
                    # A daily limit: nothing was sent. Stop; the syncs stay due.
                    batch.save(
                        [
                            batch.mark(c, CommandState.PLANNED, reason=_reason_of(error))
                            for c in commands_now
                        ]
                    )
                    batch.rate_limited = True
                    return
            if not error.retryable:
                batch.save(
                    [
                        batch.mark(c, CommandState.FAILED, reason=_reason_of(error))
                        for c in commands_now
                    ]
                )
                for c in commands_now:
                    batch.errors.setdefault(c.conversation_id, (_reason_of(error), False))
                return
            if maybe_sent:
                batch.save(
                    [
                        batch.mark(c, CommandState.UNKNOWN, reason=_reason_of(error))
                        for c in commands_now
                    ]
                )
                landed, unknown = yield from _reconcile_sent(commands_now, payloads, batch, caps)
                done = []
                for command in commands_now:
                    if command.key in landed:
                        done.append(
                            batch.mark(command, CommandState.CONFIRMED, crm_id=landed[command.key])
                        )
                        if command.kind is CommandKind.CREATE_PERSON:
                            batch.created[command.key] = landed[command.key]
                    elif command.key not in unknown:
                        done.append(
                            batch.mark(command, CommandState.PLANNED, reason=_reason_of(error))
                        )
                batch.save(done)
                todo = [(c, p) for c, p in todo if c.key not in landed and c.key not in unknown]
            else:
                batch.save(
                    [
                        batch.mark(c, CommandState.PLANNED, reason=_reason_of(error))
                        for c in commands_now
                    ]
                )
            attempt += 1
            if attempt >= batch.retry.max_attempts:
                for c, _ in todo:
                    batch.errors.setdefault(c.conversation_id, (_reason_of(error), False))
                return
            if todo:
                yield Sleep(batch.retry.delay(attempt - 1, batch.random, hint))
            continue
        if len(results) != len(todo):
            msg = f"{method} returned {len(results)} results for {len(todo)} records"
            raise CRMAPIError(msg)
        again: list[tuple[Command, Any]] = []
        updates: list[CommandRecord] = []
        for (command, payload), result in zip(todo, results, strict=True):
            if result.ok:
                assert result.id is not None  # noqa: S101  # ok implies an id
                updates.append(batch.mark(command, CommandState.CONFIRMED, crm_id=result.id))
                if command.kind is CommandKind.CREATE_PERSON:
                    batch.created[command.key] = result.id
                continue
            failure = result.error
            if (
                isinstance(failure, DuplicateRecordError)
                and command.kind is CommandKind.CREATE_PERSON
                and failure.matched_ids
            ):
                # Rule 5: a match on the record the CRM names, never a second create.
                matched = failure.matched_ids[0]
                updates.append(
                    batch.mark(
                        command,
                        CommandState.CONFIRMED,
                        crm_id=matched,
                        reason=f"{_DUPLICATE}{matched}",
                    )
                )
                batch.matched[command.conversation_id] = matched
                continue
            if failure is not None and failure.retryable:
                updates.append(
                    batch.mark(command, CommandState.PLANNED, reason=_reason_of(failure))
                )
                again.append((command, payload))
                continue
            reason = _reason_of(failure) if failure is not None else "no id returned"
            updates.append(batch.mark(command, CommandState.FAILED, reason=reason))
            batch.errors.setdefault(
                command.conversation_id, (reason, isinstance(failure, PermissionDeniedError))
            )
        batch.save(updates)
        todo = again
        if todo:
            attempt += 1
            if attempt >= batch.retry.max_attempts:
                for command, _ in todo:
                    reason = batch.records[command.key].reason or "retries exhausted"
                    batch.errors.setdefault(command.conversation_id, (reason, False))
                return
            yield Sleep(batch.retry.delay(attempt - 1, batch.random))


# ------------------------------------------------------------------------------------------------
# Planning and syncing a batch


def plan_batch(
    conversations: Sequence[Conversation],
    planner: Planner,
    *,
    now: datetime,
    mode: SyncMode,
    schema: ObjectSchema | None,
    created: Mapping[str, str] | None = None,
    reader: Reader | None = None,
) -> Flow:
    """Plan with the core, answering its lookups through the adapter."""
    plans: tuple[Plan, ...] = yield from (reader or Reader()).lookups(
        planner.plan(conversations, now=now, mode=mode, schema=schema, created=created)
    )
    return plans


@attrs.frozen
class BatchResult:
    """The outcomes of a batch, and whether the CRM's daily limit stopped it."""

    outcomes: list[ConversationOutcome]
    rate_limited: bool = False


def _digest(fields: Mapping[str, Any]) -> str:
    text = repr(sorted((k, repr(v)) for k, v in fields.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _keyed_updates(plan: Plan) -> Plan:
    """Key each update by its payload: the same change is sent once, a new change again."""
    if not any(c.kind is CommandKind.UPDATE_PERSON for c in plan.commands):
        return plan
    commands = tuple(
        attrs.evolve(c, key=f"{c.key}:{_digest(c.fields)}")
        if c.kind is CommandKind.UPDATE_PERSON
        else c
        for c in plan.commands
    )
    return attrs.evolve(plan, commands=commands)


def _adopt_match(plan: Plan, batch: _Batch) -> Plan:
    """A conversation whose create the CRM matched to an existing record (rule 5)."""
    matched = batch.matched.get(plan.conversation_id)
    if matched is None or plan.outcome is PlanOutcome.SKIPPED:
        return plan
    note = info("duplicate_matched", f"the CRM named the existing record {matched}")
    if plan.outcome is not PlanOutcome.CREATE:
        return attrs.evolve(plan, trace=(*plan.trace, note))  # the lookup found it now
    # The lookup still misses it: no create, no campaign; the activities go to that record.
    batch.created[f"{plan.conversation_id}:person"] = matched
    tasks = tuple(c for c in plan.commands if c.kind is CommandKind.CREATE_TASK)
    return attrs.evolve(
        plan, outcome=PlanOutcome.UNCHANGED, commands=tasks, trace=(*plan.trace, note)
    )


def sync_batch(
    conversations: Sequence[Conversation],
    planner: Planner,
    ledger: Ledger,
    *,
    now: datetime,
    mode: SyncMode,
    schema: ObjectSchema | None,
    retry: RetryPolicy,
    random: Callable[[], float],
    owner: str = "",
    lease: timedelta = timedelta(minutes=10),
) -> Generator[Call | Sleep, Any, BatchResult]:
    """Sync a batch of conversations (module doc); one outcome per distinct conversation."""
    config, caps = planner.config, planner.capabilities
    conversations = list({c.id: c for c in conversations}.values())  # a repeat: the last wins
    reader = Reader(retry, random)
    batch = _Batch(
        ledger=ledger,
        now=now,
        retry=retry,
        random=random,
        reader=reader,
        owner=owner,
        lease=lease,
    )
    batch.load(conversations)
    yield from reconcile(conversations, batch, caps, config.campaign_id)
    resumed = {key.removesuffix(":person"): crm_id for key, crm_id in batch.created.items()}
    planned: tuple[Plan, ...] = yield from plan_batch(
        conversations,
        planner,
        now=now,
        mode=mode,
        schema=schema,
        created=resumed,
        reader=reader,
    )
    plans = {p.conversation_id: _adopt_match(_keyed_updates(p), batch) for p in planned}
    before = set(batch.matched)
    yield from _write(plans.values(), batch, caps, (CommandKind.CREATE_PERSON,))
    fresh = [c for c in conversations if c.id in batch.matched and c.id not in before]
    if fresh:
        # Creates the CRM just refused as duplicates: plan again, the lookup may find them now.
        replanned: tuple[Plan, ...] = yield from plan_batch(
            fresh, planner, now=now, mode=mode, schema=schema, reader=reader
        )
        for plan in replanned:
            plans[plan.conversation_id] = _adopt_match(_keyed_updates(plan), batch)
    yield from _write(
        plans.values(),
        batch,
        caps,
        (CommandKind.UPDATE_PERSON, CommandKind.CREATE_TASK, CommandKind.ADD_TO_CAMPAIGN),
    )
    outcomes = [_outcome(plans[c.id], batch) for c in conversations]
    _link(outcomes, ledger)
    return BatchResult(outcomes, batch.rate_limited)


def _write(
    plans: Iterable[Plan], batch: _Batch, caps: Capabilities, kinds: Sequence[CommandKind]
) -> Flow:
    """Send the plans' commands of ``kinds``, one kind after the other (dependency order)."""
    commands = [c for p in plans for c in p.commands]
    for kind in kinds:
        if batch.rate_limited:
            return
        group = [c for c in commands if c.kind is kind]
        if group:
            yield from write_phase(group, batch, caps)


def _link(outcomes: Sequence[ConversationOutcome], ledger: Ledger) -> None:
    """Remember which CRM record each synced visitor is."""
    links: list[PersonLink] = []
    for outcome in outcomes:
        plan = outcome.plan
        if outcome.person_id is None or plan is None or plan.email is None:
            continue
        if outcome.kind in (OutcomeKind.SKIPPED, OutcomeKind.FAILED):
            continue
        kinds = [c.person.kind for c in plan.commands]
        if plan.match is not None and plan.match.record is not None:
            kinds.append(plan.match.record.kind)
        if kinds:
            links.append(PersonLink(plan.email, outcome.person_id, kinds[0]))
    if links:
        ledger.link_many(links)


def _settled_state(command: Command, batch: _Batch) -> CommandState | None:
    """A command's state; one waiting for a person record whose create failed for good has
    failed with it (it can never be sent)."""
    state = batch.state(command.key)
    dependency = command.depends_on
    if state is None and dependency is not None and batch.state(dependency) is CommandState.FAILED:
        return CommandState.FAILED
    return state


def _outcome(plan: Plan, batch: _Batch) -> ConversationOutcome:
    kind = _FROM_PLAN[plan.outcome]
    cid = plan.conversation_id
    person_id: str | None = None
    if plan.match is not None and plan.match.record is not None:
        person_id = plan.match.record.id
    for command in plan.commands:  # a record created by this plan, or by an earlier one
        person_id = command.person.resolve(batch.created) or person_id
    person_id = person_id or batch.matched.get(cid)
    reasons = list(plan.trace)
    if plan.outcome is PlanOutcome.SKIPPED:
        return ConversationOutcome(cid, kind, None, tuple(reasons), plan=plan)
    states = [_settled_state(c, batch) for c in plan.commands]
    error = batch.errors.get(cid)
    if any(s is not CommandState.CONFIRMED and s is not CommandState.FAILED for s in states):
        # Something can still land (planned, unknown, in flight): try again later, even when
        # another write of the conversation failed for good.
        reason = error[0] if error else "some writes are not confirmed yet"
        return ConversationOutcome(
            cid, OutcomeKind.RETRY, person_id, tuple(reasons), reason, plan=plan
        )
    if any(s is CommandState.FAILED for s in states):
        failed = next(
            (
                batch.records[c.key].reason
                for c in plan.commands
                if c.key in batch.records and batch.records[c.key].state is CommandState.FAILED
            ),
            None,
        )
        reason, admin = error or (failed or "a write failed", False)
        reasons.append(warning("write_failed", reason))
        return ConversationOutcome(
            cid,
            OutcomeKind.FAILED,
            person_id,
            tuple(reasons),
            reason,
            needs_admin=admin,
            plan=plan,
        )
    return ConversationOutcome(cid, kind, person_id, tuple(reasons), plan=plan)


# ------------------------------------------------------------------------------------------------
# Account owners and preflight


def account_owners(
    companies: Sequence[Company], config: SyncConfig, reader: Reader | None = None
) -> Flow:
    """The ownership rules end to end: one account lookup for all the companies."""
    pulled = [
        (m.source.removeprefix("company."), m.target)
        for m in config.mappings.account
        if m.source.startswith("company.")
    ]
    results: list[OwnershipResult] = yield from (reader or Reader()).lookups(
        plan_account_owners(companies, config.ownership, config.users, pulled=pulled)
    )
    return results


def preflight(
    config: SyncConfig,
    caps: Capabilities,
    reader: Reader | None = None,
    *,
    check_campaign: bool = False,
) -> Flow:
    """Every problem of ``config`` against the CRM's schema, users and (when the adapter can
    tell) campaign, and every mapping that can never apply on this CRM (mapping rule 6)."""
    read = (reader or Reader()).read
    problems: list[Problem] = id_problems(config, caps)  # ids this CRM cannot have
    problems.extend(inapplicable_mappings(config.mappings, caps))
    malformed = {p.path for p in problems}  # (not looked up: their problem is said)
    if (
        check_campaign
        and config.campaign_id is not None
        and caps.supports_campaigns
        and "campaign_id" not in malformed
    ):
        exists = yield from read(Call("campaign_exists", (config.campaign_id,)))
        if not exists:
            problems.append(
                Problem("campaign_id", f"the CRM has no {caps.campaign_kind} {config.campaign_id}")
            )
    person_set = "lead" if caps.person_kind.value == "lead" else "contact"
    mappings = mapping_set_for(config.mappings, caps.person_kind)
    if caps.supports_describe:
        schema = yield from read(Call("describe", (caps.person_object,)))
        problems.extend(validate_mappings(mappings, schema, path=f"mappings.{person_set}"))
        if config.mappings.account:
            account = yield from read(Call("describe", (caps.account_object,)))
            for index, mapping in enumerate(config.mappings.account):
                if account.get(mapping.target) is None:
                    problems.append(
                        Problem(
                            f"mappings.account[{index}].target",
                            f"{account.name} has no field {mapping.target!r}",
                        )
                    )
    users = yield from read(Call("list_users", ()))
    by_id = {u.id: u for u in users}
    for index, entry in enumerate(config.users.entries):
        user = by_id.get(entry.crm_user_id)
        where = f"user_mapping[{index}].crm_user_id"
        if where in malformed:
            continue
        if user is None:
            problems.append(Problem(where, f"no CRM user {entry.crm_user_id}"))
        elif not user.active:
            problems.append(Problem(where, f"CRM user {entry.crm_user_id} is inactive"))
    if config.default_owner is not None and "default_owner" not in malformed:
        user = by_id.get(config.default_owner)
        if user is None or not user.active:
            problems.append(
                Problem("default_owner", f"{config.default_owner} is not an active CRM user")
            )
    return problems
