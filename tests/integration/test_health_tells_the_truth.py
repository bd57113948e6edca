"""Health says NOT_SERVING while commits fail, though the database still answers reads."""

from __future__ import annotations

import resource
import uuid
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

import automations
import automations.client
from tests.integration.engine_process import EngineProcess
from tests.waiting import wait_until


def test_health_is_not_serving_while_writes_fail_and_serving_once_they_succeed(
    tmp_path: Path,
) -> None:
    engine = EngineProcess(tmp_path, env={"AUTOMATIONS_DATABASE_CHECK_SECONDS": "0.5"}).start()
    assert engine.proc is not None
    pid = engine.proc.pid
    with (
        grpc.insecure_channel(engine.grpc_addr) as channel,
        automations.Client(engine.grpc_addr) as client,
    ):
        health = health_pb2_grpc.HealthStub(channel)

        def status() -> str:
            reply = health.Check(health_pb2.HealthCheckRequest(), timeout=10)
            return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

        def publish() -> str:
            try:
                event = {
                    "id": str(uuid.uuid4()),
                    "event": "x",
                    "resource": {"prefect.resource.id": "r"},
                }
                return client.publish([event])[0].status
            except automations.client.CallError as exc:
                return exc.code.name

        try:
            assert (status(), publish()) == ("SERVING", "accepted")
            # like a full disk: every write of the engine's files fails (reads still work)
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))
            assert publish() == "UNAVAILABLE"
            wait_until(lambda: status() == "NOT_SERVING", timeout=30, what="NOT_SERVING")
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
            wait_until(lambda: status() == "SERVING", timeout=30, what="SERVING again")
            assert publish() == "accepted"
        finally:
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
            engine.stop()
