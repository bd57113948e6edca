"""The pause of a graceful partition move under a steady load (``python -m bench.cluster moves``).

Not a test. Two replicas of 32 partitions, one threshold-1 automation on ``bench.move``; a ticker
publishes one ``bench.move`` event per partition every ``interval`` seconds (through the first
replica, which stays). Then ``cycles`` times: a third replica joins (2 -> 3), the partitions
settle, and it is stopped with SIGTERM (3 -> 2; it hands its partitions back).

A watcher polls the ``partitions`` table every few milliseconds and records each advance of a
partition's committed raw offset with its owner at that moment (the committer: a commit is fenced
by the owner's epoch): that is when a commit became visible. For each partition that changed
owner, the *pause* is from its last commit on the old owner to its first commit on the new one;
beside it, the normal gap between two commits of the same owner in the same run (the ticker's
interval plus the commit). And each event's latency, sent -> its firing visible in the database
(``cluster_processes.FiringWatcher``): the events of moved partitions sent during a move (from
one interval before the old owner's last commit to the new owner's first) beside all others.
"""

from __future__ import annotations

import dataclasses
import statistics
import threading
import time

import grpc
import sqlalchemy as sa

from automations.store import tables
from automations.v1 import event_service_pb2, event_service_pb2_grpc
from bench import cluster_processes as cp
from bench import peers

MOVES = {
    "name": "bench-moves",
    "trigger": {
        "type": "event",
        "posture": "Reactive",
        "expect": ["bench.move"],
        "for_each": ["prefect.resource.id"],
        "threshold": 1,
        "within": 0,
    },
    "actions": [{"type": "do-nothing"}],
}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class CommitWatcher:
    """Records ``(time, owner)`` of every visible advance of each partition's raw offset."""

    def __init__(self, cluster: cp.BenchCluster, interval: float = 0.005) -> None:
        self._cluster = cluster
        self._interval = interval
        self.commits: dict[int, list[tuple[float, str]]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CommitWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        last = {p: row[1] for p, row in self._cluster.partitions_rows().items()}
        while not self._stop.is_set():
            rows = self._cluster.partitions_rows()
            now = time.time()
            for p, (owner, raw, _fwd) in rows.items():
                if raw > last.get(p, 0) and owner is not None:
                    self.commits.setdefault(p, []).append((now, owner))
                last[p] = raw
            time.sleep(self._interval)


@dataclasses.dataclass
class Move:
    """One partition's move: when the old owner last committed, when the new one first did."""

    partition: int
    last_old: float
    first_new: float
    kind: str
    new_owner: str
    acquired: float | None = None
    """When the new owner's acquisition committed (``partition_history``, PostgreSQL's clock)."""

    @property
    def pause(self) -> float:
        return self.first_new - self.last_old


def _moves(
    commits: dict[int, list[tuple[float, str]]], phases: list[tuple[float, str]]
) -> tuple[list[Move], list[float]]:
    """The moves (owner changes between consecutive commits) and the same-owner gaps."""
    moves: list[Move] = []
    gaps: list[float] = []
    for partition, seen in commits.items():
        for (t0, o0), (t1, o1) in zip(seen, seen[1:], strict=False):
            if o0 == o1:
                gaps.append(t1 - t0)
                continue
            kind = "?"
            for started, name in phases:
                if started <= t1:
                    kind = name
            moves.append(Move(partition, t0, t1, kind, o1))
    return moves, gaps


def _acquisitions(cluster: cp.BenchCluster, found: list[Move]) -> None:
    """Sets each move's ``acquired`` from the new owner's ``partition_history`` row."""
    h = tables.partition_history
    assert cluster.engine is not None
    with cluster.engine.connect() as conn:
        rows = conn.execute(sa.select(h.c.partition, h.c.owner, h.c.acquired)).all()
    for move in found:
        times = [
            float(r[2])
            for r in rows
            if r[0] == move.partition and r[1] == move.new_owner and r[2] <= move.first_new
        ]
        move.acquired = max(times) if times else None


def _ticker(
    addr: str, resources: dict[int, str], interval: float, sent: dict[str, tuple[int, float]],
    stop: threading.Event,
) -> None:  # fmt: skip
    with grpc.insecure_channel(addr) as channel:
        stub = event_service_pb2_grpc.EventServiceStub(channel)
        start = time.perf_counter()
        k = 0
        while not stop.is_set():
            k += 1
            batch = [(p, peers._event("bench.move", r)) for p, r in resources.items()]
            at = time.time()
            stub.PublishEvents(
                event_service_pb2.PublishEventsRequest(events=[e for _p, e in batch]), timeout=10
            )
            for p, event in batch:
                sent[event.id] = (p, at)
            delay = start + k * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)


def moves(cycles: int, interval: float, partitions: int = 32) -> None:
    """Prints the pause of graceful moves (see the module docstring)."""
    print(
        f"== moves: 2 replicas, {partitions} partitions, one event per partition every "
        f"{interval * 1000:.0f} ms through the first replica; {cycles} x (a replica joins: 2 -> 3;"
        " it is stopped with SIGTERM: 3 -> 2)"
    )
    with cp.BenchCluster(partitions) as cluster:
        first = cluster.start_replica()
        cluster.start_replica()
        cp.wait(cluster.settled, 60, "partitions settled")
        a_stub, _e, channel = peers._stubs(first.addr)
        peers.create(a_stub, MOVES)
        channel.close()
        cp.wait(lambda: all(cp.loaded(n) == 1 for n in cluster.live()), 30, "automation loaded")
        resources = {p: cp.resource_in(p, "move", partitions) for p in range(partitions)}
        sent: dict[str, tuple[int, float]] = {}
        stop = threading.Event()
        phases: list[tuple[float, str]] = []
        with cp.FiringWatcher(cluster.database_url) as firings, CommitWatcher(cluster) as watcher:
            ticker = threading.Thread(
                target=_ticker, args=(first.addr, resources, interval, sent, stop), daemon=True
            )
            ticker.start()
            time.sleep(3)
            for _ in range(cycles):
                phases.append((time.time(), "join"))
                joined = cluster.start_replica()
                cp.wait(cluster.settled, 60, "partitions settled after the join")
                time.sleep(3)
                phases.append((time.time(), "leave"))
                joined.stop()
                cp.wait(cluster.settled, 60, "partitions settled after the leave")
                time.sleep(3)
            stop.set()
            ticker.join(10)
            cp.wait(lambda: set(sent) <= set(firings.seen), 120, "every firing visible")
        found, gaps = _moves(watcher.commits, phases)
        _acquisitions(cluster, found)
        latency = {i: firings.seen[i] - at for i, (_p, at) in sent.items()}
    _report(found, gaps, latency, sent, interval)


def _report(
    found: list[Move], gaps: list[float], latency: dict[str, float],
    sent: dict[str, tuple[int, float]], interval: float,
) -> None:  # fmt: skip
    def line(label: str, values: list[float]) -> None:
        if not values:
            print(f"{label:<58} (none)")
            return
        print(
            f"{label:<58} p50 {_pct(values, 0.5) * 1000:6.0f} ms  p99 "
            f"{_pct(values, 0.99) * 1000:6.0f} ms  max {max(values) * 1000:6.0f} ms  "
            f"(n={len(values)})"
        )

    line("same owner: gap between two commits", gaps)
    for kind in ("join", "leave"):
        these = [m for m in found if m.kind == kind]
        print(f"{kind}: {len(these)} moves of {len({m.partition for m in these})} partitions")
        line("  last commit on the old owner -> first on the new", [m.pause for m in these])
        acquired = [m for m in these if m.acquired is not None]
        line("  last commit on the old owner -> acquired by the new", [
            m.acquired - m.last_old for m in acquired if m.acquired is not None
        ])  # fmt: skip
        line("  acquired by the new owner -> its first commit", [
            m.first_new - m.acquired for m in acquired if m.acquired is not None
        ])  # fmt: skip
    during = {
        event_id
        for event_id, (partition, at) in sent.items()
        if any(
            m.partition == partition and m.last_old - interval <= at <= m.first_new for m in found
        )
    }
    line("event -> firing, the other events", [v for i, v in latency.items() if i not in during])
    line("event -> firing, moved partitions' events sent in a move", [latency[i] for i in during])
    if found and gaps:
        ratio = statistics.median(m.pause for m in found) / statistics.median(gaps)
        print(f"median pause = {ratio:.1f} x the median gap between two commits")
