"""Records the engine builds or reads from a checked row skip validation (``trusted_command``):
they must be the very values the validating constructor builds, and every row it would not
build as it is must still take the careful reading (damaged, or refused)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signals_crm.exceptions import ConfigurationError
from signals_crm.ledger import CommandRecord, CommandState, _rows
from signals_crm.ledger._rows import micros_time, read_command
from signals_crm.ledger.base import check_text, trusted_command

T = datetime(2026, 11, 1, 12, tzinfo=UTC)
MICROS = (T - datetime(1970, 1, 1, tzinfo=UTC)).days * 86_400 * 1_000_000

names = st.text(min_size=1, max_size=12).filter(lambda s: s.strip() != "")
texts = st.none() | st.text(max_size=12)
counts = st.integers(min_value=0, max_value=10)


@given(
    key=names,
    cid=names,
    state=st.sampled_from(list(CommandState)),
    crm_id=texts,
    reason=texts,
    attempts=counts,
    owner=texts,
    fence=st.none() | counts,
)
def test_a_trusted_record_is_the_validated_one(
    key: str,
    cid: str,
    state: CommandState,
    crm_id: str | None,
    reason: str | None,
    attempts: int,
    owner: str | None,
    fence: int | None,
) -> None:
    args = (key, cid, "create_task", state, T, crm_id, reason, attempts, None, owner, fence)
    try:
        checked = CommandRecord(*args)
    except ConfigurationError:
        return  # not a record: nothing may be trusted about it
    if checked.reason != reason:
        return  # the converter cleaned it: trusted callers pass clean reasons only
    trusted = trusted_command(*args)
    assert trusted == checked
    assert repr(trusted) == repr(checked)
    assert hash(trusted) == hash(checked)


def careful(row: tuple[object, ...]) -> CommandRecord | str:
    """The reading without the fast path (every column checked), or the refusal."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_rows, "_sound_command", lambda *_: None)
        return reading(row)


def reading(row: tuple[object, ...]) -> CommandRecord | str:
    try:
        return read_command(*row, time=micros_time)  # type: ignore[arg-type]
    except ConfigurationError as error:
        return f"refused: {error}"


@given(
    key=st.one_of(names, st.just(""), st.just("  "), st.integers(), st.just("k\ud800")),
    state=st.one_of(st.sampled_from([s.value for s in CommandState]), st.just("paused")),
    crm_id=st.one_of(texts, st.integers()),
    reason=st.one_of(texts, st.just("caf\u00e9 \ud800"), st.integers()),
    attempts=st.one_of(counts, st.just(-1), st.just("2"), st.just(True)),
    updated_at=st.one_of(st.just(MICROS), st.just("soon"), st.just(10**20)),
    fence=st.one_of(st.none(), counts, st.just(-3), st.just(1.5)),
)
def test_a_row_reads_as_the_careful_reading_does(
    key: object,
    state: object,
    crm_id: object,
    reason: object,
    attempts: object,
    updated_at: object,
    fence: object,
) -> None:
    row = (key, "c-1", "create_task", state, crm_id, reason, attempts, updated_at, None, "w", fence)
    fast, slow = reading(row), careful(row)
    assert fast == slow
    assert repr(fast) == repr(slow)


def test_a_record_a_user_builds_is_still_checked() -> None:
    with pytest.raises(ConfigurationError):
        CommandRecord("k", "c", "create_task", "sent", T)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        CommandRecord("k", "c", "create_task", CommandState.CONFIRMED, T)


def _plain_check(value: str) -> str | None:
    """What ``check_text`` promises, checked the plain way: the UTF-8 encoding."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return value


@given(value=st.text() | st.text(alphabet=st.characters(codec="ascii")) | st.just("a\ud800b"))
def test_check_text_takes_what_utf_8_can_hold(value: str) -> None:
    """``check_text`` (ASCII at once, anything else encoded) returns exactly the texts whose
    UTF-8 encoding exists, as they are, and refuses the others naming the field."""
    expected = _plain_check(value)
    if expected is None:
        with pytest.raises(ConfigurationError, match="field"):
            check_text("field", value)
    else:
        assert check_text("field", value) is value
