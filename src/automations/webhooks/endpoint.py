"""The webhook endpoint as the composition root starts and stops it: every part, assembled.

``automations.server`` binds it first (so a port in use stops the engine before anything else
starts), starts it once the writer accepts events, and stops it first on SIGTERM: requests in
flight finish (their events commit, their 204s go out) before the writer stops taking events, and
the delivery history waiting in memory is written last.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from automations.domain import events, webhooks
from automations.webhooks import (
    deliveries,
    directory,
    http_app,
    publishing,
    receiver,
    workers,
)

logger = logging.getLogger(__name__)


class WebhookEndpoint:
    """``/hooks/<slug>`` on ``addr``: directory, worker threads, history, receiver, HTTP server.

    Args:
        addr: ``HOST:PORT`` to listen on (bound here).
        load_all: Reads every webhook (runs in a worker thread).
        publish: Commits events (``Writer.publish``).
        write_deliveries: Writes deliveries and trims each webhook's history.
        prepare: Encodes an event's event-log row ahead of the writer.
        deliveries_kept: Deliveries kept per webhook.
        threads: Threads for rendering.
        max_body_bytes: Larger bodies are answered 413.
        shutdown_grace_seconds: How long stopping waits for requests in flight.

    Raises:
        OSError: ``addr`` cannot be bound.
    """

    def __init__(
        self,
        addr: str,
        *,
        load_all: Callable[[], Sequence[webhooks.Webhook]],
        publish: receiver.Publish,
        write_deliveries: Callable[[Sequence[webhooks.Delivery]], Awaitable[None]],
        prepare: Callable[[events.Event], Any] | None,
        deliveries_kept: int,
        threads: int,
        max_body_bytes: int,
        shutdown_grace_seconds: float,
    ) -> None:
        self._sock = http_app.bind(addr)
        self.directory = directory.Directory(load_all)
        self.history = deliveries.DeliveryLog(write_deliveries, keep=deliveries_kept)
        self._pool = workers.WorkerPool(threads)
        self._receiver = receiver.Receiver(
            self.directory,
            publishing.BatchingPublisher(publish),
            self._pool,
            self.history,
            prepare=prepare,
        )
        self._http = http_app.HttpServer(
            http_app.build_app(self._receiver, max_body_bytes=max_body_bytes),
            self._sock,
            shutdown_grace_seconds=shutdown_grace_seconds,
        )
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def address(self) -> str:
        """The ``HOST:PORT`` it listens on."""
        return self._http.address

    async def start(self) -> None:
        """Loads the webhooks and starts serving."""
        await self.directory.refresh()
        self._pool.start()
        self._tasks = [
            asyncio.create_task(self.directory.run()),
            asyncio.create_task(self.history.run()),
        ]
        await self._http.start()
        logger.info("webhooks at /hooks/<slug>", extra={"http_addr": self.address})

    async def stop(self) -> None:
        """Stops taking requests, finishes those in flight, writes the waiting history."""
        await self._http.stop()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        try:
            await self.history.flush()
        except Exception:
            logger.exception("writing the last webhook deliveries failed")
        await asyncio.to_thread(self._pool.stop)
