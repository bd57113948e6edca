"""An in-process stand-in for Prefect's ``/api/events/out`` websocket and for the engine.

``FakePrefectStream`` speaks the protocol of ``prefect.server.api.events.stream_workspace_events_out``
(auth message when the ``prefect`` subprotocol is selected, then a filter message, then the
stored events since ``filter.occurred.since`` oldest first, then live events); the tests drive
it: ``emit`` stores an event and streams it to the connected client, ``drop`` breaks the
connection. ``FakeEngine`` answers like ``EventService.PublishEvents``: accepted once per id,
DUPLICATE after.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import queue
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve
from websockets.typing import Subprotocol

from automations.bridge import prefect_events

T0 = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
_DROP = object()


def event(seconds: float, name: str = "prefect.flow-run.Running") -> dict[str, Any]:
    """A Prefect event JSON that occurred ``seconds`` after ``T0``."""
    return {
        "id": str(uuid.uuid4()),
        "event": name,
        "occurred": (T0 + dt.timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z"),
        "resource": {"prefect.resource.id": f"prefect.flow-run.{uuid.uuid4()}"},
        "related": [],
        "payload": {},
        "received": (T0 + dt.timedelta(seconds=seconds)).isoformat(),
        "follows": None,
    }


def _occurred(data: Mapping[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(str(data["occurred"]))


class FakePrefectStream:
    """Prefect's event websocket on a free local port (use ``running()``)."""

    def __init__(self, *, token: str | None = None, subprotocol: bool = True) -> None:
        self.token = token
        self.subprotocol = subprotocol
        self.stored: list[dict[str, Any]] = []
        self.auth_messages: list[dict[str, Any]] = []
        self.filters: list[dict[str, Any]] = []
        self.subscribed = threading.Semaphore(0)
        """Released once per subscription that finished its backfill."""
        self._live: queue.Queue[object] | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.url = ""

    @contextmanager
    def running(self) -> Iterator[FakePrefectStream]:
        protocols = [Subprotocol("prefect")] if self.subprotocol else None
        with serve(self._handle, "127.0.0.1", 0, subprotocols=protocols) as server:
            port = server.socket.getsockname()[1]
            self.url = f"http://127.0.0.1:{port}/api"
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            try:
                yield self
            finally:
                self._stopping.set()
                server.shutdown()
                thread.join(5)

    def wait_subscribed(self, timeout: float = 20.0) -> None:
        assert self.subscribed.acquire(timeout=timeout), "the bridge did not subscribe"

    def emit(self, data: dict[str, Any]) -> None:
        """Stores an event and streams it to the subscriber, if one is connected."""
        with self._lock:
            self.stored.append(data)
            if self._live is not None:
                self._live.put(data)

    def drop(self) -> None:
        """Breaks the current connection (as a Prefect server restarting does)."""
        with self._lock:
            if self._live is not None:
                self._live.put(_DROP)
                self._live = None

    def _handle(self, conn: ServerConnection) -> None:
        try:
            if conn.subprotocol == "prefect":
                auth = json.loads(conn.recv())
                self.auth_messages.append(auth)
                if auth.get("type") != "auth" or (self.token and auth.get("token") != self.token):
                    conn.close(1008, "Invalid token")
                    return
                conn.send(json.dumps({"type": "auth_success"}))
            message = json.loads(conn.recv())
            assert message["type"] == "filter"
            self.filters.append(message)
            since = dt.datetime.fromisoformat(message["filter"]["occurred"]["since"])
            live: queue.Queue[object] = queue.Queue()
            with self._lock:
                backfill = sorted((e for e in self.stored if _occurred(e) >= since), key=_occurred)
                self._live = live
            for data in backfill:
                conn.send(json.dumps({"type": "event", "event": data}))
            self.subscribed.release()
            while not self._stopping.is_set():
                try:
                    item = live.get(timeout=0.05)
                except queue.Empty:
                    continue
                if item is _DROP:
                    conn.close(1012, "service restart")
                    return
                conn.send(json.dumps({"type": "event", "event": item}))
        except ConnectionClosed:
            return


class FakeEngine:
    """Records published batches; answers like PublishEvents (DUPLICATE for a seen id)."""

    def __init__(self, *, failures: Sequence[prefect_events.PublishError] = ()) -> None:
        self.batches: list[list[str]] = []
        self.accepted: collections.Counter[str] = collections.Counter()
        self.duplicates: collections.Counter[str] = collections.Counter()
        self._failures = list(failures)
        self.lock = threading.Lock()

    def publish(self, batch: Sequence[Mapping[str, Any]]) -> None:
        with self.lock:
            if self._failures:
                raise self._failures.pop(0)
            ids = [str(e["id"]) for e in batch]
            self.batches.append(ids)
            for event_id in ids:
                if self.accepted[event_id]:
                    self.duplicates[event_id] += 1
                else:
                    self.accepted[event_id] += 1

    def published_ids(self) -> set[str]:
        with self.lock:
            return set(self.accepted)
