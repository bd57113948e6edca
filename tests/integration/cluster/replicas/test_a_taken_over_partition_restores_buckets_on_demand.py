"""kill -9 of a replica holding counted buckets and open windows: the survivor restores them lazily.

The survivor takes the victim's partitions over with their ``for_each`` buckets deferred (its log
says how many), evaluates at once, and restores each bucket when an event touches it or when it
comes due: every key's second ping fires once, a window answered after the takeover stays quiet,
the others fire once when due, exactly as the single-node oracle does.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.integration.cluster.replicas import harness, workload
from tests.waiting import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(240)]  # slow on a busy machine

DEFERRED = re.compile(r'deferred"?[:=] ?(\d+)')


def test_a_survivor_restores_the_victims_buckets_on_touch_and_when_due(
    cluster: harness.Cluster, tmp_path: Path
) -> None:
    replicas = [cluster.start_replica() for _ in range(2)]
    with harness.Oracle(tmp_path) as oracle:
        for automation_id in (workload.ALIGNED_ID, workload.ABSENCE_ID):
            spec = workload.EVERY[automation_id]
            cluster.create_automation(spec, automation_id)
            oracle.create_automation(spec, automation_id)
        cluster.wait_owners(2)
        victim, survivor = replicas
        doomed = {p for p in range(cluster.partitions) if cluster.owner_of(p) is victim}
        assert doomed
        counted = workload.resources_in(doomed, 300, partition_count=cluster.partitions)
        first = workload.pings(counted)  # one each: threshold 2, nothing fires yet
        windows = [workload.event("test.start", r) for r in counted[:6]]
        for batch in (first, windows):
            cluster.publish(batch)
            oracle.publish(batch)
        wait_until(
            lambda: {e["id"] for e in first + windows} <= set(cluster.logged()),
            timeout=20,
            what="the buckets committed by the victim",
        )
        victim.kill9()
        wait_until(
            lambda: all(cluster.owner_of(p) is survivor for p in doomed),
            timeout=15,
            interval=0.05,
            what="the victim's partitions owned by the survivor",
        )
        second = workload.pings(counted)
        done = [workload.event("test.done", r) for r in counted[:3]]
        for batch in (second, done):
            cluster.publish(batch)
            oracle.publish(batch)
        wait_until(
            lambda: sum(f[0] == workload.ALIGNED_ID for f in cluster.firings()) >= len(counted),
            timeout=30,
            what="every key's second ping fired",
        )
        wait_until(  # the windows not answered come due
            lambda: sum(f[0] == workload.ABSENCE_ID for f in cluster.firings()) >= 3,
            timeout=workload.ABSENCE_SECONDS + 15,
            what="the windows fired by the survivor",
        )
        cluster.wait_quiescent()
        wait_until(
            lambda: sum(f[0] == workload.ABSENCE_ID for f in oracle.firings()) == 3,
            timeout=20,
            what="the oracle's windows",
        )
        expected = workload.comparable(oracle.firings())
    got = workload.comparable(cluster.firings())
    assert got == expected
    assert sum(f[0] == workload.ALIGNED_ID for f in got) == len(counted)
    deferred = [int(n) for n in DEFERRED.findall(survivor.log_path.read_text())]
    assert sum(deferred) >= len(counted), deferred  # restored on demand, not at takeover
