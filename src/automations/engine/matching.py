"""The matcher seam: which event triggers does each event touch, and as what.

The rest of the engine sees only this interface; ``engine.rete`` implements it on a durable_rules
rete network and ``engine.python_matcher`` in plain Python (the reference the rete is checked
against).

One rule applies whatever the matcher: an automation never sees its own lifecycle events
(:func:`without_own_lifecycle`). An automation watching ``prefect.automation.*`` sees every
other automation's, as in Prefect; its own would only feed it back to itself (one event matched
by an automation that expects every name became thousands of firings).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

from automations.domain import events, triggers

LIFECYCLE_PREFIX = "prefect.automation."
"""The prefix of an automation's lifecycle events and of its resource id."""


@dataclasses.dataclass(frozen=True, slots=True)
class Touch:
    """An event covered by an event trigger (Prefect's ``trigger.covers(event)``).

    Attributes:
        automation_id: The automation owning the trigger.
        trigger: The event trigger.
        after: The event name matches one of the trigger's ``after`` patterns.
        expect: The event name matches one of its ``expect`` patterns (always true when ``expect``
            is empty).
    """

    automation_id: str
    trigger: triggers.EventTrigger
    after: bool
    expect: bool


class Matcher(Protocol):
    """Finds the event triggers an event touches: name pattern first, then resource specs."""

    def load(self, automation_id: str, event_triggers: Sequence[triggers.EventTrigger]) -> None:
        """Adds (or replaces) the event triggers of one automation."""

    def unload(self, automation_id: str) -> None:
        """Removes every trigger of one automation."""

    def match_batch(self, batch: Sequence[events.Event]) -> list[list[Touch]]:
        """Returns, for each event of ``batch`` in order, the triggers it touches.

        A trigger is touched when the event name matches one of its ``after`` or ``expect``
        patterns (an empty ``expect`` matches every name) and its ``match`` and ``match_related``
        specs hold for the event. Within one event, touches are ordered by automation load order,
        then by the trigger's position in its automation.
        """
        ...

    def close(self) -> None:
        """Gives back what the matcher holds outside this process's objects (a worker process)."""


def without_own_lifecycle(
    batch: Sequence[events.Event], matches: list[list[Touch]]
) -> list[list[Touch]]:
    """``matches`` without the touches of an automation by its own lifecycle events.

    A lifecycle event is ``prefect.automation.<kind>`` about ``prefect.automation.<id>``; the
    triggers of automation ``<id>`` do not see it. ``matches`` is changed in place.
    """
    prefix = LIFECYCLE_PREFIX
    for index, touches in enumerate(matches):
        if not touches:
            continue
        event = batch[index]
        if event.event.startswith(prefix):
            resource_id = event.resource_id
            if resource_id.startswith(prefix):
                owner = resource_id[len(prefix) :]
                matches[index] = [touch for touch in touches if touch.automation_id != owner]
    return matches
