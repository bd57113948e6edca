"""The error tree of the engine.

Every expected failure is one of these; the gRPC layer maps each class to one canonical status code
and an ``ErrorInfo`` whose ``reason`` is the error's ``reason`` (UPPER_SNAKE)::

    AutomationsError                      (INTERNAL)
    +-- InvalidArgument                   (INVALID_ARGUMENT, carries the field path)
    +-- NotFound                          (NOT_FOUND)
    +-- AlreadyExists                     (ALREADY_EXISTS)
    +-- FailedPrecondition                (FAILED_PRECONDITION)
    +-- Aborted                           (ABORTED: a stale etag)
    +-- ResourceExhausted                 (RESOURCE_EXHAUSTED: backpressure)
    +-- Unavailable                       (UNAVAILABLE: draining, database gone)
    +-- DeadlineExceeded                  (DEADLINE_EXCEEDED: the engine's own time limit)
    +-- Unauthenticated                   (UNAUTHENTICATED: missing or wrong API token)
"""

from __future__ import annotations


class AutomationsError(Exception):
    """Base class of every error the engine raises on purpose.

    Attributes:
        reason: A stable UPPER_SNAKE identifier of the failure (at most 63 characters).
        message: A human-readable explanation.
    """

    default_reason = "INTERNAL"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason


class InvalidArgument(AutomationsError):
    """A request field is malformed; ``field`` is its path, e.g. ``trigger.triggers[1].within``."""

    default_reason = "INVALID_ARGUMENT"

    def __init__(self, field: str, message: str, *, reason: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message, reason=reason)
        self.field = field
        self.description = message

    def under(self, prefix: str) -> InvalidArgument:
        """Returns the same error with its field path prefixed by ``prefix``."""
        if not prefix:
            return self
        field = (
            f"{prefix}.{self.field}"
            if self.field and not self.field.startswith("[")
            else (f"{prefix}{self.field}")
        )
        return InvalidArgument(field, self.description, reason=self.reason)


class NotFound(AutomationsError):
    """The named resource does not exist."""

    default_reason = "NOT_FOUND"


class AlreadyExists(AutomationsError):
    """A resource with that id exists already."""

    default_reason = "ALREADY_EXISTS"


class FailedPrecondition(AutomationsError):
    """The request is valid but the system is not in a state to run it."""

    default_reason = "FAILED_PRECONDITION"


class Aborted(AutomationsError):
    """A concurrency conflict, e.g. an ``etag`` that no longer matches (AIP-154)."""

    default_reason = "ETAG_MISMATCH"


class ResourceExhausted(AutomationsError):
    """The engine cannot keep up; the client should back off and retry."""

    default_reason = "RESOURCE_EXHAUSTED"


class Unavailable(AutomationsError):
    """The engine is starting, draining or has lost its database; retry later."""

    default_reason = "UNAVAILABLE"


class DeadlineExceeded(AutomationsError):
    """The work ran past a time limit of the engine's own (not the caller's deadline)."""

    default_reason = "DEADLINE_EXCEEDED"


class Unauthenticated(AutomationsError):
    """The call carries no valid credentials (the API's bearer token is missing or wrong)."""

    default_reason = "UNAUTHENTICATED"
