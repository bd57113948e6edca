"""A small gRPC client of a running engine for integration tests, and a polling helper."""

from __future__ import annotations

import collections
import time
import uuid
from collections.abc import Callable
from typing import Any

import grpc

from automations.v1 import (
    action_invocation_pb2,
    automation_service_pb2,
    automation_service_pb2_grpc,
    event_pb2,
    event_service_pb2,
    event_service_pb2_grpc,
)
from automations.wire import automations as wire_automations
from automations.wire import structs
from tests.integration.engine_process import EngineProcess

State = action_invocation_pb2.ActionInvocation


class Client:
    """gRPC stubs of one engine."""

    def __init__(self, engine: EngineProcess) -> None:
        self.channel = grpc.insecure_channel(engine.grpc_addr)
        self.automations = automation_service_pb2_grpc.AutomationServiceStub(self.channel)
        self.events = event_service_pb2_grpc.EventServiceStub(self.channel)

    def create(self, data: dict[str, Any]) -> str:
        reply = self.automations.CreateAutomation(
            automation_service_pb2.CreateAutomationRequest(
                automation=wire_automations.automation_proto_from_prefect_json(data)
            )
        )
        return str(reply.uid)

    def publish(self, name: str, resource_id: str, n: int = 1) -> list[str]:
        ids = [str(uuid.uuid4()) for _ in range(n)]
        for start in range(0, n, 100):
            batch = [
                event_pb2.Event(
                    id=i,
                    event=name,
                    resource=event_pb2.Resource(labels={"prefect.resource.id": resource_id}),
                )
                for i in ids[start : start + 100]
            ]
            reply = self.events.PublishEvents(event_service_pb2.PublishEventsRequest(events=batch))
            assert all(
                r.status == event_service_pb2.EVENT_STATUS_ACCEPTED for r in reply.results
            ), reply
        return ids

    def invocations(self, automation_id: str = "") -> list[Any]:
        parent = f"automations/{automation_id}" if automation_id else ""
        found: list[Any] = []
        token = ""
        while True:
            reply = self.automations.ListActionInvocations(
                automation_service_pb2.ListActionInvocationsRequest(
                    parent=parent, page_size=1000, page_token=token
                )
            )
            found.extend(reply.action_invocations)
            token = reply.next_page_token
            if not token:
                return found

    def events_named(self, name: str) -> list[dict[str, Any]]:
        reply = self.events.ListEvents(
            event_service_pb2.ListEventsRequest(event_names=[name], page_size=1000)
        )
        return [
            {
                "id": e.id,
                "follows": e.follows,
                "resource": dict(e.resource.labels),
                "related": [dict(r.labels) for r in e.related],
                "payload": structs.struct_to_dict(e.payload),
            }
            for e in reply.events
        ]

    def close(self) -> None:
        self.channel.close()


def wait_for(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def states(invocations: list[Any]) -> collections.Counter[str]:
    return collections.Counter(State.State.Name(i.state) for i in invocations)
