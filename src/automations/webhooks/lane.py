"""The publish lane: the webhook front's events to the single writer, and its answers straight back.

A socket pair of its own beside the link (``channel``), carrying only the events of requests:
the front sends ``{"id": n, "rows": [...]}`` (event-log rows, ``messages.rows_to_data``), the
engine answers ``{"re": n, "ok": [new/duplicate per event]}`` or ``{"re": n, "error": {...}}``
(a domain error as ``channel.encode_error`` sends it: backpressure stays ``ResourceExhausted``),
in the link's framing (``channel.frame``).

In the engine no event loop is on this path: a thread of its own (:class:`LaneServer`) blocks on
the socket, rebuilds the events and queues them for the writer (``Writer.submit_replying``), and
the writer thread itself writes the answer once the commit is done. Over the link, the same
acknowledgement took four wake-ups (the engine's event loop for the request, the writer, the
event loop again for the answer, the front) and waited twice for an event loop that also runs
the action dispatcher and gRPC; here it takes three, none of them the engine's event loop.

In the front (:class:`LaneClient`) the lane is an asyncio protocol: a publish is a write and a
future, resolved when its answer arrives. Either side going away fails every publish waiting
with ``Unavailable`` (the request gets a 503; whatever was answered was committed).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import socket
import threading
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from automations.domain import errors, events
from automations.webhooks import channel, messages, publishing

logger = logging.getLogger(__name__)

SEND_TIMEOUT_SECONDS = 10.0
"""How long the engine waits to hand an answer to a front that does not read (then gives up)."""

Reply = Callable[[list[bool] | None, BaseException | None], None]
"""Takes a batch's outcome on the writer thread: its flags, or why it was refused."""
Submit = Callable[[Sequence[events.Event], Sequence[messages.Row] | None, Reply], None]
"""Queues events for a commit from any thread (``Writer.submit_replying``); raises if refused."""

_HEAD = channel.HEAD


def from_async(submit: publishing.Submit, loop: asyncio.AbstractEventLoop) -> Submit:
    """A lane ``Submit`` over an asynchronous one run on ``loop``.

    Cluster mode: a request's events are published to the cluster's log from the engine's event
    loop (``cluster_webhooks.publisher``), not queued for a local writer. The reply is made on the
    loop once the publish is acknowledged (a small answer to a socket pair the front reads).
    """

    def lane_submit(
        batch: Sequence[events.Event], rows: Sequence[Any] | None, reply: Reply
    ) -> None:
        def settle(done: asyncio.Future[list[bool]]) -> None:
            if done.cancelled():
                reply(None, errors.Unavailable("the publish was cancelled (shutting down)"))
            elif done.exception() is not None:
                reply(None, done.exception())
            else:
                reply(done.result(), None)

        def start() -> None:
            submit(batch, rows).add_done_callback(settle)

        loop.call_soon_threadsafe(start)

    return lane_submit


def take_frames(buffer: bytearray) -> list[dict[str, Any]]:
    """Takes the complete messages off the front of ``buffer`` (the rest stays for later)."""
    taken = []
    offset = 0
    end = len(buffer)
    while end - offset >= _HEAD.size:
        (size,) = _HEAD.unpack_from(buffer, offset)
        start = offset + _HEAD.size
        if end - start < size:
            break
        taken.append(orjson.loads(memoryview(buffer)[start : start + size]))
        offset = start + size
    del buffer[:offset]
    return taken


class LaneServer:
    """The engine's end of the lane: a reading thread; answers written by the writer thread.

    Args:
        sock: The engine's end of the lane's socket pair.
        submit: Queues events for a commit (``Writer.submit_replying``).
        decode_row: Rebuilds an event from its event-log row (``event_log.from_row``).
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        submit: Submit,
        decode_row: Callable[[messages.Row], events.Event],
    ) -> None:
        # a timeout, for the writer's sends: a stuck front must not hold the writer for long
        sock.settimeout(SEND_TIMEOUT_SECONDS)
        self._sock = sock
        self._submit = submit
        self._decode_row = decode_row
        self._send_lock = threading.Lock()
        self._broken = False
        self._thread = threading.Thread(
            target=self._run, name="automations-webhook-lane", daemon=True
        )

    def start(self) -> None:
        """Starts reading."""
        self._thread.start()

    def _run(self) -> None:
        buffer = bytearray()
        while True:
            try:
                data = self._sock.recv(1 << 16)
            except TimeoutError:
                continue  # idle
            except OSError:
                return  # closed under it
            if not data:
                return
            buffer += data
            for message in take_frames(buffer):
                self._take(message)

    def _take(self, message: dict[str, Any]) -> None:
        request_id = message["id"]
        try:
            rows = messages.rows_from_data(message["rows"])
            decode = self._decode_row
            self._submit(
                [decode(row) for row in rows], rows, functools.partial(self._reply, request_id)
            )
        except Exception as exc:
            if not isinstance(exc, errors.AutomationsError):
                logger.exception("taking webhook events from the publish lane failed")
            self._send({"re": request_id, "error": channel.encode_error(exc)})

    def _reply(self, request_id: int, flags: list[bool] | None, exc: BaseException | None) -> None:
        if exc is not None:
            self._send({"re": request_id, "error": channel.encode_error(exc)})
        else:
            self._send({"re": request_id, "ok": flags})

    def _send(self, message: dict[str, Any]) -> None:
        data = channel.frame(message)
        with self._send_lock:
            if self._broken:
                return
            try:
                self._sock.sendall(data)
            except OSError as exc:  # the front is gone, or stuck: it gets no more answers
                self._broken = True
                logger.warning("the webhook publish lane is down", extra={"error": str(exc)})

    def close(self, timeout: float = 5.0) -> None:
        """Closes the lane and waits for the reading thread."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._sock.close()


class LaneClient(asyncio.Protocol):
    """The front's end of the lane (see the module docstring)."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[list[bool]]] = {}
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._closed = False

    async def open(self, sock: socket.socket) -> None:
        """Takes over the front's end of the lane's socket pair."""
        await asyncio.get_running_loop().connect_accepted_socket(lambda: self, sock)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """asyncio's: the lane is up."""
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        """asyncio's: resolves the publishes whose answers are complete."""
        self._buffer += data
        for message in take_frames(self._buffer):
            self._answer(message)

    def _answer(self, message: dict[str, Any]) -> None:
        future = self._waiting.pop(message["re"], None)
        if future is None or future.done():
            return
        if "error" in message:
            future.set_exception(channel.decode_error(message["error"]))
        else:
            future.set_result(message["ok"])

    def connection_lost(self, exc: Exception | None) -> None:
        """asyncio's: every publish waiting fails with ``Unavailable``."""
        self._closed = True
        waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(errors.Unavailable("the webhook publish lane went down"))

    def publish(self, rows: Sequence[messages.Row]) -> asyncio.Future[list[bool]]:
        """Sends rows to be committed; the future holds their new/duplicate flags, or raises."""
        future: asyncio.Future[list[bool]] = asyncio.get_running_loop().create_future()
        if self._closed or self._transport is None:
            future.set_exception(errors.Unavailable("the webhook publish lane is down"))
            return future
        request_id = next(self._ids)
        self._waiting[request_id] = future
        self._transport.write(
            channel.frame({"id": request_id, "rows": messages.rows_to_data(rows)})
        )
        return future

    def close(self) -> None:
        """Closes the lane (publishes waiting fail)."""
        if self._transport is not None:
            self._transport.close()
