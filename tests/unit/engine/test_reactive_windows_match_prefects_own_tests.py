"""Reactive windows: the verified results of Prefect's test_basics / test_regressions."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.engine.helpers import T0, automation, engine, event, fired, run


def reactive(threshold: int, within: float, **extra: Any) -> dict[str, Any]:
    return {
        "type": "event",
        "posture": "Reactive",
        "expect": ["x"],
        "threshold": threshold,
        "within": within,
        **extra,
    }


@pytest.mark.parametrize(
    ("threshold", "within", "times", "fires"),
    [
        (1, 10, [0, 5, 9.9, 10, 15, 25, 31], [0, 10, 25, 31]),  # tumbling, not sliding
        (2, 10, [0, 11, 12, 13, 21.9, 22, 40, 49, 49.5], [12, 22, 49.5]),
        (3, 10, [0, 1, 2, 3, 4, 24, 25, 26], [2, 26]),
        (3, 10, [0, 1, 21], []),
        (1, 10, [0, 999], [0, 999]),
        (1, 0, [0, 0.001, 0.002, 10], [0, 0.001, 0.002, 10]),
    ],
)
def test_tumbling_windows(
    threshold: int, within: float, times: list[float], fires: list[float]
) -> None:
    eng = engine()
    eng.load_automation(automation(reactive(threshold, within)), now=T0)
    timeline = [(t, [event(f"e{t}", "x", t)]) for t in times]
    assert [at for at, _, _ in run(eng, timeline, 2000)] == fires


def test_the_first_window_reaches_back_15_minutes_for_stragglers() -> None:
    eng = engine()
    eng.load_automation(automation(reactive(3, 60)), now=T0)
    batch = [
        event("a", "x", 1000, occurred=100),
        event("b", "x", 1000, occurred=50),
        event("c", "x", 1000, occurred=-700),
    ]
    assert fired(eng.process(batch, T0 + 1000)) == [(1000.0, "c", {})]


def test_ten_reordered_events_with_threshold_10_fire_once() -> None:
    eng = engine()
    eng.load_automation(automation(reactive(10, 60)), now=T0)
    batch = [event(f"e{i}", "x", 1, occurred=1 + i * 1e-6) for i in reversed(range(10))]
    assert fired(eng.process(batch, T0 + 1)) == [(1.0, "e0", {})]


def test_for_each_on_related_role_labels() -> None:
    trigger = reactive(
        3,
        600,
        for_each=["related:meal:genus", "related:meal:species"],
        expect=["nibbled", "gobbled"],
    )
    eng = engine()
    eng.load_automation(automation(trigger), now=T0)

    def meal(genus: str, species: str) -> tuple[dict[str, str], ...]:
        return (
            {
                "prefect.resource.id": f"meal.{genus}",
                "prefect.resource.role": "meal",
                "genus": genus,
                "species": species,
            },
        )

    fulva = meal("Hemerocallis", "fulva")
    dicentra = meal("Dicentra", "cucullaria")
    timeline = [
        (1, [event("n1", "nibbled", 1, related=fulva)]),
        (2, [event("n2", "nibbled", 2, related=fulva)]),
        (3, [event("g1", "gobbled", 3, related=dicentra)]),
        (4, [event("n3", "nibbled", 4, related=fulva)]),
        (5, [event("g2", "gobbled", 5, related=dicentra)]),
        (6, [event("g3", "gobbled", 6, related=dicentra)]),
    ]
    labels = ("related:meal:genus", "related:meal:species")
    assert run(eng, timeline, 100) == [
        (4.0, "n3", dict(zip(labels, ("Hemerocallis", "fulva"), strict=True))),
        (6.0, "g3", dict(zip(labels, ("Dicentra", "cucullaria"), strict=True))),
    ]
