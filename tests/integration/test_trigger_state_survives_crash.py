"""Trigger state (buckets, deadlines) survives kill -9 of a real engine process: an open window
fires after the restart and a half-counted reactive bucket keeps its count.

One real crash is enough here; the timing of each case (a deadline that passed while the engine was
down, a window still open at the restart) is pinned down on a fake clock in
``tests/unit/pipeline/test_trigger_state_survives_restart.py``.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import grpc

from automations.v1 import automation_service_pb2 as pb
from automations.v1 import (
    automation_service_pb2_grpc,
    event_pb2,
    event_service_pb2,
    event_service_pb2_grpc,
)
from automations.wire import automations as wire_automations
from tests.integration.engine_process import EngineProcess
from tests.waiting import wait_until

WINDOW_LEFT = 3.0
"""Seconds of the window left when its event is published, so that the engine is killed well before
the deadline (the shortest proactive window is 10 s: the window opens in the past)."""


def proactive(name: str, within: int) -> dict[str, Any]:
    return {
        "name": name,
        "actions": [{"type": "do-nothing"}],
        "trigger": {
            "type": "event",
            "posture": "Proactive",
            "after": ["job.started"],
            "expect": ["job.done"],
            "for_each": ["prefect.resource.id"],
            "threshold": 1,
            "within": within,
        },
    }


def reactive(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "actions": [{"type": "do-nothing"}],
        "trigger": {
            "type": "event",
            "posture": "Reactive",
            "expect": ["job.failed"],
            "for_each": ["prefect.resource.id"],
            "threshold": 2,
            "within": 300,
        },
    }


def publish(addr: str, name: str, resource: str, *, occurred: float | None = None) -> None:
    ev = event_pb2.Event(id=str(uuid.uuid4()), event=name)
    ev.occurred.FromNanoseconds(int((time.time() if occurred is None else occurred) * 1e9))
    ev.resource.labels["prefect.resource.id"] = resource
    with grpc.insecure_channel(addr) as channel:
        reply = event_service_pb2_grpc.EventServiceStub(channel).PublishEvents(
            event_service_pb2.PublishEventsRequest(events=[ev])
        )
    assert reply.results[0].status == event_service_pb2.EVENT_STATUS_ACCEPTED


def firings(addr: str, name: str) -> list[Any]:
    with grpc.insecure_channel(addr) as channel:
        stub = automation_service_pb2_grpc.AutomationServiceStub(channel)
        return list(stub.ListFirings(pb.ListFiringsRequest(parent=name)).firings)


def seconds(timestamp: Any) -> float:
    return float(timestamp.seconds + timestamp.nanos / 1e9)


def test_an_open_window_and_a_half_counted_bucket_survive_kill_9(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path).start()
    try:
        with grpc.insecure_channel(engine.grpc_addr) as channel:
            stub = automation_service_pb2_grpc.AutomationServiceStub(channel)
            names = {
                key: stub.CreateAutomation(
                    pb.CreateAutomationRequest(
                        automation=wire_automations.automation_proto_from_prefect_json(data)
                    )
                ).name
                for key, data in (("window", proactive("window", 10)), ("reactive", reactive("r")))
            }
        deadline = time.time() + WINDOW_LEFT
        publish(engine.grpc_addr, "job.started", "job-1", occurred=deadline - 10)
        publish(engine.grpc_addr, "job.failed", "job-1")
        engine.kill9()  # acknowledged means committed: nothing to wait for
    finally:
        engine.stop()

    restarted = EngineProcess(tmp_path, database_url=engine.database_url)
    restarted.grpc_addr = engine.grpc_addr  # the same address, as an operator would restart it
    restart_time = time.time()
    restarted.start()
    try:
        publish(restarted.grpc_addr, "job.failed", "job-1")  # completes the half-counted bucket
        react = wait_until(
            lambda: firings(restarted.grpc_addr, names["reactive"]), what="the reactive firing"
        )
        window = wait_until(
            lambda: firings(restarted.grpc_addr, names["window"]), what="the window's firing"
        )
        assert len(firings(restarted.grpc_addr, names["window"])) == 1
    finally:
        restarted.stop()

    assert len(react) == 1, "the bucket counted before the crash kept its count"
    assert len(window) == 1
    fired_at = seconds(window[0].fire_time)
    assert fired_at >= restart_time, "fired by the restarted engine: the window was not lost"
    assert fired_at >= deadline - 0.01, "not before the window's end"
    assert dict(window[0].triggering_labels) == {"prefect.resource.id": "job-1"}
