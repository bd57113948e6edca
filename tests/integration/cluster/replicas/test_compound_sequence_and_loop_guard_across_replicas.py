"""Compound and sequence triggers and the loop guard keep their single-node semantics on replicas.

Two replicas own the partitions; a single-node engine (the oracle) gets the same automations and
events. A compound trigger (require all) and a sequence trigger hold their state at their home
partition (``routing``: WHOLE), and their child events come from resources in partitions owned by
*both* replicas, so each reaches the home partition through the forward stream, from one replica
or the other. Events are published one at a time, the cluster quiescent after each: between
partitions there is no order (``workload``), and a sequence's verdict depends on the order.

The loop guard: two automations each fire on the other's ``prefect.automation.triggered`` (an
automation never sees its own lifecycle events, so a loop takes two), with their home partitions
on different replicas, so every round of the loop crosses replicas through the log. The chain is
cut at the same depth, with as many firings and cut invocations, as on a single node.
"""

from __future__ import annotations

import collections
import datetime
import uuid
from pathlib import Path
from typing import Any

import pytest

from automations.cluster import routing
from tests.integration.cluster.replicas import harness, workload
from tests.waiting import wait_until

pytestmark = pytest.mark.postgres


def child(name: str) -> dict[str, Any]:
    return {"type": "event", "posture": "Reactive", "expect": [name], "threshold": 1, "within": 0}


COMPOUND = {
    "name": "compound",
    "trigger": {
        "type": "compound",
        "require": "all",
        "within": 60,
        "triggers": [child("test.a"), child("test.b")],
    },
    "actions": [{"type": "do-nothing"}],
}
SEQUENCE = {
    "name": "sequence",
    "trigger": {
        "type": "sequence",
        "within": 60,
        "triggers": [child("test.a"), child("test.b"), child("test.c")],
    },
    "actions": [{"type": "do-nothing"}],
}
# the conformance scenario sequence-out-of-order-then-repeat: A C B C fires at the second C (the
# latest firing of each child, in declared order), B A C B A B C fires at the last C only
ORDER = "acbc" + "bacbabc"
DEPTH = 3
STARTER = {
    "name": "starter",
    "trigger": child("job.done"),
    "actions": [{"type": "do-nothing"}],
}
ON_TRIGGERED = {
    "trigger": child("prefect.automation.triggered"),
    "actions": [{"type": "do-nothing"}],
}


def named(name: str, resource: int) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "event": name,
        "occurred": datetime.datetime.now(datetime.UTC).isoformat(),
        "resource": {"prefect.resource.id": f"res.{resource}"},
    }


def by_replica(owners: dict[int, str | None]) -> list[set[int]]:
    """The partitions of each of the two owners."""
    ids = sorted({o for o in owners.values() if o is not None})
    return [{p for p, o in owners.items() if o == owner} for owner in ids]


def test_compound_and_sequence_children_on_two_replicas_fire_as_on_a_single_node(
    cluster: harness.Cluster, tmp_path: Path
) -> None:
    cluster.start_replica()
    cluster.start_replica()
    one, other = by_replica(cluster.stable_owners(2))
    # a child's events alternate between a resource of each replica
    resources = [
        workload.resources_in(mine, 1, partition_count=cluster.partitions)[0]
        for mine in (one, other)
    ]
    with harness.Oracle(tmp_path) as oracle:
        for automation_id, spec in (("compound", COMPOUND), ("sequence", SEQUENCE)):
            cluster.create_automation(spec, automation_id)
            oracle.create_automation(spec, automation_id)
        wait_until(lambda: _loaded_everywhere(cluster, 2), timeout=10, what="automations synced")
        for number, letter in enumerate(ORDER):
            event = named(f"test.{letter}", resources[number % 2])
            cluster.publish([event])
            oracle.publish([event])
            cluster.wait_quiescent()
        expected = oracle.firings()

    fired = collections.Counter(automation for automation, _e, _l in expected)
    assert fired == {"compound": fired["compound"], "sequence": 2}
    assert fired["compound"] >= 2
    assert cluster.firings() == expected
    # the children crossed replicas: the forward stream carried them to the home partitions
    assert any(fwd > 0 for fwd in cluster.offsets()["fwd"].values())


def test_automations_feeding_on_each_other_across_replicas_are_cut_at_the_single_node_depth(
    cluster: harness.Cluster, tmp_path: Path
) -> None:
    env = {"AUTOMATIONS_MAX_CHAIN_DEPTH": str(DEPTH)}
    cluster.start_replica(env)
    cluster.start_replica(env)
    one, other = by_replica(cluster.stable_owners(2))
    loop_ids = [_homed_in(mine, cluster.partitions) for mine in (one, other)]
    with harness.Oracle(tmp_path, env) as oracle:
        cluster.create_automation(STARTER, "starter")
        oracle.create_automation(STARTER, "starter")
        for number, automation_id in enumerate(loop_ids):
            spec = {"name": f"on triggered {number}", **ON_TRIGGERED}
            cluster.create_automation(spec, automation_id)
            oracle.create_automation(spec, automation_id)
        wait_until(lambda: _loaded_everywhere(cluster, 3), timeout=10, what="automations synced")
        event = named("job.done", 1)
        cluster.publish([event])
        oracle.publish([event])
        wait_until(
            lambda: _statuses(oracle.invocations()).get((loop_ids[0], "failed"), 0) > 0,
            timeout=20,
            what="the oracle's loop cut",
        )
        expected = _statuses(oracle.invocations())
        wait_until(
            lambda: _statuses(cluster.invocations()) == expected,
            timeout=30,
            what=f"the cluster's invocations to be the oracle's: {expected}",
        )
        cluster.wait_quiescent()
        expected_firings = collections.Counter(a for a, _e, _l in oracle.firings())

    # starter fires (its triggered event: depth 1) -> each fires (2) -> each fires on the
    # other's (3) -> each fires on the other's again, and that firing is cut
    assert expected == {
        ("starter", "succeeded"): 1,
        **{(a, "succeeded"): DEPTH - 1 for a in loop_ids},
        **{(a, "failed"): 1 for a in loop_ids},
    }
    assert _statuses(cluster.invocations()) == expected
    assert collections.Counter(a for a, _e, _l in cluster.firings()) == expected_firings


def _homed_in(partitions: set[int], partition_count: int) -> str:
    """An automation id whose home partition is one of ``partitions``."""
    for number in range(10_000):
        candidate = f"loop-{number}"
        if routing.home_partition(candidate, partition_count) in partitions:
            return candidate
    raise AssertionError(f"no automation id homed in {partitions}")


def _statuses(invocations: list[tuple[str, str, str]]) -> collections.Counter[tuple[str, str]]:
    return collections.Counter((automation, status) for automation, _key, status in invocations)


def _loaded_everywhere(cluster: harness.Cluster, count: int) -> bool:
    return all(
        harness.metric(replica, "automations_loaded_automations") == count
        for replica in cluster.live()
    )
