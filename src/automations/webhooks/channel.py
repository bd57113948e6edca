"""The link between the engine and its webhook front process: JSON messages on a socket pair.

Each message is a 4-byte big-endian length, then an orjson object. A request is
``{"op": <name>, "id": <n>, ...}`` and its answer ``{"re": <n>, "ok": <result>}`` or
``{"re": <n>, "error": {...}}``; a notice is ``{"op": <name>, ...}`` with no ``id`` and no answer.
Either side may send requests; each incoming request runs in a task of its own, so a handler may
itself wait on a request to the other side (the engine's ``flush`` makes the front send its
deliveries). A domain error raised by a handler travels back as itself (class, message, reason,
field): a refused publish is the same ``ResourceExhausted`` on both sides. Once the other side is
gone, every request waiting and every new one fails with ``Unavailable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import struct
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson

from automations.domain import errors

logger = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[Any]]
"""Answers a request (its message) with a JSON-able result, or raises."""
Notice = Callable[[dict[str, Any]], None]
"""Takes a notice (its message)."""

HEAD = struct.Struct("!I")
"""The head of a message: its length."""
MAX_MESSAGE_BYTES = 1 << 30
"""The largest message read (a publish of a request's events is bounded by the body limit)."""

_ERRORS: dict[str, type[errors.AutomationsError]] = {
    cls.__name__: cls
    for cls in (
        errors.AutomationsError,
        errors.NotFound,
        errors.AlreadyExists,
        errors.FailedPrecondition,
        errors.Aborted,
        errors.ResourceExhausted,
        errors.Unavailable,
        errors.DeadlineExceeded,
        errors.Unauthenticated,
    )
}


def frame(message: Mapping[str, Any]) -> bytes:
    """A message as sent: its length (4 bytes, big-endian), then its JSON."""
    data = orjson.dumps(message)
    return HEAD.pack(len(data)) + data


def encode_error(exc: BaseException) -> dict[str, Any]:
    """An exception as sent back: a domain error as itself, anything else as an internal one."""
    if isinstance(exc, errors.InvalidArgument):
        return {
            "type": "InvalidArgument",
            "field": exc.field,
            "message": exc.description,
            "reason": exc.reason,
        }
    if isinstance(exc, errors.AutomationsError) and type(exc).__name__ in _ERRORS:
        return {"type": type(exc).__name__, "message": exc.message, "reason": exc.reason}
    return {"type": "AutomationsError", "message": f"{type(exc).__name__}: {exc}"}


def decode_error(data: Mapping[str, Any]) -> errors.AutomationsError:
    """The exception an error sent back stands for."""
    kind = str(data.get("type", ""))
    message = str(data.get("message", ""))
    reason = data.get("reason")
    if kind == "InvalidArgument":
        return errors.InvalidArgument(str(data.get("field", "")), message, reason=reason)
    return _ERRORS.get(kind, errors.AutomationsError)(message, reason=reason)


class Channel:
    """One end of the link (see the module docstring).

    Args:
        handlers: Request handlers by ``op``.
        notices: Notice handlers by ``op``.
    """

    def __init__(
        self,
        handlers: Mapping[str, Handler] | None = None,
        notices: Mapping[str, Notice] | None = None,
    ) -> None:
        self._handlers = dict(handlers or {})
        self._notices = dict(notices or {})
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._closed = False

    async def open(self, sock: socket.socket) -> None:
        """Takes over a connected socket (one end of a socket pair)."""
        self._reader, self._writer = await asyncio.open_connection(
            sock=sock, limit=MAX_MESSAGE_BYTES
        )

    def on(self, op: str, handler: Handler) -> None:
        """Answers the requests ``op`` with ``handler``."""
        self._handlers[op] = handler

    async def drain(self) -> None:
        """Waits until what was sent has left this process's buffers."""
        if self._writer is not None and not self._closed:
            with contextlib.suppress(ConnectionError):
                await self._writer.drain()

    @property
    def closed(self) -> bool:
        """Whether the link is down (the other side went away, or :meth:`close` was called)."""
        return self._closed

    async def run(self) -> None:
        """Reads and dispatches messages until the other side goes away."""
        assert self._reader is not None
        try:
            while True:
                head = await self._reader.readexactly(HEAD.size)
                (size,) = HEAD.unpack(head)
                message = orjson.loads(await self._reader.readexactly(size))
                self._dispatch(message)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.close()

    def _dispatch(self, message: dict[str, Any]) -> None:
        answered = message.get("re")
        if answered is not None:
            future = self._waiting.pop(answered, None)
            if future is not None and not future.done():
                if "error" in message:
                    future.set_exception(decode_error(message["error"]))
                else:
                    future.set_result(message.get("ok"))
            return
        op = message.get("op", "")
        if "id" not in message:
            notice = self._notices.get(op)
            if notice is None:
                logger.warning("unknown notice %r on the webhook link", op)
            else:
                notice(message)
            return
        task = asyncio.ensure_future(self._answer(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, message: dict[str, Any]) -> None:
        handler = self._handlers.get(message.get("op", ""))
        try:
            if handler is None:
                raise errors.AutomationsError(f"unknown request {message.get('op')!r}")
            reply: dict[str, Any] = {"re": message["id"], "ok": await handler(message)}
        except Exception as exc:
            if not isinstance(exc, errors.AutomationsError):
                logger.exception("answering %r on the webhook link failed", message.get("op"))
            reply = {"re": message["id"], "error": encode_error(exc)}
        self._send(reply)

    def _send(self, message: Mapping[str, Any]) -> None:
        if self._closed or self._writer is None:
            return
        self._writer.write(frame(message))

    def notify(self, op: str, **fields: Any) -> None:
        """Sends a notice (dropped once the link is down)."""
        self._send({"op": op, **fields})

    def request(self, op: str, **fields: Any) -> asyncio.Future[Any]:
        """Sends a request; the future holds its result, or raises its error.

        Raises (through the future): ``errors.Unavailable`` when the link is or goes down first.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._closed:
            future.set_exception(errors.Unavailable("the webhook link is down"))
            return future
        request_id = next(self._ids)
        self._waiting[request_id] = future
        self._send({"op": op, "id": request_id, **fields})
        return future

    def close(self) -> None:
        """Takes the link down: requests waiting fail with ``Unavailable``."""
        if self._closed:
            return
        self._closed = True
        waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(errors.Unavailable("the webhook link went down"))
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
