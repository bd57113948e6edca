"""``automations.Client`` against a real engine, and its retries against a scripted fake."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

import automations
from automations import client as client_module
from automations.domain import prefect_json
from automations.v1 import event_service_pb2, event_service_pb2_grpc
from tests.integration.clients.quickstart_checks import CUSTOMERS, EVENTS, THRESHOLD
from tests.integration.engine_process import EngineProcess

pytestmark = pytest.mark.integration

BUSY_CUSTOMER = {
    "name": "busy customer",
    "description": "100 orders from one customer within a minute",
    "tags": ["quickstart"],
    "trigger": {
        "type": "event",
        "expect": ["acme.order.placed"],
        "for_each": ["prefect.resource.id"],
        "posture": "Reactive",
        "threshold": THRESHOLD,
        "within": 60,
    },
    "actions": [{"type": "do-nothing"}],
}


def orders(start: float) -> list[dict[str, Any]]:
    return [
        {
            "id": str(uuid.uuid4()),
            "event": "acme.order.placed",
            "occurred": dt.datetime.fromtimestamp(start + i / 1000, dt.UTC).isoformat(),
            "resource": {"prefect.resource.id": f"acme.customer.{i % CUSTOMERS}"},
            "payload": {"order": i},
        }
        for i in range(EVENTS)
    ]


def wait_for_firings(client: automations.Client, automation_id: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 60
    while True:
        firings = client.list_firings(automation_id)
        if len(firings) >= CUSTOMERS or time.monotonic() > deadline:
            return firings
        time.sleep(0.2)


def test_python_client_publishes_10000_events_and_lists_one_firing_per_customer(
    engine: EngineProcess,
) -> None:
    with automations.Client(engine.grpc_addr) as client:
        created = client.create_automation(BUSY_CUSTOMER)
        assert created["name"] == "busy customer" and created["id"]
        events = orders(time.time() - EVENTS / 1000)
        results = client.publish(events, raise_on_rejected=True)
        assert [r.status for r in results] == ["accepted"] * EVENTS
        assert [r.event_id for r in results] == [e["id"] for e in events]
        firings = wait_for_firings(client, created["id"])
        # resending is safe: every event is a duplicate and nothing fires again
        again = client.publish(events[:1000])
        assert {r.status for r in again} == {"duplicate"}
        time.sleep(0.5)
        assert len(client.list_firings(created["id"])) == CUSTOMERS
        assert len(client.list_firings(created["id"], limit=7)) == 7
    assert len(firings) == CUSTOMERS
    labels = sorted(f["triggering_labels"]["prefect.resource.id"] for f in firings)
    assert labels == sorted(f"acme.customer.{c}" for c in range(CUSTOMERS))
    for firing in firings:
        customer = int(firing["triggering_labels"]["prefect.resource.id"].rsplit(".", 1)[1])
        assert firing["automation_id"] == created["id"]
        assert firing["trigger_type"] == "event" and firing["posture"] == "Reactive"
        assert firing["triggering_event"]["payload"] == {
            "order": (THRESHOLD - 1) * CUSTOMERS + customer
        }
        assert firing["triggering_event_id"] == firing["triggering_event"]["id"]


def test_python_client_reports_rejected_events_by_position(engine: EngineProcess) -> None:
    good = {"event": "acme.order.placed", "resource": {"prefect.resource.id": "acme.customer.1"}}
    events = [good, {"event": "acme.order.placed"}, good, {"resource": {"a": "b"}}, {**good}]
    with automations.Client(engine.grpc_addr, batch_size=2) as client:
        results = client.publish(events)
        assert [r.index for r in results] == [0, 1, 2, 3, 4]
        assert [r.status for r in results] == [
            "accepted",
            "rejected",
            "accepted",
            "rejected",
            "accepted",
        ]
        assert results[1].reason == "MISSING_RESOURCE_ID" and results[1].field == "resource"
        assert results[3].reason == "MISSING_EVENT_NAME"
        assert all(r.event_id for r in results)  # generated ids are reported too
        with pytest.raises(automations.client.EventsRejected) as raised:
            client.publish(events[:2], raise_on_rejected=True)
        assert [r.index for r in raised.value.rejected] == [1]
        assert "MISSING_RESOURCE_ID" in str(raised.value)


def test_python_client_manages_automations(engine: EngineProcess) -> None:
    with automations.Client(engine.grpc_addr) as client:
        first = client.create_automation(BUSY_CUSTOMER)
        second = client.create_automation(
            {**BUSY_CUSTOMER, "name": "second"}, automation_id="second"
        )
        assert second["id"] == "second"
        assert [a["id"] for a in client.list_automations()] == [first["id"], "second"]
        assert [a["id"] for a in client.list_automations(limit=1)] == [first["id"]]
        assert client.get_automation("second")["name"] == "second"
        updated = client.update_automation("second", {**BUSY_CUSTOMER, "name": "renamed"})
        assert updated["name"] == "renamed" and updated["trigger"]["threshold"] == THRESHOLD
        client.delete_automation(first["id"])
        with pytest.raises(automations.client.CallError) as raised:
            client.get_automation(first["id"])
        assert raised.value.code == grpc.StatusCode.NOT_FOUND
        with pytest.raises(automations.client.CallError) as raised:
            client.create_automation(
                {**BUSY_CUSTOMER, "trigger": {**BUSY_CUSTOMER["trigger"], "within": -1}}
            )
        assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert raised.value.field == "trigger.within"
        with pytest.raises(automations.client.CallError) as raised:
            client.create_automation(BUSY_CUSTOMER, automation_id="second")
        assert raised.value.code == grpc.StatusCode.ALREADY_EXISTS


def test_python_client_reads_what_automations_did_and_drives_them(engine: EngineProcess) -> None:
    flaky = {
        "name": "flaky job",
        "tags": ["ops"],
        "trigger": {"type": "event", "expect": ["job.failed"], "threshold": 2, "within": 60},
        "actions": [{"type": "do-nothing"}],
    }
    with automations.Client(engine.grpc_addr) as client:
        simulated = client.simulate(
            flaky,
            [
                {"at": 0, "event": {"id": "e1", "event": "job.failed", "resource": RESOURCE}},
                {"at": 5, "event": {"id": "e2", "event": "job.failed", "resource": RESOURCE}},
                {"at": 90, "event": {"id": "e3", "event": "job.failed", "resource": RESOURCE}},
            ],
            until=120,
        )
        assert [(f["triggering_event_id"], f["triggered"]) for f in simulated] == [
            ("e2", "1970-01-01T00:00:05Z")
        ]
        created = client.create_automation(flaky, automation_id="flaky-job")
        client.create_automation({**BUSY_CUSTOMER, "name": "other"})
        assert [a["id"] for a in client.list_automations(filter='tags:"ops"')] == ["flaky-job"]
        assert client.disable_automation("flaky-job")["enabled"] is False
        assert client.list_automations(filter="enabled = false") == [
            client.get_automation("flaky-job")
        ]
        assert client.enable_automation("flaky-job")["enabled"] is True

        start = float(int(time.time()) - 10)
        client.publish(
            [
                {"event": "job.failed", "resource": RESOURCE, "occurred": iso(start + i)}
                for i in range(2)
            ]
        )
        (firing,) = client.list_firings(created["id"])
        assert client.get_firing(firing["id"]) == firing
        assert client.get_firing(firing["id"], automation_id="flaky-job") == firing
        (invocation,) = client.list_invocations("flaky-job")
        assert (invocation["firing_id"], invocation["status"]) == (firing["id"], "succeeded")
        assert client.get_invocation(invocation["id"], automation_id="flaky-job") == invocation
        assert client.list_invocations(statuses=["failed", "dead_letter"]) == []
        assert client.list_invocations(statuses=["succeeded"]) == [invocation]

        published = client.list_events(names=["job.*"], resource_ids=[RESOURCE_ID])
        assert [e["occurred"] for e in published] == [
            prefect_json.iso_time(start),
            prefect_json.iso_time(start + 1),
        ]
        assert client.list_events(names=["job.failed"], newest_first=True) == published[::-1]
        assert client.list_events(names=["job.failed"], start=start + 0.5) == published[1:]
        assert client.list_events(names=["job.failed"], end=start + 0.5, limit=5) == published[:1]

        refusals = [
            (lambda: client.redrive(invocation["id"]), grpc.StatusCode.FAILED_PRECONDITION, ""),
            (lambda: client.get_firing(str(uuid.uuid4())), grpc.StatusCode.NOT_FOUND, ""),
            (
                lambda: client.get_invocation(invocation["id"], automation_id="other-one"),
                grpc.StatusCode.NOT_FOUND,
                "",
            ),
            (
                lambda: client.list_invocations(statuses=["done"]),
                grpc.StatusCode.INVALID_ARGUMENT,
                "statuses[0]",
            ),
            (
                lambda: client.list_automations(filter="tags = ops"),
                grpc.StatusCode.INVALID_ARGUMENT,
                "filter",
            ),
            (
                lambda: client.create_automation(flaky, automation_id="Flaky"),
                grpc.StatusCode.INVALID_ARGUMENT,
                "automation_id",
            ),
        ]
        for call, code, field in refusals:
            with pytest.raises(automations.client.CallError) as raised:
                call()
            assert (raised.value.code, raised.value.field) == (code, field)


RESOURCE_ID = "acme.job.nightly"
RESOURCE = {"prefect.resource.id": RESOURCE_ID}


def iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat()


# ------------------------------------------------------------------ retries, with a fake engine


class ScriptedEvents(event_service_pb2_grpc.EventServiceServicer):
    """Refuses the first calls with the given codes, then accepts every event."""

    def __init__(self, refusals: list[grpc.StatusCode]) -> None:
        self.refusals = list(refusals)
        self.calls = 0

    def PublishEvents(  # noqa: N802 - the gRPC method name
        self, request: event_service_pb2.PublishEventsRequest, context: grpc.ServicerContext
    ) -> event_service_pb2.PublishEventsResponse:
        self.calls += 1
        if self.refusals:
            context.abort(self.refusals.pop(0), "not now")
        return event_service_pb2.PublishEventsResponse(
            results=[
                event_service_pb2.EventResult(
                    index=i, event_id=e.id, status=event_service_pb2.EVENT_STATUS_ACCEPTED
                )
                for i, e in enumerate(request.events)
            ]
        )


@pytest.fixture
def fake_engine() -> Iterator[tuple[str, ScriptedEvents]]:
    servicer = ScriptedEvents([])
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    event_service_pb2_grpc.add_EventServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        server.stop(None)


EVENT = {"event": "x", "resource": {"prefect.resource.id": "r"}}


def test_publish_retries_resource_exhausted_and_unavailable(
    fake_engine: tuple[str, ScriptedEvents],
) -> None:
    target, servicer = fake_engine
    servicer.refusals = [grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE]
    with automations.Client(target) as client:
        results = client.publish([EVENT, EVENT])
    assert [r.status for r in results] == ["accepted", "accepted"]
    assert servicer.calls == 3


def test_publish_gives_up_after_max_attempts_and_on_other_codes(
    fake_engine: tuple[str, ScriptedEvents],
) -> None:
    target, servicer = fake_engine
    servicer.refusals = [grpc.StatusCode.RESOURCE_EXHAUSTED] * 3
    with automations.Client(target, max_attempts=3) as client:
        with pytest.raises(client_module.CallError) as raised:
            client.publish([EVENT])
        assert raised.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert servicer.calls == 3
        servicer.refusals = [grpc.StatusCode.INVALID_ARGUMENT]
        with pytest.raises(client_module.CallError) as raised:
            client.publish([EVENT])
        assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert servicer.calls == 4
