"""The dispatcher's outcome for each kind of answer, against an in-process gRPC executor."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from automations.actions import outcomes, planning
from automations.dispatch import dispatcher, executor_client, retry
from automations.domain import events, firings, invocations
from automations.executor.v1 import executor_service_pb2, executor_service_pb2_grpc
from tests.waiting import wait_until_async

CALL_TIMEOUT = 30.0
"""The executor client's deadline: no test here is about it, so it never runs out first."""


class Executor(executor_service_pb2_grpc.ExecutorServiceServicer):
    """Answers with whatever the test set in ``answer``; records what it received."""

    def __init__(self) -> None:
        self.received: list[executor_service_pb2.ExecuteActionRequest] = []
        self.answer: tuple[grpc.StatusCode, str] | None = None

    async def ExecuteAction(  # noqa: N802
        self, request: executor_service_pb2.ExecuteActionRequest, context: Any
    ) -> executor_service_pb2.ExecuteActionResponse:
        self.received.append(request)
        if self.answer is not None:
            code, message = self.answer
            info = error_details_pb2.ErrorInfo(
                reason="TEST_REASON", domain="test", metadata={"notification_log": "boom"}
            )
            detail = any_pb2.Any()
            detail.Pack(info)
            status = status_pb2.Status(code=code.value[0], message=message, details=[detail])
            await context.abort_with_status(rpc_status.to_status(status))
        response = executor_service_pb2.ExecuteActionResponse()
        response.result.update({"echo": request.parameters["message"]})
        return response


class Store(dispatcher.OutboxStore):
    def __init__(self) -> None:
        self.recorded: list[outcomes.Outcome] = []
        self.got = asyncio.Event()

    async def record(self, results: Sequence[outcomes.Outcome]) -> None:
        self.recorded.extend(results)
        self.got.set()

    async def claim(self, limit: int) -> list[planning.Job]:
        return []

    async def release_running(self) -> int:
        return 0

    async def stats(self) -> dispatcher.OutboxStats:
        return dispatcher.OutboxStats(0, None, None)


@pytest.fixture
async def executor() -> AsyncIterator[tuple[Executor, str]]:
    servicer = Executor()
    server = grpc.aio.server()
    executor_service_pb2_grpc.add_ExecutorServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield servicer, f"127.0.0.1:{port}"
    await server.stop(None)


def job(action: dict[str, Any], *, attempts: int = 1, created: float = 0.0) -> planning.Job:
    event = events.Event(
        id="e1", event="order.placed", occurred=1.0, resource={"prefect.resource.id": "o.7"}
    )
    firing = firings.Firing(
        id="f1",
        automation_id="a1",
        trigger_id="t1",
        trigger_type="event",
        posture="Reactive",
        triggered=2.0,
        triggering_event=event,
        triggering_labels={"prefect.resource.id": "o.7"},
    )
    invocation = invocations.Invocation(
        id="k1",
        automation_id="a1",
        firing_id="f1",
        action_index=0,
        action_type=action["type"],
        idempotency_key="k1",
        request=invocations.InvocationRequest.from_json(
            {"action": action, "automation": {"id": "a1", "name": "orders"}, "depth": 0}
        ),
        status=invocations.InvocationStatus.RUNNING,
        attempts=attempts,
        created=created,
    )
    return planning.Job(invocation, firing)


async def started(address: str, store: Store, **settings: Any) -> dispatcher.Dispatcher:
    """A started dispatcher routing ``acme.page`` to ``address`` (concurrency 2 unless given)."""
    client = executor_client.ExecutorClient({"acme.page": address}, timeout=CALL_TIMEOUT)
    the_settings = dispatcher.DispatcherSettings(**{"concurrency": 2, **settings})
    the_dispatcher = dispatcher.Dispatcher(store, client, the_settings, clock=lambda: 10.0)
    await the_dispatcher.start()
    return the_dispatcher


async def run_one(address: str, the_job: planning.Job, **settings: Any) -> outcomes.Outcome:
    store = Store()
    the_dispatcher = await started(address, store, **settings)
    the_dispatcher.submit([the_job])
    await asyncio.wait_for(store.got.wait(), 30)
    await the_dispatcher.stop()
    (outcome,) = store.recorded
    return outcome


async def test_the_executor_gets_rendered_parameters_and_the_invocation_context(
    executor: tuple[Executor, str],
) -> None:
    servicer, address = executor
    outcome = await run_one(
        address, job({"type": "acme.page", "message": "{{ event.resource.id }}"})
    )
    assert outcome.status == outcomes.SUCCEEDED
    assert outcome.result == {"echo": "o.7"}
    (request,) = servicer.received
    assert request.idempotency_key == "k1"
    assert request.attempt == 1
    assert request.automation.uid == "a1" and request.automation.display_name == "orders"
    assert request.firing.uid == "f1"
    assert request.triggering_event.id == "e1"
    assert dict(request.triggering_labels) == {"prefect.resource.id": "o.7"}


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION]
)
async def test_a_final_status_fails_the_invocation_with_its_reason_and_details(
    executor: tuple[Executor, str], code: grpc.StatusCode
) -> None:
    servicer, address = executor
    servicer.answer = (code, "nothing to page")
    outcome = await run_one(address, job({"type": "acme.page", "message": "x"}))
    assert outcome.status == outcomes.FAILED
    assert outcome.reason == "nothing to page"
    assert outcome.error == f"{code.name}: nothing to page"
    assert outcome.details["notification_log"] == "boom"
    assert outcome.details["error_reason"] == "TEST_REASON"


async def test_a_retryable_status_is_retried_later(executor: tuple[Executor, str]) -> None:
    servicer, address = executor
    servicer.answer = (grpc.StatusCode.UNAVAILABLE, "down")
    policy = retry.RetryPolicy(max_attempts=3, base_delay=4.0)
    outcome = await run_one(address, job({"type": "acme.page", "message": "x"}), retry=policy)
    assert outcome.status == outcomes.RETRY
    assert 12.0 <= outcome.next_attempt_at <= 14.0  # now (10) + 2..4 s for attempt 1


async def test_a_call_cancelled_on_the_way_is_retried_not_failed(
    executor: tuple[Executor, str],
) -> None:
    servicer, address = executor
    servicer.answer = (grpc.StatusCode.CANCELLED, "cut off")
    outcome = await run_one(address, job({"type": "acme.page", "message": "x"}))
    assert outcome.status == outcomes.RETRY
    assert outcome.error == "CANCELLED: cut off"


async def test_the_last_retryable_failure_dead_letters(executor: tuple[Executor, str]) -> None:
    servicer, address = executor
    servicer.answer = (grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down")
    policy = retry.RetryPolicy(max_attempts=3)
    outcome = await run_one(
        address, job({"type": "acme.page", "message": "x"}, attempts=3), retry=policy
    )
    assert outcome.status == outcomes.DEAD_LETTER
    assert outcome.reason == "Gave up after 3 attempts: RESOURCE_EXHAUSTED: slow down"


async def test_a_template_that_fails_to_render_is_a_final_failure(
    executor: tuple[Executor, str],
) -> None:
    servicer, address = executor
    outcome = await run_one(address, job({"type": "acme.page", "message": "{{ 1 / 0 }}"}))
    assert outcome.status == outcomes.FAILED
    assert outcome.reason is not None and outcome.reason.startswith("Template rendering failed")
    assert outcome.details["template_source"] == "{{ 1 / 0 }}"
    assert servicer.received == []


async def test_an_action_type_without_an_executor_fails(executor: tuple[Executor, str]) -> None:
    _, address = executor
    outcome = await run_one(address, job({"type": "acme.unknown"}))
    assert outcome.status == outcomes.FAILED
    assert outcome.reason == "No executor serves action type 'acme.unknown'"


async def test_an_unreachable_executor_is_retried(executor: tuple[Executor, str]) -> None:
    outcome = await run_one("127.0.0.1:9", job({"type": "acme.page", "message": "x"}))
    assert outcome.status == outcomes.RETRY
    assert outcome.error is not None and outcome.error.startswith("UNAVAILABLE")


async def test_engine_actions_run_without_an_executor(executor: tuple[Executor, str]) -> None:
    servicer, address = executor
    outcome = await run_one(
        address,
        job({"type": "pause-automation", "source": "inferred"}),
    )
    # the event's resources name no automation: Prefect's reason
    assert outcome.status == outcomes.FAILED
    assert outcome.reason == "No automation could be inferred"
    outcome = await run_one(address, job({"type": "do-nothing"}))
    assert outcome.status == outcomes.SUCCEEDED
    assert servicer.received == []


def test_the_status_codes_split_as_the_protocol_says() -> None:
    assert code_pb2.UNAVAILABLE == grpc.StatusCode.UNAVAILABLE.value[0]
    assert executor_client.RETRYABLE_CODES == {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.CANCELLED,
    }
    assert grpc.StatusCode.PERMISSION_DENIED not in executor_client.RETRYABLE_CODES


async def test_an_executor_reporting_not_serving_gets_no_work_and_the_invocation_retries(
    executor: tuple[Executor, str],
) -> None:
    servicer, _ = executor
    server = grpc.aio.server()
    executor_service_pb2_grpc.add_ExecutorServiceServicer_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    await health_servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        client = executor_client.ExecutorClient(
            {"acme.page": f"127.0.0.1:{port}"}, timeout=CALL_TIMEOUT
        )
        await client.refresh_health()
        with pytest.raises(executor_client.ExecutorError) as refused:
            await client.execute(f"127.0.0.1:{port}", executor_service_pb2.ExecuteActionRequest())
        assert refused.value.retryable and refused.value.reason == "EXECUTOR_NOT_SERVING"
        assert servicer.received == []
        await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        await client.refresh_health()
        request = executor_service_pb2.ExecuteActionRequest(action_type="acme.page")
        request.parameters.update({"message": "hi"})
        answer = await client.execute(f"127.0.0.1:{port}", request)
        assert answer.result == {"echo": "hi"}
        await client.close()
    finally:
        await server.stop(None)


class BatchingExecutor(Executor):
    """Also implements ExecuteActions: answers per request by its ``message`` parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    async def ExecuteActions(  # noqa: N802
        self, request: executor_service_pb2.ExecuteActionsRequest, context: Any
    ) -> executor_service_pb2.ExecuteActionsResponse:
        self.batches.append(len(request.requests))
        response = executor_service_pb2.ExecuteActionsResponse()
        for item in request.requests:
            self.received.append(item)
            result = response.results.add()
            message = item.parameters["message"]
            if message == "refuse":
                info = error_details_pb2.ErrorInfo(reason="NO_TARGET", domain="test")
                result.status.code = code_pb2.FAILED_PRECONDITION
                result.status.message = "nothing to act on"
                result.status.details.add().Pack(info)
            elif message == "later":
                result.status.code = code_pb2.UNAVAILABLE
                result.status.message = "busy"
            else:
                result.response.result.update({"echo": message})
        return response


async def test_invocations_for_one_executor_travel_in_batches_with_a_status_each() -> None:
    servicer = BatchingExecutor()
    server = grpc.aio.server()
    executor_service_pb2_grpc.add_ExecutorServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    client = executor_client.ExecutorClient(
        {"acme.page": f"127.0.0.1:{port}"}, timeout=CALL_TIMEOUT
    )

    def request(message: str) -> executor_service_pb2.ExecuteActionRequest:
        item = executor_service_pb2.ExecuteActionRequest(action_type="acme.page")
        item.parameters.update({"message": message})
        return item

    try:
        calls = [
            client.execute(f"127.0.0.1:{port}", request(m))
            for m in ["a", "refuse", "later", *[f"n{i}" for i in range(20)]]
        ]
        answers = await asyncio.gather(*calls, return_exceptions=True)
        assert servicer.batches == [23]  # one call for everything queued in one loop turn
        assert answers[0] == executor_client.CallResult(result={"echo": "a"})
        refused, later = answers[1], answers[2]
        assert isinstance(refused, executor_client.ExecutorError)
        assert (refused.code, refused.reason, refused.retryable) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "NO_TARGET",
            False,
        )
        assert isinstance(later, executor_client.ExecutorError) and later.retryable
        assert [a.result["echo"] for a in answers[3:]] == [f"n{i}" for i in range(20)]  # type: ignore[union-attr]
    finally:
        await client.close()
        await server.stop(None)


async def test_an_executor_without_batches_is_called_one_invocation_at_a_time(
    executor: tuple[Executor, str],
) -> None:
    servicer, address = executor  # implements ExecuteAction only: UNIMPLEMENTED for batches
    client = executor_client.ExecutorClient({"acme.page": address}, timeout=CALL_TIMEOUT)
    try:
        requests = []
        for i in range(5):
            item = executor_service_pb2.ExecuteActionRequest(action_type="acme.page")
            item.parameters.update({"message": f"m{i}"})
            requests.append(item)
        answers = await asyncio.gather(*(client.execute(address, r) for r in requests))
        assert [a.result["echo"] for a in answers] == [f"m{i}" for i in range(5)]
        assert len(servicer.received) == 5
        again = await client.execute(address, requests[0])  # straight to ExecuteAction now
        assert again.result == {"echo": "m0"}
    finally:
        await client.close()


class SlowStore(Store):
    """Records nothing until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def record(self, results: Sequence[outcomes.Outcome]) -> None:
        await self.release.wait()
        await super().record(results)


async def test_calls_wait_for_the_database_when_too_many_outcomes_are_unrecorded(
    executor: tuple[Executor, str],
) -> None:
    servicer, address = executor
    store = SlowStore()
    the_dispatcher = await started(address, store, concurrency=4, record_batch=2, max_unrecorded=3)
    jobs = []
    for i in range(20):
        one = job({"type": "acme.page", "message": str(i)})
        invocation = dataclasses.replace(one.invocation, id=f"k{i}", idempotency_key=f"k{i}")
        jobs.append(planning.Job(invocation, one.firing))
    the_dispatcher.submit(jobs)
    await wait_until_async(lambda: len(servicer.received) >= 5)
    await asyncio.sleep(0.3)  # time for calls that should not be made
    # one batch of 2 is with the (stuck) database, 3 wait, and up to 4 workers were mid-call
    assert 5 <= len(servicer.received) <= 2 + 3 + 4
    store.release.set()
    await wait_until_async(lambda: len(store.recorded) == 20)
    await the_dispatcher.stop()
    assert sorted(o.job.invocation.id for o in store.recorded) == sorted(f"k{i}" for i in range(20))
    assert len(servicer.received) == 20


async def test_the_writer_thread_hands_its_invocations_over_before_going_on(
    executor: tuple[Executor, str],
) -> None:
    _, address = executor
    store = Store()
    the_dispatcher = await started(address, store, handoff_wait=30.0)
    loop = asyncio.get_running_loop()
    returned_after = 0.0
    submitting = threading.Event()

    def writer() -> None:
        nonlocal returned_after
        start = time.monotonic()
        submitting.set()
        the_dispatcher.submit([job({"type": "acme.page", "message": "hi"})])
        returned_after = time.monotonic() - start

    def busy() -> None:  # the event loop is busy from before the writer submits until 0.3 s after
        submitting.wait(30)
        time.sleep(0.3)

    thread = threading.Thread(target=writer)
    loop.call_soon(busy)
    thread.start()
    await asyncio.sleep(0)  # runs the blocking callback
    await asyncio.to_thread(thread.join)
    # the writer waited for the busy loop to take the invocation (and not the whole 30 s)
    assert 0.25 < returned_after < 20.0
    await asyncio.wait_for(store.got.wait(), 30)
    start = time.monotonic()  # on the event loop's own thread, submit never waits
    the_dispatcher.submit([job({"type": "acme.page", "message": "again"})])
    assert time.monotonic() - start < 10.0
    await the_dispatcher.stop()
