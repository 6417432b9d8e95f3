"""CRM metadata kept for a while and shared by everything that uses one CRM connection.

Rules:

1. What preflight reads (object schemas, the CRM's users, whether a campaign exists) changes
   rarely, so an adapter keeps each answer for ``ttl`` seconds (default 10 minutes) in a
   :class:`MetadataCache`, measured by an injected monotonic ``clock``.
2. One cache per CRM connection: by default the adapter uses the cache of its ``auth`` (the
   session), so Integrations built on adapters that share an auth share the answers, and a
   freshly built Integration on a warm connection costs no preflight request. Pass
   ``metadata_cache=`` to share one more widely or to choose the TTL.
3. A write the CRM refuses because a field is unknown or not writable means the schema
   changed: the adapter forgets every cached schema (:meth:`MetadataCache.forget`) so the next
   preflight or describe reads it again.
4. Thread-safe; values are the adapter's own immutable answers (copied lists for users).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, Final

__all__ = ["DEFAULT_METADATA_TTL", "MetadataCache"]

DEFAULT_METADATA_TTL: Final = 600.0


class MetadataCache:
    """Answers keyed by ``(kind, *args)``, each kept ``ttl`` seconds."""

    def __init__(
        self, *, ttl: float = DEFAULT_METADATA_TTL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[tuple[Hashable, ...], tuple[float, Any]] = {}
        self.hits = 0
        """How many lookups were answered from the cache (observability)."""

    def __repr__(self) -> str:
        return f"MetadataCache(ttl={self.ttl}, entries={len(self._entries)})"

    def get(self, key: tuple[Hashable, ...]) -> tuple[bool, Any]:
        """``(True, value)`` for a fresh entry, else ``(False, None)``."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or self._clock() - entry[0] >= self.ttl:
                self._entries.pop(key, None)
                return False, None
            self.hits += 1
            return True, entry[1]

    def fresh(self, key: tuple[Hashable, ...]) -> bool:
        """Whether ``key`` has a fresh entry (not counted as a hit)."""
        with self._lock:
            entry = self._entries.get(key)
            return entry is not None and self._clock() - entry[0] < self.ttl

    def put(self, key: tuple[Hashable, ...], value: Any) -> None:
        with self._lock:
            self._entries[key] = (self._clock(), value)

    def forget(self, kind: Hashable | None = None) -> None:
        """Drop every entry of ``kind`` (``"describe"``, ``"users"``, …), or all of them."""
        with self._lock:
            if kind is None:
                self._entries.clear()
            else:
                for key in [k for k in self._entries if k[0] == kind]:
                    del self._entries[key]
