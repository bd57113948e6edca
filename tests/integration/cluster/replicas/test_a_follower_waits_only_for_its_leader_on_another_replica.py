"""``follows`` across replicas: a follower published before its leader, the two in partitions
owned by different replicas, is held until the leader's owner commits it, then processed right
after it (not when it is lost, 15 minutes later), and after it in the partition evaluating both.
A follower of a leader another replica committed earlier is processed as soon as it arrives."""

from __future__ import annotations

import datetime
import json
import time
import uuid
from typing import Any

import pytest

from automations.cluster import routing
from automations.engine import ordering
from tests.integration.cluster.replicas import harness, workload
from tests.waiting import wait_until

pytestmark = pytest.mark.postgres

ORDERED_ID = "ordered"
# KEYED: a bucket per pair, evaluated in the partition of its key, which gets the leader and the
# follower forwarded by their two raw partitions' owners; it fires only if it evaluates the
# leader (which opens the window) before the follower
ORDERED = {
    "name": "ordered",
    "trigger": {
        "type": "event",
        "posture": "Reactive",
        "after": ["test.leader"],
        "expect": ["test.follower"],
        "for_each": ["pair"],
        "threshold": 1,
        "within": 60,
    },
    "actions": [{"type": "do-nothing"}],
}


def pair_event(name: str, resource: int, pair: str, follows: str | None = None) -> dict[str, Any]:
    made: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "event": name,
        "occurred": datetime.datetime.now(datetime.UTC).isoformat(),
        "resource": {"prefect.resource.id": f"res.{resource}", "pair": pair},
    }
    if follows is not None:
        made["follows"] = follows
    return made


def fired_pairs(cluster: harness.Cluster) -> dict[str, str | None]:
    """``pair -> triggering event id`` of the automation's firings."""
    return {
        json.loads(labels)["pair"]: event_id
        for automation, event_id, labels in cluster.firings()
        if automation == ORDERED_ID
    }


def test_a_follower_published_first_is_processed_right_after_its_leader_on_another_replica(
    cluster: harness.Cluster,
) -> None:
    cluster.start_replica()
    cluster.start_replica()
    owners = cluster.stable_owners(2)
    cluster.create_automation(ORDERED, ORDERED_ID)
    one, other = sorted({o for o in owners.values() if o})
    leader_res, follower_res = (
        workload.resources_in({p for p, o in owners.items() if o == owner}, 1, partition_count=8)[0]
        for owner in (one, other)
    )
    assert (
        owners[routing.raw_partition(f"res.{leader_res}", 8)]
        != owners[routing.raw_partition(f"res.{follower_res}", 8)]
    )

    # without ``follows``, the order of arrival decides: the follower first does not count
    cluster.publish([pair_event("test.follower", follower_res, "control")])
    cluster.wait_quiescent()
    cluster.publish([pair_event("test.leader", leader_res, "control")])
    cluster.wait_quiescent()
    assert fired_pairs(cluster) == {}

    leader = pair_event("test.leader", leader_res, "real")
    follower = pair_event("test.follower", follower_res, "real", follows=leader["id"])
    cluster.publish([follower])
    wait_until(lambda: follower["id"] in cluster.logged(), timeout=10, what="the follower logged")
    time.sleep(1.0)
    assert fired_pairs(cluster) == {}  # held: its leader is nowhere yet

    cluster.publish([leader])
    published = time.monotonic()
    wait_until(lambda: "real" in fired_pairs(cluster), timeout=15, what="the follower's firing")
    waited = time.monotonic() - published
    assert waited < ordering.PRECEDING_EVENT_LOOKBACK / 60  # seconds, not the 15-minute bound
    cluster.wait_quiescent()
    assert fired_pairs(cluster) == {"real": follower["id"]}  # evaluated after its leader

    earlier = pair_event("test.leader", leader_res, "later")
    cluster.publish([earlier])
    cluster.wait_quiescent()
    late = pair_event("test.follower", follower_res, "later", follows=earlier["id"])
    cluster.publish([late])
    cluster.wait_quiescent(timeout=15)
    assert fired_pairs(cluster) == {"real": follower["id"], "later": late["id"]}
