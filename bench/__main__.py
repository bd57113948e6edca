"""``make bench``: the ingest ceiling comparison and the peer workloads, side by side in one run.

python -m bench [ingest|peers|scale|dispatch|all] [--events N] [--runs K]
"""

from __future__ import annotations

import argparse
import statistics

from bench import dispatch, harness, peers


def ingest(events: int, runs: int) -> None:
    print(
        f"== ingest: StreamEvents, {events} events, 1000 per request, 2 streams x 8 in flight; "
        f"median of {runs} runs, ceiling and engine alternated"
    )
    ceil_rates: list[float] = []
    eng_rates: list[float] = []
    eng_p50: list[float] = []
    eng_p99: list[float] = []
    for _ in range(runs):
        with harness.ceiling() as addr:
            ceil_rates.append(harness.loadgen(addr, events=events)["events_per_s"])
        with harness.engine() as (addr, proc):
            result = harness.loadgen(addr, events=events)
            assert result["accepted"] == events, result
            eng_rates.append(result["events_per_s"])
            eng_p50.append(result["ack_p50_ms"])
            eng_p99.append(result["ack_p99_ms"])
    ceiling = statistics.median(ceil_rates)
    engine = statistics.median(eng_rates)
    print(f"ceiling (decode + touch every field + ack): {ceiling:10,.0f} events/s")
    print(
        f"engine  (validate + durable SQLite commit):  {engine:10,.0f} events/s"
        f"   ack p50 {statistics.median(eng_p50):.1f} ms, p99 {statistics.median(eng_p99):.1f} ms"
        f" (per 1000-event request)"
    )
    print(f"ratio engine/ceiling: {engine / ceiling:.0%}   (target >= 35% and >= 40,000 events/s)")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument(
        "what", nargs="?", default="all", choices=["ingest", "peers", "scale", "dispatch", "all"]
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


if __name__ == "__main__":
    main()
