"""Reading one partition of the log in order, from a start sequence: an ordered pull consumer.

An owner stores, with its state, the stream sequence it last applied; on taking a partition it
reads from the next one. JetStream's consumer state is therefore never the truth and nothing is
acknowledged: the reader runs an ephemeral pull consumer (memory storage, one replica, no acks)
filtered to the partition's subject, and recreates it from the next undelivered sequence whenever
delivery may have skipped something.

This is the "ordered consumer" every NATS client implements, written out here rather than taken
from nats-py (2.16), whose ``ordered_consumer=True`` is a push consumer: its position advances
when a message arrives, before the subscription's pending limits may drop it, so a dropped message
is never redelivered; it restarts from the stream's sequence 1 when a consumer dies before its
first message; and a push consumer's flow-control window grows to 32 MiB, so a few readers
catching up on one connection overrun the server's 64 MiB per-connection limit, which then cuts
the connection (measured on nats-server 2.9.10). Here:

* one pull request at a time, of at most ``window`` bytes (``max_bytes``, nats-server >= 2.9),
  is outstanding, and the next one is sent once it is complete: a slow owner holds at most one
  window in memory and the server waits;
* the position advances only when an entry is handed over, and each message's consumer sequence
  is checked when it is taken: a sequence that is not the next one, or an idle heartbeat reporting
  more deliveries than were taken, recreates the consumer;
* no message and no heartbeat for two heartbeat intervals (the consumer is gone, e.g. the server
  restarted; nats-py reconnects the connection itself) recreates it, retrying until it can.

Entries already handed over are never delivered again, and none are skipped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging

import nats.aio.client
import nats.aio.msg
import nats.aio.subscription
import nats.errors
import nats.js.api
import nats.js.errors

from automations.cluster import log_encoding, log_errors
from automations.domain import events

_log = logging.getLogger(__name__)

SOURCE_PARTITION_HEADER = "Automations-Src-Partition"
"""A forwarded batch's source partition (absent on raw batches)."""
SOURCE_SEQUENCE_HEADER = "Automations-Src-Seq"
"""A forwarded batch's sequence in its source partition's stream."""

_STATUS = "Status"
_HEARTBEAT = "100"
_EXPIRED = "408"  # the pull request's time is up
_BUDGET_USED = "409"  # with "Message Size Exceeds MaxBytes": the request's bytes are used up
_LAST_CONSUMER = "Nats-Last-Consumer"
_REQUEST_SECONDS = 30.0
"""How long one pull request waits for messages (heartbeats meanwhile); then it is renewed."""
_INACTIVE_SECONDS = 120.0
"""How long the server keeps a consumer that nobody pulls from (a reader that died)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Source:
    """Where a forwarded batch comes from: a partition and its sequence in that stream."""

    partition: int
    sequence: int


@dataclasses.dataclass(frozen=True, slots=True)
class LogEntry:
    """One message read from a partition.

    Attributes:
        partition: The partition read.
        sequence: The message's stream sequence: commit it with the state it produced.
        payload: The batch's bytes (``log_encoding``).
        source: Where a forwarded batch comes from; None on raw batches.
        pending: How many messages of the partition were stored after this one when it was sent
            (the reader's lag behind the log at that moment).
    """

    partition: int
    sequence: int
    payload: bytes
    source: Source | None
    pending: int

    def events(self) -> list[events.Event]:
        """Decodes the batch's events (each call decodes again: keep the result)."""
        return log_encoding.decode_events(self.payload)


class _Closed:
    """Put in the queue when the reader closes."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Failed:
    error: BaseException


def _source(headers: dict[str, str] | None) -> Source | None:
    if not headers:
        return None
    partition = headers.get(SOURCE_PARTITION_HEADER)
    sequence = headers.get(SOURCE_SEQUENCE_HEADER)
    if partition is None or sequence is None:
        return None
    return Source(int(partition), int(sequence))


class PartitionReader:
    """Entries of one partition's subject in stream order, from a start sequence; no acks.

    Use as an async iterator (``async for entry in reader``) or with :meth:`next`; :meth:`close`
    ends both. Obtain one from ``JetStreamLog.open_reader``, which starts it. ``window`` must hold
    the largest message (the server's ``max_payload``).
    """

    def __init__(
        self,
        client: nats.aio.client.Client,
        *,
        stream: str,
        subject: str,
        partition: int,
        start: int,
        heartbeat: float,
        buffer: int,
        window: int,
        request_timeout: float,
    ) -> None:
        if start < 1:
            raise ValueError(f"start must be a stream sequence (>= 1), not {start}")
        self._client = client
        self._jsm = client.jsm(timeout=request_timeout)
        self._stream = stream
        self._subject = subject
        self._partition = partition
        self._next = start
        self._heartbeat = heartbeat
        self._silence = max(2 * heartbeat, heartbeat + 1.0)
        self._window = window
        self._queue: asyncio.Queue[LogEntry | _Closed | _Failed] = asyncio.Queue(buffer)
        self._subscription: nats.aio.subscription.Subscription | None = None
        self._consumer: str | None = None
        self._pump: asyncio.Task[None] | None = None
        self._closed = False
        self.recreated = 0
        """How many times the consumer was recreated (after a gap, a silence or an error)."""

    @property
    def partition(self) -> int:
        """The partition read."""
        return self._partition

    @property
    def position(self) -> int:
        """The next stream sequence the reader will hand over (one past the last handed over)."""
        return self._next

    async def start(self) -> None:
        """Creates the consumer and starts delivering.

        Raises:
            LogUnavailable: The consumer could not be created (no server, no stream).
        """
        await self._create()
        self._pump = asyncio.create_task(self._run(), name=f"log reader {self._subject}")

    def __aiter__(self) -> PartitionReader:
        return self

    async def __anext__(self) -> LogEntry:
        item = await self._queue.get()
        return self._unwrap(item)

    async def next(self, timeout: float | None = None) -> LogEntry | None:
        """Returns the next entry, or None when none comes within ``timeout`` seconds.

        Args:
            timeout: Seconds to wait; 0 takes only an entry already buffered; None waits.

        Raises:
            StopAsyncIteration: The reader is closed.
        """
        if timeout is not None and timeout <= 0:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                return None
        else:
            try:
                async with asyncio.timeout(timeout):
                    item = await self._queue.get()
            except TimeoutError:
                return None
        return self._unwrap(item)

    def _unwrap(self, item: LogEntry | _Closed | _Failed) -> LogEntry:
        if isinstance(item, LogEntry):
            return item
        self._queue.put_nowait(item)  # whoever asks next learns the same
        if isinstance(item, _Failed):
            raise item.error
        raise StopAsyncIteration

    async def close(self) -> None:
        """Stops reading and deletes the consumer; waiting readers get ``StopAsyncIteration``."""
        if self._closed:
            return
        self._closed = True
        if self._pump is not None:
            self._pump.cancel()
            try:
                await self._pump
            except asyncio.CancelledError:
                pass
        await self._discard()
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(_Closed())

    async def _create(self) -> None:
        """Subscribes a fresh inbox and creates a pull consumer starting at ``_next``."""
        client = self._client
        doing = f"reading {self._subject} from {self._next}"
        try:
            inbox = client.new_inbox()
            # a pull request brings at most one window: the limits are never reached
            subscription = await client.subscribe(
                inbox, pending_msgs_limit=1_000_000, pending_bytes_limit=4 * self._window
            )
        except Exception as exc:
            raise log_errors.from_client_error(exc, doing) from exc
        config = nats.js.api.ConsumerConfig(
            filter_subject=self._subject,
            deliver_policy=nats.js.api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=self._next,
            ack_policy=nats.js.api.AckPolicy.NONE,
            max_deliver=1,
            mem_storage=True,
            num_replicas=1,
            inactive_threshold=_INACTIVE_SECONDS,
        )
        try:
            info = await self._jsm.add_consumer(self._stream, config=config)
        except BaseException as exc:  # cancelled (closed meanwhile) included: leave nothing
            await self._unsubscribe(subscription)
            if isinstance(exc, Exception):
                raise log_errors.from_client_error(exc, doing) from exc
            raise
        self._subscription = subscription
        self._consumer = info.name

    async def _run(self) -> None:
        """Delivers until closed, recreating the consumer whenever delivery stops being exact."""
        try:
            while True:
                reason = await self._deliver()
                await self._discard()
                self.recreated += 1
                _log.info(
                    "log reader of %s recreates its consumer from %d: %s",
                    self._subject,
                    self._next,
                    reason,
                )
                await self._recreate()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug: the reader's user must hear of it
            _log.exception("log reader of %s failed", self._subject)
            await self._queue.put(_Failed(exc))

    async def _recreate(self) -> None:
        delay = min(self._heartbeat, 0.5)
        while True:
            try:
                await self._create()
                return
            except log_errors.LogUnavailable as exc:
                _log.debug(
                    "log reader of %s cannot recreate its consumer yet: %s", self._subject, exc
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _deliver(self) -> str:
        """Hands over entries from the current consumer; returns why it must be recreated."""
        subscription, consumer = self._subscription, self._consumer
        assert subscription is not None and consumer is not None
        messages = subscription.messages
        client = self._client
        pull = f"{nats.js.api.DEFAULT_PREFIX}.CONSUMER.MSG.NEXT.{self._stream}.{consumer}"
        expected = 1  # the next consumer sequence
        while True:
            request = {
                "batch": 1_000_000,  # bounded by max_bytes
                "max_bytes": self._window,
                "expires": int(_REQUEST_SECONDS * 1e9),
                "idle_heartbeat": int(self._heartbeat * 1e9),
            }
            await client.publish(pull, json.dumps(request).encode(), reply=subscription.subject)
            received = 0
            while True:  # until the request is complete
                try:
                    async with asyncio.timeout(self._silence):
                        msg = await messages.__anext__()
                except TimeoutError:
                    return f"no message or heartbeat for {self._silence:g} s"
                except StopAsyncIteration:
                    return "the subscription ended"
                headers = msg.headers
                status = headers.get(_STATUS) if headers else None
                if status is not None:
                    assert headers is not None
                    description = headers.get("Description", "")
                    if status == _HEARTBEAT:
                        last = headers.get(_LAST_CONSUMER)
                        if last is not None and int(last) >= expected:
                            return f"a heartbeat reports {last} deliveries, {expected - 1} received"
                        continue
                    if status == _EXPIRED:
                        break
                    if status == _BUDGET_USED and "MaxBytes" in description:
                        if not received:  # a message larger than the window: widen it
                            self._window *= 2
                        break
                    return f"status {status} {description}".strip()
                metadata = msg.metadata
                if metadata.sequence.consumer != expected:
                    return f"consumer sequence {metadata.sequence.consumer}, expected {expected}"
                expected += 1
                received += 1
                sequence = metadata.sequence.stream
                if sequence < self._next:
                    continue
                await self._queue.put(
                    LogEntry(
                        self._partition, sequence, msg.data, _source(headers), metadata.num_pending
                    )
                )
                self._next = sequence + 1

    async def _discard(self) -> None:
        """Drops the current subscription and deletes its consumer (best effort)."""
        subscription, self._subscription = self._subscription, None
        consumer, self._consumer = self._consumer, None
        if subscription is not None:
            await self._unsubscribe(subscription)
        if consumer is not None and self._client.is_connected:
            try:
                async with asyncio.timeout(1.0):
                    await self._jsm.delete_consumer(self._stream, consumer)
            except (TimeoutError, nats.errors.Error):
                pass  # an ephemeral consumer without interest goes away by itself

    async def _unsubscribe(self, subscription: nats.aio.subscription.Subscription) -> None:
        try:
            await subscription.unsubscribe()
        except nats.errors.Error:
            pass  # closed connection or subscription: nothing left to undo
