"""Firings: the record that a trigger fired."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from automations.domain import events


@dataclasses.dataclass(frozen=True, slots=True)
class Firing:
    """One firing of a trigger (a child trigger's firing is nested in its parent's).

    Attributes:
        id: Unique id of the firing (deterministic in simulations).
        automation_id: The automation whose trigger fired.
        trigger_id: The trigger that fired (the top-level one for an automation's firing).
        trigger_type: ``event``, ``compound`` or ``sequence``.
        posture: ``Reactive``/``Proactive`` for event triggers, None for composite ones.
        triggered: When it fired (engine time, seconds since the epoch).
        triggering_event: The event that caused it, or None (a proactive window with no event).
        triggering_labels: ``for_each`` label -> value of the bucket that fired.
        child_firings: For composite triggers, the child firings that completed it.
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

    @property
    def triggering_event_id(self) -> str | None:
        """The triggering event's id, if any."""
        return None if self.triggering_event is None else self.triggering_event.id
