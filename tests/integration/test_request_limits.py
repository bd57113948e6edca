"""Request fields as the protos document them: a batch needs events, pages hold at most 1000."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from automations.v1 import event_pb2, event_service_pb2
from tests.integration.in_process_server import InProcessServer


async def test_a_batch_without_events_is_refused_naming_events(server: InProcessServer) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await server.events.PublishEvents(event_service_pb2.PublishEventsRequest())
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(info.value)  # type: ignore[arg-type]
    assert status is not None
    bad = error_details_pb2.BadRequest()
    assert any(detail.Unpack(bad) for detail in status.details)
    assert [(v.field, v.reason) for v in bad.field_violations] == [("events", "NO_EVENTS")]

    good = event_pb2.Event(id=str(uuid.uuid4()), event="x")
    good.resource.labels["prefect.resource.id"] = "r"
    requests = [
        event_service_pb2.StreamEventsRequest(sequence=1),
        event_service_pb2.StreamEventsRequest(sequence=2, events=[good]),
    ]
    empty, accepted = [r async for r in server.events.StreamEvents(iter(requests))]
    assert (empty.sequence, empty.WhichOneof("outcome")) == (1, "error")
    assert empty.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert (accepted.sequence, accepted.WhichOneof("outcome")) == (2, "result")
    assert [r.status for r in accepted.result.results] == [event_service_pb2.EVENT_STATUS_ACCEPTED]


async def test_a_page_size_above_1000_is_treated_as_1000(server: InProcessServer) -> None:
    events = []
    for _ in range(1001):
        event = event_pb2.Event(id=str(uuid.uuid4()), event="bulk.item")
        event.resource.labels["prefect.resource.id"] = "bulk"
        events.append(event)
    reply = await server.events.PublishEvents(event_service_pb2.PublishEventsRequest(events=events))
    assert all(r.status == event_service_pb2.EVENT_STATUS_ACCEPTED for r in reply.results)
    page = await server.events.ListEvents(
        event_service_pb2.ListEventsRequest(event_names=["bulk.item"], page_size=5000)
    )
    assert len(page.events) == 1000 and page.next_page_token
    rest = await server.events.ListEvents(
        event_service_pb2.ListEventsRequest(
            event_names=["bulk.item"], page_size=5000, page_token=page.next_page_token
        )
    )
    assert len(rest.events) == 1 and not rest.next_page_token
