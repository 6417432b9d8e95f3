"""The multi-request resources of the local org: Composite, Composite Graph, Composite Batch,
sObject Tree.

Rules (REST API Developer Guide, "Composite", "Composite Batch", "sObject Tree",
"allOrNone Parameters in Composite and Collections Requests"):

1. ``POST /composite``: at most 25 subrequests, at most 5 of them sObject Collections or
   query/queryAll; each has ``method``, ``url`` and a unique ``referenceId`` (else the whole
   request is a 400 and nothing runs). The whole request counts as one API call and answers
   200 ``{"compositeResponse": [{body, httpHeaders, httpStatusCode, referenceId}]}``.
2. ``@{ref.path}`` in a later subrequest's url or body is replaced by the value at ``path``
   (``id``, ``records[0].Id``, ...) of subrequest ``ref``'s answer; a reference to a subrequest
   that failed or is unknown fails that subrequest with ``PROCESSING_HALTED``.
3. ``allOrNone: true``: the first failure rolls every write back; the failed subrequest keeps
   its error and every other one answers 400 ``PROCESSING_HALTED`` ("The transaction was
   rolled back since another operation in the same transaction failed."). It also applies to
   each Collections subrequest (overriding theirs); a Collections answer with a failed record
   is then a failure. ``allOrNone: false``: failures stay local.
4. ``httpHeaders`` of a subrequest (``Sforce-Auto-Assign``, ``Sforce-Duplicate-Rule-Header``...)
   apply to it alone.
5. ``POST /composite/batch``: at most 25 independent subrequests (urls relative to
   ``/services/data/``), no references, no rollback; ``haltOnError`` answers the ones after
   a failure 412 ``BATCH_PROCESSING_HALTED``. Answer ``{"hasErrors", "results": [{statusCode,
   result}]}``.
6. ``POST /composite/tree/{SObject}``: up to 200 records in nested trees (children under their
   parent's child-relationship name, at most 5 levels); all are saved or none: 201
   ``{"hasErrors": false, "results": [{referenceId, id}]}`` or 400 with the errors by
   ``referenceId``.
7. ``POST /composite/graph`` (API version 50.0+; pages "Composite Graph", "Using Composite
   Graphs" and "Composite Graph Limits",
   https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_graph_limits.htm):
   ``{"graphs": [{"graphId", "compositeRequest": [...]}]}``. Each graph runs as a composite
   request with ``allOrNone`` (all its nodes saved or none) and answers ``{"graphId",
   "graphResponse": {"compositeResponse": [...]}, "isSuccessful"}``; references stay inside
   their graph. Nodes may only be sObject resources: ``POST sobjects/X``, ``GET|PATCH|DELETE
   sobjects/X/{id}`` and ``DELETE|GET|PATCH|POST sobjects/X/{Field}/{value}``. Limits: 75
   graphs, 500 nodes per graph and per payload, a graph at most 15 nodes deep (by its
   references), 15 different nodes per payload (API version, HTTP method, object), a
   ``graphId`` unique, starting with a letter or digit and shorter than 40 characters; a
   request over a limit is a 400 and nothing runs (the guide does not say how the limits are
   reported: this is the sandbox's choice). Once more than 14 graphs have failed, the rest are
   not run: each of their nodes answers 400 ``PROCESSING_HALTED``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from signals_crm.testing.salesforce._records import ApiError, OrgData, RecordError
from signals_crm.testing.salesforce._reply import ParsedJson
from signals_crm.testing.salesforce._schema import CHILD_RELATIONSHIPS

__all__ = ["SubAnswer", "composite", "composite_batch", "composite_graph", "composite_tree"]

SubAnswer = tuple[int, Any, dict[str, str]]
"""A subrequest's answer: status, JSON body, headers."""
Dispatch = Callable[[str, str, Mapping[str, str], bytes], SubAnswer]
"""Runs one subrequest: method, URL (path and query), headers, body."""

MAX_SUBREQUESTS = 25
MAX_QUERIES_AND_COLLECTIONS = 5
MAX_TREE_RECORDS = 200
MAX_TREE_DEPTH = 5
MAX_GRAPHS = 75
MAX_GRAPH_NODES = 500
MAX_GRAPH_DEPTH = 15
MAX_NODE_KINDS = 15
MAX_GRAPH_FAILURES = 14
GRAPH_VERSION = 50
_GRAPH_ID = re.compile(r"^[A-Za-z0-9][^\s]{0,38}$")
_GRAPH_NODE = re.compile(
    r"^/services/data/v(\d+\.\d)/sobjects/([A-Za-z0-9_]+)(?:/([A-Za-z0-9_]+)(?:/([^/?]+))?)?/?(?:\?.*)?$"
)

_REFERENCE = re.compile(r"@\{([A-Za-z0-9_]+)((?:\.[A-Za-z0-9_]+|\[\d+\])*)\}")
_REFERENCE_ID = re.compile(r"^[A-Za-z0-9_]+$")
_ROLLED_BACK = (
    "The transaction was rolled back since another operation in the same transaction failed."
)


class _Unresolved(Exception):  # noqa: N818  # a control-flow signal
    pass


def _request_error(message: str, code: str = "INVALID_INPUT") -> ApiError:
    return ApiError(400, code, message)


def _is_heavy(method: str, url: str) -> bool:
    path = url.split("?", 1)[0]
    return bool(re.search(r"/(query|queryAll)(/|$)|/composite/sobjects", path)) or (
        method == "GET" and "/query" in path
    )


def _walk(value: Any, path: str) -> Any:
    for step in re.findall(r"\.([A-Za-z0-9_]+)|\[(\d+)\]", path):
        name, index = step
        if name:
            if not isinstance(value, Mapping) or name not in value:
                raise _Unresolved
            value = value[name]
        else:
            if not isinstance(value, list) or int(index) >= len(value):
                raise _Unresolved
            value = value[int(index)]
    return value


def _resolve_text(text: str, answers: Mapping[str, Any], *, in_url: bool) -> Any:
    whole = _REFERENCE.fullmatch(text)
    if whole and not in_url:
        if whole[1] not in answers:
            raise _Unresolved(whole[0])
        return _walk(answers[whole[1]], whole[2])

    def swap(match: re.Match[str]) -> str:
        if match[1] not in answers:
            raise _Unresolved(match[0])
        try:
            found = _walk(answers[match[1]], match[2])
        except _Unresolved:
            raise _Unresolved(match[0]) from None
        text = found if isinstance(found, str) else json.dumps(found)
        return quote(text, safe="") if in_url else text

    try:
        return _REFERENCE.sub(swap, text)
    except _Unresolved as exc:
        raise _Unresolved(exc.args[0] if exc.args else text) from None


def _resolve_json(value: Any, answers: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        return _resolve_text(value, answers, in_url=False)
    if isinstance(value, list):
        return [_resolve_json(v, answers) for v in value]
    if isinstance(value, Mapping):
        return {k: _resolve_json(v, answers) for k, v in value.items()}
    return value


def _halted(message: str) -> list[dict[str, str]]:
    return [{"errorCode": "PROCESSING_HALTED", "message": message}]


def _collections_failed(status: int, body: Any) -> bool:
    return (
        status == 200
        and isinstance(body, list)
        and any(isinstance(r, Mapping) and r.get("success") is False for r in body)
    )


def composite(
    data: OrgData,
    payload: Any,
    headers: Mapping[str, str],
    dispatch: Dispatch,
    *,
    references: bool = True,
) -> dict[str, Any]:
    """Run a ``/composite`` request (rules 1-4); raises :class:`ApiError` for a bad request.

    ``references=False`` says the request's text holds no ``@{`` (nor a ``\\u`` escape that
    could spell one): subrequests then run as they are, with nothing to resolve, and their
    bodies reach their resources already parsed (:class:`~._reply.ParsedJson`)."""
    if not isinstance(payload, Mapping) or not isinstance(payload.get("compositeRequest"), list):
        raise _request_error("The request body needs a compositeRequest array", "JSON_PARSER_ERROR")
    subrequests: list[Any] = payload["compositeRequest"]
    if not subrequests:
        raise _request_error("compositeRequest must contain at least one subrequest")
    if len(subrequests) > MAX_SUBREQUESTS:
        raise _request_error(
            f"Composite request may not contain more than {MAX_SUBREQUESTS} subrequests",
            "LIMIT_EXCEEDED",
        )
    _check_subrequests(subrequests, "compositeRequest")
    heavy = 0
    for sub in subrequests:
        if "/composite" in sub["url"] and "/composite/sobjects" not in sub["url"]:
            raise _request_error(f"Subrequest url is not supported inside composite: {sub['url']}")
        heavy += _is_heavy(sub["method"].upper(), sub["url"])
    if heavy > MAX_QUERIES_AND_COLLECTIONS:
        raise _request_error(
            f"Composite request may contain at most {MAX_QUERIES_AND_COLLECTIONS} sObject "
            "Collections or query operations",
            "LIMIT_EXCEEDED",
        )
    return {
        "compositeResponse": _run(
            data,
            subrequests,
            headers,
            dispatch,
            all_or_none=bool(payload.get("allOrNone", False)),
            references=references,
        )
    }


def _run(
    data: OrgData,
    subrequests: list[Any],
    headers: Mapping[str, str],
    dispatch: Dispatch,
    *,
    all_or_none: bool,
    references: bool = True,
) -> list[dict[str, Any]]:
    """Run checked subrequests in order (rules 2-4); their answers."""
    snapshot = data.snapshot() if all_or_none else None
    answers: dict[str, Any] = {}
    out: list[dict[str, Any]] = []
    failed = False
    for sub in subrequests:
        ref = sub["referenceId"]
        method = sub["method"].upper()
        if failed and all_or_none:
            out.append(_sub(ref, 400, _halted(_ROLLED_BACK), {}))
            continue
        try:
            if references:
                url = _resolve_text(sub["url"], answers, in_url=True)
                body = _resolve_json(sub.get("body"), answers)
            else:
                url, body = sub["url"], sub.get("body")
        except _Unresolved as exc:
            expr = exc.args[0] if exc.args else ref
            message = f"Invalid reference specified. No value for {expr.strip('@{}')} found."
            out.append(_sub(ref, 400, _halted(message), {}))
            failed = True
            continue
        if all_or_none and isinstance(body, dict) and "/composite/sobjects" in url:
            body = {**body, "allOrNone": True}
        sub_headers = dict(headers)
        for name, value in (sub.get("httpHeaders") or {}).items():
            sub_headers[str(name).lower()] = str(value)
        if body is None:
            content = b""
        elif references:
            content = json.dumps(body).encode()
        else:
            content = ParsedJson(body)  # as parsed from the request: no reference put in
        status, answer, answer_headers = dispatch(method, str(url), sub_headers, content)
        answer_headers = {k: v for k, v in answer_headers.items() if k != "Sforce-Limit-Info"}
        out.append(_sub(ref, status, answer, answer_headers))
        if status >= 400 or (all_or_none and _collections_failed(status, answer)):
            failed = True
        else:
            answers[ref] = answer
    if all_or_none and failed and snapshot is not None:
        data.restore(snapshot)
        for entry in out:
            code = entry["httpStatusCode"]
            if code < 400 and not _collections_failed(code, entry["body"]):
                entry.update(body=_halted(_ROLLED_BACK), httpHeaders={}, httpStatusCode=400)
    return out


def _check_subrequests(subrequests: Any, where: str) -> None:
    """Every subrequest an object with a method, a url and a unique, well-formed referenceId."""
    if not isinstance(subrequests, list) or not subrequests:
        raise _request_error(f"{where} needs a non-empty compositeRequest array")
    seen: set[str] = set()
    for sub in subrequests:
        if not isinstance(sub, Mapping):
            raise _request_error("Each subrequest must be a JSON object", "JSON_PARSER_ERROR")
        for key in ("method", "url", "referenceId"):
            if not isinstance(sub.get(key), str) or not sub[key]:
                raise _request_error(f"Subrequest is missing the required field {key}")
        ref = sub["referenceId"]
        if not _REFERENCE_ID.match(ref):
            raise _request_error(f"Invalid referenceId: {ref}")
        if ref in seen:
            raise _request_error(f"Duplicate referenceId provided in the request: {ref}")
        seen.add(ref)


def _node_kind(sub: Mapping[str, Any]) -> tuple[str, str, str]:
    """(API version, method, object) of a graph node; a url it may not have is refused."""
    method = str(sub["method"]).upper()
    found = _GRAPH_NODE.match(str(sub["url"]))
    if found is not None:
        parts = sum(1 for p in found.groups()[2:] if p)
        allowed = {
            0: {"POST"},
            1: {"GET", "PATCH", "DELETE"},
            2: {"GET", "PATCH", "DELETE", "POST"},
        }
        if method in allowed[parts]:
            return found[1], method, found[2].lower()
    raise _request_error(
        f"{method} {sub['url']} is not supported in a composite graph: only sObject resources",
        "INVALID_GRAPH",
    )


def _depth(subrequests: list[Any]) -> int:
    """The longest chain of references among a graph's nodes (a node alone is depth 1)."""
    depths: dict[str, int] = {}
    for sub in subrequests:
        text = json.dumps([sub.get("url"), sub.get("body")])
        refs = {m[1] for m in _REFERENCE.finditer(text)}
        depths[sub["referenceId"]] = 1 + max((depths.get(r, 0) for r in refs), default=0)
    return max(depths.values(), default=0)


def composite_graph(
    data: OrgData,
    payload: Any,
    headers: Mapping[str, str],
    version: str,
    dispatch: Dispatch,
) -> dict[str, Any]:
    """Run a ``/composite/graph`` request (rule 7); raises :class:`ApiError` for a bad one."""
    if int(version.split(".", 1)[0]) < GRAPH_VERSION:
        raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
    if not isinstance(payload, Mapping) or not isinstance(payload.get("graphs"), list):
        raise _request_error("The request body needs a graphs array", "JSON_PARSER_ERROR")
    graphs: list[Any] = payload["graphs"]
    if not graphs:
        raise _request_error("graphs must contain at least one graph")
    if len(graphs) > MAX_GRAPHS:
        raise _request_error(
            f"A composite graph request may contain at most {MAX_GRAPHS} graphs", "LIMIT_EXCEEDED"
        )
    ids: set[str] = set()
    kinds: set[tuple[str, str, str]] = set()
    nodes = 0
    for graph in graphs:
        if not isinstance(graph, Mapping):
            raise _request_error("Each graph must be a JSON object", "JSON_PARSER_ERROR")
        graph_id = graph.get("graphId")
        if not isinstance(graph_id, str) or not _GRAPH_ID.match(graph_id) or graph_id in ids:
            raise _request_error(
                f"Invalid graphId {graph_id!r}: unique, starting with a letter or digit, "
                "fewer than 40 characters"
            )
        ids.add(graph_id)
        subrequests = graph.get("compositeRequest")
        _check_subrequests(subrequests, f"Graph {graph_id}")
        assert isinstance(subrequests, list)  # noqa: S101  # checked just above
        if len(subrequests) > MAX_GRAPH_NODES:
            raise _request_error(
                f"Graph {graph_id} has more than {MAX_GRAPH_NODES} nodes", "LIMIT_EXCEEDED"
            )
        if _depth(subrequests) > MAX_GRAPH_DEPTH:
            raise _request_error(
                f"Graph {graph_id} is deeper than {MAX_GRAPH_DEPTH} nodes", "LIMIT_EXCEEDED"
            )
        kinds.update(_node_kind(sub) for sub in subrequests)
        nodes += len(subrequests)
    if nodes > MAX_GRAPH_NODES:
        raise _request_error(
            f"A composite graph request may contain at most {MAX_GRAPH_NODES} nodes",
            "LIMIT_EXCEEDED",
        )
    if len(kinds) > MAX_NODE_KINDS:
        raise _request_error(
            f"A composite graph request may contain at most {MAX_NODE_KINDS} different nodes "
            "(API version, HTTP method, object)",
            "LIMIT_EXCEEDED",
        )
    out: list[dict[str, Any]] = []
    failures = 0
    for graph in graphs:
        subrequests = graph["compositeRequest"]
        if failures > MAX_GRAPH_FAILURES:
            halted = [
                _sub(
                    s["referenceId"], 400, _halted("Processing halted: too many graphs failed"), {}
                )
                for s in subrequests
            ]
            out.append(_graph(graph["graphId"], halted, ok=False))
            continue
        answers = _run(data, subrequests, headers, dispatch, all_or_none=True)
        ok = all(a["httpStatusCode"] < 400 for a in answers)
        failures += not ok
        out.append(_graph(graph["graphId"], answers, ok=ok))
    return {"graphs": out}


def _graph(graph_id: str, answers: list[dict[str, Any]], *, ok: bool) -> dict[str, Any]:
    return {
        "graphId": graph_id,
        "graphResponse": {"compositeResponse": answers},
        "isSuccessful": ok,
    }


def _sub(ref: str, status: int, body: Any, headers: Mapping[str, str]) -> dict[str, Any]:
    return {
        "body": body,
        "httpHeaders": dict(headers),
        "httpStatusCode": status,
        "referenceId": ref,
    }


def composite_batch(
    payload: Any, headers: Mapping[str, str], version: str, dispatch: Dispatch
) -> dict[str, Any]:
    """Run a ``/composite/batch`` request (rule 5)."""
    if not isinstance(payload, Mapping) or not isinstance(payload.get("batchRequests"), list):
        raise _request_error("The request body needs a batchRequests array", "JSON_PARSER_ERROR")
    requests: list[Any] = payload["batchRequests"]
    if len(requests) > MAX_SUBREQUESTS:
        raise _request_error(
            f"A batch request may not contain more than {MAX_SUBREQUESTS} subrequests",
            "LIMIT_EXCEEDED",
        )
    halt = bool(payload.get("haltOnError", False))
    results: list[dict[str, Any]] = []
    errors = False
    for item in requests:
        if not isinstance(item, Mapping) or not isinstance(item.get("url"), str):
            raise _request_error("Each batch request needs a method and a url")
        if halt and errors:
            results.append(
                {
                    "statusCode": 412,
                    "result": [
                        {
                            "errorCode": "BATCH_PROCESSING_HALTED",
                            "message": "Batch processing halted per request",
                        }
                    ],
                }
            )
            continue
        url = str(item["url"]).lstrip("/")
        if not url.startswith("services/data/"):
            url = "services/data/" + (url if url.startswith("v") else f"v{version}/{url}")
        body = item.get("richInput")
        content = b"" if body is None else ParsedJson(body)  # as parsed: no references here
        method = str(item.get("method", "GET")).upper()
        status, answer, _ = dispatch(method, "/" + url, headers, content)
        errors |= status >= 400
        results.append({"statusCode": status, "result": answer})
    return {"hasErrors": errors, "results": results}


def composite_tree(
    data: OrgData,
    object_name: str,
    payload: Any,
    create: Callable[[str, dict[str, Any]], tuple[str | None, RecordError | None]],
) -> tuple[int, dict[str, Any]]:
    """Run a ``/composite/tree/{SObject}`` request (rule 6): (status, body)."""
    if not isinstance(payload, Mapping) or not isinstance(payload.get("records"), list):
        raise _request_error("The request body needs a records array", "JSON_PARSER_ERROR")
    flat: list[tuple[str, str, dict[str, Any], tuple[str, str] | None, int]] = []

    def collect(
        records: list[Any], type_name: str, parent: tuple[str, str] | None, depth: int
    ) -> None:
        if depth > MAX_TREE_DEPTH:
            raise _request_error(f"Tree depth may not exceed {MAX_TREE_DEPTH} levels")
        for record in records:
            if not isinstance(record, Mapping):
                raise _request_error("Each record must be a JSON object", "JSON_PARSER_ERROR")
            attributes = record.get("attributes") or {}
            ref = attributes.get("referenceId") if isinstance(attributes, Mapping) else None
            if not isinstance(ref, str) or not ref:
                raise _request_error("Each record needs attributes.referenceId")
            declared = attributes.get("type") if isinstance(attributes, Mapping) else None
            if declared is not None and str(declared).lower() != type_name.lower():
                raise _request_error(f"The type of {ref} must be {type_name}", "INVALID_TYPE")
            fields: dict[str, Any] = {}
            children: list[tuple[str, list[Any]]] = []
            for key, value in record.items():
                if key == "attributes":
                    continue
                relation = CHILD_RELATIONSHIPS.get((type_name.lower(), key.lower()))
                if relation is not None and isinstance(value, Mapping):
                    children.append((key, list(value.get("records") or [])))
                else:
                    fields[key] = value
            index = len(flat)
            flat.append((ref, type_name, fields, parent, depth))
            for relation_name, child_records in children:
                child_type, field = CHILD_RELATIONSHIPS[(type_name.lower(), relation_name.lower())]
                collect(child_records, child_type, (str(index), field), depth + 1)

    obj = data.object(object_name)
    if obj is None:
        raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
    collect(payload["records"], obj.name, None, 1)
    if len(flat) > MAX_TREE_RECORDS:
        raise _request_error(
            f"A tree may hold at most {MAX_TREE_RECORDS} records", "LIMIT_EXCEEDED"
        )
    refs = [ref for ref, *_ in flat]
    if len(set(refs)) != len(refs):
        raise _request_error("Duplicate referenceId in the request", "INVALID_INPUT")
    snapshot = data.snapshot()
    ids: list[str] = []
    errors: list[dict[str, Any]] = []
    for ref, type_name, fields, parent, _ in flat:
        values = dict(fields)
        if parent is not None:
            values[parent[1]] = ids[int(parent[0])] if int(parent[0]) < len(ids) else None
        new_id, error = create(type_name, values)
        if error is not None or new_id is None:
            failure = error or RecordError("UNKNOWN_EXCEPTION", "record not saved")
            errors.append({"referenceId": ref, "errors": [failure.as_collection(with_extra=False)]})
            break
        ids.append(new_id)
    if errors:
        data.restore(snapshot)
        return 400, {"hasErrors": True, "results": errors}
    return 201, {
        "hasErrors": False,
        "results": [{"referenceId": ref, "id": i} for ref, i in zip(refs, ids, strict=True)],
    }
