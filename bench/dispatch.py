"""Action dispatch: firing -> executor latency at a steady rate, and the dispatcher's throughput.

Issue #5's figures:

* **latency**: at 1,000 firings/s sustained, p99 from the firing's commit to the executor receiving
  the call at most 10 ms. The engine (real process, SQLite) routes ``bench.noop`` to a recording
  executor in its own process (grpc.aio; ``python -m bench.dispatch record-executor``) that
  writes, per call, its receive time and the request's ``firing.fire_time``; an executor inside
  this process would share its interpreter lock with the load sender and record late. ``fire_time`` is the engine's clock when
  the write transaction of the firing began (before the commit), so ``receive - fire_time`` is an
  upper bound of commit -> receive. Events are sent with PublishEvents in small batches on a
  fixed schedule (every ``interval`` a batch), each firing a reactive ``threshold: 1, within: 0``
  trigger once. The engine's own ``automations_dispatch_delay_seconds`` histogram (invocation
  written -> first attempt starts) is read from /metrics over the same window.
* **throughput**: the dispatcher sustains at least 5,000 invocations/s to a local no-op executor.
  The engine routes ``bench.noop`` to ``automations executor noop`` (its own process); events are
  streamed as fast as ingest allows, each firing an automation with ``--actions`` ``bench.noop``
  actions, so invocations pile up faster than they are dispatched. Calls answered (the engine's
  executor-call histogram count) and outcomes recorded
  (``automations_invocations_total{outcome="succeeded"}``, counted once the outcome's transaction
  committed) are sampled every 0.2 s; rates run from the first dispatch to the last of each, also
  split into during / after ingest; median of ``--runs`` runs. The same with the executor in this
  process, and a ceiling: bare grpc.aio ExecuteAction calls from one Python process to the noop
  executor.

Run: python -m bench dispatch  (or python -m bench.dispatch latency|throughput|all [options];
``python -m bench.dispatch one --mode latency|throughput|throughput-inproc [--profile OUT]`` runs
one measurement, optionally under ``py-spy record --format raw`` (``PY_SPY``, ``PY_SPY_ARGS``
e.g. ``--gil``), and prints its JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from automations.executor.v1 import executor_service_pb2, executor_service_pb2_grpc
from automations.v1 import (
    automation_service_pb2,
    automation_service_pb2_grpc,
    event_pb2,
    event_service_pb2,
    event_service_pb2_grpc,
)
from automations.wire import automations as wire_automations
from bench import harness

ACTION_TYPE = "bench.noop"
LATENCY_EVENT = "bench.dispatch"
THROUGHPUT_EVENT = "bench.key"  # what ``bench.loadgen --distinct-keys`` sends
TARGET_P99_MS = 10.0
TARGET_RATE = 5_000.0


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
    with tempfile.TemporaryDirectory(prefix="automations-bench-dispatch-") as tmp:
        addr = f"127.0.0.1:{harness.free_port()}"
        metrics_addr = f"127.0.0.1:{harness.free_port()}"
        log_path = Path(tmp) / "engine.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "automations.cli.main",
                    "serve",
                    "--grpc-addr",
                    addr,
                    "--metrics-addr",
                    metrics_addr,
                    "--database-url",
                    f"sqlite:///{tmp}/bench.db",
                    "--no-executors",
                    "--executor",
                    f"{ACTION_TYPE}={executor_addr}",
                ],
                stdout=log,
                stderr=log,
                env={**harness.source_env(source), **(extra_env or {})},
                cwd=tmp,
            )
            try:
                _wait_serving(addr, proc, log_path)
                yield Engine(addr, metrics_addr, proc, tmp)
            finally:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


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
                _wait_serving(addr, proc, log_path)
                yield addr, metrics_addr, proc.pid
            finally:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _wait_serving(addr: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(log_path.read_text())
        with contextlib.suppress(grpc.RpcError), grpc.insecure_channel(addr) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1
            )
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
        time.sleep(0.1)


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


async def _serve_recording(addr: str, path: str) -> None:
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
        _wait_serving(self.addr, self._proc, self._log)
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


def _pct(values: list[float], p: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


# ----------------------------------------------------------------------------- the engine


def _create(addr: str, event_name: str, actions: int) -> None:
    automation = {
        "name": f"bench-dispatch-{event_name}",
        "trigger": {
            "type": "event",
            "posture": "Reactive",
            "expect": [event_name],
            "threshold": 1,
            "within": 0,
        },
        "actions": [{"type": ACTION_TYPE} for _ in range(actions)],
    }
    with grpc.insecure_channel(addr) as channel:
        automation_service_pb2_grpc.AutomationServiceStub(channel).CreateAutomation(
            automation_service_pb2.CreateAutomationRequest(
                automation=wire_automations.automation_proto_from_prefect_json(automation)
            ),
            timeout=30,
        )


def _publish_request(count: int) -> event_service_pb2.PublishEventsRequest:
    request = event_service_pb2.PublishEventsRequest()
    now = time.time()
    for _ in range(count):
        ev: event_pb2.Event = request.events.add()
        ev.id = str(uuid.uuid4())
        ev.event = LATENCY_EVENT
        ev.occurred.seconds = int(now)
        ev.occurred.nanos = int((now - int(now)) * 1e9)
        ev.resource.labels["prefect.resource.id"] = f"bench.dispatch.{ev.id}"
    return request


async def _send_steady(addr: str, rate: float, batch: int, seconds: float) -> dict[str, Any]:
    """PublishEvents of ``batch`` events every ``batch / rate`` s, on schedule (not closed loop)."""
    interval = batch / rate
    batches = round(seconds / interval)
    acks: list[float] = []
    accepted = 0
    late = 0

    async with grpc.aio.insecure_channel(addr) as channel:
        stub = event_service_pb2_grpc.EventServiceStub(channel)

        async def one(request: event_service_pb2.PublishEventsRequest) -> None:
            nonlocal accepted
            sent = time.perf_counter()
            reply = await stub.PublishEvents(request, timeout=30)
            acks.append(time.perf_counter() - sent)
            accepted += sum(
                1 for r in reply.results if r.status == event_service_pb2.EVENT_STATUS_ACCEPTED
            )

        tasks: set[asyncio.Task[None]] = set()
        start = time.perf_counter()
        for i in range(batches):
            delay = start + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -interval:
                late += 1
            task = asyncio.create_task(one(_publish_request(batch)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        send_seconds = time.perf_counter() - start
        await asyncio.gather(*tasks)
    return {
        "sent": batches * batch,
        "accepted": accepted,
        "send_seconds": send_seconds,
        "sent_per_s": batches * batch / send_seconds,
        "late_batches": late,
        "ack_p50_ms": _pct(acks, 0.5) * 1000,
        "ack_p99_ms": _pct(acks, 0.99) * 1000,
    }


# ----------------------------------------------------------------------------- latency


def latency(
    rate: float = 1000.0,
    seconds: float = 20.0,
    batch: int = 10,
    warmup: float = 3.0,
    profile: str | None = None,
) -> dict[str, Any]:
    """One latency run (see the module docstring)."""
    with RecordingExecutorProcess() as executor, engine(executor.addr) as eng:
        _create(eng.addr, LATENCY_EVENT, 1)
        spy = None
        if profile:
            spy = _py_spy(eng.proc.pid, profile, max(1, int(seconds - warmup)), delay=warmup)
        before: dict[str, float] = {}
        cpu: list[float] = []
        begin = time.time()

        def snapshot() -> None:
            time.sleep(warmup)
            before.update(eng.scrape())
            cpu.append(cpu_seconds(eng.proc.pid))
            cpu.append(time.monotonic())

        snap = threading.Thread(target=snapshot)
        snap.start()
        sent = asyncio.run(_send_steady(eng.addr, rate, batch, seconds))
        snap.join()
        engine_cpu = (cpu_seconds(eng.proc.pid) - cpu[0]) / (time.monotonic() - cpu[1])
        # every accepted event fires once: wait for its call (bounded)
        deadline = time.monotonic() + 30
        while len(executor.samples) < sent["accepted"] and time.monotonic() < deadline:
            time.sleep(0.2)
        after = eng.scrape()
        if spy is not None:
            spy.wait()
        samples = list(executor.samples)
    window = [(r, f) for r, f in samples if f >= begin + warmup]
    delays_ms = [(r - f) * 1000 for r, f in window]
    fire_times = [f for _, f in window]
    span = (max(fire_times) - min(fire_times)) if len(fire_times) > 1 else math.nan
    engine_delay = histogram_delta(before, after, "automations_dispatch_delay_seconds")
    call = histogram_delta(before, after, "automations_executor_call_duration_seconds")
    return {
        **sent,
        "engine_cpu": engine_cpu,
        "loadavg_1m": os.getloadavg()[0],
        "calls": len(samples),
        "window_calls": len(window),
        "firings_per_s": len(window) / span if span else math.nan,
        "p50_ms": _pct(delays_ms, 0.50),
        "p95_ms": _pct(delays_ms, 0.95),
        "p99_ms": _pct(delays_ms, 0.99),
        "max_ms": max(delays_ms) if delays_ms else math.nan,
        "engine_dispatch_delay_ms": {
            f"p{int(q * 100)}": histogram_quantile(engine_delay, q) * 1000
            for q in (0.5, 0.95, 0.99)
        },
        "engine_dispatch_delay_buckets": [[b, c] for b, c in engine_delay],
        "executor_call_ms": {
            f"p{int(q * 100)}": histogram_quantile(call, q) * 1000 for q in (0.5, 0.99)
        },
    }


# ----------------------------------------------------------------------------- throughput


def throughput(
    events: int = 20_000, actions: int = 5, in_process: bool = False, profile: str | None = None
) -> dict[str, Any]:
    """One throughput run (see the module docstring).

    Two counts are sampled every 0.2 s: calls answered by the executor (the engine's
    ``automations_executor_call_duration_seconds_count``, or the in-process executor's record) and
    outcomes
    recorded by the engine (``automations_invocations_total{outcome="succeeded"}``, counted once
    the outcome's transaction committed). Rates are taken from the first dispatch to the last of
    each.
    """
    expected = events * actions
    with contextlib.ExitStack() as stack:
        if in_process:
            recorder = stack.enter_context(RecordingExecutor())
            executor_addr = recorder.addr

            def executed(sample: dict[str, float]) -> float:
                return float(len(recorder.samples))
        else:
            executor_addr, _, _ = stack.enter_context(noop_executor())

            def executed(sample: dict[str, float]) -> float:  # answered, as the engine saw them
                return counter(sample, "automations_executor_call_duration_seconds_count")

        eng = stack.enter_context(engine(executor_addr))
        _create(eng.addr, THROUGHPUT_EVENT, actions)
        result: dict[str, Any] = {}

        def send() -> None:
            result.update(harness.loadgen(eng.addr, events=events, distinct_keys=True))
            result["ingest_done"] = time.monotonic()

        sender = threading.Thread(target=send)
        cpu0 = cpu_seconds(eng.proc.pid)
        start = time.monotonic()
        sender.start()
        spy = None
        if profile:
            spy = _py_spy(eng.proc.pid, profile, 45, delay=3)
        # (time, dispatched, executed, recorded)
        series: list[tuple[float, float, float, float]] = [(start, 0.0, 0.0, 0.0)]
        max_open = 0.0
        deadline = start + 900
        while time.monotonic() < deadline:
            time.sleep(0.2)
            sample = eng.scrape()
            calls = executed(sample)
            now = time.monotonic()
            dispatched, recorded = (
                counter(
                    sample,
                    "automations_invocations_total",
                    action_type=ACTION_TYPE,
                    outcome=outcome,
                )
                for outcome in ("dispatched", "succeeded")
            )
            series.append((now, dispatched, calls, recorded))
            max_open = max(max_open, sample.get("automations_outbox_pending_invocations", 0.0))
            if recorded >= expected and not sender.is_alive():
                break
        sender.join()
        engine_cpu = (cpu_seconds(eng.proc.pid) - cpu0) / (time.monotonic() - start)
        last = eng.scrape()
        not_ok = {
            outcome: counter(
                last, "automations_invocations_total", action_type=ACTION_TYPE, outcome=outcome
            )
            for outcome in ("failed", "retried", "dead_lettered")
        }
        if spy is not None:
            spy.wait()
    first = next((row[0] for row in series if row[1] > 0), start)
    ingest_done = result.get("ingest_done", start)
    exec_done = _reached(series, 2, series[-1][2])
    rec_done = _reached(series, 3, series[-1][3])
    at_ingest_done = max((row for row in series if row[0] <= ingest_done), key=lambda r: r[0])
    return {
        "events": events,
        "actions_per_firing": actions,
        "expected_invocations": expected,
        "executed": series[-1][2],
        "recorded": series[-1][3],
        "not_succeeded": not_ok,
        "executor": "in-process" if in_process else "noop process",
        "ingest_events_per_s": result.get("events_per_s", math.nan),
        "ingest_seconds": ingest_done - start,
        "executed_per_s": _rate(series[-1][2], exec_done - first),
        "recorded_per_s": _rate(series[-1][3], rec_done - first),
        "executed_per_s_during_ingest": _rate(at_ingest_done[2], ingest_done - first),
        "executed_per_s_after_ingest": _rate(
            series[-1][2] - at_ingest_done[2], exec_done - ingest_done
        ),
        "end_to_end_per_s": _rate(series[-1][3], rec_done - start),
        "total_seconds": series[-1][0] - start,
        "max_outbox_open": max_open,
        "engine_cpu": engine_cpu,
        "loadavg_1m": os.getloadavg()[0],
        "series": [
            [round(t - start, 1), d, e, r] for t, d, e, r in series[:: max(1, len(series) // 40)]
        ],
    }


def _rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else math.nan


def _reached(series: list[tuple[float, float, float, float]], column: int, level: float) -> float:
    """The first sample time at which ``series[column]`` reached ``level``."""
    return next((row[0] for row in series if row[column] >= level), series[-1][0])


# ----------------------------------------------------------------------------- ceiling


def ceiling(calls: int = 30_000, concurrency: int = 64) -> dict[str, Any]:
    """Raw grpc.aio ExecuteAction calls/s from one Python process to the noop executor process.

    The same kind of request the engine sends (parameters, automation, firing, triggering event),
    built once; ``concurrency`` tasks call in a loop. An upper bound for a dispatcher that makes
    one unary call per invocation from one event loop.
    """
    request = executor_service_pb2.ExecuteActionRequest(
        action_type=ACTION_TYPE, attempt=1, action_index=0, idempotency_key="warm-up"
    )
    request.parameters.update({})
    request.automation.name = f"automations/{uuid.uuid4()}"
    request.automation.uid = request.automation.name.split("/")[1]
    request.automation.display_name = "bench"
    request.firing.uid = str(uuid.uuid4())
    request.firing.trigger_id = str(uuid.uuid4())
    request.firing.fire_time.GetCurrentTime()
    request.triggering_event.id = str(uuid.uuid4())
    request.triggering_event.event = THROUGHPUT_EVENT
    request.triggering_event.occurred.GetCurrentTime()
    request.triggering_event.resource.labels["prefect.resource.id"] = "bench.key.1"

    async def drive(addr: str) -> float:
        async with grpc.aio.insecure_channel(addr) as channel:
            stub = executor_service_pb2_grpc.ExecutorServiceStub(channel)
            await stub.ExecuteAction(request, timeout=10)
            left = calls

            async def worker(i: int) -> None:
                nonlocal left
                while left > 0:
                    left -= 1
                    call = executor_service_pb2.ExecuteActionRequest()
                    call.CopyFrom(request)
                    call.idempotency_key = f"{i}-{left}"
                    await stub.ExecuteAction(call, timeout=10)

            start = time.perf_counter()
            await asyncio.gather(*(worker(i) for i in range(concurrency)))
            return time.perf_counter() - start

    with noop_executor() as (addr, _, pid):
        cpu0, server0 = time.process_time(), cpu_seconds(pid)
        seconds = asyncio.run(drive(addr))
        cpu, server = time.process_time() - cpu0, cpu_seconds(pid) - server0
    return {
        "calls": calls,
        "concurrency": concurrency,
        "calls_per_s": calls / seconds,
        "client_cpu_us_per_call": cpu / calls * 1e6,
        "executor_cpu_us_per_call": server / calls * 1e6,
    }


# ----------------------------------------------------------------------------- profiling


def _py_spy(pid: int, out: str, seconds: int, delay: float) -> subprocess.Popen[bytes]:
    """Runs ``py-spy record`` on ``pid`` after ``delay`` seconds (py-spy on PATH or PY_SPY)."""
    import shlex

    exe = os.environ.get("PY_SPY", "py-spy")
    cmd = (
        f"sleep {delay} && {shlex.quote(exe)} record --pid {pid} --duration {seconds} "
        f"--rate 200 --nonblocking --format raw {os.environ.get('PY_SPY_ARGS', '')} "
        f"-o {shlex.quote(out)}"
    )
    return subprocess.Popen(["sh", "-c", cmd], stdout=subprocess.DEVNULL)


# ----------------------------------------------------------------------------- report


def run(
    what: str = "all",
    *,
    runs: int = 3,
    rate: float = 1000.0,
    seconds: float = 20.0,
    batch: int = 10,
    events: int = 20_000,
    actions: int = 5,
    in_process: bool = True,
) -> dict[str, Any]:
    """Runs the benchmarks, prints a summary, returns the figures."""
    summary: dict[str, Any] = {}
    if what in ("latency", "all"):
        print(
            f"== dispatch latency: {rate:,.0f} events/s (each one firing, one {ACTION_TYPE} "
            f"action) in PublishEvents batches of {batch}, {seconds:.0f} s; median of {runs} runs"
        )
        lat = [latency(rate, seconds, batch) for _ in range(runs)]
        for i, r in enumerate(lat):
            print(
                f"  run {i + 1}: {r['firings_per_s']:7,.0f} firings/s  fire->receive p50 "
                f"{r['p50_ms']:.2f} p95 {r['p95_ms']:.2f} p99 {r['p99_ms']:.2f} max "
                f"{r['max_ms']:.1f} ms | engine CPU {r['engine_cpu']:.0%}, load "
                f"{r['loadavg_1m']:.1f} | engine dispatch delay p50 "
                f"{r['engine_dispatch_delay_ms']['p50']:.2f} p99 "
                f"{r['engine_dispatch_delay_ms']['p99']:.2f} ms | publish ack p99 "
                f"{r['ack_p99_ms']:.1f} ms"
            )
        med = {
            key: statistics.median(r[key] for r in lat)
            for key in ("firings_per_s", "p50_ms", "p95_ms", "p99_ms", "max_ms", "ack_p99_ms")
        }
        med["engine_dispatch_delay_p99_ms"] = statistics.median(
            r["engine_dispatch_delay_ms"]["p99"] for r in lat
        )
        summary["latency"] = {"median": med, "runs": lat}
        print(
            f"| firings/s | p50 ms | p95 ms | p99 ms | max ms | engine delay p99 ms |\n"
            f"|---|---|---|---|---|---|\n"
            f"| {med['firings_per_s']:,.0f} | {med['p50_ms']:.2f} | {med['p95_ms']:.2f} | "
            f"{med['p99_ms']:.2f} | {med['max_ms']:.1f} | "
            f"{med['engine_dispatch_delay_p99_ms']:.2f} |"
        )
        print(f"p99 fire->receive {med['p99_ms']:.2f} ms   (target <= {TARGET_P99_MS:.0f} ms)")
    if what in ("throughput", "all"):
        ceil = [ceiling() for _ in range(runs)]
        ceil_med = statistics.median(c["calls_per_s"] for c in ceil)
        summary["ceiling"] = {"median_calls_per_s": ceil_med, "runs": ceil}
        print(
            f"== ceiling: bare grpc.aio ExecuteAction calls from one Python process (64 in flight) "
            f"to the noop executor process: {ceil_med:,.0f} calls/s; CPU per call: client "
            f"{statistics.median(c['client_cpu_us_per_call'] for c in ceil):.0f} us, executor "
            f"{statistics.median(c['executor_cpu_us_per_call'] for c in ceil):.0f} us"
        )
        modes = [False, True] if in_process else [False]
        summary["throughput"] = {}
        for mode in modes:
            label = "in-process executor" if mode else "noop executor process"
            print(
                f"== dispatch throughput: {events:,} events x {actions} {ACTION_TYPE} actions "
                f"= {events * actions:,} invocations, {label}; median of {runs} runs"
            )
            thr = [throughput(events, actions, in_process=mode) for _ in range(runs)]
            for i, r in enumerate(thr):
                print(
                    f"  run {i + 1}: executed {r['executed_per_s']:7,.0f}/s "
                    f"(during ingest {r['executed_per_s_during_ingest']:,.0f}/s, after "
                    f"{r['executed_per_s_after_ingest']:,.0f}/s), recorded "
                    f"{r['recorded_per_s']:,.0f}/s, end to end {r['end_to_end_per_s']:,.0f}/s; "
                    f"ingest {r['ingest_events_per_s']:,.0f} events/s; recorded "
                    f"{r['recorded']:,.0f}/{r['expected_invocations']:,}; max outbox open "
                    f"{r['max_outbox_open']:,.0f}; engine CPU {r['engine_cpu']:.0%}, load "
                    f"{r['loadavg_1m']:.1f}"
                )
            med = {
                key: statistics.median(r[key] for r in thr)
                for key in (
                    "executed_per_s",
                    "executed_per_s_during_ingest",
                    "executed_per_s_after_ingest",
                    "recorded_per_s",
                    "end_to_end_per_s",
                    "ingest_events_per_s",
                )
            }
            summary["throughput"]["in_process" if mode else "noop_process"] = {
                "median": med,
                "runs": thr,
            }
            print(
                "| executed/s | during ingest | after ingest | recorded/s | end to end/s |\n"
                "|---|---|---|---|---|\n"
                f"| {med['executed_per_s']:,.0f} | {med['executed_per_s_during_ingest']:,.0f} | "
                f"{med['executed_per_s_after_ingest']:,.0f} | {med['recorded_per_s']:,.0f} | "
                f"{med['end_to_end_per_s']:,.0f} |"
            )
            print(
                f"{label}: {med['recorded_per_s']:,.0f} invocations/s recorded, "
                f"{med['executed_per_s']:,.0f}/s executed   (target >= {TARGET_RATE:,.0f}/s)"
            )
    print(json.dumps(summary, default=float))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dispatch")
    parser.add_argument(
        "what",
        nargs="?",
        default="all",
        choices=["latency", "throughput", "all", "one", "record-executor"],
    )
    parser.add_argument("--addr", help="record-executor: where to serve")
    parser.add_argument("--out", help="record-executor: the file of calls")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--actions", type=int, default=5)
    parser.add_argument("--no-in-process", action="store_true")
    parser.add_argument(
        "--profile", help="one run of --mode under py-spy, collapsed stacks to PATH"
    )
    parser.add_argument("--mode", choices=["latency", "throughput", "throughput-inproc"])
    args = parser.parse_args()
    if args.what == "record-executor":
        asyncio.run(_serve_recording(args.addr, args.out))
        return
    if args.what == "one":
        if args.mode == "latency":
            out = latency(args.rate, args.seconds, args.batch, profile=args.profile)
        else:
            out = throughput(
                args.events,
                args.actions,
                in_process=args.mode == "throughput-inproc",
                profile=args.profile,
            )
        print(json.dumps(out, default=float, indent=1))
        return
    run(
        args.what,
        runs=args.runs,
        rate=args.rate,
        seconds=args.seconds,
        batch=args.batch,
        events=args.events,
        actions=args.actions,
        in_process=not args.no_in_process,
    )


if __name__ == "__main__":
    main()
