"""The bytes of one log message: a versioned batch of ``automations.v1.Event`` messages.

A batch is one version byte (:data:`VERSION`) followed by the events, each framed as protobuf
frames a ``repeated Event events = 1`` field: the tag byte ``0x0A``, the varint length, the
serialized ``Event``. Those frames are exactly the bytes of a ``PublishEventsRequest``, so a whole batch decodes
in one C-level parse (:func:`decode_messages`) and is built by concatenating bytes, with no new
proto message, generated code or client change. A different version byte is refused with
:class:`LogBatchCorrupt`, never guessed at; a new layout gets a new version.

Each event carries its own ``received`` time: the ingest's receive time is part of what the owner
evaluates (windows, deadlines, a missing ``occurred``), so a replay after a failover must see the
same value. :func:`encode_messages` stamps one receive time on messages as received from a client
(whose own ``received`` is output only and ignored); :func:`encode_events` takes domain events that
already carry theirs (lifecycle events relayed by an owner).

:func:`batch_id` is the deterministic ``Nats-Msg-Id`` of a batch: a retried identical request
yields the same id, so JetStream stores it once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from automations.domain import errors, events
from automations.v1 import event_pb2, event_service_pb2
from automations.wire import events as wire_events
from automations.wire import structs

VERSION = 1
"""The first byte of every batch this module writes."""

_VERSION_BYTE = bytes((VERSION,))
_EVENTS_TAG = b"\x0a"  # field 1 (``events``), wire type 2 (length-delimited)


class LogBatchCorrupt(errors.AutomationsError):
    """A log message is not a batch this version can read (unknown version byte or bad bytes)."""

    default_reason = "LOG_BATCH_CORRUPT"


class LogEncodingError(errors.InvalidArgument):
    """An event cannot be written to the log as given; ``field`` names what is wrong."""

    default_reason = "LOG_ENCODING"


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _received_suffix(received: float) -> bytes:
    """The serialized ``received`` field of an ``Event`` (appended to a serialized message)."""
    timestamp = event_pb2.Event()
    structs.set_timestamp(timestamp.received, received)
    return timestamp.SerializeToString()


def encode_messages(messages: Iterable[event_pb2.Event], *, received: float) -> bytes:
    """Returns the batch of client messages, each stamped with ``received``.

    A message's own ``received`` (output only on the API) is replaced, on a copy; the caller's
    messages are not changed.

    Args:
        messages: Validated events as received, in the order their owner is to process them.
        received: The ingest's receive time, seconds since the epoch (> 0).

    Raises:
        LogEncodingError: ``received`` is not a positive time.
    """
    if not received > 0:
        raise LogEncodingError("received", f"the receive time must be positive, not {received!r}")
    suffix = _received_suffix(received)
    parts = [_VERSION_BYTE]
    append = parts.append
    for message in messages:
        if message.HasField("received"):
            copy = event_pb2.Event()
            copy.CopyFrom(message)
            copy.ClearField("received")
            message = copy
        body = message.SerializeToString()
        append(_EVENTS_TAG)
        append(_varint(len(body) + len(suffix)))
        append(body)
        append(suffix)
    return b"".join(parts)


def encode_events(batch: Iterable[events.Event]) -> bytes:
    """Returns the batch of domain events, each with its own ``received`` time.

    Raises:
        LogEncodingError: An event has no receive time (``received`` 0): the log would lose it.
    """
    parts = [_VERSION_BYTE]
    append = parts.append
    for event in batch:
        if not event.received > 0:
            raise LogEncodingError(
                "received", f"event {event.id!r} has no receive time; the log needs one"
            )
        body = wire_events.event_to_proto(event).SerializeToString()
        append(_EVENTS_TAG)
        append(_varint(len(body)))
        append(body)
    return b"".join(parts)


def decode_messages(payload: bytes) -> Sequence[event_pb2.Event]:
    """Returns the ``Event`` messages of a batch, in order (``received`` set on each).

    Raises:
        LogBatchCorrupt: An empty payload, an unknown version byte, or bytes that do not parse.
    """
    if not payload:
        raise LogBatchCorrupt("an empty log message is not a batch")
    if payload[0] != VERSION:
        raise LogBatchCorrupt(
            f"log batch version {payload[0]} is not readable here (this engine reads {VERSION})"
        )
    request = event_service_pb2.PublishEventsRequest()
    try:
        request.ParseFromString(payload[1:])
    except Exception as exc:  # protobuf's DecodeError, whichever implementation raises it
        raise LogBatchCorrupt(f"log batch does not parse: {exc}") from exc
    return request.events


def decode_events(payload: bytes) -> list[events.Event]:
    """Returns the domain events of a batch, in order, with the ``received`` each was logged with.

    Not validated again: only validated events are written (:func:`encode_messages`).

    Raises:
        LogBatchCorrupt: As :func:`decode_messages`.
    """
    from_proto = wire_events.event_from_proto
    to_seconds = structs.timestamp_to_seconds
    return [
        from_proto(message, received=to_seconds(message.received))
        for message in decode_messages(payload)
    ]


def batch_id(partition: int, event_ids: Iterable[str]) -> str:
    """Returns the ``Nats-Msg-Id`` of a batch: a digest of its partition and sorted event ids.

    The same events for the same partition give the same id whatever their order, so a client
    retrying a request (on this replica or another) publishes a duplicate that JetStream drops
    within its duplicate window.
    """
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{partition}".encode())
    for event_id in sorted(event_ids):
        digest.update(b"\x00")
        digest.update(event_id.encode())
    return f"b:{partition}:{digest.hexdigest()}"
