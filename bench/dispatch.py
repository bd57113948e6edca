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
import statistics
import subprocess
import threading
import time
from typing import Any

from bench import harness
from bench.dispatch_load import (
    LATENCY_EVENT,
    THROUGHPUT_EVENT,
    ceiling,
    create_automation,
    pct,
    send_steady,
)
from bench.dispatch_processes import (
    ACTION_TYPE,
    RecordingExecutor,
    RecordingExecutorProcess,
    counter,
    cpu_seconds,
    engine,
    histogram_delta,
    histogram_quantile,
    noop_executor,
    serve_recording,
)

TARGET_P99_MS = 10.0
TARGET_RATE = 5_000.0


# ----------------------------------------------------------------------------- the engine


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
        create_automation(eng.addr, LATENCY_EVENT, 1)
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
        sent = asyncio.run(send_steady(eng.addr, rate, batch, seconds))
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
        "p50_ms": pct(delays_ms, 0.50),
        "p95_ms": pct(delays_ms, 0.95),
        "p99_ms": pct(delays_ms, 0.99),
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
        create_automation(eng.addr, THROUGHPUT_EVENT, actions)
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
        asyncio.run(serve_recording(args.addr, args.out))
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
