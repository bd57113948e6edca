"""Trigger state (buckets, deadlines) survives kill -9: windows fire at their deadlines after restart,
a deadline that passed while the engine was down fires once right after start, and a half-counted
reactive bucket keeps its count."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest

from automations.v1 import automation_service_pb2 as pb
from automations.v1 import (
    automation_service_pb2_grpc,
    event_pb2,
    event_service_pb2,
    event_service_pb2_grpc,
)
from automations.wire import automations as wire_automations
from tests.integration.engine_process import EngineProcess

pytestmark = pytest.mark.integration


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


def publish(addr: str, name: str, resource: str) -> float:
    ev = event_pb2.Event(id=str(uuid.uuid4()), event=name)
    ev.occurred.GetCurrentTime()
    ev.resource.labels["prefect.resource.id"] = resource
    with grpc.insecure_channel(addr) as channel:
        reply = event_service_pb2_grpc.EventServiceStub(channel).PublishEvents(
            event_service_pb2.PublishEventsRequest(events=[ev])
        )
    assert reply.results[0].status == event_service_pb2.EVENT_STATUS_ACCEPTED
    return ev.occurred.seconds + ev.occurred.nanos / 1e9


def firings(addr: str, name: str) -> list[Any]:
    with grpc.insecure_channel(addr) as channel:
        stub = automation_service_pb2_grpc.AutomationServiceStub(channel)
        return list(stub.ListFirings(pb.ListFiringsRequest(parent=name)).firings)


def test_windows_and_buckets_survive_kill_9(tmp_path: Path) -> None:
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
                for key, data in (
                    ("short", proactive("short", 10)),
                    ("long", proactive("long", 20)),
                    ("reactive", reactive("reactive")),
                )
            }
        started = publish(engine.grpc_addr, "job.started", "job-1")
        publish(engine.grpc_addr, "job.failed", "job-1")
        time.sleep(0.5)
        engine.kill9()
    finally:
        engine.stop()

    time.sleep(
        max(0.0, started + 11 - time.time())
    )  # the short window's deadline passes while down
    restarted = EngineProcess(tmp_path, database_url=engine.database_url)
    restarted.grpc_addr = engine.grpc_addr
    restart_time = time.time()
    restarted.start()
    try:
        publish(restarted.grpc_addr, "job.failed", "job-1")  # completes the half-counted bucket
        time.sleep(max(0.0, started + 21.5 - time.time()))
        short = firings(restarted.grpc_addr, names["short"])
        long = firings(restarted.grpc_addr, names["long"])
        react = firings(restarted.grpc_addr, names["reactive"])
        time.sleep(1.0)
        assert len(firings(restarted.grpc_addr, names["short"])) == 1, "overdue deadline fired once"
    finally:
        restarted.stop()

    assert len(short) == 1
    short_at = short[0].fire_time.seconds + short[0].fire_time.nanos / 1e9
    assert restart_time <= short_at <= restart_time + 10
    assert len(long) == 1
    long_at = long[0].fire_time.seconds + long[0].fire_time.nanos / 1e9
    assert abs(long_at - (started + 20)) < 1.0, "the open window fires at its own deadline"
    assert dict(long[0].triggering_labels) == {"prefect.resource.id": "job-1"}
    assert len(react) == 1, "the bucket counted before the crash kept its count"
