"""The executor harness served in-process: emitted events, deadlines and concurrent repeats."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import grpc
import pytest

from automations import executor
from automations.executor.v1 import executor_service_pb2, executor_service_pb2_grpc
from automations.v1 import event_pb2
from tests.integration.executors.executor_process import failure, request

pytestmark = pytest.mark.timeout(30)


class Story:
    """Handlers that count their calls: ``emit`` emits an event, ``slow`` takes a while."""

    def __init__(self) -> None:
        self.calls = 0

    async def emit(self, req: executor_service_pb2.ExecuteActionRequest) -> executor.ActionResult:
        self.calls += 1
        event = event_pb2.Event(id=f"{req.idempotency_key}-0", event="test.emitted")
        return executor.ActionResult(result={"calls": self.calls}, emitted_events=[event])

    async def slow(self, req: executor_service_pb2.ExecuteActionRequest) -> Mapping[str, Any]:
        self.calls += 1
        await asyncio.sleep(0.5)
        return {"calls": self.calls}

    async def refuse(self, req: executor_service_pb2.ExecuteActionRequest) -> Mapping[str, Any]:
        self.calls += 1
        raise executor.ActionError(
            grpc.StatusCode.FAILED_PRECONDITION, "nothing to act on", "NO_TARGET", {"k": "v"}
        )


@pytest.fixture
def story() -> Story:
    return Story()


@pytest.fixture
async def stub(
    story: Story, tmp_path: Path
) -> AsyncIterator[executor_service_pb2_grpc.ExecutorServiceStub]:
    served = executor.Executor(
        name="story",
        handlers={"emit": story.emit, "slow": story.slow, "refuse": story.refuse},
        store=executor.SqliteIdempotencyStore(tmp_path / "s.db", busy_timeout_seconds=0.2),
    )
    server = grpc.aio.server()
    executor_service_pb2_grpc.add_ExecutorServiceServicer_to_server(
        executor.ExecutorServicer(served, record_metrics=False), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield executor_service_pb2_grpc.ExecutorServiceStub(channel)
    await server.stop(None)
    await served.close()


async def test_emitted_events_are_returned_again_for_a_repeat(
    stub: executor_service_pb2_grpc.ExecutorServiceStub, story: Story
) -> None:
    first = await stub.ExecuteAction(request("emit", "k"), timeout=5)
    second = await stub.ExecuteAction(request("emit", "k"), timeout=5)
    assert story.calls == 1
    assert first == second
    assert [e.id for e in second.emitted_events] == ["k-0"]
    assert second.result["calls"] == 1


async def test_concurrent_repeats_act_once(
    stub: executor_service_pb2_grpc.ExecutorServiceStub, story: Story
) -> None:
    replies = await asyncio.gather(
        *(stub.ExecuteAction(request("slow", "k"), timeout=5) for _ in range(3))
    )
    assert story.calls == 1
    assert {r.result["calls"] for r in replies} == {1}


async def test_a_handler_runs_past_the_callers_deadline_and_the_retry_gets_its_result(
    stub: executor_service_pb2_grpc.ExecutorServiceStub, story: Story
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ExecuteAction(request("slow", "k"), timeout=0.2)
    assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    reply = await stub.ExecuteAction(request("slow", "k"), timeout=5)  # waits for the first
    assert reply.result["calls"] == 1
    await asyncio.sleep(0.1)
    reply = await stub.ExecuteAction(request("slow", "k"), timeout=5)  # from the record
    assert reply.result["calls"] == 1
    assert story.calls == 1


async def test_a_final_error_keeps_its_code_reason_and_metadata_and_is_not_repeated(
    stub: executor_service_pb2_grpc.ExecutorServiceStub, story: Story
) -> None:
    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.ExecuteAction(request("refuse", "k"), timeout=5)
        error = failure(info.value)
        assert (error.code, error.message, error.reason, error.metadata) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "nothing to act on",
            "NO_TARGET",
            {"k": "v"},
        )
    assert story.calls == 1


async def test_an_overlong_idempotency_key_is_invalid(
    stub: executor_service_pb2_grpc.ExecutorServiceStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ExecuteAction(request("emit", "k" * 201), timeout=5)
    assert failure(info.value).reason == "IDEMPOTENCY_KEY_INVALID"


async def test_a_broken_idempotency_store_is_a_retryable_internal_error(
    stub: executor_service_pb2_grpc.ExecutorServiceStub, tmp_path: Path
) -> None:
    # another connection holds the write lock for longer than the store waits (0.2 s here)
    import sqlite3

    blocker = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.ExecuteAction(request("emit", "k"), timeout=15)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert info.value.code() is grpc.StatusCode.INTERNAL
    assert failure(info.value).reason == "IDEMPOTENCY_STORE_ERROR"


async def test_a_batch_answers_each_invocation_as_execute_action_would(
    stub: executor_service_pb2_grpc.ExecutorServiceStub, story: Story
) -> None:
    batch = executor_service_pb2.ExecuteActionsRequest(
        requests=[request("emit", "k1"), request("refuse", "k2"), request("nope", "k3")]
    )
    reply = await stub.ExecuteActions(batch, timeout=5)
    ok, refused, unknown = reply.results
    assert ok.status.code == 0 and ok.response.result["calls"] == 1
    assert ok.response.emitted_events[0].id == "k1-0"
    assert refused.status.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert refused.status.message == "nothing to act on"
    assert unknown.status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    again = await stub.ExecuteActions(batch, timeout=5)  # deduped per key, like ExecuteAction
    assert again.results[0].response.result["calls"] == 1
    assert story.calls == 2  # emit once, refuse once
