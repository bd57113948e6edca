"""Ingestion: per-event answers, dedup, streams and backpressure against the API served in-process;
durability across kill -9 and the SIGTERM drain against a real engine process."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import grpc

from automations.v1 import event_pb2, event_service_pb2, event_service_pb2_grpc
from tests.integration import in_process_server
from tests.integration.engine_process import EngineProcess
from tests.integration.in_process_server import InProcessServer

ACCEPTED = event_service_pb2.EVENT_STATUS_ACCEPTED
DUPLICATE = event_service_pb2.EVENT_STATUS_DUPLICATE
REJECTED = event_service_pb2.EVENT_STATUS_REJECTED


def make_event(
    name: str = "flow-run.Completed", resource: str = "res.1", **kw: object
) -> event_pb2.Event:
    ev = event_pb2.Event(id=str(kw.pop("id", uuid.uuid4())), event=name)
    ev.occurred.GetCurrentTime()
    if resource:
        ev.resource.labels["prefect.resource.id"] = resource
    for labels in kw.pop("related", []):  # type: ignore[attr-defined]
        ev.related.add().labels.update(labels)
    return ev


async def test_a_bad_event_is_rejected_with_its_field_and_the_good_ones_are_kept(
    server: InProcessServer,
) -> None:
    good1, good2 = make_event(), make_event()
    no_resource = make_event(resource="")
    no_role = make_event(related=[{"prefect.resource.id": "prefect.flow.x"}])
    reply = await server.events.PublishEvents(
        event_service_pb2.PublishEventsRequest(events=[good1, no_resource, good2, no_role])
    )
    statuses = [r.status for r in reply.results]
    assert statuses == [ACCEPTED, REJECTED, ACCEPTED, REJECTED]
    assert reply.results[1].reason == "MISSING_RESOURCE_ID"
    assert reply.results[1].field == "resource"
    assert reply.results[3].reason == "MISSING_RESOURCE_ROLE"
    assert reply.results[3].field == "related[0]"
    listed = await server.events.ListEvents(event_service_pb2.ListEventsRequest(page_size=100))
    assert {e.id for e in listed.events} == {good1.id, good2.id}


async def test_a_key_too_long_to_index_is_rejected_alone(server: InProcessServer) -> None:
    # before, it failed the whole group commit: every batch committed with it got UNAVAILABLE
    good1, good2 = make_event(), make_event()
    long_resource = make_event(resource="r" * 2001)
    reply = await server.events.PublishEvents(
        event_service_pb2.PublishEventsRequest(events=[good1, long_resource, good2])
    )
    assert [r.status for r in reply.results] == [ACCEPTED, REJECTED, ACCEPTED]
    assert (reply.results[1].reason, reply.results[1].field) == ("KEY_TOO_LONG", "resource")


async def test_a_redelivered_event_is_acknowledged_as_duplicate(server: InProcessServer) -> None:
    ev = make_event()
    publish = server.events.PublishEvents
    first = await publish(event_service_pb2.PublishEventsRequest(events=[ev]))
    again = await publish(event_service_pb2.PublishEventsRequest(events=[ev, ev]))
    assert [r.status for r in first.results] == [ACCEPTED]
    assert [r.status for r in again.results] == [DUPLICATE, DUPLICATE]
    listed = await server.events.ListEvents(event_service_pb2.ListEventsRequest(page_size=100))
    assert [e.id for e in listed.events] == [ev.id]


async def test_stream_answers_each_request_in_order(server: InProcessServer) -> None:
    requests = [
        event_service_pb2.StreamEventsRequest(sequence=i, events=[make_event() for _ in range(50)])
        for i in range(20)
    ]
    responses = [r async for r in server.events.StreamEvents(iter(requests))]
    assert [r.sequence for r in responses] == list(range(20))
    assert all(
        all(x.status == ACCEPTED for x in r.result.results) and len(r.result.results) == 50
        for r in responses
    )


async def test_list_events_filters_by_name_resource_and_time_and_pages(
    server: InProcessServer,
) -> None:
    evs = [make_event("a.started", "r1"), make_event("a.done", "r1"), make_event("b.started", "r2")]
    list_events = server.events.ListEvents
    await server.events.PublishEvents(event_service_pb2.PublishEventsRequest(events=evs))
    by_name = await list_events(event_service_pb2.ListEventsRequest(event_names=["*.started"]))
    assert {e.id for e in by_name.events} == {evs[0].id, evs[2].id}
    by_resource = await list_events(event_service_pb2.ListEventsRequest(resource_ids=["r1"]))
    assert {e.id for e in by_resource.events} == {evs[0].id, evs[1].id}
    seen: list[str] = []
    token = ""
    while True:
        page = await list_events(event_service_pb2.ListEventsRequest(page_size=2, page_token=token))
        seen += [e.id for e in page.events]
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == sorted(e.id for e in evs)
    future = event_service_pb2.ListEventsRequest()
    future.start_time.FromSeconds(int(time.time()) + 3600)
    assert list((await list_events(future)).events) == []


def test_acknowledged_events_survive_kill_9(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path).start()
    acked: list[str] = []
    try:
        with grpc.insecure_channel(engine.grpc_addr) as channel:
            stub = event_service_pb2_grpc.EventServiceStub(channel)
            requests = [
                event_service_pb2.StreamEventsRequest(
                    sequence=i, events=[make_event() for _ in range(200)]
                )
                for i in range(30)
            ]
            for request, response in zip(requests, stub.StreamEvents(iter(requests)), strict=False):
                assert response.sequence == request.sequence
                acked += [r.event_id for r in response.result.results if r.status == ACCEPTED]
                if len(acked) >= 3000:
                    engine.kill9()  # mid-stream, with later requests still in flight
                    break
    except grpc.RpcError:
        pass
    finally:
        engine.stop()
    assert len(acked) >= 3000
    restarted = EngineProcess(tmp_path, database_url=engine.database_url).start()
    try:
        with grpc.insecure_channel(restarted.grpc_addr) as channel:
            stub = event_service_pb2_grpc.EventServiceStub(channel)
            stored: set[str] = set()
            token = ""
            while True:
                page = stub.ListEvents(
                    event_service_pb2.ListEventsRequest(page_size=1000, page_token=token)
                )
                stored.update(e.id for e in page.events)
                token = page.next_page_token
                if not token:
                    break
        assert set(acked) <= stored
    finally:
        restarted.stop()


def test_sigterm_drains_and_exits_zero(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path).start()
    with grpc.insecure_channel(engine.grpc_addr) as channel:
        stub = event_service_pb2_grpc.EventServiceStub(channel)
        reply = stub.PublishEvents(event_service_pb2.PublishEventsRequest(events=[make_event()]))
        assert reply.results[0].status == ACCEPTED
    assert engine.terminate() == 0


async def test_backpressure_answers_resource_exhausted_instead_of_queueing(
    tmp_path: Path,
) -> None:
    requests = [
        event_service_pb2.StreamEventsRequest(sequence=i, events=[make_event() for _ in range(900)])
        for i in range(40)
    ]
    async with in_process_server.serving(tmp_path, max_pending_events=1000) as server:
        responses = [r async for r in server.events.StreamEvents(iter(requests))]
    errors = [r for r in responses if r.HasField("error")]
    assert errors, "a saturated engine must refuse batches"
    assert {r.error.code for r in errors} == {grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]}
    assert len(responses) == 40
