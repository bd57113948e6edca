"""kill -9 of a replica under load: its partitions move, nothing is lost or done twice."""

from __future__ import annotations

import collections
import threading
import time
from pathlib import Path

import pytest

from tests.integration.cluster.replicas import harness, workload
from tests.waiting import wait_until

pytestmark = pytest.mark.postgres


def test_a_killed_replicas_partitions_move_and_its_windows_fire_once_elsewhere(
    cluster: harness.Cluster, tmp_path: Path
) -> None:
    replicas = [cluster.start_replica() for _ in range(3)]
    with harness.Oracle(tmp_path) as oracle:
        for automation_id, spec in workload.EVERY.items():
            cluster.create_automation(spec, automation_id)
            oracle.create_automation(spec, automation_id)
        wait_until(
            lambda: len({o for o in cluster.owners().values() if o}) == 3,
            timeout=20,
            what="three owners",
        )
        wait_until(lambda: _synced(cluster), timeout=10, what="automations synced")
        victim = replicas[1]
        doomed = {p for p in range(cluster.partitions) if cluster.owner_of(p) is victim}
        assert doomed
        # absence windows that the victim holds when it dies (due after the kill)
        starts = [
            workload.event("test.start", r)
            for r in workload.resources_in(doomed, 4, partition_count=cluster.partitions)
        ]
        cluster.publish(starts)
        oracle.publish(starts)
        wait_until(
            lambda: {e["id"] for e in starts} <= set(cluster.logged()),
            timeout=10,
            what="the windows committed by the victim",
        )
        # load through every replica while the victim is killed
        batches = [workload.pings(range(start, start + 25)) for start in range(0, 500, 25)]
        published: list[list[dict[str, object]]] = []
        loader = threading.Thread(target=_load, args=(cluster, batches, published))
        loader.start()
        time.sleep(0.5)
        killed_at = time.monotonic()
        victim.kill9()
        wait_until(
            lambda: all(cluster.owner_of(p) not in (None, victim) for p in doomed),
            timeout=15,
            interval=0.05,
            what="the victim's partitions owned by survivors",
        )
        moved_in = time.monotonic() - killed_at
        loader.join(timeout=60)
        assert not loader.is_alive()
        for batch in published:
            oracle.publish(batch)
        time.sleep(workload.ABSENCE_SECONDS)  # the windows are due
        cluster.wait_quiescent()
        wait_until(
            lambda: sum(f[0] == workload.ABSENCE_ID for f in oracle.firings()) == len(starts),
            timeout=20,
            what="the oracle's windows",
        )
        expected = workload.comparable(oracle.firings())

    acked = cluster.acked
    logged = collections.Counter(cluster.logged())
    assert all(logged[event_id] == 1 for event_id in acked)
    got = workload.comparable(cluster.firings())
    windows = [f for f in got if f[0] == workload.ABSENCE_ID]
    assert len(windows) == len(starts) == len(set(windows)), (windows, starts)
    assert got == expected
    takeovers = [h for h in cluster.partition_history() if h[0] in doomed and h[1] > 1]
    assert {h[0] for h in takeovers} == doomed
    print(f"partitions of the killed replica owned elsewhere {moved_in:.2f} s after kill -9")


def _load(
    cluster: harness.Cluster,
    batches: list[list[dict[str, object]]],
    published: list[list[dict[str, object]]],
) -> None:
    for batch in batches:
        cluster.publish(batch)
        published.append(batch)
        time.sleep(0.05)


def _synced(cluster: harness.Cluster) -> bool:
    return all(
        harness.metric(r, "automations_loaded_automations") == len(workload.EVERY)
        for r in cluster.live()
    )
