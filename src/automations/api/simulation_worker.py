"""One SimulateAutomation call, from request bytes to response bytes; and the worker process.

:func:`respond` validates a request within :class:`Limits` and runs it on the virtual clock
(``engine.simulation``). The engine runs it in worker processes (``simulation_pool``), off the
process that serves ingest: ``python -m automations.api.simulation_worker`` reads requests from
its stdin and writes answers to its stdout until its stdin closes, and dies with its parent.

Frames, both ways: ``<u32 header length><u32 body length>`` (big-endian), a JSON header, then the
body. A request's header is its :class:`Limits`, its body the serialized
``SimulateAutomationRequest``. An answer's header is ``{"rss_bytes": N}`` (the worker's resident
memory after the call) plus, for a refused or failed call, ``"error"`` (a domain error's class
name, field, description, message and reason) and ``"traceback"`` for an unexpected one; its
body is the serialized ``SimulateAutomationResponse`` (empty on error).
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import signal
import struct
import sys
import traceback
from typing import IO, Any

from google.protobuf import message

from automations.domain import errors, metric_json, metric_queries
from automations.engine import simulation
from automations.v1 import automation_service_pb2
from automations.wire import firings as wire_firings
from automations.wire import simulation as wire_simulation

FRAME_HEAD = struct.Struct(">II")
"""``<u32 header length><u32 body length>`` before every frame."""

_SETTINGS = {
    "max_steps": "simulation_max_steps",
    "max_firings": "simulation_max_firings",
}
"""The engine setting that raises each bound of ``engine.simulation.Limits``."""


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    """What one simulation may ask for (None: unbounded).

    Attributes:
        max_span_seconds: The longest span of simulated time (``until`` minus the clock's start).
        max_events: The most events in the request.
        max_steps: The most instants the virtual clock may visit.
        max_firings: The most firings the run may make.
        metric_minimum_seconds: The smallest metric ``range`` and ``firing_for`` accepted (the
            engine's ``metric_minimum_seconds``, applied in the worker's process too).
    """

    max_span_seconds: float | None = None
    max_events: int | None = None
    max_steps: int | None = None
    max_firings: int | None = None
    metric_minimum_seconds: float = metric_queries.MIN_SECONDS


def respond(
    request: automation_service_pb2.SimulateAutomationRequest, limits: Limits
) -> automation_service_pb2.SimulateAutomationResponse:
    """Validates ``request`` within ``limits``, runs it and returns its firings.

    Raises:
        errors.InvalidArgument: The request is invalid, asks for more than ``limits`` allow
            (TOO_MANY_EVENTS, SIMULATION_TOO_LONG) or its run reached ``max_steps`` or
            ``max_firings`` before ``until`` (SIMULATION_LIMIT_EXCEEDED, naming the setting).
    """
    metric_json.minimum_seconds = limits.metric_minimum_seconds
    simulated = wire_simulation.simulation_from_proto(
        request, max_events=limits.max_events, max_span_seconds=limits.max_span_seconds
    )
    bounds = simulation.Limits(max_steps=limits.max_steps, max_firings=limits.max_firings)
    try:
        fired = simulation.simulate(
            simulated.automation,
            simulated.steps,
            until=simulated.until,
            start=simulated.start,
            limits=bounds,
        )
    except simulation.LimitExceeded as exc:
        raise errors.InvalidArgument(
            "until",
            f"{exc.description}; simulate a shorter span, or raise the engine's "
            f"{_SETTINGS[exc.limit]} setting",
            reason=exc.reason,
        ) from None
    triggered, resolved = simulation.split(fired)
    return automation_service_pb2.SimulateAutomationResponse(
        firings=[wire_firings.firing_to_proto(f, stored=False) for f in triggered],
        resolutions=[wire_firings.firing_to_proto(f, stored=False) for f in resolved],
    )


def answer(request: bytes, limits: Limits) -> bytes:
    """:func:`respond` to a serialized request; returns the serialized response.

    Raises:
        errors.InvalidArgument: As :func:`respond`; MALFORMED_REQUEST for bytes that are not a
            ``SimulateAutomationRequest``.
    """
    try:
        parsed = automation_service_pb2.SimulateAutomationRequest.FromString(request)
    except message.DecodeError:
        raise errors.InvalidArgument(
            "", "the request is not a valid SimulateAutomationRequest", reason="MALFORMED_REQUEST"
        ) from None
    return respond(parsed, limits).SerializeToString()


def error_header(exc: errors.AutomationsError) -> dict[str, Any]:
    """A domain error as an answer's ``error`` header (see :func:`error_from_header`)."""
    kind = next(cls.__name__ for cls in type(exc).__mro__ if cls.__module__ == errors.__name__)
    header: dict[str, Any] = {"type": kind, "message": exc.message, "reason": exc.reason}
    if isinstance(exc, errors.InvalidArgument):
        header.update(field=exc.field, description=exc.description)
    return header


def error_from_header(header: dict[str, Any]) -> errors.AutomationsError:
    """The domain error an answer's ``error`` header describes."""
    found = getattr(errors, str(header.get("type")), None)
    reason = str(header.get("reason", "INTERNAL"))
    if isinstance(found, type) and issubclass(found, errors.InvalidArgument):
        invalid: type[errors.InvalidArgument] = found
        return invalid(str(header["field"]), str(header["description"]), reason=reason)
    kind: type[errors.AutomationsError] = (
        found
        if isinstance(found, type) and issubclass(found, errors.AutomationsError)
        else errors.AutomationsError
    )
    return kind(str(header.get("message", "")), reason=reason)


def write_frame(stream: IO[bytes], header: dict[str, Any], body: bytes) -> None:
    """Writes one frame and flushes it."""
    encoded = json.dumps(header).encode()
    stream.write(FRAME_HEAD.pack(len(encoded), len(body)) + encoded + body)
    stream.flush()


def read_frame(stream: IO[bytes]) -> tuple[dict[str, Any], bytes] | None:
    """Reads one frame; None at the end of the stream."""
    head = stream.read(FRAME_HEAD.size)
    if len(head) < FRAME_HEAD.size:
        return None
    header_size, body_size = FRAME_HEAD.unpack(head)
    header = json.loads(stream.read(header_size))
    body = stream.read(body_size)
    if len(body) < body_size:
        return None
    return header, body


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def _die_with_parent(parent: int) -> None:
    """Asks Linux to SIGKILL this process when its parent exits (a kill -9 of the engine)."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # the parent was gone before the request took effect
        os._exit(1)


def serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    """Answers framed requests from ``requests`` on ``answers`` until ``requests`` ends."""
    while (frame := read_frame(requests)) is not None:
        header, body = frame
        reply: dict[str, Any] = {}
        response = b""
        try:
            response = answer(body, Limits(**header))
        except errors.AutomationsError as exc:
            reply["error"] = error_header(exc)
        except Exception as exc:
            reply["error"] = error_header(
                errors.AutomationsError(
                    f"the simulation failed ({type(exc).__name__}); see the engine's log"
                )
            )
            reply["traceback"] = traceback.format_exc()
        reply["rss_bytes"] = _resident_bytes()
        write_frame(answers, reply, response)


def main() -> None:
    """The worker process: ``python -m automations.api.simulation_worker PARENT_PID``."""
    _die_with_parent(int(sys.argv[1]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C of the engine is the engine's
    os.nice(5)  # ingest first when the cores are busy
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print goes to the log, never into an answer
    serve(sys.stdin.buffer, answers)


if __name__ == "__main__":
    main()
