"""``automations.v1.EventService``: PublishEvents, StreamEvents and ListEvents.

Each event is validated on its own: a bad one is answered REJECTED with its reason and field, and the
good ones of the same batch are still committed. Accepted events are acknowledged only after the
group commit that wrote them (``pipeline.writer``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol

from automations import metrics
from automations.api import errors as api_errors
from automations.api import paging
from automations.domain import errors, events, validation
from automations.v1 import event_pb2, event_service_pb2, event_service_pb2_grpc
from automations.wire import events as wire_events
from automations.wire import structs

ACCEPTED = event_service_pb2.EVENT_STATUS_ACCEPTED
DUPLICATE = event_service_pb2.EVENT_STATUS_DUPLICATE

STREAM_WINDOW = 16
"""Requests of one stream processed concurrently (their responses still go out in order)."""

EventLister = Callable[..., tuple[list[events.Event], str]]


class Publisher(Protocol):
    """Where accepted events go.

    The single writer (``pipeline.writer``), or in cluster mode the raw stream
    (``cluster.cluster_ingest``).
    """

    async def publish(
        self, batch: Sequence[events.Event], prepared: Sequence[Any] | None = None
    ) -> list[bool]:
        """Makes ``batch`` durable; returns new (True) / duplicate per event."""
        ...


MAX_FILTER_VALUES = 100
"""The most event names (or resource ids) one ``ListEvents`` filter may list: each becomes a
term of one SQL expression, and SQLite refuses an expression deeper than 1,000 terms."""


class EventService(event_service_pb2_grpc.EventServiceServicer):
    """Validates, commits and acknowledges events; reads the event log back.

    Args:
        writer: The single writer that group-commits batches (in cluster mode, the ingest
            that publishes them to the log).
        list_events: Reads the event log (runs in a worker thread).
        max_event_size: The largest serialized event accepted, in bytes.
        clock: Wall clock, seconds since the epoch.
        prepare: Per-event work done here for the writer's backend (the composition root gives
            the event log's row encoder): the event loop is mostly idle under load while the
            writer thread is the bottleneck, so the encoding is moved off it.
    """

    def __init__(
        self,
        writer: Publisher,
        list_events: EventLister,
        *,
        max_event_size: int = events.MAX_EVENT_SIZE_BYTES,
        clock: Callable[[], float] = time.time,
        prepare: Callable[[events.Event], Any] | None = None,
    ) -> None:
        self._writer = writer
        self._list_events = list_events
        self._max_size = max_event_size
        self._clock = clock
        self._prepare = prepare
        # The CPU-bound part of a batch (decode, validate, encode) runs on a thread of its own,
        # not on the event loop: under overload the loop stays free to answer health checks and
        # small calls (they wait for the GIL's next switch, not behind every batch in flight).
        self._decoder = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="automations-decode"
        )

    async def ingest(
        self,
        messages: Sequence[event_pb2.Event],
        results: Any,
        *,
        request_size: int | None = None,
    ) -> None:
        """Validates and commits one batch; adds one result per event, in order, to ``results``.

        Args:
            messages: The request's events.
            results: The response's repeated ``EventResult`` field, filled in place.
            request_size: The serialized size of the whole request when known: if it is within
                the event size limit, no event of it can exceed it, and the per-event size
                check is skipped.

        Raises:
            errors.InvalidArgument: On ``events`` if there are none (the protos require one).
            errors.ResourceExhausted: The engine is saturated (nothing of the batch was taken).
            errors.Unavailable: The engine is draining or the commit failed.
        """
        # Per-event work here runs on the event loop thread and competes for the GIL with the
        # writer thread: results are added to the response in place (``add``: ~0.4 us per event
        # instead of ~0.85 us for EventResult objects copied into the response) and the size of
        # every event is only computed when the whole request may be too large.
        start = time.perf_counter()
        now = self._clock()
        n = len(messages)
        if not n:
            raise errors.InvalidArgument(
                "events", "at least one event is required", reason="NO_EVENTS"
            )
        metrics.EVENTS_RECEIVED.inc(n)
        metrics.INGEST_BATCH_SIZE.observe(n)
        good, rejected, prepared = await asyncio.get_running_loop().run_in_executor(
            self._decoder, self._decode, messages, now, request_size
        )
        flags: list[bool] = []
        if good:
            try:
                flags = await self._writer.publish(good, prepared)
            except errors.AutomationsError as exc:
                metrics.EVENTS_REJECTED.labels(exc.reason).inc(len(good))
                raise
            accepted = sum(flags)
            metrics.EVENTS_ACCEPTED.inc(accepted)
            metrics.EVENTS_DUPLICATE.inc(len(good) - accepted)
        add = results.add
        if not rejected:
            for i, (event, new) in enumerate(zip(good, flags, strict=True)):
                add(index=i, event_id=event.id, status=ACCEPTED if new else DUPLICATE)
        else:
            outcomes = iter(zip(good, flags, strict=True))
            for i, message in enumerate(messages):
                error = rejected.get(i)
                if error is not None:
                    results.append(wire_events.rejected_event_result(i, message.id, error))
                else:
                    event, new = next(outcomes)
                    add(index=i, event_id=event.id, status=ACCEPTED if new else DUPLICATE)
        metrics.INGEST_LATENCY.observe(time.perf_counter() - start)

    def _decode(
        self, messages: Sequence[event_pb2.Event], now: float, request_size: int | None
    ) -> tuple[list[events.Event], dict[int, errors.InvalidArgument], list[Any] | None]:
        """The batch's valid events, its rejections by index, and the events' store rows."""
        good: list[events.Event] = []
        rejected: dict[int, errors.InvalidArgument] = {}
        max_size = self._max_size
        check_size = request_size is None or request_size > max_size
        from_proto = wire_events.event_from_proto
        validate = validation.validate_event
        for i, message in enumerate(messages):
            try:
                event = from_proto(message, received=now)
                validate(event, max_size=max_size, size=message.ByteSize() if check_size else None)
            except errors.InvalidArgument as exc:
                metrics.EVENTS_REJECTED.labels(exc.reason).inc()
                rejected[i] = exc
            else:
                good.append(event)
        prepare = self._prepare
        prepared = None if prepare is None or not good else [prepare(event) for event in good]
        return good, rejected, prepared

    async def PublishEvents(  # noqa: N802 - gRPC method name
        self, request: event_service_pb2.PublishEventsRequest, context: Any
    ) -> event_service_pb2.PublishEventsResponse:
        """Commits one batch and answers per event."""
        response = event_service_pb2.PublishEventsResponse()
        await self.ingest(request.events, response.results, request_size=request.ByteSize())
        return response

    async def StreamEvents(  # noqa: N802 - gRPC method name
        self, request_iterator: AsyncIterator[event_service_pb2.StreamEventsRequest], context: Any
    ) -> AsyncIterator[event_service_pb2.StreamEventsResponse]:
        """Answers each request with one response, in order; up to STREAM_WINDOW in flight."""
        inflight: asyncio.Queue[
            tuple[event_service_pb2.StreamEventsResponse, asyncio.Task[None]] | None
        ] = asyncio.Queue(STREAM_WINDOW)

        async def read() -> None:
            try:
                async for request in request_iterator:
                    response = event_service_pb2.StreamEventsResponse(sequence=request.sequence)
                    response.result.SetInParent()  # the oneof says "result" however it ends
                    task = asyncio.ensure_future(
                        self.ingest(
                            request.events,
                            response.result.results,
                            request_size=request.ByteSize(),
                        )
                    )
                    await inflight.put((response, task))
            finally:
                await inflight.put(None)

        reader = asyncio.ensure_future(read())
        try:
            while True:
                item = await inflight.get()
                if item is None:
                    break
                response, task = item
                try:
                    await task
                except errors.AutomationsError as exc:
                    yield event_service_pb2.StreamEventsResponse(
                        sequence=response.sequence, error=api_errors.to_rpc_status(exc)
                    )
                else:
                    yield response
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
        size = paging.page_size(request.page_size)
        for field, values in (
            ("event_names", request.event_names),
            ("resource_ids", request.resource_ids),
        ):
            if len(values) > MAX_FILTER_VALUES:
                raise errors.InvalidArgument(
                    field,
                    f"lists {len(values)} values; at most {MAX_FILTER_VALUES} are allowed",
                    reason="TOO_MANY_FILTER_VALUES",
                )
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
            page_size=size,
            page_token=request.page_token,
            newest_first=request.order_by == "occurred desc",
        )
        return event_service_pb2.ListEventsResponse(
            events=[wire_events.event_to_proto(e) for e in found], next_page_token=token
        )
