"""The standard services on the API port: health follows the engine's state, reflection lists ours."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.integration.engine_process import EngineProcess, running_engine


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[grpc.Channel]:
    """A channel to one engine process that the read-only tests here share."""
    with running_engine(tmp_path_factory.mktemp("engine")) as engine, engine.channel() as channel:
        yield channel


def test_health_is_serving_for_the_engine_and_each_service(serving: grpc.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(serving)
    for service in ("", "automations.v1.EventService", "automations.v1.AutomationService"):
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_and_describes_the_services(serving: grpc.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(serving)
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="automations.v1.EventService"
        ),
    ]
    replies = list(stub.ServerReflectionInfo(iter(requests)))
    names = {s.name for s in replies[0].list_services_response.service}
    assert {
        "automations.v1.EventService",
        "automations.v1.AutomationService",
        "grpc.health.v1.Health",
    } <= names
    assert replies[1].file_descriptor_response.file_descriptor_proto


def test_health_turns_not_serving_while_draining(engine: EngineProcess) -> None:
    with grpc.insecure_channel(engine.grpc_addr) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        watch = stub.Watch(health_pb2.HealthCheckRequest(service=""))
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        assert engine.proc is not None
        engine.proc.terminate()
        assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
    assert engine.proc.wait(30) == 0
