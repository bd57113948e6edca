"""Random label globs through durable_rules agree with fnmatch (translation and relaxation)."""

from __future__ import annotations

import random

import pytest

from automations.engine.rete.runtime import ReteMatcher

from .helpers import event, reference_touches, trig

ALPHABET = "ab.%()[]{}|+?*!é-^$\\"
VALUE_ALPHABET = "ab.%()[]{}|+?*!é-^$"


def _glob(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 7)))


@pytest.mark.parametrize("seed", [0, 2, 26, 28])
def test_random_globs_agree_with_fnmatch(seed: int) -> None:
    rng = random.Random(1000 + seed)
    m = ReteMatcher(seal_after_batches=0)
    loaded = []
    for k in range(120):
        patterns = [_glob(rng) for _ in range(rng.randint(1, 3))]
        t = trig(f"t{k}", expect=["x"], match={"v": patterns})
        m.load(f"a{k}", [t])
        loaded.append((f"a{k}", [t]))
    m.flush()
    batch = [
        event("x", {"v": "".join(rng.choice(VALUE_ALPHABET) for _ in range(rng.randint(0, 8)))})
        for _ in range(300)
    ]
    for ev, touches in zip(batch, m.match_batch(batch), strict=True):
        assert touches == reference_touches(loaded, ev), ev.resource
    assert m.stats.posts > 0 and m.stats.fallbacks == 0
