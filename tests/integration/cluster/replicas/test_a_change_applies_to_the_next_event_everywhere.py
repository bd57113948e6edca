"""An automation created through one replica applies to the very next event, sent through another."""

from __future__ import annotations

import pytest

from tests.integration.cluster.replicas import harness, workload

pytestmark = pytest.mark.postgres

EVERY_EVENT = {
    "name": "every event",
    "trigger": {
        "type": "event",
        "posture": "Reactive",
        "expect": ["test.ping"],
        "for_each": ["prefect.resource.id"],
        "threshold": 1,
        "within": 0,
    },
    "actions": [{"type": "do-nothing"}],
}


def test_events_sent_right_after_a_create_through_another_replica_are_evaluated_with_it(
    cluster: harness.Cluster,
) -> None:
    creator, sender = cluster.start_replica(), cluster.start_replica()
    cluster.wait_owners(2)
    with cluster.client(creator) as api:
        api.create_automation(EVERY_EVENT, automation_id="every")
    events = workload.pings(range(40))  # over every partition, both replicas'
    with cluster.client(sender) as api:  # at once: before the sender's periodic sync
        assert all(r.ok for r in api.publish(events))
    cluster.wait_quiescent()
    fired = sorted(str(f[1]) for f in cluster.firings() if f[0] == "every")
    assert fired == sorted(e["id"] for e in events)
