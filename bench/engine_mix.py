"""Throughput of ``TriggerEngine`` on a mixed stream: events/s on one core, reported, never asserted.

Usage::

    .venv/bin/python -m bench.engine_mix [--events 30000] [--batch 500] [--rounds 3]
                                         [--matcher python|rete]

The workload: 20 automations, five of each kind (``automations()``): reactive ``svc.{i}.failed``
per resource (threshold 3 in 60 s), proactive flow-run watches (``after`` Running, ``expect`` any
flow-run event, per flow run, 600 s), reactive ``prefect.flow-run.Failed`` filtered on a related
tag (``match_related``), and compound "all of" flow-run Completed and ``deploy.{i}``. Events
(``stream()``, seeded): 7 names, 5,000 flow runs, 20 tags, 1 ms apart. Each batch is an
``advance`` then a ``process`` at the batch's last ``occurred``, state records included, as the
writer does. The engine's firings for this workload are pinned by
``tests/unit/engine/test_a_mixed_stream_fires_exactly.py``.

Each round builds a fresh engine; the best round is reported (the target is >= 30k events/s).
"""

from __future__ import annotations

import argparse
import itertools
import random
import time
from typing import Any

from automations.domain import automations as automations_
from automations.domain import events, firings, prefect_json
from automations.engine import matching, python_matcher, trigger_engine

T0 = 1e9
"""Wall time of the first event."""
NAMES = (
    "prefect.flow-run.Running",
    "prefect.flow-run.Completed",
    "prefect.flow-run.Failed",
    "prefect.flow-run.Pending",
    "svc.0.failed",
    "svc.4.failed",
    "other.thing",
)
"""The event names of the stream, equally likely."""


def _trigger(i: int) -> dict[str, Any]:
    if i % 4 == 0:
        return {
            "type": "event",
            "posture": "Reactive",
            "expect": [f"svc.{i}.failed"],
            "for_each": ["prefect.resource.id"],
            "threshold": 3,
            "within": 60,
        }
    if i % 4 == 1:
        return {
            "type": "event",
            "posture": "Proactive",
            "after": ["prefect.flow-run.Running"],
            "expect": ["prefect.flow-run.*"],
            "for_each": ["prefect.resource.id"],
            "match": {"prefect.resource.id": "prefect.flow-run.*"},
            "within": 600,
        }
    if i % 4 == 2:
        return {
            "type": "event",
            "posture": "Reactive",
            "expect": ["prefect.flow-run.Failed"],
            "match_related": {
                "prefect.resource.role": "tag",
                "prefect.resource.id": f"prefect.tag.t{i}",
            },
            "within": 0,
        }
    return {
        "type": "compound",
        "require": "all",
        "within": 300,
        "triggers": [
            {"type": "event", "posture": "Reactive", "expect": ["prefect.flow-run.Completed"]},
            {"type": "event", "posture": "Reactive", "expect": [f"deploy.{i}"]},
        ],
    }


def automations() -> list[automations_.Automation]:
    """The 20 automations ``a0``..``a19`` (automation ``ai`` has the trigger of kind ``i % 4``)."""
    return [
        prefect_json.parse_automation(
            {"name": f"a{i}", "trigger": _trigger(i), "actions": [{"type": "do-nothing"}]},
            automation_id=f"a{i}",
        )
        for i in range(20)
    ]


def stream(total: int, seed: int = 1) -> list[events.Event]:
    """``total`` events, 1 ms apart from :data:`T0`, each with one related tag."""
    rng = random.Random(seed)
    return [
        events.Event(
            id=f"e{k}",
            event=rng.choice(NAMES),
            occurred=T0 + k * 0.001,
            resource={"prefect.resource.id": f"prefect.flow-run.{rng.randrange(5000)}"},
            related=(
                {
                    "prefect.resource.id": f"prefect.tag.t{rng.randrange(20)}",
                    "prefect.resource.role": "tag",
                },
            ),
            received=T0 + k * 0.001,
        )
        for k in range(total)
    ]


def engine(matcher: matching.Matcher) -> trigger_engine.TriggerEngine:
    """A fresh engine (firing ids ``0``, ``1``...) with the workload's automations loaded."""
    counter = itertools.count()
    eng = trigger_engine.TriggerEngine(matcher, new_id=lambda: str(next(counter)))
    for automation in automations():
        eng.load_automation(automation, now=T0)
    return eng


def run(
    eng: trigger_engine.TriggerEngine, evs: list[events.Event], batch: int = 500
) -> list[firings.Firing]:
    """Feeds ``evs`` in batches (``advance`` then ``process``) and returns every firing."""
    out: list[firings.Firing] = []
    for i in range(0, len(evs), batch):
        chunk = evs[i : i + batch]
        now = chunk[-1].occurred
        out.extend(eng.advance(now).firings)
        out.extend(eng.process(chunk, now).firings)
    return out


def _matcher(kind: str) -> matching.Matcher:
    if kind == "rete":
        from automations.engine.rete import runtime

        return runtime.ReteMatcher()
    return python_matcher.PythonMatcher()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.engine_mix", description=__doc__)
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--matcher", choices=["python", "rete"], default="python")
    args = parser.parse_args()
    evs = stream(args.events)
    best = float("inf")
    fired = 0
    for _ in range(args.rounds):
        eng = engine(_matcher(args.matcher))
        started = time.perf_counter()
        fired = len(run(eng, evs, args.batch))
        best = min(best, time.perf_counter() - started)
    print(
        f"{args.events} mixed events, batches of {args.batch}, {args.matcher} matcher, best of "
        f"{args.rounds}: {args.events / best:,.0f} events/s, {fired} firings"
    )


if __name__ == "__main__":
    main()
