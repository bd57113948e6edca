"""Load generator: streams pre-built event batches over StreamEvents and measures acks.

Runs as its own process so the server under test gets its own core. Batches are serialized before
the clock starts (the client must not be the bottleneck); each request carries ``--batch`` events and
up to ``--window`` requests per stream are in flight. Prints one JSON object.

Several ``--addr`` (comma-separated, e.g. a cluster's replicas) take the streams in turn.

Run: python -m bench.loadgen --addr HOST:PORT[,HOST:PORT...] --events N [--batch 1000] [--window 8] [--streams 2]
     [--ids uuid7|uuid4] [--vary-batch] [--distinct-keys]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import grpc

from automations.domain import ids
from automations.v1 import event_service_pb2
from bench import workloads

METHOD = "/automations.v1.EventService/StreamEvents"
ID_KINDS: dict[str, Callable[[], str]] = {
    # Prefect's client gives each event a UUIDv7 (time-ordered); uuid4 ids (random) are what a
    # client of its own may send, and cost the event log more (see docs/performance.md)
    "uuid7": ids.uuid7,
    "uuid4": lambda: str(uuid.uuid4()),
}


def request_sizes(total: int, batch: int, vary: bool) -> list[int]:
    """Events per request: ``batch`` each, or (``vary``) drawn uniformly from 1 to 2 * batch - 1
    (mean ``batch``, a fixed seed), as clients that send what they have at hand."""
    if not vary:
        return [min(batch, total - start) for start in range(0, total, batch)]
    rnd = random.Random(20261125)
    sizes: list[int] = []
    left = total
    while left > 0:
        sizes.append(min(left, rnd.randint(1, 2 * batch - 1)))
        left -= sizes[-1]
    return sizes


def build_requests(
    sequence: list[tuple[str, str]],
    batch: int,
    occurred: float,
    ids: str = "uuid7",
    vary: bool = False,
) -> list[bytes]:
    new_id = ID_KINDS[ids]
    requests = []
    seconds = int(occurred)
    nanos = int((occurred - seconds) * 1e9)
    end = 0
    for number, size in enumerate(request_sizes(len(sequence), batch, vary)):
        req = event_service_pb2.StreamEventsRequest(sequence=number)
        start, end = end, end + size
        for name, resource in sequence[start:end]:
            ev = req.events.add()
            ev.id = new_id()
            ev.event = name
            ev.occurred.seconds = seconds
            ev.occurred.nanos = nanos
            ev.resource.labels["prefect.resource.id"] = resource
        requests.append(req.SerializeToString())
    return requests


def run_stream(
    channel: grpc.Channel, requests: list[bytes], window: int, out: dict[str, Any]
) -> None:
    call = channel.stream_stream(
        METHOD,
        request_serializer=lambda b: b,
        response_deserializer=event_service_pb2.StreamEventsResponse.FromString,
    )
    sent_at: dict[int, float] = {}
    slots = threading.Semaphore(window)
    latencies: list[float] = []
    accepted = rejected_batches = 0

    def gen() -> Any:
        for raw in requests:
            slots.acquire()
            sent_at[len(sent_at)] = time.perf_counter()
            yield raw

    responses = call(gen())
    for i, response in enumerate(responses):
        latencies.append(time.perf_counter() - sent_at[i])
        slots.release()
        if response.HasField("error"):
            rejected_batches += 1
        else:
            accepted += sum(
                1
                for r in response.result.results
                if r.status == event_service_pb2.EVENT_STATUS_ACCEPTED
            )
    out["latencies"] = latencies
    out["accepted"] = accepted
    out["rejected_batches"] = rejected_batches


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--addr", required=True, help="HOST:PORT, or several comma-separated (streams alternate)"
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--streams", type=int, default=2)
    parser.add_argument(
        "--distinct-keys", action="store_true", help="event bench.key, a new resource id per event"
    )
    parser.add_argument(
        "--ids", choices=sorted(ID_KINDS), default="uuid7", help="how event ids are made"
    )
    parser.add_argument(
        "--vary-batch",
        action="store_true",
        help="request sizes drawn from 1 to 2 * batch - 1 instead of batch each",
    )
    args = parser.parse_args()

    if args.distinct_keys:
        sequence = [("bench.key", f"bench.key.{i}") for i in range(args.events)]
    else:
        sequence = workloads.w1_sequence(args.events)
    occurred = time.time()
    requests = build_requests(sequence, args.batch, occurred, args.ids, args.vary_batch)
    channels = [
        grpc.insecure_channel(addr, options=[("grpc.max_send_message_length", 64 << 20)])
        for addr in args.addr.split(",")
    ]
    for channel in channels:
        grpc.channel_ready_future(channel).result(timeout=30)
    shares = [requests[i :: args.streams] for i in range(args.streams)]
    outs: list[dict[str, Any]] = [{} for _ in shares]
    threads = [
        threading.Thread(
            target=run_stream, args=(channels[i % len(channels)], share, args.window, out)
        )
        for i, (share, out) in enumerate(zip(shares, outs, strict=True))
    ]
    started = time.time()
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    latencies: list[float] = sorted(x for o in outs for x in o["latencies"])
    accepted = sum(o["accepted"] for o in outs)

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    json.dump(
        {
            "events": args.events,
            "accepted": accepted,
            "rejected_batches": sum(o["rejected_batches"] for o in outs),
            "seconds": elapsed,
            "events_per_s": args.events / elapsed,
            "ack_p50_ms": pct(0.50),
            "ack_p99_ms": pct(0.99),
            "ack_median_ms": statistics.median(latencies) * 1000,
            "occurred": occurred,
            "started": started,
        },
        sys.stdout,
    )
    print()


if __name__ == "__main__":
    main()
