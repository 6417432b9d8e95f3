"""A ``/composite`` subrequest's answer as an ``httpx.Response`` whose JSON body is already
decoded. Pure.

A composite answer is one JSON document holding every subrequest's status, headers and body;
the parsers of single requests read each as an ``httpx.Response``. Encoding each body back to
bytes only for those parsers to decode it again doubled the JSON work of every write and
lookup, so :class:`SubResponse` keeps the decoded value (:func:`json_body` hands it out) and
makes its bytes only when something reads ``content`` (``text``, ``json()``, ``read()``):
then they are what ``httpx.Response(json=body)`` held.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

__all__ = ["SubResponse", "Successes", "json_body"]


class Successes:
    """A Collections answer in which every record succeeded, kept as its record ids: the
    decoded body is ``[{"id": id, "success": true, "errors": []}, ...]`` (:meth:`as_json`)."""

    __slots__ = ("ids",)

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids

    def as_json(self) -> list[dict[str, Any]]:
        return [{"id": i, "success": True, "errors": []} for i in self.ids]

    def __repr__(self) -> str:
        return f"Successes({self.ids!r})"


class _Encoded(httpx.SyncByteStream):
    """The body's bytes, encoded as ``httpx.Response(json=...)`` encodes them, when read."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def __iter__(self) -> Iterator[bytes]:
        body = self._body
        if body is not None:
            if isinstance(body, Successes):
                body = body.as_json()
            yield json.dumps(
                body, ensure_ascii=False, separators=(",", ":"), allow_nan=False
            ).encode("utf-8")


class SubResponse(httpx.Response):
    """One subrequest's answer: its status, headers and decoded JSON ``body`` (``None``: no
    body). ``content`` is encoded on first use."""

    def __init__(self, status_code: int, headers: Mapping[str, str], body: Any) -> None:
        super().__init__(status_code, headers=headers, stream=_Encoded(body))
        if body is not None:
            self.headers.setdefault("Content-Type", "application/json")
        self.body = body

    @property
    def content(self) -> bytes:
        if not hasattr(self, "_content"):
            self.read()
        return self._content


def json_body(response: httpx.Response) -> Any:
    """The decoded JSON body of ``response`` (``ValueError`` or ``UnicodeDecodeError`` when it
    is not JSON), without decoding a :class:`SubResponse`'s again (a :class:`Successes`
    body stays one: ``parse_collection_results`` reads it)."""
    if isinstance(response, SubResponse):
        return response.body
    return json.loads(response.content)
