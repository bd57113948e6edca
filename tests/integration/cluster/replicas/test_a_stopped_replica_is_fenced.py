"""A replica stopped longer than its lease loses its partitions; resumed, its commits are refused."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.integration.cluster.replicas import harness, workload
from tests.waiting import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(240)]  # slow on a busy machine


def test_a_replica_stopped_past_its_lease_commits_nothing_after_it_resumes(
    cluster: harness.Cluster, tmp_path: Path
) -> None:
    survivor = cluster.start_replica()
    zombie = cluster.start_replica()
    with harness.Oracle(tmp_path) as oracle:
        for automation_id, spec in workload.EVERY.items():
            cluster.create_automation(spec, automation_id)
            oracle.create_automation(spec, automation_id)
        cluster.wait_owners(2)
        wait_until(
            lambda: all(
                harness.metric(r, "automations_loaded_automations") == len(workload.EVERY)
                for r in cluster.live()
            ),
            timeout=10,
            what="automations synced",
        )
        held = {p for p in range(cluster.partitions) if cluster.owner_of(p) is zombie}
        zombie_id = cluster.owners()[min(held)]
        resources = workload.resources_in(held, 4, partition_count=cluster.partitions)
        starts = [workload.event("test.start", r) for r in resources]
        cluster.publish(starts)
        oracle.publish(starts)
        wait_until(
            lambda: {e["id"] for e in starts} <= set(cluster.logged()),
            timeout=10,
            what="the zombie's windows committed",
        )
        assert zombie.proc is not None
        zombie.proc.send_signal(signal.SIGSTOP)
        try:
            # past the lease: the survivor takes the partitions over and fires the windows
            wait_until(
                lambda: all(cluster.owner_of(p) is survivor for p in held),
                timeout=15,
                what="the survivor owns the stopped replica's partitions",
            )
            pings = workload.pings(resources * 3)  # work for the zombie's old partitions
            cluster.publish(pings)
            oracle.publish(pings)
            # the windows come due while it is stopped
            wait_until(
                lambda: sum(f[0] == workload.ABSENCE_ID for f in cluster.firings()) == len(starts),
                timeout=workload.ABSENCE_SECONDS + 15,
                what="the windows fired by the survivor",
            )
        finally:
            zombie.proc.send_signal(signal.SIGCONT)
        wait_until(
            lambda: harness.metric(zombie, "automations_cluster_fenced_commits_total") >= 1,
            timeout=15,
            what="the resumed replica's commit refused",
        )
        cluster.wait_quiescent()
        wait_until(
            lambda: sum(f[0] == workload.ABSENCE_ID for f in oracle.firings()) == len(starts),
            timeout=20,
            what="the oracle's windows",
        )
        expected = workload.comparable(oracle.firings())

    got = workload.comparable(cluster.firings())
    assert got == expected  # nothing twice: the zombie's refused commit left nothing
    assert "commit refused by the fence" in zombie.log()
    taken_from_the_zombie = {h[0] for h in cluster.partition_history() if h[3] == zombie_id}
    assert taken_from_the_zombie == held
