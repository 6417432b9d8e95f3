"""The errors ``signals_crm`` raises: one tree, and nothing else escapes the library.

::

    SignalsCRMError
    ├── ConfigurationError (also ValueError)   bad settings or input; lists every problem
    │   └── WebhookError                       a malformed Signals webhook payload
    ├── PlanningError                          the core cannot plan with what it was given
    ├── IntegrationDisabledError               a write was asked for while the integration is off
    ├── LedgerError                            the ledger cannot store or load what was asked
    │   └── InvalidTransitionError             a command state change the rules forbid
    │       └── LeaseLostError                 the sync was claimed by another worker since
    │           └── ClaimRefusedError          syncs read to be claimed changed before the claim
    └── AdapterError                           talking to a CRM failed
        ├── TransportError                     network-level failure (always retryable)
        └── CRMAPIError                        the CRM answered with an error
            ├── AuthenticationError            credentials missing, invalid or expired
            ├── PermissionDeniedError          the CRM user may not do this (needs an admin)
            ├── NotFoundError                  the record or resource does not exist
            ├── DuplicateRecordError           the CRM refused a create as a duplicate
            ├── RateLimitedError               too many calls; see ``retry_after``
            └── CRMServerError                 5xx and other CRM-side failures

Every error raised from another error is chained to it (``raise ... from cause``). Messages,
reprs and attributes never carry secrets (tokens, client secrets, private keys): adapters pass
only the CRM's own error message and code.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AdapterError",
    "AuthenticationError",
    "CRMAPIError",
    "CRMServerError",
    "ClaimRefusedError",
    "ConfigurationError",
    "DuplicateRecordError",
    "IntegrationDisabledError",
    "InvalidTransitionError",
    "LeaseLostError",
    "LedgerError",
    "NotFoundError",
    "PermissionDeniedError",
    "PlanningError",
    "Problem",
    "RateLimitedError",
    "SignalsCRMError",
    "TransportError",
    "WebhookError",
]


class SignalsCRMError(Exception):
    """Base class of every error raised by ``signals_crm``."""


class Problem:
    """One configuration problem: where (a dotted/indexed path) and what."""

    __slots__ = ("message", "path")

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def __repr__(self) -> str:
        return f"Problem(path={self.path!r}, message={self.message!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Problem):
            return NotImplemented
        return (self.path, self.message) == (other.path, other.message)

    def __hash__(self) -> int:
        return hash((self.path, self.message))


class ConfigurationError(SignalsCRMError, ValueError):
    """Settings or input that cannot be used. Lists *every* problem found, each with its path.

    >>> str(ConfigurationError([Problem("delay", "must not be negative")]))
    '1 configuration problem:\\n  delay: must not be negative'
    """

    def __init__(self, problems: Sequence[Problem] | str) -> None:
        if isinstance(problems, str):
            problems = [Problem("", problems)]
        self.problems: tuple[Problem, ...] = tuple(problems)
        count = len(self.problems)
        head = f"{count} configuration problem{'s' if count != 1 else ''}:"
        super().__init__("\n  ".join([head, *(str(p) for p in self.problems)]))

    @property
    def paths(self) -> tuple[str, ...]:
        """The paths of the problems, in order."""
        return tuple(p.path for p in self.problems)


class WebhookError(ConfigurationError):
    """A Signals webhook payload cannot be used (wrong types, a bad date, an unknown event).

    Lists every problem with its path in the payload, such as ``chat.meeting_event.date``. A
    receiver answers such a delivery with a client error; retrying it cannot help.
    """


class PlanningError(SignalsCRMError):
    """The core was given inputs it cannot plan with (for example, a lookup answer missing)."""


class IntegrationDisabledError(SignalsCRMError):
    """A write (manual sync, backfill) was requested while the integration is switched off."""


class LedgerError(SignalsCRMError):
    """The ledger failed: its store cannot be opened, read or written, or it is closed."""


class InvalidTransitionError(LedgerError):
    """Recording commands would break the state rules (see ``signals_crm.ledger``).

    ``keys`` names every offending idempotency key; nothing of the batch was written.
    """

    def __init__(self, message: str, *, keys: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.keys: tuple[str, ...] = tuple(keys)


class LeaseLostError(InvalidTransitionError):
    """A write carried a fencing token that is no longer current: another claim took the sync.

    ``conversation_ids`` names the syncs whose lease was taken over; ``keys`` the refused
    command keys (empty for a sync-level write such as ``complete``). Nothing was written. The
    worker must stop touching these syncs: their new owner reconciles and finishes them.
    """

    def __init__(
        self, message: str, *, conversation_ids: Sequence[str], keys: Sequence[str] = ()
    ) -> None:
        super().__init__(message, keys=keys)
        self.conversation_ids: tuple[str, ...] = tuple(conversation_ids)


class ClaimRefusedError(LeaseLostError):
    """An optimistic claim (``Ledger.claim_unchanged``) was refused: a sync read to be claimed
    changed before the claim committed (another worker claimed it or its email, it was
    completed or rescheduled). ``conversation_ids`` names the syncs that changed. Nothing was
    written: neither the claim nor anything of the transaction it opened
    (``perform(..., atomic=True)``). The engine then claims explicitly, and plans again.
    """


class AdapterError(SignalsCRMError):
    """Talking to a CRM failed. ``retryable`` says whether trying again may succeed."""

    retryable: bool = False


class TransportError(AdapterError):
    """The request did not get an HTTP answer (connect error, timeout, dropped connection).

    ``maybe_sent`` is true when the request may have reached the CRM (a read timeout or a
    dropped connection after sending): a write's outcome is then unknown and must be reconciled.
    """

    retryable = True

    def __init__(self, message: str, *, maybe_sent: bool = True) -> None:
        super().__init__(message)
        self.maybe_sent = maybe_sent


class CRMAPIError(AdapterError):
    """The CRM answered with an error.

    ``status_code`` is the HTTP status (``None`` for a per-record error inside a batch that
    succeeded as a whole), ``error_code`` the CRM's code (``"UNABLE_TO_LOCK_ROW"``,
    ``"VALIDATION_ERROR"``, ...), ``message`` the CRM's own message, ``fields`` the fields it
    named.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error_code: str | None = None,
        retryable: bool = False,
        fields: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.error_code = error_code
        self.retryable = retryable
        self.fields: tuple[str, ...] = tuple(fields)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(message={self.message!r}, status_code={self.status_code!r}, "
            f"error_code={self.error_code!r}, retryable={self.retryable!r})"
        )

    def __str__(self) -> str:
        code = f"{self.error_code}: " if self.error_code else ""
        status = f" (HTTP {self.status_code})" if self.status_code is not None else ""
        return f"{code}{self.message}{status}"


class AuthenticationError(CRMAPIError):
    """Credentials are missing, invalid or expired (after one refresh attempt)."""


class PermissionDeniedError(CRMAPIError):
    """The integration user lacks a permission, or a referenced user is inactive.

    Needs an administrator; never retried.
    """


class NotFoundError(CRMAPIError):
    """The record or resource does not exist."""


class DuplicateRecordError(CRMAPIError):
    """The CRM refused a create because the record already exists.

    ``matched_ids`` names the existing records the CRM reported (possibly empty when the CRM
    did not say; look the record up then).
    """

    def __init__(
        self,
        message: str,
        *,
        matched_ids: Sequence[str] = (),
        status_code: int | None = None,
        error_code: str | None = None,
        fields: Sequence[str] = (),
    ) -> None:
        super().__init__(
            message,
            status_code=status_code,
            error_code=error_code,
            retryable=False,
            fields=fields,
        )
        self.matched_ids: tuple[str, ...] = tuple(matched_ids)


class RateLimitedError(CRMAPIError):
    """The CRM refused the call for exceeding a rate or daily limit.

    ``retry_after`` is the number of seconds to wait when known. A daily limit is reported with
    ``retryable=False`` (wait for the reset, do not hammer).
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status_code: int | None = None,
        error_code: str | None = None,
        retryable: bool = True,
    ) -> None:
        super().__init__(
            message, status_code=status_code, error_code=error_code, retryable=retryable
        )
        self.retry_after = retry_after


class CRMServerError(CRMAPIError):
    """The CRM failed on its side (5xx, lock contention). Usually retryable."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error_code: str | None = None,
        retryable: bool = True,
        fields: Sequence[str] = (),
    ) -> None:
        super().__init__(
            message,
            status_code=status_code,
            error_code=error_code,
            retryable=retryable,
            fields=fields,
        )
