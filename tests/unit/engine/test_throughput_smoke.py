"""A smoke check of the hot path's speed (the target is >= 30k events/s for 20 automations).

The bound asserted here is deliberately loose so that a busy CI machine does not fail it; the
measured rate is printed (``pytest -s``). On an idle core the engine does about 40-45k events/s
with this mix, state records included.
"""

from __future__ import annotations

import itertools
import random
import time
from typing import Any

from automations.domain import events, prefect_json
from automations.engine.python_matcher import PythonMatcher
from automations.engine.trigger_engine import TriggerEngine


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


def test_twenty_automations_process_a_mixed_stream_quickly() -> None:
    counter = itertools.count()
    engine = TriggerEngine(PythonMatcher(), new_id=lambda: str(next(counter)))
    t0 = 1e9
    for i in range(20):
        data = {"name": f"a{i}", "trigger": _trigger(i), "actions": [{"type": "do-nothing"}]}
        engine.load_automation(prefect_json.parse_automation(data, automation_id=f"a{i}"), now=t0)
    names = [
        "prefect.flow-run.Running",
        "prefect.flow-run.Completed",
        "prefect.flow-run.Failed",
        "prefect.flow-run.Pending",
        "svc.0.failed",
        "svc.4.failed",
        "other.thing",
    ]
    rng = random.Random(1)
    total = 30_000
    stream = [
        events.Event(
            id=f"e{k}",
            event=rng.choice(names),
            occurred=t0 + k * 0.001,
            resource={"prefect.resource.id": f"prefect.flow-run.{rng.randrange(5000)}"},
            related=(
                {
                    "prefect.resource.id": f"prefect.tag.t{rng.randrange(20)}",
                    "prefect.resource.role": "tag",
                },
            ),
            received=t0 + k * 0.001,
        )
        for k in range(total)
    ]
    fired = 0
    started = time.perf_counter()
    for i in range(0, total, 500):
        batch = stream[i : i + 500]
        now = batch[-1].occurred
        fired += len(engine.advance(now).firings)
        fired += len(engine.process(batch, now).firings)
    rate = total / (time.perf_counter() - started)
    print(f"{rate:.0f} events/s, {fired} firings")
    assert fired > 0
    assert rate > 3_000
