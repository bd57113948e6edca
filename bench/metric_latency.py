"""Metric triggers: how soon a transition is committed.

``python -m bench.metric_triggers latency``.

An EngineBackend on a SQLite file (the writer's code, on the real clock): metric groups breaching
on a schedule beside thousands of other groups being fed; from the instant ``firing_for`` is
reached to the committed firing, p50 / p99 / max, beside a process that only wakes up on a
schedule (what the machine's scheduler alone adds during the same seconds).
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from automations import metrics, process_tuning
from automations.domain import events, metric_json, prefect_json
from automations.pipeline import backend as backend_
from automations.store import database


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000


_WAKE_PROBE = """
import json, sys, time
at, end, step = map(float, sys.argv[1:4])
late = []
while at < end:
    pause = at - time.time()
    if pause > 0:
        time.sleep(pause)
    late.append(time.time() - at)
    at += step
    while at < time.time():
        at += step
print(json.dumps(late))
"""
"""A process that only wakes up every ``step`` seconds and notes how late it woke: what the
machine's scheduler alone adds to a deadline, measured during the same seconds as the engine."""


def latency(
    seconds: float = 40.0, per_second: int = 20, load_keys: int = 10_000, load_rate: int = 500
) -> dict[str, Any]:
    """Transitions on the real clock through an EngineBackend on SQLite (tuned as served).

    ``per_second`` groups a second start to breach (two failures each): each triggers when
    ``firing_for`` (2 s) is reached, then resolves 2 s after its failures left the 6 s window;
    both changes come from the deadline (reached exactly, on event time). Meanwhile
    ``load_rate`` failures a second, in batches every 100 ms, go to ``load_keys`` other groups of
    the same automation (each seen about every 20 s, so thousands of groups come and go); that
    whole stream is first replayed for one window so the load is in its steady state when the
    measurement starts.
    """
    metric_json.minimum_seconds = 1.0
    with (
        tempfile.TemporaryDirectory(prefix="automations-bench-") as tmp,
        process_tuning.tuned(process_tuning.Tuning()),
    ):
        db = database.Database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        db.migrate()
        db.start_background_checkpoints(256)
        backend = backend_.EngineBackend(db, engine_factory=backend_.rete_engine)
        backend.start()
        trigger = {
            "type": "metric",
            "match": {"prefect.resource.id": "bench.key.*"},
            "metric": {
                "name": "failures",
                "events": ["job.failed"],
                "threshold": 1,
                "operator": ">",
                "range": 6,
                "firing_for": 2,
                "for_each": ["prefect.resource.id"],
            },
        }
        now = time.time()
        backend.changes.create(
            prefect_json.parse_automation(
                {
                    "name": "per key",
                    "trigger": trigger,
                    "actions": [],
                    "actions_on_trigger": [{"type": "do-nothing"}],
                    "actions_on_resolve": [{"type": "do-nothing"}],
                },
                automation_id="lat",
                created=now,
                updated=now,
            )
        )
        counter = itertools.count()

        def failed(key: str, at: float) -> events.Event:
            return events.Event(
                id=f"l{next(counter)}",
                event="job.failed",
                occurred=at,
                resource={"prefect.resource.id": key},
                received=at,
            )

        counted = metrics.FIRINGS.labels("metric", "Metric")
        load = itertools.cycle(range(load_keys))
        ticks: list[float] = []
        work: list[float] = []  # the part of the latency spent in the advance itself
        cpu_work: list[float] = []  # the CPU time of the advance (this thread's)
        schedule: list[tuple[float, list[str]]] = []
        t0 = time.time() + 7.0  # after one window of load alone
        for tenth in range(int((seconds + 17) * 10)):
            at = t0 - 7.0 + tenth / 10
            keys = [f"bench.key.load.{next(load)}" for _ in range(load_rate // 10)]
            schedule.append((at, keys))
        for k in range(int(seconds * per_second)):
            at = t0 + k / per_second
            key = f"bench.key.{k}"
            schedule.append((at, [key, key]))
        schedule.sort(key=lambda item: item[0])
        end = t0 + seconds + 10
        probe = subprocess.Popen(
            [sys.executable, "-c", _WAKE_PROBE, str(t0), str(end), "0.05"],
            stdout=subprocess.PIPE,
            text=True,
        )
        while time.time() < end:
            due = backend.next_due()
            next_event = schedule[0][0] if schedule else end
            wake = min(next_event, due if due is not None else end)
            pause = wake - time.time()
            if pause > 0:
                time.sleep(pause)
            now = time.time()
            if due is not None and due <= now:
                before = counted._value.get()
                cpu = time.thread_time()
                backend.advance(now)
                done = time.time()
                made = int(counted._value.get() - before)
                ticks.extend([done - due] * made)
                work.extend([done - now] * made)
                cpu_work.extend([time.thread_time() - cpu] * made)
            if schedule and schedule[0][0] <= time.time():
                at, keys = schedule.pop(0)
                backend.commit_events([failed(key, at) for key in keys], time.time())
        db.dispose()
        woken: list[float] = json.loads(probe.communicate(timeout=60)[0])
    metric_json.minimum_seconds = 300.0
    return {
        "probe_p50_ms": _pct(woken, 0.5),
        "probe_p99_ms": _pct(woken, 0.99),
        "transitions": len(ticks),
        "p50_ms": _pct(ticks, 0.5),
        "p99_ms": _pct(ticks, 0.99),
        "max_ms": max(ticks) * 1000,
        "tick_work_p99_ms": _pct(work, 0.99),
        "cpu_p50_ms": _pct(cpu_work, 0.5),
        "cpu_p99_ms": _pct(cpu_work, 0.99),
        "load_keys": load_keys,
        "load_rate": load_rate,
    }
