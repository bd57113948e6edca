"""Refused requests, however large, leave no memory behind; oversized ones are refused early."""

from __future__ import annotations

import uuid
from pathlib import Path

import grpc
import pytest

from automations.v1 import (
    automation_service_pb2,
    automation_service_pb2_grpc,
    event_pb2,
    event_service_pb2,
    event_service_pb2_grpc,
)
from tests.integration.engine_process import EngineProcess
from tests.waiting import wait_until

TOKEN = "s3cret"
BIG = "x" * (12 << 20)
"""Under the 16 MiB message limit: these requests reach the servicers and are refused there."""


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def event_with(blob: str) -> event_pb2.Event:
    message = event_pb2.Event(id=str(uuid.uuid4()), event="x")
    message.resource.labels["prefect.resource.id"] = "r"
    message.payload["blob"] = blob
    return message


def refused(call: object, request: object, **kwargs: object) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as raised:
        call(request, timeout=30, **kwargs)  # type: ignore[operator]
    code: grpc.StatusCode = raised.value.code()
    return code


@pytest.fixture
def engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    running = EngineProcess(
        tmp_path,
        env={
            "AUTOMATIONS_API_TOKEN": TOKEN,
            "AUTOMATIONS_MEMORY_TRIM_SECONDS": "1",
            "AUTOMATIONS_MAX_PENDING_EVENTS": "1000",
        },
    ).start()
    try:
        yield running
    finally:
        running.stop()


def test_memory_returns_to_its_baseline_after_a_burst_of_refused_large_requests(
    engine: EngineProcess,
) -> None:
    assert engine.proc is not None
    authorized = (("authorization", f"Bearer {TOKEN}"),)
    options = [("grpc.max_send_message_length", 64 << 20)]
    with grpc.insecure_channel(engine.grpc_addr, options=options) as channel:
        events = event_service_pb2_grpc.EventServiceStub(channel)
        automations = automation_service_pb2_grpc.AutomationServiceStub(channel)
        events.ListEvents(event_service_pb2.ListEventsRequest(), metadata=authorized, timeout=10)
        baseline = resident_mb(engine.proc.pid)
        publish = event_service_pb2.PublishEventsRequest(events=[event_with(BIG)])
        create = automation_service_pb2.CreateAutomationRequest()
        create.automation.display_name = BIG
        listing = event_service_pb2.ListEventsRequest(page_token=BIG)
        for _ in range(16):
            assert refused(events.PublishEvents, publish) == grpc.StatusCode.UNAUTHENTICATED
            assert (
                refused(automations.CreateAutomation, create, metadata=authorized)
                == grpc.StatusCode.INVALID_ARGUMENT
            )
            assert (
                refused(events.ListEvents, listing, metadata=authorized)
                == grpc.StatusCode.INVALID_ARGUMENT
            )
        wait_until(
            lambda: resident_mb(engine.proc.pid) < baseline + 40,
            timeout=30,
            what=f"the engine's memory back near its baseline of {baseline:.0f} MB",
        )


def test_oversized_requests_are_refused_and_the_token_scheme_is_case_insensitive(
    engine: EngineProcess,
) -> None:
    options = [("grpc.max_send_message_length", 64 << 20)]
    lower = (("authorization", f"bearer {TOKEN}"),)
    with grpc.insecure_channel(engine.grpc_addr, options=options) as channel:
        events = event_service_pb2_grpc.EventServiceStub(channel)
        small = [event_with("") for _ in range(1001)]
        with pytest.raises(grpc.RpcError) as raised:
            events.PublishEvents(
                event_service_pb2.PublishEventsRequest(events=small), metadata=lower, timeout=30
            )
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "at most 1000 per request" in str(raised.value.details())
        huge = event_service_pb2.PublishEventsRequest(events=[event_with("x" * (17 << 20))])
        with pytest.raises(grpc.RpcError) as raised:
            events.PublishEvents(huge, metadata=lower, timeout=30)
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        reply = events.PublishEvents(
            event_service_pb2.PublishEventsRequest(events=small[:10]), metadata=lower, timeout=30
        )
        assert len(reply.results) == 10
