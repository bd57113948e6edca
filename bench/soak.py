"""Soak: an engine under an hour of mixed load; does its memory stay flat?

A real engine process (SQLite, the bundled executors off, ``bench.noop`` routed to a noop
executor process) runs for ``--minutes`` under, all at once:

* ingest: PublishEvents batches at about ``--rate`` events/s, some of which fire automations;
* firings and actions: ``--watchers`` automations with a threshold-1 trigger and a
  ``bench.noop`` action on part of the ingested events;
* churn: automations created with a match spec of their own, updated and deleted, continuously;
* refused requests: malformed automations, bad page tokens and oversized events, every second;
* an outside reader: a read-only ``sqlite3`` connection to the engine's file, opened, read and
  closed every second.

The resident memory of the engine and its children (the rete's worker) is sampled every
``--sample-seconds``. After the first ``--warm-up`` fraction of the run, the slope of a
least-squares line through the samples is
reported in MB per hour and as a share of the mean (goal: within 5 % over the run), with the
work done (events accepted, automations churned, requests refused, reads).

Run: python -m bench.soak [--minutes 60]   (not part of make test)
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from automations.v1 import (
    automation_pb2,
    automation_service_pb2,
    automation_service_pb2_grpc,
    event_pb2,
    event_service_pb2,
    event_service_pb2_grpc,
)
from automations.wire import automations as wire_automations
from bench import dispatch_processes, harness


def _automation(name: str, expect: str, resource: str = "*") -> Any:
    return wire_automations.automation_proto_from_prefect_json(
        {
            "name": name,
            "trigger": {
                "type": "event",
                "posture": "Reactive",
                "expect": [expect],
                "match": {"prefect.resource.id": resource},
                "threshold": 1,
                "within": 0,
            },
            "actions": [{"type": dispatch_processes.ACTION_TYPE}],
        }
    )


class Load:
    """The soak's concurrent workers and their counters."""

    def __init__(self, addr: str, database: Path, rate: float) -> None:
        self.addr = addr
        self.database = database
        self.rate = rate
        self.stop = threading.Event()
        self.counts = {"accepted": 0, "churned": 0, "refused": 0, "reads": 0, "errors": 0}
        self._lock = threading.Lock()

    def count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counts[key] += n

    def run(self, *workers: Callable[[], None]) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._guarded(w), daemon=True) for w in workers]
        for thread in threads:
            thread.start()
        return threads

    def _guarded(self, worker: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            while not self.stop.is_set():
                try:
                    worker()
                except grpc.RpcError:
                    self.count("errors")
                    time.sleep(0.5)

        return run

    def ingest(self) -> None:
        with grpc.insecure_channel(self.addr) as channel:
            stub = event_service_pb2_grpc.EventServiceStub(channel)
            batch = 100
            while not self.stop.is_set():
                started = time.monotonic()
                request = event_service_pb2.PublishEventsRequest()
                for i in range(batch):
                    event = request.events.add(id=str(uuid.uuid4()))
                    event.event = "soak.fire" if i % 20 == 0 else "soak.tick"
                    event.resource.labels["prefect.resource.id"] = f"soak.{i % 50}"
                    event.payload["n"] = i
                reply = stub.PublishEvents(request, timeout=60)
                self.count("accepted", sum(r.status == 1 for r in reply.results))
                time.sleep(max(0.0, batch / self.rate - (time.monotonic() - started)))

    def churn(self) -> None:
        with grpc.insecure_channel(self.addr) as channel:
            stub = automation_service_pb2_grpc.AutomationServiceStub(channel)
            while not self.stop.is_set():
                key = uuid.uuid4().hex[:12]
                created = stub.CreateAutomation(
                    automation_service_pb2.CreateAutomationRequest(
                        automation=_automation(f"churn {key}", f"soak.churn.{key}", f"r.{key}")
                    ),
                    timeout=60,
                )
                updated = automation_pb2.Automation()
                updated.CopyFrom(created)
                updated.trigger.event.expect[:] = [f"soak.churned.{key}"]
                stub.UpdateAutomation(
                    automation_service_pb2.UpdateAutomationRequest(automation=updated), timeout=60
                )
                stub.DeleteAutomation(
                    automation_service_pb2.DeleteAutomationRequest(name=created.name), timeout=60
                )
                self.count("churned")
                time.sleep(0.2)

    def refuse(self) -> None:
        with grpc.insecure_channel(
            self.addr, options=[("grpc.max_send_message_length", 64 << 20)]
        ) as channel:
            automations = automation_service_pb2_grpc.AutomationServiceStub(channel)
            events = event_service_pb2_grpc.EventServiceStub(channel)
            bad = automation_service_pb2.CreateAutomationRequest()
            bad.automation.display_name = "x" * (2 << 20)
            big = event_pb2.Event(id=str(uuid.uuid4()), event="soak.big")
            big.resource.labels["prefect.resource.id"] = "r"
            big.payload["blob"] = "y" * (2 << 20)
            while not self.stop.is_set():
                for call, request in (
                    (automations.CreateAutomation, bad),
                    (events.ListEvents, event_service_pb2.ListEventsRequest(page_token="z" * 4096)),
                    (events.PublishEvents, event_service_pb2.PublishEventsRequest(events=[big])),
                ):
                    try:
                        reply = call(request, timeout=60)
                    except grpc.RpcError:
                        self.count("refused")
                    else:
                        if getattr(reply, "results", None) and reply.results[0].status == 3:
                            self.count("refused")
                time.sleep(1.0)

    def read(self) -> None:
        while not self.stop.is_set():
            conn = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=5)
            try:
                conn.execute("SELECT count(*) FROM events").fetchone()
                self.count("reads")
            except sqlite3.OperationalError:
                pass
            finally:
                conn.close()
            time.sleep(1.0)


def _slope(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) samples, in MB per second."""
    xs = [t for t, _ in samples]
    ys = [v for _, v in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in samples) / den if den else 0.0


def run(
    minutes: float,
    sample_seconds: float,
    rate: float,
    watchers: int,
    warm_up: float,
    source: Path | None = None,
) -> dict[str, Any]:
    with (
        dispatch_processes.noop_executor() as (executor_addr, _, _),
        dispatch_processes.engine(executor_addr, source=source) as engine,
    ):
        with grpc.insecure_channel(engine.addr) as channel:
            stub = automation_service_pb2_grpc.AutomationServiceStub(channel)
            for n in range(watchers):
                stub.CreateAutomation(
                    automation_service_pb2.CreateAutomationRequest(
                        automation=_automation(f"watcher {n}", "soak.fire", f"soak.{n % 50}")
                    ),
                    timeout=60,
                )
        load = Load(engine.addr, Path(engine.tmp) / "bench.db", rate)
        threads = load.run(load.ingest, load.churn, load.refuse, load.read)
        samples: list[tuple[float, float]] = []
        started = time.monotonic()
        end = started + minutes * 60
        try:
            while time.monotonic() < end:
                samples.append(
                    (time.monotonic() - started, harness.tree_rss_now_mb(engine.proc.pid))
                )
                print(
                    f"  {samples[-1][0] / 60:5.1f} min  RSS {samples[-1][1]:7.1f} MB  {load.counts}"
                )
                time.sleep(min(sample_seconds, max(0.0, end - time.monotonic())))
            samples.append((time.monotonic() - started, harness.tree_rss_now_mb(engine.proc.pid)))
        finally:
            load.stop.set()
            for thread in threads:
                thread.join(60)
    steady = [s for s in samples if s[0] >= warm_up * minutes * 60]
    slope = _slope(steady) if len(steady) >= 2 else 0.0
    mean = statistics.fmean(v for _, v in steady) if steady else 0.0
    span = steady[-1][0] - steady[0][0] if len(steady) >= 2 else 0.0
    return {
        "minutes": minutes,
        "samples_mb": [round(v, 1) for _, v in samples],
        "slope_mb_per_hour": round(slope * 3600, 2),
        "growth_over_run_pct": round(100 * slope * span / mean, 2) if mean else 0.0,
        "counts": load.counts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.soak")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--sample-seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=2000.0, help="events/s ingested")
    parser.add_argument("--watchers", type=int, default=20)
    parser.add_argument("--warm-up", type=float, default=0.2, help="share of the run left out")
    parser.add_argument(
        "--source", type=Path, default=None, help="run another checkout's engine (its src)"
    )
    args = parser.parse_args()
    print(f"== soak: {args.minutes:g} min of ingest, churn, firings, refused requests, a reader")
    source = args.source.resolve() if args.source else None
    result = run(args.minutes, args.sample_seconds, args.rate, args.watchers, args.warm_up, source)
    print(
        f"RSS slope after warm-up: {result['slope_mb_per_hour']:+.1f} MB/h, "
        f"{result['growth_over_run_pct']:+.1f}% of the mean over the run (goal: within 5%)"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
