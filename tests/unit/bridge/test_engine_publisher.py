from __future__ import annotations

import logging
from typing import Any

import grpc
import pytest

from automations.bridge.prefect_events import PublishError
from automations.cli import bridge_command
from automations.v1 import event_service_pb2
from tests.unit.bridge.fake_prefect import event


class Failed(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return "nope"

    def trailing_metadata(self) -> None:
        return None


class Stub:
    def __init__(self, error: grpc.RpcError | None = None) -> None:
        self.requests: list[event_service_pb2.PublishEventsRequest] = []
        self.error = error

    def PublishEvents(  # noqa: N802 - the gRPC method's name
        self, request: event_service_pb2.PublishEventsRequest, timeout: float
    ) -> Any:
        self.requests.append(request)
        if self.error:
            raise self.error
        return event_service_pb2.PublishEventsResponse(
            results=[
                event_service_pb2.EventResult(
                    index=i,
                    event_id=e.id,
                    status=event_service_pb2.EVENT_STATUS_ACCEPTED
                    if i == 0
                    else event_service_pb2.EVENT_STATUS_REJECTED,
                    reason="TOO_BIG" if i else "",
                )
                for i, e in enumerate(request.events)
            ]
        )


def test_prefect_events_are_sent_with_their_own_ids_and_rejections_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stub = Stub()
    first, second, nameless = event(0), event(1), event(2)
    del nameless["event"]
    with caplog.at_level(logging.WARNING):
        bridge_command.engine_publisher(stub)([first, second, nameless])
    (request,) = stub.requests
    assert [e.id for e in request.events] == [first["id"], second["id"]]
    assert request.events[0].event == "prefect.flow-run.Running"
    assert "TOO_BIG" in caplog.text and "MISSING_EVENT_NAME" in caplog.text


@pytest.mark.parametrize(
    ("code", "retryable"),
    [
        (grpc.StatusCode.UNAVAILABLE, True),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, True),
        (grpc.StatusCode.DEADLINE_EXCEEDED, True),
        (grpc.StatusCode.UNAUTHENTICATED, False),
        (grpc.StatusCode.INVALID_ARGUMENT, False),
    ],
)
def test_a_failed_call_is_retryable_only_for_a_busy_or_unreachable_engine(
    code: grpc.StatusCode, retryable: bool
) -> None:
    publish = bridge_command.engine_publisher(Stub(Failed(code)))
    with pytest.raises(PublishError) as raised:
        publish([event(0)])
    assert raised.value.retryable is retryable
    assert code.name in str(raised.value)
