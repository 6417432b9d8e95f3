"""The package's one pair of flow drivers: answers sent back, chosen errors thrown in, closed."""

from __future__ import annotations

from collections.abc import Generator

import pytest

from signals_crm._drive import adrive, drive


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
