"""The unbounded-simulation attack (issue #17, item 6), measured against a real engine.

One ``SimulateAutomation`` asking for ``until`` = 2e7 s on a proactive trigger of 10 s, with a 5 s
deadline, while a bystander publishes one event at a time. Reports how the call ended and when,
the CPU the engine (and its children: simulation workers) spent from the call until it went
quiet, their peak resident memory, and the bystander's PublishEvents latencies before and during.

Run: python -m bench.simulation_attack [--source DIR] [--until SECONDS] [--env NAME=VALUE ...]

``--source`` runs the engine from another checkout's ``src`` (e.g. the code before the fix).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc

from automations.v1 import (
    automation_service_pb2,
    automation_service_pb2_grpc,
    event_service_pb2,
    event_service_pb2_grpc,
)
from automations.wire import automations as wire_automations
from bench import harness

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")

PROACTIVE = {
    "name": "quiet for 10 s",
    "trigger": {
        "type": "event",
        "posture": "Proactive",
        "expect": ["heartbeat"],
        "threshold": 1,
        "within": 10,
        "match": {"prefect.resource.id": "*"},
    },
    "actions": [{"type": "do-nothing"}],
}


def _family(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    found = [pid]
    for member in found:
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{member}/task").iterdir():
                found.extend(int(c) for c in (task / "children").read_text().split())
    return found


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of ``pid``, its live descendants and its reaped children."""
    total = 0
    for member in _family(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
            if member == pid:
                total += int(fields[13]) + int(fields[14])  # cutime, cstime
    return total / TICKS


def _rss_mb(pid: int, key: str = "VmRSS") -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) / 1024
    return 0.0


@contextlib.contextmanager
def _engine(source: Path, env: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    with harness.serve(extra_env=env, source=source) as served:
        yield served.addr, served.proc


class _Bystander(threading.Thread):
    """Publishes one event at a time, every 20 ms, recording each call's latency."""

    def __init__(self, addr: str) -> None:
        super().__init__(daemon=True)
        self._stub = event_service_pb2_grpc.EventServiceStub(grpc.insecure_channel(addr))
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            request = event_service_pb2.PublishEventsRequest()
            event = request.events.add(id=f"bystander-{n}", event="bystander.ping")
            event.resource.labels["prefect.resource.id"] = "bystander"
            begin = time.perf_counter()
            self._stub.PublishEvents(request, timeout=30)
            self.samples.append((begin, time.perf_counter() - begin))
            time.sleep(0.02)


def _latencies(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {}
    ordered = sorted(samples)
    return {
        "calls": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


def attack(source: Path, until: int, deadline: float, env: dict[str, str]) -> dict[str, Any]:
    """Runs the attack once against an engine started from ``source``."""
    request = automation_service_pb2.SimulateAutomationRequest(
        automation=wire_automations.automation_proto_from_prefect_json(PROACTIVE)
    )
    request.until.FromSeconds(until)
    with _engine(source, env) as (addr, proc):
        bystander = _Bystander(addr)
        cpu_idle = _cpu_seconds(proc.pid)
        bystander.start()
        time.sleep(3)  # latencies before the attack
        cpu_before = _cpu_seconds(proc.pid)
        bystander_rate = (cpu_before - cpu_idle) / 3
        peak_workers_mb = [0.0]
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.is_set():
                workers = _family(proc.pid)[1:]
                peak_workers_mb[0] = max(peak_workers_mb[0], sum(_rss_mb(w) for w in workers))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        stub = automation_service_pb2_grpc.AutomationServiceStub(grpc.insecure_channel(addr))
        begin = time.perf_counter()
        try:
            reply = stub.SimulateAutomation(request, timeout=deadline)
            outcome = f"OK, {len(reply.firings)} firings"
        except grpc.RpcError as exc:
            outcome = f"{exc.code().name}: {exc.details()}"
        returned = time.perf_counter() - begin
        quiet_at = returned
        last = _cpu_seconds(proc.pid)
        # quiet: CPU growing by less than 0.1 s a second more than the bystander alone made it
        while time.perf_counter() - begin < 120:
            time.sleep(1)
            now = _cpu_seconds(proc.pid)
            if now - last < bystander_rate + 0.1:
                break
            last = now
            quiet_at = time.perf_counter() - begin
        sampling.set()
        sampler.join()
        cpu = _cpu_seconds(proc.pid) - cpu_before
        bystander.stop.set()
        bystander.join()
        before = [s for t, s in bystander.samples if t < begin]
        during = [s for t, s in bystander.samples if begin <= t < begin + max(quiet_at, returned)]
        return {
            "engine": str(source),
            "call": outcome,
            "call_returned_s": round(returned, 2),
            "busy_until_s": round(quiet_at, 1),
            "cpu_s": round(cpu, 2),
            "bystander_cpu_s_per_s": round(bystander_rate, 3),
            "engine_peak_rss_mb": round(_rss_mb(proc.pid, "VmHWM"), 1),
            "workers_peak_rss_mb": round(peak_workers_mb[0], 1),
            "publish_before": _latencies(before),
            "publish_during": _latencies(during),
        }


def main() -> None:
    """Parses the arguments, runs the attack and prints one JSON object."""
    parser = argparse.ArgumentParser(prog="python -m bench.simulation_attack")
    parser.add_argument("--source", type=Path, default=ROOT)
    parser.add_argument("--until", type=int, default=20_000_000)
    parser.add_argument("--deadline", type=float, default=5.0)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    print(json.dumps(attack(args.source.resolve(), args.until, args.deadline, env), indent=1))


if __name__ == "__main__":
    main()
