"""Engines for the integration tests: a real ``automations serve`` process, or the API in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from automations.v1 import automation_service_pb2_grpc, event_service_pb2_grpc
from tests.integration import in_process_server
from tests.integration.engine_process import EngineProcess


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[EngineProcess]:
    """A real ``automations serve`` process with its own SQLite database."""
    proc = EngineProcess(tmp_path)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def channel(engine: EngineProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(engine.grpc_addr) as ch:
        yield ch


@pytest.fixture
def events_stub(channel: grpc.Channel) -> event_service_pb2_grpc.EventServiceStub:
    return event_service_pb2_grpc.EventServiceStub(channel)


@pytest.fixture
def automations_stub(channel: grpc.Channel) -> automation_service_pb2_grpc.AutomationServiceStub:
    return automation_service_pb2_grpc.AutomationServiceStub(channel)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[in_process_server.InProcessServer]:
    """The engine's API served in the test's event loop on a free port (see in_process_server)."""
    async with in_process_server.serving(tmp_path) as served:
        yield served
