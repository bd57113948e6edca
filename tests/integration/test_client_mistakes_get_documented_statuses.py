"""A client's mistakes are answered with documented statuses, never UNKNOWN, INTERNAL or a hang."""

from __future__ import annotations

import socket
import time
import uuid

import grpc
import pytest

from automations.v1 import event_service_pb2, event_service_pb2_grpc
from tests.integration.engine_process import EngineProcess
from tests.waiting import wait_until


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    running = EngineProcess(tmp_path_factory.mktemp("mistakes")).start()
    try:
        yield running
    finally:
        running.stop()


def deep_payload_request(depth: int) -> event_service_pb2.PublishEventsRequest:
    """Built in place: a copy of the event would be parsed, and fail, on the client's side."""
    request = event_service_pb2.PublishEventsRequest()
    message = request.events.add(id=str(uuid.uuid4()), event="deep")
    message.resource.labels["prefect.resource.id"] = "r"
    inner = message.payload
    for _ in range(depth):
        inner = inner.fields["a"].struct_value
    inner.fields["leaf"].string_value = "x"
    return request


def test_bytes_that_are_no_message_are_an_invalid_argument_without_a_logged_traceback(
    engine: EngineProcess,
) -> None:
    with grpc.insecure_channel(engine.grpc_addr) as channel:
        garbage = channel.unary_unary(
            "/automations.v1.EventService/PublishEvents",
            request_serializer=lambda data: data,
            response_deserializer=lambda data: data,
        )
        for _ in range(20):
            with pytest.raises(grpc.RpcError) as raised:
                garbage(b"\xff\xff\xff\xff not a protobuf", timeout=10)
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "not a valid protobuf message" in str(raised.value.details())
    assert "Traceback" not in engine.log()


def test_a_payload_nested_beyond_what_protobuf_parses_is_an_invalid_argument(
    engine: EngineProcess,
) -> None:
    with grpc.insecure_channel(engine.grpc_addr) as channel:
        stub = event_service_pb2_grpc.EventServiceStub(channel)
        ok = stub.PublishEvents(deep_payload_request(20), timeout=10)
        assert ok.results[0].status == event_service_pb2.EVENT_STATUS_ACCEPTED
        with pytest.raises(grpc.RpcError) as raised:
            stub.PublishEvents(deep_payload_request(60), timeout=10)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "about 32 levels" in str(raised.value.details())


def test_too_many_name_patterns_are_an_invalid_argument_not_an_internal_error(
    engine: EngineProcess,
) -> None:
    with grpc.insecure_channel(engine.grpc_addr) as channel:
        stub = event_service_pb2_grpc.EventServiceStub(channel)
        names = [f"prefect.flow-run.{i}*" for i in range(10_000)]
        with pytest.raises(grpc.RpcError) as raised:
            stub.ListEvents(event_service_pb2.ListEventsRequest(event_names=names), timeout=10)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "at most 100" in str(raised.value.details())
        page = stub.ListEvents(
            event_service_pb2.ListEventsRequest(event_names=names[:100]), timeout=10
        )
        assert list(page.events) == []


def test_connections_that_never_start_http2_are_closed(engine: EngineProcess) -> None:
    host, port = engine.grpc_addr.rsplit(":", 1)
    idle = [socket.create_connection((host, int(port))) for _ in range(20)]
    started = time.monotonic()
    try:
        for sock in idle:
            sock.settimeout(60)
            while sock.recv(4096):  # the server's own HTTP/2 preface, then its close
                pass
        assert time.monotonic() - started < 30
        with grpc.insecure_channel(engine.grpc_addr) as channel:  # still serving
            stub = event_service_pb2_grpc.EventServiceStub(channel)
            wait_until(lambda: stub.ListEvents(event_service_pb2.ListEventsRequest(), timeout=5))
    finally:
        for sock in idle:
            sock.close()
