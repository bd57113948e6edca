"""The webhook front process: HTTP, authentication, templates and validation, off the engine's GIL.

``python -m automations.webhooks.front CONFIG`` is started by the engine (``endpoint``) with the
listening socket it bound and one end of a socket pair (``channel``) as inherited descriptors. It
serves ``/hooks/<slug>`` exactly as the engine would in its own process (``http_app``,
``receiver``, ``processing``...). The events of requests go as event-log rows over a socket pair
of their own, the publish lane (``lane``), and the engine makes them durable before the front
answers 204. Three things go over the link: the delivery history (``deliveries``); the metrics
(``metrics``, every second); and, in cluster mode, a request for a slug not served here (``sync``:
the engine reloads the webhooks if another replica changed them, and pushes them before it
answers). The engine pushes
the webhooks (``webhooks``, awaited by its API after every change) and says when to serve
(``serve``), to flush the history (``flush``) and to stop (``stop``: requests in flight finish,
the history and metrics are handed over, then the process exits).

Why a process: a request's work in Python is three times the HTTP stack's own, and in the
engine's process it shared one interpreter lock with the single writer and the action dispatcher;
at 1,000 requests/s with an automation firing on each, the engine's process was most of a core
busy and its commits queued behind the HTTP work. Here it has an interpreter of its own.

It ignores SIGINT and SIGTERM (a terminal's Ctrl-C or a service manager reaches the whole process
group; the engine decides when its front stops, after draining it) and exits as soon as the link
closes: the engine is gone (a kill -9 included), nothing more can be committed, and the port must
be free for the next engine. Linux also kills it with its parent (``PR_SET_PDEATHSIG``).

This module is the front process's composition root: it takes the event log's row encoder from
the store, as ``automations.server`` does for the engine's process.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from typing import Any

import orjson

from automations import logs, process_tuning
from automations.domain import events, webhooks
from automations.store import event_log
from automations.webhooks import (
    channel,
    deliveries,
    directory,
    http_app,
    lane,
    messages,
    meter,
    publishing,
    rate_limit,
    receiver,
    workers,
)

logger = logging.getLogger(__name__)

METRICS_SECONDS = 1.0
"""How often the metrics counted here are handed to the engine."""


class Front:
    """The front's parts, wired to the link (see the module docstring).

    Args:
        config: ``max_body_bytes``, ``threads``, ``deliveries_kept``, ``shutdown_grace_seconds``.
        listening: The bound listening socket.
        link: The link to the engine (opened).
        publish_lane: The publish lane to the engine (opened).
    """

    def __init__(
        self,
        config: dict[str, Any],
        listening: socket.socket,
        link: channel.Channel,
        publish_lane: lane.LaneClient,
    ) -> None:
        self._link = link
        self._lane = publish_lane
        self.directory = directory.Directory()
        self.tally = meter.Tally()
        self.history = deliveries.DeliveryLog(
            self._write_deliveries, keep=int(config["deliveries_kept"])
        )
        self._pool = workers.WorkerPool(int(config["threads"]))
        self._limiter = rate_limit.RateLimiter(
            shared=rate_limit.SharedBuckets(int(config["limits_fd"]), int(config["limits_slots"]))
            if config.get("limits_fd") is not None
            else None
        )
        self._receiver = receiver.Receiver(
            self.directory,
            publishing.BatchingPublisher(self._submit),
            self._pool,
            self.history,
            prepare=event_log.to_row,
            limiter=self._limiter,
            metered=self.tally,
            on_miss=self._sync if config.get("sync_on_miss") else None,
        )
        self._http = http_app.HttpServer(
            http_app.build_app(self._receiver, max_body_bytes=int(config["max_body_bytes"])),
            listening,
            shutdown_grace_seconds=float(config["shutdown_grace_seconds"]),
        )
        self._tasks: list[asyncio.Task[None]] = []
        self.stopped = asyncio.Event()

    def _submit(
        self, batch: Sequence[events.Event], rows: Sequence[Any] | None
    ) -> asyncio.Future[list[bool]]:
        encoded = rows if rows is not None else [event_log.to_row(event) for event in batch]
        return self._lane.publish(encoded)

    async def _sync(self) -> None:
        await self._link.request("sync")

    async def _write_deliveries(self, batch: Sequence[webhooks.Delivery]) -> None:
        await self._link.request(
            "deliveries", items=[messages.delivery_to_data(item) for item in batch]
        )

    def _send_metrics(self) -> None:
        taken = self.tally.take()
        if taken is not None:
            self._link.notify("metrics", tally=taken)

    async def _metrics_every_second(self) -> None:
        while True:
            await asyncio.sleep(METRICS_SECONDS)
            self._send_metrics()

    # ------------------------------------------------------------------- the engine's requests

    async def on_webhooks(self, message: dict[str, Any]) -> bool:
        """Takes the engine's webhooks, and the shared slots of their rate limits."""
        self._limiter.use_slots(dict(message.get("limit_slots") or {}))
        self.directory.replace([messages.webhook_from_data(item) for item in message["items"]])
        return True

    async def on_serve(self, message: dict[str, Any]) -> bool:
        """Starts serving; answers once the socket is served."""
        self._pool.start()
        self._tasks = [
            asyncio.create_task(self.history.run()),
            asyncio.create_task(self._metrics_every_second()),
        ]
        await self._http.start()
        return True

    async def on_flush(self, message: dict[str, Any]) -> bool:
        """Hands the waiting deliveries to the engine (written before this answers)."""
        await self.history.flush()
        return True

    async def on_stop(self, message: dict[str, Any]) -> bool:
        """Stops serving: requests in flight finish, the history and the metrics go over."""
        await self._http.stop()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            await self.history.flush()
        except Exception:
            logger.exception("handing over the last webhook deliveries failed")
        self._send_metrics()
        await asyncio.to_thread(self._pool.stop)
        self.stopped.set()
        return True


async def serve(
    config: dict[str, Any],
    listening: socket.socket,
    link_socket: socket.socket,
    lane_socket: socket.socket,
) -> int:
    """Serves until the engine says stop (0); exits the process at once if the engine goes away."""
    link = channel.Channel()
    await link.open(link_socket)
    publish_lane = lane.LaneClient()
    await publish_lane.open(lane_socket)
    front = Front(config, listening, link, publish_lane)
    link.on("webhooks", front.on_webhooks)
    link.on("serve", front.on_serve)
    link.on("flush", front.on_flush)
    link.on("stop", front.on_stop)
    reading = asyncio.create_task(link.run())
    stopped = asyncio.create_task(front.stopped.wait())
    await asyncio.wait({reading, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if not stopped.done():
        logger.warning("the engine is gone: the webhook front exits")
        os._exit(1)  # nothing left worth finishing: requests in flight cannot be committed
    await asyncio.sleep(0)  # the stop's answer is sent
    await link.drain()
    link.close()
    publish_lane.close()
    return 0


def _die_with_parent() -> None:
    """Asks Linux to kill this process when the engine exits (a backup of the link's end)."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m automations.webhooks.front CONFIG``: CONFIG is JSON, given by the engine."""
    config: dict[str, Any] = orjson.loads((argv or sys.argv[1:])[0])
    parent = int(config["parent_pid"])
    _die_with_parent()
    if os.getppid() != parent:  # the engine was gone before the request took effect
        return 1
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logs.configure(level=str(config["log_level"]), json_lines=bool(config["log_json"]))
    listening = socket.socket(fileno=int(config["listen_fd"]))
    listening.setblocking(False)
    link_socket = socket.socket(fileno=int(config["link_fd"]))
    lane_socket = socket.socket(fileno=int(config["lane_fd"]))
    tuning = process_tuning.Tuning(
        switch_interval=0.0, gc=True, memory_trim_seconds=float(config["memory_trim_seconds"])
    )
    with process_tuning.tuned(tuning):
        return asyncio.run(serve(config, listening, link_socket, lane_socket))


if __name__ == "__main__":
    sys.exit(main())
