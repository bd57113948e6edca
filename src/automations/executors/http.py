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
from automations.executors import network_policy

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
        forbidden_reason: The reason of a connection the network policy refused (a redirect or
            a DNS answer into a refused network): PERMISSION_DENIED, never retried.
    """

    timeout_message: str
    timeout_reason: str
    unreachable_message: str
    unreachable_reason: str
    forbidden_reason: str


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
        refused = _refusal(exc)
        if refused is not None:
            raise executor.ActionError(
                grpc.StatusCode.PERMISSION_DENIED,
                f"The call was refused by the network policy: {refused}",
                failures.forbidden_reason,
            ) from None
        raise executor.ActionError(
            grpc.StatusCode.UNAVAILABLE,
            failures.unreachable_message.format(error=type(exc).__name__),
            failures.unreachable_reason,
            {"error": str(exc)[:MAX_ERROR_CHARS], **(details or {})},
        ) from None


def _refusal(exc: BaseException) -> str | None:
    """The network policy's refusal behind a transport error, if that is what it was."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, network_policy.ForbiddenAddress):
            return str(seen)
        seen = seen.__cause__ or seen.__context__
    return None
