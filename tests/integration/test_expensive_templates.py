"""A template that would run for minutes fails its invocation, and the engine keeps answering."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

import automations
from tests.integration.engine_process import EngineProcess
from tests.waiting import wait_until

HEAVY = "{% for a in event.payload.s %}{% for b in event.payload.s %}{% endfor %}{% endfor %}x"
"""900 million loop iterations over a 30,000-character payload string."""


def test_a_template_over_its_cpu_budget_fails_while_health_answers_promptly(
    tmp_path: Path,
) -> None:
    engine = EngineProcess(tmp_path).start()
    latencies: list[float] = []
    stop = threading.Event()

    def check_health() -> None:
        with grpc.insecure_channel(engine.grpc_addr) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while not stop.is_set():
                started = time.monotonic()
                stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
                latencies.append(time.monotonic() - started)
                time.sleep(0.02)

    try:
        with automations.Client(engine.grpc_addr) as client:
            created = client.create_automation(
                {
                    "name": "expensive",
                    "trigger": {"type": "event", "expect": ["go"], "threshold": 1},
                    "actions": [
                        {
                            "type": "emit-event",
                            "event": HEAVY,
                            "resource": {"prefect.resource.id": "r.2"},
                        }
                    ],
                }
            )
            watcher = threading.Thread(target=check_health)
            watcher.start()
            client.publish(
                [
                    {
                        "id": str(uuid.uuid4()),
                        "event": "go",
                        "resource": {"prefect.resource.id": "r.1"},
                        "payload": {"s": "x" * 30_000},
                    }
                ],
                raise_on_rejected=True,
            )

            done = wait_until(
                lambda: client.list_invocations(created["id"], statuses=["failed"]),
                timeout=60,
                what="the invocation to fail",
            )
            stop.set()
            watcher.join(30)
        assert "CPU time" in str(done[0].get("last_error"))
        assert latencies and max(latencies) < 1.0, max(latencies)
    finally:
        stop.set()
        engine.stop()
