"""SimulateAutomation in worker processes: off the process that serves ingest, stopped with the call.

A simulation is CPU-bound Python (and durable_rules) for as long as its span and events ask. In
the engine's process it would compete for the GIL with ingest, leave behind the durable_rules
rulesets of its matcher (they are never freed in-process), and run on after its caller went
away: a thread cannot be stopped. Hence worker processes, each running
``automations.api.simulation_worker`` one simulation at a time.

``concurrent.futures.ProcessPoolExecutor`` would not do: it cannot stop a task once it runs
(``Future.cancel`` only drops queued ones) and a killed worker breaks the whole executor. This
pool is small instead: a call takes an idle worker (starting one on first use), sends the request
bytes and awaits the answer on the event loop. If the call is cancelled (its client cancelled or
its deadline passed) or it outruns ``timeout``, its worker is killed with SIGKILL there and then,
and a new one is started when next needed. A worker is also retired after ``recycle_after``
simulations, or once its resident memory passes ``max_rss_bytes``.

Workers die with the engine: :meth:`SimulationPool.close` kills them, and each asks Linux to
kill it when its parent exits (a kill -9 of the engine).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from automations import config
from automations.api import simulation_worker
from automations.domain import errors

logger = logging.getLogger(__name__)

RECYCLE_AFTER = 100
"""Simulations a worker runs before it is replaced (each leaves its rulesets behind)."""

MAX_RSS_BYTES = 512 << 20
"""A worker whose resident memory passes this after a simulation is replaced."""

_SOURCE_ROOT = str(Path(simulation_worker.__file__).resolve().parents[2])
"""The directory holding the ``automations`` package: workers import it from there."""


class _Worker:
    """One worker process and its pipes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.served = 0

    async def call(self, header: bytes, body: bytes) -> tuple[dict[str, Any], bytes]:
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        stdin.write(simulation_worker.FRAME_HEAD.pack(len(header), len(body)) + header)
        stdin.write(body)
        await stdin.drain()
        head = await stdout.readexactly(simulation_worker.FRAME_HEAD.size)
        header_size, body_size = simulation_worker.FRAME_HEAD.unpack(head)
        reply: dict[str, Any] = json.loads(await stdout.readexactly(header_size))
        answer = await stdout.readexactly(body_size)
        self.served += 1
        return reply, answer


class SimulationPool:
    """Runs serialized SimulateAutomation requests in at most ``workers`` processes at once.

    Args:
        workers: Simulations run at once; more calls wait for a free worker.
        limits: What one simulation may ask for (checked in the worker).
        timeout: Wall-clock seconds one simulation may run before its worker is killed.
        recycle_after: Simulations a worker runs before it is replaced.
        max_rss_bytes: Resident memory after which a worker is replaced.
    """

    def __init__(
        self,
        *,
        workers: int = 1,
        limits: simulation_worker.Limits | None = None,
        timeout: float = 30.0,
        recycle_after: int = RECYCLE_AFTER,
        max_rss_bytes: int = MAX_RSS_BYTES,
    ) -> None:
        self._limits = json.dumps(dataclasses.asdict(limits or simulation_worker.Limits())).encode()
        self._timeout = timeout
        self._recycle_after = recycle_after
        self._max_rss_bytes = max_rss_bytes
        self._slots = asyncio.Semaphore(workers)
        self._idle: list[_Worker] = []
        self._running: set[_Worker] = set()
        self._exits: set[asyncio.Task[int]] = set()
        self._closed = False

    @classmethod
    def from_settings(cls, settings: config.Settings) -> SimulationPool:
        """The pool the ``simulation_*`` settings describe."""
        return cls(
            workers=settings.simulation_workers,
            limits=simulation_worker.Limits(
                max_span_seconds=settings.simulation_max_span_seconds,
                max_events=settings.simulation_max_events,
                max_steps=settings.simulation_max_steps,
                max_firings=settings.simulation_max_firings,
                metric_minimum_seconds=settings.metric_minimum_seconds,
            ),
            timeout=settings.simulation_timeout_seconds,
        )

    @property
    def processes(self) -> list[int]:
        """The process ids of the workers alive (idle or running), for tests and checks."""
        workers = (*self._idle, *self._running)
        return [w.process.pid for w in workers if w.process.returncode is None]

    async def run(self, request: bytes) -> bytes:
        """Runs one serialized ``SimulateAutomationRequest``; returns the serialized response.

        Cancelling the call kills the worker running it.

        Raises:
            errors.InvalidArgument: The request is invalid or exceeds the limits.
            errors.DeadlineExceeded: It ran longer than ``timeout`` (SIMULATION_TIMEOUT).
            errors.Unavailable: The pool is closed (the engine is stopping).
            errors.AutomationsError: The worker failed or died (INTERNAL).
        """
        async with self._slots:
            if self._closed:
                raise errors.Unavailable("the engine is stopping")
            worker = await self._take()
            self._running.add(worker)
            try:
                async with asyncio.timeout(self._timeout):
                    reply, answer = await worker.call(self._limits, request)
            except BaseException as exc:  # cancelled, too slow or lost: the worker goes
                self._running.discard(worker)
                self._kill(worker, why=type(exc).__name__)
                if isinstance(exc, TimeoutError):
                    raise errors.DeadlineExceeded(
                        f"the simulation ran for {self._timeout:g} s without finishing (the "
                        "engine's simulation_timeout_seconds setting); simulate a shorter span",
                        reason="SIMULATION_TIMEOUT",
                    ) from None
                if isinstance(exc, (EOFError, OSError)):
                    raise errors.AutomationsError(
                        "the simulation's worker process exited before answering; see the "
                        "engine's log",
                        reason="SIMULATION_WORKER_LOST",
                    ) from None
                raise
            self._running.discard(worker)
            self._put_back(worker, int(reply.get("rss_bytes", 0)))
        if "error" in reply:
            if "traceback" in reply:
                logger.error("simulation failed", extra={"traceback": reply["traceback"]})
            raise simulation_worker.error_from_header(reply["error"])
        return answer

    async def close(self) -> None:
        """Kills every worker and waits for them to exit; later calls are UNAVAILABLE."""
        self._closed = True
        for worker in (*self._idle, *self._running):
            self._kill(worker, why="the engine is stopping")
        self._idle.clear()
        self._running.clear()
        if self._exits:
            await asyncio.wait(set(self._exits))

    async def _take(self) -> _Worker:
        """An idle worker still alive, else a new one."""
        while self._idle:
            worker = self._idle.pop()
            if worker.process.returncode is None:
                return worker
            self._kill(worker, why="exited while idle")
        return await self._start()

    async def _start(self) -> _Worker:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (_SOURCE_ROOT, env.get("PYTHONPATH", "")) if p
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            simulation_worker.__name__,
            str(os.getpid()),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        logger.debug("simulation worker started", extra={"pid": process.pid})
        return _Worker(process)

    def _put_back(self, worker: _Worker, rss_bytes: int) -> None:
        if worker.served < self._recycle_after and rss_bytes <= self._max_rss_bytes:
            self._idle.append(worker)
            return
        logger.debug(
            "simulation worker replaced",
            extra={"pid": worker.process.pid, "served": worker.served, "rss_bytes": rss_bytes},
        )
        self._kill(worker, why="recycled")

    def _kill(self, worker: _Worker, *, why: str) -> None:
        process = worker.process
        if process.returncode is None:
            if why != "recycled":
                logger.info("simulation worker killed", extra={"pid": process.pid, "why": why})
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        exit_ = asyncio.ensure_future(process.wait())
        self._exits.add(exit_)
        exit_.add_done_callback(self._exits.discard)
