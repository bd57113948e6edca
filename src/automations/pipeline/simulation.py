"""Simulation: the real trigger engine on a virtual clock with in-memory state.

Used by ``AutomationService.SimulateAutomation`` and ``automations simulate``. It runs the same
``TriggerEngine`` as the server, on the same rete matcher, with no database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from automations.domain import automations, events, firings
from automations.engine import simulate as engine_simulate
from automations.engine.rete import runtime

DEFAULT_EPOCH = engine_simulate.EPOCH
"""Scenario time 0: 2030-01-01T00:00:00Z."""


def simulate(
    automation: automations.Automation,
    steps: Sequence[tuple[float, events.Event]],
    *,
    until: float | None = None,
    start: float | None = None,
) -> list[firings.Firing]:
    """Runs ``automation`` over ``(delivery time, event)`` steps; returns its firings in order."""
    first = steps[0][0] if steps else 0.0
    begin = first if start is None else start
    end = until if until is not None else (steps[-1][0] if steps else begin)
    return engine_simulate.run(
        automation, steps, end, matcher_factory=runtime.ReteMatcher, start=begin
    )


def run_scenario(scenario: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Runs one conformance scenario; returns ``[{"at", "triggering_event", "labels"}]``.

    Raises:
        errors.InvalidArgument: The scenario's automation is invalid.
        KeyError, TypeError, ValueError: The scenario is malformed.
    """
    return engine_simulate.run_scenario(scenario, matcher_factory=runtime.ReteMatcher)
