"""``automations.v1.EventService``: PublishEvents, StreamEvents and ListEvents.

Each event is validated on its own: a bad one is answered REJECTED with its reason and field, and the
good ones of the same batch are still committed. Accepted events are acknowledged only after the
group commit that wrote them (``pipeline.writer``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from automations import metrics
from automations.api import convert, structs
from automations.api import errors as api_errors
from automations.domain import errors, events, validation
from automations.pipeline import writer as writer_
from automations.v1 import event_pb2, event_service_pb2, event_service_pb2_grpc

ACCEPTED = event_service_pb2.EVENT_STATUS_ACCEPTED
DUPLICATE = event_service_pb2.EVENT_STATUS_DUPLICATE
REJECTED = event_service_pb2.EVENT_STATUS_REJECTED

STREAM_WINDOW = 16
"""Requests of one stream processed concurrently (their responses still go out in order)."""

EventLister = Callable[..., tuple[list[events.Event], str]]


class EventService(event_service_pb2_grpc.EventServiceServicer):
    """Validates, commits and acknowledges events; reads the event log back.

    Args:
        writer: The single writer that group-commits batches.
        list_events: Reads the event log (runs in a worker thread).
        max_event_size: The largest serialized event accepted, in bytes.
        clock: Wall clock, seconds since the epoch.
    """

    def __init__(
        self,
        writer: writer_.Writer,
        list_events: EventLister,
        *,
        max_event_size: int = events.MAX_EVENT_SIZE_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._writer = writer
        self._list_events = list_events
        self._max_size = max_event_size
        self._clock = clock

    async def ingest(
        self, messages: Sequence[event_pb2.Event]
    ) -> list[event_service_pb2.EventResult]:
        """Validates and commits one batch; returns one result per event, in order.

        Raises:
            errors.ResourceExhausted: The engine is saturated (nothing of the batch was taken).
            errors.Unavailable: The engine is draining or the commit failed.
        """
        start = time.perf_counter()
        now = self._clock()
        n = len(messages)
        metrics.EVENTS_RECEIVED.inc(n)
        metrics.INGEST_BATCH_SIZE.observe(n)
        results: list[Any] = [None] * n
        good: list[events.Event] = []
        good_index: list[int] = []
        max_size = self._max_size
        for i, message in enumerate(messages):
            try:
                event = convert.event_from_proto(message, received=now)
                validation.validate_event(event, max_size=max_size, size=message.ByteSize())
            except errors.InvalidArgument as exc:
                metrics.EVENTS_REJECTED.labels(exc.reason).inc()
                results[i] = convert.rejected_event_result(i, message.id, exc)
            else:
                good.append(event)
                good_index.append(i)
        if good:
            try:
                flags = await self._writer.publish(good)
            except errors.AutomationsError as exc:
                metrics.EVENTS_REJECTED.labels(exc.reason).inc(len(good))
                raise
            accepted = 0
            for i, event, new in zip(good_index, good, flags, strict=True):
                accepted += new
                results[i] = event_service_pb2.EventResult(
                    index=i, event_id=event.id, status=ACCEPTED if new else DUPLICATE
                )
            metrics.EVENTS_ACCEPTED.inc(accepted)
            metrics.EVENTS_DUPLICATE.inc(len(good) - accepted)
        metrics.INGEST_LATENCY.observe(time.perf_counter() - start)
        return results

    async def PublishEvents(  # noqa: N802 - gRPC method name
        self, request: event_service_pb2.PublishEventsRequest, context: Any
    ) -> event_service_pb2.PublishEventsResponse:
        """Commits one batch and answers per event."""
        return event_service_pb2.PublishEventsResponse(results=await self.ingest(request.events))

    async def StreamEvents(  # noqa: N802 - gRPC method name
        self, request_iterator: AsyncIterator[event_service_pb2.StreamEventsRequest], context: Any
    ) -> AsyncIterator[event_service_pb2.StreamEventsResponse]:
        """Answers each request with one response, in order; up to STREAM_WINDOW in flight."""
        inflight: asyncio.Queue[tuple[int, asyncio.Task[Any]] | None] = asyncio.Queue(STREAM_WINDOW)

        async def read() -> None:
            try:
                async for request in request_iterator:
                    task = asyncio.ensure_future(self.ingest(request.events))
                    await inflight.put((request.sequence, task))
            finally:
                await inflight.put(None)

        reader = asyncio.ensure_future(read())
        try:
            while True:
                item = await inflight.get()
                if item is None:
                    break
                sequence, task = item
                try:
                    results = await task
                except errors.AutomationsError as exc:
                    yield event_service_pb2.StreamEventsResponse(
                        sequence=sequence, error=api_errors.to_rpc_status(exc)
                    )
                else:
                    yield event_service_pb2.StreamEventsResponse(
                        sequence=sequence,
                        result=event_service_pb2.EventBatchResult(results=results),
                    )
            await reader
        finally:
            if not reader.done():
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader

    async def ListEvents(  # noqa: N802 - gRPC method name
        self, request: event_service_pb2.ListEventsRequest, context: Any
    ) -> event_service_pb2.ListEventsResponse:
        """Reads the event log with filters, ordered by occurred time, paginated."""
        if request.page_size < 0:
            raise errors.InvalidArgument("page_size", "must be >= 0")
        if request.order_by not in ("", "occurred", "occurred asc", "occurred desc"):
            raise errors.InvalidArgument("order_by", "must be 'occurred' or 'occurred desc'")
        start = (
            structs.timestamp_to_seconds(request.start_time)
            if request.HasField("start_time")
            else None
        )
        end = (
            structs.timestamp_to_seconds(request.end_time) if request.HasField("end_time") else None
        )
        found, token = await asyncio.to_thread(
            self._list_events,
            names=list(request.event_names),
            resource_id=list(request.resource_ids) or None,
            start=start,
            end=end,
            page_size=request.page_size,
            page_token=request.page_token,
            newest_first=request.order_by == "occurred desc",
        )
        return event_service_pb2.ListEventsResponse(
            events=[convert.event_to_proto(e) for e in found], next_page_token=token
        )
