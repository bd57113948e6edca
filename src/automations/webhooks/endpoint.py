"""The webhook endpoint as the composition root starts and stops it: front processes, fed and heard.

``webhook_processes`` fronts serve the port side by side, each on a listening socket of its own
(``http_app.bind_group``: the kernel spreads connections over them), sharing one table of rate
limits (``rate_limit.SharedBuckets``, slots given here with the webhooks). Everything below
holds for each front.

``automations.server`` binds it first (so a port in use stops the engine before anything else
starts; the front process, ``front``, is started then too, so that its imports overlap the
engine's start-up), starts it once the writer accepts events, and stops it first on SIGTERM:
requests in flight finish (their events commit, their 204s go out) before the writer stops taking
events, and the delivery history waiting in the front is written last.

The events of requests come over a socket pair of their own, the publish lane (``lane``): a
thread here rebuilds them from their event-log rows and queues them for the writer
(``Writer.submit_replying``), which answers the front itself once they are committed. On the
link (``channel``): the front's ``deliveries`` are written; its ``metrics`` are added to this process's. The webhooks
are read here and pushed to the front after every change made through the API (awaited, so a
created webhook serves at once) and every ``directory.REFRESH_SECONDS``. A front that dies is
started again (a second later) on the same socket: requests it had in flight get no answer, as
with any crash, and were acknowledged only if committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson

from automations.domain import errors, events, webhooks
from automations.webhooks import channel, directory, http_app, lane, messages, meter, rate_limit

logger = logging.getLogger(__name__)

RESTART_SECONDS = 1.0
"""How long after a front process died it is started again."""
START_SECONDS = 60.0
"""How long the front may take to start serving."""


class Webhooks:
    """The webhooks, read here and pushed to the front (``refresh`` is the API's ``on_change``).

    Args:
        endpoint: The endpoint whose front serves them.
        load_all: Reads every webhook (runs in a worker thread).
        changes_counted: Reads a counter every webhook change increments (in a worker thread;
            a cluster's change counter), or None: then the webhooks are reloaded every
            ``directory.REFRESH_SECONDS`` whether or not they changed.
    """

    def __init__(
        self,
        endpoint: WebhookEndpoint,
        load_all: Callable[[], Sequence[Any]],
        changes_counted: Callable[[], int] | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._load_all = load_all
        self._counted = changes_counted
        self._seen: int | None = None
        self._directory = directory.Directory(self._load_counted)
        self._running: asyncio.Future[None] | None = None
        self._queued: asyncio.Future[None] | None = None

    def _load_counted(self) -> Sequence[webhooks.Webhook]:
        counted = self._counted() if self._counted is not None else None  # first: see sync
        found: Sequence[webhooks.Webhook] = self._load_all()
        self._seen = counted
        return found

    async def load(self) -> None:
        """Reads every webhook."""
        await self._directory.refresh()

    async def refresh(self) -> None:
        """Reads every webhook and waits until the front serves exactly those."""
        await self._directory.refresh()
        await self._endpoint.push_webhooks()

    def all(self) -> list[webhooks.Webhook]:
        """The webhooks last read."""
        return self._directory.all()

    def sync(self) -> Awaitable[None]:
        """Refreshes if the change counter moved since the last read (without one: refreshes).

        Calls that come while a check runs share the next one, which starts after it: a change
        committed before the call is seen, and misses in a burst cost one query, not one each.
        """
        if self._queued is None:
            self._queued = asyncio.ensure_future(self._check_after(self._running))
            self._running = self._queued
        return asyncio.shield(self._queued)

    async def _check_after(self, previous: asyncio.Future[None] | None) -> None:
        if previous is not None:
            with contextlib.suppress(Exception):
                await previous
        self._queued = None  # a call from now on waits for the next check
        if self._counted is not None:
            counted = await asyncio.to_thread(self._counted)
            if counted == self._seen:
                return
        await self.refresh()

    async def run(self) -> None:
        """Syncs every ``directory.REFRESH_SECONDS`` until cancelled (a failure is logged)."""
        while True:
            await asyncio.sleep(directory.REFRESH_SECONDS)
            try:
                await self.sync()
            except Exception:
                logger.exception("reloading the webhooks failed; serving the ones loaded before")


class History:
    """The front's delivery history (``flush`` is the API's ``flush_deliveries``)."""

    def __init__(self, endpoint: WebhookEndpoint) -> None:
        self._endpoint = endpoint

    async def flush(self) -> None:
        """Has the front hand its waiting deliveries over, and waits until they are written."""
        await self._endpoint.request_front("flush")


class _Front:
    """One front process on one listening socket, started again whenever it dies.

    Args:
        sock: Its listening socket.
        config: The front's settings (``front``), without the descriptors.
        submit: Queues a request's events for a commit (the publish lane's ``Submit``).
        decode_row: Rebuilds an event from its event-log row.
        handlers: The link's request handlers (the front's ``deliveries``, ``sync``).
        notices: The link's notice handlers (the front's ``metrics``).
        webhooks_data: The webhooks message to push, as of now (called at each (re)start).
        inherited: Further descriptors the front inherits (the shared rate-limit table).
    """

    def __init__(
        self,
        sock: socket.socket,
        config: dict[str, Any],
        *,
        submit: lane.Submit,
        decode_row: Callable[[messages.Row], events.Event],
        handlers: dict[str, channel.Handler],
        notices: dict[str, channel.Notice],
        webhooks_data: Callable[[], dict[str, Any]],
        inherited: tuple[int, ...] = (),
    ) -> None:
        self.sock = sock
        self._config = config
        self._submit = submit
        self._decode_row = decode_row
        self._handlers = handlers
        self._notices = notices
        self._webhooks_data = webhooks_data
        self._inherited = inherited
        self.link: channel.Channel | None = None
        self._link_end: socket.socket | None = None
        self._lane_end: socket.socket | None = None
        self._lane: lane.LaneServer | None = None
        self._reading: asyncio.Future[None] | None = None
        self.stopping = False
        self._proc = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        """Starts a front process on the listening socket, with a fresh link."""
        mine, theirs = socket.socketpair()
        lane_mine, lane_theirs = socket.socketpair()
        config = {
            **self._config,
            "parent_pid": os.getpid(),
            "listen_fd": self.sock.fileno(),
            "link_fd": theirs.fileno(),
            "lane_fd": lane_theirs.fileno(),
        }
        try:
            proc = subprocess.Popen(  # noqa: S603 - our own module, this interpreter
                [sys.executable, "-m", "automations.webhooks.front", orjson.dumps(config).decode()],
                pass_fds=(
                    self.sock.fileno(),
                    theirs.fileno(),
                    lane_theirs.fileno(),
                    *self._inherited,
                ),
                stdin=subprocess.DEVNULL,
                # the engine's settings (its API token, database URL...) are not the front's
                # business: it is given what it needs on its command line and over the link
                env={k: v for k, v in os.environ.items() if not k.startswith("AUTOMATIONS_")},
            )
        finally:
            theirs.close()
            lane_theirs.close()
        self._link_end = mine
        self._lane_end = lane_mine
        return proc

    async def connect(self) -> None:
        """Opens the link to the front just spawned, pushes the webhooks, waits until it serves."""
        assert self._link_end is not None and self._lane_end is not None
        if self._lane is not None:  # the dead front's
            self._lane.close()
        self._lane = lane.LaneServer(
            self._lane_end, submit=self._submit, decode_row=self._decode_row
        )
        self._lane_end = None
        self._lane.start()
        link = channel.Channel(self._handlers, self._notices)
        await link.open(self._link_end)
        self._link_end = None
        self.link = link
        self._reading = asyncio.ensure_future(link.run())
        try:
            await asyncio.wait_for(link.request("webhooks", **self._webhooks_data()), START_SECONDS)
            await asyncio.wait_for(link.request("serve"), START_SECONDS)
        except (errors.AutomationsError, TimeoutError):
            raise errors.Unavailable(
                "the webhook front process did not start (exit code "
                f"{self._proc.poll()}); the log above says why"
            ) from None

    async def reap(self) -> int:
        """Waits for the front process to exit (killed after 5 s); its exit code."""
        try:
            return await asyncio.wait_for(asyncio.to_thread(self._proc.wait), 5)
        except TimeoutError:
            self._proc.kill()
            return await asyncio.to_thread(self._proc.wait)

    async def watch(self) -> None:
        """Starts the front again whenever it dies, until :meth:`stop`."""
        while True:
            assert self._reading is not None
            await self._reading
            if self.stopping:
                return
            code = await self.reap()
            logger.error("the webhook front process died; starting it again", extra={"code": code})
            while True:
                await asyncio.sleep(RESTART_SECONDS)
                if self.stopping:
                    return
                self._proc = self._spawn()
                try:
                    await self.connect()
                    break
                except Exception:
                    logger.exception("starting the webhook front process failed")
                    if self.link is not None:
                        self.link.close()
                    await self.reap()

    async def request(self, op: str, **fields: Any) -> None:
        """Asks the front something and waits for its answer (nothing while it is down)."""
        link = self.link
        if link is not None and not link.closed:
            await link.request(op, **fields)

    async def push(self, data: dict[str, Any]) -> None:
        """Hands the front the webhooks (one that is down gets them when it is started again)."""
        try:
            await self.request("webhooks", **data)
        except errors.Unavailable:
            logger.warning("a webhook front process is down; it gets the webhooks on restart")

    async def stop(self, grace: float) -> None:
        """Stops the front: no new requests, those in flight finish, the history is handed over."""
        self.stopping = True
        link = self.link
        if link is not None and not link.closed:
            try:
                await asyncio.wait_for(link.request("stop"), grace + 10)
            except Exception:
                logger.exception("stopping the webhook front process cleanly failed")

    async def close(self) -> None:
        """Closes the link, reaps the process, closes the lane and the socket (after :meth:`stop`)."""
        if self.link is not None:
            self.link.close()
        await self.reap()
        if self._lane is not None:
            await asyncio.to_thread(self._lane.close)
        self.sock.close()


class WebhookEndpoint:
    """``/hooks/<slug>`` on ``addr``, served by front processes (see the module docstring).

    Args:
        addr: ``HOST:PORT`` to listen on (bound here).
        load_all: Reads every webhook (runs in a worker thread).
        submit: Queues events for a commit from the lane's thread (``Writer.submit_replying``).
        decode_row: Rebuilds an event from its event-log row (``event_log.from_row``).
        write_deliveries: Writes deliveries and trims each webhook's history.
        deliveries_kept: Deliveries kept per webhook.
        threads: Each front's threads for requests too large to process on its event loop.
        max_body_bytes: Larger bodies are answered 413.
        shutdown_grace_seconds: How long stopping waits for requests in flight.
        processes: How many front processes serve the port (connections spread by the kernel).
        log_level: The front's log level.
        log_json: Whether the front logs JSON lines.
        memory_trim_seconds: How often the front returns freed memory to the system (0 never).
        changes_counted: Reads the counter webhook changes increment (cluster mode: other
            replicas change webhooks too). With it, a request for a slug the front does not
            serve first has the directory synced (``sync``), then is looked up again.

    Raises:
        OSError: ``addr`` cannot be bound.
    """

    def __init__(
        self,
        addr: str,
        *,
        load_all: Callable[[], Sequence[webhooks.Webhook]],
        submit: lane.Submit,
        decode_row: Callable[[messages.Row], events.Event],
        write_deliveries: Callable[[Sequence[webhooks.Delivery]], Awaitable[None]],
        deliveries_kept: int,
        threads: int,
        max_body_bytes: int,
        shutdown_grace_seconds: float,
        processes: int = 1,
        log_level: str = "INFO",
        log_json: bool = False,
        memory_trim_seconds: float = 10.0,
        changes_counted: Callable[[], int] | None = None,
    ) -> None:
        sockets = http_app.bind_group(addr, processes)
        self._write_deliveries = write_deliveries
        self._grace = shutdown_grace_seconds
        self._limits = rate_limit.SharedBuckets.create()
        self._slots = rate_limit.Slots(self._limits)
        config = {
            "deliveries_kept": deliveries_kept,
            "threads": threads,
            "max_body_bytes": max_body_bytes,
            "shutdown_grace_seconds": shutdown_grace_seconds,
            "log_level": log_level,
            "log_json": log_json,
            "memory_trim_seconds": memory_trim_seconds,
            "sync_on_miss": changes_counted is not None,
            "limits_fd": self._limits.fd,
            "limits_slots": self._limits.slots,
        }
        self.directory = Webhooks(self, load_all, changes_counted)
        self.history = History(self)
        self._meter = meter.PrometheusMeter()
        self._fronts = [
            _Front(
                sock,
                config,
                submit=submit,
                decode_row=decode_row,
                handlers={"deliveries": self._on_deliveries, "sync": self._on_sync},
                notices={"metrics": self._on_metrics},
                webhooks_data=self._webhooks_data,
                inherited=(self._limits.fd,),
            )
            for sock in sockets
        ]
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def address(self) -> str:
        """The ``HOST:PORT`` it listens on."""
        host, port = self._fronts[0].sock.getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def _webhooks_data(self) -> dict[str, Any]:
        """The ``webhooks`` message: the webhooks last read and their rate-limit slots."""
        hooks = self.directory.all()
        return {
            "items": [messages.webhook_to_data(webhook) for webhook in hooks],
            "limit_slots": self._slots.assign(hooks),
        }

    async def start(self) -> None:
        """Loads the webhooks and has the fronts serve them."""
        await self.directory.load()
        await asyncio.gather(*(front.connect() for front in self._fronts))
        self._tasks = [
            asyncio.create_task(self.directory.run()),
            *(asyncio.create_task(front.watch()) for front in self._fronts),
        ]
        logger.info(
            "webhooks at /hooks/<slug>",
            extra={"http_addr": self.address, "processes": len(self._fronts)},
        )

    async def push_webhooks(self) -> None:
        """Has the fronts serve the webhooks last read (one that is down gets them on restart)."""
        data = self._webhooks_data()
        await asyncio.gather(*(front.push(data) for front in self._fronts))

    async def request_front(self, op: str) -> None:
        """Asks every front something and waits for their answers (nothing of one that is down)."""
        await asyncio.gather(*(front.request(op) for front in self._fronts))

    # --------------------------------------------------------------------- the fronts' requests

    async def _on_deliveries(self, message: dict[str, Any]) -> bool:
        await self._write_deliveries(
            [messages.delivery_from_data(item) for item in message["items"]]
        )
        return True

    async def _on_sync(self, message: dict[str, Any]) -> bool:
        await self.directory.sync()
        return True

    def _on_metrics(self, message: dict[str, Any]) -> None:
        self._meter.apply(message["tally"])

    async def stop(self) -> None:
        """Stops the fronts: no new requests, those in flight finish, the history is written."""
        await asyncio.gather(*(front.stop(self._grace) for front in self._fronts))
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await asyncio.gather(*(front.close() for front in self._fronts))
        self._limits.close()
