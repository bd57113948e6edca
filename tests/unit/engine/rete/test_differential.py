"""Randomized differential test: ReteMatcher agrees with the reference matchers.

The references are the plain function in ``helpers`` and, when present, the engine's own
``PythonMatcher``. Loads, reloads and unloads are interleaved with batches, with small shards, so
sealing, retiring and compaction all happen along the way.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from automations.domain import events, triggers
from automations.engine.rete.runtime import ReteMatcher

from .helpers import event, reference_touches, trig

try:
    from automations.engine.python_matcher import PythonMatcher
except ImportError:  # pragma: no cover - the colleague's module is optional here
    PythonMatcher = None  # type: ignore[assignment,misc]

LABELS = ["prefect.resource.id", "env", "k", "prefect.resource.role"]
VALUES = ["a", "ab", "abc", "b", "a.b", "a.bc", "", "é", "a%", 'a"', "x.y.z", "ba"]
PATTERNS = [
    "a",
    "ab",
    "a*",
    "*",
    "*b",
    "a?",
    "a?c",
    "[ab]",
    "[!a]*",
    "!a",
    "!a*",
    "a.*",
    "*.*",
    "x.*.z",
    "é",
    "a%",
    'a"',
    "b*",
    "",
    "?",
    "a[b-c]*",
]
NAMES = ["a", "a.b", "a.bc", "b.a", "ab", "x.y.z", "a.b.c", "é.x"]
NAME_PATTERNS = [
    "a",
    "a.b",
    "a.*",
    "*",
    "*.b",
    "a.b*",
    "a?b",
    "a.*c",
    "!a",
    "x.*.z",
    "b.*",
    "é.*",
    "a.b.c",
    "[ab].b",
]


def _spec(rng: random.Random, n: int) -> dict[str, list[str]]:
    return {
        label: rng.sample(PATTERNS, rng.randint(0 if rng.random() < 0.05 else 1, 3))
        for label in rng.sample(LABELS, n)
    }


def _trigger(rng: random.Random, tid: str) -> triggers.EventTrigger:
    expect = rng.sample(NAME_PATTERNS, rng.choice([0, 1, 1, 1, 2]))
    after = rng.sample(NAME_PATTERNS, rng.choice([0, 0, 0, 1]))
    related: list[dict[str, list[str]]] = []
    if rng.random() < 0.2:
        related = [_spec(rng, rng.randint(0, 2)) for _ in range(rng.randint(1, 2))]
    return trig(
        tid,
        expect=expect,
        after=after,
        match=_spec(rng, rng.choice([0, 1, 1, 2, 3])),
        related=related,
    )


def _labels(rng: random.Random) -> dict[str, str]:
    return {label: rng.choice(VALUES) for label in LABELS if rng.random() < 0.7}


def _event(rng: random.Random, i: int) -> events.Event:
    related = [_labels(rng) for _ in range(rng.choice([0, 0, 1, 2, 3]))]
    return event(rng.choice(NAMES), _labels(rng), related, eid=str(i))


def _key(t: Any) -> tuple[str, str, bool, bool]:
    return (t.automation_id, t.trigger.id, t.after, t.expect)


@pytest.mark.parametrize("seed", range(12))
def test_rete_agrees_with_reference_matchers(seed: int) -> None:
    rete = agree_with_reference_matchers(seed)
    assert rete.stats.posts > 0


def agree_with_reference_matchers(
    seed: int,
    *,
    isolate: bool = False,
    between_batches: Callable[[ReteMatcher, int], None] | None = None,
) -> ReteMatcher:
    """Runs the randomized workload of ``seed``, checking every batch; returns the matcher.

    Args:
        seed: The workload.
        isolate: Run the matcher with durable_rules in a worker process, replaced whenever the
            rulesets it abandoned hold as much as the live ones (no minimum).
        between_batches: Called with the matcher and the step number before each batch.
    """
    rng = random.Random(seed)
    rete = ReteMatcher(
        max_rules=rng.choice([4, 16, 256]),
        seal_min_rules=rng.choice([1, 8]),
        seal_after_batches=rng.choice([0, 1, 3]),
        retire_min_dead=2,
        max_small_shards=2,
        isolate=isolate,
        recycle_min_kb=0,
    )
    python: Any = PythonMatcher() if PythonMatcher is not None else None
    loaded: dict[str, list[triggers.EventTrigger]] = {}
    order: list[str] = []
    n = 0
    for step in range(40):
        for _ in range(rng.randint(0, 6)):
            op = rng.random()
            if op < 0.65 or not loaded:
                aid = f"auto{rng.randint(0, 30)}"
                trs = [_trigger(rng, f"{aid}.{step}.{k}") for k in range(rng.randint(1, 3))]
                if aid not in loaded:
                    order.append(aid)
                loaded[aid] = trs
                rete.load(aid, trs)
                if python is not None:
                    python.load(aid, trs)
            else:
                aid = rng.choice(sorted(loaded))
                del loaded[aid]
                order.remove(aid)
                rete.unload(aid)
                if python is not None:
                    python.unload(aid)
        batch = [_event(rng, n + i) for i in range(rng.randint(1, 60))]
        n += len(batch)
        if between_batches is not None:
            between_batches(rete, step)
        got = rete.match_batch(batch)
        snapshot = [(aid, loaded[aid]) for aid in order]
        for ev, touches in zip(batch, got, strict=True):
            assert touches == reference_touches(snapshot, ev), (seed, step, ev)
        if python is not None:
            # compared as multisets: PythonMatcher orders an automation's exact-name triggers before
            # its pattern triggers, where the Matcher protocol asks for trigger position
            expected = python.match_batch(batch)
            assert [sorted(map(_key, t)) for t in got] == [sorted(map(_key, t)) for t in expected]
        assert rete.held_facts() == 0
    return rete
