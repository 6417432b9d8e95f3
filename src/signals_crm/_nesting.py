"""How deep decoded JSON or TOML may nest, judged the same on every Python version.

Python's JSON and TOML decoders recurse, and whether a deeply nested document raises
``RecursionError`` depends on the version (3.13's C decoder goes deeper than 3.11's). The
readers of outside text (webhook payloads, settings files) decode first and then ask
:func:`nested_too_deeply`, so a document is refused for its depth alike everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_DECODED_DEPTH = 256
"""How deep arrays and objects (tables) may nest in a decoded document; far beyond any real
webhook payload or settings file, and well within every decoder's own recursion."""


def nested_too_deeply(value: Any, limit: int = MAX_DECODED_DEPTH) -> bool:
    """Whether arrays and mappings nest more than ``limit`` levels in ``value`` (iterative,
    so any depth is safe to ask about)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, Mapping):
            children: Any = node.values()
        elif isinstance(node, list | tuple):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False
