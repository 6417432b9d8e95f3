"""The one pair of drivers for every generator flow in the package.

A *flow* is a plain generator that yields what it needs done (an HTTP request, a CRM lookup,
an adapter call, a ledger operation) and receives the answer: the sans-IO shape of h11 and of
httpx's ``auth_flow``. The rules are written once, as flows; only these two loops differ
between blocking and async code:

1. :func:`drive` runs a flow to its return value, handing every yielded item to ``perform``
   and sending back what ``perform`` returns.
2. :func:`adrive` does the same with an ``async`` ``perform``.
3. An exception ``perform`` raises whose type is in ``catch`` is thrown into the flow at the
   ``yield`` that asked (so the flow may expect it and go on); any other propagates.
4. The flow is closed when the driver stops, whatever the reason.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import TypeVar

__all__ = ["adrive", "drive"]

Y = TypeVar("Y")
S = TypeVar("S")
R = TypeVar("R")

Catch = tuple[type[BaseException], ...]


def drive(flow: Generator[Y, S, R], perform: Callable[[Y], S], *, catch: Catch = ()) -> R:
    """Run ``flow`` to its result, performing each item it yields with ``perform``."""
    try:
        item = next(flow)
        while True:
            try:
                answer = perform(item)
            except catch as exc:
                item = flow.throw(exc)
            else:
                item = flow.send(answer)
    except StopIteration as stop:
        result: R = stop.value
        return result
    finally:
        flow.close()


async def adrive(
    flow: Generator[Y, S, R], perform: Callable[[Y], Awaitable[S]], *, catch: Catch = ()
) -> R:
    """:func:`drive` with an ``async`` ``perform``."""
    try:
        item = next(flow)
        while True:
            try:
                answer = await perform(item)
            except catch as exc:
                item = flow.throw(exc)
            else:
                item = flow.send(answer)
    except StopIteration as stop:
        result: R = stop.value
        return result
    finally:
        flow.close()
