"""``automations.Client``: a small typed client over the generated gRPC stubs.

For programs that would rather not handle raw stubs. Automations and events go in and come out as
Prefect's JSON (plain dicts, as in automation files and event lines), converted with the same
functions the command line and the server use (``wire.automations``, ``domain.prefect_json``,
``wire.events``), so a client-side check fails with the server's reason and field path::

    import automations

    with automations.Client("127.0.0.1:50051") as client:
        created = client.create_automation(automation_json)
        results = client.publish(events, raise_on_rejected=True)
        for firing in client.list_firings(created["id"]):
            print(firing["triggered"], firing["triggering_labels"])

Over TLS, with a client certificate (mTLS) and the engine's API token::

    pem = pathlib.Path
    client = automations.Client(
        "engine.example:50051",
        root_certificates=pem("ca.pem").read_bytes(),
        private_key=pem("client.key").read_bytes(),
        certificate_chain=pem("client.pem").read_bytes(),
        token=os.environ["AUTOMATIONS_API_TOKEN"],
    )

Errors::

    ClientError                 every error raised here
    +-- CallError               a call failed (or a request was refused before it was sent):
    |                           ``code`` (grpc.StatusCode), ``reason`` (AIP-193 ErrorInfo),
    |                           ``field`` (the BadRequest field path)
    +-- EventsRejected          ``publish(..., raise_on_rejected=True)`` with rejected events

``publish`` retries a batch refused with RESOURCE_EXHAUSTED (the engine is behind) or UNAVAILABLE
(starting, draining, unreachable) with exponential backoff and jitter: publishing is idempotent
by event id, so a resent batch never counts twice.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Literal, TypeVar

import grpc
from google.protobuf import message as message_
from grpc_status import rpc_status

from automations import transport
from automations.client import _paging
from automations.domain import errors, prefect_json
from automations.v1 import (
    automation_pb2,
    automation_service_pb2,
    automation_service_pb2_grpc,
    event_pb2,
    event_service_pb2,
    event_service_pb2_grpc,
    firing_pb2,
)
from automations.wire import automations as wire_automations
from automations.wire import events as wire_events
from automations.wire import names, structs

__all__ = ["CallError", "Client", "ClientError", "EventResult", "EventsRejected"]

T = TypeVar("T")
DEFAULT_TARGET = "127.0.0.1:50051"
"""The engine's default address (``automations serve --grpc-addr``)."""
_RETRYABLE = (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE)
_STATUS_NAMES: Mapping[int, Literal["accepted", "duplicate", "rejected"]] = {
    event_service_pb2.EVENT_STATUS_ACCEPTED: "accepted",
    event_service_pb2.EVENT_STATUS_DUPLICATE: "duplicate",
    event_service_pb2.EVENT_STATUS_REJECTED: "rejected",
}

EventInput = Mapping[str, Any] | event_pb2.Event
"""An event to publish: Prefect's event JSON (a missing ``id`` gets a random UUID, a missing
``occurred`` the current time) or an ``automations.v1.Event`` message."""


class ClientError(Exception):
    """Base class of the errors ``Client`` raises."""


class CallError(ClientError):
    """A call failed, or a request was refused before it was sent.

    A request refused by the client-side checks has ``code`` INVALID_ARGUMENT, the server's
    answer to it.

    Attributes:
        code: The gRPC status code.
        message: The status message.
        reason: The ``google.rpc.ErrorInfo`` reason (UPPER_SNAKE), or "".
        field: The offending field's path (Prefect's JSON names, e.g.
            ``trigger.triggers[1].within``), or "".
    """

    def __init__(
        self, code: grpc.StatusCode, message: str, *, reason: str = "", field: str = ""
    ) -> None:
        text = f"{code.name}: {message}"
        if reason:
            text += f" (reason {reason})"
        super().__init__(text)
        self.code = code
        self.message = message
        self.reason = reason
        self.field = field

    @classmethod
    def from_rpc_error(cls, exc: grpc.RpcError) -> CallError:
        """Returns the error for a failed call, with its ErrorInfo reason and BadRequest field."""
        from google.rpc import error_details_pb2

        reason = field = ""
        status = rpc_status.from_call(exc)
        if status is not None:
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                bad = error_details_pb2.BadRequest()
                if detail.Unpack(info):
                    reason = info.reason
                elif detail.Unpack(bad) and bad.field_violations:
                    field = bad.field_violations[0].field
        return cls(exc.code(), exc.details() or "", reason=reason, field=field)

    @classmethod
    def from_invalid(cls, exc: errors.InvalidArgument) -> CallError:
        """Returns the error for a request refused by the client-side checks."""
        return cls(grpc.StatusCode.INVALID_ARGUMENT, str(exc), reason=exc.reason, field=exc.field)


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


class EventsRejected(ClientError):
    """Some published events were rejected (``publish(..., raise_on_rejected=True)``).

    Every other event was published. Attributes: ``results`` (one per event) and ``rejected``.
    """

    def __init__(self, results: list[EventResult]) -> None:
        self.results = results
        self.rejected = [r for r in results if not r.ok]
        lines = "\n".join(f"  {r}" for r in self.rejected)
        super().__init__(f"{len(self.rejected)} of {len(results)} events rejected:\n{lines}")


class Client:
    """A synchronous client of one engine; use it as a context manager or call ``close()``.

    Args:
        target: The engine's ``host:port``.
        timeout: Deadline of each call, in seconds.
        batch_size: How many events ``publish`` sends per PublishEvents call.
        max_attempts: How often ``publish`` sends one batch before giving up on
            RESOURCE_EXHAUSTED / UNAVAILABLE.
        channel: A channel to use instead of one opened to ``target``; ``close()`` does not
            close it (and the TLS and token arguments do not apply to it).
        tls: Use TLS, verifying the server against the system's root certificates (implied by
            ``root_certificates`` and ``certificate_chain``).
        root_certificates: PEM CA bundle verifying the server's certificate (TLS).
        private_key: PEM private key of a client certificate (mTLS, with ``certificate_chain``).
        certificate_chain: PEM client certificate chain (mTLS, with ``private_key``).
        token: The engine's API bearer token (``api_token``), sent with every call.

    Raises:
        ValueError: Only one of ``private_key`` and ``certificate_chain`` is given.
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        timeout: float = 30.0,
        batch_size: int = 500,
        max_attempts: int = 10,
        channel: grpc.Channel | None = None,
        tls: bool = False,
        root_certificates: bytes | None = None,
        private_key: bytes | None = None,
        certificate_chain: bytes | None = None,
        token: str | None = None,
    ) -> None:
        if batch_size < 1 or max_attempts < 1:
            raise ValueError("batch_size and max_attempts must be at least 1")
        self._own_channel = channel is None
        self._channel: grpc.Channel = channel or transport.open_channel(
            target,
            tls=tls,
            root_certificates=root_certificates,
            private_key=private_key,
            certificate_chain=certificate_chain,
            token=token,
            options=[
                ("grpc.max_send_message_length", 64 << 20),
                ("grpc.max_receive_message_length", 64 << 20),
            ],
        )
        self._events = event_service_pb2_grpc.EventServiceStub(self._channel)
        self._automations = automation_service_pb2_grpc.AutomationServiceStub(self._channel)
        self.timeout = timeout
        self.batch_size = batch_size
        self.max_attempts = max_attempts

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Closes the channel (unless it was given to the constructor)."""
        if self._own_channel:
            self._channel.close()

    # ----------------------------------------------------------------------------- events

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
                    raise CallError.from_rpc_error(exc) from None
            time.sleep(delay * random.uniform(0.5, 1.0))  # jitter
            delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------------ automations

    def create_automation(
        self, automation: Mapping[str, Any], *, automation_id: str = ""
    ) -> dict[str, Any]:
        """Creates an automation from Prefect's automation JSON.

        Args:
            automation: The automation, as in an automation file (``name``, ``trigger``,
                ``actions``, ...). Validated here first, with the server's checks.
            automation_id: The id to give it; default: one the server picks (a UUID). An ``id``
                in ``automation`` is ignored, so the output of ``get_automation`` can be created
                again as a copy.

        Returns:
            The new automation as Prefect's JSON, with its ``id``, ``created`` and ``updated``.

        Raises:
            CallError: INVALID_ARGUMENT with the bad field's path, ALREADY_EXISTS, ...
        """
        try:
            message = wire_automations.automation_proto_from_prefect_json(automation)
        except errors.InvalidArgument as exc:
            raise CallError.from_invalid(exc) from None
        message.ClearField("name")
        message.ClearField("uid")
        request = automation_service_pb2.CreateAutomationRequest(
            automation=message, automation_id=automation_id
        )
        created = self._call(
            lambda: self._automations.CreateAutomation(request, timeout=self.timeout)
        )
        return wire_automations.automation_to_prefect_json(created)

    def update_automation(
        self, automation_id: str, automation: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Replaces an automation's definition (Prefect's PUT) and returns it as Prefect's JSON.

        Raises:
            CallError: NOT_FOUND, INVALID_ARGUMENT with the bad field's path, ...
        """
        try:
            message = wire_automations.automation_proto_from_prefect_json(automation)
        except errors.InvalidArgument as exc:
            raise CallError.from_invalid(exc) from None
        message.name = names.automation_name(automation_id)
        message.etag = ""
        request = automation_service_pb2.UpdateAutomationRequest(automation=message)
        updated = self._call(
            lambda: self._automations.UpdateAutomation(request, timeout=self.timeout)
        )
        return wire_automations.automation_to_prefect_json(updated)

    def get_automation(self, automation_id: str) -> dict[str, Any]:
        """Returns one automation as Prefect's JSON.

        Raises:
            CallError: NOT_FOUND if there is none with that id.
        """
        request = automation_service_pb2.GetAutomationRequest(
            name=names.automation_name(automation_id)
        )
        found = self._call(lambda: self._automations.GetAutomation(request, timeout=self.timeout))
        return wire_automations.automation_to_prefect_json(found)

    def list_automations(self, *, limit: int | None = None) -> list[dict[str, Any]]:
        """Returns the automations (oldest first) as Prefect's JSON, following pages.

        Args:
            limit: At most this many; default all.
        """

        def fetch(token: str, size: int) -> tuple[list[Any], str]:
            request = automation_service_pb2.ListAutomationsRequest(
                page_size=size, page_token=token
            )
            reply = self._call(
                lambda: self._automations.ListAutomations(request, timeout=self.timeout)
            )
            return list(reply.automations), reply.next_page_token

        return [wire_automations.automation_to_prefect_json(a) for a in _paging.pages(fetch, limit)]

    def delete_automation(self, automation_id: str) -> None:
        """Deletes an automation and its trigger state (its firings are kept).

        Raises:
            CallError: NOT_FOUND if there is none with that id.
        """
        request = automation_service_pb2.DeleteAutomationRequest(
            name=names.automation_name(automation_id)
        )
        self._call(lambda: self._automations.DeleteAutomation(request, timeout=self.timeout))

    # ---------------------------------------------------------------------------- firings

    def list_firings(
        self, automation_id: str | None = None, *, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Returns firings, newest first, following pages.

        Each firing is a dict: ``id``, ``automation_id``, ``trigger_id``, ``trigger_type``,
        ``posture``, ``triggered`` (ISO 8601), ``triggering_event_id``, ``triggering_event``
        (Prefect's event JSON, or None), ``triggering_labels`` and ``child_firings``.

        Args:
            automation_id: Only this automation's firings; default every automation's.
            limit: At most this many; default all.
        """
        parent = names.automation_name(automation_id) if automation_id else ""

        def fetch(token: str, size: int) -> tuple[list[Any], str]:
            request = automation_service_pb2.ListFiringsRequest(
                parent=parent, page_size=size, page_token=token
            )
            reply = self._call(lambda: self._automations.ListFirings(request, timeout=self.timeout))
            return list(reply.firings), reply.next_page_token

        return [_firing_json(f) for f in _paging.pages(fetch, limit)]

    # ---------------------------------------------------------------------------- helpers

    @staticmethod
    def _call(fn: Callable[[], T]) -> T:
        try:
            return fn()
        except grpc.RpcError as exc:
            raise CallError.from_rpc_error(exc) from None


def _event_message(item: EventInput, now: float) -> event_pb2.Event:
    if isinstance(item, message_.Message):
        return item
    if not isinstance(item, Mapping):
        raise errors.InvalidArgument(
            "", "an event must be a JSON object or an Event", reason="INVALID_EVENT"
        )
    event = prefect_json.parse_event(item, now=now)
    return wire_events.event_to_proto(dataclasses.replace(event, received=0.0))


_TRIGGER_TYPES = {
    firing_pb2.TRIGGER_TYPE_EVENT: "event",
    firing_pb2.TRIGGER_TYPE_COMPOUND: "compound",
    firing_pb2.TRIGGER_TYPE_SEQUENCE: "sequence",
}
_POSTURES = {
    automation_pb2.POSTURE_REACTIVE: "Reactive",
    automation_pb2.POSTURE_PROACTIVE: "Proactive",
}


def _firing_json(firing: firing_pb2.Firing) -> dict[str, Any]:
    event = None
    if firing.HasField("triggering_event"):
        message = firing.triggering_event
        event = prefect_json.dump_event(
            wire_events.event_from_proto(
                message,
                received=structs.timestamp_to_seconds(message.received),
                lazy_payload=False,
            )
        )
    return {
        "id": firing.uid,
        "automation_id": firing.automation.split("/", 1)[-1],
        "trigger_id": firing.trigger_id,
        "trigger_type": _TRIGGER_TYPES.get(firing.trigger_type, ""),
        "posture": _POSTURES.get(firing.posture),
        "triggered": prefect_json.iso_time(structs.timestamp_to_seconds(firing.fire_time)),
        "triggering_event_id": firing.triggering_event_id or None,
        "triggering_event": event,
        "triggering_labels": dict(firing.triggering_labels),
        "child_firings": [_firing_json(child) for child in firing.child_firings],
    }
