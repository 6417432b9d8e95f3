"""SOQL text: literals, escaping and ``IN`` lists that fit in one URL. Pure.

Rules (Salesforce "Quoted String Escape Sequences" and "Reserved Characters"):

1. A string literal is written in single quotes. Inside it ``\\`` and ``'`` are reserved and are
   backslash-escaped; ``"`` and the control characters newline, carriage return, tab, backspace
   and form feed are escaped too (``\\"``, ``\\n``, ``\\r``, ``\\t``, ``\\b``, ``\\f``), as every
   careful client does. Any other backslash would be a ``MALFORMED_QUERY``.
2. Inside a ``LIKE`` pattern ``%`` and ``_`` are wildcards; a literal one is written ``\\%`` /
   ``\\_`` (valid only in ``LIKE``).
3. The query travels in the ``q`` parameter of a ``GET``. It is form-encoded: a space becomes
   ``+`` and a literal ``+`` (common in emails: ``jo+tag@x.com``) **must** be ``%2B``, else
   Salesforce reads a space and the lookup silently misses.
4. A query sent in a URL (``GET query?q=``) must keep the URI plus headers under 16,384 bytes
   (414/431 otherwise; Help article 000386264). Such ``IN`` lists are chunked by the *encoded*
   length of the whole URL, not by a fixed count; the default budget is that limit less 2,048
   bytes for the headers (14,336), and at most 200 values a chunk.
4a. A query sent in a request *body* (a ``/composite`` subrequest: the same article's advice for
   SOQL too long for a URL) is bounded by the statement limit instead: 100,000 characters of
   SOQL as Salesforce reads it, decoded ("SOQL and SOSL Limits for Search Queries"). No limit on
   the number of ``IN`` values is documented, so such chunks are bounded by length alone.
5. One string literal may be at most 4,000 characters, counted as Salesforce reads it: after
   escaping, wildcards included (``o'neil`` is 7 characters, not 6).
"""

from __future__ import annotations

import bisect
import functools
import operator
import re
from collections.abc import Iterable, Iterator
from itertools import accumulate
from urllib.parse import quote_plus

from signals_crm.exceptions import ConfigurationError, Problem

__all__ = [
    "DEFAULT_MAX_URL_LENGTH",
    "HARD_URI_LIMIT",
    "MAX_LITERAL_LENGTH",
    "MAX_SOQL_LENGTH",
    "chunk_in_clause",
    "chunk_terms",
    "encode_q",
    "like_literal",
    "quote",
]

HARD_URI_LIMIT = 16_384
HEADER_ALLOWANCE = 2_048
DEFAULT_MAX_URL_LENGTH = HARD_URI_LIMIT - HEADER_ALLOWANCE
MAX_LITERAL_LENGTH = 4_000
MAX_SOQL_LENGTH = 100_000
DEFAULT_MAX_VALUES = 200

_ESCAPES = {
    "\\": "\\\\",
    "'": "\\'",
    '"': '\\"',
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}
_LIKE_ESCAPES = {**_ESCAPES, "%": "\\%", "_": "\\_"}


_QUOTE_TABLE = str.maketrans(_ESCAPES)
_LIKE_TABLE = str.maketrans(_LIKE_ESCAPES)


def _escape(value: str, table: dict[int, str]) -> str:
    return value.translate(table)


def _checked(literal: str) -> str:
    """``literal`` (escaped, wildcards included, quotes not) if Salesforce accepts its length."""
    if len(literal) > MAX_LITERAL_LENGTH:
        raise ConfigurationError(
            [
                Problem(
                    "soql",
                    f"a string literal is limited to {MAX_LITERAL_LENGTH} characters once "
                    f"escaped; this one has {len(literal)}",
                )
            ]
        )
    return literal


def quote(value: str) -> str:
    """``value`` as a SOQL string literal, quotes included.

    >>> quote("o'neil@x.com")
    "'o\\\\'neil@x.com'"
    """
    return "'" + _checked(_escape(value, _QUOTE_TABLE)) + "'"


def like_literal(value: str, *, prefix: str = "", suffix: str = "") -> str:
    """A quoted ``LIKE`` pattern matching ``value`` literally, between raw wildcards.

    >>> like_literal("50%_off", prefix="%", suffix="%")
    "'%50\\\\%\\\\_off%'"
    """
    return "'" + _checked(prefix + _escape(value, _LIKE_TABLE) + suffix) + "'"


_SAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~"  # quote_plus keeps
_SAFE_BYTES = _SAFE.encode("ascii")
_UNSAFE_ASCII = tuple(
    (char.encode("ascii"), quote_plus(char, safe="").encode("ascii"))
    for char in map(chr, range(128))
    if char not in _SAFE
)
"""Each ASCII character ``quote_plus`` encodes, and its encoding, as bytes."""
_UNSAFE_RUN = re.compile(r"([^A-Za-z0-9_.~-]+)")
_FEW_UNSAFE = 16


@functools.lru_cache(maxsize=4096)
def _encoded(text: str) -> str:
    return quote_plus(text, safe="")


def encode_q(soql: str) -> str:
    """The form-encoded value of the ``q`` parameter (space as ``+``, ``+`` as ``%2B``).

    The same text as ``quote_plus(soql, safe="")``, which encodes character by character
    with a Python call per character. An ASCII statement of a few distinct characters to
    encode (an ``IN`` list of emails has six: ``'``, ``,``, space, ``@``, ``(``, ``)``) has
    each replaced throughout, ``%`` first and space last (to ``+``, after ``+`` became
    ``%2B``); any other has the runs of characters to encode encoded each.
    """
    if not soql.isascii():  # the byte passes below are for ASCII text only
        return _encoded_runs(soql)
    # The characters to encode: each looked for (a memchr pass) in what is left once the safe
    # ones are dropped. Bytes: their translation and replacing are about twice as quick.
    text = soql.encode("ascii")
    left = text.translate(None, _SAFE_BYTES)
    unsafe = [(char, encoded) for char, encoded in _UNSAFE_ASCII if char in left]
    if len(unsafe) <= _FEW_UNSAFE:
        if b"%" in left:
            text = text.replace(b"%", b"%25")
        for char, encoded in unsafe:
            if char not in {b"%", b" "}:
                text = text.replace(char, encoded)
        return (text.replace(b" ", b"+") if b" " in left else text).decode("ascii")
    return _encoded_runs(soql)


def _encoded_runs(soql: str) -> str:
    parts = _UNSAFE_RUN.split(soql)
    parts[1::2] = map(_encoded, parts[1::2])
    return "".join(parts)


def chunk_terms(
    terms: Iterable[str],
    *,
    before: str,
    after: str,
    separator: str,
    fixed_length: int,
    max_url_length: int = DEFAULT_MAX_URL_LENGTH,
    max_values: int | None = DEFAULT_MAX_VALUES,
    encoded: bool = True,
) -> Iterator[list[str]]:
    """Split already-rendered SOQL ``terms`` into chunks whose query URL fits the budget.

    A chunk's query is ``before + separator.join(chunk) + after``; ``fixed_length`` is the
    length of the URL without the ``q`` value (scheme, host, path and ``?q=``). Form encoding
    works character by character, so encoded lengths add up and each term is measured once.
    ``encoded=False`` measures the statement itself (rule 4a: a query in a request body, with
    ``max_url_length`` the statement budget and ``fixed_length`` 0); ``max_values=None``
    bounds a chunk by length alone.
    """
    measure = (lambda text: len(encode_q(text))) if encoded else len
    base = fixed_length + measure(before) + measure(after)
    sep_cost = measure(separator)
    chunk: list[str] = []
    used = base
    for term in terms:
        cost = measure(term)
        if base + cost > max_url_length:
            raise ConfigurationError([Problem("soql", "one value is too long to fit in one query")])
        extra = cost + (sep_cost if chunk else 0)
        full = max_values is not None and len(chunk) >= max_values
        if chunk and (used + extra > max_url_length or full):
            yield chunk
            chunk, used, extra = [], base, cost
        chunk.append(term)
        used += extra
    if chunk:
        yield chunk


def chunk_in_clause(
    values: Iterable[str],
    *,
    before: str,
    after: str = ")",
    fixed_length: int,
    max_url_length: int = DEFAULT_MAX_URL_LENGTH,
    max_values: int | None = DEFAULT_MAX_VALUES,
    encoded: bool = True,
) -> Iterator[str]:
    """SOQL statements ``before + 'v1', 'v2', ... + after`` for an ``IN`` list, each fitting
    in ``max_url_length`` bytes of URL once encoded (see :func:`chunk_terms`; ``encoded=False``
    bounds the statement's own length instead)."""
    if not encoded:
        values = list(values)
        plain = _plain_chunks(
            values,
            base=fixed_length + len(before) + len(after),
            max_length=max_url_length,
            max_values=max_values,
        )
        if plain is not None:
            for start, end in plain:
                yield before + "'" + "', '".join(values[start:end]) + "'" + after
            return
    for chunk in chunk_terms(
        (quote(v) for v in values),
        before=before,
        after=after,
        separator=", ",
        fixed_length=fixed_length,
        max_url_length=max_url_length,
        max_values=max_values,
        encoded=encoded,
    ):
        yield before + ", ".join(chunk) + after


def _reserved_in(text: str) -> bool:
    """Whether ``text`` holds a character a literal escapes: one ``in`` test each (a memchr
    pass in C), several times sooner than a character class searched by ``re``."""
    return any(map(text.__contains__, _ESCAPES))


def _plain_chunks(
    values: list[str], *, base: int, max_length: int, max_values: int | None
) -> list[tuple[int, int]] | None:
    """The ``[start, end)`` chunks :func:`chunk_terms` makes of ``values`` quoted, measured by
    statement length (``encoded=False``), when no value needs escaping and every one fits:
    then each literal is the value in quotes, two characters longer, and the chunks come from
    the running sum of the lengths, for the whole list at once. ``None`` otherwise (the
    general path then escapes, measures and reports errors value by value)."""
    if not values:
        return []
    longest = max(map(len, values))
    joined = "".join(values)
    if longest > MAX_LITERAL_LENGTH or base + longest + 2 > max_length or _reserved_in(joined):
        return None
    # A chunk [a, b) measures base + (ends[b] - ends[a]) - 2: each literal two quotes and a
    # ", " separator longer than its value, less the separator the last one lacks.
    count = len(values)
    ends = [0, *map(operator.add, accumulate(map(len, values)), range(4, 4 * count + 1, 4))]
    chunks: list[tuple[int, int]] = []
    start = 0
    while start < count:
        budget = max_length - base + 2 + ends[start]
        end = bisect.bisect_right(ends, budget, lo=start + 1) - 1
        if max_values is not None:
            end = min(end, start + max(max_values, 1))  # chunk_terms: at least one
        chunks.append((start, end))
        start = end
    return chunks
