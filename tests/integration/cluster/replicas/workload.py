"""The automations and events the replica tests run, and how their firings are compared.

``ALIGNED`` (for each resource: evaluated in the event's raw partition) and ``KEYED`` (for each
``group`` label, which spans resources and so raw partitions: forwarded to the partition of its
key) count ``test.ping`` events; ``WHOLE`` (no ``for_each``: one bucket, at the automation's home partition) counts every
``test.ping`` (fires once a window, at the fifth); ``ABSENCE`` is a proactive window per resource (a
``test.start`` not followed by a ``test.done`` within a few seconds fires once).

A KEYED bucket takes events from several raw partitions; between partitions there is no order
(each partition relays in its own commit order, as Prefect's replicas consume in no common
order), so which event of a group completes a threshold may differ from the single-node run:
KEYED and WHOLE firings are compared by automation and bucket (their labels), the others with
their triggering event too.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from typing import Any

from automations.cluster import routing
from tests.integration.cluster.replicas import harness

ALIGNED_ID = "aligned"
KEYED_ID = "keyed"
WHOLE_ID = "whole"
ABSENCE_ID = "absence"
ABSENCE_SECONDS = 10

ALIGNED = {
    "name": "aligned",
    "trigger": {
        "type": "event",
        "posture": "Reactive",
        "expect": ["test.ping"],
        "match": {"prefect.resource.id": "res.*"},
        "for_each": ["prefect.resource.id"],
        "threshold": 2,
        "within": 3600,
    },
    "actions": [{"type": "do-nothing"}],
}
KEYED = {
    "name": "keyed",
    "trigger": {
        "type": "event",
        "posture": "Reactive",
        "expect": ["test.ping"],
        "match": {"prefect.resource.id": "res.*"},
        "for_each": ["group"],
        "threshold": 3,
        "within": 3600,
    },
    "actions": [{"type": "do-nothing"}],
}
WHOLE = {
    "name": "whole",
    "trigger": {
        "type": "event",
        "posture": "Reactive",
        "expect": ["test.ping"],
        "match": {"prefect.resource.id": "res.*"},
        "threshold": 5,
        "within": 3600,
    },
    "actions": [{"type": "do-nothing"}],
}
ABSENCE = {
    "name": "absence",
    "trigger": {
        "type": "event",
        "posture": "Proactive",
        "after": ["test.start"],
        "expect": ["test.done"],
        "match": {"prefect.resource.id": "res.*"},
        "for_each": ["prefect.resource.id"],
        "threshold": 1,
        "within": ABSENCE_SECONDS,
    },
    "actions": [{"type": "do-nothing"}],
}
EVERY = {ALIGNED_ID: ALIGNED, KEYED_ID: KEYED, WHOLE_ID: WHOLE, ABSENCE_ID: ABSENCE}


def calling(spec: dict[str, Any], url: str) -> dict[str, Any]:
    """``spec`` with a call-webhook action to ``url`` (carrying the event's id) as its action."""
    action = {"type": "call-webhook", "url": url, "payload": '{"event": "{{ event.id }}"}'}
    return {**spec, "actions": [action]}


def event(name: str, resource: int, *, groups: int = 3) -> dict[str, Any]:
    """A test event of resource ``res.<resource>`` in group ``g<resource mod groups>``."""
    return {
        "id": str(uuid.uuid4()),
        "event": name,
        "occurred": datetime.datetime.now(datetime.UTC).isoformat(),
        "resource": {"prefect.resource.id": f"res.{resource}", "group": f"g{resource % groups}"},
    }


def pings(resources: Sequence[int]) -> list[dict[str, Any]]:
    """One ``test.ping`` per resource, in order."""
    return [event("test.ping", r) for r in resources]


def resources_in(partitions: set[int], count: int, *, partition_count: int) -> list[int]:
    """The first ``count`` resource numbers whose raw partition is in ``partitions``."""
    found: list[int] = []
    for number in range(100_000):
        if routing.raw_partition(f"res.{number}", partition_count) in partitions:
            found.append(number)
            if len(found) == count:
                return found
    raise AssertionError(f"no {count} resources in partitions {partitions}")


def comparable(firings: list[harness.Firing]) -> list[harness.Firing]:
    """Firings as compared across runs: KEYED and WHOLE ones without their triggering event."""
    return sorted(
        (automation, None if automation in (KEYED_ID, WHOLE_ID) else event_id, labels)
        for automation, event_id, labels in firings
    )
