"""Property-based fuzzing of a real engine: whatever a client sends, the engine answers with a
documented status, stays up, and keeps every event it accepted.

Bounded: a fixed number of examples per property, against one engine process per module.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from automations.v1 import (
    automation_service_pb2,
    automation_service_pb2_grpc,
    event_pb2,
    event_service_pb2,
    event_service_pb2_grpc,
)
from automations.wire import automations as wire_automations
from tests.integration.engine_process import EngineProcess

DOCUMENTED = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
"""What a client's mistake may be answered with (never UNKNOWN, INTERNAL or UNAVAILABLE)."""

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

TEXT = st.text(st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    ["", "*", "prefect.flow-run.*", "x" * 3000, "é\u0000\ud7ff", "a.b.c"]
)
JSON = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers(-(2**70), 2**70) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=25,
)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    running = EngineProcess(tmp_path_factory.mktemp("fuzz")).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def channel(engine: EngineProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(
        engine.grpc_addr, options=[("grpc.max_send_message_length", 64 << 20)]
    ) as opened:
        yield opened


def still_serving(engine: EngineProcess, channel: grpc.Channel) -> None:
    assert engine.proc is not None and engine.proc.poll() is None, engine.log()[-3000:]
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=30)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def documented(call: Any, request: Any) -> Any:
    """The reply, or None when the call failed with a documented status."""
    try:
        return call(request, timeout=60)
    except grpc.RpcError as error:
        assert error.code() in DOCUMENTED, (error.code(), error.details())
        return None


@st.composite
def events(draw: st.DrawFn, resource: str) -> event_pb2.Event:
    message = event_pb2.Event(id=draw(st.one_of(st.just(str(uuid.uuid4())), TEXT)))
    message.event = draw(TEXT)
    if draw(st.booleans()):
        message.occurred.seconds = draw(st.integers(-(2**63), 2**63 - 1))
        message.occurred.nanos = draw(st.integers(0, 999_999_999))
    message.resource.labels["prefect.resource.id"] = resource
    for key, value in draw(st.dictionaries(TEXT, TEXT, max_size=3)).items():
        message.resource.labels[key] = value
    for labels in draw(st.lists(st.dictionaries(TEXT, TEXT, max_size=3), max_size=2)):
        message.related.add().labels.update(labels)
    payload = draw(st.dictionaries(TEXT, JSON, max_size=3))
    try:
        message.payload.update(payload)
    except (ValueError, TypeError):
        pass  # values a Struct cannot hold never reach the wire
    if draw(st.booleans()):
        message.follows = draw(TEXT)
    return message


@FUZZ
@given(data=st.data())
def test_any_batch_of_events_is_answered_per_event_and_what_is_accepted_is_kept(
    engine: EngineProcess, channel: grpc.Channel, data: st.DataObject
) -> None:
    resource = f"fuzz.{uuid.uuid4()}"
    batch = data.draw(st.lists(events(resource), min_size=1, max_size=5))
    stub = event_service_pb2_grpc.EventServiceStub(channel)
    reply = documented(stub.PublishEvents, event_service_pb2.PublishEventsRequest(events=batch))
    still_serving(engine, channel)
    if reply is None:
        return
    accepted = {
        r.event_id for r in reply.results if r.status == event_service_pb2.EVENT_STATUS_ACCEPTED
    }
    listed = stub.ListEvents(
        event_service_pb2.ListEventsRequest(resource_ids=[resource], page_size=100), timeout=60
    )
    assert accepted <= {e.id for e in listed.events}


@FUZZ
@given(garbage=st.binary(max_size=200))
def test_bytes_that_are_no_message_are_refused_with_a_documented_status(
    engine: EngineProcess, channel: grpc.Channel, garbage: bytes
) -> None:
    for method in (
        "/automations.v1.EventService/PublishEvents",
        "/automations.v1.AutomationService/CreateAutomation",
        "/automations.v1.EventService/ListEvents",
    ):
        raw = channel.unary_unary(
            method, request_serializer=lambda data: data, response_deserializer=lambda data: data
        )
        documented(raw, garbage)
    still_serving(engine, channel)


TRIGGER_KEYS = [
    "type",
    "posture",
    "expect",
    "after",
    "for_each",
    "threshold",
    "within",
    "match",
    "match_related",
    "require",
    "triggers",
    "metric",
    "id",
]
ACTION = st.fixed_dictionaries(
    {"type": st.sampled_from(["do-nothing", "call-webhook", "emit-event", "acme.x", ""])},
    optional={"url": TEXT, "payload": TEXT, "event": TEXT, "body": TEXT},
)


@st.composite
def prefect_automations(draw: st.DrawFn) -> dict[str, Any]:
    trigger = draw(
        st.dictionaries(
            st.sampled_from(TRIGGER_KEYS),
            JSON | st.sampled_from(["event", "compound", "sequence", "Reactive", "Proactive"]),
            max_size=6,
        )
    )
    if draw(st.booleans()):
        trigger.update(
            {"type": "event", "posture": draw(st.sampled_from(["Reactive", "Proactive"]))}
        )
    automation: dict[str, Any] = {"name": draw(TEXT), "trigger": trigger}
    automation["actions"] = draw(st.lists(ACTION, max_size=2))
    for key in draw(st.sets(st.sampled_from(["enabled", "tags", "description", "owner_resource"]))):
        automation[key] = draw(JSON)
    return automation


@FUZZ
@given(automation=prefect_automations())
def test_any_automation_json_is_created_or_refused_with_a_documented_status(
    engine: EngineProcess, channel: grpc.Channel, automation: dict[str, Any]
) -> None:
    try:
        message = wire_automations.automation_proto_from_prefect_json(automation)
    except Exception:  # the client refused it before sending: send it as the proto anyway
        message = automation_service_pb2.CreateAutomationRequest().automation
        message.display_name = json.dumps(automation, default=str)[:200]
    stub = automation_service_pb2_grpc.AutomationServiceStub(channel)
    request = automation_service_pb2.CreateAutomationRequest(automation=message)
    created = documented(stub.CreateAutomation, request)
    still_serving(engine, channel)
    if created is not None:
        documented(
            stub.DeleteAutomation,
            automation_service_pb2.DeleteAutomationRequest(name=created.name),
        )


@FUZZ
@given(
    id_=TEXT,
    size=st.integers(-5, 5000),
    token=TEXT | st.binary(max_size=60).map(lambda b: b.decode("latin-1")),
)
def test_any_read_request_is_answered_with_a_documented_status(
    engine: EngineProcess, channel: grpc.Channel, id_: str, size: int, token: str
) -> None:
    automations = automation_service_pb2_grpc.AutomationServiceStub(channel)
    events_stub = event_service_pb2_grpc.EventServiceStub(channel)
    documented(
        automations.GetAutomation,
        automation_service_pb2.GetAutomationRequest(name=f"automations/{id_}"),
    )
    documented(
        automations.ListAutomations,
        automation_service_pb2.ListAutomationsRequest(page_size=size, page_token=token, filter=id_),
    )
    documented(
        events_stub.ListEvents,
        event_service_pb2.ListEventsRequest(page_size=size, page_token=token, event_names=[id_]),
    )
    still_serving(engine, channel)


def test_the_fuzzed_engine_logged_no_unexpected_error(engine: EngineProcess) -> None:
    assert "unexpected error" not in Path(engine.log_path).read_text(errors="replace")
