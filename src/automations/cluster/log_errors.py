"""The errors of the JetStream log, and the one place NATS client exceptions are mapped to them.

Each is a domain error, so the gRPC layer answers it with its canonical status: a log that cannot
be reached (no server, no JetStream, no stream answering, a time limit) is ``UNAVAILABLE`` and the
caller may retry, on this replica or another, with the same message ids.
"""

from __future__ import annotations

import asyncio

import nats.errors
import nats.js.errors

from automations.domain import errors


class LogUnavailable(errors.Unavailable):
    """The log cannot be reached now: retry later (a retried publish with the same id dedups)."""

    default_reason = "LOG_UNAVAILABLE"


class LogMessageTooLarge(errors.ResourceExhausted):
    """A message is larger than the NATS server accepts (its ``max_payload``); nothing was sent."""

    default_reason = "LOG_MESSAGE_TOO_LARGE"


class LogStreamMismatch(errors.FailedPrecondition):
    """A stream exists with settings this cluster cannot use (subjects, storage, replicas)."""

    default_reason = "LOG_STREAM_MISMATCH"


class LogError(errors.AutomationsError):
    """JetStream refused a request for a reason that retrying will not fix."""

    default_reason = "LOG_ERROR"


_UNREACHABLE = (
    asyncio.TimeoutError,  # nats.errors.TimeoutError is one too
    OSError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionDrainingError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.StaleConnectionError,
    nats.errors.NoServersError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.NoStreamResponseError,
)


def from_client_error(exc: BaseException, doing: str) -> errors.AutomationsError:
    """Returns the log error for a NATS client exception raised while ``doing`` something.

    Args:
        exc: What nats-py raised.
        doing: What was being done, for the message, e.g. ``"publishing to AUTOMATIONS.raw.3"``.
    """
    if isinstance(exc, nats.js.errors.NoStreamResponseError | nats.errors.NoRespondersError):
        return LogUnavailable(
            f"{doing}: no stream answered (JetStream down, or the stream is missing)"
        )
    if isinstance(exc, _UNREACHABLE):
        return LogUnavailable(f"{doing}: the NATS server is unreachable ({type(exc).__name__})")
    if isinstance(exc, nats.js.errors.APIError):
        return LogError(f"{doing}: JetStream refused it: {exc.description} (code {exc.err_code})")
    return LogError(f"{doing}: {type(exc).__name__}: {exc}")
