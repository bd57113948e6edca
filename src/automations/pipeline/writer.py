"""The single writer: group commit of event batches, the trigger engine and its deadlines.

One thread owns the write connection and the trigger engine. Client batches queue up while the
previous transaction commits; the writer then takes every queued batch (up to ``max_group_events``)
and commits them together: events appended to the log (duplicates detected), the engine run over the
new events, and its state changes and firings written, all in ONE transaction. Only after the commit
are the callers' futures resolved, so an acknowledged event is on disk.

Deadlines (proactive windows, lost followers, retention purges) are not polled: the writer blocks on
its queue with a timeout equal to the time left until the earliest deadline, so a window fires at
its end to the millisecond.

A group whose commit fails is committed again batch by batch, after the engine's state is
reloaded from the database: only a batch that fails on its own is refused (UNAVAILABLE), so one
client's input can never fail another's. (Unless the store itself is unavailable, e.g. a full
disk: then every batch of the group is refused at once.)

Backpressure: when more than ``max_pending_events`` events are queued, ``publish`` raises
``ResourceExhausted`` at once instead of letting memory grow.

Calls (recording the dispatcher's outcomes, claiming due invocations, automation changes) take
their turn with event batches in arrival order, except that a call waiting longer than half of
``group_seconds`` runs before the next group: a busy ingest cannot stall action dispatch, and a
quiet one does not delay events behind calls. (In plain FIFO order, recording waited behind every
queued batch: while 20,000 firing events were ingested, the dispatcher stood still for seconds
with its outcomes unrecorded. Calls always first added ~1-2 ms to the p99 of event acks at 1,000
firings/s.)
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from automations.domain import errors, events
from automations.store import event_log

logger = logging.getLogger(__name__)

T = TypeVar("T")


Reply = Callable[[list[bool] | None, BaseException | None], None]
"""Takes a batch's outcome on the writer thread: its flags, or why it was refused."""


@dataclasses.dataclass(slots=True)
class _EventBatch:
    events: Sequence[events.Event]
    future: asyncio.Future[list[bool]] | None
    loop: asyncio.AbstractEventLoop | None
    prepared: Sequence[event_log.Row] | None = None
    reply: Reply | None = None

    def settle(self, flags: list[bool] | None, exc: BaseException | None) -> None:
        """Hands the outcome over: to the reply on this thread, or to the future on its loop."""
        if self.reply is not None:
            try:
                self.reply(flags, exc)
            except Exception:
                logger.exception("answering a committed batch failed")
            return
        assert self.loop is not None and self.future is not None
        if exc is not None:
            self.loop.call_soon_threadsafe(_reject, self.future, exc)
        else:
            self.loop.call_soon_threadsafe(_resolve, self.future, flags)


@dataclasses.dataclass(slots=True)
class _Call(Generic[T]):
    fn: Callable[[Any], T]
    future: asyncio.Future[T]
    loop: asyncio.AbstractEventLoop
    queued: float = 0.0  # time.monotonic() when it was queued


_STOP = object()
_CALLS = object()
"""Queued with each call (kept in ``Writer._calls``): its place among the event batches."""


def _resolve(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _reject(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


class Backend:
    """What the writer drives; the composition root supplies the real one (``pipeline.backend``).

    Every method runs on the writer thread.
    """

    def start(self) -> None:
        """Prepares the backend (loads automations and state) on the writer thread."""

    def commit_events(
        self,
        batch: Sequence[events.Event],
        now: float,
        *,
        prepared: Sequence[event_log.Row] | None = None,
    ) -> list[bool]:
        """Appends ``batch`` in one transaction and runs the engine; returns new(True)/duplicate.

        ``prepared``, when given, holds what ``publish`` was given for each event (see there);
        it is only passed when every batch of the group came with it.
        """
        raise NotImplementedError

    def answered(self) -> None:
        """Called after each ``commit_events`` that committed, once its callers are answered.

        What the commit set off that its callers need not wait for goes here (the engine hands
        the firings' invocations to the dispatcher).
        """

    def run_call(self, fn: Callable[[Any], T]) -> T:
        """Runs ``fn(self)`` (automation CRUD and the like open their own transactions)."""
        return fn(self)

    def next_due(self) -> float | None:
        """The next wall time at which ``advance`` has work, or None."""
        return None

    def advance(self, now: float) -> None:
        """Does everything due at or before ``now`` (deadlines, purges) and commits it."""

    def recover(self) -> None:
        """Rebuilds in-memory state from the database after a failed transaction."""

    def is_unavailable(self, exc: BaseException) -> bool:
        """Whether a failed commit says the store is unavailable (every commit would fail now).

        The writer commits the batches of a failed group one by one, unless this says retrying
        is pointless (a full disk, a lost database).
        """
        return False

    def close(self) -> None:
        """Releases resources on the writer thread."""


B = TypeVar("B", bound=Backend)


class Writer(Generic[B]):
    """The single-writer thread with group commit and deadline-driven wake-ups.

    Generic in its backend: ``Writer[EngineBackend].call`` takes a function of the engine backend,
    so the type checker sees every backend method a call names.

    Args:
        backend: The transactional work to run.
        max_pending_events: Backpressure bound on queued events.
        max_group_events: Most events in one transaction.
        group_seconds: The time a group should take to commit: the writer keeps a moving
            average of the time per event of past groups and takes no more queued batches than
            that allows (always at least one). Events that fire many actions cost far more than
            plain ones, and a call or a small batch queued behind a 20,000-event group of them
            waited seconds.
        clock: Wall clock (seconds since the epoch).
    """

    def __init__(
        self,
        backend: B,
        *,
        max_pending_events: int = 100_000,
        max_group_events: int = 20_000,
        group_seconds: float = 0.25,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._backend = backend
        self._max_pending = max_pending_events
        self._max_group = max_group_events
        self._group_seconds = group_seconds
        self._seconds_per_event = 0.0  # moving average over committed groups
        self._clock = clock
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._calls: collections.deque[_Call[Any]] = collections.deque()
        self._pending_events = 0
        self._pending_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._accepting = False
        self.commits_failing = False
        """Whether the last group commit failed because the store is unavailable (a full disk)."""
        self.on_commits_failing: Callable[[bool], None] | None = None
        """Called on the writer thread each time ``commits_failing`` changes."""

    # ------------------------------------------------------------------------------ public API

    def start(self) -> None:
        """Starts the writer thread and waits until the backend has loaded its state.

        Raises:
            BaseException: Whatever the backend raised while starting.
        """
        self._thread = threading.Thread(target=self._run, name="automations-writer", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._start_error is not None:
            raise self._start_error
        self._accepting = True

    @property
    def pending_events(self) -> int:
        """Events queued and not yet committed."""
        return self._pending_events

    async def publish(
        self, batch: Sequence[events.Event], prepared: Sequence[event_log.Row] | None = None
    ) -> list[bool]:
        """Queues ``batch`` for the next group commit and waits for it.

        Args:
            batch: The events, in order.
            prepared: Optional per-event work the caller did ahead for the backend (the event
                log rows, encoded on the event loop rather than on this busier thread), one per
                event; handed to ``Backend.commit_events``.

        Returns:
            For each event, True if it was new, False if its id was seen before.

        Raises:
            errors.InvalidArgument: The batch alone is larger than the backpressure bound: it
                could never be taken (reason ``BATCH_TOO_LARGE``, field ``events``).
            errors.ResourceExhausted: Too many events are waiting already.
            errors.Unavailable: The writer is stopping or the commit failed.
        """
        return await self.submit(batch, prepared)

    def submit(
        self, batch: Sequence[events.Event], prepared: Sequence[event_log.Row] | None = None
    ) -> asyncio.Future[list[bool]]:
        """:meth:`publish` without the wait: queues ``batch`` now, returns the commit's future.

        For a caller on the event loop that hands batches over as they become ready, in the
        middle of a loop turn (the webhooks), so that the writer commits them while the loop
        goes on with the next ones. Raises what :meth:`publish` raises, at once.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[bool]] = loop.create_future()
        if not self._admit(len(batch)):
            future.set_result([])
            return future
        self._queue.put(_EventBatch(batch, future, loop, prepared))
        return future

    def submit_replying(
        self,
        batch: Sequence[events.Event],
        prepared: Sequence[event_log.Row] | None,
        reply: Reply,
    ) -> None:
        """:meth:`submit` from any thread: ``reply`` gets the outcome on the writer thread.

        For a caller with no event loop on the acknowledgement's path (the webhook front's
        publish lane, ``webhooks.lane``): the writer answers it right after the commit, with no
        hop through an event loop. ``reply`` must be quick and must not raise. Raises what
        :meth:`publish` raises, at once (``reply`` is then not called).
        """
        if not self._admit(len(batch)):
            reply([], None)
            return
        self._queue.put(_EventBatch(batch, None, None, prepared, reply))

    def _admit(self, n: int) -> bool:
        """Counts ``n`` events in as pending (False for none); raises what ``publish`` raises."""
        if not self._accepting:
            raise errors.Unavailable("the engine is not accepting events (starting or draining)")
        if not n:
            return False
        if n > self._max_pending:
            raise errors.InvalidArgument(
                "events",
                f"holds {n} events; send at most {self._max_pending} per request "
                "(max_pending_events)",
                reason="BATCH_TOO_LARGE",
            )
        with self._pending_lock:
            if self._pending_events + n > self._max_pending and self._pending_events > 0:
                raise errors.ResourceExhausted(
                    f"{self._pending_events} events are waiting to be committed; retry with backoff",
                    reason="INGEST_BACKLOG_FULL",
                )
            self._pending_events += n
        return True

    async def call(self, fn: Callable[[B], T]) -> T:
        """Runs ``fn(backend)`` on the writer thread, in queue order (see the module docstring)."""
        if self._thread is None or not self._thread.is_alive():
            raise errors.Unavailable("the engine is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._calls.append(_Call(fn, future, loop, time.monotonic()))
        self._queue.put(_CALLS)
        return await future

    def stop_accepting(self) -> None:
        """Refuses new event batches (UNAVAILABLE); queued ones are still committed."""
        self._accepting = False

    def stop(self, timeout: float | None = None) -> None:
        """Commits what is queued, then stops the thread."""
        self._accepting = False
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)

    # ----------------------------------------------------------------------------- the thread

    def _run(self) -> None:
        try:
            self._backend.start()
        except BaseException as exc:  # handed to start()'s caller
            self._start_error = exc
            self._started.set()
            return
        self._started.set()
        carry: Any = None
        try:
            while True:
                self._run_overdue_calls()
                item = carry if carry is not None else self._next_item()
                carry = None
                if item is _STOP:
                    self._drain_after_stop()
                    return
                if item is _CALLS:  # its call's turn, unless it ran early as overdue
                    if self._calls:
                        self._run_call(self._calls.popleft())
                    continue
                if not isinstance(item, _EventBatch):  # None: re-read the deadline
                    continue
                group = [item]
                size = len(item.events)
                limit = self._group_limit()
                while size < limit:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        continue
                    if not isinstance(nxt, _EventBatch):  # a call's turn, or _STOP
                        carry = nxt
                        break
                    group.append(nxt)
                    size += len(nxt.events)
                self._commit_group(group)
        finally:
            self._backend.close()

    def _next_item(self) -> Any:
        while True:
            due = self._backend.next_due()
            if due is None:
                return self._queue.get()
            wait = due - self._clock()
            if wait > 0:
                try:
                    return self._queue.get(timeout=wait)
                except queue.Empty:
                    pass
            try:
                self._backend.advance(self._clock())
            except Exception:
                logger.exception("deadline processing failed; reloading state from the database")
                self._safe_recover()
                time.sleep(0.1)

    def _group_limit(self) -> int:
        """The most events to take into the next group (see ``group_seconds``)."""
        per_event = self._seconds_per_event
        if per_event <= 0.0:
            return self._max_group
        return max(1, min(self._max_group, int(self._group_seconds / per_event)))

    def _run_overdue_calls(self) -> None:
        """Runs the calls that have waited longer than half of ``group_seconds``, oldest first."""
        calls = self._calls
        overdue = time.monotonic() - self._group_seconds / 2
        while calls and calls[0].queued < overdue:
            self._run_call(calls.popleft())

    def _run_calls(self) -> None:
        """Runs every call waiting now."""
        for _ in range(len(self._calls)):
            self._run_call(self._calls.popleft())

    def _drain_after_stop(self) -> None:
        while True:
            self._run_calls()
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                if not self._calls:
                    return
                continue
            if isinstance(item, _EventBatch):
                self._commit_group([item])

    def _run_call(self, call: _Call[Any]) -> None:
        try:
            result = self._backend.run_call(call.fn)
        except BaseException as exc:
            call.loop.call_soon_threadsafe(_reject, call.future, exc)
            if not isinstance(exc, errors.AutomationsError):
                self._safe_recover()
            return
        call.loop.call_soon_threadsafe(_resolve, call.future, result)

    def _commit_group(self, group: list[_EventBatch]) -> None:
        batch: list[events.Event] = []
        prepared: list[event_log.Row] | None = []
        for item in group:
            batch.extend(item.events)
            if prepared is not None:
                if item.prepared is None:
                    prepared = None
                else:
                    prepared.extend(item.prepared)
        started = time.perf_counter()
        try:
            if prepared is None:
                flags = self._backend.commit_events(batch, self._clock())
            else:
                flags = self._backend.commit_events(batch, self._clock(), prepared=prepared)
        except BaseException as exc:
            logger.exception("committing %d events failed", len(batch))
            unavailable = self._backend.is_unavailable(exc)
            if unavailable:
                self._set_commits_failing(True)
            self._safe_recover()
            if len(group) > 1 and not unavailable:
                # one client's input must never fail another's: each batch on its own
                for item in group:
                    self._commit_group([item])
                return
            failure = errors.Unavailable(
                "the events could not be committed; the engine's log says why"
            )
            self._release(len(batch))
            for item in group:
                item.settle(None, failure)
            return
        if self.commits_failing:
            self._set_commits_failing(False)
        per_event = (time.perf_counter() - started) / len(batch)
        average = self._seconds_per_event
        self._seconds_per_event = per_event if average <= 0.0 else 0.7 * average + 0.3 * per_event
        # released before the callers wake up, so that a caller sees its events counted out
        self._release(len(batch))
        offset = 0
        for item in group:
            n = len(item.events)
            item.settle(flags[offset : offset + n], None)
            offset += n
        self._backend.answered()

    def commits_recovered(self) -> None:
        """Says that the store takes writes again (a probe committed); see ``commits_failing``."""
        self._set_commits_failing(False)

    def _set_commits_failing(self, failing: bool) -> None:
        if failing == self.commits_failing:
            return
        self.commits_failing = failing
        callback = self.on_commits_failing
        if callback is not None:
            callback(failing)

    def _release(self, n: int) -> None:
        with self._pending_lock:
            self._pending_events -= n

    def _safe_recover(self) -> None:
        try:
            self._backend.recover()
        except Exception:
            logger.exception("recovering state from the database failed")
