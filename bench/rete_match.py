"""Throughput of ``ReteMatcher.match_batch`` (events/s, one core). Not a test.

Usage::

    .venv/bin/python bench/rete_match.py [--events 200000] [--batch 1000] [--isolate both]

Scenarios (W1 = the 20 automations of bench/workloads/w1_reactive_fanin.json, 16 exact + 4
wildcard ``expect`` patterns, for_each resource id, events from W1's generator over 200 resources):

* ``w1``: W1 as defined (empty ``match``): the name index decides, no rule reaches the rete.
* ``w1-rete``: W1 with ``match: {prefect.resource.id: "bench.res.*"}`` on every automation, so
  every covered trigger goes through the rete (about 5 rules fire per event).
* ``+10k unrelated``: the same, plus 10,000 automations on other event names, each with a
  resource spec (1% of them wildcard patterns): the name index must keep them off W1's path.
* ``+10k same names``: plus 10,000 automations on W1's own 16 names, each on one resource id
  (``bench.res.NNN``): every event reaches ~625 rules of its name in the rete, and one more fires.

Each scenario matches the events once to warm up (seals the shards, fills the name cache), then
times ``--rounds`` passes and reports the best.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from automations.domain import events, triggers  # noqa: E402
from automations.engine.rete.runtime import ReteMatcher  # noqa: E402
from bench import workloads  # noqa: E402

RID = "prefect.resource.id"


def _trigger(
    tid: str, expect: list[str], match: dict[str, tuple[str, ...]]
) -> triggers.EventTrigger:
    return triggers.EventTrigger(
        id=tid,
        match=match,
        match_related=(),
        after=(),
        expect=tuple(expect),
        for_each=(RID,),
        posture=triggers.Posture.REACTIVE,
        threshold=3,
        within=60.0,
    )


def build(scenario: str, isolate: bool = False) -> ReteMatcher:
    m = ReteMatcher(isolate=isolate)
    force_rete = scenario != "w1"
    for k, automation in enumerate(workloads.w1_automations()):
        match = {RID: ("bench.res.*",)} if force_rete else {}
        m.load(automation["name"], [_trigger(f"w1.{k}", automation["trigger"]["expect"], match)])
    if scenario.endswith("+10k unrelated"):
        for k in range(10_000):
            expect = [f"svc.{k % 97}.*"] if k % 100 == 0 else [f"svc.{k}.done"]
            m.load(f"other{k}", [_trigger(f"o{k}", expect, {RID: (f"svc.res.{k % 500}",)})])
    if scenario.endswith("+10k same names"):
        names = workloads.load("w1_reactive_fanin")["events"]["event_names"]
        for k in range(10_000):
            expect = [names[k % len(names)]]
            rid = f"bench.res.{(k // len(names)) % 1000:03d}"
            m.load(f"same{k}", [_trigger(f"s{k}", expect, {RID: (rid,)})])
    return m


def run(
    scenario: str, evs: list[events.Event], batch: int, rounds: int, isolate: bool = False
) -> tuple[float, int, ReteMatcher]:
    m = build(scenario, isolate)
    m.flush()
    touches = 0
    for start in range(0, len(evs), batch):  # warm-up
        touches += sum(len(t) for t in m.match_batch(evs[start : start + batch]))
    best = float("inf")
    gc.collect()
    for _ in range(rounds):
        t0 = time.perf_counter()
        for start in range(0, len(evs), batch):
            m.match_batch(evs[start : start + batch])
        best = min(best, time.perf_counter() - t0)
    return len(evs) / best, touches, m


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1])
    return 0


def leak() -> None:
    """RSS left behind per abandoned ruleset: load, match, unload (retire), 20 rounds per size."""
    for n_rules in (1, 32, 256):
        m = ReteMatcher(seal_after_batches=0, max_names=256)
        before = _rss_kb()
        for k in range(20):
            trs = [
                _trigger(f"t{k}.{j}", [f"n.{j}"], {RID: (f"r.{k}.{j}",)}) for j in range(n_rules)
            ]
            m.load(f"a{k}", trs)
            m.match_batch(
                [
                    events.Event(id=str(j), event=f"n.{j}", occurred=0.0, resource={RID: "r"})
                    for j in range(n_rules)
                ]
            )
            m.unload(f"a{k}")
            m.match_batch([events.Event(id="x", event="n.0", occurred=0.0, resource={RID: "x"})])
        gc.collect()
        per = (_rss_kb() - before) / max(1, m.stats.rulesets_abandoned)
        print(
            f"{n_rules:4d} rules/ruleset: {m.stats.rulesets_abandoned} abandoned, "
            f"{per:,.0f} KB each ({per / n_rules:,.1f} KB/rule)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scenario", action="append")
    parser.add_argument("--leak", action="store_true", help="measure abandoned-ruleset RSS")
    parser.add_argument(
        "--isolate",
        choices=("no", "yes", "both"),
        default="both",
        help="durable_rules in this process, in a worker process (as the server runs it), or both",
    )
    args = parser.parse_args()
    if args.leak:
        leak()
        return
    seq = workloads.w1_sequence(args.events)
    evs = [
        events.Event(id=str(i), event=name, occurred=float(i), resource={RID: rid})
        for i, (name, rid) in enumerate(seq)
    ]
    scenarios = args.scenario or [
        "w1",
        "w1-rete",
        "w1-rete +10k unrelated",
        "w1-rete +10k same names",
    ]
    print(f"{args.events} W1 events, batches of {args.batch}, best of {args.rounds}")
    modes = {"no": (False,), "yes": (True,), "both": (False, True)}[args.isolate]
    for scenario in scenarios:
        for isolate in modes:
            rate, touches, m = run(scenario, evs, args.batch, args.rounds, isolate)
            n = m.stats.events
            where = "worker " if isolate else "inline "
            print(
                f"{scenario:26s} {where} {rate:>10,.0f} events/s  {touches / len(evs):.2f}"
                f" touches/event, {m.stats.posts / n:.2f} facts/event,"
                f" {m.stats.actions / n:.2f} actions/event, {m.shard_count} rulesets"
            )
            m.close()


if __name__ == "__main__":
    main()
