"""SOSL on the local org: ``GET /search?q=FIND {term} [IN ... FIELDS] [RETURNING ...] [LIMIT n]``.

Rules (SOQL and SOSL Reference, "FIND", "IN SearchGroup", "RETURNING", "LIMIT"):

1. The search term is in braces (or quotes); its words must all be found (``AND`` between
   words is implied, ``OR`` offers alternatives); ``*`` matches any characters and ``?`` one;
   matching is case-insensitive, by word (``ada@x.com`` is found by ``ada``, by ``x.com`` and
   by itself). A term shorter than two characters is ``MALFORMED_SEARCH``.
2. ``IN ALL FIELDS`` (the default) searches text fields; ``NAME`` the name fields; ``EMAIL``
   email fields; ``PHONE`` phone fields.
3. ``RETURNING Lead(Id, Email WHERE ... ORDER BY ... LIMIT n), Contact`` picks the objects and
   fields (``Id`` when none); without it, Leads, Contacts, Accounts and Campaigns are
   searched. ``LIMIT`` bounds the whole answer (2,000 at most).
4. The answer is ``{"searchRecords": [{attributes, Id, ...}]}``.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

from signals_crm.testing.salesforce._records import ApiError, OrgData
from signals_crm.testing.salesforce._schema import FieldDef
from signals_crm.testing.salesforce._soql import SoqlError, parse

__all__ = ["search"]

_DEFAULT_OBJECTS = ("Lead", "Contact", "Account", "Campaign")
_MAX = 2000
_TEXT = frozenset({"string", "textarea", "email", "phone", "url", "picklist", "combobox"})
_NAME_FIELDS = frozenset({"name", "firstname", "lastname", "company"})
_FIND = re.compile(
    r"^\s*FIND\s+(?:\{(?P<brace>(?:[^}\\]|\\.)*)\}|'(?P<quote>(?:[^'\\]|\\.)*)')(?P<rest>.*)$",
    re.IGNORECASE | re.DOTALL,
)


def _malformed(message: str) -> ApiError:
    return ApiError(400, "MALFORMED_SEARCH", message)


def _split_returning(text: str) -> list[tuple[str, str]]:
    """``Lead(Id, Email WHERE ...), Contact`` -> [("Lead", "Id, Email WHERE ..."), ...]."""
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(text):
        match = re.match(r"\s*,?\s*([A-Za-z_][A-Za-z0-9_]*)\s*", text[i:])
        if not match:
            break
        name = match[1]
        i += match.end()
        inner = ""
        if i < len(text) and text[i] == "(":
            depth, j = 1, i + 1
            while j < len(text) and depth:
                depth += {"(": 1, ")": -1}.get(text[j], 0)
                j += 1
            if depth:
                raise _malformed("unbalanced parentheses in RETURNING")
            inner = text[i + 1 : j - 1]
            i = j
        out.append((name, inner))
    return out


def _words(value: str) -> set[str]:
    lowered = value.casefold()
    words = {lowered, *(w for w in re.split(r"[^0-9a-z\u00c0-\uffff@.]+", lowered) if w)}
    words |= {part for w in list(words) if "@" in w for part in w.split("@") if part}
    return words | {w for w in re.split(r"[^0-9a-z\u00c0-\uffff]+", lowered) if w}


def _field_allowed(f: FieldDef, scope: str) -> bool:
    if f.type not in _TEXT:
        return False
    if scope == "NAME":
        return f.name.lower() in _NAME_FIELDS
    if scope == "EMAIL":
        return f.type == "email"
    if scope == "PHONE":
        return f.type == "phone"
    return True


def search(data: OrgData, sosl: str) -> dict[str, Any]:
    """Run one SOSL search (rules in the module docstring)."""
    found = _FIND.match(sosl)
    if not found:
        raise _malformed("expecting FIND {search term}")
    term = (found["brace"] if found["brace"] is not None else found["quote"] or "").strip()
    rest = found["rest"]
    if len(term.replace("*", "").replace("?", "")) < 2:
        raise _malformed("search term must be longer than one character")
    scope = "ALL"
    scope_match = re.match(r"\s*IN\s+(ALL|NAME|EMAIL|PHONE|SIDEBAR)\s+FIELDS", rest, re.IGNORECASE)
    if scope_match:
        scope = scope_match[1].upper()
        rest = rest[scope_match.end() :]
    limit = _MAX
    limit_match = re.search(r"\s+LIMIT\s+(\d+)\s*$", rest, re.IGNORECASE)
    returning_text = rest
    returning_match = re.match(r"\s*RETURNING\s+(.*)$", rest, re.IGNORECASE | re.DOTALL)
    if returning_match:
        returning_text = returning_match[1]
        tail = re.search(
            r"\)\s*LIMIT\s+(\d+)\s*$|^[^()]*\s+LIMIT\s+(\d+)\s*$", returning_text, re.IGNORECASE
        )
        if tail:
            limit = min(int(tail[1] or tail[2]), _MAX)
            returning_text = returning_text[: tail.start()] + (")" if tail[1] else "")
        specs = _split_returning(returning_text)
    else:
        if limit_match:
            limit = min(int(limit_match[1]), _MAX)
        elif rest.strip():
            raise _malformed(f"unexpected text: {rest.strip()[:40]}")
        specs = [(name, "") for name in _DEFAULT_OBJECTS]
    alternatives = [
        [w.casefold() for w in part.split() if w.upper() != "AND"]
        for part in re.split(r"\s+OR\s+", term.replace('"', ""))
    ]
    records: list[dict[str, Any]] = []
    for name, inner in specs:
        obj = data.object(name)
        if obj is None:
            raise ApiError(400, "INVALID_TYPE", f"sObject type '{name}' is not supported.")
        split = re.search(r"\s+(WHERE|ORDER\s+BY|LIMIT)\b", inner, re.IGNORECASE)
        fields_part = inner[: split.start()] if split else inner
        clauses = inner[split.start() :] if split else ""
        soql = f"SELECT {fields_part.strip() or 'Id'} FROM {obj.name} {clauses}"  # noqa: S608  # SOQL
        try:
            parsed = parse(soql)
        except SoqlError as exc:
            raise _malformed(str(exc)) from None
        searchable = [f for f in obj.fields.values() if _field_allowed(f, scope)]

        def hit(record: dict[str, Any], fields: list[FieldDef] = searchable) -> bool:
            words: set[str] = set()
            for f in fields:
                value = record.get(f.name)
                if isinstance(value, str) and value:
                    words |= _words(value)
            return any(
                all(any(fnmatch.fnmatchcase(w, token) for w in words) for token in tokens)
                for tokens in alternatives
                if tokens
            )

        records.extend(data.select_rows(obj, parsed, hit))
    return {"searchRecords": records[:limit]}
