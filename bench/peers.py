"""The peer workloads W1-W3 against the real engine, printed beside Prefect's figures.

Each workload starts a fresh engine process (SQLite, durable acks), creates the workload's
automations over gRPC, sends the workload's events from a separate process or thread, and reads the
firings back with ListFirings.
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from typing import Any

import grpc

from automations.v1 import (
    automation_service_pb2,
    automation_service_pb2_grpc,
    event_pb2,
    event_service_pb2,
    event_service_pb2_grpc,
)
from automations.wire import automations as wire_automations
from bench import harness, workloads

PREFECT = {
    "w1_rate": 90.0,
    "w2_p50_ms": 128.0,
    "w2_p99_ms": 302.0,
    "w3_median_s": 2.77,
    "w3_max_s": 4.94,
}


def _stubs(addr: str) -> tuple[Any, Any, grpc.Channel]:
    channel = grpc.insecure_channel(addr, options=[("grpc.max_receive_message_length", 64 << 20)])
    return (
        automation_service_pb2_grpc.AutomationServiceStub(channel),
        event_service_pb2_grpc.EventServiceStub(channel),
        channel,
    )


def create(stub: Any, data: dict[str, Any]) -> str:
    reply = stub.CreateAutomation(
        automation_service_pb2.CreateAutomationRequest(
            automation=wire_automations.automation_proto_from_prefect_json(data)
        )
    )
    return str(reply.name.split("/", 1)[1])


def firings(stub: Any, automation_id: str | None = None) -> list[Any]:
    out: list[Any] = []
    token = ""
    parent = f"automations/{automation_id}" if automation_id else ""
    while True:
        reply = stub.ListFirings(
            automation_service_pb2.ListFiringsRequest(
                parent=parent, page_size=1000, page_token=token
            )
        )
        out.extend(reply.firings)
        token = reply.next_page_token
        if not token:
            return out


def _event(name: str, resource: str, occurred: float | None = None) -> event_pb2.Event:
    ev = event_pb2.Event(id=str(uuid.uuid4()), event=name)
    t = time.time() if occurred is None else occurred
    ev.occurred.seconds = int(t)
    ev.occurred.nanos = int((t - int(t)) * 1e9)
    ev.resource.labels["prefect.resource.id"] = resource
    return ev


def _ts(message: Any) -> float:
    return float(message.seconds + message.nanos / 1e9)


def w1(counts: list[int], automations_loaded: int = 20) -> list[dict[str, Any]]:
    results = []
    for n in counts:
        with harness.engine() as (addr, proc):
            a_stub, e_stub, channel = _stubs(addr)
            bench_ids = [create(a_stub, a) for a in workloads.w1_automations()]
            for k in range(max(0, automations_loaded - 20)):
                extra = {
                    "name": f"filler-{k}",
                    "trigger": {
                        "type": "event",
                        "posture": "Reactive",
                        "expect": [f"other.evt.{k}"],
                        "for_each": ["prefect.resource.id"],
                        "threshold": 3,
                        "within": 60,
                    },
                    "actions": [{"type": "do-nothing"}],
                }
                create(a_stub, extra)
            lg = harness.loadgen(addr, events=n)
            expected = workloads.w1_expected_firings(workloads.w1_sequence(n), [lg["occurred"]] * n)
            observed = sum(len(firings(a_stub, i)) for i in bench_ids)
            results.append(
                {
                    "events": n,
                    "automations": automations_loaded,
                    "accepted": lg["accepted"],
                    "rejected_batches": lg["rejected_batches"],
                    "rate": lg["events_per_s"],
                    "firings": observed,
                    "expected": expected,
                    "rss_mb": harness.rss_mb(proc.pid),
                }
            )
            channel.close()
    return results


def w2() -> dict[str, Any]:
    spec = workloads.load("w2_latency")
    ev = spec["events"]
    with harness.engine() as (addr, _proc):
        a_stub, e_stub, channel = _stubs(addr)
        for a in spec["automations"]:
            create(a_stub, a)
        latencies = []
        interval = 1.0 / ev["rate_per_s"]
        total = int(ev["rate_per_s"] * ev["duration_s"])
        start = time.perf_counter()
        for i in range(total):
            target = start + i * interval
            delay = target - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            event = _event(ev["event"], ev["resource_id_format"].format(r=i % ev["resources"]))
            e_stub.PublishEvents(event_service_pb2.PublishEventsRequest(events=[event]))
            latencies.append(time.time() - _ts(event.occurred))
        fired = firings(a_stub)
        server = sorted(_ts(f.fire_time) - _ts(f.triggering_event.occurred) for f in fired)
        channel.close()
    latencies.sort()

    def pct(xs: list[float], p: float) -> float:
        return xs[min(len(xs) - 1, int(p * len(xs)))] * 1000

    return {
        "events": total,
        "firings": len(fired),
        "ack_p50_ms": pct(latencies, 0.5),
        "ack_p95_ms": pct(latencies, 0.95),
        "ack_p99_ms": pct(latencies, 0.99),
        "server_p50_ms": pct(server, 0.5),
        "server_p99_ms": pct(server, 0.99),
    }


def w3(extra_windows: int = 0) -> dict[str, Any]:
    spec = workloads.load("w3_absence")
    ev = spec["events"]
    automation = spec["automations"][0]
    within = automation["trigger"]["within"]
    with harness.engine() as (addr, _proc):
        a_stub, e_stub, channel = _stubs(addr)
        automation_id = create(a_stub, automation)
        if extra_windows:
            # keep many windows open that expire well after the measured ones
            filler = dict(
                automation, name="w3-filler", trigger=dict(automation["trigger"], within=3600)
            )
            create(a_stub, filler)
            for start in range(0, extra_windows, 5000):
                batch = [
                    _event("bench.fill", f"bench.fill.{i}")
                    for i in range(start, min(extra_windows, start + 5000))
                ]
                e_stub.PublishEvents(event_service_pb2.PublishEventsRequest(events=batch))
        sent: dict[str, float] = {}
        t0 = time.perf_counter()
        for r in range(ev["resources"]):
            target = t0 + r * ev["spacing_s"]
            delay = target - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            event = _event(ev["event"], ev["resource_id_format"].format(r=r))
            e_stub.PublishEvents(event_service_pb2.PublishEventsRequest(events=[event]))
            sent[event.id] = _ts(event.occurred)
        time.sleep(within + ev["resources"] * ev["spacing_s"] - (time.perf_counter() - t0) + 2.0)
        fired = firings(a_stub, automation_id)
        lags = sorted(_ts(f.fire_time) - (sent[f.triggering_event_id] + within) for f in fired)
        channel.close()
    return {
        "windows_open": extra_windows + ev["resources"],
        "firings": len(fired),
        "expected": ev["resources"],
        "lag_min_ms": lags[0] * 1000 if lags else None,
        "lag_median_ms": statistics.median(lags) * 1000 if lags else None,
        "lag_p99_ms": lags[min(len(lags) - 1, int(0.99 * len(lags)))] * 1000 if lags else None,
        "lag_max_ms": lags[-1] * 1000 if lags else None,
    }


def buckets(n: int, *, with_reactive: bool = True) -> dict[str, Any]:
    """``n`` live for_each buckets: resident memory, then the time a restart takes to reload them."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="automations-bench-") as tmp:
        with harness.engine(workdir=tmp) as (addr, proc):
            a_stub, _e_stub, channel = _stubs(addr)
            if with_reactive:
                create(
                    a_stub,
                    {
                        "name": "one bucket per key",
                        "actions": [{"type": "do-nothing"}],
                        "trigger": {
                            "type": "event",
                            "expect": ["bench.key"],
                            "threshold": 2,
                            "within": 86400,
                            "for_each": ["prefect.resource.id"],
                        },
                    },
                )
            create(
                a_stub,
                {
                    "name": "one deadline per key",
                    "actions": [{"type": "do-nothing"}],
                    "trigger": {
                        "type": "event",
                        "posture": "Proactive",
                        "after": ["bench.key"],
                        "expect": ["bench.done"],
                        "threshold": 1,
                        "within": 86400,
                        "for_each": ["prefect.resource.id"],
                    },
                },
            )
            lg = harness.loadgen(addr, events=n, distinct_keys=True)
            channel.close()
            rss = harness.rss_mb(proc.pid)
        start = time.perf_counter()
        with harness.engine(workdir=tmp) as (addr, proc):
            reload_s = time.perf_counter() - start
            rss_after = harness.rss_mb(proc.pid)
    return {
        "keys": n,
        "accepted": lg["accepted"],
        "rate": lg["events_per_s"],
        "rss_mb": rss,
        "reload_s": reload_s,
        "rss_after_reload_mb": rss_after,
    }


def report(name: str, data: Any) -> None:
    print(f"{name}: {json.dumps(data)}")


def w1_median(n: int, runs: int) -> dict[str, Any]:
    """W1 at ``n`` events, ``runs`` times (a fresh engine each); the run with the median rate."""
    results = sorted((w1([n])[0] for _ in range(runs)), key=lambda r: float(r["rate"]))
    median = dict(results[len(results) // 2])
    median["rates"] = [round(r["rate"]) for r in results]
    median["all_firings"] = all(r["firings"] == r["expected"] for r in results)
    return median


def run_all(w1_counts: list[int]) -> None:
    for n in w1_counts:
        r = w1_median(n, 3 if n <= 100_000 else 1)
        print(
            f"W1 {r['events']:>9,} events, {r['automations']} automations: {r['rate']:9,.0f} events/s "
            f"(median; runs {r['rates']}) "
            f"processed with durable acks (Prefect ~{PREFECT['w1_rate']:.0f}/s: {r['rate'] / PREFECT['w1_rate']:,.0f}x); "
            f"firings {r['firings']}/{r['expected']} expected (every run complete: {r['all_firings']}); "
            f"rejected batches {r['rejected_batches']}; "
            f"RSS {r['rss_mb']:.0f} MB"
        )
    r2 = w2()
    print(
        f"W2 latency (event -> firing committed, as acked): p50 {r2['ack_p50_ms']:.1f} ms, "
        f"p99 {r2['ack_p99_ms']:.1f} ms; engine-side p99 {r2['server_p99_ms']:.2f} ms "
        f"(Prefect p50 {PREFECT['w2_p50_ms']:.0f} ms, p99 {PREFECT['w2_p99_ms']:.0f} ms); firings {r2['firings']}/{r2['events']}"
    )
    for extra in (0, 100_000):
        r3 = w3(extra)
        print(
            f"W3 absence, {r3['windows_open']:,} windows open: lag after deadline median "
            f"{r3['lag_median_ms']:.1f} ms, p99 {r3['lag_p99_ms']:.1f} ms, max {r3['lag_max_ms']:.1f} ms "
            f"(Prefect median {PREFECT['w3_median_s'] * 1000:.0f} ms, max {PREFECT['w3_max_s'] * 1000:.0f} ms); "
            f"firings {r3['firings']}/{r3['expected']}"
        )


def run_scale(keys: int) -> None:
    """W1 with 10,000 automations beside 20, and ``keys`` live buckets (memory, reload)."""
    small, large = w1([20_000]), w1([20_000], automations_loaded=10_000)
    ratio = large[0]["rate"] / small[0]["rate"]
    print(
        f"W1 20,000 events: {small[0]['rate']:,.0f} events/s with 20 automations, "
        f"{large[0]['rate']:,.0f} with 10,000 loaded ({ratio:.0%}; target >= 50%); "
        f"firings {large[0]['firings']}/{large[0]['expected']}"
    )
    one = buckets(keys, with_reactive=False)
    print(
        f"{one['keys']:,} live buckets (one proactive window with its deadline per key): RSS "
        f"{one['rss_mb']:,.0f} MB after ingest, restart to SERVING {one['reload_s']:.1f} s, RSS "
        f"{one['rss_after_reload_mb']:,.0f} MB after reload (target <= 1024 MB, <= 10 s)"
    )
    r = buckets(keys)
    print(
        f"{r['keys']:,} keys x 2 automations (a reactive bucket and a proactive window with its "
        f"deadline per key): RSS {r['rss_mb']:,.0f} MB after ingest, restart to SERVING "
        f"{r['reload_s']:.1f} s, RSS {r['rss_after_reload_mb']:,.0f} MB after reload "
        f"(target <= 1024 MB, <= 10 s)"
    )
