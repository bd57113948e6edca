"""SimulateAutomation in a real engine: bounded, run in worker processes, stopped with its caller.

The attack of issue #17 (``until`` = 2e7 s on a 10 s proactive trigger, which used to run on for
minutes after its caller's 5 s deadline, in the engine's own process) is refused within a second;
a simulation whose caller goes away stops at once; ingest does not pay for a simulation running;
and simulations within the bounds answer as they did before (the conformance corpus, served).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from automations.engine import simulation
from automations.v1 import (
    automation_service_pb2,
    automation_service_pb2_grpc,
    event_service_pb2,
    event_service_pb2_grpc,
)
from automations.wire import automations as wire_automations
from automations.wire import events as wire_events
from automations.wire import firings as wire_firings
from automations.wire import simulation as wire_simulation
from automations.wire import structs
from tests.integration.engine_process import EngineProcess
from tests.integration.test_automations_api import error_details
from tests.waiting import wait_until

QUIET = {
    "name": "quiet for 10 s",
    "trigger": {
        "type": "event",
        "posture": "Proactive",
        "expect": ["heartbeat"],
        "threshold": 1,
        "within": 10,
        "match": {"prefect.resource.id": "*"},
    },
    "actions": [{"type": "do-nothing"}],
}
"""The issue's trigger: it fires every 10 s of simulated time while no heartbeat comes."""

ENGINE_TIMEOUT = 4.0
"""``simulation_timeout_seconds`` of the engine without the other bounds."""

CONFORMANCE = Path(__file__).parents[1] / "conformance"
CORPUS = sorted([*CONFORMANCE.glob("scenarios/*.json"), *CONFORMANCE.glob("metric/*.json")])


def _request(until: float, events: int = 0) -> automation_service_pb2.SimulateAutomationRequest:
    request = automation_service_pb2.SimulateAutomationRequest(
        automation=wire_automations.automation_proto_from_prefect_json(QUIET)
    )
    for i in range(events):
        item = request.events.add()
        item.offset.FromSeconds(i)
        item.event.id = f"e{i}"
        item.event.event = "other"
        item.event.resource.labels["prefect.resource.id"] = "r"
    request.until.CopyFrom(structs.seconds_to_duration(until))
    return request


@pytest.fixture(scope="module")
def bounded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    """An engine with the default simulation settings."""
    engine = EngineProcess(tmp_path_factory.mktemp("bounded"))
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()


@pytest.fixture(scope="module")
def unbounded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    """An engine whose simulations are bounded by wall time only (and by 3 events)."""
    engine = EngineProcess(
        tmp_path_factory.mktemp("unbounded"),
        env={
            "AUTOMATIONS_SIMULATION_MAX_SPAN_SECONDS": "1e12",
            "AUTOMATIONS_SIMULATION_MAX_STEPS": "1000000000",
            "AUTOMATIONS_SIMULATION_MAX_FIRINGS": "100000000",
            "AUTOMATIONS_SIMULATION_MAX_EVENTS": "3",
            "AUTOMATIONS_SIMULATION_TIMEOUT_SECONDS": str(ENGINE_TIMEOUT),
        },
    )
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()


def _stub(engine: EngineProcess) -> automation_service_pb2_grpc.AutomationServiceStub:
    return automation_service_pb2_grpc.AutomationServiceStub(engine.channel())


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _cpu_seconds(pid: int) -> float:
    """CPU time of the process itself (its children not included)."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _alive(pid: int) -> bool:
    try:
        return _stat(pid)[0] != "Z"
    except OSError:
        return False


def _simulation_workers(pid: int) -> list[int]:
    """The engine's children running simulations (not its webhook front process, say)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            with contextlib.suppress(OSError):
                if b"simulation_worker" in Path(f"/proc/{child}/cmdline").read_bytes():
                    found.append(int(child))
    return found


def _busy_worker(engine: EngineProcess) -> int:
    """The engine's simulation worker, once it has spent some CPU."""
    assert engine.proc is not None
    engine_pid = engine.proc.pid
    (worker,) = wait_until(lambda: _simulation_workers(engine_pid), what="a simulation worker")
    wait_until(lambda: _cpu_seconds(worker) > 0.5, what="the worker computing")
    return worker


def _simulate_in_background(
    engine: EngineProcess, until: float, timeout: float | None
) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def call() -> None:
        begin = time.monotonic()
        try:
            _stub(engine).SimulateAutomation(_request(until), timeout=timeout)
        except grpc.RpcError as exc:
            outcome["error"] = exc
        outcome["seconds"] = time.monotonic() - begin

    thread = threading.Thread(target=call)
    thread.start()
    return thread, outcome


def test_the_issues_attack_is_refused_well_within_its_deadline(bounded: EngineProcess) -> None:
    begin = time.monotonic()
    with pytest.raises(grpc.RpcError) as info:
        _stub(bounded).SimulateAutomation(_request(2e7), timeout=5)
    assert time.monotonic() - begin < 5
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_details(info.value) == ("SIMULATION_LIMIT_EXCEEDED", ["until"])
    assert "10000 firings" in info.value.details()
    assert "simulation_max_firings" in info.value.details()


def test_a_span_past_a_year_is_refused_before_it_runs(bounded: EngineProcess) -> None:
    with pytest.raises(grpc.RpcError) as info:
        _stub(bounded).SimulateAutomation(_request(1e9), timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_details(info.value) == ("SIMULATION_TOO_LONG", ["until"])
    assert "simulation_max_span_seconds" in info.value.details()


def test_more_events_than_allowed_are_refused_naming_events(unbounded: EngineProcess) -> None:
    assert len(_stub(unbounded).SimulateAutomation(_request(20, events=3)).firings) == 2
    with pytest.raises(grpc.RpcError) as info:
        _stub(unbounded).SimulateAutomation(_request(20, events=4))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_details(info.value) == ("TOO_MANY_EVENTS", ["events"])


def test_a_simulation_whose_caller_gives_up_stops_and_the_next_one_works(
    unbounded: EngineProcess,
) -> None:
    thread, outcome = _simulate_in_background(unbounded, 1e11, timeout=ENGINE_TIMEOUT / 2)
    worker = _busy_worker(unbounded)
    thread.join()
    assert outcome["error"].code() == grpc.StatusCode.DEADLINE_EXCEEDED
    wait_until(lambda: not _alive(worker), timeout=2, what="the worker killed")
    reply = _stub(unbounded).SimulateAutomation(_request(30), timeout=30)
    assert [f.fire_time.seconds for f in reply.firings] == [10, 20, 30]


def test_a_simulation_past_the_engines_time_limit_is_stopped_with_deadline_exceeded(
    unbounded: EngineProcess,
) -> None:
    thread, outcome = _simulate_in_background(unbounded, 1e11, timeout=None)
    worker = _busy_worker(unbounded)
    thread.join(60)
    error = outcome["error"]
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert error_details(error)[0] == "SIMULATION_TIMEOUT"
    assert "simulation_timeout_seconds" in error.details()
    assert ENGINE_TIMEOUT <= outcome["seconds"] < ENGINE_TIMEOUT + 10
    wait_until(lambda: not _alive(worker), timeout=2, what="the worker killed")


def test_ingest_does_not_pay_for_a_simulation_running(unbounded: EngineProcess) -> None:
    assert unbounded.proc is not None
    engine_pid = unbounded.proc.pid
    thread, _ = _simulate_in_background(unbounded, 1e11, timeout=ENGINE_TIMEOUT - 0.5)
    worker = _busy_worker(unbounded)
    events = event_service_pb2_grpc.EventServiceStub(unbounded.channel())
    health = health_pb2_grpc.HealthStub(unbounded.channel())
    engine_cpu, worker_cpu, begin = _cpu_seconds(engine_pid), _cpu_seconds(worker), time.monotonic()
    latencies = []
    for i in range(40):
        request = event_service_pb2.PublishEventsRequest()
        event = request.events.add(id=f"bystander-{i}", event="bystander.ping")
        event.resource.labels["prefect.resource.id"] = "bystander"
        sent = time.monotonic()
        events.PublishEvents(request, timeout=10)
        health.Check(health_pb2.HealthCheckRequest(), timeout=10)
        latencies.append(time.monotonic() - sent)
        time.sleep(0.02)
    wall = time.monotonic() - begin
    engine_share = (_cpu_seconds(engine_pid) - engine_cpu) / wall
    worker_share = (_cpu_seconds(worker) - worker_cpu) / wall
    thread.join()
    # the simulation's CPU went to its worker (as much as a shared machine gave it); the engine
    # only served the calls
    assert worker_share > 0.25 and worker_share > 2 * engine_share, (worker_share, engine_share)
    assert engine_share < 0.5, (worker_share, engine_share)
    assert max(latencies) < 1.0, latencies


def _corpus_request(scenario: dict[str, Any]) -> automation_service_pb2.SimulateAutomationRequest:
    request = automation_service_pb2.SimulateAutomationRequest(
        automation=wire_automations.automation_proto_from_prefect_json(scenario["automation"])
    )
    request.start_time.CopyFrom(structs.seconds_to_timestamp(simulation.EPOCH))
    for step in scenario["steps"]:
        item = request.events.add()
        item.offset.CopyFrom(structs.seconds_to_duration(float(step["at"])))
        item.event.CopyFrom(wire_events.event_to_proto(simulation.scenario_event(step)))
    request.until.CopyFrom(structs.seconds_to_duration(float(scenario["until"])))
    return request


def _as_before(
    request: automation_service_pb2.SimulateAutomationRequest,
) -> automation_service_pb2.SimulateAutomationResponse:
    """What SimulateAutomation answered before simulations had limits and workers (its code)."""
    simulated = wire_simulation.simulation_from_proto(request)
    if request.HasField("start_time"):
        start = structs.timestamp_to_seconds(request.start_time)
    elif request.events and request.events[0].WhichOneof("time") == "deliver_time":
        start = simulated.steps[0][0]
    else:
        start = 0.0
    fired = simulation.simulate(
        simulated.automation, simulated.steps, until=simulated.until, start=start
    )
    triggered, resolved = simulation.split(fired)
    return automation_service_pb2.SimulateAutomationResponse(
        firings=[wire_firings.firing_to_proto(f, stored=False) for f in triggered],
        resolutions=[wire_firings.firing_to_proto(f, stored=False) for f in resolved],
    )


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_served_simulations_answer_as_they_did_before(bounded: EngineProcess, path: Path) -> None:
    scenario = json.loads(path.read_text())
    if any(step.get("restart") for step in scenario["steps"]):
        pytest.skip("a restart step has no SimulateAutomation equivalent")
    request = _corpus_request(scenario)
    reply = _stub(bounded).SimulateAutomation(request, timeout=30)
    assert reply == _as_before(request)
    assert len(reply.firings) == len(scenario["expect"]["firings"])


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGKILL"])
def test_the_workers_go_with_the_engine(tmp_path: Path, stop: str) -> None:
    engine = EngineProcess(
        tmp_path,
        env={
            "AUTOMATIONS_SIMULATION_MAX_FIRINGS": "100000000",
            "AUTOMATIONS_SIMULATION_MAX_STEPS": "1000000000",
            "AUTOMATIONS_SIMULATION_MAX_SPAN_SECONDS": "1e12",
            "AUTOMATIONS_SHUTDOWN_GRACE_SECONDS": "1",
        },
    )
    engine.start()
    try:
        thread, _ = _simulate_in_background(engine, 1e11, timeout=60)
        worker = _busy_worker(engine)
        if stop == "SIGTERM":
            assert engine.terminate() == 0
        else:
            engine.kill9()
        wait_until(lambda: not _alive(worker), timeout=10, what="the worker gone")
        thread.join()
    finally:
        engine.stop()
