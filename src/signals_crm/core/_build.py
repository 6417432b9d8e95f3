"""Fast positional constructors for the frozen, slotted attrs values the core builds per
conversation (commands, writes, activities). Pure.

A frozen attrs class's ``__init__`` sets each field through ``object.__setattr__`` bound to
the instance (the class's own ``__setattr__`` refuses): a Python call per field. The builder
of :func:`builder` sets each slot through its member descriptor instead, which is the same
store without the generic attribute lookup, and runs each field's converter like
``__init__`` does. It is only made for a class whose ``__init__`` does nothing else: every
field in ``__init__``, slotted, no validator, no ``__attrs_pre_init__`` or
``__attrs_post_init__``; for any other class it is the class itself. Every argument is given
(defaults are not filled in), positionally, in the order of the fields.

A class with no ``__weakref__`` slot (``weakref_slot=False``) whose slots are its fields gets
a quicker builder still: it fills a *twin*, a plain class with the same slots (so the same
layout), by ordinary attribute stores (which Python runs in a few machine instructions, where
a descriptor's ``__set__`` is a call), then makes the object the class's own by assigning its
``__class__`` (which Python allows between classes of one layout). The value is then the
same as the class's: its type, its slots, frozen. (With a ``__weakref__`` slot CPython 3.11's
layout check refuses the assignment, so such a class keeps the descriptor builder.) The twin
is made by calling it (it has no ``__init__``), which costs less than ``object.__new__``.

A *trusted* builder (``trusted=True``) is for values its caller has checked already: it runs
no converter, validator or ``__attrs_post_init__`` of the class (the ledger's
``trusted_command`` contract, for a ``CommandRecord`` the engine built from checked values).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import attrs

__all__ = ["builder"]

T = TypeVar("T")


def _slot(cls: type, name: str) -> Any:
    for klass in cls.__mro__:
        if name in klass.__dict__:
            found = klass.__dict__[name]
            return found if type(found).__name__ == "member_descriptor" else None
    return None


def builder(cls: type[T], *, trusted: bool = False) -> Callable[..., T]:
    """A constructor of ``cls`` taking every field positionally: equal to ``cls(*values)``
    (the module doc says for which classes; any other gets ``cls`` itself, unless
    ``trusted``)."""
    plain: Callable[..., T] = cls
    if not attrs.has(cls) or "__slots__" not in cls.__dict__:
        return plain
    fields = attrs.fields(cls)
    slots = [_slot(cls, f.name) for f in fields]
    if None in slots or any(not f.init for f in fields):
        return plain
    if not trusted and (
        hasattr(cls, "__attrs_post_init__")
        or hasattr(cls, "__attrs_pre_init__")
        or any(f.validator is not None for f in fields)
        or any(isinstance(f.converter, attrs.Converter) for f in fields)  # (takes self, ...)
    ):
        return plain
    names = [f"v{i}" for i in range(len(fields))]
    twin = _twin(cls, fields)
    scope: dict[str, Any] = {"_new": object.__new__, "_cls": cls, "_twin": twin}
    lines = [
        f"def build({', '.join(names)}):",
        "    o = _new(_cls)" if twin is None else "    o = _twin()",  # (a twin calls no __init__)
    ]
    for index, (field, slot) in enumerate(zip(fields, slots, strict=True)):
        value = names[index]
        if field.converter is not None and not trusted:
            scope[f"_c{index}"] = field.converter
            value = f"_c{index}({value})"
        if twin is None:
            scope[f"_s{index}"] = slot.__set__
            lines.append(f"    _s{index}(o, {value})")
        else:
            lines.append(f"    o.{field.name} = {value}")
    if twin is not None:
        lines.append("    o.__class__ = _cls")
    lines.append("    return o")
    exec("\n".join(lines), scope)  # noqa: S102  # code made from the class's own field names
    build: Callable[..., T] = scope["build"]
    build.__qualname__ = build.__name__ = f"build_{cls.__name__}"
    return build


def _twin(cls: type, fields: tuple[attrs.Attribute[Any], ...]) -> type | None:
    """A plain class of the same layout as ``cls``, or ``None`` when ``cls`` has slots other
    than its fields (a ``__weakref__`` among them), a base of its own, or refuses to be
    assigned from it (the module doc says why)."""
    names = [f.name for f in fields]
    slots = cls.__dict__.get("__slots__")
    if cls.__bases__ != (object,) or not isinstance(slots, tuple) or sorted(slots) != sorted(names):
        return None
    twin = type(f"_{cls.__name__}Twin", (), {"__slots__": slots})
    probe: Any = object.__new__(twin)
    try:
        for index, name in enumerate(names):
            setattr(probe, name, index)
        probe.__class__ = cls
    except TypeError:  # a layout CPython will not assign between
        return None
    if [getattr(probe, name) for name in names] != list(range(len(names))):
        return None  # (never seen: each slot read back where the twin stored it)
    return twin
