"""The HTTP side of webhooks: an ASGI app on uvicorn, in the webhook front process's event loop.

Why uvicorn: it is the maintained ASGI server with a C HTTP/1.1 parser (httptools) that runs on
an asyncio loop it is given and serves an already bound socket, which the front process
(``front``) inherits from the engine. The app is a plain ASGI callable: the routing is one prefix
(:func:`route`), the body is read straight from the ASGI messages and the answer sent as raw ASGI
messages; a toolkit's router and request objects (Starlette's were used at first) cost several
microseconds per request for nothing this endpoint needs. The ``bench/webhooks.py`` ceiling is
this same stack (uvicorn, :func:`route`, the body read) answering 204 with no work.

Routes: ``/hooks/<slug>`` and ``/hooks/<slug>/<path>`` (the part after the slug is the
template's ``path``) for GET, HEAD, DELETE, POST, PUT, PATCH and OPTIONS (the CloudEvents
validation handshake); any other method is 405. A body larger than ``max_body_bytes`` is 413,
told by ``Content-Length`` before anything is read, or as soon as the streamed body passes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn

from automations.domain import webhooks
from automations.webhooks import receiver as receiver_
from automations.webhooks import requests

logger = logging.getLogger(__name__)

METHODS = frozenset({"GET", "HEAD", "DELETE", "POST", "PUT", "PATCH", "OPTIONS"})
"""The methods ``/hooks/<slug>`` accepts."""
_ALLOW = ", ".join(sorted(METHODS))
DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024
"""The default body limit (Prefect Cloud's 5 MiB)."""


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]
"""An ASGI application (the ASGI 3 interface)."""

PREFIX = "/hooks/"
_NO_ROUTE = (
    {"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"9")]},
    {"type": "http.response.body", "body": b"Not Found"},
)
_NO_CONTENT = (
    {"type": "http.response.start", "status": 204, "headers": [(b"content-length", b"0")]},
    {"type": "http.response.body", "body": b""},
)


class ClientDisconnect(Exception):
    """The client went away before the end of the body."""


def route(path: str) -> tuple[str, str] | None:
    """The slug and the rest of a ``/hooks/<slug>[/<rest>]`` path (None for any other path)."""
    if not path.startswith(PREFIX):
        return None
    slug, _, rest = path[len(PREFIX) :].partition("/")
    return (slug, rest) if slug else None


async def no_route(send: Send) -> None:
    """Answers a path that is not ``/hooks/<slug>``: 404."""
    for message in _NO_ROUTE:
        await send(message)


async def send_answer(answer: receiver_.Answer, send: Send) -> None:
    """Sends an answer as raw ASGI messages (no response object to build per request)."""
    if answer is receiver_.NO_CONTENT:
        await send(_NO_CONTENT[0])
        await send(_NO_CONTENT[1])
        return
    headers = [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in answer.headers
    ]
    if answer.body:
        headers.append((b"content-type", b"application/json"))
    headers.append((b"content-length", str(len(answer.body)).encode()))
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


def build_app(
    receiver: receiver_.Receiver,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    clock: Callable[[], float] = time.time,
) -> App:
    """The ASGI app serving ``/hooks/<slug>`` (and 404 for any other path).

    Args:
        receiver: Answers the requests.
        max_body_bytes: Larger bodies are answered 413.
        clock: Wall clock, seconds since the epoch.
    """
    too_large = receiver_.error_answer(
        413, f"the body is larger than the limit of {max_body_bytes} bytes"
    )

    def head(
        scope: Scope, webhook: webhooks.Webhook, rest: str, received: float
    ) -> requests.Request | receiver_.Answer:
        """The request without its body, or the answer refusing it before the body is read."""
        method = scope["method"]
        headers = requests.Headers.from_asgi(scope["headers"])
        meta = requests.Request(
            method,
            headers,
            b"",
            scope["query_string"].decode("latin-1"),
            f"/{rest}" if rest else "",
            received,
        )
        if method not in METHODS:
            answer = receiver_.error_answer(
                405, f"method {method} is not allowed", ("Allow", _ALLOW)
            )
            return receiver.refuse(webhook, meta, answer, "method_not_allowed")
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_body_bytes:
            return receiver.refuse(webhook, meta, too_large, "too_large")
        return meta

    # One coroutine per request down to the receiver's (a level costs ~1 us under load); the
    # routing is one prefix: a router (Starlette's) cost about 3 us per request here.
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # no lifespan (off) nor websockets
        found = route(scope["path"])
        if found is None:
            await no_route(send)
            return
        slug, rest = found
        received = clock()
        webhook = receiver.webhook(slug) or await receiver.find(slug)
        if webhook is None:
            await send_answer(receiver.not_found(), send)
            return
        request = head(scope, webhook, rest, received)
        if isinstance(request, receiver_.Answer):
            await send_answer(request, send)
            return
        try:
            body = await read_body(receive, max_body_bytes)
        except ClientDisconnect:
            return  # nobody to answer
        if body is None:
            answer = receiver.refuse(webhook, request, too_large, "too_large")
        elif (current := receiver.webhook(slug)) is None:
            answer = receiver.not_found()  # disabled, deleted or rotated meanwhile
        else:
            request.body = body
            answer = await receiver.answer(current, request)
        await send_answer(answer, send)

    return app


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """Reads a request's body from its ASGI messages; None once it is larger than ``limit``.

    Raises:
        ClientDisconnect: The client went away before the end of the body.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _open(addr: str) -> tuple[socket.socket, Any]:
    """An unbound TCP socket for ``HOST:PORT`` (IPv6 hosts in brackets) and its address."""
    host, _, port = addr.rpartition(":")
    host = host.strip("[]")
    infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    return socket.socket(family, kind, proto), address


def _listen(sock: socket.socket, address: Any, *, reuse_port: bool) -> socket.socket:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(1024)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def bind(addr: str) -> socket.socket:
    """Opens the listening socket of ``HOST:PORT`` (IPv6 hosts in brackets).

    Raises:
        OSError: The address cannot be bound (e.g. in use).
    """
    sock, address = _open(addr)
    return _listen(sock, address, reuse_port=False)


def bind_group(addr: str, count: int) -> list[socket.socket]:
    """Opens ``count`` listening sockets on ``HOST:PORT``, the kernel spreading connections.

    One socket is :func:`bind`'s. Several share the port with ``SO_REUSEPORT``: Linux hands each
    new connection to one of them by a hash of its addresses, so the front processes serving
    them get even shares (a socket shared by all would not: whichever process wakes first takes
    every connection waiting). ``SO_REUSEPORT`` alone would let another process of the same user
    bind the port beside them silently, so the port is first bound without it (a port in use is
    an error, as with one socket), released, and bound again by the group: only a process
    binding it with ``SO_REUSEPORT`` in between could join.

    Raises:
        OSError: The address cannot be bound (e.g. in use).
    """
    first = bind(addr)
    if count <= 1:
        return [first]
    host = addr.rpartition(":")[0]
    port = first.getsockname()[1]  # the one chosen when ``addr`` asks for any (port 0)
    first.close()
    group: list[socket.socket] = []
    try:
        for _ in range(count):
            sock, address = _open(f"{host}:{port}")
            group.append(_listen(sock, address, reuse_port=True))
    except OSError:
        for sock in group:
            sock.close()
        raise
    return group


class _Server(uvicorn.Server):
    """uvicorn's server without its signal handlers: the engine handles SIGTERM itself."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]  # noqa: ANN201 - uvicorn's hook
        yield


class HttpServer:
    """Serves an ASGI app on an already bound socket, in the running event loop.

    Args:
        app: The ASGI app.
        sock: The listening socket (:func:`bind`).
        shutdown_grace_seconds: How long :meth:`stop` waits for requests in flight.
    """

    def __init__(self, app: App, sock: socket.socket, *, shutdown_grace_seconds: float) -> None:
        self._sock = sock
        config = uvicorn.Config(
            app,
            http="httptools",
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=False,
            timeout_graceful_shutdown=max(1, round(shutdown_grace_seconds)),
            timeout_keep_alive=30,
            backlog=1024,
        )
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def address(self) -> str:
        """``HOST:PORT`` it listens on."""
        host, port = self._sock.getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def start(self) -> None:
        """Starts serving; returns once the socket accepts requests."""
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises why it stopped
                raise RuntimeError("the webhook HTTP server stopped while starting")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stops accepting, lets requests in flight finish (up to the grace period), closes."""
        if self._task is None:
            return
        self._server.should_exit = True
        await self._task
        self._task = None
