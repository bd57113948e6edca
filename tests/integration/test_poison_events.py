"""Events the engine could not evaluate or store are refused alone, and never cost a bystander."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import automations
from automations.v1 import event_pb2
from tests.integration.engine_process import EngineProcess

WATCHER = {
    "name": "watches both streams",
    "trigger": {
        "type": "event",
        "posture": "Reactive",
        "expect": ["bystander.tick", "poison"],
        "threshold": 1,
    },
    "actions": [{"type": "do-nothing"}],
}
"""Matches the poison events too: evaluating them is what used to fail the whole group commit."""
POISON_SECONDS = [253402300800, 2**62, -(2**62), 2**63 - 1]
"""Year 10000, +-2^62 s and int64's maximum: no datetime, no strftime, no ISO form has them."""


def poison(seconds: int) -> event_pb2.Event:
    message = event_pb2.Event(id=str(uuid.uuid4()), event="poison")
    message.resource.labels["prefect.resource.id"] = "r.1"
    message.occurred.seconds = seconds
    return message


def event(**fields: object) -> dict[str, object]:
    return {
        "id": str(uuid.uuid4()),
        "event": "bystander.tick",
        "resource": {"prefect.resource.id": "r.1"},
        **fields,
    }


def test_out_of_range_times_are_rejected_alone_while_a_bystander_streams(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path).start()
    stop = threading.Event()
    bystander: list[str] = []
    failures: list[BaseException] = []

    def stream() -> None:
        try:
            with automations.Client(engine.grpc_addr) as client:
                while not stop.is_set():
                    results = client.publish([event() for _ in range(100)])
                    bystander.extend(r.status for r in results)
        except BaseException as exc:  # reported below
            failures.append(exc)

    try:
        with automations.Client(engine.grpc_addr) as client:
            client.create_automation(WATCHER)
            thread = threading.Thread(target=stream)
            thread.start()
            rejected = []
            for _ in range(10):
                for seconds in POISON_SECONDS:
                    (result,) = client.publish([poison(seconds)])
                    rejected.append((result.status, result.field, result.reason))
                time.sleep(0.05)
            stop.set()
            thread.join(60)
        assert not failures, failures
        assert set(rejected) == {("rejected", "occurred", "OCCURRED_OUT_OF_RANGE")}
        assert len(bystander) > 0 and set(bystander) == {"accepted"}
        assert "reloading engine state" not in engine.log()
    finally:
        stop.set()
        engine.stop()
