"""A simulation can be bounded: the instants its clock visits and the firings it makes.

A run that would pass a bound is stopped there with an error naming the bound and the simulated
time reached; a run within its bounds gives the same firings as an unbounded one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from automations.domain import errors, firings
from automations.engine import simulation
from automations.engine.python_matcher import PythonMatcher
from tests.unit.engine.helpers import T0, automation, event

QUIET = {"type": "event", "posture": "Proactive", "expect": ["ping"], "within": 10}
"""Fires every 10 s without events: at 10, 20, ... (one instant and one firing each)."""

NEVER = {"type": "event", "posture": "Reactive", "expect": ["ping"], "threshold": 100}


def _run(
    trigger: dict[str, Any],
    until: float,
    limits: simulation.Limits | None,
    steps: Sequence[simulation.Step_] = (),
) -> list[firings.Firing]:
    return simulation.run(
        automation(trigger),
        list(steps),
        T0 + until,
        matcher_factory=PythonMatcher,
        start=T0,
        limits=limits,
    )


def _times(fired: list[firings.Firing]) -> list[float]:
    return [round(f.triggered - T0, 6) for f in fired]


def test_a_run_within_its_limits_fires_as_an_unbounded_one() -> None:
    unbounded = _run(QUIET, 100, None)
    assert _times(unbounded) == [10.0 * i for i in range(1, 11)]
    # 11 instants (0, 10, ..., 100) and 10 firings: exactly at both bounds
    bounded = _run(QUIET, 100, simulation.Limits(max_steps=11, max_firings=10))
    assert _times(bounded) == _times(unbounded)


def test_a_run_making_more_firings_than_allowed_stops_where_it_passed_the_bound() -> None:
    with pytest.raises(simulation.LimitExceeded) as info:
        _run(QUIET, 1_000_000, simulation.Limits(max_firings=9))
    assert (info.value.limit, info.value.bound, info.value.reached) == ("max_firings", 9, 100.0)
    assert isinstance(info.value, errors.InvalidArgument)
    assert (info.value.field, info.value.reason) == ("until", "SIMULATION_LIMIT_EXCEEDED")
    assert "9 firings" in info.value.message
    assert "100 s of simulated time" in info.value.message


def test_a_run_visiting_more_instants_than_allowed_stops_at_the_last_one_allowed() -> None:
    with pytest.raises(simulation.LimitExceeded) as info:
        _run(QUIET, 1_000_000, simulation.Limits(max_steps=10))
    assert (info.value.limit, info.value.bound, info.value.reached) == ("max_steps", 10, 90.0)
    assert "10 instants of its virtual clock" in info.value.message


def test_instants_without_firings_count_toward_the_step_bound() -> None:
    pings = [(T0 + at, event(f"p{at}", "ping", at)) for at in (0, 10, 20, 30, 40)]
    assert _run(NEVER, 40, simulation.Limits(max_steps=5, max_firings=0), pings) == []
    with pytest.raises(simulation.LimitExceeded) as info:
        _run(NEVER, 40, simulation.Limits(max_steps=3), pings)
    assert (info.value.limit, info.value.reached) == ("max_steps", 20.0)


def test_simulate_passes_its_limits_on() -> None:
    quiet = automation(QUIET)
    steps = [(T0, event("p0", "ping", 0))]
    with pytest.raises(simulation.LimitExceeded):
        simulation.simulate(quiet, steps, until=T0 + 1e7, limits=simulation.Limits(max_firings=5))
