"""Events published to any replica are logged once and fire exactly as on a single node.

Once everything is committed, the owners purge it from the log.
"""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from tests.integration.cluster.replicas import harness, workload
from tests.waiting import wait_until

pytestmark = pytest.mark.postgres


def test_events_sent_to_any_replica_fire_as_a_single_node_does(
    cluster: harness.Cluster, tmp_path: Path
) -> None:
    cluster.start_replica()
    cluster.start_replica()
    with harness.Oracle(tmp_path) as oracle:
        for automation_id in (workload.ALIGNED_ID, workload.KEYED_ID, workload.WHOLE_ID):
            cluster.create_automation(workload.EVERY[automation_id], automation_id)
            oracle.create_automation(workload.EVERY[automation_id], automation_id)
        # both replicas own partitions before the events arrive (the second one joined)
        cluster.wait_owners(2)
        wait_until(lambda: _loaded_everywhere(cluster), timeout=10, what="automations synced")
        batches = [workload.pings(range(start, start + 20)) for start in range(0, 120, 20)]
        batches += [workload.pings(range(start, start + 20)) for start in range(0, 120, 20)]
        for batch in batches:  # alternately through each replica
            cluster.publish(batch)
            oracle.publish(batch)
        retried = batches[0]  # a client retrying a request is acknowledged, and logged once
        cluster.publish(retried)
        cluster.wait_quiescent()
        # what the owners committed leaves the log (purged at their next lease renewal)
        wait_until(lambda: cluster.stored_messages() == 0, timeout=10, what="the log purged")
        expected = workload.comparable(oracle.firings())

    sent = [event["id"] for batch in batches for event in batch]
    logged = cluster.logged()
    assert collections.Counter(logged)[sent[0]] == 1
    assert set(sent) <= set(logged)
    assert len(logged) == len(set(logged))
    got = workload.comparable(cluster.firings())
    assert got == expected
    assert {a for a, _, _ in got} == {workload.ALIGNED_ID, workload.KEYED_ID, workload.WHOLE_ID}
    assert sum(a == workload.WHOLE_ID for a, _, _ in got) == 1  # one bucket, one window
    # the KEYED and WHOLE buckets were reached through the forward stream
    assert any(fwd > 0 for fwd in cluster.offsets()["fwd"].values())


def _loaded_everywhere(cluster: harness.Cluster) -> bool:
    return all(
        harness.metric(replica, "automations_loaded_automations") == 3 for replica in cluster.live()
    )
