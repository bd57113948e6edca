"""What the bundled executors share about outbound HTTP: transport failures as action errors.

A call that times out is DEADLINE_EXCEEDED and one that cannot be made (refused, reset, DNS,
TLS) is UNAVAILABLE: both are retried by the engine. Each executor names its own reasons (for
example ``WEBHOOK_TIMEOUT``), so a failure says which integration failed.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping

import grpc
import httpx

from automations import executor

MAX_ERROR_CHARS = 200
"""The transport error's text kept in the action error's metadata, at most."""


@dataclasses.dataclass(frozen=True, slots=True)
class Failures:
    """How one integration words the failures of its calls.

    Attributes:
        timeout_message: The message of a call that did not answer in time; ``{timeout}`` is
            replaced by the timeout in seconds.
        timeout_reason: Its ``ErrorInfo`` reason.
        unreachable_message: The message of a call that could not be made; ``{error}`` is
            replaced by the transport error's type name.
        unreachable_reason: Its ``ErrorInfo`` reason.
    """

    timeout_message: str
    timeout_reason: str
    unreachable_message: str
    unreachable_reason: str


@contextlib.contextmanager
def transport_failures(
    failures: Failures, *, timeout: float, details: Mapping[str, str] | None = None
) -> Iterator[None]:
    """Turns httpx's timeouts and transport errors inside the block into action errors.

    Args:
        failures: The integration's wording.
        timeout: The call's timeout in seconds (for the message).
        details: Metadata added to an unreachable error (e.g. the API's URL).

    Raises:
        executor.ActionError: DEADLINE_EXCEEDED or UNAVAILABLE.
    """
    try:
        yield
    except httpx.TimeoutException as exc:
        raise executor.ActionError(
            grpc.StatusCode.DEADLINE_EXCEEDED,
            failures.timeout_message.format(timeout=f"{timeout:g}"),
            failures.timeout_reason,
            {"error": type(exc).__name__},
        ) from None
    except httpx.TransportError as exc:
        raise executor.ActionError(
            grpc.StatusCode.UNAVAILABLE,
            failures.unreachable_message.format(error=type(exc).__name__),
            failures.unreachable_reason,
            {"error": str(exc)[:MAX_ERROR_CHARS], **(details or {})},
        ) from None
