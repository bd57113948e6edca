"""The processes and probes of ``bench.dispatch``: an engine, executors, /metrics and /proc readings.

An engine (``automations serve`` on SQLite, ``bench.noop`` routed to a given executor), the noop
executor (``automations executor noop``), the recording executor that writes each call's receive
time and ``firing.fire_time`` (served by ``python -m bench.dispatch record-executor``), the engine's
/metrics parsed into samples, histogram deltas and quantiles, and a process's CPU seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2_grpc

from automations.executor.v1 import executor_service_pb2, executor_service_pb2_grpc
from bench import harness

ACTION_TYPE = "bench.noop"


# ----------------------------------------------------------------------------- processes


class Engine:
    """A running engine process: its gRPC and metrics addresses."""

    def __init__(self, addr: str, metrics_addr: str, proc: subprocess.Popen[bytes], tmp: str):
        self.addr = addr
        self.metrics_addr = metrics_addr
        self.proc = proc
        self.tmp = tmp

    def scrape(self) -> dict[str, float]:
        return scrape(self.metrics_addr)


@contextlib.contextmanager
def engine(
    executor_addr: str, extra_env: dict[str, str] | None = None, source: Path | None = None
) -> Iterator[Engine]:
    """``automations serve`` on SQLite in a temp dir, ``bench.noop`` routed to ``executor_addr``.

    ``source`` runs another checkout's engine (its ``src``), e.g. the code before a change.
    """
    with harness.serve(
        "--executor", f"{ACTION_TYPE}={executor_addr}", extra_env=extra_env, source=source
    ) as served:
        yield Engine(served.addr, served.metrics_addr, served.proc, served.tmp)


@contextlib.contextmanager
def noop_executor(metrics: bool = False) -> Iterator[tuple[str, str, int]]:
    """``automations executor noop --action-type bench.noop`` as its own process.

    Yields:
        Its gRPC address, its metrics address and its pid.
    """
    with tempfile.TemporaryDirectory(prefix="automations-bench-noop-") as tmp:
        addr = f"127.0.0.1:{harness.free_port()}"
        metrics_addr = f"127.0.0.1:{harness.free_port()}"
        log_path = Path(tmp) / "executor.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "automations.cli.main",
                    "executor",
                    "noop",
                    "--addr",
                    addr,
                    "--state",
                    f"{tmp}/noop.db",
                    "--action-type",
                    ACTION_TYPE,
                    *(["--metrics-addr", metrics_addr] if metrics else []),
                    "--log-level",
                    "WARNING",
                ],
                stdout=log,
                stderr=log,
                env=harness._env(),
                cwd=tmp,
            )
            try:
                harness.wait_serving(addr, proc, log_path)
                yield addr, metrics_addr, proc.pid
            finally:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


class _RecordingServicer(executor_service_pb2_grpc.ExecutorServiceServicer):
    """A no-op ExecutorService that hands ``record`` each call's receive time and
    ``firing.fire_time`` (both wall clock seconds).

    It serves ``ExecuteActions`` as the bundled executors do (``automations executor noop``), so
    the engine sends the invocations committed together in one call, as it would to them."""

    def __init__(self, record: Callable[[float, float], None]) -> None:
        self._record = record

    async def ExecuteAction(  # noqa: N802 - the gRPC method name
        self, request: executor_service_pb2.ExecuteActionRequest, context: Any
    ) -> executor_service_pb2.ExecuteActionResponse:
        received = time.time()
        fire_time = request.firing.fire_time
        self._record(received, fire_time.seconds + fire_time.nanos * 1e-9)
        return executor_service_pb2.ExecuteActionResponse()

    async def ExecuteActions(  # noqa: N802 - the gRPC method name
        self, request: executor_service_pb2.ExecuteActionsRequest, context: Any
    ) -> executor_service_pb2.ExecuteActionsResponse:
        received = time.time()
        response = executor_service_pb2.ExecuteActionsResponse()
        for one in request.requests:
            fire_time = one.firing.fire_time
            self._record(received, fire_time.seconds + fire_time.nanos * 1e-9)
            response.results.add().status.code = 0
        return response


class RecordingExecutor(_RecordingServicer):
    """An in-process no-op ExecutorService (grpc.aio on its own thread) that records each call.

    ``samples``: (receive time, ``firing.fire_time``), both wall clock seconds.
    """

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        super().__init__(lambda received, fired: self.samples.append((received, fired)))
        self.addr = f"127.0.0.1:{harness.free_port()}"
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="bench-executor", daemon=True)

    def __enter__(self) -> RecordingExecutor:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the in-process executor did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server = grpc.aio.server()
        executor_service_pb2_grpc.add_ExecutorServiceServicer_to_server(self, server)
        server.add_insecure_port(self.addr)
        await server.start()
        self._ready.set()
        await self._stop.wait()
        await server.stop(1)


async def serve_recording(addr: str, path: str) -> None:
    from grpc_health.v1 import health

    with open(path, "a", buffering=1) as out:  # line-buffered: the bench counts the lines
        server = grpc.aio.server()
        executor_service_pb2_grpc.add_ExecutorServiceServicer_to_server(
            _RecordingServicer(lambda received, fired: out.write(f"{received!r} {fired!r}\n")),
            server,
        )
        health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
        server.add_insecure_port(addr)
        await server.start()
        await server.wait_for_termination()


class RecordingExecutorProcess:
    """The recording executor as its own process, like any real executor: the load sender's
    thread and the executor then do not share one interpreter lock in the benchmark's process
    (which delayed the executor's receive times by up to the sender's turns).
    """

    def __init__(self) -> None:
        self.addr = f"127.0.0.1:{harness.free_port()}"
        self._tmp = tempfile.TemporaryDirectory(prefix="automations-bench-recorder-")
        self._path = Path(self._tmp.name) / "calls.txt"
        self._log = Path(self._tmp.name) / "recorder.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> RecordingExecutorProcess:
        self._path.touch()
        with open(self._log, "ab") as log:
            self._proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.dispatch",
                    "record-executor",
                    "--addr",
                    self.addr,
                    "--out",
                    str(self._path),
                ],
                stdout=log,
                stderr=log,
                env=harness._env(),
                cwd=harness.ROOT,
            )
        harness.wait_serving(self.addr, self._proc, self._log)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._tmp.cleanup()

    @property
    def samples(self) -> list[tuple[float, float]]:
        """(receive time, ``firing.fire_time``) of every complete line so far."""
        out = []
        for line in self._path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2:
                out.append((float(parts[0]), float(parts[1])))
        return out


# ----------------------------------------------------------------------------- metrics

_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def scrape(metrics_addr: str) -> dict[str, float]:
    """Every sample of the engine's /metrics, keyed ``name{labels}`` as printed."""
    with urllib.request.urlopen(f"http://{metrics_addr}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if match:
            out[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return out


def counter(sample: dict[str, float], name: str, **labels: str) -> float:
    """Sum of ``name`` samples whose labels include ``labels``."""
    total = 0.0
    for key, value in sample.items():
        base, _, rest = key.partition("{")
        if base != name:
            continue
        if all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += value
    return total


def histogram_delta(
    before: dict[str, float], after: dict[str, float], name: str, **labels: str
) -> list[tuple[float, float]]:
    """Cumulative (upper bound, count) buckets of ``name`` observed between two scrapes."""
    buckets: dict[float, float] = {}
    for key, value in after.items():
        base, _, rest = key.partition("{")
        if base != f"{name}_bucket" or not all(f'{k}="{v}"' in rest for k, v in labels.items()):
            continue
        le = re.search(r'le="([^"]+)"', rest)
        assert le is not None
        bound = math.inf if le.group(1) == "+Inf" else float(le.group(1))
        buckets[bound] = buckets.get(bound, 0.0) + value - before.get(key, 0.0)
    return sorted(buckets.items())


def histogram_quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """Prometheus' ``histogram_quantile`` (linear within the bucket), in seconds; nan if empty."""
    if not buckets or buckets[-1][1] <= 0:
        return math.nan
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (nan if unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
