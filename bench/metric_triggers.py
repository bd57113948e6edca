"""Metric triggers: their cost beside W1, their memory, and how soon a transition is committed.

python -m bench.metric_triggers [w1|memory|latency|all] [--events N] [--runs K]

* ``w1``: W1 (20 event automations, the peer workload) against W1 with 20 metric automations
  loaded beside them (a mix of Prefect's three metrics and grouped metrics over W1's own events:
  counts, rates, percentiles of the time between two events, outcomes), runs alternated, each
  on a fresh engine process; the median rates side by side, W1's firings checked exact; then
  the writer's instructions per event both ways (``bench.metric_instructions``), which the
  machine's load does not move.
* ``memory``: the engine in this process (tracemalloc): bytes per sample held in a window (a
  count, a p95), 100,000 flow runs in one hour of a one-hour window for each of Prefect's metrics
  (and all three together), 10,000 group keys on one automation.
* ``latency`` (``bench.metric_latency``): an EngineBackend on a SQLite file (the writer's code,
  on the real clock), metric groups breaching on a schedule beside thousands of other groups
  being fed: from the instant ``firing_for`` is reached to the committed firing; p50 / p99 /
  max, beside a process that only wakes up.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import json
import os
import statistics
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from automations import process_tuning
from automations.domain import events, prefect_json
from automations.engine.python_matcher import PythonMatcher
from automations.engine.trigger_engine import TriggerEngine
from bench import harness, metric_instructions, metric_latency, peers, workloads

HOUR = 3600.0
T0 = 1_893_456_000.0


# ------------------------------------------------------------------------------------------ W1


def _flow_metric(name: str, threshold: float, operator: str, **query: Any) -> dict[str, Any]:
    return {
        "type": "metric",
        "match": {"prefect.resource.id": "prefect.flow-run.*"},
        "metric": {
            "name": name,
            "threshold": threshold,
            "operator": operator,
            "range": HOUR,
            "firing_for": 300,
            **query,
        },
    }


def _bench_metric(**query: Any) -> dict[str, Any]:
    return {
        "type": "metric",
        "metric": {
            "threshold": 1e9,
            "operator": ">",
            "range": HOUR,
            "firing_for": 300,
            "for_each": ["prefect.resource.id"],
            **query,
        },
    }


def metric_automations() -> list[dict[str, Any]]:
    """20 metric automations: 8 of Prefect's metrics, 12 grouped ones over W1's own events.

    The Prefect ones watch ``prefect.flow-run.*`` with a ``match`` (as Prefect's docs write
    them), so W1's events pass them by at the name index. Each grouped one watches one or two of
    W1's 16 event names, per resource, like a metric over an order or deployment event would:
    together they take up most of W1's events (0.9 metric samples or intervals per event). Like
    W1's own automations they have no ``match`` spec: with the rete matcher a ``match`` costs
    every trigger alike, event or metric.
    """
    between = {"between": {"from": ["bench.evt.00"], "to": ["bench.evt.01"]}}
    outcome = {"outcome": {"start": ["bench.evt.02"], "failure": ["bench.evt.03"]}}
    by_deployment = ["related:deployment:prefect.resource.id"]
    triggers = [
        _flow_metric("successes", 0.9, "<"),
        _flow_metric("successes", 0.5, "<", for_each=by_deployment),
        _flow_metric("duration", 600, ">"),
        _flow_metric("duration", 900, ">", aggregation="p95", for_each=by_deployment),
        _flow_metric("lateness", 300, ">"),
        _flow_metric("lateness", 60, ">", for_each=["related:work-pool:prefect.resource.name"]),
        _flow_metric("crashes", 10, ">", events=["prefect.flow-run.Crashed"]),
        _flow_metric(
            "completions", 1, "<", events=["prefect.flow-run.Completed"], aggregation="rate"
        ),
        _bench_metric(name="00 to 01 mean", value=between, aggregation="mean"),
        _bench_metric(name="00 to 01 p95", value=between, aggregation="p95"),
        _bench_metric(name="02 outcome", value=outcome, aggregation="mean"),
        _bench_metric(name="04 count", events=["bench.evt.04"]),
        _bench_metric(name="05 rate", events=["bench.evt.05"], aggregation="rate"),
        _bench_metric(name="06 count", events=["bench.evt.06"]),
        _bench_metric(name="07 sum", events=["bench.evt.07"], aggregation="sum"),
        _bench_metric(name="08 count", events=["bench.evt.08"]),
        _bench_metric(name="09 count", events=["bench.evt.09"]),
        _bench_metric(name="10 rate", events=["bench.evt.10"], aggregation="rate"),
        _bench_metric(name="11 count", events=["bench.evt.11"]),
        _bench_metric(name="12 count", events=["bench.evt.12"]),
    ]
    return [
        {"name": f"bench-metric-{k:02d}", "trigger": trigger, "actions": [{"type": "do-nothing"}]}
        for k, trigger in enumerate(triggers)
    ]


def _tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and of its live children (the rete's worker)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    children = Path(f"/proc/{pid}/task/{pid}/children")
    with contextlib.suppress(OSError):
        for member in [pid, *map(int, children.read_text().split())]:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def w1_once(n: int, with_metrics: bool) -> dict[str, Any]:
    with harness.engine() as (addr, proc):
        a_stub, _e_stub, channel = peers._stubs(addr)
        bench_ids = [peers.create(a_stub, a) for a in workloads.w1_automations()]
        if with_metrics:
            for data in metric_automations():
                peers.create(a_stub, data)
        cpu_before = _tree_cpu_seconds(proc.pid)
        lg = harness.loadgen(addr, events=n)
        cpu = _tree_cpu_seconds(proc.pid) - cpu_before
        expected = workloads.w1_expected_firings(workloads.w1_sequence(n), [lg["occurred"]] * n)
        observed = sum(len(peers.firings(a_stub, i)) for i in bench_ids)
        channel.close()
        return {
            "rate": float(lg["events_per_s"]),
            "cpu_us": cpu / n * 1e6,
            "exact": observed == expected and lg["accepted"] == n,
            "firings": f"{observed}/{expected}",
            "accepted": lg["accepted"],
            "rejected_batches": lg["rejected_batches"],
            "rss_mb": harness.rss_mb(proc.pid),
        }


def engine_cpu(n: int = 60_000, runs: int = 5, size: int = 5000) -> dict[str, float]:
    """CPU time of the trigger engine alone per W1 event (rete matcher, ``size``-event batches,
    the served engine's collector thresholds), without and with the metric automations: the
    least of ``runs`` alternated runs each, which a busy machine disturbs far less than the
    end-to-end rates."""
    from automations.engine.rete.runtime import ReteMatcher

    now = time.time()
    batch = workloads.w1_events(n, now)

    def once(with_metrics: bool) -> float:
        counter = itertools.count()
        eng = TriggerEngine(ReteMatcher(), new_id=lambda: f"f{next(counter)}")
        loaded = workloads.w1_automations() + (metric_automations() if with_metrics else [])
        for k, data in enumerate(loaded):
            eng.load_automation(
                prefect_json.parse_automation(dict(data, actions=[]), automation_id=f"a{k}"),
                now=now,
            )
        eng.advance(now)
        start = time.process_time()
        for i in range(0, n, size):
            eng.process(batch[i : i + size], now + i / 1e6)
        return (time.process_time() - start) / n * 1e6

    without: list[float] = []
    beside: list[float] = []
    saved = gc.get_threshold()
    gc.set_threshold(*process_tuning.GC_THRESHOLDS)  # the collector as the served engine sets it
    try:
        for _ in range(runs):
            without.append(once(False))
            beside.append(once(True))
    finally:
        gc.set_threshold(*saved)
    return {"cpu_us_without": min(without), "cpu_us_with": min(beside)}


def w1(n: int, runs: int) -> dict[str, Any]:
    without: list[dict[str, Any]] = []
    beside: list[dict[str, Any]] = []
    for i in range(runs):  # alternated, the order flipped every other run
        pair = [(without, False), (beside, True)]
        for out, flag in pair if i % 2 == 0 else reversed(pair):
            out.append(w1_once(n, flag))
    rate_without = statistics.median(r["rate"] for r in without)
    rate_with = statistics.median(r["rate"] for r in beside)
    return {
        "events": n,
        "rates_without": [round(r["rate"]) for r in without],
        "rates_with": [round(r["rate"]) for r in beside],
        "cpu_without": [round(r["cpu_us"], 1) for r in without],
        "cpu_with": [round(r["cpu_us"], 1) for r in beside],
        "median_without": rate_without,
        "median_with": rate_with,
        "ratio": rate_with / rate_without,
        "exact": all(r["exact"] for r in without + beside),
        "not_exact": [
            {k: r[k] for k in ("firings", "accepted", "rejected_batches")}
            for r in without + beside
            if not r["exact"]
        ],
        "cpu_us_without": statistics.median(r["cpu_us"] for r in without),
        "cpu_us_with": statistics.median(r["cpu_us"] for r in beside),
        "rss_without_mb": statistics.median(r["rss_mb"] for r in without),
        "rss_with_mb": statistics.median(r["rss_mb"] for r in beside),
    }


# -------------------------------------------------------------------------------------- memory


def _engine(trigger: dict[str, Any]) -> TriggerEngine:
    counter = itertools.count()
    # the ids of processed events (dedup, ``follows``) are the engine's, not the metric's: not kept
    eng = TriggerEngine(
        PythonMatcher(), new_id=lambda: f"f{next(counter)}", persist_seen=False, max_seen=1
    )
    automation = prefect_json.parse_automation(
        {"name": "m", "trigger": trigger, "actions": []}, automation_id="m"
    )
    eng.load_automation(automation, now=T0)
    return eng


def _feed(engines: list[TriggerEngine], stream: Iterator[events.Event], batch: int = 2000) -> None:
    chunk: list[events.Event] = []
    for event in stream:
        chunk.append(event)
        if len(chunk) == batch:
            for eng in engines:
                eng.process(chunk, chunk[-1].occurred)
            chunk = []
    if chunk:
        for eng in engines:
            eng.process(chunk, chunk[-1].occurred)


def _held(build: Callable[[], Any]) -> tuple[Any, int]:
    """Builds something and returns it with the bytes it holds (tracemalloc, after a collection)."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    built = build()
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return built, held


def _plain(i: int, name: str, at: float, resource: str) -> events.Event:
    return events.Event(
        id=f"e{i}", event=name, occurred=at, resource={"prefect.resource.id": resource}, received=at
    )


def _samples(aggregation: str, n: int) -> tuple[int, int]:
    """Bytes held per sample: a count's, or a p95's of a payload field."""
    value = {} if aggregation == "count" else {"value": {"field": "payload.v"}}
    trigger = _bench_metric(name="s", events=["s"], aggregation=aggregation, for_each=[], **value)
    trigger["metric"]["range"] = 10 * HOUR

    def sample(i: int) -> events.Event:
        event = _plain(i, "s", T0 + i * (HOUR / n), "bench.res.1")
        event.payload = {"v": float(i % 1013)}
        return event

    def build() -> TriggerEngine:
        eng = _engine(trigger)
        _feed([eng], (sample(i) for i in range(n)))
        return eng

    eng, held = _held(build)
    return eng.metrics.live_groups(), held


def _runs(n: int) -> Iterator[events.Event]:
    """``n`` flow runs over one hour: Pending, Running, then Completed (90 %) or Failed; every
    tenth run is Late for 30 s first. Each has a deployment and a work pool."""
    step = HOUR / n
    pending: list[tuple[float, int, str]] = []
    for i in range(n):
        start = T0 + i * step
        if i % 10 == 0:
            pending.append((start - 30, i, "Late"))
        pending.append((start, i, "Pending"))
        pending.append((start + 1, i, "Running"))
        pending.append((start + 1 + 60 + (i % 7) * 10, i, "Failed" if i % 10 == 3 else "Completed"))
    pending.sort()
    for k, (at, i, state) in enumerate(pending):
        run = str(uuid.UUID(int=i))
        yield events.Event(
            id=f"e{k}",
            event=f"prefect.flow-run.{state}",
            occurred=at,
            resource={"prefect.resource.id": f"prefect.flow-run.{run}"},
            related=(
                {
                    "prefect.resource.id": f"prefect.deployment.d{i % 50}",
                    "prefect.resource.role": "deployment",
                },
                {
                    "prefect.resource.id": f"prefect.work-pool.p{i % 5}",
                    "prefect.resource.role": "work-pool",
                    "prefect.resource.name": f"pool-{i % 5}",
                },
            ),
            received=at,
        )


def _prefect_metrics(names: list[str], n: int) -> int:
    def build() -> list[TriggerEngine]:
        engines = [_engine(_flow_metric(name, 0.0, "<")) for name in names]
        _feed(engines, _runs(n))
        return engines

    _, held = _held(build)
    return held


def _in_flight(n: int) -> int:
    """Bytes held for ``n`` runs that went Running and have not ended (open intervals)."""

    def stream() -> Iterator[events.Event]:
        for i in range(n):
            at = T0 + i * (HOUR / n)
            yield events.Event(
                id=f"r{i}",
                event="prefect.flow-run.Running",
                occurred=at,
                resource={"prefect.resource.id": f"prefect.flow-run.{uuid.UUID(int=i)}"},
                received=at,
            )

    def build() -> TriggerEngine:
        eng = _engine(_flow_metric("duration", 0.0, "<"))
        _feed([eng], stream())
        return eng

    _, held = _held(build)
    return held


def _keys(keys: int, per_key: int) -> tuple[int, int, float]:
    trigger = _flow_metric(
        "duration", 1e9, ">", aggregation="p95", for_each=["prefect.resource.id"]
    )
    trigger["match"] = {}
    trigger["metric"]["events"] = ["k"]
    trigger["metric"]["value"] = {"field": "payload.v"}

    def stream() -> Iterator[events.Event]:
        for j in range(per_key):
            for k in range(keys):
                at = T0 + j * 60 + k * 0.001
                yield events.Event(
                    id=f"e{j}-{k}",
                    event="k",
                    occurred=at,
                    resource={"prefect.resource.id": f"bench.key.{k}"},
                    payload={"v": float(k % 97)},
                    received=at,
                )

    def build() -> TriggerEngine:
        eng = _engine(trigger)
        _feed([eng], stream())
        return eng

    eng, held = _held(build)
    start = time.perf_counter()
    eng.advance(T0 + per_key * 60 + HOUR + 1)  # every key's samples leave: all 10,000 evaluated
    sweep = time.perf_counter() - start
    return eng.metrics.live_groups() + keys, held, sweep


def memory() -> dict[str, Any]:
    n = 100_000
    _, count_bytes = _samples("count", 1_000_000)
    _, p95_bytes = _samples("p95", 1_000_000)
    per_metric = {
        name: _prefect_metrics([name], n) for name in ("successes", "duration", "lateness")
    }
    together = _prefect_metrics(["successes", "duration", "lateness"], n)
    open_bytes = _in_flight(n)
    keys, keys_bytes, sweep = _keys(10_000, 10)
    return {
        "count_bytes_per_sample": count_bytes / 1_000_000,
        "p95_bytes_per_sample": p95_bytes / 1_000_000,
        "runs": n,
        "bytes_per_run": {name: held / n for name, held in per_metric.items()},
        "three_metrics_mb": together / 2**20,
        "in_flight_bytes_per_run": open_bytes / n,
        "keys": keys - 0,
        "keys_mb": keys_bytes / 2**20,
        "keys_sweep_ms": sweep * 1000,
    }


# ---------------------------------------------------------------------------------------- main


def report(what: str, events_n: int, runs: int) -> None:
    if what in ("w1", "all"):
        r = w1(events_n, runs)
        print(
            f"W1 {r['events']:,} events: {r['median_without']:,.0f} events/s with its 20 event "
            f"automations, {r['median_with']:,.0f} with 20 metric automations beside them "
            f"({r['ratio']:.0%}; target >= 90%); runs {r['rates_without']} / {r['rates_with']}; "
            f"W1 firings exact in every run: {r['exact']} {r['not_exact'] or ''}; RSS "
            f"{r['rss_without_mb']:.0f} / {r['rss_with_mb']:.0f} MB; the engine's CPU per event "
            f"(its process and children, median) {r['cpu_us_without']:.1f} / "
            f"{r['cpu_us_with']:.1f} us, runs {r['cpu_without']} / {r['cpu_with']}"
        )
        cpu = engine_cpu()
        print(
            f"W1 in the trigger engine alone (CPU time per event, least of 5 alternated runs): "
            f"{cpu['cpu_us_without']:.2f} us with its 20 event automations, "
            f"{cpu['cpu_us_with']:.2f} us with the 20 metric automations beside them"
        )
        metric_instructions.run()  # the same ratio in instructions: the machine's load cannot move it
    if what in ("memory", "all"):
        m = memory()
        per_run = ", ".join(f"{k} {v:.0f}" for k, v in m["bytes_per_run"].items())
        print(
            f"memory: {m['count_bytes_per_sample']:.1f} bytes per sample of a count, "
            f"{m['p95_bytes_per_sample']:.1f} of a p95 (target <= 200); {m['runs']:,} flow runs "
            f"in a one-hour window: bytes per run {per_run}, {m['in_flight_bytes_per_run']:.0f} "
            f"per run still Running (an open interval); the three metrics together "
            f"{m['three_metrics_mb']:.1f} MB (target <= 100 MB); {m['keys']:,} group keys on one "
            f"automation (10 samples each, p95): {m['keys_mb']:.1f} MB, their samples leaving "
            f"together evaluated in {m['keys_sweep_ms']:.0f} ms"
        )
        print(json.dumps(m))
    if what in ("latency", "all"):
        lat = metric_latency.latency()
        print(
            f"transition latency (firing_for reached -> committed firing), "
            f"{lat['transitions']} transitions beside {lat['load_keys']:,} other groups fed "
            f"{lat['load_rate']} events/s: p50 {lat['p50_ms']:.1f} ms, p99 "
            f"{lat['p99_ms']:.1f} ms, max {lat['max_ms']:.1f} ms (target p99 <= 20 ms); of the "
            f"p99, the advance itself {lat['tick_work_p99_ms']:.1f} ms (the rest: waking up); the "
            f"advance's own CPU time p50 {lat['cpu_p50_ms']:.1f} ms, "
            f"p99 {lat['cpu_p99_ms']:.1f} ms; "
            f"meanwhile a process that only wakes up every 50 ms woke late by p50 "
            f"{lat['probe_p50_ms']:.1f} ms, p99 {lat['probe_p99_ms']:.1f} ms (the machine alone)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.metric_triggers")
    parser.add_argument(
        "what", nargs="?", default="all", choices=["w1", "memory", "latency", "all"]
    )
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    report(args.what, args.events, args.runs)


if __name__ == "__main__":
    main()
