"""Subscribes to a Prefect server's event stream and hands its events over in bounded batches.

Prefect streams events on the ``/api/events/out`` websocket (``prefect.server.api.events``):

1. The client offers the ``prefect`` subprotocol. When the server selects it, the client sends
   ``{"type": "auth", "token": ...}`` and the server answers ``{"type": "auth_success"}`` (or
   closes with 1008 and a reason). A server that does not select it (legacy mode, no auth
   configured) skips this step.
2. The client sends ``{"type": "filter", "filter": EventFilter, "backfill": true}``; the server
   first replays the stored events matching the filter (oldest first, at most
   ``PREFECT_SERVER_EVENTS_MAXIMUM_WEBSOCKET_BACKFILL``, 15 minutes, back), then streams new
   ones as ``{"type": "event", "event": {...}}``.

Like Prefect's own ``PrefectEventSubscriber``, the bridge reconnects when the socket drops and
filters the new subscription from ``occurred.since`` = the latest published event's
``occurred`` minus a replay margin (events do not arrive strictly in ``occurred`` order), so
that nothing between the two connections is missed. The overlap is harmless: the bridge skips
ids it published recently, and the engine answers DUPLICATE for any id it has seen.

The bridge knows nothing about gRPC: it calls a ``Publish`` function with each batch of
Prefect event dicts (``automations bridge prefect`` gives it one that calls the engine's
``EventService.PublishEvents``).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import json
import logging
import os
import pathlib
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

logger = logging.getLogger(__name__)

Publish = Callable[[Sequence[Mapping[str, Any]]], None]
"""Publishes one batch of Prefect event dicts; raises ``PublishError`` when it could not."""

Connect = Callable[[str], ClientConnection]
"""Opens the websocket to a URL (``websockets.sync.client.connect`` with the bridge's options)."""

_UNTIL = dt.timedelta(days=365)
"""How far ahead the subscription's ``occurred.until`` reaches (as Prefect's subscriber)."""
_POLL = 0.25
"""Longest wait for a message before looking at the stop flag again, in seconds."""
CLOSE_TIMEOUT = 2.0
"""Longest wait for Prefect's answer to the closing handshake (websockets' default: 10 s), so that
a SIGTERM is not held up by a busy server."""


class PublishError(Exception):
    """A batch could not be published.

    Attributes:
        retryable: Whether sending the same batch again may succeed (the engine is busy,
            starting or unreachable); the bridge retries those with backoff and stops on others.
    """

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class BridgeError(Exception):
    """The bridge cannot go on: Prefect refused the credentials or the engine refused a batch."""


@dataclasses.dataclass(frozen=True, slots=True)
class BridgeOptions:
    """Tuning of ``PrefectEventBridge``.

    Attributes:
        batch_size: Publish as soon as this many events are waiting.
        flush_interval: Publish waiting events at the latest this long after the first of them
            arrived, in seconds.
        replay: On (re)connect, ask for events from this long before the latest published
            event's ``occurred`` (Prefect's subscriber uses one minute), in seconds.
        backoff_initial: First wait before reconnecting or republishing, in seconds; it
            doubles (with jitter) on every failure in a row.
        backoff_max: Longest such wait, in seconds.
        seen_ids: How many recently published event ids are remembered to skip the replayed
            overlap without sending it (0: send it, and let the engine answer DUPLICATE).
        open_timeout: Deadline of the websocket's opening handshake and of the auth answer.
    """

    batch_size: int = 100
    flush_interval: float = 0.5
    replay: float = 60.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    seen_ids: int = 10_000
    open_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if self.flush_interval <= 0 or self.backoff_initial <= 0 or self.open_timeout <= 0:
            raise ValueError("flush_interval, backoff_initial and open_timeout must be positive")
        if self.replay < 0 or self.seen_ids < 0 or self.backoff_max < self.backoff_initial:
            raise ValueError("replay and seen_ids must be >= 0, backoff_max >= backoff_initial")


def events_out_url(api_url: str) -> str:
    """Returns the ``/events/out`` websocket URL of a Prefect API URL (``.../api``)."""
    url = api_url.rstrip("/")
    for http, ws in (("https://", "wss://"), ("http://", "ws://")):
        if url.startswith(http):
            url = ws + url[len(http) :]
            break
    return url + "/events/out"


def name_matcher(patterns: Iterable[str]) -> Callable[[str], bool]:
    """Returns a test of event names against patterns (``--event``).

    The whole name must match; a ``*`` stands for one or more characters (as in Prefect's
    ``expect``), everything else is literal and case-sensitive. No patterns match every name.
    """
    regexes = [
        re.compile(".+".join(re.escape(part) for part in pattern.split("*")))
        for pattern in patterns
    ]
    if not regexes:
        return lambda name: True
    return lambda name: any(r.fullmatch(name) for r in regexes)


def name_prefixes(patterns: Iterable[str]) -> list[str]:
    """Returns the name prefixes a Prefect ``EventNameFilter`` can pre-select the patterns by.

    Each pattern contributes its text before the first ``*``; the bridge still tests every
    event against the patterns themselves (Prefect's filter ANDs ``prefix`` with ``name``, so
    the prefixes are the only part it can OR).
    """
    return sorted({pattern.split("*", 1)[0] for pattern in patterns})


def iso(seconds: float) -> str:
    """Formats a POSIX time as ISO 8601 UTC, as Prefect's event filter reads it."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat()


def _occurred(event: Mapping[str, Any]) -> float | None:
    value = event.get("occurred")
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


class AuthenticationFailed(BridgeError):
    """The Prefect server refused the websocket's auth message."""


class PrefectEventBridge:
    """Streams a Prefect server's events to a ``Publish`` function until told to stop.

    Args:
        api_url: The Prefect API URL, e.g. ``http://127.0.0.1:4200/api``.
        publish: Called with each batch (at most ``options.batch_size`` events, in arrival
            order); raises ``PublishError`` on failure.
        event_patterns: Only events whose name matches one of these (``*`` wildcards); default
            every event.
        auth_token: Sent in the auth message: Prefect's ``PREFECT_API_AUTH_STRING`` (or a
            Prefect Cloud API key); None when the server needs none.
        since: Ask for events from this POSIX time on; default ``options.replay`` seconds ago.
        options: Batching, replay and backoff settings.
        connect: Opens the websocket (tests inject one); default ``websockets``' sync client
            offering the ``prefect`` subprotocol.
        clock: POSIX time now.
    """

    def __init__(
        self,
        api_url: str,
        publish: Publish,
        *,
        event_patterns: Sequence[str] = (),
        auth_token: str | None = None,
        since: float | None = None,
        options: BridgeOptions | None = None,
        connect: Connect | None = None,
        clock: Callable[[], float] = time.time,
        state_path: str | None = None,
    ) -> None:
        self.url = events_out_url(api_url)
        self.options = options or BridgeOptions()
        self._publish = publish
        self._patterns = tuple(event_patterns)
        self._matches = name_matcher(self._patterns)
        self._token = auth_token
        self._clock = clock
        self._connect = connect or self._default_connect
        self._state_path = pathlib.Path(state_path) if state_path else None
        saved = self._load_since()
        if since is None:
            since = saved if saved is not None else clock() - self.options.replay
        self.since = since
        """Where the next subscription starts (POSIX time); it advances as batches publish."""
        self.connections = 0
        """How many times the subscription was established."""
        self.published = 0
        """How many events were handed to ``publish`` successfully."""
        self._pending: list[Mapping[str, Any]] = []
        self._pending_ids: set[str] = set()
        self._first_pending = 0.0
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()

    def _default_connect(self, url: str) -> ClientConnection:
        return connect(
            url,
            subprotocols=[Subprotocol("prefect")],
            open_timeout=self.options.open_timeout,
            close_timeout=CLOSE_TIMEOUT,
        )

    # ------------------------------------------------------------------------------ running

    def run(self, stop: threading.Event) -> None:
        """Bridges events until ``stop`` is set, reconnecting with backoff; flushes on exit.

        Raises:
            BridgeError: Prefect refused the credentials, or a batch failed for good.
        """
        backoff = self.options.backoff_initial
        try:
            while not stop.is_set():
                healthy, problem = self._session(stop)
                if stop.is_set():
                    break
                backoff = self.options.backoff_initial if healthy else backoff
                wait = backoff * random.uniform(0.5, 1.0)
                logger.warning("%s: %s; reconnecting in %.1f s", self.url, problem, wait)
                if stop.wait(wait):
                    break
                backoff = min(backoff * 2, self.options.backoff_max)
        finally:
            self._flush(stop)

    def _session(self, stop: threading.Event) -> tuple[bool, str]:
        """Runs one connection until it drops or ``stop``.

        Returns:
            Whether it was healthy (got events, or lasted ``backoff_max``), and why it ended.
        """
        opened = time.monotonic()
        before = self.published
        problem = "the stream ended"
        try:
            with self._connect(self.url) as ws:
                self._handshake(ws)
                self.connections += 1
                logger.info(
                    "%s to %s, events since %s%s",
                    "connected" if self.connections == 1 else "reconnected",
                    self.url,
                    iso(self.since),
                    f" named {', '.join(self._patterns)}" if self._patterns else "",
                )
                self._pump(ws, stop)
        except AuthenticationFailed:
            raise
        except (OSError, TimeoutError, WebSocketException) as exc:
            problem = str(exc) or type(exc).__name__
        self._flush(stop)
        lasted = time.monotonic() - opened >= self.options.backoff_max
        return lasted or self.published > before, problem

    def _handshake(self, ws: ClientConnection) -> None:
        if ws.subprotocol == "prefect":
            ws.send(json.dumps({"type": "auth", "token": self._token}))
            try:
                answer = json.loads(ws.recv(timeout=self.options.open_timeout))
            except ConnectionClosed as exc:
                if exc.rcvd is not None and exc.rcvd.code == 1008:
                    raise AuthenticationFailed(
                        f"Prefect refused the event stream's credentials: {exc.rcvd.reason}"
                    ) from None
                raise
            if not isinstance(answer, dict) or answer.get("type") != "auth_success":
                reason = answer.get("reason", answer) if isinstance(answer, dict) else answer
                raise AuthenticationFailed(f"Prefect refused the event stream's auth: {reason}")
        ws.send(json.dumps({"type": "filter", "filter": self._filter(), "backfill": True}))

    def _filter(self) -> dict[str, Any]:
        now = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
        found: dict[str, Any] = {
            "occurred": {"since": iso(self.since), "until": (now + _UNTIL).isoformat()},
            "order": "ASC",
        }
        prefixes = name_prefixes(self._patterns)
        if prefixes and "" not in prefixes:
            found["event"] = {"prefix": prefixes}
        return found

    def _pump(self, ws: ClientConnection, stop: threading.Event) -> None:
        while not stop.is_set():
            timeout = _POLL
            if self._pending:
                due = self._first_pending + self.options.flush_interval
                timeout = max(0.0, min(_POLL, due - time.monotonic()))
            try:
                self._take(ws.recv(timeout=timeout))
            except TimeoutError:
                pass
            if self._pending and (
                len(self._pending) >= self.options.batch_size
                or time.monotonic() >= self._first_pending + self.options.flush_interval
            ):
                self._flush(stop)

    def _take(self, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            logger.warning("Prefect event stream: a message that is not JSON, skipped")
            return
        if not isinstance(message, dict) or message.get("type") != "event":
            return
        event = message.get("event")
        if not isinstance(event, dict):
            return
        event_id, name = event.get("id"), event.get("event")
        if not isinstance(event_id, str) or not isinstance(name, str):
            logger.warning("Prefect event stream: an event without id or name, skipped")
            return
        if event_id in self._seen or event_id in self._pending_ids or not self._matches(name):
            return
        if not self._pending:
            self._first_pending = time.monotonic()
        self._pending.append(event)
        self._pending_ids.add(event_id)

    # --------------------------------------------------------------------------- publishing

    def _flush(self, stop: threading.Event) -> None:
        """Publishes the waiting events, retrying with backoff until it works or ``stop``."""
        if not self._pending:
            return
        batch = list(self._pending)
        delay = self.options.backoff_initial
        while True:
            try:
                self._publish(batch)
                break
            except PublishError as exc:
                if not exc.retryable:
                    raise BridgeError(f"the engine refused a batch of events: {exc}") from exc
                logger.warning("publishing %d events failed: %s; retrying", len(batch), exc)
                if stop.wait(delay * random.uniform(0.5, 1.0)):
                    logger.warning("stopping: %d events were not published", len(batch))
                    self._pending.clear()
                    self._pending_ids.clear()
                    return
                delay = min(delay * 2, self.options.backoff_max)
        self._pending.clear()
        self._pending_ids.clear()
        self.published += len(batch)
        for event in batch:
            self._remember(str(event["id"]))
            occurred = _occurred(event)
            if occurred is not None:
                self.since = max(self.since, occurred - self.options.replay)
        self._save_since()

    def _load_since(self) -> float | None:
        """The resume point saved by an earlier run, if any (a restart resumes, not "now")."""
        if self._state_path is None or not self._state_path.exists():
            return None
        try:
            return float(json.loads(self._state_path.read_text())["since"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("ignoring the bridge state file %s: %s", self._state_path, exc)
            return None

    def _save_since(self) -> None:
        if self._state_path is None:
            return
        temporary = self._state_path.with_suffix(self._state_path.suffix + ".tmp")
        temporary.write_text(json.dumps({"since": self.since}))
        os.replace(temporary, self._state_path)

    def _remember(self, event_id: str) -> None:
        if self.options.seen_ids == 0:
            return
        self._seen[event_id] = None
        self._seen.move_to_end(event_id)
        while len(self._seen) > self.options.seen_ids:
            self._seen.popitem(last=False)
