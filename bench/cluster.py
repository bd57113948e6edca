"""Cluster mode beside single-node mode, in one run: throughput, CPU per event, latency, failover.

Not a test. Usage::

    .venv/bin/python -m bench cluster                 # everything, the issue's sizes
    .venv/bin/python -m bench.cluster throughput --events 50000 --runs 3
    .venv/bin/python -m bench.cluster bound --events 50000 --delay 0.02
    .venv/bin/python -m bench.cluster latency --seconds 15
    .venv/bin/python -m bench.cluster failover --kills 5 --buckets 100000
    .venv/bin/python -m bench.cluster moves --cycles 5 --interval 0.2

Needs PostgreSQL (127.0.0.1:5432, a throw-away database per cluster) and NATS with JetStream
(``AUTOMATIONS_NATS_URL``, default ``nats://127.0.0.1:4222``; a stream prefix per cluster).

- **throughput**: W1 (20 reactive for-each automations, 200 resources) with ``--events`` events
  over StreamEvents, 1,000 per request, into single-node on SQLite, single-node on PostgreSQL and
  clusters of 1, 2 and 3 replicas (the streams spread over the replicas), alternated per run.
  *ack* is the rate at which requests were answered (single-node: committed and evaluated;
  cluster: durable in JetStream); *processed* is events / (start to the moment every partition's
  committed offsets reach the log's end). CPU per event is the engine processes' and their
  children's (the rete worker) user + system time over the run, divided by the events; NATS's
  and PostgreSQL's (every backend on the machine: other load counts too) are printed apart.
- **bound**: the same W1 into 1, 2 and 3 replicas whose every partition commit first waits
  ``--delay`` (20 ms), as a distant database would: the writers wait rather than compute, so the
  speed-up across replicas shows on 2 cores too.
- **latency** (W2): 20 events/s, each its own PublishEvents, a threshold-1 for-each automation;
  event sent -> firing visible in the database (its commit, notified to a listener:
  ``cluster_processes.FiringWatcher``), single-node on PostgreSQL beside a 3-replica cluster
  (events sent to the replicas in turn); W3: 20 absence windows, deadline -> firing visible.
  ``--runs`` runs of each, alternated; medians of the runs' percentiles.
- **failover**: 3 replicas of 32 partitions hold ``--buckets`` live for-each buckets each; then
  ``--kills`` times: absence windows (10 s) are opened in the victim's partitions, a ticker
  publishes one event per victim partition every 20 ms through the survivors, the victim is
  killed -9 0.3 s before the windows are due; measured: kill -> each partition owned by a
  survivor, kill -> its first commit there (its committed offset passing the one it had when it
  was taken), and each window's lag after it was due (fired on a survivor). The victim is then
  restarted and the partitions rebalance before the next kill.
- **moves**: graceful moves under a steady load, 2 -> 3 replicas (a join) and 3 -> 2 (SIGTERM):
  each moved partition's pause (last commit on the old owner -> first on the new) beside the
  gap between two commits of one owner, and event -> firing latency in moved partitions
  (``bench.cluster_moves``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import grpc

from automations.cluster import crash_points
from automations.v1 import event_pb2, event_service_pb2, event_service_pb2_grpc
from bench import cluster_moves, harness, peers, workloads
from bench import cluster_processes as cp

W1_KINDS = (
    "single-node sqlite",
    "single-node postgresql",
    "cluster x1",
    "cluster x2",
    "cluster x3",
)
PARTITIONS = 32


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _process_cpu(name: str) -> float:
    """CPU seconds so far of every process whose command is ``name`` (all of them)."""
    total = 0.0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() != name:
                    continue
                fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


# ----------------------------------------------------------------------------- throughput


def _w1_once(kind: str, events: int, env: dict[str, str] | None = None) -> dict[str, Any]:
    expected = workloads.w1_expected_firings(workloads.w1_sequence(events))
    if kind.startswith("single-node"):
        with cp.single_node(kind.split()[1]) as (node, _url):
            return _w1_measure([node], events, expected, streams=2, cluster=None)
    count = int(kind.rsplit("x", 1)[1])
    with cp.BenchCluster(PARTITIONS, env) as cluster:
        nodes = [cluster.start_replica() for _ in range(count)]
        cp.wait(cluster.settled, 60, "partitions settled")
        return _w1_measure(nodes, events, expected, streams=max(2, count), cluster=cluster)


def _w1_measure(
    nodes: list[cp.Node],
    events: int,
    expected: int,
    *,
    streams: int,
    cluster: cp.BenchCluster | None,
) -> dict[str, Any]:
    a_stub, _e, channel = peers._stubs(nodes[0].addr)
    ids = [peers.create(a_stub, a) for a in workloads.w1_automations()]
    cp.wait(lambda: all(cp.loaded(n) == len(ids) for n in nodes), 30, "automations loaded")
    cpu0 = [n.cpu() for n in nodes]
    other0 = (_process_cpu("nats-server"), _process_cpu("postgres"))
    lg = harness.loadgen(",".join(n.addr for n in nodes), events=events, streams=streams)
    if cluster is not None:
        cp.wait(cluster.quiescent, 300, "the cluster processed the load", interval=0.02)
    done = time.time()
    cpu = [n.cpu() - c for n, c in zip(nodes, cpu0, strict=True)]
    nats, postgres = (_process_cpu("nats-server") - other0[0], _process_cpu("postgres") - other0[1])
    cp.wait(lambda: sum(len(peers.firings(a_stub, i)) for i in ids) >= expected, 60, "W1's firings")
    fired = sum(len(peers.firings(a_stub, i)) for i in ids)
    channel.close()
    assert lg["accepted"] == events, lg
    processed = events / (done - lg["started"]) if cluster is not None else lg["events_per_s"]
    return {
        "ack": lg["events_per_s"],
        "processed": processed,
        "us_per_event": sum(cpu) / events * 1e6,
        "nats_us": nats / events * 1e6,
        "postgres_us": postgres / events * 1e6,
        "firings": fired,
        "expected": expected,
    }


def throughput(events: int, runs: int) -> None:
    print(
        f"== W1 throughput: {events} events, 1000 per request; median of {runs} runs, the "
        "configurations alternated"
    )
    results: dict[str, list[dict[str, Any]]] = {kind: [] for kind in W1_KINDS}
    for _ in range(runs):
        for kind in W1_KINDS:
            results[kind].append(_w1_once(kind, events))
    base = None
    for kind, rows in results.items():
        med = {key: statistics.median(r[key] for r in rows) for key in rows[0]}
        base = base or med["us_per_event"]
        right = all(r["firings"] == r["expected"] for r in rows)
        print(
            f"{kind:<24} ack {med['ack']:8,.0f}/s  processed {med['processed']:8,.0f}/s  "
            f"engine CPU {med['us_per_event']:6.0f} us/event  + NATS {med['nats_us']:4.0f}"
            f"  + PostgreSQL (machine) {med['postgres_us']:4.0f}  firings "
            f"{'= expected' if right else 'WRONG'} ({rows[0]['firings']})"
        )


def latency_bound(events: int, delay: float, runs: int) -> None:
    """W1 into 1, 2 and 3 replicas whose every commit waits ``delay`` s (a distant database)."""
    print(
        f"== W1 latency-bound: {events} events, every partition commit waits {delay * 1000:.0f} ms"
        f" before its COMMIT (AUTOMATIONS_TEST_COMMIT_DELAY_SECONDS); median of {runs} runs"
    )
    env = {crash_points.DELAY_ENV: str(delay)}
    kinds = ("cluster x1", "cluster x2", "cluster x3")
    rates: dict[str, list[float]] = {kind: [] for kind in kinds}
    for _ in range(runs):
        for kind in kinds:
            result = _w1_once(kind, events, env)
            assert result["firings"] == result["expected"], result
            rates[kind].append(result["processed"])
    base = statistics.median(rates[kinds[0]])
    for kind in kinds:
        rate = statistics.median(rates[kind])
        print(f"{kind:<24} processed {rate:8,.0f}/s  = {rate / base:.2f} x one replica")


# ----------------------------------------------------------------------------- latency (W2)


def _w2_run(nodes: list[cp.Node], database_url: str, seconds: float) -> dict[str, float]:
    spec = workloads.load("w2_latency")
    ev = spec["events"]
    a_stub, _e, channel = peers._stubs(nodes[0].addr)
    for automation in spec["automations"]:
        peers.create(a_stub, automation)
    cp.wait(lambda: all(cp.loaded(n) == 1 for n in nodes), 30, "automation loaded")
    channel.close()
    channels = [grpc.insecure_channel(n.addr) for n in nodes]
    stubs = [event_service_pb2_grpc.EventServiceStub(c) for c in channels]
    sent: dict[str, float] = {}
    acks: list[float] = []
    total = int(ev["rate_per_s"] * seconds)
    with cp.FiringWatcher(database_url) as watcher:
        start = time.perf_counter()
        for i in range(total):
            delay = start + i / ev["rate_per_s"] - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            event = peers._event(
                ev["event"], ev["resource_id_format"].format(r=i % ev["resources"])
            )
            at = time.time()
            stubs[i % len(stubs)].PublishEvents(
                event_service_pb2.PublishEventsRequest(events=[event])
            )
            acks.append(time.time() - at)
            sent[event.id] = at
        cp.wait(lambda: set(sent) <= set(watcher.seen), 30, "every firing visible")
        lat = [watcher.seen[i] - t for i, t in sent.items()]
    for c in channels:
        c.close()
    return {
        "p50": _pct(lat, 0.5) * 1000,
        "p99": _pct(lat, 0.99) * 1000,
        "ack_p50": _pct(acks, 0.5) * 1000,
        "ack_p99": _pct(acks, 0.99) * 1000,
        "events": float(total),
    }


def _w3_run(nodes: list[cp.Node], database_url: str) -> dict[str, float]:
    spec = workloads.load("w3_absence")
    ev = spec["events"]
    automation = spec["automations"][0]
    within = float(automation["trigger"]["within"])
    a_stub, _e, channel = peers._stubs(nodes[0].addr)
    peers.create(a_stub, automation)
    cp.wait(lambda: all(cp.loaded(n) == 2 for n in nodes), 30, "automation loaded")
    channel.close()
    due: dict[str, float] = {}
    with cp.FiringWatcher(database_url) as watcher:
        start = time.perf_counter()
        for r in range(ev["resources"]):
            delay = start + r * ev["spacing_s"] - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            event = peers._event(ev["event"], ev["resource_id_format"].format(r=r))
            _publish(nodes[r % len(nodes)], [event])
            due[event.id] = peers._ts(event.occurred) + within
        cp.wait(lambda: set(due) <= set(watcher.seen), within + 30, "every window visible")
        lags = [watcher.seen[i] - t for i, t in due.items()]
    return {"p50": _pct(lags, 0.5) * 1000, "p99": _pct(lags, 0.99) * 1000}


def _latency_once(kind: str, seconds: float) -> dict[str, float]:
    if kind == "single-node postgresql":
        with cp.single_node("postgresql") as (node, url):
            result = _w2_run([node], url, seconds)
            result.update({f"w3_{k}": v for k, v in _w3_run([node], url).items()})
            return result
    with cp.BenchCluster(PARTITIONS) as cluster:
        nodes = [cluster.start_replica() for _ in range(3)]
        cp.wait(cluster.settled, 60, "partitions settled")
        result = _w2_run(nodes, cluster.database_url, seconds)
        result.update({f"w3_{k}": v for k, v in _w3_run(nodes, cluster.database_url).items()})
        return result


def latency(seconds: float, runs: int = 1) -> None:
    print(
        f"== W2 latency: {int(20 * seconds)} events at 20/s, one per call; event sent -> firing "
        "visible in the database (its commit, notified to a listener). W3: 20 absence windows "
        f"(10 s) spread over 7.4 s; deadline -> firing visible. Median of {runs} runs, alternated"
    )
    kinds = ("single-node postgresql", "cluster x3")
    results: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
    for _ in range(runs):
        for kind in kinds:
            results[kind].append(_latency_once(kind, seconds))
    for kind in kinds:
        rows = results[kind]
        r = {key: statistics.median(row[key] for row in rows) for key in rows[0]}
        each = " / ".join(f"{row['p99']:.1f}" for row in rows)
        print(
            f"{kind:<24} W2 event -> firing p50 {r['p50']:6.1f} ms  p99 {r['p99']:6.1f} ms "
            f"({each})  (ack p50 {r['ack_p50']:5.1f} ms  p99 {r['ack_p99']:5.1f} ms);  W3 "
            f"deadline -> firing p50 {r['w3_p50']:6.1f} ms  p99 {r['w3_p99']:6.1f} ms"
        )
    print("target (cluster): W2 event -> firing p99 <= 20 ms; W3 lag p99 <= 50 ms")


# ----------------------------------------------------------------------------- failover

BUCKETS = {
    "name": "bench-buckets",
    "trigger": {
        "type": "event",
        "posture": "Reactive",
        "expect": ["bench.key"],
        "for_each": ["prefect.resource.id"],
        "threshold": 2,
        "within": 3600,
    },
    "actions": [{"type": "do-nothing"}],
}
WINDOW_SECONDS = 10.0
WINDOWS = {
    "name": "bench-windows",
    "trigger": {
        "type": "event",
        "posture": "Proactive",
        "after": ["bench.start"],
        "expect": ["bench.done"],
        "for_each": ["prefect.resource.id"],
        "threshold": 1,
        "within": WINDOW_SECONDS,
    },
    "actions": [{"type": "do-nothing"}],
}


def _publish(node: cp.Node, events: list[event_pb2.Event]) -> None:
    with grpc.insecure_channel(node.addr) as channel:
        event_service_pb2_grpc.EventServiceStub(channel).PublishEvents(
            event_service_pb2.PublishEventsRequest(events=events), timeout=10
        )


def _one_kill(cluster: cp.BenchCluster, number: int) -> dict[str, list[float]]:
    live = cluster.live()
    victim = live[number % len(live)]
    survivors = [n for n in live if n is not victim]
    victim_id = cluster.member_of(victim)
    rows = cluster.partitions_rows()
    doomed = sorted(p for p, row in rows.items() if row[0] == victim_id)
    starts = [
        peers._event("bench.start", cp.resource_in(p, f"w{number}", PARTITIONS)) for p in doomed
    ]
    _publish(survivors[0], starts)
    due = {e.id: peers._ts(e.occurred) + WINDOW_SECONDS for e in starts}
    ticks = [cp.resource_in(p, "tick", PARTITIONS) for p in doomed]
    stop = threading.Event()

    def ticker() -> None:
        k = 0
        while not stop.is_set():
            k += 1
            batch = [peers._event("bench.tick", r) for r in ticks]
            try:
                _publish(survivors[k % len(survivors)], batch)
            except grpc.RpcError:
                pass
            time.sleep(0.02)

    cp.wait(cluster.quiescent, 30, "the windows committed")
    with cp.FiringWatcher(cluster.database_url) as watcher:
        thread = threading.Thread(target=ticker, daemon=True)
        thread.start()
        time.sleep(max(0.0, min(due.values()) - 0.3 - time.time()))
        before = cluster.partitions_rows()
        victim.kill9()
        killed = time.time()
        owned: dict[int, float] = {}
        taken_at: dict[int, int] = {}
        committed: dict[int, float] = {}
        while len(committed) < len(doomed) and time.time() - killed < 60:
            now_rows = cluster.partitions_rows()
            now = time.time()
            for p in doomed:
                owner, raw, _fwd = now_rows[p]
                if owner not in (None, victim_id) and p not in owned:
                    owned[p], taken_at[p] = now - killed, max(raw, before[p][1])
                if p in owned and p not in committed and raw > taken_at[p]:
                    committed[p] = now - killed
            time.sleep(0.01)
        cp.wait(lambda: set(due) <= set(watcher.seen), 60, "the windows fired")
        stop.set()
        thread.join(5)
        lags = [watcher.seen[i] - due[i] for i in due]
    took = max(owned.values())
    print(
        f"kill {number + 1}: {len(doomed)} partitions owned elsewhere after "
        f"{took * 1000:.0f} ms (max), first commit after {max(committed.values()) * 1000:.0f} ms "
        f"(max); windows due {0.3 * 1000:.0f} ms after the kill fired "
        f"{statistics.median(lags) * 1000:.0f} ms (median) / {max(lags) * 1000:.0f} ms (max) "
        "after they were due"
    )
    return {"owned": list(owned.values()), "committed": list(committed.values()), "lags": lags}


def failover(kills: int, buckets: int) -> None:
    print(
        f"== failover: 3 replicas, {PARTITIONS} partitions, {buckets} live buckets per replica; "
        f"{kills} kills -9, each 0.3 s before absence windows in its partitions are due"
    )
    with cp.BenchCluster(PARTITIONS) as cluster:
        for _ in range(3):
            cluster.start_replica()
        cp.wait(cluster.settled, 60, "partitions settled")
        a_stub, _e, channel = peers._stubs(cluster.replicas[0].addr)
        peers.create(a_stub, BUCKETS)
        peers.create(a_stub, WINDOWS)
        channel.close()
        cp.wait(lambda: all(cp.loaded(n) == 2 for n in cluster.live()), 30, "automations loaded")
        started = time.time()
        addrs = ",".join(n.addr for n in cluster.live())
        harness.loadgen(addrs, events=3 * buckets, distinct_keys=True, streams=3)
        cp.wait(cluster.quiescent, 600, "the buckets committed", interval=0.2)
        print(f"{3 * buckets} buckets made in {time.time() - started:.0f} s")
        every: dict[str, list[float]] = {"owned": [], "committed": [], "lags": []}
        for number in range(kills):
            for key, values in _one_kill(cluster, number).items():
                every[key].extend(values)
            cluster.start_replica()
            cp.wait(
                lambda: cluster.settled() and cluster.quiescent(), 120, "rebalanced", interval=0.2
            )
    for key, label in (
        ("owned", "kill -> partition owned by a survivor"),
        ("committed", "kill -> its first commit on a survivor"),
        ("lags", "window due -> fired (due 0.3 s after the kill)"),
    ):
        values = every[key]
        print(
            f"{label:<48} p50 {_pct(values, 0.5) * 1000:6.0f} ms  p99 "
            f"{_pct(values, 0.99) * 1000:6.0f} ms  (n={len(values)})"
        )
    print("target: kill -> first commit p99 <= 2 s; windows due in the outage fire within it")


def run(events: int = 50_000, runs: int = 3, seconds: float = 15.0, kills: int = 5,
        buckets: int = 100_000) -> None:  # fmt: skip
    """Everything, in the order of the module docstring."""
    throughput(events, runs)
    latency_bound(events // 2, 0.02, runs)
    latency(seconds, runs)
    failover(kills, buckets)
    cluster_moves.moves(5, 0.2, PARTITIONS)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster")
    parser.add_argument(
        "what",
        nargs="?",
        default="all",
        choices=["throughput", "bound", "latency", "failover", "moves", "all"],
    )
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--buckets", type=int, default=100_000)
    parser.add_argument("--cycles", type=int, default=5, help="moves: joins and leaves")
    parser.add_argument(
        "--interval", type=float, default=0.2, help="moves: s between events to a partition"
    )
    parser.add_argument("--delay", type=float, default=0.02, help="the bound run's commit delay")
    args = parser.parse_args()
    if args.what in ("throughput", "all"):
        throughput(args.events, args.runs)
    if args.what in ("bound", "all"):
        latency_bound(args.events // 2, args.delay, args.runs)
    if args.what in ("latency", "all"):
        latency(args.seconds, args.runs)
    if args.what in ("failover", "all"):
        failover(args.kills, args.buckets)
    if args.what in ("moves", "all"):
        cluster_moves.moves(args.cycles, args.interval, PARTITIONS)


if __name__ == "__main__":
    main()
