"""Windows that came due while no replica ran fire once, right after a new replica takes over."""

from __future__ import annotations

import time

import pytest

from tests.integration.cluster.replicas import harness, workload
from tests.waiting import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(240)]  # slow on a busy machine


def test_windows_due_during_an_outage_fire_once_as_soon_as_a_replica_takes_over(
    cluster: harness.Cluster,
) -> None:
    only = cluster.start_replica()
    cluster.create_automation(workload.ABSENCE, workload.ABSENCE_ID)
    wait_until(lambda: None not in cluster.owners().values(), timeout=20, what="every partition")
    starts = [workload.event("test.start", r) for r in range(6)]
    cluster.publish(starts)
    wait_until(
        lambda: {e["id"] for e in starts} <= set(cluster.logged()),
        timeout=10,
        what="the windows committed",
    )
    only.kill9()  # no replica left: nothing owns the windows when they come due
    time.sleep(workload.ABSENCE_SECONDS + 1)
    assert cluster.firings() == []
    cluster.start_replica()
    taken_at = time.monotonic()
    wait_until(
        lambda: len(cluster.firings()) == len(starts), timeout=15, interval=0.05, what="windows"
    )
    fired_in = time.monotonic() - taken_at
    cluster.wait_quiescent()
    fired = cluster.firings()
    assert sorted(str(f[1]) for f in fired) == sorted(e["id"] for e in starts)  # each window once
    assert fired_in < 5.0, fired_in
    print(f"windows due during the outage fired {fired_in:.2f} s after the new replica served")
