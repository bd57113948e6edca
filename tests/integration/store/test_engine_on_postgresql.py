"""The whole engine on PostgreSQL: a real ``automations serve`` process with a postgresql:// URL
acknowledges durably (kill -9), fires, and reloads its trigger state."""

from __future__ import annotations

import uuid
from pathlib import Path

import grpc
import pytest

from automations.store import tables
from automations.store.database import Database
from automations.v1 import automation_service_pb2 as pb
from automations.v1 import (
    automation_service_pb2_grpc,
    event_pb2,
    event_service_pb2,
    event_service_pb2_grpc,
)
from automations.wire import automations as wire_automations
from tests.integration.engine_process import EngineProcess

pytestmark = pytest.mark.postgres


def event(resource: str) -> event_pb2.Event:
    ev = event_pb2.Event(id=str(uuid.uuid4()), event="order.failed")
    ev.occurred.GetCurrentTime()
    ev.resource.labels["prefect.resource.id"] = resource
    return ev


def all_event_ids(stub: event_service_pb2_grpc.EventServiceStub) -> set[str]:
    stored: set[str] = set()
    token = ""
    while True:
        page = stub.ListEvents(event_service_pb2.ListEventsRequest(page_size=200, page_token=token))
        stored |= {e.id for e in page.events}
        token = page.next_page_token
        if not token:
            return stored


def test_engine_on_postgresql_survives_kill_9(postgres_url: str, tmp_path: Path) -> None:
    database = Database(postgres_url)
    with database.write() as conn:  # start from empty tables
        for table in reversed(tables.metadata.sorted_tables):
            conn.execute(table.delete())
    database.dispose()
    url = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    engine = EngineProcess(tmp_path, database_url=url).start()
    try:
        with grpc.insecure_channel(engine.grpc_addr) as channel:
            automations = automation_service_pb2_grpc.AutomationServiceStub(channel)
            created = automations.CreateAutomation(
                pb.CreateAutomationRequest(
                    automation=wire_automations.automation_proto_from_prefect_json(
                        {
                            "name": "two per order",
                            "actions": [{"type": "do-nothing"}],
                            "trigger": {
                                "type": "event",
                                "expect": ["order.failed"],
                                "threshold": 2,
                                "within": 600,
                                "for_each": ["prefect.resource.id"],
                            },
                        }
                    )
                )
            )
            stub = event_service_pb2_grpc.EventServiceStub(channel)
            # 500 events over orders 0-249 (two each: every order fires once), plus one for
            # "pending", whose bucket is left at a count of 1 when the engine dies
            sent = [event(f"order-{i % 250}") for i in range(500)] + [event("pending")]
            reply = stub.PublishEvents(event_service_pb2.PublishEventsRequest(events=sent))
            acked = {
                r.event_id
                for r in reply.results
                if r.status == event_service_pb2.EVENT_STATUS_ACCEPTED
            }
            assert len(acked) == 501
        engine.kill9()
    finally:
        engine.stop()
    restarted = EngineProcess(tmp_path, database_url=url).start()
    try:
        with grpc.insecure_channel(restarted.grpc_addr) as channel:
            stub = event_service_pb2_grpc.EventServiceStub(channel)
            assert acked <= all_event_ids(stub)
            automations = automation_service_pb2_grpc.AutomationServiceStub(channel)
            request = pb.ListFiringsRequest(parent=created.name, page_size=1000)
            assert len(automations.ListFirings(request).firings) == 250
            stub.PublishEvents(event_service_pb2.PublishEventsRequest(events=[event("pending")]))
            after = automations.ListFirings(request).firings
            assert len(after) == 251, "the bucket counted before the crash kept its count"
            assert dict(after[0].triggering_labels) == {"prefect.resource.id": "pending"}
    finally:
        restarted.stop()
