"""The outbox dispatcher: renders, carries out or sends each invocation, and records the outcome.

Two ways in, one way out:

* **fresh** invocations come straight from the writer right after the transaction that wrote them
  committed (``submit``, thread-safe): written ``running`` with a lease, they reach an executor
  within milliseconds of the firing, without a poll;
* **due** invocations (retries whose backoff has passed, invocations of a previous run, ones
  written ``pending`` because the dispatcher was full) are claimed from the database by the
  poller, which sleeps until the earliest ``next_attempt_at`` (at most ``poll_interval``);
* every outcome goes back through ``OutboxStore.record``, batched: all outcomes finished while the
  previous batch was being committed are committed together, with their lifecycle events.

Concurrency is bounded by ``concurrency`` workers. Delivery is at least once (a crash between an
executor's answer and its recording repeats the call); executors dedupe on the idempotency key,
which makes it effectively once.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import dataclasses
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from automations import metrics
from automations.actions import internal, outcomes, planning, templates
from automations.dispatch import executor_client, prefect_context, retry
from automations.domain import actions as actions_
from automations.domain import errors, events
from automations.v1 import event_pb2
from automations.wire import events as wire_events

logger = logging.getLogger(__name__)

EVENT_MESSAGE_CACHE = 1024
"""Triggering events kept converted to messages (the most recent ones)."""
RENDER_THREADS = 2
"""Threads rendering templates, off the event loop (each render has its own CPU budget)."""

_OUTCOME_LABELS = {outcomes.RETRY: "retried", outcomes.DEAD_LETTER: "dead_lettered"}


@dataclasses.dataclass(frozen=True, slots=True)
class OutboxStats:
    """What the poller reads of the outbox.

    Attributes:
        open: Invocations pending or running.
        oldest_created: Creation time of the oldest pending or running one, or None.
        next_due: The earliest ``next_attempt_at`` of a pending one, or None.
    """

    open: int
    oldest_created: float | None
    next_due: float | None


class OutboxStore(Protocol):
    """The dispatcher's access to the outbox (provided by the pipeline, through the writer)."""

    async def record(self, results: Sequence[outcomes.Outcome]) -> None:
        """Records outcomes (and their lifecycle events) in one transaction."""

    async def claim(self, limit: int) -> list[planning.Job]:
        """Claims up to ``limit`` due invocations, with their firings."""

    async def release_running(self) -> int:
        """Makes every ``running`` invocation due now (at start: the last run's are orphans)."""

    async def stats(self) -> OutboxStats:
        """Reads the outbox's size and next due time."""


@dataclasses.dataclass(frozen=True, slots=True)
class DispatcherSettings:
    """Tuning of the dispatcher.

    Attributes:
        concurrency: Invocations in flight at most.
        max_backlog: Fresh invocations queued in memory at most; past it the writer leaves new
            ones ``pending`` for the poller.
        poll_interval: Longest sleep of the poller, seconds.
        health_interval: Seconds between two health checks of the executors.
        record_batch: Most outcomes recorded in one transaction.
        max_unrecorded: Outcomes waiting to be recorded at most; past it the workers wait, so
            that calls do not run ahead of the database (memory stays bounded and the
            sustained rate is the recorded one).
        retry: Backoff and dead-letter policy.
        drain_seconds: At stop, how long in-flight invocations may finish.
        handoff_wait: How long ``submit`` (on the writer thread) waits for the event loop to
            take the invocations, 0 not to wait. Waiting hands the GIL to the event loop, which
            then sends the calls before the writer takes the GIL back; without it the loop waited
            for the writer's next statement or the end of its switch interval.
        ui_url: The Prefect UI's base URL for the ``ui_url`` template filters, or None.
    """

    concurrency: int = 1024
    max_backlog: int = 10_000
    poll_interval: float = 1.0
    health_interval: float = 2.0
    record_batch: int = 1000
    max_unrecorded: int = 4000
    retry: retry.RetryPolicy = dataclasses.field(default_factory=retry.RetryPolicy)
    drain_seconds: float = 5.0
    handoff_wait: float = 0.005
    ui_url: str | None = None


class Dispatcher:
    """Delivers outbox invocations (see the module docstring).

    Args:
        store: The outbox.
        client: Executor routing and calls.
        settings: Tuning.
        clock: Wall clock, seconds since the epoch.
        prefect_objects: Loads ``flow_run``, ``deployment``... for templates that name them
            (when a Prefect API is configured).
    """

    def __init__(
        self,
        store: OutboxStore,
        client: executor_client.ExecutorClient,
        settings: DispatcherSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        prefect_objects: prefect_context.PrefectObjects | None = None,
    ) -> None:
        self._store = store
        self._client = client
        self._prefect_objects = prefect_objects
        # templates render off the event loop, each within its CPU and memory budget
        self._renderer = concurrent.futures.ThreadPoolExecutor(
            max_workers=RENDER_THREADS, thread_name_prefix="automations-render"
        )
        self._settings = settings or DispatcherSettings()
        self._clock = clock
        self._rng = random.Random()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._queue: asyncio.Queue[planning.Job] = asyncio.Queue()
        self._results: list[outcomes.Outcome] = []
        self._results_ready = asyncio.Event()
        self._room = asyncio.Event()  # set while fewer than max_unrecorded outcomes wait
        self._room.set()
        self._poll_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        # Invocations taken in minus those finished. Each counter has one writing thread (the
        # writer thread for ``_submitted``, the event loop for the other two), so none loses an
        # update; readers on either thread see a value that is at most a moment old.
        self._submitted = 0
        self._claimed = 0
        self._finished = 0
        self._running = False
        self._outbox_readable = True
        self._event_messages: collections.OrderedDict[str, event_pb2.Event] = (
            collections.OrderedDict()
        )

    # ------------------------------------------------------------------ any thread (writer)

    def capacity(self) -> int:
        """How many more invocations may go straight to the dispatcher (the rest: ``pending``)."""
        return max(0, self._settings.max_backlog - self._backlog()) if self._running else 0

    def _backlog(self) -> int:
        return self._submitted + self._claimed - self._finished

    def submit(self, jobs: Sequence[planning.Job]) -> None:
        """Hands committed, leased invocations to the dispatcher (thread-safe)."""
        loop = self._loop
        if not jobs or loop is None:
            return
        self._submitted += len(jobs)
        if self._settings.handoff_wait <= 0 or threading.get_ident() == self._loop_thread:
            loop.call_soon_threadsafe(self._enqueue, jobs)
            return
        taken = threading.Event()
        loop.call_soon_threadsafe(self._enqueue, jobs, taken)
        taken.wait(self._settings.handoff_wait)

    # ------------------------------------------------------------------------- event loop

    async def start(self) -> None:
        """Starts the workers, the recorder and the poller (orphans of a last run first)."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        released = await self._store.release_running()
        if released:
            logger.info(
                "re-queued invocations of the previous run", extra={"invocations": released}
            )
        self._running = True
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"dispatch-worker-{i}")
            for i in range(self._settings.concurrency)
        ]
        self._tasks.append(asyncio.create_task(self._recorder(), name="dispatch-recorder"))
        self._tasks.append(asyncio.create_task(self._poller(), name="dispatch-poller"))
        self._tasks.append(asyncio.create_task(self._health(), name="dispatch-health"))

    async def stop(self) -> None:
        """Stops taking work, lets in-flight invocations finish (bounded), records outcomes.

        Invocations still queued stay ``running`` in the database; the next start re-queues them.
        """
        self._running = False
        deadline = time.monotonic() + self._settings.drain_seconds
        while self._in_flight() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self._flush()
        await self._client.close()
        if self._prefect_objects is not None:
            await self._prefect_objects.close()
        self._renderer.shutdown(wait=False, cancel_futures=True)

    def _in_flight(self) -> int:
        return self._backlog() - self._queue.qsize()

    def _enqueue(self, jobs: Iterable[planning.Job], taken: threading.Event | None = None) -> None:
        for job in jobs:
            self._queue.put_nowait(job)
        if taken is not None:
            taken.set()

    async def _worker(self) -> None:
        while True:
            await self._room.wait()
            job = await self._queue.get()
            if not self._running:
                self._finished += 1
                continue
            metrics.INVOCATIONS.labels(job.invocation.action_type, "dispatched").inc()
            try:
                outcome = await self._attempt(job)
            except Exception as exc:  # a bug must not lose the invocation: retry it later
                logger.exception("dispatching an invocation failed")
                outcome = self._retry_or_dead_letter(
                    job, f"INTERNAL: {exc!r}", {"error_type": type(exc).__name__}
                )
            self._results.append(outcome)
            self._results_ready.set()
            if len(self._results) >= self._settings.max_unrecorded:
                self._room.clear()
            self._finished += 1

    async def _recorder(self) -> None:
        while True:
            await self._results_ready.wait()
            self._results_ready.clear()
            if not await self._flush():
                await asyncio.sleep(self._settings.poll_interval)
                if self._results:
                    self._results_ready.set()

    async def _flush(self) -> bool:
        """Records the outcomes that wait; False if a transaction failed (the rest wait on)."""
        while self._results:
            # bounded, so that event commits and claims get the writer between two batches
            size = self._settings.record_batch
            batch, self._results = self._results[:size], self._results[size:]
            if len(self._results) < self._settings.max_unrecorded:
                self._room.set()
            try:
                await self._store.record(batch)
            except Exception:
                # Not recorded: the invocations stay ``running`` until their lease ends, then the
                # poller claims them again and the executors' dedupe absorbs the repeat.
                logger.exception("recording %d invocation outcomes failed", len(batch))
                return False
            for outcome in batch:
                label = _OUTCOME_LABELS.get(outcome.status, outcome.status)
                metrics.INVOCATIONS.labels(outcome.job.invocation.action_type, label).inc()
        return True

    async def _health(self) -> None:
        while True:
            try:
                await self._client.refresh_health()
            except Exception:
                logger.exception("checking the executors' health failed")
            await asyncio.sleep(self._settings.health_interval)

    async def _poller(self) -> None:
        while True:
            timeout = self._settings.poll_interval
            try:
                stats = await self._store.stats()
            except Exception as exc:
                if self._outbox_readable:  # once per outage, not once per poll
                    logger.exception("reading the outbox failed")
                else:
                    logger.debug("reading the outbox still fails: %s", exc)
                self._outbox_readable = False
                await asyncio.sleep(self._settings.poll_interval)
                continue
            if not self._outbox_readable:
                logger.info("the outbox is readable again")
                self._outbox_readable = True
            now = self._clock()
            metrics.OUTBOX_OPEN.set(stats.open)
            metrics.OUTBOX_OLDEST_AGE.set(
                0.0 if stats.oldest_created is None else max(0.0, now - stats.oldest_created)
            )
            free = self._settings.max_backlog - self._backlog()
            if stats.next_due is not None and free > 0:
                if stats.next_due <= now:
                    try:
                        jobs = await self._store.claim(min(free, self._settings.concurrency * 4))
                    except Exception:
                        logger.exception("claiming due invocations failed")
                        jobs = []
                    if jobs:
                        self._claimed += len(jobs)
                        self._enqueue(jobs)
                        continue  # more may be due
                else:
                    timeout = min(timeout, stats.next_due - now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poll_wake.wait(), timeout=max(0.001, timeout))
            self._poll_wake.clear()

    # ------------------------------------------------------------------------ one attempt

    async def _attempt(self, job: planning.Job) -> outcomes.Outcome:
        invocation = job.invocation
        request = invocation.request
        firing = job.firing
        if firing is None:
            return outcomes.Outcome(
                job,
                outcomes.FAILED,
                error="the invocation's firing is no longer stored",
                reason="The firing of this invocation is no longer stored",
            )
        now = self._clock()
        if invocation.attempts <= 1:
            metrics.DISPATCH_DELAY.observe(max(0.0, now - invocation.created))
        action = request.action
        event = planning.action_event(request, firing, received=now)
        if not templates.needs_rendering(action):
            parameters: Mapping[str, Any] = action.parameters
        else:
            context = templates.build_context(
                automation=request.automation.to_json(),
                firing=firing,
                event=event,
                ui_url=self._settings.ui_url,
            )
            if self._prefect_objects is not None:
                names = templates.referenced_names(action)
                if names & prefect_context.KINDS.keys():
                    context.update(await self._prefect_objects.load(names, event))
            try:
                parameters = await asyncio.get_running_loop().run_in_executor(
                    self._renderer, templates.render_parameters, action, context
                )
            except templates.TemplateRenderError as exc:
                return outcomes.Outcome(
                    job,
                    outcomes.FAILED,
                    error=str(exc),
                    reason=str(exc),
                    details={"template_error": str(exc), "template_source": exc.source},
                )
        if action.type in internal.TYPES:
            return self._internal(job, action, parameters, event, now)
        return await self._external(job, action, parameters, event)

    def _internal(
        self,
        job: planning.Job,
        action: actions_.Action,
        parameters: Mapping[str, Any],
        event: Any,
        now: float,
    ) -> outcomes.Outcome:
        try:
            effect = internal.run(
                action.type,
                parameters,
                event=event,
                idempotency_key=job.invocation.idempotency_key,
                now=now,
            )
        except internal.ActionFailed as exc:
            return outcomes.Outcome(
                job, outcomes.FAILED, error=exc.reason, reason=exc.reason, details=exc.details
            )
        return outcomes.Outcome(
            job,
            outcomes.SUCCEEDED,
            result=effect.result,
            details=effect.result,
            emitted=list(effect.emitted),
            set_enabled=effect.set_enabled,
        )

    async def _external(
        self,
        job: planning.Job,
        action: actions_.Action,
        parameters: Mapping[str, Any],
        event: Any,
    ) -> outcomes.Outcome:
        invocation = job.invocation
        address = self._client.route(action.type)
        if address is None:
            reason = f"No executor serves action type {action.type!r}"
            return outcomes.Outcome(job, outcomes.FAILED, error=reason, reason=reason)
        firing = job.firing
        assert firing is not None
        try:
            call = executor_client.build_request(
                action_type=action.type,
                parameters=parameters,
                idempotency_key=invocation.idempotency_key,
                attempt=invocation.attempts,
                automation=invocation.request.automation,
                firing=firing,
                action_index=invocation.action_index,
                event=event,
                event_message=None if event is None else self._event_message(event),
            )
        except errors.InvalidArgument as exc:
            reason = f"The rendered parameters are not JSON: {exc.message}"
            return outcomes.Outcome(job, outcomes.FAILED, error=reason, reason=reason)
        started = time.perf_counter()
        try:
            answer = await self._client.execute(address, call)
        except executor_client.ExecutorError as exc:
            metrics.EXECUTOR_CALL_DURATION.labels(address).observe(time.perf_counter() - started)
            details: dict[str, Any] = dict(exc.metadata)
            details["status_code"] = exc.code.name
            if exc.reason:
                details["error_reason"] = exc.reason
            error = f"{exc.code.name}: {exc.message}"
            if exc.retryable:
                return self._retry_or_dead_letter(job, error, details)
            return outcomes.Outcome(
                job, outcomes.FAILED, error=error, reason=exc.message, details=details
            )
        metrics.EXECUTOR_CALL_DURATION.labels(address).observe(time.perf_counter() - started)
        return outcomes.Outcome(
            job,
            outcomes.SUCCEEDED,
            result=answer.result,
            details=answer.result,
            emitted=list(answer.emitted),
        )

    def _event_message(self, event: events.Event) -> event_pb2.Event:
        """The event as a message, converted once for all the actions of its firing."""
        message = self._event_messages.get(event.id)
        if message is None:
            message = wire_events.event_to_proto(event)
            self._event_messages[event.id] = message
            if len(self._event_messages) > EVENT_MESSAGE_CACHE:
                self._event_messages.popitem(last=False)
        return message

    def _retry_or_dead_letter(
        self, job: planning.Job, error: str, details: Mapping[str, Any]
    ) -> outcomes.Outcome:
        invocation = job.invocation
        policy = self._settings.retry
        now = self._clock()
        retry_at = now + policy.delay(invocation.attempts, self._rng)
        if policy.exhausted(invocation.attempts, invocation.created, retry_at):
            reason = f"Gave up after {invocation.attempts} attempts: {error}"
            return outcomes.Outcome(
                job, outcomes.DEAD_LETTER, error=error, reason=reason, details=details
            )
        return outcomes.Outcome(
            job, outcomes.RETRY, error=error, details=details, next_attempt_at=retry_at
        )

    def wake_poller(self) -> None:
        """Makes the poller look at the outbox now (after a redrive, for instance)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._poll_wake.set)
