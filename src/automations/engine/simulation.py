"""Simulation: the real :class:`TriggerEngine` on a virtual clock, with in-memory state.

Used by ``AutomationService.SimulateAutomation`` (:func:`simulate`), ``automations simulate`` and
the conformance tests (:func:`run_scenario`). It runs the same engine as the server, on the same
rete matcher unless a test asks for another, with no database.

The timing rules are those of docs/scenarios.md: the automation is loaded at time 0; the clock
visits every step's ``at`` and every instant at which the engine has work (``next_due``), up to and
including ``until``; at one instant, deadlines and lost followers come first (``advance``), then
that instant's steps (one ``process`` batch), then anything the steps made overdue. A firing's
``at`` is the wall time of the call that produced it.

Every step's state records are kept as the store would keep them, so that a scenario step
``{"at": T, "restart": true}`` can replace the engine at ``T`` by a new one loaded from them: what
a kill -9 and a restart do to a real engine.

A scenario's firings are its Triggered firings of the top-level trigger (``firings``); Resolved
ones (a metric back within its threshold, a proactive trigger's events resuming) are reported
beside them (``resolutions``).

Scenario times are seconds from a scenario epoch, 2030-01-01T00:00:00Z.

A run can be bounded (:class:`Limits`): the instants its clock visits and the firings it makes.
The CLI and the conformance tests run unbounded; the server bounds what a client may ask for.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from automations.domain import automations, errors, events, firings, prefect_json
from automations.engine import matching
from automations.engine.clock import quantize
from automations.engine.state import StateRecord, Step
from automations.engine.trigger_engine import TriggerEngine

EPOCH = 1893456000.0
"""2030-01-01T00:00:00Z, the scenario epoch (as the conformance oracle uses)."""
SCENARIO_AUTOMATION_ID = "scenario-automation"


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    """Bounds of one run; None: unbounded.

    Attributes:
        max_steps: The most instants the virtual clock may visit (iterations of :func:`run`).
        max_firings: The most firings (Triggered and Resolved) the run may make.
    """

    max_steps: int | None = None
    max_firings: int | None = None


class LimitExceeded(errors.InvalidArgument):
    """A run reached one of its :class:`Limits` before ``until``; it was stopped there.

    Attributes:
        limit: ``"max_steps"`` or ``"max_firings"``: the bound reached.
        bound: Its value.
        reached: Seconds of simulated time from the start to the last instant visited.
    """

    units = {"max_steps": "instants of its virtual clock", "max_firings": "firings"}
    """What each limit counts, for messages."""

    def __init__(self, limit: str, bound: int, reached: float) -> None:
        super().__init__(
            "until",
            f"the simulation was stopped at its limit of {bound} {self.units[limit]}, "
            f"{reached:g} s of simulated time after its start (before until)",
            reason="SIMULATION_LIMIT_EXCEEDED",
        )
        self.limit = limit
        self.bound = bound
        self.reached = reached


def scenario_event(step: Mapping[str, Any], epoch: float = EPOCH) -> events.Event:
    """Builds the domain event of one scenario step (received when it occurred)."""
    data = step["event"]
    occurred = quantize(epoch + float(data.get("occurred", step["at"])))
    return events.Event(
        id=data["id"],
        event=data["event"],
        occurred=occurred,
        resource=dict(data["resource"]),
        related=tuple(dict(r) for r in data.get("related", ())),
        payload=dict(data.get("payload", {})),
        follows=data.get("follows"),
        received=occurred,
    )


Step_ = tuple[float, events.Event | None]
"""A simulation step: its delivery time and its event, or None for a restart of the engine."""


def firing_row(firing: firings.Firing, epoch: float) -> dict[str, Any]:
    """A firing as a scenario lists it (``triggering_value`` only for metric triggers)."""
    row: dict[str, Any] = {
        "at": round(firing.triggered - epoch, 6),
        "triggering_event": firing.triggering_event_id,
        "labels": dict(firing.triggering_labels),
    }
    if firing.trigger_type == "metric":
        row["triggering_value"] = firing.triggering_value
    return row


def split(fired: Sequence[firings.Firing]) -> tuple[list[firings.Firing], list[firings.Firing]]:
    """Top-level firings as (Triggered ones, Resolved ones), each in order."""
    triggered = [f for f in fired if f.state is firings.FiringState.TRIGGERED]
    resolved = [f for f in fired if f.state is firings.FiringState.RESOLVED]
    return triggered, resolved


def rete_matcher() -> matching.Matcher:
    """The server's matcher (imported on first use: it loads durable_rules' C core)."""
    from automations.engine.rete import runtime

    return runtime.ReteMatcher()


def simulate(
    automation: automations.Automation,
    steps: Sequence[Step_],
    *,
    until: float | None = None,
    start: float | None = None,
    limits: Limits | None = None,
) -> list[firings.Firing]:
    """Runs ``automation`` over ``(delivery time, event)`` steps; returns its firings in order.

    Triggered and Resolved firings of the top-level trigger, in the order they happened.

    The clock starts at ``start`` (default: the first step) and runs to ``until`` (default: the
    last step), inclusive.

    Raises:
        LimitExceeded: The run reached one of ``limits`` before ``until``.
    """
    first = steps[0][0] if steps else 0.0
    begin = first if start is None else start
    end = until if until is not None else (steps[-1][0] if steps else begin)
    return run(automation, steps, end, start=begin, limits=limits)


def run_scenario(
    scenario: Mapping[str, Any],
    *,
    matcher_factory: Callable[[], matching.Matcher] = rete_matcher,
    epoch: float = EPOCH,
) -> list[dict[str, Any]]:
    """Replays one scenario and returns its top-level Triggered firings.

    Args:
        scenario: A parsed conformance scenario (format in docs/scenarios.md).
        matcher_factory: Makes the matcher the engine uses.
        epoch: Wall time of the scenario's time 0.

    Returns:
        ``[{"at": seconds from time 0, "triggering_event": id or None, "labels": {...}}]`` in order
        (plus ``triggering_value`` for a metric trigger).

    Raises:
        errors.InvalidArgument: The scenario's automation is invalid.
    """
    return scenario_outcome(scenario, matcher_factory=matcher_factory, epoch=epoch)["firings"]


def scenario_outcome(
    scenario: Mapping[str, Any],
    *,
    matcher_factory: Callable[[], matching.Matcher] = rete_matcher,
    epoch: float = EPOCH,
) -> dict[str, list[dict[str, Any]]]:
    """Replays one scenario: ``{"firings": [...], "resolutions": [...]}``.

    Rows as in :func:`run_scenario`; ``resolutions`` are the Resolved firings, in order.

    Raises:
        errors.InvalidArgument: The scenario's automation is invalid.
    """
    automation = prefect_json.parse_automation(
        scenario["automation"], automation_id=SCENARIO_AUTOMATION_ID
    )
    steps: list[Step_] = [
        (
            quantize(epoch + float(step["at"])),
            None if step.get("restart") is True else scenario_event(step, epoch),
        )
        for step in scenario["steps"]
    ]
    until = quantize(epoch + float(scenario["until"]))
    fired = run(automation, steps, until, matcher_factory=matcher_factory, start=epoch)
    triggered, resolved = split(fired)
    return {
        "firings": [firing_row(f, epoch) for f in triggered],
        "resolutions": [firing_row(f, epoch) for f in resolved],
    }


class _Store:
    """The state records of every step so far, as the store keeps them."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str, str, str], StateRecord] = {}

    def apply(self, step: Step) -> list[firings.Firing]:
        for record in step.deletes:
            self.rows.pop(record.identity, None)
        for record in step.upserts:
            self.rows[record.identity] = record
        return step.firings


def instants(
    steps: Sequence[Step_],
    until: float,
    *,
    start: float,
    next_due: Callable[[], float | None],
    max_steps: int | None = None,
) -> Iterator[tuple[float, list[events.Event | None]]]:
    """The instants the virtual clock visits, each with the steps delivered at it, in order.

    Every step's time and every time the engine has work (``next_due``, asked again after the
    caller has handled the previous instant), from ``start`` up to and including ``until``.

    Raises:
        LimitExceeded: One instant more than ``max_steps`` would be visited.
        RuntimeError: The engine keeps reporting work due at one instant.
    """
    index = 0
    current = start
    first = True
    repeats = 0
    visited = 0
    while True:
        candidates: list[float] = []
        if index < len(steps):
            candidates.append(steps[index][0])
        due = next_due()
        if due is not None:
            candidates.append(max(due, current))
        if first:
            candidates.append(start)
        if not candidates:
            return
        instant = min(candidates)
        if instant > until:
            return
        repeats = repeats + 1 if instant == current and not first else 0
        if repeats > 1000:
            raise RuntimeError(f"the engine keeps reporting work due at {instant - start}")
        visited += 1
        if max_steps is not None and visited > max_steps:
            raise LimitExceeded("max_steps", max_steps, current - start)
        first = False
        current = instant
        delivered: list[events.Event | None] = []
        while index < len(steps) and steps[index][0] == instant:
            delivered.append(steps[index][1])
            index += 1
        yield instant, delivered


def run(
    automation: automations.Automation,
    steps: Sequence[Step_],
    until: float,
    *,
    matcher_factory: Callable[[], matching.Matcher] = rete_matcher,
    start: float = EPOCH,
    limits: Limits | None = None,
) -> list[firings.Firing]:
    """Runs ``automation`` over timed events on a virtual clock; returns its firings in order.

    Args:
        automation: The automation (loaded at ``start``).
        steps: ``(delivery time, event)`` pairs in non-decreasing time order; an event of None
            restarts the engine from the records of the steps before it.
        until: The clock runs to this time, inclusive.
        matcher_factory: Makes the matcher the engine uses.
        start: Wall time at which the automation is loaded.
        limits: Bounds of the run (None: unbounded).

    Raises:
        LimitExceeded: The clock would visit one instant more than ``limits.max_steps``, or the
            run made more than ``limits.max_firings`` firings, before ``until``.
    """
    max_steps = limits.max_steps if limits is not None else None
    max_firings = limits.max_firings if limits is not None else None
    counter = itertools.count(1)
    engine = TriggerEngine(matcher_factory(), new_id=lambda: f"firing-{next(counter)}")
    engine.load_automation(automation, now=start)
    store = _Store()

    def restart(now: float) -> TriggerEngine:
        fresh = TriggerEngine(matcher_factory(), new_id=lambda: f"firing-{next(counter)}")
        rows = list(store.rows.values())
        fresh.restore_global(r for r in rows if r.automation_id == "")
        fresh.load_automation(automation, [r for r in rows if r.automation_id != ""], now=now)
        return fresh

    out: list[firings.Firing] = []
    for instant, items in instants(
        steps,
        until,
        start=start,
        next_due=lambda: engine.next_due(),  # noqa: B023 - the engine of the moment
        max_steps=max_steps,
    ):
        out.extend(store.apply(engine.advance(instant)))
        batch: list[events.Event] = []
        for event in items:
            if event is not None:
                batch.append(event)
                continue
            if batch:
                out.extend(store.apply(engine.process(batch, instant)))
                batch = []
            engine = restart(instant)
            out.extend(store.apply(engine.advance(instant)))
        if batch:
            out.extend(store.apply(engine.process(batch, instant)))
        due = engine.next_due()
        if due is not None and due <= instant:
            out.extend(store.apply(engine.advance(instant)))
        if max_firings is not None and len(out) > max_firings:
            raise LimitExceeded("max_firings", max_firings, instant - start)
    return out
