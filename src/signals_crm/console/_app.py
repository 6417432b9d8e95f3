"""The console's pages and its one action (retry a dead letter), as a Starlette application."""

from __future__ import annotations

import contextlib
import inspect
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from signals_crm.console._html import STYLESHEET, Safe, esc, layout, link, table, tag, url
from signals_crm.console._security import CSRF, Authenticate, same_origin
from signals_crm.core.explain import Explanation
from signals_crm.exceptions import ConfigurationError, LedgerError, SignalsCRMError
from signals_crm.ledger.browse import (
    MAX_PAGE,
    Cursor,
    LedgerBrowser,
    Page,
    SyncFilter,
    SyncRow,
    View,
    ViewCounts,
    is_conninfo,
)
from signals_crm.ledger.postgres import PostgresLedger
from signals_crm.settings import IntegrationSettings

__all__ = ["CRMLinks", "create_console", "hubspot_links", "salesforce_links"]

CRMLinks = Callable[[str, str], str | None]
"""``(command kind or "person", CRM id) -> URL of that record in the CRM, or None``."""

_MAX_ID = 320
_MAX_BODY = 16 * 1024
_VIEW_TITLES = {
    View.DUE: "Due",
    View.IN_FLIGHT: "In flight",
    View.SCHEDULED: "Scheduled",
    View.DONE: "Done",
    View.DEAD: "Dead letters",
}
_SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
    "x-frame-options": "DENY",
}


def salesforce_links(instance_url: str) -> CRMLinks:
    """Links into a Salesforce org's Lightning pages (any record id)."""
    base = instance_url.rstrip("/")

    def links(kind: str, crm_id: str) -> str | None:  # noqa: ARG001  # one URL shape for all
        return f"{base}/lightning/r/{crm_id}/view"

    return links


def hubspot_links(portal_id: str | int, app_url: str = "https://app.hubspot.com") -> CRMLinks:
    """Links into a HubSpot portal's contact and task records."""
    base = app_url.rstrip("/")
    objects = {
        "person": "0-1",
        "create_person": "0-1",
        "update_person": "0-1",
        "create_task": "0-27",
    }

    def links(kind: str, crm_id: str) -> str | None:
        object_type = objects.get(kind)
        if object_type is None:
            return None
        return f"{base}/contacts/{portal_id}/record/{object_type}/{crm_id}"

    return links


def _p(segment: str) -> str:
    """One URL path segment, percent-encoded (slashes included)."""
    return quote(segment, safe="")


class _HTTPProblem(Exception):  # noqa: N818  # an HTTP answer, not a failure
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _text_param(value: str | None, name: str) -> str | None:
    if value is None or not value.strip():
        return None
    if len(value) > _MAX_ID:
        raise _HTTPProblem(400, f"{name}: at most {_MAX_ID} characters")
    return value.strip()


def _time_param(value: str | None, name: str) -> datetime | None:
    text = _text_param(value, name)
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise _HTTPProblem(400, f"{name}: not an ISO-8601 time (2026-11-20T12:00)") from None
    return parsed if parsed.utcoffset() is not None else parsed.replace(tzinfo=UTC)


class _Console:
    def __init__(
        self,
        ledger: Path | str | PostgresLedger,
        *,
        authenticate: Authenticate,
        settings: IntegrationSettings | Mapping[str, IntegrationSettings] | None,
        crm: str,
        crm_links: CRMLinks | None,
        login_url: str | None,
        clock: Callable[[], datetime],
        page_size: int,
        csrf_secret: bytes | None,
        count_limit: int | None,
    ) -> None:
        self.ledger = ledger
        self.authenticate = authenticate
        self.settings = settings
        self.crm = crm
        self.crm_links = crm_links
        self.login_url = login_url
        self.clock = clock
        self.page_size = page_size
        self.count_limit = count_limit
        self.csrf = CSRF(csrf_secret)
        self._root: LedgerBrowser | None = None
        self._browsers: dict[str, LedgerBrowser] = {}
        self._lock = threading.Lock()

    # -- plumbing -----------------------------------------------------------------------------

    def browser(self, integration: str) -> LedgerBrowser:
        """A browser bound to ``integration``; every one shares one connection (SQLite) or
        pool (PostgreSQL), opened on first use."""
        with self._lock:
            found = self._browsers.get(integration)
            if found is None:
                if self._root is None:
                    self._root = LedgerBrowser(self.ledger)
                found = self._browsers[integration] = self._root.with_integration(integration)
            return found

    def close(self) -> None:
        with self._lock:
            root, self._root = self._root, None
            self._browsers.clear()
            if root is not None:
                root.close()

    async def user(self, request: Request) -> str | None:
        answer: object = self.authenticate(request)
        if inspect.isawaitable(answer):
            answer = await answer
        if answer is not None and not isinstance(answer, str):
            msg = "the console's authenticate hook must return a name (str) or None"
            raise TypeError(msg)
        return answer or None

    def settings_for(self, integration: str) -> IntegrationSettings | None:
        if self.settings is None or isinstance(self.settings, IntegrationSettings):
            return self.settings
        return self.settings.get(integration)

    def known_integration(self, integration: str) -> str:
        if len(integration) > _MAX_ID:
            raise _HTTPProblem(404, "no such integration")
        if integration not in self.browser("default").integrations(limit=1000):
            raise _HTTPProblem(404, f"no integration {integration!r} in this ledger")
        return integration

    # -- pages --------------------------------------------------------------------------------

    def page_home(self, base: str, user: str) -> str:
        now = self.clock()
        rows = []
        for integration in self.browser("default").integrations():
            counts = self.browser(integration).counts(now, limit=self.count_limit)
            home = url(base, f"/i/{_p(integration)}/")
            rows.append(
                [
                    link(integration, home),
                    *(
                        link(
                            f"{counts[v]:,}", url(base, f"/i/{_p(integration)}/syncs", {"view": v})
                        )
                        for v in View
                    ),
                ]
            )
        body = [
            _auth_warning(),
            tag("h2", "Integrations"),
            table(["integration", *(_VIEW_TITLES[v] for v in View)], rows),
        ]
        return layout(title="Integrations", base=base, user=user, body=body)

    def _cards(self, base: str, integration: str, counts: ViewCounts, current: View | None) -> Safe:
        cards = []
        for view in View:
            classes = ["card"]
            if view is View.DEAD:
                classes.append("dead")
            if view is current:
                classes.append("current")
            cards.append(
                link(
                    Safe(
                        f'{esc(_VIEW_TITLES[view])}<span class="n">{esc(counts.shown(view))}</span>'
                    ),
                    url(base, f"/i/{_p(integration)}/syncs", {"view": view.value}),
                    class_=" ".join(classes),
                    id=f"count-{view.value}",
                )
            )
        return tag("div", *cards, class_="cards")

    def page_integration(self, base: str, user: str, integration: str) -> str:
        browser = self.browser(integration)
        now = self.clock()
        counts = browser.counts(now, limit=self.count_limit)
        runs = browser.recent_runs(10)
        body: list[object] = [
            self._cards(base, integration, counts, None),
            tag("h2", "Last runs"),
            _runs_table(runs),
            tag("h2", "API budget"),
            _budget(runs),
        ]
        return layout(
            title=f"Integration {integration}",
            base=base,
            user=user,
            body=body,
            nav=[(integration, url(base, f"/i/{_p(integration)}/"))],
        )

    def page_syncs(self, base: str, user: str, integration: str, query: Mapping[str, str]) -> str:
        try:
            view = View(query.get("view") or "due")
        except ValueError:
            raise _HTTPProblem(400, "view: one of " + ", ".join(v.value for v in View)) from None
        try:
            filters = SyncFilter(
                conversation_id=_text_param(query.get("conversation"), "conversation"),
                email=_text_param(query.get("email"), "email"),
                due_from=_time_param(query.get("due_from"), "due_from"),
                due_until=_time_param(query.get("due_until"), "due_until"),
                error_contains=_text_param(query.get("error"), "error"),
            )
            after = Cursor.parse(query["after"]) if query.get("after") else None
        except ConfigurationError as error:
            raise _HTTPProblem(400, "; ".join(str(p) for p in error.problems)) from None
        limit = self.page_size
        if query.get("limit"):
            text = query["limit"]
            if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE:
                raise _HTTPProblem(400, f"limit: a whole number from 1 to {MAX_PAGE}")
            limit = int(text)
        browser = self.browser(integration)
        now = self.clock()
        counts = browser.counts(now, limit=self.count_limit)
        page = browser.page(view, now, after=after, limit=limit, filters=filters)
        body = [
            self._cards(base, integration, counts, view),
            _filter_form(base, integration, view, query),
            _sync_table(base, integration, view, page),
            _pager(base, integration, view, query, page, first=after is not None),
        ]
        return layout(
            title=f"{_VIEW_TITLES[view]}: {integration}",
            base=base,
            user=user,
            body=body,
            nav=[
                (integration, url(base, f"/i/{_p(integration)}/")),
                (
                    _VIEW_TITLES[view],
                    url(base, f"/i/{_p(integration)}/syncs", {"view": view.value}),
                ),
            ],
        )

    def explain(self, integration: str, conversation_id: str) -> Explanation | None:
        settings = self.settings_for(integration)
        if settings is None:
            return None
        from signals_crm.cli._context import explain_offline

        return explain_offline(
            self.browser(integration), settings, conversation_id, crm=self.crm, now=self.clock()
        )

    def page_conversation(
        self, base: str, user: str, integration: str, conversation_id: str, notice: str | None
    ) -> str:
        browser = self.browser(integration)
        found = browser.sync(conversation_id)
        if found is None:
            raise _HTTPProblem(404, f"conversation {conversation_id!r} is not in the ledger")
        row, conversation = found
        commands = browser.commands_for(conversation_id)
        explanation = self.explain(integration, conversation_id)
        now = self.clock()
        view = row.view(now)
        body: list[object] = []
        if notice == "retried":
            body.append(
                tag("p", "Sent round again: the next run syncs it.", class_="notice", id="notice")
            )
        facts = [
            ("state", tag("span", _VIEW_TITLES[view], class_=f"status {view.value}")),
            ("visitor", conversation.email),
            ("due at", row.due_at),
            ("attempts", row.attempts),
            ("outcome", row.outcome),
            ("last error", row.last_error),
        ]
        if view is View.IN_FLIGHT:
            facts.append(("leased to", f"{row.lease_owner} until {row.lease_until}"))
        body.append(
            tag(
                "dl",
                *(Safe(tag("dt", k) + tag("dd", v)) for k, v in facts),
                class_="facts",
                id="facts",
            )
        )
        if view is View.DEAD:
            retry = url(base, f"/i/{_p(integration)}/conversations/{_p(conversation_id)}/retry")
            body.append(tag("p", link("Retry this dead letter…", retry, id="retry-link")))
        if explanation is not None:
            body.extend(_explanation(explanation))
        else:
            body.append(
                tag(
                    "p",
                    "No settings were given to the console for this integration: the "
                    "eligibility explanation is not shown, only the ledger's facts.",
                    class_="empty",
                )
            )
        body.append(tag("h2", "Writes in the ledger"))
        body.append(
            table(
                ["key", "state", "CRM record", "attempts", "reason", "updated"],
                [
                    [
                        tag("code", c.key),
                        tag("span", c.state.value, class_=f"status {c.state.value}"),
                        self._crm_link(c.kind, c.crm_id),
                        c.attempts,
                        c.reason,
                        c.updated_at,
                    ]
                    for c in commands
                ],
                empty="No write recorded yet.",
            )
        )
        return layout(
            title=f"Conversation {conversation_id}",
            base=base,
            user=user,
            body=body,
            nav=[
                (integration, url(base, f"/i/{_p(integration)}/")),
                (
                    _VIEW_TITLES[view],
                    url(base, f"/i/{_p(integration)}/syncs", {"view": view.value}),
                ),
            ],
        )

    def _crm_link(self, kind: str, crm_id: str | None) -> Safe:
        if not crm_id:
            return esc(None)
        href = self.crm_links(kind, crm_id) if self.crm_links else None
        if href is None or not href.startswith(("https://", "http://")):
            return tag("code", crm_id)
        return link(tag("code", crm_id), href, target="_blank", rel="noopener noreferrer")

    def page_confirm(self, base: str, user: str, integration: str, row: SyncRow) -> str:
        action = url(base, f"/i/{_p(integration)}/conversations/{_p(row.conversation_id)}/retry")
        back = url(base, f"/i/{_p(integration)}/conversations/{_p(row.conversation_id)}")
        body = [
            tag(
                "p",
                "Retrying puts this sync back in the queue, due now, with its attempts counted "
                "afresh; its failed writes are planned again. Writes the CRM already confirmed "
                "are never repeated. The next run syncs it.",
            ),
            tag("dl", Safe(tag("dt", "last error") + tag("dd", row.last_error)), class_="facts"),
            tag(
                "form",
                tag("input", type="hidden", name="csrf", value=self.csrf.token(user)),
                tag("button", "Retry", type="submit", class_="danger", id="confirm-retry"),
                " ",
                link("Cancel", back),
                method="post",
                action=action,
            ),
        ]
        return layout(
            title=f"Retry {row.conversation_id}?",
            base=base,
            user=user,
            body=body,
            nav=[(integration, url(base, f"/i/{_p(integration)}/"))],
        )

    def retry(self, integration: str, conversation_id: str) -> list[str]:
        from signals_crm.cli._context import writable_ledger
        from signals_crm.ledger.requeue import requeue_dead

        if isinstance(self.ledger, PostgresLedger):  # the host's own ledger: its pool
            bound = self.ledger.for_integration(integration)
            return requeue_dead(bound, [conversation_id], self.clock())
        if is_conninfo(self.ledger):
            with PostgresLedger(self.ledger, max_connections=1) as ledger:
                bound = ledger.for_integration(integration)
                return requeue_dead(bound, [conversation_id], self.clock())
        with writable_ledger(Path(self.ledger), integration) as sqlite_ledger:
            return requeue_dead(sqlite_ledger, [conversation_id], self.clock())


def _auth_warning() -> Safe:
    return tag(
        "div",
        tag("strong", "Access to this console is only as safe as its authentication hook. "),
        "It shows every integration's queue, visitor emails and CRM ids, and it can send dead "
        "letters round again. The console has no open mode: the application that mounts it "
        "decides who may see it. Never expose it without that hook checking who asks.",
        class_="warning",
        id="auth-warning",
    )


def _filter_form(base: str, integration: str, view: View, query: Mapping[str, str]) -> Safe:
    def field(label: str, name: str, placeholder: str = "") -> Safe:
        return tag(
            "label",
            label,
            tag("input", name=name, value=query.get(name, ""), placeholder=placeholder),
        )

    fields = [
        tag("input", type="hidden", name="view", value=view.value),
        field("conversation id", "conversation"),
        field("visitor email", "email"),
        field("due from", "due_from", "2026-11-20T00:00"),
        field("due until", "due_until", "2026-11-21T00:00"),
    ]
    if view is View.DEAD:
        fields.append(field("error contains", "error"))
    fields.append(tag("button", "Filter", type="submit", id="filter"))
    fields.append(link("Clear", url(base, f"/i/{_p(integration)}/syncs", {"view": view.value})))
    return tag(
        "form",
        *fields,
        method="get",
        action=url(base, f"/i/{_p(integration)}/syncs"),
        class_="filters",
    )


def _sync_table(base: str, integration: str, view: View, page: Page) -> Safe:
    headers = ["conversation", "visitor", "due at", "attempts"]
    if view is View.DONE:
        headers.append("outcome")
    elif view is View.IN_FLIGHT:
        headers.append("leased to")
    else:
        headers.append("last error")

    def cells(row: SyncRow) -> list[object]:
        href = url(base, f"/i/{_p(integration)}/conversations/{_p(row.conversation_id)}")
        last: object = row.last_error
        if view is View.DONE:
            last = row.outcome
        elif view is View.IN_FLIGHT:
            last = f"{row.lease_owner} until {row.lease_until}"
        return [link(row.conversation_id, href), row.email, row.due_at, row.attempts, last]

    note = []
    if page.scanned_out:
        note.append(
            tag(
                "p",
                "The error filter reads a bounded number of dead letters per page; "
                "use the next page to search further.",
                class_="empty",
            )
        )
    return Safe(
        "".join(note) + table(headers, (cells(r) for r in page.rows), empty="No sync matches.")
    )


def _pager(
    base: str,
    integration: str,
    view: View,
    query: Mapping[str, str],
    page: Page,
    *,
    first: bool,
) -> Safe:
    keep = {k: v for k, v in query.items() if k != "after"}
    keep["view"] = view.value
    parts = []
    if first:
        parts.append(link("« First page", url(base, f"/i/{_p(integration)}/syncs", keep)))
    if page.next_cursor is not None:
        parts.append(
            link(
                "Next page »",
                url(
                    base, f"/i/{_p(integration)}/syncs", {**keep, "after": page.next_cursor.token()}
                ),
                id="next-page",
            )
        )
    return tag("div", *parts, class_="pager")


def _explanation(explanation: Explanation) -> list[object]:
    status = explanation.status.value
    out: list[object] = [
        tag("h2", "Why ", tag("span", status, class_=f"status {status}", id="explain-status")),
    ]
    if explanation.blockers:
        out.append(
            tag(
                "ul",
                *(
                    tag(
                        "li",
                        tag("code", b.code),
                        " ",
                        b.message,
                        f" (passes at {b.passes_at.isoformat(timespec='seconds')})"
                        if b.passes_at
                        else "",
                    )
                    for b in explanation.blockers
                ),
                id="blockers",
            )
        )
    elif explanation.status.value == "failed":
        out.append(
            tag(
                "p",
                "It passes every condition; the last attempt failed (see the last error). "
                "Retry it once the cause is fixed.",
                id="blockers",
            )
        )
    else:
        out.append(tag("p", "Nothing blocks it.", id="blockers"))
    steps = [s for s in explanation.steps if s.level.value != "blocker"]
    if steps:
        out.append(tag("h2", "Decisions"))
        out.append(tag("ul", *(tag("li", tag("code", s.code), " ", s.message) for s in steps)))
    if explanation.writes:
        out.append(tag("h2", "Writes it plans"))
        out.append(tag("ul", *(tag("li", w.as_text()) for w in explanation.writes)))
    return out


def _runs_table(runs: list[dict[str, Any]]) -> Safe:
    if not runs:
        return tag(
            "p",
            "No run recorded yet (runs are recorded by ledgers that keep run reports).",
            class_="empty",
            id="runs",
        )
    columns = list(dict.fromkeys(k for r in runs for k in r))[:8]
    return Safe(
        tag("div", table(columns, ([_cell(r.get(c)) for c in columns] for r in runs)), id="runs")
    )


def _cell(value: object) -> object:
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return value


def _budget(runs: list[dict[str, Any]]) -> Safe:
    for run in runs:
        usage = {k: v for k, v in run.items() if "api" in k.lower() or "budget" in k.lower()}
        if usage:
            return tag(
                "dl",
                *(Safe(tag("dt", k) + tag("dd", _cell(v))) for k, v in usage.items()),
                class_="facts",
                id="budget",
            )
    return tag("p", "No API usage recorded yet.", class_="empty", id="budget")


def _problem_page(base: str, user: str | None, status: int, message: str) -> HTMLResponse:
    titles = {400: "Bad request", 403: "Not allowed", 404: "Not found", 405: "Not allowed"}
    body = [tag("p", message, class_="error", id="problem")]
    page = layout(title=titles.get(status, "Problem"), base=base, user=user, body=body)
    return HTMLResponse(page, status_code=status, headers=_SECURITY_HEADERS)


def create_console(
    ledger: str | Path | PostgresLedger,
    *,
    authenticate: Authenticate,
    settings: IntegrationSettings | Mapping[str, IntegrationSettings] | None = None,
    crm: str = "salesforce",
    crm_links: CRMLinks | None = None,
    login_url: str | None = None,
    clock: Callable[[], datetime] | None = None,
    page_size: int = 50,
    csrf_secret: bytes | None = None,
    count_limit: int | None = 10_000,
) -> Starlette:
    """The console as an ASGI application over ``ledger``: a SQLite ledger file's path, a
    PostgreSQL conninfo (``postgresql://...`` or ``host=... dbname=...``), or the host's open
    :class:`~signals_crm.ledger.PostgresLedger` (its pool serves the pages and the retries).
    Pages only read (read-only connections or transactions); a retry is the one write.

    ``authenticate(request)`` (required; sync or async) returns the operator's name or
    ``None``: every request is refused (403, or a redirect to ``login_url``) unless it returns
    a name. ``settings`` (one for every integration, or one per integration id) lets the
    conversation page explain eligibility; ``crm`` is the CRM's kind; ``crm_links`` turns CRM
    ids into links (:func:`salesforce_links`, :func:`hubspot_links`). ``csrf_secret`` signs the
    forms' tokens (default: random per console object; give one when several processes serve
    the same console). ``count_limit`` bounds each view's count (shown as "10,000+" past it;
    ``None``: exact counts, whose cost grows with the ledger).
    """
    hook: object = authenticate
    if not callable(hook):
        raise ConfigurationError("authenticate: the console needs the host's authentication hook")
    if crm not in ("salesforce", "hubspot"):
        raise ConfigurationError("crm: 'salesforce' or 'hubspot'")
    bound: object = count_limit
    if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int) or bound < 1):
        raise ConfigurationError("count_limit: a positive integer or None")
    size: object = page_size
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_PAGE:
        raise ConfigurationError(f"page_size: an integer from 1 to {MAX_PAGE}")
    source: Path | str | PostgresLedger = ledger
    if not isinstance(ledger, PostgresLedger) and not is_conninfo(ledger):
        source = Path(ledger)
    LedgerBrowser(source).close()  # fails now, not on the first request, when there is none
    console = _Console(
        source,
        authenticate=authenticate,
        settings=settings,
        crm=crm,
        crm_links=crm_links,
        login_url=login_url,
        clock=clock or (lambda: datetime.now(UTC)),
        page_size=page_size,
        csrf_secret=csrf_secret,
        count_limit=count_limit,
    )

    def guarded(
        handler: Callable[[Request, str, str], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            base = request.scope.get("root_path", "").rstrip("/")
            user = await console.user(request)
            if user is None:
                if console.login_url:
                    return RedirectResponse(console.login_url, status_code=303)
                return _problem_page(base, None, 403, "Sign in through your application first.")
            try:
                response = await handler(request, base, user)
            except _HTTPProblem as problem:
                return _problem_page(base, user, problem.status, problem.message)
            except LedgerError as error:
                return _problem_page(base, user, 503, f"The ledger cannot be read: {error}")
            except SignalsCRMError as error:
                return _problem_page(base, user, 400, str(error))
            response.headers.update(_SECURITY_HEADERS)
            return response

        return endpoint

    async def home(request: Request, base: str, user: str) -> Response:  # noqa: ARG001
        return HTMLResponse(await run_in_threadpool(console.page_home, base, user))

    async def integration_page(request: Request, base: str, user: str) -> Response:
        integration = console.known_integration(request.path_params["integration"])
        return HTMLResponse(
            await run_in_threadpool(console.page_integration, base, user, integration)
        )

    async def syncs(request: Request, base: str, user: str) -> Response:
        integration = console.known_integration(request.path_params["integration"])
        query = dict(request.query_params.items())
        return HTMLResponse(
            await run_in_threadpool(console.page_syncs, base, user, integration, query)
        )

    def _conversation_id(request: Request) -> str:
        cid = request.path_params["conversation"]
        if not cid or len(cid) > _MAX_ID:
            raise _HTTPProblem(404, "no such conversation")
        return str(cid)

    async def conversation(request: Request, base: str, user: str) -> Response:
        integration = console.known_integration(request.path_params["integration"])
        cid = _conversation_id(request)
        notice = request.query_params.get("done")
        return HTMLResponse(
            await run_in_threadpool(console.page_conversation, base, user, integration, cid, notice)
        )

    async def retry(request: Request, base: str, user: str) -> Response:
        integration = console.known_integration(request.path_params["integration"])
        cid = _conversation_id(request)
        browser = console.browser(integration)
        found = await run_in_threadpool(browser.sync, cid)
        if found is None:
            raise _HTTPProblem(404, f"conversation {cid!r} is not in the ledger")
        row = found[0]
        if request.method == "GET":
            if row.view(console.clock()) is not View.DEAD:
                raise _HTTPProblem(400, f"{cid} is not a dead letter: nothing to retry")
            return HTMLResponse(
                await run_in_threadpool(console.page_confirm, base, user, integration, row)
            )
        body = await request.body()
        if len(body) > _MAX_BODY:
            raise _HTTPProblem(400, "the form is too large")
        form = parse_qs(body.decode("utf-8", "replace"), max_num_fields=5)
        tokens = form.get("csrf") or []
        token = tokens[0] if len(tokens) == 1 else None
        if not same_origin(request.headers, request.headers.get("host")):
            raise _HTTPProblem(403, "This form may only be sent from the console's own pages.")
        if not console.csrf.valid(user, token):
            raise _HTTPProblem(403, "The form has expired or did not come from this console.")
        retried = await run_in_threadpool(console.retry, integration, cid)
        if not retried:
            raise _HTTPProblem(400, f"{cid} is no longer a dead letter: nothing was changed")
        target = url(base, f"/i/{_p(integration)}/conversations/{_p(cid)}", {"done": "retried"})
        return RedirectResponse(target, status_code=303)

    async def stylesheet(request: Request, base: str, user: str) -> Response:  # noqa: ARG001
        return Response(STYLESHEET, media_type="text/css")

    routes = [
        Route("/", guarded(home)),
        Route("/static/console.css", guarded(stylesheet)),
        Route("/i/{integration}/", guarded(integration_page)),
        Route("/i/{integration}/syncs", guarded(syncs)),
        Route(
            "/i/{integration}/conversations/{conversation:path}/retry",
            guarded(retry),
            methods=["GET", "POST"],
        ),
        Route("/i/{integration}/conversations/{conversation:path}", guarded(conversation)),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:  # noqa: ARG001
        try:
            yield
        finally:
            console.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.console = console
    return app
