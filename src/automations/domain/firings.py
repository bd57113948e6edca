"""Firings: the record that a trigger fired (Triggered), or that it recovered (Resolved)."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping

from automations.domain import events


class FiringState(enum.StrEnum):
    """The state change a firing records (Prefect's ``TriggerState``; the strings are Prefect's)."""

    TRIGGERED = "Triggered"
    """The trigger's condition was met: every firing of an event or composite trigger."""
    RESOLVED = "Resolved"
    """It stopped being met: a metric back within its threshold for ``firing_for``, or the
    expected events of a proactive trigger's key resuming."""


@dataclasses.dataclass(frozen=True, slots=True)
class Firing:
    """One firing of a trigger (a child trigger's firing is nested in its parent's).

    Attributes:
        id: Unique id of the firing (deterministic in simulations).
        automation_id: The automation whose trigger fired.
        trigger_id: The trigger that fired (the top-level one for an automation's firing).
        trigger_type: ``event``, ``compound``, ``sequence`` or ``metric``.
        posture: ``Reactive``/``Proactive`` for event triggers, ``Metric`` for metric triggers,
            None for composite ones.
        triggered: When it fired (engine time, seconds since the epoch).
        triggering_event: The event that caused it, or None (a proactive window with no event).
        triggering_labels: ``for_each`` label -> value of the bucket that fired.
        child_firings: For composite triggers, the child firings that completed it.
        state: Triggered or Resolved.
        triggering_value: A metric trigger's value when its state changed; None otherwise.
    """

    id: str
    automation_id: str
    trigger_id: str
    trigger_type: str
    posture: str | None
    triggered: float
    triggering_event: events.Event | None
    triggering_labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    child_firings: tuple[Firing, ...] = ()
    state: FiringState = FiringState.TRIGGERED
    triggering_value: float | None = None

    @property
    def triggering_event_id(self) -> str | None:
        """The triggering event's id, if any."""
        return None if self.triggering_event is None else self.triggering_event.id
