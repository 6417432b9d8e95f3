"""The synchronization delay: seconds, compact text (``"1h30m"``) or ISO-8601 (``"PT15M"``).

Rule 4 of :mod:`signals_crm.settings`: whole seconds, never negative, at most
:data:`MAX_DELAY`; written back as the compact form.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated

from pydantic import PlainSerializer, PlainValidator
from pydantic_core import PydanticCustomError

__all__ = ["MAX_DELAY", "Delay", "format_delay", "parse_delay"]

MAX_DELAY = timedelta(days=30)
"""The longest synchronization delay accepted."""

# ------------------------------------------------------------------------------------------------
# The synchronization delay

_COMPACT = re.compile(r"^(?:([0-9]+)d)?\s*(?:([0-9]+)h)?\s*(?:([0-9]+)m)?\s*(?:([0-9]+)s)?\Z")
_ISO = re.compile(
    r"^P(?:([0-9]+)W)?(?:([0-9]+)D)?(?:T(?=[0-9])(?:([0-9]+)H)?(?:([0-9]+)M)?(?:([0-9]+)S)?)?\Z",
    re.IGNORECASE,
)
_DELAY_HINT = 'use seconds (900) or a duration such as "15m", "1h30m" or "PT15M"'


def parse_delay(value: object) -> timedelta:
    """A synchronization delay from seconds (int), text (``"15m"``, ``"PT15M"``) or a
    ``timedelta``. Raises ``ValueError`` (``TypeError`` for other types) naming what is wrong."""
    if isinstance(value, bool):
        raise TypeError(f"not a delay: {_DELAY_HINT}")
    if isinstance(value, timedelta):
        delay = value
    elif isinstance(value, int):
        delay = timedelta(seconds=_in_range(value))
    elif isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise ValueError(f"must be a whole number of seconds, not {value!r}")
        delay = timedelta(seconds=_in_range(int(value)))
    elif isinstance(value, str):
        delay = _parse_delay_text(value)
    else:
        raise TypeError(f"not a delay: {_DELAY_HINT}")
    if delay < timedelta(0):
        raise ValueError("must not be negative")
    if delay > MAX_DELAY:
        raise ValueError(f"at most 30 days, not {format_delay(delay)}")
    if delay.microseconds:
        raise ValueError("must be a whole number of seconds")
    return delay


_FAR = 10**12
"""Seconds beyond any delay (and far inside what ``timedelta`` holds): a number this large is
refused before it is converted, so that no overflow or digit-limit error can escape."""


def _in_range(seconds: int) -> int:
    if seconds >= _FAR:
        raise ValueError(f"at most 30 days ({int(MAX_DELAY.total_seconds())} seconds)")
    if seconds <= -_FAR:
        raise ValueError("must not be negative")
    return seconds


def _number(digits: str | None) -> int:
    """The value of one run of digits of a delay text (0 when absent), bounded."""
    if not digits:
        return 0
    if len(digits.lstrip("0")) > len(str(_FAR)):
        return _FAR  # (refused by _bounded; int() of thousands of digits would raise)
    return int(digits)


def _parse_delay_text(value: str) -> timedelta:
    text = value.strip()
    if text.startswith("-"):
        raise ValueError("must not be negative")
    if text.isascii() and text.isdigit():
        return timedelta(seconds=_in_range(_number(text)))
    compact = _COMPACT.match(text)
    if text and compact and any(compact.groups()):
        d, h, m, s = (_number(g) for g in compact.groups())
        return _bounded(days=d, hours=h, minutes=m, seconds=s)
    iso = _ISO.match(text)
    if text and iso and any(iso.groups()):
        w, d, h, m, s = (_number(g) for g in iso.groups())
        return _bounded(days=7 * w + d, hours=h, minutes=m, seconds=s)
    if re.match(r"^P.*[YM]", text.upper().split("T")[0]):
        raise ValueError("years and months have no fixed length: give days (P30D)")
    shown = repr(value) if len(value) <= 40 else repr(value[:40]) + "…"
    raise ValueError(f"not a delay: {shown}; {_DELAY_HINT}")


def _bounded(*, days: int, hours: int, minutes: int, seconds: int) -> timedelta:
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total > MAX_DELAY.total_seconds():
        shown = f"{total} seconds" if total < _FAR else "more"
        raise ValueError(f"at most 30 days, not {shown}")
    return timedelta(seconds=total)


def format_delay(delay: timedelta) -> str:
    """The compact text of a delay: ``"1d2h3m4s"`` with zero units left out, ``"0s"`` for none."""
    total = int(delay.total_seconds())
    sign = "-" if total < 0 else ""
    total = abs(total)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    if seconds or not parts:
        parts.append(f"{seconds}s")
    return sign + "".join(parts)


def _validate_delay(value: object) -> timedelta:
    try:
        return parse_delay(value)
    except (TypeError, ValueError) as exc:
        raise PydanticCustomError("delay", str(exc)) from None


Delay = Annotated[
    timedelta,
    PlainValidator(_validate_delay, json_schema_input_type=int | str),
    PlainSerializer(format_delay, return_type=str),
]
