"""``make bench``: the ingest ceiling comparison and the peer workloads, side by side in one run.

python -m bench [ingest|peers|scale|dispatch|metrics|webhooks|all] [--events N] [--runs K]
python -m bench cluster [--runs K]: cluster mode beside single-node (PostgreSQL and NATS needed;
    not part of ``all``; ``python -m bench.cluster --help`` for the parts and their sizes)
"""

from __future__ import annotations

import argparse
import statistics

from bench import cluster, dispatch, harness, metric_triggers, peers, webhooks


def ingest(events: int, runs: int) -> None:
    print(
        f"== ingest: StreamEvents, {events} events, 1000 per request, 2 streams x 8 in flight; "
        f"median of {runs} runs, ceiling and engine alternated"
    )
    ceil_rates: list[float] = []
    eng: dict[str, dict[str, list[float]]] = {
        ids: {"rate": [], "p50": [], "p99": []} for ids in ID_KINDS
    }
    for _ in range(runs):
        with harness.ceiling() as addr:
            ceil_rates.append(harness.loadgen(addr, events=events)["events_per_s"])
        for ids, figures in eng.items():
            with harness.engine() as (addr, proc):
                result = harness.loadgen(addr, events=events, ids=ids)
                assert result["accepted"] == events, result
                figures["rate"].append(result["events_per_s"])
                figures["p50"].append(result["ack_p50_ms"])
                figures["p99"].append(result["ack_p99_ms"])
    ceiling = statistics.median(ceil_rates)
    print(f"ceiling (decode + touch every field + ack):       {ceiling:10,.0f} events/s")
    for ids, label in ID_KINDS.items():
        figures = eng[ids]
        rate = statistics.median(figures["rate"])
        print(
            f"engine  (validate + durable SQLite commit), {label}: {rate:10,.0f} events/s"
            f"  = {rate / ceiling:.0%} of the ceiling; ack p50 {statistics.median(figures['p50']):.1f}"
            f" ms, p99 {statistics.median(figures['p99']):.1f} ms (per 1000-event request)"
        )
    print("target: >= 35% of the ceiling and >= 40,000 events/s (with Prefect's own uuid7 ids)")


ID_KINDS = {"uuid7": "uuid7 ids", "uuid4": "uuid4 ids"}
"""Event ids the engine is measured with: Prefect's client makes UUIDv7s (time-ordered, appended
to the id index); random uuid4s land all over it and cost the event log more."""


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument(
        "what",
        nargs="?",
        default="all",
        choices=["ingest", "peers", "scale", "dispatch", "metrics", "webhooks", "cluster", "all"],
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--w1", type=int, nargs="*", default=[20_000, 1_000_000])
    parser.add_argument("--keys", type=int, default=1_000_000)
    args = parser.parse_args()
    if args.what in ("ingest", "all"):
        ingest(args.events, args.runs)
    if args.what in ("peers", "all"):
        peers.run_all(args.w1)
    if args.what in ("scale", "all"):
        peers.run_scale(args.keys)
    if args.what in ("dispatch", "all"):
        dispatch.run(runs=args.runs)
    if args.what in ("metrics", "all"):
        metric_triggers.report("all", 20_000, args.runs)
    if args.what in ("webhooks", "all"):
        webhooks.run(runs=args.runs, events=args.events)
    if args.what == "cluster":
        cluster.run(runs=args.runs)


if __name__ == "__main__":
    main()
