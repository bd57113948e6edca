"""A small pool of threads for the CPU work of webhook requests, handing results back in batches.

Rendering a template may use its whole budget (a second of CPU), and parsing a 5 MiB body takes
milliseconds: neither may hold the event loop, which serves every other request. A thread hop per
request costs as much as a small render, though (a wake-up each way), so jobs submitted in the
same turn of the event loop go to the threads as one item, a worker takes every item queued when
it wakes (up to ``MAX_BATCH`` jobs), runs the jobs one after the other, and hands all their
results back to the event loop with one ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

MAX_BATCH = 64
"""The most jobs one worker takes at once."""

_STOP = object()


@dataclasses.dataclass(slots=True)
class _Job:
    fn: Callable[[], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


def _settle(results: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in results:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class WorkerPool:
    """Runs functions on ``threads`` threads (see the module docstring).

    Args:
        threads: Worker threads.
        name: Their name prefix.
    """

    def __init__(self, threads: int = 2, *, name: str = "automations-webhooks") -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(threads)
        ]
        self._started = False
        self._submitted: list[_Job] = []

    def start(self) -> None:
        """Starts the threads."""
        if not self._started:
            self._started = True
            for thread in self._threads:
                thread.start()

    async def run(self, fn: Callable[[], T]) -> T:
        """Runs ``fn()`` on a worker thread and returns its result (or raises its exception)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if not self._submitted:
            loop.call_soon(self._hand_over)
        self._submitted.append(_Job(fn, future, loop))
        return await future

    def _hand_over(self) -> None:
        jobs, self._submitted = self._submitted, []
        for start in range(0, len(jobs), MAX_BATCH):
            self._queue.put(jobs[start : start + MAX_BATCH])

    def stop(self) -> None:
        """Lets the threads finish what is queued, then stops them."""
        if not self._started:
            return
        for _ in self._threads:
            self._queue.put(_STOP)
        for thread in self._threads:
            thread.join(10)
        self._started = False

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            jobs: list[_Job] = list(item)
            stop = False
            while len(jobs) < MAX_BATCH:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                jobs.extend(nxt)
            by_loop: dict[
                asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]
            ] = {}
            for job in jobs:
                try:
                    result: tuple[asyncio.Future[Any], bool, Any] = (job.future, True, job.fn())
                except BaseException as exc:  # handed to the awaiting coroutine
                    result = (job.future, False, exc)
                by_loop.setdefault(job.loop, []).append(result)
            for loop, results in by_loop.items():
                try:
                    loop.call_soon_threadsafe(_settle, results)
                except RuntimeError:  # the loop is closed: nobody waits any more
                    pass
            if stop:
                return
