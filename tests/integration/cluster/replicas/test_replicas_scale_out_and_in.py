"""Scaling 1 -> 2 -> 3 -> 2 replicas under load, the last step with SIGTERM: nothing lost or doubled."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.cluster.replicas import harness, workload
from tests.waiting import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(240)]  # slow on a busy machine


def test_partitions_follow_replicas_joining_and_leaving_under_load(
    cluster: harness.Cluster, tmp_path: Path
) -> None:
    cluster.start_replica()
    with harness.Oracle(tmp_path) as oracle:
        for automation_id in (workload.ALIGNED_ID, workload.KEYED_ID):
            cluster.create_automation(workload.EVERY[automation_id], automation_id)
            oracle.create_automation(workload.EVERY[automation_id], automation_id)
        batches = [workload.pings(range(start, start + 20)) for start in range(0, 2000, 20)]
        published: list[list[dict[str, object]]] = []
        done = threading.Event()
        loader = threading.Thread(target=_load, args=(cluster, batches, published, done))
        loader.start()
        try:
            owners_seen = []
            for _ in range(2):
                cluster.start_replica()
                count = len(cluster.live())
                wait_until(
                    _owned_by(cluster, count),
                    timeout=20,
                    what=f"{count} replicas owning partitions",
                )
                owners_seen.append(cluster.owner_count())
            leaving = cluster.live()[1]
            assert leaving.terminate(timeout=30) == 0  # SIGTERM: hands its partitions over
            wait_until(
                lambda: cluster.owner_count() == 2 and None not in cluster.owners().values(),
                timeout=20,
                what="two replicas owning every partition",
            )
            owners_seen.append(cluster.owner_count())
        finally:
            done.set()
            loader.join(timeout=60)
        for batch in published:
            oracle.publish(batch)
        cluster.wait_quiescent()
        expected = workload.comparable(oracle.firings())

    assert owners_seen == [2, 3, 2]
    assert len(published) > 10
    logged = collections.Counter(cluster.logged())
    assert all(logged[event_id] == 1 for event_id in cluster.acked)
    assert workload.comparable(cluster.firings()) == expected
    assert "released every partition" in leaving.log()


def _owned_by(cluster: harness.Cluster, count: int) -> Callable[[], bool]:
    return lambda: cluster.owner_count() == count


def _load(
    cluster: harness.Cluster,
    batches: list[list[dict[str, object]]],
    published: list[list[dict[str, object]]],
    done: threading.Event,
) -> None:
    for batch in batches:
        if done.is_set():
            return
        cluster.publish(batch)
        published.append(batch)
        time.sleep(0.02)
