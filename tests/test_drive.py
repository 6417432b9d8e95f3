"""The package's one pair of flow drivers: answers sent back, chosen errors thrown in, closed."""

from __future__ import annotations

from collections.abc import Generator

import pytest

from signals_crm._drive import adrive, arelay, drive, relay


class Refused(Exception):
    pass


def flow(log: list[str]) -> Generator[int, int, str]:
    """Asks for doubles; expects the driver to throw Refused for 13 and carries on."""
    try:
        first = yield 2
        try:
            yield 13
        except Refused:
            log.append("refused")
        second = yield 5
        return f"{first}+{second}"
    finally:
        log.append("closed")


def double(n: int) -> int:
    if n == 13:
        raise Refused
    return n * 2


async def adouble(n: int) -> int:
    return double(n)


def test_drive_sends_answers_and_throws_caught_errors_in() -> None:
    """Each answer goes back to the flow; a caught error is raised at the yield that asked."""
    log: list[str] = []
    assert drive(flow(log), double, catch=(Refused,)) == "4+10"
    assert log == ["refused", "closed"]


def test_an_uncaught_error_propagates_and_the_flow_is_closed() -> None:
    """Without ``catch`` the error escapes the driver and the flow's cleanup runs."""
    log: list[str] = []
    with pytest.raises(Refused):
        drive(flow(log), double)
    assert log == ["closed"]


@pytest.mark.anyio
async def test_adrive_is_the_same_loop_with_await() -> None:
    """The async driver gives the same answers, throws and cleanup."""
    log: list[str] = []
    assert await adrive(flow(log), adouble, catch=(Refused,)) == "4+10"
    assert log == ["refused", "closed"]
    with pytest.raises(Refused):
        await adrive(flow([]), adouble)


def relayed(log: list[str]) -> Generator[int | str, int | str, None]:
    """Yields text to send out (answered by whoever runs the relay) and numbers to perform."""
    try:
        reply = yield "ask"
        log.append(f"reply {reply}")
        doubled = yield 21
        log.append(f"doubled {doubled}")
        yield "again"
    finally:
        log.append("closed")


def test_relay_passes_outward_items_out_and_performs_the_rest() -> None:
    """Outward items go to the outer driver; their answers are received, then sent back in."""
    log: list[str] = []
    outer: Generator[str, str, None] = relay(
        relayed(log),
        lambda n: n * 2,
        outward=str,
        received=lambda answer: log.append(f"received {answer}"),
        cleanup=lambda: log.append("cleanup"),
    )
    assert next(outer) == "ask"
    assert outer.send("yes") == "again"
    with pytest.raises(StopIteration):
        outer.send("done")
    assert log == ["received yes", "reply yes", "doubled 42", "received done", "closed", "cleanup"]


def test_relay_cleans_up_when_the_outer_driver_stops_early() -> None:
    """Closing the relay mid-flow closes the flow and runs ``cleanup`` (a held lock let go)."""
    log: list[str] = []
    outer: Generator[str, str, None] = relay(
        relayed(log), lambda n: n, outward=str, cleanup=lambda: log.append("cleanup")
    )
    assert next(outer) == "ask"
    outer.close()
    assert log == ["closed", "cleanup"]


@pytest.mark.anyio
async def test_arelay_is_the_same_relay_as_an_async_generator() -> None:
    """Same outward passing, awaited performs and receives, and cleanup."""
    log: list[str] = []

    async def perform(n: int | str) -> int | str:
        return int(n) * 2

    async def received(answer: object) -> None:
        log.append(f"received {answer}")

    outer = arelay(
        relayed(log),
        perform,
        outward=str,
        received=received,
        cleanup=lambda: log.append("cleanup"),
    )
    assert await outer.asend(None) == "ask"
    assert await outer.asend("yes") == "again"
    with pytest.raises(StopAsyncIteration):
        await outer.asend("done")
    assert log == ["received yes", "reply yes", "doubled 42", "received done", "closed", "cleanup"]
