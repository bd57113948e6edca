"""Automation churn while events flow: the engine's resident memory per 1,000 automations churned.

Each churned automation is created with a ``match`` spec of its own (so its rule reaches the rete),
updated to another spec and deleted, while 200 stay loaded and events reaching them are published
continuously (100 events/s by default: each event id is remembered 30 minutes for deduplication,
~150 bytes each, which a faster publisher would add to the slope). The resident memory of the
engine and of its child processes (the rete's worker) is sampled every 1,000 automations; the
slope after the first 2,000 is reported in MB per 1,000.

Run: python -m bench.churn [--automations 10000] [--events-per-second 100] [--source DIR]   (not part of make test)
``--source`` runs the engine from another checkout's ``src`` (e.g. the code before a change).
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
import uuid
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
from bench import harness

LIVE = 200
"""Churned automations loaded at any time."""
NAMES = 50
"""Distinct event names the churned automations expect."""


def _automation(key: str, k: int) -> automation_pb2.Automation:
    proto: automation_pb2.Automation = wire_automations.automation_proto_from_prefect_json(
        {
            "name": f"churn {key}",
            "trigger": {
                "type": "event",
                "posture": "Reactive",
                "expect": [f"churn.{k % NAMES}"],
                "match": {"prefect.resource.id": f"r.{key}"},
                "threshold": 1,
                "within": 0,
            },
            "actions": [],
        }
    )
    return proto


def _publish(
    addr: str, stop: threading.Event, keys: list[str], counts: dict[str, int], rate: int
) -> None:
    with grpc.insecure_channel(addr) as channel:
        stub = event_service_pb2_grpc.EventServiceStub(channel)
        n = 0
        per_batch = max(1, rate // 10)
        while not stop.is_set():
            request = event_service_pb2.PublishEventsRequest()
            for _ in range(per_batch):
                n += 1
                key = keys[n % len(keys)] if keys else "none"
                event = event_pb2.Event(id=str(uuid.uuid4()), event=f"churn.{n % NAMES}")
                event.resource.labels["prefect.resource.id"] = f"r.{key}"
                request.events.append(event)
            stub.PublishEvents(request, timeout=60)
            counts["events"] += per_batch
            time.sleep(0.1)


def run(automations: int, source: Path | None, rate: int = 100) -> dict[str, Any]:
    """Churns ``automations`` automations through an engine; returns the memory samples."""
    samples: list[tuple[int, float]] = []
    counts = {"events": 0}
    with harness.engine(source=source) as (addr, proc):
        stop = threading.Event()
        live: list[str] = []
        publisher = threading.Thread(
            target=_publish, args=(addr, stop, live, counts, rate), daemon=True
        )
        publisher.start()
        started = time.monotonic()
        with grpc.insecure_channel(addr) as channel:
            stub = automation_service_pb2_grpc.AutomationServiceStub(channel)
            loaded: list[str] = []
            for k in range(automations):
                key = uuid.uuid4().hex[:12]
                created = stub.CreateAutomation(
                    automation_service_pb2.CreateAutomationRequest(automation=_automation(key, k)),
                    timeout=60,
                )
                if k % 3 == 0:  # an update to another spec of its own
                    updated = automation_pb2.Automation()
                    updated.CopyFrom(created)
                    updated.trigger.event.match.labels["prefect.resource.id"].patterns[:] = [
                        f"r.{key}.u"
                    ]
                    stub.UpdateAutomation(
                        automation_service_pb2.UpdateAutomationRequest(automation=updated),
                        timeout=60,
                    )
                loaded.append(created.name)
                live.append(key)
                if len(loaded) > LIVE:
                    stub.DeleteAutomation(
                        automation_service_pb2.DeleteAutomationRequest(name=loaded.pop(0)),
                        timeout=60,
                    )
                    live.pop(0)
                if k % 1000 == 999:
                    samples.append((k + 1, harness.tree_rss_now_mb(proc.pid)))
        stop.set()
        publisher.join(10)
        elapsed = time.monotonic() - started
    tail = samples[2:] if len(samples) > 3 else samples
    slope = (
        statistics.linear_regression([s[0] / 1000 for s in tail], [s[1] for s in tail]).slope
        if len(tail) >= 2
        else float("nan")
    )
    return {
        "engine": str(source or harness.ROOT),
        "automations_churned": automations,
        "events_published": counts["events"],
        "seconds": round(elapsed, 1),
        "rss_mb_per_1000": [(n, round(mb, 1)) for n, mb in samples],
        "slope_mb_per_1000_after_2000": round(slope, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--automations", type=int, default=10_000)
    parser.add_argument("--events-per-second", type=int, default=100)
    parser.add_argument("--source", type=Path, default=None)
    args = parser.parse_args()
    source = args.source.resolve() if args.source else None
    print(json.dumps(run(args.automations, source, args.events_per_second), indent=1))


if __name__ == "__main__":
    main()
