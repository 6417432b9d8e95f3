"""A SOQL subset: tokenizer, parser and the parsed query as values.

Grammar (keywords in any case)::

    query     := SELECT (COUNT() | item ("," item)*) FROM name
                 [WHERE cond] [GROUP BY path ("," path)*] [HAVING cond]
                 [ORDER BY order ("," order)*] [LIMIT int] [OFFSET int]
    item      := path | AGG "(" [path] ")" [alias] | "(" query ")"       (a child subquery)
                 | TYPEOF name (WHEN name THEN path ("," path)*)+ [ELSE path ("," path)*] END
    AGG       := COUNT | COUNT_DISTINCT | SUM | AVG | MIN | MAX
    path      := name ("." name)*              e.g. Owner.Email
    cond      := and (OR and)*
    and       := unary (AND unary)*
    unary     := NOT unary | "(" cond ")" | path op value | path [NOT] IN "(" value, ... ")"
                 | path [NOT] LIKE string | path [NOT] IN "(" query ")"   (a semi-join)
    op        := = | != | <> | < | <= | > | >=
    value     := 'string' | number | TRUE | FALSE | NULL | date | datetime
                 | TODAY | YESTERDAY | ... | LAST_N_DAYS ":" int | ...   (date literals)
    order     := path [ASC | DESC] [NULLS (FIRST | LAST)]

String literals follow Salesforce's escape rules: ``\\'``, ``\\"``, ``\\\\``, ``\\n``,
``\\r``, ``\\t``, ``\\b``, ``\\f``, ``\\uXXXX``; ``\\%`` and ``\\_`` only inside ``LIKE``; any
other backslash, a double-quoted string or an unterminated literal is a ``MALFORMED_QUERY``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeAlias

import attrs

__all__ = [
    "DATE_LITERALS",
    "DATE_LITERALS_N",
    "Aggregate",
    "And",
    "Comparison",
    "DateLiteral",
    "InList",
    "Like",
    "Not",
    "Or",
    "Order",
    "Query",
    "SemiJoin",
    "SoqlError",
    "TypeOf",
    "parse",
]


_AGGREGATES = ("COUNT", "COUNT_DISTINCT", "SUM", "AVG", "MIN", "MAX")
DATE_LITERALS = frozenset(
    {
        "YESTERDAY",
        "TODAY",
        "TOMORROW",
        "LAST_WEEK",
        "THIS_WEEK",
        "NEXT_WEEK",
        "LAST_MONTH",
        "THIS_MONTH",
        "NEXT_MONTH",
        "LAST_90_DAYS",
        "NEXT_90_DAYS",
        "THIS_QUARTER",
        "LAST_QUARTER",
        "NEXT_QUARTER",
        "THIS_YEAR",
        "LAST_YEAR",
        "NEXT_YEAR",
    }
)
DATE_LITERALS_N = frozenset(
    {
        "LAST_N_DAYS",
        "NEXT_N_DAYS",
        "N_DAYS_AGO",
        "LAST_N_WEEKS",
        "NEXT_N_WEEKS",
        "LAST_N_MONTHS",
        "NEXT_N_MONTHS",
        "LAST_N_YEARS",
        "NEXT_N_YEARS",
    }
)


class SoqlError(Exception):
    """A query that does not parse (``MALFORMED_QUERY``)."""


@attrs.frozen
class Literal:
    """A parsed literal; ``raw`` keeps a string's source text (LIKE needs its escapes)."""

    value: Any
    raw: str | None = None


@attrs.frozen
class Comparison:
    path: tuple[str, ...]
    op: str
    value: Literal


@attrs.frozen
class InList:
    """``path [NOT] IN (values)``. ``folded`` holds the casefolded values when every one is a
    string (``None`` otherwise): a text field is then matched by one set lookup."""

    path: tuple[str, ...]
    values: tuple[Literal, ...]
    negated: bool = False
    folded: frozenset[str] | None = attrs.field(init=False, eq=False, repr=False)

    @folded.default
    def _fold(self) -> frozenset[str] | None:
        texts = [v.value for v in self.values]
        if all(isinstance(t, str) for t in texts):
            return frozenset(t.casefold() for t in texts)
        return None


@attrs.frozen
class Like:
    path: tuple[str, ...]
    pattern: re.Pattern[str]
    negated: bool = False


@attrs.frozen
class And:
    parts: tuple[Condition, ...]


@attrs.frozen
class Or:
    parts: tuple[Condition, ...]


@attrs.frozen
class Not:
    part: Condition


@attrs.frozen
class SemiJoin:
    """``Id IN (SELECT LeadId FROM CampaignMember WHERE ...)`` (``NOT IN``: an anti-join)."""

    path: tuple[str, ...]
    query: Query
    negated: bool = False


Condition: TypeAlias = Comparison | InList | Like | And | Or | Not | SemiJoin


@attrs.frozen
class Order:
    path: tuple[str, ...]
    descending: bool = False
    nulls_last: bool | None = None


@attrs.frozen
class DateLiteral:
    """A relative date literal (``TODAY``, ``LAST_N_DAYS:30``); resolved against the org clock."""

    name: str
    n: int | None = None


@attrs.frozen
class Aggregate:
    """``COUNT(Id)``, ``SUM(AnnualRevenue) total``... (``path`` is None for ``COUNT()``)."""

    function: str
    path: tuple[str, ...] | None
    alias: str | None = None


@attrs.frozen
class TypeOf:
    """``TYPEOF What WHEN Account THEN Phone, Name ... ELSE Name END``."""

    relationship: str
    branches: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...]
    otherwise: tuple[tuple[str, ...], ...] = ()


@attrs.frozen
class Query:
    object_name: str
    fields: tuple[tuple[str, ...], ...]
    count: bool = False
    where: Condition | None = None
    order_by: tuple[Order, ...] = ()
    limit: int | None = None
    offset: int = 0
    aggregates: tuple[Aggregate, ...] = ()
    subqueries: tuple[Query, ...] = ()
    group_by: tuple[tuple[str, ...], ...] = ()
    having: Condition | None = None
    typeofs: tuple[TypeOf, ...] = ()
    items: tuple[tuple[str, int], ...] = ()
    """The select list in order: ("field" | "aggregate" | "subquery" | "typeof", index)."""


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>')
  | (?P<dquote>")
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2}(?![\dT]))
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),.:])
    """,
    re.VERBOSE,
)

_SIMPLE_ESCAPES = {
    "n": "\n",
    "N": "\n",
    "r": "\r",
    "R": "\r",
    "t": "\t",
    "T": "\t",
    "b": "\b",
    "B": "\b",
    "f": "\f",
    "F": "\f",
    '"': '"',
    "'": "'",
    "\\": "\\",
}


@attrs.frozen
class _Tok:
    kind: str
    text: str
    pos: int
    value: Any = None


def _read_string(text: str, start: int) -> tuple[str, int]:
    """The raw (still escaped) body of the literal opening at ``start`` and the index after it."""
    i = start + 1
    while True:
        quote = text.find("'", i)
        if quote < 0:
            raise SoqlError(f"unterminated string literal at column {start + 1}")
        escape = text.find("\\", i, quote)
        if escape < 0:
            return text[start + 1 : quote], quote + 1
        i = escape + 2  # the escaped character (perhaps a quote) is part of the body


def unescape(raw: str, *, like: bool) -> list[tuple[str, bool]]:
    """Decode a literal body into (character, is_wildcard) pairs.

    Outside ``LIKE`` nothing is a wildcard and ``\\%``/``\\_`` are errors.
    """
    out: list[tuple[str, bool]] = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\\":
            if i + 1 >= len(raw):
                raise SoqlError("a backslash ends the literal")
            nxt = raw[i + 1]
            if nxt in _SIMPLE_ESCAPES:
                out.append((_SIMPLE_ESCAPES[nxt], False))
                i += 2
            elif nxt in "%_" and like:
                out.append((nxt, False))
                i += 2
            elif nxt in "uU" and re.fullmatch(r"[0-9A-Fa-f]{4}", raw[i + 2 : i + 6]):
                out.append((chr(int(raw[i + 2 : i + 6], 16)), False))
                i += 6
            else:
                raise SoqlError(f"invalid escape sequence \\{nxt}")
        else:
            out.append((ch, like and ch in "%_"))
            i += 1
    return out


def _tokenize(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise SoqlError(f"unexpected token at column {pos + 1}: {text[pos : pos + 10]!r}")
        kind = match.lastgroup or ""
        if kind == "ws":
            pos = match.end()
            continue
        if kind == "dquote":
            raise SoqlError("strings are written in single quotes")
        if kind == "string":
            raw, end = _read_string(text, pos)
            tokens.append(_Tok("string", raw, pos))
            pos = end
            continue
        tokens.append(_Tok(kind, match.group(), pos))
        pos = match.end()
    tokens.append(_Tok("end", "", len(text)))
    return tokens


def _parse_datetime(text: str) -> datetime:
    base = text.replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", base):
        base = base[:-2] + ":" + base[-2:]
    return datetime.fromisoformat(base).astimezone(UTC)


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.i = 0

    def peek(self, offset: int = 0) -> _Tok:
        return self.tokens[min(self.i + offset, len(self.tokens) - 1)]

    def next(self) -> _Tok:
        tok = self.peek()
        self.i += 1
        return tok

    def keyword(self, *words: str) -> bool:
        tok = self.peek()
        return tok.kind == "name" and tok.text.upper() in words

    def expect_keyword(self, word: str) -> None:
        if not self.keyword(word):
            tok = self.peek()
            raise SoqlError(f"unexpected token: '{tok.text}' (expected {word})")
        self.next()

    def expect(self, text: str) -> None:
        tok = self.next()
        if tok.text != text:
            raise SoqlError(f"unexpected token: '{tok.text}' (expected '{text}')")

    def name(self) -> str:
        tok = self.next()
        if tok.kind != "name":
            raise SoqlError(f"unexpected token: '{tok.text}'")
        return tok.text

    def path(self) -> tuple[str, ...]:
        parts = [self.name()]
        while self.peek().text == ".":
            self.next()
            parts.append(self.name())
        return tuple(parts)

    def query(self, *, nested: bool = False) -> Query:
        self.expect_keyword("SELECT")
        count = False
        fields: list[tuple[str, ...]] = []
        aggregates: list[Aggregate] = []
        subqueries: list[Query] = []
        typeofs: list[TypeOf] = []
        items: list[tuple[str, int]] = []
        if self.keyword("COUNT") and self.peek(1).text == "(" and self.peek(2).text == ")":
            self.next()
            self.expect("(")
            self.expect(")")
            count = True
        else:
            while True:
                if self.peek().text == "(":
                    self.next()
                    subqueries.append(self.query(nested=True))
                    self.expect(")")
                    items.append(("subquery", len(subqueries) - 1))
                elif self.keyword("TYPEOF"):
                    typeofs.append(self.typeof())
                    items.append(("typeof", len(typeofs) - 1))
                elif self.keyword(*_AGGREGATES) and self.peek(1).text == "(":
                    function = self.next().text.upper()
                    self.expect("(")
                    path = None if self.peek().text == ")" else self.path()
                    self.expect(")")
                    alias = None
                    if self.peek().kind == "name" and not self.keyword("FROM"):
                        alias = self.name()
                    aggregates.append(Aggregate(function, path, alias))
                    items.append(("aggregate", len(aggregates) - 1))
                else:
                    fields.append(self.path())
                    items.append(("field", len(fields) - 1))
                if self.peek().text != ",":
                    break
                self.next()
        self.expect_keyword("FROM")
        object_name = self.name()
        where = None
        if self.keyword("WHERE"):
            self.next()
            where = self.condition()
        group_by: list[tuple[str, ...]] = []
        having = None
        if self.keyword("GROUP"):
            self.next()
            self.expect_keyword("BY")
            group_by.append(self.path())
            while self.peek().text == ",":
                self.next()
                group_by.append(self.path())
            if self.keyword("HAVING"):
                self.next()
                having = self.condition()
        order: list[Order] = []
        if self.keyword("ORDER"):
            self.next()
            self.expect_keyword("BY")
            order.append(self.order())
            while self.peek().text == ",":
                self.next()
                order.append(self.order())
        limit = None
        offset = 0
        if self.keyword("LIMIT"):
            self.next()
            limit = self.integer()
        if self.keyword("OFFSET"):
            self.next()
            offset = self.integer()
        tok = self.peek()
        if tok.kind != "end" and not (nested and tok.text == ")"):
            raise SoqlError(f"unexpected token: '{tok.text}'")
        if aggregates and fields and not group_by:
            raise SoqlError("Field must be grouped or aggregated")
        return Query(
            object_name=object_name,
            fields=tuple(fields),
            count=count,
            where=where,
            order_by=tuple(order),
            limit=limit,
            offset=offset,
            aggregates=tuple(aggregates),
            subqueries=tuple(subqueries),
            group_by=tuple(group_by),
            having=having,
            typeofs=tuple(typeofs),
            items=tuple(items),
        )

    def typeof(self) -> TypeOf:
        self.expect_keyword("TYPEOF")
        relationship = self.name()
        branches: list[tuple[str, tuple[tuple[str, ...], ...]]] = []
        otherwise: tuple[tuple[str, ...], ...] = ()
        while self.keyword("WHEN"):
            self.next()
            type_name = self.name()
            self.expect_keyword("THEN")
            branches.append((type_name, self.typeof_fields()))
        if self.keyword("ELSE"):
            self.next()
            otherwise = self.typeof_fields()
        self.expect_keyword("END")
        if not branches:
            raise SoqlError("TYPEOF needs at least one WHEN clause")
        return TypeOf(relationship, tuple(branches), otherwise)

    def typeof_fields(self) -> tuple[tuple[str, ...], ...]:
        fields = [self.path()]
        while self.peek().text == ",":
            self.next()
            fields.append(self.path())
        return tuple(fields)

    def integer(self) -> int:
        tok = self.next()
        if tok.kind != "number" or not tok.text.isdigit():
            raise SoqlError(f"unexpected token: '{tok.text}' (expected an integer)")
        return int(tok.text)

    def order(self) -> Order:
        path = self.path()
        descending = False
        if self.keyword("ASC", "DESC"):
            descending = self.next().text.upper() == "DESC"
        nulls_last = None
        if self.keyword("NULLS"):
            self.next()
            if not self.keyword("FIRST", "LAST"):
                raise SoqlError(f"unexpected token: '{self.peek().text}'")
            nulls_last = self.next().text.upper() == "LAST"
        return Order(path, descending, nulls_last)

    def condition(self) -> Condition:
        parts = [self.conjunction()]
        while self.keyword("OR"):
            self.next()
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def conjunction(self) -> Condition:
        parts = [self.unary()]
        while self.keyword("AND"):
            self.next()
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def unary(self) -> Condition:
        if self.keyword("NOT"):
            self.next()
            return Not(self.unary())
        if self.peek().text == "(":
            self.next()
            inner = self.condition()
            self.expect(")")
            return inner
        if self.keyword(*_AGGREGATES) and self.peek(1).text == "(":
            function = self.next().text.upper()
            self.expect("(")
            argument = None if self.peek().text == ")" else self.path()
            self.expect(")")
            path: tuple[str, ...] = (f"{function}({'.'.join(argument or ())})",)
        else:
            path = self.path()
        negated = False
        if self.keyword("NOT"):
            self.next()
            negated = True
            if not self.keyword("IN", "LIKE"):
                raise SoqlError(f"unexpected token: '{self.peek().text}'")
        if self.keyword("IN"):
            self.next()
            self.expect("(")
            if self.keyword("SELECT"):
                nested = self.query(nested=True)
                self.expect(")")
                if len(nested.fields) != 1 or nested.aggregates or nested.subqueries:
                    raise SoqlError("a semi-join selects exactly one field")
                return SemiJoin(path, nested, negated)
            values = [self.value()]
            while self.peek().text == ",":
                self.next()
                values.append(self.value())
            self.expect(")")
            return InList(path, tuple(values), negated)
        if self.keyword("LIKE"):
            self.next()
            tok = self.next()
            if tok.kind != "string":
                raise SoqlError("LIKE takes a string literal")
            return Like(path, _like_regex(tok.text), negated)
        tok = self.next()
        if tok.kind != "op":
            raise SoqlError(f"unexpected token: '{tok.text}'")
        return Comparison(path, "!=" if tok.text == "<>" else tok.text, self.value())

    def value(self) -> Literal:
        tok = self.next()
        if tok.kind == "string":
            raw = tok.text
            if "\\" not in raw:  # nothing escaped: the body is the value
                return Literal(raw, raw)
            return Literal("".join(ch for ch, _ in unescape(raw, like=False)), raw)
        if tok.kind == "number":
            return Literal(float(tok.text) if "." in tok.text else int(tok.text))
        if tok.kind == "date":
            return Literal(tok.text)
        if tok.kind == "datetime":
            return Literal(_parse_datetime(tok.text))
        if tok.kind == "name" and tok.text.upper() in ("TRUE", "FALSE"):
            return Literal(tok.text.upper() == "TRUE")
        if tok.kind == "name" and tok.text.upper() == "NULL":
            return Literal(None)
        if tok.kind == "name" and tok.text.upper() in DATE_LITERALS:
            return Literal(DateLiteral(tok.text.upper()))
        if tok.kind == "name" and tok.text.upper() in DATE_LITERALS_N:
            self.expect(":")
            return Literal(DateLiteral(tok.text.upper(), self.integer()))
        raise SoqlError(f"unexpected token: '{tok.text}'")


def _like_regex(raw: str) -> re.Pattern[str]:
    pieces: list[str] = []
    for ch, wildcard in unescape(raw, like=True):
        if wildcard:
            pieces.append(".*" if ch == "%" else ".")
        else:
            pieces.append(re.escape(ch.casefold()))
    return re.compile("".join(pieces), re.DOTALL)


def parse(text: str) -> Query:
    """Parse a SOQL statement of the subset; :class:`SoqlError` when it does not parse."""
    return _Parser(text).query()


def literal_values(values: Sequence[Literal]) -> list[Any]:
    return [v.value for v in values]
