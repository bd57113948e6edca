"""The simulation worker: framed requests in, framed answers out; limits and errors carried across."""

from __future__ import annotations

import io
from typing import Any

import pytest

from automations.api import simulation_worker
from automations.domain import errors
from automations.v1 import automation_service_pb2
from automations.wire import automations as wire_automations

QUIET = {
    "name": "quiet",
    "trigger": {"type": "event", "posture": "Proactive", "expect": ["ping"], "within": 10},
    "actions": [{"type": "do-nothing"}],
}
"""Fires every 10 s of simulated time."""


def _request(until: int) -> bytes:
    request = automation_service_pb2.SimulateAutomationRequest(
        automation=wire_automations.automation_proto_from_prefect_json(QUIET)
    )
    request.until.FromSeconds(until)
    return request.SerializeToString()


def _serve(*frames: tuple[dict[str, Any], bytes]) -> list[tuple[dict[str, Any], bytes]]:
    requests = io.BytesIO()
    for header, body in frames:
        simulation_worker.write_frame(requests, header, body)
    requests.seek(0)
    answers = io.BytesIO()
    simulation_worker.serve(requests, answers)
    answers.seek(0)
    out = []
    while (frame := simulation_worker.read_frame(answers)) is not None:
        out.append(frame)
    return out


def _fire_times(body: bytes) -> list[int]:
    response = automation_service_pb2.SimulateAutomationResponse.FromString(body)
    return [f.fire_time.seconds for f in response.firings]


def test_each_request_gets_its_answer_in_order_until_the_input_ends() -> None:
    answers = _serve(({}, _request(30)), ({}, _request(20)))
    assert [_fire_times(body) for _, body in answers] == [[10, 20, 30], [10, 20]]
    assert all("error" not in header and header["rss_bytes"] > 0 for header, _ in answers)


def test_the_answer_is_the_servicers_own_response() -> None:
    request = automation_service_pb2.SimulateAutomationRequest.FromString(_request(30))
    served = simulation_worker.respond(request, simulation_worker.Limits())
    assert simulation_worker.answer(_request(30), simulation_worker.Limits()) == (
        served.SerializeToString()
    )


@pytest.mark.parametrize(
    ("limits", "setting"),
    [({"max_firings": 2}, "simulation_max_firings"), ({"max_steps": 2}, "simulation_max_steps")],
)
def test_a_run_stopped_at_a_limit_is_refused_naming_until_and_the_setting(
    limits: dict[str, Any], setting: str
) -> None:
    ((header, body),) = _serve((limits, _request(1_000_000)))
    assert body == b""
    error = simulation_worker.error_from_header(header["error"])
    assert isinstance(error, errors.InvalidArgument)
    assert (error.field, error.reason) == ("until", "SIMULATION_LIMIT_EXCEEDED")
    assert f"raise the engine's {setting} setting" in error.description


def test_a_request_over_the_span_or_event_bounds_is_refused_before_it_runs() -> None:
    ((header, _),) = _serve(({"max_span_seconds": 100}, _request(1_000_000)))
    assert (header["error"]["field"], header["error"]["reason"]) == ("until", "SIMULATION_TOO_LONG")


def test_bytes_that_are_no_request_are_refused_as_malformed() -> None:
    ((header, _),) = _serve(({}, b"\xff\xff\xff"))
    assert header["error"]["reason"] == "MALFORMED_REQUEST"


def test_an_unexpected_failure_answers_internal_with_its_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(simulation_worker, "respond", broken)
    ((header, _),) = _serve(({}, _request(10)))
    error = simulation_worker.error_from_header(header["error"])
    assert type(error) is errors.AutomationsError
    assert error.reason == "INTERNAL"
    assert "RuntimeError" in error.message
    assert "boom" in header["traceback"]


@pytest.mark.parametrize(
    "error",
    [
        errors.InvalidArgument("events[2].event", "is bad", reason="MISSING_RESOURCE_ID"),
        errors.DeadlineExceeded("too slow", reason="SIMULATION_TIMEOUT"),
        errors.NotFound("gone"),
    ],
)
def test_domain_errors_cross_the_pipe_as_they_were(error: errors.AutomationsError) -> None:
    crossed = simulation_worker.error_from_header(simulation_worker.error_header(error))
    assert type(crossed) is type(error)
    assert (crossed.message, crossed.reason) == (error.message, error.reason)


def test_an_unknown_error_class_crosses_as_an_internal_error() -> None:
    crossed = simulation_worker.error_from_header({"type": "Nope", "message": "m"})
    assert type(crossed) is errors.AutomationsError
    assert crossed.reason == "INTERNAL"
