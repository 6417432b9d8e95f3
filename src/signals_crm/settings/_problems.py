"""Problems with paths: how bad input is reported, for settings and webhook payloads alike.

Both readers of user input (:mod:`signals_crm.settings` and :mod:`signals_crm.webhook`) report
*every* problem at once, each as a :class:`~signals_crm.exceptions.Problem` whose path names
the place in the user's document. This module holds what they share:

1. **Paths** join with dots (``field_mappings.lead``), indexes with brackets (``[0]``), and a
   key that is not a bare word is quoted as JSON (``segments["named accounts"]``).
2. **Kinds** of a wrong value are named in the user's words (``text``, ``a number``,
   ``an object``), never as Python type names of JSON values.
3. **Pydantic errors** (settings only) become problems: ``loc`` → path, pydantic's type codes
   → short messages (``unknown key``, ``required``) with a "did you mean" hint for a near key,
   and the tags pydantic adds inside discriminated unions are left out of the path.
"""

from __future__ import annotations

import difflib
import json
import re
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError, ValidatorFunctionWrapHandler, WrapValidator
from pydantic_core import PydanticCustomError

from signals_crm.exceptions import Problem

__all__ = [
    "check_also",
    "get",
    "items",
    "join",
    "key_path",
    "kind",
    "problems_error",
    "problems_of",
]

PROBLEMS = "signals_problems"
"""The pydantic error type that carries already-made problems up to the model."""

_TAGS = frozenset({"group", "condition", "domain_list"})
_BARE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")


# ------------------------------------------------------------------------------------------------
# Paths and kinds (shared with the webhook reader)


def join(base: str, rel: str) -> str:
    """``rel`` (relative: ``name``, ``[0]``, ``a.b``) appended to ``base``."""
    if not rel:
        return base
    if not base or rel.startswith("["):
        return base + rel
    return f"{base}.{rel}"


def key_path(base: str, key: object) -> str:
    """The path of ``key`` inside the table at ``base``: ``base.key``, or ``base["odd key"]``
    when the key is not a bare word (any non-text key is shown as JSON would write it)."""
    if isinstance(key, str) and _BARE_KEY.match(key):
        return join(base, key)
    try:
        shown = json.dumps(key if isinstance(key, str) else str(key))
    except ValueError:  # (an integer too long to show as text)
        shown = '"…"'
    return join(base, f"[{shown}]")


def kind(value: object) -> str:
    """What ``value`` is, in the words of a JSON or TOML document."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, bytes | bytearray):
        return "bytes"
    return type(value).__name__


# ------------------------------------------------------------------------------------------------
# Pydantic errors → problems


def _is_tag(loc: Sequence[int | str], i: int) -> bool:
    """Whether ``loc[i]`` is the tag pydantic adds inside a discriminated union."""
    after_index = i > 0 and isinstance(loc[i - 1], int)
    segment_kind = i == 2 and loc[0] == "segments"  # segments.<name>.<tag>
    return loc[i] in _TAGS and (after_index or segment_kind)


def _loc_path(loc: Sequence[int | str]) -> tuple[str, bool]:
    """The path of a pydantic ``loc``, and whether it ends on a dict key (``[key]``)."""
    path = ""
    is_key = False
    for i, part in enumerate(loc):
        if isinstance(part, int):
            path += f"[{part}]"
            continue
        if part == "[key]":
            is_key = True
            continue
        if _is_tag(loc, i):
            continue  # the tag of a discriminated union: not part of the user's document
        path = key_path(path, part)
    return path, is_key


_MESSAGES = {
    "extra_forbidden": "unknown key",
    "missing": "required",
}

Tags = Mapping[str, type[BaseModel]]
"""The model behind each tag of the discriminated unions (for "did you mean" hints)."""


def problems_of(
    exc: ValidationError, root: type[BaseModel] | None = None, *, tags: Tags | None = None
) -> list[Problem]:
    """Every problem of a pydantic error, with paths relative to where it was raised."""
    out: list[Problem] = []
    for error in exc.errors(include_url=False):
        path, is_key = _loc_path(error["loc"])
        ctx = error.get("ctx") or {}
        if error["type"] == PROBLEMS:
            out.extend(Problem(join(path, p), m) for p, m in ctx["problems"])
            continue
        message = _MESSAGES.get(error["type"], error["msg"])
        message = message.removeprefix("Value error, ")
        if error["type"] == "extra_forbidden" and root is not None:
            message += _suggestion(root, error["loc"], tags or {})
        if is_key:
            message = f"key: {message}"
        out.append(Problem(path, message))
    return out


def problems_error(problems: Sequence[Problem]) -> PydanticCustomError:
    """A pydantic error carrying ``problems`` (paths relative to the value that raised it)."""
    text = "; ".join(str(p) for p in problems)
    pairs = tuple((p.path, p.message) for p in problems)
    return PydanticCustomError(PROBLEMS, "{text}", {"text": text, "problems": pairs})


def _model_at(root: type[BaseModel], loc: Sequence[int | str], tags: Tags) -> Any:
    """The settings model that holds the last key of ``loc`` (for "did you mean" hints)."""
    current: Any = root
    for i, part in enumerate(loc[:-1]):
        if isinstance(part, int):
            continue
        if _is_tag(loc, i) and part in tags:
            current = tags[part]
        elif (
            isinstance(current, type)
            and issubclass(current, BaseModel)
            and part in current.model_fields
        ):
            current = _models_in(current.model_fields[part].annotation)
        # otherwise ``part`` is a key of a dict (a segment name): the value's model is current
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _models_in(annotation: Any) -> type[BaseModel] | None:
    """The one model inside a field's annotation (``None`` for none or several)."""
    found: list[type[BaseModel]] = []

    def walk(tp: Any) -> None:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            found.append(tp)
            return
        for arg in typing.get_args(tp):
            walk(arg)

    walk(annotation)
    unique = list(dict.fromkeys(found))
    return unique[0] if len(unique) == 1 else None


def _suggestion(root: type[BaseModel], loc: Sequence[int | str], tags: Tags) -> str:
    key = loc[-1] if loc else None
    model = _model_at(root, loc, tags)
    if model is None or not isinstance(key, str):
        return ""
    known = list(model.model_fields)
    close = difflib.get_close_matches(key, known, n=1) or [
        k
        for k in known
        if key.lower() in k.split("_")  # "delay" → synchronization_delay
    ]
    return f"; did you mean {close[0]!r}?" if close else ""


def check_also(
    check: Callable[[Any], list[Problem]], items: type[BaseModel] | None = None
) -> WrapValidator:
    """A validator that runs ``check`` on the raw value *and* pydantic's own validation, and
    reports the problems of both together (pydantic alone stops at the first failing level).
    ``items`` is the model of the list's entries (for "did you mean" hints)."""

    def validate(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        problems = check(value)
        try:
            result = handler(value)
        except ValidationError as exc:
            raise problems_error([*problems_of(exc, items), *problems]) from None
        if problems:
            raise problems_error(problems)
        return result

    return WrapValidator(validate)


def get(obj: Any, name: str) -> Any:
    """``obj[name]`` or ``obj.name`` on raw input or models; ``None`` when it has neither."""
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def items(obj: Any) -> list[Any]:
    """The entries of a list or tuple; ``[]`` for anything else (reported elsewhere)."""
    return list(obj) if isinstance(obj, list | tuple) else []
