"""The one pair of drivers for every generator flow in the package.

A *flow* is a plain generator that yields what it needs done (an HTTP request, a CRM lookup,
an adapter call, a ledger operation) and receives the answer: the sans-IO shape of h11 and of
httpx's ``auth_flow``. The rules are written once, as flows; only these two loops differ
between blocking and async code:

1. :func:`drive` runs a flow to its return value, handing every yielded item to ``perform``
   and sending back what ``perform`` returns.
2. :func:`adrive` does the same with an ``async`` ``perform``; :func:`nest` runs a flow inside
   another flow, each item performed by a sub-flow (``yield from``), so flows compose without
   a loop of their own. :func:`relay` and :func:`arelay` run a flow inside a generator that
   someone else drives (an ``httpx.Auth`` flow): items of the ``outward`` type are yielded out
   and their answers sent back in; every other item is performed here.
3. An exception ``perform`` raises whose type is in ``catch`` is thrown into the flow at the
   ``yield`` that asked (so the flow may expect it and go on); any other propagates.
4. The flow is closed when the driver stops, whatever the reason.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from contextlib import closing
from typing import Any, TypeAlias, TypeVar, cast

__all__ = ["adrive", "arelay", "drive", "nest", "relay"]

Y = TypeVar("Y")
S = TypeVar("S")
R = TypeVar("R")
Out = TypeVar("Out")
A = TypeVar("A")

Catch = tuple[type[BaseException], ...]
Outcome: TypeAlias = tuple[S | None, BaseException | None]
"""What performing one item gave: its answer, or the caught error."""


def _resume(flow: Generator[Y, S, R], answer: S | None, error: BaseException | None) -> Y:
    """Send ``answer`` into the flow, or throw ``error`` into it; the next item it yields."""
    if error is not None:
        return flow.throw(error)
    return flow.send(cast("S", answer))


def _call(perform: Callable[[Y], S], item: Y, catch: Catch) -> Outcome[S]:
    try:
        return perform(item), None
    except catch as exc:
        return None, exc


async def _acall(perform: Callable[[Y], Awaitable[S]], item: Y, catch: Catch) -> Outcome[S]:
    try:
        return await perform(item), None
    except catch as exc:
        return None, exc


def drive(flow: Generator[Y, S, R], perform: Callable[[Y], S], *, catch: Catch = ()) -> R:
    """Run ``flow`` to its result, performing each item it yields with ``perform``."""
    with closing(flow):
        try:
            item = next(flow)
            while True:
                answer, error = _call(perform, item, catch)
                item = _resume(flow, answer, error)
        except StopIteration as stop:
            return cast("R", stop.value)


async def adrive(
    flow: Generator[Y, S, R], perform: Callable[[Y], Awaitable[S]], *, catch: Catch = ()
) -> R:
    """:func:`drive` with an ``async`` ``perform``."""
    with closing(flow):
        try:
            item = next(flow)
            while True:
                answer, error = await _acall(perform, item, catch)
                item = _resume(flow, answer, error)
        except StopIteration as stop:
            return cast("R", stop.value)


def nest(
    flow: Generator[Y, S, R],
    perform: Callable[[Y], Generator[Any, Any, S]],
    *,
    catch: Catch = (),
) -> Generator[Any, Any, R]:
    """:func:`drive` inside a flow: each item is performed by the sub-flow ``perform`` gives."""
    with closing(flow):
        try:
            item = next(flow)
            while True:
                try:
                    answer = yield from perform(item)
                except catch as exc:
                    item = flow.throw(exc)
                    continue
                item = flow.send(answer)
        except StopIteration as stop:
            return cast("R", stop.value)


def relay(
    flow: Generator[Y, S, None],
    perform: Callable[[Y], S],
    *,
    outward: type[Out],
    received: Callable[[A], object] | None = None,
    cleanup: Callable[[], object] | None = None,
) -> Generator[Out, A, None]:
    """Run ``flow`` inside a generator: ``outward`` items go out, the rest are performed.

    The answer to an outward item is handed to ``received`` (to read a response body, say)
    and then sent into the flow; ``cleanup`` runs once the relay ends, however it ends.
    """
    try:
        with closing(flow):
            item = next(flow)
            while True:
                if isinstance(item, outward):
                    answer: Any = yield item
                    if received is not None:
                        received(answer)
                else:
                    answer = perform(item)
                item = flow.send(answer)
    except StopIteration:
        return
    finally:
        if cleanup is not None:
            cleanup()


async def arelay(
    flow: Generator[Y, S, None],
    perform: Callable[[Y], Awaitable[S]],
    *,
    outward: type[Out],
    received: Callable[[A], Awaitable[object]] | None = None,
    cleanup: Callable[[], object] | None = None,
) -> AsyncGenerator[Out, A]:
    """:func:`relay` as an async generator, with an ``async`` ``perform`` and ``received``."""
    try:
        with closing(flow):
            item = next(flow)
            while True:
                if isinstance(item, outward):
                    answer: Any = yield item
                    if received is not None:
                        await received(answer)
                else:
                    answer = await perform(item)
                item = flow.send(answer)
    except StopIteration:
        return
    finally:
        if cleanup is not None:
            cleanup()
