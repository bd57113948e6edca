"""The peer workloads (bench/workloads/), as Prefect OSS was measured on them: automations, events.

W1's event sequence comes from the documented 64-bit LCG, so the engine replays exactly the
sequence Prefect was measured on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from automations.domain import events

HERE = Path(__file__).parent / "workloads"
MASK = (1 << 64) - 1


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((HERE / f"{name}.json").read_text())
    return data


def w1_automations() -> list[dict[str, Any]]:
    spec = load("w1_reactive_fanin")["automations"]
    out = []
    for k, patterns in enumerate(spec["expect_patterns"]):
        trigger = dict(spec["template"]["trigger"], expect=patterns)
        out.append(
            {
                "name": spec["name_format"].format(k=k),
                "trigger": trigger,
                "actions": spec["template"]["actions"],
            }
        )
    return out


def w1_probe_automation() -> dict[str, Any]:
    probe = load("w1_reactive_fanin")["probe"]
    return {"name": probe["name"], "trigger": probe["trigger"], "actions": probe["actions"]}


def w1_sequence(n: int) -> list[tuple[str, str]]:
    """(event name, resource id) for the first ``n`` events of W1's generator."""
    ev = load("w1_reactive_fanin")["events"]
    names = ev["event_names"]
    resources = ev["resources"]
    fmt = ev["resource_id_format"]
    x = ev["generator"]["seed"]
    out = []
    for _ in range(n):
        x = (6364136223846793005 * x + 1442695040888963407) & MASK
        name_idx = (x >> 33) % len(names)
        x = (6364136223846793005 * x + 1442695040888963407) & MASK
        res_idx = (x >> 33) % resources
        out.append((names[name_idx], fmt.format(r=res_idx)))
    return out


def _matches(pattern: str, name: str) -> bool:
    if "*" not in pattern:
        return pattern == name
    import re

    regex = "^" + ".+".join(re.escape(p) for p in pattern.split("*")) + "$"
    return re.match(regex, name) is not None


def w1_expected_firings(
    sequence: list[tuple[str, str]], occurred: list[float] | None = None
) -> int:
    """Firings Prefect's algorithm gives for W1 (the workload's ``expected_firings`` rule).

    Per (automation, resource) key, replayed in emission order with each event's occurred time t:
    the first matching event opens [t - 15 min, t + 60 s); an event in the window counts; at 3 the
    key fires and the next window is [max(end, t), +60 s); events before the window start are
    ignored; an event at or past the end opens [t, t + 60 s) and counts there.
    """
    times = occurred if occurred is not None else [0.0] * len(sequence)
    total = 0
    for automation in w1_automations():
        patterns = automation["trigger"]["expect"]
        matching_names = {n for n, _ in sequence if any(_matches(p, n) for p in patterns)}
        windows: dict[str, list[float]] = {}
        for (name, resource), t in zip(sequence, times, strict=True):
            if name not in matching_names:
                continue
            w = windows.get(resource)
            if w is None:
                w = windows[resource] = [t - 900.0, t + 60.0, 0.0]
            if t < w[0]:
                continue
            if t >= w[1]:
                w[0], w[1], w[2] = t, t + 60.0, 0.0
            w[2] += 1
            if w[2] >= 3:
                total += 1
                start = max(w[1], t)
                w[0], w[1], w[2] = start, start + 60.0, 0.0
    return total


def w1_events(n: int, at: float) -> list[events.Event]:
    """W1's first ``n`` events as the engine takes them in process, all occurring at ``at``."""
    return [
        events.Event(
            id=f"w{i}",
            event=name,
            occurred=at,
            resource={"prefect.resource.id": resource},
            received=at,
        )
        for i, (name, resource) in enumerate(w1_sequence(n))
    ]
