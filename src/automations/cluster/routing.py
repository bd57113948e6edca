"""Which partition does what: events by resource, triggers by routing class (pure).

A cluster has a fixed number of partitions ``Q``. An event belongs to the *raw* partition of its
resource id (:func:`raw_partition`, FNV-1a 32 of the UTF-8 id, mod ``Q`` — the function NATS uses
for subject partitioning). Its owner deduplicates it, orders it (``follows``) and matches it; each
trigger it touches is then evaluated where that trigger's state lives, by the automation's
:class:`RoutingClass`:

* ``ALIGNED``: a top-level event trigger whose ``for_each`` includes ``prefect.resource.id``. Every
  bucket key fixes the resource, so its buckets live in the event's raw partition: no hop. (All of
  Prefect's UI trigger templates are of this class.)
* ``KEYED``: a top-level event trigger with another ``for_each``: its bucket for key ``k`` lives in
  partition ``hash(automation id, k)``, so one hot automation spreads over every partition.
* ``WHOLE``: everything else (no ``for_each``, compound, sequence, metric): the automation's whole
  state lives in its home partition ``hash(automation id)``, so composite state never spans
  partitions and one-bucket triggers (a proactive trigger watching back-to-back windows) exist
  once.

A touch evaluated elsewhere than the raw partition is *forwarded* there (``partitioned``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from automations.domain import automations, events, triggers
from automations.engine import buckets, matching

RESOURCE_ID = "prefect.resource.id"


def fnv1a32(text: str) -> int:
    """FNV-1a 32 over the UTF-8 bytes of ``text`` (NATS' ``partition()`` hash)."""
    h = 0x811C9DC5
    for b in text.encode("utf-8", "surrogatepass"):
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def raw_partition(resource_id: str, partitions: int) -> int:
    """The raw partition of an event whose resource id is ``resource_id``."""
    return fnv1a32(resource_id) % partitions


def event_partition(event: events.Event, partitions: int) -> int:
    """The raw partition of ``event`` (its ``prefect.resource.id``)."""
    return raw_partition(event.resource.get(RESOURCE_ID, ""), partitions)


def home_partition(automation_id: str, partitions: int) -> int:
    """Where a ``WHOLE`` automation's state lives."""
    return fnv1a32(automation_id) % partitions


def keyed_partition(automation_id: str, key: tuple[str, ...], partitions: int) -> int:
    """Where a ``KEYED`` automation's bucket for the for_each values ``key`` lives."""
    return fnv1a32("\x1f".join((automation_id, *key))) % partitions


class RoutingClass(enum.Enum):
    """Where an automation's trigger state lives (see the module docstring)."""

    ALIGNED = "aligned"
    KEYED = "keyed"
    WHOLE = "whole"


def routing_class(trigger: triggers.Trigger) -> RoutingClass:
    """The routing class of an automation whose top-level trigger is ``trigger``."""
    if isinstance(trigger, triggers.EventTrigger) and trigger.for_each:
        return RoutingClass.ALIGNED if RESOURCE_ID in trigger.for_each else RoutingClass.KEYED
    return RoutingClass.WHOLE


class Router:
    """The partition of each (event, touched trigger), for the automations it knows.

    Args:
        partitions: ``Q``, the cluster's partition count.
    """

    def __init__(self, partitions: int) -> None:
        if partitions < 1:
            raise ValueError("a cluster has at least one partition")
        self.partitions = partitions
        self._routes: dict[str, Callable[[events.Event], int]] = {}
        self._classes: dict[str, RoutingClass] = {}

    def add(self, automation: automations.Automation) -> None:
        """Learns (or relearns, after an update) where ``automation``'s state lives."""
        q = self.partitions
        cls = routing_class(automation.trigger)
        self._classes[automation.id] = cls
        if cls is RoutingClass.ALIGNED:
            self._routes[automation.id] = lambda event: event_partition(event, q)
        elif cls is RoutingClass.KEYED:
            assert isinstance(automation.trigger, triggers.EventTrigger)
            readers = [buckets.label_reader(label) for label in sorted(automation.trigger.for_each)]
            aid = automation.id
            self._routes[aid] = lambda event: keyed_partition(
                aid, tuple(read(event) for read in readers), q
            )
        else:
            home = home_partition(automation.id, q)
            self._routes[automation.id] = lambda event: home

    def remove(self, automation_id: str) -> None:
        """Forgets an unloaded automation."""
        self._routes.pop(automation_id, None)
        self._classes.pop(automation_id, None)

    def routing_class(self, automation_id: str) -> RoutingClass | None:
        """The class of a known automation (None for an unknown one)."""
        return self._classes.get(automation_id)

    def partition(self, touch: matching.Touch, event: events.Event) -> int | None:
        """Where ``touch`` of ``event`` is evaluated (None: an automation it does not know)."""
        route = self._routes.get(touch.automation_id)
        return route(event) if route is not None else None

    def loads_in(self, automation: automations.Automation, partition: int) -> bool:
        """Whether ``partition``'s engine holds ``automation`` (a WHOLE one only at home)."""
        cls = routing_class(automation.trigger)
        return (
            cls is not RoutingClass.WHOLE
            or home_partition(automation.id, self.partitions) == partition
        )
