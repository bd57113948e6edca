"""The engine's side of the executor protocol: routing by action type, the call, and its outcome.

Which status codes are final and which are retried is the protocol's (see
``protos/automations/executor/v1/executor_service.proto``): INVALID_ARGUMENT, FAILED_PRECONDITION,
NOT_FOUND, PERMISSION_DENIED are final; UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED,
ABORTED, INTERNAL are retried; anything else is final. A ``google.rpc.ErrorInfo`` detail's reason
and metadata are kept with the failure.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from automations import executor
from automations.domain import events, firings, invocations
from automations.executor.v1 import executor_service_pb2, executor_service_pb2_grpc
from automations.v1 import event_pb2
from automations.wire import events as wire_events
from automations.wire import structs

RETRYABLE_CODES = executor.RETRYABLE_CODES
"""The codes the protocol retries (``automations.executor.RETRYABLE_CODES``, the executors' side)."""
_STATUS_DETAILS_KEY = "grpc-status-details-bin"


class ExecutorError(Exception):
    """An executor answered with an error status (or could not be reached).

    Attributes:
        code: The gRPC status code.
        message: The status message.
        retryable: Whether the protocol retries this code.
        reason: The ErrorInfo reason, if the executor sent one.
        metadata: The ErrorInfo metadata (e.g. ``notification_log``), if any.
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.retryable = code in RETRYABLE_CODES
        self.reason = reason
        self.metadata = dict(metadata or {})


@dataclasses.dataclass(frozen=True, slots=True)
class CallResult:
    """What an executor returned with OK.

    Attributes:
        result: Its ``result`` object.
        emitted: Its ``emitted_events``.
    """

    result: dict[str, Any]
    emitted: tuple[events.Event, ...] = ()


def build_request(
    *,
    action_type: str,
    parameters: Mapping[str, Any],
    idempotency_key: str,
    attempt: int,
    automation: invocations.AutomationSummary,
    firing: firings.Firing,
    action_index: int,
    event: events.Event | None,
    event_message: event_pb2.Event | None = None,
) -> executor_service_pb2.ExecuteActionRequest:
    """The ``ExecuteActionRequest`` of one attempt (``parameters`` already rendered).

    ``event_message`` is ``event`` already converted, when the caller has it (several actions of
    one firing share their event).
    """
    request = executor_service_pb2.ExecuteActionRequest(
        action_type=action_type,
        idempotency_key=idempotency_key,
        attempt=attempt,
        action_index=action_index,
    )
    structs.fill_struct(request.parameters, parameters, field="parameters")
    request.automation.name = f"automations/{automation.id}"
    request.automation.uid = automation.id
    request.automation.display_name = automation.name
    request.firing.uid = firing.id
    request.firing.trigger_id = firing.trigger_id
    structs.set_timestamp(request.firing.fire_time, firing.triggered)
    if event_message is not None:
        request.triggering_event.CopyFrom(event_message)
    elif event is not None:
        request.triggering_event.CopyFrom(wire_events.event_to_proto(event))
    request.triggering_labels.update(firing.triggering_labels)
    return request


MAX_BATCH = 256
"""Invocations sent in one ExecuteActions call at most."""
MAX_BATCHES_IN_FLIGHT = 8
"""ExecuteActions calls outstanding per executor at most; later invocations wait and go together."""

_CODES = {code.value[0]: code for code in grpc.StatusCode}


def _call_result(response: executor_service_pb2.ExecuteActionResponse) -> CallResult:
    emitted = tuple(
        wire_events.event_from_proto(e, received=0.0, lazy_payload=False)
        for e in response.emitted_events
    )
    return CallResult(result=structs.struct_to_dict(response.result), emitted=emitted)


def _error_info(status: status_pb2.Status) -> error_details_pb2.ErrorInfo | None:
    """The first ``google.rpc.ErrorInfo`` among a status's details, if any."""
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info
    return None


def _status_error(status: status_pb2.Status) -> ExecutorError:
    """The error one invocation of a batch answered."""
    info = _error_info(status)
    code = _CODES.get(status.code, grpc.StatusCode.UNKNOWN)
    return ExecutorError(
        code,
        status.message or code.name,
        reason=None if info is None else info.reason,
        metadata=None if info is None else dict(info.metadata),
    )


def _rpc_error(error: grpc.aio.AioRpcError) -> ExecutorError:
    """The error a whole call answered, with the ErrorInfo of its status details, if any."""
    info = None
    for key, value in error.trailing_metadata() or ():
        if key == _STATUS_DETAILS_KEY and isinstance(value, bytes):
            info = _error_info(status_pb2.Status.FromString(value))
            break
    return ExecutorError(
        error.code(),
        error.details() or error.code().name,
        reason=None if info is None else info.reason,
        metadata=None if info is None else dict(info.metadata),
    )


def _fail(future: asyncio.Future[CallResult], error: ExecutorError) -> None:
    if not future.done():
        future.set_exception(error)


class ExecutorClient:
    """Calls executors over gRPC, one channel per address.

    Args:
        routes: Action type -> executor address (``host:port``).
        timeout: The deadline of one call, seconds.
        credentials: Channel credentials for TLS executors; None for plaintext.
    """

    def __init__(
        self,
        routes: Mapping[str, str],
        *,
        timeout: float = 30.0,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self._routes = dict(routes)
        self._timeout = timeout
        self._credentials = credentials
        self._stubs: dict[str, executor_service_pb2_grpc.ExecutorServiceStub] = {}
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._not_serving: set[str] = set()
        self._unbatched: set[str] = set()
        self._pending: dict[
            str,
            list[tuple[executor_service_pb2.ExecuteActionRequest, asyncio.Future[CallResult]]],
        ] = {}
        self._scheduled: set[str] = set()
        self._in_flight: dict[str, int] = {}
        self._tasks: set[asyncio.Future[None]] = set()

    def route(self, action_type: str) -> str | None:
        """The address serving ``action_type``, or None."""
        return self._routes.get(action_type)

    def _channel(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            if self._credentials is None:
                channel = grpc.aio.insecure_channel(address)
            else:
                channel = grpc.aio.secure_channel(address, self._credentials)
            self._channels[address] = channel
        return channel

    def _stub(self, address: str) -> executor_service_pb2_grpc.ExecutorServiceStub:
        stub = self._stubs.get(address)
        if stub is None:
            stub = executor_service_pb2_grpc.ExecutorServiceStub(self._channel(address))
            self._stubs[address] = stub
        return stub

    async def refresh_health(self, timeout: float = 1.0) -> None:
        """Asks every executor's ``grpc.health.v1.Health`` whether it is serving.

        Work is not sent to an executor that answers NOT_SERVING (it is draining, or told its
        health service it cannot work): its invocations are retried later instead. An executor
        without a health service, or one that does not answer, is called as usual (the call's
        own status decides).
        """
        for address in set(self._routes.values()):
            stub = health_pb2_grpc.HealthStub(self._channel(address))
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=timeout)
            except grpc.aio.AioRpcError:
                self._not_serving.discard(address)
                continue
            if reply.status == health_pb2.HealthCheckResponse.NOT_SERVING:
                self._not_serving.add(address)
            else:
                self._not_serving.discard(address)

    async def execute(
        self, address: str, request: executor_service_pb2.ExecuteActionRequest
    ) -> CallResult:
        """Carries out one invocation at ``address``.

        Invocations for one executor made in the same turn of the event loop (or while earlier
        batches are in flight) travel together in one ``ExecuteActions`` call: at high rates the
        per-call cost of gRPC, not the executor's work, is what limits throughput. An executor
        that does not implement ``ExecuteActions`` (UNIMPLEMENTED) is called with
        ``ExecuteAction`` from then on.

        Raises:
            ExecutorError: The executor answered with an error status for this invocation, or
                could not be reached (UNAVAILABLE) in time (DEADLINE_EXCEEDED).
        """
        if address in self._not_serving:
            raise ExecutorError(
                grpc.StatusCode.UNAVAILABLE,
                f"the executor at {address} reports NOT_SERVING",
                reason="EXECUTOR_NOT_SERVING",
            )
        if address in self._unbatched:
            return await self._execute_one(address, request)
        future: asyncio.Future[CallResult] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(address, []).append((request, future))
        self._kick(address)
        return await future

    async def _execute_one(
        self, address: str, request: executor_service_pb2.ExecuteActionRequest
    ) -> CallResult:
        try:
            response = await self._stub(address).ExecuteAction(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise _rpc_error(exc) from None
        return _call_result(response)

    def _kick(self, address: str) -> None:
        if address in self._scheduled or self._in_flight.get(address, 0) >= MAX_BATCHES_IN_FLIGHT:
            return  # a batch is about to leave, or a finishing one will send what waits
        self._scheduled.add(address)
        asyncio.get_running_loop().call_soon(self._start_batch, address)

    def _start_batch(self, address: str) -> None:
        self._scheduled.discard(address)
        pending = self._pending.pop(address, [])
        batch = [(request, future) for request, future in pending if not future.done()]
        if len(batch) > MAX_BATCH:
            self._pending[address] = batch[MAX_BATCH:]
            batch = batch[:MAX_BATCH]
        if not batch:
            return
        self._in_flight[address] = self._in_flight.get(address, 0) + 1
        task = asyncio.ensure_future(self._send_batch(address, batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if self._pending.get(address):
            self._kick(address)

    async def _send_batch(
        self,
        address: str,
        batch: list[tuple[executor_service_pb2.ExecuteActionRequest, asyncio.Future[CallResult]]],
    ) -> None:
        try:
            call = executor_service_pb2.ExecuteActionsRequest(requests=[r for r, _ in batch])
            try:
                response = await self._stub(address).ExecuteActions(call, timeout=self._timeout)
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                    self._unbatched.add(address)
                    await asyncio.gather(
                        *(self._settle_one(address, request, f) for request, f in batch)
                    )
                    return
                error = _rpc_error(exc)
                for _, future in batch:
                    _fail(future, error)
                return
            if len(response.results) != len(batch):
                error = ExecutorError(
                    grpc.StatusCode.INTERNAL,
                    f"the executor answered {len(response.results)} results "
                    f"for {len(batch)} invocations",
                )
                for _, future in batch:
                    _fail(future, error)
                return
            for (_, future), result in zip(batch, response.results, strict=True):
                if future.done():
                    continue
                if result.status.code == 0:
                    future.set_result(_call_result(result.response))
                else:
                    future.set_exception(_status_error(result.status))
        finally:
            self._in_flight[address] -= 1
            if self._pending.get(address):
                self._kick(address)

    async def _settle_one(
        self,
        address: str,
        request: executor_service_pb2.ExecuteActionRequest,
        future: asyncio.Future[CallResult],
    ) -> None:
        try:
            result = await self._execute_one(address, request)
        except ExecutorError as exc:
            _fail(future, exc)
        else:
            if not future.done():
                future.set_result(result)

    async def close(self) -> None:
        """Closes every channel."""
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
        self._stubs.clear()
