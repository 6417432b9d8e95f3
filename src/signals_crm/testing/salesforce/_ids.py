"""Salesforce record ids: 15 case-sensitive characters, plus a 3-character case-safe suffix.

The suffix (reference §1): cut the 15 characters into three chunks of 5; for each chunk form a
5-bit number whose bit *i* is set when character *i* is an uppercase ``A``-``Z``; map each
number through ``ABCDEFGHIJKLMNOPQRSTUVWXYZ012345``. The API returns 18-character ids and
accepts either form; both forms name the same record.
"""

from __future__ import annotations

import functools
import re

__all__ = ["KEY_PREFIXES", "IdFactory", "is_well_formed", "to_18"]

_SUFFIX_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ID_RE = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Z0-5]{3})?$")

KEY_PREFIXES = {
    "Account": "001",
    "Contact": "003",
    "User": "005",
    "Group": "00G",
    "Lead": "00Q",
    "Task": "00T",
    "Campaign": "701",
    "CampaignMember": "00v",
    "Organization": "00D",
    "RecordType": "012",
    "LeadStatus": "01J",
    "CampaignMemberStatus": "01Y",
    "AssignmentRule": "01Q",
    "DuplicateRule": "0Bm",
    "QueueSobject": "03g",
}


_FLAGS = str.maketrans({chr(c): "1" if "A" <= chr(c) <= "Z" else "0" for c in range(128)})
"""An ASCII character to "1" when it is an uppercase letter, else "0"."""


@functools.lru_cache(maxsize=1 << 16)  # ids are checked again and again
def _suffix(id15: str) -> str:
    flags = id15.translate(_FLAGS)
    if len(flags) == 15 and flags.isascii() and not flags.strip("01"):
        # bit i of a chunk is its character i: read each chunk's flags backwards, in base 2
        return (
            _SUFFIX_CHARS[int(flags[4::-1], 2)]
            + _SUFFIX_CHARS[int(flags[9:4:-1], 2)]
            + _SUFFIX_CHARS[int(flags[14:9:-1], 2)]
        )
    out = []
    for start in (0, 5, 10):
        bits = 0
        for i, ch in enumerate(id15[start : start + 5]):
            if "A" <= ch <= "Z":
                bits |= 1 << i
        out.append(_SUFFIX_CHARS[bits])
    return "".join(out)


def to_18(record_id: str) -> str:
    """The 18-character form of a 15- or 18-character id.

    >>> to_18("001M000000qfPyS")
    '001M000000qfPySIAU'
    """
    if len(record_id) == 18:
        return record_id
    if len(record_id) != 15:
        raise ValueError("an id has 15 or 18 characters")
    return record_id + _suffix(record_id)


def is_well_formed(record_id: str) -> bool:
    """Whether ``record_id`` is a 15-character id or an 18-character one with a valid suffix."""
    if not _ID_RE.match(record_id):
        return False
    return len(record_id) == 15 or _suffix(record_id[:15]) == record_id[15:]


class IdFactory:
    """Deterministic ids: key prefix, a pod-like ``5g``, then a base-62 counter (mixed case)."""

    def __init__(self) -> None:
        self._counter = 0

    def new(self, prefix: str) -> str:
        self._counter += 1
        n = self._counter * 7919 + 104_729  # spread digits so ids are mixed-case
        digits = ""
        while n:
            n, r = divmod(n, 62)
            digits = _BASE62[r] + digits
        body = prefix + "5g" + digits.rjust(10, "0")
        return to_18(body[:15])
