"""Who may use the console, and proof that a form was posted from the console itself.

1. **Authentication is the host's.** Every request, pages and static files alike, first goes to
   the host's ``authenticate(request)`` hook; it returns the operator's name, or ``None`` to
   refuse (403, or a redirect to the host's ``login_url``). There is no default: a console
   without a hook cannot be built.
2. **CSRF.** Every form carries a token ``<issued>.<mac>``: an HMAC-SHA256, under a secret held
   by this console object, of the operator's name and the time it was issued. A POST is
   accepted only with a valid token for the same operator, younger than
   :data:`TOKEN_LIFETIME`, from a same-origin page (``Sec-Fetch-Site`` must not say
   ``cross-site``/``same-site``, and an ``Origin`` header, when sent, must be this host's;
   an opaque ``Origin: null`` is accepted only with same-origin fetch metadata).
   Tokens are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["CSRF", "TOKEN_LIFETIME", "Authenticate"]

TOKEN_LIFETIME = 4 * 3600.0
"""How long a form's CSRF token is accepted, in seconds."""

Authenticate = Callable[[Any], Awaitable[str | None] | str | None]
"""The host's hook: the operator's name for a request, or ``None`` (refused)."""


class CSRF:
    """Issues and checks the console's form tokens (rule 2 of the module doc)."""

    def __init__(
        self, secret: bytes | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self._clock = clock

    def __repr__(self) -> str:
        return "CSRF(secret=<hidden>)"

    def _mac(self, user: str, issued: int) -> str:
        message = f"{issued}:{user}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def token(self, user: str) -> str:
        issued = int(self._clock())
        return f"{issued}.{self._mac(user, issued)}"

    def valid(self, user: str, token: str | None) -> bool:
        if not token or len(token) > 200 or "." not in token:
            return False
        issued_text, _, mac = token.partition(".")
        if not issued_text.isdigit() or len(issued_text) > 12:
            return False
        issued = int(issued_text)
        age = self._clock() - issued
        if not -60 <= age <= TOKEN_LIFETIME:
            return False
        return hmac.compare_digest(mac, self._mac(user, issued))


def same_origin(headers: Any, host: str | None) -> bool:
    """Whether a POST's fetch metadata and Origin say it came from this console's pages."""
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = headers.get("origin")
    if origin is None or origin == "null":
        # No origin to compare: only the browser's own fetch metadata can vouch for it.
        return origin is None or site is not None
    return host is not None and origin.split("://", 1)[-1] == host
