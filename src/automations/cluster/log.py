"""The cluster's durable log on NATS JetStream: publishing, reading and purging partitions.

The streams (RAW: events as ingested; FWD: work forwarded between partitions) and their settings
are ``log_streams``'s. A message is a batch of up to a few hundred events (``log_encoding``) with
a deterministic ``Nats-Msg-Id``: JetStream answers one PubAck per message (a few thousand a second
from Python), so per-event messages would cap ingest far below the engine's rate.
:meth:`JetStreamLog.publish` pipelines the messages of a call and returns only once every PubAck
is in. A forwarded batch carries its source partition and sequence as NATS headers
(``Automations-Src-Partition``, ``Automations-Src-Seq``). Readers (``log_reader``) consume one
partition from a stream sequence, without acks: the sequence an owner has applied is stored with
its state in PostgreSQL, not in JetStream.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import weakref
from collections.abc import Iterable, Sequence

import nats.aio.client
import nats.errors
import nats.js.api
import nats.js.errors

from automations.cluster import log_errors, log_reader, log_streams

_log = logging.getLogger(__name__)

_HEADER_LINE = len(b"NATS/1.0\r\n") + len(b"\r\n")
_MSG_ID = nats.js.api.Header.MSG_ID.value
_EXPECTED_STREAM = nats.js.api.Header.EXPECTED_STREAM.value


@dataclasses.dataclass(frozen=True, slots=True)
class Batch:
    """One message to publish: a partition's encoded batch and its deterministic id.

    Attributes:
        partition: The partition whose subject it goes to.
        payload: ``log_encoding`` bytes.
        msg_id: The ``Nats-Msg-Id`` (``log_encoding.batch_id``, or the relay's own id): the same
            id within the duplicate window is stored once.
        source: On a forwarded batch, its source partition and sequence (sent as headers).
    """

    partition: int
    payload: bytes
    msg_id: str
    source: log_reader.Source | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Published:
    """Where a batch was stored: its stream sequence, and whether it was a duplicate.

    A duplicate's sequence is that of the message stored first with the same id.
    """

    partition: int
    sequence: int
    duplicate: bool


def _headers(stream: str, batch: Batch) -> dict[str, str]:
    headers = {_MSG_ID: batch.msg_id, _EXPECTED_STREAM: stream}
    if batch.source is not None:
        headers[log_reader.SOURCE_PARTITION_HEADER] = str(batch.source.partition)
        headers[log_reader.SOURCE_SEQUENCE_HEADER] = str(batch.source.sequence)
    return headers


def _message_size(headers: dict[str, str], payload: bytes) -> int:
    """The bytes the server counts against its ``max_payload``: headers as nats-py writes them."""
    header_bytes = _HEADER_LINE + sum(len(k) + len(v.encode()) + 4 for k, v in headers.items())
    return header_bytes + len(payload)


async def _close_quietly(client: nats.aio.client.Client) -> None:
    """Closes the connection; one already lost may fail to flush what it holds, which is moot."""
    if client.is_closed:
        return
    try:
        await client.close()
    except (nats.errors.Error, OSError):
        pass


class JetStreamLog:
    """The log of one cluster on one NATS connection: set-up, publishing, reading, retention.

    Obtain one with :meth:`connect`; :meth:`close` closes its readers and the connection.
    """

    HEADER_ALLOWANCE = 512
    """Bytes of headers a batch may need besides its payload (ids, stream, source)."""

    def __init__(
        self,
        client: nats.aio.client.Client,
        settings: log_streams.LogSettings,
        *,
        request_timeout: float = 5.0,
    ) -> None:
        self._client = client
        self._settings = settings
        self._timeout = request_timeout
        self._js = client.jetstream(timeout=request_timeout)
        self._jsm = client.jsm(timeout=request_timeout)
        self._readers: weakref.WeakSet[log_reader.PartitionReader] = weakref.WeakSet()

    @classmethod
    async def connect(
        cls,
        servers: str | Sequence[str],
        settings: log_streams.LogSettings | None = None,
        *,
        connect_timeout: float = 5.0,
        request_timeout: float = 5.0,
        name: str | None = None,
    ) -> JetStreamLog:
        """Connects to NATS and checks that JetStream answers.

        Once connected, the client reconnects by itself for as long as the log is open.

        Args:
            servers: ``nats://host:port`` URL(s).
            settings: Stream naming and retention; default :class:`log_streams.LogSettings`.
            connect_timeout: Seconds the first connection may take, retries included.
            request_timeout: Seconds a publish (all its PubAcks) or an API request may take.
            name: The connection's name, as the server lists it.

        Raises:
            LogUnavailable: No server answered in time, or JetStream is not enabled.
        """
        client = nats.aio.client.Client()

        async def on_error(exc: Exception) -> None:
            _log.debug("NATS client: %s: %s", type(exc).__name__, exc)

        async def on_disconnected() -> None:
            if not client.is_closed:  # not our own close()
                _log.warning("NATS connection lost; reconnecting")

        async def on_reconnected() -> None:
            _log.warning("NATS connection restored")

        where = servers if isinstance(servers, str) else ", ".join(servers)
        try:
            async with asyncio.timeout(connect_timeout):
                await client.connect(
                    servers=[servers] if isinstance(servers, str) else list(servers),
                    name=name,
                    connect_timeout=max(1, math.ceil(min(connect_timeout, 2.0))),
                    reconnect_time_wait=0.5,  # type: ignore[arg-type] # seconds; a fraction works
                    max_reconnect_attempts=-1,
                    error_cb=on_error,
                    disconnected_cb=on_disconnected,
                    reconnected_cb=on_reconnected,
                )
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            await _close_quietly(client)
            raise log_errors.LogUnavailable(
                f"no NATS server answered at {where} within {connect_timeout:g} s"
            ) from exc
        try:
            await client.jsm(timeout=request_timeout).account_info()
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            await _close_quietly(client)
            raise log_errors.LogUnavailable(
                f"NATS at {where} answers but JetStream does not (is the server started with -js?)"
            ) from exc
        return cls(client, settings or log_streams.LogSettings(), request_timeout=request_timeout)

    @property
    def settings(self) -> log_streams.LogSettings:
        """The streams' naming and retention."""
        return self._settings

    @property
    def max_batch_bytes(self) -> int:
        """The largest payload a batch may have: the server's ``max_payload`` less headers."""
        return self._client.max_payload - self.HEADER_ALLOWANCE

    async def close(self) -> None:
        """Closes every reader opened here, then the connection."""
        for reader in list(self._readers):
            await reader.close()
        await _close_quietly(self._client)

    async def ensure_streams(self) -> None:
        """Creates both streams, or checks and updates existing ones (``log_streams.ensure``).

        Raises:
            LogStreamMismatch: A stream exists with settings this cluster cannot use.
            LogUnavailable: JetStream cannot be reached.
        """
        await log_streams.ensure(self._jsm, self._settings)

    async def delete_streams(self) -> None:
        """Deletes both streams and everything in them (tests, and tearing a cluster down)."""
        await log_streams.delete(self._jsm, self._settings)

    async def publish(
        self, stage: log_streams.Stage, batches: Sequence[Batch], *, timeout: float | None = None
    ) -> list[Published]:
        """Publishes batches, pipelined, and returns once every one is stored (or known stored).

        Nothing is sent when a batch is too large. Otherwise a failure may leave some batches
        stored and others not (and a batch sent while the connection was down may still be
        stored after this raised): publish the same batches, with the same ids, again.

        Args:
            stage: The stream.
            batches: The messages, in the order they are to be stored (per partition).
            timeout: Seconds for the whole call; default the log's request timeout.

        Returns:
            One result per batch, in order: its stream sequence and whether it was a duplicate.

        Raises:
            LogMessageTooLarge: A batch (payload and headers) exceeds the server's max_payload.
            LogUnavailable: The server or the stream did not answer in time.
            LogError: JetStream refused a message.
        """
        settings = self._settings
        stream = settings.stream(stage)
        limit = self._client.max_payload
        prepared: list[tuple[str, bytes, dict[str, str]]] = []
        for batch in batches:
            headers = _headers(stream, batch)
            size = _message_size(headers, batch.payload)
            if size > limit:
                raise log_errors.LogMessageTooLarge(
                    f"a batch for partition {batch.partition} is {size} bytes with its headers;"
                    f" the NATS server accepts at most {limit} (split it)"
                )
            prepared.append((settings.subject(stage, batch.partition), batch.payload, headers))
        futures: list[asyncio.Future[nats.js.api.PubAck]] = []
        doing = f"publishing {len(prepared)} batches to {stream}"
        try:
            async with asyncio.timeout(self._timeout if timeout is None else timeout):
                for subject, payload, headers in prepared:
                    futures.append(await self._js.publish_async(subject, payload, headers=headers))
                acks = await asyncio.gather(*futures)
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            raise log_errors.from_client_error(exc, doing) from exc
        finally:
            for future in futures:
                future.cancel()  # no-op once done; frees the client's slot otherwise
        return [
            Published(batch.partition, ack.seq, bool(ack.duplicate))
            for batch, ack in zip(batches, acks, strict=True)
        ]

    async def last_sequence(self, stage: log_streams.Stage, partition: int) -> int:
        """The stream sequence of the partition's last stored message; 0 when none is stored.

        "None stored" includes a partition purged up to its last message. An owner's lag is
        ``max(0, last_sequence - committed)``.

        Raises:
            LogUnavailable: The server or the stream did not answer in time.
        """
        stream = self._settings.stream(stage)
        subject = self._settings.subject(stage, partition)
        try:
            message = await self._jsm.get_last_msg(stream, subject, direct=True)
        except nats.js.errors.NotFoundError:
            return 0
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            raise log_errors.from_client_error(
                exc, f"reading the last sequence of {subject}"
            ) from exc
        return int(message.seq or 0)

    async def last_sequences(
        self, stage: log_streams.Stage, partitions: Iterable[int]
    ) -> dict[int, int]:
        """:meth:`last_sequence` of several partitions, asked concurrently."""
        wanted = list(partitions)
        found = await asyncio.gather(*(self.last_sequence(stage, p) for p in wanted))
        return dict(zip(wanted, found, strict=True))

    async def purge(self, stage: log_streams.Stage, partition: int, through: int) -> None:
        """Deletes the partition's messages with sequences up to and including ``through``.

        Other partitions' messages are untouched. ``through`` below 1 purges nothing.

        Raises:
            LogUnavailable: The server or the stream did not answer in time.
        """
        if through < 1:
            return
        stream = self._settings.stream(stage)
        subject = self._settings.subject(stage, partition)
        try:
            # JetStream purges the sequences *below* seq
            await self._jsm.purge_stream(stream, seq=through + 1, subject=subject)
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            raise log_errors.from_client_error(exc, f"purging {subject} through {through}") from exc

    async def open_reader(
        self,
        stage: log_streams.Stage,
        partition: int,
        start: int,
        *,
        heartbeat: float = 1.0,
        buffer: int = 8,
        window_bytes: int | None = None,
    ) -> log_reader.PartitionReader:
        """Starts reading a partition from stream sequence ``start`` (inclusive), in order.

        Args:
            stage: The stream.
            partition: The partition.
            start: The first sequence wanted (an owner's committed offset + 1); >= 1.
            heartbeat: Seconds between the server's idle heartbeats; two missed ones recreate
                the consumer.
            buffer: Entries handed over ahead of the caller.
            window_bytes: Bytes one pull request may bring (what a slow reader holds besides its
                buffer); at least, and by default, the server's ``max_payload`` plus headers.
                Keep readers x window under the server's per-connection ``max_pending``
                (64 MiB by default) or a stalled event loop gets the connection cut.

        Raises:
            LogUnavailable: The consumer could not be created.
        """
        reader = log_reader.PartitionReader(
            self._client,
            stream=self._settings.stream(stage),
            subject=self._settings.subject(stage, partition),
            partition=partition,
            start=start,
            heartbeat=heartbeat,
            buffer=buffer,
            window=max(window_bytes or 0, self._client.max_payload + self.HEADER_ALLOWANCE),
            request_timeout=self._timeout,
        )
        await reader.start()
        self._readers.add(reader)
        return reader
