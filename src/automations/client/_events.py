"""The client's event calls: ``publish`` (batched, retried) and ``list_events``."""

from __future__ import annotations

import dataclasses
import itertools
import random
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import grpc
from google.protobuf import message as message_

from automations.client import _base, _errors, _paging
from automations.domain import errors, prefect_json
from automations.v1 import event_pb2, event_service_pb2
from automations.wire import events as wire_events
from automations.wire import structs

_RETRYABLE = (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE)
_STATUS_NAMES: Mapping[int, Literal["accepted", "duplicate", "rejected"]] = {
    event_service_pb2.EVENT_STATUS_ACCEPTED: "accepted",
    event_service_pb2.EVENT_STATUS_DUPLICATE: "duplicate",
    event_service_pb2.EVENT_STATUS_REJECTED: "rejected",
}

EventInput = Mapping[str, Any] | event_pb2.Event
"""An event to publish: Prefect's event JSON (a missing ``id`` gets a random UUID, a missing
``occurred`` the current time) or an ``automations.v1.Event`` message."""


@dataclasses.dataclass(frozen=True, slots=True)
class EventResult:
    """What happened to one published event.

    Attributes:
        index: The event's position in the events given to ``publish``, from 0.
        event_id: The event's id (as sent, or as generated for an event without one).
        status: ``accepted`` (new and stored), ``duplicate`` (an event with this id was accepted
            before: success for a resend) or ``rejected`` (invalid; resending fails the same way).
        reason: For a rejected event, the UPPER_SNAKE reason, e.g. ``MISSING_RESOURCE_ID``.
        field: For a rejected event, the offending field's path, e.g. ``resource``.
        message: For a rejected event, a human-readable explanation.
    """

    index: int
    event_id: str
    status: Literal["accepted", "duplicate", "rejected"]
    reason: str = ""
    field: str = ""
    message: str = ""

    @property
    def ok(self) -> bool:
        """Whether the event is stored (accepted now or before)."""
        return self.status != "rejected"

    def __str__(self) -> str:
        if self.ok:
            return f"event {self.index} ({self.event_id}): {self.status}"
        where = f"{self.field}: " if self.field else ""
        return f"event {self.index} ({self.event_id}): {self.reason} {where}{self.message}"


class EventsRejected(_errors.ClientError):
    """Some published events were rejected (``publish(..., raise_on_rejected=True)``).

    Every other event was published. Attributes: ``results`` (one per event) and ``rejected``.
    """

    def __init__(self, results: list[EventResult]) -> None:
        self.results = results
        self.rejected = [r for r in results if not r.ok]
        lines = "\n".join(f"  {r}" for r in self.rejected)
        super().__init__(f"{len(self.rejected)} of {len(results)} events rejected:\n{lines}")


class EventCalls(_base.Calls):
    """``publish`` and ``list_events`` (mixed into ``automations.Client``)."""

    batch_size: int
    """How many events ``publish`` sends per PublishEvents call."""
    max_attempts: int
    """How often ``publish`` sends one batch before giving up on RESOURCE_EXHAUSTED/UNAVAILABLE."""

    def publish(
        self, events: Iterable[EventInput], *, raise_on_rejected: bool = False
    ) -> list[EventResult]:
        """Publishes events in batches of ``batch_size``, retrying refused batches.

        An event that fails the client-side parse (e.g. no ``event`` name) is reported as
        rejected without being sent, like one the server rejects.

        Args:
            events: Prefect event dicts or ``automations.v1.Event`` messages, in order.
            raise_on_rejected: Raise ``EventsRejected`` if any event was rejected (after
                publishing all the others).

        Returns:
            One result per event, in the given order.

        Raises:
            CallError: A batch failed for good (another status code, or still refused after
                ``max_attempts``); the batches before it are published.
            EventsRejected: With ``raise_on_rejected``, when some events were rejected.
        """
        results: list[EventResult] = []
        numbered = enumerate(events)
        while chunk := list(itertools.islice(numbered, self.batch_size)):
            messages: list[event_pb2.Event] = []
            positions: list[int] = []
            now = time.time()
            for index, item in chunk:
                if isinstance(item, Mapping) and not item.get("id"):
                    item = {**item, "id": str(uuid.uuid4())}  # the copy is what is sent
                try:
                    messages.append(_event_message(item, now))
                    positions.append(index)
                except errors.InvalidArgument as exc:
                    event_id = item.get("id") if isinstance(item, Mapping) else ""
                    results.append(
                        EventResult(
                            index,
                            str(event_id or ""),
                            "rejected",
                            exc.reason,
                            exc.field,
                            exc.description,
                        )
                    )
            if messages:
                request = event_service_pb2.PublishEventsRequest(events=messages)
                reply = self._publish_batch(request)
                for result in reply.results:
                    results.append(
                        EventResult(
                            positions[result.index],
                            result.event_id,
                            _STATUS_NAMES.get(result.status, "rejected"),
                            result.reason,
                            result.field,
                            result.message,
                        )
                    )
        results.sort(key=lambda r: r.index)
        if raise_on_rejected and any(not r.ok for r in results):
            raise EventsRejected(results)
        return results

    def _publish_batch(
        self, request: event_service_pb2.PublishEventsRequest
    ) -> event_service_pb2.PublishEventsResponse:
        delay = 0.05
        for attempt in range(1, self.max_attempts + 1):
            try:
                reply: event_service_pb2.PublishEventsResponse = self._events.PublishEvents(
                    request, timeout=self.timeout
                )
                return reply
            except grpc.RpcError as exc:
                if exc.code() not in _RETRYABLE or attempt == self.max_attempts:
                    raise _errors.CallError.from_rpc_error(exc) from None
            time.sleep(delay * random.uniform(0.5, 1.0))  # jitter
            delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")

    def list_events(
        self,
        *,
        names: Sequence[str] = (),
        resource_ids: Sequence[str] = (),
        start: float | None = None,
        end: float | None = None,
        newest_first: bool = False,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Returns stored events as Prefect's event JSON (with ``received``), following pages.

        Args:
            names: Event-name patterns (exact, or with ``*``); any may match. Empty: all.
            resource_ids: Primary resource ids (exact, or with ``*``); any may match. Empty: all.
            start: Only events that occurred at or after this time (seconds since the epoch).
            end: Only events that occurred before this time.
            newest_first: Newest first instead of oldest first (by ``occurred``, then id).
            limit: At most this many; default all.
        """
        request = event_service_pb2.ListEventsRequest(
            event_names=list(names),
            resource_ids=list(resource_ids),
            order_by="occurred desc" if newest_first else "",
        )
        if start is not None:
            request.start_time.CopyFrom(structs.seconds_to_timestamp(start))
        if end is not None:
            request.end_time.CopyFrom(structs.seconds_to_timestamp(end))

        def fetch(token: str, size: int) -> tuple[list[Any], str]:
            request.page_token = token
            request.page_size = size
            reply = self._call(lambda: self._events.ListEvents(request, timeout=self.timeout))
            return list(reply.events), reply.next_page_token

        return [wire_events.event_message_to_json(e) for e in _paging.pages(fetch, limit)]


def _event_message(item: EventInput, now: float) -> event_pb2.Event:
    if isinstance(item, message_.Message):
        return item
    if not isinstance(item, Mapping):
        raise errors.InvalidArgument(
            "", "an event must be a JSON object or an Event", reason="INVALID_EVENT"
        )
    event = prefect_json.parse_event(item, now=now)
    return wire_events.event_to_proto(dataclasses.replace(event, received=0.0))


def event_message(item: Mapping[str, Any]) -> event_pb2.Event:
    """Returns Prefect's event JSON as an ``Event`` message, ``occurred`` unset when absent.

    A missing ``id`` gets a random UUID.

    Raises:
        errors.InvalidArgument: The event is malformed (its field named).
    """
    if not isinstance(item, Mapping):
        raise errors.InvalidArgument("", "an event must be a JSON object", reason="INVALID_EVENT")
    data = item if item.get("id") else {**item, "id": str(uuid.uuid4())}
    message = _event_message(data, 0.0)
    if "occurred" not in data:
        message.ClearField("occurred")
    return message
