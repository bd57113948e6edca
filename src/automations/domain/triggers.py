"""Triggers: Prefect's event, compound, sequence and metric triggers as frozen dataclasses.

A trigger's ``id`` is derived from its definition and its position in the automation (see
``prefect_json.assign_trigger_ids``): an update that leaves a trigger's definition unchanged keeps its
id, and with it the trigger's state (buckets, child firings, deadlines); a changed trigger gets a new
id and starts from nothing.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping

from automations.domain import metric_queries

ResourceSpec = Mapping[str, tuple[str, ...]]
"""Label name -> patterns; labels are ANDed, the patterns of one label ORed."""

DEFAULT_PROACTIVE_WITHIN = 10.0
"""A proactive ``within`` of 0 means this many seconds (Prefect's validator)."""
MIN_PROACTIVE_WITHIN = 10.0
"""Prefect rejects a proactive ``within`` below this many seconds."""


class Posture(enum.Enum):
    """Whether a trigger reacts to events or to their absence."""

    REACTIVE = "Reactive"
    PROACTIVE = "Proactive"


@dataclasses.dataclass(frozen=True, slots=True)
class EventTrigger:
    """Fires on (reactive) or on the absence of (proactive) ``threshold`` events within ``within``.

    Attributes:
        id: Stable id derived from the definition and position.
        match: Spec over the primary resource's labels.
        match_related: Specs over related resources; every spec must be met by some related resource.
        after: Event-name patterns that arm a window.
        expect: Event-name patterns that are counted; empty means any covered event.
        for_each: Labels whose values partition the state into buckets.
        posture: Reactive or proactive.
        threshold: How many expected events make the condition.
        within: Window length in seconds (0: immediate, reactive only).
    """

    id: str
    match: ResourceSpec
    match_related: tuple[ResourceSpec, ...]
    after: tuple[str, ...]
    expect: tuple[str, ...]
    for_each: tuple[str, ...]
    posture: Posture
    threshold: int
    within: float

    @property
    def type(self) -> str:
        """The Prefect ``type`` discriminator."""
        return "event"


@dataclasses.dataclass(frozen=True, slots=True)
class CompoundTrigger:
    """Fires when ``require`` of its child triggers have fired within ``within`` seconds.

    Attributes:
        id: Stable id derived from the definition and position.
        triggers: Child triggers (event, compound or sequence).
        require: ``"any"``, ``"all"`` or a number from 1 to ``len(triggers)``.
        within: Seconds, or None for no limit.
    """

    id: str
    triggers: tuple[Trigger, ...]
    require: int | str
    within: float | None

    @property
    def type(self) -> str:
        """The Prefect ``type`` discriminator."""
        return "compound"

    @property
    def required_count(self) -> int:
        """How many distinct children must have fired."""
        if self.require == "any":
            return 1
        if self.require == "all":
            return len(self.triggers)
        return int(self.require)


@dataclasses.dataclass(frozen=True, slots=True)
class SequenceTrigger:
    """Fires when its child triggers have fired in their declared order within ``within`` seconds.

    Attributes:
        id: Stable id derived from the definition and position.
        triggers: Child triggers, in the order they must fire.
        within: Seconds, or None for no limit.
    """

    id: str
    triggers: tuple[Trigger, ...]
    within: float | None

    @property
    def type(self) -> str:
        """The Prefect ``type`` discriminator."""
        return "sequence"

    @property
    def required_count(self) -> int:
        """A sequence needs every child."""
        return len(self.triggers)


@dataclasses.dataclass(frozen=True, slots=True)
class MetricTrigger:
    """Fires when a metric over the matching events breaches a threshold for ``firing_for``.

    Prefect's ``MetricTrigger`` (posture ``Metric``). Each group of the metric (one, without
    ``metric.for_each``) starts Resolved, becomes Triggered once the breach has held for
    ``firing_for`` and Resolved again once the recovery has; each change is a firing.

    Attributes:
        id: Stable id derived from the definition and position.
        match: Spec over the primary resource's labels of the events feeding the metric.
        match_related: Specs over their related resources (each met by some related resource).
        metric: What is measured and when it breaches.
    """

    id: str
    match: ResourceSpec
    match_related: tuple[ResourceSpec, ...]
    metric: metric_queries.MetricQuery

    @property
    def type(self) -> str:
        """The Prefect ``type`` discriminator."""
        return "metric"


Trigger = EventTrigger | CompoundTrigger | SequenceTrigger | MetricTrigger
"""Any trigger."""

CompositeTrigger = CompoundTrigger | SequenceTrigger
"""A trigger made of child triggers."""


def iter_triggers(trigger: Trigger) -> list[Trigger]:
    """Returns ``trigger`` and all its descendants, parents before children."""
    out: list[Trigger] = [trigger]
    if isinstance(trigger, CompoundTrigger | SequenceTrigger):
        for child in trigger.triggers:
            out.extend(iter_triggers(child))
    return out


def event_triggers(trigger: Trigger) -> list[EventTrigger]:
    """Returns the event triggers (the leaves) of ``trigger``."""
    return [t for t in iter_triggers(trigger) if isinstance(t, EventTrigger)]
