"""The Node and Go quickstarts resend StreamEvents batches refused with RESOURCE_EXHAUSTED.

A scripted fake engine answers the first batches with a RESOURCE_EXHAUSTED status (the engine is
behind) and every later one with per-event results; the quickstarts must resend the refused
batches on the same stream, so that every event ends up accepted exactly once.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from google.rpc import code_pb2, status_pb2

from automations.v1 import (
    automation_pb2,
    automation_service_pb2,
    automation_service_pb2_grpc,
    event_service_pb2,
    event_service_pb2_grpc,
)
from tests.integration.clients import toolchains

# 2,000 events over 100 customers: 20 orders each, below the threshold, so no firing is expected
# and the quickstart does not wait for any.
ENV = {"EVENTS": "2000", "CUSTOMERS": "100"}
REFUSED = 3


class FakeEngine(
    event_service_pb2_grpc.EventServiceServicer,
    automation_service_pb2_grpc.AutomationServiceServicer,
):
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.refusals_left = REFUSED
        self.event_ids: list[str] = []

    def StreamEvents(self, request_iterator, context):  # noqa: N802
        for request in request_iterator:
            with self.lock:
                refuse = self.refusals_left > 0
                self.refusals_left -= refuse
                if not refuse:
                    self.event_ids.extend(e.id for e in request.events)
            if refuse:
                yield event_service_pb2.StreamEventsResponse(
                    sequence=request.sequence,
                    error=status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message="behind"),
                )
                continue
            yield event_service_pb2.StreamEventsResponse(
                sequence=request.sequence,
                result=event_service_pb2.EventBatchResult(
                    results=[
                        event_service_pb2.EventResult(
                            index=i, event_id=e.id, status=event_service_pb2.EVENT_STATUS_ACCEPTED
                        )
                        for i, e in enumerate(request.events)
                    ]
                ),
            )

    def CreateAutomation(self, request, context):  # noqa: N802
        created = automation_pb2.Automation()
        created.CopyFrom(request.automation)
        created.uid = "fake"
        created.name = "automations/fake"
        return created

    def ListFirings(self, request, context):  # noqa: N802
        return automation_service_pb2.ListFiringsResponse()


@pytest.fixture
def fake_engine() -> Iterator[tuple[str, FakeEngine]]:
    fake = FakeEngine()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    event_service_pb2_grpc.add_EventServiceServicer_to_server(fake, server)
    automation_service_pb2_grpc.add_AutomationServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", fake
    finally:
        server.stop(None)


def check(done: subprocess.CompletedProcess[str], fake: FakeEngine) -> None:
    assert done.returncode == 0, done.stderr
    published = json.loads(done.stdout)["published"]
    assert published == {"accepted": 2000, "duplicate": 0, "rejected": 0, "retries": REFUSED}
    assert len(fake.event_ids) == 2000 == len(set(fake.event_ids))


@pytest.mark.usefixtures("node_ready")
def test_node_publisher_resends_batches_refused_with_resource_exhausted(
    fake_engine: tuple[str, FakeEngine],
) -> None:
    target, fake = fake_engine
    done = subprocess.run(
        ["node", "--import", "tsx", "examples/quickstart.ts", target],
        cwd=toolchains.NODE_DIR,
        env={**os.environ, **ENV},
        capture_output=True,
        text=True,
        timeout=120,
    )
    check(done, fake)


@pytest.mark.timeout(900)
def test_go_quickstart_resends_batches_refused_with_resource_exhausted(
    go_quickstart: Path, fake_engine: tuple[str, FakeEngine]
) -> None:
    target, fake = fake_engine
    done = subprocess.run(
        [str(go_quickstart), target],
        env={**os.environ, **ENV},
        capture_output=True,
        text=True,
        timeout=120,
    )
    check(done, fake)
